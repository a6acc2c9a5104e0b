//! Admissions on a Redis Cluster, where a script may only touch keys of one
//! slot.
//!
//! A subject's key has its id as hash tag (see `keys`), so an account alone,
//! or an account with the cluster it founded (a cluster's id is its oldest
//! account's), lives in one slot: that admission is one call of the admit
//! script, atomic, exactly as with a single Redis. An account whose cluster
//! lives in another slot is admitted in two halves, one call per slot, sent
//! together: each half checks and charges its own buckets atomically, and the
//! admission is granted when both halves are; when one half refuses (or
//! fails), the other half's charge is given back (a charge of minus one
//! request and minus the reserved tokens, through the settlement queue).
//!
//! No bucket ever holds more than its capacity: each half is checked
//! atomically against its own bucket, and a refund only lowers a level. What
//! the halves cost is the other way round: between a half's charge and its
//! refund, the charge occupies room that another request of the same subject
//! may be refused for (at most the admissions in flight at that moment).
//!
//! The admissions of a batch are grouped by slot, one script call per slot,
//! all sent at once (the cluster client sends each to the slot's primary).

use std::collections::HashMap;
use std::sync::Arc;

use ::redis::cluster_routing::Slot;

use super::batch::{Call, Pending};
use super::script::{self, AdmitReply, State};
use super::settle_queue::Charge;
use super::Inner;
use crate::store::{StoreError, Subject};

/// Which buckets of an admission a call checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    /// The account's and (if any) its cluster's: one slot holds them all.
    Whole,
    /// The account's alone.
    Account,
    /// The cluster's alone.
    Cluster,
}

/// One call of a slot's script: an admission, or one half of it.
struct Part<'a> {
    admission: &'a Pending,
    half: Half,
}

impl Call for Part<'_> {
    fn parts(&self) -> (u64, f64, f64, &Subject, Option<&Subject>) {
        let p = self.admission;
        let (first, second) = match (self.half, &p.cluster) {
            (Half::Whole, cluster) => (&p.account, cluster.as_ref()),
            (Half::Account, _) | (Half::Cluster, None) => (&p.account, None),
            (Half::Cluster, Some(c)) => (c, None),
        };
        (p.now_ms, p.requests, p.tokens, first, second)
    }
}

/// What came back for one admission.
#[derive(Default)]
struct Replies {
    whole: Option<Result<AdmitReply, StoreError>>,
    account: Option<Result<AdmitReply, StoreError>>,
    cluster: Option<Result<AdmitReply, StoreError>>,
}

impl Inner {
    pub(super) fn slot_of(&self, subject: &Subject) -> Slot {
        let mut key = Vec::with_capacity(self.keys.len());
        self.keys.push(subject, &mut key);
        Slot::for_key(key)
    }

    /// Runs `batch` on a Redis Cluster: one script call per slot, all sent at
    /// once; an admission whose account and cluster live in different slots
    /// is admitted in two halves, the granted half refunded when the other is
    /// refused or fails.
    pub(super) async fn admit_batch_on_slots(self: &Arc<Self>, batch: Vec<Pending>) {
        // Calls per slot, as (admission, half), in queue order.
        let mut groups: HashMap<Slot, Vec<(usize, Half)>> = HashMap::new();
        for (i, p) in batch.iter().enumerate() {
            let account = self.slot_of(&p.account);
            match &p.cluster {
                Some(c) if self.slot_of(c) != account => {
                    groups.entry(account).or_default().push((i, Half::Account));
                    groups
                        .entry(self.slot_of(c))
                        .or_default()
                        .push((i, Half::Cluster));
                }
                _ => groups.entry(account).or_default().push((i, Half::Whole)),
            }
        }
        let mut calls = tokio::task::JoinSet::new();
        for (_, parts) in groups {
            let call: Vec<Part<'_>> = parts
                .iter()
                .map(|&(i, half)| Part {
                    admission: &batch[i],
                    half,
                })
                .collect();
            let (cmd, counts) = self.batch_cmd(&self.admit, &call);
            let inner = self.clone();
            calls.spawn(async move {
                let replies = inner
                    .run(&inner.admit, &cmd)
                    .await
                    .and_then(|v| script::parse_admit_many(&v, &counts).map_err(StoreError::from));
                (parts, replies)
            });
        }
        let mut replies: Vec<Replies> = (0..batch.len()).map(|_| Replies::default()).collect();
        while let Some(done) = calls.join_next().await {
            let (parts, result) = match done {
                Ok(r) => r,
                // A call's task panicked or was cancelled: its admissions get no
                // reply and fail as `Stopped`; nothing they charged is known.
                Err(_) => continue,
            };
            let mut each: Vec<Result<AdmitReply, StoreError>> = match result {
                Ok(rs) => rs.into_iter().map(Ok).collect(),
                Err(e) => parts.iter().map(|_| Err(e.clone())).collect(),
            };
            for (&(i, half), r) in parts.iter().zip(each.drain(..)) {
                let slot = &mut replies[i];
                match half {
                    Half::Whole => slot.whole = Some(r),
                    Half::Account => slot.account = Some(r),
                    Half::Cluster => slot.cluster = Some(r),
                }
            }
        }
        for (p, r) in batch.into_iter().zip(replies) {
            let reply = self.combine(&p, r);
            let _ = p.reply.send(reply);
        }
    }

    /// One admission's reply from its call or its two halves; a half that was
    /// granted while the other was refused or failed is given back.
    fn combine(&self, p: &Pending, r: Replies) -> Result<AdmitReply, StoreError> {
        // A call whose task died gave no reply.
        let missing = || Err(StoreError::Stopped);
        let Some(cluster) = &p.cluster else {
            return r.whole.unwrap_or_else(missing);
        };
        if r.account.is_none() && r.cluster.is_none() {
            return r.whole.unwrap_or_else(missing);
        }
        let account = r.account.unwrap_or_else(missing);
        let cluster_half = r.cluster.unwrap_or_else(missing);
        let granted = |x: &Result<AdmitReply, StoreError>| x.as_ref().is_ok_and(|a| a.admitted);
        if !(granted(&account) && granted(&cluster_half)) {
            // Refused or failed somewhere: give back what a half charged.
            for (half, subject) in [(&account, &p.account), (&cluster_half, cluster)] {
                if granted(half) {
                    self.queue_charge(Charge {
                        now_ms: p.now_ms,
                        first: subject.clone(),
                        second: None,
                        requests: -p.requests,
                        tokens: -p.tokens,
                    });
                }
            }
        }
        let (a, c) = (account?, cluster_half?);
        let (Some(mut sa), Some(mut sc)) = (first_state(&a), first_state(&c)) else {
            return Err(StoreError::unavailable(script::ReplyError::Empty));
        };
        let admitted = a.admitted && c.admitted;
        if !admitted {
            // The states before this admission: a granted half's state holds
            // its charge (given back above).
            if a.admitted {
                uncharge(&mut sa, &p.account, p.requests, p.tokens);
            }
            if c.admitted {
                uncharge(&mut sc, cluster, p.requests, p.tokens);
            }
        }
        Ok(AdmitReply {
            admitted,
            states: vec![sa, sc],
        })
    }
}

fn first_state(reply: &AdmitReply) -> Option<State> {
    reply.states.first().copied()
}

/// `state` as it was before an admission of `requests` and `tokens` charged it.
fn uncharge(state: &mut State, subject: &Subject, requests: f64, tokens: f64) {
    let costs = [requests, requests, tokens, tokens];
    for ((level, limit), cost) in state.levels.iter_mut().zip(&subject.limits).zip(costs) {
        if limit.is_some() {
            *level = (*level - cost).max(0.0);
        }
    }
}

impl Inner {
    /// Applies `batch` (charges of one slot each, see `queue_charge`) on a
    /// Redis Cluster: one call per slot, all sent at once, each retried once
    /// and else applied in the in-process store.
    pub(super) async fn settle_on_slots(self: &Arc<Self>, batch: Vec<Charge>) {
        let mut groups: HashMap<Slot, Vec<Charge>> = HashMap::new();
        for c in batch {
            groups.entry(self.slot_of(&c.first)).or_default().push(c);
        }
        let mut calls = tokio::task::JoinSet::new();
        for (_, group) in groups {
            let inner = self.clone();
            calls.spawn(async move { inner.settle_group(&group).await });
        }
        while calls.join_next().await.is_some() {}
    }
}
