//! Combining signals into suspicion, hysteresis, and the action ladder.

use std::sync::Arc;

use crate::cluster::{AccountStats, ClusterStats, Linked};
use crate::config::ScoreConfig;
use crate::extensions::{Action, Reason, Suspicion, Verdict};

/// Standard deviation of log inter-arrival times at or above which timing looks
/// human (Poisson arrivals give about 1.28).
const HUMAN_LOG_STD: f32 = 1.2;
/// Spread of members' mean log inter-arrival times at or above which volumes
/// look independent.
const INDEPENDENT_SPREAD: f32 = 1.0;
/// New members per hour at which the burst signal is about 0.63.
const BURST_SCALE: f32 = 10.0;

/// The scorer's result for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Suspicion of the request: the larger of the account's and the cluster's
    /// levels after hysteresis.
    pub suspicion: Suspicion,
    /// The action and its reasons.
    pub verdict: Verdict,
    /// The account's new level.
    pub account_level: f32,
    /// The cluster's new level, for accounts in a cluster.
    pub cluster_level: Option<f32>,
}

/// Computes suspicion from the engine's statistics. Stateless: the levels live in
/// the engine.
#[derive(Debug, Clone)]
pub struct Scorer {
    cfg: ScoreConfig,
    names: [Arc<str>; NPARTS],
}

/// Signal indices into [`Scorer::names`].
const SIZE: usize = 0;
const TEMPLATE: usize = 1;
const UNIFORM: usize = 2;
const BURST: usize = 3;
const COT: usize = 4;
const FOCUS: usize = 5;
const PROBE: usize = 6;
const INCONS: usize = 7;
const TIMING: usize = 8;
const EXTRACTION: usize = 9;
const LINKED: usize = 10;
const NPARTS: usize = 11;

impl Scorer {
    /// A scorer for a validated config.
    pub fn new(cfg: ScoreConfig) -> Self {
        let names = cfg.weights.named().map(|(n, _)| Arc::<str>::from(n));
        Self { cfg, names }
    }

    /// The config in force.
    pub fn config(&self) -> &ScoreConfig {
        &self.cfg
    }

    fn content(
        &self,
        signals: [f32; crate::cluster::SIGNALS],
        regularity: f32,
        out: &mut [f64; NPARTS],
    ) {
        let w = &self.cfg.weights;
        out[COT] += w.cot_elicitation * f64::from(signals[0]);
        out[FOCUS] += w.narrow_focus * f64::from(signals[1]);
        out[PROBE] += w.logprob_probing * f64::from(signals[2]);
        out[INCONS] += w.fingerprint_inconsistency * f64::from(signals[3]);
        out[TIMING] += w.timing_regularity * f64::from(regularity);
    }

    fn regularity(&self, a: &AccountStats) -> f32 {
        match a.interval_log_std {
            Some(std) if a.requests >= self.cfg.min_requests_for_timing => {
                ((HUMAN_LOG_STD - std) / HUMAN_LOG_STD).clamp(0.0, 1.0)
            }
            _ => 0.0,
        }
    }

    /// The raw (pre-hysteresis) account score and its parts.
    fn account_raw(&self, a: &AccountStats) -> (f64, [f64; NPARTS]) {
        let mut parts = [0.0; NPARTS];
        self.content(a.signals, self.regularity(a), &mut parts);
        let total: f64 = parts.iter().sum();
        let capped = total.min(self.cfg.unlinked_cap);
        if total > 0.0 && capped < total {
            let k = capped / total;
            for p in &mut parts {
                *p *= k;
            }
        }
        // The account's own behaviour evidence is not capped below the
        // throttle rung: an account that keeps asking for what harvesting
        // asks for is enforced on before it is linked (up to `solo_cap`).
        let behaviour = self.cfg.weights.extraction_behaviour
            * self.cfg.solo_cap
            * (1.0 - (-f64::from(a.evidence.max(0.0)) / self.cfg.account_scale).exp());
        if behaviour > capped {
            let mut only = [0.0; NPARTS];
            only[EXTRACTION] = behaviour;
            return (behaviour, only);
        }
        (capped, parts)
    }

    /// The raw cluster score and its parts.
    fn cluster_raw(&self, a: &AccountStats, c: &ClusterStats) -> (f64, [f64; NPARTS]) {
        let w = &self.cfg.weights;
        let n = f64::from(c.size.max(1));
        let factor = 1.0 - (-(n - 1.0) / self.cfg.size_scale).exp();
        let mut parts = [0.0; NPARTS];
        parts[SIZE] = w.cluster_size;
        parts[TEMPLATE] = w.template_reuse * f64::from(c.template_share);
        if let Some(spread) = c.volume_spread {
            parts[UNIFORM] = w.volume_uniformity
                * f64::from(((INDEPENDENT_SPREAD - spread) / INDEPENDENT_SPREAD).clamp(0.0, 1.0));
        }
        parts[BURST] =
            w.new_account_burst * f64::from(1.0 - (-c.join_rate_per_hour / BURST_SCALE).exp());
        // The cluster's own averages of the content signals; the requesting
        // account's timing.
        self.content(c.signals, self.regularity(a), &mut parts);
        for p in &mut parts {
            *p *= factor;
        }
        let mut total: f64 = parts.iter().sum();
        // Looking coordinated is not harvesting: without the members' own
        // behaviour evidence a cluster stops below degrade (`cluster_cap`).
        if total > self.cfg.cluster_cap {
            let k = self.cfg.cluster_cap / total;
            for p in &mut parts {
                *p *= k;
            }
            total = self.cfg.cluster_cap;
        }
        // The members' summed behaviour evidence: a cluster of accounts that
        // each look like extraction is one operator acting at scale.
        let mut linked = self.cfg.weights.linked_extraction
            * (1.0 - (-f64::from(c.evidence.max(0.0)) / self.cfg.cluster_scale).exp());
        if c.size < self.cfg.linked_min_size {
            linked = linked.min(self.cfg.solo_cap);
        }
        // Only a member whose own requests look like extraction bears its
        // cluster's behaviour score: a bystander linked by a shared template
        // keeps its own level.
        if f64::from(a.evidence) < self.cfg.member_evidence {
            linked = 0.0;
        }
        if linked > total {
            let mut only = [0.0; NPARTS];
            only[LINKED] = linked;
            return (linked.min(1.0), only);
        }
        (total.min(1.0), parts)
    }

    /// Hysteresis: rise at once, fall towards `raw` with the configured half-life.
    fn settle(&self, level: f32, level_at: u32, raw: f64, now_ms: u64) -> f32 {
        let raw = raw as f32;
        if raw >= level {
            return raw;
        }
        let now_s = (now_ms / 1000) as f64;
        let dt = (now_s - f64::from(level_at)).max(0.0);
        let h = self.cfg.deescalate_half_life.as_secs_f64().max(1.0);
        let keep = 0.5f64.powf(dt / h) as f32;
        raw + (level - raw) * keep
    }

    /// The rung of the ladder for a suspicion value.
    pub fn action(&self, suspicion: f64) -> Action {
        let l = &self.cfg.ladder;
        if suspicion >= l.block {
            Action::Block
        } else if suspicion >= l.degrade {
            Action::Degrade
        } else if suspicion >= l.throttle {
            Action::Throttle
        } else if suspicion >= l.tag {
            Action::Tag
        } else {
            Action::Allow
        }
    }

    /// The top signals of a score's parts, largest first.
    fn reasons(&self, parts: &[f64; NPARTS]) -> Vec<Reason> {
        let mut reasons: Vec<Reason> = parts
            .iter()
            .enumerate()
            .filter(|(_, w)| **w > 0.005)
            .map(|(i, w)| Reason {
                signal: self.names[i].clone(),
                weight: (w * 1000.0).round() / 1000.0,
            })
            .collect();
        reasons.sort_by(|x, y| y.weight.total_cmp(&x.weight));
        reasons.truncate(self.cfg.max_reasons);
        reasons
    }

    /// Whether a member bears its cluster's whole level: false for a
    /// bystander (tied below `strong_tie`, or evidence below
    /// `bystander_evidence`), which bears at most `cluster_cap` of it.
    pub fn bears_cluster(&self, a: &AccountStats) -> bool {
        f64::from(a.evidence) >= self.cfg.bystander_evidence
            && f64::from(a.tie) >= self.cfg.strong_tie
    }

    /// An account's suspicion at `now_ms` (its stored level, settled towards its
    /// current score) and the top signals of that score: what an operator sees.
    pub fn explain_account(&self, a: &AccountStats, now_ms: u64) -> (f64, Vec<Reason>) {
        if !self.cfg.enabled {
            return (0.0, Vec::new());
        }
        let (raw, parts) = self.account_raw(a);
        let level = self.settle(a.level, a.level_at, raw, now_ms);
        (
            Suspicion::new(f64::from(level)).value(),
            self.reasons(&parts),
        )
    }

    /// A cluster's suspicion at `now_ms` and the top signals of its score (no
    /// requesting account, so without the timing signal).
    pub fn explain_cluster(&self, c: &ClusterStats, now_ms: u64) -> (f64, Vec<Reason>) {
        if !self.cfg.enabled {
            return (0.0, Vec::new());
        }
        let nobody = AccountStats {
            requests: 0,
            age_s: 0,
            interval_log_std: None,
            signals: [0.0; crate::cluster::SIGNALS],
            level: 0.0,
            level_at: 0,
            evidence: 0.0,
            tie: 0.0,
        };
        let (raw, parts) = self.cluster_raw(&nobody, c);
        let level = self.settle(c.level, c.level_at, raw, now_ms);
        (
            Suspicion::new(f64::from(level)).value(),
            self.reasons(&parts),
        )
    }

    /// Scores one request from the engine's view of its account and cluster.
    pub fn assess(&self, linked: &Linked, now_ms: u64) -> Assessment {
        if !self.cfg.enabled {
            return Assessment {
                suspicion: Suspicion(0.0),
                verdict: Verdict::default(),
                account_level: 0.0,
                cluster_level: linked.cluster_stats.map(|_| 0.0),
            };
        }
        let a = &linked.account;
        let (a_raw, a_parts) = self.account_raw(a);
        let account_level = self.settle(a.level, a.level_at, a_raw, now_ms);
        let (cluster_level, c_parts) = match &linked.cluster_stats {
            Some(c) => {
                let (raw, parts) = self.cluster_raw(a, c);
                (
                    Some(self.settle(c.level, c.level_at, raw, now_ms)),
                    Some(parts),
                )
            }
            None => (None, None),
        };
        // The cluster's stored level carries what its harvesting members
        // earned; a bystander (tied loosely, or asking as ordinary users do)
        // bears at most `cluster_cap` of it (`bears_cluster`).
        let borne = cluster_level.map(|c| {
            if self.bears_cluster(a) {
                c
            } else {
                c.min(self.cfg.cluster_cap as f32)
            }
        });
        let from_cluster = borne.is_some_and(|c| c > account_level);
        let level = if from_cluster {
            borne.unwrap_or(account_level)
        } else {
            account_level
        };
        let parts = match (from_cluster, c_parts) {
            (true, Some(mut p)) => {
                // A bystander's reasons add up to what it bears.
                let total: f64 = p.iter().sum();
                if total > f64::from(level) && total > 0.0 {
                    let k = f64::from(level) / total;
                    p.iter_mut().for_each(|x| *x *= k);
                }
                p
            }
            _ => a_parts,
        };
        let suspicion = Suspicion::new(f64::from(level));
        let reasons = self.reasons(&parts);
        Assessment {
            suspicion,
            verdict: Verdict {
                action: self.action(suspicion.value()),
                reasons,
            },
            account_level,
            cluster_level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::config::Config;
    use crate::detect::{hard_link_feature, Detector};
    use crate::extensions::{AccountId, HardLink};
    use crate::score::Signals;

    const T0: u64 = 1_714_000_000_000;

    fn account(i: u32) -> AccountId {
        let mut b = [7u8; 16];
        b[..4].copy_from_slice(&i.to_le_bytes());
        AccountId(b)
    }

    #[test]
    fn levels_rise_at_once_and_fall_with_the_half_life() {
        let s = Scorer::new(ScoreConfig::default());
        let h = ScoreConfig::default().deescalate_half_life.as_millis() as u64;
        let at = (T0 / 1000) as u32;
        assert_eq!(s.settle(0.1, at, 0.8, T0), 0.8);
        let half = s.settle(0.9, at, 0.1, T0 + h);
        assert!((half - 0.5).abs() < 0.01, "{half}");
        assert!(s.settle(0.9, at, 0.1, T0 + 20 * h) < 0.11);
        assert_eq!(s.action(0.0), Action::Allow);
        assert_eq!(s.action(0.3), Action::Tag);
        assert_eq!(s.action(0.55), Action::Throttle);
        assert_eq!(s.action(0.75), Action::Degrade);
        assert_eq!(s.action(0.95), Action::Block);
    }

    #[test]
    fn a_shrinking_cluster_de_escalates_slowly() {
        let mut cfg = Config::with_secret("s");
        cfg.cluster = ClusterConfig {
            warmup_accounts: 0,
            ..ClusterConfig::default()
        };
        let d = Detector::from_config(&cfg).expect("valid");
        let link = [hard_link_feature(&HardLink("card".into()))];
        let cot = Signals {
            cot: 1.0,
            focus: 1.0,
            extraction: 0.95,
            ..Signals::default()
        };
        let mut t = T0;
        let mut last = None;
        for _round in 0..4 {
            for i in 0..20 {
                t += 60_000;
                last = Some(d.observe(account(i), &link, cot, t));
            }
        }
        let (cluster, high, verdict) = last.expect("observed");
        assert_eq!(cluster.size, 20);
        assert!(high.value() >= 0.7, "{high:?}");
        assert!(verdict.action >= Action::Degrade);
        // An administrator splits most of it off; the two left keep their
        // cluster's level for a while, then calm down.
        for i in 2..20 {
            assert!(d.engine().unlink(&account(i), t, 0));
        }
        let (cluster, soon, _) = d.observe(account(0), &[], Signals::default(), t + 60_000);
        assert_eq!(cluster.size, 2);
        assert!(soon.value() >= 0.6, "de-escalated at once: {soon:?}");
        let (_, later, v) = d.observe(account(0), &[], Signals::default(), t + 5 * 86_400_000);
        assert!(later.value() < 0.3, "{later:?}");
        assert!(v.action <= Action::Tag);
    }

    #[test]
    fn unlinked_content_is_capped_below_throttle() {
        let mut cfg = Config::with_secret("s");
        cfg.cluster.warmup_accounts = 0;
        let d = Detector::from_config(&cfg).expect("valid");
        let all = Signals {
            cot: 1.0,
            focus: 1.0,
            probing: 1.0,
            inconsistency: 1.0,
            ..Signals::default()
        };
        let mut worst = 0.0f64;
        for i in 0..500u64 {
            // Perfectly regular, every content signal on.
            let (c, s, v) = d.observe(account(1), &[], all, T0 + i * 600_000);
            assert_eq!(c.size, 1);
            assert!(v.action < Action::Throttle, "{v:?}");
            worst = worst.max(s.value());
        }
        assert!(worst > 0.2, "content signals do count: {worst}");
        assert!(worst <= ScoreConfig::default().unlinked_cap + 1e-6);
    }

    #[test]
    fn a_lone_extractor_is_throttled_but_never_degraded() {
        let mut cfg = Config::with_secret("s");
        cfg.cluster.warmup_accounts = 0;
        let d = Detector::from_config(&cfg).expect("valid");
        let harvest = Signals {
            extraction: 0.95,
            ..Signals::default()
        };
        let mut worst = Action::Allow;
        for i in 0..200u64 {
            // One request an hour: every one its own session.
            let (c, _, v) = d.observe(account(3), &[], harvest, T0 + i * 3_600_000);
            assert_eq!(c.size, 1);
            worst = worst.max(v.action);
            assert!(v.action < Action::Degrade, "{v:?}");
        }
        assert_eq!(worst, Action::Throttle, "its behaviour counts on its own");
        // Ordinary use brings it back down.
        let calm = Signals {
            benign: 1.0,
            ..Signals::default()
        };
        let mut last = Action::Throttle;
        for i in 0..200u64 {
            let (_, _, v) = d.observe(account(3), &[], calm, T0 + (200 + i) * 3_600_000);
            last = v.action;
        }
        assert!(last <= Action::Tag, "{last:?}");
    }

    /// A request that asks as harvesting does (extraction score 0.95).
    fn harvesting() -> Signals {
        Signals {
            extraction: 0.95,
            ..Signals::default()
        }
    }

    /// A request that looks like ordinary use (the benign flag).
    fn ordinary() -> Signals {
        Signals {
            benign: 1.0,
            ..Signals::default()
        }
    }

    /// Twenty operator accounts (harvesting, each an hour apart) whose
    /// prompts open like a popular prompt that six ordinary users send too,
    /// and close in the operator's own words; from the third hour a power user
    /// who asks as harvesting does, opens alike and runs the operator's client
    /// build and parameters. The power user's and the operator's worst actions
    /// over the last six hours, the power user's tie, an operator member's tie
    /// and the power user's cluster size.
    fn a_power_user_beside_an_operator(score: ScoreConfig) -> (Action, Action, f32, f32, u32) {
        use crate::features::{Feature, FeatureKind};
        let f = |kind, value: u64| Feature { kind, value };
        let mut cfg = Config::with_secret("s");
        cfg.cluster.warmup_accounts = 0;
        cfg.score = score;
        let d = Detector::from_config(&cfg).expect("valid");
        let opener = [1u64, 2, 3].map(|v| f(FeatureKind::HeadLshBand, v));
        let mut operator = opener.to_vec();
        operator.extend([11u64, 12, 13].map(|v| f(FeatureKind::TailLshBand, v)));
        operator.push(f(FeatureKind::UserAgent, 21));
        operator.push(f(FeatureKind::Params, 31));
        operator.push(f(FeatureKind::IpPrefix, 41));
        let mut power = opener.to_vec();
        power.push(f(FeatureKind::UserAgent, 21));
        power.push(f(FeatureKind::Params, 31));
        power.push(f(FeatureKind::IpPrefix, 500));
        let (harvest, calm) = (harvesting(), ordinary());
        let (mut power_worst, mut op_worst) = (Action::Allow, Action::Allow);
        let mut size = 0;
        let hour = 3_600_000;
        for round in 0..12u64 {
            let base = T0 + round * hour;
            for i in 0..20u32 {
                let t = base + u64::from(i) * 60_000;
                let (_, _, v) = d.observe(account(200 + i), &operator, harvest, t);
                if round >= 6 {
                    op_worst = op_worst.max(v.action);
                }
                if i % 3 == 2 {
                    let mut own = opener.to_vec();
                    own.push(f(FeatureKind::IpPrefix, 600 + u64::from(i)));
                    d.observe(account(300 + i), &own, calm, t + 30_000);
                }
            }
            if round >= 2 {
                let (c, _, v) = d.observe(account(999), &power, harvest, base + 25 * 60_000);
                size = c.size;
                if round >= 6 {
                    power_worst = power_worst.max(v.action);
                }
            }
        }
        let tie = |a| {
            d.engine()
                .inspect_account(&account(a), 0, T0 + 12 * hour)
                .map_or(-1.0, |s| s.stats.tie)
        };
        (power_worst, op_worst, tie(999), tie(205), size)
    }

    #[test]
    fn a_power_user_loosely_tied_to_an_operator_is_not_degraded_with_it() {
        let (power, operator, power_tie, op_tie, size) =
            a_power_user_beside_an_operator(ScoreConfig::default());
        assert_eq!(size, 21, "the power user was linked with the operator");
        assert!(operator >= Action::Degrade, "{operator:?}");
        assert!(op_tie >= 0.9, "the operator's own closing bands: {op_tie}");
        assert!(
            (0.5..0.7).contains(&power_tie),
            "an opening six ordinary users share too: {power_tie}"
        );
        assert_eq!(
            power,
            Action::Throttle,
            "its own behaviour, not the operator's"
        );
        // Bearing the whole cluster's level, it would be degraded with it.
        let (power, ..) = a_power_user_beside_an_operator(ScoreConfig {
            strong_tie: 0.0,
            ..ScoreConfig::default()
        });
        assert!(power >= Action::Degrade, "{power:?}");
    }

    /// Twenty harvesting operator accounts behind one gateway (address, client,
    /// templates); a customer of the same gateway whose first two requests
    /// ask as harvesting does (it joins the operator's cluster on the full
    /// template) and whose later ones are ordinary conversations. The
    /// customer's worst action over the last four hours, and its evidence.
    fn a_customer_behind_the_operators_gateway(score: ScoreConfig) -> (Action, f32) {
        use crate::features::{Feature, FeatureKind};
        let f = |kind, value: u64| Feature { kind, value };
        let mut cfg = Config::with_secret("s");
        cfg.cluster.warmup_accounts = 0;
        cfg.score = score;
        let d = Detector::from_config(&cfg).expect("valid");
        let mut gateway: Vec<Feature> = [1u64, 2, 3]
            .map(|v| f(FeatureKind::HeadLshBand, v))
            .to_vec();
        gateway.extend([11u64, 12, 13].map(|v| f(FeatureKind::TailLshBand, v)));
        gateway.push(f(FeatureKind::UserAgent, 21));
        gateway.push(f(FeatureKind::IpPrefix, 41));
        let (harvest, calm) = (harvesting(), ordinary());
        let hour = 3_600_000;
        let mut worst = Action::Allow;
        for round in 0..12u64 {
            let base = T0 + round * hour;
            for i in 0..20u32 {
                d.observe(
                    account(200 + i),
                    &gateway,
                    harvest,
                    base + u64::from(i) * 60_000,
                );
            }
            let asks = if round < 2 { harvest } else { calm };
            let (c, _, v) = d.observe(account(999), &gateway, asks, base + 25 * 60_000);
            assert_eq!(
                c.size, 21,
                "round {round}: the customer is in the operator's cluster"
            );
            if round >= 8 {
                worst = worst.max(v.action);
            }
        }
        let evidence = d
            .engine()
            .inspect_account(&account(999), 0, T0 + 12 * hour)
            .map_or(0.0, |s| s.stats.evidence);
        (worst, evidence)
    }

    #[test]
    fn a_member_that_asks_as_ordinary_users_do_is_not_degraded_with_its_cluster() {
        let (worst, evidence) = a_customer_behind_the_operators_gateway(ScoreConfig::default());
        assert!(
            evidence < ScoreConfig::default().bystander_evidence as f32,
            "{evidence}"
        );
        assert!(worst <= Action::Throttle, "{worst:?}");
        // Without the rule it bears the operator's level.
        let (worst, _) = a_customer_behind_the_operators_gateway(ScoreConfig {
            bystander_evidence: -1000.0,
            ..ScoreConfig::default()
        });
        assert!(worst >= Action::Degrade, "{worst:?}");
    }

    /// `n` accounts on one hard link, every request at `signals`, an hour
    /// apart per account (each its own session): the worst action seen.
    fn worst_in_a_cluster(n: u32, signals: Signals) -> (u32, Action) {
        let mut cfg = Config::with_secret("s");
        cfg.cluster.warmup_accounts = 0;
        let d = Detector::from_config(&cfg).expect("valid");
        let link = [hard_link_feature(&HardLink("org".into()))];
        let mut worst = Action::Allow;
        let mut size = 0;
        for round in 0..12u64 {
            for i in 0..n {
                let t = T0 + round * 3_600_000 + u64::from(i) * 60_000;
                let (c, _, v) = d.observe(account(100 + i), &link, signals, t);
                size = c.size;
                worst = worst.max(v.action);
            }
        }
        (size, worst)
    }

    #[test]
    fn a_coordinated_cluster_is_degraded_only_when_its_requests_look_like_harvesting() {
        // An organisation's service keys: one cluster, machine-regular, every
        // content signal on, but no request of the kind harvesting sends.
        let org = Signals {
            cot: 1.0,
            focus: 1.0,
            probing: 1.0,
            inconsistency: 1.0,
            ..Signals::default()
        };
        let (size, worst) = worst_in_a_cluster(20, org);
        assert_eq!(size, 20);
        assert_eq!(worst, Action::Throttle, "looking coordinated alone");
        // The same cluster whose requests each look like extraction.
        let harvest = Signals {
            extraction: 0.95,
            ..org
        };
        let (_, worst) = worst_in_a_cluster(20, harvest);
        assert!(worst >= Action::Degrade, "{worst:?}");
    }

    #[test]
    fn a_handful_of_accounts_that_ask_alike_is_not_degraded_as_an_operator() {
        // A few power users who found each other's templates: linked, each
        // asking as harvesting does, but fewer than `linked_min_size`.
        let harvest = Signals {
            extraction: 0.95,
            ..Signals::default()
        };
        let small = ScoreConfig::default().linked_min_size - 1;
        let (size, worst) = worst_in_a_cluster(small, harvest);
        assert_eq!(size, small);
        assert_eq!(worst, Action::Throttle, "{worst:?}");
        let (_, worst) = worst_in_a_cluster(small + 1, harvest);
        assert!(worst >= Action::Degrade, "{worst:?}");
    }
}
