//! The local copy of refused subjects (`deny_cache`): after Redis refuses a
//! request, the subject's buckets are kept in process, and later requests they
//! still refuse are answered without a round trip, exactly as Redis would
//! have, until they would fit again. Anything they admit goes to Redis.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::store::memory::{judge, key_of, Entry, Key};
use crate::store::{Admission, Outcome, Settlement, Subject};

/// Most subjects kept.
const MAX: usize = 100_000;
/// How often (in store time) expired entries are swept.
const SWEEP_EVERY_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy)]
struct Cached {
    entry: Entry,
    /// When the refusal that cached it would have lifted (store time).
    until_ms: u64,
}

/// Refused subjects: their buckets as Redis last returned them.
pub(super) struct DenyCache {
    enabled: bool,
    map: DashMap<(usize, Key), Cached>,
    /// About how many entries `map` holds, kept beside it because
    /// `DashMap::len` and `is_empty` lock every shard and the admission path
    /// asks on every call. Only a short-cut and a cap: a stale count makes a
    /// call ask Redis, never answer wrongly.
    len: AtomicUsize,
    last_sweep_ms: AtomicU64,
    /// Requests refused from the cache, without Redis.
    denials: AtomicU64,
}

fn key(subject: &Subject) -> (usize, Key) {
    (subject.row(), key_of(subject))
}

impl DenyCache {
    /// An empty cache; a disabled one keeps and answers nothing.
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            map: DashMap::new(),
            len: AtomicUsize::new(0),
            last_sweep_ms: AtomicU64::new(0),
            denials: AtomicU64::new(0),
        }
    }

    /// About how many subjects are kept.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Requests refused from the cache.
    pub(super) fn denials(&self) -> u64 {
        self.denials.load(Ordering::Relaxed)
    }

    /// The refusal Redis would give `a`, from the kept copies; `None` when
    /// Redis must be asked.
    pub(super) fn refusal(&self, a: &Admission) -> Option<Outcome> {
        if !self.enabled || self.len() == 0 {
            return None;
        }
        let mut entries = [None; 4];
        for s in a.subjects() {
            entries[s.row()] = Some(self.get(s, a.now_ms)?);
        }
        let (denied, views) = judge(a, &entries);
        let denied = denied?;
        self.denials.fetch_add(1, Ordering::Relaxed);
        Some(Outcome {
            denied: Some(denied),
            views,
        })
    }

    /// Redis admitted `a`: its subjects' copies are stale.
    pub(super) fn admitted(&self, a: &Admission) {
        if self.enabled {
            a.subjects().for_each(|s| self.remove(s));
        }
    }

    /// Redis refused `a` until `until_ms`: keep its subjects' buckets (by
    /// row of the outcome's views).
    pub(super) fn refused(&self, a: &Admission, entries: &[Option<Entry>; 4], until_ms: u64) {
        if !self.enabled {
            return;
        }
        for s in a.subjects() {
            if let Some(e) = entries[s.row()] {
                self.insert(s, e, until_ms, a.now_ms);
            }
        }
    }

    /// A settlement changes its subjects' buckets: their copies are stale.
    pub(super) fn settled(&self, s: &Settlement) {
        if self.enabled {
            s.subjects().for_each(|x| self.remove(x));
        }
    }

    fn remove(&self, subject: &Subject) {
        if self.map.remove(&key(subject)).is_some() {
            let _ = self
                .len
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    fn insert(&self, subject: &Subject, entry: Entry, until_ms: u64, now_ms: u64) {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= SWEEP_EVERY_MS
            && self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.map.retain(|_, c| c.until_ms > now_ms);
            self.len.store(self.map.len(), Ordering::Relaxed);
        }
        if self.len() < MAX
            && self
                .map
                .insert(key(subject), Cached { entry, until_ms })
                .is_none()
        {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self, subject: &Subject, now_ms: u64) -> Option<Entry> {
        let c = *self.map.get(&key(subject))?;
        if c.until_ms <= now_ms {
            self.remove(subject);
            return None;
        }
        let mut e = c.entry;
        e.bring_to(now_ms, &subject.limits);
        Some(e)
    }
}
