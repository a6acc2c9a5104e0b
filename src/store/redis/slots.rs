//! Admissions on a Redis Cluster, where a script may only touch keys of one
//! slot.
//!
//! A subject's key has its id as hash tag (see `keys`), so an account alone,
//! with its model group's buckets, or with the cluster it founded (a
//! cluster's id is its oldest account's), lives in one slot: that admission
//! is one call of the admit script, atomic, exactly as with a single Redis.
//! An account whose cluster lives in another slot is admitted in two parts,
//! one call per slot (the account with its group's buckets, the cluster with
//! its), sent together: each part checks and charges its own buckets
//! atomically, and the admission is granted when every part is; when one part
//! refuses (or fails), the others' charges are given back (a charge of minus
//! one request and minus the reserved tokens, through the settlement queue).
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

use super::call::{Call, Pending};
use super::inner::Inner;
use super::script::{self, AdmitReply, State};
use super::settle_queue::Charge;
use crate::store::{StoreError, Subject};

/// One call of a slot's script: an admission, or the part of it whose
/// subjects live in that slot.
struct Part<'a> {
    admission: &'a Pending,
    /// The positions (in `admission.subjects`) of the subjects it checks.
    of: Vec<usize>,
}

impl Call for Part<'_> {
    fn amounts(&self) -> (u64, f64, f64) {
        self.admission.amounts()
    }

    fn subjects(&self) -> impl Iterator<Item = &Subject> {
        self.of
            .iter()
            .filter_map(|&i| self.admission.subjects.get(i))
    }
}

/// What came back for one part of an admission: its subjects' positions and
/// the reply.
type PartReply = (Vec<usize>, Result<AdmitReply, StoreError>);

impl Inner {
    pub(super) fn slot_of(&self, subject: &Subject) -> Slot {
        let mut key = Vec::with_capacity(self.keys.len() + 16);
        self.keys.push(subject, &mut key);
        Slot::for_key(key)
    }

    /// The positions of `subjects` grouped by slot, in order of first
    /// appearance.
    fn by_slot(&self, subjects: &[Subject]) -> Vec<(Slot, Vec<usize>)> {
        let mut out: Vec<(Slot, Vec<usize>)> = Vec::with_capacity(2);
        for (i, s) in subjects.iter().enumerate() {
            let slot = self.slot_of(s);
            match out.iter_mut().find(|(x, _)| *x == slot) {
                Some((_, v)) => v.push(i),
                None => out.push((slot, vec![i])),
            }
        }
        out
    }

    /// `charge` as one charge per slot of its subjects (itself alone unless
    /// on a Redis Cluster with subjects in several slots).
    pub(super) fn per_slot(&self, charge: Charge) -> Vec<Charge> {
        if !self.keys.tagged() {
            return vec![charge];
        }
        let groups = self.by_slot(&charge.subjects);
        if groups.len() <= 1 {
            return vec![charge];
        }
        groups
            .into_iter()
            .map(|(_, of)| Charge {
                subjects: of.iter().map(|&i| charge.subjects[i].clone()).collect(),
                ..charge.clone()
            })
            .collect()
    }

    /// Runs `batch` on a Redis Cluster: one script call per slot, all sent at
    /// once; an admission whose subjects live in several slots is admitted in
    /// parts, the granted parts refunded when another is refused or fails.
    pub(super) async fn admit_batch_on_slots(self: &Arc<Self>, batch: Vec<Pending>) {
        // Calls per slot, as (admission, its subjects there), in queue order.
        let mut groups: HashMap<Slot, Vec<(usize, Vec<usize>)>> = HashMap::new();
        let mut parts_of = vec![0usize; batch.len()];
        for (i, p) in batch.iter().enumerate() {
            let slots = self.by_slot(&p.subjects);
            parts_of[i] = slots.len();
            for (slot, of) in slots {
                groups.entry(slot).or_default().push((i, of));
            }
        }
        let mut calls = tokio::task::JoinSet::new();
        for (_, parts) in groups {
            let call: Vec<Part<'_>> = parts
                .iter()
                .map(|(i, of)| Part {
                    admission: &batch[*i],
                    of: of.clone(),
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
        let mut replies: Vec<Vec<PartReply>> = (0..batch.len()).map(|_| Vec::new()).collect();
        while let Some(done) = calls.join_next().await {
            let (parts, result) = match done {
                Ok(r) => r,
                // A call's task panicked or was cancelled: its admissions get no
                // reply and fail as `Stopped`; nothing they charged is known.
                Err(_) => continue,
            };
            let each: Vec<Result<AdmitReply, StoreError>> = match result {
                Ok(rs) => rs.into_iter().map(Ok).collect(),
                Err(e) => parts.iter().map(|_| Err(e.clone())).collect(),
            };
            for ((i, of), r) in parts.into_iter().zip(each) {
                replies[i].push((of, r));
            }
        }
        for ((p, r), n) in batch.into_iter().zip(replies).zip(parts_of) {
            let reply = self.combine(&p, r, n);
            let _ = p.reply.send(reply);
        }
    }

    /// One admission's reply from its `expected` parts (one part: its whole
    /// reply); parts that were granted while another was refused or failed
    /// are given back.
    fn combine(
        &self,
        p: &Pending,
        parts: Vec<PartReply>,
        expected: usize,
    ) -> Result<AdmitReply, StoreError> {
        let granted = |x: &Result<AdmitReply, StoreError>| x.as_ref().is_ok_and(|a| a.admitted);
        let complete = parts.len() == expected;
        let all_granted = complete && parts.iter().all(|(_, r)| granted(r));
        if !all_granted {
            // Refused, failed or missing somewhere: give back what a part charged.
            for (of, r) in &parts {
                if granted(r) && expected > 1 {
                    self.queue_charge(Charge {
                        now_ms: p.now_ms,
                        subjects: of.iter().map(|&i| p.subjects[i].clone()).collect(),
                        requests: -p.requests,
                        tokens: -p.tokens,
                    });
                }
            }
        }
        if expected == 1 {
            // A call whose task died gave no reply.
            return parts
                .into_iter()
                .next()
                .map_or(Err(StoreError::Stopped), |(_, r)| r);
        }
        if !complete {
            return Err(StoreError::Stopped);
        }
        let mut states: Vec<Option<State>> = vec![None; p.subjects.len()];
        for (of, r) in parts {
            let r = r?;
            if r.states.len() != of.len() {
                return Err(StoreError::unavailable(script::ReplyError::Empty));
            }
            for (&i, mut st) in of.iter().zip(r.states) {
                if r.admitted && !all_granted {
                    // The state before this admission: a granted part's state
                    // holds its charge (given back above).
                    if let Some(subject) = p.subjects.get(i) {
                        uncharge(&mut st, subject, p.requests, p.tokens);
                    }
                }
                if let Some(slot) = states.get_mut(i) {
                    *slot = Some(st);
                }
            }
        }
        let states: Option<Vec<State>> = states.into_iter().collect();
        let Some(states) = states else {
            return Err(StoreError::unavailable(script::ReplyError::Empty));
        };
        Ok(AdmitReply {
            admitted: all_granted,
            states,
        })
    }
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
            let Some(first) = c.subjects.first() else {
                continue;
            };
            groups.entry(self.slot_of(first)).or_default().push(c);
        }
        let mut calls = tokio::task::JoinSet::new();
        for (_, group) in groups {
            let inner = self.clone();
            calls.spawn(async move { inner.settle_group(&group).await });
        }
        while calls.join_next().await.is_some() {}
    }
}
