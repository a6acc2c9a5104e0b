use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::limit::Limit;

/// The whole configuration file.
///
/// Only `[identity]` is required; every other section has working defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Global switches.
    #[serde(default)]
    pub guard: GuardSection,
    /// How requests are attributed to accounts.
    pub identity: IdentitySection,
    /// Quota behaviour shared by all tiers.
    #[serde(default)]
    pub quota: QuotaSection,
    /// Named tiers of limits. A tier named by `quota.default_tier` (by default
    /// `default`) always exists: if it is not written here, it has the built-in
    /// defaults.
    #[serde(default)]
    pub tiers: BTreeMap<String, TierConfig>,
    /// Accounts pinned to a tier: the account hash (as shown in logs and replay
    /// output, 32 hex digits) mapped to a tier name.
    #[serde(default)]
    pub accounts: BTreeMap<String, String>,
    /// Where client addresses come from.
    #[serde(default)]
    pub network: NetworkSection,
    /// The `serve` reverse proxy.
    #[serde(default)]
    pub server: ServerSection,
    /// The admin API, metrics and dashboard listener.
    #[serde(default)]
    pub admin: super::admin::AdminConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: super::audit::AuditConfig,
    /// Request fingerprinting (see `distill_guard::fingerprint`).
    #[serde(default)]
    pub fingerprint: super::FingerprintSection,
    /// Provenance tags, text marks and the trace-back index.
    #[serde(default)]
    pub watermark: super::watermark::WatermarkConfig,
    /// Where quota state lives (in-process or Redis).
    #[serde(default)]
    pub store: super::store::StoreConfig,
    /// Account linking (see `distill_guard::cluster`).
    #[serde(default)]
    pub cluster: super::ClusterConfig,
    /// Suspicion and the action ladder (see `distill_guard::score`).
    #[serde(default)]
    pub score: super::ScoreConfig,
}

/// `[network]`: where client addresses come from (see the spoofing model in
/// `distill_guard::network`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// CIDRs of proxies whose `X-Forwarded-For` / `Forwarded` headers are believed.
    /// Empty (the default): those headers are ignored and the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `[guard]`: global switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardSection {
    /// `false` turns the guard into a plain pass-through: the operator's kill switch
    /// (also `serve --passthrough`).
    pub enabled: bool,
    /// Shadow mode for every tier: decide, report and count, never reject.
    pub shadow: bool,
    /// Largest request body buffered for fingerprinting; larger bodies get 413.
    pub max_body_bytes: u64,
}

impl Default for GuardSection {
    fn default() -> Self {
        Self {
            enabled: true,
            shadow: false,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// `[identity]`: how a request is attributed to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// Server secret for the keyed hash (HMAC-SHA256) of API keys. Use a long random
    /// value; changing it changes every account id. Exactly one of `secret` and
    /// `secret_env` must be set.
    #[serde(default)]
    pub secret: Option<String>,
    /// Name of an environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// What to do with requests that carry no API key: `reject` (401) or `network`
    /// (charge them to an anonymous account per network prefix).
    #[serde(default)]
    pub anonymous: AnonymousPolicy,
}

/// What happens to requests without an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnonymousPolicy {
    /// Answer 401 in the path's dialect.
    #[default]
    Reject,
    /// Charge the request to an account derived from the client's network prefix
    /// (IPv4 /24, IPv6 /48).
    Network,
}

/// `[quota]`: behaviour shared by all tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSection {
    /// Tier for accounts not pinned in `[accounts]` nor by the host application.
    pub default_tier: String,
    /// A cluster of `n` accounts gets `tier × n^cluster_exponent`: 0.5 gives 25,000
    /// linked accounts about 158 accounts' budget. Between 0 and 1.
    pub cluster_exponent: f64,
    /// Output tokens reserved for a request that sets no output cap
    /// (`max_tokens`, `max_completion_tokens`, `max_output_tokens`).
    pub default_max_output_tokens: u64,
    /// Suspicion bands: a request whose suspicion is at least `at_least` has its
    /// account's and cluster's rates multiplied by `multiplier`. The highest matching
    /// band applies. Must start at 0.0.
    pub bands: Vec<Band>,
}

impl Default for QuotaSection {
    fn default() -> Self {
        Self {
            default_tier: "default".into(),
            cluster_exponent: 0.5,
            default_max_output_tokens: 4096,
            bands: vec![
                Band {
                    at_least: 0.0,
                    multiplier: 1.0,
                },
                Band {
                    at_least: 0.5,
                    multiplier: 0.5,
                },
                Band {
                    at_least: 0.75,
                    multiplier: 0.1,
                },
                Band {
                    at_least: 0.95,
                    multiplier: 0.0,
                },
            ],
        }
    }
}

/// One suspicion band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// Lowest suspicion (0..1) at which this band applies.
    pub at_least: f64,
    /// Rate and capacity multiplier (0..1); 0 denies everything.
    pub multiplier: f64,
}

/// `[tiers.NAME]`: one tier's limits per account. A cluster of `n` accounts gets
/// these times `n^quota.cluster_exponent`. Each field may be a positive number or
/// `"unlimited"`; an absent field takes the built-in default shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierConfig {
    /// Requests per minute (default 60).
    pub requests_per_minute: Limit,
    /// Requests per day (default 2000).
    pub requests_per_day: Limit,
    /// LLM tokens (input + output) per minute (default 150000).
    pub tokens_per_minute: Limit,
    /// LLM tokens per day (default 5000000).
    pub tokens_per_day: Limit,
    /// Burst for the per-minute request bucket: how many requests may arrive at
    /// once. Defaults to `requests_per_minute` (one window's worth).
    pub burst_requests: Option<u64>,
    /// Burst for the per-minute token bucket. Defaults to `tokens_per_minute`.
    pub burst_tokens: Option<u64>,
    /// Shadow mode for this tier only: decide and report, never reject.
    pub shadow: bool,
    /// Limits per model: `[tiers.NAME.models."PATTERN"]`, where `PATTERN` is a
    /// model name or a `*` glob matched against the request's `model` field
    /// (ASCII case-insensitive; the most specific pattern wins; see
    /// [`ModelLimits`](super::ModelLimits)). A request whose model matches a pattern must fit both
    /// that model group's buckets and the tier's own; one that matches none,
    /// or names no model, is held to the tier's limits alone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, super::models::ModelLimits>,
}

impl TierConfig {
    /// The tier's limit per window (`None`: unlimited), in
    /// [`Window`](crate::store::Window) order.
    pub fn limits(&self) -> [Option<u64>; 4] {
        [
            self.requests_per_minute,
            self.requests_per_day,
            self.tokens_per_minute,
            self.tokens_per_day,
        ]
        .map(Limit::limit)
    }
}

impl Default for TierConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: Limit::Count(60),
            requests_per_day: Limit::Count(2_000),
            tokens_per_minute: Limit::Count(150_000),
            tokens_per_day: Limit::Count(5_000_000),
            burst_requests: None,
            burst_tokens: None,
            shadow: false,
            models: BTreeMap::new(),
        }
    }
}

/// `[server]`: the `serve` reverse proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on (`serve --listen` overrides).
    pub listen: SocketAddr,
    /// Upstream base URL, e.g. `http://127.0.0.1:8000` (`serve --upstream`
    /// overrides). Absent: the built-in demo model answers.
    pub upstream: Option<String>,
    /// Longest wait for the upstream's response headers before a 504.
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// Longest wait to connect to the upstream before a 502.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// On SIGTERM or Ctrl-C, how long in-flight requests may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Longest silence between two pieces of an upstream's answer. A stream that
    /// stalls longer ends with an error event in the path's dialect (a JSON body
    /// is cut off); its token reservation settles on what was delivered.
    #[serde(with = "humantime_serde")]
    pub stream_idle_timeout: Duration,
    /// Longest time a client may take to send its request body: 408 in the
    /// path's dialect after it.
    #[serde(with = "humantime_serde")]
    pub request_read_timeout: Duration,
    /// Longest time a connection may go without completing a request's headers:
    /// from its opening, and between requests on a kept-alive connection. A
    /// client that sends its headers a byte at a time (or nothing) is closed
    /// after it, without an answer. Applies to the admin and metrics listeners
    /// too.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Most requests served at once (streams count until they end); beyond it a
    /// request is answered 503 in its dialect at once. `0`: no limit.
    pub max_concurrency: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            upstream: None,
            upstream_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            stream_idle_timeout: Duration::from_secs(60),
            request_read_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            max_concurrency: 1024,
        }
    }
}

impl Config {
    /// A minimal valid config with the given secret and every default.
    pub fn with_secret(secret: impl Into<String>) -> Self {
        Self {
            guard: GuardSection::default(),
            identity: IdentitySection {
                secret: Some(secret.into()),
                secret_env: None,
                anonymous: AnonymousPolicy::default(),
            },
            quota: QuotaSection::default(),
            tiers: BTreeMap::new(),
            accounts: BTreeMap::new(),
            network: NetworkSection::default(),
            server: ServerSection::default(),
            admin: super::admin::AdminConfig::default(),
            audit: super::audit::AuditConfig::default(),
            fingerprint: super::FingerprintSection::default(),
            watermark: super::watermark::WatermarkConfig::default(),
            store: super::store::StoreConfig::default(),
            cluster: super::ClusterConfig::default(),
            score: super::ScoreConfig::default(),
        }
    }

    /// The secret for keyed hashes, from `secret` or the `secret_env` variable.
    pub fn identity_secret(&self) -> Result<String, ConfigError> {
        match (&self.identity.secret, &self.identity.secret_env) {
            (Some(s), None) => Ok(s.clone()),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                ConfigError::single(
                    "identity.secret_env",
                    format!("environment variable {var} is not set or not valid UTF-8"),
                )
            }),
            _ => Err(ConfigError::single(
                "identity.secret",
                "set exactly one of `secret` and `secret_env`",
            )),
        }
    }

    /// The tier config used for `name`. The tier `default`, when it is the default
    /// tier and is not written out, has the built-in defaults.
    pub fn tier(&self, name: &str) -> Option<TierConfig> {
        match self.tiers.get(name) {
            Some(t) => Some(t.clone()),
            None if name == "default" && self.quota.default_tier == "default" => {
                Some(TierConfig::default())
            }
            None => None,
        }
    }
}
