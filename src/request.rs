//! The buffered, parsed request body that every stage shares.
//!
//! The first guard stage to see a request buffers its body (up to
//! `guard.max_body_bytes`, else 413), parses it once, and inserts an
//! `Arc<RequestInfo>` extension; later stages reuse it. The inner service receives
//! the same bytes, rebuilt into its body type.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use serde_json::Value;

use crate::dialect::Dialect;

/// The endpoint family of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `/v1/chat/completions`
    ChatCompletions,
    /// `/v1/completions`
    Completions,
    /// `/v1/responses`
    Responses,
    /// `/v1/messages`
    Messages,
    /// Anything else (models listing, embeddings, …).
    Other,
}

impl Endpoint {
    /// The endpoint of a path.
    pub fn from_path(path: &str) -> Self {
        let p = path.trim_end_matches('/');
        if p.ends_with("/chat/completions") {
            Endpoint::ChatCompletions
        } else if p.ends_with("/completions") {
            Endpoint::Completions
        } else if p.ends_with("/responses") {
            Endpoint::Responses
        } else if p.ends_with("/messages") {
            Endpoint::Messages
        } else {
            Endpoint::Other
        }
    }

    /// True for endpoints that generate text and so consume LLM tokens.
    pub fn generates(self) -> bool {
        !matches!(self, Endpoint::Other)
    }
}

/// What the guard learned from a request's body.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The dialect of the path.
    pub dialect: Dialect,
    /// The endpoint family.
    pub endpoint: Endpoint,
    /// The raw body.
    pub body: Bytes,
    /// The parsed body, when it is a JSON object.
    pub json: Option<Value>,
    /// `"stream": true`.
    pub stream: bool,
    /// The output cap the request set, if any.
    pub max_output_tokens: Option<u64>,
    /// Number of choices requested (`n`, OpenAI), at least 1.
    pub choices: u64,
    /// Estimated input tokens (see [`estimate_tokens`]).
    pub input_tokens_estimate: u64,
}

impl RequestInfo {
    /// Parses `body` of a request to `path`. Never fails: a body that is not JSON
    /// gives a `RequestInfo` with `json: None` and an estimate from its length.
    pub fn parse(path: &str, body: Bytes) -> Self {
        let dialect = Dialect::from_path(path);
        let endpoint = Endpoint::from_path(path);
        let json = if body.is_empty() {
            None
        } else {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .filter(Value::is_object)
        };
        let (stream, max_output_tokens, choices, input) = match &json {
            Some(v) => {
                let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
                let cap = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
                    .iter()
                    .filter_map(|k| v.get(*k).and_then(Value::as_u64))
                    .max();
                let n = v
                    .get("n")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .clamp(1, 128);
                let mut chars = 0usize;
                for key in [
                    "messages",
                    "prompt",
                    "input",
                    "system",
                    "instructions",
                    "tools",
                ] {
                    if let Some(part) = v.get(key) {
                        chars += text_len(part, 0);
                    }
                }
                (stream, cap, n, estimate_tokens(chars))
            }
            None => (false, None, 1, estimate_tokens(body.len())),
        };
        Self {
            dialect,
            endpoint,
            body,
            json,
            stream,
            max_output_tokens,
            choices,
            input_tokens_estimate: input,
        }
    }
}

/// Total byte length of the strings in a JSON value (bounded recursion depth).
fn text_len(v: &Value, depth: usize) -> usize {
    if depth > 32 {
        return 0;
    }
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(|x| text_len(x, depth + 1)).sum(),
        Value::Object(o) => o.values().map(|x| text_len(x, depth + 1)).sum(),
        _ => 0,
    }
}

/// The documented token estimate: one token per four bytes of text, rounded up.
///
/// A real tokenizer costs tens of microseconds per 4 KB body, more than the whole
/// guard's budget, and only the reservation depends on it: every estimate is
/// reconciled with the upstream's `usage` when the response completes.
pub fn estimate_tokens(text_bytes: usize) -> u64 {
    (text_bytes as u64).div_ceil(4)
}

/// Why a body could not be buffered.
#[derive(Debug)]
pub enum BufferError {
    /// Larger than the limit.
    TooLarge,
    /// The client's body failed (disconnect, bad framing).
    Read(String),
    /// The client took longer than the server allows to send it (the body
    /// failed with [`BodyReadTimeout`]).
    TimedOut,
}

/// The error a request body fails with when its client sends it too slowly
/// (`[server] request_read_timeout`); the stages answer it with 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body was not received in time")]
pub struct BodyReadTimeout;

/// True when `e`, or an error it wraps, is a [`BodyReadTimeout`].
fn is_read_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyReadTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error type bodies are boxed into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Buffers a request body up to `limit` bytes and returns the request's parts
/// and the bytes. A `Content-Length` over the limit is refused before reading.
pub fn buffer<B>(req: Request<B>, limit: u64) -> Buffer<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Buffer {
            state: BufferState::TooLarge,
        };
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Buffer {
        state: BufferState::Collecting {
            collect: Limited::new(body, limit).collect(),
            parts: Some(parts),
        },
    }
}

pin_project! {
    #[project = BufferProj]
    enum BufferState<B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        TooLarge,
        Collecting {
            #[pin]
            collect: Collect<Limited<B>>,
            parts: Option<http::request::Parts>,
        },
        Done,
    }
}

pin_project! {
    /// The future of [`buffer`]: no allocation beyond the body's bytes, so the
    /// stages can hold it without boxing.
    pub struct Buffer<B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: BufferState<B>,
    }
}

impl<B> std::fmt::Debug for Buffer<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer").finish_non_exhaustive()
    }
}

impl<B> Future for Buffer<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<(http::request::Parts, Bytes), BufferError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let out = match state.as_mut().project() {
            BufferProj::TooLarge => Err(BufferError::TooLarge),
            BufferProj::Collecting { collect, parts } => {
                let collected = ready!(collect.poll(cx));
                match (collected, parts.take()) {
                    (Ok(c), Some(parts)) => Ok((parts, c.to_bytes())),
                    (Err(e), _) if e.is::<http_body_util::LengthLimitError>() => {
                        Err(BufferError::TooLarge)
                    }
                    (Err(e), _) if is_read_timeout(&*e) => Err(BufferError::TimedOut),
                    (Err(e), _) => Err(BufferError::Read(e.to_string())),
                    (Ok(_), None) => panic!("`Buffer` polled after completion"),
                }
            }
            BufferProj::Done => panic!("`Buffer` polled after completion"),
        };
        state.set(BufferState::Done);
        Poll::Ready(out)
    }
}

/// A request id fit to log and index: the `x-request-id` header when it is 1 to 128
/// characters of `[A-Za-z0-9._:-]` (ids are client-settable, so anything else is
/// ignored rather than echoed into logs).
pub fn request_id(headers: &HeaderMap) -> Option<Arc<str>> {
    let v = headers.get("x-request-id")?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| Arc::from(v))
}

/// The 128 bits a provenance tag carries for a request id: the UUID itself when
/// the id is one (36 characters with hyphens, or 32 hex digits; what `serve`
/// generates), else the first 128 bits of its SHA-256. Two spellings of one UUID
/// give the same bits, so the tag's request id finds the decision.
pub fn request_id_bits(id: &str) -> [u8; 16] {
    let hex: String = if id.len() == 36
        && id
            .char_indices()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'))
    {
        id.chars().filter(|c| *c != '-').collect()
    } else {
        id.to_owned()
    };
    if let Some(bits) = crate::extensions::parse_hex(&hex) {
        return bits;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"distill-guard/request-id\0")
        .chain_update(id.as_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Shared handle to the parsed request.
pub type SharedRequestInfo = Arc<RequestInfo>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_caps_stream_and_estimate() {
        let body = Bytes::from_static(
            br#"{"model":"m","stream":true,"max_completion_tokens":900,"n":2,
                "messages":[{"role":"user","content":"abcdefgh"}]}"#,
        );
        let info = RequestInfo::parse("/v1/chat/completions", body);
        assert!(info.stream);
        assert_eq!(info.max_output_tokens, Some(900));
        assert_eq!(info.choices, 2);
        // "user" (4) + "abcdefgh" (8) = 12 bytes -> 3 tokens
        assert_eq!(info.input_tokens_estimate, 3);
        assert_eq!(info.endpoint, Endpoint::ChatCompletions);
    }

    #[test]
    fn garbage_is_not_an_error() {
        let info = RequestInfo::parse("/v1/messages", Bytes::from_static(b"\xff\x00not json"));
        assert!(info.json.is_none());
        assert_eq!(info.dialect, Dialect::Anthropic);
        assert_eq!(info.input_tokens_estimate, 3);
        let info = RequestInfo::parse("/v1/messages", Bytes::from_static(b"[1,2]"));
        assert!(info.json.is_none());
    }

    #[tokio::test]
    async fn buffer_enforces_the_limit() {
        let req = Request::new(http_body_util::Full::new(Bytes::from(vec![b'a'; 100])));
        assert!(matches!(buffer(req, 99).await, Err(BufferError::TooLarge)));
        let req = Request::new(http_body_util::Full::new(Bytes::from(vec![b'a'; 100])));
        let (_, bytes) = buffer(req, 100).await.expect("fits");
        assert_eq!(bytes.len(), 100);
    }

    #[test]
    fn a_uuid_has_the_same_bits_in_either_spelling() {
        let uuid = "0b6e41a2-9c1d-4f7e-8a3b-5d2c1e0f9a87";
        assert_eq!(
            request_id_bits(uuid),
            request_id_bits("0B6E41A29C1D4F7E8A3B5D2C1E0F9A87")
        );
        assert_eq!(request_id_bits(uuid)[0], 0x0b);
        assert_ne!(request_id_bits("req-1"), request_id_bits("req-2"));
        assert_ne!(
            request_id_bits("0b6e41a2-9c1d-4f7e-8a3b-5d2c1e0f9a8"),
            request_id_bits(uuid)
        );
    }

    #[test]
    fn request_ids_are_sanitised() {
        let mut h = HeaderMap::new();
        assert!(request_id(&h).is_none());
        h.insert("x-request-id", "0b6e-41a2:x_y.z".parse().expect("header"));
        assert_eq!(request_id(&h).as_deref(), Some("0b6e-41a2:x_y.z"));
        h.insert("x-request-id", "has space".parse().expect("header"));
        assert!(request_id(&h).is_none());
        h.insert("x-request-id", "a".repeat(129).parse().expect("header"));
        assert!(request_id(&h).is_none());
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn request_ids_are_either_clean_or_ignored(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(&raw) {
                h.insert("x-request-id", v);
                match request_id(&h) {
                    Some(id) => {
                        prop_assert!(id.len() <= 128 && !id.is_empty());
                        prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)));
                        prop_assert_eq!(id.as_bytes(), &raw[..]);
                    }
                    None => prop_assert!(
                        raw.is_empty() || raw.len() > 128
                            || raw.iter().any(|b| !(b.is_ascii_alphanumeric() || b".-_:".contains(b)))
                    ),
                }
            }
        }
    }
}
