//! `[fingerprint]`: the section and its validation.

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::FieldError;

/// `[fingerprint]`: what the fingerprint stage reads beyond the request itself.
/// Every field has a working default, so a config with only `[identity]` works.
/// Trusted proxies are shared with address resolution: `[network] trusted_proxies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FingerprintSection {
    /// Header in which a trusted TLS-terminating proxy passes the client's TLS
    /// fingerprint (for example `x-ja4`). Read only when the TCP peer is in
    /// `[network] trusted_proxies`; from any other peer it is ignored, since a
    /// client can send whatever it likes. Unset (the default): no TLS fingerprint.
    pub tls_fingerprint_header: Option<String>,
    /// Header in which a trusted proxy passes the client's autonomous system
    /// number or name (for example `x-client-asn`). Trusted peers only.
    pub asn_header: Option<String>,
    /// Header in which a trusted proxy tags clients from hosting/datacenter ranges
    /// (for example `x-datacenter`; any value but empty, `0`, `false` or `no`
    /// counts as a datacenter, and the value itself becomes a feature). Trusted
    /// peers only.
    pub datacenter_header: Option<String>,
    /// Masked tokens in the head window of the last user turn (1..=1024, default
    /// 16). The window should hold template, not payload: two prompts whose fixed
    /// preamble fills the window share every LSH band, while with a 17-token
    /// preamble and a 24-token window they shared at most one band of eight in
    /// tests. Longer windows are more specific, shorter ones catch shorter
    /// preambles.
    pub head_tokens: usize,
    /// Masked tokens in the tail window of the last user turn (1..=1024, default
    /// 16).
    pub tail_tokens: usize,
    /// Tokens per shingle for SimHash and MinHash (1..=8).
    pub shingle_tokens: usize,
    /// MinHash values per window (1..=256); must be a multiple of `lsh_bands`.
    pub minhash_hashes: usize,
    /// LSH bands per window: each band of `minhash_hashes / lsh_bands` rows becomes
    /// one feature (1..=64).
    pub lsh_bands: usize,
    /// Bytes of any one text (system prompt, last user turn) that are read; a longer
    /// text is read in its first and last halves of this size (1 KiB..=16 MiB).
    pub max_text_bytes: usize,
    /// Messages, content parts and tools looked at per request (1..=100000).
    pub max_items: usize,
}

impl Default for FingerprintSection {
    fn default() -> Self {
        Self {
            tls_fingerprint_header: None,
            asn_header: None,
            datacenter_header: None,
            head_tokens: 16,
            tail_tokens: 16,
            shingle_tokens: 3,
            minhash_hashes: 32,
            lsh_bands: 8,
            max_text_bytes: 64 * 1024,
            max_items: 512,
        }
    }
}

impl FingerprintSection {
    /// Checks the section and returns every problem with its path.
    pub fn validate(&self) -> Vec<FieldError> {
        let s = self;
        let mut errors = Problems(Vec::new());
        for (field, value) in [
            ("tls_fingerprint_header", &s.tls_fingerprint_header),
            ("asn_header", &s.asn_header),
            ("datacenter_header", &s.datacenter_header),
        ] {
            if let Some(name) = value {
                if HeaderName::from_bytes(name.as_bytes()).is_err() {
                    errors.push(
                        format!("fingerprint.{field}"),
                        format!("`{name}` is not a valid HTTP header name"),
                    );
                }
            }
        }
        for (field, value, lo, hi) in [
            ("head_tokens", s.head_tokens, 1, 1024),
            ("tail_tokens", s.tail_tokens, 1, 1024),
            ("shingle_tokens", s.shingle_tokens, 1, 8),
            ("minhash_hashes", s.minhash_hashes, 1, 256),
            ("lsh_bands", s.lsh_bands, 1, 64),
            ("max_text_bytes", s.max_text_bytes, 1024, 16 * 1024 * 1024),
            ("max_items", s.max_items, 1, 100_000),
        ] {
            if !(lo..=hi).contains(&value) {
                errors.push(
                    format!("fingerprint.{field}"),
                    format!("must be between {lo} and {hi}, got {value}"),
                );
            }
        }
        if s.lsh_bands > 0 && s.minhash_hashes % s.lsh_bands != 0 {
            errors.push(
                "fingerprint.minhash_hashes",
                format!(
                    "must be a multiple of lsh_bands ({}), got {}",
                    s.lsh_bands, s.minhash_hashes
                ),
            );
        }
        errors.0
    }
}

struct Problems(Vec<FieldError>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}
