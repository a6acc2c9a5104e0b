//! The currency between fingerprinting and clustering: hashed feature values
//! grouped into independent evidence families.
//!
//! The fingerprint stage turns each request into a list of [`Feature`]s; the
//! clustering engine links accounts that share *rare, specific* features from at
//! least two independent [`Family`]s. Values are 64-bit hashes: raw header values,
//! addresses and prompts never reach the clustering state.

use serde::{Deserialize, Serialize};

/// An independent family of evidence. Two accounts that agree only within one
/// family (say, the same client software) are not linked on that alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Client software: header order, user-agent family, SDK headers, TLS fingerprint.
    Client,
    /// Network: IP prefix, ASN or datacenter tag.
    Network,
    /// Request shape: JSON key order, parameter vector, tools, role sequence.
    Shape,
    /// Prompt template: system-prompt hash, head/tail LSH bands.
    Template,
    /// Timing: inter-arrival regularity, activity pattern.
    Timing,
    /// Hard links supplied by the host application or found by echoed marks.
    HardLink,
    /// What the account asks for and how: turn structure, output budget,
    /// reasoning requested, elicitation, task (see
    /// [`crate::fingerprint::Behaviour`]). Links only accounts that already
    /// look like extraction.
    Behaviour,
}

impl Family {
    /// All families.
    pub const ALL: [Family; 7] = [
        Family::Client,
        Family::Network,
        Family::Shape,
        Family::Template,
        Family::Timing,
        Family::HardLink,
        Family::Behaviour,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Client => "client",
            Family::Network => "network",
            Family::Shape => "shape",
            Family::Template => "template",
            Family::Timing => "timing",
            Family::HardLink => "hard_link",
            Family::Behaviour => "behaviour",
        }
    }
}

/// One hashed feature value of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Feature {
    /// Its evidence family.
    pub family: Family,
    /// A short stable name of the feature kind within the family, e.g.
    /// `header_order`, `ip_prefix`, `system_prompt`, `tail_lsh_band`.
    pub kind: &'static str,
    /// A 64-bit hash of the value (with the kind mixed in).
    pub value: u64,
}

/// Every feature kind the crate produces, with its family. A kind's position is
/// its wire code when observations are shared between replicas
/// ([`crate::cluster::share`]): append new kinds, never reorder.
pub const KINDS: [(Family, &str); 16] = [
    (Family::Client, "header_order"),
    (Family::Client, "user_agent"),
    (Family::Client, "stainless"),
    (Family::Client, "accept_values"),
    (Family::Client, "tls"),
    (Family::Network, "ip_prefix"),
    (Family::Network, "asn"),
    (Family::Network, "datacenter"),
    (Family::Shape, "key_order"),
    (Family::Shape, "params"),
    (Family::Shape, "tool_schema"),
    (Family::Template, "system_prompt"),
    (Family::Template, "head_lsh_band"),
    (Family::Template, "tail_lsh_band"),
    (Family::HardLink, "hard_link"),
    (Family::Behaviour, "behaviour_signature"),
];

impl Feature {
    /// The kind's position in [`KINDS`], if it is one the crate knows (a feature
    /// built by hand with another kind has none).
    pub fn kind_code(&self) -> Option<u8> {
        KINDS
            .iter()
            .position(|&(f, k)| f == self.family && k == self.kind)
            .and_then(|i| u8::try_from(i).ok())
    }

    /// The feature of kind `code` (see [`KINDS`]) and `value`.
    pub fn from_code(code: u8, value: u64) -> Option<Feature> {
        KINDS.get(usize::from(code)).map(|&(family, kind)| Feature {
            family,
            kind,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_the_fingerprint_produces_has_a_code() {
        use crate::fingerprint::{Fingerprint, FingerprintSettings};
        let cfg = crate::Config::from_toml_str("[identity]\nsecret = \"s\"\n").expect("config");
        let settings = FingerprintSettings::from_config(&cfg).expect("settings");
        let body = br#"{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"messages":[{"role":"system","content":"You are a careful assistant that answers questions about geography in detail."},{"role":"user","content":"Tell me about the rivers of Europe and the cities on their banks, with lengths and sources."}]}"#;
        let req = http::Request::builder()
            .method("POST")
            .uri("/v1/chat/completions")
            .header("user-agent", "OpenAI/Python 1.40.0")
            .header("x-stainless-lang", "python")
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(())
            .expect("request");
        let info = crate::request::RequestInfo::parse(req.uri().path(), body.as_slice().into());
        let fp = Fingerprint::compute(
            req.headers(),
            Some("203.0.113.7".parse().expect("ip")),
            &info,
            &settings,
        );
        let features = fp.features();
        assert!(features.len() > 8, "{features:?}");
        for f in &features {
            let code = f.kind_code().unwrap_or_else(|| panic!("no code for {f:?}"));
            assert_eq!(Feature::from_code(code, f.value), Some(*f));
        }
        let odd = Feature {
            family: Family::Client,
            kind: "hard_link",
            value: 1,
        };
        assert_eq!(odd.kind_code(), None, "family and kind must both match");
        assert_eq!(Feature::from_code(KINDS.len() as u8, 1), None);
    }
}
