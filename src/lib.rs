//! Tower layers that protect LLM model-serving APIs from large-scale distillation.
#![doc = include_str!("../README.md")]

pub mod clock;
pub mod config;
pub mod dialect;
pub mod extensions;
pub mod features;
pub mod guard;
pub mod identity;
pub mod network;
pub mod proxy;
pub mod quota;
pub mod request;
pub mod store;
pub mod watermark;

pub use config::Config;
pub use guard::{Guard, GuardBuilder, GuardLayer};
