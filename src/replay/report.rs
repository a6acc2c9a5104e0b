//! `replay --report report.html`: one self-contained HTML page (inline CSS and
//! SVG, no script, no network) with what a tuning engineer looks at:
//!
//! - decisions over time, stacked by outcome (allowed, on the tag rung,
//!   throttled, degraded, denied);
//! - clusters by size (each account counted in the cluster of its last
//!   decision, as the scorer does);
//! - with labels: campaign output tokens over time (harvested, degraded,
//!   denied) and the share harvested, with the share of organic requests
//!   harmed (denied or degraded), using [`DecisionLine`]'s definitions;
//! - the most suspicious clusters with the evidence that links them and the
//!   signals behind their suspicion;
//! - with `--compare`, every one of these for both configs side by side, and a
//!   table of the headline figures with their difference.
//!
//! A [`ReportBuilder`] observes each line and its decision during the replay
//! (memory: one counter row per minute of traffic and one entry per account);
//! [`render_html`] writes the page from one or two finished [`RunReport`]s.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use super::format::{DecisionLine, TrafficLine};
use super::run::Summary;
use super::svg::{self, esc, Series};
use super::text::thousands;

/// Outcome series, in stacking order.
const OUTCOMES: [(&str, &str); 5] = [
    ("allowed", "#4caf50"),
    ("tag rung", "#2196f3"),
    ("throttled", "#ff9800"),
    ("degraded", "#9c27b0"),
    ("denied", "#e53935"),
];
/// Most bars on a time axis.
const MAX_BUCKETS: u64 = 96;
/// Clusters listed with their evidence.
pub const TOP_CLUSTERS: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
struct Minute {
    /// Requests per outcome ([`OUTCOMES`]).
    outcomes: [u64; 5],
    /// Campaign output tokens: harvested, degraded, denied.
    campaign_tokens: [u64; 3],
    /// Organic requests, and those harmed.
    organic: u64,
    organic_harmed: u64,
}

impl Minute {
    fn add(&mut self, o: &Minute) {
        for i in 0..5 {
            self.outcomes[i] += o.outcomes[i];
        }
        for i in 0..3 {
            self.campaign_tokens[i] += o.campaign_tokens[i];
        }
        self.organic += o.organic;
        self.organic_harmed += o.organic_harmed;
    }
}

fn outcome(d: &DecisionLine) -> usize {
    if d.denied() {
        return 4;
    }
    match d.action.as_str() {
        "tag" => 1,
        "throttle" => 2,
        "degrade" => 3,
        _ => 0,
    }
}

/// Collects a report's figures while a replay runs.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    minutes: BTreeMap<u64, Minute>,
    /// The cluster as of its last decision (interned) of each account that was
    /// ever in a cluster of two or more; [`ALONE`] once it is alone again.
    /// Accounts never linked are only counted (`seen`), so a replay of millions
    /// of accounts holds an entry per linked account, not per account.
    last_cluster: HashMap<Box<str>, u32>,
    clusters: HashMap<Box<str>, u32>,
    /// Every account seen, counted approximately in fixed memory.
    seen: DistinctCount,
    labelled: u64,
}

/// The slot of an account whose last decision left it alone.
const ALONE: u32 = u32::MAX;

/// A HyperLogLog count of distinct accounts (2^14 registers, 16 KiB, about 1%
/// error; exact in effect below some thousands).
#[derive(Debug)]
struct DistinctCount(Box<[u8; 1 << 14]>);

impl Default for DistinctCount {
    fn default() -> Self {
        Self(Box::new([0; 1 << 14]))
    }
}

impl DistinctCount {
    fn add(&mut self, account: &str) {
        // 64 bits of the account id (a keyed hash); anything else is hashed.
        let h = match account
            .get(..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        {
            Some(h) => h,
            None => {
                use std::hash::{Hash, Hasher};
                let mut d = std::collections::hash_map::DefaultHasher::new();
                account.hash(&mut d);
                d.finish()
            }
        };
        // Mixed (splitmix64's finaliser), so ids that are not uniform count too.
        let mut h = h ^ (h >> 30);
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        let index = (h >> 50) as usize;
        let rank = ((h << 14) | (1 << 13)).leading_zeros() as u8 + 1;
        let r = &mut self.0[index];
        *r = (*r).max(rank);
    }

    fn estimate(&self) -> u64 {
        let m = self.0.len() as f64;
        let sum: f64 = self.0.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let zeros = self.0.iter().filter(|r| **r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            (m * (m / zeros as f64).ln()).round() as u64
        } else {
            raw.round() as u64
        }
    }
}

impl ReportBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one replayed line and its decision.
    pub fn observe(&mut self, traffic: &TrafficLine, decision: &DecisionLine) {
        let m = self.minutes.entry(traffic.ts_ms / 60_000).or_default();
        m.outcomes[outcome(decision)] += 1;
        if let Some(label) = &traffic.label {
            self.labelled += 1;
            if label.is_campaign() {
                let t = traffic.usage.output_tokens;
                let slot = if decision.denied() {
                    2
                } else if decision.degraded() {
                    1
                } else {
                    0
                };
                m.campaign_tokens[slot] += t;
            } else {
                m.organic += 1;
                m.organic_harmed += u64::from(decision.denied() || decision.degraded());
            }
        }
        if decision.account.is_empty() {
            return;
        }
        self.seen.add(&decision.account);
        let linked = decision.cluster_size >= 2;
        let slot = self.last_cluster.get_mut(decision.account.as_str());
        if !linked {
            if let Some(slot) = slot {
                *slot = ALONE;
            }
            return;
        }
        let next = self.clusters.len() as u32;
        let c = *self
            .clusters
            .entry(decision.cluster.as_str().into())
            .or_insert(next);
        match slot {
            Some(slot) => *slot = c,
            None => {
                self.last_cluster
                    .insert(decision.account.as_str().into(), c);
            }
        }
    }

    /// The finished figures of this run, named `name` (e.g. the config file).
    pub fn finish(self, name: &str, summary: Summary) -> RunReport {
        let mut sizes: HashMap<u32, u64> = HashMap::new();
        for c in self.last_cluster.values().filter(|c| **c != ALONE) {
            *sizes.entry(*c).or_default() += 1;
        }
        let mut size_counts: BTreeMap<u64, u64> = BTreeMap::new();
        let mut linked = 0;
        for n in sizes.values() {
            *size_counts.entry(*n).or_default() += 1;
            linked += n;
        }
        // Accounts alone at their last decision: all those seen but the linked.
        let alone = self.seen.estimate().saturating_sub(linked);
        if alone > 0 {
            *size_counts.entry(1).or_default() += alone;
        }
        RunReport {
            name: name.to_owned(),
            summary,
            minutes: self.minutes,
            size_counts,
            labelled: self.labelled > 0,
        }
    }
}

/// One replay's figures, ready to render.
#[derive(Debug)]
pub struct RunReport {
    name: String,
    summary: Summary,
    minutes: BTreeMap<u64, Minute>,
    /// Clusters (as of each account's last decision) by member count.
    size_counts: BTreeMap<u64, u64>,
    labelled: bool,
}

impl RunReport {
    /// The replay's summary.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// Time buckets shared by every run of a page.
struct Buckets {
    first_minute: u64,
    minutes_per_bucket: u64,
    count: u64,
}

impl Buckets {
    fn of(runs: &[RunReport]) -> Self {
        let first = runs
            .iter()
            .filter_map(|r| r.minutes.keys().next().copied())
            .min()
            .unwrap_or(0);
        let last = runs
            .iter()
            .filter_map(|r| r.minutes.keys().next_back().copied())
            .max()
            .unwrap_or(0);
        let span = last - first + 1;
        let nice = [
            1u64, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080,
        ];
        let per = nice
            .iter()
            .copied()
            .find(|m| span.div_ceil(*m) <= MAX_BUCKETS)
            .unwrap_or_else(|| span.div_ceil(MAX_BUCKETS));
        Self {
            first_minute: first,
            minutes_per_bucket: per,
            count: span.div_ceil(per),
        }
    }

    fn series(&self, run: &RunReport) -> Vec<Minute> {
        let mut out = vec![Minute::default(); self.count as usize];
        for (m, v) in &run.minutes {
            let i = ((m - self.first_minute) / self.minutes_per_bucket) as usize;
            if let Some(slot) = out.get_mut(i) {
                slot.add(v);
            }
        }
        out
    }

    /// Bucket starts as time since the first request: `+0:00`, `+1:30`, `+2d 4h`.
    fn labels(&self) -> Vec<String> {
        (0..self.count)
            .map(|i| {
                let m = i * self.minutes_per_bucket;
                if m >= 2 * 1440 {
                    format!("+{}d {}h", m / 1440, (m % 1440) / 60)
                } else {
                    format!("+{}:{:02}", m / 60, m % 60)
                }
            })
            .collect()
    }

    fn width(&self) -> String {
        let m = self.minutes_per_bucket;
        match m {
            m if m % 1440 == 0 => format!("{} day{}", m / 1440, if m == 1440 { "" } else { "s" }),
            m if m % 60 == 0 => format!("{} hour{}", m / 60, if m == 60 { "" } else { "s" }),
            m => format!("{m} minute{}", if m == 1 { "" } else { "s" }),
        }
    }
}

const SIZE_BINS: [(u64, u64, &str); 10] = [
    (2, 2, "2"),
    (3, 4, "3-4"),
    (5, 9, "5-9"),
    (10, 19, "10-19"),
    (20, 49, "20-49"),
    (50, 99, "50-99"),
    (100, 199, "100-199"),
    (200, 499, "200-499"),
    (500, 999, "500-999"),
    (1000, u64::MAX, "1000+"),
];

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{:.2}%", x * 100.0))
}

fn minutes(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "never".into(),
        |ms| format!("{:.0} min", ms as f64 / 60_000.0),
    )
}

/// A headline row of a count.
fn count(name: &'static str, n: u64) -> (&'static str, String, Option<f64>) {
    (name, thousands(n), Some(n as f64))
}

/// The headline figures of a run: (name, value, the number the difference
/// column compares; percentages as percentage points).
fn headline(r: &RunReport) -> Vec<(&'static str, String, Option<f64>)> {
    let s = &r.summary;
    let act = |a: &str| s.by_action.get(a).copied().unwrap_or(0);
    let denied: u64 = s
        .by_status
        .iter()
        .filter(|(k, _)| **k >= 400)
        .map(|(_, v)| *v)
        .sum();
    let total: u64 = s.by_status.values().sum();
    let largest = r.size_counts.keys().next_back().copied().unwrap_or(0);
    let linked: u64 = r
        .size_counts
        .iter()
        .filter(|(k, _)| **k >= 2)
        .map(|(_, v)| *v)
        .sum();
    let mut rows = vec![
        ("requests replayed", thousands(total), Some(total as f64)),
        (
            "denied (status ≥ 400)",
            format!(
                "{} ({})",
                thousands(denied),
                pct((total > 0).then(|| denied as f64 / total as f64))
            ),
            Some(denied as f64),
        ),
        count("on the tag rung", act("tag")),
        count("throttled", act("throttle")),
        count("degraded", act("degrade")),
        count("blocked", act("block")),
        count("responses tagged", s.tagged),
        (
            "clusters of 2+ accounts at the end",
            thousands(linked),
            Some(linked as f64),
        ),
        (
            "largest cluster at the end",
            thousands(largest),
            Some(largest as f64),
        ),
    ];
    if let Some(score) = &s.score {
        let k = &score.campaign;
        let o = &score.organic;
        let c = &score.clustering;
        rows.extend([
            (
                "pairwise precision",
                format!("{:.4}", c.pairwise.precision),
                Some(c.pairwise.precision),
            ),
            (
                "pairwise recall",
                format!("{:.4}", c.pairwise.recall),
                Some(c.pairwise.recall),
            ),
            (
                "campaign output tokens harvested (pt)",
                pct(k.output_tokens.harvested_share),
                k.output_tokens.harvested_share.map(|x| x * 100.0),
            ),
            (
                "… in the first 24 h (pt)",
                pct(k.harvest_first_24h),
                k.harvest_first_24h.map(|x| x * 100.0),
            ),
            (
                "… after the first denial (pt)",
                pct(k.harvest_after_first_denial),
                k.harvest_after_first_denial.map(|x| x * 100.0),
            ),
            (
                "slowest first enforcement (min)",
                minutes(k.worst_time_to_first_enforcement_ms),
                k.worst_time_to_first_enforcement_ms
                    .map(|m| m as f64 / 60_000.0),
            ),
            (
                "organic accounts harmed",
                format!(
                    "{} ({})",
                    thousands(o.accounts_harmed),
                    pct(o.accounts_harmed_share)
                ),
                Some(o.accounts_harmed as f64),
            ),
            (
                "organic requests harmed",
                format!(
                    "{} ({})",
                    thousands(o.requests_harmed),
                    pct(o.requests_harmed_share)
                ),
                Some(o.requests_harmed as f64),
            ),
        ]);
    }
    rows
}

fn summary_table(out: &mut String, runs: &[RunReport]) {
    out.push_str("<table class=\"figures\"><thead><tr><th></th>");
    for r in runs {
        let _ = write!(out, "<th>{}</th>", esc(&r.name));
    }
    if runs.len() == 2 {
        out.push_str("<th>difference</th>");
    }
    out.push_str("</tr></thead><tbody>");
    let rows: Vec<_> = runs.iter().map(headline).collect();
    for (i, (name, _, _)) in rows[0].iter().enumerate() {
        let _ = write!(out, "<tr><th>{}</th>", esc(name));
        for r in &rows {
            let _ = write!(
                out,
                "<td>{}</td>",
                esc(r.get(i).map_or("", |x| x.1.as_str()))
            );
        }
        if rows.len() == 2 {
            let d = match (
                rows[0].get(i).and_then(|x| x.2),
                rows[1].get(i).and_then(|x| x.2),
            ) {
                (Some(a), Some(b)) if (b - a).abs() > 1e-9 => {
                    format!(
                        "{}{}",
                        if b > a { "+" } else { "−" },
                        svg::compact((b - a).abs())
                    )
                }
                (Some(_), Some(_)) => "same".into(),
                _ => String::new(),
            };
            let _ = write!(out, "<td>{}</td>", esc(&d));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

fn decisions_chart(b: &Buckets, r: &RunReport) -> String {
    let series = b.series(r);
    let s: Vec<Series> = OUTCOMES
        .iter()
        .enumerate()
        .map(|(i, (name, color))| Series {
            name: (*name).to_owned(),
            color,
            values: series.iter().map(|m| m.outcomes[i] as f64).collect(),
        })
        .collect();
    svg::stacked_bars(
        &format!("decisions per {} by outcome", b.width()),
        "requests",
        &b.labels(),
        &s,
    )
}

fn sizes_chart(r: &RunReport) -> String {
    let labels: Vec<String> = SIZE_BINS.iter().map(|b| b.2.to_owned()).collect();
    let values: Vec<f64> = SIZE_BINS
        .iter()
        .map(|(lo, hi, _)| r.size_counts.range(*lo..=*hi).map(|(_, n)| *n as f64).sum())
        .collect();
    svg::bars(
        "clusters by member count",
        "clusters",
        &labels,
        &values,
        "#3f51b5",
    )
}

fn harvest_charts(b: &Buckets, r: &RunReport) -> String {
    let series = b.series(r);
    let labels = b.labels();
    let names = [
        ("harvested", "#e53935"),
        ("degraded", "#9c27b0"),
        ("denied", "#607d8b"),
    ];
    let tokens: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(i, (name, color))| Series {
            name: (*name).to_owned(),
            color,
            values: series.iter().map(|m| m.campaign_tokens[i] as f64).collect(),
        })
        .collect();
    let share = |num: &dyn Fn(&Minute) -> u64, den: &dyn Fn(&Minute) -> u64| -> Vec<f64> {
        series
            .iter()
            .map(|m| {
                let d = den(m);
                if d == 0 {
                    f64::NAN
                } else {
                    num(m) as f64 / d as f64
                }
            })
            .collect()
    };
    let shares = vec![
        Series {
            name: "campaign output tokens harvested".into(),
            color: "#e53935",
            values: share(&|m| m.campaign_tokens[0], &|m| {
                m.campaign_tokens.iter().sum()
            }),
        },
        Series {
            name: "organic requests harmed".into(),
            color: "#009688",
            values: share(&|m| m.organic_harmed, &|m| m.organic),
        },
    ];
    let mut out = svg::stacked_bars(
        &format!("campaign output tokens per {}", b.width()),
        "output tokens",
        &labels,
        &tokens,
    );
    out.push_str(&svg::share_lines(
        &format!("harvest and harm per {}", b.width()),
        &labels,
        &shares,
    ));
    out
}

fn clusters_table(out: &mut String, r: &RunReport) {
    let views = &r.summary.cluster_evidence;
    if views.is_empty() {
        out.push_str("<p class=\"note\">No cluster of two or more accounts was formed.</p>");
        return;
    }
    let tallies: HashMap<&str, &super::run::Tally> = r
        .summary
        .most_suspicious_clusters
        .iter()
        .chain(&r.summary.top_clusters)
        .map(|t| (t.id.as_str(), t))
        .collect();
    out.push_str("<table class=\"clusters\"><thead><tr><th>cluster</th><th>accounts</th><th>suspicion</th><th>requests (denied)</th><th>top signals</th><th>linked by</th></tr></thead><tbody>");
    for v in views {
        let id = v.id.to_string();
        let traffic = tallies.get(id.as_str()).map_or_else(String::new, |t| {
            format!("{} ({})", thousands(t.requests), thousands(t.denied))
        });
        let signals: Vec<String> = v
            .top_signals
            .iter()
            .take(4)
            .map(|s| format!("{} {:.2}", s.signal, s.weight))
            .collect();
        let evidence: Vec<String> = v
            .evidence
            .iter()
            .take(4)
            .map(|e| {
                format!(
                    "{} ({} accounts, weight {:.2})",
                    e.feature, e.accounts, e.weight
                )
            })
            .collect();
        let kinds: Vec<String> = v
            .evidence_by_kind
            .iter()
            .take(3)
            .map(|k| format!("{}/{}: {} links", k.family, k.kind, k.links))
            .collect();
        let _ = write!(
            out,
            "<tr><td class=\"id\">{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}<br><span class=\"note\">{}</span></td></tr>",
            esc(&id),
            thousands(u64::from(v.size)),
            v.suspicion,
            esc(&traffic),
            esc(&signals.join(", ")),
            esc(&evidence.join("; ")),
            esc(&kinds.join("; ")),
        );
    }
    out.push_str("</tbody></table>");
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1600px;padding:0 16px;color:#1d2330;background:#fafbfc}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde1e6;padding-bottom:4px}h3{font-size:14px;margin:8px 0}\
.meta{color:#5b6474}.note{color:#5b6474;font-size:12px}\
.runs{display:grid;grid-template-columns:repeat(var(--runs),minmax(0,1fr));gap:16px}\
.run{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px 12px;min-width:0}\
svg.chart{width:100%;height:auto;display:block;margin:4px 0 10px}\
svg .grid{stroke:#e6e9ee;stroke-width:1}svg .axis{stroke:#8a93a3;stroke-width:1}\
svg text{font:11px system-ui,sans-serif;fill:#3c4452}svg .ylab{text-anchor:end}svg .xlab{text-anchor:middle}svg .val{text-anchor:middle;font-size:10px}\
table{border-collapse:collapse;background:#fff;font-size:13px}th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:right;vertical-align:top}\
thead th{background:#f0f2f5}tbody th{text-align:left;font-weight:500}\
table.clusters{width:100%;table-layout:fixed}table.clusters td{text-align:left;overflow-wrap:anywhere}table.clusters th:first-child{width:24%}table.clusters td:nth-child(2),table.clusters td:nth-child(3){text-align:right}td.id{font-family:ui-monospace,monospace;font-size:12px}";

/// The whole page for one run, or two with `--compare` (the first is the
/// baseline of the difference column).
pub fn render_html(traffic: &str, runs: &[RunReport]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>distill-guard replay report: {t}</title><style>{STYLE}</style></head><body>",
        t = esc(traffic)
    );
    let _ = write!(
        out,
        "<h1>distill-guard replay report</h1><p class=\"meta\">traffic <b>{}</b>",
        esc(traffic)
    );
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            out,
            "; {} <b>{}</b>",
            if i == 0 { "config" } else { "compared with" },
            esc(&r.name)
        );
    }
    if let Some(r) = runs.first() {
        let s = &r.summary;
        let _ = write!(
            out,
            "<br>{} lines ({} malformed), replayed in {:.1} s",
            thousands(s.lines),
            thousands(s.malformed),
            s.seconds
        );
    }
    out.push_str("</p>");
    if runs.is_empty() {
        out.push_str("</body></html>");
        return out;
    }
    let grid = |out: &mut String, f: &dyn Fn(&mut String, &RunReport)| {
        let _ = write!(out, "<div class=\"runs\" style=\"--runs:{}\">", runs.len());
        for r in runs {
            let _ = write!(out, "<div class=\"run\"><h3>{}</h3>", esc(&r.name));
            f(out, r);
            out.push_str("</div>");
        }
        out.push_str("</div>");
    };
    out.push_str("<h2 id=\"figures\">Headline figures</h2>");
    summary_table(&mut out, runs);
    if let Some(why) = &runs[0].summary.tagging_off {
        let _ = write!(
            out,
            "<p class=\"note\">No response can be tagged: {}.</p>",
            esc(why)
        );
    }
    let buckets = Buckets::of(runs);
    out.push_str("<h2 id=\"decisions\">Decisions over time</h2>");
    grid(&mut out, &|out, r| {
        out.push_str(&decisions_chart(&buckets, r))
    });
    out.push_str("<h2 id=\"clusters\">Clusters by size</h2>");
    grid(&mut out, &|out, r| {
        out.push_str(&sizes_chart(r));
        let alone = r.size_counts.get(&1).copied().unwrap_or(0);
        let _ = write!(
            out,
            "<p class=\"note\">About {} accounts were linked to no other account.</p>",
            thousands(alone)
        );
    });
    if runs.iter().any(|r| r.labelled) {
        out.push_str("<h2 id=\"harvest\">Harvest and harm over time</h2><p class=\"note\">From the traffic's labels: campaign output tokens delivered and not degraded are harvested (a tagged answer is still harvested); an organic request denied or degraded is harmed.</p>");
        grid(&mut out, &|out, r| {
            out.push_str(&harvest_charts(&buckets, r))
        });
    } else {
        out.push_str(
            "<p class=\"note\">The traffic has no labels, so harvest and harm cannot be shown.</p>",
        );
    }
    out.push_str("<h2 id=\"top-clusters\">Most suspicious clusters and their evidence</h2>");
    grid(&mut out, &|out, r| clusters_table(out, r));
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::format::{parse_decision, parse_line};

    fn run(name: &str, denied_every: u64) -> RunReport {
        let mut b = ReportBuilder::new();
        for i in 0..300u64 {
            let actor = if i % 3 == 0 { "campaign-1" } else { "user" };
            let t = format!(
                r#"{{"ts_ms": {}, "ip": "192.0.2.1", "method": "POST", "path": "/v1/messages",
                "usage": {{"input_tokens": 1, "output_tokens": 100}}, "label": {{"actor": "{actor}"}}}}"#,
                1_700_000_000_000 + i * 30_000
            );
            let status = if i % denied_every == 0 { 429 } else { 200 };
            let d = format!(
                r#"{{"line": {i}, "status": {status}, "account": "a{}", "cluster": "c{}", "cluster_size": 1,
                "score": 0.5, "action": "{}", "tagged": false}}"#,
                i % 20,
                i % 5,
                if i % 7 == 0 { "degrade" } else { "allow" }
            );
            b.observe(
                &parse_line(i + 1, &t).expect("traffic"),
                &parse_decision(i + 1, &d).expect("decision"),
            );
        }
        b.finish(name, Summary::default())
    }

    #[test]
    fn cluster_sizes_hold_per_linked_account_not_per_account() {
        let traffic = parse_line(
            1,
            r#"{"ts_ms": 1700000000000, "ip": "192.0.2.1", "method": "POST", "path": "/v1/messages"}"#,
        )
        .expect("traffic");
        let mut b = ReportBuilder::new();
        let decide = |b: &mut ReportBuilder, account: String, cluster: &str, size: u32| {
            let d = format!(
                r#"{{"line": 1, "status": 200, "account": "{account}", "cluster": "{cluster}",
                "cluster_size": {size}, "score": 0.0, "action": "allow", "tagged": false}}"#
            );
            b.observe(&traffic, &parse_decision(1, &d).expect("decision"));
        };
        // 50,000 accounts never linked (keyed hashes: uniform hex) …
        for i in 0..50_000u64 {
            let a = format!("{:016x}{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i);
            decide(&mut b, a.clone(), &format!("c_{a}"), 1);
        }
        // … a cluster of three, and an account linked and then alone again.
        for k in ["a1", "a2", "a3"] {
            decide(&mut b, format!("{k:0>32}"), "c_x", 3);
        }
        decide(&mut b, format!("{:0>32}", "b1"), "c_y", 2);
        decide(&mut b, format!("{:0>32}", "b1"), "c_b1", 1);
        assert_eq!(
            b.last_cluster.len(),
            4,
            "only accounts ever linked are held"
        );
        assert_eq!(b.clusters.len(), 2);
        let r = b.finish("a", Summary::default());
        assert_eq!(r.size_counts.get(&3), Some(&1));
        assert_eq!(r.size_counts.get(&2), None);
        let alone = r.size_counts.get(&1).copied().unwrap_or(0) as f64;
        assert!(
            (alone - 50_001.0).abs() / 50_001.0 < 0.03,
            "about 50,001 alone: {alone}"
        );
    }

    #[test]
    fn the_page_stands_alone_and_holds_every_chart() {
        let html = render_html("traffic <1>.jsonl", &[run("a.toml", 4)]);
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>"));
        for forbidden in ["<script", "http://", "https://", "src=", "@import", "url("] {
            let outside_svg_ns = html.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside_svg_ns.contains(forbidden), "{forbidden}");
        }
        assert!(html.contains("traffic &lt;1&gt;.jsonl"));
        for section in [
            "decisions per",
            "clusters by member count",
            "campaign output tokens per",
            "harvest and harm per",
        ] {
            assert!(html.contains(section), "{section}");
        }
        assert_eq!(html.matches("<svg").count(), 4);
        // 300 lines 30 s apart: 150 minutes in 5-minute buckets.
        assert!(
            html.contains("per 2 minutes") || html.contains("per 5 minutes"),
            "bucket width"
        );
    }

    #[test]
    fn compare_shows_both_runs_and_the_difference() {
        let html = render_html("t.jsonl", &[run("a.toml", 4), run("b.toml", 2)]);
        assert_eq!(html.matches("<svg").count(), 8);
        assert!(html.contains("compared with <b>b.toml</b>"));
        assert!(html.contains("<th>difference</th>"));
    }

    #[test]
    fn buckets_cover_the_span_in_at_most_the_limit() {
        let mut r = run("a", 4);
        r.minutes.insert(
            r.minutes.keys().next().copied().unwrap_or(0) + 44 * 1440,
            Minute::default(),
        );
        let b = Buckets::of(std::slice::from_ref(&r));
        assert!(b.count <= MAX_BUCKETS, "{}", b.count);
        assert_eq!(b.minutes_per_bucket, 720);
        let series = b.series(&r);
        let total: u64 = series.iter().map(|m| m.outcomes.iter().sum::<u64>()).sum();
        assert_eq!(total, 300, "every request lands in a bucket");
    }
}
