//! Scenarios, parameters and run statistics.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Accounts of one campaign at scale 1.0: the reported campaign's 25,000.
pub const CAMPAIGN_ACCOUNTS: f64 = 25_000.0;

/// Accounts of the hydra operator at scale 1.0: the earlier disclosure's 24,000.
pub const HYDRA_ACCOUNTS: f64 = 24_000.0;

/// Organic accounts at scale 1.0 (eight per campaign account).
pub const ORGANIC_ACCOUNTS: f64 = 200_000.0;

/// Exchanges per campaign account per day: 28.8M exchanges / 44 days / 25,000
/// accounts ≈ 26.2.
pub const CAMPAIGN_DAILY_REQUESTS: f64 = 28_800_000.0 / 44.0 / 25_000.0;

/// The default scale: 500 accounts per campaign and 4,000 organic accounts, so
/// a 24-hour run is about 60,000 lines and takes well under a second.
pub const DEFAULT_SCALE: f64 = 0.02;

/// The default start of simulated time: Monday 2026-01-05 00:00 UTC.
pub const DEFAULT_START_MS: u64 = 1_767_571_200_000;

/// A traffic mix to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Organic traffic plus a naive campaign: one client installation, a handful
    /// of fixed templates, a few datacenter prefixes, accounts created in bursts,
    /// machine-regular timing.
    Naive,
    /// Organic traffic plus a spoofing campaign: user-agents and header orders
    /// rotated from the real client mix, residential-proxy IP churn, lightly
    /// edited templates, Poisson timing with a daily rhythm.
    Spoofed,
    /// Organic traffic plus the naive and spoofing campaigns and a third operator
    /// routed through a hydra reseller gateway that also carries innocent
    /// customers.
    Mixed,
    /// Organic traffic only (including the reseller's innocent customers): for
    /// measuring false positives.
    Organic,
}

impl Scenario {
    /// All scenarios.
    pub const ALL: [Scenario; 4] = [
        Scenario::Naive,
        Scenario::Spoofed,
        Scenario::Mixed,
        Scenario::Organic,
    ];

    /// The lowercase name used on the command line and in labels.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Naive => "naive",
            Scenario::Spoofed => "spoofed",
            Scenario::Mixed => "mixed",
            Scenario::Organic => "organic",
        }
    }

    pub(crate) fn has_naive(self) -> bool {
        matches!(self, Scenario::Naive | Scenario::Mixed)
    }

    pub(crate) fn has_spoofed(self) -> bool {
        matches!(self, Scenario::Spoofed | Scenario::Mixed)
    }

    pub(crate) fn has_hydra(self) -> bool {
        matches!(self, Scenario::Mixed)
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
                    "unknown scenario {s:?}; expected one of naive, spoofed, mixed, organic"
                ))
            })
    }
}

/// How long, how large, and which random stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimParams {
    /// Simulated hours (0 < hours ≤ 8,760).
    pub hours: f64,
    /// Account-count multiplier: 1.0 is the reported campaign's 25,000 accounts
    /// per campaign and 200,000 organic accounts (0 < scale ≤ 10).
    pub scale: f64,
    /// The seed: the same seed and parameters give byte-identical output.
    pub seed: u64,
    /// Unix milliseconds of the first simulated instant.
    pub start_ms: u64,
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            hours: 24.0,
            scale: DEFAULT_SCALE,
            seed: 1,
            start_ms: DEFAULT_START_MS,
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
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SimulateError::Invalid(problems.join("; ")))
        }
    }
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
    /// Lines of organic traffic.
    pub organic_lines: u64,
    /// Campaign accounts in the population (not all need be active in a short run).
    pub campaign_accounts: u64,
    /// Organic accounts in the population.
    pub organic_accounts: u64,
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
        let e = "hydra".parse::<Scenario>().expect_err("unknown");
        assert!(e.to_string().contains("expected one of"), "{e}");
    }

    #[test]
    fn params_are_validated_together() {
        assert!(SimParams::default().validate().is_ok());
        let p = SimParams {
            hours: f64::NAN,
            scale: 0.0,
            ..SimParams::default()
        };
        let e = p.validate().expect_err("invalid").to_string();
        assert!(e.contains("hours") && e.contains("scale"), "{e}");
    }

    #[test]
    fn the_daily_volume_matches_the_report() {
        assert!((CAMPAIGN_DAILY_REQUESTS - 26.18).abs() < 0.01);
    }
}
