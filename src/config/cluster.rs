//! `[cluster]`: how accounts are linked.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::FieldError;
use crate::features::{Family, FeatureKind};

/// `[cluster]`: online account linking. Every field has a working default; see
/// `docs/detection.md` for how the numbers were chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `false` turns linking off: every account is its own cluster of one.
    pub enabled: bool,
    /// Most accounts tracked at once. Beyond it the least recently seen are
    /// forgotten (sampled LRU). Memory grows linearly with this number.
    pub max_accounts: u32,
    /// Most feature values with a posting list (the accounts that sent them
    /// recently). Beyond it the least recently used postings are dropped.
    pub max_features: u32,
    /// Most recent accounts remembered per feature value (the candidate set a
    /// request is compared against).
    pub posting_cap: u32,
    /// A feature value whose recent accounts fall into more than this many
    /// distinct clusters is *common* (the stock SDK, a popular agent's system
    /// prompt, a corporate NAT, a hosted app's relay) and carries no weight.
    /// At most `posting_cap`.
    pub common_clusters: u32,
    /// A value whose recent accounts were once found in more than
    /// `common_clusters` distinct clusters *of benign-looking accounts* stays
    /// common this long, whoever sends it next: a burst of a few small teams
    /// that fills a popular value's posting list does not make it theirs
    /// ("0s", the default: off; "6h" is what docs/detection.md measured).
    /// An operator's own values, sent by accounts that ask as harvesting
    /// asks, are not remembered so.
    #[serde(with = "humantime_serde")]
    pub common_memory: Duration,
    /// Half-life of evidence: a co-occurrence this old counts half.
    #[serde(with = "humantime_serde")]
    pub half_life: Duration,
    /// Accounts, postings and cluster bridges unseen this long are forgotten.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Linking starts only after this many distinct accounts have been seen, so
    /// that commonness is measured on a real population and not on the first
    /// handful of users.
    pub warmup_accounts: u32,
    /// Weight of one shared, rare feature value per evidence family (the largest
    /// weight within a family counts, once per family).
    pub family_weights: FamilyWeights,
    /// Weight overrides per feature kind (for example `system_prompt = 0.3`;
    /// the kinds are [`FeatureKind`]'s names), replacing the family weight for
    /// that kind.
    pub kind_weights: BTreeMap<FeatureKind, f64>,
    /// Evidence (sum over families of the largest shared weight) needed to link
    /// two accounts.
    pub link_threshold: f64,
    /// Least number of families that must each contribute at least
    /// `min_family_weight` for a link (hard links excepted).
    pub min_families: u32,
    /// Smallest per-family weight that counts towards `min_families`.
    pub min_family_weight: f64,
    /// Families of which at least one must contribute to a link: evidence that
    /// is specific to an operator (templates, hard links) rather than to
    /// software or infrastructure that bystanders share. Empty: no requirement.
    pub anchor_families: Vec<Family>,
    /// Smallest weight an anchor family must contribute (after
    /// `matches_for_full_weight` scaling). Above the system-prompt weight, so
    /// that an app's shared system prompt cannot anchor a link.
    pub min_anchor_weight: f64,
    /// Distinct shared values a family needs for its full weight; with fewer,
    /// its weight scales down in proportion. One identical template matches
    /// most of its LSH bands; two unrelated prompts that open alike match one.
    pub matches_for_full_weight: FamilyCounts,
    /// An unlinked account joins a cluster of two or more only when one request
    /// matches at least this many of its members (or all of a smaller one):
    /// evidence in proportion to the cluster, so that one accidental match
    /// cannot snowball a cluster of strangers.
    pub join_min_members: u32,
    /// Two clusters of at least two accounts merge only after this many distinct
    /// bridging account pairs (the merge guard)...
    pub min_bridges: u32,
    /// ...or this fraction of the smaller cluster's size, whichever is larger,
    /// capped at `max_bridges`.
    pub bridge_fraction: f64,
    /// Upper bound on the bridges required for a merge.
    pub max_bridges: u32,
    /// Most pending cluster-pair bridge records kept.
    pub max_bridge_records: u32,
    /// `[cluster.behaviour]`: how each account's behaviour evidence builds up
    /// and decides which accounts may link on weak shared values.
    pub behaviour: BehaviourEvidence,
}

/// `[cluster.behaviour]`: per-account behaviour evidence.
///
/// Every request adds `gain × (extraction − pivot)` when it looks like
/// harvesting at all (its extraction score, see `docs/detection.md`, is above
/// zero), or subtracts `benign_penalty` when it looks like ordinary use
/// (a conversation, a small output cap) and `neutral_penalty` otherwise. A
/// session (requests less than `session_gap` apart) counts once, with its
/// strongest step, so a person's busy afternoon is one step. Evidence fades
/// with `half_life` and stays within `floor..=ceiling`.
///
/// Accounts with evidence of at least `link_evidence` look like extraction:
/// they link with one another on any shared value (client, network, shape,
/// behaviour signature, not only templates), each value weighted down by the
/// benign-looking accounts (evidence at most `benign_evidence`) that also hold
/// it: by `s / (s + benign_scale × b)` for `s` extraction-like and `b`
/// benign-looking recent holders, and by `s / support` while fewer than
/// `support` extraction-like accounts hold it. A link between them needs two
/// families and an anchor (`require_anchor`), as between other accounts, or a
/// template of at least `anchor_alone` on its own: an operator that rotates
/// addresses, clients and parameters per account shares little but its
/// templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviourEvidence {
    /// Evidence per unit of extraction score above the pivot.
    pub gain: f64,
    /// Extraction score at which a request adds nothing.
    pub pivot: f64,
    /// Subtracted for a request that looks like ordinary use.
    pub benign_penalty: f64,
    /// Subtracted for a request that neither looks like harvesting nor like
    /// ordinary use (tool use, a conversation asking for reasoning).
    pub neutral_penalty: f64,
    /// Requests closer together than this are one session.
    #[serde(with = "humantime_serde")]
    pub session_gap: Duration,
    /// Evidence this old counts half.
    #[serde(with = "humantime_serde")]
    pub half_life: Duration,
    /// Lowest evidence (a long record of ordinary use is worth this much).
    pub floor: f64,
    /// Highest evidence.
    pub ceiling: f64,
    /// Evidence from which an account looks like extraction.
    pub link_evidence: f64,
    /// Evidence at or below which an account looks benign.
    pub benign_evidence: f64,
    /// How much more a benign-looking holder of a value discounts it than an
    /// extraction-like holder supports it.
    pub benign_scale: f64,
    /// Most evidence one member adds to its cluster's.
    pub member_cap: f64,
    /// Accounts with at least this evidence do not count towards a value's
    /// commonness (`[cluster] common_clusters`): a template or address many
    /// accounts that look like harvesting share is an operator's, not the
    /// popular software or network bystanders share.
    pub common_evidence: f64,
    /// Among accounts that look like extraction, a shared anchor (template)
    /// of at least this weight, after the benign discount, links on its own;
    /// above the anchor families' weight (`family_weights.template`, 1.0)
    /// disables it.
    pub anchor_alone: f64,
    /// Among accounts that look like extraction, a link needs two families
    /// and an anchor family of at least `min_anchor_weight`, as between other
    /// accounts (`anchor_alone` aside); off, any two families link them.
    pub require_anchor: bool,
    /// Among accounts that look like extraction, a value counts in full once
    /// this many of them hold it, in proportion below.
    pub support: f64,
}

impl Default for BehaviourEvidence {
    fn default() -> Self {
        Self {
            gain: 2.0,
            pivot: 0.45,
            benign_penalty: 1.0,
            neutral_penalty: 0.1,
            session_gap: Duration::from_secs(600),
            half_life: Duration::from_secs(3 * 86_400),
            floor: -4.0,
            ceiling: 8.0,
            link_evidence: 0.3,
            benign_evidence: -0.5,
            benign_scale: 1.5,
            member_cap: 4.0,
            common_evidence: 1.5,
            anchor_alone: 0.75,
            require_anchor: true,
            support: 3.0,
        }
    }
}

impl BehaviourEvidence {
    fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut push = |field: &str, message: String| {
            errors.push(FieldError {
                path: format!("{path}.{field}"),
                message,
            })
        };
        for (name, v, lo, hi) in [
            ("gain", self.gain, 0.0, 100.0),
            ("pivot", self.pivot, 0.0, 1.0),
            ("benign_penalty", self.benign_penalty, 0.0, 100.0),
            ("neutral_penalty", self.neutral_penalty, 0.0, 100.0),
            ("floor", self.floor, -1000.0, 0.0),
            ("ceiling", self.ceiling, 0.0, 1000.0),
            ("link_evidence", self.link_evidence, -1000.0, 1000.0),
            ("benign_evidence", self.benign_evidence, -1000.0, 1000.0),
            ("benign_scale", self.benign_scale, 0.0, 1000.0),
            ("member_cap", self.member_cap, 0.0, 1000.0),
            ("common_evidence", self.common_evidence, -1000.0, 1000.0),
            ("anchor_alone", self.anchor_alone, 0.0, 1000.0),
            ("support", self.support, 1.0, 64.0),
        ] {
            if !finite_in(v, lo, hi) {
                push(name, format!("must be between {lo} and {hi}, got {v}"));
            }
        }
        if self.benign_evidence > self.link_evidence {
            push("benign_evidence", "must be at most link_evidence".into());
        }
        if self.half_life.as_secs() < 1 {
            push("half_life", "must be at least 1s".into());
        }
        if self.session_gap.as_secs() > 86_400 {
            push("session_gap", "must be at most one day".into());
        }
    }
}

/// Per-family weights of a shared rare feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FamilyWeights {
    /// Client software: header order, user agent, SDK headers, TLS.
    pub client: f64,
    /// Network prefix, ASN.
    pub network: f64,
    /// Request shape: key order, parameters, tools, roles.
    pub shape: f64,
    /// Prompt templates.
    pub template: f64,
    /// Timing.
    pub timing: f64,
    /// Hard links from the host application: at least `link_threshold` links
    /// outright.
    pub hard_link: f64,
    /// Behaviour signatures (only between accounts that look like extraction).
    pub behaviour: f64,
}

impl Default for FamilyWeights {
    fn default() -> Self {
        Self {
            client: 0.5,
            network: 0.6,
            shape: 0.6,
            template: 1.0,
            timing: 0.3,
            hard_link: 10.0,
            behaviour: 0.8,
        }
    }
}

impl FamilyWeights {
    /// The weight of `family`.
    pub fn get(&self, family: Family) -> f64 {
        match family {
            Family::Client => self.client,
            Family::Network => self.network,
            Family::Shape => self.shape,
            Family::Template => self.template,
            Family::Timing => self.timing,
            Family::HardLink => self.hard_link,
            Family::Behaviour => self.behaviour,
        }
    }
}

/// A count per family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FamilyCounts {
    /// Client.
    pub client: u32,
    /// Network.
    pub network: u32,
    /// Shape.
    pub shape: u32,
    /// Template.
    pub template: u32,
    /// Timing.
    pub timing: u32,
    /// Hard links.
    pub hard_link: u32,
    /// Behaviour.
    pub behaviour: u32,
}

impl Default for FamilyCounts {
    fn default() -> Self {
        Self {
            client: 1,
            network: 1,
            shape: 1,
            template: 3,
            timing: 1,
            hard_link: 1,
            behaviour: 1,
        }
    }
}

impl FamilyCounts {
    /// In the order of [`Family::ALL`].
    pub fn as_array(&self) -> [u32; 7] {
        [
            self.client,
            self.network,
            self.shape,
            self.template,
            self.timing,
            self.hard_link,
            self.behaviour,
        ]
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_accounts: 1_000_000,
            max_features: 2_000_000,
            posting_cap: 24,
            common_clusters: 8,
            common_memory: Duration::ZERO,
            half_life: Duration::from_secs(6 * 3600),
            ttl: Duration::from_secs(3 * 86_400),
            warmup_accounts: 50,
            family_weights: FamilyWeights::default(),
            kind_weights: BTreeMap::from([(FeatureKind::SystemPrompt, 0.3)]),
            link_threshold: 1.5,
            min_families: 2,
            min_family_weight: 0.25,
            anchor_families: vec![Family::Template, Family::HardLink],
            min_anchor_weight: 0.5,
            matches_for_full_weight: FamilyCounts::default(),
            join_min_members: 2,
            min_bridges: 3,
            bridge_fraction: 0.1,
            max_bridges: 16,
            max_bridge_records: 65_536,
            behaviour: BehaviourEvidence::default(),
        }
    }
}

fn finite_in(v: f64, lo: f64, hi: f64) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

impl ClusterConfig {
    /// Checks every field; problems are reported under `path` (normally `cluster`).
    pub fn validate(&self, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut push = |field: &str, message: String| {
            errors.push(FieldError {
                path: format!("{path}.{field}"),
                message,
            })
        };
        if self.max_accounts < 2 {
            push("max_accounts", "must be at least 2".into());
        }
        if self.max_accounts > 100_000_000 {
            push("max_accounts", "must be at most 100000000".into());
        }
        if self.max_features < 1 || self.max_features > 400_000_000 {
            push("max_features", "must be between 1 and 400000000".into());
        }
        if !(2..=256).contains(&self.posting_cap) {
            push("posting_cap", "must be between 2 and 256".into());
        }
        if self.common_clusters < 1 || self.common_clusters > self.posting_cap {
            push(
                "common_clusters",
                format!(
                    "must be between 1 and posting_cap ({}), got {}",
                    self.posting_cap, self.common_clusters
                ),
            );
        }
        if self.half_life.as_secs() < 1 {
            push("half_life", "must be at least 1s".into());
        }
        if self.ttl < self.half_life {
            push("ttl", "must be at least half_life".into());
        }
        if self.ttl.as_secs() > 365 * 86_400 {
            push("ttl", "must be at most one year".into());
        }
        for family in Family::ALL {
            let w = self.family_weights.get(family);
            if !finite_in(w, 0.0, 100.0) {
                push(
                    &format!("family_weights.{}", family.as_str()),
                    format!("must be between 0 and 100, got {w}"),
                );
            }
        }
        for (kind, w) in &self.kind_weights {
            if !finite_in(*w, 0.0, 100.0) {
                push(
                    &format!("kind_weights.{kind}"),
                    format!("must be between 0 and 100, got {w}"),
                );
            }
        }
        if !finite_in(self.link_threshold, 0.01, 1000.0) {
            push(
                "link_threshold",
                format!("must be between 0.01 and 1000, got {}", self.link_threshold),
            );
        }
        if !(1..=7).contains(&self.min_families) {
            push("min_families", "must be between 1 and 7".into());
        }
        if !finite_in(self.min_family_weight, 0.0, 100.0) {
            push("min_family_weight", "must be between 0 and 100".into());
        }
        if !finite_in(self.min_anchor_weight, 0.0, 100.0) {
            push("min_anchor_weight", "must be between 0 and 100".into());
        }
        for (family, n) in Family::ALL
            .iter()
            .zip(self.matches_for_full_weight.as_array())
        {
            if !(1..=64).contains(&n) {
                push(
                    &format!("matches_for_full_weight.{}", family.as_str()),
                    format!("must be between 1 and 64, got {n}"),
                );
            }
        }
        if !(1..=64).contains(&self.join_min_members) {
            push("join_min_members", "must be between 1 and 64".into());
        }
        if self.min_bridges < 1 {
            push("min_bridges", "must be at least 1".into());
        }
        if !finite_in(self.bridge_fraction, 0.0, 1.0) {
            push("bridge_fraction", "must be between 0 and 1".into());
        }
        if self.max_bridges < self.min_bridges || self.max_bridges > 64 {
            push("max_bridges", "must be between min_bridges and 64".into());
        }
        if self.max_bridge_records < 1 {
            push("max_bridge_records", "must be at least 1".into());
        }
        self.behaviour
            .validate(&format!("{path}.behaviour"), &mut errors);
        errors
    }

    /// The weight of a feature of `kind`: its override, else its family's.
    pub fn weight_of(&self, kind: FeatureKind) -> f64 {
        self.kind_weights
            .get(&kind)
            .copied()
            .unwrap_or_else(|| self.family_weights.get(kind.family()))
    }
}
