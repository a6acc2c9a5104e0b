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
}

impl Family {
    /// All families.
    pub const ALL: [Family; 6] = [
        Family::Client,
        Family::Network,
        Family::Shape,
        Family::Template,
        Family::Timing,
        Family::HardLink,
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
