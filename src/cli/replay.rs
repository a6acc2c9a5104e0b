use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use distill_guard::config::Config;
use distill_guard::replay::report::{render_html, ReportBuilder, RunReport, TOP_CLUSTERS};
use distill_guard::replay::{replay_observed, ReplayOptions, Summary};

use super::{CliError, FileAction};

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
    /// Write the summary to this file instead of stderr (as JSON when the name
    /// ends in `.json` or with `--json`).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// The summary as JSON (for machines) instead of text.
    #[arg(long)]
    json: bool,
    /// Stop at the first malformed line instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Score the decisions against the lines' `label` ground truth.
    #[arg(long)]
    score: bool,
    /// Write a self-contained HTML report (inline SVG plots, no network) to this
    /// file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Replay the same traffic under a second config too and compare: the
    /// summary and the report show both. Needs a traffic file (not stdin);
    /// `--out` gets the first config's decisions.
    #[arg(long, value_name = "CONFIG")]
    compare: Option<PathBuf>,
}

fn open_input(path: &Path) -> Result<Box<dyn std::io::BufRead + Send>, CliError> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = File::open(path).map_err(CliError::file(FileAction::Open, path))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

fn config_of(path: Option<&PathBuf>) -> Result<Config, CliError> {
    match path {
        Some(p) => super::load_file(p),
        None => Ok(Config::with_secret("distill-guard-replay")),
    }
}

fn name_of(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "default config".to_owned(), |p| p.display().to_string())
}

/// One replay of the traffic under one config, with a report builder when asked.
fn run_one(
    args: &ReplayArgs,
    config_path: Option<&PathBuf>,
    out: Box<dyn Write>,
    label: Option<String>,
) -> Result<(Summary, Option<RunReport>), CliError> {
    let config = config_of(config_path)?;
    let input = open_input(&args.traffic)?;
    let input_bytes = (args.traffic.as_os_str() != "-")
        .then(|| std::fs::metadata(&args.traffic).ok().map(|m| m.len()))
        .flatten();
    let opts = ReplayOptions {
        strict: args.strict,
        score: args.score,
        progress: std::io::stderr().is_terminal(),
        input_bytes,
        label,
        cluster_evidence: if args.report.is_some() {
            TOP_CLUSTERS
        } else {
            0
        },
    };
    let mut builder = args.report.is_some().then(ReportBuilder::new);
    let summary = replay_observed(config, input, out, &opts, &mut |t, d| {
        if let Some(b) = builder.as_mut() {
            b.observe(t, d);
        }
    })?;
    let report = builder.map(|b| b.finish(&name_of(config_path), summary.clone()));
    Ok((summary, report))
}

pub(crate) fn run(args: ReplayArgs) -> Result<ExitCode, CliError> {
    if args.compare.is_some() && args.traffic.as_os_str() == "-" {
        return Err(CliError::CompareNeedsFile);
    }
    // Check both configs before the first (possibly long) replay.
    config_of(args.config.as_ref())?;
    if let Some(c) = &args.compare {
        config_of(Some(c))?;
    }
    let out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(CliError::file(FileAction::Create, p))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let labels = args.compare.as_ref().map(|_| {
        (
            name_of(args.config.as_ref()),
            name_of(args.compare.as_ref()),
        )
    });
    let (first, first_report) = run_one(
        &args,
        args.config.as_ref(),
        out,
        labels.as_ref().map(|l| l.0.clone()),
    )?;
    let second = match &args.compare {
        Some(path) => Some(run_one(
            &args,
            Some(path),
            Box::new(std::io::sink()),
            labels.as_ref().map(|l| l.1.clone()),
        )?),
        None => None,
    };
    let json = args.json
        || args
            .summary
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "json"));
    let text = match (&second, json) {
        (None, true) => serde_json::to_string_pretty(&first)?,
        (None, false) => first.to_string(),
        (Some((b, _)), true) => serde_json::to_string_pretty(&serde_json::json!({
            "config": name_of(args.config.as_ref()),
            "summary": first,
            "compare": name_of(args.compare.as_ref()),
            "compare_summary": b,
        }))?,
        (Some((b, _)), false) => format!(
            "== {}\n{first}\n== {}\n{b}",
            name_of(args.config.as_ref()),
            name_of(args.compare.as_ref())
        ),
    };
    match &args.summary {
        Some(p) => std::fs::write(p, format!("{}\n", text.trim_end()))
            .map_err(CliError::file(FileAction::Write, p))?,
        None => eprintln!("{}", text.trim_end()),
    }
    if let Some(path) = &args.report {
        let mut runs: Vec<RunReport> = first_report.into_iter().collect();
        if let Some((_, Some(r))) = second {
            runs.push(r);
        }
        let html = render_html(&args.traffic.display().to_string(), &runs);
        std::fs::write(path, html).map_err(CliError::file(FileAction::Write, path))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
