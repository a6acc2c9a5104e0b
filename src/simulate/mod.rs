//! `simulate`: realistic, labelled LLM API traffic with distillation campaigns,
//! deterministic per seed, for trying a config with `replay --score`.
//!
//! The population (see `docs/simulate.md` for the numbers behind it):
//!
//! - **organic users** with log-normal activity and daily cycles in their own
//!   time zone, multi-turn conversations, and the exact header sets, header
//!   orders and JSON key orders of real clients (OpenAI and Anthropic SDKs for
//!   Python and Node with their `x-stainless-*` headers, curl, python-requests,
//!   LangChain, browsers);
//! - users of a popular **coding agent** sharing one ~2,000-word system prompt
//!   and tool list, **corporate NATs** with hundreds of users behind one /24, a
//!   **hosted chat app** relaying hundreds of users' own keys with identical
//!   headers, **organisations** with several keys (one operator, correctly
//!   linked), **batch/eval jobs** looping over a template from one account, and
//!   a **reseller gateway** ("hydra") whose innocent customers share its IPs
//!   and headers;
//! - **campaigns** of 25,000 accounts at scale 1.0, each account sending the
//!   reported ~26 exchanges a day of coding, agentic and reasoning tasks with
//!   chain-of-thought elicitation and large output caps (and some short tasks
//!   with ordinary caps), at the `naive` and `spoofed` adversary levels.
//!
//! No single field separates the classes: organic users also set large caps and
//! ask for step-by-step answers; campaigns also send short tasks; each operator
//! has its own templates, system prompts and parameters.
//!
//! Output is JSON Lines in the [replay format](crate::replay::format), sorted by
//! `ts_ms`, generated hour by hour in bounded memory.
//!
//! ```
//! use distill_guard::simulate::{generate, Scenario, SimParams};
//!
//! let params = SimParams { hours: 0.5, scale: 0.002, seed: 7, ..SimParams::default() };
//! let mut out = Vec::new();
//! let stats = generate(Scenario::Naive, &params, &mut out).expect("generated");
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
mod pools;
mod population;
mod profile;
mod prose;
mod random;
mod render;
mod scenario;
mod tasks;
mod templates;
#[cfg(test)]
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
