//! Properties of the generated traffic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::OnceLock;

use super::*;
use crate::replay::format::{parse_line, TrafficLine};

fn run(scenario: Scenario, hours: f64, scale: f64, seed: u64) -> (Vec<u8>, Stats) {
    let params = SimParams {
        hours,
        scale,
        seed,
        ..SimParams::default()
    };
    let mut out = Vec::new();
    let stats = generate(scenario, &params, &mut out).expect("generate");
    (out, stats)
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
    l.body.get("system").and_then(|s| s.as_str()).or_else(|| {
        l.body
            .get("messages")?
            .get(0)
            .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("system"))?
            .get("content")?
            .as_str()
    })
}

/// One day of the mixed scenario at scale 0.01 (250 + 250 + 240 campaign
/// accounts, 2,000 organic), shared by the property tests.
fn mixed_day() -> &'static [TrafficLine] {
    static LINES: OnceLock<Vec<TrafficLine>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (bytes, stats) = run(Scenario::Mixed, 24.0, 0.01, 42);
        let lines = parse_all(&bytes);
        assert_eq!(lines.len() as u64, stats.lines);
        lines
    })
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let (a, sa) = run(Scenario::Spoofed, 3.0, 0.002, 9);
    let (b, sb) = run(Scenario::Spoofed, 3.0, 0.002, 9);
    let (c, _) = run(Scenario::Spoofed, 3.0, 0.002, 10);
    assert!(sa.lines > 100, "{sa:?}");
    assert_eq!(sa, sb);
    assert!(a == b, "same seed, same bytes");
    assert!(a != c, "different seed, different bytes");
}

#[test]
fn lines_parse_are_sorted_labelled_and_in_range() {
    let lines = mixed_day();
    let start = DEFAULT_START_MS;
    let end = start + 24 * 3_600_000;
    let mut last = 0;
    for l in lines {
        assert!(l.ts_ms >= last, "sorted by ts_ms");
        assert!((start..end).contains(&l.ts_ms));
        last = l.ts_ms;
        let label = l.label.as_ref().expect("label");
        assert_eq!(label.scenario.as_deref(), Some("mixed"));
        assert!(label.kind.is_some() && label.cohort.is_some());
        assert_eq!(label.is_campaign(), label.actor.starts_with("campaign-"));
        let len: usize = l
            .header("content-length")
            .expect("content-length")
            .parse()
            .expect("number");
        assert_eq!(len, serde_json::to_string(&l.body).expect("json").len());
        assert!(l.usage.input_tokens > 0);
        assert!(l.body.get("model").is_some());
    }
    let actors: HashSet<&str> = lines
        .iter()
        .map(actor)
        .filter(|a| a.starts_with("campaign"))
        .collect();
    assert_eq!(
        actors,
        HashSet::from(["campaign-naive", "campaign-spoofed", "campaign-hydra"])
    );
}

#[test]
fn campaign_accounts_send_about_26_a_day() {
    // Every campaign account is active 14 h into the run; count from there.
    let lines = mixed_day();
    let from = DEFAULT_START_MS + 14 * 3_600_000;
    let days = 10.0 / 24.0;
    let mut per_account: HashMap<String, (String, u32)> = HashMap::new();
    for l in lines
        .iter()
        .filter(|l| l.label.as_ref().is_some_and(|x| x.is_campaign()))
    {
        let e = per_account
            .entry(key_of(l))
            .or_insert_with(|| (actor(l).to_owned(), 0));
        if l.ts_ms >= from {
            e.1 += 1;
        }
    }
    let mut by_actor: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (name, n) in per_account.values() {
        let e = by_actor.entry(name).or_default();
        e.0 += f64::from(*n);
        e.1 += 1.0;
    }
    for (name, (total, accounts)) in by_actor {
        let daily = total / accounts / days;
        assert!(
            (daily - CAMPAIGN_DAILY_REQUESTS).abs() < 0.15 * CAMPAIGN_DAILY_REQUESTS,
            "{name}: {daily:.1} per account per day"
        );
        assert!(accounts >= 200.0, "{name}: {accounts} accounts");
    }
}

#[test]
fn the_coding_agent_prompt_is_shared_by_many_unrelated_organic_accounts() {
    let lines = mixed_day();
    let mut by_prompt: HashMap<&str, HashSet<String>> = HashMap::new();
    for l in lines {
        if let Some(p) = system_prompt(l).filter(|p| p.split_whitespace().count() >= 2_000) {
            assert!(!l.label.as_ref().is_some_and(|x| x.is_campaign()));
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
    // And they run many different clients.
    let uas: HashSet<&str> = lines
        .iter()
        .filter(|l| cohort(l) == "nat")
        .filter_map(|l| l.header("user-agent"))
        .collect();
    assert!(uas.len() >= 10, "{}", uas.len());
}

#[test]
fn hydra_gateway_ips_carry_campaign_and_innocent_customers_alike() {
    let lines = mixed_day();
    let ips = |c: &str| -> HashSet<IpAddr> {
        lines
            .iter()
            .filter(|l| cohort(l) == c)
            .map(|l| l.ip)
            .collect()
    };
    let campaign = ips("hydra");
    let customers = ips("hydra-customer");
    let shared = campaign.intersection(&customers).count();
    assert!(shared >= 10, "{shared} shared gateway IPs");
    let names = |l: &TrafficLine| l.headers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let campaign_names: HashSet<Vec<String>> = lines
        .iter()
        .filter(|l| cohort(l) == "hydra")
        .map(names)
        .collect();
    let customer_names: HashSet<Vec<String>> = lines
        .iter()
        .filter(|l| cohort(l) == "hydra-customer")
        .map(names)
        .collect();
    assert_eq!(campaign_names, customer_names, "identical relay headers");
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

#[test]
fn no_single_field_separates_the_classes() {
    let lines = mixed_day();
    let cap = |l: &TrafficLine| {
        l.body
            .get("max_tokens")
            .or_else(|| l.body.get("max_completion_tokens"))
            .or_else(|| l.body.get("max_output_tokens"))
            .and_then(|v| v.as_u64())
    };
    let campaign = |l: &&TrafficLine| l.label.as_ref().is_some_and(|x| x.is_campaign());
    let organic = |l: &&TrafficLine| !campaign(l);
    let text = |l: &TrafficLine| l.body.to_string();
    assert!(lines
        .iter()
        .filter(organic)
        .any(|l| cap(l).is_some_and(|c| c >= 8192)));
    assert!(lines
        .iter()
        .filter(organic)
        .any(|l| l.usage.output_tokens >= 1500));
    assert!(lines
        .iter()
        .filter(organic)
        .any(|l| text(l).contains("step by step")));
    assert!(lines
        .iter()
        .filter(campaign)
        .any(|l| cap(l).is_none_or(|c| c <= 1024)));
    assert!(lines
        .iter()
        .filter(campaign)
        .any(|l| l.usage.output_tokens < 300));
    // Every stock client appears on both sides.
    let ua_family = |l: &TrafficLine| {
        l.header("user-agent")
            .and_then(|u| u.split(['/', ' ']).next())
            .unwrap_or("")
            .to_owned()
    };
    let organic_uas: HashSet<String> = lines.iter().filter(organic).map(ua_family).collect();
    let campaign_uas: HashSet<String> = lines.iter().filter(campaign).map(ua_family).collect();
    for family in [
        "OpenAI",
        "Anthropic",
        "curl",
        "python-requests",
        "Go-http-client",
    ] {
        assert!(organic_uas.contains(family), "organic {family}");
        assert!(campaign_uas.contains(family), "campaign {family}");
    }
}

#[test]
fn naive_is_one_client_on_few_prefixes_spoofed_churns() {
    let lines = mixed_day();
    fn of<'a>(lines: &'a [TrafficLine], c: &'a str) -> impl Iterator<Item = &'a TrafficLine> + 'a {
        lines.iter().filter(move |l| cohort(l) == c)
    }
    let naive_prefixes: HashSet<_> = of(lines, "naive").filter_map(|l| prefix24(&l.ip)).collect();
    let naive_uas: HashSet<_> = of(lines, "naive")
        .filter_map(|l| l.header("user-agent"))
        .collect();
    assert!(naive_prefixes.len() <= 3, "{}", naive_prefixes.len());
    assert_eq!(naive_uas.len(), 1);
    let spoofed_prefixes: HashSet<_> = of(lines, "spoofed")
        .filter_map(|l| prefix24(&l.ip))
        .collect();
    let spoofed_uas: HashSet<_> = of(lines, "spoofed")
        .filter_map(|l| l.header("user-agent"))
        .collect();
    let spoofed_lines = of(lines, "spoofed").count();
    assert!(
        spoofed_prefixes.len() * 10 >= spoofed_lines * 8,
        "residential churn"
    );
    assert!(spoofed_uas.len() >= 20, "{}", spoofed_uas.len());
    // Naive accounts come online in bursts: many first requests within minutes.
    let mut first: HashMap<String, u64> = HashMap::new();
    for l in of(lines, "naive") {
        first.entry(key_of(l)).or_insert(l.ts_ms);
    }
    let mut starts: Vec<u64> = first.values().copied().collect();
    starts.sort_unstable();
    let mut max = 0;
    let mut lo = 0;
    for hi in 0..starts.len() {
        while starts[hi] - starts[lo] > 600_000 {
            lo += 1;
        }
        max = max.max(hi - lo + 1);
    }
    assert!(max >= 10, "largest 10-minute burst of new accounts: {max}");
}

#[test]
fn organic_scenario_has_no_campaign_and_shares_the_organic_population() {
    let (organic, so) = run(Scenario::Organic, 2.0, 0.002, 5);
    let (naive, sn) = run(Scenario::Naive, 2.0, 0.002, 5);
    assert_eq!(so.campaign_lines, 0);
    assert_eq!(so.campaign_accounts, 0);
    assert_eq!(so.organic_lines, sn.organic_lines);
    let keys = |b: &[u8]| -> Vec<(u64, String)> {
        parse_all(b)
            .into_iter()
            .filter(|l| !l.label.as_ref().is_some_and(|x| x.is_campaign()))
            .map(|l| (l.ts_ms, key_of(&l)))
            .collect()
    };
    assert_eq!(keys(&organic), keys(&naive));
}

#[test]
fn bad_parameters_are_rejected() {
    let params = SimParams {
        hours: -1.0,
        ..SimParams::default()
    };
    let e = generate(Scenario::Naive, &params, Vec::new()).expect_err("invalid");
    assert!(e.to_string().contains("hours"), "{e}");
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

/// Simulated traffic scored against hand-built decisions: a perfect oracle
/// scores 1.0 everywhere; clustering by /24 alone merges NAT colleagues and the
/// hydra gateway's customers with the campaign and loses precision.
#[test]
fn simulated_traffic_scores_end_to_end() {
    use crate::replay::score::score_streams;

    let lines = mixed_day();
    let traffic: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).expect("serialize") + "\n")
        .collect();
    let decisions = |cluster_of: &dyn Fn(&TrafficLine) -> String| -> String {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::json!({
                    "line": i + 1, "status": 200, "account": key_of(l),
                    "cluster": cluster_of(l), "cluster_size": 1, "score": 0.0,
                    "action": "allow", "tagged": false,
                })
                .to_string()
                    + "\n"
            })
            .collect()
    };
    let oracle = decisions(&|l| {
        let label = l.label.as_ref().expect("label");
        if label.is_campaign() {
            label.actor.clone()
        } else {
            label.org.clone().unwrap_or_else(|| key_of(l))
        }
    });
    let r = score_streams(traffic.as_bytes(), oracle.as_bytes()).expect("score");
    assert_eq!(r.lines, lines.len() as u64);
    assert_eq!(r.clustering.pairwise.precision, 1.0);
    assert_eq!(r.clustering.pairwise.recall, 1.0);
    assert_eq!(r.clustering.bcubed.precision, 1.0);
    assert_eq!(r.clustering.bcubed.recall, 1.0);
    assert_eq!(r.campaign.output_tokens.harvested_share, Some(1.0));
    assert_eq!(r.campaign.actors.len(), 3);
    assert_eq!(r.organic.accounts_harmed, 0);

    // The last address's /24 as the cluster (the spoofed campaign's churn puts
    // each of its accounts somewhere random).
    let by_prefix = decisions(&|l| match prefix24(&l.ip) {
        Some(p) => format!("{p:?}"),
        None => key_of(l),
    });
    let r = score_streams(traffic.as_bytes(), by_prefix.as_bytes()).expect("score");
    assert!(r.clustering.pairwise.precision < 0.9, "{r}");
    assert!(r.clustering.pairwise.recall < 0.9, "{r}");
}

#[test]
fn stock_system_prompts_are_shared_by_strangers_and_the_spoofed_campaign() {
    let lines = mixed_day();
    let mut organic: HashSet<String> = HashSet::new();
    let mut campaign = false;
    for l in lines {
        if system_prompt(l) == Some("You are a helpful assistant.") {
            if l.label.as_ref().is_some_and(|x| x.is_campaign()) {
                campaign = true;
            } else {
                organic.insert(actor(l).to_owned());
            }
        }
    }
    assert!(campaign);
    assert!(organic.len() >= 50, "{} organic operators", organic.len());
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
    // Something lands in the last half hour.
    assert!(lines.iter().any(|l| l.ts_ms >= end - 30 * 60_000));
}
