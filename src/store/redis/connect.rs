//! Connections to the configured Redis, shared by everything that talks to it:
//! the quota store, the shared cluster log and the shared overrides.
//!
//! Two kinds of target:
//!
//! * a Redis URL (`redis://`, `redis+unix://`): one self-reconnecting
//!   multiplexed connection ([`ConnectionManager`]);
//! * Redis Sentinel, `redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]`:
//!   the sentinels are asked for the service's current primary, and the
//!   connection is to that primary. A call that fails in a way a failover
//!   explains (connection refused or dropped, I/O error, timeout, `READONLY`
//!   from a demoted primary) makes the next call ask the sentinels again, so
//!   the guard follows a failover by itself. The user and password are the
//!   primary's; the sentinels are reached without authentication.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{
    Client, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult,
    TlsCertificates, Value,
};

use crate::config::{
    check_cluster_nodes, check_url, is_tls, parse_sentinel, Backend, ConfigError, StoreConfig,
    MAX_TIMEOUT, SENTINEL_SCHEME,
};

/// A connection to the configured Redis (a URL, or the primary Sentinel names).
/// Cheap to clone; usable wherever the `redis` crate takes a connection.
#[derive(Clone)]
pub(crate) struct RedisConn(Arc<Target>);

enum Target {
    Direct(ConnectionManager),
    Sentinel(Box<SentinelConn>),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &*self.0 {
            Target::Direct(_) => "RedisConn(direct)",
            Target::Sentinel(_) => "RedisConn(sentinel)",
            Target::Cluster(_) => "RedisConn(cluster)",
        })
    }
}

struct SentinelConn {
    /// Asking the sentinels, one request at a time.
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The connection to the primary last named, with its generation.
    current: Mutex<Option<(u64, ConnectionManager)>>,
    generation: AtomicU64,
    config: ConnectionManagerConfig,
    db: i64,
}

/// Errors a failover explains: the next call asks the sentinels again.
fn failover_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.code() == Some("READONLY")
}

impl SentinelConn {
    async fn primary(&self) -> RedisResult<(u64, ConnectionManager)> {
        if let Some(c) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(c);
        }
        let mut sentinels = self.sentinels.lock().await;
        if let Some(c) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(c);
        }
        let client = sentinels.async_get_client().await?;
        let conn = ConnectionManager::new_lazy_with_config(client, self.config.clone())?;
        let g = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((g, conn.clone()));
        Ok((g, conn))
    }

    fn forget(&self, generation: u64) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|(g, _)| *g == generation) {
            tracing::info!("Redis Sentinel: the primary failed; asking the sentinels again");
            *cur = None;
        }
    }
}

/// Errors after which the connection is replaced (the manager reconnects; a
/// Sentinel connection also asks the sentinels again), so the call is worth
/// sending once more on the new connection: a connection that died while idle
/// (Redis restarted, an idle timeout, a failover) fails its next call with such
/// an error although Redis may be fine. Without the second attempt one stale
/// socket passes for an outage, and a replica serves from its local buckets
/// while the shared ones are there to be used.
fn stale_connection(e: &RedisError) -> bool {
    e.is_io_error()
}

impl RedisConn {
    /// Runs `attempt` on the current connection, and once more on a fresh one
    /// when the first attempt found the connection dead (see
    /// [`stale_connection`]). A call that reached Redis before the connection
    /// died may run twice; for the quota scripts that errs on charging, never
    /// on admitting.
    async fn twice<T, F, Fut>(&self, attempt: F) -> RedisResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        match &*self.0 {
            Target::Direct(m) => match attempt(m.clone()).await {
                Err(e) if stale_connection(&e) => attempt(m.clone()).await,
                other => other,
            },
            // Not used: the cluster client retries by itself.
            Target::Cluster(_) => Err(RedisError::from((
                ::redis::ErrorKind::Client,
                "a cluster connection is not a single server's",
            ))),
            Target::Sentinel(s) => {
                let (g, m) = s.primary().await?;
                match attempt(m).await {
                    Err(e) if failover_error(&e) => {
                        s.forget(g);
                        if !stale_connection(&e) {
                            return Err(e);
                        }
                        let (g, m) = s.primary().await?;
                        let r = attempt(m).await;
                        if r.as_ref().is_err_and(failover_error) {
                            s.forget(g);
                        }
                        r
                    }
                    other => other,
                }
            }
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if let Target::Cluster(c) = &*self.0 {
            // The cluster client routes by key, follows MOVED and ASK, and
            // reconnects and retries by itself.
            let mut c = c.clone();
            return Box::pin(async move { c.req_packed_command(cmd).await });
        }
        Box::pin(self.twice(move |mut m| async move { m.req_packed_command(cmd).await }))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        if let Target::Cluster(c) = &*self.0 {
            let mut c = c.clone();
            return Box::pin(async move { c.req_packed_commands(pipeline, offset, count).await });
        }
        Box::pin(self.twice(move |mut m| async move {
            m.req_packed_commands(pipeline, offset, count).await
        }))
    }

    fn get_db(&self) -> i64 {
        match &*self.0 {
            Target::Direct(m) => m.get_db(),
            Target::Sentinel(s) => s.db,
            Target::Cluster(_) => 0,
        }
    }
}

/// A lazily connecting, self-reconnecting connection to the Redis of `config`,
/// whose calls give up after `response` (connecting after `config.timeout`).
/// Must be called inside a Tokio runtime.
pub(crate) fn manager(config: &StoreConfig, response: Duration) -> Result<RedisConn, ConfigError> {
    // Checked here too (not only by config validation) because deadlines are
    // computed as now + timeout, which must not overflow.
    if config.timeout.is_zero() || config.timeout > MAX_TIMEOUT {
        return Err(ConfigError::single(
            "store.timeout",
            format!(
                "must be greater than 0 and at most {}",
                humantime::format_duration(MAX_TIMEOUT)
            ),
        ));
    }
    tokio::runtime::Handle::try_current().map_err(|_| {
        ConfigError::single(
            "store",
            "the Redis backend must be started inside a Tokio runtime",
        )
    })?;
    if config.backend == Backend::RedisCluster {
        return cluster(config, response);
    }
    let url = config
        .url
        .as_deref()
        .ok_or_else(|| ConfigError::single("store.url", "required for the Redis backend"))?;
    check_url(url).map_err(|e| ConfigError::single("store.url", e.to_string()))?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100));
    let bad = |e: RedisError| ConfigError::single("store.url", e.to_string());
    let target = if url.starts_with(SENTINEL_SCHEME) {
        let t = parse_sentinel(url).map_err(|e| ConfigError::single("store.url", e.to_string()))?;
        let mut info = ::redis::RedisConnectionInfo::default().set_db(t.db);
        if let Some(u) = &t.username {
            info = info.set_username(u);
        }
        if let Some(p) = &t.password {
            info = info.set_password(p);
        }
        let nodes: Vec<String> = t
            .nodes
            .iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("redis://[{h}]:{p}")
                } else {
                    format!("redis://{h}:{p}")
                }
            })
            .collect();
        let sentinels = SentinelClient::build(
            nodes,
            t.service.clone(),
            Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(info)),
            SentinelServerType::Master,
        )
        .map_err(bad)?;
        Target::Sentinel(Box::new(SentinelConn {
            sentinels: tokio::sync::Mutex::new(sentinels),
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
            config: cfg,
            db: t.db,
        }))
    } else {
        let client = open_client(url, config.tls_ca_file.as_deref())?;
        Target::Direct(ConnectionManager::new_lazy_with_config(client, cfg).map_err(bad)?)
    };
    Ok(RedisConn(Arc::new(target)))
}

/// Most attempts the cluster client makes for one call (redirections,
/// `TRYAGAIN`, a failover in progress), each within the call's `timeout`.
const CLUSTER_RETRIES: u32 = 6;

/// A connection to the Redis Cluster of `config.nodes`: the cluster client
/// learns the slots from the nodes, routes each command by its key's slot,
/// follows `MOVED` and `ASK`, refreshes the slots and reconnects after a
/// failover, and retries meanwhile (a few times, 10 to 100 ms apart; the
/// caller's `timeout` bounds it all). Connects in the background.
fn cluster(config: &StoreConfig, response: Duration) -> Result<RedisConn, ConfigError> {
    let field = "store.nodes";
    let tls = check_cluster_nodes(&config.nodes)
        .map_err(|e| ConfigError::single(field, e.to_string()))?;
    need_crypto_provider(tls, field)?;
    let mut builder = ClusterClientBuilder::new(config.nodes.iter().map(String::as_str))
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .connection_timeout(config.timeout)
        .response_timeout(response)
        // TCP_NODELAY, as for a single server (see `open_client`).
        .tcp_settings(::redis::io::tcp::TcpSettings::default().set_nodelay(true));
    if let Some(pem) = read_ca(config.tls_ca_file.as_deref())? {
        builder = builder.certs(TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
    }
    let client = builder
        .build()
        .map_err(|e| ConfigError::single(field, e.to_string()))?;
    let connection = client.get_pending_async_connection_with_config(
        ClusterConfig::new()
            .set_connection_timeout(config.timeout)
            .set_response_timeout(response),
    );
    Ok(RedisConn(Arc::new(Target::Cluster(connection))))
}

/// Refuses TLS without a process-wide rustls crypto provider: rustls reads
/// it, and it is the application's to choose, so refuse clearly here rather
/// than let the first connection panic when rustls cannot pick one itself.
fn need_crypto_provider(tls: bool, field: &str) -> Result<(), ConfigError> {
    if tls && ::rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(ConfigError::single(
            field,
            "a `rediss://` URL needs a process-wide rustls crypto provider: install one at \
             start-up, e.g. `rustls::crypto::ring::default_provider().install_default()` \
             (the distill-guard binary does)",
        ));
    }
    Ok(())
}

/// The PEM certificates of `tls_ca_file`, if set.
fn read_ca(ca_file: Option<&Path>) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(path) = ca_file else {
        return Ok(None);
    };
    let field = "store.tls_ca_file";
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::single(field, format!("cannot read {}: {e}", path.display())))?;
    if !pem
        .windows(CERT_BEGIN.len())
        .any(|w| w == CERT_BEGIN.as_bytes())
    {
        return Err(ConfigError::single(
            field,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(Some(pem))
}

/// The client for `url`; with `ca_file` (TLS only) the server's certificate must
/// chain to the certificates in that PEM file instead of the platform's roots.
fn open_client(url: &str, ca_file: Option<&Path>) -> Result<Client, ConfigError> {
    need_crypto_provider(is_tls(url), "store.url")?;
    // TCP_NODELAY (off by default in redis): a script call is never held back by
    // Nagle's algorithm behind an earlier, unacknowledged one.
    let info = url
        .into_connection_info()
        .map_err(|e| ConfigError::single("store.url", e.to_string()))?;
    let nodelay = info.tcp_settings().clone().set_nodelay(true);
    let info = info.set_tcp_settings(nodelay);
    let Some(pem) = read_ca(ca_file)? else {
        return Client::open(info).map_err(|e| ConfigError::single("store.url", e.to_string()));
    };
    Client::build_with_tls(
        info,
        TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
    .map_err(|e| ConfigError::single("store.tls_ca_file", e.to_string()))
}

const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----";

/// Why a call to Redis failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisCallError {
    /// No answer within the configured `timeout`.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Redis, or the connection to it, failed.
    #[error("{0}")]
    Failed(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Redis answered in a shape this client does not expect (named here).
    #[error("unexpected reply: {0}")]
    Reply(&'static str),
}

impl RedisCallError {
    /// Whether Redis (or the client) gave up in time rather than failing.
    pub fn is_timeout(&self) -> bool {
        match self {
            RedisCallError::Timeout(_) => true,
            RedisCallError::Failed(e) => e
                .downcast_ref::<RedisError>()
                .is_some_and(RedisError::is_timeout),
            RedisCallError::Reply(_) => false,
        }
    }
}

impl From<RedisError> for RedisCallError {
    fn from(e: RedisError) -> Self {
        RedisCallError::Failed(Arc::new(e))
    }
}

impl From<RedisCallError> for crate::store::StoreError {
    fn from(e: RedisCallError) -> Self {
        if e.is_timeout() {
            crate::store::StoreError::Timeout
        } else {
            crate::store::StoreError::unavailable(e)
        }
    }
}

/// Waits at most `timeout` for `call`.
pub(crate) async fn within<T, F>(timeout: Duration, call: F) -> Result<T, RedisCallError>
where
    F: std::future::Future<Output = RedisResult<T>>,
{
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(RedisCallError::Timeout(timeout)),
        Ok(result) => result.map_err(RedisCallError::from),
    }
}

/// Sends `cmd` on `conn` and waits at most `timeout` for the answer.
pub(crate) async fn call(
    conn: &RedisConn,
    cmd: &Cmd,
    timeout: Duration,
) -> Result<Value, RedisCallError> {
    let mut conn = conn.clone();
    within(timeout, cmd.query_async::<Value>(&mut conn)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn out_of_range_timeouts_are_errors_not_panics() {
        for timeout in [Duration::ZERO, Duration::MAX] {
            let config = StoreConfig {
                backend: crate::store::Backend::Redis,
                url: Some("redis://127.0.0.1:1".into()),
                timeout,
                ..StoreConfig::default()
            };
            let err = crate::store::RedisStore::new(&config).expect_err("refused");
            assert_eq!(err.errors[0].path, "store.timeout", "{err}");
            let err = crate::cluster::share::ClusterShare::start(&config, Box::new(|_| true))
                .expect_err("refused");
            assert_eq!(err.errors[0].path, "store.timeout", "{err}");
        }
    }

    #[test]
    fn connections_disable_nagle() {
        // The application's choice of crypto provider (see `open_client`).
        let _ = ::rustls::crypto::ring::default_provider().install_default();
        for url in ["redis://127.0.0.1:1", "rediss://127.0.0.1:1"] {
            let client = open_client(url, None).expect("client");
            assert!(
                client.get_connection_info().tcp_settings().nodelay(),
                "{url}"
            );
        }
    }
}
