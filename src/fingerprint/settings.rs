//! The runtime form of `[fingerprint]` (the section is [`FingerprintSection`]).

use std::net::IpAddr;

use http::HeaderName;
use ipnet::IpNet;

use crate::config::{Config, ConfigError, FingerprintSection};

/// The runtime form of `[fingerprint]` plus `[network] trusted_proxies`: what
/// [`Fingerprint::compute`](super::Fingerprint::compute) reads.
#[derive(Debug, Clone)]
pub struct FingerprintSettings {
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) tls_header: Option<HeaderName>,
    pub(crate) asn_header: Option<HeaderName>,
    pub(crate) datacenter_header: Option<HeaderName>,
    pub(crate) head_tokens: usize,
    pub(crate) tail_tokens: usize,
    pub(crate) shingle_tokens: usize,
    pub(crate) minhash_hashes: usize,
    pub(crate) lsh_bands: usize,
    pub(crate) max_text_bytes: usize,
    pub(crate) max_items: usize,
}

impl Default for FingerprintSettings {
    /// The defaults of `[fingerprint]` with no trusted proxies (they validate: tested).
    fn default() -> Self {
        Self::build(&FingerprintSection::default(), Vec::new())
    }
}

impl FingerprintSettings {
    /// Builds the settings from a whole (validated or not) config.
    pub fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        Self::from_section(&cfg.fingerprint, cfg.network.trusted_proxies.clone())
    }

    /// Builds the settings from the section and the trusted proxy CIDRs.
    pub fn from_section(s: &FingerprintSection, trusted: Vec<IpNet>) -> Result<Self, ConfigError> {
        let errors = s.validate();
        if !errors.is_empty() {
            return Err(ConfigError { errors });
        }
        Ok(Self::build(s, trusted))
    }

    /// Builds the settings from a section that has validated; a header name that
    /// does not parse is left unset.
    fn build(s: &FingerprintSection, trusted: Vec<IpNet>) -> Self {
        let header = |v: &Option<String>| {
            v.as_deref()
                .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        };
        Self {
            trusted_proxies: trusted,
            tls_header: header(&s.tls_fingerprint_header),
            asn_header: header(&s.asn_header),
            datacenter_header: header(&s.datacenter_header),
            head_tokens: s.head_tokens,
            tail_tokens: s.tail_tokens,
            shingle_tokens: s.shingle_tokens,
            minhash_hashes: s.minhash_hashes,
            lsh_bands: s.lsh_bands,
            max_text_bytes: s.max_text_bytes,
            max_items: s.max_items,
        }
    }

    /// True when `peer` is one of the trusted proxies, whose headers are believed.
    pub fn is_trusted_peer(&self, peer: Option<IpAddr>) -> bool {
        match peer {
            Some(ip) => {
                let ip = crate::network::canonical(ip);
                self.trusted_proxies.iter().any(|n| n.contains(&ip))
            }
            None => false,
        }
    }

    /// The names of the proxy-supplied headers, which are not part of the client's
    /// header order.
    pub(crate) fn proxy_headers(&self) -> impl Iterator<Item = &HeaderName> {
        [&self.tls_header, &self.asn_header, &self.datacenter_header]
            .into_iter()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_identity_only_config_works() {
        let cfg = Config::from_toml_str("[identity]\nsecret = \"s\"\n").expect("valid");
        assert_eq!(cfg.fingerprint, FingerprintSection::default());
        let s = FingerprintSettings::from_config(&cfg).expect("settings");
        assert_eq!(s.minhash_hashes % s.lsh_bands, 0);
        assert!(s.tls_header.is_none());
        assert!(FingerprintSection::default().validate().is_empty());
        let d = FingerprintSettings::default();
        assert_eq!(
            (
                d.head_tokens,
                d.tail_tokens,
                d.shingle_tokens,
                d.minhash_hashes
            ),
            (
                s.head_tokens,
                s.tail_tokens,
                s.shingle_tokens,
                s.minhash_hashes
            )
        );
        assert_eq!(
            (d.lsh_bands, d.max_text_bytes, d.max_items),
            (s.lsh_bands, s.max_text_bytes, s.max_items)
        );
        assert!(d.trusted_proxies.is_empty() && d.tls_header.is_none());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let err = Config::from_toml_str(
            r#"
            [identity]
            secret = "s"
            [fingerprint]
            tls_fingerprint_header = "bad header"
            head_tokens = 0
            minhash_hashes = 30
            lsh_bands = 8
            "#,
        )
        .expect_err("invalid");
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "fingerprint.tls_fingerprint_header",
            "fingerprint.head_tokens",
            "fingerprint.minhash_hashes",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
        assert!(
            Config::from_toml_str("[identity]\nsecret = \"s\"\n[fingerprint]\nja4 = \"x\"\n")
                .is_err()
        );
    }

    #[test]
    fn configured_headers_are_parsed() {
        let cfg = Config::from_toml_str(
            r#"
            [identity]
            secret = "s"
            [network]
            trusted_proxies = ["10.0.0.0/8"]
            [fingerprint]
            tls_fingerprint_header = "X-JA4"
            asn_header = "x-asn"
            "#,
        )
        .expect("valid");
        let s = FingerprintSettings::from_config(&cfg).expect("settings");
        assert_eq!(s.tls_header.as_ref().map(HeaderName::as_str), Some("x-ja4"));
        assert!(s.is_trusted_peer(Some("10.1.2.3".parse().expect("ip"))));
        assert!(s.is_trusted_peer(Some("::ffff:10.1.2.3".parse().expect("ip"))));
        assert!(!s.is_trusted_peer(Some("11.1.2.3".parse().expect("ip"))));
        assert!(!s.is_trusted_peer(None));
    }
}
