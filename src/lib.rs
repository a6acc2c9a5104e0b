//! Tower layers that protect LLM model-serving APIs from large-scale distillation.
#![doc = include_str!("../README.md")]

pub mod admin;
pub mod audit;
pub mod body;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod detect;
pub mod dialect;
pub mod extensions;
pub mod features;
pub mod fingerprint;
pub mod guard;
pub mod identity;
pub mod network;
pub mod policy;
pub mod proxy;
pub mod quota;
pub mod reload;
pub mod replay;
pub mod request;
pub mod score;
pub mod simulate;
pub mod stage;
pub mod store;
pub mod telemetry;
pub mod watermark;

pub use config::Config;
pub use guard::{Guard, GuardBuilder, GuardLayer};
