//! One campaign operator's plan, as the population holds it (the plans are
//! drawn in `operators`).

use super::paraphrase::Voice;
use super::scenario::OperatorKind;

/// One operator's plan.
#[derive(Debug)]
pub(crate) struct Operator {
    pub(crate) kind: OperatorKind,
    pub(crate) actor: String,
    pub(crate) start_ms: u64,
    pub(crate) accounts: usize,
    /// Its paraphraser's (or template author's) house style.
    pub(crate) voice: Voice,
    /// Fixed templates with [`PAYLOAD`](super::paraphrase::PAYLOAD) (naive, spoofed, hydra).
    pub(crate) templates: Vec<String>,
    /// The template of its short ordinary tasks.
    pub(crate) short_template: String,
    pub(crate) systems: Vec<String>,
    /// Share of requests (or accounts, for adaptive) with a system prompt.
    pub(crate) system_share: f64,
    pub(crate) focus: [f64; 4],
    pub(crate) short_share: f64,
    /// Share of long tasks asking for the reasoning in words (adaptive).
    pub(crate) cot_share: f64,
    pub(crate) ordinary_cap_share: f64,
    pub(crate) output_median: f64,
    /// Accounts re-draw their client installation this often.
    pub(crate) client_redraw_ms: Option<u64>,
    pub(crate) client_weights: [f64; 7],
    /// Amplitude of the daily rhythm of Poisson timing (0 flat, 1 human).
    pub(crate) rhythm: f64,
    /// When its accounts move to the newly released model.
    pub(crate) pivot_ms: Option<u64>,
}
