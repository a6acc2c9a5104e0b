use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use distill_guard::admin::{self, AdminHooks};
use distill_guard::audit;
use distill_guard::config::ServerSection;
use distill_guard::proxy::demo::DemoModel;
use distill_guard::proxy::limits::{stream_idle_timeout, ServeLimits};
use distill_guard::proxy::server::{self, Backend};
use distill_guard::proxy::upstream::Upstream;
use distill_guard::reload::Reloader;
use distill_guard::telemetry::Telemetry;
use distill_guard::Guard;

use super::CliError;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Config file (TOML). Without it, the embedded defaults are used.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides `[server] listen`; port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Upstream base URL, e.g. http://127.0.0.1:8000 (overrides `[server] upstream`).
    /// Without one, the built-in demo model answers.
    #[arg(long)]
    upstream: Option<String>,
    /// Run as a plain proxy with no guard (the kill switch, and the baseline for
    /// measuring overhead).
    #[arg(long)]
    passthrough: bool,
    /// Also serve the admin API, metrics and dashboard here (overrides
    /// `[admin] listen`; needs `[admin] token` or `token_env`).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Also serve `GET /metrics` alone, without the admin token, here (overrides
    /// `[admin] metrics_listen`; port 0 picks a free port).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

/// The command line's overrides, applied to the file's config at start and on
/// every reload.
#[derive(Debug, Clone)]
struct Overrides {
    listen: Option<SocketAddr>,
    upstream: Option<String>,
    passthrough: bool,
    admin_listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
}

impl Overrides {
    fn apply(&self, config: &mut distill_guard::Config) {
        if let Some(l) = self.listen {
            config.server.listen = l;
        }
        if let Some(u) = &self.upstream {
            config.server.upstream = Some(u.clone());
        }
        if self.passthrough {
            config.guard.enabled = false;
        }
        if let Some(a) = self.admin_listen {
            config.admin.listen = Some(a);
        }
        if let Some(m) = self.metrics_listen {
            config.admin.metrics_listen = Some(m);
        }
    }
}

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let mut config = super::load_config(args.config.as_ref())?;
    let overrides = Overrides {
        listen: args.listen,
        upstream: args.upstream,
        passthrough: args.passthrough,
        admin_listen: args.admin_listen,
        metrics_listen: args.metrics_listen,
    };
    overrides.apply(&mut config);
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::system("start the runtime"))?;
    runtime.block_on(serve(config, args.config, overrides))
}

async fn serve(
    config: distill_guard::Config,
    path: Option<PathBuf>,
    overrides: Overrides,
) -> Result<ExitCode, CliError> {
    let passthrough = overrides.passthrough;
    let server_cfg = config.server.clone();
    let backend = match &server_cfg.upstream {
        Some(url) => {
            let up = Upstream::new(url, server_cfg.connect_timeout, server_cfg.upstream_timeout)?;
            tracing::info!(upstream = %url, "forwarding to upstream");
            Backend::Upstream(Box::new(up))
        }
        None => {
            tracing::warn!(
                "no upstream configured: answering with the built-in DEMO model (not a language model)"
            );
            Backend::Demo(DemoModel::new())
        }
    };
    let admin_cfg = config.admin.clone();
    let audit_cfg = config.audit.clone();
    // The guard reports its decisions to the telemetry the admin API reads.
    let telemetry = Arc::new(Telemetry::new(admin_cfg.recent_decisions));
    let guard = Guard::builder(config).sink(telemetry.clone()).build()?;
    if let Some((sink, writer)) = audit::start(&audit_cfg, telemetry.metrics().audit_counters())
        .await
        .map_err(CliError::system("open the audit log"))?
    {
        tracing::info!(target = sink.target(), all = sink.all(), "audit log on");
        telemetry.install_audit(sink, writer);
    }
    let reloader = Reloader::new(guard.clone(), telemetry.clone(), path.clone()).with_adjust({
        let o = overrides.clone();
        move |c| o.apply(c)
    });
    reloader.spawn_watchers(
        (admin_cfg.watch_config && path.is_some()).then_some(std::time::Duration::from_secs(2)),
    );
    let backend = match backend {
        // A stalled upstream must not hold the client and its reservation.
        Backend::Upstream(_) => {
            stream_idle_timeout(backend.into_service(), server_cfg.stream_idle_timeout)
        }
        Backend::Demo(_) => backend.into_service(),
    };
    let service = server::stack((!passthrough).then_some(&guard), backend);
    let listener = tokio::net::TcpListener::bind(server_cfg.listen)
        .await
        .map_err(CliError::listen(server_cfg.listen, "proxy"))?;
    let addr = listener
        .local_addr()
        .map_err(CliError::listen(server_cfg.listen, "proxy"))?;
    if passthrough {
        tracing::warn!("--passthrough: the guard is OFF, requests are forwarded unchecked");
    }
    let shutdown = shutdown_signal()?;
    // The first line on stdout is machine-readable, for scripts and tests.
    println!("listening on http://{addr}");
    tracing::info!(%addr, "distill-guard serving");
    if let Some(admin_addr) = admin_cfg.listen {
        // The detector's cluster engine answers the cluster views and unlinks;
        // the watermark stage's index answers `/api/trace`.
        let hooks = AdminHooks::for_guard(&guard);
        match admin::router_from_config(&guard, &telemetry, Some(reloader.clone()), hooks) {
            Some(app) => {
                let a = spawn_listener(admin_addr, "admin", app, &telemetry, &server_cfg).await?;
                println!("admin on http://{a}");
                tracing::info!(addr = %a, "admin API, metrics and dashboard");
            }
            None => println!("admin disabled: no token configured"),
        }
    }
    if let Some(metrics_addr) = admin_cfg.metrics_listen {
        let app = admin::metrics_router(&guard, &telemetry, AdminHooks::for_guard(&guard));
        let a = spawn_listener(metrics_addr, "metrics", app, &telemetry, &server_cfg).await?;
        println!("metrics on http://{a}/metrics");
        tracing::info!(addr = %a, "Prometheus metrics, no token");
    }
    server::run(
        listener,
        server::app_with_limits(service, ServeLimits::of(&server_cfg)),
        server_cfg.header_read_timeout,
        shutdown,
        server_cfg.shutdown_timeout,
    )
    .await
    .map_err(CliError::Serve)?;
    if let Some(writer) = telemetry.close_audit() {
        // Requests still in flight after the grace period may add a last record;
        // what is queued is written, within a bound.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    }
    tracing::info!("shut down");
    Ok(ExitCode::SUCCESS)
}

/// Binds `addr` and serves `app` there (the admin API or the metrics alone) until
/// shutdown; returns the bound address.
async fn spawn_listener(
    addr: SocketAddr,
    what: &'static str,
    app: axum::Router,
    telemetry: &Arc<Telemetry>,
    server_cfg: &ServerSection,
) -> Result<SocketAddr, CliError> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(CliError::listen(addr, what))?;
    let bound = l.local_addr().map_err(CliError::listen(addr, what))?;
    let t = telemetry.clone();
    let stop = shutdown_signal()?;
    let header_read_timeout = server_cfg.header_read_timeout;
    tokio::spawn(async move {
        if let Err(e) = admin::serve(l, app, t, header_read_timeout, stop).await {
            tracing::error!(error = %e, "{what} listener failed");
        }
    });
    Ok(bound)
}

/// Registers the shutdown signals now (so a signal sent right after the
/// "listening" line is not lost) and resolves when one arrives.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, CliError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(CliError::system("install the SIGTERM handler"))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(CliError::system("install the SIGINT handler"))?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutdown signal received; finishing in-flight requests");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown signal received; finishing in-flight requests");
        })
    }
}
