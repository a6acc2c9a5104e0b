//! Command-line interface.

mod check;
mod error;
mod replay;
mod serve;
mod simulate;
mod watermark;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use distill_guard::config::Config;
pub(crate) use error::{CliError, FileAction, ServerProblem};

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
    /// Validate a config file and list every error with its TOML path and line,
    /// then warnings (placeholder secrets); exit 1 when it is invalid.
    CheckConfig(check::CheckArgs),
    /// Run recorded traffic (JSON Lines) through the same stack as `serve`, with a
    /// virtual clock, and write one decision per line plus a summary.
    Replay(replay::ReplayArgs),
    /// Generate realistic labelled traffic (organic users and distillation
    /// campaigns) as JSON Lines, deterministic per seed.
    Simulate(simulate::SimulateArgs),
    /// Check a provenance tag; exit 0 if valid, 1 if not.
    Verify(watermark::VerifyArgs),
    /// Trace leaked text back to the account that received it.
    Trace(watermark::TraceArgs),
}

pub(crate) fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal (and never with NO_COLOR set): logs piped to a file
    // or a collector must not carry escape codes.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

pub(crate) fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::CheckConfig(args) => check::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Verify(args) => watermark::verify(args),
        Command::Trace(args) => watermark::trace(args),
    }
}

/// Loads a config file; errors name the file, and its warnings are logged.
pub(crate) fn load_file(path: &std::path::Path) -> Result<Config, CliError> {
    let text = std::fs::read_to_string(path).map_err(CliError::file(FileAction::Read, path))?;
    let config = Config::from_toml_str(&text).map_err(|source| CliError::ConfigFile {
        path: path.to_owned(),
        source,
    })?;
    for w in config.warnings() {
        tracing::warn!(file = %path.display(), "{w}");
    }
    Ok(config)
}

/// Loads a config file, or the embedded default (every default, a fresh random
/// identity secret) when none is given.
pub(crate) fn load_config(path: Option<&PathBuf>) -> Result<Config, CliError> {
    match path {
        Some(p) => load_file(p),
        None => {
            use rand::TryRngCore;
            let mut secret = [0u8; 32];
            rand::rngs::OsRng
                .try_fill_bytes(&mut secret)
                .map_err(CliError::Randomness)?;
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            tracing::warn!(
                "no --config given: using the embedded defaults with a random identity secret \
                 (account ids change on every restart; set [identity] secret in a config file)"
            );
            Ok(Config::with_secret(hex))
        }
    }
}
