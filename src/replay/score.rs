//! Scoring a replay against the ground-truth labels of its input, with the
//! definitions of the project's evaluation (the same ones the README's tables
//! and independent re-measurements use).
//!
//! Feed each labelled [`TrafficLine`] with its [`DecisionLine`] to a [`Scorer`]
//! (in input order), then [`Scorer::finish`] gives a [`Report`].
//!
//! Per request, from the decision line:
//! - **denied**: status 429 or 403; **degraded**: action `degrade`;
//!   **enforced**: denied or degraded;
//! - **tagged**: `tagged: true` or action `tag` (a tag is not enforcement);
//! - **harvest**: status 200 and action neither `degrade` nor `block`: what the
//!   distiller actually received, tagged or not.
//!
//! Accounts are identified by the API key of the traffic line (`Authorization:
//! Bearer` or `x-api-key`), never by the decision's `account` field (a line
//! without a key falls back to it). A campaign is the set of accounts of one
//! operator (`label.actor` of a line whose `label.kind` is `campaign`).
//!
//! - **Campaign harvest**: the share of all campaign output tokens (`usage`)
//!   delivered as harvest, overall, over the first 24 hours and over the last 6
//!   hours (does enforcement hold?).
//! - **First enforcement**: per operator, the time from its first request to its
//!   first enforced request; the worst operator is the figure (`None`, "never",
//!   when one is never enforced on).
//! - **Harm**: the share of accounts with at least one enforced request, for
//!   organic accounts, batch jobs (`label.kind` or `label.cohort` naming a
//!   batch) and innocent customers of a reseller (`kind` naming a reseller, or
//!   cohort `hydra-customer`), each on its own.
//! - **Clustering**: pairwise and B-cubed precision and recall over accounts
//!   between an account's predicted cluster (the cluster of its *last*
//!   decision: clusters merge over time) and its operator; every account that is
//!   not a campaign's is its own operator. "Campaigns merged" precision counts
//!   every campaign account as one label, so it measures only whether innocent
//!   accounts were linked to anyone.
//!
//! Memory is one small record per account and per predicted cluster plus one
//! bucket per hour of traffic: pair counts come from the contingency table
//! (Σ C(n_ij, 2)), never from enumerating pairs.
//!
//! ```
//! use distill_guard::replay::format::{parse_decision, parse_line};
//! use distill_guard::replay::score::Scorer;
//!
//! let mut scorer = Scorer::new();
//! let traffic = r#"{"ts_ms": 0, "ip": "192.0.2.1", "method": "POST", "path": "/v1/messages",
//!   "headers": [["x-api-key", "sk-a1"]],
//!   "usage": {"input_tokens": 10, "output_tokens": 100}, "label": {"actor": "campaign-1"}}"#;
//! let decision = r#"{"line": 1, "status": 429, "account": "a1", "cluster": "c1",
//!   "cluster_size": 1, "score": 0.9, "action": "throttle", "tagged": false}"#;
//! scorer.observe(&parse_line(1, traffic)?, &parse_decision(1, decision)?);
//! let report = scorer.finish();
//! assert_eq!(report.campaign.output_tokens.denied, 100);
//! assert_eq!(report.campaign.output_tokens.harvested_share, Some(0.0));
//! # Ok::<(), distill_guard::replay::format::LineError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::BufRead;

use serde::Serialize;

use super::format::{parse_decision, parse_line, DecisionLine, LineError, TrafficLine};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
/// The window of the "last hours" harvest figure.
const LAST_WINDOW_MS: u64 = 6 * HOUR_MS;
/// Minute buckets kept for the last-window figure.
const LAST_MINUTES: usize = (LAST_WINDOW_MS / 60_000) as usize;
/// Most hourly points kept for the time series (a year).
const MAX_HOURS: usize = 24 * 366;

/// Precision and recall of a clustering.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrecisionRecall {
    /// Of what was put together, the share that belongs together.
    pub precision: f64,
    /// Of what belongs together, the share that was put together.
    pub recall: f64,
}

impl PrecisionRecall {
    /// The harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let s = self.precision + self.recall;
        if s > 0.0 {
            2.0 * self.precision * self.recall / s
        } else {
            0.0
        }
    }
}

/// How well the predicted clusters match the true operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clustering {
    /// Accounts scored.
    pub accounts: u64,
    /// Distinct true clusters (operators).
    pub true_clusters: u64,
    /// Distinct predicted clusters.
    pub predicted_clusters: u64,
    /// Pairs of accounts put in one predicted cluster.
    pub predicted_pairs: u128,
    /// Pairs of accounts with one true operator.
    pub true_pairs: u128,
    /// Pairs that are both.
    pub correct_pairs: u128,
    /// Pairwise precision and recall (1.0 when there are no pairs to get wrong).
    pub pairwise: PrecisionRecall,
    /// B-cubed precision and recall, averaged over accounts.
    pub bcubed: PrecisionRecall,
    /// B-cubed precision with every campaign account under one label: whether
    /// accounts that are no campaign's were linked to anyone.
    pub bcubed_precision_campaigns_merged: f64,
    /// Accounts that are no campaign's but share their predicted cluster with
    /// another account.
    pub innocent_accounts_linked: u64,
    /// B-cubed recall averaged over campaign accounts only (1.0 without
    /// any): `bcubed.recall` counts every innocent account as an operator of
    /// its own, recalled whole, which keeps it high however little of a
    /// campaign is linked.
    pub bcubed_recall_campaign: f64,
}

/// Counts of a class of requests (or of their output tokens) by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Outcomes {
    /// All of them.
    pub total: u64,
    /// Status 429 or 403.
    pub denied: u64,
    /// Action `degrade` (not denied).
    pub degraded: u64,
    /// Tagged (`tagged: true` or action `tag`) and not denied.
    pub tagged: u64,
    /// Status 200, action neither `degrade` nor `block` (tagged or not).
    pub harvested: u64,
    /// `denied / total`, `None` when `total` is 0.
    pub denied_share: Option<f64>,
    /// `degraded / total`.
    pub degraded_share: Option<f64>,
    /// `tagged / total`.
    pub tagged_share: Option<f64>,
    /// `harvested / total`.
    pub harvested_share: Option<f64>,
}

fn share(part: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| part as f64 / total as f64)
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    total: u64,
    denied: u64,
    degraded: u64,
    tagged: u64,
    harvested: u64,
}

impl Tally {
    fn add(&mut self, d: &DecisionLine, amount: u64) {
        self.total += amount;
        if d.denied() {
            self.denied += amount;
        }
        if d.degraded() {
            self.degraded += amount;
        }
        if (d.tagged || d.action == "tag") && !d.denied() {
            self.tagged += amount;
        }
        if d.harvested() {
            self.harvested += amount;
        }
    }

    fn outcomes(&self) -> Outcomes {
        Outcomes {
            total: self.total,
            denied: self.denied,
            degraded: self.degraded,
            tagged: self.tagged,
            harvested: self.harvested,
            denied_share: share(self.denied, self.total),
            degraded_share: share(self.degraded, self.total),
            tagged_share: share(self.tagged, self.total),
            harvested_share: share(self.harvested, self.total),
        }
    }
}

/// One campaign (true operator) in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActorReport {
    /// The label's actor.
    pub actor: String,
    /// Its accounts.
    pub accounts: u64,
    /// Its requests by outcome.
    pub requests: Outcomes,
    /// Its output tokens by outcome.
    pub output_tokens: Outcomes,
    /// Timestamp of its first request.
    pub first_ms: u64,
    /// Milliseconds from its first request to its first denial, if any.
    pub time_to_first_denial_ms: Option<u64>,
    /// Milliseconds from its first request to its first denial or degradation.
    pub time_to_first_enforcement_ms: Option<u64>,
    /// The share of its accounts in the predicted cluster holding most of them.
    pub largest_cluster_share: f64,
    /// B-cubed recall over its accounts: on average, the share of the operator
    /// that an account's predicted cluster holds.
    pub bcubed_recall: f64,
}

/// What happened to campaign traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReport {
    /// Campaign accounts.
    pub accounts: u64,
    /// Requests by outcome.
    pub requests: Outcomes,
    /// Output tokens by outcome.
    pub output_tokens: Outcomes,
    /// Harvested share of campaign output tokens in the first 24 hours.
    pub harvest_first_24h: Option<f64>,
    /// Harvested share of campaign output tokens in the last 6 hours of the
    /// traffic.
    pub harvest_last_6h: Option<f64>,
    /// Harvested share of campaign output tokens requested after each campaign's
    /// first denial (`None` if no campaign was ever denied).
    pub harvest_after_first_denial: Option<f64>,
    /// The slowest campaign's time from first request to first denial or
    /// degradation (`None` if some campaign was never enforced on, or there is
    /// no campaign).
    pub worst_time_to_first_enforcement_ms: Option<u64>,
    /// Each campaign.
    pub actors: Vec<ActorReport>,
}

/// Harm to one class of innocent accounts: organic users, batch jobs or a
/// reseller's customers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HarmReport {
    /// Accounts.
    pub accounts: u64,
    /// Accounts with at least one request denied or degraded.
    pub accounts_harmed: u64,
    /// `accounts_harmed / accounts`.
    pub accounts_harmed_share: Option<f64>,
    /// Requests by outcome.
    pub requests: Outcomes,
    /// Requests denied or degraded.
    pub requests_harmed: u64,
    /// `requests_harmed / requests`.
    pub requests_harmed_share: Option<f64>,
}

/// What happened to organic traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrganicReport {
    /// Organic accounts (not batch jobs, not a reseller's customers).
    pub accounts: u64,
    /// Organic accounts with at least one request denied or degraded.
    pub accounts_harmed: u64,
    /// `accounts_harmed / accounts`.
    pub accounts_harmed_share: Option<f64>,
    /// Requests by outcome.
    pub requests: Outcomes,
    /// Requests denied or degraded.
    pub requests_harmed: u64,
    /// `requests_harmed / requests`.
    pub requests_harmed_share: Option<f64>,
    /// Batch and evaluation jobs.
    pub batch: HarmReport,
    /// Innocent customers of a reseller.
    pub reseller_customers: HarmReport,
    /// Every account that is not a campaign's, by the label's `cohort` (`-`
    /// when absent), sorted by name.
    pub cohorts: Vec<CohortReport>,
}

/// Harm within one cohort of the labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortReport {
    /// The label's `cohort`.
    pub cohort: String,
    /// Accounts.
    pub accounts: u64,
    /// Accounts with a request denied or degraded.
    pub accounts_harmed: u64,
    /// Requests.
    pub requests: u64,
    /// Requests denied or degraded.
    pub requests_harmed: u64,
}

/// One hour of traffic, counted from the first line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HourPoint {
    /// Hours since the first line.
    pub hour: u32,
    /// Campaign output tokens requested.
    pub campaign_tokens: u64,
    /// Of those, harvested.
    pub campaign_tokens_harvested: u64,
    /// Requests of accounts that are no campaign's.
    pub innocent_requests: u64,
    /// Of those, denied or degraded.
    pub innocent_requests_harmed: u64,
}

/// The scores of one replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Lines scored (labelled).
    pub lines: u64,
    /// Lines without a label, not scored.
    pub unlabelled: u64,
    /// Clustering quality.
    pub clustering: Clustering,
    /// Campaign traffic.
    pub campaign: CampaignReport,
    /// Organic traffic (and batch jobs and reseller customers, each on its own).
    pub organic: OrganicReport,
    /// Harvest and harm hour by hour.
    pub hourly: Vec<HourPoint>,
}

/// The class of an account's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Campaign,
    Organic,
    Batch,
    Reseller,
}

impl Class {
    fn of(label: &super::format::Label) -> Self {
        if label.is_campaign() {
            return Class::Campaign;
        }
        let has = |s: Option<&str>, needle: &str| {
            s.is_some_and(|s| s.to_ascii_lowercase().contains(needle))
        };
        let (kind, cohort) = (label.kind.as_deref(), label.cohort.as_deref());
        if has(kind, "batch") || has(cohort, "batch") {
            Class::Batch
        } else if has(kind, "reseller") || has(cohort, "reseller") || has(cohort, "hydra-customer")
        {
            Class::Reseller
        } else {
            Class::Organic
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct AccountAgg {
    truth: u32,
    predicted: u32,
    cohort: u32,
    class: Class,
    harmed: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct CohortAgg {
    requests: u64,
    requests_harmed: u64,
}

#[derive(Debug, Default)]
struct ActorAgg {
    requests: Tally,
    tokens: Tally,
    first_ms: u64,
    first_denial_ms: Option<u64>,
    first_enforcement_ms: Option<u64>,
}

/// Campaign output tokens by minute over the last [`LAST_WINDOW_MS`].
#[derive(Debug)]
struct LastWindow {
    /// The newest minute seen.
    newest: Option<u64>,
    /// (total, harvested) per minute, indexed by minute modulo the ring size.
    ring: Vec<(u64, u64)>,
}

impl Default for LastWindow {
    fn default() -> Self {
        Self {
            newest: None,
            ring: vec![(0, 0); LAST_MINUTES],
        }
    }
}

impl LastWindow {
    fn add(&mut self, ts_ms: u64, tokens: u64, harvested: bool) {
        let minute = ts_ms / 60_000;
        let n = self.ring.len() as u64;
        match self.newest {
            Some(newest) if minute + n <= newest => return, // older than the window
            Some(newest) if minute > newest => {
                // Clear the minutes between the old newest and this one.
                let gap = (minute - newest).min(n);
                for k in 1..=gap {
                    self.ring[((newest + k) % n) as usize] = (0, 0);
                }
                self.newest = Some(minute);
            }
            Some(_) => {}
            None => {
                self.newest = Some(minute);
            }
        }
        let cell = &mut self.ring[(minute % n) as usize];
        cell.0 += tokens;
        if harvested {
            cell.1 += tokens;
        }
    }

    fn harvested_share(&self) -> Option<f64> {
        let (total, harvested) = self
            .ring
            .iter()
            .fold((0, 0), |(t, h), (a, b)| (t + a, h + b));
        share(harvested, total)
    }
}

/// Accumulates per-account and per-campaign aggregates, line by line.
#[derive(Debug, Default)]
pub struct Scorer {
    accounts: HashMap<Box<str>, AccountAgg>,
    truth_names: HashMap<Box<str>, u32>,
    next_truth: u32,
    predicted: HashMap<Box<str>, u32>,
    cohort_names: HashMap<Box<str>, u32>,
    cohorts: Vec<CohortAgg>,
    campaign_truths: BTreeMap<u32, ActorAgg>,
    start_ms: Option<u64>,
    lines: u64,
    unlabelled: u64,
    campaign_requests: Tally,
    campaign_tokens: Tally,
    first_day_tokens: Tally,
    after_denial_tokens: Tally,
    last_window: LastWindow,
    class_requests: [Tally; 3],
    class_harmed: [u64; 3],
    hourly: Vec<HourPoint>,
}

/// The index of a class that is no campaign's into the per-class arrays.
fn innocent_index(class: Class) -> usize {
    match class {
        Class::Campaign | Class::Organic => 0,
        Class::Batch => 1,
        Class::Reseller => 2,
    }
}

/// The API key a traffic line authenticates with: `Authorization: Bearer` or
/// `x-api-key`.
fn api_key(traffic: &TrafficLine) -> Option<&str> {
    if let Some(v) = traffic.header("authorization") {
        let v = v.trim();
        let key = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        if !key.is_empty() {
            return Some(key);
        }
    }
    traffic
        .header("x-api-key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

impl Scorer {
    /// An empty scorer.
    pub fn new() -> Self {
        Self::default()
    }

    fn new_truth(&mut self, name: Option<&str>) -> u32 {
        if let Some(name) = name {
            if let Some(&id) = self.truth_names.get(name) {
                return id;
            }
        }
        let id = self.next_truth;
        self.next_truth += 1;
        if let Some(name) = name {
            self.truth_names.insert(name.into(), id);
        }
        id
    }

    fn predicted_of(&mut self, cluster: &str) -> u32 {
        if let Some(&id) = self.predicted.get(cluster) {
            return id;
        }
        let id = self.predicted.len() as u32;
        self.predicted.insert(cluster.into(), id);
        id
    }

    fn cohort_of(&mut self, traffic: &TrafficLine) -> u32 {
        let name = traffic
            .label
            .as_ref()
            .and_then(|l| l.cohort.as_deref())
            .unwrap_or("-");
        if let Some(&id) = self.cohort_names.get(name) {
            return id;
        }
        let id = self.cohorts.len() as u32;
        self.cohort_names.insert(name.into(), id);
        self.cohorts.push(CohortAgg::default());
        id
    }

    fn hour_point(&mut self, ts_ms: u64, start: u64) -> Option<&mut HourPoint> {
        let hour = usize::try_from(ts_ms.saturating_sub(start) / HOUR_MS).ok()?;
        if hour >= MAX_HOURS {
            return None;
        }
        while self.hourly.len() <= hour {
            let h = self.hourly.len() as u32;
            self.hourly.push(HourPoint {
                hour: h,
                ..HourPoint::default()
            });
        }
        self.hourly.get_mut(hour)
    }

    /// Adds one input line and the decision replay made for it. Lines should
    /// come in input (time) order; unlabelled lines are only counted.
    pub fn observe(&mut self, traffic: &TrafficLine, decision: &DecisionLine) {
        let Some(label) = traffic.label.as_ref() else {
            self.unlabelled += 1;
            return;
        };
        self.lines += 1;
        let start = *self.start_ms.get_or_insert(traffic.ts_ms);
        let predicted = self.predicted_of(&decision.cluster);
        let harm = decision.enforced();
        let key = api_key(traffic).unwrap_or(decision.account.as_str());
        let agg = match self.accounts.get_mut(key) {
            Some(agg) => {
                agg.predicted = predicted;
                agg.harmed |= harm;
                *agg
            }
            None => {
                let class = Class::of(label);
                let truth = if class == Class::Campaign {
                    let actor = label.actor.clone();
                    self.new_truth(Some(&actor))
                } else {
                    self.new_truth(None)
                };
                let cohort = self.cohort_of(traffic);
                let agg = AccountAgg {
                    truth,
                    predicted,
                    cohort,
                    class,
                    harmed: harm,
                };
                self.accounts.insert(key.into(), agg);
                agg
            }
        };
        let tokens = traffic.usage.output_tokens;
        if agg.class != Class::Campaign {
            let i = innocent_index(agg.class);
            self.class_requests[i].add(decision, 1);
            self.class_harmed[i] += u64::from(harm);
            if let Some(c) = self.cohorts.get_mut(agg.cohort as usize) {
                c.requests += 1;
                c.requests_harmed += u64::from(harm);
            }
            if let Some(p) = self.hour_point(traffic.ts_ms, start) {
                p.innocent_requests += 1;
                p.innocent_requests_harmed += u64::from(harm);
            }
            return;
        }
        self.campaign_requests.add(decision, 1);
        self.campaign_tokens.add(decision, tokens);
        if traffic.ts_ms.saturating_sub(start) < DAY_MS {
            self.first_day_tokens.add(decision, tokens);
        }
        self.last_window
            .add(traffic.ts_ms, tokens, decision.harvested());
        if let Some(p) = self.hour_point(traffic.ts_ms, start) {
            p.campaign_tokens += tokens;
            if decision.harvested() {
                p.campaign_tokens_harvested += tokens;
            }
        }
        let actor = self
            .campaign_truths
            .entry(agg.truth)
            .or_insert_with(|| ActorAgg {
                first_ms: traffic.ts_ms,
                ..ActorAgg::default()
            });
        if actor.first_denial_ms.is_some() {
            self.after_denial_tokens.add(decision, tokens);
        }
        actor.requests.add(decision, 1);
        actor.tokens.add(decision, tokens);
        let elapsed = traffic.ts_ms.saturating_sub(actor.first_ms);
        if decision.denied() && actor.first_denial_ms.is_none() {
            actor.first_denial_ms = Some(elapsed);
        }
        if harm && actor.first_enforcement_ms.is_none() {
            actor.first_enforcement_ms = Some(elapsed);
        }
    }

    /// Computes the report.
    pub fn finish(self) -> Report {
        // Contingency table n_ij (true i, predicted j) and its margins.
        let mut cells: HashMap<(u32, u32), u64> = HashMap::new();
        let mut true_sizes: HashMap<u32, u64> = HashMap::new();
        let mut predicted_sizes: HashMap<u32, u64> = HashMap::new();
        // Campaign accounts per predicted cluster (for the merged precision).
        let mut predicted_campaign: HashMap<u32, u64> = HashMap::new();
        let mut campaign_accounts = 0u64;
        let mut class_accounts = [(0u64, 0u64); 3];
        let mut cohort_accounts = vec![(0u64, 0u64); self.cohorts.len()];
        for agg in self.accounts.values() {
            *cells.entry((agg.truth, agg.predicted)).or_default() += 1;
            *true_sizes.entry(agg.truth).or_default() += 1;
            *predicted_sizes.entry(agg.predicted).or_default() += 1;
            if agg.class == Class::Campaign {
                campaign_accounts += 1;
                *predicted_campaign.entry(agg.predicted).or_default() += 1;
            } else {
                let c = &mut class_accounts[innocent_index(agg.class)];
                c.0 += 1;
                c.1 += u64::from(agg.harmed);
                if let Some(c) = cohort_accounts.get_mut(agg.cohort as usize) {
                    c.0 += 1;
                    c.1 += u64::from(agg.harmed);
                }
            }
        }
        let n = self.accounts.len() as u64;
        let pairs = |k: u64| u128::from(k) * u128::from(k.saturating_sub(1)) / 2;
        let correct_pairs: u128 = cells.values().map(|&k| pairs(k)).sum();
        let true_pairs: u128 = true_sizes.values().map(|&k| pairs(k)).sum();
        let predicted_pairs: u128 = predicted_sizes.values().map(|&k| pairs(k)).sum();
        let ratio = |a: u128, b: u128| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        // B-cubed: each account e in cell (i, j) has precision n_ij / |pred_j| and
        // recall n_ij / |true_i|; the cell contributes n_ij times that.
        let (mut bp, mut br) = (0.0f64, 0.0f64);
        let mut campaign_recall = 0.0f64;
        let mut actor_recall: HashMap<u32, f64> = HashMap::new();
        for (&(i, j), &k) in &cells {
            let k = k as f64;
            // Every cell's row and column are in the margins (built together).
            let pj = predicted_sizes.get(&j).copied().unwrap_or(1).max(1) as f64;
            let ti = true_sizes.get(&i).copied().unwrap_or(1).max(1) as f64;
            bp += k * k / pj;
            br += k * k / ti;
            if self.campaign_truths.contains_key(&i) {
                *actor_recall.entry(i).or_default() += k * k / ti / ti;
                campaign_recall += k * k / ti;
            }
        }
        // Merged precision: a campaign account's precision is the campaign
        // share of its cluster; an innocent account's is 1 / cluster size.
        let mut merged = 0.0f64;
        let mut innocent_linked = 0u64;
        for agg in self.accounts.values() {
            let size = predicted_sizes
                .get(&agg.predicted)
                .copied()
                .unwrap_or(1)
                .max(1);
            if agg.class == Class::Campaign {
                let c = predicted_campaign.get(&agg.predicted).copied().unwrap_or(1);
                merged += c as f64 / size as f64;
            } else {
                merged += 1.0 / size as f64;
                innocent_linked += u64::from(size > 1);
            }
        }
        let (bcubed, merged) = if n == 0 {
            (
                PrecisionRecall {
                    precision: 1.0,
                    recall: 1.0,
                },
                1.0,
            )
        } else {
            (
                PrecisionRecall {
                    precision: bp / n as f64,
                    recall: br / n as f64,
                },
                merged / n as f64,
            )
        };
        let clustering = Clustering {
            accounts: n,
            true_clusters: true_sizes.len() as u64,
            predicted_clusters: predicted_sizes.len() as u64,
            predicted_pairs,
            true_pairs,
            correct_pairs,
            pairwise: PrecisionRecall {
                precision: ratio(correct_pairs, predicted_pairs),
                recall: ratio(correct_pairs, true_pairs),
            },
            bcubed,
            bcubed_precision_campaigns_merged: merged,
            innocent_accounts_linked: innocent_linked,
            bcubed_recall_campaign: if campaign_accounts == 0 {
                1.0
            } else {
                campaign_recall / campaign_accounts as f64
            },
        };

        let truth_name: HashMap<u32, &str> = self
            .truth_names
            .iter()
            .map(|(name, &id)| (id, &**name))
            .collect();
        let mut actors = Vec::new();
        for (&truth, agg) in &self.campaign_truths {
            let members = true_sizes.get(&truth).copied().unwrap_or(0);
            let largest = cells
                .iter()
                .filter(|((i, _), _)| *i == truth)
                .map(|(_, &k)| k)
                .max()
                .unwrap_or(0);
            actors.push(ActorReport {
                actor: truth_name.get(&truth).copied().unwrap_or("").to_owned(),
                accounts: members,
                requests: agg.requests.outcomes(),
                output_tokens: agg.tokens.outcomes(),
                first_ms: agg.first_ms,
                time_to_first_denial_ms: agg.first_denial_ms,
                time_to_first_enforcement_ms: agg.first_enforcement_ms,
                largest_cluster_share: if members == 0 {
                    0.0
                } else {
                    largest as f64 / members as f64
                },
                bcubed_recall: actor_recall.get(&truth).copied().unwrap_or(0.0),
            });
        }
        actors.sort_by(|a, b| a.actor.cmp(&b.actor));
        let worst = if actors.is_empty() {
            None
        } else {
            actors
                .iter()
                .map(|a| a.time_to_first_enforcement_ms)
                .try_fold(0u64, |acc, t| t.map(|t| acc.max(t)))
        };
        let campaign = CampaignReport {
            accounts: campaign_accounts,
            requests: self.campaign_requests.outcomes(),
            output_tokens: self.campaign_tokens.outcomes(),
            harvest_first_24h: share(self.first_day_tokens.harvested, self.first_day_tokens.total),
            harvest_last_6h: self.last_window.harvested_share(),
            harvest_after_first_denial: share(
                self.after_denial_tokens.harvested,
                self.after_denial_tokens.total,
            ),
            worst_time_to_first_enforcement_ms: worst,
            actors,
        };
        let harm = |i: usize| {
            let (accounts, harmed) = class_accounts[i];
            let requests = self.class_requests[i].outcomes();
            HarmReport {
                accounts,
                accounts_harmed: harmed,
                accounts_harmed_share: share(harmed, accounts),
                requests_harmed: self.class_harmed[i],
                requests_harmed_share: share(self.class_harmed[i], requests.total),
                requests,
            }
        };
        let mut cohorts: Vec<CohortReport> = self
            .cohort_names
            .iter()
            .filter_map(|(name, &id)| {
                let (accounts, accounts_harmed) = cohort_accounts.get(id as usize).copied()?;
                let agg = self.cohorts.get(id as usize).copied()?;
                (accounts > 0).then(|| CohortReport {
                    cohort: name.to_string(),
                    accounts,
                    accounts_harmed,
                    requests: agg.requests,
                    requests_harmed: agg.requests_harmed,
                })
            })
            .collect();
        cohorts.sort_by(|a, b| a.cohort.cmp(&b.cohort));
        let organic = harm(0);
        let organic = OrganicReport {
            accounts: organic.accounts,
            accounts_harmed: organic.accounts_harmed,
            accounts_harmed_share: organic.accounts_harmed_share,
            requests: organic.requests,
            requests_harmed: organic.requests_harmed,
            requests_harmed_share: organic.requests_harmed_share,
            batch: harm(1),
            reseller_customers: harm(2),
            cohorts,
        };
        Report {
            lines: self.lines,
            unlabelled: self.unlabelled,
            clustering,
            campaign,
            organic,
            hourly: self.hourly,
        }
    }
}

/// Why a pair of streams could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// Reading failed.
    #[error("reading {what}: {source}")]
    Io {
        /// `traffic` or `decisions`.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A traffic line a decision refers to is malformed.
    #[error("traffic {0}")]
    Traffic(LineError),
    /// A decision line is malformed.
    #[error("decisions {0}")]
    Decision(LineError),
    /// A decision refers to a traffic line that is missing or out of order.
    #[error("decisions line {decision_line}: refers to traffic line {line}, {problem}")]
    Pairing {
        /// The decision's own line number.
        decision_line: u64,
        /// The traffic line it names.
        line: u64,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Scores a traffic file against replay's decisions for it. Decisions are paired
/// with traffic lines by their `line` field (they must be in increasing order;
/// lines replay skipped may have no decision). Memory is bounded by the number of
/// accounts and clusters, not lines.
pub fn score_streams(traffic: impl BufRead, decisions: impl BufRead) -> Result<Report, ScoreError> {
    let mut scorer = Scorer::new();
    let mut traffic_lines = traffic.lines();
    let mut traffic_no = 0u64;
    for (i, text) in decisions.lines().enumerate() {
        let decision_no = i as u64 + 1;
        let text = text.map_err(|source| ScoreError::Io {
            what: "decisions",
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let decision = parse_decision(decision_no, &text).map_err(ScoreError::Decision)?;
        if decision.line <= traffic_no {
            return Err(ScoreError::Pairing {
                decision_line: decision_no,
                line: decision.line,
                problem: "which is not after the previous decision's line",
            });
        }
        let mut found = None;
        while traffic_no < decision.line {
            let Some(t) = traffic_lines.next() else {
                break;
            };
            traffic_no += 1;
            let t = t.map_err(|source| ScoreError::Io {
                what: "traffic",
                source,
            })?;
            if traffic_no == decision.line {
                found = Some(t);
            }
        }
        let Some(t) = found else {
            return Err(ScoreError::Pairing {
                decision_line: decision_no,
                line: decision.line,
                problem: "past the end of the traffic",
            });
        };
        let traffic = parse_line(decision.line, &t).map_err(ScoreError::Traffic)?;
        scorer.observe(&traffic, &decision);
    }
    Ok(scorer.finish())
}

fn pct(x: Option<f64>) -> String {
    match x {
        Some(x) => format!("{:.2}%", x * 100.0),
        None => "n/a".to_owned(),
    }
}

fn minutes(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{:.1} min", ms as f64 / 60_000.0),
        None => "never".to_owned(),
    }
}

impl fmt::Display for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} total: denied {}, degraded {}, tagged {}, harvested {}",
            self.total,
            pct(self.denied_share),
            pct(self.degraded_share),
            pct(self.tagged_share),
            pct(self.harvested_share)
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.clustering;
        writeln!(
            f,
            "scored {} lines ({} unlabelled)",
            self.lines, self.unlabelled
        )?;
        writeln!(
            f,
            "clustering: {} accounts, {} true operators, {} predicted clusters",
            c.accounts, c.true_clusters, c.predicted_clusters
        )?;
        writeln!(
            f,
            "  pairwise  precision {:.4}  recall {:.4}  ({} correct of {} predicted, {} true pairs)",
            c.pairwise.precision, c.pairwise.recall, c.correct_pairs, c.predicted_pairs, c.true_pairs
        )?;
        writeln!(
            f,
            "  b-cubed   precision {:.4}  recall {:.4} (over campaign accounts {:.4})  precision with campaigns merged {:.4} ({} innocent accounts linked)",
            c.bcubed.precision,
            c.bcubed.recall,
            c.bcubed_recall_campaign,
            c.bcubed_precision_campaigns_merged,
            c.innocent_accounts_linked
        )?;
        let k = &self.campaign;
        writeln!(f, "campaign: {} accounts", k.accounts)?;
        writeln!(f, "  requests       {}", k.requests)?;
        writeln!(f, "  output tokens  {}", k.output_tokens)?;
        writeln!(
            f,
            "  harvested: first 24 h {}, last 6 h {}, after first denial {}; slowest first enforcement {}",
            pct(k.harvest_first_24h),
            pct(k.harvest_last_6h),
            pct(k.harvest_after_first_denial),
            minutes(k.worst_time_to_first_enforcement_ms)
        )?;
        for a in &k.actors {
            writeln!(
                f,
                "  {}: {} accounts, largest cluster {:.1}%, b-cubed recall {:.4}, harvested {} of tokens, first denial {}, first enforcement {}",
                a.actor,
                a.accounts,
                a.largest_cluster_share * 100.0,
                a.bcubed_recall,
                pct(a.output_tokens.harvested_share),
                minutes(a.time_to_first_denial_ms),
                minutes(a.time_to_first_enforcement_ms)
            )?;
        }
        let o = &self.organic;
        writeln!(
            f,
            "organic: {} accounts, {} harmed ({}); requests {}, {} harmed ({})",
            o.accounts,
            o.accounts_harmed,
            pct(o.accounts_harmed_share),
            o.requests.total,
            o.requests_harmed,
            pct(o.requests_harmed_share)
        )?;
        for (name, h) in [
            ("batch jobs", &o.batch),
            ("reseller customers", &o.reseller_customers),
        ] {
            writeln!(
                f,
                "{name}: {} accounts, {} harmed ({}); requests {}, {} harmed ({})",
                h.accounts,
                h.accounts_harmed,
                pct(h.accounts_harmed_share),
                h.requests.total,
                h.requests_harmed,
                pct(h.requests_harmed_share)
            )?;
        }
        for c in &o.cohorts {
            writeln!(
                f,
                "  {}: {} of {} accounts harmed, {} of {} requests",
                c.cohort, c.accounts_harmed, c.accounts, c.requests_harmed, c.requests
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::format::{Label, Usage};

    fn traffic(ts_ms: u64, actor: &str, org: Option<&str>, out: u64) -> TrafficLine {
        TrafficLine {
            ts_ms,
            ip: [192, 0, 2, 1].into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            headers: Vec::new(),
            body: serde_json::Value::Null,
            usage: Usage {
                input_tokens: 10,
                output_tokens: out,
            },
            label: Some(Label {
                actor: actor.into(),
                kind: Some(
                    if actor.starts_with("campaign") {
                        "campaign"
                    } else {
                        "organic"
                    }
                    .into(),
                ),
                org: org.map(Into::into),
                ..Label::default()
            }),
        }
    }

    fn decision(
        account: &str,
        cluster: &str,
        status: u16,
        action: &str,
        tagged: bool,
    ) -> DecisionLine {
        DecisionLine {
            line: 0,
            status,
            account: account.into(),
            cluster: cluster.into(),
            cluster_size: 1,
            score: 0.0,
            action: action.into(),
            tagged,
            model_group: None,
            limited_in_group: false,
            reasons: Vec::new(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Truth: campaign A = {a1, a2, a3}, organic singletons u1, u2.
    /// Predicted: X = {a1, a2, u1}, Y = {a3}, Z = {u2}.
    ///
    /// Pairwise: predicted pairs C(3,2) = 3 (a1a2, a1u1, a2u1); true pairs
    /// C(3,2) = 3 (a1a2, a1a3, a2a3); correct = {a1a2} = 1 → P = 1/3, R = 1/3.
    ///
    /// B-cubed precision per account: a1 2/3, a2 2/3, u1 1/3, a3 1, u2 1
    /// → (2/3 + 2/3 + 1/3 + 1 + 1) / 5 = (11/3) / 5 = 11/15.
    /// B-cubed recall: a1 2/3, a2 2/3, a3 1/3, u1 1, u2 1 → 11/15 as well;
    /// over the campaign accounts alone (2/3 + 2/3 + 1/3) / 3 = 5/9.
    #[test]
    fn clustering_by_hand() {
        let mut s = Scorer::new();
        let rows = [
            ("a1", "campaign-A", "X"),
            ("a2", "campaign-A", "X"),
            ("a3", "campaign-A", "Y"),
            ("u1", "user-1", "X"),
            ("u2", "user-2", "Z"),
        ];
        for (acct, actor, cluster) in rows {
            s.observe(
                &traffic(0, actor, None, 1),
                &decision(acct, cluster, 200, "allow", false),
            );
        }
        let r = s.finish();
        let c = &r.clustering;
        assert_eq!(
            (c.predicted_pairs, c.true_pairs, c.correct_pairs),
            (3, 3, 1)
        );
        assert!(close(c.pairwise.precision, 1.0 / 3.0));
        assert!(close(c.pairwise.recall, 1.0 / 3.0));
        assert!(
            close(c.bcubed.precision, 11.0 / 15.0),
            "{}",
            c.bcubed.precision
        );
        assert!(close(c.bcubed.recall, 11.0 / 15.0), "{}", c.bcubed.recall);
        assert!(
            close(c.bcubed_recall_campaign, 5.0 / 9.0),
            "{}",
            c.bcubed_recall_campaign
        );
        assert_eq!(c.true_clusters, 3);
        assert_eq!(c.predicted_clusters, 3);
        assert_eq!(r.campaign.accounts, 3);
        assert_eq!(r.organic.accounts, 2);
        assert!(close(r.campaign.actors[0].largest_cluster_share, 2.0 / 3.0));
    }

    /// Asymmetric case: truth A = {a1, a2}; o1, o2 (organic, one org: still
    /// each its own operator) and u1. Predicted: everything in one cluster
    /// P = {a1, a2, o1, o2, u1}.
    ///
    /// Pairwise: predicted pairs C(5,2) = 10; true pairs 1; correct 1
    /// → P = 1/10, R = 1.
    /// B-cubed precision: a1, a2: 2/5; o1, o2, u1: 1/5 → (4/5 + 3/5) / 5 = 7/25,
    /// and the same with campaigns merged (one campaign). Recall: all 1.
    #[test]
    fn one_big_cluster_by_hand() {
        let mut s = Scorer::new();
        let rows = [
            ("a1", "campaign-A", None),
            ("a2", "campaign-A", None),
            ("o1", "org-1", Some("org-1")),
            ("o2", "org-1", Some("org-1")),
            ("u1", "user-1", None),
        ];
        for (acct, actor, org) in rows {
            s.observe(
                &traffic(0, actor, org, 1),
                &decision(acct, "P", 200, "allow", false),
            );
        }
        let c = s.finish().clustering;
        assert_eq!(
            (c.predicted_pairs, c.true_pairs, c.correct_pairs),
            (10, 1, 1)
        );
        assert!(close(c.pairwise.precision, 0.1));
        assert!(close(c.pairwise.recall, 1.0));
        assert!(
            close(c.bcubed.precision, 7.0 / 25.0),
            "{}",
            c.bcubed.precision
        );
        assert!(close(c.bcubed_precision_campaigns_merged, 7.0 / 25.0));
        assert_eq!(c.innocent_accounts_linked, 3);
        assert!(close(c.bcubed.recall, 1.0));
    }

    /// Two campaigns in one predicted cluster X = {a1, a2, b1}, b2 alone, u1
    /// alone. Plain B-cubed precision: a1, a2 2/3, b1 1/3, b2 1, u1 1 → 11/15.
    /// Campaigns merged: a1, a2, b1 3/3, b2 1, u1 1 → 1. Recall of A: a1, a2
    /// hold all of A → 1; of B: b1 and b2 each hold half → 1/2.
    #[test]
    fn campaigns_merged_precision_and_recall_per_actor() {
        let mut s = Scorer::new();
        for (acct, actor, cluster) in [
            ("a1", "campaign-A", "X"),
            ("a2", "campaign-A", "X"),
            ("b1", "campaign-B", "X"),
            ("b2", "campaign-B", "Y"),
            ("u1", "user-1", "Z"),
        ] {
            s.observe(
                &traffic(0, actor, None, 1),
                &decision(acct, cluster, 200, "allow", false),
            );
        }
        let r = s.finish();
        let c = &r.clustering;
        assert!(
            close(c.bcubed.precision, 11.0 / 15.0),
            "{}",
            c.bcubed.precision
        );
        assert!(close(c.bcubed_precision_campaigns_merged, 1.0));
        assert_eq!(c.innocent_accounts_linked, 0);
        let recall: Vec<(&str, f64)> = r
            .campaign
            .actors
            .iter()
            .map(|a| (a.actor.as_str(), a.bcubed_recall))
            .collect();
        assert_eq!(recall.len(), 2);
        assert!(close(recall[0].1, 1.0) && recall[0].0 == "campaign-A");
        assert!(close(recall[1].1, 0.5) && recall[1].0 == "campaign-B");
    }

    /// Accounts are the traffic line's API key, not the decision's account: two
    /// keys the decisions call one account are two accounts, and one key under
    /// two decision ids is one.
    #[test]
    fn accounts_are_the_traffic_lines_keys() {
        let mut s = Scorer::new();
        let keyed = |key: &str, header: &str| {
            let mut t = traffic(0, "user-1", None, 1);
            t.headers.push((header.into(), key.into()));
            t
        };
        s.observe(
            &keyed("Bearer sk-1", "authorization"),
            &decision("same", "c1", 200, "allow", false),
        );
        s.observe(
            &keyed("sk-2", "x-api-key"),
            &decision("same", "c2", 200, "allow", false),
        );
        s.observe(
            &keyed("Bearer sk-1", "Authorization"),
            &decision("other", "c1", 429, "throttle", false),
        );
        let r = s.finish();
        assert_eq!(r.clustering.accounts, 2);
        assert_eq!(r.organic.accounts, 2);
        assert_eq!(r.organic.accounts_harmed, 1);
    }

    /// Batch jobs and a reseller's customers are reported on their own, by the
    /// label's kind or cohort; a 400 is neither denied nor harvested; a block
    /// delivered with status 200 (shadow mode) is not harvest.
    #[test]
    fn harm_classes_and_edge_statuses() {
        let mut s = Scorer::new();
        let line = |actor: &str, kind: Option<&str>, cohort: Option<&str>| {
            let mut t = traffic(0, actor, None, 5);
            if let Some(l) = t.label.as_mut() {
                l.kind = kind.map(Into::into);
                l.cohort = cohort.map(Into::into);
            }
            t
        };
        s.observe(
            &line("user-1", Some("batch"), None),
            &decision("b1", "b1", 429, "throttle", false),
        );
        s.observe(
            &line("user-2", Some("organic"), Some("batch")),
            &decision("b2", "b2", 200, "allow", false),
        );
        s.observe(
            &line("user-3", Some("reseller_customer"), None),
            &decision("r1", "r1", 200, "degrade", false),
        );
        s.observe(
            &line("user-4", None, Some("hydra-customer")),
            &decision("r2", "r2", 200, "tag", true),
        );
        s.observe(
            &line("user-5", Some("organic"), None),
            &decision("o1", "o1", 400, "allow", false),
        );
        s.observe(
            &line("campaign-A", Some("campaign"), None),
            &decision("a1", "a1", 200, "block", false),
        );
        let r = s.finish();
        let o = &r.organic;
        assert_eq!((o.batch.accounts, o.batch.accounts_harmed), (2, 1));
        assert_eq!(
            (
                o.reseller_customers.accounts,
                o.reseller_customers.accounts_harmed
            ),
            (2, 1)
        );
        assert_eq!(o.reseller_customers.requests.tagged, 1);
        assert_eq!((o.accounts, o.accounts_harmed), (1, 0));
        assert_eq!((o.requests.denied, o.requests.harvested), (0, 0));
        let k = r.campaign.output_tokens;
        assert_eq!((k.total, k.harvested, k.denied, k.degraded), (5, 0, 0, 0));
    }

    /// The last-6-hours figure only counts campaign tokens within six hours of
    /// the newest line.
    #[test]
    fn harvest_over_the_last_six_hours() {
        let h = 3_600_000u64;
        let mut s = Scorer::new();
        // 10 h: harvested 100; 12 h: denied 300; 17 h: harvested 100.
        for (ts, status, out) in [
            (0, 200, 1000),
            (10 * h, 200, 100),
            (12 * h, 429, 300),
            (17 * h, 200, 100),
        ] {
            s.observe(
                &traffic(ts, "campaign-A", None, out),
                &decision("a1", "a1", status, "allow", false),
            );
        }
        let r = s.finish();
        let last = r.campaign.harvest_last_6h.expect("some");
        assert!(close(last, 100.0 / 400.0), "{last}");
        assert_eq!(r.hourly.len(), 18);
        assert_eq!(r.hourly[12].campaign_tokens, 300);
        assert_eq!(r.hourly[12].campaign_tokens_harvested, 0);
        assert_eq!(r.hourly[17].campaign_tokens_harvested, 100);
    }

    /// Organic accounts without an org are each their own operator even when
    /// their labels share an actor name.
    #[test]
    fn organic_without_org_are_singletons() {
        let mut s = Scorer::new();
        s.observe(
            &traffic(0, "organic", None, 1),
            &decision("u1", "u1", 200, "allow", false),
        );
        s.observe(
            &traffic(0, "organic", None, 1),
            &decision("u2", "u2", 200, "allow", false),
        );
        let c = s.finish().clustering;
        assert_eq!(c.true_clusters, 2);
        assert_eq!(c.true_pairs, 0);
        assert!(close(c.pairwise.recall, 1.0) && close(c.pairwise.precision, 1.0));
    }

    /// The last decision's cluster counts: a1 first alone, then merged with a2.
    #[test]
    fn last_cluster_wins() {
        let mut s = Scorer::new();
        s.observe(
            &traffic(0, "campaign-A", None, 1),
            &decision("a1", "a1", 200, "allow", false),
        );
        s.observe(
            &traffic(1, "campaign-A", None, 1),
            &decision("a2", "K", 200, "allow", false),
        );
        s.observe(
            &traffic(2, "campaign-A", None, 1),
            &decision("a1", "K", 200, "allow", false),
        );
        let c = s.finish().clustering;
        assert_eq!(c.correct_pairs, 1);
        assert!(close(c.pairwise.recall, 1.0));
    }

    /// Campaign outcomes over time. Start at t = 0, one campaign, output tokens:
    ///
    /// | t (h) | status | action   | tagged | tokens | class                   |
    /// |-------|--------|----------|--------|--------|-------------------------|
    /// | 0     | 200    | allow    | no     | 100    | harvested               |
    /// | 0.25  | 200    | tag      | yes    | 200    | harvested (tagged)      |
    /// | 0.5   | 200    | degrade  | yes    | 300    | degraded, tagged        |
    /// | 1     | 429    | throttle | no     | 400    | denied (first denial)   |
    /// | 2     | 200    | tag      | yes    | 500    | harvested, after denial |
    /// | 25    | 403    | block    | no     | 600    | denied, after, day 2    |
    ///
    /// Tokens total 2100; harvested 100 + 200 + 500 = 800; denied 1000; degraded
    /// 300; tagged (delivered) 200 + 300 + 500 = 1000.
    /// First 24 h: total 1500, harvested 800 → 8/15.
    /// After first denial (lines strictly after it): 500 + 600 = 1100, harvested
    /// 500 → 5/11.
    /// First enforcement (degrade) at 0.5 h = 1,800,000 ms; first denial at 1 h.
    #[test]
    fn campaign_outcomes_by_hand() {
        let h = 3_600_000u64;
        let rows = [
            (0, 200, "allow", false, 100),
            (h / 4, 200, "tag", true, 200),
            (h / 2, 200, "degrade", true, 300),
            (h, 429, "throttle", false, 400),
            (2 * h, 200, "tag", true, 500),
            (25 * h, 403, "block", false, 600),
        ];
        let mut s = Scorer::new();
        // An organic line first: it starts the clock at t = 0 too.
        s.observe(
            &traffic(0, "user-9", None, 50),
            &decision("u9", "u9", 200, "allow", false),
        );
        for (i, (ts, status, action, tagged, out)) in rows.into_iter().enumerate() {
            let acct = format!("a{}", i % 2);
            s.observe(
                &traffic(ts, "campaign-A", None, out),
                &decision(&acct, "K", status, action, tagged),
            );
        }
        let r = s.finish();
        let t = r.campaign.output_tokens;
        assert_eq!(
            (t.total, t.harvested, t.denied, t.degraded, t.tagged),
            (2100, 800, 1000, 300, 1000)
        );
        let q = r.campaign.requests;
        assert_eq!(
            (q.total, q.harvested, q.denied, q.degraded, q.tagged),
            (6, 3, 2, 1, 3)
        );
        assert!(close(
            r.campaign.harvest_first_24h.expect("some"),
            8.0 / 15.0
        ));
        assert!(close(
            r.campaign.harvest_after_first_denial.expect("some"),
            5.0 / 11.0
        ));
        let a = &r.campaign.actors[0];
        assert_eq!(a.actor, "campaign-A");
        assert_eq!(a.accounts, 2);
        assert_eq!(a.time_to_first_enforcement_ms, Some(h / 2));
        assert_eq!(a.time_to_first_denial_ms, Some(h));
        assert_eq!(r.campaign.worst_time_to_first_enforcement_ms, Some(h / 2));
        // The last six hours hold only the 25 h line, which was denied.
        assert_eq!(r.campaign.harvest_last_6h, Some(0.0));
        assert_eq!(r.organic.accounts, 1);
        assert_eq!(r.organic.accounts_harmed, 0);
        assert_eq!(r.organic.requests_harmed_share, Some(0.0));
    }

    /// Organic harm: u1 has 3 requests, one degraded; u2 has 1 request, 429;
    /// u3 has 2 requests, tagged only. Accounts harmed 2/3, requests harmed 2/6.
    #[test]
    fn organic_harm_by_hand() {
        let mut s = Scorer::new();
        let rows = [
            ("u1", "user-1", 200, "allow", false),
            ("u1", "user-1", 200, "degrade", false),
            ("u1", "user-1", 200, "allow", false),
            ("u2", "user-2", 429, "throttle", false),
            ("u3", "user-3", 200, "tag", true),
            ("u3", "user-3", 200, "tag", true),
        ];
        for (acct, actor, status, action, tagged) in rows {
            s.observe(
                &traffic(0, actor, None, 10),
                &decision(acct, acct, status, action, tagged),
            );
        }
        let r = s.finish();
        assert_eq!(r.organic.accounts, 3);
        assert_eq!(r.organic.accounts_harmed, 2);
        assert!(close(
            r.organic.accounts_harmed_share.expect("some"),
            2.0 / 3.0
        ));
        assert_eq!(r.organic.requests_harmed, 2);
        assert!(close(
            r.organic.requests_harmed_share.expect("some"),
            2.0 / 6.0
        ));
        assert_eq!(r.organic.requests.tagged, 2);
        // No campaign: no shares, no enforcement time.
        assert_eq!(r.campaign.accounts, 0);
        assert_eq!(r.campaign.output_tokens.harvested_share, None);
        assert_eq!(r.campaign.harvest_first_24h, None);
        assert_eq!(r.campaign.worst_time_to_first_enforcement_ms, None);
        // No cohort in these labels: one `-` cohort holding everything.
        assert_eq!(r.organic.cohorts.len(), 1);
        let c = &r.organic.cohorts[0];
        assert_eq!(
            (
                c.cohort.as_str(),
                c.accounts,
                c.accounts_harmed,
                c.requests,
                c.requests_harmed
            ),
            ("-", 3, 2, 6, 2)
        );
        let text = r.to_string();
        assert!(text.contains("3 accounts, 2 harmed (66.67%)"), "{text}");
    }

    /// Cohorts: nat has n1 (harmed once in 2 requests) and n2 (1 request, fine):
    /// 2 accounts, 1 harmed, 3 requests, 1 harmed. app has a1 (fine). Campaign
    /// lines never count in organic cohorts.
    #[test]
    fn organic_harm_by_cohort() {
        let mut s = Scorer::new();
        let mut line = |acct: &str, actor: &str, cohort: &str, status: u16| {
            let mut t = traffic(0, actor, None, 1);
            if let Some(l) = t.label.as_mut() {
                l.cohort = Some(cohort.into());
            }
            s.observe(&t, &decision(acct, acct, status, "allow", false));
        };
        line("n1", "user-1", "nat", 429);
        line("n1", "user-1", "nat", 200);
        line("n2", "user-2", "nat", 200);
        line("a1", "user-3", "app", 200);
        line("c1", "campaign-A", "naive", 429);
        let r = s.finish();
        let got: Vec<(&str, u64, u64, u64, u64)> = r
            .organic
            .cohorts
            .iter()
            .map(|c| {
                (
                    c.cohort.as_str(),
                    c.accounts,
                    c.accounts_harmed,
                    c.requests,
                    c.requests_harmed,
                )
            })
            .collect();
        assert_eq!(got, [("app", 1, 0, 1, 0), ("nat", 2, 1, 3, 1)]);
    }

    #[test]
    fn empty_and_single_account() {
        let r = Scorer::new().finish();
        assert_eq!(r.clustering.accounts, 0);
        assert!(close(r.clustering.bcubed.precision, 1.0));
        assert!(close(r.clustering.pairwise.recall, 1.0));

        let mut s = Scorer::new();
        s.observe(
            &traffic(0, "campaign-A", None, 7),
            &decision("a1", "a1", 200, "allow", false),
        );
        let r = s.finish();
        assert_eq!(r.clustering.true_pairs, 0);
        assert!(close(r.clustering.bcubed.recall, 1.0));
        // A campaign never enforced on: the slowest time is unknown.
        assert_eq!(r.campaign.worst_time_to_first_enforcement_ms, None);
        assert_eq!(r.campaign.harvest_after_first_denial, None);
        assert_eq!(r.campaign.output_tokens.harvested_share, Some(1.0));
    }

    #[test]
    fn unlabelled_lines_are_counted_not_scored() {
        let mut s = Scorer::new();
        let mut t = traffic(0, "user-1", None, 1);
        t.label = None;
        s.observe(&t, &decision("x", "x", 429, "block", false));
        let r = s.finish();
        assert_eq!((r.lines, r.unlabelled, r.clustering.accounts), (0, 1, 0));
    }

    #[test]
    fn streams_pair_by_line_number() {
        let t = |ts: u64, actor: &str| {
            format!(
                r#"{{"ts_ms": {ts}, "ip": "192.0.2.1", "method": "POST", "path": "/v1/messages", "usage": {{"input_tokens": 1, "output_tokens": 10}}, "label": {{"actor": "{actor}"}}}}"#
            )
        };
        let d = |line: u64, acct: &str, status: u16| {
            format!(
                r#"{{"line": {line}, "status": {status}, "account": "{acct}", "cluster": "{acct}", "cluster_size": 1, "score": 0.1, "action": "allow", "tagged": false}}"#
            )
        };
        // Traffic line 2 is malformed and has no decision: skipped.
        let traffic = format!("{}\nnot json\n{}\n", t(0, "campaign-A"), t(5, "user-1"));
        let decisions = format!("{}\n{}\n", d(1, "a1", 429), d(3, "u1", 200));
        let r = score_streams(traffic.as_bytes(), decisions.as_bytes()).expect("score");
        assert_eq!(r.lines, 2);
        assert_eq!(r.campaign.requests.denied, 1);
        assert_eq!(r.organic.requests.total, 1);

        // A decision that points at the malformed line reports its number.
        let bad = format!("{}\n", d(2, "a1", 200));
        let e = score_streams(traffic.as_bytes(), bad.as_bytes()).expect_err("malformed");
        assert!(e.to_string().starts_with("traffic line 2:"), "{e}");
        // Out of order and past the end.
        let bad = format!("{}\n{}\n", d(3, "a1", 200), d(1, "a1", 200));
        let e = score_streams(traffic.as_bytes(), bad.as_bytes()).expect_err("order");
        assert!(e.to_string().contains("decisions line 2"), "{e}");
        let bad = format!("{}\n", d(9, "a1", 200));
        let e = score_streams(traffic.as_bytes(), bad.as_bytes()).expect_err("past end");
        assert!(e.to_string().contains("past the end"), "{e}");
        let e = score_streams(traffic.as_bytes(), "{".as_bytes()).expect_err("bad decision");
        assert!(e.to_string().starts_with("decisions line 1:"), "{e}");
    }
}
