//! The engine's vocabulary: what goes in with a request, what comes out, and
//! what operators read.

use crate::cluster::evidence::{KindSummary, ValueSummary};
use crate::extensions::{AccountId, Cluster, ClusterId};
use crate::features::{Family, Feature, FeatureKind};

/// Number of per-request content signals (see `crate::score::Signals`).
pub const SIGNALS: usize = 6;

/// One request as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The account the request is charged to.
    pub account: AccountId,
    /// The request's time, Unix milliseconds.
    pub now_ms: u64,
    /// Its features (hard links included, as [`Family::HardLink`](crate::features::Family::HardLink) features).
    pub features: &'a [Feature],
    /// Per-request content signals in `0..=1` (see `crate::score::Signals`),
    /// averaged per account and per cluster.
    pub signals: [f32; SIGNALS],
}

/// What the engine knows about the account after the request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountStats {
    /// Requests seen (while tracked).
    pub requests: u32,
    /// Seconds since the account was first seen.
    pub age_s: u32,
    /// Standard deviation of the natural log of its inter-arrival times, once
    /// it has at least four requests.
    pub interval_log_std: Option<f32>,
    /// Moving averages of the content signals.
    pub signals: [f32; SIGNALS],
    /// The hysteresis level last stored, and when (Unix seconds).
    pub level: f32,
    /// When `level` was stored.
    pub level_at: u32,
    /// Behaviour evidence: how much the account's requests have looked like
    /// harvesting, net of its ordinary use, fading with
    /// `[cluster.behaviour] half_life` (see [`BehaviourEvidence`](crate::cluster::BehaviourEvidence)).
    pub evidence: f32,
    /// The strongest anchor (template or hard-link family) weight the account
    /// shares with its cluster's members, on the link that put it there or on
    /// a later request that matched members: a member that joined on a full
    /// template match is tied strongly, one that joined on a partial match and
    /// weaker values loosely. 0 while it is alone; 2.55 for a hard link (or
    /// any link when `anchor_families` is empty).
    pub tie: f32,
}

/// What the engine knows about the account's cluster (clusters of two or more).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterStats {
    /// Members.
    pub size: u32,
    /// Share of the links that formed the cluster that had template evidence.
    pub template_share: f32,
    /// Standard deviation, across members, of their mean log inter-arrival time
    /// (near-identical volumes give a small value); needs three timed members.
    pub volume_spread: Option<f32>,
    /// New members per hour, recently (a burst of new accounts).
    pub join_rate_per_hour: f32,
    /// Moving averages of the content signals over the cluster's requests.
    pub signals: [f32; SIGNALS],
    /// The hysteresis level last stored.
    pub level: f32,
    /// When `level` was stored.
    pub level_at: u32,
    /// The members' behaviour evidence, summed (each member's capped at
    /// `[cluster.behaviour] member_cap`, negative evidence counted as none).
    pub evidence: f32,
}

/// The engine's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linked {
    /// The cluster (the account itself when unlinked) and its size.
    pub cluster: Cluster,
    /// The account.
    pub account: AccountStats,
    /// The cluster, when it has two or more members.
    pub cluster_stats: Option<ClusterStats>,
    /// Handle for [`ClusterEngine::store_levels`](super::ClusterEngine::store_levels).
    pub handle: Handle,
}

/// Identifies an account slot and cluster record across the two calls of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    pub(super) account: AccountId,
    pub(super) slot: u32,
    pub(super) cluster: u32,
    pub(super) cluster_id: Option<ClusterId>,
}

/// The largest and the most suspicious clusters (see
/// [`ClusterEngine::top_clusters`](super::ClusterEngine::top_clusters)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopClusterSnapshots {
    /// The largest clusters, largest first (ties: higher stored level first).
    pub largest: Vec<ClusterSnapshot>,
    /// The clusters with the highest stored suspicion level, highest first.
    pub most_suspicious: Vec<ClusterSnapshot>,
}

/// How many clusters have one size (see
/// [`ClusterEngine::size_counts`](super::ClusterEngine::size_counts)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSizeCount {
    /// Members per cluster (1 for accounts alone).
    pub size: u32,
    /// Clusters of that size.
    pub clusters: u64,
}

/// A cluster as an operator inspects it (see [`ClusterEngine::inspect_cluster`](super::ClusterEngine::inspect_cluster)).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSnapshot {
    /// The cluster id.
    pub id: ClusterId,
    /// Members.
    pub size: u32,
    /// Some members (as many as asked for).
    pub members: Vec<AccountId>,
    /// Links that formed it (joins and merges, its merged parts' included).
    pub links: u32,
    /// Its statistics, as the scorer sees them.
    pub stats: ClusterStats,
    /// What linked its members, per feature kind, strongest first.
    pub kinds: Vec<KindSummary>,
    /// The strongest shared values, strongest first.
    pub values: Vec<ValueSummary>,
}

/// An account as an operator inspects it (see [`ClusterEngine::inspect_account`](super::ClusterEngine::inspect_account)).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSnapshot {
    /// The account.
    pub account: AccountId,
    /// Its statistics.
    pub stats: AccountStats,
    /// Its cluster; `None` when it is alone.
    pub cluster: Option<ClusterSnapshot>,
    /// Held apart from linking until then (Unix seconds), after an unlink.
    pub held_until_s: Option<u32>,
}

/// Counters and sizes, for metrics and memory measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Accounts tracked now.
    pub accounts: u64,
    /// Clusters of two or more accounts.
    pub clusters: u64,
    /// Accounts in clusters of two or more.
    pub linked_accounts: u64,
    /// Feature values with a posting list.
    pub postings: u64,
    /// Entries over all posting lists.
    pub posting_entries: u64,
    /// Pending bridge records of the merge guard.
    pub bridges: u64,
    /// Links formed (an account joining a cluster, or two clusters merging).
    pub links: u64,
    /// Merges of two multi-account clusters.
    pub merges: u64,
    /// Candidate merges held back by the merge guard.
    pub guarded: u64,
    /// Accounts forgotten (expiry or capacity).
    pub evicted: u64,
    /// Approximate heap bytes held by the engine.
    pub bytes: u64,
}

/// What became of a passing pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// A singleton joined a cluster (or two singletons formed one).
    Joined,
    /// Two clusters merged.
    Merged,
    /// The merge guard held a merge back.
    Guarded,
    /// Already in one cluster, or held apart by an administrator.
    Skipped,
    /// Evidence at least half the threshold that failed the rule (logged only,
    /// for tuning).
    Rejected,
}

/// One pair whose evidence passed the linking rule: for explanations, audits and
/// tuning (see [`ClusterEngine::enable_link_log`](super::ClusterEngine::enable_link_log)).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkEvent {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The requesting account.
    pub account: AccountId,
    /// The account it matched.
    pub other: AccountId,
    /// The evidence per family: the strongest shared kind and its decayed weight.
    pub evidence: Vec<(Family, FeatureKind, f32)>,
    /// What happened.
    pub outcome: LinkOutcome,
}
