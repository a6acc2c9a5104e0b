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
mod error;
mod model;
mod store;
mod validate;

use std::path::Path;

pub use admin::{AdminConfig, DEFAULT_RECENT_DECISIONS, MIN_TOKEN_LEN};
pub use audit::AuditConfig;
pub(crate) use error::Errors;
pub use error::{ConfigError, FieldError};
pub use model::*;
#[cfg(not(feature = "redis"))]
pub(crate) use store::no_redis;
#[cfg(feature = "redis")]
pub(crate) use store::{check_url, is_tls, parse_sentinel, SENTINEL_SCHEME};
pub use store::{Backend, OnError, StoreConfig, MAX_TIMEOUT};

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let path = e
                .span()
                .map(|span| line_col(text, span.start))
                .map(|(l, c)| format!("line {l}, column {c}"))
                .unwrap_or_default();
            ConfigError::single(path, e.message().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
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

/// The 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}
