//! The linking engine: accounts, postings, clusters and the merge guard behind
//! one lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard};

use super::config::ClusterConfig;
use super::evidence::{Evidence, KindNames, KindSummary, ValueSummary};
use crate::extensions::{AccountId, Cluster, ClusterId};
use crate::features::{Family, Feature};

const NONE: u32 = u32::MAX;
const FAMILIES: usize = 7;
/// Number of per-request content signals (see `crate::score::Signals`).
pub const SIGNALS: usize = 6;
/// Index of the extraction score in [`Observation::signals`].
const EXTRACTION: usize = 4;
/// Index of the benign flag in [`Observation::signals`].
const BENIGN: usize = 5;
/// Weight of one request in an account's signal averages.
const ACCOUNT_ALPHA: f32 = 0.15;
/// Weight of one request in a cluster's signal averages.
const CLUSTER_ALPHA: f32 = 0.05;
/// Weight of one interval in an account's inter-arrival averages.
const INTERVAL_ALPHA: f32 = 0.2;
/// Time constant of the cluster's new-member rate, in seconds.
const JOIN_TAU_S: f32 = 3600.0;
/// Slots examined per request by the incremental expiry sweep.
const SWEEP_PER_CALL: usize = 4;
/// Accounts sampled when one must be evicted to make room.
const EVICT_SAMPLE: usize = 8;
/// Cluster records examined per lock by the operators' scans.
const SCAN_CHUNK: usize = 4096;
/// Seconds for which a posting's commonness is reused before it is measured
/// again (measuring touches every entry's account).
const RECHECK_S: u32 = 30;

/// A fast multiply-rotate hasher with a random per-engine seed. The keys are
/// already keyed or seeded hashes (account ids, feature values) or small
/// integers, so SipHash's strength buys nothing here, and the seed keeps bucket
/// placement unpredictable.
#[derive(Debug, Clone, Copy)]
struct SeededHasher(u64);

impl SeededHasher {
    fn random() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6a09_e667_f3bc_c908);
        Self(h.finish() | 1)
    }
}

impl BuildHasher for SeededHasher {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct FastHasher(u64);

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(23) ^ x).wrapping_mul(MUL);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 31)
    }
}

type FastMap<K, V> = HashMap<K, V, SeededHasher>;

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

/// One request as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The account the request is charged to.
    pub account: AccountId,
    /// The request's time, Unix milliseconds.
    pub now_ms: u64,
    /// Its features (hard links included, as [`Family::HardLink`] features).
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
    /// `[cluster.behaviour] half_life` (see [`BehaviourEvidence`](super::BehaviourEvidence)).
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
    account: AccountId,
    slot: u32,
    cluster: u32,
    cluster_id: Option<ClusterId>,
}

/// A cluster as an operator inspects it (see [`ClusterEngine::inspect_cluster`]).
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

/// An account as an operator inspects it (see [`ClusterEngine::inspect_account`]).
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

#[derive(Debug, Clone, Copy)]
struct Slot {
    id: AccountId,
    cluster: u32,
    pos: u32,
    first_seen: u32,
    last_seen: u32,
    hold_until: u32,
    last_ms: u64,
    log_iv_mean: f32,
    log_iv_var: f32,
    requests: u32,
    level: f32,
    level_at: u32,
    signals: [u8; SIGNALS],
    live: bool,
    /// Behaviour evidence and when it was last faded.
    evidence: f32,
    evidence_at: u32,
    /// The current session's start of quiet (its last request) and its
    /// strongest step so far: a session counts once, with its strongest step.
    session_at: u32,
    session_best: f32,
    /// What the account adds to its cluster's evidence now.
    contribution: f32,
}

impl Slot {
    fn new(id: AccountId, now_ms: u64) -> Self {
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
            evidence: 0.0,
            evidence_at: s,
            session_at: 0,
            session_best: 0.0,
            contribution: 0.0,
        }
    }

    /// The mean log interval, once the account has two requests.
    fn timed(&self) -> Option<f64> {
        (self.requests >= 2).then_some(self.log_iv_mean as f64)
    }
}

#[derive(Debug, Clone)]
struct ClusterRec {
    id: ClusterId,
    members: Vec<u32>,
    links: u32,
    template_links: u32,
    iv_sum: f64,
    iv_sum2: f64,
    iv_n: u32,
    joins: f32,
    joins_at: u32,
    signals: [f32; SIGNALS],
    level: f32,
    level_at: u32,
    /// Sum of the members' contributions.
    evidence: f32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Door {
    tag: u32,
    slot: u32,
    at: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    slot: u32,
    at: u32,
}

#[derive(Debug, Clone)]
struct Posting {
    last: u32,
    /// When `roots` was last measured (0: never).
    checked: u32,
    /// Distinct clusters among the entries (and the last requester), saturating.
    roots: u8,
    /// Entries that look like extraction, and entries that look benign.
    suspicious: u8,
    benign: u8,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Bridge {
    last: u32,
    /// Distinct bridging accounts of each cluster (low 64 bits of their ids).
    sides: [Vec<u64>; 2],
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    slot: u32,
    fam: [f32; FAMILIES],
    kinds: [&'static str; FAMILIES],
    /// The shared value behind the strongest weight of each family.
    values: [u64; FAMILIES],
    /// Distinct shared values per family.
    count: [u16; FAMILIES],
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
/// tuning (see [`ClusterEngine::enable_link_log`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkEvent {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The requesting account.
    pub account: AccountId,
    /// The account it matched.
    pub other: AccountId,
    /// The evidence per family: the strongest shared kind and its decayed weight.
    pub evidence: Vec<(Family, &'static str, f32)>,
    /// What happened.
    pub outcome: LinkOutcome,
}

#[derive(Debug, Default)]
struct Counters {
    links: u64,
    merges: u64,
    guarded: u64,
    evicted: u64,
}

#[derive(Debug)]
struct State {
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    ids: FastMap<AccountId, u32>,
    live: u32,
    clusters: Vec<ClusterRec>,
    /// What linked each cluster's members, by the cluster's index.
    evidence: Vec<Evidence>,
    /// The feature kinds the summaries name by id.
    kind_names: KindNames,
    free_clusters: Vec<u32>,
    door: Vec<Door>,
    postings: FastMap<u64, Posting>,
    bridges: FastMap<(u64, u64), Bridge>,
    seen_accounts: u64,
    sweep_cursor: usize,
    next_gc: u32,
    rng: u64,
    counters: Counters,
    scratch: FastMap<u32, usize>,
    /// Candidate groups by cluster key, per request.
    groups: FastMap<u64, usize>,
    candidates: Vec<Candidate>,
    gathered: Vec<(u32, f32)>,
    log: std::collections::VecDeque<LinkEvent>,
    log_cap: usize,
    /// Weights by feature kind, keyed by the kind's address and length (kinds
    /// are `&'static str`s, so this skips the config's string map).
    kind_weights: Vec<(usize, usize, Family, f32)>,
}

fn secs(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// Online account linking. Cheap to share (`Arc`); all methods take `&self`.
///
/// See the [module docs](super) for the method.
#[derive(Debug)]
pub struct ClusterEngine {
    cfg: ClusterConfig,
    state: Mutex<State>,
}

impl ClusterEngine {
    /// An engine for a validated config.
    pub fn new(cfg: ClusterConfig) -> Self {
        let door_len = (cfg.max_features as usize).next_power_of_two().max(1024);
        let hasher = SeededHasher::random();
        let state = State {
            slots: Vec::new(),
            free_slots: Vec::new(),
            ids: FastMap::with_hasher(hasher),
            live: 0,
            clusters: Vec::new(),
            evidence: Vec::new(),
            kind_names: KindNames::default(),
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
            log: std::collections::VecDeque::new(),
            log_cap: 0,
            kind_weights: Vec::new(),
        };
        Self {
            cfg,
            state: Mutex::new(state),
        }
    }

    /// The config in force.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
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
            self.link(&mut st, slot, obs, now_s, active);
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
    pub fn top_clusters(
        &self,
        n: usize,
        max_members: usize,
        now_ms: u64,
    ) -> (Vec<ClusterSnapshot>, Vec<ClusterSnapshot>) {
        if n == 0 {
            return (Vec::new(), Vec::new());
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
        (snap(largest), snap(suspicious))
    }

    /// How many clusters have each size, accounts alone counted as clusters of
    /// one: `(size, clusters)`, by size. Scans in short locked chunks.
    pub fn size_counts(&self) -> Vec<(u32, u64)> {
        let mut counts: std::collections::BTreeMap<u32, u64> = Default::default();
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
        counts.into_iter().collect()
    }

    fn link(&self, st: &mut State, slot: u32, obs: &Observation<'_>, now_s: u32, active: bool) {
        let cfg = &self.cfg;
        st.scratch.clear();
        st.candidates.clear();
        let half_life = cfg.half_life.as_secs().max(1) as f32;
        let ttl = u32::try_from(cfg.ttl.as_secs()).unwrap_or(u32::MAX);
        let beh = &cfg.behaviour;
        let (link_ev, benign_ev) = (beh.link_evidence as f32, beh.benign_evidence as f32);
        let benign_scale = beh.benign_scale as f32;
        // Accounts that look like extraction link only with one another, on
        // any shared value weighted down by the benign-looking accounts that
        // share it; the others link as before, on templates and hard links.
        let me_susp = st.slots[slot as usize].evidence >= link_ev;
        let mut seen_values: [u64; 64] = [0; 64];
        let mut n_seen = 0usize;
        for f in obs.features {
            // Between accounts that look like extraction a kind's override
            // (an app's shared system prompt weighs little) gives way to its
            // family's weight: sharing with benign accounts discounts it instead.
            let w = if me_susp {
                cfg.family_weights.get(f.family) as f32
            } else {
                st.weight(cfg, f)
            };
            if w <= 0.0 || (f.family == Family::Behaviour && !me_susp) {
                continue;
            }
            // Each value once per request.
            if seen_values[..n_seen].contains(&f.value) {
                continue;
            }
            if n_seen < seen_values.len() {
                seen_values[n_seen] = f.value;
                n_seen += 1;
            }
            let fam = family_index(f.family);
            let hard = f.family == Family::HardLink;
            let key = f.value;
            if !st.postings.contains_key(&key) {
                // The doorkeeper: a value gets a posting list only once a second
                // account sends it, so the values each user sends alone (most
                // prompt bands) cost no memory.
                let d = (key as usize) & (st.door.len() - 1);
                let tag = (key >> 32) as u32;
                let door = st.door[d];
                let other = door.slot;
                let valid = door.tag == tag
                    && other != slot
                    && now_s.saturating_sub(door.at) <= ttl
                    && st
                        .slots
                        .get(other as usize)
                        .is_some_and(|s| s.live && s.first_seen <= door.at);
                if valid {
                    if st.postings.len() >= cfg.max_features as usize {
                        st.shed_postings(cfg, now_s);
                    }
                    st.postings.insert(
                        key,
                        Posting {
                            last: now_s,
                            checked: 0,
                            roots: 0,
                            suspicious: 0,
                            benign: 0,
                            entries: vec![
                                Entry {
                                    slot: other,
                                    at: door.at,
                                },
                                Entry { slot, at: now_s },
                            ],
                        },
                    );
                    st.door[d] = Door::default();
                    let other_susp = st.slots[other as usize].evidence >= link_ev;
                    if active && !st.same_cluster(slot, other) && other_susp == me_susp {
                        let decay = 0.5f32.powf(now_s.saturating_sub(door.at) as f32 / half_life);
                        st.add_candidate(other, fam, f, w * decay);
                    }
                } else {
                    st.door[d] = Door {
                        tag,
                        slot,
                        at: now_s,
                    };
                }
                continue;
            }
            // Known value: measure commonness (cached for a while), gather
            // candidates, record this account.
            let State {
                postings,
                slots,
                gathered,
                ..
            } = &mut *st;
            let Some(p) = postings.get_mut(&key) else {
                continue;
            };
            p.last = now_s;
            let mine = root_key(slots, slot);
            let fresh = |e: &Entry| {
                now_s.saturating_sub(e.at) <= ttl
                    && slots
                        .get(e.slot as usize)
                        .is_some_and(|s| s.live && s.first_seen <= e.at)
            };
            let susp_of = |e: &Entry| slots.get(e.slot as usize).map_or(0.0, |s| s.evidence);
            if p.checked == 0
                || p.entries.len() <= 4
                || now_s.saturating_sub(p.checked) >= RECHECK_S
            {
                p.entries.retain(|e| e.slot == slot || fresh(e));
                let mut roots: [u64; 64] = [0; 64];
                let mut n_roots = 0usize;
                let (mut n_susp, mut n_benign) = (0usize, 0usize);
                for e in &p.entries {
                    let r = root_key(slots, e.slot);
                    if n_roots < roots.len() && !roots[..n_roots].contains(&r) {
                        roots[n_roots] = r;
                        n_roots += 1;
                    }
                    let ev = susp_of(e);
                    if ev >= link_ev {
                        n_susp += 1;
                    } else if ev <= benign_ev {
                        n_benign += 1;
                    }
                }
                if !roots[..n_roots].contains(&mine) {
                    n_roots += 1;
                }
                p.roots = u8::try_from(n_roots).unwrap_or(u8::MAX);
                p.suspicious = u8::try_from(n_susp).unwrap_or(u8::MAX);
                p.benign = u8::try_from(n_benign).unwrap_or(u8::MAX);
                p.checked = now_s.max(1);
            }
            let (common, exclusive) = if hard {
                (false, 1.0)
            } else if me_susp {
                // Among accounts that look like extraction, a value many of
                // them share is the operator's, not common: only the
                // benign-looking accounts that share it weigh it down.
                let s = f32::from(p.suspicious.max(1));
                (false, s / (s + benign_scale * f32::from(p.benign)))
            } else {
                (u32::from(p.roots) > cfg.common_clusters, 1.0)
            };
            gathered.clear();
            if active && !common {
                for e in &p.entries {
                    if e.slot == slot
                        || !fresh(e)
                        || root_key(slots, e.slot) == mine
                        || (susp_of(e) >= link_ev) != me_susp
                    {
                        continue;
                    }
                    let decay = 0.5f32.powf(now_s.saturating_sub(e.at) as f32 / half_life);
                    gathered.push((e.slot, w * decay * exclusive));
                }
            }
            if let Some(e) = p.entries.iter_mut().find(|e| e.slot == slot) {
                e.at = now_s;
            } else {
                if p.entries.len() >= cfg.posting_cap as usize {
                    // Class-balanced eviction: the oldest entry of whichever
                    // class (looks like extraction or not) holds more of the
                    // list, so a burst of ordinary users cannot flush an
                    // operator's accounts out of a value's list, nor the reverse.
                    let n_s = p.entries.iter().filter(|e| susp_of(e) >= link_ev).count();
                    let n_o = p.entries.len() - n_s;
                    let evict_susp = match n_s.cmp(&n_o) {
                        std::cmp::Ordering::Greater => true,
                        std::cmp::Ordering::Less => false,
                        std::cmp::Ordering::Equal => me_susp,
                    };
                    let victim = p
                        .entries
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| (susp_of(e) >= link_ev) == evict_susp)
                        .min_by_key(|(_, e)| e.at)
                        .or_else(|| p.entries.iter().enumerate().min_by_key(|(_, e)| e.at))
                        .map(|(i, _)| i);
                    if let Some(i) = victim {
                        p.entries.swap_remove(i);
                    }
                }
                p.entries.push(Entry { slot, at: now_s });
            }
            let g = std::mem::take(&mut st.gathered);
            for &(other, weight) in &g {
                st.add_candidate(other, fam, f, weight);
            }
            st.gathered = g;
        }
        if !active || st.candidates.is_empty() {
            return;
        }
        let hold = st.slots[slot as usize].hold_until;
        if hold > now_s {
            return;
        }
        // Evidence per account *and cluster*: candidates in one cluster pool
        // their evidence (the largest weight per family, the shared values
        // counted together), so that a large campaign whose recent users of one
        // value are not the recent users of another still adds up.
        let anchor_idx: Vec<usize> = cfg
            .anchor_families
            .iter()
            .map(|f| family_index(*f))
            .collect();
        let mut groups: Vec<Candidate> = Vec::new();
        st.groups.clear();
        // Per group: root, backing members, best candidate index, best total.
        let mut members: Vec<(u64, u32, usize, f32)> = Vec::new();
        let State {
            candidates,
            groups: index,
            slots,
            ..
        } = &mut *st;
        for c in candidates.iter() {
            let root = root_key(slots, c.slot);
            let total: f32 = c.fam.iter().sum();
            let gi = match index.get(&root) {
                Some(gi) => *gi,
                None => {
                    groups.push(Candidate {
                        slot: c.slot,
                        fam: [0.0; FAMILIES],
                        kinds: [""; FAMILIES],
                        values: [0; FAMILIES],
                        count: [0; FAMILIES],
                    });
                    members.push((root, 0, groups.len() - 1, f32::MIN));
                    index.insert(root, members.len() - 1);
                    members.len() - 1
                }
            };
            let g = &mut groups[gi];
            for i in 0..FAMILIES {
                if c.fam[i] > g.fam[i] {
                    g.fam[i] = c.fam[i];
                    g.kinds[i] = c.kinds[i];
                    g.values[i] = c.values[i];
                }
                g.count[i] = g.count[i].max(c.count[i]);
            }
            let m = &mut members[gi];
            // Backing: members matched on an anchor family (a template), not on
            // the software or network a cluster may share with bystanders
            // (among accounts that look like extraction, any match backs).
            if me_susp || anchor_idx.is_empty() || anchor_idx.iter().any(|i| c.fam[*i] > 0.0) {
                m.1 += 1;
            }
            if total > m.3 {
                m.3 = total;
                g.slot = c.slot;
            }
        }
        let full = cfg.matches_for_full_weight.as_array();
        for g in &mut groups {
            for (i, w) in g.fam.iter_mut().enumerate() {
                let need = full[i].max(1) as f32;
                *w *= (f32::from(g.count[i]) / need).min(1.0);
            }
        }
        let hard_idx = family_index(Family::HardLink);
        let behaviour_idx = family_index(Family::Behaviour);
        let tpl_idx = family_index(Family::Template);
        let threshold = cfg.link_threshold as f32;
        let min_anchor = cfg.min_anchor_weight as f32;
        let min_family = cfg.min_family_weight as f32;
        // (total, group, hard, template) for the groups that pass.
        let mut passing: Vec<(f32, usize, bool, bool)> = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let total: f32 = g.fam.iter().sum();
            let hard = g.fam[hard_idx] >= threshold;
            // Behaviour adds weight but is not one of the independent
            // families a link needs: many people ask alike, so two accounts
            // must also share something an operator's software, network,
            // requests or templates give away.
            let families = g
                .fam
                .iter()
                .enumerate()
                .filter(|(i, w)| *i != behaviour_idx && **w >= min_family && **w > 0.0)
                .count();
            let anchored = me_susp
                || anchor_idx.is_empty()
                || anchor_idx
                    .iter()
                    .any(|i| g.fam[*i] >= min_anchor && g.fam[*i] > 0.0);
            if hard || (total >= threshold && families >= cfg.min_families as usize && anchored) {
                passing.push((total, gi, hard, g.fam[tpl_idx] > 0.0));
            } else if st.log_cap > 0 && total >= threshold / 2.0 {
                st.log_event(obs, &groups[gi], LinkOutcome::Rejected);
            }
        }
        // Strongest first, so the best evidence decides which cluster a new
        // account joins.
        passing.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, gi, hard, template) in passing {
            let other = groups[gi].slot;
            let backing = members[gi].1;
            let their = st.slots[other as usize].cluster;
            let size = st
                .clusters
                .get(their as usize)
                .map_or(1, |c| c.members.len() as u32);
            let mine = st.slots[slot as usize].cluster;
            let outcome = if st.slots[other as usize].hold_until > now_s {
                LinkOutcome::Skipped
            } else if !hard
                && their != NONE
                && their != mine
                && mine == NONE
                && backing < cfg.join_min_members.min(size)
            {
                // Evidence in proportion to the cluster joined: one request
                // must match several of its members.
                st.counters.guarded += 1;
                LinkOutcome::Guarded
            } else {
                st.connect(cfg, slot, other, hard, template, now_s)
            };
            if matches!(outcome, LinkOutcome::Joined | LinkOutcome::Merged) {
                let c = st.slots[slot as usize].cluster;
                let g = &groups[gi];
                let State {
                    evidence,
                    kind_names,
                    ..
                } = &mut *st;
                if let Some(ev) = evidence.get_mut(c as usize) {
                    ev.record(kind_names, &g.fam, &g.kinds, &g.values, now_s);
                }
            }
            st.log_event(obs, &groups[gi], outcome);
        }
    }
}

/// A key naming an account's cluster (its slot for singletons).
fn root_key(slots: &[Slot], slot: u32) -> u64 {
    match slots.get(slot as usize) {
        Some(s) if s.cluster != NONE => u64::from(s.cluster),
        _ => (1u64 << 32) | u64::from(slot),
    }
}

impl State {
    /// Adds one request's behaviour to its account's evidence (see
    /// [`BehaviourEvidence`](super::BehaviourEvidence)) and passes the change
    /// on to its cluster.
    fn behaviour_step(
        &mut self,
        cfg: &ClusterConfig,
        slot: u32,
        obs: &Observation<'_>,
        now_s: u32,
    ) {
        let b = &cfg.behaviour;
        let x = obs.signals[EXTRACTION].clamp(0.0, 1.0);
        let benign = obs.signals[BENIGN] >= 0.5;
        let gain = b.gain as f32;
        let step = if x > 0.0 {
            gain * (x - b.pivot as f32)
        } else if benign {
            -(b.benign_penalty as f32)
        } else {
            -(b.neutral_penalty as f32)
        };
        let half_life = b.half_life.as_secs().max(1) as f32;
        let gap = u32::try_from(b.session_gap.as_secs()).unwrap_or(u32::MAX);
        let cap = b.member_cap as f32;
        let s = &mut self.slots[slot as usize];
        let dt = now_s.saturating_sub(s.evidence_at) as f32;
        if dt > 0.0 {
            s.evidence *= 0.5f32.powf(dt / half_life);
            s.evidence_at = now_s;
        }
        if s.session_at == 0 || now_s.saturating_sub(s.session_at) > gap {
            s.session_best = 0.0;
        }
        s.session_at = now_s;
        let add = if step > 0.0 {
            let add = (step - s.session_best).max(0.0);
            s.session_best = s.session_best.max(step);
            add
        } else {
            step
        };
        s.evidence = (s.evidence + add).clamp(b.floor as f32, b.ceiling as f32);
        let contribution = s.evidence.clamp(0.0, cap);
        let delta = contribution - s.contribution;
        s.contribution = contribution;
        let c = s.cluster;
        if let Some(rec) = self.clusters.get_mut(c as usize) {
            if c != NONE {
                rec.evidence = (rec.evidence + delta).max(0.0);
            }
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: only for choosing eviction samples.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn weight(&mut self, cfg: &ClusterConfig, f: &Feature) -> f32 {
        let key = (f.kind.as_ptr() as usize, f.kind.len());
        for &(p, l, fam, w) in &self.kind_weights {
            if (p, l) == key && fam == f.family {
                return w;
            }
        }
        let w = cfg.weight_of(f.family, f.kind) as f32;
        if self.kind_weights.len() < 64 {
            self.kind_weights.push((key.0, key.1, f.family, w));
        }
        w
    }

    fn log_event(&mut self, obs: &Observation<'_>, c: &Candidate, outcome: LinkOutcome) {
        if self.log_cap == 0 {
            return;
        }
        let event = LinkEvent {
            at_ms: obs.now_ms,
            account: obs.account,
            other: self.slots[c.slot as usize].id,
            evidence: Family::ALL
                .iter()
                .map(|f| (*f, c.kinds[family_index(*f)], c.fam[family_index(*f)]))
                .filter(|e| e.2 > 0.0)
                .collect(),
            outcome,
        };
        if self.log.len() >= self.log_cap {
            self.log.pop_front();
        }
        self.log.push_back(event);
    }

    fn same_cluster(&self, a: u32, b: u32) -> bool {
        root_key(&self.slots, a) == root_key(&self.slots, b)
    }

    fn add_candidate(&mut self, other: u32, fam: usize, f: &Feature, w: f32) {
        let i = match self.scratch.get(&other) {
            Some(i) => *i,
            None => {
                self.candidates.push(Candidate {
                    slot: other,
                    fam: [0.0; FAMILIES],
                    kinds: [""; FAMILIES],
                    values: [0; FAMILIES],
                    count: [0; FAMILIES],
                });
                let i = self.candidates.len() - 1;
                self.scratch.insert(other, i);
                i
            }
        };
        let c = &mut self.candidates[i];
        c.count[fam] = c.count[fam].saturating_add(1);
        if w > c.fam[fam] {
            c.fam[fam] = w;
            c.kinds[fam] = f.kind;
            c.values[fam] = f.value;
        }
    }

    /// Expires a few accounts per call and, every few minutes, old postings and
    /// bridges.
    fn maintain(&mut self, cfg: &ClusterConfig, now_s: u32) {
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
    fn shed_postings(&mut self, cfg: &ClusterConfig, now_s: u32) {
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

    fn touch(&mut self, cfg: &ClusterConfig, obs: &Observation<'_>) -> u32 {
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

    fn evict_one(&mut self) {
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

    fn evict(&mut self, slot: u32) {
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

    /// Takes an account out of its cluster; a cluster left with one member is
    /// dissolved.
    fn detach(&mut self, slot: u32) {
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
        if rec.members.len() <= 1 {
            let rest = std::mem::take(&mut rec.members);
            for m in rest {
                self.slots[m as usize].cluster = NONE;
            }
            self.free_clusters.push(c);
        }
    }

    fn new_cluster(&mut self, id: ClusterId, now_s: u32) -> u32 {
        let rec = ClusterRec {
            id,
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

    fn add_member(&mut self, c: u32, slot: u32, now_s: u32) {
        let s = self.slots[slot as usize];
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
    fn connect(
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
                let (sa, sb) = (&self.slots[a as usize], &self.slots[b as usize]);
                let older = if (sb.first_seen, sb.id) < (sa.first_seen, sa.id) {
                    sb.id
                } else {
                    sa.id
                };
                let c = self.new_cluster(ClusterId::of_account(older), now_s);
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
    fn bridge_allows(
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

    /// Merges the smaller cluster into the larger; the larger keeps its id.
    fn merge(&mut self, x: u32, y: u32) -> u32 {
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
        if let (Some(from), true) = (
            self.evidence.get(small as usize).copied(),
            (big as usize) < self.evidence.len(),
        ) {
            self.evidence[big as usize].absorb(&from);
        }
        self.free_clusters.push(small);
        big
    }

    /// Updates the account's timing and signal averages and its cluster's.
    fn after_request(&mut self, slot: u32, obs: &Observation<'_>) {
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

    fn cluster_view(&self, slot: u32) -> Cluster {
        let s = &self.slots[slot as usize];
        match self.clusters.get(s.cluster as usize) {
            Some(c) if s.cluster != NONE => Cluster {
                id: c.id,
                size: c.members.len() as u32,
            },
            _ => Cluster::singleton(s.id),
        }
    }

    fn account_stats(&self, slot: u32, now_s: u32) -> AccountStats {
        let s = &self.slots[slot as usize];
        AccountStats {
            requests: s.requests,
            age_s: now_s.saturating_sub(s.first_seen),
            interval_log_std: (s.requests >= 4).then(|| s.log_iv_var.max(0.0).sqrt()),
            signals: s.signals.map(|x| f32::from(x) / 255.0),
            level: s.level,
            level_at: s.level_at,
            evidence: s.evidence,
        }
    }

    /// The statistics of a live cluster of two or more.
    fn cluster_stats(&self, c: u32, now_s: u32) -> Option<ClusterStats> {
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

    fn linked(&self, slot: u32, now_s: u32) -> Linked {
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

    /// An operator's view of cluster `c` (two or more members).
    fn snapshot(&self, c: u32, max_members: usize, now_s: u32) -> Option<ClusterSnapshot> {
        let stats = self.cluster_stats(c, now_s)?;
        let rec = &self.clusters[c as usize];
        let members = rec
            .members
            .iter()
            .take(max_members)
            .map(|m| self.slots[*m as usize].id)
            .collect();
        let (kinds, mut values) = match self.evidence.get(c as usize) {
            Some(ev) => (ev.kinds(&self.kind_names), ev.values(&self.kind_names)),
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

    fn stats(&self) -> EngineStats {
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
