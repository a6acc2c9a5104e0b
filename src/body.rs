//! The response body the guard's stages hand out: the inner service's body,
//! passed through (its data as `Bytes`), or a complete body the guard wrote (a
//! refusal in the path's dialect).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

pin_project! {
    /// The inner service's body unchanged, or a complete body written by the
    /// guard. Forwards `size_hint` and `is_end_stream`.
    pub struct GuardBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

impl<B> std::fmt::Debug for GuardBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Full { .. } => "full",
        };
        f.debug_struct("GuardBody").field("kind", &kind).finish()
    }
}

impl<B> GuardBody<B> {
    /// The inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A complete body written by the guard.
    pub fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full { data: Some(data) },
        }
    }
}

impl<B> Body for GuardBody<B>
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
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner { body } => body.poll_frame(cx).map(|frame| {
                frame.map(|r| r.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))))
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn both_kinds_report_their_size_and_end() {
        let full = GuardBody::<Full<Bytes>>::full(Bytes::from_static(b"refused"));
        assert_eq!(full.size_hint().exact(), Some(7));
        assert!(!full.is_end_stream());
        assert_eq!(full.collect().await.expect("body").to_bytes(), "refused");
        let inner = GuardBody::inner(Full::new(Bytes::from_static(b"answer")));
        assert_eq!(inner.size_hint().exact(), Some(6));
        assert_eq!(inner.collect().await.expect("body").to_bytes(), "answer");
        let empty = GuardBody::<Full<Bytes>>::full(Bytes::new());
        let mut empty = std::pin::pin!(empty);
        let first = std::future::poll_fn(|cx| empty.as_mut().poll_frame(cx)).await;
        assert!(first.is_some());
        assert!(empty.is_end_stream());
    }
}
