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

mod error;
mod model;
mod parse;
mod validate;
mod warnings;

pub(crate) use error::Errors;
pub use error::{ConfigError, FieldError};
pub use model::*;
pub use parse::{check_toml, locate, Located};
