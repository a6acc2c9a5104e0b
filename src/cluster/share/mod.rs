//! One set of clusters for every replica: the engine's inputs shared through a
//! log in Redis.
//!
//! Each replica keeps its own [`ClusterEngine`](super::ClusterEngine) and
//! publishes what it feeds it — every request's account, time, features and
//! content signals, and every administrator's unlink — to one Redis stream
//! (`{key_prefix}clusters:log`). Every replica reads that stream and feeds the
//! other replicas' events to its engine with their original timestamps. The
//! postings, links, commonness, caps and decay are therefore computed from all
//! the traffic, as if one replica had seen it all; since a cluster's id is the
//! id of its oldest account, replicas agree on cluster ids and the cluster
//! buckets in the Redis store are shared too.
//!
//! Why a log rather than postings kept in Redis: linking one request reads
//! dozens of posting lists and updates cluster records; doing that in Redis
//! would cost several round trips (or a large Lua script) per request on the
//! hot path, while publishing costs one batched `XADD` per burst of requests
//! and reading is off the request path. Features are 64-bit hashes with fixed
//! seeds, identical on every replica, and account ids are keyed hashes with the
//! shared `[identity] secret`.
//!
//! * **Bounded.** The stream is trimmed to about `cluster_log_len` entries
//!   (`XADD MAXLEN ~`); each entry is a batch of up to 64 events from one replica.
//!   Publishing never waits: events go to a bounded queue, and when it is full
//!   (Redis slower than the traffic) they are dropped and counted.
//! * **Warm start.** A replica that starts reads the stream from its oldest
//!   entry, so a restart or a new replica begins with the recent clusters.
//! * **Faults.** Redis down: the replica keeps linking its own traffic, events it
//!   could not publish are dropped and counted, and reading resumes where it
//!   stopped when Redis is back. Entry ids are Redis' clock time, so a Redis
//!   that restarted empty goes on with later ids and the reader simply reads
//!   them; if its ids went backwards (its clock did), the reader notices after
//!   the error and reads the stream from the start.
//! * **Hostile data.** Entries are decoded with every length checked; a malformed
//!   entry is skipped and counted, never a panic. An event dated more than a
//!   minute after this replica's clock is applied at this replica's time, so a
//!   replica with a broken clock (or a forged entry) cannot age out everyone's
//!   postings.
//!
//! Not shared here: the scorer's hysteresis is recomputed by each replica from
//! the same events; admin overrides are shared separately
//! ([`crate::policy::RemoteOverrides`]); the watermark trace index travels
//! the same way on a stream of its own (`crate::watermark::share`, through
//! [`SharedLog`]).

mod codec;
mod redis;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

pub use codec::DecodeError;

/// Decodes one batch of the shared log as a replica reads it and returns how
/// many events it held, or why it was refused. For the fuzz targets
/// (`fuzz/targets.rs`): the codec itself stays private.
#[doc(hidden)]
pub fn decode_batch_len(buf: &[u8]) -> Result<usize, DecodeError> {
    codec::decode_batch(buf).map(|(_, events)| events.len())
}
pub use redis::StreamId;
pub(crate) use redis::{ApplyFn, Topic};

use super::SIGNALS;
use crate::config::ConfigError;
use crate::extensions::AccountId;
use crate::features::Feature;
use crate::store::StoreConfig;

/// Events that may wait to be published; beyond, new ones are dropped.
const QUEUE: usize = 16_384;

/// One input of the cluster engine, as shared between replicas.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A request: see [`Observation`](super::Observation).
    Observe {
        /// The account.
        account: AccountId,
        /// When, Unix milliseconds.
        now_ms: u64,
        /// Per-request content signals.
        signals: [f32; SIGNALS],
        /// Its features (hard links included).
        features: Vec<Feature>,
    },
    /// An administrator took `account` out of its cluster for `hold_ms`.
    Unlink {
        /// The account.
        account: AccountId,
        /// When.
        now_ms: u64,
        /// How long it is held apart.
        hold_ms: u64,
    },
    /// An administrator ended the hold on `account` (`relink`).
    Relink {
        /// The account.
        account: AccountId,
        /// When.
        now_ms: u64,
    },
    /// An administrator dissolved the cluster of `account`.
    Dissolve {
        /// A member of the cluster.
        account: AccountId,
        /// When.
        now_ms: u64,
        /// How long its members are held apart.
        hold_ms: u64,
    },
}

impl Event {
    /// Dates it at `latest` if it is dated later.
    pub fn clamp_time(&mut self, latest: u64) {
        match self {
            Event::Observe { now_ms, .. }
            | Event::Unlink { now_ms, .. }
            | Event::Relink { now_ms, .. }
            | Event::Dissolve { now_ms, .. } => *now_ms = (*now_ms).min(latest),
        }
    }
}

/// What applies the other replicas' events (the detector). Returns false once
/// the receiver is gone, which stops the reader.
pub type Apply = Box<dyn Fn(Event) -> bool + Send + Sync>;

/// The cluster log's stream for `config`.
fn topic(config: &StoreConfig) -> Topic<Event, codec::DecodeError> {
    Topic {
        name: "cluster log",
        alone: "clusters are linked from this replica's traffic only",
        key: crate::store::redis_key(config, "clusters:log", ""),
        max_len: config.cluster_log_len,
        encode: codec::encode_batch,
        decode: codec::decode_batch,
    }
}

/// Counters of one replica's sharing, for metrics and tests.
#[derive(Debug, Default)]
pub struct ShareStats {
    published: AtomicU64,
    applied: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
    errors: AtomicU64,
    down: AtomicBool,
}

/// A snapshot of [`ShareStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareCounts {
    /// Events of this replica written to the log.
    pub published: u64,
    /// Events of other replicas applied to this replica's engine.
    pub applied: u64,
    /// Events of this replica that could not be published (queue full or Redis
    /// failing).
    pub dropped: u64,
    /// Log entries skipped because they could not be decoded.
    pub malformed: u64,
    /// Failed Redis calls.
    pub errors: u64,
    /// Whether the last Redis call failed.
    pub down: bool,
}

impl ShareStats {
    /// The counters now.
    pub fn counts(&self) -> ShareCounts {
        ShareCounts {
            published: self.published.load(Ordering::Relaxed),
            applied: self.applied.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
        }
    }
}

/// Why a [`ClusterShare::flush`] or [`ClusterShare::caught_up`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ShareError {
    /// Redis failed or was slower than the store's `timeout`.
    #[error("cluster log: {0}")]
    Redis(#[source] crate::store::RedisCallError),
    /// The background tasks have stopped.
    #[error("cluster sharing has stopped")]
    Stopped,
}

enum Msg {
    Event(Vec<u8>),
    Flush(oneshot::Sender<Result<StreamId, ShareError>>),
}

/// One replica's end of a log shared through a Redis stream (the cluster
/// log, the watermark trace index): a bounded queue of this replica's events
/// for the writer, and what the reader has applied. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SharedLog {
    inner: Arc<Inner>,
}

/// One replica's end of the shared cluster log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClusterShare {
    log: SharedLog,
}

#[derive(Debug)]
struct Inner {
    replica: u64,
    queue: mpsc::Sender<Msg>,
    applied: watch::Receiver<StreamId>,
    stats: Arc<ShareStats>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Event(b) => write!(f, "Event({} bytes)", b.len()),
            Msg::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// Whether `config` asks for shared clusters (`backend = "redis"` and
/// `share_clusters`).
pub fn wanted(config: &StoreConfig) -> bool {
    config.backend.is_redis() && config.share_clusters
}

/// A random id for this replica in the log: from the operating system's
/// randomness, or (if that fails) from the time and the process id, which only
/// needs to differ between replicas.
fn replica_id() -> u64 {
    use rand::TryRngCore;
    rand::rngs::OsRng.try_next_u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos.rotate_left(17) ^ u64::from(std::process::id())
    })
}

impl SharedLog {
    /// Starts sharing `topic` through the Redis of `config` (which must be
    /// valid and name a Redis backend): spawns the writer and the reader on
    /// the current Tokio runtime. The reader hands other replicas' events to
    /// `apply`. Connecting is lazy, as for the store.
    pub(crate) fn start<T: Send + 'static, E: std::fmt::Display + 'static>(
        config: &StoreConfig,
        topic: Topic<T, E>,
        apply: ApplyFn<T>,
    ) -> Result<Self, ConfigError> {
        let replica = replica_id();
        let stats = Arc::new(ShareStats::default());
        let (queue, rx) = mpsc::channel(QUEUE);
        let (applied_tx, applied) = watch::channel(StreamId::ZERO);
        redis::spawn(config, topic, replica, rx, applied_tx, apply, stats.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                replica,
                queue,
                applied,
                stats,
            }),
        })
    }

    /// This replica's random id in the log.
    pub(crate) fn replica(&self) -> u64 {
        self.inner.replica
    }

    /// Queues an encoded event for the log. Never waits: when the queue is
    /// full the event is dropped (and counted).
    pub(crate) fn send(&self, bytes: Vec<u8>) {
        if self.inner.queue.try_send(Msg::Event(bytes)).is_err() {
            self.inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// See [`ClusterShare::flush`].
    pub(crate) async fn flush(&self) -> Result<StreamId, ShareError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .queue
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| ShareError::Stopped)?;
        rx.await.map_err(|_| ShareError::Stopped)?
    }

    /// See [`ClusterShare::caught_up`].
    pub(crate) async fn caught_up(&self, id: StreamId) -> Result<(), ShareError> {
        let mut rx = self.inner.applied.clone();
        rx.wait_for(|seen| *seen >= id)
            .await
            .map(|_| ())
            .map_err(|_| ShareError::Stopped)
    }

    /// The id of the last log entry this replica has read.
    pub(crate) fn read_up_to(&self) -> StreamId {
        *self.inner.applied.borrow()
    }

    /// The counters.
    pub(crate) fn counts(&self) -> ShareCounts {
        self.inner.stats.counts()
    }
}

impl ClusterShare {
    /// Starts sharing through the Redis of `config` (which must be valid and name
    /// the Redis backend): spawns the writer and the reader on the current Tokio
    /// runtime. The reader hands other replicas' events to `apply`. Connecting is
    /// lazy, as for the store.
    pub fn start(config: &StoreConfig, apply: Apply) -> Result<Self, ConfigError> {
        let topic = topic(config);
        let key = topic.key.clone();
        let log = SharedLog::start(config, topic, apply)?;
        tracing::info!(
            replica = format!("{:016x}", log.replica()),
            log = key,
            "clusters shared with the other replicas through Redis"
        );
        Ok(Self { log })
    }

    /// This replica's random id in the log.
    pub fn replica(&self) -> u64 {
        self.log.replica()
    }

    /// Queues `event` for the log. Never waits: when the queue is full the event
    /// is dropped (and counted).
    pub fn publish(&self, event: &Event) {
        let mut bytes = Vec::with_capacity(64);
        codec::encode_event(event, &mut bytes);
        self.log.send(bytes);
    }

    /// [`publish`](Self::publish) for an observation, without building an
    /// [`Event`].
    pub fn publish_observation(
        &self,
        account: &AccountId,
        now_ms: u64,
        signals: &[f32; SIGNALS],
        features: &[Feature],
    ) {
        let mut bytes = Vec::with_capacity(48 + 9 * features.len());
        codec::encode_observe(account, now_ms, signals, features, &mut bytes);
        self.log.send(bytes);
    }

    /// Waits until every event published before this call has been written (or
    /// dropped) and returns the id of the last entry this replica wrote; an
    /// error when any event was dropped since the previous flush.
    pub async fn flush(&self) -> Result<StreamId, ShareError> {
        self.log.flush().await
    }

    /// Waits until this replica has read the log up to `id` (and applied the
    /// other replicas' events in it).
    pub async fn caught_up(&self, id: StreamId) -> Result<(), ShareError> {
        self.log.caught_up(id).await
    }

    /// The id of the last log entry this replica has read.
    pub fn read_up_to(&self) -> StreamId {
        self.log.read_up_to()
    }

    /// The counters.
    pub fn counts(&self) -> ShareCounts {
        self.log.counts()
    }
}
