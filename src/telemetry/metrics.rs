//! Prometheus metrics of one guard, with bounded label sets.
//!
//! Every guard owns its own recorder (no process-global state), so several guards in
//! one process and parallel tests never mix their numbers. Hot-path handles are
//! registered once and cached; label values come from small closed sets (action,
//! dialect, status, scope) or from the config (tier names and model groups'
//! patterns), never from an account, key, cluster id or a request's own model
//! string.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::dialect::Dialect;
use crate::extensions::{Action, Scope};

const DIALECTS: [&str; 2] = ["openai", "anthropic"];
const STATUSES: [&str; 10] = [
    "200", "400", "401", "403", "413", "429", "502", "503", "504", "other",
];
const SCOPES: [&str; 3] = ["none", "account", "cluster"];
/// Cluster-size classes for the `clusters` gauge.
pub const SIZE_CLASSES: [&str; 5] = ["1", "2-9", "10-99", "100-999", "1000+"];
const OVERRIDE_KINDS: [&str; 4] = ["allow", "block", "tier", "unlink"];

const DECISIONS: &str = "distill_guard_decisions_total";
const MODEL_GROUPS: &str = "distill_guard_model_group_decisions_total";
/// Outcomes of a model group's request, in [`GroupOutcome`] order.
const GROUP_OUTCOMES: [&str; 5] = [
    "admitted",
    "refused_by_group",
    "refused_by_tier",
    "refused_other",
    "shadow_would_deny",
];
/// Most (tier, group, outcome) series kept: groups come from the config, so
/// only many reloads with new patterns could pass it; beyond it the counts
/// go to `group="other"`.
const MAX_GROUP_SERIES: usize = 4096;
const UNIDENTIFIED: &str = "distill_guard_unidentified_requests_total";
const SHADOW: &str = "distill_guard_shadow_would_deny_total";
const RESERVED: &str = "distill_guard_tokens_reserved_total";
const SETTLED: &str = "distill_guard_tokens_settled_total";
const RECONCILE: &str = "distill_guard_reconciliation_error_tokens";
const STORE_LATENCY: &str = "distill_guard_store_latency_seconds";
const STORE_ERRORS: &str = "distill_guard_store_errors_total";
const SUSPICION: &str = "distill_guard_suspicion";
const CLUSTER_SIZE: &str = "distill_guard_request_cluster_size";
const CLUSTERS: &str = "distill_guard_clusters";
const RELOADS: &str = "distill_guard_config_reloads_total";
const GENERATION: &str = "distill_guard_config_generation";
const RELOAD_OK_AT: &str = "distill_guard_config_last_reload_success_timestamp_seconds";
const AUDIT_WRITTEN: &str = "distill_guard_audit_records_total";
const AUDIT_DROPPED: &str = "distill_guard_audit_dropped_total";
const AUDIT_ERRORS: &str = "distill_guard_audit_write_errors_total";
const OVERRIDES: &str = "distill_guard_overrides";
const TRACKED: &str = "distill_guard_store_tracked_subjects";
const RUNTIME_TASKS: &str = "distill_guard_runtime_tasks";
const ADMIN_DENIED: &str = "distill_guard_admin_unauthorized_total";
const CLUSTER_LOG_EVENTS: &str = "distill_guard_cluster_log_events_total";
const CLUSTER_LOG_ERRORS: &str = "distill_guard_cluster_log_errors_total";
const CLUSTER_LOG_UP: &str = "distill_guard_cluster_log_up";
const STORE_UP: &str = "distill_guard_store_up";
const STORE_OUTAGES: &str = "distill_guard_store_outages_total";
const STORE_FALLBACKS: &str = "distill_guard_store_fallbacks_total";
const STORE_LOCAL_DENIALS: &str = "distill_guard_store_local_denials_total";
const STORE_SETTLEMENTS: &str = "distill_guard_store_settlements_total";
const STORE_SETTLEMENTS_PENDING: &str = "distill_guard_store_settlements_pending";
const STORE_LEASES: &str = "distill_guard_store_leases";
const STORE_LEASES_TAKEN: &str = "distill_guard_store_leases_taken_total";
const STORE_LEASED: &str = "distill_guard_store_leased_admissions_total";
/// What became of settlements, in [`StoreMetrics::settlements`] order.
const SETTLEMENT_OUTCOMES: [&str; 5] = ["sent", "merged", "local", "overflow", "leased"];
/// Kinds of shared cluster-log events, in [`Metrics::cluster_log`] order.
#[cfg(feature = "redis")]
const CLUSTER_LOG_KINDS: [&str; 4] = ["published", "applied", "dropped", "malformed"];

/// The index of an HTTP status among the labelled ones.
fn status_index(status: u16) -> usize {
    match status {
        200..=299 => 0,
        400 => 1,
        401 => 2,
        403 => 3,
        413 => 4,
        429 => 5,
        502 => 6,
        503 => 7,
        504 => 8,
        _ => 9,
    }
}

fn dialect_index(d: Dialect) -> usize {
    match d {
        Dialect::OpenAi => 0,
        Dialect::Anthropic => 1,
    }
}

fn scope_index(s: Option<Scope>) -> usize {
    match s {
        None => 0,
        Some(Scope::Account) => 1,
        Some(Scope::Cluster) => 2,
    }
}

fn size_class(size: u64) -> usize {
    match size {
        0..=1 => 0,
        2..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    }
}

const N_DECISIONS: usize = Action::ALL.len() * DIALECTS.len() * STATUSES.len() * SCOPES.len();

#[cfg(feature = "redis")]
#[derive(Debug)]
struct ClusterLogMetrics {
    events: [Counter; 4],
    errors: Counter,
    up: Gauge,
}

/// A shared store's health (see [`crate::store::StoreStatus`]).
#[derive(Debug)]
struct StoreMetrics {
    up: Gauge,
    outages: Counter,
    fallbacks: Counter,
    local_denials: Counter,
    settlements: [Counter; 5],
    pending: Gauge,
    leases: Gauge,
    leases_taken: Counter,
    leased: Counter,
}

/// What became of a request of a model group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupOutcome {
    /// Admitted.
    Admitted,
    /// Refused with 429 by the group's own bucket.
    RefusedByGroup,
    /// Refused with 429 by the tier's account- or cluster-wide bucket.
    RefusedByTier,
    /// Refused otherwise (blocked, too large, store down).
    RefusedOther,
    /// Let through by shadow mode, though a limit would have refused it.
    ShadowWouldDeny,
}

impl GroupOutcome {
    /// The outcome of a decision of a grouped request.
    pub fn of(d: &crate::extensions::Decision) -> Self {
        if d.shadowed {
            GroupOutcome::ShadowWouldDeny
        } else if d.status < 400 {
            GroupOutcome::Admitted
        } else if d.status == 429 && d.limited_in_group {
            GroupOutcome::RefusedByGroup
        } else if d.status == 429 {
            GroupOutcome::RefusedByTier
        } else {
            GroupOutcome::RefusedOther
        }
    }
}

type GroupSeries = (std::sync::Arc<str>, std::sync::Arc<str>, GroupOutcome);

/// The metrics of one guard. Cheap to record into from any thread.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    decisions: Box<[OnceLock<Counter>]>,
    /// Per tier, model group and outcome, registered on first use.
    groups: dashmap::DashMap<GroupSeries, Counter>,
    unidentified: [OnceLock<Counter>; STATUSES.len()],
    shadow: [Counter; 2],
    reserved: Counter,
    settled: Counter,
    reconcile: Histogram,
    store_latency: Histogram,
    store_errors: Counter,
    suspicion: Histogram,
    cluster_size: Histogram,
    clusters: [Gauge; SIZE_CLASSES.len()],
    reloads_ok: Counter,
    reloads_err: Counter,
    generation: Gauge,
    reload_ok_at: Gauge,
    audit_written: Counter,
    audit_dropped: Counter,
    audit_errors: Counter,
    overrides: [Gauge; OVERRIDE_KINDS.len()],
    tracked: Gauge,
    runtime_tasks: Gauge,
    admin_denied: Counter,
    /// Registered on first use, so a guard without shared clusters shows none.
    #[cfg(feature = "redis")]
    cluster_log: OnceLock<ClusterLogMetrics>,
    /// Registered on first use, so the embedded store shows none.
    store: OnceLock<StoreMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

fn labels(pairs: &[(&'static str, &'static str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(k, v)| Label::from_static_parts(k, v))
        .collect()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics with its own recorder.
    pub fn new() -> Self {
        // Bucket bounds are constants, so these cannot fail; fall back to summaries
        // (the exporter's default) rather than panic if they ever did.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(STORE_LATENCY.into()),
                &[
                    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(SUSPICION.into()),
                    &[0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(CLUSTER_SIZE.into()),
                    &[1.0, 2.0, 5.0, 10.0, 100.0, 1000.0, 10000.0],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(RECONCILE.into()),
                    &[
                        -100_000.0, -10_000.0, -1_000.0, -100.0, -10.0, 0.0, 10.0, 100.0, 1_000.0,
                        10_000.0,
                    ],
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        describe(&recorder);
        let counter = |name: &'static str, l: &[(&'static str, &'static str)]| {
            recorder.register_counter(&Key::from_parts(name, labels(l)), &meta())
        };
        let gauge = |name: &'static str, l: &[(&'static str, &'static str)]| {
            recorder.register_gauge(&Key::from_parts(name, labels(l)), &meta())
        };
        let histogram = |name: &'static str, l: &[(&'static str, &'static str)]| {
            recorder.register_histogram(&Key::from_parts(name, labels(l)), &meta())
        };
        Self {
            decisions: (0..N_DECISIONS).map(|_| OnceLock::new()).collect(),
            groups: dashmap::DashMap::new(),
            unidentified: std::array::from_fn(|_| OnceLock::new()),
            shadow: [
                counter(SHADOW, &[("scope", "account")]),
                counter(SHADOW, &[("scope", "cluster")]),
            ],
            reserved: counter(RESERVED, &[]),
            settled: counter(SETTLED, &[]),
            reconcile: histogram(RECONCILE, &[]),
            store_latency: histogram(STORE_LATENCY, &[("op", "admit")]),
            store_errors: counter(STORE_ERRORS, &[("op", "admit")]),
            suspicion: histogram(SUSPICION, &[]),
            cluster_size: histogram(CLUSTER_SIZE, &[]),
            clusters: std::array::from_fn(|i| gauge(CLUSTERS, &[("size", SIZE_CLASSES[i])])),
            reloads_ok: counter(RELOADS, &[("result", "ok")]),
            reloads_err: counter(RELOADS, &[("result", "error")]),
            generation: gauge(GENERATION, &[]),
            reload_ok_at: gauge(RELOAD_OK_AT, &[]),
            audit_written: counter(AUDIT_WRITTEN, &[]),
            audit_dropped: counter(AUDIT_DROPPED, &[]),
            audit_errors: counter(AUDIT_ERRORS, &[]),
            overrides: std::array::from_fn(|i| gauge(OVERRIDES, &[("kind", OVERRIDE_KINDS[i])])),
            tracked: gauge(TRACKED, &[]),
            runtime_tasks: gauge(RUNTIME_TASKS, &[]),
            admin_denied: counter(ADMIN_DENIED, &[]),
            #[cfg(feature = "redis")]
            cluster_log: OnceLock::new(),
            store: OnceLock::new(),
            recorder,
            handle,
        }
    }

    /// Counts one decision of the enforce stage.
    pub fn decision(
        &self,
        action: Action,
        dialect: Dialect,
        status: u16,
        scope: Option<Scope>,
        suspicion: f64,
        cluster_size: u32,
    ) {
        let (a, d, s, c) = (
            action as usize,
            dialect_index(dialect),
            status_index(status),
            scope_index(scope),
        );
        let i = ((a * DIALECTS.len() + d) * STATUSES.len() + s) * SCOPES.len() + c;
        if let Some(slot) = self.decisions.get(i) {
            slot.get_or_init(|| {
                let key = Key::from_parts(
                    DECISIONS,
                    labels(&[
                        ("action", action.as_str()),
                        ("dialect", DIALECTS[d]),
                        ("status", STATUSES[s]),
                        ("scope", SCOPES[c]),
                    ]),
                );
                self.recorder.register_counter(&key, &meta())
            })
            .increment(1);
        }
        self.suspicion.record(suspicion);
        self.cluster_size.record(f64::from(cluster_size.max(1)));
    }

    /// Counts one decision of a request of model group `group` of `tier`
    /// (both as configured: bounded label values).
    pub fn model_group(
        &self,
        tier: &std::sync::Arc<str>,
        group: &std::sync::Arc<str>,
        outcome: GroupOutcome,
    ) {
        let key = (tier.clone(), group.clone(), outcome);
        if let Some(c) = self.groups.get(&key) {
            c.increment(1);
            return;
        }
        let key = if self.groups.len() >= MAX_GROUP_SERIES {
            (tier.clone(), std::sync::Arc::from("other"), outcome)
        } else {
            key
        };
        let label = Key::from_parts(
            MODEL_GROUPS,
            vec![
                Label::new("tier", key.0.to_string()),
                Label::new("group", key.1.to_string()),
                Label::from_static_parts("outcome", GROUP_OUTCOMES[outcome as usize]),
            ],
        );
        let counter = self
            .groups
            .entry(key)
            .or_insert_with(|| self.recorder.register_counter(&label, &meta()))
            .clone();
        counter.increment(1);
    }

    /// Counts a request refused before it could be attributed (401, 413, 400).
    pub fn unidentified(&self, status: u16) {
        let s = status_index(status);
        self.unidentified[s]
            .get_or_init(|| {
                let key = Key::from_parts(UNIDENTIFIED, labels(&[("status", STATUSES[s])]));
                self.recorder.register_counter(&key, &meta())
            })
            .increment(1);
    }

    /// Counts a request shadow mode let through that would have been refused.
    pub fn shadow_would_deny(&self, scope: Scope) {
        self.shadow[scope_index(Some(scope)) - 1].increment(1);
    }

    /// Tokens reserved on admission.
    pub fn tokens_reserved(&self, tokens: u64) {
        self.reserved.increment(tokens);
    }

    /// A settled request: its actual cost and the reconciliation error.
    pub fn tokens_settled(&self, actual: u64, reserved: u64) {
        self.settled.increment(actual);
        self.reconcile.record(actual as f64 - reserved as f64);
    }

    /// One store admission call and how long it took.
    pub fn store_call(&self, seconds: f64, ok: bool) {
        self.store_latency.record(seconds);
        if !ok {
            self.store_errors.increment(1);
        }
    }

    /// Sets the number of clusters per size class (fed by the cluster engine):
    /// `sizes` yields `(member count, clusters of that size)`. Only the five size
    /// classes are labels, never cluster ids.
    pub fn set_clusters_by_size(&self, sizes: impl IntoIterator<Item = (u64, u64)>) {
        let mut counts = [0u64; SIZE_CLASSES.len()];
        for (size, n) in sizes {
            counts[size_class(size)] = counts[size_class(size)].saturating_add(n);
        }
        for (g, n) in self.clusters.iter().zip(counts) {
            g.set(n as f64);
        }
    }

    /// A config reload attempt.
    pub fn reload(&self, ok: bool, generation: u64, unix_seconds: f64) {
        if ok {
            self.reloads_ok.increment(1);
            self.generation.set(generation as f64);
            self.reload_ok_at.set(unix_seconds);
        } else {
            self.reloads_err.increment(1);
        }
    }

    /// Audit log bookkeeping.
    pub fn audit(&self, written: u64, dropped: u64, errors: u64) {
        self.audit_written.increment(written);
        self.audit_dropped.increment(dropped);
        self.audit_errors.increment(errors);
    }

    /// Handles for the audit writer: records written, write errors.
    pub fn audit_counters(&self) -> crate::audit::AuditCounters {
        crate::audit::AuditCounters {
            written: self.audit_written.clone(),
            errors: self.audit_errors.clone(),
        }
    }

    /// Current override counts: allowlisted, blocklisted, pinned, unlinked.
    pub fn overrides(&self, counts: [usize; 4]) {
        for (g, n) in self.overrides.iter().zip(counts) {
            g.set(n as f64);
        }
    }

    /// The shared cluster log's counters (see [`crate::cluster::share`]).
    #[cfg(feature = "redis")]
    pub fn cluster_log(&self, c: crate::cluster::share::ShareCounts) {
        let m = self.cluster_log.get_or_init(|| {
            let key = |name, l: &[(&'static str, &'static str)]| Key::from_parts(name, labels(l));
            ClusterLogMetrics {
                events: std::array::from_fn(|i| {
                    self.recorder.register_counter(
                        &key(CLUSTER_LOG_EVENTS, &[("event", CLUSTER_LOG_KINDS[i])]),
                        &meta(),
                    )
                }),
                errors: self
                    .recorder
                    .register_counter(&key(CLUSTER_LOG_ERRORS, &[]), &meta()),
                up: self
                    .recorder
                    .register_gauge(&key(CLUSTER_LOG_UP, &[]), &meta()),
            }
        });
        for (counter, n) in m
            .events
            .iter()
            .zip([c.published, c.applied, c.dropped, c.malformed])
        {
            counter.absolute(n);
        }
        m.errors.absolute(c.errors);
        m.up.set(if c.down { 0.0 } else { 1.0 });
    }

    /// A shared store's health and counters (see [`crate::store::Store::status`]).
    pub fn store_status(&self, s: crate::store::StoreStatus) {
        let m = self.store.get_or_init(|| {
            let key = |name| Key::from_parts(name, labels(&[]));
            StoreMetrics {
                up: self.recorder.register_gauge(&key(STORE_UP), &meta()),
                outages: self.recorder.register_counter(&key(STORE_OUTAGES), &meta()),
                fallbacks: self
                    .recorder
                    .register_counter(&key(STORE_FALLBACKS), &meta()),
                local_denials: self
                    .recorder
                    .register_counter(&key(STORE_LOCAL_DENIALS), &meta()),
                settlements: std::array::from_fn(|i| {
                    self.recorder.register_counter(
                        &Key::from_parts(
                            STORE_SETTLEMENTS,
                            labels(&[("outcome", SETTLEMENT_OUTCOMES[i])]),
                        ),
                        &meta(),
                    )
                }),
                pending: self
                    .recorder
                    .register_gauge(&key(STORE_SETTLEMENTS_PENDING), &meta()),
                leases: self.recorder.register_gauge(&key(STORE_LEASES), &meta()),
                leases_taken: self
                    .recorder
                    .register_counter(&key(STORE_LEASES_TAKEN), &meta()),
                leased: self.recorder.register_counter(&key(STORE_LEASED), &meta()),
            }
        });
        m.leases.set(s.leases as f64);
        m.leases_taken.absolute(s.leases_taken);
        m.leased.absolute(s.leased_admissions);
        for (counter, n) in m.settlements.iter().zip([
            s.settlements_sent,
            s.settlements_merged,
            s.settlements_local,
            s.settlements_overflow,
            s.settlements_leased,
        ]) {
            counter.absolute(n);
        }
        m.pending.set(s.settlements_pending as f64);
        m.up.set(if s.up { 1.0 } else { 0.0 });
        m.outages.absolute(s.outages);
        m.fallbacks.absolute(s.fallbacks);
        m.local_denials.absolute(s.local_denials);
    }

    /// A refused admin request (missing or wrong token).
    pub fn admin_unauthorized(&self) {
        self.admin_denied.increment(1);
    }

    /// Renders every metric in the Prometheus text format. `tracked` is the
    /// store's current subject count. Rendered on a tokio runtime, it also
    /// reports the tasks alive on that runtime.
    pub fn render(&self, tracked: usize) -> String {
        self.tracked.set(tracked as f64);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.runtime_tasks
                .set(rt.metrics().num_alive_tasks() as f64);
        }
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; call now and then when nobody
    /// scrapes, so memory stays bounded.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn describe(r: &PrometheusRecorder) {
    let d = |name: &'static str, unit: Option<Unit>, help: &'static str| {
        r.describe_counter(KeyName::from_const_str(name), unit, help.into());
    };
    d(
        DECISIONS,
        None,
        "Decisions of the enforce stage by action, dialect, HTTP status and the scope of the limit that denied (none when admitted).",
    );
    d(
        MODEL_GROUPS,
        None,
        "Decisions of requests of a model group ([tiers.NAME.models.\"PATTERN\"]) by tier, group (the pattern as configured) and outcome.",
    );
    d(
        UNIDENTIFIED,
        None,
        "Requests refused before they could be attributed to an account (no key, body too large or unreadable).",
    );
    d(
        SHADOW,
        None,
        "Requests shadow mode let through that would have been rate limited, by scope.",
    );
    d(RESERVED, None, "Tokens reserved on admission.");
    d(
        SETTLED,
        None,
        "Tokens actually used by settled requests (upstream usage, else estimated).",
    );
    d(
        RECONCILE,
        None,
        "Reconciliation error per settled request: actual tokens minus reserved tokens.",
    );
    d(
        STORE_LATENCY,
        Some(Unit::Seconds),
        "Latency of quota store admissions.",
    );
    d(STORE_ERRORS, None, "Quota store calls that failed.");
    d(
        SUSPICION,
        None,
        "Suspicion carried by each decided request.",
    );
    d(
        CLUSTER_SIZE,
        None,
        "Size of the cluster each decided request was charged to.",
    );
    d(
        CLUSTERS,
        None,
        "Clusters by member count class, as reported by the cluster engine.",
    );
    d(RELOADS, None, "Config reload attempts by result.");
    d(
        GENERATION,
        None,
        "Generation of the config in force (1 at start, +1 per successful reload).",
    );
    d(
        RELOAD_OK_AT,
        None,
        "Unix time of the last successful config load or reload.",
    );
    d(AUDIT_WRITTEN, None, "Audit log records written.");
    d(
        AUDIT_DROPPED,
        None,
        "Audit log records dropped because the writer fell behind.",
    );
    d(AUDIT_ERRORS, None, "Audit log write or rotation errors.");
    d(OVERRIDES, None, "Operator overrides in force, by kind.");
    d(
        TRACKED,
        None,
        "Accounts and clusters the quota store tracks.",
    );
    d(
        RUNTIME_TASKS,
        None,
        "Tasks alive on the async runtime (connections, requests, streams, background work), refreshed on every scrape; under steady load it levels off, one that only grows is a leak.",
    );
    d(
        ADMIN_DENIED,
        None,
        "Admin API requests refused for a missing or wrong token.",
    );
    d(
        CLUSTER_LOG_EVENTS,
        None,
        "Events of the cluster log shared through Redis: this replica's published, other replicas' applied, dropped (queue full or Redis failing), malformed entries skipped.",
    );
    d(
        CLUSTER_LOG_ERRORS,
        None,
        "Failed Redis calls of the shared cluster log.",
    );
    d(
        STORE_OUTAGES,
        None,
        "Outages of the shared quota store: times it went from answering to failing.",
    );
    d(
        STORE_FALLBACKS,
        None,
        "Admissions and settlements answered in process because the shared quota store was down or too slow (fail_open).",
    );
    d(
        STORE_LOCAL_DENIALS,
        None,
        "Requests refused from the local copy of refused subjects, without a round trip to the shared quota store.",
    );
    d(
        STORE_SETTLEMENTS,
        None,
        "Token settlements of the shared quota store by outcome: sent (applied by it), merged (folded into a queued settlement of the same subjects because the queue was full, sent with it), local (applied in process: store down or failing), overflow (applied in process: queue full with other subjects), leased (taken by a local lease).",
    );
    d(
        STORE_LEASES_TAKEN,
        None,
        "Local leases taken from the shared quota store (local_leases).",
    );
    d(
        STORE_LEASED,
        None,
        "Admissions answered from a local lease, without a round trip to the shared quota store.",
    );
    r.describe_gauge(
        KeyName::from_const_str(STORE_LEASES),
        None,
        "Local leases held now (local_leases).".into(),
    );
    r.describe_gauge(
        KeyName::from_const_str(STORE_SETTLEMENTS_PENDING),
        None,
        "Settlements queued for the shared quota store or being sent.".into(),
    );
    r.describe_gauge(
        KeyName::from_const_str(STORE_UP),
        None,
        "1 while the shared quota store's last call succeeded.".into(),
    );
    r.describe_gauge(
        KeyName::from_const_str(CLUSTER_LOG_UP),
        None,
        "1 while the shared cluster log's last Redis call succeeded.".into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "redis")]
    #[test]
    fn cluster_log_metrics_appear_only_once_fed() {
        let m = Metrics::new();
        assert!(!m.render(0).contains(CLUSTER_LOG_EVENTS));
        m.cluster_log(crate::cluster::share::ShareCounts {
            published: 7,
            applied: 11,
            dropped: 2,
            malformed: 1,
            errors: 3,
            down: true,
        });
        let text = m.render(0);
        for line in [
            "distill_guard_cluster_log_events_total{event=\"published\"} 7",
            "distill_guard_cluster_log_events_total{event=\"applied\"} 11",
            "distill_guard_cluster_log_events_total{event=\"dropped\"} 2",
            "distill_guard_cluster_log_events_total{event=\"malformed\"} 1",
            "distill_guard_cluster_log_errors_total 3",
            "distill_guard_cluster_log_up 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[test]
    fn store_metrics_appear_only_once_fed() {
        let m = Metrics::new();
        assert!(
            !m.render(0).contains(STORE_UP),
            "the embedded store shows none"
        );
        let s = crate::store::StoreStatus {
            outages: 2,
            fallbacks: 40,
            local_denials: 7,
            settlements_sent: 90,
            settlements_merged: 4,
            settlements_overflow: 1,
            settlements_pending: 12,
            leases: 3,
            leased_admissions: 500,
            ..Default::default()
        };
        m.store_status(s);
        let text = m.render(0);
        for line in [
            "distill_guard_store_up 0",
            "distill_guard_store_outages_total 2",
            "distill_guard_store_fallbacks_total 40",
            "distill_guard_store_local_denials_total 7",
            "distill_guard_store_settlements_total{outcome=\"sent\"} 90",
            "distill_guard_store_settlements_total{outcome=\"merged\"} 4",
            "distill_guard_store_settlements_total{outcome=\"local\"} 0",
            "distill_guard_store_settlements_total{outcome=\"overflow\"} 1",
            "distill_guard_store_settlements_pending 12",
            "distill_guard_store_leases 3",
            "distill_guard_store_leases_taken_total 0",
            "distill_guard_store_leased_admissions_total 500",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[test]
    fn decisions_render_with_bounded_labels() {
        let m = Metrics::new();
        m.decision(Action::Allow, Dialect::OpenAi, 200, None, 0.1, 1);
        m.decision(Action::Allow, Dialect::OpenAi, 200, None, 0.1, 1);
        m.decision(
            Action::Throttle,
            Dialect::Anthropic,
            429,
            Some(Scope::Cluster),
            0.8,
            40,
        );
        m.tokens_settled(90, 100);
        let text = m.render(3);
        assert!(text.contains(
            "distill_guard_decisions_total{action=\"allow\",dialect=\"openai\",status=\"200\",scope=\"none\"} 2"
        ), "{text}");
        assert!(text.contains("scope=\"cluster\"} 1"), "{text}");
        assert!(
            text.contains("distill_guard_store_tracked_subjects 3"),
            "{text}"
        );
        // Off a runtime there is no task to count.
        assert!(text.contains("distill_guard_runtime_tasks 0"), "{text}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let _held = rt.spawn(std::future::pending::<()>());
        let text = rt.block_on(async { m.render(3) });
        assert!(text.contains("distill_guard_runtime_tasks 1"), "{text}");
        assert!(
            text.contains("# TYPE distill_guard_reconciliation_error_tokens histogram"),
            "{text}"
        );
        assert!(
            text.contains("distill_guard_reconciliation_error_tokens_bucket{le=\"-10\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn model_groups_are_labelled_by_their_configured_pattern() {
        let m = Metrics::new();
        let (tier, group) = (
            std::sync::Arc::from("default"),
            std::sync::Arc::from("gpt-5*"),
        );
        m.model_group(&tier, &group, GroupOutcome::Admitted);
        m.model_group(&tier, &group, GroupOutcome::Admitted);
        m.model_group(&tier, &group, GroupOutcome::RefusedByGroup);
        let text = m.render(0);
        assert!(
            text.contains("distill_guard_model_group_decisions_total{tier=\"default\",group=\"gpt-5*\",outcome=\"admitted\"} 2"),
            "{text}"
        );
        assert!(text.contains("outcome=\"refused_by_group\"} 1"), "{text}");
        // The number of series is bounded whatever the configs seen.
        for i in 0..MAX_GROUP_SERIES + 10 {
            m.model_group(
                &tier,
                &std::sync::Arc::from(format!("g{i}")),
                GroupOutcome::Admitted,
            );
        }
        assert!(m.groups.len() <= MAX_GROUP_SERIES + 1);
        assert!(m.render(0).contains("group=\"other\""));
    }

    #[test]
    fn cluster_size_classes() {
        assert_eq!(size_class(1), 0);
        assert_eq!(size_class(9), 1);
        assert_eq!(size_class(25_000), 4);
        let m = Metrics::new();
        m.set_clusters_by_size([(1, 2), (12, 1), (25_000, 1)]);
        let text = m.render(0);
        assert!(
            text.contains("distill_guard_clusters{size=\"1\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("distill_guard_clusters{size=\"1000+\"} 1"),
            "{text}"
        );
    }
}
