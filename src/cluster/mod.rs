//! Online account linking: which accounts are run by one operator.
//!
//! Every request's [`Feature`](crate::features::Feature)s (client, network,
//! shape, template, timing and host-supplied hard links) are looked up in
//! *posting lists*: for each feature value, the few accounts that sent it most
//! recently (at most `posting_cap`). A value gets a posting list only once a
//! second account sends it (a direct-mapped doorkeeper remembers the first), so
//! the values a user sends alone cost nothing.
//!
//! * **Commonness.** A value whose recent accounts fall into more than
//!   `common_clusters` distinct clusters is common — the stock SDK, a popular
//!   agent's system prompt, a corporate NAT, a hosted app's relay, a reseller's
//!   proxy pool — and carries no weight. Counting *clusters*, not accounts, is
//!   what lets a campaign's own template stay specific while thousands of its
//!   accounts use it: once linked they are one cluster.
//! * **Evidence.** For each other account in a non-common posting list, the
//!   request accumulates the largest weight it shares per family (decayed by the
//!   age of the other account's use, half-life `half_life`). A pair links when
//!   the sum reaches `link_threshold`, at least `min_families` families
//!   contribute and one of them is an *anchor* family (templates or hard links
//!   by default: evidence specific to an operator rather than to software or
//!   infrastructure bystanders share). A hard link alone suffices.
//! * **Merge guard.** An account joins a cluster on one strong pair, but two
//!   clusters of two or more merge only after `max(min_bridges,
//!   bridge_fraction × smaller size)` (at most `max_bridges`) distinct
//!   bridging pairs, so one weak edge cannot chain two large clusters.
//! * **Membership.** Clusters keep explicit member lists and each account its
//!   cluster and position: lookups are O(1), merges move the smaller cluster
//!   into the larger (union by size, O(n log n) overall), and unlinking or
//!   forgetting an account is O(1) — which plain union-find cannot do.
//! * **Stable ids.** A cluster keeps the id of the larger side on every merge;
//!   a new cluster of two takes the older account's id, so the older account's
//!   `ClusterId` never changes and nobody's id flip-flops.
//! * **Evidence for operators.** Each cluster keeps a fixed-size summary of what
//!   linked it: per feature kind, the links it carried and their summed and
//!   strongest weight, and the few strongest shared values (as hashes). Merges
//!   combine the summaries; [`ClusterEngine::inspect_cluster`],
//!   [`ClusterEngine::inspect_account`] and [`ClusterEngine::top_clusters`]
//!   read them for the admin API.
//! * **Bounded memory.** At most `max_accounts` accounts (sampled LRU beyond),
//!   `max_features` posting lists, `max_bridge_records` guard records;
//!   everything unseen for `ttl` is forgotten.

mod engine;
mod evidence;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod share;

pub use crate::config::{BehaviourEvidence, ClusterConfig, FamilyCounts, FamilyWeights};
pub use engine::{
    AccountSnapshot, AccountStats, ClusterEngine, ClusterSizeCount, ClusterSnapshot, ClusterStats,
    EngineStats, Handle, LinkEvent, LinkOutcome, Linked, Observation, TopClusterSnapshots, SIGNALS,
};
pub use evidence::{KindSummary, ValueSummary};

#[cfg(test)]
mod tests;
