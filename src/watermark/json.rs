//! Rewriting complete JSON response bodies: mark the prose, add the tag.
//!
//! The body is parsed once (`serde_json` with `preserve_order`, so key order is
//! kept), the generated text fields are marked when the response is marked, and
//! a top-level object is appended:
//!
//! ```json
//! {"id": "…", "choices": […], "usage": {…}, "distill_guard": {"tag": "dg1.k1.…"}}
//! ```
//!
//! The official OpenAI and Anthropic SDKs build their response objects from known
//! fields and keep or ignore unknown top-level ones, so the extra object never
//! breaks parsing. Text fields touched, and nothing else (tool-call arguments,
//! tool inputs, reasoning and thinking blocks are never modified):
//!
//! * OpenAI chat completions: `choices[].message.content` (string form);
//! * OpenAI completions: `choices[].text`;
//! * OpenAI responses: `output[].content[]` parts of type `output_text`: `text`;
//! * Anthropic messages: `content[]` blocks of type `text`: `text`.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::issue::{Issue, TextSink};
use super::mark::TextMarker;
use super::tag::TagKind;

/// The top-level field added to JSON bodies.
pub const BODY_FIELD: &str = "distill_guard";

/// Calls `f` on every generated-text string of a complete response object, in
/// document order.
pub(crate) fn visit_texts(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(choices)) = obj.get_mut("choices") {
        for c in choices {
            if let Some(Value::String(s)) = c.get_mut("message").and_then(|m| m.get_mut("content"))
            {
                f(s);
            }
            if let Some(Value::String(s)) = c.get_mut("text") {
                f(s);
            }
        }
    }
    if let Some(Value::Array(blocks)) = obj.get_mut("content") {
        for b in blocks {
            if b.get("type").and_then(Value::as_str) == Some("text") {
                if let Some(Value::String(s)) = b.get_mut("text") {
                    f(s);
                }
            }
        }
    }
    if let Some(Value::Array(items)) = obj.get_mut("output") {
        for item in items {
            visit_output_item(item, f);
        }
    }
}

/// Calls `f` on the `output_text` parts of a Responses API output item.
pub(crate) fn visit_output_item(item: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if item.get("type").and_then(Value::as_str) != Some("message") {
        return;
    }
    if let Some(Value::Array(parts)) = item.get_mut("content") {
        for p in parts {
            visit_output_part(p, f);
        }
    }
}

/// Calls `f` on an `output_text` content part's text.
pub(crate) fn visit_output_part(part: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if part.get("type").and_then(Value::as_str) == Some("output_text") {
        if let Some(Value::String(s)) = part.get_mut("text") {
            f(s);
        }
    }
}

/// Marks (when the issue says so) and fingerprints a parsed body's texts.
fn mark_texts(v: &mut Value, issue: &Issue, sink: &mut TextSink) {
    visit_texts(v, &mut |s| {
        if let Some(plan) = &issue.mark {
            *s = TextMarker::mark(plan, s);
        }
        sink.push(s);
        sink.separate();
    });
}

/// The outcome of rewriting a JSON body.
#[derive(Debug)]
pub(crate) struct Rewritten {
    /// The new body.
    pub(crate) body: Bytes,
    /// The tag for the header (the same one as in the body).
    pub(crate) tag: String,
}

/// Rewrites a complete JSON response body. `None` when it is not a JSON object:
/// the caller then sends it unchanged with a header-only tag.
pub(crate) fn rewrite(body: &[u8], issue: &Issue, in_body: bool) -> Option<Rewritten> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    if !v.is_object() {
        return None;
    }
    let mut sink = issue.text_sink();
    mark_texts(&mut v, issue, &mut sink);
    let tag = issue.sign(TagKind::Body, Some(sink.digest()), None);
    issue.record(sink.kept());
    if !in_body && issue.mark.is_none() {
        return Some(Rewritten {
            body: Bytes::copy_from_slice(body),
            tag,
        });
    }
    if in_body {
        if let Value::Object(obj) = &mut v {
            let mut field = Map::new();
            field.insert("tag".into(), Value::String(tag.clone()));
            obj.insert(BODY_FIELD.into(), Value::Object(field));
        }
    }
    let out = serde_json::to_vec(&v).ok()?;
    Some(Rewritten {
        body: Bytes::from(out),
        tag,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::extensions::{AccountId, ClusterId};
    use crate::watermark::index::TraceIndex;
    use crate::watermark::mark::{detect_marks, MarkPayload, MarkPlan};
    use crate::watermark::tag::{verify, Keys, RequestId, SigningKey};

    pub(crate) fn issue(mark: bool) -> Issue {
        let keys =
            Keys::new(vec![SigningKey::new("k1", b"json secret").expect("key")]).expect("keys");
        let account = AccountId([4; 16]);
        let cluster = ClusterId([5; 16]);
        Issue {
            mark: mark.then(|| {
                Arc::new(MarkPlan::new(
                    &MarkPayload::new(account, cluster, 7_200_000),
                    keys.signing(),
                    3,
                ))
            }),
            keys,
            account,
            cluster,
            request_id: RequestId([6; 16]),
            issued_at_ms: 7_200_000,
            index: Some(Arc::new(TraceIndex::new(8))),
            index_text_bytes: 1 << 16,
        }
    }

    const PROSE: &str = "Rivers carry water from the mountains down to the sea, shaping valleys and plains along the way, and people have always settled near them for food and trade.";

    #[test]
    fn openai_body_keeps_key_order_and_gains_the_tag() {
        let body = format!(
            r#"{{"id":"chatcmpl-1","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"{PROSE}","tool_calls":[{{"id":"t","type":"function","function":{{"name":"f","arguments":"{{\"a\": \"b c d e f g h\"}}"}}}}]}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":3,"completion_tokens":40}}}}"#
        );
        let iss = issue(true);
        let out = rewrite(body.as_bytes(), &iss, true).expect("rewritten");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["id", "object", "choices", "usage", "distill_guard"]);
        assert_eq!(v["distill_guard"]["tag"], out.tag.as_str());
        let f = verify(&out.tag, &iss.keys).expect("valid");
        assert!(f.text_marked);
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .expect("content");
        assert_eq!(
            f.text_digest,
            Some(crate::watermark::tag::ContentDigest::of(content.as_bytes()))
        );
        assert_eq!(detect_marks(content, &iss.keys).len(), 1);
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\": \"b c d e f g h\"}",
            "tool arguments untouched"
        );
        assert_eq!(iss.index.as_ref().expect("index").len(), 1);
    }

    #[test]
    fn anthropic_and_responses_bodies() {
        let a = format!(
            r#"{{"id":"msg_1","type":"message","role":"assistant","content":[{{"type":"thinking","thinking":"{PROSE}","signature":"sig"}},{{"type":"text","text":"{PROSE}"}},{{"type":"tool_use","id":"tu","name":"f","input":{{"q":"{PROSE}"}}}}],"usage":{{"input_tokens":1,"output_tokens":2}}}}"#
        );
        let iss = issue(true);
        let out = rewrite(a.as_bytes(), &iss, true).expect("rewritten");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["content"][0]["thinking"], PROSE, "thinking untouched");
        assert_ne!(v["content"][1]["text"], PROSE, "text marked");
        assert_eq!(v["content"][2]["input"]["q"], PROSE, "tool input untouched");
        let r = format!(
            r#"{{"id":"resp_1","object":"response","output":[{{"type":"message","content":[{{"type":"output_text","text":"{PROSE}"}}]}}]}}"#
        );
        let out = rewrite(r.as_bytes(), &iss, true).expect("rewritten");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_ne!(v["output"][0]["content"][0]["text"], PROSE);
    }

    proptest::proptest! {
        #[test]
        fn any_text_survives_marking_and_reserialisation(text in "\\PC{0,300}", extra in "x_[a-z]{1,8}") {
            let body = serde_json::json!({
                "id": "x", extra.clone(): 1.5,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text.clone()}}],
            });
            let iss = issue(true);
            let out = rewrite(body.to_string().as_bytes(), &iss, true).expect("object");
            let v: Value = serde_json::from_slice(&out.body).expect("valid JSON");
            let content = v["choices"][0]["message"]["content"].as_str().expect("content");
            // Marks are only ever added: removing the mark characters gives the text
            // back (apart from mark characters the text itself contained).
            let visible = |s: &str| s.chars().filter(|c| !crate::watermark::mark::is_mark_char(*c)).collect::<String>();
            proptest::prop_assert_eq!(visible(content), visible(&text));
            proptest::prop_assert_eq!(&v[extra.as_str()], &serde_json::json!(1.5));
            proptest::prop_assert!(verify(&out.tag, &iss.keys).is_ok());
        }
    }

    #[test]
    fn non_objects_are_left_alone() {
        assert!(rewrite(b"[1,2]", &issue(false), true).is_none());
        assert!(rewrite(b"{not json", &issue(false), true).is_none());
        let out = rewrite(br#"{"a": 1}"#, &issue(false), false).expect("ok");
        assert_eq!(
            &out.body[..],
            br#"{"a": 1}"#,
            "header-only leaves bytes as they were"
        );
    }
}
