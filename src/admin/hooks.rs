//! Extension points for the engines the admin API reads: the cluster engine
//! (account linking and scoring) and the watermark trace-back index. The admin
//! router uses the guard's own for any hook left `None`; a host can plug in
//! others.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::extensions::{AccountId, ClusterId, Reason};
use crate::features::{Family, FeatureKind};
use crate::request::BoxError;

/// One piece of evidence that links accounts: a rare feature value they share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkEvidence {
    /// The feature family (serialised by name: `client`, `network`, `template`,
    /// `hard_link`, …).
    pub family: Family,
    /// The feature kind within the family (serialised by name: `system_prompt`,
    /// `user_agent`, …).
    pub kind: FeatureKind,
    /// A short, non-secret description of the shared value (a hash prefix, a
    /// network prefix, a template signature).
    pub feature: String,
    /// How many of the cluster's accounts are among its recent users.
    pub accounts: u32,
    /// Links it carried.
    pub links: u32,
    /// Its weight in the link decision (the strongest, when several links).
    pub weight: f64,
}

/// One feature kind's part in the links that formed a cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindEvidence {
    /// The feature family (serialised by name).
    pub family: Family,
    /// The feature kind (serialised by name, e.g. `header_order`).
    pub kind: FeatureKind,
    /// Links in which it was its family's strongest evidence.
    pub links: u32,
    /// Sum of its weights over those links.
    pub weight_sum: f64,
    /// Its largest weight in one link.
    pub weight_max: f64,
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
    /// Links that formed it.
    pub links: u32,
    /// The shared values that link them, strongest first.
    pub evidence: Vec<LinkEvidence>,
    /// What links them per feature kind, strongest first.
    pub evidence_by_kind: Vec<KindEvidence>,
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
    /// Requests the engine has seen from it (while tracked).
    pub requests: u32,
    /// Held apart from linking until then (Unix milliseconds), after an unlink.
    pub held_until_ms: Option<u64>,
    /// The strongest template (or hard-link) weight it shares with its
    /// cluster's members (0 when alone; hard links count as 2.55).
    pub tie: f64,
    /// Whether it bears its cluster's whole suspicion; false for a member tied
    /// only loosely or asking as ordinary users do, which bears at most
    /// `score.cluster_cap` of it (`score.strong_tie`, `score.bystander_evidence`).
    pub bears_cluster: bool,
}

/// The largest and the most suspicious clusters (`GET /api/clusters`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TopClusters {
    /// The largest clusters, largest first.
    pub largest: Vec<ClusterView>,
    /// The most suspicious clusters, most suspicious first.
    pub most_suspicious: Vec<ClusterView>,
}

/// How many clusters have one size (accounts alone are clusters of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeCount {
    /// Members per cluster.
    pub size: u64,
    /// Clusters of that size.
    pub clusters: u64,
}

/// Read and edit access to a cluster engine.
pub trait ClusterInspector: Send + Sync + 'static {
    /// The account's membership, linking evidence and suspicion, if known.
    fn account(&self, account: &AccountId) -> Option<AccountView>;
    /// One cluster.
    fn cluster(&self, id: &ClusterId) -> Option<ClusterView>;
    /// The `n` largest clusters and the `n` most suspicious ones.
    fn top_clusters(&self, n: usize) -> TopClusters;
    /// Takes `account` out of its cluster and holds it apart (an operator's
    /// correction). `Ok(false)` when the engine does not track the account; an
    /// error (the engine's own) when it could not do it.
    fn unlink(&self, account: &AccountId) -> Result<bool, BoxError>;
    /// Ends the hold of an earlier unlink so the account may be linked again
    /// (an operator's `relink`); `Ok(false)` when the engine does not track it.
    fn relink(&self, _account: &AccountId) -> Result<bool, BoxError> {
        Ok(false)
    }
    /// How many clusters have each size, for the `distill_guard_clusters`
    /// gauge.
    fn cluster_sizes(&self) -> Vec<SizeCount> {
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

/// The engines the admin API uses. [`AdminHooks::for_guard`] gives the guard's
/// own; a hook left `None` is replaced by the guard's own when the router is
/// built.
#[derive(Clone, Default)]
pub struct AdminHooks {
    /// The cluster engine.
    pub cluster: Option<Arc<dyn ClusterInspector>>,
    /// The watermark trace-back index.
    pub trace: Option<Arc<dyn TraceIndex>>,
}

impl AdminHooks {
    /// The guard's own engines: its detector's cluster engine and its watermark
    /// stage's trace-back index.
    pub fn for_guard(guard: &crate::Guard) -> Self {
        Self {
            cluster: Some(Arc::new(super::DetectorInspector::for_guard(guard))),
            trace: Some(guard.shared().watermarker().clone()),
        }
    }
}

impl fmt::Debug for AdminHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminHooks")
            .field("cluster", &self.cluster.is_some())
            .field("trace", &self.trace.is_some())
            .finish()
    }
}
