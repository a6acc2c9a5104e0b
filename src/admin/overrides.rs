//! The wire form of an override change (`POST /api/overrides`); the overrides
//! themselves are enforcement policy ([`crate::policy`]).

use serde::{Deserialize, Serialize};

use crate::policy::OverrideAction;

/// One change, as posted to `POST /api/overrides`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The account hash (32 hex digits).
    pub account: String,
    /// `allow`, `block`, `unlist`, `pin_tier` (needs `tier`), `unpin_tier`,
    /// `unlink`, `relink` or `clear` (everything).
    pub action: OverrideAction,
    /// The tier for `pin_tier`.
    #[serde(default)]
    pub tier: Option<String>,
    /// A note kept with the override.
    #[serde(default)]
    pub note: Option<String>,
}
