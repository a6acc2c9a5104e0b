//! The runtime form of a validated [`Config`]: what the stages read per request,
//! and [`LiveSettings`], the handle through which a reload swaps it for all of
//! them at once.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::config::{AnonymousPolicy, Band, Config, ConfigError, TierConfig};
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
}

impl Tier {
    fn from_config(name: &str, t: &TierConfig) -> Self {
        let mut base: Limits = [None; 4];
        for w in Window::ALL {
            let (limit, burst) = match w {
                Window::RequestsPerMinute => (t.requests_per_minute.limit(), t.burst_requests),
                Window::RequestsPerDay => (t.requests_per_day.limit(), None),
                Window::TokensPerMinute => (t.tokens_per_minute.limit(), t.burst_tokens),
                Window::TokensPerDay => (t.tokens_per_day.limit(), None),
            };
            base[w.index()] = limit.map(|n| {
                BucketLimit::new(n as f64, w.window_ms() as f64, burst.unwrap_or(n) as f64)
            });
        }
        Self {
            name: name.into(),
            base,
            shadow: t.shadow,
        }
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
