//! The Redis backend: see [`RedisStore`].
//!
//! One concern per file: `connect` (connections: URL, TLS, Sentinel; one call
//! with a deadline), `script` (the Lua scripts and their replies), `keys` (a
//! subject's key), `batch` (admissions and settlements sent together),
//! `health` (outages and probes), `deny_cache` (refusals answered locally),
//! `settle_queue` (settlements waiting for Redis, bounded);
//! this file is the store that ties them together.

mod batch;
mod connect;
mod deny_cache;
mod health;
mod keys;
mod lease;
mod script;
mod settle_queue;
mod slots;

pub use connect::RedisCallError;
pub(crate) use connect::{call, manager, within, RedisConn};
pub(crate) use keys::named;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::redis::{Cmd, ErrorKind, Script, ServerErrorKind, Value};
use tokio::sync::{mpsc, oneshot};

use self::batch::{admit_loop, lease_sweeper, settle_loop, Pending};
use self::deny_cache::DenyCache;
use self::health::Health;
use self::keys::Keys;
use self::lease::Leases;
use self::settle_queue::{Charge, Push, Refusal, SettleQueue};
use super::memory::{judge, Entry};
use super::{Admission, Denial, MemoryStore, Outcome, Settlement, Store, StoreError, StoreFuture};
use super::{BucketView, StoreStatus, Subject, Window};
use crate::config::{Backend, ConfigError, OnError, StoreConfig};
use crate::extensions::Scope;

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

struct Inner {
    conn: RedisConn,
    admit: Script,
    settle: Script,
    keys: Keys,
    timeout: Duration,
    on_error: OnError,
    /// The fallback while Redis is down.
    local: MemoryStore,
    /// Refused subjects, answered without Redis until they would fit.
    cache: DenyCache,
    /// Shares of busy subjects' buckets, admitted from locally.
    leases: Leases,
    health: Health,
    fallbacks: AtomicU64,
    /// Settlements waiting for the sending task.
    settlements: Arc<SettleQueue>,
    /// Settlements Redis applied.
    settle_sent: AtomicU64,
    /// Settlements applied in process: Redis down or failing.
    settle_local: AtomicU64,
    /// Settlements applied in process because the queue was full.
    settle_overflow: AtomicU64,
    /// Admissions waiting for the batching task.
    admissions: mpsc::UnboundedSender<Pending>,
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

impl Inner {
    /// Runs a script command, loading the script and retrying once after a
    /// `NOSCRIPT` (a `SCRIPT FLUSH`, a restart, a failover); at most `timeout`
    /// in all.
    async fn run(&self, script: &Script, cmd: &Cmd) -> Result<Value, StoreError> {
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

    /// Queues the admission for the batching task and waits for its reply, at
    /// most `timeout` in all (queueing included).
    async fn admit_redis(&self, a: &Admission) -> Result<Outcome, StoreError> {
        let reply = self
            .charge_checked(a.now_ms, 1.0, a.tokens, a.subjects().cloned().collect())
            .await?;
        Ok(self.outcome_of(a, &reply))
    }

    /// Queues a checked charge (`requests` and `tokens` on the subjects, all or
    /// nothing: an admission, or a lease) for the batching task and waits for
    /// Redis' reply, at most `timeout` in all (queueing included).
    async fn charge_checked(
        &self,
        now_ms: u64,
        requests: f64,
        tokens: f64,
        subjects: Vec<Subject>,
    ) -> Result<script::AdmitReply, StoreError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (reply, answer) = oneshot::channel();
        self.admissions
            .send(Pending {
                now_ms,
                requests,
                tokens,
                subjects,
                reply,
            })
            .map_err(|_| StoreError::Stopped)?;
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(StoreError::Timeout),
            // The batching task dropped it: it is stopping.
            Ok(Err(_)) => Err(StoreError::Stopped),
            Ok(Ok(reply)) => reply,
        }
    }

    /// The outcome Redis' reply means, computed with the embedded store's code on
    /// the levels Redis returned; refusals are remembered in the local cache.
    fn outcome_of(&self, a: &Admission, reply: &script::AdmitReply) -> Outcome {
        let entry = |i: usize| {
            let s = reply.states.get(i).copied().unwrap_or(script::State {
                levels: [0.0; 4],
                last_ms: a.now_ms,
                idle_at_ms: 0,
            });
            Entry {
                levels: s.levels,
                last_ms: s.last_ms,
                idle_at_ms: s.idle_at_ms,
            }
        };
        let mut entries = [None; 4];
        for (i, subject) in a.subjects().enumerate() {
            entries[subject.row()] = Some(entry(i));
        }
        let (denied, views) = judge(a, &entries);
        if reply.admitted {
            self.cache.admitted(a);
            return Outcome {
                denied: None,
                views,
            };
        }
        let denial = denied.unwrap_or_else(|| {
            // Redis refused, yet the same arithmetic here admits: only possible if
            // the stored state changed shape under us. Refuse briefly.
            tracing::warn!("redis refused an admission the local arithmetic admits");
            Denial {
                scope: Scope::Account,
                model_group: false,
                window: Window::RequestsPerMinute,
                retry_after_ms: Some(1),
            }
        });
        let until_ms = a.now_ms.saturating_add(
            denial
                .retry_after_ms
                .unwrap_or_else(|| denial.window.window_ms()),
        );
        self.cache.refused(a, &entries, until_ms);
        Outcome {
            denied: Some(denial),
            views,
        }
    }

    /// Redis admitted `a`: takes the leases its subjects' demand has earned
    /// (in the background) and gives back any taken under other limits.
    fn take_leases(self: &Arc<Self>, a: &Admission) {
        let mut back = Vec::new();
        let wanted = self.leases.after_admission(a, &mut back);
        for charge in back {
            self.queue_charge(charge);
        }
        for w in wanted {
            let inner = self.clone();
            let now_ms = a.now_ms;
            tokio::spawn(async move {
                let reply = inner
                    .charge_checked(now_ms, w.requests, w.tokens, vec![w.subject.clone()])
                    .await;
                let state = match reply {
                    Ok(r) if r.admitted => r.states.first().copied(),
                    _ => None,
                };
                inner.leases.taken_or_refused(&w, now_ms, state);
            });
        }
    }

    /// Gives back what is left of the leases expired at `now_ms` (at most once
    /// a lease period).
    fn sweep_leases(&self, now_ms: u64) {
        for charge in self.leases.sweep(now_ms, false) {
            self.queue_charge(charge);
        }
    }

    /// Queues `charge` for Redis; to the in-process store while Redis is down,
    /// when the queue is full (an overflow), or when the store is going away.
    /// On a Redis Cluster a charge whose subjects live in several slots is
    /// queued as one charge per slot.
    fn queue_charge(&self, charge: Charge) {
        for c in self.per_slot(charge) {
            self.queue_one(c);
        }
    }

    fn queue_one(&self, charge: Charge) {
        if self.health.is_down() {
            // The admission was most likely answered locally too.
            self.settle_locally(std::slice::from_ref(&charge));
            return;
        }
        match self.settlements.push(charge) {
            Push::Queued => {}
            Push::Refused(c, Refusal::Full) => {
                self.settle_overflow.fetch_add(1, Ordering::Relaxed);
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.charge_locally(&c);
            }
            Push::Refused(c, Refusal::Closed) => {
                self.settle_locally(std::slice::from_ref(&c));
            }
        }
    }

    fn fallback_admit(&self, a: &Admission, error: StoreError) -> Result<Outcome, StoreError> {
        match self.on_error {
            OnError::FailOpen => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                Ok(self.local.admit_now(a))
            }
            OnError::FailClosed => Err(error),
        }
    }

    /// An admission the local copy of refused subjects could not answer: to
    /// Redis unless it is down, else to the fallback (`on_error`).
    async fn admit(self: &Arc<Self>, a: &Admission) -> Result<Outcome, StoreError> {
        let Some(_probe) = self.health.route() else {
            return self.fallback_admit(a, StoreError::Down);
        };
        match self.admit_redis(a).await {
            Ok(outcome) => {
                self.health.succeeded();
                if outcome.denied.is_none() {
                    self.take_leases(a);
                }
                Ok(outcome)
            }
            Err(e) => {
                self.health.failed(&e, self.on_error);
                self.fallback_admit(a, e)
            }
        }
    }

    /// Applies `batch` in Redis, in order, with one script call.
    async fn settle_redis(&self, batch: &[Charge]) -> Result<(), StoreError> {
        let (cmd, _) = self.batch_cmd(&self.settle, batch);
        match self.run(&self.settle, &cmd).await? {
            Value::Int(n) if usize::try_from(n).ok() == Some(batch.len()) => Ok(()),
            _ => Err(RedisCallError::Reply("settle script: not one count for the batch").into()),
        }
    }

    /// Applies `batch` in Redis, retrying once, else in the in-process store;
    /// on a Redis Cluster one call per slot (see `slots`).
    async fn settle_or_fall_back(self: &Arc<Self>, batch: Vec<Charge>) {
        if self.keys.tagged() {
            return self.settle_on_slots(batch).await;
        }
        self.settle_group(&batch).await;
    }

    /// Applies `batch` (one slot's) in Redis, retrying once, else in the
    /// in-process store.
    async fn settle_group(&self, batch: &[Charge]) {
        let mut error = None;
        for _ in 0..2 {
            match self.settle_redis(batch).await {
                Ok(()) => {
                    self.health.succeeded();
                    self.settle_sent
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) => error = Some(e),
            }
        }
        if let Some(e) = error {
            self.health.failed(&e, self.on_error);
        }
        self.settle_locally(batch);
    }

    /// Applies `batch` in the in-process store (Redis down or failing).
    fn settle_locally(&self, batch: &[Charge]) {
        self.settle_local
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for c in batch {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            self.charge_locally(c);
        }
    }

    fn charge_locally(&self, c: &Charge) {
        self.local
            .charge_now(c.now_ms, &c.subjects, c.requests, c.tokens);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wakes the sending task, which finds the store gone and ends (what
        // is still queued is lost with the store, as at process exit).
        self.settlements.close();
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
