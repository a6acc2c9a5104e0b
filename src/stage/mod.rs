//! What the detect and enforce stages share, below both: the runtime form of
//! the config ([`Settings`], swapped whole on reload through [`LiveSettings`]),
//! identifying and buffering a request once (`prepare`), and the
//! [`DecisionSink`] the enforce stage reports its decisions to.
//!
//! Nothing here knows the guard that composes the stages or the operator
//! surface that reads their reports: the guard hands each stage its parts, and
//! the operator side (metrics, decision memory, audit log) plugs in as a sink.

mod prepare;
mod settings;
mod sink;

pub(crate) use prepare::prepare;
pub use settings::{LiveSettings, Settings, Tier};
pub use sink::DecisionSink;
