//! `[store]`: where quota state lives, and how to build that store.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{MemoryStore, RedisStore, Store};
use crate::config::ConfigError;

/// Which backend keeps quota state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process only (each replica has its own limits).
    #[default]
    Memory,
    /// In Redis (or Valkey), shared by every replica pointing at it.
    Redis,
}

/// What the Redis backend does when Redis fails or is slower than `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Keep serving: an in-process store enforces the same limits per replica until
    /// Redis answers again.
    #[default]
    FailOpen,
    /// Refuse requests with 503 (in the path's dialect) until Redis answers again.
    FailClosed,
}

/// `[store]`: where quota state lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `memory` (the default: this process only) or `redis` (shared by replicas).
    pub backend: Backend,
    /// Redis URL, required for `backend = "redis"`: `redis://[user:password@]host:port[/db]`,
    /// `redis+unix:///path/to/socket`, or `rediss://…` for TLS (the server's
    /// certificate is always verified, against the platform's trusted roots or
    /// `tls_ca_file`).
    pub url: Option<String>,
    /// Longest wait for one Redis call (connecting included), e.g. `"100ms"`. A call
    /// that takes longer counts as a failure and `on_error` applies.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// `fail_open` (local in-process limits take over while Redis is down) or
    /// `fail_closed` (503 until Redis is back).
    pub on_error: OnError,
    /// Prefix of every Redis key this store writes, so several deployments can share
    /// one Redis.
    pub key_prefix: String,
    /// Answer requests of a subject that Redis just refused from a local copy of its
    /// buckets until they would fit again, so a flood of refused requests does not
    /// become Redis load. A refund settled by another replica in that time is seen
    /// only when the copy expires.
    pub deny_cache: bool,
    /// With the Redis backend, share the cluster engine's inputs between replicas
    /// through a stream in the same Redis, so accounts seen by different replicas
    /// are linked as if one replica had seen them all (see
    /// [`crate::cluster::share`]). Ignored with the memory backend.
    pub share_clusters: bool,
    /// About how many entries the shared cluster log keeps (each a batch of up to
    /// 64 requests from one replica): what a new or restarted replica reads to
    /// warm up.
    pub cluster_log_len: u64,
    /// With a `rediss://` URL: PEM file of the certificate authorities the server's
    /// certificate must chain to, instead of the platform's trusted roots (for a
    /// Redis with a private CA).
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Memory,
            url: None,
            timeout: Duration::from_millis(100),
            on_error: OnError::FailOpen,
            key_prefix: "distill-guard:".into(),
            deny_cache: true,
            share_clusters: true,
            cluster_log_len: 100_000,
            tls_ca_file: None,
        }
    }
}

/// Longest accepted `timeout`.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(60);

impl StoreConfig {
    /// Every problem with this section, as `(field, message)` pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.timeout.is_zero() {
            out.push(("timeout", "must be greater than 0".to_string()));
        } else if self.timeout > MAX_TIMEOUT {
            out.push((
                "timeout",
                format!(
                    "must be at most {} (it bounds how long a request may wait on Redis)",
                    humantime::format_duration(MAX_TIMEOUT)
                ),
            ));
        }
        if !(1_000..=100_000_000).contains(&self.cluster_log_len) {
            out.push((
                "cluster_log_len",
                "must be between 1000 and 100000000 entries".to_string(),
            ));
        }
        if self.key_prefix.len() > 256 {
            out.push(("key_prefix", "must be at most 256 bytes".to_string()));
        }
        match (self.backend, &self.url) {
            (Backend::Redis, None) => out.push((
                "url",
                "required with backend = \"redis\", e.g. \"redis://127.0.0.1:6379\"".to_string(),
            )),
            (Backend::Redis, Some(url)) => {
                if let Err(msg) = super::redis::check_url(url) {
                    out.push(("url", msg));
                } else if self.tls_ca_file.is_some() && !super::redis::is_tls(url) {
                    out.push((
                        "tls_ca_file",
                        "only used with a TLS URL (`rediss://`)".to_string(),
                    ));
                }
            }
            (Backend::Memory, _) => {}
        }
        out
    }

    /// Validates the section alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConfigError {
            errors: problems
                .into_iter()
                .map(|(field, message)| crate::config::FieldError {
                    path: format!("store.{field}"),
                    message,
                })
                .collect(),
        })
    }
}

/// Builds the store `config` describes.
///
/// The Redis backend connects lazily (the first request connects; a Redis that is
/// down at start-up is handled like any outage) and must be built inside a Tokio
/// runtime, where it spawns its settlements.
pub fn build_store(config: &StoreConfig) -> Result<Arc<dyn Store>, ConfigError> {
    config.validate()?;
    match config.backend {
        Backend::Memory => Ok(Arc::new(MemoryStore::new())),
        Backend::Redis => Ok(Arc::new(RedisStore::new(config)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn memory_is_the_default_and_needs_nothing() {
        let cfg = Config::from_toml_str("[identity]\nsecret = \"s\"\n").expect("valid");
        assert_eq!(cfg.store, StoreConfig::default());
        assert_eq!(cfg.store.backend, Backend::Memory);
    }

    #[test]
    fn redis_section_parses() {
        let cfg = Config::from_toml_str(
            r#"
            [identity]
            secret = "s"
            [store]
            backend = "redis"
            url = "redis://127.0.0.1:6390/2"
            timeout = "25ms"
            on_error = "fail_closed"
            key_prefix = "eu1:"
            deny_cache = false
            share_clusters = false
            cluster_log_len = 5000
            "#,
        )
        .expect("valid");
        assert_eq!(cfg.store.backend, Backend::Redis);
        assert_eq!(cfg.store.timeout, Duration::from_millis(25));
        assert_eq!(cfg.store.on_error, OnError::FailClosed);
        assert_eq!(cfg.store.key_prefix, "eu1:");
        assert!(!cfg.store.deny_cache);
        assert!(!cfg.store.share_clusters);
        assert_eq!(cfg.store.cluster_log_len, 5000);
    }

    #[test]
    fn redis_errors_are_collected_with_paths() {
        let err = Config::from_toml_str(
            "[identity]\nsecret = \"s\"\n[store]\nbackend = \"redis\"\ntimeout = \"0s\"\n",
        )
        .expect_err("invalid");
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"store.url"), "{paths:?}");
        assert!(paths.contains(&"store.timeout"), "{paths:?}");
        let err =
            Config::from_toml_str("[identity]\nsecret = \"s\"\n[store]\ncluster_log_len = 10\n")
                .expect_err("log too short");
        assert_eq!(err.errors[0].path, "store.cluster_log_len");

        for bad in [
            "http://x",
            "not a url",
            "rediss://127.0.0.1:6379/#insecure",
            "redis://",
        ] {
            let cfg = StoreConfig {
                backend: Backend::Redis,
                url: Some(bad.into()),
                ..StoreConfig::default()
            };
            let err = cfg.validate().expect_err(bad);
            assert_eq!(err.errors[0].path, "store.url", "{bad}");
        }
        let err =
            Config::from_toml_str("[identity]\nsecret = \"s\"\n[store]\nbackend = \"mongo\"\n")
                .expect_err("unknown backend");
        assert!(err.to_string().contains("mongo"), "{err}");
    }

    #[test]
    fn building_redis_outside_a_runtime_is_an_error_not_a_panic() {
        let cfg = StoreConfig {
            backend: Backend::Redis,
            url: Some("redis://127.0.0.1:1".into()),
            ..StoreConfig::default()
        };
        let err = build_store(&cfg).expect_err("no runtime");
        assert!(err.to_string().contains("Tokio runtime"), "{err}");
    }

    #[tokio::test]
    async fn builds_each_backend() {
        let mem = build_store(&StoreConfig::default()).expect("memory");
        assert_eq!(mem.tracked(), 0);
        let cfg = StoreConfig {
            backend: Backend::Redis,
            url: Some("redis://127.0.0.1:1".into()),
            ..StoreConfig::default()
        };
        // Connecting is lazy: building succeeds even with nothing listening.
        build_store(&cfg).expect("redis");
    }
}
