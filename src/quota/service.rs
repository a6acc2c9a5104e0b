use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tracing::field::{display, Empty};

use super::body::{Charged, EnforceBody, SettleGuard};
use super::headers;
use super::stage::EnforceStage;
use super::usage::UsageScanner;
use crate::dialect::{error_response, rate_limit_response, Dialect, ErrorKind};
use crate::extensions::{
    Account, Action, Cluster, Decision, Reason, Scope, Suspicion, TierName, Verdict,
};
use crate::policy::ListKind;
use crate::request::{request_id, RequestInfo};
use crate::stage::ModelGroup;
use crate::stage::{
    prepared, unprepared, Sealed, Settings, Stage, StageFuture, StageService, Step, Tier,
};
use crate::store::{Admission, Denial, Limits, Outcome, StoreError, StoreFuture, Subject, Window};

/// The enforce stage: charges each request to its account's and cluster's buckets
/// and answers 429/400/403 in the path's dialect when it may not pass. See
/// [`crate::quota`].
pub type Enforce<S> = StageService<EnforceStage, S>;

/// The response future of [`Enforce`].
pub type EnforceFuture<S, ReqBody, ResBody> = StageFuture<EnforceStage, S, ReqBody, ResBody>;

/// What an admitted request carries to its response: the headers to write and
/// the reservation to settle.
#[derive(Debug)]
pub struct Admitted {
    decision: Decision,
    dialect: Dialect,
    now_ms: u64,
    views: headers::Views,
    /// Settled when the body ends, unless shadowed or nothing was reserved:
    /// the subjects charged, the tokens reserved and the input estimate.
    settle: Option<(Charged, u64, u64)>,
}

impl Sealed for EnforceStage {}

impl<ReqBody, ResBody> Stage<ReqBody, ResBody> for EnforceStage {
    /// The store's admission.
    type Wait = StoreFuture<'static, Outcome>;
    type Plan = (Plan, Instant);
    type Ctx = Admitted;
    type Body = EnforceBody<ResBody>;

    fn settings(&self) -> Arc<Settings> {
        self.settings.load()
    }

    fn span(&self, req: &Request<ReqBody>) -> tracing::Span {
        let span = tracing::info_span!(
            "guard",
            request_id = Empty,
            account = Empty,
            cluster = Empty,
            action = Empty,
            status = Empty
        );
        if let Some(id) = request_id(req.headers()) {
            span.record("request_id", &*id);
        }
        span
    }

    fn refused(&self, res: &Response<Bytes>) {
        self.sink.unidentified(res.status().as_u16());
    }

    fn start(
        &self,
        settings: &Settings,
        req: Request<ReqBody>,
    ) -> Step<Request<ReqBody>, Self::Wait, Self::Plan, Admitted> {
        let Some((account, info)) = prepared(&req) else {
            return Step::Answer(unprepared(&req));
        };
        let plan = plan(settings, self, &req, account, &info);
        let dialect = info.dialect;
        if plan.action == Action::Block && (!plan.shadow || plan.blocklisted) {
            let res = error_response(
                dialect,
                ErrorKind::Forbidden,
                "This account has been blocked for automated bulk extraction. Contact support if you believe this is a mistake.",
            );
            return Step::Answer(self.refuse(res, plan.decision(403, None, false), &plan));
        }
        if let Some(message) = plan.too_large() {
            if !plan.shadow {
                let mut res = error_response(dialect, ErrorKind::InvalidRequest, &message);
                // It can never fit: no client should retry it, whatever its policy.
                headers::write_no_retry(res.headers_mut());
                return Step::Answer(self.refuse(res, plan.decision(400, None, false), &plan));
            }
        }
        let wait = self.store.admit(&plan.admission);
        Step::Wait(wait, req, (plan, Instant::now()))
    }

    fn resume(
        &self,
        admitted: Result<Outcome, StoreError>,
        mut req: Request<ReqBody>,
        (plan, asked): Self::Plan,
    ) -> Step<Request<ReqBody>, Self::Wait, Self::Plan, Admitted> {
        self.sink
            .store_call(asked.elapsed().as_secs_f64(), admitted.is_ok());
        let dialect = plan.dialect;
        let outcome = match admitted {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "quota store failed; refusing the request");
                let res = error_response(
                    dialect,
                    ErrorKind::Unavailable,
                    "Rate limiting is temporarily unavailable; please retry shortly.",
                );
                return Step::Answer(self.refuse(res, plan.decision(503, None, false), &plan));
            }
        };
        let views = headers::Views::of(&outcome.views, plan.group.clone());
        let mut shadowed = false;
        if let Some(denial) = outcome.denied {
            if plan.shadow {
                shadowed = true;
                tracing::info!(
                    account = %plan.account.id, scope = denial.scope.as_str(),
                    model_group = plan.group.as_deref().filter(|_| denial.model_group),
                    window = denial.window.describe(), "shadow mode: would have rejected"
                );
            } else {
                let (res, d) = reject(&plan, &outcome, denial, views);
                return Step::Answer(self.refuse(res, d, &plan));
            }
        }
        let decision = plan.decision(200, outcome.denied, shadowed);
        note(self, &decision, dialect, plan.admission.now_ms);
        req.extensions_mut().insert(decision.clone());
        if plan.admission.tokens > 0.0 {
            // The usage must be readable: ask for the answer uncompressed.
            crate::encoding::ask_identity(req.headers_mut());
        }
        let settle = (!shadowed && plan.admission.tokens > 0.0).then(|| {
            let a = &plan.admission;
            (
                Charged {
                    account: a.account.clone(),
                    cluster: a.cluster.clone(),
                    account_group: a.account_group.clone(),
                    cluster_group: a.cluster_group.clone(),
                },
                plan.tokens,
                plan.input_estimate,
            )
        });
        Step::Call(
            req,
            Admitted {
                decision,
                dialect,
                now_ms: plan.admission.now_ms,
                views,
                settle,
            },
        )
    }

    fn finish(
        stage: &Arc<Self>,
        ctx: Admitted,
        res: Response<ResBody>,
    ) -> Response<EnforceBody<ResBody>> {
        let (mut parts, body) = res.into_parts();
        ctx.views.write(&mut parts.headers, ctx.dialect, ctx.now_ms);
        let settle = ctx
            .settle
            .map(|(charged, reserved, input_estimate)| SettleGuard {
                stage: stage.clone(),
                charged,
                reserved,
                input_estimate,
                success: parts.status.is_success(),
                scanner: UsageScanner::for_response(&parts.headers),
                done: false,
            });
        parts.extensions.insert(ctx.decision);
        Response::from_parts(parts, EnforceBody::new(body, settle))
    }

    fn answer(res: Response<Bytes>) -> Response<EnforceBody<ResBody>> {
        res.map(EnforceBody::full)
    }

    fn pass(res: Response<ResBody>) -> Response<EnforceBody<ResBody>> {
        res.map(EnforceBody::passthrough)
    }
}

impl EnforceStage {
    /// A refusal written by the stage: reported, and carrying its decision.
    fn refuse(&self, mut res: Response<Bytes>, d: Decision, plan: &Plan) -> Response<Bytes> {
        note(self, &d, plan.dialect, plan.admission.now_ms);
        res.extensions_mut().insert(d);
        res
    }
}

fn scaled(base: &Limits, m: f64) -> Limits {
    let mut out = *base;
    for l in out.iter_mut().flatten() {
        *l = l.scaled(m);
    }
    out
}

/// Reports a decision: to the sink (metrics, the decision memory, the audit
/// log) and in the request's tracing span.
fn note(stage: &EnforceStage, d: &Decision, dialect: Dialect, now_ms: u64) {
    stage.sink.decision(d, dialect, now_ms);
    let span = tracing::Span::current();
    span.record("account", display(&d.account));
    span.record("cluster", display(&d.cluster.id));
    span.record("action", d.action.as_str());
    span.record("status", d.status);
    tracing::debug!(
        suspicion = d.suspicion,
        cluster_size = d.cluster.size,
        tier = &*d.tier,
        model_group = d.model_group.as_deref(),
        limited_by = d.limited_by.map(|s| s.as_str()),
        shadowed = d.shadowed,
        "decision"
    );
}

/// Everything decided before the store is asked.
#[derive(Debug)]
pub struct Plan {
    request_id: Option<Arc<str>>,
    dialect: Dialect,
    /// An operator blocklisted the account: 403 even in shadow mode.
    blocklisted: bool,
    account: Account,
    cluster: Cluster,
    suspicion: f64,
    action: Action,
    reasons: Vec<crate::extensions::Reason>,
    tier: Arc<Tier>,
    /// The request's model group in its tier, if its model matched one.
    group: Option<Arc<str>>,
    shadow: bool,
    tokens: u64,
    input_estimate: u64,
    output_cap: u64,
    choices: u64,
    admission: Admission,
}

fn plan<B>(
    settings: &Settings,
    stage: &EnforceStage,
    req: &Request<B>,
    account: Account,
    info: &RequestInfo,
) -> Plan {
    let ext = req.extensions();
    let ov = stage.overrides.get(&account.id);
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
    let group = model_group(&tier, info);
    let cluster_multiplier = multiplier * settings.cluster_scale(cluster.size);
    let account_subject =
        Subject::new(Scope::Account, account.id.0, scaled(&tier.base, multiplier));
    let cluster_subject = (cluster.id.0 != account.id.0 || cluster.size > 1).then(|| {
        Subject::new(
            Scope::Cluster,
            cluster.id.0,
            scaled(&tier.base, cluster_multiplier),
        )
    });
    let account_group =
        group.map(|g| account_subject.in_group(g.name.clone(), scaled(&g.limits, multiplier)));
    let cluster_group = group
        .zip(cluster_subject.as_ref())
        .map(|(g, c)| c.in_group(g.name.clone(), scaled(&g.limits, cluster_multiplier)));
    let group = group.map(|g| g.name.clone());
    Plan {
        request_id: request_id(req.headers()),
        dialect: info.dialect,
        blocklisted: list == Some(ListKind::Block),
        account,
        cluster,
        suspicion,
        action,
        reasons: verdict.reasons,
        tier,
        group,
        shadow,
        tokens,
        input_estimate: info.input_tokens_estimate,
        output_cap,
        choices: info.choices,
        admission: Admission {
            now_ms: stage.clock.now_ms(),
            account: account_subject,
            cluster: cluster_subject,
            account_group,
            cluster_group,
            tokens: tokens as f64,
        },
    }
}

/// The model group of `tier` a request belongs to: the most specific pattern
/// matching its `model` field. A body that is not a JSON object, or has no
/// string `model`, belongs to no group (the tier's limits alone apply).
fn model_group<'t>(tier: &'t Tier, info: &RequestInfo) -> Option<&'t ModelGroup> {
    if tier.models.is_empty() {
        return None;
    }
    let model = info.json.as_ref()?.get("model")?.as_str()?;
    tier.group_for(model)
}

impl Plan {
    fn decision(&self, status: u16, denial: Option<Denial>, shadowed: bool) -> Decision {
        Decision {
            request_id: self.request_id.clone(),
            account: self.account.id,
            cluster: self.cluster,
            suspicion: self.suspicion,
            action: self.action,
            status,
            limited_by: denial.map(|d| d.scope),
            shadowed,
            reserved_tokens: self.tokens,
            tier: self.tier.name.clone(),
            model_group: self.group.clone(),
            limited_in_group: denial.is_some_and(|d| d.model_group),
            reasons: self.reasons.clone(),
        }
    }

    /// The message for a request that no amount of waiting would admit.
    fn too_large(&self) -> Option<String> {
        let group = self
            .group
            .as_deref()
            .and_then(|name| self.tier.group_named(name));
        let budgets = std::iter::once((&self.tier.base, None))
            .chain(group.map(|g| (&g.limits, Some(&*g.name))));
        for (limits, group) in budgets {
            for w in [Window::TokensPerMinute, Window::TokensPerDay] {
                if let Some(limit) = limits[w.index()] {
                    if self.tokens as f64 > limit.capacity {
                        let whose = match group {
                            Some(g) => {
                                format!("models `{g}` in this account's tier `{}`", self.tier.name)
                            }
                            None => format!("this account's tier `{}`", self.tier.name),
                        };
                        return Some(format!(
                            "This request may use up to {} tokens (about {} input + {} × {} output), more than the whole {} budget of {} for {whose}. It can never be served as is: lower max_tokens or shorten the input.",
                            self.tokens,
                            self.input_estimate,
                            self.choices,
                            self.output_cap,
                            w.describe(),
                            limit.capacity as u64,
                        ));
                    }
                }
            }
        }
        None
    }
}

/// The 429 of a denied admission, and its decision.
fn reject(
    plan: &Plan,
    outcome: &Outcome,
    denial: Denial,
    views: headers::Views,
) -> (Response<Bytes>, Decision) {
    let dialect = plan.dialect;
    let group = plan.group.as_deref().filter(|_| denial.model_group);
    let who = match (denial.scope, group) {
        (Scope::Account, None) => "this account".to_owned(),
        (Scope::Cluster, None) => "the group of accounts this account belongs to".to_owned(),
        (Scope::Account, Some(g)) => format!("this account on models `{g}`"),
        (Scope::Cluster, Some(g)) => {
            format!("the group of accounts this account belongs to on models `{g}`")
        }
    };
    let row = Outcome::row(denial.scope, denial.model_group);
    let limit = outcome.views[row][denial.window.index()].map_or(0, |v| v.limit as u64);
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
    views.write(res.headers_mut(), dialect, plan.admission.now_ms);
    headers::write_retry_after(res.headers_mut(), retry_ms);
    if denial.retry_after_ms.is_none() {
        // Not admissible at the current limit at all: waiting alone will not help.
        headers::write_no_retry(res.headers_mut());
    }
    let mut limit_header = format!(
        "{}; {}",
        denial.scope.as_str(),
        headers::policy_name(denial.window)
    );
    if let Some(g) = group {
        limit_header.push_str(&format!("; model=\"{g}\""));
    }
    if let Ok(v) = HeaderValue::from_str(&limit_header) {
        res.headers_mut().insert("x-distill-guard-limit", v);
    }
    (res, plan.decision(429, Some(denial), false))
}
