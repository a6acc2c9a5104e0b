//! Where quota state lives.
//!
//! [`Store`] is the seam between the enforce stage and its state: the embedded
//! [`MemoryStore`] (the default) keeps buckets in sharded in-memory maps;
//! `RedisStore` (feature `redis`) keeps them in Redis so that several replicas
//! share one set of limits, with the same arithmetic. [`build_store`] builds the one a
//! [`StoreConfig`] (`[store]`) describes. A store only does bucket arithmetic on the limits it is handed: tiers,
//! cluster scaling and suspicion bands are computed by the caller, so every backend
//! enforces exactly the same policy.

pub mod gcra;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[cfg(feature = "redis")]
pub(crate) use self::redis::{
    call as redis_call, manager as redis_manager, named as redis_key, within as redis_within,
    RedisConn,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisCallError, RedisStore};
pub use crate::config::{Backend, OnError, StoreConfig};
pub use memory::{MemoryStore, DEFAULT_MAX_ENTRIES};

use self::gcra::BucketLimit;
use crate::config::ConfigError;
use crate::extensions::Scope;

/// The four windows every subject has, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Requests per minute.
    RequestsPerMinute,
    /// Requests per day.
    RequestsPerDay,
    /// Tokens per minute.
    TokensPerMinute,
    /// Tokens per day.
    TokensPerDay,
}

impl Window {
    /// All windows, in index order.
    pub const ALL: [Window; 4] = [
        Window::RequestsPerMinute,
        Window::RequestsPerDay,
        Window::TokensPerMinute,
        Window::TokensPerDay,
    ];

    /// Position in a `[_; 4]` array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// True for the token windows.
    pub fn is_tokens(self) -> bool {
        matches!(self, Window::TokensPerMinute | Window::TokensPerDay)
    }

    /// The window length in milliseconds.
    pub fn window_ms(self) -> u64 {
        match self {
            Window::RequestsPerMinute | Window::TokensPerMinute => 60_000,
            Window::RequestsPerDay | Window::TokensPerDay => 86_400_000,
        }
    }

    /// `requests per minute`, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Window::RequestsPerMinute => "requests per minute",
            Window::RequestsPerDay => "requests per day",
            Window::TokensPerMinute => "tokens per minute",
            Window::TokensPerDay => "tokens per day",
        }
    }

    /// The config field that sets it.
    pub fn field(self) -> &'static str {
        match self {
            Window::RequestsPerMinute => "requests_per_minute",
            Window::RequestsPerDay => "requests_per_day",
            Window::TokensPerMinute => "tokens_per_minute",
            Window::TokensPerDay => "tokens_per_day",
        }
    }
}

/// The limits of one window per subject; `None` is unlimited.
pub type Limits = [Option<BucketLimit>; 4];

/// An account or cluster with the effective limits of this request.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// Account or cluster.
    pub scope: Scope,
    /// Its 128-bit id.
    pub key: [u8; 16],
    /// The model group whose buckets these are (its pattern as configured,
    /// `[tiers.NAME.models."PATTERN"]`); `None` for the subject's own,
    /// tier-wide buckets. Each group is a separate set of buckets of the same
    /// account or cluster.
    pub group: Option<Arc<str>>,
    /// Effective limits (tier, cluster scaling and suspicion already applied).
    pub limits: Limits,
}

impl Subject {
    /// The tier-wide buckets of `scope` `key` under `limits`.
    pub fn new(scope: Scope, key: [u8; 16], limits: Limits) -> Self {
        Self {
            scope,
            key,
            group: None,
            limits,
        }
    }

    /// The same account or cluster's buckets for model group `group`, under
    /// `limits`.
    pub fn in_group(&self, group: Arc<str>, limits: Limits) -> Self {
        Self {
            scope: self.scope,
            key: self.key,
            group: Some(group),
            limits,
        }
    }

    /// Its row in [`Outcome::views`].
    pub fn row(&self) -> usize {
        Outcome::row(self.scope, self.group.is_some())
    }
}

/// The subjects of an admission or settlement in the order every store checks
/// them: the account, the cluster, then their model group's buckets.
fn in_order<'a>(
    account: &'a Subject,
    cluster: &'a Option<Subject>,
    account_group: &'a Option<Subject>,
    cluster_group: &'a Option<Subject>,
) -> impl Iterator<Item = &'a Subject> {
    std::iter::once(account)
        .chain(cluster)
        .chain(account_group)
        .chain(cluster_group)
}

/// One admission check: charge one request and `tokens` tokens to the account and
/// (when present) the cluster, and to their buckets of the request's model
/// group (when it has one), all or nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// Current time.
    pub now_ms: u64,
    /// The account.
    pub account: Subject,
    /// The cluster, unless it is the account alone.
    pub cluster: Option<Subject>,
    /// The account's buckets of the request's model group, when it has one.
    pub account_group: Option<Subject>,
    /// The cluster's buckets of the request's model group, when it has one
    /// and there is a cluster.
    pub cluster_group: Option<Subject>,
    /// Tokens to reserve.
    pub tokens: f64,
}

impl Admission {
    /// An admission of `tokens` for `account` (and `cluster`), with no model
    /// group.
    pub fn new(now_ms: u64, account: Subject, cluster: Option<Subject>, tokens: f64) -> Self {
        Self {
            now_ms,
            account,
            cluster,
            account_group: None,
            cluster_group: None,
            tokens,
        }
    }

    /// Its subjects in the order every store checks them: the account, the
    /// cluster, the account's model group, the cluster's model group (those
    /// present).
    pub fn subjects(&self) -> impl Iterator<Item = &Subject> {
        in_order(
            &self.account,
            &self.cluster,
            &self.account_group,
            &self.cluster_group,
        )
    }
}

/// The state of one bucket after an admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketView {
    /// Capacity.
    pub limit: f64,
    /// Units left.
    pub remaining: f64,
    /// Milliseconds until the bucket is back to full.
    pub reset_ms: u64,
}

/// Which bucket refused an admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Denial {
    /// Account or cluster.
    pub scope: Scope,
    /// True when it was the account's or cluster's bucket of the request's
    /// model group, false for its tier-wide bucket.
    pub model_group: bool,
    /// The window.
    pub window: Window,
    /// How long until the request would fit; `None` when it never will under the
    /// current limits (capacity below the cost, or a zero rate).
    pub retry_after_ms: Option<u64>,
}

/// The result of an admission.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The binding denial, if refused: of every bucket that refused, the one
    /// that lifts last (the first in subject order on a tie), so that waiting
    /// its `retry_after_ms` makes the request fit. Nothing is charged on a
    /// denial.
    pub denied: Option<Denial>,
    /// Bucket states per subject and window, by row: [`Outcome::ACCOUNT`],
    /// [`Outcome::CLUSTER`], [`Outcome::ACCOUNT_GROUP`],
    /// [`Outcome::CLUSTER_GROUP`] (`None` for an absent subject or an
    /// unlimited window).
    pub views: [[Option<BucketView>; 4]; 4],
}

impl Outcome {
    /// The row of the account's tier-wide buckets.
    pub const ACCOUNT: usize = 0;
    /// The row of the cluster's tier-wide buckets.
    pub const CLUSTER: usize = 1;
    /// The row of the account's buckets of the request's model group.
    pub const ACCOUNT_GROUP: usize = 2;
    /// The row of the cluster's buckets of the request's model group.
    pub const CLUSTER_GROUP: usize = 3;

    /// The row of `scope`'s tier-wide buckets, or with `model_group` of its
    /// buckets of the request's model group.
    pub fn row(scope: Scope, model_group: bool) -> usize {
        match (scope, model_group) {
            (Scope::Account, false) => Self::ACCOUNT,
            (Scope::Cluster, false) => Self::CLUSTER,
            (Scope::Account, true) => Self::ACCOUNT_GROUP,
            (Scope::Cluster, true) => Self::CLUSTER_GROUP,
        }
    }
}

/// A settlement of a finished request: `token_delta` more tokens (negative refunds)
/// on the token buckets of every subject its admission charged.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// Current time.
    pub now_ms: u64,
    /// The account (limits as at admission).
    pub account: Subject,
    /// The cluster, if one was charged.
    pub cluster: Option<Subject>,
    /// The account's model group buckets, if they were charged.
    pub account_group: Option<Subject>,
    /// The cluster's model group buckets, if they were charged.
    pub cluster_group: Option<Subject>,
    /// Tokens to add (positive) or give back (negative).
    pub token_delta: f64,
}

impl Settlement {
    /// A settlement of `token_delta` on `account` (and `cluster`), with no
    /// model group.
    pub fn new(now_ms: u64, account: Subject, cluster: Option<Subject>, token_delta: f64) -> Self {
        Self {
            now_ms,
            account,
            cluster,
            account_group: None,
            cluster_group: None,
            token_delta,
        }
    }

    /// Its subjects, in the order of [`Admission::subjects`].
    pub fn subjects(&self) -> impl Iterator<Item = &Subject> {
        in_order(
            &self.account,
            &self.cluster,
            &self.account_group,
            &self.cluster_group,
        )
    }
}

/// Why a store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend did not answer within the configured time.
    #[error("quota store timed out")]
    Timeout,
    /// The backend failed recently and is not asked again until its next probe.
    #[error("quota store down; it is probed again shortly")]
    Down,
    /// The backend's background tasks have stopped (its runtime is shutting down).
    #[error("quota store stopped")]
    Stopped,
    /// The backend failed, or answered in a shape it should not have.
    #[error("quota store unavailable: {0}")]
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// [`StoreError::Unavailable`] because of `error` (for other backends).
    pub fn unavailable(error: impl Into<crate::request::BoxError>) -> Self {
        StoreError::Unavailable(Arc::from(error.into()))
    }
}

/// How a shared backend is doing, for the admin API (`/api/status`) and the
/// metrics; see [`Store::status`]. Counters count since the store was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StoreStatus {
    /// Whether the backend answered its last call (no outage in progress).
    pub up: bool,
    /// Outages: times the backend went from answering to failing.
    pub outages: u64,
    /// Admissions and settlements answered by the in-process fallback
    /// (`fail_open`) because the backend was down or too slow.
    pub fallbacks: u64,
    /// Requests refused from the local copy of refused subjects, without a
    /// round trip.
    pub local_denials: u64,
    /// Settlements queued for the backend or being sent now.
    pub settlements_pending: u64,
    /// Settlements the backend applied.
    pub settlements_sent: u64,
    /// Settlements folded into a queued one of the same subjects because the
    /// queue was full: their token deltas reach the backend in that one.
    pub settlements_merged: u64,
    /// Settlements applied in process because the backend was down or failed.
    pub settlements_local: u64,
    /// Settlements applied in process because the queue was full and held no
    /// settlement of the same subjects: the backend never sees them.
    pub settlements_overflow: u64,
    /// Settlements (or their account's or cluster's half) taken by a local
    /// lease, without a round trip.
    pub settlements_leased: u64,
    /// Local leases held now (`local_leases`).
    pub leases: u64,
    /// Local leases taken.
    pub leases_taken: u64,
    /// Admissions answered from a local lease, without a round trip.
    pub leased_admissions: u64,
}

/// The future of a [`Store`] call: ready at once for a store that answers in
/// memory (no allocation), boxed for one that waits on I/O.
pub struct StoreFuture<'a, T> {
    kind: Kind<'a, T>,
}

enum Kind<'a, T> {
    Ready(Option<Result<T, StoreError>>),
    Waiting(Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>),
}

impl<'a, T> StoreFuture<'a, T> {
    /// An answer known now.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self {
            kind: Kind::Ready(Some(result)),
        }
    }

    /// An answer `future` will give.
    pub fn new(future: impl Future<Output = Result<T, StoreError>> + Send + 'a) -> Self {
        Self {
            kind: Kind::Waiting(Box::pin(future)),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Ready(_) => "StoreFuture::Ready",
            Kind::Waiting(_) => "StoreFuture::Waiting",
        })
    }
}

// Never pinned structurally: the ready value is moved out, the waiting future
// is boxed.
impl<T> Unpin for StoreFuture<'_, T> {}

impl<T> Future for StoreFuture<'_, T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Ready(result) => Poll::Ready(
                result
                    .take()
                    .expect("a `StoreFuture` polled after completion"),
            ),
            Kind::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

/// Quota state: atomic admission and after-the-fact settlement.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Checks every bucket of the account and cluster (and of their model
    /// group) and, only if all have room, charges them. Must be atomic with respect to concurrent admissions so that
    /// concurrent requests never overshoot. The future owns what it needs (the
    /// enforce stage holds it in its own, unboxed, response future): a store
    /// that answers in memory returns [`StoreFuture::ready`].
    fn admit(&self, admission: &Admission) -> StoreFuture<'static, Outcome>;

    /// Applies a settlement. Fire and forget: it must not block, and it must not be
    /// lost if the caller goes away (a backend that needs I/O spawns it).
    fn settle(&self, settlement: Settlement);

    /// Number of subjects currently tracked (for metrics and memory tests).
    fn tracked(&self) -> usize;

    /// How a shared backend is doing; `None` for a store in this process only
    /// (the default).
    fn status(&self) -> Option<StoreStatus> {
        None
    }

    /// The current state of a subject's buckets under `subject.limits`, without
    /// charging anything (for the admin API). `None` when the backend cannot
    /// inspect (the default).
    fn inspect<'a>(
        &'a self,
        subject: &'a Subject,
        now_ms: u64,
    ) -> StoreFuture<'a, Option<[Option<BucketView>; 4]>> {
        let _ = (subject, now_ms);
        StoreFuture::ready(Ok(None))
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
        #[cfg(feature = "redis")]
        Backend::Redis | Backend::RedisCluster => Ok(Arc::new(RedisStore::new(config)?)),
        // `validate` refuses it in a build without Redis support.
        #[cfg(not(feature = "redis"))]
        Backend::Redis | Backend::RedisCluster => Err(crate::config::no_redis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "redis")]
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
        if cfg!(not(feature = "redis")) {
            return;
        }
        let cfg = StoreConfig {
            backend: Backend::Redis,
            url: Some("redis://127.0.0.1:1".into()),
            ..StoreConfig::default()
        };
        // Connecting is lazy: building succeeds even with nothing listening.
        build_store(&cfg).expect("redis");
    }
}
