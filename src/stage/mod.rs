//! What the detect and enforce stages share, below both: the runtime form of
//! the config ([`Settings`], swapped whole on reload through [`LiveSettings`]),
//! identifying and buffering a request once, the service skeleton both stages
//! run in ([`StageService`], whose future is a state machine, never boxed), and
//! the [`DecisionSink`] the enforce stage reports its decisions to.
//!
//! Nothing here knows the guard that composes the stages or the operator
//! surface that reads their reports: the guard hands each stage its parts, and
//! the operator side (metrics, decision memory, audit log) plugs in as a sink.

mod prepare;
mod service;
mod settings;
mod sink;

pub(crate) use prepare::{prepared, unprepared};
pub(crate) use service::Sealed;
pub use service::{Stage, StageFuture, StageService, Step};
pub use settings::{LiveSettings, ModelGroup, Settings, Tier};
pub use sink::DecisionSink;
