//! Rate-limit response headers in each dialect, plus the IETF fields.
//!
//! * OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the
//!   per-minute windows, resets as Go-style durations (`1s`, `6m0s`, `20ms`).
//! * Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
//!   resets as RFC 3339 times. One token bucket covers input and output, so the
//!   `input-tokens` and `output-tokens` families report that bucket.
//! * Both: `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers)
//!   for every active window; and on 429, `Retry-After` (whole seconds, rounded up)
//!   and `retry-after-ms`.
//! * `x-should-retry: false` on a 429 whose wait exceeds [`MAX_AUTOMATIC_RETRY_MS`]
//!   and on requests that can never succeed. The official OpenAI and Anthropic SDKs
//!   obey this header before anything else; without it the Anthropic SDK sleeps for
//!   the whole `Retry-After` (a daily limit: hours) before each automatic retry.
//!
//! Each window shows whichever of the account's and the cluster's bucket has less
//! room, since that is what the client can actually use. A request of a model
//! group (`[tiers.NAME.models."PATTERN"]`) is held to the group's buckets and
//! the tier's: the dialect fields show, per window, whichever of the two has
//! less room; the IETF fields list both, the group's policies named
//! `"PATTERN:requests-minute"` and so on beside the tier's `"requests-minute"`;
//! and `x-distill-guard-model-group` names the group.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::dialect::Dialect;
use crate::store::{BucketView, Window};

/// The binding view of each window across account and cluster.
pub fn effective(views: &[[Option<BucketView>; 4]; 2]) -> [Option<BucketView>; 4] {
    let mut out = [None; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = match (views[0][i], views[1][i]) {
            (Some(a), Some(c)) => Some(if c.remaining < a.remaining { c } else { a }),
            (a, c) => a.or(c),
        };
    }
    out
}

/// What a response reports about its request's buckets: per window, the
/// binding view across the account and its cluster, tier-wide and for the
/// request's model group (if it has one).
#[derive(Debug, Clone, PartialEq)]
pub struct Views {
    /// The tier-wide buckets.
    pub tier: [Option<BucketView>; 4],
    /// The model group's name and buckets.
    pub group: Option<(Arc<str>, [Option<BucketView>; 4])>,
}

impl Views {
    /// The views of an admission's outcome (rows as in
    /// [`Outcome::views`](crate::store::Outcome::views)); `group` names the
    /// request's model group.
    pub fn of(views: &[[Option<BucketView>; 4]; 4], group: Option<Arc<str>>) -> Self {
        Self {
            tier: effective(&[views[0], views[1]]),
            group: group.map(|g| (g, effective(&[views[2], views[3]]))),
        }
    }

    /// Per window, the one with less room of the tier-wide and the group's.
    pub fn binding(&self) -> [Option<BucketView>; 4] {
        match &self.group {
            Some((_, g)) => effective(&[self.tier, *g]),
            None => self.tier,
        }
    }

    /// Writes the headers: the dialect's fields for [`Views::binding`], the
    /// IETF fields with one policy per window and group.
    pub fn write(&self, headers: &mut HeaderMap, dialect: Dialect, now_ms: u64) {
        write_dialect(headers, dialect, &self.binding(), now_ms);
        let (mut policy, mut state) = ietf(&self.tier, "");
        if let Some((name, group)) = &self.group {
            let (p, s) = ietf(group, &format!("{name}:"));
            for (all, more) in [(&mut policy, p), (&mut state, s)] {
                if !all.is_empty() && !more.is_empty() {
                    all.push_str(", ");
                }
                all.push_str(&more);
            }
            set(headers, "x-distill-guard-model-group", name.to_string());
        }
        if !policy.is_empty() {
            set(headers, "ratelimit-policy", policy);
            set(headers, "ratelimit", state);
        }
    }
}

/// A Go-style duration as OpenAI prints it: `20ms`, `1s`, `6m0s`, `1h0m0s`.
pub fn go_duration(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1_000);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h{m}m{s}s");
    } else if m > 0 {
        let _ = write!(out, "{m}m{s}s");
    } else {
        let _ = write!(out, "{s}s");
    }
    out
}

fn rfc3339(now_ms: u64, after_ms: u64) -> String {
    let at =
        UNIX_EPOCH + Duration::from_millis(now_ms.saturating_add(after_ms.min(400 * 86_400_000)));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn set(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

fn set_num(headers: &mut HeaderMap, name: &'static str, v: f64) {
    headers.insert(
        HeaderName::from_static(name),
        HeaderValue::from(v.max(0.0).floor() as u64),
    );
}

fn int(v: f64) -> String {
    format!("{}", v.max(0.0).floor() as u64)
}

/// The IETF policy name of a window (`requests-minute`, ...).
pub fn policy_name(w: Window) -> &'static str {
    match w {
        Window::RequestsPerMinute => "requests-minute",
        Window::RequestsPerDay => "requests-day",
        Window::TokensPerMinute => "tokens-minute",
        Window::TokensPerDay => "tokens-day",
    }
}

/// Of a minute and a day window, the one with fewer units left (the minute one
/// on a tie): the dialects have one set of request and token fields, and they
/// must show the window that binds, or a client told `remaining: 59` keeps
/// hitting a spent daily limit.
fn binding(minute: Option<BucketView>, day: Option<BucketView>) -> Option<BucketView> {
    match (minute, day) {
        (Some(m), Some(d)) => Some(if d.remaining < m.remaining { d } else { m }),
        (m, d) => m.or(d),
    }
}

/// Writes the rate-limit headers for `views` into `headers`.
pub fn write(
    headers: &mut HeaderMap,
    dialect: Dialect,
    views: &[Option<BucketView>; 4],
    now_ms: u64,
) {
    write_dialect(headers, dialect, views, now_ms);
    let (policy, state) = ietf(views, "");
    if !policy.is_empty() {
        set(headers, "ratelimit-policy", policy);
        set(headers, "ratelimit", state);
    }
}

/// Writes the dialect's own rate-limit fields for `views`.
fn write_dialect(
    headers: &mut HeaderMap,
    dialect: Dialect,
    views: &[Option<BucketView>; 4],
    now_ms: u64,
) {
    let req = binding(
        views[Window::RequestsPerMinute.index()],
        views[Window::RequestsPerDay.index()],
    );
    let tok = binding(
        views[Window::TokensPerMinute.index()],
        views[Window::TokensPerDay.index()],
    );
    match dialect {
        Dialect::OpenAi => {
            if let Some(v) = req {
                set_num(headers, "x-ratelimit-limit-requests", v.limit);
                set_num(headers, "x-ratelimit-remaining-requests", v.remaining);
                set(
                    headers,
                    "x-ratelimit-reset-requests",
                    go_duration(v.reset_ms),
                );
            }
            if let Some(v) = tok {
                set_num(headers, "x-ratelimit-limit-tokens", v.limit);
                set_num(headers, "x-ratelimit-remaining-tokens", v.remaining);
                set(headers, "x-ratelimit-reset-tokens", go_duration(v.reset_ms));
            }
        }
        Dialect::Anthropic => {
            if let Some(v) = req {
                set_num(headers, "anthropic-ratelimit-requests-limit", v.limit);
                set(
                    headers,
                    "anthropic-ratelimit-requests-remaining",
                    int(v.remaining),
                );
                set(
                    headers,
                    "anthropic-ratelimit-requests-reset",
                    rfc3339(now_ms, v.reset_ms),
                );
            }
            if let Some(v) = tok {
                let reset = rfc3339(now_ms, v.reset_ms);
                for (l, r, t) in [
                    (
                        "anthropic-ratelimit-tokens-limit",
                        "anthropic-ratelimit-tokens-remaining",
                        "anthropic-ratelimit-tokens-reset",
                    ),
                    (
                        "anthropic-ratelimit-input-tokens-limit",
                        "anthropic-ratelimit-input-tokens-remaining",
                        "anthropic-ratelimit-input-tokens-reset",
                    ),
                    (
                        "anthropic-ratelimit-output-tokens-limit",
                        "anthropic-ratelimit-output-tokens-remaining",
                        "anthropic-ratelimit-output-tokens-reset",
                    ),
                ] {
                    set_num(headers, l, v.limit);
                    set_num(headers, r, v.remaining);
                    set(headers, t, reset.clone());
                }
            }
        }
    }
}

/// The `RateLimit-Policy` and `RateLimit` lists of `views`, each policy
/// named `{prefix}{window}`.
fn ietf(views: &[Option<BucketView>; 4], prefix: &str) -> (String, String) {
    let mut policy = String::new();
    let mut state = String::new();
    for w in Window::ALL {
        if let Some(v) = views[w.index()] {
            if !policy.is_empty() {
                policy.push_str(", ");
                state.push_str(", ");
            }
            let _ = write!(
                policy,
                "\"{prefix}{}\";q={};w={}",
                policy_name(w),
                int(v.limit),
                w.window_ms() / 1000
            );
            let _ = write!(
                state,
                "\"{prefix}{}\";r={};t={}",
                policy_name(w),
                int(v.remaining),
                v.reset_ms.div_ceil(1000)
            );
        }
    }
    (policy, state)
}

/// The longest wait a client's automatic retry should sleep through. Longer waits
/// (daily limits) carry `x-should-retry: false`, so SDKs raise at once and the
/// caller decides when to come back.
pub const MAX_AUTOMATIC_RETRY_MS: u64 = 60_000;

/// Writes `Retry-After` (seconds, at least 1) and `retry-after-ms`, and
/// `x-should-retry: false` when the wait is over [`MAX_AUTOMATIC_RETRY_MS`].
pub fn write_retry_after(headers: &mut HeaderMap, retry_after_ms: u64) {
    let secs = retry_after_ms.div_ceil(1000).max(1);
    set(headers, "retry-after", secs.to_string());
    set(headers, "retry-after-ms", retry_after_ms.max(1).to_string());
    if retry_after_ms > MAX_AUTOMATIC_RETRY_MS {
        write_no_retry(headers);
    }
}

/// Writes `x-should-retry: false`: the official SDKs then never retry the response
/// automatically, whatever its status.
pub fn write_no_retry(headers: &mut HeaderMap) {
    headers.insert(
        HeaderName::from_static("x-should-retry"),
        HeaderValue::from_static("false"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(20), "20ms");
        assert_eq!(go_duration(1_000), "1s");
        assert_eq!(go_duration(1_001), "2s");
        assert_eq!(go_duration(360_000), "6m0s");
        assert_eq!(go_duration(3_723_000), "1h2m3s");
    }

    #[test]
    fn both_dialects_and_ietf_fields() {
        let v = BucketView {
            limit: 60.0,
            remaining: 59.0,
            reset_ms: 1_000,
        };
        let t = BucketView {
            limit: 1000.0,
            remaining: 900.5,
            reset_ms: 6_000,
        };
        let views = [Some(v), None, Some(t), None];
        let mut h = HeaderMap::new();
        write(&mut h, Dialect::OpenAi, &views, 0);
        assert_eq!(h["x-ratelimit-limit-requests"], "60");
        assert_eq!(h["x-ratelimit-remaining-tokens"], "900");
        assert_eq!(h["x-ratelimit-reset-tokens"], "6s");
        assert_eq!(
            h["ratelimit-policy"],
            "\"requests-minute\";q=60;w=60, \"tokens-minute\";q=1000;w=60"
        );
        assert_eq!(
            h["ratelimit"],
            "\"requests-minute\";r=59;t=1, \"tokens-minute\";r=900;t=6"
        );
        let mut h = HeaderMap::new();
        write(&mut h, Dialect::Anthropic, &views, 1_714_000_000_000);
        assert_eq!(
            h["anthropic-ratelimit-requests-reset"],
            "2024-04-24T23:06:41Z"
        );
        assert_eq!(h["anthropic-ratelimit-output-tokens-remaining"], "900");
    }

    #[test]
    fn long_waits_are_not_for_automatic_retries() {
        let mut h = HeaderMap::new();
        write_retry_after(&mut h, 1);
        assert_eq!(h["retry-after"], "1");
        assert_eq!(h["retry-after-ms"], "1");
        assert!(h.get("x-should-retry").is_none());
        let mut h = HeaderMap::new();
        write_retry_after(&mut h, MAX_AUTOMATIC_RETRY_MS);
        assert_eq!(h["retry-after"], "60");
        assert!(h.get("x-should-retry").is_none());
        let mut h = HeaderMap::new();
        write_retry_after(&mut h, MAX_AUTOMATIC_RETRY_MS + 1);
        assert_eq!(h["retry-after"], "61");
        assert_eq!(h["retry-after-ms"], "60001");
        assert_eq!(h["x-should-retry"], "false");
        let mut h = HeaderMap::new();
        write_retry_after(&mut h, 86_400_000);
        assert_eq!(h["retry-after"], "86400");
        assert_eq!(h["x-should-retry"], "false");
    }

    #[test]
    fn dialect_fields_show_the_binding_window() {
        let minute = BucketView {
            limit: 60.0,
            remaining: 59.0,
            reset_ms: 1_000,
        };
        let day = BucketView {
            limit: 1_000.0,
            remaining: 0.0,
            reset_ms: 3_600_000,
        };
        let views = [Some(minute), Some(day), Some(minute), None];
        let mut h = HeaderMap::new();
        write(&mut h, Dialect::OpenAi, &views, 0);
        assert_eq!(h["x-ratelimit-limit-requests"], "1000");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
        assert_eq!(h["x-ratelimit-reset-requests"], go_duration(3_600_000));
        assert_eq!(
            h["x-ratelimit-remaining-tokens"], "59",
            "no day window for tokens"
        );
        let mut h = HeaderMap::new();
        write(&mut h, Dialect::Anthropic, &views, 0);
        assert_eq!(h["anthropic-ratelimit-requests-remaining"], "0");
        assert_eq!(h["anthropic-ratelimit-requests-limit"], "1000");
        // Both windows stay in the IETF fields.
        assert!(h["ratelimit"]
            .to_str()
            .expect("ascii")
            .contains("\"requests-minute\";r=59"));
        assert!(h["ratelimit"]
            .to_str()
            .expect("ascii")
            .contains("\"requests-day\";r=0"));
        // A roomier day window leaves the minute one in the dialect fields.
        let views = [
            Some(minute),
            Some(BucketView {
                remaining: 900.0,
                ..day
            }),
            None,
            None,
        ];
        let mut h = HeaderMap::new();
        write(&mut h, Dialect::OpenAi, &views, 0);
        assert_eq!(h["x-ratelimit-remaining-requests"], "59");
        assert_eq!(h["x-ratelimit-limit-requests"], "60");
    }

    #[test]
    fn effective_takes_the_tighter_subject() {
        let a = BucketView {
            limit: 60.0,
            remaining: 50.0,
            reset_ms: 1,
        };
        let c = BucketView {
            limit: 600.0,
            remaining: 5.0,
            reset_ms: 9,
        };
        let e = effective(&[[Some(a), None, None, None], [Some(c), None, None, None]]);
        assert_eq!(e[0], Some(c));
    }
}
