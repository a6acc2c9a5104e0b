//! [`Guard`]: one shared state, every stage's layer, and the composed
//! [`GuardLayer`].
//!
//! Layer order, outermost first: fingerprint → enforce → watermark → your handler.
//! `guard.layer()` composes them over one `Arc` of shared state; each stage's own
//! layer (`guard.enforce_layer()`, …) also works alone.

mod prepare;
mod settings;
mod shared;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tower::Layer;

pub use settings::{Settings, Tier};
pub use shared::Shared;

pub(crate) use prepare::prepare;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::detect::{Detect, DetectLayer, Detector};
use crate::identity::KeyExtractor;
use crate::quota::{Enforce, EnforceLayer};
use crate::store::Store;
use crate::watermark::{Watermark, WatermarkLayer};
use shared::ExtractorHandle;

/// The guard: build it once, then add `guard.layer()` to your stack.
#[derive(Debug, Clone)]
pub struct Guard {
    shared: Arc<Shared>,
}

impl Guard {
    /// A guard with the embedded store and the system clock.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder for choosing the store, clock or key extractor.
    pub fn builder(config: Config) -> GuardBuilder {
        GuardBuilder {
            config,
            store: None,
            clock: None,
            extractor: None,
        }
    }

    /// All stages, composed: the layer to add to an Axum `Router` or a Tower stack.
    pub fn layer(&self) -> GuardLayer {
        GuardLayer {
            shared: self.shared.clone(),
        }
    }

    /// The watermark stage alone.
    pub fn watermark_layer(&self) -> WatermarkLayer {
        WatermarkLayer::new(self.shared.watermark.clone())
    }

    /// The detect stage alone (fingerprint, link, score).
    pub fn detect_layer(&self) -> DetectLayer {
        DetectLayer {
            shared: self.shared.clone(),
        }
    }

    /// The enforce stage alone.
    pub fn enforce_layer(&self) -> EnforceLayer {
        EnforceLayer {
            shared: self.shared.clone(),
        }
    }

    /// The shared state (settings, store, clock).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Validates and swaps in a new config without touching bucket state. On error
    /// the old config stays in force.
    pub fn reload(&self, config: Config) -> Result<(), ConfigError> {
        self.shared.reload(config)
    }
}

/// Builds a [`Guard`]; every method consumes and returns the builder.
#[derive(Debug)]
pub struct GuardBuilder {
    config: Config,
    store: Option<Arc<dyn Store>>,
    clock: Option<Arc<dyn Clock>>,
    extractor: Option<ExtractorHandle>,
}

impl GuardBuilder {
    /// Keeps quota state in `store` instead of the embedded in-memory one.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Reads time from `clock` (tests and replay use a `ManualClock`).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Takes the API key from `extractor` instead of `Authorization`/`x-api-key`.
    pub fn key_extractor(mut self, extractor: impl KeyExtractor) -> Self {
        self.extractor = Some(ExtractorHandle(Arc::new(extractor)));
        self
    }

    /// Validates the config and builds the guard. With `[store] backend = "redis"`
    /// this must run inside a Tokio runtime.
    pub fn build(self) -> Result<Guard, ConfigError> {
        let clock: Arc<dyn Clock> = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let watermark = Arc::new(
            crate::watermark::Watermarker::from_config(&self.config.watermark)?
                .with_clock(clock.clone()),
        );
        let recent = self.config.admin.recent_decisions;
        // The store named by `[store]` unless the builder was given one.
        let store = match self.store {
            Some(s) => s,
            None => crate::store::build_store(&self.config.store)?,
        };
        let detector = Detector::from_config_shared(&self.config, clock.clone())?;
        let store_config = self.config.store.clone();
        let settings = Settings::build(self.config, self.extractor.as_ref().map(|x| x.0.clone()))?;
        let shared = Shared {
            watermark,
            settings: ArcSwap::from_pointee(settings),
            store,
            clock,
            extractor: self.extractor,
            telemetry: crate::telemetry::Telemetry::new(recent),
            overrides: Arc::new(crate::policy::Overrides::new()),
            detector,
        };
        let shared = Arc::new(shared);
        if store_config.backend == crate::store::Backend::Redis {
            let remote = crate::policy::RemoteOverrides::start(
                &store_config,
                Arc::downgrade(&shared.overrides),
            )?;
            shared.overrides.attach_remote(remote);
        }
        Ok(Guard { shared })
    }
}

/// Every stage of the guard over one shared state. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct GuardLayer {
    shared: Arc<Shared>,
}

/// The service [`GuardLayer`] produces around `S`: detect, then enforce, then
/// watermark.
pub type GuardService<S> = Detect<Enforce<Watermark<S>>>;

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = WatermarkLayer::new(self.shared.watermark.clone()).layer(inner);
        let enforce = EnforceLayer {
            shared: self.shared.clone(),
        }
        .layer(inner);
        DetectLayer {
            shared: self.shared.clone(),
        }
        .layer(enforce)
    }
}
