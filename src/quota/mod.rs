//! The enforce stage: GCRA buckets per account and per cluster, for requests and
//! LLM tokens, per minute and per day.
//!
//! For each request the stage
//!
//! 1. finds the account (API key hash), its tier, its [`Cluster`](crate::extensions::Cluster)
//!    and its [`Suspicion`](crate::extensions::Suspicion) from request extensions;
//! 2. computes effective limits: the tier's per-account limits times the suspicion
//!    band's multiplier, and for the cluster additionally times
//!    `members^cluster_exponent`;
//! 3. reserves one request and `input estimate + n × output cap` tokens on all of
//!    the account's and cluster's buckets at once, or none (429 naming the limit,
//!    with `Retry-After`); a request larger than a whole bucket gets 400;
//! 4. forwards the request, writes the dialect's rate-limit headers on the
//!    response, and reconciles the reservation with the response's `usage` when
//!    the body ends or is dropped.
//!
//! A [`Verdict`](crate::extensions::Verdict) of `block` answers 403. In shadow
//! mode every decision is made and reported (in the [`Decision`](crate::extensions::Decision)
//! extension and logs) but nothing is rejected.

mod body;
pub mod headers;
mod layer;
mod service;
mod stage;
pub mod usage;

pub use body::EnforceBody;
pub use layer::EnforceLayer;
pub use service::{Enforce, EnforceFuture};
pub use stage::EnforceStage;

#[cfg(test)]
mod tests;
