//! `[store]`: where quota state lives (the store itself is built by
//! `distill_guard::store::build_store`), and the checks of its Redis URL.

use std::time::Duration;

#[cfg(feature = "redis")]
use ::redis::{Client, ConnectionAddr};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Which backend keeps quota state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process only (each replica has its own limits).
    #[default]
    Memory,
    /// In Redis (or Valkey), shared by every replica pointing at it.
    Redis,
    /// In a Redis Cluster (or Valkey cluster) reached through `nodes`, shared
    /// by every replica pointing at it.
    #[serde(rename = "redis-cluster")]
    RedisCluster,
}

impl Backend {
    /// Whether state is shared through Redis (a server or a cluster).
    pub fn is_redis(self) -> bool {
        matches!(self, Backend::Redis | Backend::RedisCluster)
    }
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
    /// `memory` (the default: this process only), `redis` (one Redis, shared by
    /// replicas) or `redis-cluster` (a Redis Cluster, shared by replicas).
    pub backend: Backend,
    /// Redis URL, required for `backend = "redis"`: `redis://[user:password@]host:port[/db]`,
    /// `redis+unix:///path/to/socket`, or `rediss://…` for TLS (the server's
    /// certificate is always verified, against the platform's trusted roots or
    /// `tls_ca_file`).
    pub url: Option<String>,
    /// Nodes of the Redis Cluster, required for `backend = "redis-cluster"`:
    /// `redis://[user:password@]host:port` or `rediss://…` (all alike). A few
    /// are enough: the client learns the rest of the cluster from them.
    pub nodes: Vec<String>,
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
    /// `distill_guard::cluster::share`). Ignored with the memory backend.
    pub share_clusters: bool,
    /// With a Redis backend, share the watermark trace-back index between
    /// replicas through a stream in the same Redis, so any replica can trace a
    /// response another one served (see `distill_guard::watermark::share`).
    pub share_trace_index: bool,
    /// With a Redis backend, let this replica take a small share (a lease) of a
    /// busy subject's buckets and admit its requests from it without a round
    /// trip, giving back what is left after a second. Never admits more than
    /// the limit; units leased to one replica wait there until used or given
    /// back. Off: every admission is decided by Redis.
    pub local_leases: bool,
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
            nodes: Vec::new(),
            timeout: Duration::from_millis(100),
            on_error: OnError::FailOpen,
            key_prefix: "distill-guard:".into(),
            deny_cache: true,
            share_clusters: true,
            share_trace_index: true,
            local_leases: false,
            cluster_log_len: 100_000,
            tls_ca_file: None,
        }
    }
}

/// Why `backend = "redis"` is refused by a build without Redis support.
#[cfg(not(feature = "redis"))]
const NO_REDIS: &str =
    "this build has no Redis support: enable distill-guard's `redis` feature (the binary has it)";

/// The error for `backend = "redis"` in a build without Redis support.
#[cfg(not(feature = "redis"))]
pub(crate) fn no_redis() -> ConfigError {
    ConfigError::single("store.backend", NO_REDIS)
}

/// Longest accepted `timeout`: it bounds how long a request may wait on Redis.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

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
            #[cfg(not(feature = "redis"))]
            (Backend::Redis | Backend::RedisCluster, _) => {
                out.push(("backend", NO_REDIS.to_string()))
            }
            #[cfg(feature = "redis")]
            (Backend::Redis, None) => out.push((
                "url",
                "required with backend = \"redis\", e.g. \"redis://127.0.0.1:6379\"".to_string(),
            )),
            #[cfg(feature = "redis")]
            (Backend::Redis, Some(url)) => {
                if let Err(e) = check_url(url) {
                    out.push(("url", e.to_string()));
                } else if self.tls_ca_file.is_some() && !is_tls(url) {
                    out.push((
                        "tls_ca_file",
                        "only used with a TLS URL (`rediss://`)".to_string(),
                    ));
                }
            }
            #[cfg(feature = "redis")]
            (Backend::RedisCluster, url) => {
                if url.is_some() {
                    out.push((
                        "url",
                        "not used with backend = \"redis-cluster\": list the cluster's `nodes`"
                            .to_string(),
                    ));
                }
                match check_cluster_nodes(&self.nodes) {
                    Err(e) => out.push(("nodes", e.to_string())),
                    Ok(tls) => {
                        if self.tls_ca_file.is_some() && !tls {
                            out.push((
                                "tls_ca_file",
                                "only used with TLS nodes (`rediss://`)".to_string(),
                            ));
                        }
                    }
                }
                if self.key_prefix.contains(['{', '}']) {
                    out.push((
                        "key_prefix",
                        "must not contain `{` or `}` with a Redis Cluster: the store sets the hash tags that place keys in slots"
                            .to_string(),
                    ));
                }
            }
            (Backend::Memory, _) => {}
        }
        if self.backend != Backend::RedisCluster && !self.nodes.is_empty() {
            out.push((
                "nodes",
                "only used with backend = \"redis-cluster\"".to_string(),
            ));
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
                .map(|(field, message)| super::FieldError {
                    path: format!("store.{field}"),
                    message,
                })
                .collect(),
        })
    }
}

/// The scheme of Sentinel targets.
#[cfg(feature = "redis")]
pub(crate) const SENTINEL_SCHEME: &str = "redis+sentinel://";
/// A sentinel's port when the URL leaves it out.
#[cfg(feature = "redis")]
const SENTINEL_PORT: u16 = 26_379;

/// A parsed `redis+sentinel://` URL.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelTarget {
    /// `host:port` of every sentinel.
    pub(crate) nodes: Vec<(String, u16)>,
    /// The monitored service (the `sentinel monitor` name).
    pub(crate) service: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
}

/// Why a Redis URL is refused.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RedisUrlError {
    /// The `redis` crate cannot use it (its explanation).
    #[error("not a usable Redis URL: {0}")]
    Unusable(String),
    /// `rediss://…/#insecure`.
    #[error("`#insecure` (TLS without certificate checks) is not supported; give the server's CA with `tls_ca_file` instead")]
    Insecure,
    /// Not `redis+sentinel://`.
    #[error("a Sentinel URL starts with redis+sentinel://")]
    NotSentinel,
    /// No `/service`.
    #[error("a Sentinel URL names its service: redis+sentinel://host:26379/mymaster")]
    NoService,
    /// A sentinel's port is not a number.
    #[error("`{0}`: the port is not a number")]
    Port(String),
    /// A sentinel without a host.
    #[error("every sentinel needs a host: host:26379,host:26379")]
    NoHost,
    /// The database is not a number.
    #[error("`{0}` is not a database number")]
    Database(String),
    /// Something after `/service/db`.
    #[error("a Sentinel URL is …/service[/db], nothing after the database")]
    Trailing,
    /// `backend = "redis-cluster"` without nodes.
    #[error("required with backend = \"redis-cluster\", e.g. [\"redis://10.0.0.5:6379\", \"redis://10.0.0.6:6379\"]")]
    NoNodes,
    /// A cluster node that is not `redis://host:port` or `rediss://host:port`.
    #[error("`{0}`: a cluster node is redis://host:port or rediss://host:port")]
    ClusterNode(String),
    /// A cluster node naming a database (a cluster has only database 0).
    #[error("`{0}`: a Redis Cluster has only database 0")]
    ClusterDatabase(String),
    /// Some nodes with TLS, some without.
    #[error("all nodes use TLS (`rediss://`) or none does")]
    ClusterMixed,
    /// The user or password holds a `%` that is not a percent-escape of UTF-8
    /// (the value itself is never repeated: it is a secret).
    #[error("the user or password of a Sentinel URL has a bad percent-escape: write `%25` for `%`, `%2F` for `/`, `%40` for `@`, `%3A` for `:`")]
    Escape,
}

/// Percent-decodes the user or password of a URL (RFC 3986 §2.1).
#[cfg(feature = "redis")]
fn percent_decode(s: &str) -> Result<String, RedisUrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(RedisUrlError::Escape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| RedisUrlError::Escape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| RedisUrlError::Escape)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RedisUrlError::Escape)
}

#[cfg(feature = "redis")]
/// Parses `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service[/db]`.
pub(crate) fn parse_sentinel(url: &str) -> Result<SentinelTarget, RedisUrlError> {
    let rest = url
        .strip_prefix(SENTINEL_SCHEME)
        .ok_or(RedisUrlError::NotSentinel)?;
    // The user information ends at the last `@` (hosts, the service and the
    // database have none), so a `/` or `@` in a password, escaped or not, never
    // cuts the URL short.
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').ok_or(RedisUrlError::NoService)?;
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (
                Some(percent_decode(user)?).filter(|u| !u.is_empty()),
                Some(percent_decode(pass)?),
            ),
            None => (Some(percent_decode(u)?), None),
        },
    };
    let mut nodes = Vec::new();
    for h in hosts.split(',') {
        let bracketed = h.starts_with('[') && h.ends_with(']');
        let (host, port) = match h.rsplit_once(':') {
            Some((host, port)) if !bracketed => (
                host,
                port.parse::<u16>()
                    .map_err(|_| RedisUrlError::Port(h.to_string()))?,
            ),
            _ => (h, SENTINEL_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(RedisUrlError::NoHost);
        }
        nodes.push((host.to_string(), port));
    }
    let mut segments = path.split('/');
    let service = segments.next().unwrap_or_default();
    if service.is_empty() {
        return Err(RedisUrlError::NoService);
    }
    let db = match segments.next() {
        None | Some("") => 0,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| RedisUrlError::Database(d.to_string()))?,
    };
    if segments.next().is_some_and(|s| !s.is_empty()) {
        return Err(RedisUrlError::Trailing);
    }
    Ok(SentinelTarget {
        nodes,
        service: service.to_string(),
        username,
        password,
        db,
    })
}

#[cfg(feature = "redis")]
/// Checks that `url` is a Redis URL this build can connect to: `redis://`,
/// `redis+unix://`, or `rediss://` (TLS, certificates always verified).
pub(crate) fn check_url(url: &str) -> Result<(), RedisUrlError> {
    if url.starts_with(SENTINEL_SCHEME) {
        return parse_sentinel(url).map(|_| ());
    }
    let client = Client::open(url).map_err(|e| RedisUrlError::Unusable(e.to_string()))?;
    if let ConnectionAddr::TcpTls { insecure: true, .. } = client.get_connection_info().addr() {
        return Err(RedisUrlError::Insecure);
    }
    Ok(())
}

/// Checks the `nodes` of a Redis Cluster without connecting: at least one,
/// each a `redis://` or `rediss://` URL with a host and port (no Unix socket,
/// no Sentinel, no database other than 0, no `#insecure`), all with the same
/// credentials and TLS mode. Returns whether they use TLS.
#[cfg(feature = "redis")]
pub(crate) fn check_cluster_nodes(nodes: &[String]) -> Result<bool, RedisUrlError> {
    if nodes.is_empty() {
        return Err(RedisUrlError::NoNodes);
    }
    let mut tls = None;
    for node in nodes {
        if node.starts_with(SENTINEL_SCHEME) {
            return Err(RedisUrlError::ClusterNode(node.clone()));
        }
        check_url(node)?;
        let client =
            Client::open(node.as_str()).map_err(|e| RedisUrlError::Unusable(e.to_string()))?;
        let info = client.get_connection_info();
        let node_tls = match info.addr() {
            ConnectionAddr::Tcp(..) => false,
            ConnectionAddr::TcpTls { .. } => true,
            _ => return Err(RedisUrlError::ClusterNode(node.clone())),
        };
        if info.redis_settings().db() != 0 {
            return Err(RedisUrlError::ClusterDatabase(node.clone()));
        }
        if *tls.get_or_insert(node_tls) != node_tls {
            return Err(RedisUrlError::ClusterMixed);
        }
    }
    ::redis::cluster::ClusterClient::new(nodes.iter().map(String::as_str))
        .map_err(|e| RedisUrlError::Unusable(e.to_string()))?;
    Ok(tls.unwrap_or(false))
}

/// Whether `url` connects with TLS.
#[cfg(feature = "redis")]
pub(crate) fn is_tls(url: &str) -> bool {
    Client::open(url).is_ok_and(|c| {
        matches!(
            c.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        )
    })
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

    #[cfg(feature = "redis")]
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

    #[cfg(not(feature = "redis"))]
    #[test]
    fn a_build_without_redis_refuses_the_redis_backend() {
        let err = Config::from_toml_str(
            "[identity]\nsecret = \"s\"\n[store]\nbackend = \"redis\"\nurl = \"redis://h\"\n",
        )
        .expect_err("no redis support");
        assert_eq!(err.errors.len(), 1, "{err}");
        assert_eq!(err.errors[0].path, "store.backend");
        assert!(err.to_string().contains("`redis` feature"), "{err}");
        let store = StoreConfig {
            backend: Backend::Redis,
            ..StoreConfig::default()
        };
        let err = crate::store::build_store(&store).expect_err("no redis support");
        assert_eq!(err.errors[0].path, "store.backend");
    }

    #[cfg(feature = "redis")]
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

    #[cfg(feature = "redis")]
    #[test]
    fn redis_cluster_takes_nodes_and_checks_them() {
        let cfg = Config::from_toml_str(
            r#"
            [identity]
            secret = "s"
            [store]
            backend = "redis-cluster"
            nodes = ["redis://10.0.0.5:6379", "redis://10.0.0.6:6379"]
            "#,
        )
        .expect("valid");
        assert_eq!(cfg.store.backend, Backend::RedisCluster);
        assert!(cfg.store.backend.is_redis());
        assert_eq!(cfg.store.nodes.len(), 2);

        let problems = |store: &str| -> Vec<String> {
            let text = format!("[identity]\nsecret = \"s\"\n[store]\n{store}\n");
            match Config::from_toml_str(&text) {
                Ok(_) => Vec::new(),
                Err(e) => e
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect(),
            }
        };
        let cluster = "backend = \"redis-cluster\"\n";
        for (extra, path, words) in [
            ("", "store.nodes", "required"),
            ("nodes = []", "store.nodes", "required"),
            (
                "nodes = [\"redis+unix:///tmp/r.sock\"]",
                "store.nodes",
                "host:port",
            ),
            (
                "nodes = [\"redis+sentinel://h:1/m\"]",
                "store.nodes",
                "host:port",
            ),
            ("nodes = [\"redis://h:1/2\"]", "store.nodes", "database 0"),
            (
                "nodes = [\"redis://h:1\", \"rediss://h:2\"]",
                "store.nodes",
                "TLS",
            ),
            (
                "nodes = [\"rediss://h:1/#insecure\"]",
                "store.nodes",
                "insecure",
            ),
            (
                "nodes = [\"redis://h:1\"]\nurl = \"redis://h:1\"",
                "store.url",
                "nodes",
            ),
            (
                "nodes = [\"redis://h:1\"]\nkey_prefix = \"{dg}:\"",
                "store.key_prefix",
                "hash tags",
            ),
            (
                "nodes = [\"redis://h:1\"]\ntls_ca_file = \"/ca.pem\"",
                "store.tls_ca_file",
                "TLS",
            ),
        ] {
            let got = problems(&format!("{cluster}{extra}"));
            assert!(
                got.iter().any(|p| p.starts_with(path) && p.contains(words)),
                "{extra}: {got:?}"
            );
        }
        let got = problems("backend = \"redis\"\nurl = \"redis://h:1\"\nnodes = [\"redis://h:2\"]");
        assert!(
            got.iter()
                .any(|p| p.starts_with("store.nodes") && p.contains("redis-cluster")),
            "{got:?}"
        );
        assert!(problems(&format!("{cluster}nodes = [\"rediss://u:pw@h:1\"]")).is_empty());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("redis://user:pw@host:1").is_ok());
        assert!(check_url("rediss://host").is_ok());
        assert!(check_url("rediss://user:pw@host:6380/2").is_ok());
        let insecure = check_url("rediss://host/#insecure").expect_err("insecure");
        assert_eq!(insecure, RedisUrlError::Insecure);
        assert!(insecure.to_string().contains("tls_ca_file"), "{insecure}");
        assert!(check_url("redis+sentinel://host:26379/primary").is_ok());
        assert!(
            check_url("redis+sentinel://host:26379").is_err(),
            "no service"
        );
        assert!(is_tls("rediss://host") && !is_tls("redis://host"));
        assert!(check_url("http://host").is_err());
        assert!(check_url("").is_err());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn sentinel_urls_parse() {
        let t = parse_sentinel("redis+sentinel://:pw@10.0.0.1:26380,sentinel-b,[::1]:5/mymaster/3")
            .expect("valid");
        assert_eq!(
            t.nodes,
            vec![
                ("10.0.0.1".to_string(), 26_380),
                ("sentinel-b".to_string(), SENTINEL_PORT),
                ("::1".to_string(), 5)
            ]
        );
        assert_eq!(t.service, "mymaster");
        assert_eq!(
            (t.username, t.password.as_deref(), t.db),
            (None, Some("pw"), 3)
        );
        let t = parse_sentinel("redis+sentinel://[fe80::2]/svc").expect("valid");
        assert_eq!(t.nodes, vec![("fe80::2".to_string(), SENTINEL_PORT)]);
        let t = parse_sentinel("redis+sentinel://app:secret@h:1/svc").expect("valid");
        assert_eq!(t.username.as_deref(), Some("app"));
        assert_eq!(t.db, 0);
        // A `/` and an `@` in a password: percent-escaped, as URLs write them …
        let t = parse_sentinel("redis+sentinel://ops%40eu:p%2Fa%40ss%3Aw%25d@h:1,g:2/svc/4")
            .expect("escaped");
        assert_eq!(t.username.as_deref(), Some("ops@eu"));
        assert_eq!(t.password.as_deref(), Some("p/a@ss:w%d"));
        assert_eq!(t.nodes, vec![("h".to_string(), 1), ("g".to_string(), 2)]);
        assert_eq!((t.service.as_str(), t.db), ("svc", 4));
        // … or raw, as a person pastes a generated password.
        let t = parse_sentinel("redis+sentinel://:pa/ss@w@h:1/svc").expect("raw");
        assert_eq!(t.password.as_deref(), Some("pa/ss@w"));
        assert_eq!(t.nodes, vec![("h".to_string(), 1)]);
        assert_eq!(t.service, "svc");
        for bad in ["%", "%4", "%zz", "%ff"] {
            let url = format!("redis+sentinel://:s3cret{bad}@h/svc");
            let e = parse_sentinel(&url);
            assert_eq!(e, Err(RedisUrlError::Escape), "{bad}");
            // The error never repeats the secret.
            assert!(!RedisUrlError::Escape.to_string().contains("s3cret"));
        }
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h:x/svc",
            "redis+sentinel://,h/svc",
            "redis+sentinel://h/svc/-1",
            "redis+sentinel://h/svc/1/extra",
            "redis://h/svc",
        ] {
            assert!(parse_sentinel(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_sentinel("redis+sentinel://h:x/svc"),
            Err(RedisUrlError::Port("h:x".into()))
        );
        assert_eq!(
            parse_sentinel("redis+sentinel://h/svc/-1"),
            Err(RedisUrlError::Database("-1".into()))
        );
    }
}
