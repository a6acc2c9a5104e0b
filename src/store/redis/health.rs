//! Whether Redis is up, and who may probe it while it is not.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::OnError;
use crate::store::StoreError;

/// While Redis is down after a timeout, how often a request may probe it (a
/// probe of a Redis that does not answer costs the store's `timeout`).
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// While Redis is down after a fast failure (connection refused, an error
/// reply), how often a request may probe it: a probe then costs little, and
/// the sooner one succeeds, the fewer requests are answered in process once
/// Redis is back.
const PROBE_FAST: Duration = Duration::from_millis(10);

/// The store's view of Redis: up, or down since a failure, with one probe at a
/// time (at most every [`PROBE_EVERY`]) ending the outage on success.
pub(super) struct Health {
    epoch: Instant,
    down: AtomicBool,
    probing: AtomicBool,
    /// Milliseconds since `epoch` before which nobody probes.
    next_probe_ms: AtomicU64,
    outages: AtomicU64,
}

/// Releases the probe slot when the probing request ends, even if it is dropped.
pub(super) struct ProbeSlot<'a>(&'a Health);

impl Drop for ProbeSlot<'_> {
    fn drop(&mut self) {
        self.0.probing.store(false, Ordering::Release);
    }
}

impl Health {
    /// Up, with no outage yet.
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            next_probe_ms: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether the last call to Redis failed (an outage is in progress).
    pub(super) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Outages seen: times Redis went from answering to failing.
    pub(super) fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// `Some` when this call should go to Redis (with the probe slot if Redis is
    /// down), `None` when it should be answered without Redis.
    pub(super) fn route(&self) -> Option<Option<ProbeSlot<'_>>> {
        if !self.is_down() {
            return Some(None);
        }
        if self.elapsed_ms() < self.next_probe_ms.load(Ordering::Acquire) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Some(ProbeSlot(self)))
    }

    /// A call to Redis answered: an outage, if any, ends.
    pub(super) fn succeeded(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("redis quota store is reachable again; shared limits are back");
        }
    }

    /// A call to Redis failed: an outage begins (logged once) or goes on.
    pub(super) fn failed(&self, error: &StoreError, on_error: OnError) {
        let wait = probe_wait(error);
        self.next_probe_ms.store(
            self.elapsed_ms() + wait.as_millis() as u64,
            Ordering::Release,
        );
        if !self.down.swap(true, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            let mode = match on_error {
                OnError::FailOpen => "fail_open: enforcing per-replica limits in memory",
                OnError::FailClosed => "fail_closed: refusing requests with 503",
            };
            tracing::warn!(%error, mode, "redis quota store unavailable");
        }
    }
}

/// How long after `error` the next probe may go: longer after a timeout.
fn probe_wait(error: &StoreError) -> Duration {
    match error {
        StoreError::Timeout => PROBE_EVERY,
        _ => PROBE_FAST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn while_down_one_request_at_a_time_probes() {
        let h = Health::new();
        assert!(
            matches!(h.route(), Some(None)),
            "up: every call goes to Redis"
        );
        h.failed(&StoreError::Timeout, OnError::FailOpen);
        h.failed(&StoreError::Timeout, OnError::FailOpen);
        assert_eq!(h.outages(), 1, "one outage, not two");
        assert_eq!(probe_wait(&StoreError::Timeout), PROBE_EVERY);
        assert_eq!(probe_wait(&StoreError::Stopped), PROBE_FAST);
        assert!(PROBE_FAST < PROBE_EVERY, "a fast failure is probed sooner");
        assert!(h.route().is_none(), "no probe before the interval");
        h.next_probe_ms.store(0, Ordering::Release);
        let probe = h.route().expect("probe allowed");
        assert!(probe.is_some());
        assert!(h.route().is_none(), "a second concurrent probe is refused");
        drop(probe);
        assert!(matches!(h.route(), Some(Some(_))), "slot released on drop");
        h.succeeded();
        assert!(matches!(h.route(), Some(None)));
        assert!(!h.is_down());
    }
}
