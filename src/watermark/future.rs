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
use crate::encoding::{Coding, Decoded, Decoder};

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
            // Decodes the collected body of a compressed answer at its end.
            decoder: Option<Decoder>,
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

/// How a response is tagged, and the decoder of its compressed body (an upstream
/// that compressed although the stage asked for identity).
fn route(res: &http::response::Parts, max_json: u64) -> (Route, Option<Decoder>) {
    if !res.status.is_success() || res.status == http::StatusCode::NO_CONTENT {
        return (Route::Pass, None);
    }
    let route = route_by_type(res, max_json);
    if matches!(route, Route::Pass | Route::HeaderOnly) {
        return (route, None);
    }
    match Coding::of(&res.headers) {
        Coding::Identity => (route, None),
        // Decoded and sent on uncompressed, so its body can be tagged.
        coding => match Decoder::new(coding) {
            Ok(d) => (route, Some(d)),
            Err(_) => (Route::HeaderOnly, None),
        },
    }
}

fn route_by_type(res: &http::response::Parts, max_json: u64) -> Route {
    let h = &res.headers;
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
        if declared.is_some_and(|n| n > max_json) && Coding::of(h).is_identity() {
            return Route::HeaderOnly;
        }
        return Route::Json;
    }
    Route::HeaderOnly
}

/// The decoded bytes of a whole compressed body, if it decodes completely to at
/// most `max` bytes.
fn decode_whole(mut d: Decoder, raw: &[u8], max: u64) -> Option<Vec<u8>> {
    let mut out = d.feed(raw).ok()?.to_vec();
    out.extend_from_slice(d.finish().ok()?);
    (out.len() as u64 <= max).then_some(out)
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
                    let (route, decoder) = route(&parts, marker.max_json_bytes);
                    match route {
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
                            if decoder.is_some() {
                                parts.headers.remove(CONTENT_ENCODING);
                            }
                            state.set(State::Done);
                            return Poll::Ready(Ok(Response::from_parts(
                                parts,
                                WatermarkBody::sse(Decoded::new(body, decoder), rw),
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
                                decoder,
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
                    decoder,
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
                            // A compressed answer is decoded whole; one that does not
                            // decode (or decodes past the bound) passes as it came,
                            // with the header tag.
                            let raw = std::mem::take(buf);
                            let plain = match decoder.take() {
                                None => Ok(raw),
                                Some(d) => decode_whole(d, &raw, marker.max_json_bytes).ok_or(raw),
                            };
                            let mut plain = match plain {
                                Ok(plain) => plain,
                                Err(raw) => {
                                    set_tag(&mut p.headers, &i.sign(TagKind::Header, None, None));
                                    state.set(State::Done);
                                    return Poll::Ready(Ok(Response::from_parts(
                                        p,
                                        WatermarkBody::full(raw.into(), trailers),
                                    )));
                                }
                            };
                            if Coding::of(&p.headers) != Coding::Identity {
                                p.headers.remove(CONTENT_ENCODING);
                                p.headers.remove(CONTENT_LENGTH);
                            }
                            let buf = &mut plain;
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
