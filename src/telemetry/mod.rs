//! What the guard tells its operators: Prometheus [`Metrics`], a bounded memory of
//! [`Recent`] decisions (explain by request id, chart, top accounts), and the
//! audit log sink.
//!
//! The enforce stage reports each decision to its
//! [`crate::stage::DecisionSink`]; `Telemetry` is one, calling
//! [`Telemetry::record`] once per decision. Recording never
//! blocks on I/O: counters are atomics, the decision memory is a short critical
//! section, and audit records go through a bounded channel (dropped and counted
//! when the writer falls behind).
//!
//! ```
//! use std::sync::Arc;
//! use distill_guard::telemetry::Telemetry;
//! use distill_guard::{Config, Guard};
//!
//! let telemetry = Arc::new(Telemetry::new(10_000));
//! let guard = Guard::builder(Config::with_secret("s"))
//!     .sink(telemetry.clone())
//!     .build()
//!     .expect("valid");
//! # let _ = guard;
//! let text = telemetry.render_metrics(0);
//! assert!(text.contains("# TYPE distill_guard_clusters gauge"));
//! ```

mod metrics;
mod recent;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

pub use self::metrics::{GroupOutcome, Metrics, SIZE_CLASSES};
pub use recent::{
    AccountSummary, ClusterSummary, DecisionRecord, Recent, Tick, SERIES, TIMELINE_SECONDS,
};

use crate::audit::AuditSink;
use crate::dialect::Dialect;
use crate::extensions::{Action, Decision};
use crate::stage::DecisionSink;

pub use crate::config::DEFAULT_RECENT_DECISIONS;

/// Operator-facing state of one guard.
#[derive(Debug)]
pub struct Telemetry {
    metrics: Metrics,
    recent: Recent,
    audit: ArcSwapOption<AuditSink>,
    audit_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    started: Instant,
    started_unix_ms: u64,
}

impl Telemetry {
    /// Fresh telemetry remembering up to `recent` decisions.
    pub fn new(recent: usize) -> Self {
        Self {
            metrics: Metrics::new(),
            recent: Recent::new(recent),
            audit: ArcSwapOption::empty(),
            audit_task: Mutex::new(None),
            started: Instant::now(),
            started_unix_ms: unix_ms(),
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The decision memory.
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    /// Seconds since this guard was built.
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// When this guard was built (Unix milliseconds, wall clock).
    pub fn started_unix_ms(&self) -> u64 {
        self.started_unix_ms
    }

    /// Sends audit records to `sink` from now on (`None` stops auditing). The
    /// previous sink's writer finishes what it has queued.
    pub fn set_audit(&self, sink: Option<AuditSink>) {
        self.audit.store(sink.map(Arc::new));
    }

    /// Like [`set_audit`](Self::set_audit), also keeping the writer task so that
    /// [`close_audit`](Self::close_audit) can wait for it to drain.
    pub fn install_audit(&self, sink: AuditSink, task: tokio::task::JoinHandle<()>) {
        self.set_audit(Some(sink));
        // The previous writer drains on its own once its sink is gone.
        *self
            .audit_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// Stops auditing and returns the writer task of the last installed sink; it
    /// ends once every queued record is written. Call at shutdown.
    pub fn close_audit(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.set_audit(None);
        self.audit_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The audit sink in use, if any.
    pub fn audit(&self) -> Option<Arc<AuditSink>> {
        self.audit.load_full()
    }

    /// Renders the metrics (`tracked`: the store's subject count).
    pub fn render_metrics(&self, tracked: usize) -> String {
        self.metrics.render(tracked)
    }

    /// Records one decision of the enforce stage: metrics, memory, audit log.
    pub fn record(&self, decision: &Decision, dialect: Dialect, at_ms: u64) {
        self.metrics.decision(
            decision.action,
            dialect,
            decision.status,
            decision.limited_by.filter(|_| decision.status >= 400),
            decision.suspicion,
            decision.cluster.size,
        );
        if decision.shadowed {
            if let Some(scope) = decision.limited_by {
                self.metrics.shadow_would_deny(scope);
            }
        }
        if let Some(group) = &decision.model_group {
            self.metrics
                .model_group(&decision.tier, group, GroupOutcome::of(decision));
        }
        if decision.status < 400 && decision.reserved_tokens > 0 {
            self.metrics.tokens_reserved(decision.reserved_tokens);
        }
        let notable =
            decision.action != Action::Allow || decision.status >= 400 || decision.shadowed;
        let audit = self.audit.load();
        let want_audit = audit.as_ref().is_some_and(|a| notable || a.all());
        if self.recent.capacity() == 0 && !want_audit {
            self.recent.push(at_ms, dialect, Arc::new(decision.clone()));
            return;
        }
        let shared = Arc::new(decision.clone());
        if let Some(sink) = audit.as_ref().filter(|_| want_audit) {
            if !sink.send(at_ms, dialect, shared.clone()) {
                self.metrics.audit(0, 1, 0);
            }
        }
        self.recent.push(at_ms, dialect, shared);
    }
}

/// The enforce stage's reports become metrics, the decision memory and audit
/// lines: give a guard `Arc<Telemetry>` as its sink
/// ([`GuardBuilder::sink`](crate::GuardBuilder::sink)) and the same `Arc` to the
/// admin API.
impl DecisionSink for Telemetry {
    fn decision(&self, decision: &Decision, dialect: Dialect, at_ms: u64) {
        self.record(decision, dialect, at_ms);
    }

    fn unidentified(&self, status: u16) {
        self.metrics.unidentified(status);
    }

    fn store_call(&self, seconds: f64, ok: bool) {
        self.metrics.store_call(seconds, ok);
    }

    fn settled(&self, actual_tokens: u64, reserved_tokens: u64) {
        self.metrics.tokens_settled(actual_tokens, reserved_tokens);
    }
}

/// Wall-clock Unix milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(action: Action, status: u16) -> Decision {
        let account = crate::extensions::AccountId([1; 16]);
        Decision {
            request_id: None,
            account,
            cluster: crate::extensions::Cluster::singleton(account),
            suspicion: 0.0,
            action,
            status,
            limited_by: None,
            shadowed: false,
            reserved_tokens: 0,
            tier: "default".into(),
            model_group: None,
            limited_in_group: false,
            reasons: vec![],
        }
    }

    #[tokio::test]
    async fn audit_records_are_dropped_and_counted_when_the_writer_lags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = crate::audit::AuditConfig {
            path: Some(dir.path().join("a.jsonl").to_string_lossy().into_owned()),
            queue: 2,
            ..Default::default()
        };
        let t = Telemetry::new(100);
        let (sink, task) = crate::audit::start(&cfg, t.metrics().audit_counters())
            .await
            .expect("open")
            .expect("enabled");
        t.set_audit(Some(sink));
        // The writer cannot run before this task yields: the queue holds two.
        t.record(&decision(Action::Allow, 200), Dialect::OpenAi, 1);
        for _ in 0..5 {
            t.record(&decision(Action::Throttle, 429), Dialect::OpenAi, 1);
        }
        t.set_audit(None);
        task.await.expect("writer");
        let text = t.render_metrics(0);
        assert!(
            text.contains("distill_guard_audit_dropped_total 3"),
            "{text}"
        );
        assert!(
            text.contains("distill_guard_audit_records_total 2"),
            "{text}"
        );
        let lines = std::fs::read_to_string(dir.path().join("a.jsonl")).expect("file");
        assert_eq!(lines.lines().count(), 2, "plain allows are not audited");
        assert_eq!(
            t.recent().latest(10).len(),
            6,
            "every decision is remembered"
        );
    }
}
