//! The request-shape fingerprint: how the automation builds its JSON.
//!
//! Key order survives parsing because the crate's `serde_json` keeps insertion
//! order (`preserve_order`). Numbers are kept only where they are part of a
//! client's configuration (temperature, top_p, n); sizes are bucketed on a log2
//! scale so that `max_tokens: 4000` and `4096` look alike.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::body::{Conversation, Role};
use super::hash::{seed, StableHasher};

/// Keys hashed per object in the key order (a body with more is still hashed,
/// up to this many keys).
const MAX_KEYS: usize = 64;
/// JSON nodes hashed for the tool-schema hash.
const MAX_SCHEMA_NODES: usize = 20_000;
/// Depth to which tool schemas are hashed.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Longest role-sequence text kept.
const MAX_ROLES_TEXT: usize = 200;

/// `⌈log2(v + 1)⌉`: 0 → 0, 1 → 1, 2–3 → 2, 4–7 → 3, …, 4096 → 13.
pub fn log2_bucket(v: u64) -> u8 {
    (64 - v.leading_zeros()) as u8
}

/// The generation parameters, as sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Params {
    /// `model`, at most 64 characters.
    pub model: Option<String>,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// Log2 bucket ([`log2_bucket`]) of `max_tokens`, `max_completion_tokens` or
    /// `max_output_tokens`.
    pub max_tokens_bucket: Option<u8>,
    /// The output cap itself (`max_tokens`, `max_completion_tokens` or
    /// `max_output_tokens`).
    pub max_tokens: Option<u64>,
    /// Anthropic `thinking.budget_tokens`, when thinking is on with a budget.
    pub thinking_budget: Option<u64>,
    /// `stream`, when present (an explicit `false` differs from absent).
    pub stream: Option<bool>,
    /// `n`.
    pub n: Option<u64>,
    /// `reasoning_effort` (chat) or `reasoning.effort` (responses), lowercase.
    pub reasoning_effort: Option<String>,
    /// Log2 bucket of Anthropic `thinking.budget_tokens` (0 when thinking is on
    /// without a budget).
    pub thinking_budget_bucket: Option<u8>,
    /// `response_format.type` (chat) or `text.format.type` (responses).
    pub response_format: Option<String>,
    /// `logprobs` requested (true, or a number for completions).
    pub logprobs: bool,
    /// `top_logprobs`.
    pub top_logprobs: Option<u64>,
    /// A non-empty `logit_bias`.
    pub logit_bias: bool,
}

impl Params {
    fn read(body: &Map<String, Value>) -> Self {
        // One pass over the top-level keys instead of a hashed lookup per key.
        let mut p = Params::default();
        let (mut max_tokens, mut effort, mut reasoning, mut text) = (None, None, None, None);
        for (k, v) in body {
            match k.as_str() {
                "model" => p.model = v.as_str().map(|s| short(s, 64)),
                "temperature" => p.temperature = v.as_f64(),
                "top_p" => p.top_p = v.as_f64(),
                "max_tokens" | "max_completion_tokens" | "max_output_tokens" => {
                    max_tokens = max_tokens.or(v.as_u64());
                }
                "stream" => p.stream = v.as_bool(),
                "n" => p.n = v.as_u64(),
                "reasoning_effort" => effort = Some(v),
                "reasoning" => reasoning = Some(v),
                "thinking" => {
                    p.thinking_budget_bucket = thinking(v);
                    if p.thinking_budget_bucket.is_some() {
                        p.thinking_budget = v.get("budget_tokens").and_then(Value::as_u64);
                    }
                }
                "response_format" => {
                    p.response_format = v.get("type").unwrap_or(v).as_str().map(|f| short(f, 32));
                }
                "text" => text = Some(v),
                "logprobs" => {
                    p.logprobs = match v {
                        Value::Bool(b) => *b,
                        Value::Number(_) => true,
                        _ => false,
                    };
                }
                "top_logprobs" => p.top_logprobs = v.as_u64(),
                "logit_bias" => p.logit_bias = v.as_object().is_some_and(|m| !m.is_empty()),
                _ => {}
            }
        }
        p.max_tokens_bucket = max_tokens.map(log2_bucket);
        p.max_tokens = max_tokens;
        p.reasoning_effort = effort
            .or_else(|| reasoning.and_then(|r| r.get("effort")))
            .and_then(Value::as_str)
            .map(|e| short(e, 16).to_ascii_lowercase());
        if p.response_format.is_none() {
            p.response_format = text
                .and_then(|t| t.get("format")?.get("type"))
                .and_then(Value::as_str)
                .map(|f| short(f, 32));
        }
        p
    }

    /// True when the request asks for high reasoning effort or a thinking budget.
    pub fn reasoning_requested(&self) -> bool {
        self.thinking_budget_bucket.is_some()
            || self
                .reasoning_effort
                .as_deref()
                .is_some_and(|e| matches!(e, "high" | "xhigh" | "max"))
    }

    /// True when the request probes the output distribution (logprobs,
    /// top_logprobs, logit_bias).
    pub fn probes_distribution(&self) -> bool {
        self.logprobs || self.top_logprobs.is_some() || self.logit_bias
    }

    fn hash(&self) -> u64 {
        let mut h = StableHasher::new(seed::FIELD);
        let f = |x: Option<f64>| x.map_or(u64::MAX, |v| (v * 1000.0).round() as i64 as u64);
        h.write_opt_str(self.model.as_deref());
        h.write_u64(f(self.temperature));
        h.write_u64(f(self.top_p));
        h.write_u64(self.max_tokens_bucket.map_or(u64::MAX, u64::from));
        h.write_u64(self.stream.map_or(2, u64::from));
        h.write_u64(self.n.unwrap_or(u64::MAX));
        h.write_opt_str(self.reasoning_effort.as_deref());
        h.write_u64(self.thinking_budget_bucket.map_or(u64::MAX, u64::from));
        h.write_opt_str(self.response_format.as_deref());
        h.write_u64(u64::from(self.logprobs));
        h.write_u64(self.top_logprobs.unwrap_or(u64::MAX));
        h.write_u64(u64::from(self.logit_bias));
        h.finish()
    }
}

/// The tools a request declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tools {
    /// Number of tools (up to `fingerprint.max_items`).
    pub count: u32,
    /// Hash of the tool names in order.
    pub names_hash: u64,
    /// Hash of the full definitions (names, descriptions, schemas) in order.
    pub schema_hash: u64,
}

/// How the request is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapeFingerprint {
    /// Hash of the top-level keys in order, then the first message's keys in order.
    pub key_order: u64,
    /// The generation parameters.
    pub params: Params,
    /// Hash of [`ShapeFingerprint::params`].
    pub params_hash: u64,
    /// The declared tools, if any.
    pub tools: Option<Tools>,
    /// The message roles, collapsed: consecutive repeats merged and repeated
    /// cycles written once, e.g. `system,(user,assistant)*,user`.
    pub roles: String,
    /// Number of messages (or input items).
    pub messages: u32,
}

impl ShapeFingerprint {
    pub(crate) fn compute(body: &Map<String, Value>, conv: &Conversation<'_>) -> Self {
        let mut h = StableHasher::new(seed::FIELD);
        hash_keys(&mut h, body);
        match conv.first_message {
            Some(m) => hash_keys(&mut h, m),
            None => h.write_u64(u64::MAX),
        }
        let params = Params::read(body);
        let params_hash = params.hash();
        let tools = (!conv.tools.is_empty()).then(|| tools(conv.tools));
        Self {
            key_order: h.finish(),
            params,
            params_hash,
            tools,
            roles: collapse_roles(&conv.roles),
            messages: u32::try_from(conv.messages).unwrap_or(u32::MAX),
        }
    }
}

/// The thinking bucket of Anthropic `thinking`: `None` when absent or disabled,
/// 0 when on without a budget.
fn thinking(t: &Value) -> Option<u8> {
    let on = match t.get("type").and_then(Value::as_str) {
        Some("disabled") => false,
        Some(_) => true,
        None => t.is_object(),
    };
    on.then(|| {
        t.get("budget_tokens")
            .and_then(Value::as_u64)
            .map_or(0, log2_bucket)
    })
}

fn short(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

fn hash_keys(h: &mut StableHasher, m: &Map<String, Value>) {
    h.write_u64(m.len() as u64);
    for k in m.keys().take(MAX_KEYS) {
        h.write_str(k);
    }
}

fn tools(list: &[Value]) -> Tools {
    let mut names = StableHasher::new(seed::FIELD);
    let mut schema = StableHasher::new(seed::FIELD);
    let mut budget = MAX_SCHEMA_NODES;
    for t in list {
        let name = t
            .pointer("/function/name")
            .or_else(|| t.get("name"))
            .or_else(|| t.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        names.write_str(name);
        hash_value(&mut schema, t, 0, &mut budget);
    }
    Tools {
        count: u32::try_from(list.len()).unwrap_or(u32::MAX),
        names_hash: names.finish(),
        schema_hash: schema.finish(),
    }
}

/// Hashes a JSON value structurally, keys in their order, within a node budget.
fn hash_value(h: &mut StableHasher, v: &Value, depth: usize, budget: &mut usize) {
    if *budget == 0 || depth > MAX_SCHEMA_DEPTH {
        h.write_u64(0xdead);
        return;
    }
    *budget -= 1;
    match v {
        Value::Null => h.write_u64(1),
        Value::Bool(b) => h.write_u64(2 + u64::from(*b)),
        Value::Number(n) => {
            h.write_u64(4);
            h.write_u64(n.as_f64().map_or(0, f64::to_bits));
        }
        Value::String(s) => {
            h.write_u64(5);
            h.write_str(s);
        }
        Value::Array(a) => {
            h.write_u64(6);
            h.write_u64(a.len() as u64);
            for x in a {
                hash_value(h, x, depth + 1, budget);
            }
        }
        Value::Object(o) => {
            h.write_u64(7);
            h.write_u64(o.len() as u64);
            for (k, x) in o {
                h.write_str(k);
                hash_value(h, x, depth + 1, budget);
            }
        }
    }
}

/// `system,user,assistant,user,assistant,user` → `system,(user,assistant)*,user`.
pub(crate) fn collapse_roles(roles: &[Role]) -> String {
    let mut seq: Vec<Role> = Vec::with_capacity(roles.len());
    for r in roles {
        if seq.last() != Some(r) {
            seq.push(*r);
        }
    }
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seq.len() {
        let mut best: Option<(usize, usize)> = None; // (unit length, repetitions)
        for unit in 2..=3 {
            if i + 2 * unit > seq.len() {
                break;
            }
            let mut reps = 1;
            while i + (reps + 1) * unit <= seq.len()
                && seq[i + reps * unit..i + (reps + 1) * unit] == seq[i..i + unit]
            {
                reps += 1;
            }
            if reps >= 2 && best.is_none_or(|(u, r)| reps * unit > u * r) {
                best = Some((unit, reps));
            }
        }
        match best {
            Some((unit, reps)) => {
                let names: Vec<&str> = seq[i..i + unit].iter().map(|r| r.as_str()).collect();
                parts.push(format!("({})*", names.join(",")));
                i += unit * reps;
            }
            None => {
                parts.push(seq[i].as_str().to_owned());
                i += 1;
            }
        }
    }
    let mut out = parts.join(",");
    if out.len() > MAX_ROLES_TEXT {
        let cut = super::text::floor_boundary(&out, MAX_ROLES_TEXT);
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(v: &Value) -> ShapeFingerprint {
        let m = v.as_object().expect("object");
        let conv = super::super::body::conversation(m, 512);
        ShapeFingerprint::compute(m, &conv)
    }

    #[test]
    fn roles_collapse() {
        use Role::*;
        assert_eq!(
            collapse_roles(&[System, User, Assistant, User, Assistant, User]),
            "system,(user,assistant)*,user"
        );
        assert_eq!(collapse_roles(&[System, User]), "system,user");
        assert_eq!(collapse_roles(&[User, User, User]), "user");
        assert_eq!(
            collapse_roles(&[User, Assistant, Tool, Assistant, Tool, Assistant]),
            "user,(assistant,tool)*,assistant"
        );
        assert_eq!(collapse_roles(&[]), "");
    }

    #[test]
    fn key_order_and_params() {
        let a = shape(
            &json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.7}),
        );
        let b = shape(
            &json!({"messages": [{"role": "user", "content": "x"}], "model": "m", "temperature": 0.7}),
        );
        let c = shape(
            &json!({"model": "m", "messages": [{"content": "x", "role": "user"}], "temperature": 0.7}),
        );
        assert_ne!(a.key_order, b.key_order);
        assert_ne!(a.key_order, c.key_order);
        assert_eq!(a.params_hash, b.params_hash);
        let d = shape(
            &json!({"model": "m", "messages": [{"role": "user", "content": "other text"}], "temperature": 0.7}),
        );
        assert_eq!(a.key_order, d.key_order);
        assert_eq!(a.params_hash, d.params_hash);
        let e = shape(&json!({"model": "m", "messages": [], "temperature": 0.2}));
        assert_ne!(a.params_hash, e.params_hash);
    }

    #[test]
    fn parameter_vector() {
        let s = shape(&json!({
            "model": "o3", "max_completion_tokens": 4000, "stream": false, "n": 2,
            "reasoning_effort": "HIGH", "response_format": {"type": "json_schema"},
            "logprobs": true, "top_logprobs": 5, "logit_bias": {"50256": -100}
        }));
        let p = &s.params;
        assert_eq!(p.max_tokens_bucket, Some(12));
        assert_eq!(p.stream, Some(false));
        assert_eq!(p.reasoning_effort.as_deref(), Some("high"));
        assert_eq!(p.response_format.as_deref(), Some("json_schema"));
        assert!(p.reasoning_requested() && p.probes_distribution());
        let a = shape(&json!({"model": "claude", "max_tokens": 16000,
            "thinking": {"type": "enabled", "budget_tokens": 10000}, "messages": []}));
        assert_eq!(a.params.thinking_budget_bucket, Some(14));
        assert!(a.params.reasoning_requested());
        assert!(!a.params.probes_distribution());
        let r = shape(
            &json!({"model": "m", "reasoning": {"effort": "low"}, "text": {"format": {"type": "json_object"}}, "input": "x"}),
        );
        assert_eq!(r.params.reasoning_effort.as_deref(), Some("low"));
        assert_eq!(r.params.response_format.as_deref(), Some("json_object"));
        assert!(!r.params.reasoning_requested());
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(4096), 13);
        assert_eq!(log2_bucket(u64::MAX), 64);
    }

    #[test]
    fn tools_in_both_dialects() {
        let openai = shape(&json!({"tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
        ]}));
        let anthropic = shape(&json!({"tools": [
            {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
        ]}));
        let (o, a) = (
            openai.tools.expect("tools"),
            anthropic.tools.expect("tools"),
        );
        assert_eq!(o.names_hash, a.names_hash);
        assert_ne!(o.schema_hash, a.schema_hash);
        let changed = shape(&json!({"tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"town": {"type": "string"}}}}}
        ]}));
        assert_ne!(changed.tools.expect("tools").schema_hash, o.schema_hash);
    }
}
