//! Expiry and eviction: accounts unseen for `ttl`, the least recently used
//! account beyond `max_accounts`, old posting lists and bridge records.

use super::state::State;
use crate::config::ClusterConfig;

/// Slots examined per request by the incremental expiry sweep.
const SWEEP_PER_CALL: usize = 4;
/// Accounts sampled when one must be evicted to make room.
const EVICT_SAMPLE: usize = 8;

impl State {
    /// Expires a few accounts per call and, every few minutes, old postings and
    /// bridges.
    pub(super) fn maintain(&mut self, cfg: &ClusterConfig, now_s: u32) {
        let ttl = u32::try_from(cfg.ttl.as_secs()).unwrap_or(u32::MAX);
        for _ in 0..SWEEP_PER_CALL {
            if self.slots.is_empty() {
                break;
            }
            self.sweep_cursor = (self.sweep_cursor + 1) % self.slots.len();
            let i = self.sweep_cursor as u32;
            let s = &self.slots[i as usize];
            if s.live && now_s.saturating_sub(s.last_seen) > ttl {
                self.evict(i);
            }
        }
        if now_s >= self.next_gc {
            self.next_gc = now_s.saturating_add(600);
            self.postings
                .retain(|_, p| now_s.saturating_sub(p.last) <= ttl);
            self.bridges
                .retain(|_, b| now_s.saturating_sub(b.last) <= ttl);
        }
    }

    /// Drops the least recently used tenth of the postings (by age threshold).
    pub(super) fn shed_postings(&mut self, cfg: &ClusterConfig, now_s: u32) {
        let target = (cfg.max_features as usize).saturating_mul(9) / 10;
        let mut age = u32::try_from(cfg.ttl.as_secs()).unwrap_or(u32::MAX);
        while self.postings.len() > target && age > 0 {
            age /= 2;
            self.postings
                .retain(|_, p| now_s.saturating_sub(p.last) <= age);
        }
        if self.postings.len() > target {
            self.postings.clear();
        }
    }

    pub(super) fn evict_one(&mut self) {
        let n = self.slots.len();
        if n == 0 {
            return;
        }
        let mut best: Option<(u32, u32)> = None;
        let mut tries = 0;
        while tries < EVICT_SAMPLE * 4 {
            tries += 1;
            let i = (self.next_rand() % n as u64) as u32;
            let s = &self.slots[i as usize];
            if !s.live {
                continue;
            }
            if best.is_none_or(|(_, seen)| s.last_seen < seen) {
                best = Some((i, s.last_seen));
            }
            if tries >= EVICT_SAMPLE && best.is_some() {
                break;
            }
        }
        let victim = match best {
            Some((i, _)) => Some(i),
            None => self.slots.iter().position(|s| s.live).map(|i| i as u32),
        };
        if let Some(i) = victim {
            self.evict(i);
        }
    }

    pub(super) fn evict(&mut self, slot: u32) {
        self.detach(slot);
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if !s.live {
            return;
        }
        s.live = false;
        let id = s.id;
        self.ids.remove(&id);
        self.free_slots.push(slot);
        self.live = self.live.saturating_sub(1);
        self.counters.evicted += 1;
    }
}
