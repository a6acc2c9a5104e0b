//! The local copy of refused subjects (`deny_cache`): after Redis refuses a
//! request, the subject's buckets are kept in process, and later requests they
//! still refuse are answered without a round trip, exactly as Redis would
//! have, until they would fit again. Anything they admit goes to Redis.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::extensions::Scope;
use crate::store::memory::{judge, Entry};
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
    map: DashMap<(bool, [u8; 16]), Cached>,
    /// About how many entries `map` holds, kept beside it because
    /// `DashMap::len` and `is_empty` lock every shard and the admission path
    /// asks on every call. Only a short-cut and a cap: a stale count makes a
    /// call ask Redis, never answer wrongly.
    len: AtomicUsize,
    last_sweep_ms: AtomicU64,
    /// Requests refused from the cache, without Redis.
    denials: AtomicU64,
}

fn key(subject: &Subject) -> (bool, [u8; 16]) {
    (subject.scope == Scope::Cluster, subject.key)
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
        let acct = self.get(&a.account, a.now_ms)?;
        let cluster = match &a.cluster {
            Some(c) => Some(self.get(c, a.now_ms)?),
            None => None,
        };
        let (denied, views) = judge(a, &acct, cluster.as_ref());
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
            self.remove(&a.account);
            if let Some(c) = &a.cluster {
                self.remove(c);
            }
        }
    }

    /// Redis refused `a` until `until_ms`: keep its subjects' buckets.
    pub(super) fn refused(
        &self,
        a: &Admission,
        account: Entry,
        cluster: Option<Entry>,
        until_ms: u64,
    ) {
        if !self.enabled {
            return;
        }
        self.insert(&a.account, account, until_ms, a.now_ms);
        if let (Some(c), Some(e)) = (&a.cluster, cluster) {
            self.insert(c, e, until_ms, a.now_ms);
        }
    }

    /// A settlement changes its subjects' buckets: their copies are stale.
    pub(super) fn settled(&self, s: &Settlement) {
        if self.enabled {
            self.remove(&s.account);
            if let Some(c) = &s.cluster {
                self.remove(c);
            }
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
