//! The store's shared state, and one script call to Redis.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{Cmd, ErrorKind, Script, ServerErrorKind, Value};
use tokio::sync::mpsc;

use super::call::Pending;
use super::connect::{within, RedisConn};
use super::deny_cache::DenyCache;
use super::health::Health;
use super::keys::Keys;
use super::lease::Leases;
use super::settle_queue::SettleQueue;
use crate::config::OnError;
use crate::store::{MemoryStore, StoreError};

/// What every clone of a [`RedisStore`](super::RedisStore) shares: the
/// connection, the scripts, the local state and the counters. Its methods are
/// spread by concern: `admit`, `settle`, `batch`, `slots`.
pub(super) struct Inner {
    pub(super) conn: RedisConn,
    pub(super) admit: Script,
    pub(super) settle: Script,
    pub(super) keys: Keys,
    pub(super) timeout: Duration,
    pub(super) on_error: OnError,
    /// The fallback while Redis is down.
    pub(super) local: MemoryStore,
    /// Refused subjects, answered without Redis until they would fit.
    pub(super) cache: DenyCache,
    /// Shares of busy subjects' buckets, admitted from locally.
    pub(super) leases: Leases,
    pub(super) health: Health,
    pub(super) fallbacks: AtomicU64,
    /// Settlements waiting for the sending task.
    pub(super) settlements: Arc<SettleQueue>,
    /// Settlements Redis applied.
    pub(super) settle_sent: AtomicU64,
    /// Settlements applied in process: Redis down or failing.
    pub(super) settle_local: AtomicU64,
    /// Settlements applied in process because the queue was full.
    pub(super) settle_overflow: AtomicU64,
    /// Admissions waiting for the batching task.
    pub(super) admissions: mpsc::UnboundedSender<Pending>,
}

impl Inner {
    /// Runs a script command, loading the script and retrying once after a
    /// `NOSCRIPT` (a `SCRIPT FLUSH`, a restart, a failover); at most `timeout`
    /// in all.
    pub(super) async fn run(&self, script: &Script, cmd: &Cmd) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        let call = async {
            match cmd.query_async::<Value>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(&mut conn).await?;
                    cmd.query_async::<Value>(&mut conn).await
                }
                other => other,
            }
        };
        Ok(within(self.timeout, call).await?)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wakes the sending task, which finds the store gone and ends (what
        // is still queued is lost with the store, as at process exit).
        self.settlements.close();
    }
}
