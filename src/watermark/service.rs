use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::WatermarkBody;
use super::future::WatermarkFuture;
use super::mark::{marked_strings, strip_marks_json, MarkEchoes};
use super::state::{Subject, Watermarker};
use crate::dialect::Dialect;
use crate::request::{Endpoint, RequestInfo};

/// The watermark stage: tags (and optionally marks) the responses that policy
/// selects. See [`crate::watermark`].
#[derive(Debug, Clone)]
pub struct Watermark<S> {
    pub(crate) inner: S,
    pub(crate) marker: Arc<Watermarker>,
}

impl<S> Watermark<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, marker: Arc<Watermarker>) -> Self {
        Self { inner, marker }
    }
}

/// True when `bytes` may hold a mark character: its UTF-8 encoding, or a JSON
/// `\u20xx` escape (clients that escape non-ASCII, like Python's `json.dumps`).
fn might_have_marks(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| {
        w[0] == 0xE2
            && ((w[1] == 0x80 && (0x8B..=0x8D).contains(&w[2]))
                || (w[1] == 0x81 && (0xA0..=0xA4).contains(&w[2])))
    }) || bytes.windows(4).any(|w| w == b"\\u20")
}

/// Removes our marks from a buffered JSON request body before the model sees it,
/// and finds marks issued to other accounts (echoes).
fn clean_request<B: From<Bytes>>(
    req: Request<B>,
    marker: &Watermarker,
) -> (Request<B>, Option<MarkEchoes>) {
    let Some(info) = req.extensions().get::<Arc<RequestInfo>>().cloned() else {
        return (req, None);
    };
    if !might_have_marks(&info.body) {
        return (req, None);
    }
    let Some(mut json) = info.json.clone() else {
        return (req, None);
    };
    let echoes = Subject::of(req.extensions())
        .map(|s| marker.echoes(&marked_strings(&json), &s.account))
        .filter(|e| !e.is_empty())
        .map(MarkEchoes);
    if !strip_marks_json(&mut json) {
        return (req, echoes);
    }
    let Ok(bytes) = serde_json::to_vec(&json) else {
        return (req, echoes);
    };
    let (mut parts, _old) = req.into_parts();
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(bytes.len()),
    );
    (
        Request::from_parts(parts, B::from(Bytes::from(bytes))),
        echoes,
    )
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Watermark<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: From<Bytes>,
    ResBody: Body,
{
    type Response = Response<WatermarkBody<ResBody>>;
    type Error = S::Error;
    type Future = WatermarkFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (req, echoes) = clean_request(req, &self.marker);
        // Only generated text is worth tagging: not model lists, token counts, ….
        let issue = Endpoint::from_path(req.uri().path())
            .generates()
            .then(|| {
                let id = crate::request::request_id(req.headers());
                self.marker.issue_for(req.extensions(), id.as_deref())
            })
            .flatten();
        let dialect = Dialect::from_path(req.uri().path());
        let mut req = req;
        if issue.is_some() {
            // Tags go into the body: ask for it uncompressed.
            crate::encoding::ask_identity(req.headers_mut());
        }
        let future = self.inner.call(req);
        let future = match issue {
            Some(issue) => WatermarkFuture::tagging(future, issue, self.marker.clone(), dialect),
            None => WatermarkFuture::passthrough(future),
        };
        future.with_echoes(echoes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_bytes_are_found() {
        for c in crate::watermark::mark::ALPHABET {
            assert!(might_have_marks(format!("ab{c}cd").as_bytes()));
        }
        assert!(might_have_marks(br#"{"a": "x\u200by"}"#));
        assert!(!might_have_marks(
            "plain text — with an em dash and ’quotes’".as_bytes()
        ));
    }
}
