//! Replay support: the line formats of recorded traffic and decisions, and the
//! scorer that measures a replay against the traffic's ground-truth labels.
//!
//! `distill-guard replay` pushes each [`TrafficLine`]
//! through the same layer stack as `serve`, with a virtual clock driven by
//! `ts_ms`, and writes one [`DecisionLine`] per input line.
//! With `--score`, the labels of the input and the decisions go through a
//! [`Scorer`]. The `label` field never influences a decision.

pub mod format;
pub mod report;
pub mod run;
pub mod score;
mod svg;
mod text;

pub use format::{parse_decision, parse_line, DecisionLine, Label, LineError, TrafficLine, Usage};
pub use run::{
    replay, replay_observed, GroupTally, ReplayError, ReplayOptions, Replayer, Summary, Tally,
};
pub use score::{score_streams, Report, ScoreError, Scorer};
