use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::WatermarkBody;
use super::future::WatermarkFuture;
use super::mark::strip_marks_json;
use super::state::Watermarker;
use crate::dialect::Dialect;
use crate::request::RequestInfo;

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

/// True when `bytes` contains the UTF-8 encoding of a mark character.
fn has_mark_bytes(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| {
        w[0] == 0xE2
            && ((w[1] == 0x80 && (0x8B..=0x8D).contains(&w[2]))
                || (w[1] == 0x81 && (0xA0..=0xA4).contains(&w[2])))
    })
}

/// Removes our marks from a buffered JSON request body before the model sees it.
fn clean_request<B: From<Bytes>>(req: Request<B>) -> Request<B> {
    let Some(info) = req.extensions().get::<Arc<RequestInfo>>().cloned() else {
        return req;
    };
    if !has_mark_bytes(&info.body) {
        return req;
    }
    let Some(mut json) = info.json.clone() else {
        return req;
    };
    if !strip_marks_json(&mut json) {
        return req;
    }
    let Ok(bytes) = serde_json::to_vec(&json) else {
        return req;
    };
    let (mut parts, _old) = req.into_parts();
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(bytes.len()),
    );
    Request::from_parts(parts, B::from(Bytes::from(bytes)))
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
        let req = clean_request(req);
        let issue = self.marker.issue_for(req.extensions());
        let dialect = Dialect::from_path(req.uri().path());
        let future = self.inner.call(req);
        match issue {
            Some(issue) => WatermarkFuture::tagging(future, issue, self.marker.clone(), dialect),
            None => WatermarkFuture::passthrough(future),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_bytes_are_found() {
        for c in crate::watermark::mark::ALPHABET {
            assert!(has_mark_bytes(format!("ab{c}cd").as_bytes()));
        }
        assert!(!has_mark_bytes(
            "plain text — with an em dash and ’quotes’".as_bytes()
        ));
    }
}
