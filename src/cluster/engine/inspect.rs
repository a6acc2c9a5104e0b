//! What operators read: cluster and account snapshots with the evidence that
//! linked them, the largest and most suspicious clusters, sizes and counters,
//! and the link log.

use std::collections::BTreeMap;

use super::observe::ClusterEngine;
use super::state::{Bridge, Candidate, ClusterRec, Door, Entry, Posting, Slot, State};
use super::types::{
    AccountSnapshot, ClusterSizeCount, ClusterSnapshot, EngineStats, LinkEvent, LinkOutcome,
    Observation, TopClusterSnapshots,
};
use super::{family_index, secs, NONE};
use crate::cluster::evidence::Evidence;
use crate::extensions::{AccountId, ClusterId};
use crate::features::Family;

/// Cluster records examined per lock by the operators' scans.
const SCAN_CHUNK: usize = 4096;

impl ClusterEngine {
    /// Keeps the last `capacity` passing pairs with their evidence (0 turns the
    /// log off, the default). For audits, explanations and tuning.
    pub fn enable_link_log(&self, capacity: usize) {
        let mut st = self.lock();
        st.log_cap = capacity;
        while st.log.len() > capacity {
            st.log.pop_front();
        }
    }

    /// Takes the logged link events, oldest first.
    pub fn take_link_log(&self) -> Vec<LinkEvent> {
        let mut st = self.lock();
        st.log.drain(..).collect()
    }

    /// Sizes and counters.
    pub fn stats(&self) -> EngineStats {
        let st = self.lock();
        st.stats()
    }

    /// One cluster of two or more accounts, with at most `max_members` of its
    /// members and the evidence that linked them. Looks the id up through the
    /// account it was named after, else scans the clusters in short locked
    /// chunks.
    pub fn inspect_cluster(
        &self,
        id: &ClusterId,
        max_members: usize,
        now_ms: u64,
    ) -> Option<ClusterSnapshot> {
        let now_s = secs(now_ms);
        {
            let st = self.lock();
            if let Some(&slot) = st.ids.get(&AccountId(id.0)) {
                let c = st.slots[slot as usize].cluster;
                if st.clusters.get(c as usize).is_some_and(|r| r.id == *id) {
                    return st.snapshot(c, max_members, now_s);
                }
            }
        }
        let mut start = 0usize;
        loop {
            let st = self.lock();
            let end = (start + SCAN_CHUNK).min(st.clusters.len());
            if start >= end {
                return None;
            }
            for (i, rec) in st.clusters[start..end].iter().enumerate() {
                if rec.id == *id && rec.members.len() >= 2 {
                    return st.snapshot((start + i) as u32, max_members, now_s);
                }
            }
            start = end;
        }
    }

    /// What the engine knows about one tracked account: its statistics, its
    /// cluster (`None` when it is alone) and how long it is held apart.
    pub fn inspect_account(
        &self,
        account: &AccountId,
        max_members: usize,
        now_ms: u64,
    ) -> Option<AccountSnapshot> {
        let now_s = secs(now_ms);
        let st = self.lock();
        let slot = *st.ids.get(account)?;
        let s = &st.slots[slot as usize];
        let cluster = if s.cluster == NONE {
            None
        } else {
            st.snapshot(s.cluster, max_members, now_s)
        };
        Some(AccountSnapshot {
            account: *account,
            stats: st.account_stats(slot, now_s),
            cluster,
            held_until_s: (s.hold_until > now_s).then_some(s.hold_until),
        })
    }

    /// The `n` largest clusters and the `n` with the highest stored suspicion
    /// level (each with at most `max_members` members). Scans in short locked
    /// chunks, so requests are never held up for long.
    pub fn top_clusters(&self, n: usize, max_members: usize, now_ms: u64) -> TopClusterSnapshots {
        if n == 0 {
            return TopClusterSnapshots::default();
        }
        type Top = (u32, f32, u32, ClusterId); // (size, level, index, id)
        fn by_size(a: &Top, b: &Top) -> std::cmp::Ordering {
            b.0.cmp(&a.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.3 .0.cmp(&b.3 .0))
        }
        fn by_level(a: &Top, b: &Top) -> std::cmp::Ordering {
            b.1.total_cmp(&a.1)
                .then(b.0.cmp(&a.0))
                .then(a.3 .0.cmp(&b.3 .0))
        }
        let mut largest: Vec<Top> = Vec::new();
        let mut suspicious: Vec<Top> = Vec::new();
        let mut start = 0usize;
        loop {
            let st = self.lock();
            let end = (start + SCAN_CHUNK).min(st.clusters.len());
            if start >= end {
                break;
            }
            for (i, rec) in st.clusters[start..end].iter().enumerate() {
                if rec.members.len() < 2 {
                    continue;
                }
                let e = (
                    rec.members.len() as u32,
                    rec.level,
                    (start + i) as u32,
                    rec.id,
                );
                largest.push(e);
                suspicious.push(e);
            }
            drop(st);
            if largest.len() > n {
                largest.sort_by(by_size);
                largest.truncate(n);
            }
            if suspicious.len() > n {
                suspicious.sort_by(by_level);
                suspicious.truncate(n);
            }
            start = end;
        }
        largest.sort_by(by_size);
        suspicious.sort_by(by_level);
        largest.truncate(n);
        suspicious.truncate(n);
        let now_s = secs(now_ms);
        // One short lock per snapshot: requests wait on this lock.
        let snap = |list: Vec<Top>| -> Vec<ClusterSnapshot> {
            list.into_iter()
                .filter_map(|(_, _, c, id)| {
                    let st = self.lock();
                    // The cluster may have changed between the scan and now.
                    st.clusters
                        .get(c as usize)
                        .filter(|r| r.id == id)
                        .and_then(|_| st.snapshot(c, max_members, now_s))
                })
                .collect()
        };
        TopClusterSnapshots {
            largest: snap(largest),
            most_suspicious: snap(suspicious),
        }
    }

    /// How many clusters have each size, accounts alone counted as clusters of
    /// one, by size. Scans in short locked chunks.
    pub fn size_counts(&self) -> Vec<ClusterSizeCount> {
        let mut counts: BTreeMap<u32, u64> = Default::default();
        let mut linked = 0u64;
        let mut start = 0usize;
        loop {
            let st = self.lock();
            let end = (start + SCAN_CHUNK).min(st.clusters.len());
            if start >= end {
                let alone = u64::from(st.live).saturating_sub(linked);
                if alone > 0 {
                    *counts.entry(1).or_default() += alone;
                }
                break;
            }
            for rec in &st.clusters[start..end] {
                let n = rec.members.len() as u32;
                if n >= 2 {
                    *counts.entry(n).or_default() += 1;
                    linked += u64::from(n);
                }
            }
            start = end;
        }
        counts
            .into_iter()
            .map(|(size, clusters)| ClusterSizeCount { size, clusters })
            .collect()
    }
}

impl State {
    pub(super) fn log_event(&mut self, obs: &Observation<'_>, c: &Candidate, outcome: LinkOutcome) {
        if self.log_cap == 0 {
            return;
        }
        let event = LinkEvent {
            at_ms: obs.now_ms,
            account: obs.account,
            other: self.slots[c.slot as usize].id,
            evidence: Family::ALL
                .iter()
                .filter_map(|f| {
                    let i = family_index(*f);
                    Some((*f, c.kinds[i]?, c.fam[i]))
                })
                .filter(|e| e.2 > 0.0)
                .collect(),
            outcome,
        };
        if self.log.len() >= self.log_cap {
            self.log.pop_front();
        }
        self.log.push_back(event);
    }

    /// An operator's view of cluster `c` (two or more members).
    pub(super) fn snapshot(
        &self,
        c: u32,
        max_members: usize,
        now_s: u32,
    ) -> Option<ClusterSnapshot> {
        let stats = self.cluster_stats(c, now_s)?;
        let rec = &self.clusters[c as usize];
        let members = rec
            .members
            .iter()
            .take(max_members)
            .map(|m| self.slots[*m as usize].id)
            .collect();
        let (kinds, mut values) = match self.evidence.get(c as usize) {
            Some(ev) => (ev.kinds(), ev.values()),
            None => (Vec::new(), Vec::new()),
        };
        for v in &mut values {
            // Members among the value's recent users (a posting list holds at
            // most `posting_cap` entries).
            v.members = self.postings.get(&v.value).map_or(0, |p| {
                p.entries
                    .iter()
                    .filter(|e| {
                        self.slots
                            .get(e.slot as usize)
                            .is_some_and(|s| s.live && s.cluster == c)
                    })
                    .count() as u32
            });
        }
        Some(ClusterSnapshot {
            id: rec.id,
            size: stats.size,
            members,
            links: rec.links,
            stats,
            kinds,
            values,
        })
    }

    pub(super) fn stats(&self) -> EngineStats {
        let live_clusters = self.clusters.iter().filter(|c| c.members.len() >= 2);
        let (mut clusters, mut linked) = (0u64, 0u64);
        let mut cluster_heap = 0usize;
        for c in live_clusters {
            clusters += 1;
            linked += c.members.len() as u64;
            cluster_heap += c.members.capacity() * 4;
        }
        let posting_entries: u64 = self.postings.values().map(|p| p.entries.len() as u64).sum();
        let posting_heap: usize = self
            .postings
            .values()
            .map(|p| p.entries.capacity() * std::mem::size_of::<Entry>() + 16)
            .sum();
        let map_bytes = |cap: usize, entry: usize| cap * (entry + 1);
        let bytes = self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free_slots.capacity() * 4
            + map_bytes(self.ids.capacity(), std::mem::size_of::<(AccountId, u32)>())
            + self.clusters.capacity() * std::mem::size_of::<ClusterRec>()
            + self.evidence.capacity() * std::mem::size_of::<Evidence>()
            + cluster_heap
            + self.free_clusters.capacity() * 4
            + self.door.capacity() * std::mem::size_of::<Door>()
            + map_bytes(
                self.postings.capacity(),
                std::mem::size_of::<(u64, Posting)>(),
            )
            + posting_heap
            + map_bytes(
                self.bridges.capacity(),
                std::mem::size_of::<((u64, u64), Bridge)>(),
            )
            + self
                .bridges
                .values()
                .map(|b| (b.sides[0].capacity() + b.sides[1].capacity()) * 8)
                .sum::<usize>();
        EngineStats {
            accounts: u64::from(self.live),
            clusters,
            linked_accounts: linked,
            postings: self.postings.len() as u64,
            posting_entries,
            bridges: self.bridges.len() as u64,
            links: self.counters.links,
            merges: self.counters.merges,
            guarded: self.counters.guarded,
            evicted: self.counters.evicted,
            bytes: bytes as u64,
        }
    }
}
