use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use distill_guard::config::Config;
use distill_guard::replay::{replay, ReplayOptions};

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Config file (TOML). Without it: every default, with a fixed identity secret
    /// so that account ids are the same from run to run.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Recorded traffic, one JSON object per line (`-` for stdin).
    traffic: PathBuf,
    /// Where to write one decision per input line (default: stdout).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Write the summary as JSON to this file (default: a readable summary on stderr).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Stop at the first malformed line instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Score the decisions against the lines' `label` ground truth.
    #[arg(long)]
    score: bool,
}

pub(crate) fn run(args: ReplayArgs) -> Result<ExitCode, String> {
    let config = match &args.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::with_secret("distill-guard-replay"),
    };
    let input: Box<dyn std::io::BufRead + Send> = if args.traffic.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = File::open(&args.traffic)
            .map_err(|e| format!("cannot open {}: {e}", args.traffic.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let opts = ReplayOptions {
        strict: args.strict,
        score: args.score,
        progress: std::io::stderr().is_terminal(),
    };
    let summary = replay(config, input, out, &opts).map_err(|e| e.to_string())?;
    match &args.summary {
        Some(p) => {
            let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
            std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        }
        None => {
            eprintln!(
                "replayed {} lines in {:.2} s ({:.0} lines/s), {} malformed",
                summary.lines, summary.seconds, summary.lines_per_second, summary.malformed
            );
            eprintln!("by action: {:?}", summary.by_action);
            eprintln!("by status: {:?}", summary.by_status);
            eprintln!("tagged: {}", summary.tagged);
            eprintln!(
                "clusters of 2 or more accounts: {} {:?}",
                summary.clusters, summary.cluster_sizes
            );
            for c in summary.top_clusters.iter().take(5) {
                eprintln!(
                    "  cluster {} size {} requests {} denied {} max score {:.2}",
                    c.id, c.size, c.requests, c.denied, c.max_score
                );
            }
            for a in summary.top_accounts.iter().take(5) {
                eprintln!(
                    "  account {} requests {} denied {} max score {:.2}",
                    a.id, a.requests, a.denied, a.max_score
                );
            }
        }
    }
    if let Some(report) = &summary.score {
        eprintln!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
