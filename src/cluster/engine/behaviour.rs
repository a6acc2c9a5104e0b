//! Behaviour evidence: how much an account's requests have looked like
//! harvesting, net of its ordinary use (see
//! [`BehaviourEvidence`](crate::cluster::BehaviourEvidence)).

use super::state::State;
use super::types::Observation;
use super::NONE;
use crate::config::ClusterConfig;

/// Index of the extraction score in [`Observation::signals`].
const EXTRACTION: usize = 4;
/// Index of the benign flag in [`Observation::signals`].
const BENIGN: usize = 5;

impl State {
    /// Adds one request's behaviour to its account's evidence (see
    /// [`BehaviourEvidence`](crate::cluster::BehaviourEvidence)) and passes the change
    /// on to its cluster.
    pub(super) fn behaviour_step(
        &mut self,
        cfg: &ClusterConfig,
        slot: u32,
        obs: &Observation<'_>,
        now_s: u32,
    ) {
        let b = &cfg.behaviour;
        let x = obs.signals[EXTRACTION].clamp(0.0, 1.0);
        let benign = obs.signals[BENIGN] >= 0.5;
        let gain = b.gain as f32;
        let step = if x > 0.0 {
            gain * (x - b.pivot as f32)
        } else if benign {
            -(b.benign_penalty as f32)
        } else {
            -(b.neutral_penalty as f32)
        };
        let half_life = b.half_life.as_secs().max(1) as f32;
        let gap = u32::try_from(b.session_gap.as_secs()).unwrap_or(u32::MAX);
        let cap = b.member_cap as f32;
        let s = &mut self.slots[slot as usize];
        let dt = now_s.saturating_sub(s.evidence_at) as f32;
        if dt > 0.0 {
            s.evidence *= 0.5f32.powf(dt / half_life);
            s.evidence_at = now_s;
        }
        if s.session_at == 0 || now_s.saturating_sub(s.session_at) > gap {
            s.session_best = 0.0;
        }
        s.session_at = now_s;
        let add = if step > 0.0 {
            let add = (step - s.session_best).max(0.0);
            s.session_best = s.session_best.max(step);
            add
        } else {
            step
        };
        s.evidence = (s.evidence + add).clamp(b.floor as f32, b.ceiling as f32);
        let contribution = s.evidence.clamp(0.0, cap);
        let delta = contribution - s.contribution;
        s.contribution = contribution;
        let c = s.cluster;
        if let Some(rec) = self.clusters.get_mut(c as usize) {
            if c != NONE {
                rec.evidence = (rec.evidence + delta).max(0.0);
            }
        }
    }
}
