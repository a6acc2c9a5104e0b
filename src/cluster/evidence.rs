//! What linked a cluster's members: a fixed-size summary kept per cluster and
//! updated at every link, for operators (the admin API and dashboard).
//!
//! Two bounded tables: per feature kind, how many links used it and their summed
//! and strongest weight; and the few strongest shared values (64-bit feature
//! hashes, shown as short prefixes). Nothing grows with the member count; merged
//! clusters combine their tables, keeping the strongest entries.

use crate::features::{Family, FeatureKind};

/// Feature kinds remembered per cluster.
pub(super) const EVIDENCE_KINDS: usize = 8;
/// Shared values remembered per cluster.
pub(super) const EVIDENCE_VALUES: usize = 4;

/// One feature kind's part in the links that formed a cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindSummary {
    /// The evidence family.
    pub family: Family,
    /// The feature kind (e.g. `system_prompt`, `user_agent`, `hard_link`).
    pub kind: FeatureKind,
    /// Links in which it was its family's strongest evidence.
    pub links: u32,
    /// Sum of its weights over those links.
    pub weight_sum: f32,
    /// Its largest weight in one link.
    pub weight_max: f32,
}

/// One shared feature value among the strongest that linked a cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueSummary {
    /// The evidence family.
    pub family: Family,
    /// The feature kind.
    pub kind: FeatureKind,
    /// The feature's 64-bit hash (never the raw value).
    pub value: u64,
    /// Links it carried.
    pub links: u32,
    /// Its largest weight in one link.
    pub weight: f32,
    /// When it last carried a link (Unix seconds).
    pub last_s: u32,
    /// Members of the cluster among the value's recent users (at most the
    /// posting list's length); 0 once its posting list has been forgotten.
    pub members: u32,
}

#[derive(Debug, Clone, Copy)]
struct KindTally {
    links: u32,
    sum: f32,
    max: f32,
    family: Family,
    kind: FeatureKind,
}

#[derive(Debug, Clone, Copy)]
struct ValueTally {
    value: u64,
    weight: f32,
    at: u32,
    links: u16,
    family: Family,
    kind: FeatureKind,
}

const NO_KIND: KindTally = KindTally {
    links: 0,
    sum: 0.0,
    max: 0.0,
    family: Family::Client,
    kind: FeatureKind::HeaderOrder,
};

const NO_VALUE: ValueTally = ValueTally {
    value: 0,
    weight: 0.0,
    at: 0,
    links: 0,
    family: Family::Client,
    kind: FeatureKind::HeaderOrder,
};

/// The per-cluster summary. Empty entries have `links == 0`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Evidence {
    kinds: [KindTally; EVIDENCE_KINDS],
    values: [ValueTally; EVIDENCE_VALUES],
}

impl Evidence {
    pub(super) const EMPTY: Evidence = Evidence {
        kinds: [NO_KIND; EVIDENCE_KINDS],
        values: [NO_VALUE; EVIDENCE_VALUES],
    };

    /// Records one link: per family (in [`Family::ALL`] order), the strongest
    /// kind, its weight and the value behind it.
    pub(super) fn record(
        &mut self,
        weights: &[f32; 7],
        kinds: &[Option<FeatureKind>; 7],
        values: &[u64; 7],
        now_s: u32,
    ) {
        for (i, family) in Family::ALL.into_iter().enumerate() {
            let w = weights[i];
            let Some(kind) = kinds[i] else {
                continue;
            };
            if w <= 0.0 || !w.is_finite() {
                continue;
            }
            self.add_kind(KindTally {
                family,
                kind,
                links: 1,
                sum: w,
                max: w,
            });
            self.add_value(ValueTally {
                family,
                kind,
                value: values[i],
                links: 1,
                weight: w,
                at: now_s,
            });
        }
    }

    /// Adds another cluster's summary (a merge).
    pub(super) fn absorb(&mut self, other: &Evidence) {
        for k in other.kinds.iter().filter(|k| k.links > 0) {
            self.add_kind(*k);
        }
        for v in other.values.iter().filter(|v| v.links > 0) {
            self.add_value(*v);
        }
    }

    fn add_kind(&mut self, t: KindTally) {
        if let Some(k) = self
            .kinds
            .iter_mut()
            .find(|k| k.links > 0 && k.family == t.family && k.kind == t.kind)
        {
            k.links = k.links.saturating_add(t.links);
            k.sum += t.sum;
            k.max = k.max.max(t.max);
            return;
        }
        // An empty entry, else the weakest if the newcomer outweighs it.
        let weakest = self.kinds.iter_mut().min_by(|a, b| {
            (a.links > 0)
                .cmp(&(b.links > 0))
                .then(a.sum.total_cmp(&b.sum))
        });
        if let Some(k) = weakest {
            if k.links == 0 || t.sum > k.sum {
                *k = t;
            }
        }
    }

    fn add_value(&mut self, t: ValueTally) {
        if let Some(v) = self
            .values
            .iter_mut()
            .find(|v| v.links > 0 && v.family == t.family && v.value == t.value)
        {
            v.links = v.links.saturating_add(t.links);
            v.weight = v.weight.max(t.weight);
            v.at = v.at.max(t.at);
            return;
        }
        // An empty entry, else the weakest (the oldest among equals) if the
        // newcomer is at least as strong: recent strong values replace old ones.
        let weakest = self.values.iter_mut().min_by(|a, b| {
            (a.links > 0)
                .cmp(&(b.links > 0))
                .then(a.weight.total_cmp(&b.weight))
                .then(a.at.cmp(&b.at))
        });
        if let Some(v) = weakest {
            if v.links == 0 || t.weight >= v.weight {
                *v = t;
            }
        }
    }

    /// The kinds, strongest (summed weight) first.
    pub(super) fn kinds(&self) -> Vec<KindSummary> {
        let mut out: Vec<KindSummary> = self
            .kinds
            .iter()
            .filter(|k| k.links > 0)
            .map(|k| KindSummary {
                family: k.family,
                kind: k.kind,
                links: k.links,
                weight_sum: k.sum,
                weight_max: k.max,
            })
            .collect();
        out.sort_by(|a, b| b.weight_sum.total_cmp(&a.weight_sum));
        out
    }

    /// The values, strongest first; `members` is filled in by the caller.
    pub(super) fn values(&self) -> Vec<ValueSummary> {
        let mut out: Vec<ValueSummary> = self
            .values
            .iter()
            .filter(|v| v.links > 0)
            .map(|v| ValueSummary {
                family: v.family,
                kind: v.kind,
                value: v.value,
                links: u32::from(v.links),
                weight: v.weight,
                last_s: v.at,
                members: 0,
            })
            .collect();
        out.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then(b.links.cmp(&a.links))
                .then(b.last_s.cmp(&a.last_s))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FeatureKind::{HardLink, SystemPrompt, UserAgent};

    fn link(ev: &mut Evidence, kind: FeatureKind, value: u64, w: f32, at: u32) {
        let family = Family::ALL
            .iter()
            .position(|f| *f == kind.family())
            .expect("family");
        let mut weights = [0.0; 7];
        let mut kinds = [None; 7];
        let mut values = [0; 7];
        weights[family] = w;
        kinds[family] = Some(kind);
        values[family] = value;
        ev.record(&weights, &kinds, &values, at);
    }

    #[test]
    fn a_summary_is_small() {
        // Kept per cluster: at most a few hundred bytes whatever the member count.
        assert!(std::mem::size_of::<Evidence>() <= 224);
    }

    #[test]
    fn links_are_tallied_per_kind_and_value() {
        let mut ev = Evidence::EMPTY;
        link(&mut ev, SystemPrompt, 42, 1.0, 10);
        link(&mut ev, SystemPrompt, 42, 0.5, 11);
        link(&mut ev, UserAgent, 7, 0.25, 12);
        let kinds = ev.kinds();
        assert_eq!(kinds.len(), 2);
        assert_eq!(kinds[0].kind, SystemPrompt);
        assert_eq!(kinds[0].family, Family::Template);
        assert_eq!(kinds[0].links, 2);
        assert!((kinds[0].weight_sum - 1.5).abs() < 1e-6);
        assert_eq!(kinds[0].weight_max, 1.0);
        let values = ev.values();
        assert_eq!(values[0].value, 42);
        assert_eq!(values[0].links, 2);
        assert_eq!(values[0].last_s, 11);
        assert_eq!(values[1].value, 7);
        assert_eq!(values[1].family, Family::Client);
    }

    #[test]
    fn the_tables_stay_bounded_and_keep_the_strongest() {
        let mut ev = Evidence::EMPTY;
        let kinds = &FeatureKind::ALL[..12];
        for (i, kind) in kinds.iter().enumerate() {
            link(&mut ev, *kind, i as u64, (i + 1) as f32, i as u32);
        }
        let tallied = ev.kinds();
        assert_eq!(tallied.len(), EVIDENCE_KINDS);
        assert_eq!(tallied[0].kind, kinds[11]);
        assert!(tallied.iter().all(|k| k.kind != kinds[0]), "{tallied:?}");
        let values = ev.values();
        assert_eq!(values.len(), EVIDENCE_VALUES);
        assert_eq!(
            values.iter().map(|v| v.value).collect::<Vec<_>>(),
            [11, 10, 9, 8]
        );
        // A weak value does not push a strong one out.
        link(&mut ev, kinds[0], 99, 0.1, 100);
        assert!(ev.values().iter().all(|v| v.value != 99));
    }

    #[test]
    fn merging_combines_the_summaries() {
        let mut a = Evidence::EMPTY;
        let mut b = Evidence::EMPTY;
        link(&mut a, SystemPrompt, 1, 1.0, 10);
        link(&mut b, SystemPrompt, 1, 2.0, 20);
        link(&mut b, HardLink, 9, 4.0, 21);
        a.absorb(&b);
        let kinds = a.kinds();
        assert_eq!(kinds[0].kind, HardLink);
        assert_eq!(kinds[1].kind, SystemPrompt);
        assert_eq!(kinds[1].links, 2);
        assert!((kinds[1].weight_sum - 3.0).abs() < 1e-6);
        assert_eq!(kinds[1].weight_max, 2.0);
        let values = a.values();
        assert_eq!(values.len(), 2);
        assert_eq!(values[1].value, 1);
        assert_eq!(values[1].links, 2);
        assert_eq!(values[1].last_s, 20);
    }
}
