//! The Redis backend: see [`RedisStore`].

mod connect;
mod script;

pub(crate) use connect::{manager, RedisConn};

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ::redis::{
    Client, Cmd, ErrorKind, IntoConnectionInfo, Script, ServerErrorKind, TlsCertificates, Value,
};
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::memory::{Entry, MAX_IDLE_MS};
use super::{Admission, Denial, MemoryStore, Outcome, Settlement, Store, StoreError, StoreFuture};
use super::{Subject, Window};
use crate::config::{is_tls, ConfigError, OnError, StoreConfig};
use crate::extensions::Scope;

/// Extra lifetime of a key after its buckets have drained.
const TTL_SLACK_MS: u64 = 1_000;
/// While Redis is down, how often a request may probe it.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Most subjects kept in the local cache of refused subjects.
const DENY_CACHE_MAX: usize = 100_000;
/// How often (in store time) expired cache entries are swept.
const SWEEP_EVERY_MS: u64 = 60_000;

/// The client for `url`; with `ca_file` (TLS only) the server's certificate must
/// chain to the certificates in that PEM file instead of the platform's roots.
pub(crate) fn open_client(url: &str, ca_file: Option<&Path>) -> Result<Client, ConfigError> {
    if is_tls(url) && ::rustls::crypto::CryptoProvider::get_default().is_none() {
        // rustls reads the process-wide crypto provider, which is the
        // application's to choose: refuse clearly here rather than let the first
        // connection panic when rustls cannot pick one itself.
        return Err(ConfigError::single(
            "store.url",
            "a `rediss://` URL needs a process-wide rustls crypto provider: install one at \
             start-up, e.g. `rustls::crypto::ring::default_provider().install_default()` \
             (the distill-guard binary does)",
        ));
    }
    // TCP_NODELAY (off by default in redis): a script call is never held back by
    // Nagle's algorithm behind an earlier, unacknowledged one.
    let info = url
        .into_connection_info()
        .map_err(|e| ConfigError::single("store.url", e.to_string()))?;
    let nodelay = info.tcp_settings().clone().set_nodelay(true);
    let info = info.set_tcp_settings(nodelay);
    let Some(path) = ca_file else {
        return Client::open(info).map_err(|e| ConfigError::single("store.url", e.to_string()));
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
    Client::build_with_tls(
        info,
        TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
    .map_err(|e| ConfigError::single(field, e.to_string()))
}

const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----";

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
///   request at a time (at most every 100 ms) probes Redis; the first success ends
///   the outage.
/// * **Settlements** never block: they are queued to a task that sends all those
///   that queued up while its previous call was in flight (up to 256, in order)
///   with one script call, retries a failed batch once, and applies it to the
///   in-process store if Redis still fails.
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
    prefix: String,
    timeout: Duration,
    on_error: OnError,
    deny_cache: bool,
    /// The fallback while Redis is down.
    local: MemoryStore,
    /// Refused subjects: their buckets as Redis last returned them.
    cache: DashMap<(bool, [u8; 16]), Cached>,
    /// About how many entries `cache` holds, kept beside it because
    /// `DashMap::len` and `is_empty` lock every shard and the admission path
    /// asks on every call. Only a short-cut and a cap: a stale count makes a
    /// call ask Redis, never answer wrongly.
    cache_len: AtomicUsize,
    last_sweep_ms: AtomicU64,
    health: Health,
    fallbacks: AtomicU64,
    local_denials: AtomicU64,
    /// Settlements waiting for the sending task.
    settlements: mpsc::UnboundedSender<Settlement>,
    /// Admissions waiting for the batching task.
    admissions: mpsc::UnboundedSender<Pending>,
}

/// An admission queued for the next batched script call.
struct Pending {
    now_ms: u64,
    tokens: f64,
    account: Subject,
    cluster: Option<Subject>,
    /// Where its reply goes; closed when the caller gave up (timeout, cancel).
    reply: oneshot::Sender<Result<script::AdmitReply, StoreError>>,
}

/// One call of a script batch: an admission or a settlement.
trait Call {
    /// Its time, cost (or token delta), account and cluster.
    fn parts(&self) -> (u64, f64, &Subject, Option<&Subject>);
}

impl Call for Pending {
    fn parts(&self) -> (u64, f64, &Subject, Option<&Subject>) {
        (
            self.now_ms,
            self.tokens,
            &self.account,
            self.cluster.as_ref(),
        )
    }
}

impl Call for Settlement {
    fn parts(&self) -> (u64, f64, &Subject, Option<&Subject>) {
        (
            self.now_ms,
            self.token_delta,
            &self.account,
            self.cluster.as_ref(),
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    entry: Entry,
    /// When the refusal that cached it would have lifted (store time).
    until_ms: u64,
}

/// Whether Redis is up, and who may probe it while it is not.
struct Health {
    epoch: Instant,
    down: AtomicBool,
    probing: AtomicBool,
    /// Milliseconds since `epoch` before which nobody probes.
    next_probe_ms: AtomicU64,
    outages: AtomicU64,
}

/// Releases the probe slot when the probing request ends, even if it is dropped.
struct ProbeSlot<'a>(&'a Health);

impl Drop for ProbeSlot<'_> {
    fn drop(&mut self) {
        self.0.probing.store(false, Ordering::Release);
    }
}

impl Health {
    fn elapsed_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// `Some` when this call should go to Redis (with the probe slot if Redis is
    /// down), `None` when it should be answered without Redis.
    fn route(&self) -> Option<Option<ProbeSlot<'_>>> {
        if !self.down.load(Ordering::Acquire) {
            return Some(None);
        }
        if self.elapsed_ms() < self.next_probe_ms.load(Ordering::Acquire) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Some(ProbeSlot(self)))
    }

    fn succeeded(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("redis quota store is reachable again; shared limits are back");
        }
    }

    fn failed(&self, error: &StoreError, on_error: OnError) {
        self.next_probe_ms.store(
            self.elapsed_ms() + PROBE_EVERY.as_millis() as u64,
            Ordering::Release,
        );
        if !self.down.swap(true, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            let mode = match on_error {
                OnError::FailOpen => "fail_open: enforcing per-replica limits in memory",
                OnError::FailClosed => "fail_closed: refusing requests with 503",
            };
            tracing::warn!(%error, mode, "redis quota store unavailable");
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("RedisStore")
            .field("prefix", &i.prefix)
            .field("timeout", &i.timeout)
            .field("on_error", &i.on_error)
            .field("down", &i.health.down.load(Ordering::Relaxed))
            .field("fallbacks", &i.fallbacks.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `config` (`backend` is not looked at). Does not connect: the
    /// first call does, so a Redis that is down at start-up is an ordinary outage.
    /// Must be called inside a Tokio runtime.
    pub fn new(config: &StoreConfig) -> Result<Self, ConfigError> {
        if config.url.is_none() {
            return Err(ConfigError::single(
                "store.url",
                "required for the Redis backend",
            ));
        }
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
        let (settlements, queue) = mpsc::unbounded_channel();
        let (admissions, admit_queue) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            conn,
            admit: Script::new(script::ADMIT_MANY),
            settle: Script::new(script::SETTLE),
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            on_error: config.on_error,
            deny_cache: config.deny_cache,
            local: MemoryStore::new(),
            cache: DashMap::new(),
            cache_len: AtomicUsize::new(0),
            last_sweep_ms: AtomicU64::new(0),
            health: Health {
                epoch: Instant::now(),
                down: AtomicBool::new(false),
                probing: AtomicBool::new(false),
                next_probe_ms: AtomicU64::new(0),
                outages: AtomicU64::new(0),
            },
            fallbacks: AtomicU64::new(0),
            local_denials: AtomicU64::new(0),
            settlements,
            admissions,
        });
        handle.spawn(settle_loop(Arc::downgrade(&inner), queue));
        handle.spawn(admit_loop(Arc::downgrade(&inner), admit_queue));
        Ok(Self { inner })
    }

    /// Admissions and settlements handled by the in-process store because Redis
    /// was down or too slow (`fail_open`).
    pub fn fallback_count(&self) -> u64 {
        self.inner.fallbacks.load(Ordering::Relaxed)
    }

    /// Outages seen: times Redis went from answering to failing.
    pub fn outage_count(&self) -> u64 {
        self.inner.health.outages.load(Ordering::Relaxed)
    }

    /// Whether the last call to Redis failed (an outage is in progress).
    pub fn is_down(&self) -> bool {
        self.inner.health.down.load(Ordering::Acquire)
    }

    /// Requests refused from the local cache of refused subjects, without Redis.
    pub fn local_denial_count(&self) -> u64 {
        self.inner.local_denials.load(Ordering::Relaxed)
    }

    /// The in-process store that answers while Redis is down (`fail_open`) and
    /// takes settlements Redis could not.
    pub fn fallback_store(&self) -> &MemoryStore {
        &self.inner.local
    }

    /// Applies a settlement in Redis now and waits for it, without the fallback
    /// that [`Store::settle`] adds. For shutdown paths and tests.
    pub async fn settle_in_redis(&self, settlement: &Settlement) -> Result<(), StoreError> {
        let inner = &self.inner;
        if inner.deny_cache {
            inner.forget(settlement);
        }
        inner.settle_redis(std::slice::from_ref(settlement)).await
    }

    /// The Redis key of a subject.
    pub fn key_of(&self, subject: &Subject) -> String {
        self.inner.key(subject)
    }
}

fn cache_key(subject: &Subject) -> (bool, [u8; 16]) {
    (subject.scope == Scope::Cluster, subject.key)
}

impl Inner {
    fn key(&self, subject: &Subject) -> String {
        let mut key = Vec::with_capacity(self.prefix.len() + 2 + 32);
        self.push_key(subject, &mut key);
        String::from_utf8_lossy(&key).into_owned()
    }

    /// Appends the Redis key of `subject` to `out`.
    fn push_key(&self, subject: &Subject, out: &mut Vec<u8>) {
        let tag = match subject.scope {
            Scope::Account => b"a:",
            Scope::Cluster => b"c:",
        };
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(tag);
        for b in subject.key {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
    }

    /// The `EVALSHA` of `script` over `batch`: every call's keys (its account's,
    /// then its cluster's if any), then every call's packed arguments. Built
    /// straight into the command's buffer; the subject counts per call.
    fn batch_cmd<C: Call>(&self, script: &Script, batch: &[C]) -> (Cmd, Vec<usize>) {
        let counts: Vec<usize> = batch
            .iter()
            .map(|c| 1 + usize::from(c.parts().3.is_some()))
            .collect();
        let keys: usize = counts.iter().sum();
        let key_len = self.prefix.len() + 2 + 32;
        let mut cmd = Cmd::with_capacity(
            3 + keys + batch.len(),
            64 + keys * key_len + batch.len() * script::ARGS_BYTES_MAX,
        );
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
        let mut buf = Vec::with_capacity(key_len.max(script::ARGS_BYTES_MAX));
        for c in batch {
            let (_, _, account, cluster) = c.parts();
            for subject in std::iter::once(account).chain(cluster) {
                buf.clear();
                self.push_key(subject, &mut buf);
                cmd.arg(buf.as_slice());
            }
        }
        for c in batch {
            let (now_ms, amount, account, cluster) = c.parts();
            buf.clear();
            match cluster {
                Some(cl) => script::pack_args(
                    &mut buf,
                    now_ms,
                    amount,
                    MAX_IDLE_MS,
                    TTL_SLACK_MS,
                    &[&account.limits, &cl.limits],
                ),
                None => script::pack_args(
                    &mut buf,
                    now_ms,
                    amount,
                    MAX_IDLE_MS,
                    TTL_SLACK_MS,
                    &[&account.limits],
                ),
            }
            cmd.arg(buf.as_slice());
        }
        (cmd, counts)
    }

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
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout),
            Ok(Err(e)) => Err(StoreError::Unavailable(e.to_string())),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Queues the admission for the batching task and waits for its reply, at
    /// most `timeout` in all (queueing included).
    async fn admit_redis(&self, a: &Admission) -> Result<Outcome, StoreError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (reply, answer) = oneshot::channel();
        self.admissions
            .send(Pending {
                now_ms: a.now_ms,
                tokens: a.tokens,
                account: a.account.clone(),
                cluster: a.cluster.clone(),
                reply,
            })
            .map_err(|_| StoreError::Unavailable("the redis store is shutting down".into()))?;
        let reply = match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => return Err(StoreError::Timeout),
            Ok(Err(_)) => {
                return Err(StoreError::Unavailable(
                    "the admission batch was dropped".into(),
                ))
            }
            Ok(Ok(reply)) => reply?,
        };
        Ok(self.outcome_of(a, &reply))
    }

    /// Runs `batch` with one script call, in order, and hands each admission its
    /// reply; on any error every admission of the batch gets it.
    async fn admit_batch(&self, batch: Vec<Pending>) {
        let (cmd, counts) = self.batch_cmd(&self.admit, &batch);
        let replies = self
            .run(&self.admit, &cmd)
            .await
            .and_then(|v| script::parse_admit_many(&v, &counts).map_err(StoreError::Unavailable));
        match replies {
            Ok(replies) => {
                for (p, r) in batch.into_iter().zip(replies) {
                    let _ = p.reply.send(Ok(r));
                }
            }
            Err(e) => {
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// The outcome Redis' reply means, computed with the embedded store's code on
    /// the levels Redis returned; refusals are remembered in the local cache.
    fn outcome_of(&self, a: &Admission, reply: &script::AdmitReply) -> Outcome {
        let costs = [1.0, 1.0, a.tokens, a.tokens];
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
        let acct = entry(0);
        let cluster = a.cluster.as_ref().map(|c| (c, entry(1)));
        let mut views = [[None; 4]; 2];
        views[0] = acct.views(&a.account.limits);
        if let Some((c, e)) = &cluster {
            views[1] = e.views(&c.limits);
        }
        if reply.admitted {
            if self.deny_cache {
                self.uncache(&a.account);
                if let Some(c) = &a.cluster {
                    self.uncache(c);
                }
            }
            return Outcome {
                denied: None,
                views,
            };
        }
        let denial = acct
            .check(&costs, &a.account.limits, Scope::Account)
            .or_else(|| {
                cluster
                    .as_ref()
                    .and_then(|(c, e)| e.check(&costs, &c.limits, Scope::Cluster))
            })
            .unwrap_or_else(|| {
                // Redis refused, yet the same arithmetic here admits: only possible if
                // the stored state changed shape under us. Refuse briefly.
                tracing::warn!("redis refused an admission the local arithmetic admits");
                Denial {
                    scope: Scope::Account,
                    window: Window::RequestsPerMinute,
                    retry_after_ms: Some(1),
                }
            });
        if self.deny_cache {
            let until_ms = a.now_ms.saturating_add(
                denial
                    .retry_after_ms
                    .unwrap_or_else(|| denial.window.window_ms()),
            );
            self.remember(&a.account, acct, until_ms, a.now_ms);
            if let Some((c, e)) = cluster {
                self.remember(c, e, until_ms, a.now_ms);
            }
        }
        Outcome {
            denied: Some(denial),
            views,
        }
    }

    /// Drops the cached copies a settlement makes stale.
    fn forget(&self, s: &Settlement) {
        self.uncache(&s.account);
        if let Some(c) = &s.cluster {
            self.uncache(c);
        }
    }

    fn uncache(&self, subject: &Subject) {
        if self.cache.remove(&cache_key(subject)).is_some() {
            let _ = self
                .cache_len
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    fn remember(&self, subject: &Subject, entry: Entry, until_ms: u64, now_ms: u64) {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= SWEEP_EVERY_MS
            && self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.cache.retain(|_, c| c.until_ms > now_ms);
            self.cache_len.store(self.cache.len(), Ordering::Relaxed);
        }
        if self.cache_len.load(Ordering::Relaxed) < DENY_CACHE_MAX
            && self
                .cache
                .insert(cache_key(subject), Cached { entry, until_ms })
                .is_none()
        {
            self.cache_len.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn cached(&self, subject: &Subject, now_ms: u64) -> Option<Entry> {
        let c = *self.cache.get(&cache_key(subject))?;
        if c.until_ms <= now_ms {
            self.uncache(subject);
            return None;
        }
        let mut e = c.entry;
        e.bring_to(now_ms, &subject.limits);
        Some(e)
    }

    /// The refusal Redis would give, from the local copies of refused subjects;
    /// `None` when Redis must be asked.
    fn cached_refusal(&self, a: &Admission) -> Option<Outcome> {
        if !self.deny_cache || self.cache_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let costs = [1.0, 1.0, a.tokens, a.tokens];
        let acct = self.cached(&a.account, a.now_ms)?;
        let cluster = match &a.cluster {
            Some(c) => Some((c, self.cached(c, a.now_ms)?)),
            None => None,
        };
        let denied = acct
            .check(&costs, &a.account.limits, Scope::Account)
            .or_else(|| {
                cluster
                    .as_ref()
                    .and_then(|(c, e)| e.check(&costs, &c.limits, Scope::Cluster))
            })?;
        let mut views = [[None; 4]; 2];
        views[0] = acct.views(&a.account.limits);
        if let Some((c, e)) = &cluster {
            views[1] = e.views(&c.limits);
        }
        self.local_denials.fetch_add(1, Ordering::Relaxed);
        Some(Outcome {
            denied: Some(denied),
            views,
        })
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

    /// An admission the local copy of refused subjects could not answer.
    async fn admit(&self, a: &Admission) -> Result<Outcome, StoreError> {
        let Some(_probe) = self.health.route() else {
            return self.fallback_admit(
                a,
                StoreError::Unavailable("redis is down; waiting to probe it again".into()),
            );
        };
        match self.admit_redis(a).await {
            Ok(outcome) => {
                self.health.succeeded();
                Ok(outcome)
            }
            Err(e) => {
                self.health.failed(&e, self.on_error);
                self.fallback_admit(a, e)
            }
        }
    }

    /// Applies `batch` in Redis, in order, with one script call.
    async fn settle_redis(&self, batch: &[Settlement]) -> Result<(), StoreError> {
        let (cmd, _) = self.batch_cmd(&self.settle, batch);
        match self.run(&self.settle, &cmd).await? {
            Value::Int(n) if usize::try_from(n).ok() == Some(batch.len()) => Ok(()),
            other => Err(StoreError::Unavailable(format!(
                "settle script: unexpected reply {other:?}"
            ))),
        }
    }

    /// Applies `batch` in Redis, retrying once, else in the in-process store.
    async fn settle_or_fall_back(&self, batch: &[Settlement]) {
        let mut error = None;
        for _ in 0..2 {
            match self.settle_redis(batch).await {
                Ok(()) => {
                    self.health.succeeded();
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

    fn settle_locally(&self, batch: &[Settlement]) {
        for s in batch {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            self.local.settle_now(s);
        }
    }
}

/// Most settlements sent in one script call.
const SETTLE_BATCH: usize = 256;

/// Sends queued settlements to Redis, as many per call as have queued up while
/// the previous call was in flight. Ends when the store is dropped.
async fn settle_loop(inner: Weak<Inner>, mut queue: mpsc::UnboundedReceiver<Settlement>) {
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < SETTLE_BATCH {
            match queue.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.health.down.load(Ordering::Acquire) {
            inner.settle_locally(&batch);
        } else {
            inner.settle_or_fall_back(&batch).await;
        }
        batch.clear();
    }
}

/// Most admissions sent in one script call (Redis runs a script without
/// interruption: 128 admissions keep it busy for about a millisecond).
const ADMIT_BATCH: usize = 128;
/// Most admission batches in flight at once: while Redis runs one, the next
/// is on its way, so Redis never waits for the client.
const ADMIT_IN_FLIGHT: usize = 2;

/// Sends queued admissions to Redis, as many per script call as have queued up
/// while the previous calls were in flight (up to [`ADMIT_BATCH`], in order;
/// admissions whose caller gave up are dropped unsent). Ends when the store is
/// dropped.
async fn admit_loop(inner: Weak<Inner>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(ADMIT_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(ADMIT_BATCH);
        batch.push(first);
        while batch.len() < ADMIT_BATCH {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            inner.admit_batch(batch).await;
            drop(slot);
        });
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Store for RedisStore {
    fn admit(&self, admission: &Admission) -> StoreFuture<'static, Outcome> {
        // A refusal answered from the local copy needs no round trip (nor a box).
        if let Some(outcome) = self.inner.cached_refusal(admission) {
            return StoreFuture::ready(Ok(outcome));
        }
        let inner = self.inner.clone();
        let admission = admission.clone();
        StoreFuture::new(async move { inner.admit(&admission).await })
    }

    fn settle(&self, settlement: Settlement) {
        let inner = &self.inner;
        if inner.deny_cache {
            inner.forget(&settlement);
        }
        if inner.health.down.load(Ordering::Acquire) {
            // The admission was most likely answered locally too.
            inner.settle_locally(std::slice::from_ref(&settlement));
            return;
        }
        if let Err(unsent) = inner.settlements.send(settlement) {
            // The sending task is gone (the runtime is shutting down).
            inner.settle_locally(std::slice::from_ref(&unsent.0));
        }
    }

    /// Reads the subject's state with one `GET` (no script, no charge). A missing
    /// or malformed value reads as a fresh subject, as the scripts treat it.
    fn inspect<'a>(
        &'a self,
        subject: &'a Subject,
        now_ms: u64,
    ) -> StoreFuture<'a, Option<[Option<super::BucketView>; 4]>> {
        StoreFuture::new(async move {
            let inner = &self.inner;
            let mut conn = inner.conn.clone();
            let mut cmd = ::redis::cmd("GET");
            cmd.arg(inner.key(subject));
            let get = cmd.query_async::<Value>(&mut conn);
            let value = match tokio::time::timeout(inner.timeout, get).await {
                Err(_) => return Err(StoreError::Timeout),
                Ok(Err(e)) => return Err(StoreError::Unavailable(e.to_string())),
                Ok(Ok(v)) => v,
            };
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

    /// Subjects held in this process: the fallback store's and the cache of refused
    /// subjects (Redis' own keys are not counted).
    fn tracked(&self) -> usize {
        self.inner.local.tracked() + self.inner.cache_len.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health {
            epoch: Instant::now(),
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            next_probe_ms: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        }
    }

    #[test]
    fn while_down_one_request_at_a_time_probes() {
        let h = health();
        assert!(
            matches!(h.route(), Some(None)),
            "up: every call goes to Redis"
        );
        h.failed(&StoreError::Timeout, OnError::FailOpen);
        h.failed(&StoreError::Timeout, OnError::FailOpen);
        assert_eq!(h.outages.load(Ordering::Relaxed), 1, "one outage, not two");
        assert!(h.route().is_none(), "no probe before the interval");
        h.next_probe_ms.store(0, Ordering::Release);
        let probe = h.route().expect("probe allowed");
        assert!(probe.is_some());
        assert!(h.route().is_none(), "a second concurrent probe is refused");
        drop(probe);
        assert!(matches!(h.route(), Some(Some(_))), "slot released on drop");
        h.succeeded();
        assert!(matches!(h.route(), Some(None)));
        assert!(!h.down.load(Ordering::Acquire));
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

    #[test]
    fn keys_are_prefixed_hex_ids() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let store = RedisStore::new(&StoreConfig {
            url: Some("redis://127.0.0.1:1".into()),
            key_prefix: "p:".into(),
            ..StoreConfig::default()
        })
        .expect("store");
        let mut key = [0u8; 16];
        key[0] = 0xab;
        key[15] = 0x01;
        let subject = |scope| Subject {
            scope,
            key,
            limits: [None; 4],
        };
        assert_eq!(
            store.key_of(&subject(Scope::Account)),
            "p:a:ab000000000000000000000000000001"
        );
        assert_eq!(
            store.key_of(&subject(Scope::Cluster)),
            "p:c:ab000000000000000000000000000001"
        );
    }
}
