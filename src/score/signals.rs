//! Per-request content signals, each in `0..=1`, read from the parsed body and
//! the headers. They are cheap: only the system prompt and the head and tail of
//! the last user turn are searched.

use http::HeaderMap;
use serde_json::Value;

use crate::request::RequestInfo;

/// Bytes searched at each end of a text.
const WINDOW: usize = 2048;

/// Phrases that ask the model to write out its reasoning.
const COT_PHRASES: &[&str] = &[
    "step by step",
    "step-by-step",
    "chain of thought",
    "chain-of-thought",
    "full reasoning",
    "your reasoning",
    "reasoning process",
    "thought process",
    "show your work",
    "think through",
    "think carefully",
    "explain each step",
    "every step",
    "all intermediate steps",
    "reason through",
];

/// Words typical of coding, agentic and planning tasks.
const FOCUS_PHRASES: &[&str] = &[
    "```",
    "def ",
    "function",
    "implement",
    "algorithm",
    "refactor",
    "debug",
    "unit test",
    "compile",
    "stack trace",
    "python",
    "typescript",
    "javascript",
    "rust",
    "sql",
    "api",
    "plan",
    "tool",
    "agent",
];

/// The per-request signals the engine averages, in the order of
/// [`crate::cluster::Observation::signals`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    /// Chain-of-thought elicitation.
    pub cot: f32,
    /// Coding, agentic tool use or planning.
    pub focus: f32,
    /// `logprobs` / `top_logprobs` / `logit_bias`.
    pub probing: f32,
    /// Contradictory client headers.
    pub inconsistency: f32,
}

impl Signals {
    /// As the array the engine stores.
    pub fn to_array(self) -> [f32; crate::cluster::SIGNALS] {
        [self.cot, self.focus, self.probing, self.inconsistency]
    }

    /// Reads the signals of one request.
    pub fn of(info: &RequestInfo, headers: &HeaderMap) -> Self {
        let mut s = Signals {
            inconsistency: inconsistency(headers),
            ..Default::default()
        };
        let Some(json) = &info.json else {
            return s;
        };
        let mut text = String::new();
        for key in ["system", "instructions"] {
            if let Some(v) = json.get(key) {
                push_windows(&mut text, v);
            }
        }
        let mut tools = json
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty());
        if let Some(msgs) = json.get("messages").or_else(|| json.get("input")) {
            match msgs {
                Value::Array(items) => {
                    if let Some(sys) = items.iter().find(|m| {
                        matches!(
                            m.get("role").and_then(Value::as_str),
                            Some("system" | "developer")
                        )
                    }) {
                        if let Some(c) = sys.get("content") {
                            push_windows(&mut text, c);
                        }
                    }
                    if let Some(last) = items
                        .iter()
                        .rev()
                        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                    {
                        if let Some(c) = last.get("content") {
                            push_windows(&mut text, c);
                        }
                    }
                    tools |= items.iter().any(|m| {
                        matches!(m.get("role").and_then(Value::as_str), Some("tool"))
                            || m.get("tool_calls").is_some()
                    });
                }
                other => push_windows(&mut text, other),
            }
        } else if let Some(p) = json.get("prompt") {
            push_windows(&mut text, p);
        }
        let lower = text.to_lowercase();
        if COT_PHRASES.iter().any(|p| lower.contains(p)) {
            s.cot = 1.0;
        }
        let hits = FOCUS_PHRASES.iter().filter(|p| lower.contains(*p)).count();
        s.focus = if tools {
            1.0
        } else {
            (hits as f32 / 2.0).min(1.0)
        };
        let logprobs = json
            .get("logprobs")
            .is_some_and(|v| v.as_bool() == Some(true) || v.as_u64().is_some_and(|n| n > 0));
        let top = json
            .get("top_logprobs")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            > 0;
        let bias = json
            .get("logit_bias")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        if logprobs || top || bias {
            s.probing = 1.0;
        }
        s
    }
}

/// Appends the head and tail windows of the text in a content value.
fn push_windows(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => {
            if s.len() <= 2 * WINDOW {
                out.push_str(s);
            } else {
                out.push_str(head(s, WINDOW));
                out.push('\n');
                out.push_str(tail(s, WINDOW));
            }
            out.push('\n');
        }
        Value::Array(parts) => {
            let n = parts.len();
            for (i, p) in parts.iter().enumerate() {
                // First and last parts only: enough for a template's head and tail.
                if i == 0 || i + 1 == n {
                    if let Some(t) = p.get("text") {
                        push_windows(out, t);
                    } else if p.is_string() {
                        push_windows(out, p);
                    }
                }
            }
        }
        _ => {}
    }
}

fn head(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// 1 when the user agent names an official SDK but the SDK's own headers are
/// missing or name another language, or a generic client sends SDK headers.
fn inconsistency(headers: &HeaderMap) -> f32 {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let ua = get("user-agent").to_ascii_lowercase();
    let lang = get("x-stainless-lang").to_ascii_lowercase();
    let has_stainless = !lang.is_empty() || headers.contains_key("x-stainless-package-version");
    let sdk = ua.starts_with("openai/") || ua.starts_with("anthropic/");
    if sdk {
        if !has_stainless {
            return 1.0;
        }
        let ua_lang = if ua.contains("python") {
            "python"
        } else if ua.contains("js") || ua.contains("node") {
            "js"
        } else {
            ""
        };
        if !ua_lang.is_empty() && !lang.is_empty() && !lang.contains(ua_lang) {
            return 1.0;
        }
        return 0.0;
    }
    let generic = ua.starts_with("curl/")
        || ua.starts_with("python-requests/")
        || ua.starts_with("mozilla/")
        || ua.is_empty();
    if generic && has_stainless {
        return 1.0;
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn info(body: &str) -> RequestInfo {
        RequestInfo::parse("/v1/chat/completions", Bytes::from(body.to_owned()))
    }

    #[test]
    fn cot_probing_and_focus_are_read() {
        let i = info(
            r#"{"model":"m","logit_bias":{"50256":-100},"messages":[{"role":"system","content":"You are a coder."},{"role":"user","content":"Implement the algorithm in Python. Think step by step and show your full reasoning."}]}"#,
        );
        let s = Signals::of(&i, &HeaderMap::new());
        assert_eq!(s.cot, 1.0);
        assert_eq!(s.probing, 1.0);
        assert_eq!(s.focus, 1.0);
        let plain = Signals::of(
            &info(r#"{"messages":[{"role":"user","content":"hello there"}]}"#),
            &HeaderMap::new(),
        );
        assert_eq!(plain.cot, 0.0);
        assert_eq!(plain.probing, 0.0);
        assert_eq!(plain.focus, 0.0);
    }

    #[test]
    fn long_and_odd_bodies_do_not_panic() {
        let long = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"{}é step by step"}}]}}]}}"#,
            "é".repeat(5000)
        );
        assert_eq!(Signals::of(&info(&long), &HeaderMap::new()).cot, 1.0);
        for body in [
            "",
            "null",
            "[1]",
            r#"{"messages":7}"#,
            r#"{"input":"plan it"}"#,
        ] {
            let _ = Signals::of(&info(body), &HeaderMap::new());
        }
    }

    #[test]
    fn sdk_user_agent_without_sdk_headers_is_inconsistent() {
        let mut h = HeaderMap::new();
        h.insert("user-agent", "OpenAI/Python 1.40.0".parse().expect("hv"));
        assert_eq!(inconsistency(&h), 1.0);
        h.insert("x-stainless-lang", "python".parse().expect("hv"));
        assert_eq!(inconsistency(&h), 0.0);
        h.insert("x-stainless-lang", "js".parse().expect("hv"));
        assert_eq!(inconsistency(&h), 1.0);
        let mut c = HeaderMap::new();
        c.insert("user-agent", "curl/8.5.0".parse().expect("hv"));
        assert_eq!(inconsistency(&c), 0.0);
        c.insert("x-stainless-lang", "python".parse().expect("hv"));
        assert_eq!(inconsistency(&c), 1.0);
    }
}
