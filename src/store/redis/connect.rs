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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::config::{
    check_url, parse_sentinel, ConfigError, StoreConfig, MAX_TIMEOUT, SENTINEL_SCHEME,
};

/// A connection to the configured Redis (a URL, or the primary Sentinel names).
/// Cheap to clone; usable wherever the `redis` crate takes a connection.
#[derive(Clone)]
pub(crate) struct RedisConn(Arc<Target>);

enum Target {
    Direct(ConnectionManager),
    Sentinel(Box<SentinelConn>),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &*self.0 {
            Target::Direct(_) => "RedisConn(direct)",
            Target::Sentinel(_) => "RedisConn(sentinel)",
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

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &*self.0 {
            Target::Direct(m) => {
                let mut m = m.clone();
                Box::pin(async move { m.req_packed_command(cmd).await })
            }
            Target::Sentinel(s) => Box::pin(async move {
                let (g, mut m) = s.primary().await?;
                let r = m.req_packed_command(cmd).await;
                if r.as_ref().is_err_and(failover_error) {
                    s.forget(g);
                }
                r
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &*self.0 {
            Target::Direct(m) => {
                let mut m = m.clone();
                Box::pin(async move { m.req_packed_commands(pipeline, offset, count).await })
            }
            Target::Sentinel(s) => Box::pin(async move {
                let (g, mut m) = s.primary().await?;
                let r = m.req_packed_commands(pipeline, offset, count).await;
                if r.as_ref().is_err_and(failover_error) {
                    s.forget(g);
                }
                r
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &*self.0 {
            Target::Direct(m) => m.get_db(),
            Target::Sentinel(s) => s.db,
        }
    }
}

/// A lazily connecting, self-reconnecting connection to the Redis of `config`,
/// whose calls give up after `response` (connecting after `config.timeout`).
/// Must be called inside a Tokio runtime.
pub(crate) fn manager(config: &StoreConfig, response: Duration) -> Result<RedisConn, ConfigError> {
    let url = config
        .url
        .as_deref()
        .ok_or_else(|| ConfigError::single("store.url", "required for the Redis backend"))?;
    check_url(url).map_err(|m| ConfigError::single("store.url", m))?;
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
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100));
    let bad = |e: RedisError| ConfigError::single("store.url", e.to_string());
    let target = if url.starts_with(SENTINEL_SCHEME) {
        let t = parse_sentinel(url).map_err(|m| ConfigError::single("store.url", m))?;
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
        let client = super::open_client(url, config.tls_ca_file.as_deref())?;
        Target::Direct(ConnectionManager::new_lazy_with_config(client, cfg).map_err(bad)?)
    };
    Ok(RedisConn(Arc::new(target)))
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
}
