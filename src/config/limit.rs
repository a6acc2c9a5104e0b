//! A limit of the quota sections: a positive count, or `"unlimited"`; shared by
//! `[tiers.NAME]` and its `models` groups.

use serde::{Deserialize, Serialize};

/// A limit: a positive count, or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Limit {
    /// At most this many per window.
    Count(u64),
    /// No limit for this window.
    Unlimited(Unlimited),
}

/// The word `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unlimited {
    /// No limit.
    Unlimited,
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Limit;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a positive integer or \"unlimited\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Limit, E> {
                Ok(Limit::Count(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Limit, E> {
                u64::try_from(n)
                    .map(Limit::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Limit, E> {
                if s == "unlimited" {
                    Ok(Limit::Unlimited(Unlimited::Unlimited))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(s), &self))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Limit {
    /// The count, or `None` when unlimited.
    pub fn limit(self) -> Option<u64> {
        match self {
            Limit::Count(n) => Some(n),
            Limit::Unlimited(_) => None,
        }
    }
}
