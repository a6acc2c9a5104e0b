//! Typed request and response extensions: the only way the stages talk.
//!
//! The fingerprint stage inserts [`Account`], [`Cluster`] and [`Suspicion`] (and a
//! `Fingerprint`); the enforce stage reads them and inserts a [`Decision`] into both
//! the request (for handlers) and the response (for the watermark stage and for
//! logs). A host application may insert any of them itself before the guard runs,
//! for example a [`Cluster`] from its own abuse system, a [`TierName`] from its
//! billing data or a [`HardLink`] from its payment processor.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// 128 bits rendered as 32 lowercase hex digits.
fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8; 16]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

pub(crate) fn parse_hex(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// The raw 128-bit value.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// Parses the 32-hex-digit form produced by `Display`, with or without
            /// its prefix.
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.strip_prefix($prefix).unwrap_or(s);
                parse_hex(s).map(Self)
            }

            /// True when the 32-hex-digit form starts with `prefix` (hex digits in
            /// either case; the type's own prefix, if any, is allowed). An empty
            /// or non-hex prefix matches nothing.
            pub fn starts_with_hex(&self, prefix: &str) -> bool {
                let prefix = prefix.strip_prefix($prefix).unwrap_or(prefix);
                !prefix.is_empty()
                    && prefix.len() <= 32
                    && prefix.chars().enumerate().all(|(i, c)| {
                        let b = self.0[i / 2];
                        let nibble = if i % 2 == 0 { b >> 4 } else { b & 0xf };
                        c.to_digit(16) == Some(u32::from(nibble))
                    })
            }

            /// The first 8 bytes as an integer, for cheap hashing and sampling.
            pub fn low_u64(&self) -> u64 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.0[..8]);
                u64::from_le_bytes(b)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($prefix)?;
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(concat!("expected a ", stringify!($name), " (32 hex digits)"))
                })
            }
        }
    };
}

id_type!(
    /// An account: the keyed hash (HMAC-SHA256, truncated to 128 bits) of its API key.
    ///
    /// The raw key is never stored, logged or shown; only this value is.
    AccountId,
    ""
);

id_type!(
    /// A cluster of accounts believed to be run by one operator.
    ///
    /// An account that is linked to nobody is its own cluster, with the same bits as
    /// its [`AccountId`].
    ClusterId,
    "c_"
);

impl ClusterId {
    /// The singleton cluster of one account.
    pub fn of_account(account: AccountId) -> Self {
        Self(account.0)
    }

    /// A cluster named by the host application (an organisation id, say), hashed to
    /// the same 128-bit space.
    pub fn from_name(name: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"distill-guard/cluster-name\0")
            .chain_update(name.as_bytes())
            .finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Self(out)
    }
}

/// The account a request is charged to. Inserted by the first guard stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    /// The keyed hash of the API key (or of the network, for anonymous traffic).
    pub id: AccountId,
    /// True when the request carried no key and is keyed by its network.
    pub anonymous: bool,
}

/// The cluster a request's account belongs to, and the cluster's member count.
///
/// The quota stage scales a cluster's budget as `tier × size^exponent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// The cluster.
    pub id: ClusterId,
    /// How many accounts it holds (at least 1).
    pub size: u32,
}

impl Cluster {
    /// The singleton cluster of `account`.
    pub fn singleton(account: AccountId) -> Self {
        Self {
            id: ClusterId::of_account(account),
            size: 1,
        }
    }
}

/// How suspicious a request's account and cluster are, in `0.0..=1.0`.
///
/// The quota stage maps it to a rate multiplier through the configured bands.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
pub struct Suspicion(pub f64);

impl Suspicion {
    /// Clamps `value` into `0.0..=1.0` (NaN becomes 0).
    pub fn new(value: f64) -> Self {
        if value.is_nan() {
            Self(0.0)
        } else {
            Self(value.clamp(0.0, 1.0))
        }
    }

    /// The value.
    pub fn value(self) -> f64 {
        self.0
    }
}

/// The rung of the action ladder a request is on, from mildest to harshest.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Served normally.
    #[default]
    Allow,
    /// Served, with a signed provenance tag.
    Tag,
    /// Served under a smaller quota (the suspicion band's multiplier).
    Throttle,
    /// Served with reasoning stripped and the output capped.
    Degrade,
    /// Refused with 403.
    Block,
}

impl Action {
    /// All actions, mildest first.
    pub const ALL: [Action; 5] = [
        Action::Allow,
        Action::Tag,
        Action::Throttle,
        Action::Degrade,
        Action::Block,
    ];

    /// The lowercase name used in configs, logs and replay output.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Tag => "tag",
            Action::Throttle => "throttle",
            Action::Degrade => "degrade",
            Action::Block => "block",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One weighted signal behind a suspicion score, for explanations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// A short stable name, e.g. `cluster_size` or `cot_elicitation`.
    pub signal: Arc<str>,
    /// Its contribution to the score.
    pub weight: f64,
}

/// What the scorer concluded for this request: the rung of the ladder and why.
///
/// Inserted by the fingerprint stage when clustering is on; the enforce stage
/// blocks, degrades or throttles accordingly, and the watermark stage tags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The action the scorer chose.
    pub action: Action,
    /// The top signals, largest first.
    pub reasons: Vec<Reason>,
}

/// Which limit a denial hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The account's own buckets.
    Account,
    /// The cluster's shared buckets.
    Cluster,
}

impl Scope {
    /// `account` or `cluster`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Cluster => "cluster",
        }
    }
}

/// The outcome of the enforce stage, inserted into the request (before the handler)
/// and into the response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// The request's `x-request-id`, when it carried a usable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Arc<str>>,
    /// The account charged.
    pub account: AccountId,
    /// Its cluster and the cluster's size.
    pub cluster: Cluster,
    /// The suspicion the request carried.
    pub suspicion: f64,
    /// The rung of the ladder applied.
    pub action: Action,
    /// The HTTP status the guard decided on (200 when the request was let through).
    pub status: u16,
    /// Which limit denied the request, if one did.
    pub limited_by: Option<Scope>,
    /// True when shadow mode let through a request that would have been rejected.
    pub shadowed: bool,
    /// Tokens reserved on admission.
    pub reserved_tokens: u64,
    /// The tier the account was charged under.
    pub tier: Arc<str>,
    /// The model group of the tier (`[tiers.NAME.models."PATTERN"]`, named by
    /// its pattern as written) whose buckets the request was charged to
    /// besides the tier's; `None` when its model matched no group or it named
    /// no model. Never the raw model string, so it is safe as a metrics label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_group: Option<Arc<str>>,
    /// True when the limit that denied the request (see `limited_by`) was its
    /// model group's, false when it was the tier-wide one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub limited_in_group: bool,
    /// The top signals behind the action, largest first.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// True when the response carries content that reached the client unchanged
    /// (allowed, tagged or throttled but admitted).
    pub fn delivered(&self) -> bool {
        self.status < 400
    }
}

/// A tier chosen by the host application for this request, overriding the config's
/// account-to-tier map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierName(pub Arc<str>);

/// A hard link supplied by the host application: a value that only one operator can
/// share (a payment instrument or signup-device hash). Accounts that share one are
/// linked outright.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HardLink(pub Arc<str>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_display_and_serde() {
        let a = AccountId([0xab; 16]);
        assert_eq!(a.to_string(), "ab".repeat(16));
        assert_eq!(AccountId::parse(&a.to_string()), Some(a));
        let c = ClusterId::from_name("org-1");
        let s = c.to_string();
        assert!(s.starts_with("c_"));
        assert_eq!(ClusterId::parse(&s), Some(c));
        let json = serde_json::to_string(&c).expect("serialize");
        let back: ClusterId = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, c);
        assert!(AccountId::parse("xyz").is_none());
        assert!(a.starts_with_hex("abAB"));
        assert!(a.starts_with_hex("aba"));
        assert!(!a.starts_with_hex("abc"));
        assert!(!a.starts_with_hex(""));
        assert!(!a.starts_with_hex(&"ab".repeat(17)));
        assert!(
            c.starts_with_hex(&c.to_string()[..10]),
            "with its c_ prefix"
        );
        assert!(AccountId::parse(&"g".repeat(32)).is_none());
    }

    #[test]
    fn suspicion_is_clamped() {
        assert_eq!(Suspicion::new(1.7).value(), 1.0);
        assert_eq!(Suspicion::new(-0.2).value(), 0.0);
        assert_eq!(Suspicion::new(f64::NAN).value(), 0.0);
    }

    #[test]
    fn actions_are_ordered_mildest_first() {
        assert!(Action::Allow < Action::Tag);
        assert!(Action::Degrade < Action::Block);
        assert_eq!(Action::Throttle.as_str(), "throttle");
    }
}
