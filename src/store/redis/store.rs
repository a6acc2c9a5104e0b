//! The store: [`RedisStore`] and its [`Store`] implementation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ::redis::{Script, Value};
use tokio::sync::mpsc;

use super::batch::{admit_loop, lease_sweeper, settle_loop};
use super::connect::{call, manager};
use super::deny_cache::DenyCache;
use super::health::Health;
use super::inner::Inner;
use super::keys::Keys;
use super::lease::Leases;
use super::script;
use super::settle_queue::{self, Charge, SettleQueue};
use crate::config::{Backend, ConfigError, StoreConfig};
use crate::store::memory::Entry;
use crate::store::{
    Admission, BucketView, MemoryStore, Outcome, Settlement, Store, StoreError, StoreFuture,
    StoreStatus, Subject,
};

/// Quota state in Redis: one set of quotas for every replica that uses the same
/// Redis and key prefix.
///
/// It implements [`Store`] with the same bucket arithmetic as the
/// embedded [`MemoryStore`], run inside Redis by two Lua scripts (see
/// `script.rs`): an admission checks and charges the account's and the cluster's
/// buckets atomically in one round trip (`EVALSHA`; the script is loaded on first
/// use and reloaded transparently after a `NOSCRIPT`, e.g. a `SCRIPT FLUSH` or a
/// failover), and a settlement applies a token delta with the second script.
///
/// * **Batching**: admissions in flight together go as one script call (up to
///   128, at most two calls in flight), each with exactly the outcome it would
///   have alone, in queue order within a batch (two batches in flight may reach
///   Redis in either order); each still waits at most `timeout`.
/// * **TLS**: `rediss://` URLs connect with rustls and always verify the
///   server's certificate (platform roots, or `tls_ca_file`).
/// * **Time** is the caller's: the admission's `now_ms`, not Redis' `TIME`.
///   Replicas must keep their clocks in sync (NTP); a replica whose clock is behind
///   drains nothing until it catches up (levels never go back in time), one that is
///   ahead drains buckets early by its skew.
/// * **Keys** expire when all their buckets have drained (plus one second), and at
///   the latest two days after their last charge.
/// * **Refused subjects are answered locally** (`deny_cache`): after Redis refuses a
///   request, the subject's buckets are kept in process and later requests that
///   they still refuse are answered without a round trip, exactly as Redis would
///   have, until they would fit again. Anything they admit goes to Redis.
/// * **Faults**: every call is bounded by `timeout`. On an error or a timeout the
///   store goes *down*: with `fail_open` requests are checked against an in-process
///   [`MemoryStore`] (per-replica limits; [`RedisStore::fallback_count`] counts
///   them, and one warning is logged per outage), with `fail_closed` they fail with
///   [`StoreError`], which the enforce stage answers with 503. While down, one
///   request at a time (at most every 100 ms after a timeout, 10 ms after a fast
///   failure) probes Redis; the first success ends the outage.
/// * **Settlements** never block: they are queued to a task that sends all those
///   that queued up while its previous call was in flight (up to 256, in order)
///   with one script call, retries a failed batch once, and applies it to the
///   in-process store if Redis still fails. The queue is bounded (16,384): when
///   it is full a settlement is folded into a queued one of the same subjects,
///   or else applied in process and counted as an overflow
///   ([`Store::status`]).
///
/// ```no_run
/// # async fn run() -> Result<(), distill_guard::config::ConfigError> {
/// use distill_guard::store::{build_store, Backend, StoreConfig};
///
/// let store = build_store(&StoreConfig {
///     backend: Backend::Redis,
///     url: Some("redis://127.0.0.1:6379".into()),
///     ..StoreConfig::default()
/// })?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("RedisStore")
            .field("prefix", &i.keys.prefix())
            .field("timeout", &i.timeout)
            .field("on_error", &i.on_error)
            .field("down", &i.health.is_down())
            .field("fallbacks", &i.fallbacks.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Most settlements waiting for Redis at once (see [`Store::status`] for
    /// what happens beyond).
    pub const SETTLEMENT_QUEUE: usize = settle_queue::CAPACITY;

    /// A store for `config` (`backend` is not looked at). Does not connect: the
    /// first call does, so a Redis that is down at start-up is an ordinary outage.
    /// Must be called inside a Tokio runtime.
    pub fn new(config: &StoreConfig) -> Result<Self, ConfigError> {
        if config.timeout.is_zero() {
            return Err(ConfigError::single(
                "store.timeout",
                "must be greater than 0",
            ));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::single(
                "store",
                "the Redis store must be built inside a Tokio runtime",
            )
        })?;
        let conn = manager(config, config.timeout)?;
        let settlements = Arc::new(SettleQueue::new(settle_queue::CAPACITY));
        let (admissions, admit_queue) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            conn,
            admit: Script::new(script::ADMIT_MANY),
            settle: Script::new(script::SETTLE),
            keys: Keys::new(&config.key_prefix, config.backend == Backend::RedisCluster),
            timeout: config.timeout,
            on_error: config.on_error,
            local: MemoryStore::new(),
            cache: DenyCache::new(config.deny_cache),
            leases: Leases::new(config.local_leases),
            health: Health::new(),
            fallbacks: AtomicU64::new(0),
            settlements: settlements.clone(),
            settle_sent: AtomicU64::new(0),
            settle_local: AtomicU64::new(0),
            settle_overflow: AtomicU64::new(0),
            admissions,
        });
        handle.spawn(settle_loop(Arc::downgrade(&inner), settlements));
        handle.spawn(admit_loop(Arc::downgrade(&inner), admit_queue));
        if config.local_leases {
            handle.spawn(lease_sweeper(Arc::downgrade(&inner)));
        }
        Ok(Self { inner })
    }

    /// Admissions and settlements handled by the in-process store because Redis
    /// was down or too slow (`fail_open`).
    pub fn fallback_count(&self) -> u64 {
        self.inner.fallbacks.load(Ordering::Relaxed)
    }

    /// Outages seen: times Redis went from answering to failing.
    pub fn outage_count(&self) -> u64 {
        self.inner.health.outages()
    }

    /// Whether the last call to Redis failed (an outage is in progress).
    pub fn is_down(&self) -> bool {
        self.inner.health.is_down()
    }

    /// Requests refused from the local cache of refused subjects, without Redis.
    pub fn local_denial_count(&self) -> u64 {
        self.inner.cache.denials()
    }

    /// The in-process store that answers while Redis is down (`fail_open`) and
    /// takes settlements Redis could not.
    pub fn fallback_store(&self) -> &MemoryStore {
        &self.inner.local
    }

    /// Applies a settlement in Redis now and waits for it, without the fallback
    /// that [`Store::settle`] adds. For shutdown paths and tests.
    pub async fn settle_in_redis(&self, settlement: &Settlement) -> Result<(), StoreError> {
        self.inner.cache.settled(settlement);
        // One call per slot on a Redis Cluster.
        for charge in self.inner.per_slot(Charge::from(settlement.clone())) {
            self.inner.settle_redis(&[charge]).await?;
        }
        Ok(())
    }

    /// The Redis key of a subject.
    pub fn key_of(&self, subject: &Subject) -> String {
        self.inner.keys.of(subject)
    }
}

impl Store for RedisStore {
    fn admit(&self, admission: &Admission) -> StoreFuture<'static, Outcome> {
        // A refusal answered from the local copy needs no round trip (nor a box),
        // and neither does an admission a lease covers.
        if let Some(outcome) = self.inner.cache.refusal(admission) {
            return StoreFuture::ready(Ok(outcome));
        }
        self.inner.sweep_leases(admission.now_ms);
        if let Some(outcome) = self.inner.leases.admit(admission) {
            return StoreFuture::ready(Ok(outcome));
        }
        let inner = self.inner.clone();
        let admission = admission.clone();
        StoreFuture::new(async move { inner.admit(&admission).await })
    }

    fn settle(&self, settlement: Settlement) {
        let inner = &self.inner;
        inner.cache.settled(&settlement);
        // Subjects whose leases take the delta need no round trip.
        let (now, delta) = (settlement.now_ms, settlement.token_delta);
        let mut charge = Charge::from(settlement);
        charge
            .subjects
            .retain(|s| !inner.leases.absorb(s, now, delta));
        if !charge.subjects.is_empty() {
            inner.queue_charge(charge);
        }
    }

    /// Reads the subject's state with one `GET` (no script, no charge). A missing
    /// or malformed value reads as a fresh subject, as the scripts treat it.
    fn inspect<'a>(
        &'a self,
        subject: &'a Subject,
        now_ms: u64,
    ) -> StoreFuture<'a, Option<[Option<BucketView>; 4]>> {
        StoreFuture::new(async move {
            let inner = &self.inner;
            let mut cmd = ::redis::cmd("GET");
            cmd.arg(inner.keys.of(subject));
            let value = call(&inner.conn, &cmd, inner.timeout).await?;
            let mut entry = match &value {
                Value::BulkString(_) => script::state(&value)
                    .map(|s| Entry {
                        levels: s.levels,
                        last_ms: s.last_ms,
                        idle_at_ms: s.idle_at_ms,
                    })
                    .unwrap_or_default(),
                _ => Entry::default(),
            };
            entry.bring_to(now_ms, &subject.limits);
            Ok(Some(entry.views(&subject.limits)))
        })
    }

    fn status(&self) -> Option<StoreStatus> {
        let i = &self.inner;
        Some(StoreStatus {
            up: !i.health.is_down(),
            outages: i.health.outages(),
            fallbacks: i.fallbacks.load(Ordering::Relaxed),
            local_denials: i.cache.denials(),
            settlements_pending: i.settlements.pending(),
            settlements_sent: i.settle_sent.load(Ordering::Relaxed),
            settlements_merged: i.settlements.merged(),
            settlements_local: i.settle_local.load(Ordering::Relaxed),
            settlements_overflow: i.settle_overflow.load(Ordering::Relaxed),
            settlements_leased: i.leases.absorbed(),
            leases: i.leases.held() as u64,
            leases_taken: i.leases.taken(),
            leased_admissions: i.leases.admitted(),
        })
    }

    /// Subjects held in this process: the fallback store's and the cache of refused
    /// subjects (Redis' own keys are not counted).
    fn tracked(&self) -> usize {
        self.inner.local.tracked() + self.inner.cache.len()
    }
}
