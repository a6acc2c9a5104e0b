//! [`ClusterEngine`] and the request path: one request in, its cluster and
//! statistics out.

use std::sync::{Mutex, MutexGuard};

use super::secs;
use super::state::State;
use crate::cluster::config::ClusterConfig;
use crate::extensions::{AccountId, Cluster, ClusterId};
use crate::features::Feature;

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
    /// Handle for [`ClusterEngine::store_levels`].
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

/// Online account linking. Cheap to share (`Arc`); all methods take `&self`.
///
/// See the [module docs](crate::cluster) for the method.
#[derive(Debug)]
pub struct ClusterEngine {
    pub(super) cfg: ClusterConfig,
    pub(super) state: Mutex<State>,
}

impl ClusterEngine {
    /// An engine for a validated config.
    pub fn new(cfg: ClusterConfig) -> Self {
        let state = State::new(&cfg);
        Self {
            cfg,
            state: Mutex::new(state),
        }
    }

    /// The config in force.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent in
        // a way that matters more than losing detection; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request, links its account where the evidence is strong enough,
    /// and returns its cluster and the statistics the scorer needs.
    pub fn observe(&self, obs: &Observation<'_>) -> Linked {
        let mut st = self.lock();
        let now_s = secs(obs.now_ms);
        st.maintain(&self.cfg, now_s);
        let slot = st.touch(&self.cfg, obs);
        st.behaviour_step(&self.cfg, slot, obs, now_s);
        if self.cfg.enabled {
            let active = st.seen_accounts >= u64::from(self.cfg.warmup_accounts);
            st.link(&self.cfg, slot, obs, now_s, active);
        }
        st.after_request(slot, obs);
        st.linked(slot, now_s)
    }

    /// Stores the hysteresis levels the scorer computed for a request.
    pub fn store_levels(
        &self,
        handle: Handle,
        account_level: f32,
        cluster_level: Option<f32>,
        now_ms: u64,
    ) {
        let mut st = self.lock();
        let now_s = secs(now_ms);
        let Some(slot) = st.slots.get_mut(handle.slot as usize) else {
            return;
        };
        if !slot.live || slot.id != handle.account {
            return;
        }
        slot.level = account_level;
        slot.level_at = now_s;
        if let (Some(level), Some(id)) = (cluster_level, handle.cluster_id) {
            if let Some(c) = st.clusters.get_mut(handle.cluster as usize) {
                if c.id == id && !c.members.is_empty() {
                    c.level = level;
                    c.level_at = now_s;
                }
            }
        }
    }

    /// The cluster of `account` now, if it is tracked.
    pub fn cluster_of(&self, account: &AccountId) -> Option<Cluster> {
        let st = self.lock();
        let slot = *st.ids.get(account)?;
        Some(st.cluster_view(slot))
    }
}
