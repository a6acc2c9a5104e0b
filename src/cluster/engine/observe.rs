//! [`ClusterEngine`] and the request path: one request in, its cluster and
//! statistics out.

use std::sync::{Mutex, MutexGuard};

use super::secs;
use super::state::State;
use super::types::{Handle, Linked, Observation};
use crate::config::ClusterConfig;
use crate::extensions::{AccountId, Cluster};

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
