//! The TOML configuration: serde structs, validation, and loading.
//!
//! Every field is documented on its struct below; `examples/guard.toml` is the same
//! reference with comments. [`Config::from_toml_str`] parses and validates in one go
//! and reports *every* problem with its TOML path:
//!
//! ```
//! use distill_guard::config::Config;
//!
//! let cfg = Config::from_toml_str(r#"
//!     [identity]
//!     secret = "a long random secret"
//!     [tiers.default]
//!     requests_per_minute = 60
//!     tokens_per_minute = 150000
//! "#).expect("valid config");
//! assert_eq!(cfg.tiers["default"].requests_per_minute.limit(), Some(60));
//!
//! let err = Config::from_toml_str(r#"
//!     [identity]
//!     [tiers.default]
//!     requests_per_minute = 0
//! "#).unwrap_err();
//! let text = err.to_string();
//! assert!(text.contains("identity.secret"));
//! assert!(text.contains("tiers.default.requests_per_minute"));
//! ```

mod admin;
mod audit;
mod cluster;
mod error;
mod fingerprint;
mod limit;
mod model;
mod models;
mod parse;
mod score;
mod store;
mod upstream;
mod validate;
mod warnings;
mod watermark;

use std::path::Path;

pub use admin::{AdminConfig, DEFAULT_RECENT_DECISIONS, MIN_TOKEN_LEN};
pub use audit::AuditConfig;
pub use cluster::{BehaviourEvidence, ClusterConfig, FamilyCounts, FamilyWeights};
pub(crate) use error::Errors;
pub use error::{ConfigError, FieldError};
pub use fingerprint::FingerprintSection;
pub use limit::{Limit, Unlimited};
pub use model::*;
pub use models::{best_match, ModelLimits, ModelPattern, PatternError, MAX_PATTERN_LEN};
pub use parse::{check_toml, locate, Located};
pub use score::{Ladder, ScoreConfig, SignalWeights};
#[cfg(not(feature = "redis"))]
pub(crate) use store::no_redis;
#[cfg(feature = "redis")]
pub(crate) use store::{check_cluster_nodes, check_url, is_tls, parse_sentinel, SENTINEL_SCHEME};
pub use store::{Backend, OnError, StoreConfig, MAX_TIMEOUT};
pub use upstream::{parse_upstream, UpstreamUrlError};
pub(crate) use watermark::validate as validate_watermark;
pub use watermark::{
    valid_key_id, KeyConfig, SecretError, TagPolicy, TextMarkPolicy, WatermarkConfig,
    MAX_KEY_ID_LEN,
};

impl Config {
    /// Parses and validates TOML text. Every problem is reported at once: syntax
    /// errors, wrong types and unknown fields (each with its TOML path and line),
    /// then validation ([`check_toml`] gives them located).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        parse::check_toml(text).map_err(parse::to_config_error)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single("", format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }

    /// Checks every field and reports every problem with its path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Errors::default();
        validate::validate(self, &mut errors);
        errors.finish()
    }
}
