//! What keeps one slow or stalled party from holding the proxy: a deadline on
//! receiving a request body (`[server] request_read_timeout`, 408), a bound on
//! the silence inside an upstream's answer (`[server] stream_idle_timeout`: a
//! stalled stream ends with an error event in the path's dialect), and a bound
//! on the requests in flight (`[server] max_concurrency`, 503 at once beyond it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Buf, Bytes};
use http::{HeaderValue, Request, Response};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use super::boxed::HttpService;
use crate::config::ServerSection;
use crate::dialect::{error_body, error_response, Dialect, ErrorKind};
use crate::request::{BodyReadTimeout, BoxError};

/// The limits `serve` applies around the guarded stack, from `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Longest time to receive a request body.
    pub request_read_timeout: Duration,
    /// Most requests in flight; `0`: no limit.
    pub max_concurrency: usize,
}

impl ServeLimits {
    /// The limits of a `[server]` section.
    pub fn of(server: &ServerSection) -> Self {
        Self {
            request_read_timeout: server.request_read_timeout,
            max_concurrency: server.max_concurrency,
        }
    }
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self::of(&ServerSection::default())
    }
}

pin_project! {
    /// A request body that fails with [`BodyReadTimeout`] when it is not
    /// complete by its deadline; the guard answers that with 408.
    #[derive(Debug)]
    pub struct ReadDeadline<B> {
        #[pin]
        body: B,
        #[pin]
        deadline: Sleep,
        done: bool,
    }
}

impl<B> ReadDeadline<B> {
    /// `body`, to be received within `timeout` from now.
    pub fn new(body: B, timeout: Duration) -> Self {
        Self {
            body,
            deadline: tokio::time::sleep(timeout),
            done: false,
        }
    }
}

impl<B> http_body::Body for ReadDeadline<B>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.body.poll_frame(cx) {
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => Poll::Ready(Some(r.map_err(Into::into))),
            Poll::Pending => match this.deadline.poll(cx) {
                Poll::Ready(()) => {
                    *this.done = true;
                    Poll::Ready(Some(Err(Box::new(BodyReadTimeout))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Why an upstream's answer was cut off.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the upstream sent nothing for {0:?}")]
pub struct StreamIdle(pub Duration);

pin_project! {
    /// An upstream's answer that may stay silent at most `idle` between two
    /// frames. A stalled event stream then ends with an error event in the
    /// dialect (what the official SDKs raise as an API error); any other body
    /// fails, which cuts the connection to the client. Either way the enforce
    /// stage settles the reservation on what was delivered.
    #[derive(Debug)]
    pub struct IdleTimeout<B> {
        #[pin]
        body: B,
        #[pin]
        timer: Sleep,
        idle: Duration,
        // The error event to end a stalled stream with; `None` for other bodies.
        event: Option<Bytes>,
        done: bool,
    }
}

impl<B> IdleTimeout<B> {
    /// `body`, allowed `idle` of silence; `dialect` and `sse` decide how a stall
    /// ends.
    pub fn new(body: B, idle: Duration, dialect: Dialect, sse: bool) -> Self {
        Self {
            body,
            timer: tokio::time::sleep(idle),
            idle,
            event: sse.then(|| stall_event(dialect, idle)),
            done: false,
        }
    }
}

/// The SSE error event a stalled stream ends with: OpenAI's `data: {"error":…}`,
/// Anthropic's `event: error`.
pub fn stall_event(dialect: Dialect, idle: Duration) -> Bytes {
    let message = format!(
        "The model server sent nothing for {}; the stream was ended.",
        humantime::format_duration(idle)
    );
    let body = error_body(dialect, ErrorKind::GatewayTimeout, &message);
    let body = String::from_utf8_lossy(&body);
    Bytes::from(match dialect {
        Dialect::OpenAi => format!("data: {body}\n\n"),
        Dialect::Anthropic => format!("event: error\ndata: {body}\n\n"),
    })
}

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = Instant::now() + *this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(
                    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
                )))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    *this.done = true;
                    tracing::warn!(idle = ?this.idle, "upstream stream stalled; ending it");
                    Poll::Ready(Some(match this.event.take() {
                        Some(ev) => Ok(Frame::data(ev)),
                        None => Err(Box::new(StreamIdle(*this.idle))),
                    }))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // A stall may add an error event.
        let mut hint = SizeHint::new();
        hint.set_lower(self.body.size_hint().lower());
        hint
    }
}

/// `backend` with every answer's body bounded to `idle` of silence between
/// frames (the wait for the headers is the upstream's own `upstream_timeout`).
pub fn stream_idle_timeout(backend: HttpService, idle: Duration) -> HttpService {
    BoxCloneSyncService::new(tower::service_fn(move |req: Request<Body>| {
        let backend = backend.clone();
        async move {
            let dialect = Dialect::from_path(req.uri().path());
            let res = backend.oneshot(req).await?;
            let sse = res
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| {
                    ct.trim()
                        .to_ascii_lowercase()
                        .starts_with("text/event-stream")
                });
            Ok(res.map(|b| Body::new(IdleTimeout::new(b, idle, dialect, sse))))
        }
    }))
}

pin_project! {
    /// A response body that holds a concurrency permit until it ends or is dropped.
    #[derive(Debug)]
    pub struct Permitted<B> {
        #[pin]
        body: B,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<B> http_body::Body for Permitted<B>
where
    B: http_body::Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.permit.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Applies [`ServeLimits`] to one request: 503 in dialect when `permits` has
/// none left, else the request with its body under the read deadline, and the
/// answer holding the permit until its body ends.
pub(crate) async fn limited(
    svc: HttpService,
    permits: Option<Arc<Semaphore>>,
    limits: ServeLimits,
    req: Request<Body>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let permit = match permits {
        Some(sem) => match sem.try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let dialect = Dialect::from_path(req.uri().path());
                let mut res = error_response(
                    dialect,
                    ErrorKind::Unavailable,
                    "The server is at capacity; please retry shortly.",
                );
                res.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                return Ok(res.map(Body::from));
            }
        },
        None => None,
    };
    let req = req.map(|b| Body::new(ReadDeadline::new(b, limits.request_read_timeout)));
    let res = svc.oneshot(req).await?;
    Ok(match permit {
        Some(permit) => res.map(|body| {
            Body::new(Permitted {
                body,
                permit: Some(permit),
            })
        }),
        None => res,
    })
}
