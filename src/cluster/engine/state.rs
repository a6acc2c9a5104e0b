//! The engine's state behind its lock: account slots, cluster records and the
//! per-request statistics read from them.

use std::collections::VecDeque;

use super::hasher::{FastMap, SeededHasher};
use super::types::{AccountStats, ClusterStats, Handle, LinkEvent, Linked, Observation, SIGNALS};
use super::{secs, FAMILIES, JOIN_TAU_S, NONE};
use crate::cluster::evidence::Evidence;
use crate::config::ClusterConfig;
use crate::extensions::{AccountId, Cluster, ClusterId};
use crate::features::FeatureKind;

/// Weight of one request in an account's signal averages.
const ACCOUNT_ALPHA: f32 = 0.15;
/// Weight of one request in a cluster's signal averages.
const CLUSTER_ALPHA: f32 = 0.05;
/// Weight of one interval in an account's inter-arrival averages.
const INTERVAL_ALPHA: f32 = 0.2;

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) id: AccountId,
    pub(super) cluster: u32,
    pub(super) pos: u32,
    pub(super) first_seen: u32,
    pub(super) last_seen: u32,
    pub(super) hold_until: u32,
    pub(super) last_ms: u64,
    pub(super) log_iv_mean: f32,
    pub(super) log_iv_var: f32,
    pub(super) requests: u32,
    pub(super) level: f32,
    pub(super) level_at: u32,
    pub(super) signals: [u8; SIGNALS],
    pub(super) live: bool,
    /// How many times a cluster kept this account's name after it left (see
    /// [`State::name_of`]).
    pub(super) lent: u16,
    /// Behaviour evidence and when it was last faded.
    pub(super) evidence: f32,
    pub(super) evidence_at: u32,
    /// The current session's start of quiet (its last request) and its
    /// strongest step so far: a session counts once, with its strongest step.
    pub(super) session_at: u32,
    pub(super) session_best: f32,
    /// What the account adds to its cluster's evidence now.
    pub(super) contribution: f32,
    /// The strongest anchor (template or hard link) weight the account shares
    /// with its cluster's members, in hundredths ([`tie_units`]); 0 while it
    /// is alone.
    pub(super) tie: u8,
}

/// A tie weight in hundredths, saturating at 2.55 (a hard link's): one byte
/// per account instead of four.
pub(super) fn tie_units(w: f32) -> u8 {
    (w * 100.0).round().clamp(0.0, 255.0) as u8
}

impl Slot {
    pub(super) fn new(id: AccountId, now_ms: u64) -> Self {
        let s = secs(now_ms);
        Self {
            id,
            cluster: NONE,
            pos: 0,
            first_seen: s,
            last_seen: s,
            hold_until: 0,
            last_ms: now_ms,
            log_iv_mean: 0.0,
            log_iv_var: 0.0,
            requests: 0,
            level: 0.0,
            level_at: s,
            signals: [0; SIGNALS],
            live: true,
            lent: 0,
            evidence: 0.0,
            evidence_at: s,
            session_at: 0,
            session_best: 0.0,
            contribution: 0.0,
            tie: 0,
        }
    }

    /// The mean log interval, once the account has two requests.
    pub(super) fn timed(&self) -> Option<f64> {
        (self.requests >= 2).then_some(self.log_iv_mean as f64)
    }
}

#[derive(Debug, Clone)]
pub(super) struct ClusterRec {
    /// Named after the oldest member when it joined or founded the cluster
    /// (see [`State::name_of`]); kept when that member leaves.
    pub(super) id: ClusterId,
    /// The slot of the oldest member (`NONE` while the cluster is empty).
    pub(super) oldest: u32,
    pub(super) members: Vec<u32>,
    pub(super) links: u32,
    pub(super) template_links: u32,
    pub(super) iv_sum: f64,
    pub(super) iv_sum2: f64,
    pub(super) iv_n: u32,
    pub(super) joins: f32,
    pub(super) joins_at: u32,
    pub(super) signals: [f32; SIGNALS],
    pub(super) level: f32,
    pub(super) level_at: u32,
    /// Sum of the members' contributions.
    pub(super) evidence: f32,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) links: u64,
    pub(super) merges: u64,
    pub(super) guarded: u64,
    pub(super) evicted: u64,
}

/// The doorkeeper's memory of a value's first sender (direct-mapped by the
/// value's hash).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Door {
    pub(super) tag: u32,
    pub(super) slot: u32,
    pub(super) at: u32,
}

/// One recent sender of a value.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) slot: u32,
    pub(super) at: u32,
}

/// One value's posting list.
#[derive(Debug, Clone)]
pub(super) struct Posting {
    pub(super) last: u32,
    /// When `roots` was last measured (0: never).
    pub(super) checked: u32,
    /// Distinct clusters among the entries (and the last requester), saturating.
    pub(super) roots: u8,
    /// When the benign-looking entries alone were last found in more than
    /// `common_clusters` clusters (0: never).
    pub(super) common_at: u32,
    /// Entries that look like extraction, and entries that look benign.
    pub(super) suspicious: u8,
    pub(super) benign: u8,
    pub(super) entries: Vec<Entry>,
}

/// The merge guard's record of the accounts bridging two clusters.
#[derive(Debug, Clone)]
pub(super) struct Bridge {
    pub(super) last: u32,
    /// Distinct bridging accounts of each cluster (low 64 bits of their ids).
    pub(super) sides: [Vec<u64>; 2],
}

/// The evidence one request holds for linking with one account (or, pooled,
/// with one cluster).
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub(super) slot: u32,
    pub(super) fam: [f32; FAMILIES],
    /// The kind behind the strongest weight of each family.
    pub(super) kinds: [Option<FeatureKind>; FAMILIES],
    /// The shared value behind the strongest weight of each family.
    pub(super) values: [u64; FAMILIES],
    /// Distinct shared values per family.
    pub(super) count: [u16; FAMILIES],
}

impl Candidate {
    pub(super) fn empty(slot: u32) -> Self {
        Self {
            slot,
            fam: [0.0; FAMILIES],
            kinds: [None; FAMILIES],
            values: [0; FAMILIES],
            count: [0; FAMILIES],
        }
    }
}

/// What a request's linking pass fixes at its start.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pass {
    /// The requesting account.
    pub(super) slot: u32,
    pub(super) now_s: u32,
    /// Past the warm-up: candidates are gathered and links formed.
    pub(super) active: bool,
    /// The requester looks like extraction.
    pub(super) me_susp: bool,
    /// `half_life`, in seconds.
    pub(super) half_life: f32,
    /// `ttl`, in seconds.
    pub(super) ttl: u32,
    /// `[cluster.behaviour]` `link_evidence`, `benign_evidence`, `benign_scale`.
    pub(super) link_ev: f32,
    pub(super) benign_ev: f32,
    pub(super) benign_scale: f32,
    /// `[cluster.behaviour]` `common_evidence`.
    pub(super) common_ev: f32,
    /// `[cluster.behaviour]` `support`.
    pub(super) support: f32,
    /// `[cluster] common_clusters` and `common_memory` (seconds).
    pub(super) common_clusters: u32,
    pub(super) common_memory: u32,
}

impl Pass {
    /// The decay of evidence from a use at `at` (Unix seconds).
    pub(super) fn decay(&self, at: u32) -> f32 {
        0.5f32.powf(self.now_s.saturating_sub(at) as f32 / self.half_life)
    }

    /// Whether an account with behaviour evidence `ev` looks like extraction.
    pub(super) fn suspicious(&self, ev: f32) -> bool {
        ev >= self.link_ev
    }
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) slots: Vec<Slot>,
    pub(super) free_slots: Vec<u32>,
    pub(super) ids: FastMap<AccountId, u32>,
    pub(super) live: u32,
    pub(super) clusters: Vec<ClusterRec>,
    /// What linked each cluster's members, by the cluster's index.
    pub(super) evidence: Vec<Evidence>,
    pub(super) free_clusters: Vec<u32>,
    pub(super) door: Vec<Door>,
    pub(super) postings: FastMap<u64, Posting>,
    pub(super) bridges: FastMap<(u64, u64), Bridge>,
    pub(super) seen_accounts: u64,
    pub(super) sweep_cursor: usize,
    pub(super) next_gc: u32,
    pub(super) rng: u64,
    pub(super) counters: Counters,
    pub(super) scratch: FastMap<u32, usize>,
    /// Candidate groups by cluster key, per request.
    pub(super) groups: FastMap<u64, usize>,
    pub(super) candidates: Vec<Candidate>,
    pub(super) gathered: Vec<(u32, f32)>,
    /// Per family, the strongest weight of an anchor value the current request
    /// shares with its own cluster's members, and how many such values (see
    /// [`Slot::tie`]).
    pub(super) own: [(f32, u8); FAMILIES],
    pub(super) log: VecDeque<LinkEvent>,
    pub(super) log_cap: usize,
    /// Weights by feature kind (by wire code), from the config.
    pub(super) kind_weights: [f32; FeatureKind::ALL.len()],
}

impl State {
    /// Empty state for a validated config.
    pub(super) fn new(cfg: &ClusterConfig) -> Self {
        let door_len = (cfg.max_features as usize).next_power_of_two().max(1024);
        let hasher = SeededHasher::random();
        State {
            slots: Vec::new(),
            free_slots: Vec::new(),
            ids: FastMap::with_hasher(hasher),
            live: 0,
            clusters: Vec::new(),
            evidence: Vec::new(),
            free_clusters: Vec::new(),
            door: vec![Door::default(); door_len],
            postings: FastMap::with_hasher(hasher),
            bridges: FastMap::with_hasher(hasher),
            seen_accounts: 0,
            sweep_cursor: 0,
            next_gc: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            counters: Counters::default(),
            scratch: FastMap::with_hasher(hasher),
            groups: FastMap::with_hasher(hasher),
            candidates: Vec::new(),
            gathered: Vec::new(),
            own: [(0.0, 0); FAMILIES],
            log: VecDeque::new(),
            log_cap: 0,
            kind_weights: FeatureKind::ALL.map(|k| cfg.weight_of(k) as f32),
        }
    }

    pub(super) fn next_rand(&mut self) -> u64 {
        // xorshift64*: only for choosing eviction samples.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn same_cluster(&self, a: u32, b: u32) -> bool {
        root_key(&self.slots, a) == root_key(&self.slots, b)
    }

    pub(super) fn touch(&mut self, cfg: &ClusterConfig, obs: &Observation<'_>) -> u32 {
        if let Some(&slot) = self.ids.get(&obs.account) {
            return slot;
        }
        if self.live >= cfg.max_accounts {
            self.evict_one();
        }
        let fresh = Slot::new(obs.account, obs.now_ms);
        let slot = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = fresh;
                i
            }
            None => {
                self.slots.push(fresh);
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(obs.account, slot);
        self.live += 1;
        self.seen_accounts += 1;
        slot
    }

    /// Updates the account's timing and signal averages and its cluster's.
    pub(super) fn after_request(&mut self, slot: u32, obs: &Observation<'_>) {
        let now_s = secs(obs.now_ms);
        let s = &mut self.slots[slot as usize];
        let old_timed = s.timed();
        if s.requests >= 1 {
            let iv = (obs.now_ms.saturating_sub(s.last_ms) as f32 / 1000.0)
                .max(1.0)
                .ln();
            if s.requests == 1 {
                s.log_iv_mean = iv;
                s.log_iv_var = 0.0;
            } else {
                let d = iv - s.log_iv_mean;
                s.log_iv_mean += INTERVAL_ALPHA * d;
                s.log_iv_var = (1.0 - INTERVAL_ALPHA) * (s.log_iv_var + INTERVAL_ALPHA * d * d);
            }
        }
        s.requests = s.requests.saturating_add(1);
        s.last_ms = s.last_ms.max(obs.now_ms);
        s.last_seen = s.last_seen.max(now_s);
        for (a, x) in s.signals.iter_mut().zip(obs.signals) {
            let cur = f32::from(*a) / 255.0;
            let next = cur + ACCOUNT_ALPHA * (x.clamp(0.0, 1.0) - cur);
            *a = (next * 255.0).round().clamp(0.0, 255.0) as u8;
        }
        let new_timed = s.timed();
        let c = s.cluster;
        if c == NONE {
            return;
        }
        let rec = &mut self.clusters[c as usize];
        if let Some(v) = old_timed {
            rec.iv_sum -= v;
            rec.iv_sum2 -= v * v;
            rec.iv_n = rec.iv_n.saturating_sub(1);
        }
        if let Some(v) = new_timed {
            rec.iv_sum += v;
            rec.iv_sum2 += v * v;
            rec.iv_n += 1;
        }
        for (cs, x) in rec.signals.iter_mut().zip(obs.signals) {
            *cs += CLUSTER_ALPHA * (x.clamp(0.0, 1.0) - *cs);
        }
    }

    pub(super) fn cluster_view(&self, slot: u32) -> Cluster {
        let s = &self.slots[slot as usize];
        match self.clusters.get(s.cluster as usize) {
            Some(c) if s.cluster != NONE => Cluster {
                id: c.id,
                size: c.members.len() as u32,
            },
            _ => Cluster::singleton(s.id),
        }
    }

    pub(super) fn account_stats(&self, slot: u32, now_s: u32) -> AccountStats {
        let s = &self.slots[slot as usize];
        AccountStats {
            requests: s.requests,
            age_s: now_s.saturating_sub(s.first_seen),
            interval_log_std: (s.requests >= 4).then(|| s.log_iv_var.max(0.0).sqrt()),
            signals: s.signals.map(|x| f32::from(x) / 255.0),
            level: s.level,
            level_at: s.level_at,
            evidence: s.evidence,
            tie: f32::from(s.tie) / 100.0,
        }
    }

    /// The statistics of a live cluster of two or more.
    pub(super) fn cluster_stats(&self, c: u32, now_s: u32) -> Option<ClusterStats> {
        let c = self
            .clusters
            .get(c as usize)
            .filter(|c| c.members.len() >= 2)?;
        let volume_spread = (c.iv_n >= 3).then(|| {
            let n = f64::from(c.iv_n);
            let mean = c.iv_sum / n;
            ((c.iv_sum2 / n - mean * mean).max(0.0)).sqrt() as f32
        });
        let dt = now_s.saturating_sub(c.joins_at) as f32;
        Some(ClusterStats {
            size: c.members.len() as u32,
            template_share: if c.links == 0 {
                0.0
            } else {
                c.template_links as f32 / c.links as f32
            },
            volume_spread,
            join_rate_per_hour: c.joins * (-dt / JOIN_TAU_S).exp() * 3600.0 / JOIN_TAU_S,
            signals: c.signals,
            level: c.level,
            level_at: c.level_at,
            evidence: c.evidence,
        })
    }

    pub(super) fn linked(&self, slot: u32, now_s: u32) -> Linked {
        let s = &self.slots[slot as usize];
        let account = self.account_stats(slot, now_s);
        let cluster_stats = if s.cluster == NONE {
            None
        } else {
            self.cluster_stats(s.cluster, now_s)
        };
        let cluster = self.cluster_view(slot);
        Linked {
            cluster,
            account,
            cluster_stats,
            handle: Handle {
                account: s.id,
                slot,
                cluster: s.cluster,
                cluster_id: cluster_stats.map(|_| cluster.id),
            },
        }
    }
}

/// A key naming an account's cluster (its slot for singletons).
pub(super) fn root_key(slots: &[Slot], slot: u32) -> u64 {
    match slots.get(slot as usize) {
        Some(s) if s.cluster != NONE => u64::from(s.cluster),
        _ => (1u64 << 32) | u64::from(slot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_slot_stays_within_96_bytes() {
        // Every tracked account costs one slot: at a million accounts each
        // byte here is a megabyte.
        assert!(
            std::mem::size_of::<Slot>() <= 96,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn tie_units_saturate_and_round() {
        assert_eq!(tie_units(0.0), 0);
        assert_eq!(tie_units(0.694), 69);
        assert_eq!(tie_units(0.7), 70);
        assert_eq!(tie_units(f32::MAX), 255);
        assert_eq!(tie_units(-1.0), 0);
        assert_eq!(tie_units(f32::NAN), 0);
    }
}
