//! Overrides kept in Redis and followed by every replica.
//!
//! One hash, `{key_prefix}overrides`, maps account hashes to their override as
//! JSON, and a counter, `{key_prefix}overrides:version`, goes up with every
//! change (both written in one `MULTI`; with a Redis Cluster the keys are
//! `{key_prefix}{overrides}` and `…{overrides}:version`, one slot). Every replica loads the hash at start
//! and then checks the counter once a second, reloading the hash when it moved:
//! a change made on any replica is in force everywhere within about a second
//! and survives restarts. A change is written to Redis before it takes effect
//! locally; when Redis fails the admin API reports the error and nothing
//! changes. Entries that do not parse are skipped (and logged), never a panic.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::Value;

use super::{Override, OverrideError, Overrides};
use crate::config::{ConfigError, StoreConfig};
use crate::extensions::AccountId;
use crate::store::{redis_call, redis_within, RedisCallError};

/// How often each replica checks for changes.
const POLL: Duration = Duration::from_secs(1);
/// Most entries read from the hash (a bound on hostile or runaway data).
const MAX_ENTRIES: usize = 1_000_000;

/// The Redis side of [`Overrides`](super::Overrides). Cheap to clone.
#[derive(Clone)]
pub struct RemoteOverrides {
    conn: crate::store::RedisConn,
    hash: Arc<str>,
    version: Arc<str>,
    timeout: Duration,
}

impl std::fmt::Debug for RemoteOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOverrides")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl RemoteOverrides {
    /// Connects (lazily) to the Redis of `config` and starts following it on
    /// behalf of `overrides` (until they are dropped); returns the handle that
    /// changes are written through. Must run inside a Tokio runtime.
    pub(crate) fn start(
        config: &StoreConfig,
        overrides: Weak<Overrides>,
    ) -> Result<Self, ConfigError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::single(
                "store",
                "shared overrides must be started inside a Tokio runtime",
            )
        })?;
        let conn = crate::store::redis_manager(config, config.timeout)?;
        let remote = Self {
            conn,
            hash: crate::store::redis_key(config, "overrides", "").into(),
            version: crate::store::redis_key(config, "overrides", ":version").into(),
            timeout: config.timeout,
        };
        handle.spawn(remote.clone().follow(overrides));
        Ok(remote)
    }

    async fn query(&self, cmd: &::redis::Cmd) -> Result<Value, RedisCallError> {
        redis_call(&self.conn, cmd, self.timeout).await
    }

    /// Writes `o` (an empty override deletes the entry) and bumps the version.
    pub(super) async fn save(
        &self,
        account: &AccountId,
        o: &Override,
    ) -> Result<(), OverrideError> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        if o.is_empty() {
            pipe.hdel(&*self.hash, account.to_string()).ignore();
        } else {
            let json = serde_json::to_string(o).map_err(OverrideError::Encode)?;
            pipe.hset(&*self.hash, account.to_string(), json).ignore();
        }
        pipe.incr(&*self.version, 1).ignore();
        let mut conn = self.conn.clone();
        redis_within(self.timeout, pipe.query_async::<Value>(&mut conn))
            .await
            .map(drop)
            .map_err(OverrideError::Redis)
    }

    /// The version counter (`None` before the first change).
    async fn current_version(&self) -> Result<Option<i64>, RedisCallError> {
        match self.query(::redis::cmd("GET").arg(&*self.version)).await? {
            Value::Nil => Ok(None),
            Value::BulkString(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or(RedisCallError::Reply(
                    "the overrides version is not a number",
                )),
            Value::Int(n) => Ok(Some(n)),
            _ => Err(RedisCallError::Reply("GET of the overrides version")),
        }
    }

    /// Every override in the hash; entries that do not parse are skipped.
    pub(super) async fn load(&self) -> Result<Vec<(AccountId, Override)>, RedisCallError> {
        let reply = self.query(::redis::cmd("HGETALL").arg(&*self.hash)).await?;
        let pairs: Vec<(Value, Value)> = match reply {
            Value::Array(items) => {
                let mut it = items.into_iter();
                let mut out = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    out.push((k, v));
                }
                out
            }
            Value::Map(m) => m,
            _ => return Err(RedisCallError::Reply("HGETALL of the overrides")),
        };
        let mut out = Vec::with_capacity(pairs.len().min(MAX_ENTRIES));
        for (k, v) in pairs.into_iter().take(MAX_ENTRIES) {
            let (Value::BulkString(k), Value::BulkString(v)) = (k, v) else {
                tracing::warn!("overrides in Redis: skipping an entry of an unexpected type");
                continue;
            };
            let account = std::str::from_utf8(&k).ok().and_then(AccountId::parse);
            let o = serde_json::from_slice::<Override>(&v);
            match (account, o) {
                (Some(a), Ok(o)) => out.push((a, o)),
                (None, _) => tracing::warn!(
                    "overrides in Redis: skipping an entry whose field is not an account hash"
                ),
                (_, Err(e)) => {
                    tracing::warn!(error = %e, "overrides in Redis: skipping an entry that does not parse")
                }
            }
        }
        Ok(out)
    }

    async fn follow(self, overrides: Weak<Overrides>) {
        let mut seen: Option<Option<i64>> = None;
        let mut down = false;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if overrides.strong_count() == 0 {
                return;
            }
            let result = async {
                let v = self.current_version().await?;
                if seen == Some(v) {
                    return Ok(None);
                }
                let all = self.load().await?;
                Ok::<_, RedisCallError>(Some((v, all)))
            }
            .await;
            match result {
                Ok(change) => {
                    if std::mem::take(&mut down) {
                        tracing::info!("overrides in Redis: reachable again");
                    }
                    if let Some((v, all)) = change {
                        let Some(overrides) = overrides.upgrade() else {
                            return;
                        };
                        overrides.replace_all(all);
                        seen = Some(v);
                    }
                }
                Err(e) => {
                    if !std::mem::replace(&mut down, true) {
                        tracing::warn!(error = %e, "overrides in Redis: cannot read them; keeping the ones in force");
                    }
                }
            }
        }
    }
}
