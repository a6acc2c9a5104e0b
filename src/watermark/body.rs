use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::sse::SseRewriter;
use crate::encoding::Decoded;

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        Passthrough { #[pin] body: B },
        Full { data: Option<Bytes>, trailers: Option<HeaderMap> },
        Prefixed { prefix: Option<Bytes>, body: Pin<Box<B>> },
        Failed { prefix: Option<Bytes>, error: Option<B::Error> },
        Sse {
            #[pin] body: Decoded<B>,
            rewriter: Box<SseRewriter>,
            trailers: Option<HeaderMap>,
            done: bool,
        },
    }
}

pin_project! {
    /// Response body of the watermark stage: the inner body unchanged, a rewritten
    /// JSON body, or an SSE stream rewritten as it flows.
    pub struct WatermarkBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

impl<B: Body> std::fmt::Debug for WatermarkBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Passthrough { .. } => "passthrough",
            Kind::Full { .. } => "json",
            Kind::Prefixed { .. } => "prefixed",
            Kind::Failed { .. } => "failed",
            Kind::Sse { .. } => "sse",
        };
        f.debug_struct("WatermarkBody")
            .field("kind", &kind)
            .finish()
    }
}

impl<B: Body> WatermarkBody<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: Kind::Passthrough { body },
        }
    }

    pub(crate) fn full(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Full {
                data: Some(data),
                trailers,
            },
        }
    }

    pub(crate) fn prefixed(prefix: Bytes, body: Pin<Box<B>>) -> Self {
        Self {
            kind: Kind::Prefixed {
                prefix: Some(prefix),
                body,
            },
        }
    }

    pub(crate) fn failed(prefix: Bytes, error: B::Error) -> Self {
        Self {
            kind: Kind::Failed {
                prefix: Some(prefix),
                error: Some(error),
            },
        }
    }

    pub(crate) fn sse(body: Decoded<B>, rewriter: SseRewriter) -> Self {
        Self {
            kind: Kind::Sse {
                body,
                rewriter: Box::new(rewriter),
                trailers: None,
                done: false,
            },
        }
    }
}

fn to_bytes<D: Buf>(mut d: D) -> Bytes {
    d.copy_to_bytes(d.remaining())
}

fn nonempty(b: Option<Bytes>) -> Option<Bytes> {
    b.filter(|b| !b.is_empty())
}

impl<B> Body for WatermarkBody<B>
where
    B: Body,
    B::Data: Buf,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { body } => body
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map(|f| f.map_data(to_bytes)))),
            KindProj::Full { data, trailers } => {
                if let Some(d) = nonempty(data.take()) {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            KindProj::Prefixed { prefix, body } => {
                if let Some(p) = nonempty(prefix.take()) {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                body.as_mut()
                    .poll_frame(cx)
                    .map(|f| f.map(|r| r.map(|f| f.map_data(to_bytes))))
            }
            KindProj::Failed { prefix, error } => {
                if let Some(p) = nonempty(prefix.take()) {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                Poll::Ready(error.take().map(Err))
            }
            KindProj::Sse {
                mut body,
                rewriter,
                trailers,
                done,
            } => loop {
                if *done {
                    return Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))));
                }
                match body.as_mut().poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => {
                            let data = to_bytes(data);
                            let mut out = Vec::with_capacity(data.len() + 64);
                            rewriter.feed(&data, &mut out);
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                            }
                        }
                        Err(frame) => {
                            // Trailers end the data: finish the stream first.
                            if let Ok(t) = frame.into_trailers() {
                                *trailers = Some(t);
                            }
                            *done = true;
                            let mut out = Vec::new();
                            rewriter.finish(&mut out);
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                            }
                        }
                    },
                    Poll::Ready(Some(Err(e))) => {
                        *done = true;
                        rewriter.record();
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(None) => {
                        *done = true;
                        let mut out = Vec::new();
                        rewriter.finish(&mut out);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Full { data, trailers } => {
                data.as_ref().is_none_or(Bytes::is_empty) && trailers.is_none()
            }
            Kind::Prefixed { prefix, body } => {
                prefix.as_ref().is_none_or(Bytes::is_empty) && body.is_end_stream()
            }
            Kind::Failed { prefix, error } => prefix.is_none() && error.is_none(),
            Kind::Sse { done, trailers, .. } => *done && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Prefixed { prefix, body } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let inner = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(extra));
                if let Some(u) = inner.upper() {
                    hint.set_upper(u.saturating_add(extra));
                }
                hint
            }
            Kind::Failed { prefix, .. } => {
                SizeHint::with_exact(prefix.as_ref().map_or(0, |d| d.len() as u64))
            }
            // Marks and records change the length: only "at least what is left" holds.
            Kind::Sse { body, done, .. } => {
                let mut hint = SizeHint::new();
                if !*done {
                    hint.set_lower(body.size_hint().lower());
                }
                hint
            }
        }
    }
}
