//! State shared by every stage and every clone of every service.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::settings::Settings;
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::identity::KeyExtractor;
use crate::store::Store;

/// The one `Arc` behind a guard: settings (swappable at run time), the quota store
/// and the clock.
#[derive(Debug)]
pub struct Shared {
    pub(crate) settings: ArcSwap<Settings>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) extractor: Option<ExtractorHandle>,
    pub(crate) telemetry: crate::telemetry::Telemetry,
    pub(crate) overrides: Arc<crate::policy::Overrides>,
    pub(crate) watermark: Arc<crate::watermark::Watermarker>,
    pub(crate) detector: Arc<crate::detect::Detector>,
}

/// A key extractor kept across reloads.
#[derive(Clone)]
pub(crate) struct ExtractorHandle(pub(crate) Arc<dyn KeyExtractor>);

impl std::fmt::Debug for ExtractorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyExtractor")
    }
}

impl Shared {
    /// The settings in force now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// The quota store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Metrics, recent decisions and the audit sink.
    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.telemetry
    }

    /// Operator overrides (allowlist, blocklist, tier pins, unlinks).
    pub fn overrides(&self) -> &Arc<crate::policy::Overrides> {
        &self.overrides
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The watermark stage's state: signing keys, text marks, trace-back index.
    pub fn watermarker(&self) -> &Arc<crate::watermark::Watermarker> {
        &self.watermark
    }

    /// The detection state: fingerprint settings, linking engine, scorer. Built
    /// once; `[cluster]`, `[score]` and `[fingerprint]` changes take effect on
    /// restart (a reload keeps the learned clusters).
    pub fn detector(&self) -> &Arc<crate::detect::Detector> {
        &self.detector
    }

    /// Validates `config` and swaps it in. On error the old settings stay. Bucket
    /// state lives in the store and is untouched.
    pub fn reload(&self, config: Config) -> Result<(), ConfigError> {
        let next = Settings::build(config, self.extractor.as_ref().map(|x| x.0.clone()))?;
        self.settings.store(Arc::new(next));
        Ok(())
    }
}
