//! The admin API's view of the detector: [`ClusterInspector`] over the guard's
//! own cluster engine and scorer (the detect stage knows nothing of the admin API).

use std::sync::Arc;

use super::hooks::{
    AccountView, ClusterInspector, ClusterView, KindEvidence, LinkEvidence, SizeCount, TopClusters,
};
use crate::clock::Clock;
use crate::cluster::ClusterSnapshot;
use crate::detect::Detector;
use crate::extensions::{AccountId, ClusterId};
use crate::request::BoxError;
use crate::Guard;

/// Members listed per cluster view.
const MAX_MEMBERS: usize = 50;
/// Largest `n` of [`ClusterInspector::top_clusters`].
const MAX_TOP: usize = 100;

/// [`ClusterInspector`] for a [`Detector`]: cluster views with members,
/// linking evidence and the scorer's suspicion and top signals; unlinks go
/// through [`Detector::unlink`] and hold the account apart for `hold_ms`
/// (by default the cluster engine's `ttl`: as long as it would remember the
/// evidence).
#[derive(Debug, Clone)]
pub struct DetectorInspector {
    detector: Arc<Detector>,
    clock: Arc<dyn Clock>,
    hold_ms: u64,
    max_members: usize,
}

impl DetectorInspector {
    /// An inspector reading `detector` at the times `clock` gives.
    pub fn new(detector: Arc<Detector>, clock: Arc<dyn Clock>) -> Self {
        let hold_ms = u64::try_from(detector.engine().config().ttl.as_millis()).unwrap_or(u64::MAX);
        Self {
            detector,
            clock,
            hold_ms,
            max_members: MAX_MEMBERS,
        }
    }

    /// The guard's own detector and clock.
    pub fn for_guard(guard: &Guard) -> Self {
        let shared = guard.shared();
        Self::new(shared.detector().clone(), shared.clock().clone())
    }

    /// How long an unlinked account is kept from being linked again.
    pub fn with_hold_ms(mut self, hold_ms: u64) -> Self {
        self.hold_ms = hold_ms;
        self
    }

    /// How many members each cluster view lists (at least 1).
    pub fn with_max_members(mut self, n: usize) -> Self {
        self.max_members = n.max(1);
        self
    }

    fn view(&self, c: ClusterSnapshot, now_ms: u64) -> ClusterView {
        let (suspicion, top_signals) = self.detector.scorer().explain_cluster(&c.stats, now_ms);
        let evidence = c
            .values
            .iter()
            .map(|v| LinkEvidence {
                family: v.family,
                kind: v.kind,
                // A prefix of the 64-bit feature hash: enough to tell values
                // apart, never the raw header, address or prompt.
                feature: format!("{}:{:08x}", v.kind, v.value >> 32),
                accounts: v.members,
                links: v.links,
                weight: round3(v.weight),
            })
            .collect();
        let evidence_by_kind = c
            .kinds
            .iter()
            .map(|k| KindEvidence {
                family: k.family,
                kind: k.kind,
                links: k.links,
                weight_sum: round3(k.weight_sum),
                weight_max: round3(k.weight_max),
            })
            .collect();
        ClusterView {
            id: c.id,
            size: c.size,
            suspicion,
            members: c.members,
            links: c.links,
            evidence,
            evidence_by_kind,
            top_signals,
        }
    }
}

/// The cluster of one of an account linked to nobody.
fn alone(
    account: &AccountId,
    suspicion: f64,
    signals: &[crate::extensions::Reason],
) -> ClusterView {
    ClusterView {
        id: ClusterId::of_account(*account),
        size: 1,
        suspicion,
        members: vec![*account],
        links: 0,
        evidence: Vec::new(),
        evidence_by_kind: Vec::new(),
        top_signals: signals.to_vec(),
    }
}

fn round3(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

impl ClusterInspector for DetectorInspector {
    fn account(&self, account: &AccountId) -> Option<AccountView> {
        let now = self.clock.now_ms();
        let a = self
            .detector
            .engine()
            .inspect_account(account, self.max_members, now)?;
        let (own, own_signals) = self.detector.scorer().explain_account(&a.stats, now);
        let bears_cluster = a.cluster.is_some() && self.detector.scorer().bears_cluster(&a.stats);
        let cluster = match a.cluster {
            Some(c) => self.view(c, now),
            None => alone(account, own, &own_signals),
        };
        Some(AccountView {
            account: *account,
            suspicion: own,
            cluster,
            top_signals: own_signals,
            requests: a.stats.requests,
            held_until_ms: a.held_until_s.map(|s| u64::from(s) * 1000),
            tie: round3(a.stats.tie),
            bears_cluster,
        })
    }

    fn cluster(&self, id: &ClusterId) -> Option<ClusterView> {
        let now = self.clock.now_ms();
        let engine = self.detector.engine();
        if let Some(c) = engine.inspect_cluster(id, self.max_members, now) {
            return Some(self.view(c, now));
        }
        // A tracked account linked to nobody is its own cluster of one.
        let account = AccountId(id.0);
        let a = engine.inspect_account(&account, 1, now)?;
        if a.cluster.is_some() {
            return None;
        }
        let (own, signals) = self.detector.scorer().explain_account(&a.stats, now);
        Some(alone(&account, own, &signals))
    }

    fn top_clusters(&self, n: usize) -> TopClusters {
        let now = self.clock.now_ms();
        let top = self
            .detector
            .engine()
            .top_clusters(n.min(MAX_TOP), self.max_members, now);
        let mut suspicious: Vec<ClusterView> = top
            .most_suspicious
            .into_iter()
            .map(|c| self.view(c, now))
            .collect();
        // Stored levels pick the candidates; order by suspicion as of now.
        suspicious.sort_by(|a, b| b.suspicion.total_cmp(&a.suspicion));
        TopClusters {
            largest: top.largest.into_iter().map(|c| self.view(c, now)).collect(),
            most_suspicious: suspicious,
        }
    }

    fn unlink(&self, account: &AccountId) -> Result<bool, BoxError> {
        Ok(self
            .detector
            .unlink(account, self.clock.now_ms(), self.hold_ms))
    }

    fn relink(&self, account: &AccountId) -> Result<bool, BoxError> {
        Ok(self.detector.relink(account, self.clock.now_ms()))
    }

    fn cluster_sizes(&self) -> Vec<SizeCount> {
        self.detector
            .engine()
            .size_counts()
            .into_iter()
            .map(|c| SizeCount {
                size: u64::from(c.size),
                clusters: c.clusters,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use crate::detect::hard_link_feature;
    use crate::extensions::HardLink;
    use crate::features::{Family, Feature, FeatureKind};
    use crate::score::Signals;

    const T0: u64 = 1_714_000_000_000;

    fn account(i: u8) -> AccountId {
        AccountId([i; 16])
    }

    #[test]
    fn views_show_members_evidence_and_the_scorers_signals() {
        let mut cfg = Config::with_secret("s");
        cfg.cluster.warmup_accounts = 0;
        let d = Arc::new(Detector::from_config(&cfg).expect("valid"));
        let clock = ManualClock::new(T0);
        let inspector = DetectorInspector::new(d.clone(), Arc::new(clock.clone()));
        let link = hard_link_feature(&HardLink("card-7".into()));
        let cot = Signals {
            cot: 1.0,
            ..Signals::default()
        };
        for i in 1..=5u8 {
            clock.advance_ms(60_000);
            d.observe(account(i), &[link], cot, clock.now_ms());
        }
        let lone = Feature {
            kind: FeatureKind::SystemPrompt,
            value: 99,
        };
        d.observe(account(9), &[lone], Signals::default(), clock.now_ms());

        let a = inspector.account(&account(3)).expect("tracked");
        assert_eq!(a.cluster.size, 5);
        // Tied by a hard link: it bears its cluster's level.
        assert_eq!((a.tie, a.bears_cluster), (2.55, true));
        let lone_view = inspector.account(&account(9)).expect("tracked");
        assert_eq!((lone_view.tie, lone_view.bears_cluster), (0.0, false));
        assert_eq!(a.cluster.id, ClusterId::of_account(account(1)));
        assert_eq!(a.cluster.members.len(), 5);
        assert!(a.cluster.members.contains(&account(3)));
        let e = &a.cluster.evidence[0];
        assert_eq!(
            (e.family, e.kind),
            (Family::HardLink, FeatureKind::HardLink)
        );
        // The API's JSON names them as strings.
        let json = serde_json::to_value(e).expect("serialises");
        assert_eq!(
            (&json["family"], &json["kind"]),
            (&"hard_link".into(), &"hard_link".into())
        );
        let json = serde_json::to_value(&a.cluster.evidence_by_kind[0]).expect("serialises");
        assert_eq!(
            (&json["family"], &json["kind"]),
            (&"hard_link".into(), &"hard_link".into())
        );
        assert_eq!(e.accounts, 5, "{e:?}");
        assert_eq!(e.links, 4);
        assert_eq!(
            e.feature,
            format!("hard_link:{:08x}", link.value >> 32),
            "a hash prefix"
        );
        assert_eq!(a.cluster.evidence_by_kind[0].links, 4);
        assert!(a.cluster.suspicion > 0.0);
        assert!(a
            .cluster
            .top_signals
            .iter()
            .any(|r| &*r.signal == "cluster_size"));
        let c = inspector.cluster(&a.cluster.id).expect("known");
        assert_eq!(c, a.cluster);
        assert!(inspector.cluster(&ClusterId::from_name("nobody")).is_none());

        let alone = inspector.account(&account(9)).expect("tracked");
        assert_eq!(alone.cluster.size, 1);
        assert!(alone.cluster.evidence.is_empty());
        assert_eq!(
            inspector.cluster(&ClusterId::of_account(account(9))),
            Some(alone.cluster.clone()),
            "a cluster of one"
        );
        assert!(inspector
            .cluster(&ClusterId::of_account(account(3)))
            .is_none());
        assert!(inspector.account(&account(77)).is_none());

        let top = inspector.top_clusters(10);
        assert_eq!(top.largest.len(), 1);
        assert_eq!(top.largest[0].id, a.cluster.id);
        assert_eq!(top.most_suspicious[0].id, a.cluster.id);
        assert_eq!(
            inspector.cluster_sizes(),
            vec![
                SizeCount {
                    size: 1,
                    clusters: 1
                },
                SizeCount {
                    size: 5,
                    clusters: 1
                }
            ]
        );

        // Unlinking holds the account apart: its next request is its own.
        assert!(inspector.unlink(&account(3)).expect("unlinks"));
        assert!(!inspector.unlink(&account(77)).expect("untracked"));
        let held = inspector.account(&account(3)).expect("tracked");
        assert_eq!(held.cluster.size, 1);
        assert!(held.held_until_ms.is_some_and(|t| t > clock.now_ms()));
        clock.advance_ms(60_000);
        let (cluster, _, _) = d.observe(account(3), &[link], cot, clock.now_ms());
        assert_eq!(cluster.size, 1);
        assert_eq!(inspector.cluster(&a.cluster.id).expect("known").size, 4);
    }
}
