//! [`EnforceStage`]: the enforce stage's state.

use std::sync::Arc;

use crate::clock::Clock;
use crate::policy::Overrides;
use crate::stage::{DecisionSink, LiveSettings};
use crate::store::Store;

/// What the enforce stage owns: the settings in force, the quota store, the
/// clock, the operators' overrides and where decisions are reported. Built by
/// [`EnforceLayer`](super::EnforceLayer); shared by every service it makes and
/// every body that settles a reservation.
#[derive(Clone)]
pub struct EnforceStage {
    pub(crate) settings: LiveSettings,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) overrides: Arc<Overrides>,
    pub(crate) sink: Arc<dyn DecisionSink>,
}

impl std::fmt::Debug for EnforceStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnforceStage")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}
