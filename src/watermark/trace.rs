//! Tracing leaked text back to the account that received it.

use serde::Serialize;

use super::index::TraceIndex;
use super::mark::detect_marks;
use super::tag::{Keys, RequestId};

/// How a text was traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceMethod {
    /// An authenticated text mark was decoded.
    Mark,
    /// The trace-back index matched the text's fingerprints.
    Index,
}

/// Who received a traced text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceResult {
    /// The account id (32 hex digits), or only its first 14 hex digits when a mark
    /// was decoded but its response is no longer in the index.
    pub account: String,
    /// The cluster id (`c_` and 32 hex digits), or `c_` and its first 6 hex digits
    /// when only a mark was decoded.
    pub cluster: String,
    /// When the response was served, RFC 3339 (UTC). From a mark alone this is the
    /// start of the hour it was served in.
    pub issued_at: String,
    /// The same time in Unix milliseconds.
    pub issued_at_ms: u64,
    /// `mark` or `index`.
    pub method: TraceMethod,
    /// How sure the attribution is, `0..=1`. A decoded mark is authenticated by
    /// a 24-bit MAC and scores 0.95 (0.99 with two or more complete copies, 0.9
    /// when only a majority vote over damaged copies recovered it); an index match
    /// scores its containment estimate.
    pub confidence: f64,
    /// The response's request id, when the index knows the response.
    pub request_id: Option<RequestId>,
    /// The key that authenticated the mark, for `method = mark`.
    pub key_id: Option<String>,
}

fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Traces `text`: decodes text marks first (needs `keys`), else searches `index`.
///
/// A mark's account and cluster prefixes are completed from the index when it
/// still holds a response to that account from that hour.
pub fn trace(text: &str, keys: Option<&Keys>, index: Option<&TraceIndex>) -> Option<TraceResult> {
    if let Some(keys) = keys {
        if let Some(m) = detect_marks(text, keys).into_iter().next() {
            let p = m.payload;
            let from = p.issued_at_ms();
            let matched = index.and_then(|idx| {
                idx.lookup(text).filter(|hit| {
                    p.matches_account(&hit.account)
                        && (from..from + 3_600_000).contains(&hit.issued_at_ms)
                })
            });
            let resolved = match &matched {
                Some(hit) => Some((hit.account, hit.cluster)),
                None => index.and_then(|idx| {
                    idx.resolve_prefix(&p.account_prefix, &p.cluster_prefix, from, from + 3_600_000)
                }),
            };
            let (account, cluster) = match resolved {
                Some((a, c)) => (a.to_string(), c.to_string()),
                None => (p.account_hex(), p.cluster_hex()),
            };
            let issued_at_ms = matched.as_ref().map_or(from, |h| h.issued_at_ms);
            return Some(TraceResult {
                account,
                cluster,
                issued_at: rfc3339(issued_at_ms),
                issued_at_ms,
                method: TraceMethod::Mark,
                confidence: match m.copies {
                    0 => 0.9,
                    1 => 0.95,
                    _ => 0.99,
                },
                request_id: matched.map(|h| h.request_id),
                key_id: Some(m.key_id),
            });
        }
    }
    let hit = index?.lookup(text)?;
    Some(TraceResult {
        account: hit.account.to_string(),
        cluster: hit.cluster.to_string(),
        issued_at: rfc3339(hit.issued_at_ms),
        issued_at_ms: hit.issued_at_ms,
        method: TraceMethod::Index,
        confidence: (hit.confidence * 1000.0).round() / 1000.0,
        request_id: Some(hit.request_id),
        key_id: None,
    })
}
