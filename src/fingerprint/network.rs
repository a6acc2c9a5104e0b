//! The network fingerprint: the client's address prefix and what trusted proxies
//! say about its network.
//!
//! The client address comes from [`crate::network::client_ip`]: forwarding
//! headers count only when the TCP peer is a trusted proxy. The ASN and
//! datacenter headers follow the same rule: from an untrusted peer they are
//! ignored, since the client could write anything there. Only hashes are kept.

use std::net::IpAddr;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::hash::{seed, StableHasher};
use super::settings::FingerprintSettings;
use crate::network as addr;

/// Where the request comes from, as hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkFingerprint {
    /// Hash of the client's network prefix (IPv4 /24, IPv6 /48).
    pub prefix: Option<u64>,
    /// The client address is IPv6.
    pub ipv6: bool,
    /// The TCP peer is a trusted proxy (so forwarding, TLS, ASN and datacenter
    /// headers were believed).
    pub via_trusted_proxy: bool,
    /// Hash of the ASN header's value (trusted peers only).
    pub asn: Option<u64>,
    /// Hash of the datacenter header's value (trusted peers only, and only when
    /// it marks a datacenter).
    pub datacenter: Option<u64>,
}

impl NetworkFingerprint {
    /// True when a trusted proxy tagged the client as coming from a datacenter.
    pub fn is_datacenter(&self) -> bool {
        self.datacenter.is_some()
    }

    pub(crate) fn compute(
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        trusted_peer: bool,
        cfg: &FingerprintSettings,
    ) -> Self {
        let client = addr::client_ip(headers, peer, &cfg.trusted_proxies);
        let prefix = client.map(|ip| {
            let net = addr::prefix(ip);
            let mut h = StableHasher::new(seed::FIELD);
            match net.addr() {
                IpAddr::V4(a) => h.write_raw(&a.octets()),
                IpAddr::V6(a) => h.write_raw(&a.octets()),
            }
            h.write_u64(u64::from(net.prefix_len()));
            h.finish()
        });
        let read = |name: &Option<http::HeaderName>| -> Option<&str> {
            if !trusted_peer {
                return None;
            }
            let v = headers.get(name.as_ref()?)?.to_str().ok()?.trim();
            (!v.is_empty()).then_some(v)
        };
        let hash = |v: &str| {
            let mut h = StableHasher::new(seed::FIELD);
            h.write_str(&v.to_ascii_lowercase());
            h.finish()
        };
        let datacenter = read(&cfg.datacenter_header)
            .filter(|v| !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "no"))
            .map(hash);
        Self {
            prefix,
            ipv6: matches!(client, Some(IpAddr::V6(_))),
            via_trusted_proxy: trusted_peer,
            asn: read(&cfg.asn_header).map(hash),
            datacenter,
        }
    }
}
