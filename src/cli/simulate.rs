use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use distill_guard::simulate::{generate, Scenario, SimParams, DEFAULT_SCALE};

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Scenario: naive, spoofed, mixed or organic (see docs/simulate.md).
    #[arg(long)]
    scenario: String,
    /// Simulated hours.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Account-count multiplier: 1.0 is the reported campaign's 25,000 accounts.
    #[arg(long, default_value_t = DEFAULT_SCALE)]
    scale: f64,
    /// Seed: the same seed and parameters give byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (`-` for stdout).
    #[arg(long, short)]
    out: PathBuf,
}

pub(crate) fn run(args: SimulateArgs) -> Result<ExitCode, String> {
    let scenario: Scenario = args.scenario.parse().map_err(|e| format!("{e}"))?;
    let params = SimParams {
        hours: args.hours,
        scale: args.scale,
        seed: args.seed,
        ..SimParams::default()
    };
    let out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(&args.out)
                .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?,
        ))
    };
    let stats = generate(scenario, &params, out).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} lines ({} campaign, {} organic; {} campaign and {} organic accounts in the population)",
        stats.lines, stats.campaign_lines, stats.organic_lines, stats.campaign_accounts, stats.organic_accounts
    );
    Ok(ExitCode::SUCCESS)
}
