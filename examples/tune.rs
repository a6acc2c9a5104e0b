//! Tuning harness for detection: generates labelled traffic for several
//! scenarios and seeds, runs every line through the same fingerprint, linking
//! and scoring code the detect stage uses (request parsing, `Fingerprint`,
//! `ClusterEngine`, `Scorer`) in timestamp order, and scores the decisions with
//! the replay scorer.
//!
//! ```text
//! cargo run --release --example tune -- \
//!     [--scenarios naive,spoofed,mixed,organic] [--seeds 1,2,3] \
//!     [--hours 24] [--scale 0.02] [--organic-accounts N] [--campaign-accounts N] \
//!     [--perturb 0,7] [--config guard.toml] \
//!     [--set cluster.link_threshold=1.4 ...] [--json] [--explain]
//! ```
//!
//! Runs go in parallel (`TUNE_THREADS`, default 2); the table comes in the
//! order of the arguments.
//!
//! ```text
//! ```
//!
//! Detection only: quotas are not applied, so a request is denied here only
//! when its verdict is `block` (403) and degraded when it is `degrade`. The
//! full stack (`replay --score`) adds the quota stage's 429s on top.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use distill_guard::config::Config;
use distill_guard::detect::Detector;
use distill_guard::extensions::Action;
use distill_guard::identity::Identity;
use distill_guard::replay::format::{parse_line, DecisionLine, TrafficLine};
use distill_guard::replay::score::{Report, Scorer};
use distill_guard::request::RequestInfo;
use distill_guard::simulate::{generate, Scenario, SimParams};
use http::{HeaderMap, HeaderName, HeaderValue};

struct Args {
    scenarios: Vec<Scenario>,
    seeds: Vec<u64>,
    hours: f64,
    scale: f64,
    config: Option<String>,
    sets: Vec<(String, String)>,
    json: bool,
    explain: bool,
    organic: Option<u64>,
    campaign: Option<u64>,
    perturb: Vec<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        scenarios: Scenario::ALL.to_vec(),
        seeds: vec![1, 2, 3],
        hours: 24.0,
        scale: 0.02,
        config: None,
        sets: Vec::new(),
        json: false,
        explain: false,
        organic: None,
        campaign: None,
        perturb: vec![0],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--scenarios" => {
                a.scenarios = value()?
                    .split(',')
                    .map(|s| s.parse::<Scenario>().map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--seeds" => {
                a.seeds = value()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u64>()
                            .map_err(|e| format!("seed {s}: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--hours" => a.hours = value()?.parse().map_err(|e| format!("--hours: {e}"))?,
            "--scale" => a.scale = value()?.parse().map_err(|e| format!("--scale: {e}"))?,
            "--config" => a.config = Some(value()?),
            "--set" => {
                let kv = value()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--set {kv}: expected key=value"))?;
                a.sets.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "--organic-accounts" => {
                a.organic = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--organic-accounts: {e}"))?,
                )
            }
            "--campaign-accounts" => {
                a.campaign = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--campaign-accounts: {e}"))?,
                )
            }
            "--perturb" => {
                a.perturb = value()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u64>()
                            .map_err(|e| format!("perturb {s}: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--json" => a.json = true,
            "--explain" => a.explain = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// The config: a file or `[identity]` alone, with `--set` overrides applied.
fn load_config(args: &Args) -> Result<Config, String> {
    let text = match &args.config {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
        None => "[identity]\nsecret = \"tuning-secret\"\n".to_owned(),
    };
    let mut root: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
    for (key, raw) in &args.sets {
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .map_err(|e| format!("--set {key}: {e}"))?
            .remove("v")
            .ok_or("empty value")?;
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().ok_or("empty key")?;
        let mut table = &mut root;
        for p in parts {
            table = table
                .entry(p)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| format!("--set {key}: {p} is not a table"))?;
        }
        table.insert(last.to_owned(), value);
    }
    let text = toml::to_string(&root).map_err(|e| e.to_string())?;
    Config::from_toml_str(&text).map_err(|e| e.to_string())
}

#[derive(Debug, Default, Clone, Copy)]
struct AccountMax {
    campaign: bool,
    worst: Action,
    first_ms: u64,
    throttle_ms: Option<u64>,
}

/// One (scenario, seed) run.
struct Run {
    report: Report,
    lines: u64,
    detect_ns_per_line: f64,
    campaign_accounts: u64,
    campaign_at_least: [u64; 5],
    organic_accounts: u64,
    organic_at_least: [u64; 5],
    /// Organic accounts put in a cluster with another operator, by cohort.
    false_links: Vec<(String, u64)>,
    /// Milliseconds from the campaign's first request to the first request of
    /// it at throttle or above.
    first_throttle_ms: Option<u64>,
    engine_accounts: u64,
    engine_bytes: u64,
}

fn headers_of(line: &TrafficLine) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(line.headers.len());
    for (n, v) in &line.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
    h
}

fn run_one(
    config: &Config,
    scenario: Scenario,
    seed: u64,
    perturb: u64,
    args: &Args,
) -> Result<Run, String> {
    let explain = args.explain;
    let params = SimParams {
        hours: args.hours,
        scale: args.scale,
        seed,
        perturb,
        organic_accounts: args.organic,
        campaign_accounts: args.campaign,
        ..SimParams::default()
    };
    let mut traffic = Vec::new();
    generate(scenario, &params, &mut traffic).map_err(|e| e.to_string())?;
    let text = String::from_utf8(traffic).map_err(|e| e.to_string())?;
    let detector = Detector::from_config(config).map_err(|e| e.to_string())?;
    let identity = Identity::new(
        config
            .identity_secret()
            .map_err(|e| e.to_string())?
            .as_bytes(),
    );
    let mut scorer = Scorer::new();
    if explain {
        detector.engine().enable_link_log(1_000_000);
    }
    let mut accounts: HashMap<String, AccountMax> = HashMap::new();
    let mut last_cluster: HashMap<String, (String, String, bool, String)> = HashMap::new();
    let mut detect_ns: u128 = 0;
    let mut lines = 0u64;
    let mut campaign_start: Option<u64> = None;
    // Per cohort: requests, summed extraction, benign requests, x>pivot requests.
    let mut ids: HashMap<String, distill_guard::extensions::AccountId> = HashMap::new();
    let mut cohort_x: HashMap<String, (u64, f64, u64, u64)> = HashMap::new();
    let mut first_throttle_ms: Option<u64> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = parse_line(i as u64 + 1, raw).map_err(|e| e.to_string())?;
        let headers = headers_of(&line);
        let ext = http::Extensions::new();
        let Some(account) = identity.account_of(&headers, &ext) else {
            continue;
        };
        let body = if line.body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(serde_json::to_vec(&line.body).map_err(|e| e.to_string())?)
        };
        let start = Instant::now();
        let info = RequestInfo::parse(&line.path, body);
        let d = detector.detect(account, &headers, Some(line.ip), &info, &[], line.ts_ms);
        detect_ns += start.elapsed().as_nanos();
        lines += 1;
        let action = d.verdict.action;
        if explain {
            if let Some(l) = &line.label {
                let key = if l.is_campaign() {
                    "CAMPAIGN".to_owned()
                } else {
                    l.cohort.clone().unwrap_or_default()
                };
                let e = cohort_x.entry(key).or_default();
                let x = d.fingerprint.extraction();
                e.0 += 1;
                e.1 += f64::from(x);
                e.2 += u64::from(d.fingerprint.behaviour.is_some_and(|b| b.benign()));
                e.3 += u64::from(x > 0.45);
            }
        }
        let decision = DecisionLine {
            line: i as u64 + 1,
            status: if action == Action::Block { 403 } else { 200 },
            account: account.to_string(),
            cluster: d.cluster.id.to_string(),
            cluster_size: d.cluster.size,
            score: d.suspicion.value(),
            action: action.as_str().to_owned(),
            tagged: action >= Action::Tag,
            model_group: None,
            limited_in_group: false,
            reasons: d.verdict.reasons.clone(),
        };
        scorer.observe(&line, &decision);
        if explain {
            ids.insert(decision.account.clone(), account);
        }
        let campaign = line.label.as_ref().is_some_and(|l| l.is_campaign());
        if campaign {
            let s = *campaign_start.get_or_insert(line.ts_ms);
            if action >= Action::Throttle && first_throttle_ms.is_none() {
                first_throttle_ms = Some(line.ts_ms - s);
            }
        }
        let acc = accounts
            .entry(decision.account.clone())
            .or_insert(AccountMax {
                campaign,
                first_ms: line.ts_ms,
                ..AccountMax::default()
            });
        acc.worst = acc.worst.max(action);
        if action >= Action::Throttle && acc.throttle_ms.is_none() {
            acc.throttle_ms = Some(line.ts_ms - acc.first_ms);
        }
        if let Some(label) = &line.label {
            let truth = if campaign {
                label.actor.clone()
            } else {
                label
                    .org
                    .clone()
                    .unwrap_or_else(|| format!("self:{}", decision.account))
            };
            last_cluster.insert(
                decision.account.clone(),
                (
                    decision.cluster.clone(),
                    truth,
                    campaign,
                    label.cohort.clone().unwrap_or_default(),
                ),
            );
        }
    }
    // Organic accounts sharing a predicted cluster with another operator.
    let mut by_cluster: HashMap<&str, Vec<&str>> = HashMap::new();
    for (cluster, truth, _, _) in last_cluster.values() {
        by_cluster.entry(cluster).or_default().push(truth);
    }
    let mut false_links: HashMap<String, u64> = HashMap::new();
    if explain {
        let mut harmed: HashMap<String, u64> = HashMap::new();
        for (account, acc) in &accounts {
            if !acc.campaign && acc.worst >= Action::Degrade {
                let cohort = last_cluster.get(account).map_or("?", |c| c.3.as_str());
                let size = by_cluster
                    .get(last_cluster.get(account).map_or("", |c| c.0.as_str()))
                    .map_or(0, Vec::len);
                *harmed
                    .entry(format!("{cohort} (final cluster size {size})"))
                    .or_default() += 1;
            }
        }
        for (k, n) in harmed {
            eprintln!("  harmed organic: {k} x{n}");
        }
        for (account, acc) in &accounts {
            if !acc.campaign && acc.worst >= Action::Degrade {
                let id = ids.get(account).copied();
                if let Some(snap) =
                    id.and_then(|id| detector.engine().inspect_account(&id, 0, u64::MAX / 2))
                {
                    eprintln!(
                        "    harmed account {account}: evidence {:.2} requests {}",
                        snap.stats.evidence, snap.stats.requests
                    );
                }
            }
        }
        let mut ev: HashMap<String, (u64, f64, u64)> = HashMap::new();
        for (account, (_, _, campaign, cohort)) in &last_cluster {
            let key = if *campaign {
                "CAMPAIGN".to_owned()
            } else {
                cohort.clone()
            };
            let id = ids.get(account).copied();
            if let Some(snap) =
                id.and_then(|id| detector.engine().inspect_account(&id, 0, u64::MAX / 2))
            {
                let e = ev.entry(key).or_default();
                e.0 += 1;
                e.1 += f64::from(snap.stats.evidence);
                e.2 += u64::from(snap.stats.evidence >= 4.0);
            }
        }
        let mut keys: Vec<&String> = cohort_x.keys().collect();
        keys.sort();
        for k in keys {
            let (n, sx, nb, nh) = cohort_x[k];
            let (na, se, n1) = ev.get(k).copied().unwrap_or_default();
            eprintln!(
                "  cohort {k}: requests {n} mean x {:.2} benign {:.0}% x>pivot {:.0}% | accounts {na} mean evidence {:.2} evidence>=4 {:.1}%",
                sx / n.max(1) as f64,
                100.0 * nb as f64 / n.max(1) as f64,
                100.0 * nh as f64 / n.max(1) as f64,
                se / na.max(1) as f64,
                100.0 * n1 as f64 / na.max(1) as f64
            );
        }
    }
    for (cluster, truth, campaign, cohort) in last_cluster.values() {
        if *campaign {
            continue;
        }
        if by_cluster[cluster.as_str()].iter().any(|t| t != truth) {
            *false_links.entry(cohort.clone()).or_default() += 1;
        }
    }
    if explain {
        // Wrong links by the cohorts they joined and the evidence they rested on.
        let mut patterns: HashMap<String, u64> = HashMap::new();
        let mut missed: HashMap<String, u64> = HashMap::new();
        let mut right: HashMap<String, u64> = HashMap::new();
        for e in detector.engine().take_link_log() {
            use distill_guard::cluster::LinkOutcome;
            if e.outcome == LinkOutcome::Rejected {
                if let (Some(a), Some(b)) = (
                    last_cluster.get(&e.account.to_string()),
                    last_cluster.get(&e.other.to_string()),
                ) {
                    if a.1 == b.1 && a.2 {
                        let ev: Vec<String> = e
                            .evidence
                            .iter()
                            .map(|(f, k, w)| format!("{}/{k}={:.1}", f.as_str(), w))
                            .collect();
                        *missed.entry(ev.join(" ")).or_default() += 1;
                    }
                }
                continue;
            }
            if e.outcome != LinkOutcome::Joined && e.outcome != LinkOutcome::Merged {
                continue;
            }
            let (Some(a), Some(b)) = (
                last_cluster.get(&e.account.to_string()),
                last_cluster.get(&e.other.to_string()),
            ) else {
                continue;
            };
            if a.1 == b.1 {
                if a.2 {
                    let ev: Vec<String> = e
                        .evidence
                        .iter()
                        .map(|(f, k, w)| format!("{}/{k}={:.1}", f.as_str(), w))
                        .collect();
                    *right.entry(ev.join(" ")).or_default() += 1;
                }
                continue;
            }
            let ev: Vec<String> = e
                .evidence
                .iter()
                .map(|(f, k, w)| format!("{}/{k}={w:.2}", f.as_str()))
                .collect();
            for who in [&e.account, &e.other] {
                if let Some(acc) = accounts.get(&who.to_string()) {
                    if !acc.campaign && acc.worst >= Action::Degrade {
                        eprintln!("    harmed {who} link {:?}: {}", e.outcome, ev.join(" "));
                    }
                }
            }
            let mut cohorts = [a.3.as_str(), b.3.as_str()];
            cohorts.sort();
            *patterns
                .entry(format!(
                    "{}+{} {:?}: {}",
                    cohorts[0],
                    cohorts[1],
                    e.outcome,
                    ev.join(" ")
                ))
                .or_default() += 1;
        }
        let mut patterns: Vec<(String, u64)> = patterns.into_iter().collect();
        patterns.sort_by_key(|x| std::cmp::Reverse(x.1));
        for (p, n) in patterns.iter().take(15) {
            eprintln!("  wrong link x{n}: {p}");
        }
        let mut right: Vec<(String, u64)> = right.into_iter().collect();
        right.sort_by_key(|x| std::cmp::Reverse(x.1));
        for (p, n) in right.iter().take(15) {
            eprintln!("  campaign link x{n}: {p}");
        }
        let mut missed: Vec<(String, u64)> = missed.into_iter().collect();
        missed.sort_by_key(|x| std::cmp::Reverse(x.1));
        for (p, n) in missed.iter().take(15) {
            eprintln!("  missed campaign pair x{n}: {p}");
        }
    }
    let mut false_links: Vec<(String, u64)> = false_links.into_iter().collect();
    false_links.sort();
    let mut run = Run {
        report: scorer.finish(),
        lines,
        detect_ns_per_line: detect_ns as f64 / lines.max(1) as f64,
        campaign_accounts: 0,
        campaign_at_least: [0; 5],
        organic_accounts: 0,
        organic_at_least: [0; 5],
        false_links,
        first_throttle_ms,
        engine_accounts: 0,
        engine_bytes: 0,
    };
    for acc in accounts.values() {
        let (n, at_least) = if acc.campaign {
            (&mut run.campaign_accounts, &mut run.campaign_at_least)
        } else {
            (&mut run.organic_accounts, &mut run.organic_at_least)
        };
        *n += 1;
        for (k, a) in Action::ALL.iter().enumerate() {
            if acc.worst >= *a {
                at_least[k] += 1;
            }
        }
    }
    let stats = detector.engine().stats();
    run.engine_accounts = stats.accounts;
    run.engine_bytes = stats.bytes;
    Ok(run)
}

fn pct(part: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.2}%", 100.0 * part as f64 / total as f64)
    }
}

fn mins(ms: Option<u64>) -> String {
    ms.map_or("never".into(), |ms| format!("{:.1}m", ms as f64 / 60_000.0))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tune: {e}");
            std::process::exit(2);
        }
    };
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tune: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "| scenario | seed | perturb | lines | harvest | last 6 h | worst first enforcement | P merged | B3 R | worst operator R | organic harmed | organic ≥throttle | batch harmed | reseller customers harmed | µs/line |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut jobs = Vec::new();
    for scenario in &args.scenarios {
        for seed in &args.seeds {
            for perturb in &args.perturb {
                jobs.push((*scenario, *seed, *perturb));
            }
        }
    }
    let threads: usize = std::env::var("TUNE_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2)
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<Run, String>>>> =
        std::sync::Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(scenario, seed, perturb)) = jobs.get(i) else {
                    break;
                };
                let r = run_one(&config, scenario, seed, perturb, &args);
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let mut failures = 0;
    for ((scenario, seed, perturb), r) in jobs.iter().zip(results) {
        match r {
            Some(Ok(r)) => {
                let c = &r.report.clustering;
                let camp = &r.report.campaign;
                let org = &r.report.organic;
                let share = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
                let worst_r = camp
                    .actors
                    .iter()
                    .map(|a| a.bcubed_recall)
                    .fold(f64::NAN, f64::min);
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {:.4} | {:.3} | {:.3} | {} ({}) | {} | {} | {} | {:.1} |",
                    scenario,
                    seed,
                    perturb,
                    r.lines,
                    share(camp.output_tokens.harvested_share),
                    share(camp.harvest_last_6h),
                    mins(camp.worst_time_to_first_enforcement_ms),
                    c.bcubed_precision_campaigns_merged,
                    c.bcubed.recall,
                    worst_r,
                    pct(org.accounts_harmed, org.accounts),
                    org.accounts_harmed,
                    pct(r.organic_at_least[2], r.organic_accounts),
                    pct(org.batch.accounts_harmed, org.batch.accounts),
                    pct(org.reseller_customers.accounts_harmed, org.reseller_customers.accounts),
                    r.detect_ns_per_line / 1000.0,
                );
                if args.json {
                    if let Ok(j) = serde_json::to_string(&r.report) {
                        eprintln!("{j}");
                    }
                }
                let _ = (
                    r.engine_accounts,
                    r.engine_bytes,
                    &r.false_links,
                    r.first_throttle_ms,
                );
            }
            Some(Err(e)) => {
                failures += 1;
                eprintln!("tune: {scenario} seed {seed}: {e}");
            }
            None => failures += 1,
        }
    }
    if failures > 0 {
        std::process::exit(1);
    }
}
