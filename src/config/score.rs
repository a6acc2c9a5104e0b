//! `[score]`: how suspicion is computed and mapped to actions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::FieldError;

/// `[score]`: suspicion and the action ladder. Every field has a working default;
/// see `docs/detection.md` for how the numbers were chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreConfig {
    /// `false`: every request gets suspicion 0 and `allow`.
    pub enabled: bool,
    /// Signal weights.
    pub weights: SignalWeights,
    /// A cluster of `n` accounts has size factor `1 - exp(-(n - 1) / size_scale)`,
    /// which scales every cluster signal: pairs count little, dozens fully.
    pub size_scale: f64,
    /// Highest score an account in no cluster can reach, whatever its content
    /// (real users ask for step-by-step reasoning too). Keep it below
    /// `ladder.throttle`.
    pub unlinked_cap: f64,
    /// Behaviour evidence `e` (see `[cluster.behaviour]`) gives an account,
    /// linked or not, the score `solo_cap × (1 - exp(-e / account_scale))`.
    pub account_scale: f64,
    /// Highest score an account reaches on its own behaviour evidence: below
    /// `ladder.block`, so an account alone is at most degraded.
    pub solo_cap: f64,
    /// Highest score a cluster reaches on what its members share and how they
    /// act together (size, templates, uniform volumes, bursts of new accounts,
    /// the content signals' averages) without its members' own behaviour
    /// evidence: an organisation's service keys or a team behind one NAT look
    /// coordinated too. Below `ladder.degrade` (the default), a cluster is
    /// degraded or blocked only through `linked_extraction`: when the
    /// requests of the member asking look like harvesting.
    pub cluster_cap: f64,
    /// A cluster's summed behaviour evidence `s` gives it the score
    /// `1 - exp(-s / cluster_scale)` (at most `solo_cap` below
    /// `linked_min_size` members).
    pub cluster_scale: f64,
    /// Below this many members a cluster's summed behaviour evidence scores at
    /// most `solo_cap`: a handful of accounts that ask alike may be a few
    /// power users who found each other's templates, not an operator.
    pub linked_min_size: u32,
    /// Behaviour evidence a member needs before its cluster's summed evidence
    /// counts for it (see `cluster_scale`).
    pub member_evidence: f64,
    /// A member whose behaviour evidence is below this (its requests have
    /// looked like ordinary use for a while: conversations, small output caps;
    /// the floor is `[cluster.behaviour] floor`, -4) bears at most
    /// `cluster_cap` of its cluster's level, whatever its harvesting
    /// members earned: a bystander linked on shared values is throttled at
    /// most, never degraded or blocked through its cluster. New accounts
    /// (evidence 0) bear the cluster's level from their first request.
    pub bystander_evidence: f64,
    /// A member tied to its cluster only by links whose template (or hard
    /// link) weight is below this bears at most `cluster_cap` of its
    /// cluster's level: a power user who joined an operator's cluster on a
    /// partial template match and weaker shared values is not the operator.
    pub strong_tie: f64,
    /// Requests an account needs before its timing regularity counts.
    pub min_requests_for_timing: u32,
    /// Suspicion falls back towards the current score with this half-life
    /// (it rises at once): escalate fast, de-escalate slowly.
    #[serde(with = "humantime_serde")]
    pub deescalate_half_life: Duration,
    /// The action ladder: the lowest suspicion of each rung.
    pub ladder: Ladder,
    /// Output cap written into a degraded request (`max_tokens`,
    /// `max_completion_tokens`, `max_output_tokens`).
    pub degrade_max_output_tokens: u64,
    /// How many reasons a verdict lists.
    pub max_reasons: usize,
}

/// Weights of the signals, each multiplied by a signal value in `0..=1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalWeights {
    /// Being in a cluster at all (times the size factor).
    pub cluster_size: f64,
    /// Share of the cluster's links that had shared templates.
    pub template_reuse: f64,
    /// Members with near-identical request volumes (coordination).
    pub volume_uniformity: f64,
    /// New members joining quickly (bursts of new accounts).
    pub new_account_burst: f64,
    /// Chain-of-thought elicitation ("think step by step", "show your full
    /// reasoning").
    pub cot_elicitation: f64,
    /// Narrow capability focus: coding, agentic tool use, planning.
    pub narrow_focus: f64,
    /// `logprobs`, `top_logprobs`, `logit_bias` probing.
    pub logprob_probing: f64,
    /// A client whose headers contradict each other (an SDK user agent without
    /// the SDK's headers).
    pub fingerprint_inconsistency: f64,
    /// Machine-regular inter-arrival times.
    pub timing_regularity: f64,
    /// Multiplies the account's behaviour-evidence score (reason
    /// `extraction_behaviour`).
    pub extraction_behaviour: f64,
    /// Multiplies the cluster's summed behaviour-evidence score (reason
    /// `linked_extraction`).
    pub linked_extraction: f64,
}

impl Default for SignalWeights {
    fn default() -> Self {
        Self {
            cluster_size: 0.4,
            template_reuse: 0.1,
            volume_uniformity: 0.15,
            new_account_burst: 0.2,
            cot_elicitation: 0.15,
            narrow_focus: 0.1,
            logprob_probing: 0.15,
            fingerprint_inconsistency: 0.1,
            timing_regularity: 0.1,
            extraction_behaviour: 1.0,
            linked_extraction: 1.0,
        }
    }
}

/// The lowest suspicion of each rung above `allow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ladder {
    /// Tag responses (provenance watermark).
    pub tag: f64,
    /// Smaller quotas (the quota stage's suspicion bands apply too).
    pub throttle: f64,
    /// Cap output tokens and drop reasoning settings.
    pub degrade: f64,
    /// Refuse with 403. Above 1 disables blocking.
    pub block: f64,
}

impl Default for Ladder {
    fn default() -> Self {
        Self {
            tag: 0.25,
            throttle: 0.5,
            degrade: 0.7,
            block: 0.9,
        }
    }
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weights: SignalWeights::default(),
            size_scale: 8.0,
            unlinked_cap: 0.3,
            account_scale: 2.5,
            solo_cap: 0.69,
            cluster_cap: 0.69,
            cluster_scale: 3.0,
            linked_min_size: 8,
            member_evidence: 0.5,
            bystander_evidence: -3.5,
            strong_tie: 0.7,
            min_requests_for_timing: 6,
            deescalate_half_life: Duration::from_secs(12 * 3600),
            ladder: Ladder::default(),
            degrade_max_output_tokens: 1024,
            max_reasons: 5,
        }
    }
}

impl SignalWeights {
    /// Every weight with its name.
    pub fn named(&self) -> [(&'static str, f64); 11] {
        [
            ("cluster_size", self.cluster_size),
            ("template_reuse", self.template_reuse),
            ("volume_uniformity", self.volume_uniformity),
            ("new_account_burst", self.new_account_burst),
            ("cot_elicitation", self.cot_elicitation),
            ("narrow_focus", self.narrow_focus),
            ("logprob_probing", self.logprob_probing),
            ("fingerprint_inconsistency", self.fingerprint_inconsistency),
            ("timing_regularity", self.timing_regularity),
            ("extraction_behaviour", self.extraction_behaviour),
            ("linked_extraction", self.linked_extraction),
        ]
    }
}

impl ScoreConfig {
    /// Checks every field; problems are reported under `path` (normally `score`).
    pub fn validate(&self, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut push = |field: &str, message: String| {
            errors.push(FieldError {
                path: format!("{path}.{field}"),
                message,
            })
        };
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        for (name, w) in self.weights.named() {
            if !unit(w) {
                push(
                    &format!("weights.{name}"),
                    format!("must be between 0 and 1, got {w}"),
                );
            }
        }
        if !(self.size_scale.is_finite() && self.size_scale >= 0.1 && self.size_scale <= 1e6) {
            push("size_scale", "must be between 0.1 and 1000000".into());
        }
        for (name, v) in [
            ("account_scale", self.account_scale),
            ("cluster_scale", self.cluster_scale),
        ] {
            if !(v.is_finite() && (0.01..=1000.0).contains(&v)) {
                push(name, format!("must be between 0.01 and 1000, got {v}"));
            }
        }
        if !(self.member_evidence.is_finite() && self.member_evidence.abs() <= 1000.0) {
            push("member_evidence", "must be between -1000 and 1000".into());
        }
        if !(self.strong_tie.is_finite() && (0.0..=1000.0).contains(&self.strong_tie)) {
            push("strong_tie", "must be between 0 and 1000".into());
        }
        if !(self.bystander_evidence.is_finite() && self.bystander_evidence.abs() <= 1000.0) {
            push(
                "bystander_evidence",
                "must be between -1000 and 1000".into(),
            );
        }
        if !unit(self.solo_cap) {
            push("solo_cap", "must be between 0 and 1".into());
        }
        if !(1..=1_000_000).contains(&self.linked_min_size) {
            push("linked_min_size", "must be between 1 and 1000000".into());
        }
        if !unit(self.cluster_cap) {
            push("cluster_cap", "must be between 0 and 1".into());
        }
        if !unit(self.unlinked_cap) {
            push("unlinked_cap", "must be between 0 and 1".into());
        }
        if self.min_requests_for_timing < 3 {
            push("min_requests_for_timing", "must be at least 3".into());
        }
        if self.deescalate_half_life.as_secs() < 1 {
            push("deescalate_half_life", "must be at least 1s".into());
        }
        let l = &self.ladder;
        let rungs = [
            ("tag", l.tag),
            ("throttle", l.throttle),
            ("degrade", l.degrade),
            ("block", l.block),
        ];
        let mut last = 0.0;
        for (name, v) in rungs {
            if !(v.is_finite() && v > 0.0 && v <= 2.0) {
                push(
                    &format!("ladder.{name}"),
                    format!("must be above 0 and at most 2 (above 1 disables the rung), got {v}"),
                );
            } else if v < last {
                push(
                    &format!("ladder.{name}"),
                    "rungs must be in increasing order: tag <= throttle <= degrade <= block".into(),
                );
            }
            last = v;
        }
        if l.throttle <= self.unlinked_cap && self.unlinked_cap > 0.0 {
            push(
                "unlinked_cap",
                format!(
                    "must be below ladder.throttle ({}) so that no unlinked account is throttled on content alone",
                    l.throttle
                ),
            );
        }
        if self.degrade_max_output_tokens == 0 {
            push("degrade_max_output_tokens", "must be greater than 0".into());
        }
        if !(1..=16).contains(&self.max_reasons) {
            push("max_reasons", "must be between 1 and 16".into());
        }
        errors
    }
}
