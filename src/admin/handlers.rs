//! Handlers of the admin API. Every answer is JSON (`{"error": "..."}` on
//! failure) except `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::overrides::OverrideRequest;
use super::AdminState;
use crate::extensions::{AccountId, ClusterId, Decision, Scope};
use crate::policy::{ListKind, OverrideAction};
use crate::reload::{ReloadError, Trigger};
use crate::stage::Settings;
use crate::store::{BucketView, Limits, Subject, Window};
use crate::telemetry::SERIES;

type St = State<Arc<AdminState>>;

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, json!({ "error": message.into() }))
}

/// Runs a scan of the guard's state (tables of up to `max_accounts` entries, the
/// trace-back index, the decision memory) on tokio's blocking pool, so that an
/// operator's request never stalls the async workers serving model traffic.
async fn off_workers<F>(scan: F) -> Response
where
    F: FnOnce() -> Response + Send + 'static,
{
    match tokio::task::spawn_blocking(scan).await {
        Ok(res) => res,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the scan failed: {e}"),
        ),
    }
}

pub(super) async fn require_token(State(st): St, req: Request, next: Next) -> Response {
    let admitted = match &st.token {
        super::TokenSource::Fixed(t) => t.admits(req.headers()),
        super::TokenSource::Config => st
            .guard
            .shared()
            .settings()
            .config
            .admin
            .resolve_token()
            .is_some_and(|t| super::auth::TokenDigest::new(&t).admits(req.headers())),
    };
    if admitted {
        return next.run(req).await;
    }
    st.telemetry.metrics().admin_unauthorized();
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong admin token: send `Authorization: Bearer <token>`",
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"distill-guard admin\""),
    );
    res
}

pub(super) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such admin endpoint")
}

pub(super) async fn metrics(State(st): St) -> Response {
    off_workers(move || {
        let shared = st.guard.shared();
        let t = &st.telemetry;
        t.metrics().overrides(shared.overrides().counts());
        #[cfg(feature = "redis")]
        if let Some(s) = shared.detector().share() {
            t.metrics().cluster_log(s.counts());
        }
        if let Some(c) = &st.hooks.cluster {
            t.metrics()
                .set_clusters_by_size(c.cluster_sizes().into_iter().map(|s| (s.size, s.clusters)));
        }
        if let Some(s) = shared.store().status() {
            t.metrics().store_status(s);
        }
        let body = t.render_metrics(shared.store().tracked());
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response()
    })
    .await
}

/// The store for `/api/status`: what it tracks and, for a shared backend, how
/// it is doing.
fn store_status(store: &dyn crate::store::Store) -> Value {
    let mut v = json!({ "tracked": store.tracked() });
    if let Some(s) = store.status() {
        v["shared"] = json!(s);
    }
    v
}

/// The trace-back index for `/api/status`: its size and capacity and, when
/// it is shared between replicas, the counters of its log.
fn trace_index(index: &crate::watermark::TraceIndex) -> Value {
    let v = json!({ "entries": index.len(), "capacity": index.capacity() });
    #[cfg(feature = "redis")]
    if let Some(c) = index.shared_counts() {
        let mut v = v;
        v["shared"] = log_counts(&c);
        return v;
    }
    v
}

/// The counters of a log shared through Redis, for `/api/status`.
#[cfg(feature = "redis")]
fn log_counts(c: &crate::cluster::share::ShareCounts) -> Value {
    json!({
        "up": !c.down,
        "published": c.published,
        "applied": c.applied,
        "dropped": c.dropped,
        "malformed": c.malformed,
        "errors": c.errors,
    })
}

/// The shared cluster log's state for `/api/status` (`null` without one).
fn cluster_log(detector: &crate::detect::Detector) -> Value {
    #[cfg(feature = "redis")]
    if let Some(s) = detector.share() {
        let mut v = log_counts(&s.counts());
        v["replica"] = json!(format!("{:016x}", s.replica()));
        v["read_up_to"] = json!(s.read_up_to().to_string());
        return v;
    }
    let _ = detector;
    Value::Null
}

#[derive(Debug, Deserialize)]
pub(super) struct Limit {
    limit: Option<usize>,
}

impl Limit {
    fn get(&self, default: usize) -> usize {
        self.limit.unwrap_or(default).clamp(1, 1000)
    }
}

fn tier_json(settings: &Settings) -> Value {
    let mut names: Vec<&Arc<str>> = settings.tiers.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let t = settings.config.tier(name).unwrap_or_default();
            json!({
                "name": &**name,
                "default": **name == *settings.default_tier.name,
                "limits": t,
            })
        })
        .collect()
}

pub(super) async fn status(State(st): St) -> Response {
    off_workers(move || {
        let shared = st.guard.shared();
        let settings = shared.settings();
        let t = &st.telemetry;
        let reload = st.reloader.as_ref().map(|r| r.status());
        let timeline = t.recent().timeline();
        let mut totals = [0u64; SERIES.len()];
        for tick in &timeline {
            for (a, b) in totals.iter_mut().zip(tick.counts) {
                *a += b;
            }
        }
        let [allow, block, tier, unlink] = shared.overrides().counts();
        let audit = t.audit();
        json_response(
            StatusCode::OK,
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_seconds": t.uptime_seconds(),
                "started_at_unix_ms": t.started_unix_ms(),
                "now_ms": shared.clock().now_ms(),
                "config": {
                    "generation": reload.as_ref().map_or(1, |r| r.generation),
                    "source": reload.as_ref().and_then(|r| r.source.clone()),
                    "loaded_at_unix_ms": reload.as_ref().map(|r| r.loaded_at_unix_ms),
                    "reloads_ok": reload.as_ref().map_or(0, |r| r.reloads_ok),
                    "reloads_failed": reload.as_ref().map_or(0, |r| r.reloads_failed),
                    "last_reload": reload.as_ref().and_then(|r| r.last_attempt.clone()),
                    "reload_available": st.reloader.is_some(),
                    "enabled": settings.enabled,
                    "shadow": settings.shadow,
                    "default_tier": &*settings.default_tier.name,
                    "tiers": tier_json(&settings),
                    "accounts_pinned": settings.account_tiers.len(),
                    "cluster_exponent": settings.cluster_exponent,
                    "bands": settings.bands,
                    "default_max_output_tokens": settings.default_max_output_tokens,
                },
                "audit": audit.map(|a| json!({"target": a.target(), "all": a.all()})),
                "engines": {
                    "cluster": st.hooks.cluster.is_some(),
                    "trace": st.hooks.trace.is_some(),
                },
                "store": store_status(shared.store().as_ref()),
                "cluster_log": cluster_log(shared.detector()),
                "trace_index": trace_index(shared.watermarker().index()),
                "overrides": {
                    "allow": allow, "block": block, "tier": tier, "unlink": unlink,
                    "shared": shared.overrides().is_shared(),
                },
                "decisions": {
                    "series": SERIES,
                    "window_seconds": timeline.len(),
                    "totals": SERIES.iter().zip(totals).map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "remembered": t.recent().len(),
                    "capacity": t.recent().capacity(),
                    "timeline": timeline,
                },
            }),
        )
    })
    .await
}

pub(super) async fn accounts(State(st): St, Query(q): Query<Limit>) -> Response {
    off_workers(move || {
        let (accounts, _) = st.telemetry.recent().top(q.get(20));
        json_response(StatusCode::OK, json!({ "accounts": accounts }))
    })
    .await
}

fn scaled(base: &Limits, m: f64) -> Limits {
    let mut out = *base;
    for l in out.iter_mut().flatten() {
        *l = l.scaled(m);
    }
    out
}

fn views_json(views: Option<[Option<BucketView>; 4]>) -> Value {
    let Some(views) = views else {
        return Value::Null;
    };
    Window::ALL
        .iter()
        .map(|w| {
            let v = views[w.index()];
            (
                w.field().to_string(),
                match v {
                    Some(v) => json!({
                        "limit": v.limit,
                        "remaining": v.remaining,
                        "used": (v.limit - v.remaining).max(0.0),
                        "reset_ms": v.reset_ms,
                    }),
                    None => json!("unlimited"),
                },
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Shortest account prefix `/api/accounts/{prefix}` resolves: a text mark carries
/// 14 hex digits; fewer would match too many accounts to be useful.
const MIN_ACCOUNT_PREFIX: usize = 8;

/// The account `hash` names: 32 hex digits, or a unique prefix of at least
/// [`MIN_ACCOUNT_PREFIX`] (what `trace` decodes from a text mark) among the
/// accounts this server remembers (recent decisions and the trace-back index).
fn resolve_account(st: &AdminState, hash: &str) -> Result<AccountId, (StatusCode, Value)> {
    if let Some(id) = AccountId::parse(hash) {
        return Ok(id);
    }
    let hex = hash.len() <= 32 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || hash.len() < MIN_ACCOUNT_PREFIX {
        return Err((
            StatusCode::BAD_REQUEST,
            json!({"error": format!("an account is its hash: 32 hex digits as shown in logs and the audit log, or its first {MIN_ACCOUNT_PREFIX} or more (as `trace` decodes from a text mark)")}),
        ));
    }
    let shared = st.guard.shared();
    let mut found = st.telemetry.recent().accounts_with_prefix(hash, 10);
    for a in shared.watermarker().index().accounts_with_prefix(hash, 10) {
        if !found.contains(&a) {
            found.push(a);
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err((
            StatusCode::NOT_FOUND,
            json!({"error": format!("no account starting with {hash} is remembered here (recent decisions and tagged responses still in the trace-back index)")}),
        )),
        many => Err((
            StatusCode::CONFLICT,
            json!({
                "error": format!("{} accounts start with {hash}: give more digits", many.len()),
                "candidates": many,
            }),
        )),
    }
}

/// A subject's buckets, without charging; `None` when the store cannot say.
async fn inspect(
    store: &dyn crate::store::Store,
    subject: &Subject,
    now: u64,
) -> Option<[Option<BucketView>; 4]> {
    store.inspect(subject, now).await.ok().flatten()
}

/// Whether any bucket of `views` holds something.
fn is_used(views: &Option<[Option<BucketView>; 4]>) -> bool {
    views
        .iter()
        .flatten()
        .flatten()
        .any(|v| v.remaining < v.limit)
}

pub(super) async fn account(State(st): St, Path(hash): Path<String>) -> Response {
    // The scans on the blocking pool; the store's answers on the async side.
    let scan = {
        let st = st.clone();
        tokio::task::spawn_blocking(move || {
            let id = resolve_account(&st, &hash)?;
            let recent = st.telemetry.recent().of_account(&id, 20);
            let engine = st.hooks.cluster.as_ref().and_then(|c| c.account(&id));
            Ok((id, recent, engine))
        })
    };
    let (id, recent, engine) = match scan.await {
        Ok(Ok(found)) => found,
        Ok(Err((status, body))) => return json_response(status, body),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the scan failed: {e}"),
            )
        }
    };
    let shared = st.guard.shared();
    let settings = shared.settings();
    let ov = shared.overrides().get(&id);
    let last = recent.first().map(|r| r.decision.clone());
    let pinned = ov
        .as_ref()
        .and_then(|o| o.tier.clone())
        .filter(|t| settings.tiers.contains_key(t));
    let tier = settings.tier_for(
        &id,
        pinned
            .as_deref()
            .or_else(|| last.as_ref().map(|d| &*d.tier)),
    );
    let allowlisted = ov.as_ref().and_then(|o| o.list) == Some(ListKind::Allow);
    let suspicion = last.as_ref().map_or(0.0, |d| d.suspicion);
    let m = if allowlisted {
        1.0
    } else {
        settings.multiplier(suspicion)
    };
    let now = shared.clock().now_ms();
    let store = shared.store();
    let account_subject = Subject::new(Scope::Account, id.0, scaled(&tier.base, m));
    let account_views = inspect(store.as_ref(), &account_subject, now).await;
    let cluster = engine
        .as_ref()
        .map(|e| crate::extensions::Cluster {
            id: e.cluster.id,
            size: e.cluster.size,
        })
        .or_else(|| last.as_ref().map(|d| d.cluster));
    // The cluster's subject and multiplier, unless the account is alone.
    let cluster_subject = cluster.filter(|c| c.size > 1 || c.id.0 != id.0).map(|c| {
        let cm = m * settings.cluster_scale(c.size);
        (
            Subject::new(Scope::Cluster, c.id.0, scaled(&tier.base, cm)),
            cm,
        )
    });
    let cluster_views = match &cluster_subject {
        Some((subject, _)) => inspect(store.as_ref(), subject, now).await,
        None => None,
    };
    // Each model group's buckets, for the account and (if any) its cluster.
    let mut groups = serde_json::Map::new();
    let mut used = is_used(&account_views);
    for g in &tier.models {
        let account_group = account_subject.in_group(g.name.clone(), scaled(&g.limits, m));
        let acct = inspect(store.as_ref(), &account_group, now).await;
        used |= is_used(&acct);
        let cl = match &cluster_subject {
            Some((c, cm)) => {
                let subject = c.in_group(g.name.clone(), scaled(&g.limits, *cm));
                inspect(store.as_ref(), &subject, now).await
            }
            None => None,
        };
        groups.insert(
            g.name.to_string(),
            json!({"account": views_json(acct), "cluster": views_json(cl)}),
        );
    }
    if recent.is_empty() && engine.is_none() && ov.is_none() && !used {
        return error(
            StatusCode::NOT_FOUND,
            "account not seen: no recent decision, no bucket use, no override",
        );
    }
    json_response(
        StatusCode::OK,
        json!({
            "account": id,
            "tier": &*tier.name,
            "override": ov,
            "suspicion": suspicion,
            "rate_multiplier": m,
            "cluster": cluster,
            "buckets": {
                "note": "limits as scaled by the latest decision's suspicion band (and cluster size for the cluster)",
                "account": views_json(account_views),
                "cluster": views_json(cluster_views),
                "model_groups": groups,
            },
            "cluster_engine": engine,
            "recent_decisions": recent,
        }),
    )
}

pub(super) async fn clusters(State(st): St, Query(q): Query<Limit>) -> Response {
    off_workers(move || {
        let n = q.get(10).min(100);
        let Some(c) = &st.hooks.cluster else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "no cluster engine");
        };
        json_response(StatusCode::OK, json!(c.top_clusters(n)))
    })
    .await
}

pub(super) async fn cluster(State(st): St, Path(id): Path<String>) -> Response {
    off_workers(move || {
        let Some(id) = ClusterId::parse(&id) else {
            return error(
                StatusCode::BAD_REQUEST,
                "a cluster id is `c_` and 32 hex digits",
            );
        };
        let Some(engine) = &st.hooks.cluster else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "no cluster engine");
        };
        match engine.cluster(&id) {
            Some(c) => json_response(StatusCode::OK, json!(c)),
            None => error(
                StatusCode::NOT_FOUND,
                "unknown cluster: no tracked account has it (clusters of one are named after their account)",
            ),
        }
    })
    .await
}

pub(super) async fn decisions(State(st): St, Query(q): Query<Limit>) -> Response {
    off_workers(move || {
        let latest = st.telemetry.recent().latest(q.get(50));
        json_response(StatusCode::OK, json!({ "decisions": latest }))
    })
    .await
}

/// A sentence an operator can paste into a reply to a customer.
pub(crate) fn explain(d: &Decision) -> String {
    let mut s = match d.status {
        403 => "Refused with 403: the account is blocked".to_owned(),
        429 => format!(
            "Refused with 429: the {} request or token budget{} was exhausted",
            match d.limited_by {
                Some(Scope::Cluster) => "shared cluster's",
                _ => "account's own",
            },
            match (&d.model_group, d.limited_in_group) {
                (Some(g), true) => format!(" for models `{g}`"),
                _ => String::new(),
            }
        ),
        400 => {
            "Refused with 400: the request reserves more tokens than the whole budget of its tier"
                .to_owned()
        }
        503 => "Refused with 503: the quota store was unavailable".to_owned(),
        _ if d.shadowed => format!(
            "Admitted in shadow mode, but would have been refused with 429 by the {} limit",
            d.limited_by.map_or("account", |s| s.as_str())
        ),
        _ => "Admitted".to_owned(),
    };
    s.push_str(&format!(
        " (action `{}`, tier `{}`, suspicion {:.2}",
        d.action, d.tier, d.suspicion
    ));
    if let Some(g) = &d.model_group {
        s.push_str(&format!(", model group `{g}`"));
    }
    if d.cluster.size > 1 {
        s.push_str(&format!(
            ", cluster {} of {} accounts",
            d.cluster.id, d.cluster.size
        ));
    }
    s.push(')');
    if !d.reasons.is_empty() {
        let r: Vec<String> = d
            .reasons
            .iter()
            .map(|r| format!("{} ({:.2})", r.signal, r.weight))
            .collect();
        s.push_str(&format!(". Signals: {}", r.join(", ")));
    }
    s.push('.');
    s
}

pub(super) async fn decision(State(st): St, Path(request_id): Path<String>) -> Response {
    off_workers(move || {
        match st.telemetry.recent().find(&request_id) {
            Some(rec) => {
                let explanation = explain(&rec.decision);
                json_response(
                    StatusCode::OK,
                    json!({ "decision": rec, "explanation": explanation }),
                )
            }
            None => error(
                StatusCode::NOT_FOUND,
                "no remembered decision with this request id (it may be older than the last admin.recent_decisions decisions)",
            ),
        }
    })
    .await
}

pub(super) async fn list_overrides(State(st): St) -> Response {
    off_workers(move || {
        let list: Vec<Value> = st
            .guard
            .shared()
            .overrides()
            .list()
            .into_iter()
            .map(|(a, o)| json!({ "account": a, "override": o }))
            .collect();
        json_response(StatusCode::OK, json!({ "overrides": list }))
    })
    .await
}

pub(super) async fn post_override(State(st): St, body: Bytes) -> Response {
    let req: OverrideRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"account\": \"<hash>\", \"action\": \"allow|block|unlist|pin_tier|unpin_tier|unlink|relink|clear\", \"tier\"?, \"note\"?}}: {e}"),
            )
        }
    };
    let Some(account) = AccountId::parse(&req.account) else {
        return error(StatusCode::BAD_REQUEST, "account must be 32 hex digits");
    };
    if req.note.as_ref().is_some_and(|n| n.len() > 1000) {
        return error(StatusCode::BAD_REQUEST, "note is limited to 1000 bytes");
    }
    let shared = st.guard.shared();
    let tier = match (req.action, &req.tier) {
        (OverrideAction::PinTier, Some(name)) => match shared.settings().tiers.get(name.as_str()) {
            Some(t) => Some(t.name.clone()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("tier `{name}` is not defined in the config"),
                )
            }
        },
        (OverrideAction::PinTier, None) => {
            return error(StatusCode::BAD_REQUEST, "pin_tier needs `tier`")
        }
        _ => None,
    };
    // The override first: with the Redis backend it is the step that can fail,
    // and then nothing has changed anywhere.
    let now = crate::telemetry::unix_ms();
    let o = match shared
        .overrides()
        .change(account, req.action, tier, req.note.clone(), now)
        .await
    {
        Ok(o) => o,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let engine = match (&st.hooks.cluster, req.action) {
        (Some(c), OverrideAction::Unlink) => match c.unlink(&account) {
            Ok(true) => json!("unlinked in the cluster engine and held apart"),
            Ok(false) => json!("not tracked by the cluster engine (nothing to unlink there)"),
            Err(e) => json!(format!("the cluster engine refused: {e}")),
        },
        (Some(c), OverrideAction::Relink) => match c.relink(&account) {
            Ok(true) => json!("hold ended in the cluster engine; it may link again"),
            Ok(false) => json!("not tracked by the cluster engine (nothing to relink there)"),
            Err(e) => json!(format!("the cluster engine refused: {e}")),
        },
        _ => Value::Null,
    };
    st.telemetry
        .metrics()
        .overrides(shared.overrides().counts());
    tracing::info!(account = %account, action = ?req.action, "admin override");
    json_response(
        StatusCode::OK,
        json!({ "account": account, "override": o, "cluster_engine": engine }),
    )
}

pub(super) async fn reload(State(st): St) -> Response {
    let Some(r) = &st.reloader else {
        return error(
            StatusCode::CONFLICT,
            "this guard has no config file to reload from",
        );
    };
    match r.reload(Trigger::Api).await {
        Ok(status) => json_response(StatusCode::OK, json!({ "ok": true, "status": status })),
        Err(ReloadError::NoSource) => error(
            StatusCode::CONFLICT,
            "this guard was started without a config file",
        ),
        Err(ReloadError::Invalid(e)) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "ok": false,
                "error": "the new config is invalid; the previous one stays in force",
                "errors": e.errors.iter().map(|f| json!({"path": f.path, "message": f.message})).collect::<Vec<_>>(),
                "status": r.status(),
            }),
        ),
    }
}

pub(super) async fn trace(State(st): St, Query(q): Query<HashMap<String, String>>) -> Response {
    off_workers(move || {
        let Some(index) = &st.hooks.trace else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "no trace index");
        };
        let Some(text) = q.get("text").filter(|t| !t.trim().is_empty()) else {
            return error(StatusCode::BAD_REQUEST, "give the text to trace as ?text=");
        };
        if text.len() > 100_000 {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text is limited to 100000 bytes",
            );
        }
        let limit = q
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(10)
            .clamp(1, 100);
        json_response(StatusCode::OK, json!({ "hits": index.trace(text, limit) }))
    })
    .await
}
