use std::sync::Arc;

use tower::Layer;

use super::service::Enforce;
use super::stage::EnforceStage;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::policy::Overrides;
use crate::stage::{DecisionSink, LiveSettings};
use crate::store::Store;

/// Applies [`Enforce`]: per-account and per-cluster quotas for requests and
/// tokens. Cheap to clone; every service it makes shares one store, so the
/// limits hold across all of them.
#[derive(Clone)]
pub struct EnforceLayer {
    pub(crate) stage: Arc<EnforceStage>,
}

impl std::fmt::Debug for EnforceLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnforceLayer")
            .field("store", &self.stage.store)
            .finish_non_exhaustive()
    }
}

impl EnforceLayer {
    /// The enforce stage over `store`, reading the settings in force from
    /// `settings` and the time from `clock`; no overrides, decisions reported
    /// nowhere.
    pub fn new(settings: LiveSettings, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            stage: Arc::new(EnforceStage {
                settings,
                store,
                clock,
                overrides: Arc::new(Overrides::new()),
                sink: Arc::new(()),
            }),
        }
    }

    /// The enforce stage alone, built from `config`: the store `[store]` names
    /// (Redis must be built inside a Tokio runtime) and the system clock. Without
    /// the detect stage in front, every account is its own cluster and suspicion
    /// is 0 unless the host application inserts `Cluster`, `Suspicion` or
    /// `Verdict` extensions itself.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let store = crate::store::build_store(&config.store)?;
        let settings = LiveSettings::from_config(config.clone())?;
        Ok(Self::new(settings, store, Arc::new(SystemClock)))
    }

    /// Honours `overrides` (allowlist, blocklist, tier pins, unlinks).
    pub fn with_overrides(mut self, overrides: Arc<Overrides>) -> Self {
        Arc::make_mut(&mut self.stage).overrides = overrides;
        self
    }

    /// Reports every decision to `sink`.
    pub fn with_sink(mut self, sink: impl DecisionSink) -> Self {
        Arc::make_mut(&mut self.stage).sink = Arc::new(sink);
        self
    }
}

impl<S> Layer<S> for EnforceLayer {
    type Service = Enforce<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Enforce {
            inner,
            stage: self.stage.clone(),
        }
    }
}
