//! The client fingerprint: which software sent the request, from its headers.
//!
//! # Header order
//!
//! The header-order hash covers the header *names* in the order the request
//! carries them, minus names whose presence varies per request or that
//! infrastructure adds (see [`VOLATILE_HEADERS`] and the configured proxy headers).
//! What "the order the request carries them" means is set by `http::HeaderMap`:
//! its iterator walks names in the order of each name's *first* insertion, and
//! yields all values of a name together. Hyper inserts HTTP/1 headers in the
//! order they arrive and HTTP/2 headers in HPACK decoding order (pseudo-headers
//! are not headers there), so the order is the client's, except that a repeated
//! name counts once, at its first position, and name case is gone (hyper
//! lowercases). A layer that *removes* a header before this one runs moves the
//! last name into the removed one's slot (`HeaderMap` uses `swap_remove`), so
//! fingerprint before any layer that removes headers; inserting or replacing
//! values keeps positions.

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::hash::{hash_str, seed, StableHasher};
use super::settings::FingerprintSettings;
use super::useragent::{self, ClientKind, UserAgent};

/// Header names left out of the header order: their presence changes from request
/// to request, or proxies and CDNs add them. Names starting with `cf-`,
/// `x-forwarded-`, `x-envoy-`, `x-amzn-` and `x-b3-` are left out as well.
pub const VOLATILE_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "cookie",
    "authorization",
    "x-api-key",
    "x-request-id",
    "x-correlation-id",
    "traceparent",
    "tracestate",
    "baggage",
    "sentry-trace",
    "b3",
    "date",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "via",
    "cdn-loop",
    "idempotency-key",
];

const VOLATILE_PREFIXES: &[&str] = &["cf-", "x-forwarded-", "x-envoy-", "x-amzn-", "x-b3-"];

/// Why a request's headers contradict its user-agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inconsistency {
    /// An official SDK's user-agent without any `x-stainless-*` header, which the
    /// SDKs always send.
    SdkWithoutStainless,
    /// `x-stainless-lang` disagrees with the SDK the user-agent names (for
    /// example `OpenAI/Python` with `x-stainless-lang: js`).
    StainlessLangMismatch,
    /// `x-stainless-package-version` differs from the user-agent's version.
    StainlessVersionMismatch,
    /// `x-stainless-*` headers with a user-agent of software that never sends
    /// them (curl, python-requests, …, or a browser without the SDKs' `browser:…`
    /// runtime).
    StainlessWithNonSdkAgent,
    /// `x-stainless-runtime` of another language than `x-stainless-lang`.
    StainlessRuntimeMismatch,
    /// An Anthropic SDK user-agent without `anthropic-version`, which it always sends.
    AnthropicSdkWithoutVersion,
}

/// The `x-stainless-*` headers the official SDKs send (values trimmed to 64
/// printable ASCII characters).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stainless {
    /// `x-stainless-lang`: `python`, `js`, …
    pub lang: Option<String>,
    /// `x-stainless-package-version`.
    pub package_version: Option<String>,
    /// `x-stainless-os`.
    pub os: Option<String>,
    /// `x-stainless-arch`.
    pub arch: Option<String>,
    /// `x-stainless-runtime`: `CPython`, `node`, …
    pub runtime: Option<String>,
    /// `x-stainless-runtime-version`.
    pub runtime_version: Option<String>,
    /// `x-stainless-async`.
    pub async_mode: Option<String>,
    /// Hash of every `x-stainless-*` name and value, sorted by name, except the
    /// volatile `x-stainless-retry-count`.
    pub set_hash: u64,
    /// Number of `x-stainless-*` headers.
    pub count: u32,
}

/// What identifies the client software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFingerprint {
    /// Hash of the header names in received order, volatile ones excluded.
    pub header_order: u64,
    /// Number of names in that order.
    pub header_count: u32,
    /// The parsed `User-Agent`, if any.
    pub user_agent: Option<UserAgent>,
    /// The `x-stainless-*` headers, if any.
    pub stainless: Option<Stainless>,
    /// `anthropic-version`.
    pub anthropic_version: Option<String>,
    /// Hash of `anthropic-beta`.
    pub anthropic_beta: Option<u64>,
    /// Hash of `accept`.
    pub accept: Option<u64>,
    /// Hash of `accept-language`.
    pub accept_language: Option<u64>,
    /// Hash of `accept-encoding`.
    pub accept_encoding: Option<u64>,
    /// Hash of the upstream TLS fingerprint (e.g. JA4) from the configured header,
    /// present only when the TCP peer is a trusted proxy.
    pub tls: Option<u64>,
    /// How the headers contradict the user-agent; empty when they agree.
    pub inconsistencies: Vec<Inconsistency>,
}

impl ClientFingerprint {
    /// True when the headers contradict the user-agent.
    pub fn inconsistent(&self) -> bool {
        !self.inconsistencies.is_empty()
    }

    /// Reads the headers. `trusted_peer`: the TCP peer is a trusted proxy.
    pub(crate) fn compute(
        headers: &HeaderMap,
        trusted_peer: bool,
        cfg: &FingerprintSettings,
    ) -> Self {
        let mut order = StableHasher::new(seed::FIELD);
        let mut count = 0u32;
        for name in headers.keys() {
            let n = name.as_str();
            if VOLATILE_HEADERS.contains(&n)
                || VOLATILE_PREFIXES.iter().any(|p| n.starts_with(p))
                || cfg.proxy_headers().any(|h| h == name)
            {
                continue;
            }
            order.write_str(n);
            count += 1;
        }
        order.write_u64(u64::from(count));

        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let hashed = |name: &str| {
            let mut values = headers.get_all(name).iter().peekable();
            values.peek()?;
            let mut h = StableHasher::new(seed::FIELD);
            for v in values {
                h.write_bytes(v.as_bytes());
            }
            Some(h.finish())
        };
        let user_agent = text("user-agent").and_then(useragent::parse);
        let stainless = stainless(headers);
        let anthropic_version = text("anthropic-version").map(short);
        let tls = if trusted_peer {
            cfg.tls_header
                .as_ref()
                .and_then(|h| headers.get(h))
                .map(|v| {
                    let mut h = StableHasher::new(seed::FIELD);
                    h.write_bytes(v.as_bytes());
                    h.finish()
                })
        } else {
            None
        };
        let inconsistencies = inconsistencies(
            user_agent.as_ref(),
            stainless.as_ref(),
            anthropic_version.is_some(),
        );
        Self {
            header_order: order.finish(),
            header_count: count,
            user_agent,
            stainless,
            anthropic_version,
            anthropic_beta: hashed("anthropic-beta"),
            accept: hashed("accept"),
            accept_language: hashed("accept-language"),
            accept_encoding: hashed("accept-encoding"),
            tls,
            inconsistencies,
        }
    }

    /// Hash of the user-agent family and version, if there is a user-agent.
    pub fn user_agent_hash(&self) -> Option<u64> {
        self.user_agent.as_ref().map(|ua| {
            let mut h = StableHasher::new(seed::FIELD);
            h.write_str(&ua.family);
            h.write_opt_str(ua.version.as_deref());
            h.write_u64(u64::from(ua.async_client));
            h.finish()
        })
    }

    /// Hash of the accept values and Anthropic headers together, if any is present.
    pub fn accept_values_hash(&self) -> Option<u64> {
        let parts = [
            self.accept,
            self.accept_language,
            self.accept_encoding,
            self.anthropic_beta,
            self.anthropic_version
                .as_deref()
                .map(|v| hash_str(seed::FIELD, v)),
        ];
        if parts.iter().all(Option::is_none) {
            return None;
        }
        let mut h = StableHasher::new(seed::FIELD);
        for p in parts {
            h.write_u64(p.map_or(0, |x| x | 1));
        }
        Some(h.finish())
    }
}

/// At most 64 printable ASCII characters of a header value.
fn short(v: &str) -> String {
    v.trim()
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

fn stainless(headers: &HeaderMap) -> Option<Stainless> {
    let mut s = Stainless::default();
    let mut pairs: Vec<(&str, &[u8])> = Vec::new();
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix("x-stainless-") else {
            continue;
        };
        s.count += 1;
        let text = value.to_str().ok().map(short);
        match key {
            "lang" => s.lang = text,
            "package-version" => s.package_version = text,
            "os" => s.os = text,
            "arch" => s.arch = text,
            "runtime" => s.runtime = text,
            "runtime-version" => s.runtime_version = text,
            "async" => s.async_mode = text,
            _ => {}
        }
        if key != "retry-count" && pairs.len() < 64 {
            pairs.push((key, value.as_bytes()));
        }
    }
    if s.count == 0 {
        return None;
    }
    pairs.sort_unstable();
    let mut h = StableHasher::new(seed::FIELD);
    for (k, v) in &pairs {
        h.write_str(k);
        h.write_bytes(v);
    }
    s.set_hash = h.finish();
    Some(s)
}

fn inconsistencies(
    ua: Option<&UserAgent>,
    st: Option<&Stainless>,
    has_anthropic_version: bool,
) -> Vec<Inconsistency> {
    let mut out = Vec::new();
    if let Some(ua) = ua {
        if let Some(lang) = ua.sdk_lang() {
            match st {
                None => out.push(Inconsistency::SdkWithoutStainless),
                Some(st) => {
                    if st
                        .lang
                        .as_deref()
                        .is_none_or(|l| !l.eq_ignore_ascii_case(lang))
                    {
                        out.push(Inconsistency::StainlessLangMismatch);
                    }
                    if let (Some(pv), Some(v)) = (&st.package_version, &ua.version) {
                        if pv != v {
                            out.push(Inconsistency::StainlessVersionMismatch);
                        }
                    }
                }
            }
            if ua.is_anthropic_sdk() && !has_anthropic_version {
                out.push(Inconsistency::AnthropicSdkWithoutVersion);
            }
        } else if let Some(st) = st {
            // In a browser the SDKs cannot set `User-Agent`; they report a
            // `browser:…` runtime instead.
            let browser_runtime = st
                .runtime
                .as_deref()
                .is_some_and(|r| r.to_ascii_lowercase().starts_with("browser"));
            let foreign = match ua.kind {
                ClientKind::CommandLine | ClientKind::HttpLibrary => true,
                ClientKind::Browser => !browser_runtime,
                ClientKind::OfficialSdk | ClientKind::Other => false,
            };
            if foreign {
                out.push(Inconsistency::StainlessWithNonSdkAgent);
            }
        }
    }
    if let Some(st) = st {
        if let (Some(lang), Some(rt)) = (&st.lang, &st.runtime) {
            let rt = rt.to_ascii_lowercase();
            let python_rt = rt == "cpython" || rt == "pypy";
            let js_rt = ["node", "deno", "bun", "edge", "browser", "workerd"]
                .iter()
                .any(|r| rt.starts_with(r));
            let mismatch = match lang.to_ascii_lowercase().as_str() {
                "python" => js_rt,
                "js" => python_rt,
                _ => false,
            };
            if mismatch {
                out.push(Inconsistency::StainlessRuntimeMismatch);
            }
        }
    }
    out
}
