//! `simulate`: realistic, labelled LLM API traffic with distillation operators
//! that fight back, deterministic per seed, for trying a config with
//! `replay --score`. `docs/simulate.md` has the numbers behind it.
//!
//! - **Operators**: each campaign scenario runs three operators of its kind
//!   (`naive`, `spoofed`, `hydra`, `adaptive`; `mixed` runs one of each), with
//!   their own wording, system prompts, parameters, clients, networks, sizes,
//!   start times and schedules. What none of them can hide is there: capability
//!   focus (coding, agentic plans, maths, long-horizon reasoning), single-turn
//!   tool-less prompts asking for the full reasoning, large output budgets and
//!   ~26 requests per account per day, with noise.
//! - **The organic population**, full of hard negatives: individuals on the
//!   official SDKs, a coding agent's shared system prompt, corporate NATs, a
//!   hosted bring-your-own-key app, organisations with several keys, batch
//!   jobs, three resellers' innocent customers, and the hardest ones for
//!   behavioural detection: reasoning power users, their small scripts,
//!   students, researchers' ad-hoc evals and early adopters of a model released
//!   mid-run. No single field separates the classes.
//! - **Perturbation**: `SimParams::perturb` moves every generator parameter
//!   ([`Knobs`]) within its documented range and keeps a random subset of every
//!   wording pool, so tuning can be checked for generalisation.
//!
//! Output is JSON Lines in the [replay format](crate::replay::format), sorted by
//! `ts_ms`, generated hour by hour in bounded memory.
//!
//! ```
//! use distill_guard::simulate::{generate, Scenario, SimParams};
//!
//! let params = SimParams { hours: 0.5, scale: 0.002, seed: 7, perturb: 3, ..SimParams::default() };
//! let mut out = Vec::new();
//! let stats = generate(Scenario::Adaptive, &params, &mut out).expect("generated");
//! assert_eq!(stats.operators.len(), 3);
//! assert_eq!(stats.operators[1].actor, "campaign-adaptive-2");
//! let text = String::from_utf8(out).expect("utf-8");
//! assert_eq!(text.lines().count() as u64, stats.lines);
//! let first = distill_guard::replay::parse_line(1, text.lines().next().expect("a line"))
//!     .expect("parses");
//! assert!(first.label.is_some());
//! ```

mod generator;
mod json;
mod knobs;
mod operators;
mod paraphrase;
mod plan;
mod pools;
mod population;
mod profile;
mod prose;
mod random;
mod render;
mod scenario;
mod tasks;
mod templates;
// The tests read the generated lines with the replay line format.
#[cfg(all(test, feature = "replay"))]
mod tests;
mod timing;

use std::io::Write;

pub use knobs::{Knobs, POOL_KEEP};
pub use scenario::{
    OperatorKind, OperatorStats, Scenario, SimParams, SimulateError, Stats, CAMPAIGN_ACCOUNTS,
    CAMPAIGN_DAILY_REQUESTS, DEFAULT_OPERATORS, DEFAULT_SCALE, DEFAULT_START_MS, ORGANIC_ACCOUNTS,
};

/// Generates `params.hours` of `scenario` traffic into `out` as JSON Lines
/// sorted by `ts_ms`. The same scenario, parameters and seed give identical
/// bytes.
pub fn generate<W: Write>(
    scenario: Scenario,
    params: &SimParams,
    out: W,
) -> Result<Stats, SimulateError> {
    generator::run(scenario, params, out)
}
