//! [`Guard`]: builds every stage from one config and composes them into
//! [`GuardLayer`].
//!
//! Layer order, outermost first: fingerprint → enforce → watermark → your handler.
//! Each stage owns its state; the guard hands them their parts (one settings
//! handle that a reload swaps for all of them, the store, the clock, the
//! operators' overrides, the decision sink) and wires the one link between two
//! stages, the watermark stage's text marks as hard links for the detect stage.
//! Each stage's own layer (`guard.enforce_layer()`, …) also works alone.

mod shared;

use std::sync::Arc;

use tower::Layer;

pub use shared::Shared;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::detect::{Detect, DetectLayer, Detector};
use crate::identity::KeyExtractor;
use crate::policy::Overrides;
use crate::quota::{Enforce, EnforceLayer};
use crate::stage::{DecisionSink, LiveSettings, Settings};
use crate::store::Store;
use crate::watermark::{Watermark, WatermarkLayer, Watermarker};
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

    /// A builder for choosing the store, clock, key extractor or decision sink.
    pub fn builder(config: Config) -> GuardBuilder {
        GuardBuilder {
            config,
            store: None,
            clock: None,
            extractor: None,
            sink: None,
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
        self.shared.detect.clone()
    }

    /// The enforce stage alone.
    pub fn enforce_layer(&self) -> EnforceLayer {
        self.shared.enforce.clone()
    }

    /// The parts the guard composes (settings, store, clock, overrides, the
    /// stages' state).
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
    sink: Option<Arc<dyn DecisionSink>>,
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

    /// Reports every decision of the enforce stage to `sink` (by default
    /// nowhere). Give `Arc<Telemetry>` here and the same `Arc` to the admin API
    /// for metrics, the decision memory and the audit log.
    pub fn sink(mut self, sink: Arc<dyn DecisionSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Validates the config and builds the guard. With `[store] backend = "redis"`
    /// this must run inside a Tokio runtime.
    pub fn build(self) -> Result<Guard, ConfigError> {
        let clock: Arc<dyn Clock> = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let watermark =
            Arc::new(Watermarker::from_config(&self.config.watermark)?.with_clock(clock.clone()));
        // The store named by `[store]` unless the builder was given one.
        let store = match self.store {
            Some(s) => s,
            None => crate::store::build_store(&self.config.store)?,
        };
        let detector = Detector::from_config_shared(&self.config, clock.clone())?;
        let overrides = Arc::new(Overrides::new());
        #[cfg(feature = "redis")]
        if crate::watermark::share::wanted(&self.config.store) {
            crate::watermark::share::share(watermark.index(), &self.config.store)?;
        }
        #[cfg(feature = "redis")]
        if self.config.store.backend.is_redis() {
            let remote = crate::policy::RemoteOverrides::start(
                &self.config.store,
                Arc::downgrade(&overrides),
            )?;
            overrides.attach_remote(remote);
        }
        let settings = LiveSettings::new(Settings::build(
            self.config,
            self.extractor.as_ref().map(|x| x.0.clone()),
        )?);
        // The detect stage learns of text marks echoed across accounts from the
        // watermark stage, through the guard: neither stage knows the other.
        let marks = watermark.clone();
        let detect = DetectLayer::new(settings.clone(), detector, clock.clone()).with_link_source(
            move |account: &_, request: &_, links: &mut _| {
                marks.echo_links(account, request, links)
            },
        );
        let mut enforce = EnforceLayer::new(settings.clone(), store.clone(), clock.clone())
            .with_overrides(overrides.clone());
        if let Some(sink) = self.sink {
            enforce = enforce.with_sink(sink);
        }
        let shared = Shared {
            settings,
            store,
            clock,
            extractor: self.extractor,
            overrides,
            watermark,
            detect,
            enforce,
        };
        Ok(Guard {
            shared: Arc::new(shared),
        })
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
        let inner = self.shared.enforce.layer(inner);
        self.shared.detect.layer(inner)
    }
}
