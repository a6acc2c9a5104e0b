//! The `distill-guard` command: serve, check-config, replay, simulate, verify, trace.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // rustls (`rediss://`) reads the process-wide crypto provider: the
    // application chooses it, and this one is ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
