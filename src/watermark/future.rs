use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response};
use http_body::Body;
use pin_project_lite::pin_project;

use super::body::WatermarkBody;
use super::issue::Issue;
use super::json;
use super::mark::MarkEchoes;
use super::sse::SseRewriter;
use super::state::Watermarker;
use super::tag::TagKind;
use super::TAG_HEADER;
use crate::dialect::Dialect;

pin_project! {
    #[project = StateProj]
    enum State<F, B>
    where
        B: Body,
    {
        Passthrough { #[pin] future: F },
        Tagging {
            #[pin] future: F,
            issue: Option<Issue>,
            marker: Arc<Watermarker>,
            dialect: Dialect,
        },
        Collecting {
            body: Option<Pin<Box<B>>>,
            parts: Option<http::response::Parts>,
            buf: Vec<u8>,
            trailers: Option<HeaderMap>,
            issue: Option<Issue>,
            marker: Arc<Watermarker>,
        },
        Done,
    }
}

pin_project! {
    /// Response future of [`Watermark`](super::Watermark): waits for the inner
    /// response, then tags it (collecting a JSON body first, so that its
    /// `Content-Length` can be corrected).
    pub struct WatermarkFuture<F, B>
    where
        B: Body,
    {
        #[pin]
        state: State<F, B>,
        echoes: Option<MarkEchoes>,
    }
}

impl<F, B: Body> std::fmt::Debug for WatermarkFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatermarkFuture").finish_non_exhaustive()
    }
}

impl<F, B: Body> WatermarkFuture<F, B> {
    pub(crate) fn passthrough(future: F) -> Self {
        Self {
            state: State::Passthrough { future },
            echoes: None,
        }
    }

    /// Puts `echoes` into the response's extensions.
    pub(crate) fn with_echoes(mut self, echoes: Option<MarkEchoes>) -> Self {
        self.echoes = echoes;
        self
    }

    pub(crate) fn tagging(
        future: F,
        issue: Issue,
        marker: Arc<Watermarker>,
        dialect: Dialect,
    ) -> Self {
        Self {
            state: State::Tagging {
                future,
                issue: Some(issue),
                marker,
                dialect,
            },
            echoes: None,
        }
    }
}

enum Route {
    Pass,
    HeaderOnly,
    Sse,
    Json,
}

fn route(res: &http::response::Parts, max_json: u64) -> Route {
    if !res.status.is_success() || res.status == http::StatusCode::NO_CONTENT {
        return Route::Pass;
    }
    let h = &res.headers;
    if let Some(enc) = h.get(CONTENT_ENCODING) {
        let identity = enc
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity"));
        if !identity {
            return Route::HeaderOnly;
        }
    }
    let ct = h
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct.starts_with("text/event-stream") {
        return Route::Sse;
    }
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime == "application/json" || mime.ends_with("+json") {
        let declared = h
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_json) {
            return Route::HeaderOnly;
        }
        return Route::Json;
    }
    Route::HeaderOnly
}

fn set_tag(headers: &mut HeaderMap, tag: &str) {
    // Tags are ASCII letters, digits, `.`, `-` and `_`: always a valid value.
    if let Ok(v) = HeaderValue::from_str(tag) {
        headers.insert(TAG_HEADER, v);
    }
}

impl<F, B, E> Future for WatermarkFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Data: Buf,
{
    type Output = Result<Response<WatermarkBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let res = ready!(self.as_mut().poll_response(cx));
        Poll::Ready(res.map(|mut res| {
            if let Some(e) = self.project().echoes.take() {
                res.extensions_mut().insert(e);
            }
            res
        }))
    }
}

impl<F, B, E> WatermarkFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Data: Buf,
{
    fn poll_response(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<WatermarkBody<B>>, E>> {
        loop {
            let mut state = self.as_mut().project().state;
            match state.as_mut().project() {
                StateProj::Passthrough { future } => {
                    let res = ready!(future.poll(cx))?;
                    state.set(State::Done);
                    return Poll::Ready(Ok(res.map(WatermarkBody::passthrough)));
                }
                StateProj::Tagging {
                    future,
                    issue,
                    marker,
                    dialect,
                } => {
                    let res = ready!(future.poll(cx))?;
                    let (Some(issue), marker, dialect) = (issue.take(), marker.clone(), *dialect)
                    else {
                        state.set(State::Done);
                        return Poll::Ready(Ok(res.map(WatermarkBody::passthrough)));
                    };
                    let (mut parts, body) = res.into_parts();
                    match route(&parts, marker.max_json_bytes) {
                        Route::Pass => {
                            state.set(State::Done);
                            return Poll::Ready(Ok(Response::from_parts(
                                parts,
                                WatermarkBody::passthrough(body),
                            )));
                        }
                        Route::HeaderOnly => {
                            set_tag(&mut parts.headers, &issue.sign(TagKind::Header, None, None));
                            state.set(State::Done);
                            return Poll::Ready(Ok(Response::from_parts(
                                parts,
                                WatermarkBody::passthrough(body),
                            )));
                        }
                        Route::Sse => {
                            let rw = SseRewriter::new(
                                issue,
                                dialect,
                                marker.in_body,
                                marker.max_line_bytes,
                            );
                            set_tag(&mut parts.headers, rw.start_tag());
                            parts.headers.remove(CONTENT_LENGTH);
                            state.set(State::Done);
                            return Poll::Ready(Ok(Response::from_parts(
                                parts,
                                WatermarkBody::sse(body, rw),
                            )));
                        }
                        Route::Json => {
                            let capacity = parts
                                .headers
                                .get(CONTENT_LENGTH)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(8 * 1024)
                                .min(1 << 20);
                            state.set(State::Collecting {
                                body: Some(Box::pin(body)),
                                parts: Some(parts),
                                buf: Vec::with_capacity(capacity),
                                trailers: None,
                                issue: Some(issue),
                                marker,
                            });
                        }
                    }
                }
                StateProj::Collecting {
                    body,
                    parts,
                    buf,
                    trailers,
                    issue,
                    marker,
                } => {
                    let Some(inner) = body.as_mut() else {
                        state.set(State::Done);
                        continue;
                    };
                    match ready!(inner.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(mut data) => {
                                if (buf.len() + data.remaining()) as u64 > marker.max_json_bytes {
                                    // Too large to rewrite: send what we have, then the
                                    // rest as it comes, with the header tag only.
                                    let mut prefix = std::mem::take(buf);
                                    while data.has_remaining() {
                                        let c = data.chunk();
                                        prefix.extend_from_slice(c);
                                        let n = c.len();
                                        data.advance(n);
                                    }
                                    let (Some(mut p), Some(b), Some(i)) =
                                        (parts.take(), body.take(), issue.take())
                                    else {
                                        state.set(State::Done);
                                        continue;
                                    };
                                    set_tag(&mut p.headers, &i.sign(TagKind::Header, None, None));
                                    state.set(State::Done);
                                    return Poll::Ready(Ok(Response::from_parts(
                                        p,
                                        WatermarkBody::prefixed(prefix.into(), b),
                                    )));
                                }
                                while data.has_remaining() {
                                    let c = data.chunk();
                                    buf.extend_from_slice(c);
                                    let n = c.len();
                                    data.advance(n);
                                }
                            }
                            Err(frame) => {
                                if let Ok(t) = frame.into_trailers() {
                                    match trailers {
                                        Some(existing) => existing.extend(t),
                                        None => *trailers = Some(t),
                                    }
                                }
                            }
                        },
                        Some(Err(e)) => {
                            let Some(p) = parts.take() else {
                                state.set(State::Done);
                                continue;
                            };
                            let prefix = std::mem::take(buf);
                            state.set(State::Done);
                            return Poll::Ready(Ok(Response::from_parts(
                                p,
                                WatermarkBody::failed(prefix.into(), e),
                            )));
                        }
                        None => {
                            let (Some(mut p), Some(i)) = (parts.take(), issue.take()) else {
                                state.set(State::Done);
                                continue;
                            };
                            let trailers = trailers.take();
                            let body = match json::rewrite(buf, &i, marker.in_body) {
                                Some(rw) => {
                                    set_tag(&mut p.headers, &rw.tag);
                                    p.headers
                                        .insert(CONTENT_LENGTH, HeaderValue::from(rw.body.len()));
                                    rw.body
                                }
                                None => {
                                    set_tag(&mut p.headers, &i.sign(TagKind::Header, None, None));
                                    let b = bytes::Bytes::from(std::mem::take(buf));
                                    if p.headers.contains_key(CONTENT_LENGTH) {
                                        p.headers
                                            .insert(CONTENT_LENGTH, HeaderValue::from(b.len()));
                                    }
                                    b
                                }
                            };
                            state.set(State::Done);
                            return Poll::Ready(Ok(Response::from_parts(
                                p,
                                WatermarkBody::full(body, trailers),
                            )));
                        }
                    }
                }
                StateProj::Done => {
                    panic!("WatermarkFuture polled after completion")
                }
            }
        }
    }
}
