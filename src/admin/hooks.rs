//! Extension points for engines that live elsewhere: the cluster engine (account
//! linking and scoring) and the watermark trace-back index. The admin API works
//! without them (clusters are then the ones observed in recent decisions) and
//! shows more when they are plugged in with [`AdminHooks`].

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::extensions::{AccountId, ClusterId, Reason};

/// One piece of evidence that links accounts: a rare feature they share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkEvidence {
    /// The feature family (e.g. `client`, `network`, `template`, `hard_link`).
    pub family: String,
    /// A short, non-secret description of the shared value (a hash prefix, a
    /// network prefix, a template signature).
    pub feature: String,
    /// How many accounts share it.
    pub accounts: u32,
    /// Its weight in the link decision.
    pub weight: f64,
}

/// A cluster as the cluster engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterView {
    /// The cluster id.
    pub id: ClusterId,
    /// Member count.
    pub size: u32,
    /// The cluster's suspicion, 0..1.
    pub suspicion: f64,
    /// Some members (the engine decides how many).
    pub members: Vec<AccountId>,
    /// What links them, strongest first.
    pub evidence: Vec<LinkEvidence>,
    /// The top signals behind the suspicion, largest first.
    pub top_signals: Vec<Reason>,
}

/// What the cluster engine knows about one account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountView {
    /// The account.
    pub account: AccountId,
    /// The account's own suspicion, 0..1.
    pub suspicion: f64,
    /// Its cluster.
    pub cluster: ClusterView,
    /// The top signals behind the account's suspicion.
    pub top_signals: Vec<Reason>,
}

/// Read and edit access to a cluster engine.
pub trait ClusterInspector: Send + Sync + 'static {
    /// The account's membership, linking evidence and suspicion, if known.
    fn account(&self, account: &AccountId) -> Option<AccountView>;
    /// One cluster.
    fn cluster(&self, id: &ClusterId) -> Option<ClusterView>;
    /// The `n` largest clusters and the `n` most suspicious ones.
    fn top_clusters(&self, n: usize) -> (Vec<ClusterView>, Vec<ClusterView>);
    /// Takes `account` out of its cluster (an operator's correction).
    fn unlink(&self, account: &AccountId) -> Result<(), String>;
    /// Sizes of every cluster, for the `distill_guard_clusters` gauge.
    fn cluster_sizes(&self) -> Vec<u64> {
        Vec::new()
    }
}

/// One trace-back match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceHit {
    /// How well the text matches, 0..1.
    pub score: f64,
    /// The request that received the matching output, if known.
    pub request_id: Option<String>,
    /// Its account.
    pub account: Option<AccountId>,
    /// Its cluster.
    pub cluster: Option<ClusterId>,
    /// When it was served (Unix milliseconds).
    pub at_ms: Option<u64>,
    /// Engine-specific details (key id, matched spans, ...).
    pub detail: serde_json::Value,
}

/// Search access to the watermark trace-back index.
pub trait TraceIndex: Send + Sync + 'static {
    /// Responses whose text matches `text`, best first, at most `limit`.
    fn trace(&self, text: &str, limit: usize) -> Vec<TraceHit>;
}

/// The optional engines the admin API can use. Both are `None` until they are
/// plugged in.
#[derive(Clone, Default)]
pub struct AdminHooks {
    /// The cluster engine.
    pub cluster: Option<Arc<dyn ClusterInspector>>,
    /// The watermark trace-back index.
    pub trace: Option<Arc<dyn TraceIndex>>,
}

impl fmt::Debug for AdminHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminHooks")
            .field("cluster", &self.cluster.is_some())
            .field("trace", &self.trace.is_some())
            .finish()
    }
}
