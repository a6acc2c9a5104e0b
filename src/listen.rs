//! Serving an Axum app on a TCP listener so that a slow client cannot hold a
//! connection: HTTP/1 and HTTP/2 (prior knowledge) on one port, the peer's
//! address as [`ConnectInfo`], a bound on how long a connection may go without a
//! request (a client sending its headers a byte at a time, or nothing at all),
//! and graceful shutdown.
//!
//! `axum::serve` has no such bound: hyper's HTTP/1 header read timeout only
//! works with a timer, which `axum::serve` does not set, and nothing bounds the
//! bytes read before hyper knows the protocol.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceExt;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting
/// and waits for the open connections to finish their requests (bound that
/// wait with a timeout if it must end).
///
/// A connection with no request in flight is closed, without an answer, once
/// it has gone `header_read_timeout` without completing a request's headers:
/// from its opening (whatever it sends: a partial request line, a partial
/// HTTP/2 preface, nothing) and between requests (an idle keep-alive
/// connection). Requests whose headers have arrived are bounded by the stack
/// (`request_read_timeout` for the body, the upstream's timeouts).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let service = ConnService {
            app: app.clone(),
            peer,
            activity: Arc::new(Activity::new()),
        };
        let activity = service.activity.clone();
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let mut conn = pin!(conn);
            loop {
                let wake = match activity.idle_deadline(header_read_timeout) {
                    Some(at) if at <= Instant::now() => {
                        tracing::debug!(%peer, "connection idle or too slow to send a request; closed");
                        return;
                    }
                    Some(at) => at,
                    None => Instant::now() + header_read_timeout,
                };
                tokio::select! {
                    res = conn.as_mut() => {
                        if let Err(e) = res {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    () = tokio::time::sleep_until(wake) => {}
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// After a failed `accept`: errors of one connection are skipped; others (out of
/// file descriptors, of memory) are logged and accepting pauses a second so the
/// loop does not spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// When a connection last started or finished a request, and how many it has in
/// flight (HTTP/2 multiplexes).
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the last start or end of a request.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the connection, idle since its last request, is to be closed;
    /// `None` while a request is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.opened + last + timeout)
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(self.clone())
    }
}

/// One request in flight on its connection, until its answer's body is done or
/// dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The per-connection service: the peer address as [`ConnectInfo`], each
/// request counted in flight until its answer is sent.
#[derive(Debug, Clone)]
struct ConnService {
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let busy = self.activity.begin();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let answer = self.app.clone().oneshot(req);
        Box::pin(async move {
            let res = answer.await?;
            Ok(res.map(|body| Body::new(Tracked { body, _busy: busy })))
        })
    }
}

pin_project! {
    /// An answer's body holding its request's place in flight.
    struct Tracked {
        #[pin]
        body: Body,
        _busy: InFlight,
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
