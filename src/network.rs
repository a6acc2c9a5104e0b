//! The client's address and network prefix, with a documented spoofing model.
//!
//! The guard sees a TCP peer. When the peer is one of the configured trusted
//! proxies (`[network] trusted_proxies`, CIDRs), the client is taken from the
//! right-most `X-Forwarded-For` (or `Forwarded: for=`) entry that is *not* itself a
//! trusted proxy: a client can prepend whatever it likes to those headers, but it
//! cannot forge what the trusted proxies appended. From any other peer both headers
//! are ignored and the peer address is the client. With no trusted proxies
//! configured, forwarding headers are never read.
//!
//! The prefix used as a network feature (and as the anonymous account) is the /24 of
//! an IPv4 address and the /48 of an IPv6 address: one customer site or one
//! provider's allocation, not one device.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The TCP peer of a request, inserted by `distill-guard serve`. Axum users get the
/// same from `into_make_service_with_connect_info::<SocketAddr>()`, which the guard
/// also reads with the `axum` feature; other hosts insert `PeerAddr` themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Reads the peer address from a request's extensions.
pub fn peer_of(ext: &http::Extensions) -> Option<IpAddr> {
    if let Some(p) = ext.get::<PeerAddr>() {
        return Some(p.0.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(c) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(c.0.ip());
    }
    None
}

/// Resolves the client address from the peer and, only when the peer is trusted, the
/// forwarding headers.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        if let Ok(s) = value.to_str() {
            hops.extend(s.split(',').filter_map(|h| parse_hop(h.trim())));
        }
    }
    if hops.is_empty() {
        for value in headers.get_all("forwarded") {
            if let Ok(s) = value.to_str() {
                for element in s.split(',') {
                    for pair in element.split(';') {
                        let mut kv = pair.splitn(2, '=');
                        let k = kv.next().unwrap_or("").trim();
                        if k.eq_ignore_ascii_case("for") {
                            if let Some(ip) = parse_hop(kv.next().unwrap_or("").trim()) {
                                hops.push(ip);
                            }
                        }
                    }
                }
            }
        }
    }
    // Walk from the nearest hop outwards; the first untrusted address is the client.
    for hop in hops.iter().rev() {
        if !is_trusted(*hop, trusted) {
            return Some(*hop);
        }
    }
    Some(hops.first().copied().unwrap_or(peer))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// Parses one forwarding hop: `1.2.3.4`, `1.2.3.4:5678`, `"[2001:db8::1]:443"`,
/// `2001:db8::1`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses are treated as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The network prefix of an address: IPv4 /24, IPv6 /48.
pub fn prefix(ip: IpAddr) -> IpNet {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(o[0], o[1], o[2], 0), 24))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpNet::V6(Ipv6Net::new_assert(
                Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0),
                48,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_headers_from_untrusted_peers_are_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(
            client_ip(&h, Some(ip("198.51.100.9")), &trusted),
            Some(ip("198.51.100.9"))
        );
        assert_eq!(
            client_ip(&h, Some(ip("198.51.100.9")), &[]),
            Some(ip("198.51.100.9"))
        );
    }

    #[test]
    fn trusted_proxy_chain_yields_the_first_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // The client spoofed 6.6.6.6; the edge proxy appended the real 203.0.113.7.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")]);
        assert_eq!(
            client_ip(&h, Some(ip("10.2.2.2")), &trusted),
            Some(ip("203.0.113.7"))
        );
        let h = headers(&[("forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https")]);
        assert_eq!(
            client_ip(&h, Some(ip("10.2.2.2")), &trusted),
            Some(ip("2001:db8:cafe::17"))
        );
        let h = headers(&[]);
        assert_eq!(
            client_ip(&h, Some(ip("10.2.2.2")), &trusted),
            Some(ip("10.2.2.2"))
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix(ip("203.0.113.77")).to_string(), "203.0.113.0/24");
        assert_eq!(
            prefix(ip("2001:db8:abcd:12::1")).to_string(),
            "2001:db8:abcd::/48"
        );
        assert_eq!(
            prefix(ip("::ffff:198.51.100.3")).to_string(),
            "198.51.100.0/24"
        );
    }
}
