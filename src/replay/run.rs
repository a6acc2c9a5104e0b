//! The replay runner: recorded traffic through the same layer stack as `serve`.
//!
//! Each [`TrafficLine`] becomes an HTTP request with the recorded method, path,
//! headers (in order) and body, the recorded address as its peer, and a
//! [`DemoUsage`] telling the mock upstream (the demo model) to answer with prose of
//! exactly the recorded usage, JSON or SSE as the request asked. A [`ManualClock`]
//! is set to the line's `ts_ms` before the request is sent, so every bucket, decay
//! and window sees recorded time. The `label` field is never read here.
//!
//! Parsing runs on a reader thread and the stack on the calling thread, connected by
//! a bounded channel: memory stays bounded however long the input, and both cores
//! work.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use serde::Serialize;
use tower::ServiceExt;

use super::format::{parse_line, DecisionLine, LineError, TrafficLine};
use super::score::{Report, Scorer};
use crate::clock::ManualClock;
use crate::config::{Config, ConfigError};
use crate::extensions::{Action, Decision};
use crate::network::PeerAddr;
use crate::proxy::demo::{DemoModel, DemoUsage};
use crate::proxy::server::{stack, Backend, HttpService};
use crate::Guard;

/// Lines parsed per batch handed from the reader thread to the stack.
const BATCH: usize = 1024;
/// Batches in flight between the threads.
const IN_FLIGHT: usize = 8;
/// Longest input line read; a longer one is reported as malformed and skipped
/// without being held in memory.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// The response header that carries a provenance tag.
pub const TAG_HEADER: &str = "x-distill-guard-tag";

/// How a replay behaves.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Stop at the first malformed line instead of reporting and skipping it.
    pub strict: bool,
    /// Compute the scoring report from the lines' labels.
    pub score: bool,
    /// Show a progress bar on stderr (on a terminal).
    pub progress: bool,
    /// The input's size in bytes, when known (a file): the progress bar then
    /// shows how far it is, with the rate and the time left.
    pub input_bytes: Option<u64>,
    /// A label for the progress bar (e.g. which config runs, with `--compare`).
    pub label: Option<String>,
    /// How many of the most suspicious clusters (of two or more accounts) to
    /// describe at the end with their linking evidence and signals
    /// ([`Summary::cluster_evidence`]); 0 for none.
    pub cluster_evidence: usize,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The config is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A malformed line in strict mode.
    #[error("{0}")]
    Line(LineError),
    /// Reading the input or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The guard stack with a virtual clock and the demo model as the upstream.
#[derive(Debug)]
pub struct Replayer {
    guard: Guard,
    clock: ManualClock,
    service: HttpService,
}

impl Replayer {
    /// Builds the same stack as `serve` from `config`, with a virtual clock.
    /// Replays are offline: `[store]` is replaced by the embedded store, so a
    /// replay never touches (or publishes clusters to) a production Redis.
    pub fn new(mut config: Config) -> Result<Self, ConfigError> {
        config.store = crate::store::StoreConfig::default();
        let clock = ManualClock::new(0);
        let guard = Guard::builder(config)
            .clock(Arc::new(clock.clone()))
            .build()?;
        let backend = Backend::Demo(DemoModel::new().with_words_per_delta(256));
        let service = stack(Some(&guard), backend.into_service());
        Ok(Self {
            guard,
            clock,
            service,
        })
    }

    /// The guard (for inspection).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The virtual clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The stack (for sending the same requests over a socket in tests).
    pub fn service(&self) -> &HttpService {
        &self.service
    }

    /// Sends one line through the stack at its recorded time; returns the response
    /// head and the decision line.
    pub async fn decide(
        &self,
        line_no: u64,
        line: &TrafficLine,
    ) -> Result<(Response<()>, DecisionLine), LineError> {
        let req = request_of(line_no, line)?;
        self.clock.set_ms(line.ts_ms);
        let res = match self.service.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = res.into_parts();
        // Drain the body so streaming reconciliation runs, as a client would.
        let _ = body.collect().await;
        let head = Response::from_parts(parts, ());
        let decision = decision_line(line_no, &head);
        Ok((head, decision))
    }
}

/// Builds the HTTP request a traffic line describes ([`TrafficLine::to_request`]),
/// with the recorded address as its peer and the recorded usage for the mock
/// upstream.
pub fn request_of(line_no: u64, line: &TrafficLine) -> Result<Request<Body>, LineError> {
    let mut req = line.to_request(line_no)?.map(Body::from);
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::new(line.ip, 0)));
    req.extensions_mut().insert(DemoUsage {
        input_tokens: line.usage.input_tokens,
        output_tokens: line.usage.output_tokens,
    });
    Ok(req)
}

fn decision_line(line_no: u64, head: &Response<()>) -> DecisionLine {
    let status = head.status().as_u16();
    let tagged = head.headers().contains_key(TAG_HEADER);
    match head.extensions().get::<Decision>() {
        Some(d) => DecisionLine {
            line: line_no,
            status,
            account: d.account.to_string(),
            cluster: d.cluster.id.to_string(),
            cluster_size: d.cluster.size,
            score: (d.suspicion * 1e4).round() / 1e4,
            action: d.action.as_str().to_owned(),
            tagged,
            model_group: d.model_group.as_deref().map(str::to_owned),
            limited_in_group: d.limited_in_group,
            reasons: d.reasons.iter().take(5).cloned().collect(),
        },
        // Rejected before an account was known (401, 413): no decision.
        None => DecisionLine {
            line: line_no,
            status,
            account: String::new(),
            cluster: String::new(),
            cluster_size: 0,
            score: 0.0,
            action: Action::Allow.as_str().to_owned(),
            tagged,
            model_group: None,
            limited_in_group: false,
            reasons: Vec::new(),
        },
    }
}

/// Per-account or per-cluster tallies for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// The account or cluster.
    pub id: String,
    /// Requests seen.
    pub requests: u64,
    /// Requests denied (status ≥ 400).
    pub denied: u64,
    /// Highest suspicion seen.
    pub max_score: f64,
    /// Largest cluster size seen: the account's own cluster for an account (1
    /// when it was never linked), the cluster's for a cluster.
    pub size: u32,
}

/// The requests of one model group in a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupTally {
    /// Requests charged to the group.
    pub requests: u64,
    /// Of those, refused (status ≥ 400).
    pub denied: u64,
    /// Of those, refused by the group's own limit.
    pub denied_by_group: u64,
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Lines skipped as malformed.
    pub malformed: u64,
    /// Requests per action.
    pub by_action: BTreeMap<String, u64>,
    /// Requests per HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests whose response carried a provenance tag.
    pub tagged: u64,
    /// Requests per model group (`[tiers.NAME.models."PATTERN"]`, by pattern
    /// as configured); absent when no request matched one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_model_group: BTreeMap<String, GroupTally>,
    /// Why no response can be tagged under this config (no watermark key, or
    /// `watermark.tag = "never"`); absent when tagging is on. Decisions may
    /// still be on the `tag` rung: the rung is the scorer's verdict, the tag is
    /// the watermark stage's, and it needs a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tagging_off: Option<String>,
    /// Clusters of two or more accounts, by their largest size.
    pub clusters: u64,
    /// Histogram of those clusters' sizes (`2-9`, `10-99`, …).
    pub cluster_sizes: BTreeMap<String, u64>,
    /// Busiest accounts.
    pub top_accounts: Vec<Tally>,
    /// Busiest multi-account clusters.
    pub top_clusters: Vec<Tally>,
    /// Most suspicious multi-account clusters.
    pub most_suspicious_clusters: Vec<Tally>,
    /// Wall-clock seconds the replay took.
    pub seconds: f64,
    /// Lines per second.
    pub lines_per_second: f64,
    /// The most suspicious clusters at the end of the replay, as the cluster
    /// engine describes them (members, linking evidence, signals), when
    /// [`ReplayOptions::cluster_evidence`] asked for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_evidence: Vec<crate::admin::ClusterView>,
    /// The scoring report, with `--score`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<Report>,
}

/// Accounts whose tallies a replay keeps for the summary's busiest accounts.
/// When twice as many are held, those beyond the busiest [`KEPT_ACCOUNTS`] are
/// dropped (a dropped account seen again starts a new tally), so a replay of
/// millions of accounts holds a few thousand tallies, not one per account. The
/// summary lists 10: accounts busy enough to be among them are never dropped.
const KEPT_ACCOUNTS: usize = 4096;

#[derive(Default)]
struct Aggregates {
    summary: Summary,
    accounts: HashMap<String, Tally>,
    clusters: HashMap<String, Tally>,
}

/// Keeps the `keep` busiest of `tallies` (most requests, then the highest score).
fn keep_busiest(tallies: &mut HashMap<String, Tally>, keep: usize) {
    if tallies.len() <= keep {
        return;
    }
    let mut all: Vec<(String, Tally)> = tallies.drain().collect();
    all.select_nth_unstable_by(keep, |(_, a), (_, b)| {
        b.requests
            .cmp(&a.requests)
            .then(b.max_score.total_cmp(&a.max_score))
    });
    all.truncate(keep);
    tallies.extend(all);
}

impl Aggregates {
    fn observe(&mut self, d: &DecisionLine) {
        let s = &mut self.summary;
        *s.by_action.entry(d.action.clone()).or_default() += 1;
        *s.by_status.entry(d.status).or_default() += 1;
        s.tagged += u64::from(d.tagged);
        if let Some(g) = &d.model_group {
            let t = s.by_model_group.entry(g.clone()).or_default();
            t.requests += 1;
            t.denied += u64::from(d.status >= 400);
            t.denied_by_group += u64::from(d.limited_in_group);
        }
        if d.account.is_empty() {
            return;
        }
        let denied = u64::from(d.status >= 400);
        let a = self
            .accounts
            .entry(d.account.clone())
            .or_insert_with(|| Tally {
                id: d.account.clone(),
                ..Tally::default()
            });
        a.requests += 1;
        a.denied += denied;
        a.max_score = a.max_score.max(d.score);
        a.size = a.size.max(d.cluster_size);
        if self.accounts.len() >= 2 * KEPT_ACCOUNTS {
            keep_busiest(&mut self.accounts, KEPT_ACCOUNTS);
        }
        if d.cluster_size >= 2 {
            let c = self
                .clusters
                .entry(d.cluster.clone())
                .or_insert_with(|| Tally {
                    id: d.cluster.clone(),
                    ..Tally::default()
                });
            c.requests += 1;
            c.denied += denied;
            c.max_score = c.max_score.max(d.score);
            c.size = c.size.max(d.cluster_size);
        }
    }

    fn finish(mut self) -> Summary {
        let mut s = self.summary;
        s.clusters = self.clusters.len() as u64;
        for c in self.clusters.values() {
            let bucket = match c.size {
                0..=9 => "2-9",
                10..=99 => "10-99",
                100..=999 => "100-999",
                1000..=9999 => "1000-9999",
                _ => "10000+",
            };
            *s.cluster_sizes.entry(bucket.to_owned()).or_default() += 1;
        }
        let top = |v: &mut Vec<Tally>, by_score: bool| {
            if by_score {
                v.sort_by(|a, b| {
                    b.max_score
                        .total_cmp(&a.max_score)
                        .then(b.requests.cmp(&a.requests))
                });
            } else {
                v.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.id.cmp(&b.id)));
            }
            v.truncate(10);
        };
        let mut accounts: Vec<Tally> = self.accounts.drain().map(|(_, t)| t).collect();
        top(&mut accounts, false);
        s.top_accounts = accounts;
        let mut clusters: Vec<Tally> = self.clusters.values().cloned().collect();
        top(&mut clusters, false);
        s.top_clusters = clusters;
        let mut suspicious: Vec<Tally> = self.clusters.drain().map(|(_, t)| t).collect();
        top(&mut suspicious, true);
        s.most_suspicious_clusters = suspicious;
        s
    }
}

/// Lines parsed by the reader thread, with the input bytes consumed so far.
type Parsed = (Vec<(u64, Result<TrafficLine, LineError>)>, u64);

/// Why nothing can be tagged under `config`, if so.
fn tagging_off(config: &Config) -> Option<String> {
    let w = &config.watermark;
    if w.keys.is_empty() {
        Some("no [[watermark.keys]] in the config: the watermark stage has no key to sign with, so no response is tagged".into())
    } else if w.effective_tag() == crate::watermark::TagPolicy::Never {
        Some("watermark.tag = \"never\"".into())
    } else {
        None
    }
}

fn progress_bar(opts: &ReplayOptions) -> Option<indicatif::ProgressBar> {
    if !opts.progress {
        return None;
    }
    let label = opts.label.as_deref().unwrap_or("replay");
    let bar = match opts.input_bytes {
        Some(total) => {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {percent:>3}% {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        }
        None => {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{prefix} {spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b
        }
    };
    bar.set_prefix(label.to_owned());
    Some(bar)
}

/// Replays `input` (JSON Lines) under `config`, writing one decision line per input
/// line to `out` in input order. Malformed lines are reported on stderr with their
/// line number and skipped, unless `strict`.
pub fn replay(
    config: Config,
    input: impl BufRead + Send + 'static,
    out: impl Write,
    opts: &ReplayOptions,
) -> Result<Summary, ReplayError> {
    replay_observed(config, input, out, opts, &mut |_, _| {})
}

/// [`replay`], handing every replayed line and its decision to `observe` as well
/// (in input order), e.g. to build a report beside the summary.
pub fn replay_observed(
    config: Config,
    input: impl BufRead + Send + 'static,
    mut out: impl Write,
    opts: &ReplayOptions,
    observe: &mut dyn FnMut(&TrafficLine, &DecisionLine),
) -> Result<Summary, ReplayError> {
    let tags_off = tagging_off(&config);
    let replayer = Replayer::new(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = sync_channel::<std::io::Result<Parsed>>(IN_FLIGHT);
    let reader = std::thread::spawn(move || read_batches(input, tx));
    let bar = progress_bar(opts);
    let started = std::time::Instant::now();
    let mut agg = Aggregates::default();
    let mut scorer = opts.score.then(Scorer::new);
    let mut result = Ok(());
    let mut buf = Vec::with_capacity(256);
    'outer: for batch in rx.iter() {
        let (batch, bytes_read) = match batch {
            Ok(b) => b,
            Err(e) => {
                result = Err(ReplayError::Io(e));
                break;
            }
        };
        for (n, parsed) in batch {
            agg.summary.lines += 1;
            let line = match parsed {
                Ok(l) => l,
                Err(e) => {
                    if opts.strict {
                        result = Err(ReplayError::Line(e));
                        break 'outer;
                    }
                    agg.summary.malformed += 1;
                    eprintln!("skipped {e}");
                    continue;
                }
            };
            let decided = rt.block_on(replayer.decide(n, &line));
            let decision = match decided {
                Ok((_, d)) => d,
                Err(e) => {
                    if opts.strict {
                        result = Err(ReplayError::Line(e));
                        break 'outer;
                    }
                    agg.summary.malformed += 1;
                    eprintln!("skipped {e}");
                    continue;
                }
            };
            agg.observe(&decision);
            if let Some(s) = scorer.as_mut() {
                s.observe(&line, &decision);
            }
            observe(&line, &decision);
            buf.clear();
            if serde_json::to_writer(&mut buf, &decision).is_ok() {
                buf.push(b'\n');
                if let Err(e) = out.write_all(&buf) {
                    result = Err(ReplayError::Io(e));
                    break 'outer;
                }
            }
        }
        if let Some(b) = &bar {
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let lines = agg.summary.lines;
            b.set_message(format!("{lines} lines, {:.0} lines/s", lines as f64 / secs));
            if opts.input_bytes.is_some() {
                b.set_position(bytes_read);
            } else {
                b.tick();
            }
        }
    }
    // Dropping the receiver stops the reader if we left early.
    drop(rx);
    let _ = reader.join();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result?;
    out.flush()?;
    let mut summary = agg.finish();
    summary.tagging_off = tags_off;
    if opts.cluster_evidence > 0 {
        use crate::admin::ClusterInspector;
        let inspector = crate::admin::DetectorInspector::for_guard(replayer.guard());
        summary.cluster_evidence = inspector
            .top_clusters(opts.cluster_evidence * 2)
            .most_suspicious
            .into_iter()
            .filter(|c| c.size >= 2)
            .take(opts.cluster_evidence)
            .collect();
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.lines_per_second = summary.lines as f64 / summary.seconds.max(1e-9);
    summary.score = scorer.map(Scorer::finish);
    Ok(summary)
}

fn read_batches(mut input: impl BufRead, tx: std::sync::mpsc::SyncSender<std::io::Result<Parsed>>) {
    let mut n = 0u64;
    let mut bytes = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.clear();
        // At most MAX_LINE_BYTES + 1 bytes of one line are kept.
        let read = (&mut input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf);
        match read {
            Ok(0) => break,
            Ok(read) => {
                n += 1;
                bytes += read as u64;
                let parsed = if buf.len() > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
                    // Skip the rest of the over-long line.
                    if let Err(e) = skip_line(&mut input) {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Err(LineError {
                        line: n,
                        message: format!("longer than {MAX_LINE_BYTES} bytes"),
                    })
                } else {
                    match std::str::from_utf8(&buf) {
                        Ok(text) if text.trim().is_empty() => continue,
                        Ok(text) => parse_line(n, text.trim()),
                        Err(e) => Err(LineError {
                            line: n,
                            message: format!("not UTF-8: {e}"),
                        }),
                    }
                };
                batch.push((n, parsed));
                if batch.len() == BATCH && tx.send(Ok((std::mem::take(&mut batch), bytes))).is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok((batch, bytes)));
    }
}

/// Consumes input up to and including the next newline, keeping nothing.
fn skip_line(input: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let (done, used) = {
            let chunk = input.fill_buf()?;
            if chunk.is_empty() {
                return Ok(());
            }
            match memchr::memchr(b'\n', chunk) {
                Some(i) => (true, i + 1),
                None => (false, chunk.len()),
            }
        };
        input.consume(used);
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(account: String, score: f64) -> DecisionLine {
        DecisionLine {
            line: 1,
            status: 200,
            account,
            cluster: "c".into(),
            cluster_size: 1,
            score,
            action: "allow".into(),
            tagged: false,
            model_group: None,
            limited_in_group: false,
            reasons: Vec::new(),
        }
    }

    #[test]
    fn busiest_accounts_survive_any_churn_of_fresh_ones() {
        let mut agg = Aggregates::default();
        for i in 0..100_000u32 {
            // Ten busy accounts, one request every hundred lines each…
            if i % 10 == 0 {
                agg.observe(&line(format!("busy-{}", (i / 10) % 10), 0.5));
            }
            // … among a fresh account on every line.
            agg.observe(&line(format!("fresh-{i}"), 0.0));
            assert!(agg.accounts.len() < 2 * KEPT_ACCOUNTS, "bounded");
        }
        let s = agg.finish();
        assert_eq!(s.top_accounts.len(), 10);
        for t in &s.top_accounts {
            assert!(t.id.starts_with("busy-"), "{}", t.id);
            assert_eq!(t.requests, 1_000, "{} counted exactly", t.id);
        }
    }
}
