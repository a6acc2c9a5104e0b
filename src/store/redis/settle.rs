//! The settlement path: settlements queued for the sending task, applied in
//! Redis (retried once), else in the in-process store.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ::redis::Value;

use super::connect::RedisCallError;
use super::inner::Inner;
use super::settle_queue::{Charge, Push, Refusal};
use crate::store::StoreError;

impl Inner {
    /// Queues `charge` for Redis; to the in-process store while Redis is down,
    /// when the queue is full (an overflow), or when the store is going away.
    /// On a Redis Cluster a charge whose subjects live in several slots is
    /// queued as one charge per slot.
    pub(super) fn queue_charge(&self, charge: Charge) {
        for c in self.per_slot(charge) {
            self.queue_one(c);
        }
    }

    pub(super) fn queue_one(&self, charge: Charge) {
        if self.health.is_down() {
            // The admission was most likely answered locally too.
            self.settle_locally(std::slice::from_ref(&charge));
            return;
        }
        match self.settlements.push(charge) {
            Push::Queued => {}
            Push::Refused(c, Refusal::Full) => {
                self.settle_overflow.fetch_add(1, Ordering::Relaxed);
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.charge_locally(&c);
            }
            Push::Refused(c, Refusal::Closed) => {
                self.settle_locally(std::slice::from_ref(&c));
            }
        }
    }

    /// Applies `batch` in Redis, in order, with one script call.
    pub(super) async fn settle_redis(&self, batch: &[Charge]) -> Result<(), StoreError> {
        let (cmd, _) = self.batch_cmd(&self.settle, batch);
        match self.run(&self.settle, &cmd).await? {
            Value::Int(n) if usize::try_from(n).ok() == Some(batch.len()) => Ok(()),
            _ => Err(RedisCallError::Reply("settle script: not one count for the batch").into()),
        }
    }

    /// Applies `batch` in Redis, retrying once, else in the in-process store;
    /// on a Redis Cluster one call per slot (see `slots`).
    pub(super) async fn settle_or_fall_back(self: &Arc<Self>, batch: Vec<Charge>) {
        if self.keys.tagged() {
            return self.settle_on_slots(batch).await;
        }
        self.settle_group(&batch).await;
    }

    /// Applies `batch` (one slot's) in Redis, retrying once, else in the
    /// in-process store.
    pub(super) async fn settle_group(&self, batch: &[Charge]) {
        let mut error = None;
        for _ in 0..2 {
            match self.settle_redis(batch).await {
                Ok(()) => {
                    self.health.succeeded();
                    self.settle_sent
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) => error = Some(e),
            }
        }
        if let Some(e) = error {
            self.health.failed(&e, self.on_error);
        }
        self.settle_locally(batch);
    }

    /// Applies `batch` in the in-process store (Redis down or failing).
    pub(super) fn settle_locally(&self, batch: &[Charge]) {
        self.settle_local
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for c in batch {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            self.charge_locally(c);
        }
    }

    pub(super) fn charge_locally(&self, c: &Charge) {
        self.local
            .charge_now(c.now_ms, &c.subjects, c.requests, c.tokens);
    }
}
