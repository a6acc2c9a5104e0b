use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use distill_guard::proxy::demo::DemoModel;
use distill_guard::proxy::server::{self, Backend};
use distill_guard::proxy::upstream::Upstream;
use distill_guard::watermark::Watermarker;
use distill_guard::Guard;

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
}

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let mut config = super::load_config(args.config.as_ref())?;
    if let Some(l) = args.listen {
        config.server.listen = l;
    }
    if let Some(u) = args.upstream {
        config.server.upstream = Some(u);
    }
    if args.passthrough {
        config.guard.enabled = false;
    }
    config.validate().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(config, args.passthrough))
}

async fn serve(config: distill_guard::Config, passthrough: bool) -> Result<ExitCode, String> {
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
    // The watermark stage sits between the guard's stages and the backend; without
    // a signing key it could tag nothing, so it is left out.
    let mut backend = backend.into_service();
    if !passthrough && !config.watermark.keys.is_empty() {
        let marker = Watermarker::from_config(&config.watermark).map_err(|e| e.to_string())?;
        backend = server::watermarked(Arc::new(marker), backend);
    }
    let guard = Guard::from_config(config).map_err(|e| e.to_string())?;
    let service = server::stack((!passthrough).then_some(&guard), backend);
    let listener = tokio::net::TcpListener::bind(server_cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", server_cfg.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    if passthrough {
        tracing::warn!("--passthrough: the guard is OFF, requests are forwarded unchecked");
    }
    // Handlers are installed before the address is announced: a SIGTERM sent as
    // soon as the line is read must shut down gracefully, not kill the process.
    let shutdown = shutdown_signal()?;
    // The first line on stdout is machine-readable, for scripts and tests.
    println!("listening on http://{addr}");
    tracing::info!(%addr, "distill-guard serving");
    server::run(
        listener,
        server::app(service),
        shutdown,
        server_cfg.shutdown_timeout,
    )
    .await
    .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("shut down");
    Ok(ExitCode::SUCCESS)
}

/// Registers the shutdown signals now and returns the future that resolves on the
/// first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, String> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    Ok(async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            term.recv().await;
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    })
}
