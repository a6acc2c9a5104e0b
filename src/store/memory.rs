//! The embedded store: four sharded maps (accounts, clusters, and their model
//! groups' buckets) of four buckets each.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::{
    Admission, BucketView, Denial, Limits, Outcome, Settlement, Store, StoreFuture, Subject,
};

use crate::store::gcra;

/// An idle entry is forgotten once all its buckets have drained, or at the latest
/// this long after its last use (a zero-rate bucket never drains).
pub(super) const MAX_IDLE_MS: u64 = 2 * 86_400_000;
/// How often (in store time) idle entries are swept.
const SWEEP_EVERY_MS: u64 = 60_000;
/// Most entries each map (accounts, clusters) holds by default: about 200 MB
/// for both at their fullest. See [`MemoryStore::with_max_entries`].
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;
/// How many admissions pass between two checks of the maps' sizes.
const SIZE_CHECK_EVERY: u64 = 1024;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Entry {
    pub(super) levels: [f64; 4],
    pub(super) last_ms: u64,
    /// When every bucket will have drained; the entry can be dropped after that.
    pub(super) idle_at_ms: u64,
}

impl Entry {
    pub(super) fn bring_to(&mut self, now_ms: u64, limits: &Limits) {
        // An idle entry is forgotten whether or not a sweep has dropped it yet, so
        // that what a subject may do never depends on when sweeps ran.
        if self.idle_at_ms <= now_ms {
            *self = Entry::default();
        }
        for (level, limit) in self.levels.iter_mut().zip(limits) {
            *level = match limit {
                Some(l) => gcra::drained(*level, self.last_ms, now_ms, l),
                None => 0.0,
            };
        }
        self.last_ms = self.last_ms.max(now_ms);
    }

    pub(super) fn check(&self, costs: &[f64; 4], subject: &Subject) -> Option<Denial> {
        let limits = &subject.limits;
        let mut worst: Option<Denial> = None;
        for w in super::Window::ALL {
            let i = w.index();
            let Some(limit) = &limits[i] else { continue };
            if let Err(retry) = gcra::check(self.levels[i], costs[i], limit) {
                let denial = Denial {
                    scope: subject.scope,
                    model_group: subject.group.is_some(),
                    window: w,
                    retry_after_ms: retry,
                };
                worst = Some(later_of(worst, denial));
            }
        }
        worst
    }

    fn charge(&mut self, costs: &[f64; 4], limits: &Limits, now_ms: u64) {
        for i in 0..4 {
            if limits[i].is_some() {
                self.levels[i] = (self.levels[i] + costs[i]).max(0.0);
            }
        }
        self.touch(limits, now_ms);
    }

    fn touch(&mut self, limits: &Limits, now_ms: u64) {
        let mut idle = now_ms;
        for (level, limit) in self.levels.iter().zip(limits) {
            if let Some(l) = limit {
                idle = idle.max(now_ms.saturating_add(gcra::reset_ms(*level, l)));
            }
        }
        self.idle_at_ms = idle.min(now_ms.saturating_add(MAX_IDLE_MS));
    }

    pub(super) fn views(&self, limits: &Limits) -> [Option<BucketView>; 4] {
        let mut out = [None; 4];
        for i in 0..4 {
            if let Some(l) = &limits[i] {
                out[i] = Some(BucketView {
                    limit: l.capacity,
                    remaining: gcra::remaining(self.levels[i], l),
                    reset_ms: gcra::reset_ms(self.levels[i], l),
                });
            }
        }
        out
    }
}

/// An admission against its subjects' entries (all brought to the admission's
/// time, by row of [`Outcome::views`]), charging nothing: the binding denial,
/// if any, and the bucket views. The Redis store judges the levels Redis
/// returned with it, so both stores answer alike.
#[cfg(feature = "redis")]
pub(super) fn judge(
    a: &Admission,
    entries: &[Option<Entry>; 4],
) -> (Option<Denial>, [[Option<BucketView>; 4]; 4]) {
    let costs = [1.0, 1.0, a.tokens, a.tokens];
    let mut denied = None;
    let mut views = [[None; 4]; 4];
    for s in a.subjects() {
        let row = s.row();
        let e = entries[row].unwrap_or_default();
        if let Some(d) = e.check(&costs, s) {
            denied = Some(later_of(denied, d));
        }
        views[row] = e.views(&s.limits);
    }
    (denied, views)
}

/// Of two refusals, the one that lifts later (never is latest); the first on a
/// tie. An admission refused by several buckets reports the one it must wait
/// for, so its `Retry-After` is when it would fit.
pub(super) fn later_of(first: Option<Denial>, next: Denial) -> Denial {
    match first {
        None => next,
        Some(prev) => match (prev.retry_after_ms, next.retry_after_ms) {
            (None, _) => prev,
            (_, None) => next,
            (Some(a), Some(b)) if b > a => next,
            _ => prev,
        },
    }
}

/// A map's key: the subject's id and, for a model group's buckets, the group.
pub(super) type Key = ([u8; 16], Option<Arc<str>>);

/// The key of `subject` in its map.
pub(super) fn key_of(subject: &Subject) -> Key {
    (subject.key, subject.group.clone())
}

/// The embedded, in-memory store (the default).
///
/// Admission takes the entries of its subjects (the account's, the cluster's,
/// then the account's and the cluster's of the request's model group), always
/// in that order and each in its own map, so concurrent admissions cannot
/// deadlock and never overshoot. Entries whose buckets have drained are swept
/// once a minute.
///
/// Each map holds at most `max_entries` ([`DEFAULT_MAX_ENTRIES`]): past it (a
/// churn of fresh keys faster than their buckets drain), the entries that would
/// have drained soonest are dropped first, down to nine tenths of the bound.
/// Those are the least used, so forgetting them gives away the least; a busy
/// account's entry, which drains last, is the last to go.
#[derive(Debug)]
pub struct MemoryStore {
    /// By row of [`Outcome::views`]: accounts, clusters, accounts' model
    /// groups, clusters' model groups.
    maps: [DashMap<Key, Entry>; 4],
    last_sweep_ms: AtomicU64,
    max_entries: usize,
    admissions: AtomicU64,
    shedding: AtomicBool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            maps: std::array::from_fn(|_| DashMap::new()),
            last_sweep_ms: AtomicU64::new(0),
            max_entries: DEFAULT_MAX_ENTRIES,
            admissions: AtomicU64::new(0),
            shedding: AtomicBool::new(false),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `max` entries in each map (at least 1).
    pub fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// Keeps each map within its bound: first drops drained entries, then those
    /// that would drain soonest, down to nine tenths of the bound.
    fn shed(&self, now_ms: u64) {
        if self.shedding.swap(true, Ordering::Acquire) {
            return; // another admission is at it
        }
        for map in &self.maps {
            if map.len() <= self.max_entries {
                continue;
            }
            map.retain(|_, e| e.idle_at_ms > now_ms);
            let len = map.len();
            let keep = self.max_entries - self.max_entries / 10;
            if len <= keep {
                continue;
            }
            let mut idle: Vec<u64> = map.iter().map(|e| e.idle_at_ms).collect();
            let cut = len - keep;
            let (_, threshold, _) = idle.select_nth_unstable(cut);
            let threshold = *threshold;
            map.retain(|_, e| e.idle_at_ms >= threshold);
            tracing::warn!(
                dropped = len - map.len(),
                max_entries = self.max_entries,
                "quota store full: dropped the entries closest to drained"
            );
        }
        self.shedding.store(false, Ordering::Release);
    }

    fn map(&self, subject: &Subject) -> &DashMap<Key, Entry> {
        &self.maps[subject.row()]
    }

    /// Synchronous admission (the embedded store never waits on I/O).
    pub fn admit_now(&self, a: &Admission) -> Outcome {
        self.maybe_sweep(a.now_ms);
        if self.admissions.fetch_add(1, Ordering::Relaxed) % SIZE_CHECK_EVERY == 0
            && self.maps.iter().any(|m| m.len() > self.max_entries)
        {
            self.shed(a.now_ms);
        }
        let costs = [1.0, 1.0, a.tokens, a.tokens];
        // One map per row, taken in row order: no two admissions can wait on
        // each other's entries in opposite orders.
        let mut held = Vec::with_capacity(4);
        let mut denied = None;
        for s in a.subjects() {
            let mut e = self.map(s).entry(key_of(s)).or_default();
            e.bring_to(a.now_ms, &s.limits);
            if let Some(d) = e.check(&costs, s) {
                denied = Some(later_of(denied, d));
            }
            held.push((s, e));
        }
        let mut views = [[None; 4]; 4];
        for (s, e) in &mut held {
            if denied.is_none() {
                e.charge(&costs, &s.limits, a.now_ms);
            }
            views[s.row()] = e.views(&s.limits);
        }
        Outcome { denied, views }
    }

    /// Synchronous settlement.
    pub fn settle_now(&self, s: &Settlement) {
        self.charge_now(s.now_ms, s.subjects(), 0.0, s.token_delta);
    }

    /// Adds `requests` and `tokens` (negative gives back) to each subject's
    /// buckets without checking them: a settlement, or the refund of an
    /// admission a backend charged in two steps.
    pub(crate) fn charge_now<'a>(
        &self,
        now_ms: u64,
        subjects: impl IntoIterator<Item = &'a Subject>,
        requests: f64,
        tokens: f64,
    ) {
        let costs = [requests, requests, tokens, tokens];
        for subject in subjects {
            let mut e = self.map(subject).entry(key_of(subject)).or_default();
            e.bring_to(now_ms, &subject.limits);
            e.charge(&costs, &subject.limits, now_ms);
        }
    }

    /// Current bucket views of a subject, without charging (for inspection).
    pub fn peek(&self, subject: &Subject, now_ms: u64) -> [Option<BucketView>; 4] {
        match self.map(subject).get(&key_of(subject)) {
            Some(e) => {
                let mut e = *e;
                e.bring_to(now_ms, &subject.limits);
                e.views(&subject.limits)
            }
            None => Entry::default().views(&subject.limits),
        }
    }

    /// Drops every entry whose buckets have drained by `now_ms`.
    pub fn sweep(&self, now_ms: u64) {
        for map in &self.maps {
            map.retain(|_, e| e.idle_at_ms > now_ms);
        }
    }

    fn maybe_sweep(&self, now_ms: u64) {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if last == 0 {
            let _ = self.last_sweep_ms.compare_exchange(
                0,
                now_ms,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return;
        }
        if now_ms.saturating_sub(last) >= SWEEP_EVERY_MS
            && self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep(now_ms);
        }
    }
}

impl Store for MemoryStore {
    fn admit(&self, admission: &Admission) -> StoreFuture<'static, Outcome> {
        StoreFuture::ready(Ok(self.admit_now(admission)))
    }

    fn settle(&self, settlement: Settlement) {
        self.settle_now(&settlement);
    }

    fn tracked(&self) -> usize {
        self.maps.iter().map(DashMap::len).sum()
    }

    fn inspect<'a>(
        &'a self,
        subject: &'a Subject,
        now_ms: u64,
    ) -> StoreFuture<'a, Option<[Option<BucketView>; 4]>> {
        StoreFuture::ready(Ok(Some(self.peek(subject, now_ms))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::Scope;
    use crate::store::gcra::BucketLimit;
    use crate::store::Window;

    fn subject(scope: Scope, key: u8, rpm: f64, tpm: f64) -> Subject {
        Subject {
            scope,
            key: [key; 16],
            group: None,
            limits: [
                Some(BucketLimit::new(rpm, 60_000.0, rpm)),
                None,
                Some(BucketLimit::new(tpm, 60_000.0, tpm)),
                None,
            ],
        }
    }

    #[test]
    fn cluster_denial_charges_nothing() {
        let store = MemoryStore::new();
        let a = Admission {
            now_ms: 1,
            account: subject(Scope::Account, 1, 10.0, 1000.0),
            cluster: Some(subject(Scope::Cluster, 9, 2.0, 1000.0)),
            account_group: None,
            cluster_group: None,
            tokens: 10.0,
        };
        assert!(store.admit_now(&a).denied.is_none());
        assert!(store.admit_now(&a).denied.is_none());
        let out = store.admit_now(&a);
        let d = out.denied.expect("cluster full");
        assert_eq!(d.scope, Scope::Cluster);
        assert_eq!(d.window, Window::RequestsPerMinute);
        // The account was not charged for the denied request.
        assert_eq!(out.views[0][0].expect("view").remaining, 8.0);
    }

    #[test]
    fn the_denial_that_lifts_last_is_reported() {
        let store = MemoryStore::new();
        // The account holds one request and refills one a second; its model
        // group holds one and refills one a minute. When both refuse, the
        // group's refusal lifts last and is the one reported.
        let account = Subject::new(
            Scope::Account,
            [1; 16],
            [
                Some(BucketLimit::new(60.0, 60_000.0, 1.0)),
                None,
                None,
                None,
            ],
        );
        let group = account.in_group(
            "gpt-5*".into(),
            [Some(BucketLimit::new(1.0, 60_000.0, 1.0)), None, None, None],
        );
        let at = |now_ms| Admission {
            account_group: Some(group.clone()),
            ..Admission::new(now_ms, account.clone(), None, 0.0)
        };
        assert!(store.admit_now(&at(0)).denied.is_none());
        let d = store.admit_now(&at(0)).denied.expect("both full");
        assert!(d.model_group, "{d:?}");
        assert_eq!(d.retry_after_ms, Some(60_000));
        // A second later only the group refuses; a minute later neither.
        let d = store
            .admit_now(&at(1_000))
            .denied
            .expect("the group is full");
        assert_eq!(d.retry_after_ms, Some(59_000));
        assert!(store.admit_now(&at(60_000)).denied.is_none());
    }

    #[test]
    fn settlement_refunds_and_charges() {
        let store = MemoryStore::new();
        let acct = subject(Scope::Account, 1, 100.0, 1000.0);
        let a = Admission {
            now_ms: 0,
            account: acct.clone(),
            cluster: None,
            account_group: None,
            cluster_group: None,
            tokens: 600.0,
        };
        assert!(store.admit_now(&a).denied.is_none());
        store.settle_now(&Settlement {
            now_ms: 0,
            account: acct.clone(),
            cluster: None,
            account_group: None,
            cluster_group: None,
            token_delta: -500.0,
        });
        let v = store.peek(&acct, 0)[2].expect("tokens");
        assert_eq!(v.remaining, 900.0);
    }

    #[test]
    fn drained_entries_are_swept() {
        let store = MemoryStore::new();
        for k in 0..100u8 {
            let a = Admission {
                now_ms: 1_000,
                account: subject(Scope::Account, k, 1.0, 1000.0),
                cluster: None,
                account_group: None,
                cluster_group: None,
                tokens: 1.0,
            };
            store.admit_now(&a);
        }
        assert_eq!(store.tracked(), 100);
        store.sweep(1_000 + 30_000);
        assert_eq!(store.tracked(), 100, "not yet drained");
        store.sweep(1_000 + 61_000);
        assert_eq!(store.tracked(), 0);
    }

    #[test]
    fn fresh_key_churn_stays_within_the_bound_and_busy_accounts_keep_their_state() {
        let store = MemoryStore::new().with_max_entries(1_000);
        // One request a day: an entry drains a day after its request.
        let daily = |k: u32| Subject {
            scope: Scope::Account,
            key: {
                let mut key = [0u8; 16];
                key[..4].copy_from_slice(&k.to_le_bytes());
                key[15] = 1;
                key
            },
            group: None,
            limits: [
                None,
                Some(BucketLimit::new(1.0, 86_400_000.0, 10.0)),
                None,
                None,
            ],
        };
        let busy = daily(u32::MAX);
        for _ in 0..9 {
            let a = Admission {
                now_ms: 1,
                account: busy.clone(),
                cluster: None,
                account_group: None,
                cluster_group: None,
                tokens: 0.0,
            };
            assert!(store.admit_now(&a).denied.is_none());
        }
        for k in 0..50_000u32 {
            let a = Admission {
                now_ms: 2 + u64::from(k),
                account: daily(k),
                cluster: None,
                account_group: None,
                cluster_group: None,
                tokens: 0.0,
            };
            store.admit_now(&a);
            assert!(store.tracked() <= 1_000 + SIZE_CHECK_EVERY as usize, "{k}");
        }
        // The busy account spent 9 of its 10 and was never forgotten.
        let v = store.peek(&busy, 60_000)[1].expect("view");
        assert!(v.remaining < 1.5, "{}", v.remaining);
    }
}
