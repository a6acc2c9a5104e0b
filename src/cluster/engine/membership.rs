//! Cluster membership: joins, merges behind the merge guard, detaching an
//! account, and the operators' unlink, relink and dissolve.

use super::observe::ClusterEngine;
use super::state::{Bridge, ClusterRec, State};
use super::types::{LinkOutcome, SIGNALS};
use super::{secs, JOIN_TAU_S, NONE};
use crate::cluster::evidence::Evidence;
use crate::config::ClusterConfig;
use crate::extensions::{AccountId, ClusterId};

impl ClusterEngine {
    /// Removes `account` from its cluster (an administrator's override) and keeps
    /// it from being linked again for `hold_ms`. Returns false when the account is
    /// not tracked.
    pub fn unlink(&self, account: &AccountId, now_ms: u64, hold_ms: u64) -> bool {
        let mut st = self.lock();
        let Some(&slot) = st.ids.get(account) else {
            return false;
        };
        st.detach(slot);
        let until = secs(now_ms.saturating_add(hold_ms));
        if let Some(s) = st.slots.get_mut(slot as usize) {
            s.hold_until = until;
            s.level = 0.0;
        }
        true
    }

    /// Ends the hold an [`unlink`](Self::unlink) or [`dissolve`](Self::dissolve)
    /// put on `account`, so it may be linked again by its next requests (an
    /// administrator's `relink`). False when the account is not tracked.
    pub fn release(&self, account: &AccountId) -> bool {
        let mut st = self.lock();
        let Some(&slot) = st.ids.get(account) else {
            return false;
        };
        if let Some(s) = st.slots.get_mut(slot as usize) {
            s.hold_until = 0;
        }
        true
    }

    /// Dissolves the cluster `account` belongs to: every member becomes its own
    /// cluster again and is held apart for `hold_ms`. Returns how many accounts
    /// were released.
    pub fn dissolve(&self, account: &AccountId, now_ms: u64, hold_ms: u64) -> u32 {
        let mut st = self.lock();
        let Some(&slot) = st.ids.get(account) else {
            return 0;
        };
        let c = st.slots[slot as usize].cluster;
        if c == NONE {
            return 0;
        }
        let members = st.clusters[c as usize].members.clone();
        let until = secs(now_ms.saturating_add(hold_ms));
        for m in &members {
            st.detach(*m);
            if let Some(s) = st.slots.get_mut(*m as usize) {
                s.hold_until = until;
                s.level = 0.0;
            }
        }
        members.len() as u32
    }
}

impl State {
    /// Takes an account out of its cluster; a cluster left with one member is
    /// dissolved.
    pub(super) fn detach(&mut self, slot: u32) {
        let (c, pos, timed) = {
            let s = &self.slots[slot as usize];
            (s.cluster, s.pos, s.timed())
        };
        if c == NONE {
            return;
        }
        let rec = &mut self.clusters[c as usize];
        let pos = pos as usize;
        if pos < rec.members.len() && rec.members[pos] == slot {
            rec.members.swap_remove(pos);
            if let Some(&moved) = rec.members.get(pos) {
                self.slots[moved as usize].pos = pos as u32;
            }
        }
        if let Some(v) = timed {
            rec.iv_sum -= v;
            rec.iv_sum2 -= v * v;
            rec.iv_n = rec.iv_n.saturating_sub(1);
        }
        rec.evidence = (rec.evidence - self.slots[slot as usize].contribution).max(0.0);
        self.slots[slot as usize].cluster = NONE;
        self.slots[slot as usize].tie = 0;
        if rec.members.len() <= 1 {
            let rest = std::mem::take(&mut rec.members);
            for m in rest {
                self.slots[m as usize].cluster = NONE;
                self.slots[m as usize].tie = 0;
            }
            rec.oldest = NONE;
            self.free_clusters.push(c);
        } else if rec.oldest == slot {
            // The oldest member left: the cluster keeps its id (its quota
            // buckets stay), the account lends it for good, and the next
            // oldest stands for the cluster when it meets another.
            let members = std::mem::take(&mut self.clusters[c as usize].members);
            let oldest = self.oldest_of(&members);
            let rec = &mut self.clusters[c as usize];
            rec.members = members;
            rec.oldest = oldest;
            let s = &mut self.slots[slot as usize];
            s.lent = s.lent.saturating_add(1);
        }
    }

    /// The slot of the oldest of `members`: the account that names their
    /// cluster (see [`Self::older`]).
    pub(super) fn oldest_of(&self, members: &[u32]) -> u32 {
        members
            .iter()
            .copied()
            .min_by_key(|m| self.age_key(*m))
            .unwrap_or(NONE)
    }

    /// What orders accounts for naming a cluster: accounts that have not lent
    /// a cluster their name first, then first seen, then the smaller id.
    fn age_key(&self, slot: u32) -> (bool, u32, AccountId) {
        let s = &self.slots[slot as usize];
        (s.lent > 0, s.first_seen, s.id)
    }

    /// True when `a` names a cluster before `b` (`NONE`: no member yet).
    /// A cluster is named after its oldest member, so every replica that sees
    /// the same traffic agrees on its id whatever order it linked the
    /// accounts in.
    fn older(&self, a: u32, b: u32) -> bool {
        b == NONE || self.age_key(a) < self.age_key(b)
    }

    /// The id a cluster named after `slot` takes: the account's own, or, once
    /// a cluster it left kept that one, a variant of it, so that no two
    /// clusters ever share an id.
    pub(super) fn name_of(&self, slot: u32) -> ClusterId {
        let s = &self.slots[slot as usize];
        let mut id = ClusterId::of_account(s.id);
        if s.lent > 0 {
            let [lo, hi] = s.lent.to_le_bytes();
            id.0[14] ^= lo;
            id.0[15] ^= hi;
        }
        id
    }

    /// An empty cluster record; its first [`add_member`](Self::add_member)
    /// names it.
    pub(super) fn new_cluster(&mut self, now_s: u32) -> u32 {
        let rec = ClusterRec {
            id: ClusterId([0; 16]),
            oldest: NONE,
            members: Vec::new(),
            links: 0,
            template_links: 0,
            iv_sum: 0.0,
            iv_sum2: 0.0,
            iv_n: 0,
            joins: 0.0,
            joins_at: now_s,
            signals: [0.0; SIGNALS],
            level: 0.0,
            level_at: now_s,
            evidence: 0.0,
        };
        match self.free_clusters.pop() {
            Some(i) => {
                self.clusters[i as usize] = rec;
                if let Some(ev) = self.evidence.get_mut(i as usize) {
                    *ev = Evidence::EMPTY;
                }
                i
            }
            None => {
                self.clusters.push(rec);
                self.evidence.push(Evidence::EMPTY);
                (self.clusters.len() - 1) as u32
            }
        }
    }

    pub(super) fn add_member(&mut self, c: u32, slot: u32, now_s: u32) {
        let s = self.slots[slot as usize];
        if self.older(slot, self.clusters[c as usize].oldest) {
            let id = self.name_of(slot);
            let rec = &mut self.clusters[c as usize];
            rec.oldest = slot;
            rec.id = id;
        }
        let rec = &mut self.clusters[c as usize];
        let dt = now_s.saturating_sub(rec.joins_at) as f32;
        rec.joins = rec.joins * (-dt / JOIN_TAU_S).exp() + 1.0;
        rec.joins_at = now_s;
        rec.members.push(slot);
        if let Some(v) = s.timed() {
            rec.iv_sum += v;
            rec.iv_sum2 += v * v;
            rec.iv_n += 1;
        }
        for (cs, a) in rec.signals.iter_mut().zip(s.signals) {
            // A joining account brings its history into the cluster's averages.
            let n = rec.members.len() as f32;
            *cs += (f32::from(a) / 255.0 - *cs) / n;
        }
        rec.level = rec.level.max(s.level);
        rec.evidence += s.contribution;
        let pos = (rec.members.len() - 1) as u32;
        let sm = &mut self.slots[slot as usize];
        sm.cluster = c;
        sm.pos = pos;
    }

    /// Links `a` (the requesting account) with `b`, subject to the merge guard.
    pub(super) fn connect(
        &mut self,
        cfg: &ClusterConfig,
        a: u32,
        b: u32,
        hard: bool,
        template: bool,
        now_s: u32,
    ) -> LinkOutcome {
        let ca = self.slots[a as usize].cluster;
        let cb = self.slots[b as usize].cluster;
        if ca != NONE && ca == cb {
            return LinkOutcome::Skipped;
        }
        let mut outcome = LinkOutcome::Joined;
        let target = match (ca, cb) {
            (NONE, NONE) => {
                // `add_member` names the pair after the older of the two.
                let c = self.new_cluster(now_s);
                self.add_member(c, b, now_s);
                self.add_member(c, a, now_s);
                c
            }
            (NONE, c) => {
                self.add_member(c, a, now_s);
                c
            }
            (c, NONE) => {
                self.add_member(c, b, now_s);
                c
            }
            (x, y) => {
                if !hard && !self.bridge_allows(cfg, x, y, a, b, now_s) {
                    self.counters.guarded += 1;
                    return LinkOutcome::Guarded;
                }
                self.counters.merges += 1;
                outcome = LinkOutcome::Merged;
                self.merge(x, y)
            }
        };
        let rec = &mut self.clusters[target as usize];
        rec.links += 1;
        if template {
            rec.template_links += 1;
        }
        self.counters.links += 1;
        outcome
    }

    /// The merge guard: two multi-account clusters merge only after enough
    /// distinct bridging accounts *on both sides*: one account that behaves
    /// like the other cluster is one bridge however many members it matches.
    pub(super) fn bridge_allows(
        &mut self,
        cfg: &ClusterConfig,
        x: u32,
        y: u32,
        a: u32,
        b: u32,
        now_s: u32,
    ) -> bool {
        let (rx, ry) = (&self.clusters[x as usize], &self.clusters[y as usize]);
        let smaller = rx.members.len().min(ry.members.len()) as f64;
        // A cluster smaller than `min_bridges` needs every member to bridge.
        let need = ((cfg.bridge_fraction * smaller).ceil() as u32)
            .max(cfg.min_bridges)
            .min(cfg.max_bridges)
            .min(smaller as u32)
            .max(2) as usize;
        let (kx, ky) = (rx.id.low_u64(), ry.id.low_u64());
        let (ia, ib) = (
            self.slots[a as usize].id.low_u64(),
            self.slots[b as usize].id.low_u64(),
        );
        // Order the key and the two sides the same way.
        let (key, first, second) = if kx < ky {
            ((kx, ky), ia, ib)
        } else {
            ((ky, kx), ib, ia)
        };
        if !self.bridges.contains_key(&key) && self.bridges.len() >= cfg.max_bridge_records as usize
        {
            let oldest = self
                .bridges
                .iter()
                .min_by_key(|(_, v)| v.last)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.bridges.remove(&k);
            }
        }
        let br = self.bridges.entry(key).or_insert_with(|| Bridge {
            last: now_s,
            sides: [Vec::new(), Vec::new()],
        });
        br.last = now_s;
        for (side, id) in br.sides.iter_mut().zip([first, second]) {
            if side.len() < need && !side.contains(&id) {
                side.push(id);
            }
        }
        if br.sides.iter().all(|s| s.len() >= need) {
            self.bridges.remove(&key);
            true
        } else {
            false
        }
    }

    /// Merges the smaller cluster into the larger; the merged cluster takes the
    /// id of the older of the two oldest members.
    pub(super) fn merge(&mut self, x: u32, y: u32) -> u32 {
        let (big, small) =
            if self.clusters[x as usize].members.len() >= self.clusters[y as usize].members.len() {
                (x, y)
            } else {
                (y, x)
            };
        let moved = std::mem::take(&mut self.clusters[small as usize].members);
        let s = self.clusters[small as usize].clone();
        let n_small = moved.len() as f32;
        for m in moved {
            let rec = &mut self.clusters[big as usize];
            rec.members.push(m);
            let pos = (rec.members.len() - 1) as u32;
            let sm = &mut self.slots[m as usize];
            sm.cluster = big;
            sm.pos = pos;
        }
        let rec = &mut self.clusters[big as usize];
        let n_big = rec.members.len() as f32;
        for (b, v) in rec.signals.iter_mut().zip(s.signals) {
            *b += (v - *b) * n_small / n_big.max(1.0);
        }
        rec.links += s.links;
        rec.template_links += s.template_links;
        rec.iv_sum += s.iv_sum;
        rec.iv_sum2 += s.iv_sum2;
        rec.iv_n += s.iv_n;
        rec.joins += s.joins;
        rec.level = rec.level.max(s.level);
        rec.evidence += s.evidence;
        if s.oldest != NONE && self.older(s.oldest, self.clusters[big as usize].oldest) {
            let rec = &mut self.clusters[big as usize];
            rec.oldest = s.oldest;
            rec.id = s.id;
        }
        if let (Some(from), true) = (
            self.evidence.get(small as usize).copied(),
            (big as usize) < self.evidence.len(),
        ) {
            self.evidence[big as usize].absorb(&from);
        }
        self.free_clusters.push(small);
        big
    }
}
