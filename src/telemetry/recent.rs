//! A bounded memory of recent decisions: explain a decision by request id, chart
//! decisions over time, list the busiest accounts and clusters.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::dialect::Dialect;
use crate::extensions::{AccountId, Action, ClusterId, Decision};
use crate::request::request_id_bits;

/// Chart series, in order: the five actions of admitted requests, then
/// rate-limited (429) and other refusals (400, 503).
pub const SERIES: [&str; 7] = [
    "allow",
    "tag",
    "throttle",
    "degrade",
    "block",
    "rate_limited",
    "error",
];

/// Seconds of per-second history kept for the chart.
pub const TIMELINE_SECONDS: usize = 300;

fn series_of(d: &Decision) -> usize {
    match d.status {
        429 => 5,
        403 => 4,
        s if s >= 400 => 6,
        _ => d.action as usize,
    }
}

/// One remembered decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    /// Milliseconds since the Unix epoch (the guard's clock).
    pub at_ms: u64,
    /// The request path's dialect.
    pub dialect: &'static str,
    /// The decision.
    #[serde(flatten)]
    pub decision: Arc<Decision>,
}

/// Per-second counts of one series set.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tick {
    /// Unix second.
    pub second: u64,
    /// Counts per [`SERIES`] entry.
    pub counts: [u64; SERIES.len()],
}

/// An account seen in recent decisions.
#[derive(Debug, Clone, Serialize)]
pub struct AccountSummary {
    /// The account hash.
    pub account: AccountId,
    /// Its cluster in the latest decision.
    pub cluster: ClusterId,
    /// That cluster's size.
    pub cluster_size: u32,
    /// Its tier in the latest decision.
    pub tier: Arc<str>,
    /// Decisions remembered.
    pub requests: u64,
    /// Of which refused (status ≥ 400).
    pub refused: u64,
    /// Highest suspicion seen.
    pub max_suspicion: f64,
    /// Action of the latest decision.
    pub last_action: Action,
    /// Status of the latest decision.
    pub last_status: u16,
    /// When the latest decision was made.
    pub last_at_ms: u64,
}

/// A cluster seen in recent decisions.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSummary {
    /// The cluster id.
    pub cluster: ClusterId,
    /// Largest member count reported.
    pub size: u32,
    /// Highest suspicion seen.
    pub max_suspicion: f64,
    /// Decisions remembered.
    pub requests: u64,
    /// Of which refused.
    pub refused: u64,
    /// Distinct member accounts seen (at most 20 listed).
    pub accounts_seen: Vec<AccountId>,
    /// The strongest reasons seen, largest first.
    pub top_signals: Vec<crate::extensions::Reason>,
}

#[derive(Debug)]
struct Inner {
    seq: u64,
    ring: VecDeque<(u64, DecisionRecord)>,
    /// By [`request_id_bits`]: the id as written, its other UUID spelling and the
    /// request id a provenance tag carries all find the decision.
    by_id: HashMap<[u8; 16], u64>,
    ticks: VecDeque<Tick>,
}

/// Recent decisions, bounded in count.
#[derive(Debug)]
pub struct Recent {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Recent {
    /// Remembers at most `capacity` decisions (0 keeps only the chart).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner {
                seq: 0,
                ring: VecDeque::with_capacity(capacity.min(65_536)),
                by_id: HashMap::new(),
                ticks: VecDeque::with_capacity(TIMELINE_SECONDS),
            }),
        }
    }

    /// How many decisions are remembered now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ring
            .len()
    }

    /// True when no decision is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many decisions are remembered at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Remembers a decision made at `at_ms`.
    pub fn push(&self, at_ms: u64, dialect: Dialect, decision: Arc<Decision>) {
        let second = at_ms / 1000;
        let series = series_of(&decision);
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match g.ticks.back_mut() {
            Some(t) if t.second == second => t.counts[series] += 1,
            // A clock that went backwards counts into the latest second.
            Some(t) if t.second > second => t.counts[series] += 1,
            _ => {
                let mut counts = [0; SERIES.len()];
                counts[series] = 1;
                g.ticks.push_back(Tick { second, counts });
                while g.ticks.len() > TIMELINE_SECONDS
                    || g.ticks
                        .front()
                        .is_some_and(|t| t.second + (TIMELINE_SECONDS as u64) <= second)
                {
                    g.ticks.pop_front();
                }
            }
        }
        if self.capacity == 0 {
            return;
        }
        g.seq += 1;
        let seq = g.seq;
        if let Some(id) = &decision.request_id {
            g.by_id.insert(request_id_bits(id), seq);
        }
        g.ring.push_back((
            seq,
            DecisionRecord {
                at_ms,
                dialect: dialect.as_str(),
                decision,
            },
        ));
        while g.ring.len() > self.capacity {
            if let Some((old, rec)) = g.ring.pop_front() {
                if let Some(id) = &rec.decision.request_id {
                    let key = request_id_bits(id);
                    if g.by_id.get(&key) == Some(&old) {
                        g.by_id.remove(&key);
                    }
                }
            }
        }
    }

    /// The decision taken for `request_id` (as the response's `x-request-id` or a
    /// provenance tag's `request_id` gives it), if still remembered.
    pub fn find(&self, request_id: &str) -> Option<DecisionRecord> {
        let key = request_id_bits(request_id);
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = *g.by_id.get(&key)?;
        let front = g.ring.front()?.0;
        let idx = usize::try_from(seq.checked_sub(front)?).ok()?;
        g.ring.get(idx).map(|(_, r)| r.clone())
    }

    /// Distinct accounts of remembered decisions whose id starts with the hex
    /// digits `prefix`, newest first, at most `limit`.
    pub fn accounts_with_prefix(&self, prefix: &str, limit: usize) -> Vec<AccountId> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<AccountId> = Vec::new();
        for (_, r) in g.ring.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let a = r.decision.account;
            if a.starts_with_hex(prefix) && !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// The latest `n` decisions of `account`, newest first.
    pub fn of_account(&self, account: &AccountId, n: usize) -> Vec<DecisionRecord> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.ring
            .iter()
            .rev()
            .filter(|(_, r)| r.decision.account == *account)
            .take(n)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The latest `n` decisions, newest first.
    pub fn latest(&self, n: usize) -> Vec<DecisionRecord> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.ring
            .iter()
            .rev()
            .take(n)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Per-second counts for the chart, oldest first.
    pub fn timeline(&self) -> Vec<Tick> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.ticks.iter().copied().collect()
    }

    /// The `n` accounts with the most remembered decisions, and the `n` clusters
    /// (largest first, then most suspicious).
    pub fn top(&self, n: usize) -> (Vec<AccountSummary>, Vec<ClusterSummary>) {
        let records: Vec<DecisionRecord> = {
            let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            g.ring.iter().map(|(_, r)| r.clone()).collect()
        };
        let mut accounts: HashMap<AccountId, AccountSummary> = HashMap::new();
        let mut clusters: HashMap<ClusterId, ClusterSummary> = HashMap::new();
        for r in &records {
            let d = &r.decision;
            let refused = u64::from(d.status >= 400);
            let a = accounts.entry(d.account).or_insert_with(|| AccountSummary {
                account: d.account,
                cluster: d.cluster.id,
                cluster_size: d.cluster.size,
                tier: d.tier.clone(),
                requests: 0,
                refused: 0,
                max_suspicion: 0.0,
                last_action: d.action,
                last_status: d.status,
                last_at_ms: r.at_ms,
            });
            a.requests += 1;
            a.refused += refused;
            a.max_suspicion = a.max_suspicion.max(d.suspicion);
            a.cluster = d.cluster.id;
            a.cluster_size = d.cluster.size;
            a.tier = d.tier.clone();
            a.last_action = d.action;
            a.last_status = d.status;
            a.last_at_ms = r.at_ms;
            let c = clusters
                .entry(d.cluster.id)
                .or_insert_with(|| ClusterSummary {
                    cluster: d.cluster.id,
                    size: d.cluster.size,
                    max_suspicion: 0.0,
                    requests: 0,
                    refused: 0,
                    accounts_seen: Vec::new(),
                    top_signals: Vec::new(),
                });
            c.size = c.size.max(d.cluster.size);
            c.requests += 1;
            c.refused += refused;
            if d.suspicion >= c.max_suspicion {
                c.max_suspicion = d.suspicion;
                if !d.reasons.is_empty() {
                    c.top_signals = d.reasons.iter().take(5).cloned().collect();
                }
            }
            if c.accounts_seen.len() < 20 && !c.accounts_seen.contains(&d.account) {
                c.accounts_seen.push(d.account);
            }
        }
        let mut accounts: Vec<_> = accounts.into_values().collect();
        accounts.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then(b.refused.cmp(&a.refused))
                .then(a.account.cmp(&b.account))
        });
        accounts.truncate(n);
        let mut clusters: Vec<_> = clusters.into_values().collect();
        clusters.sort_by(|a, b| {
            b.size
                .cmp(&a.size)
                .then(b.max_suspicion.total_cmp(&a.max_suspicion))
                .then(b.requests.cmp(&a.requests))
                .then(a.cluster.cmp(&b.cluster))
        });
        clusters.truncate(n);
        (accounts, clusters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::Cluster;

    fn decision(account: u8, id: &str, status: u16) -> Arc<Decision> {
        let account = AccountId([account; 16]);
        Arc::new(Decision {
            request_id: Some(id.into()),
            account,
            cluster: Cluster::singleton(account),
            suspicion: 0.0,
            action: Action::Allow,
            status,
            limited_by: None,
            shadowed: false,
            reserved_tokens: 10,
            tier: "default".into(),
            model_group: None,
            limited_in_group: false,
            reasons: vec![],
        })
    }

    #[test]
    fn ring_is_bounded_and_finds_by_request_id() {
        let r = Recent::new(3);
        for i in 0..5u8 {
            r.push(
                1_000 + u64::from(i),
                Dialect::OpenAi,
                decision(i, &format!("req-{i}"), 200),
            );
        }
        assert!(r.find("req-0").is_none(), "evicted");
        assert!(r.find("req-1").is_none(), "evicted");
        let found = r.find("req-3").expect("remembered");
        assert_eq!(found.decision.account, AccountId([3; 16]));
        assert_eq!(r.latest(10).len(), 3);
        let t = r.timeline();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].counts[0], 5);
    }

    #[test]
    fn a_reused_request_id_points_at_the_newest() {
        let r = Recent::new(4);
        r.push(1, Dialect::OpenAi, decision(1, "same", 200));
        r.push(2, Dialect::OpenAi, decision(2, "same", 429));
        assert_eq!(r.find("same").expect("found").decision.status, 429);
        for i in 0..4u8 {
            r.push(3, Dialect::OpenAi, decision(9, &format!("x{i}"), 200));
        }
        assert!(r.find("same").is_none());
    }

    #[test]
    fn a_uuid_is_found_in_either_spelling() {
        let r = Recent::new(4);
        let id = "0b6e41a2-9c1d-4f7e-8a3b-5d2c1e0f9a87";
        r.push(1, Dialect::OpenAi, decision(1, id, 200));
        assert!(r.find(id).is_some());
        assert!(r.find("0b6e41a29c1d4f7e8a3b5d2c1e0f9a87").is_some());
        assert!(r.find("0b6e41a29c1d4f7e8a3b5d2c1e0f9a88").is_none());
    }

    #[test]
    fn timeline_keeps_five_minutes() {
        let r = Recent::new(0);
        for s in 0..400u64 {
            r.push(s * 1000, Dialect::Anthropic, decision(1, "a", 429));
        }
        let t = r.timeline();
        assert_eq!(t.len(), TIMELINE_SECONDS);
        assert_eq!(t.last().expect("tick").second, 399);
        assert_eq!(t[0].counts[5], 1);
    }

    #[test]
    fn top_accounts_by_requests() {
        let r = Recent::new(100);
        for i in 0..10 {
            r.push(i, Dialect::OpenAi, decision(1, &format!("a{i}"), 200));
        }
        r.push(20, Dialect::OpenAi, decision(2, "b", 429));
        let (accounts, clusters) = r.top(5);
        assert_eq!(accounts[0].account, AccountId([1; 16]));
        assert_eq!(accounts[0].requests, 10);
        assert_eq!(accounts[1].refused, 1);
        assert_eq!(clusters.len(), 2);
    }
}
