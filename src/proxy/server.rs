//! The `serve` stack: guard layers around the upstream (or the demo model), plus
//! request ids and tracing, served with graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{HeaderName, Request};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use super::boxed::HttpService;
use super::demo::DemoModel;
use super::limits::{limited, ServeLimits};
use super::upstream::Upstream;
use crate::dialect::Dialect;
use crate::guard::Guard;
use crate::network::PeerAddr;

/// What `serve` forwards to.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The built-in demo model.
    Demo(DemoModel),
    /// A real upstream.
    Upstream(Box<Upstream>),
}

impl Backend {
    /// The backend as a boxed service.
    pub fn into_service(self) -> HttpService {
        match self {
            Backend::Demo(d) => {
                BoxCloneSyncService::new(ServiceExt::<Request<Body>>::map_response(d, |r| {
                    r.map(Body::new)
                }))
            }
            Backend::Upstream(u) => BoxCloneSyncService::new(*u),
        }
    }
}

/// The guarded stack exactly as `serve` and `replay` run it: the guard's layers
/// around `backend`. With `guard` = `None` (passthrough) the backend is served bare.
pub fn stack(guard: Option<&Guard>, backend: HttpService) -> HttpService {
    match guard {
        Some(g) => {
            BoxCloneSyncService::new(g.layer().layer(backend).map_response(|r| r.map(Body::new)))
        }
        None => backend,
    }
}

const REQUEST_ID: &str = "x-request-id";
const ANTHROPIC_REQUEST_ID: &str = "request-id";

/// The Axum app `serve` runs, with the default [`ServeLimits`]: see
/// [`app_with_limits`].
pub fn app(service: HttpService) -> Router {
    app_with_limits(service, ServeLimits::default())
}

/// The Axum app `serve` runs: request ids, tracing, the peer address extension,
/// the concurrency bound and body read deadline of `limits`, then [`stack`].
pub fn app_with_limits(service: HttpService, limits: ServeLimits) -> Router {
    let permits = (limits.max_concurrency > 0)
        .then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_concurrency)));
    let svc = service.clone();
    let svc = tower::service_fn(move |mut req: Request<Body>| {
        let svc = svc.clone();
        let permits = permits.clone();
        async move {
            if let Some(ci) = req
                .extensions()
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .copied()
            {
                req.extensions_mut().insert(PeerAddr(ci.0));
            }
            // The Anthropic SDKs read the request id from `request-id`, the OpenAI
            // ones from `x-request-id` (which the layers below propagate).
            let anthropic_id = (Dialect::from_path(req.uri().path()) == Dialect::Anthropic)
                .then(|| req.headers().get(REQUEST_ID).cloned())
                .flatten();
            let mut res = limited(svc, permits, limits, req).await?;
            if let Some(id) = anthropic_id {
                if !res.headers().contains_key(ANTHROPIC_REQUEST_ID) {
                    res.headers_mut()
                        .insert(HeaderName::from_static(ANTHROPIC_REQUEST_ID), id);
                }
            }
            Ok(res)
        }
    });
    Router::new().fallback_service(svc).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(TraceLayer::new_for_http())
            .layer(PropagateRequestIdLayer::x_request_id()),
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish for up to `grace`. A connection that goes
/// `header_read_timeout` without completing a request's headers is closed (see
/// [`crate::listen::serve`]).
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = crate::listen::serve(listener, app, header_read_timeout, async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let server = tokio::spawn(server);
    tokio::select! {
        res = server => res.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        _ = async {
            let _ = rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
            Ok(())
        }
    }
}
