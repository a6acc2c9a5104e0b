//! The detection state shared by every request: fingerprint settings, the
//! linking engine and the scorer.

use std::sync::Arc;
#[cfg(feature = "redis")]
use std::sync::OnceLock;

use http::HeaderMap;
use sha2::{Digest, Sha256};

#[cfg(feature = "redis")]
use crate::cluster::share::{ClusterShare, Event};
use crate::cluster::{ClusterEngine, Observation};
use crate::config::{Config, ConfigError};
use crate::extensions::{AccountId, Cluster, HardLink, Suspicion, Verdict};
use crate::features::{Feature, FeatureKind};
use crate::fingerprint::{Fingerprint, FingerprintSettings};
use crate::request::RequestInfo;
use crate::score::{Scorer, Signals};

/// Everything detection concluded about one request.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The request's fingerprint.
    pub fingerprint: Fingerprint,
    /// Its account's cluster and size.
    pub cluster: Cluster,
    /// Suspicion after hysteresis.
    pub suspicion: Suspicion,
    /// The action and its reasons.
    pub verdict: Verdict,
}

/// Fingerprinting, linking and scoring over one state. Built from the config by
/// [`GuardBuilder::build`](crate::GuardBuilder::build); also usable alone (the
/// replay tools and the tuning harness drive it directly).
#[derive(Debug)]
pub struct Detector {
    fingerprint: FingerprintSettings,
    engine: ClusterEngine,
    scorer: Scorer,
    /// The log shared with other replicas, once attached.
    #[cfg(feature = "redis")]
    share: OnceLock<ClusterShare>,
}

/// The feature of a host-supplied hard link.
pub fn hard_link_feature(link: &HardLink) -> Feature {
    let digest = Sha256::new()
        .chain_update(b"distill-guard/hard-link\0")
        .chain_update(link.0.as_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    Feature {
        kind: FeatureKind::HardLink,
        value: u64::from_le_bytes(b),
    }
}

impl Detector {
    /// Builds the detector from a config (validating the sections it reads).
    pub fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        let mut errors = cfg.cluster.validate("cluster");
        errors.extend(cfg.score.validate("score"));
        if !errors.is_empty() {
            return Err(ConfigError { errors });
        }
        Ok(Self {
            fingerprint: FingerprintSettings::from_config(cfg)?,
            engine: ClusterEngine::new(cfg.cluster.clone()),
            scorer: Scorer::new(cfg.score.clone()),
            #[cfg(feature = "redis")]
            share: OnceLock::new(),
        })
    }

    /// Builds the detector and, when `[store]` asks for shared clusters, starts
    /// sharing its inputs with the other replicas (inside a Tokio runtime).
    /// Other replicas' events dated more than a minute after `clock` (a replica
    /// with a wrong clock, or a forged entry) are applied at `clock`'s time, so
    /// they cannot age out everyone's state.
    pub fn from_config_shared(
        cfg: &Config,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Arc<Self>, ConfigError> {
        let detector = Arc::new(Self::from_config(cfg)?);
        #[cfg(not(feature = "redis"))]
        let _ = clock;
        #[cfg(feature = "redis")]
        if crate::cluster::share::wanted(&cfg.store) {
            let weak = Arc::downgrade(&detector);
            let share = ClusterShare::start(
                &cfg.store,
                Box::new(move |mut event| match weak.upgrade() {
                    Some(d) => {
                        event.clamp_time(clock.now_ms().saturating_add(MAX_REMOTE_SKEW_MS));
                        d.apply(event);
                        true
                    }
                    None => false,
                }),
            )?;
            detector.attach_share(share);
        }
        Ok(detector)
    }

    /// Publishes this detector's inputs to `share` from now on (the first call
    /// wins; later ones are ignored).
    #[cfg(feature = "redis")]
    pub fn attach_share(&self, share: ClusterShare) {
        let _ = self.share.set(share);
    }

    /// The log shared with other replicas, if any.
    #[cfg(feature = "redis")]
    pub fn share(&self) -> Option<&ClusterShare> {
        self.share.get()
    }

    /// Applies an event of another replica: links and scores an observation with
    /// its own time (its verdict is that replica's business), or repeats an
    /// administrator's unlink.
    #[cfg(feature = "redis")]
    pub fn apply(&self, event: Event) {
        match event {
            Event::Observe {
                account,
                now_ms,
                signals,
                features,
            } => {
                self.link_and_score(account, &features, signals, now_ms);
            }
            Event::Unlink {
                account,
                now_ms,
                hold_ms,
            } => {
                self.engine.unlink(&account, now_ms, hold_ms);
            }
            Event::Dissolve {
                account,
                now_ms,
                hold_ms,
            } => {
                self.engine.dissolve(&account, now_ms, hold_ms);
            }
            Event::Relink { account, .. } => {
                self.engine.release(&account);
            }
        }
    }

    /// Takes `account` out of its cluster and holds it apart for `hold_ms` (an
    /// administrator's correction), on every replica when clusters are shared.
    /// False when the account is not tracked here.
    pub fn unlink(&self, account: &AccountId, now_ms: u64, hold_ms: u64) -> bool {
        #[cfg(feature = "redis")]
        if let Some(share) = self.share.get() {
            share.publish(&Event::Unlink {
                account: *account,
                now_ms,
                hold_ms,
            });
        }
        self.engine.unlink(account, now_ms, hold_ms)
    }

    /// Ends the hold of an earlier unlink, so `account` may be linked again by
    /// its next requests, on every replica when clusters are shared. False when
    /// the account is not tracked here.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub fn relink(&self, account: &AccountId, now_ms: u64) -> bool {
        #[cfg(feature = "redis")]
        if let Some(share) = self.share.get() {
            share.publish(&Event::Relink {
                account: *account,
                now_ms,
            });
        }
        self.engine.release(account)
    }

    /// Dissolves the cluster of `account` (every member held apart for
    /// `hold_ms`), on every replica when clusters are shared. Returns how many
    /// accounts were released here.
    pub fn dissolve(&self, account: &AccountId, now_ms: u64, hold_ms: u64) -> u32 {
        #[cfg(feature = "redis")]
        if let Some(share) = self.share.get() {
            share.publish(&Event::Dissolve {
                account: *account,
                now_ms,
                hold_ms,
            });
        }
        self.engine.dissolve(account, now_ms, hold_ms)
    }

    /// The linking engine (statistics, unlinking).
    pub fn engine(&self) -> &ClusterEngine {
        &self.engine
    }

    /// The scorer.
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    /// The fingerprint settings.
    pub fn fingerprint_settings(&self) -> &FingerprintSettings {
        &self.fingerprint
    }

    /// Fingerprints, links and scores one request.
    pub fn detect(
        &self,
        account: AccountId,
        headers: &HeaderMap,
        peer: Option<std::net::IpAddr>,
        info: &RequestInfo,
        hard_links: &[HardLink],
        now_ms: u64,
    ) -> Detection {
        let fingerprint = Fingerprint::compute(headers, peer, info, &self.fingerprint);
        let mut features = fingerprint.features();
        features.extend(hard_links.iter().map(hard_link_feature));
        let signals = Signals::of(&fingerprint);
        let (cluster, suspicion, verdict) = self.observe(account, &features, signals, now_ms);
        Detection {
            fingerprint,
            cluster,
            suspicion,
            verdict,
        }
    }

    /// Links and scores a request whose features are already known.
    pub fn observe(
        &self,
        account: AccountId,
        features: &[Feature],
        signals: Signals,
        now_ms: u64,
    ) -> (Cluster, Suspicion, Verdict) {
        let out = self.link_and_score(account, features, signals.to_array(), now_ms);
        #[cfg(feature = "redis")]
        if let Some(share) = self.share.get() {
            share.publish_observation(&account, now_ms, &signals.to_array(), features);
        }
        out
    }

    fn link_and_score(
        &self,
        account: AccountId,
        features: &[Feature],
        signals: [f32; crate::cluster::SIGNALS],
        now_ms: u64,
    ) -> (Cluster, Suspicion, Verdict) {
        let linked = self.engine.observe(&Observation {
            account,
            now_ms,
            features,
            signals,
        });
        let a = self.scorer.assess(&linked, now_ms);
        self.engine
            .store_levels(linked.handle, a.account_level, a.cluster_level, now_ms);
        (linked.cluster, a.suspicion, a.verdict)
    }
}

/// How far ahead of this replica's clock another replica's event may be dated.
#[cfg(feature = "redis")]
const MAX_REMOTE_SKEW_MS: u64 = 60_000;

/// Shared handle.
pub type SharedDetector = Arc<Detector>;
