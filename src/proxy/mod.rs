//! The `serve` reverse proxy and the built-in demo model.
//!
//! [`server::stack`] is the one place the guarded stack is assembled, so `serve`,
//! `replay` and the end-to-end tests all run exactly the same layers.

mod boxed;
pub mod demo;
pub mod limits;
pub mod server;
pub mod upstream;

pub use crate::config::{parse_upstream, UpstreamUrlError};
pub use upstream::UpstreamError;
