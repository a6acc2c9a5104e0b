use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use tower::Service;
use tracing::field::{display, Empty};
use tracing::Instrument;

use super::body::{EnforceBody, SettleGuard};
use super::headers;
use super::layer::EnforceState;
use super::usage::UsageScanner;
use crate::dialect::{error_response, rate_limit_response, Dialect, ErrorKind};
use crate::extensions::{
    Account, Action, Cluster, Decision, Reason, Scope, Suspicion, TierName, Verdict,
};
use crate::policy::ListKind;
use crate::request::{request_id, RequestInfo};
use crate::stage::{prepare, Settings, Tier};
use crate::store::{Admission, Limits, Outcome, Subject, Window};

/// The enforce stage: charges each request to its account's and cluster's buckets
/// and answers 429/400/403 in the path's dialect when it may not pass. See
/// [`crate::quota`].
#[derive(Clone)]
pub struct Enforce<S> {
    pub(crate) inner: S,
    pub(crate) state: Arc<EnforceState>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Enforce<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforce")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The future of [`Enforce`]. Admission awaits the store, so it is boxed once.
pub type EnforceFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<EnforceBody<B>>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Enforce<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body + Send + 'static,
{
    type Response = Response<EnforceBody<ResBody>>;
    type Error = S::Error;
    type Future = EnforceFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The ready inner service goes into the future; a fresh clone stays behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let span = tracing::info_span!(
            "guard",
            request_id = Empty,
            account = Empty,
            cluster = Empty,
            action = Empty,
            status = Empty
        );
        Box::pin(enforce(state, inner, req).instrument(span))
    }
}

fn scaled(base: &Limits, m: f64) -> Limits {
    let mut out = *base;
    for l in out.iter_mut().flatten() {
        *l = l.scaled(m);
    }
    out
}

fn with_decision<B>(mut res: Response<B>, decision: Decision) -> Response<B> {
    res.extensions_mut().insert(decision);
    res
}

/// Reports a decision: metrics, the decision memory, the audit log and the
/// request's tracing span.
fn note(state: &EnforceState, d: &Decision, dialect: Dialect, now_ms: u64) {
    state.sink.decision(d, dialect, now_ms);
    let span = tracing::Span::current();
    span.record("account", display(&d.account));
    span.record("cluster", display(&d.cluster.id));
    span.record("action", d.action.as_str());
    span.record("status", d.status);
    tracing::debug!(
        suspicion = d.suspicion,
        cluster_size = d.cluster.size,
        tier = &*d.tier,
        limited_by = d.limited_by.map(|s| s.as_str()),
        shadowed = d.shadowed,
        "decision"
    );
}

async fn enforce<S, ReqBody, ResBody>(
    state: Arc<EnforceState>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<EnforceBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body,
{
    let settings = state.settings.load();
    if !settings.enabled {
        return Ok(inner.call(req).await?.map(EnforceBody::passthrough));
    }
    let request_id = request_id(req.headers());
    if let Some(id) = &request_id {
        tracing::Span::current().record("request_id", &**id);
    }
    let mut req = match prepare(&settings, req).await {
        Ok(r) => r,
        Err(res) => {
            state.sink.unidentified(res.status().as_u16());
            return Ok(res.map(EnforceBody::full));
        }
    };
    let (Some(account), Some(info)) = (
        req.extensions().get::<Account>().copied(),
        req.extensions().get::<Arc<RequestInfo>>().cloned(),
    ) else {
        // `prepare` inserts both; reaching here would be a bug, so fail closed.
        let res = error_response(
            Dialect::from_path(req.uri().path()),
            ErrorKind::Unavailable,
            "The guard could not identify this request.",
        );
        return Ok(res.map(EnforceBody::full));
    };
    let plan = plan(&settings, &state, &req, account, &info, request_id);
    let dialect = info.dialect;
    let now_ms = plan.admission.now_ms;

    if plan.action == Action::Block && (!plan.shadow || plan.blocklisted) {
        let res = error_response(
            dialect,
            ErrorKind::Forbidden,
            "This account has been blocked for automated bulk extraction. Contact support if you believe this is a mistake.",
        );
        let d = plan.decision(403, None, false);
        note(&state, &d, dialect, now_ms);
        return Ok(with_decision(res, d).map(EnforceBody::full));
    }

    if let Some(message) = plan.too_large() {
        if !plan.shadow {
            let mut res = error_response(dialect, ErrorKind::InvalidRequest, &message);
            // It can never fit: no client should retry it, whatever its policy.
            headers::write_no_retry(res.headers_mut());
            let d = plan.decision(400, None, false);
            note(&state, &d, dialect, now_ms);
            return Ok(with_decision(res, d).map(EnforceBody::full));
        }
    }

    let started = std::time::Instant::now();
    let admitted = state.store.admit(&plan.admission).await;
    state
        .sink
        .store_call(started.elapsed().as_secs_f64(), admitted.is_ok());
    let outcome = match admitted {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "quota store failed; refusing the request");
            let res = error_response(
                dialect,
                ErrorKind::Unavailable,
                "Rate limiting is temporarily unavailable; please retry shortly.",
            );
            let d = plan.decision(503, None, false);
            note(&state, &d, dialect, now_ms);
            return Ok(with_decision(res, d).map(EnforceBody::full));
        }
    };
    let views = headers::effective(&outcome.views);
    let mut shadowed = false;
    if let Some(denial) = outcome.denied {
        if plan.shadow {
            shadowed = true;
            tracing::info!(
                account = %plan.account.id, scope = denial.scope.as_str(),
                window = denial.window.describe(), "shadow mode: would have rejected"
            );
        } else {
            let res = reject(&plan, &outcome, denial, views, dialect);
            if let Some(d) = res.extensions().get::<Decision>() {
                note(&state, d, dialect, now_ms);
            }
            return Ok(res.map(EnforceBody::full));
        }
    }

    let decision = plan.decision(200, outcome.denied.map(|d| d.scope), shadowed);
    note(&state, &decision, dialect, now_ms);
    req.extensions_mut().insert(decision.clone());
    let res = inner.call(req).await?;
    let (mut parts, body) = res.into_parts();
    headers::write(&mut parts.headers, dialect, &views, plan.admission.now_ms);
    let settle = (!shadowed && plan.admission.tokens > 0.0).then(|| SettleGuard {
        state: state.clone(),
        account: plan.admission.account.clone(),
        cluster: plan.admission.cluster.clone(),
        reserved: plan.tokens,
        input_estimate: info.input_tokens_estimate,
        success: parts.status.is_success(),
        scanner: UsageScanner::for_content_type(
            parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        ),
        done: false,
    });
    parts.extensions.insert(decision);
    Ok(Response::from_parts(parts, EnforceBody::new(body, settle)))
}

/// Everything decided before the store is asked.
struct Plan {
    request_id: Option<Arc<str>>,
    /// An operator blocklisted the account: 403 even in shadow mode.
    blocklisted: bool,
    account: Account,
    cluster: Cluster,
    suspicion: f64,
    action: Action,
    reasons: Vec<crate::extensions::Reason>,
    tier: Arc<Tier>,
    shadow: bool,
    tokens: u64,
    input_estimate: u64,
    output_cap: u64,
    choices: u64,
    admission: Admission,
}

fn plan<B>(
    settings: &Settings,
    state: &EnforceState,
    req: &Request<B>,
    account: Account,
    info: &RequestInfo,
    request_id: Option<Arc<str>>,
) -> Plan {
    let ext = req.extensions();
    let ov = state.overrides.get(&account.id);
    let ov = ov.as_ref();
    let list = ov.and_then(|o| o.list);
    let cluster = match ext.get::<Cluster>().copied() {
        Some(c) if !ov.is_some_and(|o| o.unlinked) && list != Some(ListKind::Allow) => c,
        _ => Cluster::singleton(account.id),
    };
    let suspicion = ext.get::<Suspicion>().map_or(0.0, |s| s.value());
    let mut verdict = ext.get::<Verdict>().cloned().unwrap_or_default();
    let mut multiplier = settings.multiplier(suspicion);
    match list {
        Some(ListKind::Allow) => {
            multiplier = 1.0;
            verdict = Verdict {
                action: Action::Allow,
                reasons: vec![Reason {
                    signal: "operator_allowlist".into(),
                    weight: 0.0,
                }],
            };
        }
        Some(ListKind::Block) => {
            verdict = Verdict {
                action: Action::Block,
                reasons: vec![Reason {
                    signal: "operator_blocklist".into(),
                    weight: 1.0,
                }],
            };
        }
        None => {}
    }
    let action = if verdict.action == Action::Allow && multiplier < 1.0 {
        Action::Throttle
    } else {
        verdict.action
    };
    let pinned = ov
        .and_then(|o| o.tier.as_deref())
        .filter(|name| settings.tiers.contains_key(*name));
    let tier = settings.tier_for(
        &account.id,
        pinned.or_else(|| ext.get::<TierName>().map(|t| &*t.0)),
    );
    let shadow = settings.shadow || tier.shadow;
    let output_cap = info
        .max_output_tokens
        .unwrap_or(settings.default_max_output_tokens);
    let tokens = if info.endpoint.generates() && req.method() == http::Method::POST {
        info.input_tokens_estimate
            .saturating_add(info.choices.saturating_mul(output_cap))
    } else {
        0
    };
    let account_subject = Subject {
        scope: Scope::Account,
        key: account.id.0,
        limits: scaled(&tier.base, multiplier),
    };
    let cluster_subject = (cluster.id.0 != account.id.0 || cluster.size > 1).then(|| Subject {
        scope: Scope::Cluster,
        key: cluster.id.0,
        limits: scaled(
            &tier.base,
            multiplier * settings.cluster_scale(cluster.size),
        ),
    });
    Plan {
        request_id,
        blocklisted: list == Some(ListKind::Block),
        account,
        cluster,
        suspicion,
        action,
        reasons: verdict.reasons,
        tier,
        shadow,
        tokens,
        input_estimate: info.input_tokens_estimate,
        output_cap,
        choices: info.choices,
        admission: Admission {
            now_ms: state.clock.now_ms(),
            account: account_subject,
            cluster: cluster_subject,
            tokens: tokens as f64,
        },
    }
}

impl Plan {
    fn decision(&self, status: u16, limited_by: Option<Scope>, shadowed: bool) -> Decision {
        Decision {
            request_id: self.request_id.clone(),
            account: self.account.id,
            cluster: self.cluster,
            suspicion: self.suspicion,
            action: self.action,
            status,
            limited_by,
            shadowed,
            reserved_tokens: self.tokens,
            tier: self.tier.name.clone(),
            reasons: self.reasons.clone(),
        }
    }

    /// The message for a request that no amount of waiting would admit.
    fn too_large(&self) -> Option<String> {
        for w in [Window::TokensPerMinute, Window::TokensPerDay] {
            if let Some(limit) = self.tier.base[w.index()] {
                if self.tokens as f64 > limit.capacity {
                    return Some(format!(
                        "This request may use up to {} tokens (about {} input + {} × {} output), more than the whole {} budget of {} for this account's tier `{}`. It can never be served as is: lower max_tokens or shorten the input.",
                        self.tokens,
                        self.input_estimate,
                        self.choices,
                        self.output_cap,
                        w.describe(),
                        limit.capacity as u64,
                        self.tier.name,
                    ));
                }
            }
        }
        None
    }
}

fn reject(
    plan: &Plan,
    outcome: &Outcome,
    denial: crate::store::Denial,
    views: [Option<crate::store::BucketView>; 4],
    dialect: Dialect,
) -> Response<Bytes> {
    let who = match denial.scope {
        Scope::Account => "this account",
        Scope::Cluster => "the group of accounts this account belongs to",
    };
    let sub = match denial.scope {
        Scope::Account => 0,
        Scope::Cluster => 1,
    };
    let limit = outcome.views[sub][denial.window.index()].map_or(0, |v| v.limit as u64);
    let retry_ms = denial.retry_after_ms.unwrap_or(denial.window.window_ms());
    let message = match denial.retry_after_ms {
        Some(ms) => format!(
            "Rate limit reached for {who}: {limit} {}{}. Please try again in {}.",
            denial.window.describe(),
            if plan.tokens > 0 && denial.window.is_tokens() {
                format!(" (this request reserves {} tokens)", plan.tokens)
            } else {
                String::new()
            },
            headers::go_duration(ms),
        ),
        None => format!(
            "Rate limit reached for {who}: the current limit of {limit} {} cannot admit this request.",
            denial.window.describe()
        ),
    };
    let mut res = rate_limit_response(dialect, denial.window.is_tokens(), &message);
    headers::write(res.headers_mut(), dialect, &views, plan.admission.now_ms);
    headers::write_retry_after(res.headers_mut(), retry_ms);
    if denial.retry_after_ms.is_none() {
        // Not admissible at the current limit at all: waiting alone will not help.
        headers::write_no_retry(res.headers_mut());
    }
    res.headers_mut().insert(
        "x-distill-guard-limit",
        HeaderValue::from_static(match (denial.scope, denial.window) {
            (Scope::Account, Window::RequestsPerMinute) => "account; requests-minute",
            (Scope::Account, Window::RequestsPerDay) => "account; requests-day",
            (Scope::Account, Window::TokensPerMinute) => "account; tokens-minute",
            (Scope::Account, Window::TokensPerDay) => "account; tokens-day",
            (Scope::Cluster, Window::RequestsPerMinute) => "cluster; requests-minute",
            (Scope::Cluster, Window::RequestsPerDay) => "cluster; requests-day",
            (Scope::Cluster, Window::TokensPerMinute) => "cluster; tokens-minute",
            (Scope::Cluster, Window::TokensPerDay) => "cluster; tokens-day",
        }),
    );
    with_decision(res, plan.decision(429, Some(denial.scope), false))
}
