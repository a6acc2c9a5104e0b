//! The admin API, Prometheus metrics and the dashboard, on their own listener.
//!
//! ```toml
//! [admin]
//! listen = "127.0.0.1:9090"
//! token = "a long random token"   # or token_env = "NAME"
//! ```
//!
//! Every endpoint except the dashboard's static page and assets needs
//! `Authorization: Bearer <token>` (compared in constant time); a missing or wrong
//! token gets 401. Without a token configured the admin listener is **disabled**,
//! never open: [`router_from_config`] returns `None` and logs why.
//!
//! | Method | Path | What |
//! |---|---|---|
//! | GET | `/` | the dashboard (static page; it asks for the token) |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/api/status` | config status, reloads, uptime, counters, timeline |
//! | GET | `/api/accounts` | top accounts in recent decisions |
//! | GET | `/api/accounts/{hash}` | buckets, tier, overrides, cluster, recent decisions |
//! | GET | `/api/clusters` | largest and most suspicious clusters |
//! | GET | `/api/clusters/{id}` | one cluster: members, linking evidence, suspicion |
//! | GET | `/api/decisions` | latest decisions |
//! | GET | `/api/decisions/{request_id}` | one past decision, explained |
//! | GET/POST | `/api/overrides` | list / change allowlist, blocklist, tier pins, unlinks |
//! | POST | `/api/reload` | reload the config file |
//! | GET | `/api/trace?text=` | watermark trace-back |
//!
//! [`metrics_router`] serves `/metrics` alone, without the token, for a
//! listener of its own (`[admin] metrics_listen`) that Prometheus scrapes.
//!
//! `docs/admin.md` has curl examples for each. The guard's own cluster engine
//! answers the cluster views; other engines plug in through [`AdminHooks`].
//!
//! ```
//! use std::sync::Arc;
//! use distill_guard::admin::{self, AdminHooks};
//! use distill_guard::telemetry::Telemetry;
//! use distill_guard::{Config, Guard};
//!
//! // The guard reports its decisions to the telemetry the admin API reads.
//! let telemetry = Arc::new(Telemetry::new(10_000));
//! let guard = Guard::builder(Config::with_secret("s"))
//!     .sink(telemetry.clone())
//!     .build()
//!     .expect("valid");
//! // No token configured: no admin router.
//! assert!(admin::router_from_config(&guard, &telemetry, None, AdminHooks::default()).is_none());
//! let app = admin::router(&guard, &telemetry, "a long random admin token", None, AdminHooks::default());
//! # let _ = app;
//! ```

mod adapters;
mod auth;
mod dashboard;
mod handlers;
mod hooks;
mod inspect;
mod overrides;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use crate::config::{AdminConfig, MIN_TOKEN_LEN};
pub use hooks::{
    AccountView, AdminHooks, ClusterInspector, ClusterView, KindEvidence, LinkEvidence, SizeCount,
    TopClusters, TraceHit, TraceIndex,
};
pub use inspect::DetectorInspector;
pub use overrides::OverrideRequest;

use crate::guard::Guard;
use crate::reload::Reloader;
use crate::telemetry::Telemetry;

/// Where the admin token comes from.
pub(crate) enum TokenSource {
    /// Given to [`router`].
    Fixed(auth::TokenDigest),
    /// The config in force (`[admin] token` / `token_env`), so a reload can
    /// rotate it; no token in force refuses everything.
    Config,
}

pub(crate) struct AdminState {
    guard: Guard,
    telemetry: Arc<Telemetry>,
    token: TokenSource,
    reloader: Option<Reloader>,
    hooks: AdminHooks,
}

/// The admin router with `token` as its bearer token. `telemetry` must be the
/// sink `guard` reports to ([`GuardBuilder::sink`](crate::GuardBuilder::sink)):
/// metrics, decisions and the audit status come from it. `reloader` enables
/// `POST /api/reload` and the reload status; `hooks` plug in the cluster engine
/// and the trace index.
pub fn router(
    guard: &Guard,
    telemetry: &Arc<Telemetry>,
    token: &str,
    reloader: Option<Reloader>,
    hooks: AdminHooks,
) -> Router {
    build(
        guard,
        telemetry,
        TokenSource::Fixed(auth::TokenDigest::new(token)),
        reloader,
        hooks,
    )
}

fn build(
    guard: &Guard,
    telemetry: &Arc<Telemetry>,
    token: TokenSource,
    reloader: Option<Reloader>,
    mut hooks: AdminHooks,
) -> Router {
    let own = AdminHooks::for_guard(guard);
    hooks.cluster = hooks.cluster.or(own.cluster);
    hooks.trace = hooks.trace.or(own.trace);
    let state = Arc::new(AdminState {
        guard: guard.clone(),
        telemetry: telemetry.clone(),
        token,
        reloader,
        hooks,
    });
    let api = Router::new()
        .route("/metrics", get(handlers::metrics))
        .route("/api/status", get(handlers::status))
        .route("/api/accounts", get(handlers::accounts))
        .route("/api/accounts/{hash}", get(handlers::account))
        .route("/api/clusters", get(handlers::clusters))
        .route("/api/clusters/{id}", get(handlers::cluster))
        .route("/api/decisions", get(handlers::decisions))
        .route("/api/decisions/{request_id}", get(handlers::decision))
        .route(
            "/api/overrides",
            get(handlers::list_overrides).post(handlers::post_override),
        )
        .route("/api/reload", post(handlers::reload))
        .route("/api/trace", get(handlers::trace))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            handlers::require_token,
        ));
    Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .merge(api)
        .fallback(handlers::not_found)
        .with_state(state)
}

/// A router serving only `GET /metrics` (Prometheus text), with no token: for
/// a listener of its own (`[admin] metrics_listen`) that scrapers reach. The
/// same figures as the admin listener's `/metrics`; everything else is 404.
pub fn metrics_router(guard: &Guard, telemetry: &Arc<Telemetry>, hooks: AdminHooks) -> Router {
    let own = AdminHooks::for_guard(guard);
    let state = Arc::new(AdminState {
        guard: guard.clone(),
        telemetry: telemetry.clone(),
        // Never consulted: no route here checks a token.
        token: TokenSource::Config,
        reloader: None,
        hooks: AdminHooks {
            cluster: hooks.cluster.or(own.cluster),
            trace: hooks.trace.or(own.trace),
        },
    });
    Router::new()
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .with_state(state)
}

/// The admin router if the guard's config has a token (`[admin] token` or
/// `token_env`); otherwise `None`, with an error-level log line saying the admin
/// listener stays disabled. The token is read from the config in force at each
/// request, so a reload rotates it (and a reload that removes it refuses every
/// admin request).
pub fn router_from_config(
    guard: &Guard,
    telemetry: &Arc<Telemetry>,
    reloader: Option<Reloader>,
    hooks: AdminHooks,
) -> Option<Router> {
    let settings = guard.shared().settings();
    match settings.config.admin.resolve_token() {
        Some(_) => Some(build(
            guard,
            telemetry,
            TokenSource::Config,
            reloader,
            hooks,
        )),
        None => {
            tracing::error!(
                "admin listener disabled: no [admin] token or token_env configured \
                 (it is never served without authentication)"
            );
            None
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; every 10 s also drains
/// histogram samples so an unscraped `/metrics` stays bounded. (The
/// `distill_guard_clusters` gauge is refreshed by each `/metrics` scrape.) A
/// connection that goes `header_read_timeout` without completing a request's
/// headers is closed (see [`crate::listen::serve`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    telemetry: Arc<Telemetry>,
    header_read_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tick.tick().await;
            telemetry.metrics().upkeep();
        }
    });
    let res = crate::listen::serve(listener, app, header_read_timeout, shutdown).await;
    upkeep.abort();
    res
}
