//! The `degrade` action's effect on a request: a smaller output cap and no
//! reasoning.
//!
//! The body is rewritten before it reaches the model: every output cap
//! (`max_tokens`, `max_completion_tokens`, `max_output_tokens`) above the
//! configured cap is lowered to it (and the dialect's cap is added when the
//! request set none), and the settings that ask for reasoning — `reasoning_effort`,
//! `reasoning` (Responses API) and `thinking` (Anthropic) — are removed, so the
//! model produces no reasoning content to strip. Key order is preserved.

use bytes::Bytes;
use serde_json::Value;

use crate::request::Endpoint;

const CAPS: [&str; 3] = ["max_tokens", "max_completion_tokens", "max_output_tokens"];
const REASONING: [&str; 3] = ["reasoning_effort", "reasoning", "thinking"];

/// The rewritten body, or `None` when the request already complies or is not a
/// generating JSON request.
pub fn degrade_body(endpoint: Endpoint, json: &Value, cap: u64) -> Option<Bytes> {
    if !endpoint.generates() {
        return None;
    }
    let obj = json.as_object()?;
    let mut out = obj.clone();
    let mut changed = false;
    let mut any_cap = false;
    for key in CAPS {
        if let Some(v) = out.get_mut(key) {
            any_cap = true;
            if v.as_u64().is_none_or(|n| n > cap) {
                *v = Value::from(cap);
                changed = true;
            }
        }
    }
    if !any_cap {
        let key = match endpoint {
            Endpoint::Responses => "max_output_tokens",
            _ => "max_tokens",
        };
        out.insert(key.to_owned(), Value::from(cap));
        changed = true;
    }
    for key in REASONING {
        if out.shift_remove(key).is_some() {
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    serde_json::to_vec(&Value::Object(out))
        .ok()
        .map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(endpoint: Endpoint, body: &str, cap: u64) -> Option<Value> {
        let v: Value = serde_json::from_str(body).expect("json");
        degrade_body(endpoint, &v, cap).map(|b| serde_json::from_slice(&b).expect("json out"))
    }

    #[test]
    fn caps_are_lowered_and_reasoning_removed() {
        let v = rewrite(
            Endpoint::ChatCompletions,
            r#"{"model":"m","max_completion_tokens":32000,"reasoning_effort":"high","messages":[]}"#,
            1024,
        )
        .expect("changed");
        assert_eq!(v["max_completion_tokens"], 1024);
        assert!(v.get("reasoning_effort").is_none());
        let keys: Vec<&String> = v.as_object().expect("obj").keys().collect();
        assert_eq!(keys, ["model", "max_completion_tokens", "messages"]);
        let v = rewrite(
            Endpoint::Messages,
            r#"{"model":"m","max_tokens":64000,"thinking":{"type":"enabled","budget_tokens":30000}}"#,
            2000,
        )
        .expect("changed");
        assert_eq!(v["max_tokens"], 2000);
        assert!(v.get("thinking").is_none());
    }

    #[test]
    fn missing_caps_are_added_and_small_ones_kept() {
        let v = rewrite(
            Endpoint::Responses,
            r#"{"model":"m","input":"x","reasoning":{"effort":"high"}}"#,
            500,
        )
        .expect("changed");
        assert_eq!(v["max_output_tokens"], 500);
        assert!(v.get("reasoning").is_none());
        assert!(rewrite(Endpoint::ChatCompletions, r#"{"max_tokens":100}"#, 500).is_none());
        let v =
            rewrite(Endpoint::ChatCompletions, r#"{"max_tokens":"lots"}"#, 500).expect("changed");
        assert_eq!(v["max_tokens"], 500);
        assert!(rewrite(Endpoint::Other, r#"{"max_tokens":100000}"#, 500).is_none());
    }
}
