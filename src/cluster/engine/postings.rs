//! Posting lists: for each feature value, the few accounts that sent it most
//! recently; the doorkeeper in front of them; and commonness, measured over a
//! list's entries.

use super::state::{root_key, Door, Entry, Pass, Posting, Slot, State};
use crate::config::ClusterConfig;

/// Seconds for which a posting's commonness is reused before it is measured
/// again (measuring touches every entry's account).
const RECHECK_S: u32 = 30;

impl State {
    /// The doorkeeper: a value gets a posting list only once a second account
    /// sends it, so the values each user sends alone (most prompt bands) cost
    /// no memory. Returns the account that sent `key` before, and when, once
    /// `key` gets its posting list; else remembers the requester as its first
    /// sender.
    pub(super) fn admit(
        &mut self,
        cfg: &ClusterConfig,
        pass: &Pass,
        key: u64,
    ) -> Option<(u32, u32)> {
        let (slot, now_s) = (pass.slot, pass.now_s);
        let d = (key as usize) & (self.door.len() - 1);
        let tag = (key >> 32) as u32;
        let door = self.door[d];
        let other = door.slot;
        let valid = door.tag == tag
            && other != slot
            && now_s.saturating_sub(door.at) <= pass.ttl
            && self
                .slots
                .get(other as usize)
                .is_some_and(|s| s.live && s.first_seen <= door.at);
        if !valid {
            self.door[d] = Door {
                tag,
                slot,
                at: now_s,
            };
            return None;
        }
        if self.postings.len() >= cfg.max_features as usize {
            self.shed_postings(cfg, now_s);
        }
        self.postings.insert(
            key,
            Posting {
                last: now_s,
                checked: 0,
                roots: 0,
                common_at: 0,
                suspicious: 0,
                benign: 0,
                entries: vec![
                    Entry {
                        slot: other,
                        at: door.at,
                    },
                    Entry { slot, at: now_s },
                ],
            },
        );
        self.door[d] = Door::default();
        Some((other, door.at))
    }

    /// A value with a posting list: measures its commonness (cached for a
    /// while), gathers the other recent senders as candidates with their
    /// decayed weights (into `gathered`), and records the requester.
    pub(super) fn visit_posting(
        &mut self,
        cfg: &ClusterConfig,
        pass: &Pass,
        key: u64,
        hard: bool,
        anchor: Option<usize>,
        w: f32,
    ) {
        let State {
            postings,
            slots,
            gathered,
            own,
            ..
        } = self;
        let slots: &[Slot] = slots;
        gathered.clear();
        let Some(p) = postings.get_mut(&key) else {
            return;
        };
        let (slot, now_s) = (pass.slot, pass.now_s);
        p.last = now_s;
        let mine = root_key(slots, slot);
        if p.checked == 0 || p.entries.len() <= 4 || now_s.saturating_sub(p.checked) >= RECHECK_S {
            p.measure(slots, pass, mine);
        }
        let (common, exclusive) = if hard {
            (false, 1.0)
        } else if pass.me_susp {
            // Among accounts that look like extraction, a value many of
            // them share is the operator's, not common: only the
            // benign-looking accounts that share it weigh it down.
            let s = f32::from(p.suspicious.max(1));
            let support = (s / pass.support).min(1.0);
            (
                false,
                support * s / (s + pass.benign_scale * f32::from(p.benign)),
            )
        } else {
            let remembered =
                p.common_at > 0 && now_s.saturating_sub(p.common_at) < pass.common_memory;
            (u32::from(p.roots) > cfg.common_clusters || remembered, 1.0)
        };
        if pass.active && !common {
            let mut tie = 0.0f32;
            for e in &p.entries {
                if e.slot == slot || !fresh(slots, pass, e) {
                    continue;
                }
                if root_key(slots, e.slot) == mine {
                    // A value shared with the account's own cluster ties it
                    // closer (an anchor only; an account alone has no other
                    // entry under its own root).
                    if anchor.is_some() {
                        tie = tie.max(if hard {
                            f32::MAX
                        } else {
                            w * pass.decay(e.at) * exclusive
                        });
                    }
                    continue;
                }
                if pass.suspicious(evidence_of(slots, e)) != pass.me_susp {
                    continue;
                }
                gathered.push((e.slot, w * pass.decay(e.at) * exclusive));
            }
            if let (Some(i), true) = (anchor, tie > 0.0) {
                let (best, count) = &mut own[i];
                *best = best.max(tie);
                *count = count.saturating_add(1);
            }
        }
        p.record(slots, pass, cfg.posting_cap as usize);
    }
}

impl Posting {
    /// Drops stale entries and counts the distinct clusters, the
    /// extraction-like and the benign-looking accounts among the rest.
    fn measure(&mut self, slots: &[Slot], pass: &Pass, mine: u64) {
        self.entries
            .retain(|e| e.slot == pass.slot || fresh(slots, pass, e));
        let mut roots: [u64; 64] = [0; 64];
        let mut n_roots = 0usize;
        let mut benign_roots: [u64; 64] = [0; 64];
        let mut n_benign_roots = 0usize;
        let (mut n_susp, mut n_benign) = (0usize, 0usize);
        for e in &self.entries {
            let ev = evidence_of(slots, e);
            // Accounts whose own requests look like harvesting do not make a
            // value common: many of them sharing it is an operator's mark.
            let r = root_key(slots, e.slot);
            if ev < pass.common_ev && n_roots < roots.len() && !roots[..n_roots].contains(&r) {
                roots[n_roots] = r;
                n_roots += 1;
            }
            if pass.common_memory > 0
                && ev <= pass.benign_ev
                && n_benign_roots < benign_roots.len()
                && !benign_roots[..n_benign_roots].contains(&r)
            {
                benign_roots[n_benign_roots] = r;
                n_benign_roots += 1;
            }
            if ev >= pass.link_ev {
                n_susp += 1;
            } else if ev <= pass.benign_ev {
                n_benign += 1;
            }
        }
        if !roots[..n_roots].contains(&mine) {
            n_roots += 1;
        }
        self.roots = u8::try_from(n_roots).unwrap_or(u8::MAX);
        self.suspicious = u8::try_from(n_susp).unwrap_or(u8::MAX);
        self.benign = u8::try_from(n_benign).unwrap_or(u8::MAX);
        self.checked = pass.now_s.max(1);
        // Popular with ordinary users: remembered as common (`common_memory`).
        if n_benign_roots > pass.common_clusters as usize {
            self.common_at = pass.now_s.max(1);
        }
    }

    /// Records the requester as the value's most recent sender, evicting an
    /// entry when the list holds `cap`.
    fn record(&mut self, slots: &[Slot], pass: &Pass, cap: usize) {
        let (slot, now_s) = (pass.slot, pass.now_s);
        if let Some(e) = self.entries.iter_mut().find(|e| e.slot == slot) {
            e.at = now_s;
            return;
        }
        if self.entries.len() >= cap {
            // Class-balanced eviction: the oldest entry of whichever
            // class (looks like extraction or not) holds more of the
            // list, so a burst of ordinary users cannot flush an
            // operator's accounts out of a value's list, nor the reverse.
            let susp = |e: &Entry| pass.suspicious(evidence_of(slots, e));
            let n_s = self.entries.iter().filter(|e| susp(e)).count();
            let n_o = self.entries.len() - n_s;
            let evict_susp = match n_s.cmp(&n_o) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => pass.me_susp,
            };
            let victim = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| susp(e) == evict_susp)
                .min_by_key(|(_, e)| e.at)
                .or_else(|| self.entries.iter().enumerate().min_by_key(|(_, e)| e.at))
                .map(|(i, _)| i);
            if let Some(i) = victim {
                self.entries.swap_remove(i);
            }
        }
        self.entries.push(Entry { slot, at: now_s });
    }
}

/// An entry still counts: used within `ttl` by the account now in its slot.
fn fresh(slots: &[Slot], pass: &Pass, e: &Entry) -> bool {
    pass.now_s.saturating_sub(e.at) <= pass.ttl
        && slots
            .get(e.slot as usize)
            .is_some_and(|s| s.live && s.first_seen <= e.at)
}

/// The behaviour evidence of an entry's account (0 for a free slot).
fn evidence_of(slots: &[Slot], e: &Entry) -> f32 {
    slots.get(e.slot as usize).map_or(0.0, |s| s.evidence)
}
