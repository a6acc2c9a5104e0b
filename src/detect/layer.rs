use std::sync::Arc;

use tower::Layer;

use super::links::LinkSource;
use super::service::Detect;
use super::stage::DetectStage;
use super::Detector;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::stage::LiveSettings;

/// Applies [`Detect`]: fingerprinting, account linking and scoring. Cheap to
/// clone; every service it makes shares one detector.
#[derive(Clone)]
pub struct DetectLayer {
    pub(crate) stage: Arc<DetectStage>,
}

impl std::fmt::Debug for DetectLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectLayer").finish_non_exhaustive()
    }
}

impl DetectLayer {
    /// The detect stage over `detector`, reading the settings in force from
    /// `settings` and the time from `clock`.
    pub fn new(settings: LiveSettings, detector: Arc<Detector>, clock: Arc<dyn Clock>) -> Self {
        Self {
            stage: Arc::new(DetectStage {
                settings,
                detector,
                clock,
                links: Arc::new(()),
            }),
        }
    }

    /// The detect stage alone, built from `config` with the system clock (no
    /// cluster sharing between replicas; [`Guard`](crate::Guard) wires that).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let detector = Arc::new(Detector::from_config(config)?);
        let settings = LiveSettings::from_config(config.clone())?;
        Ok(Self::new(settings, detector, Arc::new(SystemClock)))
    }

    /// Takes extra hard links from `source` (see [`LinkSource`]).
    pub fn with_link_source(mut self, source: impl LinkSource) -> Self {
        Arc::make_mut(&mut self.stage).links = Arc::new(source);
        self
    }

    /// The detector this stage feeds.
    pub fn detector(&self) -> &Arc<Detector> {
        &self.stage.detector
    }
}

impl<S> Layer<S> for DetectLayer {
    type Service = Detect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Detect {
            inner,
            stage: self.stage.clone(),
        }
    }
}
