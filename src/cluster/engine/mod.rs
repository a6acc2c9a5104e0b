//! The linking engine: accounts, postings, clusters and the merge guard behind
//! one lock.
//!
//! One file per concern:
//! * `types`: what goes in with a request, what comes out, what operators read;
//! * `observe`: [`ClusterEngine`] and the request path;
//! * `state`: the locked state and its records (account slots, clusters,
//!   posting lists, bridge records, link candidates);
//! * `behaviour`: per-account behaviour evidence;
//! * `link`: one request's linking pass (candidates, pooling, the linking rule);
//! * `postings`: the doorkeeper, posting lists and commonness;
//! * `membership`: joins, merges, the merge guard and operators' unlinks;
//! * `expiry`: expiry and eviction;
//! * `inspect`: snapshots, statistics and the link log, for operators;
//! * `hasher`: the hash maps' hasher.

mod behaviour;
mod expiry;
mod hasher;
mod inspect;
mod link;
mod membership;
mod observe;
mod postings;
mod state;
mod types;

pub use observe::ClusterEngine;
pub use types::{
    AccountSnapshot, AccountStats, ClusterSizeCount, ClusterSnapshot, ClusterStats, EngineStats,
    Handle, LinkEvent, LinkOutcome, Linked, Observation, TopClusterSnapshots, SIGNALS,
};

use crate::features::Family;

/// No account or cluster (an index).
const NONE: u32 = u32::MAX;
/// Evidence families, indexed by [`family_index`].
const FAMILIES: usize = 7;
/// Time constant of the cluster's new-member rate, in seconds.
const JOIN_TAU_S: f32 = 3600.0;

fn family_index(f: Family) -> usize {
    match f {
        Family::Client => 0,
        Family::Network => 1,
        Family::Shape => 2,
        Family::Template => 3,
        Family::Timing => 4,
        Family::HardLink => 5,
        Family::Behaviour => 6,
    }
}

fn secs(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}
