//! Local leases (`[store] local_leases`): a replica takes a share of a busy
//! subject's buckets from Redis in one charge, and admits that subject's
//! requests from it without a round trip until it is used up or a second of
//! store time has passed; what is left is then given back.
//!
//! A lease is an ordinary checked charge in Redis (the admit script with
//! `requests` and `tokens` of a few admissions at once), so the buckets never
//! hold more than their capacity and no more than the limit is ever admitted,
//! across every replica. What a lease trades is the other direction: units
//! leased to one replica and not yet used are unavailable to the others until
//! they are used or given back (at most 1/16 of a window's capacity per
//! subject and replica, for at most a second), and the rate-limit headers of
//! a request admitted from a lease are computed from the lease's copy of the
//! buckets.
//!
//! Only busy subjects get one: a subject is leased after it was admitted
//! through Redis [`HOT_AFTER`] times within one lease period by this replica.
//! A lease starts at 16 requests (and as many reservations' worth of tokens)
//! and doubles each time one is used up before it expires, up to
//! [`MAX_REQUESTS`] and 1/16 of every limited window's capacity. A lease is
//! used only while the subject's limits are exactly those it was taken under
//! (a suspicion band or a config change sends the next request to Redis, and
//! the old lease is given back).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use super::script::State;
use super::settle_queue::Charge;
use crate::store::memory::{key_of, Entry, Key};
use crate::store::{Admission, BucketView, Limits, Outcome, Subject};

/// How long a lease lasts, in store time.
pub(super) const PERIOD_MS: u64 = 1_000;
/// Admissions of a subject through Redis within one period before it is leased.
pub(super) const HOT_AFTER: u32 = 4;
/// Requests in a subject's first lease.
const FIRST_REQUESTS: f64 = 16.0;
/// Most requests in one lease.
pub(super) const MAX_REQUESTS: f64 = 1024.0;
/// Largest share of a limited window's capacity one lease takes.
const SHARE: f64 = 1.0 / 16.0;
/// Most subjects whose demand is tracked.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone)]
struct Lease {
    subject: Subject,
    requests_left: f64,
    tokens_left: f64,
    /// Requests the lease was taken for.
    granted_requests: f64,
    expires_ms: u64,
    /// The subject's buckets in Redis right after the lease was charged.
    entry: Entry,
}

impl Lease {
    fn covers(&self, subject: &Subject, now_ms: u64, tokens: f64) -> bool {
        self.subject.limits == subject.limits
            && now_ms < self.expires_ms
            && now_ms + PERIOD_MS >= self.expires_ms
            && self.requests_left >= 1.0
            && self.tokens_left >= tokens
    }

    fn take(&mut self, tokens: f64) {
        self.requests_left -= 1.0;
        self.tokens_left -= tokens;
    }

    /// What the subject's buckets hold for this replica's requests: Redis'
    /// copy brought to `now_ms`, less what is leased and not yet used.
    fn views(&self, now_ms: u64) -> [Option<BucketView>; 4] {
        let mut e = self.entry;
        e.bring_to(now_ms, &self.subject.limits);
        let left = [
            self.requests_left,
            self.requests_left,
            self.tokens_left,
            self.tokens_left,
        ];
        for (level, l) in e.levels.iter_mut().zip(left) {
            if l.is_finite() {
                *level = (*level - l).max(0.0);
            }
        }
        e.views(&self.subject.limits)
    }

    /// The charge that gives back what is left.
    fn give_back(&self, now_ms: u64) -> Option<Charge> {
        let finite = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
        let (requests, tokens) = (finite(self.requests_left), finite(self.tokens_left));
        (requests > 0.0 || tokens > 0.0).then(|| Charge {
            now_ms,
            subjects: vec![self.subject.clone()],
            requests: -requests,
            tokens: -tokens,
        })
    }
}

/// A subject's recent admissions through Redis on this replica.
#[derive(Debug, Clone, Copy)]
struct Demand {
    since_ms: u64,
    admissions: u32,
    /// Largest reservation seen since `since_ms`.
    tokens: f64,
    /// A lease is being taken.
    acquiring: bool,
    /// Requests of the next lease.
    next: f64,
}

/// A lease to take: `requests` and `tokens` of `subject`.
#[derive(Debug, Clone)]
pub(super) struct Wanted {
    pub(super) subject: Subject,
    pub(super) requests: f64,
    pub(super) tokens: f64,
}

/// The leases this replica holds, and the demand that earns them.
pub(super) struct Leases {
    enabled: bool,
    /// By subject (row of the outcome's views, id and model group).
    leases: DashMap<LeaseKey, Lease>,
    /// About how many leases are held (a short-cut, like the deny cache's).
    held: AtomicUsize,
    demand: DashMap<LeaseKey, Demand>,
    last_sweep_ms: AtomicU64,
    /// Admissions answered from a lease.
    admitted: AtomicU64,
    /// Leases taken.
    taken: AtomicU64,
    /// Settlement halves a lease took.
    absorbed: AtomicU64,
    /// The latest admission time seen (store time).
    latest_ms: AtomicU64,
}

/// A subject's key in the lease and demand maps.
type LeaseKey = (usize, Key);

fn lease_key(s: &Subject) -> LeaseKey {
    (s.row(), key_of(s))
}

impl Leases {
    /// No leases; a disabled set never takes or answers any.
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            leases: DashMap::new(),
            held: AtomicUsize::new(0),
            demand: DashMap::new(),
            last_sweep_ms: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            absorbed: AtomicU64::new(0),
            latest_ms: AtomicU64::new(0),
        }
    }

    /// The latest admission time seen.
    pub(super) fn latest_ms(&self) -> u64 {
        self.latest_ms.load(Ordering::Relaxed)
    }

    /// Leases held now.
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Admissions answered from a lease.
    pub(super) fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Leases taken.
    pub(super) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Settlement halves a lease took.
    pub(super) fn absorbed(&self) -> u64 {
        self.absorbed.load(Ordering::Relaxed)
    }

    /// Admits `a` from the leases of its subjects when they all cover it;
    /// `None` when Redis must be asked.
    pub(super) fn admit(&self, a: &Admission) -> Option<Outcome> {
        if !self.enabled || self.held() < a.subjects().count() {
            return None;
        }
        // One entry at a time (several in one map could share a shard): first
        // check every lease, then take from each.
        for s in a.subjects() {
            if !self
                .leases
                .get(&lease_key(s))?
                .covers(s, a.now_ms, a.tokens)
            {
                return None;
            }
        }
        let mut views = [[None; 4]; 4];
        let mut taken: Vec<&Subject> = Vec::with_capacity(4);
        for s in a.subjects() {
            let ok = match self.leases.get_mut(&lease_key(s)) {
                Some(mut l) if l.covers(s, a.now_ms, a.tokens) => {
                    l.take(a.tokens);
                    views[s.row()] = l.views(a.now_ms);
                    true
                }
                _ => false,
            };
            if !ok {
                // Another admission used it up in between: put back what
                // this one took and ask Redis.
                for t in taken {
                    if let Some(mut l) = self.leases.get_mut(&lease_key(t)) {
                        l.requests_left += 1.0;
                        l.tokens_left += a.tokens;
                    }
                }
                return None;
            }
            taken.push(s);
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Some(Outcome {
            denied: None,
            views,
        })
    }

    /// Applies a settlement's token delta to `subject`'s lease when it holds
    /// one under the same limits that can take it (a refund adds to what the
    /// lease has left, a further charge takes from it): the tokens were
    /// charged in Redis with the lease, and what is left goes back with it.
    /// False when Redis must take the delta.
    pub(super) fn absorb(&self, subject: &Subject, now_ms: u64, delta: f64) -> bool {
        if !self.enabled || self.held() == 0 || !delta.is_finite() {
            return false;
        }
        let Some(mut l) = self.leases.get_mut(&lease_key(subject)) else {
            return false;
        };
        if l.subject.limits != subject.limits || now_ms >= l.expires_ms {
            return false;
        }
        // Without a limited token window there is nothing to account.
        if l.tokens_left.is_finite() {
            if l.tokens_left - delta < 0.0 {
                return false;
            }
            l.tokens_left -= delta;
        }
        self.absorbed.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Redis admitted `a`: counts the demand of its subjects and names the
    /// leases worth taking now; a lease taken under other limits is removed
    /// and its rest returned in `give_back`.
    pub(super) fn after_admission(
        &self,
        a: &Admission,
        give_back: &mut Vec<Charge>,
    ) -> Vec<Wanted> {
        let mut out = Vec::new();
        if !self.enabled {
            return out;
        }
        for subject in a.subjects() {
            let key = lease_key(subject);
            // A lease that did not cover this admission is done with: used
            // up (the next one is twice as large), expired, or taken under
            // other limits.
            let mut used_up = None;
            if let Some((_, done)) = self
                .leases
                .remove_if(&key, |_, l| !l.covers(subject, a.now_ms, a.tokens))
            {
                self.held.fetch_sub(1, Ordering::Relaxed);
                if done.subject.limits == subject.limits && done.expires_ms > a.now_ms {
                    used_up = Some(done.granted_requests);
                }
                give_back.extend(done.give_back(a.now_ms));
            }
            if !self.demand.contains_key(&key) && self.demand.len() >= MAX_TRACKED {
                continue;
            }
            let mut d = self.demand.entry(key.clone()).or_insert(Demand {
                since_ms: a.now_ms,
                admissions: 0,
                tokens: 0.0,
                acquiring: false,
                next: FIRST_REQUESTS,
            });
            if a.now_ms >= d.since_ms.saturating_add(PERIOD_MS) || a.now_ms < d.since_ms {
                d.since_ms = a.now_ms;
                d.admissions = 0;
                d.tokens = 0.0;
            }
            if let Some(granted) = used_up {
                d.next = (granted * 2.0).min(MAX_REQUESTS);
            }
            d.admissions += 1;
            d.tokens = d.tokens.max(a.tokens);
            if d.admissions < HOT_AFTER || d.acquiring || self.leases.contains_key(&key) {
                continue;
            }
            if let Some((requests, tokens)) = size(&subject.limits, d.next, d.tokens) {
                d.acquiring = true;
                out.push(Wanted {
                    subject: subject.clone(),
                    requests,
                    tokens,
                });
            }
        }
        out
    }

    /// The lease `w` was charged in Redis (`state`: the subject's buckets
    /// after it) or refused (`None`).
    pub(super) fn taken_or_refused(&self, w: &Wanted, now_ms: u64, state: Option<State>) {
        let key = lease_key(&w.subject);
        if let Some(mut d) = self.demand.get_mut(&key) {
            d.acquiring = false;
            d.admissions = 0;
            // Refused: the bucket has little room; lease less next time.
            if state.is_none() {
                d.next = (d.next / 4.0).max(FIRST_REQUESTS);
            }
        }
        let Some(s) = state else {
            return;
        };
        let limits = &w.subject.limits;
        let unlimited = |ws: [usize; 2]| ws.iter().all(|&i| w_limit(limits, i).is_none());
        let lease = Lease {
            subject: w.subject.clone(),
            requests_left: if unlimited([0, 1]) {
                f64::INFINITY
            } else {
                w.requests
            },
            tokens_left: if unlimited([2, 3]) {
                f64::INFINITY
            } else {
                w.tokens
            },
            granted_requests: w.requests,
            expires_ms: now_ms.saturating_add(PERIOD_MS),
            entry: Entry {
                levels: s.levels,
                last_ms: s.last_ms,
                idle_at_ms: s.idle_at_ms,
            },
        };
        if self.leases.insert(key, lease).is_none() {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
        self.taken.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes the leases expired at `now_ms` (once a period at most, unless
    /// `force`) and returns what is left of them; a lease that was used up
    /// before it expired makes the subject's next one twice as large.
    pub(super) fn sweep(&self, now_ms: u64, force: bool) -> Vec<Charge> {
        let mut out = Vec::new();
        if !self.enabled {
            return out;
        }
        self.latest_ms.fetch_max(now_ms, Ordering::Relaxed);
        if self.held() == 0 {
            return out;
        }
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if !force
            && (now_ms < last.saturating_add(PERIOD_MS)
                || self
                    .last_sweep_ms
                    .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err())
        {
            return out;
        }
        {
            self.leases.retain(|key, l| {
                if l.expires_ms > now_ms && now_ms + PERIOD_MS >= l.expires_ms {
                    return true;
                }
                if let Some(mut d) = self.demand.get_mut(key) {
                    let used_up = l.requests_left < 1.0;
                    d.next = if used_up {
                        (l.granted_requests * 2.0).min(MAX_REQUESTS)
                    } else {
                        let used = l.granted_requests - l.requests_left.min(l.granted_requests);
                        (used * 2.0).clamp(FIRST_REQUESTS, MAX_REQUESTS)
                    };
                }
                out.extend(l.give_back(now_ms));
                self.held.fetch_sub(1, Ordering::Relaxed);
                false
            });
        }
        self.demand
            .retain(|_, d| d.acquiring || now_ms < d.since_ms.saturating_add(2 * PERIOD_MS));
        out
    }
}

fn w_limit(limits: &Limits, w: usize) -> Option<crate::store::gcra::BucketLimit> {
    limits.get(w).copied().flatten()
}

/// The size of a lease of about `requests` requests of `tokens` tokens each
/// under `limits`: at most [`SHARE`] of each limited window's capacity, and
/// `None` when that leaves fewer than two requests.
fn size(limits: &Limits, requests: f64, tokens: f64) -> Option<(f64, f64)> {
    let mut r = requests.min(MAX_REQUESTS);
    for w in [0, 1] {
        if let Some(l) = w_limit(limits, w) {
            r = r.min((l.capacity * SHARE).floor());
        }
    }
    let tokens = tokens.max(0.0);
    if tokens > 0.0 {
        for w in [2, 3] {
            if let Some(l) = w_limit(limits, w) {
                r = r.min((l.capacity * SHARE / tokens).floor());
            }
        }
    }
    (r >= 2.0).then_some((r, r * tokens))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::Scope;
    use crate::store::gcra::BucketLimit;

    fn subject(scope: Scope, rpm: f64, tpm: Option<f64>) -> Subject {
        Subject {
            scope,
            key: [1; 16],
            group: None,
            limits: [
                Some(BucketLimit::new(rpm, 60_000.0, rpm)),
                None,
                tpm.map(|t| BucketLimit::new(t, 60_000.0, t)),
                None,
            ],
        }
    }

    #[test]
    fn leases_are_a_small_share_of_each_limited_window() {
        let s = subject(Scope::Account, 1_600.0, Some(160_000.0));
        // 1/16 of 1,600 requests is 100; of 160,000 tokens at 500 each, 20.
        assert_eq!(size(&s.limits, 64.0, 500.0), Some((20.0, 10_000.0)));
        assert_eq!(size(&s.limits, 8.0, 10.0), Some((8.0, 80.0)));
        // A small limit leases nothing: exact admissions through Redis.
        let small = subject(Scope::Account, 20.0, None);
        assert_eq!(size(&small.limits, 64.0, 10.0), None);
        let unlimited = Subject {
            group: None,
            limits: [None; 4],
            ..small
        };
        assert_eq!(
            size(&unlimited.limits, 5_000.0, 10.0),
            Some((MAX_REQUESTS, MAX_REQUESTS * 10.0))
        );
    }

    #[test]
    fn a_hot_subject_is_leased_and_admitted_locally_until_used_up() {
        let leases = Leases::new(true);
        let s = subject(Scope::Account, 6_000.0, None);
        let a = |now_ms| Admission {
            now_ms,
            account: s.clone(),
            cluster: None,
            account_group: None,
            cluster_group: None,
            tokens: 10.0,
        };
        let mut back = Vec::new();
        let mut wanted = Vec::new();
        for i in 0..HOT_AFTER {
            assert!(leases.admit(&a(u64::from(i))).is_none(), "no lease yet");
            wanted = leases.after_admission(&a(u64::from(i)), &mut back);
        }
        assert_eq!(wanted.len(), 1, "hot after {HOT_AFTER} admissions");
        assert_eq!(wanted[0].requests, FIRST_REQUESTS);
        assert!(
            leases.after_admission(&a(5), &mut back).is_empty(),
            "one at a time"
        );
        let state = State {
            levels: [FIRST_REQUESTS; 4],
            last_ms: 5,
            idle_at_ms: 60_000,
        };
        leases.taken_or_refused(&wanted[0], 5, Some(state));
        let mut local = 0;
        while leases.admit(&a(6)).is_some() {
            local += 1;
        }
        assert_eq!(local, 16, "the lease's requests, no more");
        // Expired and swept: nothing left to give back; the next is larger.
        assert!(leases.sweep(5 + PERIOD_MS, false).is_empty());
        assert_eq!(leases.held(), 0);
        let d = leases.demand.get(&lease_key(&s)).map(|d| d.next);
        assert_eq!(d, Some(2.0 * FIRST_REQUESTS));
        assert!(back.is_empty());
    }

    #[test]
    fn an_unused_lease_or_one_under_other_limits_is_given_back() {
        let leases = Leases::new(true);
        let s = subject(Scope::Cluster, 6_000.0, Some(1e6));
        let w = Wanted {
            subject: s.clone(),
            requests: 16.0,
            tokens: 160.0,
        };
        leases.taken_or_refused(
            &w,
            0,
            Some(State {
                levels: [16.0, 0.0, 160.0, 0.0],
                last_ms: 0,
                idle_at_ms: 60_000,
            }),
        );
        let back = leases.sweep(PERIOD_MS, true);
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].requests, back[0].tokens), (-16.0, -160.0));
        // Taken again, then the limits change (a suspicion band): given back
        // at the next admission through Redis.
        leases.taken_or_refused(
            &w,
            0,
            Some(State {
                levels: [16.0; 4],
                last_ms: 0,
                idle_at_ms: 60_000,
            }),
        );
        let mut halved = s.clone();
        halved.limits[0] = halved.limits[0].map(|l| l.scaled(0.5));
        let a = Admission {
            now_ms: 10,
            account: subject(Scope::Account, 6_000.0, Some(1e6)),
            cluster: Some(halved),
            account_group: None,
            cluster_group: None,
            tokens: 10.0,
        };
        assert!(leases.admit(&a).is_none());
        let mut back = Vec::new();
        leases.after_admission(&a, &mut back);
        assert_eq!(back.len(), 1);
        assert_eq!(leases.held(), 0);
    }
}
