//! Tower layers that protect LLM model-serving APIs from large-scale distillation.
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The Tower layers and what they are made of (always built).
pub mod body;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod detect;
pub mod dialect;
pub mod encoding;
pub mod extensions;
pub mod features;
pub mod fingerprint;
pub mod guard;
pub mod identity;
pub mod network;
pub mod policy;
pub mod quota;
pub mod request;
pub mod score;
pub mod stage;
pub mod store;
pub mod watermark;

// The operator surface and the binary's tools, behind Cargo features.
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod audit;
#[cfg(any(feature = "admin", feature = "proxy"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "admin", feature = "proxy"))))]
pub mod listen;
#[cfg(feature = "proxy")]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy")))]
pub mod proxy;
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod reload;
#[cfg(feature = "replay")]
#[cfg_attr(docsrs, doc(cfg(feature = "replay")))]
pub mod replay;
#[cfg(feature = "simulate")]
#[cfg_attr(docsrs, doc(cfg(feature = "simulate")))]
pub mod simulate;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod telemetry;

pub use config::Config;
pub use guard::{Guard, GuardBuilder, GuardLayer};
