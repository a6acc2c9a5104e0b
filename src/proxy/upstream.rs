//! Forwarding to a real upstream over HTTP/1.1 (hyper-util's pooled client).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::dialect::{error_response, Dialect, ErrorKind};
use crate::network::PeerAddr;

/// Headers that describe one hop and must not be forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

/// A reverse-proxy service to one upstream base URL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: Uri,
    client: Client<HttpConnector, Body>,
    timeout: Duration,
}

impl Upstream {
    /// Proxies to `base` (e.g. `http://127.0.0.1:8000`), failing a request with 502
    /// when the connection cannot be made within `connect_timeout` and with 504 when
    /// response headers take longer than `timeout`.
    pub fn new(base: &str, connect_timeout: Duration, timeout: Duration) -> Result<Self, String> {
        let base = super::parse_upstream(base)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            base,
            client,
            timeout,
        })
    }

    fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let base_path = self.base.path().trim_end_matches('/');
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(format!("{base_path}{pq}").parse()?);
        Ok(Uri::from_parts(parts)?)
    }
}

impl tower::Service<Request<Body>> for Upstream {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let dialect = Dialect::from_path(req.uri().path());
            let (mut parts, body) = req.into_parts();
            let target = match this.target(&parts.uri) {
                Ok(t) => t,
                Err(e) => {
                    return Ok(error_response(
                        dialect,
                        ErrorKind::BadGateway,
                        &format!("bad upstream path: {e}"),
                    )
                    .map(Body::from))
                }
            };
            strip_hop_by_hop(&mut parts.headers);
            if let Some(peer) = parts.extensions.get::<PeerAddr>() {
                let ip = peer.0.ip().to_string();
                let value = match parts
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                {
                    Some(prev) => format!("{prev}, {ip}"),
                    None => ip,
                };
                if let Ok(v) = HeaderValue::from_str(&value) {
                    parts.headers.insert("x-forwarded-for", v);
                }
            }
            parts.headers.remove(header::HOST);
            parts.uri = target;
            let mut out = Request::from_parts(parts, body);
            *out.version_mut() = http::Version::HTTP_11;
            match tokio::time::timeout(this.timeout, this.client.request(out)).await {
                Err(_) => Ok(error_response(
                    dialect,
                    ErrorKind::GatewayTimeout,
                    "The model server did not answer in time.",
                )
                .map(Body::from)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "upstream request failed");
                    Ok(error_response(
                        dialect,
                        ErrorKind::BadGateway,
                        "The model server could not be reached.",
                    )
                    .map(Body::from))
                }
                Ok(Ok(res)) => {
                    let (mut parts, body) = res.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    Ok(Response::from_parts(parts, Body::new(body)))
                }
            }
        })
    }
}
