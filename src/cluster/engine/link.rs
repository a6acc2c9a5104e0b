//! One request's linking pass: gather candidates from the posting lists of its
//! features, pool them by cluster, and link the requester with those whose
//! evidence passes the linking rule.

use super::state::{root_key, tie_units, Candidate, Pass, State};
use super::types::{LinkOutcome, Observation};
use super::{family_index, FAMILIES, NONE};
use crate::config::ClusterConfig;
use crate::features::{Family, Feature};

/// The candidates of one cluster (or one account alone), pooled.
#[derive(Debug)]
struct Group {
    /// The largest weight per family, the shared values counted together;
    /// `slot` is the member with the strongest evidence.
    evidence: Candidate,
    /// Members that back the group (matched on an anchor family).
    backing: u32,
    /// The strongest member's summed evidence.
    best: f32,
}

impl State {
    /// Links the requesting account `slot` where the evidence is strong enough.
    pub(super) fn link(
        &mut self,
        cfg: &ClusterConfig,
        slot: u32,
        obs: &Observation<'_>,
        now_s: u32,
        active: bool,
    ) {
        self.scratch.clear();
        self.candidates.clear();
        self.own = [(0.0, 0); FAMILIES];
        let beh = &cfg.behaviour;
        let link_ev = beh.link_evidence as f32;
        let pass = Pass {
            slot,
            now_s,
            active,
            // Accounts that look like extraction link only with one another, on
            // any shared value weighted down by the benign-looking accounts that
            // share it; the others link as before, on templates and hard links.
            me_susp: self.slots[slot as usize].evidence >= link_ev,
            half_life: cfg.half_life.as_secs().max(1) as f32,
            ttl: u32::try_from(cfg.ttl.as_secs()).unwrap_or(u32::MAX),
            link_ev,
            benign_ev: beh.benign_evidence as f32,
            benign_scale: beh.benign_scale as f32,
            common_ev: beh.common_evidence as f32,
            support: beh.support.max(1.0) as f32,
            common_clusters: cfg.common_clusters,
            common_memory: u32::try_from(cfg.common_memory.as_secs()).unwrap_or(u32::MAX),
        };
        self.gather(cfg, &pass, obs);
        // What the request shares with its own cluster ties the account
        // closer, scaled as a link's evidence is (`matches_for_full_weight`).
        let full = cfg.matches_for_full_weight.as_array();
        let own = self
            .own
            .iter()
            .zip(full)
            .map(|((w, n), need)| w * (f32::from(*n) / need.max(1) as f32).min(1.0))
            .fold(0.0f32, f32::max);
        let tie = &mut self.slots[slot as usize].tie;
        *tie = (*tie).max(tie_units(own));
        if !active || self.candidates.is_empty() {
            return;
        }
        if self.slots[slot as usize].hold_until > now_s {
            return;
        }
        let anchors: Vec<usize> = cfg
            .anchor_families
            .iter()
            .map(|f| family_index(*f))
            .collect();
        let groups = self.pool(cfg, &pass, &anchors);
        self.settle(cfg, &pass, obs, &anchors, &groups);
    }

    /// Looks every feature of the request up in the posting lists and gathers
    /// the accounts it shares them with into `candidates`.
    fn gather(&mut self, cfg: &ClusterConfig, pass: &Pass, obs: &Observation<'_>) {
        let me_susp = pass.me_susp;
        let mut seen_values: [u64; 64] = [0; 64];
        let mut n_seen = 0usize;
        for f in obs.features {
            // Between accounts that look like extraction a kind's override
            // (an app's shared system prompt weighs little) gives way to its
            // family's weight: sharing with benign accounts discounts it instead.
            let w = if me_susp {
                cfg.family_weights.get(f.family()) as f32
            } else {
                self.weight(f)
            };
            if w <= 0.0 || (f.family() == Family::Behaviour && !me_susp) {
                continue;
            }
            // Each value once per request.
            if seen_values[..n_seen].contains(&f.value) {
                continue;
            }
            if n_seen < seen_values.len() {
                seen_values[n_seen] = f.value;
                n_seen += 1;
            }
            let fam = family_index(f.family());
            if !self.postings.contains_key(&f.value) {
                if let Some((other, at)) = self.admit(cfg, pass, f.value) {
                    let other_susp = pass.suspicious(self.slots[other as usize].evidence);
                    if pass.active && !self.same_cluster(pass.slot, other) && other_susp == me_susp
                    {
                        // One other holder: among extraction-like accounts,
                        // a value counts in full only with `support` holders.
                        let support = if me_susp { 1.0 / pass.support } else { 1.0 };
                        self.add_candidate(other, fam, f, w * support * pass.decay(at));
                    }
                }
                continue;
            }
            let anchor = cfg.anchor_families.contains(&f.family()).then_some(fam);
            self.visit_posting(
                cfg,
                pass,
                f.value,
                f.family() == Family::HardLink,
                anchor,
                w,
            );
            let g = std::mem::take(&mut self.gathered);
            for &(other, weight) in &g {
                self.add_candidate(other, fam, f, weight);
            }
            self.gathered = g;
        }
    }

    /// Pools the candidates by cluster: candidates in one cluster pool their
    /// evidence (the largest weight per family, the shared values counted
    /// together), so that a large campaign whose recent users of one value are
    /// not the recent users of another still adds up. Weights are scaled down
    /// for families with fewer shared values than `matches_for_full_weight`.
    fn pool(&mut self, cfg: &ClusterConfig, pass: &Pass, anchors: &[usize]) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        self.groups.clear();
        let State {
            candidates,
            groups: index,
            slots,
            ..
        } = &mut *self;
        for c in candidates.iter() {
            let root = root_key(slots, c.slot);
            let total: f32 = c.fam.iter().sum();
            let gi = match index.get(&root) {
                Some(gi) => *gi,
                None => {
                    groups.push(Group {
                        evidence: Candidate::empty(c.slot),
                        backing: 0,
                        best: f32::MIN,
                    });
                    index.insert(root, groups.len() - 1);
                    groups.len() - 1
                }
            };
            let g = &mut groups[gi];
            let ev = &mut g.evidence;
            for i in 0..FAMILIES {
                if c.fam[i] > ev.fam[i] {
                    ev.fam[i] = c.fam[i];
                    ev.kinds[i] = c.kinds[i];
                    ev.values[i] = c.values[i];
                }
                ev.count[i] = ev.count[i].max(c.count[i]);
            }
            // Backing: members matched on an anchor family (a template), not on
            // the software or network a cluster may share with bystanders
            // (among accounts that look like extraction, any match backs).
            if pass.me_susp || anchors.is_empty() || anchors.iter().any(|i| c.fam[*i] > 0.0) {
                g.backing += 1;
            }
            if total > g.best {
                g.best = total;
                g.evidence.slot = c.slot;
            }
        }
        let full = cfg.matches_for_full_weight.as_array();
        for g in &mut groups {
            let count = g.evidence.count;
            for (i, w) in g.evidence.fam.iter_mut().enumerate() {
                let need = full[i].max(1) as f32;
                *w *= (f32::from(count[i]) / need).min(1.0);
            }
        }
        groups
    }

    /// Applies the linking rule to each group and links the requester with
    /// those that pass, strongest first.
    fn settle(
        &mut self,
        cfg: &ClusterConfig,
        pass: &Pass,
        obs: &Observation<'_>,
        anchors: &[usize],
        groups: &[Group],
    ) {
        let (slot, now_s) = (pass.slot, pass.now_s);
        let hard_idx = family_index(Family::HardLink);
        let behaviour_idx = family_index(Family::Behaviour);
        let tpl_idx = family_index(Family::Template);
        let threshold = cfg.link_threshold as f32;
        let min_anchor = cfg.min_anchor_weight as f32;
        let min_family = cfg.min_family_weight as f32;
        // (total, group, hard, template) for the groups that pass.
        let mut passing: Vec<(f32, usize, bool, bool)> = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let fam = &g.evidence.fam;
            let total: f32 = fam.iter().sum();
            let hard = fam[hard_idx] >= threshold;
            // Behaviour adds weight but is not one of the independent
            // families a link needs: many people ask alike, so two accounts
            // must also share something an operator's software, network,
            // requests or templates give away.
            let families = fam
                .iter()
                .enumerate()
                .filter(|(i, w)| *i != behaviour_idx && **w >= min_family && **w > 0.0)
                .count();
            let anchor_w = anchors.iter().map(|i| fam[*i]).fold(0.0f32, f32::max);
            let anchored = (pass.me_susp && !cfg.behaviour.require_anchor)
                || anchors.is_empty()
                || (anchor_w >= min_anchor && anchor_w > 0.0);
            let alone = pass.me_susp && anchor_w >= cfg.behaviour.anchor_alone as f32;
            if hard
                || alone
                || (total >= threshold && families >= cfg.min_families as usize && anchored)
            {
                passing.push((total, gi, hard, fam[tpl_idx] > 0.0));
            } else if self.log_cap > 0 && total >= threshold / 2.0 {
                self.log_event(obs, &g.evidence, LinkOutcome::Rejected);
            }
        }
        // Strongest first, so the best evidence decides which cluster a new
        // account joins.
        passing.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, gi, hard, template) in passing {
            let g = &groups[gi];
            let other = g.evidence.slot;
            let their = self.slots[other as usize].cluster;
            let size = self
                .clusters
                .get(their as usize)
                .map_or(1, |c| c.members.len() as u32);
            let mine = self.slots[slot as usize].cluster;
            let outcome = if self.slots[other as usize].hold_until > now_s {
                LinkOutcome::Skipped
            } else if !hard
                && their != NONE
                && their != mine
                && mine == NONE
                && g.backing < cfg.join_min_members.min(size)
            {
                // Evidence in proportion to the cluster joined: one request
                // must match several of its members.
                self.counters.guarded += 1;
                LinkOutcome::Guarded
            } else {
                self.connect(cfg, slot, other, hard, template, now_s)
            };
            if matches!(outcome, LinkOutcome::Joined | LinkOutcome::Merged) {
                // Without anchor families every link is anchored (as in the
                // rule above): nothing tells a loose tie from a strong one.
                let tie = if hard || anchors.is_empty() {
                    f32::MAX
                } else {
                    anchors
                        .iter()
                        .map(|i| g.evidence.fam[*i])
                        .fold(0.0f32, f32::max)
                };
                for s in [slot, other] {
                    let t = &mut self.slots[s as usize].tie;
                    *t = (*t).max(tie_units(tie));
                }
                let c = self.slots[slot as usize].cluster;
                if let Some(ev) = self.evidence.get_mut(c as usize) {
                    ev.record(
                        &g.evidence.fam,
                        &g.evidence.kinds,
                        &g.evidence.values,
                        now_s,
                    );
                }
            }
            self.log_event(obs, &g.evidence, outcome);
        }
    }

    /// The weight of a feature's kind.
    fn weight(&self, f: &Feature) -> f32 {
        self.kind_weights[usize::from(f.kind.code())]
    }

    /// Adds one shared value's weight to the candidate `other`.
    fn add_candidate(&mut self, other: u32, fam: usize, f: &Feature, w: f32) {
        let i = match self.scratch.get(&other) {
            Some(i) => *i,
            None => {
                self.candidates.push(Candidate::empty(other));
                let i = self.candidates.len() - 1;
                self.scratch.insert(other, i);
                i
            }
        };
        let c = &mut self.candidates[i];
        c.count[fam] = c.count[fam].saturating_add(1);
        if w > c.fam[fam] {
            c.fam[fam] = w;
            c.kinds[fam] = Some(f.kind);
            c.values[fam] = f.value;
        }
    }
}
