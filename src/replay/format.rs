//! The replay line formats: one [`TrafficLine`] per recorded request in, one
//! [`DecisionLine`] per request out, both JSON Lines.
//!
//! ```
//! use distill_guard::replay::format::parse_line;
//!
//! let line = parse_line(1, r#"{"ts_ms": 1714000000000, "ip": "203.0.113.7",
//!   "method": "POST", "path": "/v1/chat/completions",
//!   "headers": [["authorization", "Bearer sk-a1"], ["user-agent", "OpenAI/Python 1.40.0"]],
//!   "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
//!   "usage": {"input_tokens": 812, "output_tokens": 1500},
//!   "label": {"actor": "campaign-3"}}"#).expect("valid line");
//! assert_eq!(line.header("User-Agent"), Some("OpenAI/Python 1.40.0"));
//! assert!(line.label.as_ref().is_some_and(|l| l.is_campaign()));
//!
//! let err = parse_line(7, "{\"ts_ms\": 1").unwrap_err();
//! assert!(err.to_string().starts_with("line 7:"));
//! ```

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extensions::Reason;

/// Token usage the mock upstream reports for a request (and that scoring counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Completion tokens, reasoning included.
    #[serde(default)]
    pub output_tokens: u64,
}

/// Ground truth attached to a line, for scoring only. It never influences a
/// decision.
///
/// Who is one operator: every line of a campaign carries the campaign's `actor`;
/// organic accounts are each their own operator unless `org` names the
/// organisation that runs several keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The operator behind the request, e.g. `campaign-adaptive-2` or `user-1234`.
    pub actor: String,
    /// `campaign`, `organic`, `batch` (batch and eval jobs) or
    /// `reseller_customer` (a reseller's innocent customer). When absent, an
    /// actor whose name starts with `campaign` is a campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The scenario that produced the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// For organic accounts run by one organisation: its name. Accounts with the
    /// same `org` are one operator (linking them is correct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The population the account was drawn from (`openai-python`,
    /// `coding-agent`, `nat`, `hosted-app`, …), for breakdowns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<String>,
}

impl Label {
    /// True when the line belongs to a distillation campaign.
    pub fn is_campaign(&self) -> bool {
        match self.kind.as_deref() {
            Some(kind) => kind.eq_ignore_ascii_case("campaign"),
            None => self.actor.starts_with("campaign"),
        }
    }
}

/// One recorded request: the input of `replay`, the output of `simulate`.
///
/// Unknown fields are ignored, so recordings may carry extra metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficLine {
    /// When the request arrived, in Unix milliseconds.
    pub ts_ms: u64,
    /// The peer address the request came from.
    pub ip: IpAddr,
    /// The HTTP method.
    pub method: String,
    /// The request path (with query, if any).
    pub path: String,
    /// The request headers as `[name, value]` pairs, in the order received.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The request body: any JSON value, sent as compact JSON in its key order;
    /// `null` for no body; a JSON *string* stands for a raw body that was not
    /// JSON (sent as its bytes).
    #[serde(default)]
    pub body: Value,
    /// What the upstream answered with.
    #[serde(default)]
    pub usage: Usage,
    /// Ground truth, for scoring only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
}

impl TrafficLine {
    /// The body as bytes: compact JSON (key order kept), or nothing for `null`.
    pub fn body_bytes(&self) -> bytes::Bytes {
        match &self.body {
            Value::Null => bytes::Bytes::new(),
            // A JSON string body stands for a raw, non-JSON body.
            Value::String(raw) => bytes::Bytes::copy_from_slice(raw.as_bytes()),
            v => bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        }
    }

    /// Rebuilds the HTTP request (`line` is its number, for errors). The
    /// recorded `content-length` and `transfer-encoding` are replaced by the
    /// length of [`body_bytes`](Self::body_bytes); the label is not part of it.
    pub fn to_request(&self, line: u64) -> Result<http::Request<bytes::Bytes>, LineError> {
        let err = |message: String| LineError { line, message };
        let method = http::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| err(format!("invalid method {:?}", self.method)))?;
        let uri: http::Uri = self
            .path
            .parse()
            .map_err(|e| err(format!("invalid path {:?}: {e}", self.path)))?;
        let body = self.body_bytes();
        let mut req = http::Request::builder().method(method).uri(uri);
        for (name, value) in &self.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(format!("invalid header name {name:?}")))?;
            if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
                continue;
            }
            let value = http::HeaderValue::from_str(value)
                .map_err(|_| err(format!("invalid value for header {name}")))?;
            req = req.header(name, value);
        }
        req.header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .map_err(|e| err(e.to_string()))
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One decision of `replay`, written in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionLine {
    /// The 1-based line number of the input line.
    pub line: u64,
    /// The HTTP status the client got.
    pub status: u16,
    /// The account (keyed hash of the API key).
    pub account: String,
    /// The cluster the account was in when the request was decided.
    pub cluster: String,
    /// That cluster's member count.
    pub cluster_size: u32,
    /// The suspicion score in `0..=1`.
    pub score: f64,
    /// The rung of the action ladder: `allow`, `tag`, `throttle`, `degrade` or
    /// `block`.
    pub action: String,
    /// Whether the response carried a provenance tag.
    pub tagged: bool,
    /// The model group of the account's tier the request was charged to
    /// (its pattern as configured, `[tiers.NAME.models."PATTERN"]`), when its
    /// model matched one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_group: Option<String>,
    /// True when the limit that refused it was its model group's, not the
    /// tier's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub limited_in_group: bool,
    /// The top signals behind the score, largest first.
    #[serde(default)]
    pub reasons: Vec<Reason>,
}

impl DecisionLine {
    /// True when the guard refused the request: status 429 (a quota) or 403 (a
    /// block).
    pub fn denied(&self) -> bool {
        matches!(self.status, 429 | 403)
    }

    /// True when the answer was degraded (reasoning stripped, output capped):
    /// action `degrade` on a request that was not refused.
    pub fn degraded(&self) -> bool {
        !self.denied() && self.action == "degrade"
    }

    /// True when the request was enforced on: denied or degraded. A tag is not
    /// enforcement.
    pub fn enforced(&self) -> bool {
        self.denied() || self.degraded()
    }

    /// True when the client got the full answer: status 200 and an action that
    /// is neither `degrade` nor `block`. A tagged answer is still harvested.
    pub fn harvested(&self) -> bool {
        self.status == 200 && self.action != "degrade" && self.action != "block"
    }
}

/// A line that could not be read, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The 1-based line number.
    pub line: u64,
    /// What is wrong, with the column where serde found it.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LineError {}

fn parse_json<'a, T: Deserialize<'a>>(line: u64, text: &'a str) -> Result<T, LineError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(LineError {
            line,
            message: "empty line".into(),
        });
    }
    serde_json::from_str(trimmed).map_err(|e| LineError {
        line,
        message: e.to_string(),
    })
}

/// Parses input line number `line` (1-based, for the error message).
pub fn parse_line(line: u64, text: &str) -> Result<TrafficLine, LineError> {
    parse_json(line, text)
}

/// Parses decision line number `line` (1-based, for the error message).
pub fn parse_decision(line: u64, text: &str) -> Result<DecisionLine, LineError> {
    parse_json(line, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"{"ts_ms": 1714000000000, "ip": "2001:db8::7", "method": "POST",
        "path": "/v1/messages", "headers": [["x-api-key", "k"], ["anthropic-version", "2023-06-01"]],
        "body": {"model": "m", "max_tokens": 5, "messages": []},
        "usage": {"input_tokens": 3, "output_tokens": 4},
        "label": {"actor": "user-1", "kind": "organic", "future": 1}, "extra": [1, 2]}"#;

    #[test]
    fn parses_a_full_line_and_ignores_unknown_fields() {
        let l = parse_line(1, GOOD).expect("valid");
        assert_eq!(l.ts_ms, 1_714_000_000_000);
        assert_eq!(l.ip, "2001:db8::7".parse::<IpAddr>().expect("ip"));
        assert_eq!(l.headers[1].0, "anthropic-version");
        assert_eq!(l.header("X-API-KEY"), Some("k"));
        assert_eq!(l.usage.output_tokens, 4);
        let label = l.label.expect("label");
        assert!(!label.is_campaign());
        assert_eq!(label.kind.as_deref(), Some("organic"));
    }

    #[test]
    fn optional_fields_default() {
        let l = parse_line(
            3,
            r#"{"ts_ms": 5, "ip": "10.0.0.1", "method": "GET", "path": "/v1/models"}"#,
        )
        .expect("valid");
        assert!(l.headers.is_empty());
        assert_eq!(l.body, Value::Null);
        assert_eq!(l.usage, Usage::default());
        assert!(l.label.is_none());
    }

    #[test]
    fn campaign_kind_falls_back_to_actor_name() {
        let l = Label {
            actor: "campaign-3".into(),
            ..Label::default()
        };
        assert!(l.is_campaign());
        let l = Label {
            actor: "campaign-3".into(),
            kind: Some("organic".into()),
            ..Label::default()
        };
        assert!(!l.is_campaign());
    }

    #[test]
    fn malformed_lines_carry_their_number() {
        let cases = [
            (4, ""),
            (5, "not json"),
            (
                6,
                r#"{"ts_ms": "soon", "ip": "1.2.3.4", "method": "POST", "path": "/"}"#,
            ),
            (
                7,
                r#"{"ts_ms": 1, "ip": "1.2.3.999", "method": "POST", "path": "/"}"#,
            ),
            (8, r#"{"ts_ms": 1, "ip": "1.2.3.4", "method": "POST"}"#),
            (
                9,
                r#"{"ts_ms": 1, "ip": "1.2.3.4", "method": "POST", "path": "/", "headers": [["a"]]}"#,
            ),
            (
                10,
                r#"{"ts_ms": -1, "ip": "1.2.3.4", "method": "POST", "path": "/"}"#,
            ),
        ];
        for (n, text) in cases {
            let e = parse_line(n, text).expect_err(text);
            assert_eq!(e.line, n);
            assert!(e.to_string().starts_with(&format!("line {n}: ")), "{e}");
            assert!(!e.message.is_empty());
        }
        let e = parse_line(8, r#"{"ts_ms": 1, "ip": "1.2.3.4", "method": "POST"}"#)
            .expect_err("missing path");
        assert!(e.message.contains("path"), "{e}");
    }

    #[test]
    fn decision_lines_round_trip() {
        let d = DecisionLine {
            line: 12,
            status: 200,
            account: "ab".repeat(16),
            cluster: format!("c_{}", "cd".repeat(16)),
            cluster_size: 12,
            score: 0.91,
            action: "degrade".into(),
            tagged: true,
            model_group: None,
            limited_in_group: false,
            reasons: vec![Reason {
                signal: "cot_elicitation".into(),
                weight: 0.4,
            }],
        };
        let text = serde_json::to_string(&d).expect("serialize");
        assert_eq!(parse_decision(1, &text).expect("parse"), d);
        assert!(d.degraded() && !d.harvested() && !d.denied());
        let e = parse_decision(2, r#"{"line": 1}"#).expect_err("incomplete");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn rebuilds_the_request() {
        let l = parse_line(1, GOOD).expect("valid");
        let req = l.to_request(1).expect("request");
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri().path(), "/v1/messages");
        assert_eq!(req.headers()["x-api-key"], "k");
        let body = req.body();
        assert_eq!(
            req.headers()["content-length"],
            body.len().to_string().as_str()
        );
        let v: Value = serde_json::from_slice(body).expect("json body");
        assert_eq!(v, l.body);
        // Key order survives.
        assert!(std::str::from_utf8(body)
            .expect("utf-8")
            .starts_with("{\"model\""));

        let mut bad = l.clone();
        bad.headers.push(("bad name".into(), "v".into()));
        let e = bad.to_request(9).expect_err("bad header");
        assert_eq!(e.line, 9);
        assert!(e.message.contains("header name"), "{e}");
        let mut bad = l.clone();
        bad.headers.push(("x".into(), "line\nbreak".into()));
        assert!(bad.to_request(3).is_err());
        let mut bad = l.clone();
        bad.method = "P OST".into();
        assert!(bad
            .to_request(3)
            .expect_err("method")
            .message
            .contains("method"));
        let mut bad = l;
        bad.path = "not a path".into();
        assert!(bad
            .to_request(3)
            .expect_err("path")
            .message
            .contains("path"));
    }

    #[test]
    fn raw_and_empty_bodies() {
        let mut l = parse_line(1, GOOD).expect("valid");
        l.body = Value::Null;
        assert!(l.body_bytes().is_empty());
        l.body = Value::String("not json".into());
        assert_eq!(&l.body_bytes()[..], b"not json");
        assert_eq!(
            l.to_request(1).expect("request").headers()["content-length"],
            "8"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(n in 1u64..1_000_000, text in ".{0,200}") {
            if let Err(e) = parse_line(n, &text) {
                prop_assert_eq!(e.line, n);
            }
        }

        #[test]
        fn generated_lines_round_trip(ts in 0u64..u64::MAX / 2, a in any::<u8>(), name in "[a-z-]{1,12}", value in "[ -~]{0,40}", out in 0u64..100_000) {
            let line = TrafficLine {
                ts_ms: ts,
                ip: IpAddr::from([10, 0, 0, a]),
                method: "POST".into(),
                path: "/v1/chat/completions".into(),
                headers: vec![(name, value)],
                body: serde_json::json!({"model": "m"}),
                usage: Usage { input_tokens: 1, output_tokens: out },
                label: Some(Label { actor: "user-1".into(), ..Label::default() }),
            };
            let text = serde_json::to_string(&line).expect("serialize");
            prop_assert_eq!(parse_line(1, &text).expect("parse"), line);
        }
    }
}
