//! The parts a guard composes, shared by every clone of every stage.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::detect::{DetectLayer, Detector};
use crate::identity::KeyExtractor;
use crate::policy::Overrides;
use crate::quota::EnforceLayer;
use crate::stage::{LiveSettings, Settings};
use crate::store::Store;
use crate::watermark::Watermarker;

/// The parts behind a guard: the settings in force (swappable at run time), the
/// quota store, the clock, the operators' overrides, and each stage's state.
/// Every stage owns its state; this only holds them together.
#[derive(Debug)]
pub struct Shared {
    pub(crate) settings: LiveSettings,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) extractor: Option<ExtractorHandle>,
    pub(crate) overrides: Arc<Overrides>,
    pub(crate) watermark: Arc<Watermarker>,
    pub(crate) detect: DetectLayer,
    pub(crate) enforce: EnforceLayer,
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
        self.settings.load()
    }

    /// The handle every stage reads the settings through.
    pub fn live_settings(&self) -> &LiveSettings {
        &self.settings
    }

    /// The quota store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Operator overrides (allowlist, blocklist, tier pins, unlinks).
    pub fn overrides(&self) -> &Arc<Overrides> {
        &self.overrides
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The watermark stage's state: signing keys, text marks, trace-back index.
    pub fn watermarker(&self) -> &Arc<Watermarker> {
        &self.watermark
    }

    /// The detection state: fingerprint settings, linking engine, scorer. Built
    /// once; `[cluster]`, `[score]` and `[fingerprint]` changes take effect on
    /// restart (a reload keeps the learned clusters).
    pub fn detector(&self) -> &Arc<Detector> {
        self.detect.detector()
    }

    /// Validates `config` and swaps it in for every stage. On error the old
    /// settings stay. Bucket state lives in the store and is untouched.
    pub fn reload(&self, config: Config) -> Result<(), ConfigError> {
        let next = Settings::build(config, self.extractor.as_ref().map(|x| x.0.clone()))?;
        self.settings.store(next);
        Ok(())
    }
}
