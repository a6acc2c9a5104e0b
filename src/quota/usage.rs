//! Reads the upstream's `usage` from a response as it streams past.
//!
//! JSON bodies are kept (up to a bound) and parsed once at the end; SSE streams are
//! split into lines with a bounded carry buffer, and only `data:` lines that mention
//! `"usage"` are parsed. Understood shapes:
//!
//! * OpenAI chat/completions: `usage.prompt_tokens`, `usage.completion_tokens`
//!   (the final chunk of a stream with `stream_options.include_usage`);
//! * OpenAI responses: `usage.input_tokens` / `output_tokens`, also inside
//!   `response.completed` events (`response.usage`);
//! * Anthropic messages: `usage.input_tokens` (+ cache tokens) and `output_tokens`,
//!   in streams `message_start` (`message.usage`) and `message_delta` (`usage`,
//!   cumulative).
//!
//! A compressed body (the upstream ignored the `Accept-Encoding: identity` the
//! stage asked for) is decoded as it streams past, see [`crate::encoding`]; the
//! bytes the client receives are left as they are. A body that cannot be read
//! (an unknown coding, a corrupt stream, a JSON body over the bound) is reported
//! [`unreadable`](UsageScanner::unreadable), and settles at its reservation.

use http::HeaderMap;
use serde_json::Value;

use crate::encoding::{Coding, Decoder};

/// Largest JSON response kept for usage parsing; larger bodies are unreadable and
/// settle at their reservation.
const MAX_JSON_BYTES: usize = 8 * 1024 * 1024;
/// Longest SSE line carried between chunks.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Tokens a response reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input (prompt) tokens, including cached ones.
    pub input: Option<u64>,
    /// Output (completion) tokens.
    pub output: Option<u64>,
}

impl Usage {
    fn merge(&mut self, other: Usage) {
        if other.input.is_some() {
            self.input = other.input;
        }
        if other.output.is_some() {
            self.output = other.output;
        }
    }
}

/// Extracts usage from one parsed JSON document (a body or an SSE event).
pub fn usage_of(v: &Value) -> Option<Usage> {
    let u = v
        .get("usage")
        .or_else(|| v.get("message").and_then(|m| m.get("usage")))
        .or_else(|| v.get("response").and_then(|m| m.get("usage")))?;
    if !u.is_object() {
        return None;
    }
    let num = |k: &str| u.get(k).and_then(Value::as_u64);
    let input = match (num("prompt_tokens"), num("input_tokens")) {
        (Some(p), _) => Some(p),
        (None, Some(i)) => Some(
            i + num("cache_creation_input_tokens").unwrap_or(0)
                + num("cache_read_input_tokens").unwrap_or(0),
        ),
        (None, None) => None,
    };
    let output = num("completion_tokens").or_else(|| num("output_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage { input, output })
}

#[derive(Debug)]
enum Mode {
    Json(Vec<u8>),
    Sse(Vec<u8>),
    Skip,
}

/// Incremental usage reader for one response body.
#[derive(Debug)]
pub struct UsageScanner {
    mode: Mode,
    usage: Usage,
    overflow: bool,
    /// Bytes of generated text seen in stream deltas, for an estimate when the
    /// upstream reports no usage (OpenAI streams without `include_usage`).
    text_bytes: usize,
    /// Decodes a compressed body before it is scanned.
    decoder: Option<Decoder>,
    /// The body could not be read: its usage is unknown.
    unreadable: bool,
}

impl UsageScanner {
    /// A scanner for a response with these headers: its `Content-Type` says how
    /// to read it, its `Content-Encoding` whether to decode it first.
    pub fn for_response(headers: &HeaderMap) -> Self {
        let ct = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let mut s = Self::for_content_type(ct);
        if matches!(s.mode, Mode::Skip) {
            return s;
        }
        let coding = Coding::of(headers);
        if !coding.is_identity() {
            match Decoder::new(coding) {
                Ok(d) => s.decoder = Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, ?coding, "cannot read usage from this response");
                    s.give_up();
                }
            }
        }
        s
    }

    /// A scanner for an uncompressed response with this `Content-Type`.
    pub fn for_content_type(content_type: Option<&str>) -> Self {
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        let mode = if ct.starts_with("text/event-stream") {
            Mode::Sse(Vec::new())
        } else if ct.starts_with("application/json") || ct.ends_with("+json") {
            Mode::Json(Vec::new())
        } else {
            Mode::Skip
        };
        Self {
            mode,
            usage: Usage::default(),
            overflow: false,
            text_bytes: 0,
            decoder: None,
            unreadable: false,
        }
    }

    /// Stops reading: the body's usage cannot be known.
    fn give_up(&mut self) {
        self.unreadable = true;
        self.mode = Mode::Skip;
        self.decoder = None;
    }

    /// True when the body could not be read (unknown or corrupt coding, a JSON
    /// body over the bound), so its usage is unknown whatever it held.
    pub fn unreadable(&self) -> bool {
        self.unreadable
    }

    /// Feeds a chunk of the body (as received, compressed or not).
    pub fn feed(&mut self, chunk: &[u8]) {
        let Some(mut decoder) = self.decoder.take() else {
            self.feed_plain(chunk);
            return;
        };
        match decoder.feed(chunk) {
            Ok(plain) => {
                self.feed_plain(plain);
                if !self.unreadable {
                    self.decoder = Some(decoder);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot decode the response to read its usage");
                self.give_up();
            }
        }
    }

    fn feed_plain(&mut self, chunk: &[u8]) {
        match &mut self.mode {
            Mode::Skip => {}
            Mode::Json(buf) => {
                if buf.len() + chunk.len() > MAX_JSON_BYTES {
                    self.overflow = true;
                    self.give_up();
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
            Mode::Sse(carry) => {
                let mut rest = chunk;
                while let Some(pos) = memchr::memchr(b'\n', rest) {
                    let (line, tail) = rest.split_at(pos);
                    rest = &tail[1..];
                    if carry.is_empty() {
                        self.text_bytes += scan_line(line, &mut self.usage);
                    } else {
                        if carry.len() + line.len() <= MAX_LINE_BYTES {
                            carry.extend_from_slice(line);
                            self.text_bytes += scan_line(carry, &mut self.usage);
                        }
                        carry.clear();
                    }
                }
                if carry.len() + rest.len() <= MAX_LINE_BYTES {
                    carry.extend_from_slice(rest);
                } else {
                    // A line this long is not usage; drop it and resync at the next newline.
                    carry.clear();
                    self.overflow = true;
                }
            }
        }
    }

    /// Finishes the body and returns what was learned.
    pub fn finish(&mut self) -> Usage {
        if let Some(mut decoder) = self.decoder.take() {
            match decoder.finish() {
                Ok(rest) => self.feed_plain(rest),
                Err(e) => {
                    tracing::warn!(error = %e, "compressed response ended early");
                    // What was read so far stands; the rest is unknown.
                    self.unreadable = self.usage.output.is_none();
                }
            }
        }
        match std::mem::replace(&mut self.mode, Mode::Skip) {
            Mode::Json(buf) => {
                // Most bodies carry usage: read just that, skipping the text.
                if let Some(u) = typed_usage(&buf) {
                    self.usage.merge(u);
                }
                if self.usage.output.is_none() {
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                        self.text_bytes += generated_len(&v);
                    }
                }
            }
            Mode::Sse(carry) => {
                if !carry.is_empty() {
                    self.text_bytes += scan_line(&carry, &mut self.usage);
                }
            }
            Mode::Skip => {}
        }
        self.usage
    }

    /// What has been learned so far (streams report usage before they end).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Output tokens estimated from the generated text seen so far (one per four
    /// bytes), for responses whose upstream reported no usage.
    pub fn estimated_output(&self) -> u64 {
        crate::request::estimate_tokens(self.text_bytes)
    }
}

/// Scans one SSE line; returns the bytes of generated text it carried.
fn scan_line(line: &[u8], usage: &mut Usage) -> usize {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(data) = line.strip_prefix(b"data:") else {
        return 0;
    };
    let data = data.strip_prefix(b" ").unwrap_or(data);
    if data.first() != Some(&b'{') {
        return 0;
    }
    if !contains(data, b"\"usage\"") {
        // The common case, a text delta: count its text without parsing it.
        return text_bytes_in(data);
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return 0;
    };
    if let Some(u) = usage_of(&v) {
        usage.merge(u);
    }
    generated_len(&v)
}

/// Parses only the `usage` objects of a JSON document.
fn typed_usage(buf: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Nested {
        usage: Option<Value>,
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        usage: Option<Value>,
        message: Option<Nested>,
        response: Option<Nested>,
    }
    let doc: Doc = serde_json::from_slice(buf).ok()?;
    let u = doc
        .usage
        .or_else(|| doc.message.and_then(|m| m.usage))
        .or_else(|| doc.response.and_then(|r| r.usage))?;
    let mut wrapper = serde_json::Map::new();
    wrapper.insert("usage".to_owned(), u);
    usage_of(&Value::Object(wrapper))
}

/// Bytes inside the string values of the keys that carry generated text in stream
/// deltas of either dialect, found by a byte scan (no parse). Escapes count as
/// their raw length: this feeds an estimate.
fn text_bytes_in(data: &[u8]) -> usize {
    const KEYS: [&[u8]; 6] = [
        b"\"content\"",
        b"\"text\"",
        b"\"delta\"",
        b"\"thinking\"",
        b"\"reasoning_content\"",
        b"\"partial_json\"",
    ];
    let mut total = 0;
    for key in KEYS {
        let mut from = 0;
        while let Some(pos) = find(&data[from..], key) {
            let mut i = from + pos + key.len();
            while i < data.len() && data[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < data.len() && data[i] == b':' {
                i += 1;
                while i < data.len() && data[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < data.len() && data[i] == b'"' {
                    i += 1;
                    let start = i;
                    while i < data.len() && data[i] != b'"' {
                        i += if data[i] == b'\\' { 2 } else { 1 };
                    }
                    total += i.min(data.len()) - start;
                }
            }
            from = i.min(data.len());
            if from >= data.len() {
                break;
            }
        }
    }
    total
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Bytes of generated text in a response body or stream event of either dialect.
fn generated_len(v: &Value) -> usize {
    let s = |x: Option<&Value>| x.and_then(Value::as_str).map_or(0, str::len);
    let mut n = 0;
    if let Some(choices) = v.get("choices").and_then(Value::as_array) {
        for c in choices {
            n += s(c.get("text"));
            for key in ["delta", "message"] {
                if let Some(m) = c.get(key) {
                    n +=
                        s(m.get("content")) + s(m.get("reasoning_content")) + s(m.get("reasoning"));
                }
            }
        }
    }
    if let Some(d) = v.get("delta") {
        // Anthropic content_block_delta, or the Responses API's text deltas.
        n += s(d.get("text")) + s(d.get("thinking")) + s(d.get("partial_json")) + s(Some(d));
    }
    if let Some(content) = v.get("content").and_then(Value::as_array) {
        for block in content {
            n += s(block.get("text")) + s(block.get("thinking"));
        }
    }
    if let Some(output) = v.get("output").and_then(Value::as_array) {
        for item in output {
            if let Some(parts) = item.get("content").and_then(Value::as_array) {
                for p in parts {
                    n += s(p.get("text"));
                }
            }
        }
    }
    n
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPENAI_SSE: &str = "data: {\"id\":\"1\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
data: {\"id\":\"1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}\n\n\
data: [DONE]\n\n";

    const ANTHROPIC_SSE: &str = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":20,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\r\n\r\n\
event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"usage\"}}\r\n\r\n\
event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":77}}\r\n\r\n\
event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";

    fn scan_split(ct: &str, body: &str, at: &[usize]) -> Usage {
        let mut s = UsageScanner::for_content_type(Some(ct));
        let bytes = body.as_bytes();
        let mut prev = 0;
        for &cut in at {
            let cut = cut.min(bytes.len()).max(prev);
            s.feed(&bytes[prev..cut]);
            prev = cut;
        }
        s.feed(&bytes[prev..]);
        s.finish()
    }

    #[test]
    fn json_bodies_of_both_dialects() {
        let o = r#"{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#;
        assert_eq!(
            scan_split("application/json", o, &[10]),
            Usage {
                input: Some(5),
                output: Some(7)
            }
        );
        let a = r#"{"type":"message","usage":{"input_tokens":3,"output_tokens":9}}"#;
        assert_eq!(
            scan_split("application/json; charset=utf-8", a, &[]),
            Usage {
                input: Some(3),
                output: Some(9)
            }
        );
        assert_eq!(scan_split("text/plain", a, &[]), Usage::default());
    }

    #[test]
    fn responses_api_completed_event() {
        let s = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":6}}}\n\n";
        assert_eq!(
            scan_split("text/event-stream", s, &[]),
            Usage {
                input: Some(4),
                output: Some(6)
            }
        );
    }

    proptest! {
        #[test]
        fn sse_usage_survives_any_split(a in 0usize..400, b in 0usize..400) {
            let (a, b) = (a.min(b), a.max(b));
            prop_assert_eq!(
                scan_split("text/event-stream", OPENAI_SSE, &[a, b]),
                Usage { input: Some(12), output: Some(34) }
            );
            prop_assert_eq!(
                scan_split("text/event-stream", ANTHROPIC_SSE, &[a, b]),
                Usage { input: Some(25), output: Some(77) }
            );
        }
    }

    #[test]
    fn output_is_estimated_from_text_when_usage_is_missing() {
        let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"abcdefgh\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"ijkl\"}}]}\n\ndata: [DONE]\n\n";
        let mut s = UsageScanner::for_content_type(Some("text/event-stream"));
        s.feed(sse.as_bytes());
        assert_eq!(s.finish(), Usage::default());
        assert_eq!(s.estimated_output(), 3);
        let json = r#"{"content":[{"type":"text","text":"abcdefghijklmnop"}]}"#;
        let mut s = UsageScanner::for_content_type(Some("application/json"));
        s.feed(json.as_bytes());
        s.finish();
        assert_eq!(s.estimated_output(), 4);
    }

    #[test]
    fn a_json_body_over_the_bound_is_unreadable() {
        let mut s = UsageScanner::for_content_type(Some("application/json"));
        let chunk = vec![b' '; 1024 * 1024];
        for _ in 0..8 {
            s.feed(&chunk);
        }
        assert!(!s.unreadable());
        s.feed(b"{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}");
        assert!(s.unreadable());
        assert_eq!(s.finish(), Usage::default());
    }

    #[test]
    fn byte_scan_counts_delta_text() {
        assert_eq!(
            text_bytes_in(br#"{"choices":[{"delta":{"content":"abc\"d"}}]}"#),
            6
        );
        assert_eq!(
            text_bytes_in(
                br#"{"type":"content_block_delta","delta":{"type":"text_delta","text": "hello"}}"#
            ),
            5
        );
        assert_eq!(
            text_bytes_in(br#"{"type":"response.output_text.delta","delta":"hey"}"#),
            3
        );
        assert_eq!(text_bytes_in(br#"{"content":"unterminated"#), 12);
        assert_eq!(text_bytes_in(b"{}"), 0);
    }

    proptest! {
        #[test]
        fn byte_scan_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = text_bytes_in(&data);
        }
    }

    #[test]
    fn every_single_byte_split() {
        for cut in 0..=ANTHROPIC_SSE.len() {
            assert_eq!(
                scan_split("text/event-stream", ANTHROPIC_SSE, &[cut]),
                Usage {
                    input: Some(25),
                    output: Some(77)
                },
                "cut at {cut}"
            );
        }
    }
}
