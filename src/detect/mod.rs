//! The detect stage, outermost in the guard: fingerprint → link → score.
//!
//! For every request [`Detect`] identifies the account (the shared
//! `prepare` step: 401 without a key, 413 for oversized bodies), computes its
//! [`Fingerprint`](crate::fingerprint::Fingerprint), feeds its features — plus a
//! host-supplied [`HardLink`](crate::extensions::HardLink) — to the
//! [`ClusterEngine`](crate::cluster::ClusterEngine), scores it with the
//! [`Scorer`](crate::score::Scorer), and inserts the `Fingerprint`,
//! [`Cluster`](crate::extensions::Cluster), [`Suspicion`](crate::extensions::Suspicion)
//! and [`Verdict`](crate::extensions::Verdict) extensions. Extensions the host
//! application inserted itself (its own `Cluster`, `Suspicion` or `Verdict`) are
//! kept.
//!
//! The enforce stage inside acts on them: `block` answers 403, suspicion bands
//! shrink quotas, clusters share buckets. The `degrade` action is applied here:
//! the request body is rewritten with the output cap lowered to
//! `score.degrade_max_output_tokens` and reasoning settings removed (see
//! [`degrade_body`]), so the model produces no reasoning to strip and the enforce
//! stage reserves the smaller amount. Nothing is rewritten in shadow mode.

mod body;
mod degrade;
mod detector;
mod layer;
mod links;
mod service;
mod stage;

pub use body::DetectBody;
pub use degrade::degrade_body;
pub use detector::{hard_link_feature, Detection, Detector, SharedDetector};
pub use layer::DetectLayer;
pub use links::LinkSource;
pub use service::{Detect, DetectFuture};
pub use stage::DetectStage;

#[cfg(test)]
mod tests;
