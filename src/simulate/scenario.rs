//! Scenarios, parameters and run statistics.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Campaign accounts of a scenario at scale 1.0, over all its operators: the
/// reported campaign's 25,000.
pub const CAMPAIGN_ACCOUNTS: f64 = 25_000.0;

/// Organic accounts at scale 1.0 (eight per campaign account).
pub const ORGANIC_ACCOUNTS: f64 = 200_000.0;

/// Exchanges per campaign account per day: 28.8M exchanges / 44 days / 25,000
/// accounts ≈ 26.2.
pub const CAMPAIGN_DAILY_REQUESTS: f64 = 28_800_000.0 / 44.0 / 25_000.0;

/// The default scale: 500 campaign accounts (over all operators) and 4,000
/// organic accounts, so a 24-hour run is about 50,000 lines.
pub const DEFAULT_SCALE: f64 = 0.02;

/// Operators of each kind in a single-kind campaign scenario by default.
pub const DEFAULT_OPERATORS: u32 = 3;

/// The default start of simulated time: Monday 2026-01-05 00:00 UTC.
pub const DEFAULT_START_MS: u64 = 1_767_571_200_000;

/// Most accounts a run may hold (organic and campaign each).
const MAX_ACCOUNTS: u64 = 5_000_000;

/// What kind of adversary an operator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    /// Shared datacenter addresses, one client installation, a few fixed
    /// templates, fixed parameters, accounts in bursts, machine-regular timing.
    Naive,
    /// Residential address rotation, per-account client identities drawn from
    /// real SDK header sets, lightly edited templates, Poisson timing.
    Spoofed,
    /// Every account routed through a reseller gateway that also carries
    /// innocent customers.
    Hydra,
    /// Spoofed, plus every prompt paraphrased, system prompts and parameters
    /// per account, a share of accounts behind a reseller, account creation in
    /// waves and a pivot to a newly released model.
    Adaptive,
}

impl OperatorKind {
    /// All kinds, in the order `mixed` runs them.
    pub const ALL: [OperatorKind; 4] = [
        OperatorKind::Naive,
        OperatorKind::Spoofed,
        OperatorKind::Hydra,
        OperatorKind::Adaptive,
    ];

    /// The lowercase name used in labels (`campaign-<name>-<n>`).
    pub fn name(self) -> &'static str {
        match self {
            OperatorKind::Naive => "naive",
            OperatorKind::Spoofed => "spoofed",
            OperatorKind::Hydra => "hydra",
            OperatorKind::Adaptive => "adaptive",
        }
    }
}

impl fmt::Display for OperatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A traffic mix to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Organic traffic plus three naive operators.
    Naive,
    /// Organic traffic plus three spoofing operators.
    Spoofed,
    /// Organic traffic plus three operators routed through reseller gateways
    /// ("hydra" proxies) that also carry innocent customers.
    Hydra,
    /// Organic traffic plus three adaptive operators (paraphrase, rotation,
    /// resellers, waves, a model pivot).
    Adaptive,
    /// Organic traffic plus one operator of each kind.
    Mixed,
    /// Organic traffic only (including resellers' innocent customers and batch
    /// jobs): for measuring false positives.
    Organic,
}

impl Scenario {
    /// All scenarios.
    pub const ALL: [Scenario; 6] = [
        Scenario::Naive,
        Scenario::Spoofed,
        Scenario::Hydra,
        Scenario::Adaptive,
        Scenario::Mixed,
        Scenario::Organic,
    ];

    /// The lowercase name used on the command line and in labels.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Naive => "naive",
            Scenario::Spoofed => "spoofed",
            Scenario::Hydra => "hydra",
            Scenario::Adaptive => "adaptive",
            Scenario::Mixed => "mixed",
            Scenario::Organic => "organic",
        }
    }

    /// The operators of this scenario, in start order. `per_kind` is the number
    /// of operators of each kind (`None`: three for a single-kind scenario, one
    /// of each kind for `mixed`).
    pub fn operators(self, per_kind: Option<u32>) -> Vec<OperatorKind> {
        let kinds: &[OperatorKind] = match self {
            Scenario::Naive => &[OperatorKind::Naive],
            Scenario::Spoofed => &[OperatorKind::Spoofed],
            Scenario::Hydra => &[OperatorKind::Hydra],
            Scenario::Adaptive => &[OperatorKind::Adaptive],
            Scenario::Mixed => &OperatorKind::ALL,
            Scenario::Organic => &[],
        };
        let n = per_kind.unwrap_or(if kinds.len() == 1 {
            DEFAULT_OPERATORS
        } else {
            1
        });
        // Round robin, so `mixed` with two per kind starts one of each first.
        (0..n)
            .flat_map(|_| kinds.iter().copied())
            .collect::<Vec<_>>()
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = SimulateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                SimulateError::Invalid(format!(
                    "unknown scenario {s:?}; expected one of naive, spoofed, hydra, adaptive, mixed, organic"
                ))
            })
    }
}

/// How long, how large, which random stream and which perturbation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimParams {
    /// Simulated hours (0 < hours ≤ 8,760).
    pub hours: f64,
    /// Account-count multiplier: 1.0 is the reported campaign's 25,000 accounts
    /// (over all of a scenario's operators) and 200,000 organic accounts
    /// (0 < scale ≤ 10). `organic_accounts` and `campaign_accounts` override it.
    pub scale: f64,
    /// The seed: the same scenario, parameters, seed and perturbation give
    /// byte-identical output.
    pub seed: u64,
    /// Unix milliseconds of the first simulated instant.
    pub start_ms: u64,
    /// Perturbation seed: 0 runs the generator's documented defaults; any other
    /// value moves every generator parameter within its documented range and
    /// draws a subset of every wording pool (see [`super::Knobs`]).
    pub perturb: u64,
    /// Organic accounts in the population (instead of 200,000 × `scale`).
    pub organic_accounts: Option<u64>,
    /// Campaign accounts in total over the operators (instead of
    /// 25,000 × `scale`).
    pub campaign_accounts: Option<u64>,
    /// Operators of each kind (1–10; default three for a single-kind scenario,
    /// one of each kind for `mixed`).
    pub operators: Option<u32>,
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            hours: 24.0,
            scale: DEFAULT_SCALE,
            seed: 1,
            start_ms: DEFAULT_START_MS,
            perturb: 0,
            organic_accounts: None,
            campaign_accounts: None,
            operators: None,
        }
    }
}

impl SimParams {
    /// Checks the ranges, reporting every problem.
    pub fn validate(&self) -> Result<(), SimulateError> {
        let mut problems = Vec::new();
        if !(self.hours > 0.0 && self.hours <= 8_760.0) {
            problems.push(format!("hours must be in (0, 8760], got {}", self.hours));
        }
        if !(self.scale > 0.0 && self.scale <= 10.0) {
            problems.push(format!("scale must be in (0, 10], got {}", self.scale));
        }
        if self.start_ms > 4_102_444_800_000 {
            problems.push(format!("start_ms {} is after the year 2100", self.start_ms));
        }
        if let Some(n) = self.organic_accounts {
            if !(1..=MAX_ACCOUNTS).contains(&n) {
                problems.push(format!(
                    "organic accounts must be in 1..={MAX_ACCOUNTS}, got {n}"
                ));
            }
        }
        if let Some(n) = self.operators {
            if !(1..=10).contains(&n) {
                problems.push(format!("operators per kind must be in 1..=10, got {n}"));
            }
        }
        if let Some(n) = self.campaign_accounts {
            if n > MAX_ACCOUNTS {
                problems.push(format!(
                    "campaign accounts must be at most {MAX_ACCOUNTS}, got {n}"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SimulateError::Invalid(problems.join("; ")))
        }
    }

    /// Checks what depends on the scenario: every operator needs an account.
    pub(crate) fn validate_for(&self, scenario: Scenario) -> Result<(), SimulateError> {
        self.validate()?;
        let operators = scenario.operators(self.operators).len() as u64;
        match self.campaign_accounts {
            Some(n) if operators > 0 && n < operators => Err(SimulateError::Invalid(format!(
                "{n} campaign accounts cannot be shared by the {operators} operators of {scenario}"
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) fn organic_count(&self) -> usize {
        match self.organic_accounts {
            Some(n) => n as usize,
            None => (ORGANIC_ACCOUNTS * self.scale).round().max(1.0) as usize,
        }
    }

    pub(crate) fn campaign_count(&self, operators: usize) -> usize {
        let n = match self.campaign_accounts {
            Some(n) => n as usize,
            None => (CAMPAIGN_ACCOUNTS * self.scale).round() as usize,
        };
        n.max(operators)
    }
}

/// One campaign operator of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorStats {
    /// The label's `actor`, e.g. `campaign-adaptive-2`.
    pub actor: String,
    /// What kind of adversary it is.
    pub kind: OperatorKind,
    /// Accounts in the population (accounts created after the run's end never
    /// send a request).
    pub accounts: u64,
    /// Unix milliseconds of its first account's creation.
    pub start_ms: u64,
    /// Lines it sent.
    pub lines: u64,
}

/// What a run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Lines of campaign traffic.
    pub campaign_lines: u64,
    /// Lines of organic traffic (including batch jobs and resellers' customers).
    pub organic_lines: u64,
    /// Campaign accounts in the population (not all need be active in a short run).
    pub campaign_accounts: u64,
    /// Organic accounts in the population.
    pub organic_accounts: u64,
    /// The campaign operators, in start order.
    pub operators: Vec<OperatorStats>,
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// Bad parameters or scenario name.
    #[error("invalid simulation parameters: {0}")]
    Invalid(String),
    /// Writing the output failed.
    #[error("writing traffic: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>().expect("parse"), s);
        }
        let e = "hydras".parse::<Scenario>().expect_err("unknown");
        assert!(e.to_string().contains("expected one of"), "{e}");
    }

    #[test]
    fn params_are_validated_together() {
        assert!(SimParams::default().validate().is_ok());
        let p = SimParams {
            hours: f64::NAN,
            scale: 0.0,
            organic_accounts: Some(0),
            operators: Some(11),
            ..SimParams::default()
        };
        let e = p.validate().expect_err("invalid").to_string();
        for field in ["hours", "scale", "organic accounts", "operators"] {
            assert!(e.contains(field), "{field}: {e}");
        }
        let p = SimParams {
            campaign_accounts: Some(2),
            ..SimParams::default()
        };
        let e = p.validate_for(Scenario::Naive).expect_err("too few");
        assert!(e.to_string().contains("3 operators"), "{e}");
        assert!(p.validate_for(Scenario::Organic).is_ok());
    }

    #[test]
    fn scenarios_run_three_operators_of_their_kind_and_mixed_one_of_each() {
        assert_eq!(
            Scenario::Adaptive.operators(None),
            vec![OperatorKind::Adaptive; 3]
        );
        assert_eq!(Scenario::Mixed.operators(None), OperatorKind::ALL.to_vec());
        assert_eq!(Scenario::Mixed.operators(Some(2)).len(), 8);
        assert!(Scenario::Organic.operators(Some(5)).is_empty());
    }

    #[test]
    fn the_daily_volume_matches_the_report() {
        assert!((CAMPAIGN_DAILY_REQUESTS - 26.18).abs() < 0.01);
    }
}
