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
    /// Its kind (which names its family).
    pub kind: FeatureKind,
    /// A 64-bit hash of the value (with the family and kind mixed in).
    pub value: u64,
}

impl Feature {
    /// Its evidence family.
    pub fn family(&self) -> Family {
        self.kind.family()
    }
}

/// What a feature describes. Its [`code`](Self::code) is its wire code when
/// observations are shared between replicas (`cluster::share`, feature
/// `redis`); its serde name (`header_order`, `system_prompt`, …) is the name
/// configs (`[cluster] kind_weights`), the admin API and reports use. Append
/// new kinds, never reorder or rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum FeatureKind {
    /// Order of the request's headers.
    HeaderOrder = 0,
    /// User-agent family and version.
    UserAgent = 1,
    /// The set of `x-stainless-*` SDK headers.
    Stainless = 2,
    /// `accept` and `accept-encoding` values.
    AcceptValues = 3,
    /// TLS fingerprint supplied by a terminating proxy.
    Tls = 4,
    /// Client address prefix.
    IpPrefix = 5,
    /// Autonomous system.
    Asn = 6,
    /// Datacenter or hosting tag.
    Datacenter = 7,
    /// Order of the JSON body's keys.
    KeyOrder = 8,
    /// The parameter vector (model, temperature, caps, …).
    Params = 9,
    /// The tools' schema.
    ToolSchema = 10,
    /// The system prompt's hash.
    SystemPrompt = 11,
    /// One LSH band of the prompt's head.
    HeadLshBand = 12,
    /// One LSH band of the prompt's tail.
    TailLshBand = 13,
    /// A hard link supplied by the host application or an echoed mark.
    HardLink = 14,
    /// The behaviour signature of a single-turn request.
    BehaviourSignature = 15,
}

impl FeatureKind {
    /// Every kind, in wire-code order.
    pub const ALL: [FeatureKind; 16] = [
        FeatureKind::HeaderOrder,
        FeatureKind::UserAgent,
        FeatureKind::Stainless,
        FeatureKind::AcceptValues,
        FeatureKind::Tls,
        FeatureKind::IpPrefix,
        FeatureKind::Asn,
        FeatureKind::Datacenter,
        FeatureKind::KeyOrder,
        FeatureKind::Params,
        FeatureKind::ToolSchema,
        FeatureKind::SystemPrompt,
        FeatureKind::HeadLshBand,
        FeatureKind::TailLshBand,
        FeatureKind::HardLink,
        FeatureKind::BehaviourSignature,
    ];

    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind of wire code `code`, if there is one.
    pub fn from_code(code: u8) -> Option<FeatureKind> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The evidence family it belongs to.
    pub const fn family(self) -> Family {
        match self {
            FeatureKind::HeaderOrder
            | FeatureKind::UserAgent
            | FeatureKind::Stainless
            | FeatureKind::AcceptValues
            | FeatureKind::Tls => Family::Client,
            FeatureKind::IpPrefix | FeatureKind::Asn | FeatureKind::Datacenter => Family::Network,
            FeatureKind::KeyOrder | FeatureKind::Params | FeatureKind::ToolSchema => Family::Shape,
            FeatureKind::SystemPrompt | FeatureKind::HeadLshBand | FeatureKind::TailLshBand => {
                Family::Template
            }
            FeatureKind::HardLink => Family::HardLink,
            FeatureKind::BehaviourSignature => Family::Behaviour,
        }
    }

    /// The snake-case name (its serde name).
    pub const fn as_str(self) -> &'static str {
        match self {
            FeatureKind::HeaderOrder => "header_order",
            FeatureKind::UserAgent => "user_agent",
            FeatureKind::Stainless => "stainless",
            FeatureKind::AcceptValues => "accept_values",
            FeatureKind::Tls => "tls",
            FeatureKind::IpPrefix => "ip_prefix",
            FeatureKind::Asn => "asn",
            FeatureKind::Datacenter => "datacenter",
            FeatureKind::KeyOrder => "key_order",
            FeatureKind::Params => "params",
            FeatureKind::ToolSchema => "tool_schema",
            FeatureKind::SystemPrompt => "system_prompt",
            FeatureKind::HeadLshBand => "head_lsh_band",
            FeatureKind::TailLshBand => "tail_lsh_band",
            FeatureKind::HardLink => "hard_link",
            FeatureKind::BehaviourSignature => "behaviour_signature",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire codes and names of the kinds as they were when kinds were
    /// strings in a table: the shared-cluster log and configs depend on them.
    const WIRE: [(Family, &str); 16] = [
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

    #[test]
    fn wire_codes_families_and_names_are_stable() {
        assert_eq!(FeatureKind::ALL.len(), WIRE.len());
        for (i, kind) in FeatureKind::ALL.into_iter().enumerate() {
            let (family, name) = WIRE[i];
            assert_eq!(usize::from(kind.code()), i, "{kind:?}");
            assert_eq!(FeatureKind::from_code(kind.code()), Some(kind));
            assert_eq!((kind.family(), kind.as_str()), (family, name));
            let json = serde_json::to_string(&kind).expect("serializes");
            assert_eq!(json, format!("\"{name}\""));
            let back: FeatureKind = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back, kind);
        }
        assert_eq!(FeatureKind::from_code(WIRE.len() as u8), None);
        assert_eq!(FeatureKind::from_code(u8::MAX), None);
    }

    #[test]
    fn family_names_are_their_serde_names() {
        for family in Family::ALL {
            let json = serde_json::to_string(&family).expect("serializes");
            assert_eq!(json, format!("\"{}\"", family.as_str()));
            assert_eq!(family.to_string(), family.as_str());
        }
    }
}
