//! Properties of the generated traffic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::OnceLock;

use super::population::{NEW_ANTHROPIC_MODEL, NEW_OPENAI_MODEL};
use super::*;
use crate::replay::format::{parse_line, TrafficLine};

const HOUR: u64 = 3_600_000;

fn generate_with(scenario: Scenario, params: SimParams) -> (Vec<u8>, Stats) {
    let mut out = Vec::new();
    let stats = generate(scenario, &params, &mut out).expect("generate");
    (out, stats)
}

fn run(scenario: Scenario, hours: f64, scale: f64, seed: u64) -> (Vec<u8>, Stats) {
    generate_with(
        scenario,
        SimParams {
            hours,
            scale,
            seed,
            ..SimParams::default()
        },
    )
}

fn parse_all(bytes: &[u8]) -> Vec<TrafficLine> {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    text.lines()
        .enumerate()
        .map(|(i, l)| parse_line(i as u64 + 1, l).expect("every line parses"))
        .collect()
}

fn key_of(l: &TrafficLine) -> String {
    l.header("authorization")
        .or_else(|| l.header("x-api-key"))
        .expect("every request carries a key")
        .trim_start_matches("Bearer ")
        .to_owned()
}

fn actor(l: &TrafficLine) -> &str {
    &l.label.as_ref().expect("labelled").actor
}

fn cohort(l: &TrafficLine) -> &str {
    l.label
        .as_ref()
        .and_then(|l| l.cohort.as_deref())
        .unwrap_or("")
}

fn kind(l: &TrafficLine) -> &str {
    l.label
        .as_ref()
        .and_then(|l| l.kind.as_deref())
        .unwrap_or("")
}

fn is_campaign(l: &TrafficLine) -> bool {
    l.label.as_ref().is_some_and(|x| x.is_campaign())
}

fn prefix24(ip: &IpAddr) -> Option<[u8; 3]> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Some([o[0], o[1], o[2]])
        }
        IpAddr::V6(_) => None,
    }
}

fn system_prompt(l: &TrafficLine) -> Option<&str> {
    l.body
        .get("system")
        .or_else(|| l.body.get("instructions"))
        .and_then(|s| s.as_str())
        .or_else(|| {
            l.body
                .get("messages")?
                .get(0)
                .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("system"))?
                .get("content")?
                .as_str()
        })
}

/// The last user message's text.
fn prompt(l: &TrafficLine) -> String {
    let b = &l.body;
    if let Some(msgs) = b.get("messages").and_then(|m| m.as_array()) {
        return msgs
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
            .and_then(|m| m.get("content"))
            .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
            .unwrap_or_default();
    }
    b.get("input")
        .or_else(|| b.get("prompt"))
        .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
        .unwrap_or_default()
}

/// The headers without the key and the length: what a client installation
/// (or a relay) sends the same on every request.
fn headers_but_key(l: &TrafficLine) -> Vec<(String, String)> {
    l.headers
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "authorization" | "x-api-key" | "content-length"))
        .cloned()
        .collect()
}

fn model(l: &TrafficLine) -> &str {
    l.body.get("model").and_then(|m| m.as_str()).unwrap_or("")
}

/// The first or last `n` words with digits masked: a template's head or tail
/// as a detector would window it.
fn window(text: &str, n: usize, tail: bool) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let w = if tail {
        &words[words.len().saturating_sub(n)..]
    } else {
        &words[..n.min(words.len())]
    };
    w.join(" ")
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// One day of the mixed scenario at scale 0.01 (2,000 organic accounts, 250
/// campaign accounts in four operators), shared by the property tests.
fn mixed_day() -> &'static [TrafficLine] {
    static LINES: OnceLock<Vec<TrafficLine>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (bytes, stats) = run(Scenario::Mixed, 24.0, 0.01, 42);
        let lines = parse_all(&bytes);
        assert_eq!(lines.len() as u64, stats.lines);
        lines
    })
}

/// Two days of each campaign scenario: 1,800 organic accounts and 300
/// campaign accounts over the three operators (the 6:1 ratio of the
/// evaluation's test set).
struct ScenarioRun {
    lines: Vec<TrafficLine>,
    stats: Stats,
}

fn two_days(scenario: Scenario) -> &'static ScenarioRun {
    static RUNS: [OnceLock<ScenarioRun>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = match scenario {
        Scenario::Naive => 0,
        Scenario::Spoofed => 1,
        Scenario::Hydra => 2,
        _ => 3,
    };
    RUNS[slot].get_or_init(|| {
        let (bytes, stats) = generate_with(
            scenario,
            SimParams {
                hours: 48.0,
                seed: 7,
                organic_accounts: Some(1_800),
                campaign_accounts: Some(300),
                ..SimParams::default()
            },
        );
        let lines = parse_all(&bytes);
        assert_eq!(lines.len() as u64, stats.lines);
        ScenarioRun { lines, stats }
    })
}

const CAMPAIGN_SCENARIOS: [Scenario; 4] = [
    Scenario::Naive,
    Scenario::Spoofed,
    Scenario::Hydra,
    Scenario::Adaptive,
];

fn by_actor(lines: &[TrafficLine]) -> BTreeMap<String, Vec<&TrafficLine>> {
    let mut m: BTreeMap<String, Vec<&TrafficLine>> = BTreeMap::new();
    for l in lines.iter().filter(|l| is_campaign(l)) {
        m.entry(actor(l).to_owned()).or_default().push(l);
    }
    m
}

#[test]
fn same_seed_same_bytes_different_seed_or_perturbation_different_bytes() {
    let params = SimParams {
        hours: 3.0,
        scale: 0.002,
        seed: 9,
        ..SimParams::default()
    };
    let (a, sa) = generate_with(Scenario::Adaptive, params);
    let (b, sb) = generate_with(Scenario::Adaptive, params);
    let (c, _) = generate_with(Scenario::Adaptive, SimParams { seed: 10, ..params });
    let (d, sd) = generate_with(
        Scenario::Adaptive,
        SimParams {
            perturb: 3,
            ..params
        },
    );
    let (e, se) = generate_with(
        Scenario::Adaptive,
        SimParams {
            perturb: 3,
            ..params
        },
    );
    let (f, _) = generate_with(
        Scenario::Adaptive,
        SimParams {
            perturb: 4,
            ..params
        },
    );
    assert!(sa.lines > 100, "{sa:?}");
    assert_eq!(sa, sb);
    assert!(a == b, "same seed, same bytes");
    assert!(a != c, "different seed, different bytes");
    assert_eq!(sd, se);
    assert!(d == e, "same perturbation, same bytes");
    assert!(
        d != a && d != f,
        "perturbations differ from each other and the defaults"
    );
}

/// A perturbation moves the generator's parameters: operator sizes and start
/// times, the release of the new model, every cohort's share.
#[test]
fn a_perturbation_moves_operator_sizes_starts_and_cohorts() {
    let params = SimParams {
        hours: 24.0,
        seed: 2,
        organic_accounts: Some(3_000),
        campaign_accounts: Some(600),
        ..SimParams::default()
    };
    let base = super::generator::population(Scenario::Adaptive, params);
    let moved = super::generator::population(
        Scenario::Adaptive,
        SimParams {
            perturb: 11,
            ..params
        },
    );
    assert_eq!(base.knobs, Knobs::defaults());
    assert_eq!(moved.knobs, Knobs::for_perturb(11));
    let sizes = |p: &population::Population| {
        p.operators
            .iter()
            .map(|o| (o.accounts, o.start_ms))
            .collect::<Vec<_>>()
    };
    assert_ne!(sizes(&base), sizes(&moved));
    assert_eq!(
        moved.operators.iter().map(|o| o.accounts).sum::<usize>(),
        600,
        "the total is the caller's"
    );
    assert_ne!(base.release_ms, moved.release_ms);
    let cohorts = |p: &population::Population| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for a in &p.accounts {
            let label: serde_json::Value = serde_json::from_str(&a.label).expect("label json");
            *m.entry(label["cohort"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        m
    };
    let (cb, cm) = (cohorts(&base), cohorts(&moved));
    let changed = cb.iter().filter(|(k, v)| cm.get(*k) != Some(v)).count();
    assert!(changed * 2 > cb.len(), "{cb:?} vs {cm:?}");
}

#[test]
fn lines_parse_are_sorted_labelled_and_in_range() {
    let lines = mixed_day();
    let start = DEFAULT_START_MS;
    let end = start + 24 * HOUR;
    let mut last = 0;
    for l in lines {
        assert!(l.ts_ms >= last, "sorted by ts_ms");
        assert!((start..end).contains(&l.ts_ms));
        last = l.ts_ms;
        let label = l.label.as_ref().expect("label");
        assert_eq!(label.scenario.as_deref(), Some("mixed"));
        assert!(label.cohort.is_some());
        let len: usize = l
            .header("content-length")
            .expect("content-length")
            .parse()
            .expect("number");
        assert_eq!(len, serde_json::to_string(&l.body).expect("json").len());
        assert!(l.usage.input_tokens > 0);
        assert!(l.body.get("model").is_some());
    }
    let actors: HashSet<&str> = lines.iter().filter(|l| is_campaign(l)).map(actor).collect();
    assert_eq!(
        actors,
        HashSet::from([
            "campaign-naive-1",
            "campaign-spoofed-1",
            "campaign-hydra-1",
            "campaign-adaptive-1"
        ])
    );
}

/// `label.kind` is `campaign`, `organic`, `batch` or `reseller_customer`;
/// campaign actors are `campaign-<kind>-<n>` with their kind as cohort; batch
/// and eval jobs and resellers' customers carry their own kinds.
#[test]
fn labels_carry_kind_actor_and_cohort() {
    let lines = mixed_day();
    let mut kinds: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for l in lines {
        kinds.entry(kind(l)).or_default().insert(cohort(l));
        if is_campaign(l) {
            let parts: Vec<&str> = actor(l).split('-').collect();
            assert_eq!(parts.len(), 3, "{}", actor(l));
            assert_eq!(parts[1], cohort(l));
            assert!(parts[2].parse::<u32>().is_ok());
        }
    }
    assert_eq!(
        kinds.keys().copied().collect::<Vec<_>>(),
        ["batch", "campaign", "organic", "reseller_customer"]
    );
    assert_eq!(kinds["batch"], HashSet::from(["batch", "researcher-eval"]));
    assert_eq!(
        kinds["reseller_customer"],
        HashSet::from(["reseller-go", "reseller-node", "reseller-python"])
    );
    for hard in [
        "power-user",
        "power-script",
        "student",
        "early-adopter",
        "coding-agent",
        "nat",
        "hosted-app",
        "org",
    ] {
        assert!(kinds["organic"].contains(hard), "{hard}");
    }
}

#[test]
fn every_campaign_scenario_runs_three_operators_of_its_kind() {
    for scenario in CAMPAIGN_SCENARIOS {
        let r = two_days(scenario);
        let names: Vec<&str> = r.stats.operators.iter().map(|o| o.actor.as_str()).collect();
        let want: Vec<String> = (1..=3)
            .map(|i| format!("campaign-{}-{i}", scenario.name()))
            .collect();
        assert_eq!(names, want, "{scenario}");
        let sizes: HashSet<u64> = r.stats.operators.iter().map(|o| o.accounts).collect();
        let starts: HashSet<u64> = r.stats.operators.iter().map(|o| o.start_ms).collect();
        assert_eq!(sizes.len(), 3, "distinct sizes");
        assert_eq!(starts.len(), 3, "distinct starts");
        assert_eq!(
            r.stats.operators.iter().map(|o| o.accounts).sum::<u64>(),
            300
        );
        let seen = by_actor(&r.lines);
        for op in &r.stats.operators {
            assert_eq!(
                seen.get(&op.actor).map_or(0, Vec::len) as u64,
                op.lines,
                "{}",
                op.actor
            );
            let first = seen[&op.actor].first().expect("a line").ts_ms;
            assert!(
                first >= op.start_ms && first < op.start_ms + HOUR,
                "{}",
                op.actor
            );
        }
    }
}

/// Operators write differently: template heads (first eight words, digits
/// masked) of one operator are not another's, and their system prompts and
/// parameter vectors differ.
#[test]
fn operators_have_distinct_wording_system_prompts_and_parameters() {
    for scenario in CAMPAIGN_SCENARIOS {
        let r = two_days(scenario);
        let ops = by_actor(&r.lines);
        // Template heads (12 words): an adaptive operator has none to share.
        let heads: Vec<HashSet<String>> = ops
            .values()
            .map(|ls| {
                ls.iter()
                    .map(|l| prompt(l))
                    .filter(|p| p.len() >= 150 && scenario != Scenario::Adaptive)
                    .map(|p| window(&p, 12, false))
                    .collect()
            })
            .collect();
        let systems: Vec<HashSet<&str>> = ops
            .values()
            .map(|ls| ls.iter().filter_map(|l| system_prompt(l)).collect())
            .collect();
        let params: Vec<HashSet<String>> = ops
            .values()
            .map(|ls| {
                ls.iter()
                    .map(|l| {
                        format!(
                            "{} {} {}",
                            model(l),
                            l.body
                                .get("max_tokens")
                                .map_or(String::new(), |v| v.to_string()),
                            l.body
                                .get("temperature")
                                .map_or(String::new(), |v| v.to_string())
                        )
                    })
                    .collect()
            })
            .collect();
        for i in 0..heads.len() {
            for j in i + 1..heads.len() {
                let shared = heads[i].intersection(&heads[j]).count();
                assert!(
                    shared * 20 <= heads[i].len().min(heads[j].len()),
                    "{scenario}: operators {i} and {j} share {shared} heads"
                );
                let stock = |s: &&&str| !super::population::GENERIC_SYSTEMS.contains(*s);
                let shared_systems = systems[i].intersection(&systems[j]).filter(stock).count();
                assert_eq!(shared_systems, 0, "{scenario}: {i} and {j}");
                assert_ne!(params[i], params[j], "{scenario}: {i} and {j}");
            }
        }
    }
}

/// The adaptive operators paraphrase every prompt: nearly every template head
/// and tail window is unique within an operator. A naive operator repeats a
/// handful of heads.
#[test]
fn adaptive_prompts_share_no_template_head_or_tail() {
    let r = two_days(Scenario::Adaptive);
    for (name, ls) in by_actor(&r.lines) {
        let prompts: Vec<String> = ls
            .iter()
            .map(|l| prompt(l))
            .filter(|p| p.len() >= 150)
            .collect();
        assert!(prompts.len() > 1_000, "{name}: {}", prompts.len());
        for tail in [false, true] {
            let distinct: HashSet<String> = prompts.iter().map(|p| window(p, 8, tail)).collect();
            assert!(
                distinct.len() * 100 >= prompts.len() * 95,
                "{name} (tail {tail}): {} distinct of {}",
                distinct.len(),
                prompts.len()
            );
        }
    }
    let naive = two_days(Scenario::Naive);
    for (name, ls) in by_actor(&naive.lines) {
        let heads: HashSet<String> = ls
            .iter()
            .map(|l| prompt(l))
            .filter(|p| p.len() >= 150)
            .map(|p| window(&p, 8, false))
            .collect();
        assert!(heads.len() <= 12, "{name}: {} heads", heads.len());
    }
}

/// Every campaign account sends ~26 requests a day once created (±15% per
/// operator), in every scenario.
#[test]
fn campaign_accounts_send_about_26_a_day() {
    for scenario in CAMPAIGN_SCENARIOS {
        let r = two_days(scenario);
        let end = DEFAULT_START_MS + 48 * HOUR;
        let mut per_account: HashMap<String, (String, u64, u32)> = HashMap::new();
        for l in r.lines.iter().filter(|l| is_campaign(l)) {
            let e = per_account
                .entry(key_of(l))
                .or_insert_with(|| (actor(l).to_owned(), l.ts_ms, 0));
            e.2 += 1;
        }
        let mut by_op: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for (name, first, n) in per_account.values() {
            let days = (end - first) as f64 / (24 * HOUR) as f64;
            if days >= 1.0 {
                let e = by_op.entry(name).or_default();
                e.0 += f64::from(*n);
                e.1 += days;
            }
        }
        assert_eq!(by_op.len(), 3, "{scenario}");
        for (name, (total, days)) in by_op {
            let daily = total / days;
            assert!(
                (daily - CAMPAIGN_DAILY_REQUESTS).abs() < 0.15 * CAMPAIGN_DAILY_REQUESTS,
                "{name}: {daily:.1} per account per day"
            );
        }
    }
}

#[test]
fn naive_operators_use_one_client_on_few_prefixes_and_create_accounts_in_bursts() {
    let r = two_days(Scenario::Naive);
    let mut uas = HashSet::new();
    for (name, ls) in by_actor(&r.lines) {
        let prefixes: HashSet<_> = ls.iter().filter_map(|l| prefix24(&l.ip)).collect();
        let installs: HashSet<Vec<(String, String)>> =
            ls.iter().map(|l| headers_but_key(l)).collect();
        assert!(prefixes.len() <= 3, "{name}: {}", prefixes.len());
        assert_eq!(installs.len(), 1, "{name}: one installation");
        uas.insert(ls[0].header("user-agent").unwrap_or("").to_owned());
        let mut first: HashMap<String, u64> = HashMap::new();
        for l in &ls {
            first.entry(key_of(l)).or_insert(l.ts_ms);
        }
        let mut starts: Vec<u64> = first.values().copied().collect();
        starts.sort_unstable();
        let (mut max, mut lo) = (0, 0);
        for hi in 0..starts.len() {
            while starts[hi] - starts[lo] > 600_000 {
                lo += 1;
            }
            max = max.max(hi - lo + 1);
        }
        let want = (starts.len() / 30).max(3);
        assert!(
            max >= want,
            "{name}: largest 10-minute burst of new accounts: {max}"
        );
    }
    assert!(uas.len() >= 2, "operators differ in client: {uas:?}");
}

#[test]
fn spoofing_operators_rotate_addresses_and_draw_clients_from_real_sdks() {
    let r = two_days(Scenario::Spoofed);
    for (name, ls) in by_actor(&r.lines) {
        let prefixes: HashSet<_> = ls.iter().filter_map(|l| prefix24(&l.ip)).collect();
        let accounts: HashSet<String> = ls.iter().map(|l| key_of(l)).collect();
        assert!(
            prefixes.len() >= accounts.len() * 8 / 10,
            "{name}: {} prefixes for {} accounts",
            prefixes.len(),
            accounts.len()
        );
        let families: HashSet<&str> = ls
            .iter()
            .filter_map(|l| l.header("user-agent"))
            .filter_map(|u| u.split(['/', ' ']).next())
            .collect();
        for f in ["OpenAI", "Anthropic", "curl", "python-requests"] {
            assert!(families.contains(f), "{name}: {f} in {families:?}");
        }
        let uas: HashSet<&str> = ls.iter().filter_map(|l| l.header("user-agent")).collect();
        assert!(uas.len() >= 20, "{name}: {}", uas.len());
    }
}

/// Hydra operators and a share of adaptive accounts come through a reseller:
/// the same addresses, the same relay headers (names, order and values) as
/// the reseller's innocent customers.
#[test]
fn resold_accounts_share_addresses_and_headers_with_innocent_customers() {
    let relay_headers = headers_but_key;
    for scenario in [Scenario::Hydra, Scenario::Adaptive] {
        let r = two_days(scenario);
        let customers: Vec<&TrafficLine> = r
            .lines
            .iter()
            .filter(|l| kind(l) == "reseller_customer")
            .collect();
        let customer_ips: HashSet<IpAddr> = customers.iter().map(|l| l.ip).collect();
        let customer_headers: HashSet<Vec<(String, String)>> =
            customers.iter().map(|l| relay_headers(l)).collect();
        let mut resold_ops = 0;
        for (name, ls) in by_actor(&r.lines) {
            let resold: Vec<&&TrafficLine> =
                ls.iter().filter(|l| customer_ips.contains(&l.ip)).collect();
            let accounts: HashSet<String> = ls.iter().map(|l| key_of(l)).collect();
            let resold_accounts: HashSet<String> = resold.iter().map(|l| key_of(l)).collect();
            if scenario == Scenario::Hydra {
                assert_eq!(
                    resold.len(),
                    ls.len(),
                    "{name}: every request via the reseller"
                );
            } else {
                let share = resold_accounts.len() as f64 / accounts.len() as f64;
                assert!(
                    (0.1..0.45).contains(&share),
                    "{name}: {share:.2} via a reseller"
                );
            }
            for l in &resold {
                assert!(
                    customer_headers.contains(&relay_headers(l)),
                    "{name}: relay headers {:?}",
                    relay_headers(l)
                );
            }
            let ips: HashSet<IpAddr> = resold.iter().map(|l| l.ip).collect();
            resold_ops += usize::from(ips.len() >= 3);
        }
        assert_eq!(resold_ops, 3, "{scenario}");
    }
}

/// Adaptive operators move to the model released mid-run, after it ships;
/// early adopters and people trying it use it too, never before the release.
#[test]
fn the_model_pivot_happens_after_the_release() {
    let r = two_days(Scenario::Adaptive);
    let new = |l: &TrafficLine| matches!(model(l), NEW_OPENAI_MODEL | NEW_ANTHROPIC_MODEL);
    let release = r
        .lines
        .iter()
        .filter(|l| new(l))
        .map(|l| l.ts_ms)
        .min()
        .expect("the new model is used");
    let start = DEFAULT_START_MS;
    assert!(release > start + 12 * HOUR && release < start + 36 * HOUR);
    let organic_new = r.lines.iter().filter(|l| !is_campaign(l) && new(l)).count();
    assert!(
        organic_new >= 50,
        "{organic_new} organic requests on the new model"
    );
    let early: Vec<&TrafficLine> = r
        .lines
        .iter()
        .filter(|l| cohort(l) == "early-adopter")
        .collect();
    assert!(!early.is_empty() && early.iter().all(|l| new(l) && l.ts_ms >= release));
    for (name, ls) in by_actor(&r.lines) {
        let first_new = ls.iter().find(|l| new(l)).expect("pivot").ts_ms;
        assert!(first_new >= release, "{name}");
        let late: Vec<&&TrafficLine> = ls
            .iter()
            .filter(|l| l.ts_ms >= first_new + 6 * HOUR)
            .collect();
        let share = late.iter().filter(|l| new(l)).count() as f64 / late.len() as f64;
        assert!(
            share > 0.6,
            "{name}: {share:.2} on the new model after the pivot"
        );
    }
}

/// Adaptive operators create accounts in staggered waves: their accounts'
/// first requests come in at least three groups separated by quiet gaps.
#[test]
fn adaptive_accounts_are_created_in_waves() {
    let r = two_days(Scenario::Adaptive);
    for (name, ls) in by_actor(&r.lines) {
        let mut first: HashMap<String, u64> = HashMap::new();
        for l in &ls {
            first.entry(key_of(l)).or_insert(l.ts_ms);
        }
        let mut starts: Vec<u64> = first.values().copied().collect();
        starts.sort_unstable();
        let gaps = starts.windows(2).filter(|w| w[1] - w[0] >= HOUR).count();
        assert!(gaps >= 2, "{name}: {} waves", gaps + 1);
        let span = starts.last().copied().unwrap_or(0) - starts[0];
        assert!(span >= 8 * HOUR, "{name}: creation spans {span} ms");
    }
}

#[test]
fn the_coding_agent_prompt_is_shared_by_many_unrelated_organic_accounts() {
    let lines = mixed_day();
    let mut by_prompt: HashMap<&str, HashSet<String>> = HashMap::new();
    for l in lines {
        if let Some(p) = system_prompt(l).filter(|p| p.split_whitespace().count() >= 2_000) {
            assert!(!is_campaign(l));
            by_prompt.entry(p).or_default().insert(actor(l).to_owned());
        }
    }
    assert_eq!(by_prompt.len(), 1, "one long prompt");
    let actors = by_prompt.values().next().map_or(0, HashSet::len);
    assert!(actors >= 100, "{actors} distinct operators share it");
}

#[test]
fn a_corporate_nat_puts_hundreds_of_accounts_in_one_24() {
    let lines = mixed_day();
    let mut by_prefix: HashMap<[u8; 3], HashSet<String>> = HashMap::new();
    for l in lines.iter().filter(|l| cohort(l) == "nat") {
        if let Some(p) = prefix24(&l.ip) {
            by_prefix.entry(p).or_default().insert(key_of(l));
        }
    }
    let biggest = by_prefix.values().map(HashSet::len).max().unwrap_or(0);
    assert!(biggest >= 150, "largest NAT /24 has {biggest} accounts");
    let uas: HashSet<&str> = lines
        .iter()
        .filter(|l| cohort(l) == "nat")
        .filter_map(|l| l.header("user-agent"))
        .collect();
    assert!(uas.len() >= 10, "{}", uas.len());
}

#[test]
fn the_hosted_app_relays_hundreds_of_keys_with_identical_headers() {
    let lines = mixed_day();
    let app: Vec<&TrafficLine> = lines.iter().filter(|l| cohort(l) == "hosted-app").collect();
    let keys: HashSet<String> = app.iter().map(|l| key_of(l)).collect();
    assert!(keys.len() >= 100, "{} app users", keys.len());
    let shapes: HashSet<Vec<(String, String)>> = app
        .iter()
        .map(|l| {
            l.headers
                .iter()
                .filter(|(n, _)| n != "authorization" && n != "content-length")
                .cloned()
                .collect()
        })
        .collect();
    assert_eq!(shapes.len(), 1, "one header set");
    let ips: HashSet<IpAddr> = app.iter().map(|l| l.ip).collect();
    assert!(ips.len() <= 4);
}

/// Reasoning power users, students and researchers look like extraction
/// request by request: single-turn capability tasks, large caps, the
/// reasoning asked for; what differs is their timing and volume.
#[test]
fn reasoning_power_users_send_extraction_like_tasks_at_human_volume() {
    let lines = mixed_day();
    let power: Vec<&TrafficLine> = lines.iter().filter(|l| cohort(l) == "power-user").collect();
    let accounts: HashSet<String> = power.iter().map(|l| key_of(l)).collect();
    assert!(accounts.len() >= 50, "{}", accounts.len());
    let large = power
        .iter()
        .filter(|l| {
            l.body
                .get("max_tokens")
                .and_then(|v| v.as_u64())
                .unwrap_or(0)
                >= 8000
        })
        .count();
    assert!(
        large * 3 >= power.len(),
        "{large} of {} with large caps",
        power.len()
    );
    let single_turn = power
        .iter()
        .filter(|l| {
            l.body
                .get("messages")
                .and_then(|m| m.as_array())
                .is_none_or(|m| m.iter().filter(|x| x["role"] != "system").count() == 1)
        })
        .count();
    assert!(
        single_turn * 10 >= power.len() * 6,
        "{single_turn} single-turn"
    );
    let followed_up = power.len() - single_turn;
    assert!(followed_up > 0, "some follow-ups");
    // A few to a few dozen a day, never a campaign account's steady 26 around
    // the clock: active hours are bunched.
    let mut per: HashMap<String, Vec<u64>> = HashMap::new();
    for l in &power {
        per.entry(key_of(l)).or_default().push(l.ts_ms / HOUR);
    }
    let hours_active: Vec<usize> = per
        .values()
        .map(|h| h.iter().collect::<HashSet<_>>().len())
        .collect();
    let median = {
        let mut h = hours_active.clone();
        h.sort_unstable();
        h[h.len() / 2]
    };
    assert!(median <= 8, "median active hours {median}");
}

/// The first of the body's values at `pointers`, as text (`none` without one).
fn body_value(l: &TrafficLine, pointers: &[&str]) -> String {
    pointers
        .iter()
        .find_map(|p| l.body.pointer(p))
        .map_or("none".to_owned(), |v| v.to_string())
}

#[test]
fn no_single_field_separates_organic_from_campaign_traffic() {
    type Field = fn(&TrafficLine) -> String;
    let fields: [(&str, Field); 12] = [
        ("user-agent", |l| {
            l.header("user-agent").unwrap_or("").to_owned()
        }),
        ("header names", |l| {
            l.headers
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }),
        ("path", |l| l.path.clone()),
        ("model", |l| model(l).to_owned()),
        ("cap", |l| {
            body_value(
                l,
                &[
                    "/max_tokens",
                    "/max_completion_tokens",
                    "/max_output_tokens",
                ],
            )
        }),
        ("temperature", |l| body_value(l, &["/temperature"])),
        ("effort", |l| {
            body_value(l, &["/reasoning_effort", "/reasoning/effort"])
        }),
        ("thinking", |l| body_value(l, &["/thinking/budget_tokens"])),
        ("stream", |l| body_value(l, &["/stream"])),
        ("body keys", |l| {
            l.body
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        }),
        ("messages", |l| {
            l.body
                .get("messages")
                .and_then(|m| m.as_array())
                .map_or(0, Vec::len)
                .min(4)
                .to_string()
        }),
        ("prompt length", |l| {
            let n = prompt(l).len();
            (64 - (n as u64).leading_zeros()).to_string()
        }),
    ];
    let mut checked = 0;
    for scenario in CAMPAIGN_SCENARIOS {
        let r = two_days(scenario);
        let campaign: Vec<&TrafficLine> = r.lines.iter().filter(|l| is_campaign(l)).collect();
        let organic: Vec<&TrafficLine> = r.lines.iter().filter(|l| !is_campaign(l)).collect();
        for (name, field) in fields {
            let seen: HashSet<String> = organic.iter().map(|l| field(l)).collect();
            let alone = campaign
                .iter()
                .filter(|l| !seen.contains(&field(l)))
                .count();
            assert!(
                alone * 10 <= campaign.len(),
                "{scenario}: {name} marks {alone} of {} campaign lines by itself",
                campaign.len()
            );
            checked += 1;
        }
        // And what extraction asks for, organic traffic asks for too.
        let asks = |l: &&&TrafficLine| {
            let p = prompt(l).to_lowercase();
            ["step", "reasoning", "derivation", "work"]
                .iter()
                .any(|w| p.contains(w))
        };
        assert!(organic.iter().filter(asks).count() >= 100, "{scenario}");
        assert!(campaign.iter().any(|l| l
            .body
            .get("max_tokens")
            .and_then(|v| v.as_u64())
            .is_none_or(|c| c <= 1024)));
        assert!(campaign.iter().any(|l| l.usage.output_tokens < 300));
        assert!(organic.iter().any(|l| l.usage.output_tokens >= 1500));
    }
    assert_eq!(checked, 48);
}

#[test]
fn organic_scenario_has_no_campaign_and_shares_the_organic_population() {
    let (organic, so) = run(Scenario::Organic, 2.0, 0.002, 5);
    let (adaptive, sa) = run(Scenario::Adaptive, 2.0, 0.002, 5);
    assert_eq!(so.campaign_lines, 0);
    assert_eq!(so.campaign_accounts, 0);
    assert!(so.operators.is_empty());
    assert_eq!(so.organic_lines, sa.organic_lines);
    let organic_lines = |b: &[u8]| -> Vec<String> {
        std::str::from_utf8(b)
            .expect("utf-8")
            .lines()
            .filter(|l| !l.contains("\"kind\":\"campaign\""))
            .map(|l| l.replace("\"scenario\":\"adaptive\"", "\"scenario\":\"organic\""))
            .collect()
    };
    assert!(
        organic_lines(&organic) == organic_lines(&adaptive),
        "identical organic lines"
    );
}

#[test]
fn bad_parameters_are_rejected() {
    let params = SimParams {
        hours: -1.0,
        ..SimParams::default()
    };
    let e = generate(Scenario::Naive, &params, Vec::new()).expect_err("invalid");
    assert!(e.to_string().contains("hours"), "{e}");
    let params = SimParams {
        campaign_accounts: Some(3),
        ..SimParams::default()
    };
    let e = generate(Scenario::Mixed, &params, Vec::new()).expect_err("invalid");
    assert!(e.to_string().contains("4 operators"), "{e}");
}

#[test]
fn write_errors_are_reported() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let params = SimParams {
        hours: 2.0,
        scale: 0.002,
        ..SimParams::default()
    };
    let e = generate(Scenario::Organic, &params, Broken).expect_err("io");
    assert!(matches!(e, SimulateError::Io(_)), "{e}");
}

#[test]
fn sdk_bodies_keep_their_signature_order() {
    let lines = mixed_day();
    let keys = |l: &TrafficLine| -> Vec<String> {
        l.body
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let py = lines
        .iter()
        .find(|l| {
            cohort(l) == "openai-python"
                && l.path == "/v1/chat/completions"
                && l.body.get("max_tokens").is_some()
        })
        .expect("an OpenAI Python request with a cap");
    let k = keys(py);
    assert_eq!(&k[..2], ["messages", "model"], "{k:?}");
    let mut rest = k[2..].to_vec();
    rest.sort();
    assert_eq!(rest, k[2..], "then alphabetical");
    let anth = lines
        .iter()
        .find(|l| cohort(l) == "anthropic-python")
        .expect("an Anthropic Python request");
    let k = keys(anth);
    let mut sorted = k.clone();
    sorted.sort();
    assert_eq!(k, sorted, "alphabetical");
    let node = lines
        .iter()
        .find(|l| cohort(l) == "hosted-app")
        .expect("a hosted app request");
    assert_eq!(keys(node)[0], "model", "object literal order");
    assert_eq!(node.headers[0].0, "accept", "node header order");
    assert_eq!(py.headers[0].0, "host", "httpx header order");
}

/// The replay scorer reads the labels: an oracle scores 1.0; batch jobs and
/// resellers' customers are reported on their own, so harming only batch jobs
/// shows as batch harm, not organic harm; each operator is its own campaign.
#[test]
fn the_replay_scorer_reads_the_labels() {
    use crate::replay::score::score_streams;

    let lines = mixed_day();
    let traffic: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).expect("serialize") + "\n")
        .collect();
    let decisions = |cluster_of: &dyn Fn(&TrafficLine) -> String,
                     status_of: &dyn Fn(&TrafficLine) -> u16|
     -> String {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::json!({
                    "line": i + 1, "status": status_of(l), "account": key_of(l),
                    "cluster": cluster_of(l), "cluster_size": 1, "score": 0.0,
                    "action": "allow", "tagged": false,
                })
                .to_string()
                    + "\n"
            })
            .collect()
    };
    let oracle = |l: &TrafficLine| {
        if is_campaign(l) {
            actor(l).to_owned()
        } else {
            key_of(l)
        }
    };
    let r =
        score_streams(traffic.as_bytes(), decisions(&oracle, &|_| 200).as_bytes()).expect("score");
    assert_eq!(r.lines, lines.len() as u64);
    assert_eq!(r.clustering.bcubed.precision, 1.0);
    assert_eq!(r.clustering.bcubed.recall, 1.0);
    assert_eq!(r.campaign.output_tokens.harvested_share, Some(1.0));
    let actors: HashSet<&str> = r.campaign.actors.iter().map(|a| a.actor.as_str()).collect();
    assert_eq!(actors.len(), 4);
    assert!(actors.contains("campaign-adaptive-1"));
    let accounts_of = |k: &str| -> u64 {
        lines
            .iter()
            .filter(|l| kind(l) == k)
            .map(key_of)
            .collect::<HashSet<_>>()
            .len() as u64
    };
    let o = &r.organic;
    assert_eq!(o.batch.accounts, accounts_of("batch"));
    assert_eq!(
        o.reseller_customers.accounts,
        accounts_of("reseller_customer")
    );
    assert_eq!(o.accounts, accounts_of("organic"));
    assert!(
        o.batch.accounts >= 5 && o.reseller_customers.accounts >= 50,
        "{} batch, {} reseller customers",
        o.batch.accounts,
        o.reseller_customers.accounts
    );
    assert_eq!(o.accounts_harmed, 0);

    // Deny every batch line: batch harm is total, organic harm untouched.
    let batch_denied = decisions(&oracle, &|l| if kind(l) == "batch" { 429 } else { 200 });
    let r = score_streams(traffic.as_bytes(), batch_denied.as_bytes()).expect("score");
    assert_eq!(r.organic.batch.accounts_harmed, r.organic.batch.accounts);
    assert_eq!(r.organic.accounts_harmed, 0);
    assert_eq!(r.organic.reseller_customers.accounts_harmed, 0);

    // Clustering by /24 merges NAT colleagues and a reseller's customers with
    // the operator behind it and loses precision and recall.
    let by_prefix = decisions(
        &|l| match prefix24(&l.ip) {
            Some(p) => format!("{p:?}"),
            None => key_of(l),
        },
        &|_| 200,
    );
    let r = score_streams(traffic.as_bytes(), by_prefix.as_bytes()).expect("score");
    assert!(r.clustering.pairwise.precision < 0.9, "{r}");
    assert!(r.clustering.pairwise.recall < 0.9, "{r}");
}

#[test]
fn stock_system_prompts_are_shared_by_strangers_and_operators() {
    let lines = mixed_day();
    let mut organic: HashSet<String> = HashSet::new();
    let mut campaign = false;
    for l in lines {
        if system_prompt(l) == Some("You are a helpful assistant.") {
            if is_campaign(l) {
                campaign = true;
            } else {
                organic.insert(key_of(l));
            }
        }
    }
    assert!(campaign);
    assert!(organic.len() >= 50, "{} organic accounts", organic.len());
}

#[test]
fn fractional_hours_end_on_time_and_stay_sorted() {
    let (bytes, stats) = run(Scenario::Mixed, 1.5, 0.004, 3);
    let lines = parse_all(&bytes);
    assert_eq!(lines.len() as u64, stats.lines);
    assert!(
        stats.campaign_lines > 0 && stats.organic_lines > 0,
        "{stats:?}"
    );
    let end = DEFAULT_START_MS + 90 * 60_000;
    assert!(lines.iter().all(|l| l.ts_ms < end));
    assert!(lines.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    assert!(lines.iter().any(|l| l.ts_ms >= end - 30 * 60_000));
}

#[test]
fn account_counts_follow_the_flags() {
    let (_, stats) = generate_with(
        Scenario::Hydra,
        SimParams {
            hours: 1.0,
            organic_accounts: Some(1_234),
            campaign_accounts: Some(77),
            ..SimParams::default()
        },
    );
    assert_eq!(stats.organic_accounts, 1_234);
    assert_eq!(stats.campaign_accounts, 77);
    assert_eq!(stats.operators.len(), 3);
    let (_, stats) = generate_with(
        Scenario::Mixed,
        SimParams {
            hours: 1.0,
            scale: 0.002,
            operators: Some(2),
            ..SimParams::default()
        },
    );
    assert_eq!(stats.operators.len(), 8);
    assert_eq!(stats.operators[4].actor, "campaign-naive-2");
}
