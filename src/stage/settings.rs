//! The runtime form of a validated [`Config`]: what the stages read per request,
//! and [`LiveSettings`], the handle through which a reload swaps it for all of
//! them at once.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::config::{
    best_match, AnonymousPolicy, Band, Config, ConfigError, ModelPattern, TierConfig,
};
use crate::extensions::AccountId;
use crate::identity::{Identity, KeyExtractor};
use crate::store::gcra::BucketLimit;
use crate::store::{Limits, Window};

/// One tier's per-account limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// The tier's name.
    pub name: Arc<str>,
    /// Per-account limits at suspicion multiplier 1.
    pub base: Limits,
    /// Shadow mode for this tier.
    pub shadow: bool,
    /// Its model groups (`[tiers.NAME.models."PATTERN"]`), in config order.
    pub models: Vec<ModelGroup>,
}

/// One model group of a tier: the requests whose `model` its pattern is the
/// most specific match for, and their own per-account limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelGroup {
    /// The pattern as written in the config: the group's name in headers,
    /// metrics, decisions and the store's keys.
    pub name: Arc<str>,
    /// The pattern, ready to match.
    pub pattern: ModelPattern,
    /// The group's per-account limits at suspicion multiplier 1; `None` for a
    /// window the group does not limit separately.
    pub limits: Limits,
}

/// The bucket limits of `[limit per window]` with the per-minute bursts given.
fn bucket_limits(limits: [Option<u64>; 4], bursts: [Option<u64>; 2]) -> Limits {
    let mut out: Limits = [None; 4];
    for w in Window::ALL {
        let burst = match w {
            Window::RequestsPerMinute => bursts[0],
            Window::TokensPerMinute => bursts[1],
            Window::RequestsPerDay | Window::TokensPerDay => None,
        };
        out[w.index()] = limits[w.index()]
            .map(|n| BucketLimit::new(n as f64, w.window_ms() as f64, burst.unwrap_or(n) as f64));
    }
    out
}

impl Tier {
    fn from_config(name: &str, t: &TierConfig) -> Self {
        let models = t
            .models
            .iter()
            .filter_map(|(pattern, g)| {
                // Validation refuses bad patterns; skip rather than panic.
                let parsed = ModelPattern::parse(pattern).ok()?;
                Some(ModelGroup {
                    name: pattern.as_str().into(),
                    pattern: parsed,
                    limits: bucket_limits(g.limits(), [g.burst_requests, g.burst_tokens]),
                })
            })
            .collect();
        Self {
            name: name.into(),
            base: bucket_limits(t.limits(), [t.burst_requests, t.burst_tokens]),
            shadow: t.shadow,
            models,
        }
    }

    /// The model group a request for `model` belongs to: the most specific
    /// pattern that matches (see [`ModelLimits`](crate::config::ModelLimits));
    /// `None` when none does (the tier's limits alone apply).
    pub fn group_for(&self, model: &str) -> Option<&ModelGroup> {
        best_match(self.models.iter().map(|g| (&g.pattern, g)), model).map(|(_, g)| g)
    }

    /// The group named `name` (its pattern as written).
    pub fn group_named(&self, name: &str) -> Option<&ModelGroup> {
        self.models.iter().find(|g| &*g.name == name)
    }
}

/// Everything the stages need from the config, prepared for the hot path.
#[derive(Debug)]
pub struct Settings {
    /// The config this was built from.
    pub config: Arc<Config>,
    /// `guard.enabled`.
    pub enabled: bool,
    /// Global shadow mode.
    pub shadow: bool,
    /// `guard.max_body_bytes`.
    pub max_body_bytes: u64,
    /// Keyed hashing of API keys.
    pub identity: Identity,
    /// Requests without a key.
    pub anonymous: AnonymousPolicy,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Tiers by name.
    pub tiers: HashMap<Arc<str>, Arc<Tier>>,
    /// The default tier.
    pub default_tier: Arc<Tier>,
    /// Accounts pinned to tiers.
    pub account_tiers: HashMap<AccountId, Arc<Tier>>,
    /// `quota.cluster_exponent`.
    pub cluster_exponent: f64,
    /// `quota.default_max_output_tokens`.
    pub default_max_output_tokens: u64,
    /// Suspicion bands, ascending.
    pub bands: Vec<Band>,
}

impl Settings {
    /// Validates `config` and prepares it. `extractor` replaces the default API-key
    /// extractor when given.
    pub fn build(
        config: Config,
        extractor: Option<Arc<dyn KeyExtractor>>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let secret = config.identity_secret()?;
        let mut identity = Identity::new(secret.as_bytes());
        if let Some(x) = extractor {
            identity = identity.with_shared_extractor(x);
        }
        let mut tiers: HashMap<Arc<str>, Arc<Tier>> = config
            .tiers
            .iter()
            .map(|(name, t)| {
                (
                    Arc::<str>::from(name.as_str()),
                    Arc::new(Tier::from_config(name, t)),
                )
            })
            .collect();
        let default_name = config.quota.default_tier.as_str();
        let default_tier = match tiers.get(default_name) {
            Some(t) => t.clone(),
            None => {
                let t = Arc::new(Tier::from_config(default_name, &TierConfig::default()));
                tiers.insert(t.name.clone(), t.clone());
                t
            }
        };
        let mut account_tiers = HashMap::new();
        for (account, tier) in &config.accounts {
            if let (Some(id), Some(t)) = (AccountId::parse(account), tiers.get(tier.as_str())) {
                account_tiers.insert(id, t.clone());
            }
        }
        Ok(Self {
            enabled: config.guard.enabled,
            shadow: config.guard.shadow,
            max_body_bytes: config.guard.max_body_bytes,
            identity,
            anonymous: config.identity.anonymous,
            trusted_proxies: config.network.trusted_proxies.clone(),
            tiers,
            default_tier,
            account_tiers,
            cluster_exponent: config.quota.cluster_exponent,
            default_max_output_tokens: config.quota.default_max_output_tokens,
            bands: config.quota.bands.clone(),
            config: Arc::new(config),
        })
    }

    /// The tier of an account: the host application's choice, else the config's
    /// pin, else the default.
    pub fn tier_for(&self, account: &AccountId, requested: Option<&str>) -> Arc<Tier> {
        if let Some(t) = requested.and_then(|name| self.tiers.get(name)) {
            return t.clone();
        }
        self.account_tiers
            .get(account)
            .cloned()
            .unwrap_or_else(|| self.default_tier.clone())
    }

    /// The rate multiplier of a suspicion value.
    pub fn multiplier(&self, suspicion: f64) -> f64 {
        self.bands
            .iter()
            .rev()
            .find(|b| suspicion >= b.at_least)
            .map_or(1.0, |b| b.multiplier)
    }

    /// How many accounts' budget a cluster of `members` gets.
    pub fn cluster_scale(&self, members: u32) -> f64 {
        (members.max(1) as f64).powf(self.cluster_exponent)
    }
}

/// The settings in force, shared by every stage of a guard: each request reads
/// the current [`Settings`] once (a lock-free load), and a reload swaps in new
/// ones for every stage at once. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveSettings(Arc<ArcSwap<Settings>>);

impl LiveSettings {
    /// Settings in force from now on.
    pub fn new(settings: Settings) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(settings)))
    }

    /// Validates `config` and prepares it (see [`Settings::build`]).
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        Settings::build(config, None).map(Self::new)
    }

    /// The settings in force now.
    pub fn load(&self) -> Arc<Settings> {
        self.0.load_full()
    }

    /// Puts `settings` in force for every stage sharing this handle.
    pub fn store(&self, settings: Settings) {
        self.0.store(Arc::new(settings));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_scaling() {
        let s = Settings::build(Config::with_secret("s"), None).expect("valid");
        assert_eq!(s.multiplier(0.0), 1.0);
        assert_eq!(s.multiplier(0.6), 0.5);
        assert_eq!(s.multiplier(0.8), 0.1);
        assert_eq!(s.multiplier(1.0), 0.0);
        assert!((s.cluster_scale(25_000) - 158.11).abs() < 0.01);
        assert_eq!(s.cluster_scale(0), 1.0);
        let rpm = s.default_tier.base[0].expect("rpm");
        assert_eq!(rpm.capacity, 60.0);
    }
}
