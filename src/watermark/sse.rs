//! Rewriting Server-Sent Event streams as they flow.
//!
//! The stream is cut into lines with a bounded carry buffer (a line longer than
//! `max_line_bytes` passes through unchanged) and every complete line is sent on
//! at once: nothing waits for the end of the stream. Added, in both dialects, as
//! SSE *comment lines* (lines starting with `:`), which every SSE parser ignores —
//! the OpenAI SDK hands every event with data to its model parser, so new events
//! would not be safe there:
//!
//! * before the first line: `: dg-tag <tag>` (the header's tag, kind
//!   `stream_start`);
//! * before `data: [DONE]` (OpenAI), before `event: message_stop` (Anthropic), or
//!   at the end of the stream when neither came: `: dg-final <tag>`, a tag of kind
//!   `stream_end` carrying the SHA-256 of the generated text delivered and of every
//!   stream byte delivered before it (the guard's own comment lines excluded).
//!
//! No blank line is ever added (a blank line after an `id:` could dispatch an
//! empty event). Event names, ids, `retry:` fields, comments and line endings
//! (LF or CRLF) pass through untouched; only `data:` lines whose text is marked
//! are re-serialised. Text deltas are marked as they come, by one
//! [`TextMarker`] per choice or content block, so the marked stream carries
//! exactly the marks the same text would carry as one JSON body.
//!
//! Lines end at LF (with an optional CR before it); a stream that uses bare CR
//! line endings passes through unchanged, with the final record at its end.

use std::borrow::Cow;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::issue::{Issue, TextSink};
use super::json::{visit_output_item, visit_output_part, visit_texts};
use super::mark::TextMarker;
use super::tag::{ContentDigest, TagKind};
use crate::dialect::Dialect;

/// Prefix of the first comment line.
pub const START_PREFIX: &str = ": dg-tag ";
/// Prefix of the final record.
pub const FINAL_PREFIX: &str = ": dg-final ";
/// Most text fields marked per stream (choices × content blocks).
const MAX_MARKERS: usize = 64;

/// The streaming rewriter of one SSE response.
#[derive(Debug)]
pub(crate) struct SseRewriter {
    issue: Issue,
    dialect: Dialect,
    in_body: bool,
    max_line: usize,
    start_tag: String,
    carry: Vec<u8>,
    /// Passing an over-long line through until its end.
    raw_line: bool,
    started: bool,
    finished: bool,
    at_line_start: bool,
    markers: Vec<(u64, TextMarker)>,
    sink: TextSink,
    stream_hash: Sha256,
    stream_bytes: u64,
    recorded: bool,
}

impl SseRewriter {
    pub(crate) fn new(issue: Issue, dialect: Dialect, in_body: bool, max_line: usize) -> Self {
        let start_tag = issue.sign(TagKind::StreamStart, None, None);
        let sink = issue.text_sink();
        Self {
            issue,
            dialect,
            in_body,
            max_line,
            start_tag,
            carry: Vec::new(),
            raw_line: false,
            started: false,
            finished: false,
            at_line_start: true,
            markers: Vec::new(),
            sink,
            stream_hash: Sha256::new(),
            stream_bytes: 0,
            recorded: false,
        }
    }

    /// The tag for the response header.
    pub(crate) fn start_tag(&self) -> &str {
        &self.start_tag
    }

    fn deliver(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.stream_hash.update(bytes);
        self.stream_bytes += bytes.len() as u64;
        self.at_line_start = bytes.last() == Some(&b'\n');
        out.extend_from_slice(bytes);
    }

    fn ensure_started(&mut self, newline: &[u8], out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            if self.in_body {
                out.extend_from_slice(START_PREFIX.as_bytes());
                out.extend_from_slice(self.start_tag.as_bytes());
                out.extend_from_slice(newline);
            }
        }
    }

    fn emit_final(&mut self, newline: &[u8], out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if !self.in_body || !self.started {
            return;
        }
        let stream = (
            ContentDigest::from_sha256(self.stream_hash.clone().finalize().as_slice()),
            self.stream_bytes,
        );
        let tag = self
            .issue
            .sign(TagKind::StreamEnd, Some(self.sink.digest()), Some(stream));
        out.extend_from_slice(FINAL_PREFIX.as_bytes());
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(newline);
    }

    /// Rewrites a chunk of the stream, appending what can be sent now to `out`.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&b| b == b'\n');
            if self.raw_line {
                let end = newline.map_or(chunk.len(), |p| p + 1);
                self.deliver(&chunk[..end], out);
                self.raw_line = newline.is_none();
                chunk = &chunk[end..];
                continue;
            }
            match newline {
                Some(p) => {
                    let (line, rest) = chunk.split_at(p + 1);
                    chunk = rest;
                    if self.carry.len() + line.len() > self.max_line {
                        self.overlong(line, out);
                    } else if self.carry.is_empty() {
                        self.line(line, out);
                    } else {
                        let mut full = std::mem::take(&mut self.carry);
                        full.extend_from_slice(line);
                        self.line(&full, out);
                        full.clear();
                        self.carry = full;
                    }
                }
                None => {
                    if self.carry.len() + chunk.len() > self.max_line {
                        self.overlong(chunk, out);
                        self.raw_line = true;
                    } else {
                        self.carry.extend_from_slice(chunk);
                    }
                    return;
                }
            }
        }
    }

    /// Sends the carried start of an over-long line and `more` unchanged.
    fn overlong(&mut self, more: &[u8], out: &mut Vec<u8>) {
        self.ensure_started(b"\n", out);
        let carried = std::mem::take(&mut self.carry);
        self.deliver(&carried, out);
        self.deliver(more, out);
    }

    /// The end of the stream: flushes a last unterminated line and adds the final
    /// record if it was not sent yet.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.carry.is_empty() {
            let last = std::mem::take(&mut self.carry);
            self.line(&last, out);
        }
        if self.started && !self.finished {
            if !self.at_line_start && self.in_body {
                out.push(b'\n');
            }
            self.emit_final(b"\n", out);
        }
        self.record();
    }

    /// Adds the streamed text to the index, once.
    pub(crate) fn record(&mut self) {
        if !self.recorded {
            self.recorded = true;
            self.issue.record(self.sink.kept());
        }
    }

    /// One line, with its terminator (none for a last unterminated line).
    fn line(&mut self, mut line: &[u8], out: &mut Vec<u8>) {
        if !self.started {
            if let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF") {
                // A byte-order mark must stay the stream's first bytes.
                self.deliver(b"\xEF\xBB\xBF", out);
                line = rest;
            }
        }
        let (content, newline): (&[u8], &[u8]) = if let Some(c) = line.strip_suffix(b"\r\n") {
            (c, b"\r\n")
        } else if let Some(c) = line.strip_suffix(b"\n") {
            (c, b"\n")
        } else {
            (line, b"")
        };
        let nl: &[u8] = if newline.is_empty() { b"\n" } else { newline };
        self.ensure_started(nl, out);
        let is_end = match self.dialect {
            Dialect::OpenAi => matches!(content, b"data: [DONE]" | b"data:[DONE]"),
            Dialect::Anthropic => {
                matches!(content, b"event: message_stop" | b"event:message_stop")
            }
        };
        if is_end {
            if !self.at_line_start && self.in_body {
                out.push(b'\n');
            }
            self.emit_final(nl, out);
        }
        match self.data_line(content) {
            Some(rewritten) => {
                let mut full = rewritten;
                full.extend_from_slice(newline);
                self.deliver(&full, out);
            }
            None => self.deliver(line, out),
        }
    }

    /// A `data:` line with marked text, re-serialised; `None` to send it as is.
    fn data_line(&mut self, content: &[u8]) -> Option<Vec<u8>> {
        let data = content.strip_prefix(b"data:")?;
        let prefix_len = if data.first() == Some(&b' ') { 6 } else { 5 };
        let payload = &content[prefix_len..];
        if payload.first() != Some(&b'{') {
            return None;
        }
        if !(contains(payload, b"\"content\"")
            || contains(payload, b"\"text\"")
            || contains(payload, b"\"delta\""))
        {
            return None;
        }
        if self.issue.mark.is_none() {
            // Nothing to rewrite: only collect the text, without building a `Value`.
            if let Ok(ev) = serde_json::from_slice::<FastEvent<'_>>(payload) {
                ev.collect(&mut self.sink);
                return None;
            }
        }
        let mut v: Value = serde_json::from_slice(payload).ok()?;
        if !self.event(&mut v) {
            return None;
        }
        let mut out = content[..prefix_len].to_vec();
        serde_json::to_writer(&mut out, &v).ok()?;
        Some(out)
    }

    /// Marks and collects the text of one event; true when it changed.
    fn event(&mut self, v: &mut Value) -> bool {
        let mut changed = false;
        if let Some(Value::Array(choices)) = v.get_mut("choices") {
            for (i, c) in choices.iter_mut().enumerate() {
                let key = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64) & 0xffff;
                if let Some(Value::String(s)) =
                    c.get_mut("delta").and_then(|d| d.get_mut("content"))
                {
                    changed |= self.stream_text(key, s);
                }
                if let Some(Value::String(s)) = c.get_mut("text") {
                    changed |= self.stream_text(key, s);
                }
            }
        }
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let index = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0) & 0xffff;
        match ty.as_str() {
            "content_block_delta" => {
                let key = (1 << 40) | index(v, "index");
                if let Some(d) = v.get_mut("delta") {
                    if d.get("type").and_then(Value::as_str) == Some("text_delta") {
                        if let Some(Value::String(s)) = d.get_mut("text") {
                            changed |= self.stream_text(key, s);
                        }
                    }
                }
            }
            "content_block_start" => {
                let key = (1 << 40) | index(v, "index");
                if let Some(b) = v.get_mut("content_block") {
                    if b.get("type").and_then(Value::as_str) == Some("text") {
                        if let Some(Value::String(s)) = b.get_mut("text") {
                            changed |= self.stream_text(key, s);
                        }
                    }
                }
            }
            "response.output_text.delta" => {
                let key = (1 << 41) | index(v, "output_index") << 16 | index(v, "content_index");
                if let Some(Value::String(s)) = v.get_mut("delta") {
                    changed |= self.stream_text(key, s);
                }
            }
            // Events repeating the full text so far: marked afresh, which gives the
            // same marks as the deltas, and not collected twice.
            "response.output_text.done" => {
                if let Some(Value::String(s)) = v.get_mut("text") {
                    changed |= self.full_text(s);
                }
            }
            "response.content_part.added" | "response.content_part.done" => {
                if let Some(p) = v.get_mut("part") {
                    visit_output_part(p, &mut |s| changed |= self.full_text(s));
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                if let Some(item) = v.get_mut("item") {
                    visit_output_item(item, &mut |s| changed |= self.full_text(s));
                }
            }
            t if t.starts_with("response.") => {
                if let Some(r) = v.get_mut("response") {
                    visit_texts(r, &mut |s| changed |= self.full_text(s));
                }
            }
            _ => {}
        }
        changed
    }

    fn stream_text(&mut self, key: u64, s: &mut String) -> bool {
        let mut changed = false;
        if let Some(plan) = &self.issue.mark {
            let at = match self.markers.iter().position(|(k, _)| *k == key) {
                Some(i) => Some(i),
                None if self.markers.len() < MAX_MARKERS => {
                    self.markers.push((key, TextMarker::new(plan.clone())));
                    Some(self.markers.len() - 1)
                }
                None => None,
            };
            if let Some(i) = at {
                let mut out = String::with_capacity(s.len() + 40);
                self.markers[i].1.push(s, &mut out);
                if out.len() != s.len() {
                    *s = out;
                    changed = true;
                }
            }
        }
        self.sink.push(s);
        changed
    }

    fn full_text(&self, s: &mut String) -> bool {
        match &self.issue.mark {
            Some(plan) => {
                let marked = TextMarker::mark(plan, s);
                let changed = marked.len() != s.len();
                *s = marked;
                changed
            }
            None => false,
        }
    }
}

/// The text-bearing fields of a stream event, borrowed where possible: what
/// [`SseRewriter::event`] collects when nothing is marked. Any type mismatch
/// makes the caller fall back to the general path.
#[derive(serde::Deserialize)]
struct FastEvent<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<FastChoice<'a>>>,
    #[serde(rename = "type", default, borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    content_block: Option<Value>,
}

#[derive(serde::Deserialize)]
struct FastChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<FastDelta<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct FastDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

impl FastEvent<'_> {
    fn collect(&self, sink: &mut TextSink) {
        for c in self.choices.iter().flatten() {
            if let Some(t) = c.delta.as_ref().and_then(|d| d.content.as_deref()) {
                sink.push(t);
            }
            if let Some(t) = c.text.as_deref() {
                sink.push(t);
            }
        }
        let text_of = |v: &Option<Value>, ty: &str| {
            v.as_ref()
                .filter(|d| d.get("type").and_then(Value::as_str) == Some(ty))
                .and_then(|d| d.get("text"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let text = match self.ty.as_deref() {
            Some("content_block_delta") => text_of(&self.delta, "text_delta"),
            Some("content_block_start") => text_of(&self.content_block, "text"),
            Some("response.output_text.delta") => self
                .delta
                .as_ref()
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        if let Some(t) = text {
            sink.push(&t);
        }
    }
}

impl Drop for SseRewriter {
    fn drop(&mut self) {
        // A stream cut short (client gone) still indexes what it delivered.
        self.record();
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::json::tests::issue;
    use crate::watermark::mark::{detect_marks, strip_marks};
    use crate::watermark::tag::verify;
    use proptest::prelude::*;

    pub(crate) const OPENAI: &str = ": keep-alive\n\
id: 1\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
id: 2\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Rivers carry water from the mount\"}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ains down to the sea, shaping valleys and plains along the way \"}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"q\\\": \\\"a b c d e f\\\"}\"}}]}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"and people have always settled near them for food and trade.\"},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

    pub(crate) const ANTHROPIC: &str = "event: message_start\r\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\r\n\r\n\
event: content_block_start\r\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n\
: ping comment\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Rivers carry water from the mountains down to the sea, \"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"shaping valleys and plains along the way and people have always settled near them.\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\": \\\"a b c d e f\"}}\r\n\r\n\
event: message_delta\r\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\r\n\r\n\
event: message_stop\r\n\
data: {\"type\":\"message_stop\"}\r\n\r\n";

    fn run(
        input: &str,
        dialect: Dialect,
        mark: bool,
        cuts: &[usize],
    ) -> (String, crate::watermark::issue::Issue) {
        let iss = issue(mark);
        let mut rw = SseRewriter::new(iss.clone(), dialect, true, 4096);
        let mut out = Vec::new();
        let bytes = input.as_bytes();
        let mut prev = 0;
        for &c in cuts {
            let c = c.clamp(prev, bytes.len());
            rw.feed(&bytes[prev..c], &mut out);
            prev = c;
        }
        rw.feed(&bytes[prev..], &mut out);
        rw.finish(&mut out);
        (String::from_utf8(out).expect("utf-8"), iss)
    }

    /// The stream with the guard's comment lines removed and marks stripped.
    fn without_guard_lines(s: &str) -> String {
        let mut out = String::new();
        for line in s.split_inclusive('\n') {
            if !line.starts_with(": dg-") {
                out.push_str(line);
            }
        }
        out
    }

    fn texts(s: &str) -> String {
        let mut out = String::new();
        for line in s.lines() {
            if let Some(d) = line.strip_prefix("data: ") {
                if let Ok(v) = serde_json::from_str::<Value>(d) {
                    if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                        out.push_str(t);
                    }
                    if v["delta"]["type"] == "text_delta" {
                        out.push_str(v["delta"]["text"].as_str().unwrap_or(""));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn openai_stream_gets_start_and_final_records() {
        let (out, iss) = run(OPENAI, Dialect::OpenAi, false, &[]);
        assert!(out.starts_with(START_PREFIX), "{out}");
        assert_eq!(
            without_guard_lines(&out),
            OPENAI,
            "untouched without a text mark"
        );
        let final_at = out.find(FINAL_PREFIX).expect("final record");
        let done_at = out.find("data: [DONE]").expect("done");
        assert!(final_at < done_at);
        let line = out[final_at..].lines().next().expect("line");
        let f = verify(line, &iss.keys).expect("valid final record");
        assert_eq!(f.kind, TagKind::StreamEnd);
        let streamed = &without_guard_lines(&out)[..OPENAI.find("data: [DONE]").expect("done")];
        assert_eq!(
            f.stream_digest,
            Some(ContentDigest::of(streamed.as_bytes()))
        );
        assert_eq!(f.stream_bytes, Some(streamed.len() as u64));
        assert_eq!(
            f.text_digest,
            Some(ContentDigest::of(texts(OPENAI).as_bytes()))
        );
        assert!(!out.contains("\n\n\n"), "no blank line added");
    }

    #[test]
    fn anthropic_stream_keeps_crlf_comments_and_marks_only_text() {
        let (out, iss) = run(ANTHROPIC, Dialect::Anthropic, true, &[]);
        let final_at = out.find(FINAL_PREFIX).expect("final");
        assert!(final_at < out.find("event: message_stop").expect("stop"));
        assert!(out.contains(": ping comment\r\n"));
        assert!(
            !out.replace("\r\n", "").contains('\n'),
            "CRLF kept throughout"
        );
        let text = texts(&out);
        assert_eq!(strip_marks(&text), texts(ANTHROPIC));
        assert_eq!(detect_marks(&text, &iss.keys).len(), 1, "{text:?}");
        assert!(
            out.contains("{\\\"q\\\": \\\"a b c d e f\""),
            "tool input untouched"
        );
        // Everything but the marked data lines is byte-identical.
        let stripped: String = strip_marks(&without_guard_lines(&out)).into_owned();
        for (a, b) in stripped.lines().zip(ANTHROPIC.lines()) {
            if !a.contains("text_delta") {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn stream_without_done_gets_the_record_at_the_end() {
        let input = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello there my good friend how are you\"}\n\nevent: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"text\":\"Hello there my good friend how are you\"}\n\ndata: {\"unterminated\":true}";
        let (out, iss) = run(input, Dialect::OpenAi, true, &[]);
        let last = out.lines().last().expect("line");
        assert!(last.starts_with(FINAL_PREFIX), "{out}");
        verify(last, &iss.keys).expect("valid");
        assert!(out.contains("data: {\"unterminated\":true}\n: dg-final"));
        // The done event's full text carries the same marks as the deltas.
        let mut delta = String::new();
        let mut done = String::new();
        for line in out.lines() {
            if let Some(d) = line.strip_prefix("data: ") {
                let v: Value = serde_json::from_str(d).expect("json");
                if let Some(t) = v["delta"].as_str() {
                    delta.push_str(t);
                }
                if let Some(t) = v["text"].as_str() {
                    done.push_str(t);
                }
            }
        }
        assert_eq!(delta, done);
        assert_ne!(delta, "Hello there my good friend how are you");
    }

    #[test]
    fn a_byte_order_mark_stays_first() {
        let input = format!("\u{FEFF}{OPENAI}");
        let (out, _) = run(&input, Dialect::OpenAi, false, &[1]);
        assert!(out.starts_with("\u{FEFF}: dg-tag "), "{out}");
        assert_eq!(format!("\u{FEFF}{}", without_guard_lines(&out[3..])), input);
    }

    #[test]
    fn the_fast_path_collects_the_same_text() {
        let responses = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi \\u00e9t\\u00e9 there\"}\n\n";
        for (input, dialect) in [
            (OPENAI, Dialect::OpenAi),
            (ANTHROPIC, Dialect::Anthropic),
            (responses, Dialect::OpenAi),
        ] {
            let mut fast = SseRewriter::new(issue(false), dialect, true, 4096);
            let mut general = SseRewriter::new(issue(false), dialect, true, 4096);
            let mut out = Vec::new();
            fast.feed(input.as_bytes(), &mut out);
            // The general path, event by event, as the marked mode uses it.
            for line in input.lines() {
                if let Some(d) = line.strip_prefix("data: ") {
                    if let Ok(mut v) = serde_json::from_str::<Value>(d) {
                        general.event(&mut v);
                    }
                }
            }
            assert!(!fast.sink.kept().is_empty());
            assert_eq!(fast.sink.kept(), general.sink.kept());
            assert_eq!(fast.sink.digest(), general.sink.digest());
        }
    }

    #[test]
    fn overlong_lines_pass_through() {
        let iss = issue(true);
        let mut rw = SseRewriter::new(iss, Dialect::OpenAi, true, 1024);
        let long = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
            "word ".repeat(400)
        );
        let input = format!("{long}data: [DONE]\n\n");
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(100) {
            rw.feed(piece, &mut out);
        }
        rw.finish(&mut out);
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.contains(&long), "long line unchanged");
        assert!(out.contains(FINAL_PREFIX));
    }

    #[test]
    fn every_single_byte_split_gives_the_same_stream() {
        for (input, dialect) in [(OPENAI, Dialect::OpenAi), (ANTHROPIC, Dialect::Anthropic)] {
            let (whole, _) = run(input, dialect, true, &[]);
            for cut in 0..=input.len() {
                let (split, _) = run(input, dialect, true, &[cut]);
                assert_eq!(split, whole, "cut at {cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_splits_give_the_same_stream(mut cuts in proptest::collection::vec(0usize..1200, 0..8), mark in any::<bool>(), anthropic in any::<bool>()) {
            cuts.sort_unstable();
            let (input, dialect) = if anthropic { (ANTHROPIC, Dialect::Anthropic) } else { (OPENAI, Dialect::OpenAi) };
            let (whole, _) = run(input, dialect, mark, &[]);
            let (split, _) = run(input, dialect, mark, &cuts);
            prop_assert_eq!(split, whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_are_preserved_without_marks(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..600) {
            let iss = issue(false);
            let mut rw = SseRewriter::new(iss, Dialect::OpenAi, false, 1024);
            let mut out = Vec::new();
            let cut = cut.min(data.len());
            rw.feed(&data[..cut], &mut out);
            rw.feed(&data[cut..], &mut out);
            rw.finish(&mut out);
            prop_assert_eq!(out, data);
        }
    }
}
