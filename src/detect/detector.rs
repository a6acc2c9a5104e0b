//! The detection state shared by every request: fingerprint settings, the
//! linking engine and the scorer.

use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::cluster::{ClusterEngine, Observation};
use crate::config::{Config, ConfigError};
use crate::extensions::{AccountId, Cluster, HardLink, Suspicion, Verdict};
use crate::features::{Family, Feature};
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
        family: Family::HardLink,
        kind: "hard_link",
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
        })
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

    /// Takes `account` out of its cluster and keeps it from being linked again
    /// for `hold_ms` (an operator's correction). Returns false when the engine
    /// does not track the account. Every administrative unlink goes through
    /// here.
    pub fn unlink(&self, account: &AccountId, now_ms: u64, hold_ms: u64) -> bool {
        self.engine.unlink(account, now_ms, hold_ms)
    }

    /// Links and scores a request whose features are already known.
    pub fn observe(
        &self,
        account: AccountId,
        features: &[Feature],
        signals: Signals,
        now_ms: u64,
    ) -> (Cluster, Suspicion, Verdict) {
        let linked = self.engine.observe(&Observation {
            account,
            now_ms,
            features,
            signals: signals.to_array(),
        });
        let a = self.scorer.assess(&linked, now_ms);
        self.engine
            .store_levels(linked.handle, a.account_level, a.cluster_level, now_ms);
        (linked.cluster, a.suspicion, a.verdict)
    }
}

/// Shared handle.
pub type SharedDetector = Arc<Detector>;
