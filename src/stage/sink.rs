//! [`DecisionSink`]: where the enforce stage reports what it decided.

use std::sync::Arc;

use crate::dialect::Dialect;
use crate::extensions::Decision;

/// Receives the enforce stage's reports: every decision, and the few events
/// around them that operators count. Called on the request path, so an
/// implementation must not block (queue I/O elsewhere).
///
/// `()` discards everything (the default); a closure `Fn(&Decision, Dialect, u64)`
/// receives the decisions; `distill_guard::telemetry::Telemetry` (feature
/// `metrics`) turns them into Prometheus metrics, the decision memory and the
/// audit log.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use distill_guard::extensions::Decision;
/// use distill_guard::dialect::Dialect;
/// use distill_guard::stage::DecisionSink;
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = {
///     let seen = seen.clone();
///     move |d: &Decision, _: Dialect, _at_ms: u64| seen.lock().unwrap().push(d.status)
/// };
/// let account = distill_guard::extensions::AccountId([1; 16]);
/// # let d = Decision { request_id: None, account, cluster: distill_guard::extensions::Cluster::singleton(account),
/// #     suspicion: 0.0, action: distill_guard::extensions::Action::Allow, status: 200, limited_by: None,
/// #     shadowed: false, reserved_tokens: 0, tier: "default".into(), model_group: None,
/// #     limited_in_group: false, reasons: vec![] };
/// sink.decision(&d, Dialect::OpenAi, 0);
/// assert_eq!(*seen.lock().unwrap(), [200]);
/// ```
pub trait DecisionSink: Send + Sync + 'static {
    /// One decision (admitted, refused or shadowed) at `at_ms`.
    fn decision(&self, decision: &Decision, dialect: Dialect, at_ms: u64);

    /// A request answered before it had an account and a body: `status` is 401,
    /// 400 or 413.
    fn unidentified(&self, status: u16) {
        let _ = status;
    }

    /// One admission asked of the quota store: how long it took and whether the
    /// store answered.
    fn store_call(&self, seconds: f64, ok: bool) {
        let _ = (seconds, ok);
    }

    /// A token reservation settled: what the request actually cost and what had
    /// been reserved for it.
    fn settled(&self, actual_tokens: u64, reserved_tokens: u64) {
        let _ = (actual_tokens, reserved_tokens);
    }
}

impl std::fmt::Debug for dyn DecisionSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecisionSink")
    }
}

impl DecisionSink for () {
    fn decision(&self, _: &Decision, _: Dialect, _: u64) {}
}

impl<F> DecisionSink for F
where
    F: Fn(&Decision, Dialect, u64) + Send + Sync + 'static,
{
    fn decision(&self, decision: &Decision, dialect: Dialect, at_ms: u64) {
        self(decision, dialect, at_ms)
    }
}

impl<T: DecisionSink + ?Sized> DecisionSink for Arc<T> {
    fn decision(&self, decision: &Decision, dialect: Dialect, at_ms: u64) {
        (**self).decision(decision, dialect, at_ms)
    }

    fn unidentified(&self, status: u16) {
        (**self).unidentified(status)
    }

    fn store_call(&self, seconds: f64, ok: bool) {
        (**self).store_call(seconds, ok)
    }

    fn settled(&self, actual_tokens: u64, reserved_tokens: u64) {
        (**self).settled(actual_tokens, reserved_tokens)
    }
}
