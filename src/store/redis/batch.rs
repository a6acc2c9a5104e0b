//! Batching: admissions in flight together go to Redis as one script call,
//! and so do settlements; each admission still gets exactly the outcome it
//! would have alone.

use std::sync::{Arc, Weak};

use ::redis::{Cmd, Script};
use tokio::sync::{mpsc, Semaphore};

use super::call::{Call, Pending};
use super::inner::Inner;
use super::script;
use super::settle_queue::SettleQueue;
use crate::store::memory::MAX_IDLE_MS;
use crate::store::StoreError;

/// Extra lifetime of a key after its buckets have drained.
const TTL_SLACK_MS: u64 = 1_000;

impl Inner {
    /// The `EVALSHA` of `script` over `batch`: every call's keys (in the order
    /// of its subjects), then every call's packed arguments. Built straight
    /// into the command's buffer; the subject counts per call.
    pub(super) fn batch_cmd<C: Call>(&self, script: &Script, batch: &[C]) -> (Cmd, Vec<usize>) {
        let counts: Vec<usize> = batch.iter().map(|c| c.subjects().count()).collect();
        let keys: usize = counts.iter().sum();
        let key_len = self.keys.len() + 16;
        let mut cmd = Cmd::with_capacity(
            3 + keys + batch.len(),
            64 + keys * key_len + batch.len() * script::ARGS_BYTES_MAX,
        );
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
        let mut buf = Vec::with_capacity(key_len.max(script::ARGS_BYTES_MAX));
        for c in batch {
            for subject in c.subjects() {
                buf.clear();
                self.keys.push(subject, &mut buf);
                cmd.arg(buf.as_slice());
            }
        }
        for c in batch {
            let (now_ms, requests, tokens) = c.amounts();
            buf.clear();
            script::pack_args(
                &mut buf,
                now_ms,
                requests,
                tokens,
                MAX_IDLE_MS,
                TTL_SLACK_MS,
                c.subjects().map(|s| &s.limits),
            );
            cmd.arg(buf.as_slice());
        }
        (cmd, counts)
    }

    /// Runs `batch` with one script call, in order, and hands each admission its
    /// reply; on any error every admission of the batch gets it.
    pub(super) async fn admit_batch(self: &Arc<Self>, batch: Vec<Pending>) {
        if self.keys.tagged() {
            return self.admit_batch_on_slots(batch).await;
        }
        let (cmd, counts) = self.batch_cmd(&self.admit, &batch);
        let replies = self
            .run(&self.admit, &cmd)
            .await
            .and_then(|v| script::parse_admit_many(&v, &counts).map_err(StoreError::from));
        match replies {
            Ok(replies) => {
                for (p, r) in batch.into_iter().zip(replies) {
                    let _ = p.reply.send(Ok(r));
                }
            }
            Err(e) => {
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Most settlements sent in one script call.
const SETTLE_BATCH: usize = 256;

/// Sends queued settlements to Redis, as many per call as have queued up while
/// the previous call was in flight. Ends when the store is dropped, after
/// sending what was queued.
pub(super) async fn settle_loop(inner: Weak<Inner>, queue: Arc<SettleQueue>) {
    while let Some(batch) = queue.next_batch(SETTLE_BATCH).await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.health.is_down() {
            inner.settle_locally(&batch);
        } else {
            inner.settle_or_fall_back(batch).await;
        }
        queue.sent();
    }
}

/// Gives back the leases that expired while nobody asked the store: every
/// lease period of wall time, the store's time estimated from the last
/// admission's time and the wall time since. Ends when the store is dropped.
pub(super) async fn lease_sweeper(inner: Weak<Inner>) {
    let period = std::time::Duration::from_millis(super::lease::PERIOD_MS);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = (0u64, tokio::time::Instant::now());
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let latest = inner.leases.latest_ms();
        if latest != seen.0 {
            seen = (latest, tokio::time::Instant::now());
        }
        let elapsed = u64::try_from(seen.1.elapsed().as_millis()).unwrap_or(u64::MAX);
        inner.sweep_leases(seen.0.saturating_add(elapsed));
    }
}

/// Most admissions sent in one script call (Redis runs a script without
/// interruption: 128 admissions keep it busy for about a millisecond).
const ADMIT_BATCH: usize = 128;
/// Most admission batches in flight at once: while Redis runs one, the next
/// is on its way, so Redis never waits for the client.
const ADMIT_IN_FLIGHT: usize = 2;

/// Sends queued admissions to Redis, as many per script call as have queued up
/// while the previous calls were in flight (up to [`ADMIT_BATCH`], in order;
/// admissions whose caller gave up are dropped unsent). Ends when the store is
/// dropped.
pub(super) async fn admit_loop(inner: Weak<Inner>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(ADMIT_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(ADMIT_BATCH);
        batch.push(first);
        while batch.len() < ADMIT_BATCH {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            inner.admit_batch(batch).await;
            drop(slot);
        });
    }
}
