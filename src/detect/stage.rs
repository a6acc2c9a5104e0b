//! [`DetectStage`]: the detect stage's state.

use std::sync::Arc;

use super::links::LinkSource;
use super::Detector;
use crate::clock::Clock;
use crate::stage::LiveSettings;

/// What the detect stage owns: the detector, the settings in force, the clock
/// and where extra hard links come from. Built by
/// [`DetectLayer`](super::DetectLayer); shared by every service it makes.
#[derive(Clone)]
pub struct DetectStage {
    pub(crate) settings: LiveSettings,
    pub(crate) detector: Arc<Detector>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) links: Arc<dyn LinkSource>,
}

impl std::fmt::Debug for DetectStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectStage").finish_non_exhaustive()
    }
}
