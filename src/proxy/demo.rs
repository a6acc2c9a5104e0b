//! The built-in demo model: a stand-in upstream for trying the guard on a fresh
//! machine, and the mock upstream of `replay`.
//!
//! It answers both dialects, JSON and SSE, with deterministic English prose seeded by
//! the request, whose length follows the request's output cap, and reports truthful
//! `usage` under the guard's own token estimate (one token per four bytes). It
//! answers under whatever model name the request gives (`distill-guard-demo`
//! when it gives none, and in `GET /v1/models`), and every response carries the
//! header `x-distill-guard-demo: 1`. It is not a language model. An answer that
//! reaches the request's output cap ends as a real one does (`max_tokens`,
//! `length`, an incomplete response).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{ready, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use serde_json::{json, Value};

use crate::dialect::{error_response, Dialect, ErrorKind};
use crate::request::{estimate_tokens, Endpoint, RequestInfo};

/// The model name the demo reports.
pub const DEMO_MODEL: &str = "distill-guard-demo";

/// Forces the demo's usage, for replay: answer with prose of exactly this many
/// output tokens and report these input tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoUsage {
    /// Input tokens to report.
    pub input_tokens: u64,
    /// Output tokens to generate.
    pub output_tokens: u64,
}

/// A body of pre-made chunks, sent one frame at a time (so streams really stream).
#[derive(Debug, Default)]
pub struct ChunkBody {
    chunks: VecDeque<Bytes>,
}

impl ChunkBody {
    /// A body that yields `chunks` in order.
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
        }
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
    }
}

/// The demo model as a Tower service. Cheap to clone.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoModel {
    /// Output length used when a request sets no cap.
    pub default_output_tokens: u64,
    /// Words per streamed delta (4 looks like a real model; replay uses larger
    /// deltas to spend its time in the guard rather than in framing).
    pub words_per_delta: usize,
}

impl DemoModel {
    /// The demo with a default answer length of 300 tokens, streamed four words at
    /// a time.
    pub fn new() -> Self {
        Self {
            default_output_tokens: 300,
            words_per_delta: 4,
        }
    }

    /// The same, streaming `words` words per delta.
    pub fn with_words_per_delta(mut self, words: usize) -> Self {
        self.words_per_delta = words.max(1);
        self
    }
}

/// The demo's future: ready at once when a guard stage already parsed the body,
/// otherwise it reads the body first.
pub type DemoFuture = Pin<Box<dyn Future<Output = Result<Response<ChunkBody>, Infallible>> + Send>>;

impl<B> tower::Service<Request<B>> for DemoModel
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ChunkBody>;
    type Error = Infallible;
    type Future = DemoFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let forced = req.extensions().get::<DemoUsage>().copied();
        let demo = *self;
        if let Some(info) = req.extensions().get::<Arc<RequestInfo>>().cloned() {
            let res = respond(&demo, req.method(), req.uri().path(), Some(&info), forced);
            return Box::pin(ready(Ok(res)));
        }
        Box::pin(async move {
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let info = match crate::request::buffer(req, 16 * 1024 * 1024).await {
                Ok((_, bytes)) => RequestInfo::parse(&path, bytes),
                Err(_) => RequestInfo::parse(&path, Bytes::new()),
            };
            Ok(respond(&demo, &method, &path, Some(&info), forced))
        })
    }
}

fn respond(
    demo: &DemoModel,
    method: &Method,
    path: &str,
    info: Option<&RequestInfo>,
    forced: Option<DemoUsage>,
) -> Response<ChunkBody> {
    let dialect = Dialect::from_path(path);
    let endpoint = Endpoint::from_path(path);
    if method == Method::GET && path.trim_end_matches('/').ends_with("/models") {
        let body = json!({"object": "list", "data": [{"id": DEMO_MODEL, "object": "model", "created": 0, "owned_by": "distill-guard"}]});
        return json_response(StatusCode::OK, &body);
    }
    if method != Method::POST || !endpoint.generates() {
        let res = error_response(
            dialect,
            ErrorKind::InvalidRequest,
            "The demo model answers POST /v1/chat/completions, /v1/completions, /v1/responses and /v1/messages.",
        );
        let (mut parts, body) = res.into_parts();
        parts.status = StatusCode::NOT_FOUND;
        return label(Response::from_parts(parts, ChunkBody::new([body])));
    }
    let parsed;
    let info = match info {
        Some(i) => i,
        None => {
            parsed = RequestInfo::parse(path, Bytes::new());
            &parsed
        }
    };
    let Some(json) = info.json.as_ref() else {
        let res = error_response(
            dialect,
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        );
        let (parts, body) = res.into_parts();
        return label(Response::from_parts(parts, ChunkBody::new([body])));
    };
    let seed = fnv(&info.body);
    let (input_tokens, output_target) = match forced {
        Some(u) => (u.input_tokens, u.output_tokens),
        None => {
            let cap = info
                .max_output_tokens
                .unwrap_or(demo.default_output_tokens)
                .max(1);
            // Between 60% and 100% of the cap, at most 4096 tokens.
            let target = (cap.min(4096) * (60 + seed % 41)) / 100;
            (info.input_tokens_estimate, target.max(1))
        }
    };
    let text = prose(seed, output_target);
    let output_tokens = match forced {
        Some(u) => u.output_tokens,
        None => estimate_tokens(text.len()),
    };
    let model = json
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(DEMO_MODEL)
        .to_owned();
    let id = format!("{:016x}", seed);
    let include_usage = json
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let u = (input_tokens, output_tokens);
    // The answer ran into the request's output cap: say so the way a real model
    // does (`max_tokens`, `length`, an incomplete response), not as a natural end.
    let cut = info
        .max_output_tokens
        .is_some_and(|cap| output_tokens >= cap);
    let stop = Stop::of(cut);
    if info.stream {
        let a = Answer {
            id: &id,
            model: &model,
            text: &text,
            usage: u,
            stop,
            words_per_delta: demo.words_per_delta,
        };
        let events = match endpoint {
            Endpoint::Messages => anthropic_stream(a),
            Endpoint::Responses => responses_stream(a),
            Endpoint::Completions => openai_stream(a, include_usage, false),
            _ => openai_stream(a, include_usage, true),
        };
        let mut res = Response::new(ChunkBody::new(events));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return label(res);
    }
    let body = match endpoint {
        Endpoint::Messages => json!({
            "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": stop.anthropic, "stop_sequence": null,
            "usage": {"input_tokens": u.0, "output_tokens": u.1}
        }),
        Endpoint::Responses => json!({
            "id": format!("resp_{id}"), "object": "response", "created_at": 0, "status": stop.responses,
            "incomplete_details": stop.incomplete_details(),
            "model": model,
            "output": [{"type": "message", "id": format!("msg_{id}"), "status": stop.responses, "role": "assistant",
                        "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}],
            "usage": {"input_tokens": u.0, "output_tokens": u.1, "total_tokens": u.0 + u.1}
        }),
        Endpoint::Completions => json!({
            "id": format!("cmpl-{id}"), "object": "text_completion", "created": 0, "model": model,
            "choices": [{"index": 0, "text": TEXT, "finish_reason": stop.openai, "logprobs": null}],
            "usage": {"prompt_tokens": u.0, "completion_tokens": u.1, "total_tokens": u.0 + u.1}
        }),
        _ => json!({
            "id": format!("chatcmpl-{id}"), "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": stop.openai, "logprobs": null}],
            "usage": {"prompt_tokens": u.0, "completion_tokens": u.1, "total_tokens": u.0 + u.1}
        }),
    };
    json_text_response(StatusCode::OK, &body, &text)
}

fn label<B>(mut res: Response<B>) -> Response<B> {
    res.headers_mut()
        .insert("x-distill-guard-demo", HeaderValue::from_static("1"));
    res
}

/// Stands in for the generated text inside a `json!` value; [`render`] splices the
/// text in, so long answers are copied rather than escaped byte by byte.
const TEXT: &str = "\u{1}";

/// Serialises `v`, replacing the first [`TEXT`] placeholder with `text`.
///
/// `text` is the demo's own prose (ASCII letters, spaces, punctuation and
/// newlines), so only newlines need escaping; anything else is escaped in full.
fn render(v: &Value, text: &str) -> String {
    let body = v.to_string();
    let Some(at) = memchr::memmem::find(body.as_bytes(), b"\"\\u0001\"") else {
        return body;
    };
    let mut out = String::with_capacity(body.len() + text.len() + 16);
    out.push_str(&body[..at]);
    // Only the demo's own prose comes here; keep that promise checked in tests.
    debug_assert!(
        text.bytes()
            .all(|b| (0x20..0x7f).contains(&b) || b == b'\n')
            && !text.contains(['"', '\\'])
    );
    {
        out.push('"');
        let mut from = 0;
        for nl in memchr::memchr_iter(b'\n', text.as_bytes()) {
            out.push_str(&text[from..nl]);
            out.push_str("\\n");
            from = nl + 1;
        }
        out.push_str(&text[from..]);
        out.push('"');
    }
    out.push_str(&body[at + 8..]);
    out
}

fn json_response(status: StatusCode, body: &Value) -> Response<ChunkBody> {
    json_text_response(status, body, "")
}

fn json_text_response(status: StatusCode, body: &Value, text: &str) -> Response<ChunkBody> {
    let bytes = Bytes::from(render(body, text));
    let mut res = Response::new(ChunkBody::new([bytes]));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    label(res)
}

fn sse(event: Option<&str>, data: &Value) -> Bytes {
    sse_text(event, data, "")
}

fn sse_text(event: Option<&str>, data: &Value, text: &str) -> Bytes {
    let data = render(data, text);
    match event {
        Some(e) => Bytes::from(format!("event: {e}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

/// Splits text into stream deltas of a few words each.
fn deltas(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut words = 0;
    for (i, ch) in text.char_indices() {
        if ch == ' ' {
            words += 1;
            if words == n {
                out.push(&text[start..=i]);
                start = i + 1;
                words = 0;
            }
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn openai_stream(a: Answer<'_>, include_usage: bool, chat: bool) -> Vec<Bytes> {
    let Answer {
        id,
        model,
        text,
        usage: u,
        stop,
        words_per_delta: n,
    } = a;
    let mut out = Vec::new();
    let (object, cid) = if chat {
        ("chat.completion.chunk", format!("chatcmpl-{id}"))
    } else {
        ("text_completion", format!("cmpl-{id}"))
    };
    let usage_field = |v: &mut Value| {
        if include_usage {
            v["usage"] = Value::Null;
        }
    };
    if chat {
        let mut first = json!({"id": cid, "object": object, "created": 0, "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null, "logprobs": null}]});
        usage_field(&mut first);
        out.push(sse(None, &first));
    }
    for d in deltas(text, n) {
        let mut v = if chat {
            json!({"id": cid, "object": object, "created": 0, "model": model,
                "choices": [{"index": 0, "delta": {"content": TEXT}, "finish_reason": null, "logprobs": null}]})
        } else {
            json!({"id": cid, "object": object, "created": 0, "model": model,
                "choices": [{"index": 0, "text": TEXT, "finish_reason": null, "logprobs": null}]})
        };
        usage_field(&mut v);
        out.push(sse_text(None, &v, d));
    }
    let mut last = if chat {
        json!({"id": cid, "object": object, "created": 0, "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": stop.openai, "logprobs": null}]})
    } else {
        json!({"id": cid, "object": object, "created": 0, "model": model,
            "choices": [{"index": 0, "text": "", "finish_reason": stop.openai, "logprobs": null}]})
    };
    usage_field(&mut last);
    out.push(sse(None, &last));
    if include_usage {
        out.push(sse(
            None,
            &json!({"id": cid, "object": object, "created": 0, "model": model, "choices": [],
            "usage": {"prompt_tokens": u.0, "completion_tokens": u.1, "total_tokens": u.0 + u.1}}),
        ));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

fn anthropic_stream(a: Answer<'_>) -> Vec<Bytes> {
    let Answer {
        id,
        model,
        text,
        usage: u,
        stop,
        words_per_delta: n,
    } = a;
    let mut out = vec![
        sse(
            Some("message_start"),
            &json!({"type": "message_start", "message": {
            "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": u.0, "output_tokens": 1}}}),
        ),
        sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse(Some("ping"), &json!({"type": "ping"})),
    ];
    for d in deltas(text, n) {
        out.push(sse_text(Some("content_block_delta"), &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}}), d));
    }
    out.push(sse(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push(sse(Some("message_delta"), &json!({"type": "message_delta", "delta": {"stop_reason": stop.anthropic, "stop_sequence": null}, "usage": {"output_tokens": u.1}})));
    out.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
    out
}

fn responses_stream(a: Answer<'_>) -> Vec<Bytes> {
    let Answer {
        id,
        model,
        text,
        usage: u,
        stop,
        words_per_delta: n,
    } = a;
    let rid = format!("resp_{id}");
    let mid = format!("msg_{id}");
    let base = |status: &str, output: Value, usage: Value| {
        json!({"id": rid, "object": "response", "created_at": 0,
        "status": status, "model": model, "output": output, "usage": usage})
    };
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut out = vec![
        sse(
            Some("response.created"),
            &json!({"type": "response.created", "sequence_number": next(), "response": base("in_progress", json!([]), Value::Null)}),
        ),
        sse(
            Some("response.output_item.added"),
            &json!({"type": "response.output_item.added", "sequence_number": next(), "output_index": 0,
            "item": {"type": "message", "id": mid, "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        sse(
            Some("response.content_part.added"),
            &json!({"type": "response.content_part.added", "sequence_number": next(), "item_id": mid, "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    for d in deltas(text, n) {
        out.push(sse_text(Some("response.output_text.delta"), &json!({"type": "response.output_text.delta", "sequence_number": next(), "item_id": mid, "output_index": 0, "content_index": 0, "delta": TEXT}), d));
    }
    let item = json!({"type": "message", "id": mid, "status": stop.responses, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    out.push(sse(Some("response.output_text.done"), &json!({"type": "response.output_text.done", "sequence_number": next(), "item_id": mid, "output_index": 0, "content_index": 0, "text": text})));
    out.push(sse(Some("response.output_item.done"), &json!({"type": "response.output_item.done", "sequence_number": next(), "output_index": 0, "item": item})));
    // A cut answer ends with `response.incomplete` (status `incomplete`, with
    // `incomplete_details`), as the Responses API does at `max_output_tokens`.
    let event = format!("response.{}", stop.responses);
    let mut last = base(
        stop.responses,
        json!([item]),
        json!({"input_tokens": u.0, "output_tokens": u.1, "total_tokens": u.0 + u.1}),
    );
    last["incomplete_details"] = stop.incomplete_details();
    out.push(sse(
        Some(&event),
        &json!({"type": event, "sequence_number": next(), "response": last}),
    ));
    out
}

/// One generated answer, as the stream writers need it.
#[derive(Debug, Clone, Copy)]
struct Answer<'a> {
    id: &'a str,
    model: &'a str,
    text: &'a str,
    /// Input and output tokens.
    usage: (u64, u64),
    stop: Stop,
    words_per_delta: usize,
}

/// How an answer ended, in each API's words.
#[derive(Debug, Clone, Copy)]
struct Stop {
    /// Anthropic `stop_reason`.
    anthropic: &'static str,
    /// OpenAI `finish_reason`.
    openai: &'static str,
    /// Responses API `status` (and the final event's name after `response.`).
    responses: &'static str,
}

impl Stop {
    fn of(cut: bool) -> Self {
        if cut {
            Self {
                anthropic: "max_tokens",
                openai: "length",
                responses: "incomplete",
            }
        } else {
            Self {
                anthropic: "end_turn",
                openai: "stop",
                responses: "completed",
            }
        }
    }

    fn incomplete_details(self) -> Value {
        if self.responses == "incomplete" {
            json!({"reason": "max_output_tokens"})
        } else {
            Value::Null
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const SUBJECTS: &[&str] = &[
    "the scheduler",
    "a careful reader",
    "the cache",
    "this approach",
    "the old parser",
    "every request",
    "the test suite",
    "a small team",
    "the network",
    "the first draft",
    "our model",
    "the database",
    "the compiler",
    "a good example",
    "the release",
];
const VERBS: &[&str] = &[
    "keeps",
    "explains",
    "changes",
    "improves",
    "measures",
    "replaces",
    "follows",
    "shows",
    "avoids",
    "needs",
    "reveals",
    "simplifies",
    "protects",
    "delays",
    "checks",
];
const OBJECTS: &[&str] = &[
    "the hot path",
    "most of the latency",
    "a quiet failure",
    "the whole idea",
    "every edge case",
    "the final answer",
    "a second opinion",
    "the morning build",
    "the memory budget",
    "an honest estimate",
    "the slow query",
    "the user's intent",
    "the error message",
    "a clean boundary",
    "the long tail",
];
const TAILS: &[&str] = &[
    "without much fuss",
    "when the load is high",
    "in a predictable way",
    "after a short pause",
    "for most readers",
    "before anyone notices",
    "on a busy day",
    "with fewer moving parts",
    "at a modest cost",
    "in plain words",
];

/// Deterministic prose of `tokens` tokens (4 bytes each) for `seed`: a window into
/// one fixed text, generated once, so answers cost a copy rather than generation.
pub fn prose(seed: u64, tokens: u64) -> String {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| generate_prose(0x5eed, 64 * 1024));
    let target = usize::try_from(tokens.max(1).saturating_mul(4)).unwrap_or(usize::MAX / 2);
    // Start on a sentence boundary chosen by the seed.
    let mut start = ((seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize) % (base.len() / 2);
    while start > 0 && base.as_bytes()[start - 1] != b' ' {
        start -= 1;
    }
    let mut out = String::with_capacity(target);
    let mut at = start;
    while out.len() < target {
        let take = (target - out.len()).min(base.len() - at);
        out.push_str(&base[at..at + take]);
        at = 0;
        if out.len() < target {
            out.push(' ');
        }
    }
    out.truncate(target);
    // Never end on a space: some clients trim, which would change the length.
    if out.ends_with(' ') {
        out.pop();
        out.push('.');
    }
    out
}

/// Generates ASCII prose of at least `bytes` bytes.
fn generate_prose(seed: u64, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 64);
    let mut x = seed | 1;
    let mut next = |n: usize| {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    };
    let mut sentence = 0;
    while out.len() < bytes {
        if !out.is_empty() {
            out.push_str(if sentence % 5 == 0 { "\n\n" } else { " " });
        }
        let words = [
            SUBJECTS[next(SUBJECTS.len())],
            VERBS[next(VERBS.len())],
            OBJECTS[next(OBJECTS.len())],
            TAILS[next(TAILS.len())],
        ];
        for (i, word) in words.iter().enumerate() {
            if i == 0 {
                let mut c = word.chars();
                if let Some(f) = c.next() {
                    out.extend(f.to_uppercase());
                    out.push_str(c.as_str());
                }
            } else {
                out.push(' ');
                out.push_str(word);
            }
        }
        out.push('.');
        sentence += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use tower::ServiceExt;

    async fn call(path: &str, body: &str, forced: Option<DemoUsage>) -> (Response<()>, String) {
        let mut req = Request::post(path)
            .body(Empty::<Bytes>::new())
            .expect("req");
        req.extensions_mut().insert(Arc::new(RequestInfo::parse(
            path,
            Bytes::from(body.to_owned()),
        )));
        if let Some(f) = forced {
            req.extensions_mut().insert(f);
        }
        let res = DemoModel::new().oneshot(req).await.expect("infallible");
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (
            Response::from_parts(parts, ()),
            String::from_utf8(bytes.to_vec()).expect("utf8"),
        )
    }

    #[tokio::test]
    async fn json_usage_is_truthful_and_follows_the_cap() {
        let (res, body) = call("/v1/chat/completions", r#"{"model":"m","max_tokens":800,"messages":[{"role":"user","content":"hello there"}]}"#, None).await;
        assert_eq!(res.headers()["x-distill-guard-demo"], "1");
        let v: Value = serde_json::from_str(&body).expect("json");
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .expect("text");
        let out = v["usage"]["completion_tokens"].as_u64().expect("usage");
        assert_eq!(out, estimate_tokens(text.len()));
        assert!((480..=800).contains(&out), "{out}");
        assert!(
            text.split_whitespace().count() > 300,
            "several hundred words"
        );
    }

    #[tokio::test]
    async fn anthropic_stream_has_every_event_and_usage() {
        let (res, body) = call("/v1/messages", r#"{"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#, None).await;
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        for e in [
            "message_start",
            "content_block_delta",
            "message_delta",
            "message_stop",
        ] {
            assert!(body.contains(&format!("event: {e}\n")), "missing {e}");
        }
        let mut s = crate::quota::usage::UsageScanner::for_content_type(Some("text/event-stream"));
        s.feed(body.as_bytes());
        let u = s.finish();
        assert_eq!(u.input, Some(2), "\"user\" + \"hi\" = 6 bytes");
        assert!(u.output.expect("output") > 0);
    }

    #[tokio::test]
    async fn an_answer_cut_at_the_cap_says_so_in_every_dialect() {
        // (path, extra request fields, stream?, what a cut answer says, what a natural end says)
        let cases = [
            (
                "/v1/messages",
                "\"max_tokens\":1",
                false,
                "\"stop_reason\":\"max_tokens\"",
                "\"stop_reason\":\"end_turn\"",
            ),
            (
                "/v1/messages",
                "\"max_tokens\":1",
                true,
                "\"stop_reason\":\"max_tokens\"",
                "\"stop_reason\":\"end_turn\"",
            ),
            (
                "/v1/chat/completions",
                "\"max_tokens\":1",
                false,
                "\"finish_reason\":\"length\"",
                "\"finish_reason\":\"stop\"",
            ),
            (
                "/v1/chat/completions",
                "\"max_tokens\":1",
                true,
                "\"finish_reason\":\"length\"",
                "\"finish_reason\":\"stop\"",
            ),
            (
                "/v1/completions",
                "\"max_tokens\":1",
                true,
                "\"finish_reason\":\"length\"",
                "\"finish_reason\":\"stop\"",
            ),
            (
                "/v1/responses",
                "\"max_output_tokens\":1",
                false,
                "\"reason\":\"max_output_tokens\"",
                "\"status\":\"completed\"",
            ),
            (
                "/v1/responses",
                "\"max_output_tokens\":1",
                true,
                "event: response.incomplete",
                "event: response.completed",
            ),
        ];
        for (path, cap, stream, cut, natural) in cases {
            let body = format!(
                r#"{{"model":"m",{cap},"stream":{stream},"messages":[{{"role":"user","content":"hi"}}],"input":"hi","prompt":"hi"}}"#
            );
            let (_, text) = call(path, &body, None).await;
            assert!(text.contains(cut), "{path} stream={stream}: {text}");
            assert!(!text.contains(natural), "{path} stream={stream}: {text}");
            // Without a cap the demo stops on its own (at most 4096 tokens).
            let body = format!(
                r#"{{"model":"m","stream":{stream},"messages":[{{"role":"user","content":"hi"}}],"input":"hi","prompt":"hi"}}"#
            );
            let (_, text) = call(path, &body, None).await;
            assert!(text.contains(natural), "{path} stream={stream}: {text}");
            assert!(!text.contains(cut), "{path} stream={stream}: {text}");
        }
    }

    #[tokio::test]
    async fn forced_usage_for_replay() {
        let forced = DemoUsage {
            input_tokens: 812,
            output_tokens: 1500,
        };
        let (_, body) = call(
            "/v1/chat/completions",
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
            Some(forced),
        )
        .await;
        assert!(body.ends_with("data: [DONE]\n\n"));
        let mut s = crate::quota::usage::UsageScanner::for_content_type(Some("text/event-stream"));
        s.feed(body.as_bytes());
        assert_eq!(
            s.finish(),
            crate::quota::usage::Usage {
                input: Some(812),
                output: Some(1500)
            }
        );
        assert_eq!(
            s.estimated_output(),
            1500,
            "prose length matches the forced usage"
        );
    }

    #[tokio::test]
    async fn non_json_is_a_400_in_dialect() {
        let (res, body) = call("/v1/messages", "not json", None).await;
        assert_eq!(res.status(), 400);
        assert!(body.contains("invalid_request_error"));
    }

    #[test]
    fn spliced_text_is_valid_json_whatever_it_holds() {
        for text in ["plain prose", "two\n\nparagraphs", &prose(3, 500), ""] {
            let out = render(&json!({"a": TEXT, "b": "\u{1}x"}), text);
            let v: Value = serde_json::from_str(&out).expect("valid json");
            assert_eq!(v["a"], text);
            assert_eq!(v["b"], "\u{1}x", "only the exact placeholder is replaced");
        }
    }

    #[test]
    fn prose_is_deterministic_and_sized() {
        assert_eq!(prose(7, 100), prose(7, 100));
        assert_ne!(prose(7, 100), prose(8, 100));
        assert_eq!(prose(7, 100).len(), 400);
    }
}
