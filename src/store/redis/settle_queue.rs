//! The bounded queue of settlements waiting for Redis.
//!
//! Settling never blocks a request, so the queue must absorb whatever Redis
//! cannot take at once, and it must not grow without bound when Redis is slow
//! (not failing, which sends settlements to the in-process store at once).
//! Up to [`CAPACITY`] settlements wait, in order. When it is full, a new
//! settlement is folded into the latest queued one of the same account and
//! cluster (token deltas add up, the later time and limits win), so what a
//! busy subject owes still reaches Redis, in one settlement instead of
//! several; a settlement with no such partner is applied to the in-process
//! store instead (as when Redis fails) and counted as an overflow.
//! Nothing is folded while there is room, so in normal running Redis applies
//! exactly the sequence of settlements it was given. (The queue also carries
//! the refunds of a Redis Cluster's two-step admissions, see [`Charge`].)

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::store::{Settlement, Subject};

/// Most settlements waiting at once (a few hundred bytes each).
pub(super) const CAPACITY: usize = 16_384;

/// Requests and tokens added to some subjects' buckets without a check (the
/// settle script): a settlement (no requests, its token delta), the refund of
/// the part of an admission that one slot of a Redis Cluster charged when
/// another slot refused (minus one request, minus its tokens), or the rest of
/// a lease given back.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Charge {
    pub(super) now_ms: u64,
    /// One to four subjects, in the order of [`Admission::subjects`](crate::store::Admission::subjects).
    pub(super) subjects: Vec<Subject>,
    pub(super) requests: f64,
    pub(super) tokens: f64,
}

impl From<Settlement> for Charge {
    fn from(s: Settlement) -> Self {
        Charge {
            now_ms: s.now_ms,
            subjects: s.subjects().cloned().collect(),
            requests: 0.0,
            tokens: s.token_delta,
        }
    }
}

/// The subjects a charge is for: each one's row, id and model group.
type Pair = Vec<(usize, [u8; 16], Option<std::sync::Arc<str>>)>;

fn pair(c: &Charge) -> Pair {
    c.subjects
        .iter()
        .map(|s| (s.row(), s.key, s.group.clone()))
        .collect()
}

#[derive(Default)]
struct State {
    /// Waiting settlements with their sequence numbers, oldest first.
    items: VecDeque<(u64, Charge)>,
    /// Sequence number of the next settlement queued.
    next: u64,
    /// The latest queued settlement of each pair of subjects.
    latest: HashMap<Pair, u64>,
    /// Charges taken by the sender and not yet finished.
    in_flight: usize,
    /// No more settlements are taken: the store is gone.
    closed: bool,
}

/// What became of a settlement offered to the queue.
#[derive(Debug)]
pub(super) enum Push {
    /// Queued (or folded into a queued one when the queue was full).
    Queued,
    /// Not taken: the queue is full with other subjects, or closed. The caller
    /// applies it elsewhere.
    Refused(Box<Charge>, Refusal),
}

/// Why a settlement was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The queue is full and holds no settlement of the same subjects.
    Full,
    /// The store is being dropped.
    Closed,
}

/// Charges waiting for the sending task.
pub(super) struct SettleQueue {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
    merged: AtomicU64,
}

impl SettleQueue {
    /// An empty queue holding at most `capacity` settlements.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
            merged: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers `s` for sending; never waits.
    pub(super) fn push(&self, s: Charge) -> Push {
        let mut st = self.state();
        if st.closed {
            return Push::Refused(Box::new(s), Refusal::Closed);
        }
        let key = pair(&s);
        if st.items.len() >= self.capacity {
            let front = st.items.front().map_or(0, |(seq, _)| *seq);
            let Some(at) = st
                .latest
                .get(&key)
                .and_then(|seq| seq.checked_sub(front))
                .and_then(|i| usize::try_from(i).ok())
            else {
                return Push::Refused(Box::new(s), Refusal::Full);
            };
            if let Some((_, queued)) = st.items.get_mut(at) {
                fold(queued, s);
                self.merged.fetch_add(1, Ordering::Relaxed);
                return Push::Queued;
            }
            return Push::Refused(Box::new(s), Refusal::Full);
        }
        let seq = st.next;
        st.next += 1;
        st.latest.insert(key, seq);
        st.items.push_back((seq, s));
        drop(st);
        self.notify.notify_one();
        Push::Queued
    }

    /// The next settlements to send, oldest first (at most `max`), once there
    /// are any; `None` once the queue is closed and empty. They count as in
    /// flight until [`SettleQueue::sent`].
    pub(super) async fn next_batch(&self, max: usize) -> Option<Vec<Charge>> {
        loop {
            {
                let mut st = self.state();
                if !st.items.is_empty() {
                    let n = st.items.len().min(max);
                    let mut batch = Vec::with_capacity(n);
                    for _ in 0..n {
                        let Some((seq, s)) = st.items.pop_front() else {
                            break;
                        };
                        let key = pair(&s);
                        if st.latest.get(&key) == Some(&seq) {
                            st.latest.remove(&key);
                        }
                        batch.push(s);
                    }
                    st.in_flight = batch.len();
                    return Some(batch);
                }
                if st.closed {
                    return None;
                }
            }
            // `notify_one` keeps a permit when nobody waits, so a push between
            // the check above and this wait is not missed.
            self.notify.notified().await;
        }
    }

    /// The batch last taken is finished (sent, or applied elsewhere).
    pub(super) fn sent(&self) {
        self.state().in_flight = 0;
    }

    /// Refuses everything from now on and wakes the sender: once the queue is
    /// empty [`SettleQueue::next_batch`] gives `None`.
    pub(super) fn close(&self) {
        self.state().closed = true;
        self.notify.notify_one();
    }

    /// Charges queued or being sent.
    pub(super) fn pending(&self) -> u64 {
        let st = self.state();
        (st.items.len() + st.in_flight) as u64
    }

    /// Charges folded into a queued one because the queue was full.
    pub(super) fn merged(&self) -> u64 {
        self.merged.load(Ordering::Relaxed)
    }
}

/// Folds `later` into `queued` (same subjects): requests and tokens add up,
/// the later time and the limits then in force win.
fn fold(queued: &mut Charge, later: Charge) {
    queued.requests += later.requests;
    queued.tokens += later.tokens;
    if later.now_ms >= queued.now_ms {
        queued.now_ms = later.now_ms;
        queued.subjects = later.subjects;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::Scope;

    fn settlement(account: u8, cluster: Option<u8>, now_ms: u64, delta: f64) -> Charge {
        let subject = |scope, k| Subject {
            scope,
            key: [k; 16],
            group: None,
            limits: [None; 4],
        };
        Charge::from(Settlement {
            now_ms,
            account: subject(Scope::Account, account),
            cluster: cluster.map(|c| subject(Scope::Cluster, c)),
            account_group: None,
            cluster_group: None,
            token_delta: delta,
        })
    }

    #[tokio::test]
    async fn below_capacity_everything_is_sent_in_order() {
        let q = SettleQueue::new(8);
        for i in 0..5 {
            assert!(matches!(
                q.push(settlement(1, Some(9), i, i as f64)),
                Push::Queued
            ));
        }
        assert_eq!(q.pending(), 5);
        let batch = q.next_batch(3).await.expect("batch");
        let times: Vec<u64> = batch.iter().map(|s| s.now_ms).collect();
        assert_eq!(times, [0, 1, 2], "oldest first, nothing folded");
        assert_eq!(q.pending(), 5, "the batch is in flight");
        q.sent();
        let rest = q.next_batch(10).await.expect("rest");
        assert_eq!(rest.len(), 2);
        q.sent();
        assert_eq!((q.pending(), q.merged()), (0, 0));
    }

    #[tokio::test]
    async fn when_full_the_same_subjects_fold_and_others_are_refused() {
        let q = SettleQueue::new(3);
        q.push(settlement(1, Some(9), 10, -100.0));
        q.push(settlement(2, None, 11, 5.0));
        q.push(settlement(1, Some(9), 12, -50.0));
        // Full: account 1 in cluster 9 folds into its latest settlement.
        assert!(matches!(
            q.push(settlement(1, Some(9), 13, 20.0)),
            Push::Queued
        ));
        assert_eq!(q.merged(), 1);
        // Account 1 alone is another pair, account 3 is new: refused.
        for s in [settlement(1, None, 14, 1.0), settlement(3, None, 14, 1.0)] {
            assert!(matches!(q.push(s), Push::Refused(_, Refusal::Full)));
        }
        let batch = q.next_batch(10).await.expect("batch");
        let got: Vec<(u64, f64)> = batch.iter().map(|s| (s.now_ms, s.tokens)).collect();
        assert_eq!(got, [(10, -100.0), (11, 5.0), (13, -30.0)]);
        q.sent();
        // Taken from the queue, a pair no longer folds into what was sent.
        assert!(matches!(
            q.push(settlement(1, Some(9), 20, 1.0)),
            Push::Queued
        ));
        assert_eq!(q.next_batch(10).await.expect("one").len(), 1);
    }

    #[tokio::test]
    async fn a_closed_queue_drains_then_ends() {
        let q = SettleQueue::new(4);
        q.push(settlement(1, None, 1, 1.0));
        q.close();
        assert!(matches!(
            q.push(settlement(2, None, 2, 1.0)),
            Push::Refused(_, Refusal::Closed)
        ));
        assert_eq!(q.next_batch(10).await.expect("queued").len(), 1);
        q.sent();
        assert!(q.next_batch(10).await.is_none());
    }
}
