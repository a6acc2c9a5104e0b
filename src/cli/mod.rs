//! Command-line interface.

mod check;
mod serve;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use distill_guard::config::Config;

/// Tower layers and a reverse proxy that protect LLM serving APIs from large-scale
/// distillation.
#[derive(Debug, Parser)]
#[command(name = "distill-guard", version, about)]
pub(crate) struct Cli {
    /// More log output (-v debug, -vv trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the guard as a reverse proxy in front of an OpenAI/Anthropic-compatible
    /// upstream, or in front of the built-in demo model.
    Serve(serve::ServeArgs),
    /// Validate a config file and list every error with its TOML path.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Check a watermark tag (a header value, an SSE record line or the bare tag)
    /// against the config's `[watermark]` keys: exit 0 if it verifies, 1 if not.
    Verify(verify::VerifyArgs),
}

pub(crate) fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub(crate) fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::CheckConfig { file } => Ok(check::run(&file)),
        Command::Verify(args) => verify::run(args),
    }
}

/// Loads a config file, or the embedded default (every default, a fresh random
/// identity secret) when none is given.
pub(crate) fn load_config(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => {
            use rand::TryRngCore;
            let mut secret = [0u8; 32];
            rand::rngs::OsRng
                .try_fill_bytes(&mut secret)
                .map_err(|e| format!("cannot get randomness for the identity secret: {e}"))?;
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            tracing::warn!(
                "no --config given: using the embedded defaults with a random identity secret \
                 (account ids change on every restart; set [identity] secret in a config file)"
            );
            Ok(Config::with_secret(hex))
        }
    }
}
