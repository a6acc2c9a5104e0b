//! Generates simulated traffic and reports the rate:
//! `cargo run --release --example simulate -- [scenario] [hours] [scale] [seed] [out]`
//! (defaults: naive, 24, the default scale, 1, stdout).

use std::io::Write;
use std::time::Instant;

use distill_guard::simulate::{generate, Scenario, SimParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario: Scenario = args.first().map_or("naive", String::as_str).parse()?;
    let mut params = SimParams::default();
    if let Some(h) = args.get(1) {
        params.hours = h.parse()?;
    }
    if let Some(s) = args.get(2) {
        params.scale = s.parse()?;
    }
    if let Some(s) = args.get(3) {
        params.seed = s.parse()?;
    }
    let out: Box<dyn Write> = match args.get(4) {
        Some(path) => Box::new(std::fs::File::create(path)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let started = Instant::now();
    let stats = generate(scenario, &params, out)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{scenario}: {} lines ({} campaign, {} organic), {:.1} MB, {} campaign and {} organic accounts, {:.2} s, {:.0} lines/s",
        stats.lines,
        stats.campaign_lines,
        stats.organic_lines,
        stats.bytes as f64 / 1e6,
        stats.campaign_accounts,
        stats.organic_accounts,
        secs,
        stats.lines as f64 / secs
    );
    Ok(())
}
