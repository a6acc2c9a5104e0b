//! Suspicion per account and per cluster, and the action ladder.
//!
//! Signals, each in `0..=1` and multiplied by its configured weight:
//!
//! * per cluster (times the size factor `1 - exp(-(n-1)/size_scale)`): being in
//!   a cluster, template reuse (share of its links that were template links),
//!   near-identical volumes (spread of members' mean inter-arrival times), bursts
//!   of new members, and the cluster's averages of the content signals;
//! * per account: chain-of-thought elicitation, narrow focus (coding, agentic
//!   tool use, planning), `logprobs`/`logit_bias` probing, contradictory client
//!   headers, machine-regular timing — capped at `unlinked_cap`, below the
//!   throttle rung, so an account in no cluster is never throttled on content
//!   alone.
//!
//! A request's suspicion is the larger of its account's and its cluster's
//! levels. Levels rise at once and fall back with `deescalate_half_life`
//! (hysteresis), and map to the ladder allow → tag → throttle → degrade → block.
//! Every [`Verdict`](crate::extensions::Verdict) lists its top signals and their
//! contributions.

mod scorer;
mod signals;

pub use crate::config::{Ladder, ScoreConfig, SignalWeights};
pub use scorer::{Assessment, Scorer};
pub use signals::Signals;
