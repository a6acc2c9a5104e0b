use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use distill_guard::simulate::{generate, Knobs, Scenario, SimParams, DEFAULT_SCALE};

use super::{CliError, FileAction};

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Scenario: naive, spoofed, hydra, adaptive, mixed or organic (see docs/simulate.md).
    #[arg(long, required_unless_present = "print_knobs")]
    scenario: Option<String>,
    /// Simulated hours.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Account-count multiplier: 1.0 is the reported campaign's 25,000 accounts
    /// (over all operators) and 200,000 organic accounts.
    #[arg(long, default_value_t = DEFAULT_SCALE)]
    scale: f64,
    /// Seed: the same scenario, parameters, seed and perturbation give
    /// byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Perturbation seed: moves every generator parameter within its documented
    /// range and draws a subset of every wording pool (0: the defaults).
    #[arg(long, default_value_t = 0)]
    perturb: u64,
    /// Organic accounts (overrides the scale for the organic population).
    #[arg(long)]
    organic_accounts: Option<u64>,
    /// Campaign accounts in total over the operators (overrides the scale).
    #[arg(long)]
    campaign_accounts: Option<u64>,
    /// Operators of each kind (default: three for a single-kind scenario, one of
    /// each kind for mixed).
    #[arg(long)]
    operators: Option<u32>,
    /// Print the generator's parameters for this `--perturb` as JSON and exit.
    #[arg(long)]
    print_knobs: bool,
    /// Output file (`-` for stdout).
    #[arg(long, short, required_unless_present = "print_knobs")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: SimulateArgs) -> Result<ExitCode, CliError> {
    if args.print_knobs {
        let knobs = Knobs::for_perturb(args.perturb);
        let text = serde_json::to_string_pretty(&knobs)?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let scenario: Scenario = args.scenario.as_deref().unwrap_or_default().parse()?;
    let params = SimParams {
        hours: args.hours,
        scale: args.scale,
        seed: args.seed,
        perturb: args.perturb,
        organic_accounts: args.organic_accounts,
        campaign_accounts: args.campaign_accounts,
        operators: args.operators,
        ..SimParams::default()
    };
    let path = args.out.unwrap_or_else(|| PathBuf::from("-"));
    let out: Box<dyn Write> = if path.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(&path).map_err(CliError::file(FileAction::Create, &path))?,
        ))
    };
    let stats = generate(scenario, &params, out)?;
    eprintln!(
        "wrote {} lines ({} campaign, {} organic; {} campaign and {} organic accounts in the population)",
        stats.lines, stats.campaign_lines, stats.organic_lines, stats.campaign_accounts, stats.organic_accounts
    );
    for op in &stats.operators {
        let hours = op.start_ms.saturating_sub(params.start_ms) as f64 / 3_600_000.0;
        eprintln!(
            "  {}: {} accounts from {hours:.1} h, {} lines",
            op.actor, op.accounts, op.lines
        );
    }
    Ok(ExitCode::SUCCESS)
}
