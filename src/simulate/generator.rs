//! The run loop: hour by hour, draw every account's events, sort them, render
//! them on all cores in bounded chunks, and write them in order.

use std::io::Write;

use super::population::{Population, HOUR_MS};
use super::scenario::{OperatorStats, Scenario, SimParams, SimulateError, Stats};
use super::timing::Event;

/// Events rendered per thread at a time (bounds the memory of rendered text).
const RENDER_CHUNK: usize = 2048;

/// Rendered lines of a run of events.
#[derive(Debug)]
struct Rendered {
    text: String,
    lines: u64,
    /// Lines per operator.
    per_operator: Vec<u64>,
}

impl Population {
    fn render_all(&self, events: &[Event]) -> Rendered {
        let mut text = String::with_capacity(events.len() * 6 * 1024);
        let mut body = String::with_capacity(32 * 1024);
        let mut per_operator = vec![0u64; self.operators.len()];
        for ev in events {
            if let Some(o) = self.render(ev, &mut text, &mut body) {
                if let Some(n) = per_operator.get_mut(usize::from(o)) {
                    *n += 1;
                }
            }
        }
        Rendered {
            text,
            lines: events.len() as u64,
            per_operator,
        }
    }
}

/// The population of a run: the organic accounts and resellers, then the
/// campaigns (each on its own random stream, so the organic part is the same in
/// every scenario).
pub(crate) fn population(scenario: Scenario, params: SimParams) -> Population {
    let mut p = Population::without_campaigns(scenario, params);
    p.campaigns();
    p
}

/// Runs the simulation, writing sorted JSON lines to `out`.
pub(crate) fn run<W: Write>(
    scenario: Scenario,
    params: &SimParams,
    out: W,
) -> Result<Stats, SimulateError> {
    params.validate_for(scenario)?;
    let pop = population(scenario, *params);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut stats = Stats {
        campaign_accounts: pop.accounts.iter().filter(|a| a.campaign).count() as u64,
        organic_accounts: pop.accounts.iter().filter(|a| !a.campaign).count() as u64,
        operators: pop
            .operators
            .iter()
            .map(|op| OperatorStats {
                actor: op.actor.clone(),
                kind: op.kind,
                accounts: op.accounts as u64,
                start_ms: op.start_ms,
                lines: 0,
            })
            .collect(),
        ..Stats::default()
    };
    let end = pop.end_ms;
    let hours = params.hours.ceil() as u64;
    let mut batch: Vec<Event> = Vec::new();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    for hour in 0..hours {
        let he = (params.start_ms + (hour + 1) * HOUR_MS).min(end);
        for idx in 0..pop.accounts.len() {
            pop.events(idx, hour, &mut batch);
        }
        batch.sort_unstable();
        let last = hour + 1 == hours;
        let cut = batch.partition_point(|e| e.ts < he);
        // Render in bounded chunks, split across threads, written in order.
        for chunk in batch[..cut].chunks(RENDER_CHUNK * workers) {
            let parts = if workers == 1 || chunk.len() < 512 {
                vec![pop.render_all(chunk)]
            } else {
                let per = chunk.len().div_ceil(workers);
                std::thread::scope(|s| {
                    let handles: Vec<_> = chunk
                        .chunks(per)
                        .map(|part| s.spawn(|| pop.render_all(part)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join())
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|_| std::io::Error::other("a render thread panicked"))?
            };
            for part in parts {
                out.write_all(part.text.as_bytes())?;
                let campaign: u64 = part.per_operator.iter().sum();
                stats.lines += part.lines;
                stats.bytes += part.text.len() as u64;
                stats.campaign_lines += campaign;
                stats.organic_lines += part.lines - campaign;
                for (op, n) in stats.operators.iter_mut().zip(&part.per_operator) {
                    op.lines += n;
                }
            }
        }
        if last {
            batch.clear();
        } else {
            batch.drain(..cut);
        }
    }
    out.flush()?;
    Ok(stats)
}
