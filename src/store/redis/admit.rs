//! The admission path: the local copy of refused subjects could not answer,
//! so Redis does (batched), or the fallback while Redis is down; the leases an
//! admission earns.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::call::Pending;
use super::inner::Inner;
use super::script;
use crate::config::OnError;
use crate::extensions::Scope;
use crate::store::memory::{judge, Entry};
use crate::store::{Admission, Denial, Outcome, StoreError, Subject, Window};

impl Inner {
    /// An admission the local copy of refused subjects could not answer: to
    /// Redis unless it is down, else to the fallback (`on_error`).
    pub(super) async fn admit(self: &Arc<Self>, a: &Admission) -> Result<Outcome, StoreError> {
        let Some(_probe) = self.health.route() else {
            return self.fallback_admit(a, StoreError::Down);
        };
        match self.admit_redis(a).await {
            Ok(outcome) => {
                self.health.succeeded();
                if outcome.denied.is_none() {
                    self.take_leases(a);
                }
                Ok(outcome)
            }
            Err(e) => {
                self.health.failed(&e, self.on_error);
                self.fallback_admit(a, e)
            }
        }
    }

    /// Queues the admission for the batching task and waits for its reply, at
    /// most `timeout` in all (queueing included).
    pub(super) async fn admit_redis(&self, a: &Admission) -> Result<Outcome, StoreError> {
        let reply = self
            .charge_checked(a.now_ms, 1.0, a.tokens, a.subjects().cloned().collect())
            .await?;
        Ok(self.outcome_of(a, &reply))
    }

    /// Queues a checked charge (`requests` and `tokens` on the subjects, all or
    /// nothing: an admission, or a lease) for the batching task and waits for
    /// Redis' reply, at most `timeout` in all (queueing included).
    pub(super) async fn charge_checked(
        &self,
        now_ms: u64,
        requests: f64,
        tokens: f64,
        subjects: Vec<Subject>,
    ) -> Result<script::AdmitReply, StoreError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (reply, answer) = oneshot::channel();
        self.admissions
            .send(Pending {
                now_ms,
                requests,
                tokens,
                subjects,
                reply,
            })
            .map_err(|_| StoreError::Stopped)?;
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(StoreError::Timeout),
            // The batching task dropped it: it is stopping.
            Ok(Err(_)) => Err(StoreError::Stopped),
            Ok(Ok(reply)) => reply,
        }
    }

    /// The outcome Redis' reply means, computed with the embedded store's code on
    /// the levels Redis returned; refusals are remembered in the local cache.
    pub(super) fn outcome_of(&self, a: &Admission, reply: &script::AdmitReply) -> Outcome {
        let entry = |i: usize| {
            let s = reply.states.get(i).copied().unwrap_or(script::State {
                levels: [0.0; 4],
                last_ms: a.now_ms,
                idle_at_ms: 0,
            });
            Entry {
                levels: s.levels,
                last_ms: s.last_ms,
                idle_at_ms: s.idle_at_ms,
            }
        };
        let mut entries = [None; 4];
        for (i, subject) in a.subjects().enumerate() {
            entries[subject.row()] = Some(entry(i));
        }
        let (denied, views) = judge(a, &entries);
        if reply.admitted {
            self.cache.admitted(a);
            return Outcome {
                denied: None,
                views,
            };
        }
        let denial = denied.unwrap_or_else(|| {
            // Redis refused, yet the same arithmetic here admits: only possible if
            // the stored state changed shape under us. Refuse briefly.
            tracing::warn!("redis refused an admission the local arithmetic admits");
            Denial {
                scope: Scope::Account,
                model_group: false,
                window: Window::RequestsPerMinute,
                retry_after_ms: Some(1),
            }
        });
        let until_ms = a.now_ms.saturating_add(
            denial
                .retry_after_ms
                .unwrap_or_else(|| denial.window.window_ms()),
        );
        self.cache.refused(a, &entries, until_ms);
        Outcome {
            denied: Some(denial),
            views,
        }
    }

    pub(super) fn fallback_admit(
        &self,
        a: &Admission,
        error: StoreError,
    ) -> Result<Outcome, StoreError> {
        match self.on_error {
            OnError::FailOpen => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                Ok(self.local.admit_now(a))
            }
            OnError::FailClosed => Err(error),
        }
    }

    /// Redis admitted `a`: takes the leases its subjects' demand has earned
    /// (in the background) and gives back any taken under other limits.
    pub(super) fn take_leases(self: &Arc<Self>, a: &Admission) {
        let mut back = Vec::new();
        let wanted = self.leases.after_admission(a, &mut back);
        for charge in back {
            self.queue_charge(charge);
        }
        for w in wanted {
            let inner = self.clone();
            let now_ms = a.now_ms;
            tokio::spawn(async move {
                let reply = inner
                    .charge_checked(now_ms, w.requests, w.tokens, vec![w.subject.clone()])
                    .await;
                let state = match reply {
                    Ok(r) if r.admitted => r.states.first().copied(),
                    _ => None,
                };
                inner.leases.taken_or_refused(&w, now_ms, state);
            });
        }
    }

    /// Gives back what is left of the leases expired at `now_ms` (at most once
    /// a lease period).
    pub(super) fn sweep_leases(&self, now_ms: u64) {
        for charge in self.leases.sweep(now_ms, false) {
            self.queue_charge(charge);
        }
    }
}
