use std::collections::{HashMap, HashSet};

use super::*;
use crate::config::BehaviourEvidence;
use crate::extensions::{AccountId, ClusterId};
use crate::features::{Family, Feature, FeatureKind};

const T0: u64 = 1_714_000_000_000;
const DAY: u64 = 86_400_000;

fn acct(group: u8, i: u32) -> AccountId {
    let mut b = [0u8; 16];
    b[0] = group;
    b[1..5].copy_from_slice(&i.to_le_bytes());
    b[15] = 0x5a;
    AccountId(b)
}

/// A feature of the kind named `name` (short names stand for the kind of
/// `family` they abbreviate); its value mixes in the name's length.
fn feat(family: Family, name: &'static str, value: u64) -> Feature {
    let kind = match name {
        "head_band" => FeatureKind::HeadLshBand,
        "tail_band" => FeatureKind::TailLshBand,
        "tools" => FeatureKind::ToolSchema,
        _ => FeatureKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or_else(|| panic!("no feature kind {name}")),
    };
    assert_eq!(kind.family(), family, "{name}");
    Feature {
        kind,
        value: value.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (name.len() as u64),
    }
}

/// A deterministic generator for test traffic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One request: time, account, features.
type Req = (u64, AccountId, Vec<Feature>);

/// Organic users with their own networks, prompts and mostly the stock client.
fn organic(rng: &mut Rng, users: u32, per_day: u64, days: u64) -> Vec<Req> {
    let mut out = Vec::new();
    for u in 0..users {
        let id = acct(1, u);
        let n = per_day * days / 2 + rng.below(per_day * days);
        for _ in 0..n {
            let t = T0 + rng.below(days * DAY);
            let unique = rng.next();
            out.push((
                t,
                id,
                vec![
                    feat(Family::Client, "user_agent", 1 + rng.below(3)),
                    feat(Family::Client, "header_order", 10 + rng.below(3)),
                    feat(Family::Network, "ip_prefix", 1_000_000 + u as u64),
                    feat(Family::Shape, "params", 20 + rng.below(4)),
                    feat(Family::Template, "head_band", unique),
                    feat(Family::Template, "tail_band", unique ^ 1),
                ],
            ));
        }
    }
    out
}

/// A campaign: one client, a few templates and prefixes, one parameter vector,
/// `per_day` requests per account spread over the day.
fn campaign(
    rng: &mut Rng,
    group: u8,
    accounts: u32,
    per_day: u64,
    days: u64,
    salt: u64,
) -> Vec<Req> {
    let mut out = Vec::new();
    for a in 0..accounts {
        let id = acct(group, a);
        let start = T0 + rng.below(DAY / 4);
        for k in 0..per_day * days {
            let t = start + k * (DAY / per_day) + rng.below(DAY / per_day / 4);
            let tpl = salt * 100 + rng.below(3);
            out.push((
                t,
                id,
                vec![
                    feat(Family::Client, "user_agent", salt * 1000 + 7),
                    feat(Family::Client, "header_order", salt * 1000 + 8),
                    feat(
                        Family::Network,
                        "ip_prefix",
                        salt * 1000 + 50 + rng.below(4),
                    ),
                    feat(Family::Shape, "params", salt * 1000 + 9),
                    // A template shares several LSH bands of its head and
                    // tail windows; the payload adds unique ones.
                    feat(Family::Template, "head_band", tpl),
                    feat(Family::Template, "head_band", tpl + 20),
                    feat(Family::Template, "tail_band", tpl + 50),
                    feat(Family::Template, "tail_band", tpl + 70),
                    feat(Family::Template, "head_band", rng.next()),
                ],
            ));
        }
    }
    out
}

fn run(engine: &ClusterEngine, mut reqs: Vec<Req>) -> HashMap<AccountId, ClusterId> {
    reqs.sort_by_key(|r| r.0);
    for (t, id, features) in &reqs {
        engine.observe(&Observation {
            account: *id,
            now_ms: *t,
            features,
            signals: [0.0; SIGNALS],
        });
    }
    let ids: HashSet<AccountId> = reqs.iter().map(|r| r.1).collect();
    ids.into_iter()
        .filter_map(|a| engine.cluster_of(&a).map(|c| (a, c.id)))
        .collect()
}

fn cluster_sizes(map: &HashMap<AccountId, ClusterId>, group: u8) -> Vec<usize> {
    let mut sizes: HashMap<ClusterId, usize> = HashMap::new();
    for (a, c) in map {
        if a.0[0] == group {
            *sizes.entry(*c).or_default() += 1;
        }
    }
    let mut v: Vec<usize> = sizes.into_values().collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

fn linked_organic(map: &HashMap<AccountId, ClusterId>) -> usize {
    map.iter()
        .filter(|(a, c)| a.0[0] == 1 && c.0 != a.0)
        .count()
}

#[test]
fn slow_campaign_is_linked_and_organic_users_are_not() {
    let mut rng = Rng(7);
    let engine = ClusterEngine::new(ClusterConfig::default());
    let mut reqs = organic(&mut rng, 300, 20, 2);
    reqs.extend(campaign(&mut rng, 2, 60, 26, 2, 1));
    let map = run(&engine, reqs);
    let sizes = cluster_sizes(&map, 2);
    assert_eq!(sizes, vec![60], "campaign split into {sizes:?}");
    assert_eq!(linked_organic(&map), 0);
    let campaign_cluster = map[&acct(2, 0)];
    assert!(map
        .iter()
        .all(|(a, c)| a.0[0] != 1 || *c != campaign_cluster));
}

#[test]
fn popular_agent_prompt_and_stock_sdk_link_nobody() {
    // Hundreds of unrelated users of one agent: same system prompt, same client,
    // same request shape; their own networks and tasks.
    let mut rng = Rng(11);
    let engine = ClusterEngine::new(ClusterConfig::default());
    let mut reqs = Vec::new();
    for u in 0..400u32 {
        for _ in 0..15 {
            let t = T0 + rng.below(DAY);
            let unique = rng.next();
            reqs.push((
                t,
                acct(1, u),
                vec![
                    feat(Family::Client, "user_agent", 1),
                    feat(Family::Client, "header_order", 2),
                    feat(Family::Shape, "params", 3),
                    feat(Family::Shape, "tools", 4),
                    feat(Family::Template, "system_prompt", 5),
                    feat(Family::Network, "ip_prefix", 10_000 + u as u64),
                    feat(Family::Template, "head_band", unique),
                ],
            ));
        }
    }
    let map = run(&engine, reqs);
    assert_eq!(linked_organic(&map), 0);
    assert_eq!(engine.stats().clusters, 0);
}

#[test]
fn a_large_nat_and_a_hosted_relay_link_nobody() {
    let mut rng = Rng(13);
    let engine = ClusterEngine::new(ClusterConfig::default());
    let mut reqs = Vec::new();
    for u in 0..500u32 {
        let relay = u < 250;
        for _ in 0..10 {
            let t = T0 + rng.below(DAY);
            let unique = rng.next();
            let mut f = vec![
                feat(Family::Network, "ip_prefix", if relay { 77 } else { 88 }),
                feat(Family::Template, "head_band", unique),
                feat(Family::Template, "tail_band", unique ^ 3),
            ];
            if relay {
                // The hosted app: identical headers, shape and system prompt.
                f.push(feat(Family::Client, "header_order", 500));
                f.push(feat(Family::Shape, "params", 501));
                f.push(feat(Family::Template, "system_prompt", 502));
            } else {
                f.push(feat(Family::Client, "user_agent", 1 + rng.below(5)));
                f.push(feat(Family::Shape, "params", 20 + rng.below(5)));
            }
            reqs.push((t, acct(1, u), f));
        }
    }
    let map = run(&engine, reqs);
    assert_eq!(linked_organic(&map), 0, "{:?}", engine.stats());
}

#[test]
fn two_large_clusters_joined_by_one_weak_edge_stay_apart() {
    let mut rng = Rng(17);
    let engine = ClusterEngine::new(ClusterConfig::default());
    let mut reqs = organic(&mut rng, 100, 10, 1);
    reqs.extend(campaign(&mut rng, 2, 40, 26, 1, 1));
    reqs.extend(campaign(&mut rng, 3, 40, 26, 1, 2));
    let last = reqs.iter().map(|r| r.0).max().unwrap_or(T0);
    let map = run(&engine, reqs);
    let guarded_before = engine.stats().guarded;
    assert_eq!(cluster_sizes(&map, 2), vec![40]);
    assert_eq!(cluster_sizes(&map, 3), vec![40]);
    // One account of the first campaign sends, once, what the second sends.
    let bridge_t = last + 1_000;
    let other = campaign(&mut Rng(99), 3, 1, 1, 1, 2);
    engine.observe(&Observation {
        account: acct(2, 0),
        now_ms: bridge_t,
        features: &other[0].2,
        signals: [0.0; SIGNALS],
    });
    let a = engine.cluster_of(&acct(2, 1)).expect("tracked");
    let b = engine.cluster_of(&acct(3, 1)).expect("tracked");
    assert_ne!(a.id, b.id, "one weak edge merged two clusters");
    assert!(
        engine.stats().guarded > guarded_before,
        "the edge was not strong enough to test the guard"
    );
    // Many distinct bridging accounts on both sides do merge them: the guard
    // is not a wall.
    let mine = campaign(&mut Rng(98), 2, 1, 1, 1, 1);
    for i in 0..10 {
        engine.observe(&Observation {
            account: acct(2, i),
            now_ms: bridge_t + 1000 + u64::from(i),
            features: &other[0].2,
            signals: [0.0; SIGNALS],
        });
        engine.observe(&Observation {
            account: acct(3, i),
            now_ms: bridge_t + 1000 + u64::from(i),
            features: &mine[0].2,
            signals: [0.0; SIGNALS],
        });
    }
    let a = engine.cluster_of(&acct(2, 1)).expect("tracked");
    let b = engine.cluster_of(&acct(3, 1)).expect("tracked");
    assert_eq!(a.id, b.id);
    assert_eq!(a.size, 80);
}

#[test]
fn memory_stays_bounded_as_accounts_churn() {
    let cfg = ClusterConfig {
        max_accounts: 2_000,
        max_features: 4_000,
        warmup_accounts: 0,
        ..ClusterConfig::default()
    };
    let engine = ClusterEngine::new(cfg);
    let mut rng = Rng(23);
    let mut peak_bytes = 0;
    for i in 0..60_000u32 {
        let t = T0 + u64::from(i) * 1_000;
        let features = [
            feat(Family::Client, "user_agent", rng.below(50)),
            feat(Family::Network, "ip_prefix", rng.below(5_000)),
            feat(Family::Template, "head_band", rng.below(20_000)),
            feat(Family::Shape, "params", rng.below(200)),
        ];
        engine.observe(&Observation {
            account: acct(4, i),
            now_ms: t,
            features: &features,
            signals: [0.0; SIGNALS],
        });
        if i % 500 != 0 {
            continue;
        }
        let s = engine.stats();
        assert!(s.accounts <= 2_000, "{s:?}");
        assert!(s.postings <= 4_000, "{s:?}");
        if i > 10_000 {
            peak_bytes = peak_bytes.max(s.bytes);
        }
    }
    let s = engine.stats();
    assert!(s.evicted >= 58_000, "{s:?}");
    assert!(s.posting_entries <= 4_000 * 24);
    // Memory after churn is what it was once full: nothing leaks per account.
    assert!(s.bytes <= peak_bytes, "{s:?} peak {peak_bytes}");
}

#[test]
fn hard_link_alone_links_and_unlink_holds() {
    let engine = ClusterEngine::new(ClusterConfig {
        warmup_accounts: 0,
        ..ClusterConfig::default()
    });
    let card = [feat(Family::HardLink, "hard_link", 4242)];
    for (i, t) in [(0u32, T0), (1, T0 + 60_000)] {
        engine.observe(&Observation {
            account: acct(5, i),
            now_ms: t,
            features: &card,
            signals: [0.0; SIGNALS],
        });
    }
    let c = engine.cluster_of(&acct(5, 1)).expect("tracked");
    assert_eq!(c.size, 2);
    // The older account names the cluster.
    assert_eq!(c.id, ClusterId::of_account(acct(5, 0)));
    assert!(engine.unlink(&acct(5, 1), T0 + 120_000, 3_600_000));
    assert_eq!(engine.cluster_of(&acct(5, 1)).expect("tracked").size, 1);
    engine.observe(&Observation {
        account: acct(5, 1),
        now_ms: T0 + 180_000,
        features: &card,
        signals: [0.0; SIGNALS],
    });
    assert_eq!(
        engine.cluster_of(&acct(5, 1)).expect("tracked").size,
        1,
        "held apart"
    );
    engine.observe(&Observation {
        account: acct(5, 1),
        now_ms: T0 + 2 * 3_600_000,
        features: &card,
        signals: [0.0; SIGNALS],
    });
    assert_eq!(
        engine.cluster_of(&acct(5, 1)).expect("tracked").size,
        2,
        "hold expired"
    );
    assert_eq!(engine.dissolve(&acct(5, 0), T0 + 3 * 3_600_000, 0), 2);
    assert_eq!(engine.stats().clusters, 0);
}

#[test]
fn the_first_accounts_cluster_id_is_stable_as_the_campaign_grows() {
    let mut rng = Rng(29);
    let engine = ClusterEngine::new(ClusterConfig::default());
    let mut reqs = organic(&mut rng, 80, 10, 1);
    reqs.extend(campaign(&mut rng, 2, 30, 26, 1, 3));
    reqs.sort_by_key(|r| r.0);
    let mut ids_seen: HashMap<AccountId, Vec<ClusterId>> = HashMap::new();
    for (t, id, features) in &reqs {
        let l = engine.observe(&Observation {
            account: *id,
            now_ms: *t,
            features,
            signals: [0.0; SIGNALS],
        });
        let v = ids_seen.entry(*id).or_default();
        if v.last() != Some(&l.cluster.id) {
            v.push(l.cluster.id);
        }
    }
    for (a, ids) in ids_seen {
        // An id may change when its cluster merges into a larger one, but never
        // back: no id comes back once left.
        let mut seen = HashSet::new();
        for id in &ids {
            assert!(seen.insert(*id), "{a} flip-flopped through {ids:?}");
        }
        assert!(ids.len() <= 4, "{a} went through {ids:?}");
    }
}

#[test]
fn evicted_slots_are_not_confused_with_their_new_owner() {
    let engine = ClusterEngine::new(ClusterConfig {
        max_accounts: 3,
        warmup_accounts: 0,
        ..ClusterConfig::default()
    });
    let shared = [
        feat(Family::Template, "head_band", 1),
        feat(Family::Shape, "params", 2),
    ];
    engine.observe(&Observation {
        account: acct(6, 0),
        now_ms: T0,
        features: &shared,
        signals: [0.0; SIGNALS],
    });
    // Three other accounts push the first out; the slot is reused.
    for i in 1..4 {
        engine.observe(&Observation {
            account: acct(6, i),
            now_ms: T0 + u64::from(i) * 1000,
            features: &[feat(Family::Network, "ip_prefix", u64::from(i))],
            signals: [0.0; SIGNALS],
        });
    }
    assert!(engine.cluster_of(&acct(6, 0)).is_none());
    engine.observe(&Observation {
        account: acct(6, 9),
        now_ms: T0 + 9000,
        features: &shared,
        signals: [0.0; SIGNALS],
    });
    assert_eq!(
        engine.stats().clusters,
        0,
        "linked to a forgotten account's slot"
    );
}

#[test]
fn kind_weights_name_feature_kinds() {
    use crate::config::Config;
    let cfg = Config::from_toml_str(
        "[identity]\nsecret = \"s\"\n[cluster.kind_weights]\nuser_agent = 0.5\ntail_lsh_band = 2.0\n",
    )
    .expect("known kinds");
    assert_eq!(cfg.cluster.weight_of(FeatureKind::UserAgent), 0.5);
    assert_eq!(cfg.cluster.weight_of(FeatureKind::TailLshBand), 2.0);
    // The defaults' override is replaced, not merged.
    let template = cfg.cluster.family_weights.get(Family::Template);
    assert_eq!(cfg.cluster.weight_of(FeatureKind::SystemPrompt), template);
    let err = Config::from_toml_str(
        "[identity]\nsecret = \"s\"\n[cluster.kind_weights]\nsystem_promt = 0.5\n",
    )
    .expect_err("a misspelt kind");
    let text = err.to_string();
    assert!(text.contains("cluster.kind_weights"), "{text}");
    assert!(text.contains("system_promt"), "{text}");
}

#[test]
fn config_sections_default_and_report_every_bad_field() {
    use crate::config::Config;
    let cfg = Config::from_toml_str("[identity]\nsecret = \"s\"\n").expect("identity alone");
    assert_eq!(cfg.cluster, ClusterConfig::default());
    assert_eq!(cfg.score, crate::score::ScoreConfig::default());
    let err = Config::from_toml_str(
        r#"
        [identity]
        secret = "s"
        [cluster]
        posting_cap = 1
        common_clusters = 0
        half_life = "0s"
        link_threshold = -1.0
        min_families = 9
        join_min_members = 0
        bridge_fraction = 2.0
        [cluster.family_weights]
        template = nan
        [cluster.kind_weights]
        system_prompt = -0.5
        [cluster.matches_for_full_weight]
        template = 0
        [score]
        size_scale = 0.0
        unlinked_cap = 0.6
        degrade_max_output_tokens = 0
        [score.weights]
        cluster_size = 1.5
        [score.ladder]
        tag = 0.8
        throttle = 0.5
        "#,
    )
    .expect_err("invalid");
    let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "cluster.posting_cap",
        "cluster.common_clusters",
        "cluster.half_life",
        "cluster.link_threshold",
        "cluster.min_families",
        "cluster.join_min_members",
        "cluster.bridge_fraction",
        "cluster.family_weights.template",
        "cluster.kind_weights.system_prompt",
        "cluster.matches_for_full_weight.template",
        "score.size_scale",
        "score.unlinked_cap",
        "score.degrade_max_output_tokens",
        "score.weights.cluster_size",
        "score.ladder.throttle",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
    let unknown =
        Config::from_toml_str("[identity]\nsecret = \"s\"\n[cluster]\nlink_treshold = 1\n")
            .expect_err("unknown field");
    assert!(unknown.to_string().contains("link_treshold"));
}

#[test]
fn inspection_shows_members_and_the_evidence_that_linked_them() {
    let mut rng = Rng(7);
    let engine = ClusterEngine::new(ClusterConfig::default());
    let mut reqs = organic(&mut rng, 300, 20, 2);
    reqs.extend(campaign(&mut rng, 2, 60, 26, 2, 1));
    let now = reqs.iter().map(|r| r.0).max().unwrap_or(T0);
    let map = run(&engine, reqs);
    let campaign_cluster = map[&acct(2, 0)];

    let top = engine.top_clusters(3, 1000, now);
    assert_eq!(top.largest.len(), 1, "only the campaign is a cluster");
    assert_eq!(top.most_suspicious.len(), 1);
    let c = &top.largest[0];
    assert_eq!(c.id, campaign_cluster);
    assert_eq!(c.size, 60);
    assert_eq!(c.members.len(), 60);
    assert!(
        c.members.iter().all(|a| a.0[0] == 2),
        "only campaign members"
    );
    assert!(c.links >= 59, "{}", c.links);
    // The evidence is the campaign's own template (an anchor family) plus a
    // second family; the per-kind links add up to at least one per link.
    assert!(
        c.kinds.iter().any(|k| k.family == Family::Template),
        "{:?}",
        c.kinds
    );
    assert!(c.kinds.iter().any(|k| k.family != Family::Template));
    assert!(c.kinds.len() <= 8);
    let template_links: u32 = c
        .kinds
        .iter()
        .filter(|k| k.family == Family::Template)
        .map(|k| k.links)
        .sum();
    assert_eq!(template_links, c.links, "every link had template evidence");
    assert!(c
        .kinds
        .windows(2)
        .all(|w| w[0].weight_sum >= w[1].weight_sum));
    assert!(!c.values.is_empty() && c.values.len() <= 4);
    assert!(
        c.values.iter().any(|v| v.members >= 2),
        "shared values are shared by members: {:?}",
        c.values
    );
    assert!(c.values.iter().all(|v| v.members <= 60 && v.links >= 1));

    // By id, capped, and through a member.
    let capped = engine
        .inspect_cluster(&campaign_cluster, 5, now)
        .expect("known");
    assert_eq!(capped.members.len(), 5);
    assert_eq!(capped.size, 60);
    assert_eq!(capped.kinds, c.kinds);
    let member = engine
        .inspect_account(&acct(2, 7), 5, now)
        .expect("tracked");
    assert_eq!(
        member.cluster.as_ref().map(|c| c.id),
        Some(campaign_cluster)
    );
    assert!(member.stats.requests > 0);
    let organic_user = engine
        .inspect_account(&acct(1, 7), 5, now)
        .expect("tracked");
    assert!(organic_user.cluster.is_none());
    assert!(engine
        .inspect_cluster(&ClusterId::of_account(acct(1, 7)), 5, now)
        .is_none());
    assert!(engine.inspect_account(&acct(9, 9), 5, now).is_none());

    let counts: Vec<(u32, u64)> = engine
        .size_counts()
        .iter()
        .map(|c| (c.size, c.clusters))
        .collect();
    assert!(counts.contains(&(60, 1)), "{counts:?}");
    let alone = counts.iter().find(|(s, _)| *s == 1).map_or(0, |c| c.1);
    assert_eq!(alone, engine.stats().accounts - 60);
}

#[test]
fn merged_clusters_combine_their_evidence_and_stay_inspectable() {
    let engine = ClusterEngine::new(ClusterConfig {
        warmup_accounts: 0,
        ..ClusterConfig::default()
    });
    let card = |v: u64| [feat(Family::HardLink, "hard_link", v)];
    let clock = std::cell::Cell::new(T0);
    let send = |group: u8, i: u32, f: &[Feature]| {
        clock.set(clock.get() + 60_000);
        engine.observe(&Observation {
            account: acct(group, i),
            now_ms: clock.get(),
            features: f,
            signals: [0.0; SIGNALS],
        })
    };
    for i in 0..3 {
        send(6, i, &card(1));
    }
    for i in 0..2 {
        send(7, i, &card(2));
    }
    send(8, 0, &card(3));
    let last = send(8, 1, &card(3));
    let t = clock.get();
    assert_eq!(last.cluster.size, 2);
    // Cluster C is the most suspicious one.
    engine.store_levels(last.handle, 0.0, Some(0.9), t);
    let a = ClusterId::of_account(acct(6, 0));
    let before = engine.inspect_cluster(&a, 10, t).expect("A");
    assert_eq!(before.values.len(), 1);
    assert_eq!(before.kinds[0].links, 2);

    // A member of B shares A's card: the two merge (a hard link passes the
    // merge guard) and A, the larger, keeps its id.
    let merged = send(7, 0, &card(1));
    let t = clock.get();
    assert_eq!(merged.cluster.size, 5);
    assert_eq!(merged.cluster.id, a);
    let m = engine.inspect_cluster(&a, 10, t).expect("merged");
    assert_eq!(m.size, 5);
    assert_eq!(m.links, 4);
    assert_eq!(m.kinds.len(), 1);
    assert_eq!(m.kinds[0].kind, FeatureKind::HardLink);
    assert_eq!(m.kinds[0].links, 4, "A's two, B's one, the merge");
    let values: HashSet<u64> = m.values.iter().map(|v| v.value).collect();
    assert_eq!(
        values,
        HashSet::from([card(1)[0].value, card(2)[0].value]),
        "both sides' evidence"
    );
    let a_card = m
        .values
        .iter()
        .find(|v| v.value == card(1)[0].value)
        .expect("A's card");
    assert_eq!(a_card.members, 4, "three of A and the bridging member of B");
    assert_eq!(a_card.links, 3);
    assert!(engine
        .inspect_cluster(&ClusterId::of_account(acct(7, 0)), 10, t)
        .is_none());

    let top = engine.top_clusters(5, 10, t);
    assert_eq!(
        top.largest.iter().map(|c| c.size).collect::<Vec<_>>(),
        vec![5, 2]
    );
    assert_eq!(top.most_suspicious[0].id, ClusterId::of_account(acct(8, 0)));
    assert_eq!(top.most_suspicious[0].stats.level, 0.9);
    assert_eq!(engine.top_clusters(1, 10, t).largest.len(), 1);
    let sizes = |engine: &ClusterEngine| -> Vec<(u32, u64)> {
        engine
            .size_counts()
            .iter()
            .map(|c| (c.size, c.clusters))
            .collect()
    };
    assert_eq!(sizes(&engine), vec![(2, 1), (5, 1)]);

    // The account that named A leaves: A keeps its id and is still found.
    assert!(engine.unlink(&acct(6, 0), t, 3_600_000));
    let after = engine
        .inspect_cluster(&a, 10, t)
        .expect("found by scanning");
    assert_eq!(after.size, 4);
    assert!(!after.members.contains(&acct(6, 0)));
    let held = engine.inspect_account(&acct(6, 0), 10, t).expect("tracked");
    assert!(held.cluster.is_none());
    assert_eq!(held.held_until_s, Some(((t + 3_600_000) / 1000) as u32));
    assert_eq!(sizes(&engine), vec![(1, 1), (2, 1), (4, 1)]);
}

/// Feeds `reqs` in the order a replica applies them: its own (accounts for
/// which `own` holds) at once, the other replica's `lag_ms` later, each with
/// its original timestamp; returns the cluster of every account.
fn run_as_replica(
    reqs: &[Req],
    own: impl Fn(&AccountId) -> bool,
    lag_ms: u64,
) -> HashMap<AccountId, ClusterId> {
    let engine = ClusterEngine::new(ClusterConfig::default());
    let mut order: Vec<&Req> = reqs.iter().collect();
    order.sort_by_key(|r| if own(&r.1) { r.0 } else { r.0 + lag_ms });
    for (t, id, features) in order {
        engine.observe(&Observation {
            account: *id,
            now_ms: *t,
            features,
            signals: [0.0; SIGNALS],
        });
    }
    reqs.iter()
        .filter_map(|r| engine.cluster_of(&r.1).map(|c| (r.1, c.id)))
        .collect()
}

#[test]
fn replicas_that_link_in_different_orders_agree_on_cluster_ids() {
    // Two replicas share their traffic through the log: each sees its own
    // requests first and the other's later. The campaign's accounts reach
    // both, so each replica links a different pair first; the cluster is
    // named after its oldest member either way.
    let mut rng = Rng(41);
    let mut reqs = organic(&mut rng, 200, 10, 1);
    reqs.extend(campaign(&mut rng, 2, 40, 26, 1, 4));
    reqs.sort_by_key(|r| r.0);
    let even = |a: &AccountId| a.0[1] % 2 == 0;
    // A lag of an hour (a log read after an outage) makes the two orders
    // differ as much as they can.
    let a = run_as_replica(&reqs, even, 3_600_000);
    let b = run_as_replica(&reqs, |x| !even(x), 3_600_000);
    assert_eq!(cluster_sizes(&a, 2), vec![40]);
    assert_eq!(cluster_sizes(&b, 2), vec![40]);
    let (ca, cb) = (a[&acct(2, 0)], b[&acct(2, 0)]);
    assert_eq!(ca, cb, "the replicas named the campaign differently");
    // The name is the oldest member's: the campaign account seen first.
    let first = reqs
        .iter()
        .find(|r| r.1 .0[0] == 2)
        .map(|r| r.1)
        .expect("campaign traffic");
    assert_eq!(ca, ClusterId::of_account(first));
}

#[test]
fn an_account_that_leaves_its_cluster_never_names_a_second_one_alike() {
    let engine = ClusterEngine::new(ClusterConfig {
        warmup_accounts: 0,
        ..ClusterConfig::default()
    });
    let card = |v: u64| [feat(Family::HardLink, "hard_link", v)];
    let mut t = T0;
    let mut send = |i: u32, f: &[Feature]| {
        t += 60_000;
        (
            t,
            engine.observe(&Observation {
                account: acct(9, i),
                now_ms: t,
                features: f,
                signals: [0.0; SIGNALS],
            }),
        )
    };
    for i in 0..3 {
        send(i, &card(1));
    }
    let (now, _) = send(0, &card(1));
    let named = ClusterId::of_account(acct(9, 0));
    assert_eq!(engine.cluster_of(&acct(9, 1)).map(|c| c.id), Some(named));
    // The oldest member is unlinked without a hold: the cluster keeps its id
    // (and so its quota buckets).
    assert!(engine.unlink(&acct(9, 0), now, 0));
    assert_eq!(engine.cluster_of(&acct(9, 1)).map(|c| c.id), Some(named));
    // It then founds a cluster of its own with a new account: a different id.
    send(0, &card(2));
    let (_, l) = send(3, &card(2));
    assert_eq!(l.cluster.size, 2);
    assert_ne!(l.cluster.id, named, "two clusters share one id");
    assert_eq!(
        engine.cluster_of(&acct(9, 0)).map(|c| c.id),
        Some(l.cluster.id)
    );
    assert_eq!(engine.cluster_of(&acct(9, 2)).map(|c| c.id), Some(named));
    // A new account with the first card bridges both (a hard link merges
    // outright): the merged cluster keeps the name of the older one.
    let (_, l) = send(4, &card(1));
    assert_eq!(l.cluster.size, 5);
    assert_eq!(l.cluster.id, named);
}

/// Signals of a request that looks like ordinary use (the benign flag).
fn ordinary_use() -> [f32; SIGNALS] {
    let mut s = [0.0; SIGNALS];
    s[5] = 1.0;
    s
}

/// Every account of `group` in `map` is alone.
#[track_caller]
fn assert_apart(map: &HashMap<AccountId, ClusterId>, group: u8, why: &str) {
    let sizes = cluster_sizes(map, group);
    assert!(sizes.iter().all(|&n| n == 1), "{why}: {sizes:?}");
}

/// Signals of a request that looks like harvesting (extraction score 0.95).
fn harvesting() -> [f32; SIGNALS] {
    let mut s = [0.0; SIGNALS];
    s[4] = 0.95;
    s
}

/// Forty accounts send one operator's template from one address block and
/// client, all before the engine links anyone (the warm-up), then again
/// later; twenty unrelated accounts end the warm-up in between. `signals`
/// is what each of their requests looks like.
fn slow_start(engine: &ClusterEngine, signals: [f32; SIGNALS]) -> HashMap<AccountId, ClusterId> {
    let shared = |i: u32| {
        vec![
            feat(Family::Template, "head_band", 700),
            feat(Family::Template, "head_band", 701),
            feat(Family::Template, "tail_band", 702),
            feat(Family::Network, "ip_prefix", 703),
            feat(Family::Client, "user_agent", 705),
            feat(Family::Template, "head_band", 10_000 + u64::from(i)),
        ]
    };
    let mut t = T0;
    let mut send = |id: AccountId, features: &[Feature], signals: [f32; SIGNALS]| {
        t += 30_000;
        engine.observe(&Observation {
            account: id,
            now_ms: t,
            features,
            signals,
        });
    };
    for i in 0..40 {
        send(acct(3, i), &shared(i), signals);
    }
    for i in 0..20 {
        let own = [feat(Family::Network, "ip_prefix", 900 + u64::from(i))];
        send(acct(1, i), &own, [0.0; SIGNALS]);
    }
    for i in 0..40 {
        send(acct(3, i), &shared(i), signals);
    }
    (0..40)
        .chain(0..20)
        .enumerate()
        .filter_map(|(k, i)| {
            let a = if k < 40 { acct(3, i) } else { acct(1, i) };
            engine.cluster_of(&a).map(|c| (a, c.id))
        })
        .collect()
}

#[test]
fn accounts_that_look_like_harvesting_do_not_make_their_own_values_common() {
    // The campaign's template and address block reach many unlinked accounts
    // before the first link: counted as bystanders, they would make the
    // operator's own values "common" and it would never be linked.
    let map = slow_start(&ClusterEngine::new(ClusterConfig::default()), harvesting());
    assert_eq!(
        cluster_sizes(&map, 3),
        vec![40],
        "the campaign is one cluster"
    );
    assert_eq!(linked_organic(&map), 0);
    // (Linking among extraction-like accounts, which discounts values by
    // their benign holders instead of commonness, is off here too.)
    let counted = ClusterConfig {
        behaviour: BehaviourEvidence {
            common_evidence: 1000.0,
            link_evidence: 1000.0,
            ..BehaviourEvidence::default()
        },
        ..ClusterConfig::default()
    };
    let map = slow_start(&ClusterEngine::new(counted), harvesting());
    assert_apart(&map, 3, "counting them, the values are common");
    // The same values shared by forty accounts whose requests look like
    // ordinary use (a hosted app's users) stay common: nobody is linked.
    let benign = ordinary_use();
    let map = slow_start(&ClusterEngine::new(ClusterConfig::default()), benign);
    assert_apart(&map, 3, "values ordinary users share stay common");
}

/// Sixty accounts of ordinary use end the warm-up; then `accounts` accounts
/// that share only the template bands `tpl` send a request every two hours
/// for a day, each from its own address, client build and parameter vector
/// every time (residential proxies, SDK header sets drawn at random).
fn rotating(
    engine: &ClusterEngine,
    accounts: u32,
    tpl: u64,
    signals: [f32; SIGNALS],
) -> HashMap<AccountId, ClusterId> {
    let mut rng = Rng(0x00c0_ffee);
    let benign = ordinary_use();
    let mut t = T0;
    for i in 0..60 {
        t += 1_000;
        let own = [feat(Family::Network, "ip_prefix", 5_000 + u64::from(i))];
        engine.observe(&Observation {
            account: acct(1, i),
            now_ms: t,
            features: &own,
            signals: benign,
        });
    }
    for round in 0..12u64 {
        for i in 0..accounts {
            t += 7_000;
            let features = [
                feat(Family::Template, "head_band", tpl),
                feat(Family::Template, "head_band", tpl + 1),
                feat(Family::Template, "tail_band", tpl + 2),
                feat(Family::Template, "head_band", rng.next()),
                feat(Family::Network, "ip_prefix", rng.next()),
                feat(Family::Client, "user_agent", rng.below(4)),
                feat(Family::Client, "header_order", rng.next()),
                feat(Family::Shape, "params", rng.next()),
            ];
            engine.observe(&Observation {
                account: acct(3, i),
                now_ms: t + round * 2 * 3_600_000,
                features: &features,
                signals,
            });
        }
        t += 1;
    }
    (0..accounts)
        .filter_map(|i| engine.cluster_of(&acct(3, i)).map(|c| (acct(3, i), c.id)))
        .collect()
}

#[test]
fn a_rotating_campaign_is_linked_by_its_template_once_its_accounts_look_like_harvesting() {
    // Nothing but the template ties these accounts together: one family,
    // which between ordinary accounts never links (a template is what a
    // popular app's users share too).
    let map = rotating(
        &ClusterEngine::new(ClusterConfig::default()),
        30,
        9_000,
        harvesting(),
    );
    let sizes = cluster_sizes(&map, 3);
    assert!(sizes[0] >= 28, "the campaign is one cluster: {sizes:?}");
    // Without the rule, the two-family rule keeps them apart.
    let off = ClusterConfig {
        behaviour: BehaviourEvidence {
            anchor_alone: 1000.0,
            ..BehaviourEvidence::default()
        },
        ..ClusterConfig::default()
    };
    let map = rotating(&ClusterEngine::new(off), 30, 9_000, harvesting());
    assert_apart(&map, 3, "without anchor_alone, one family");
    // The same accounts asking as ordinary users do stay apart.
    let benign = ordinary_use();
    let map = rotating(
        &ClusterEngine::new(ClusterConfig::default()),
        30,
        9_000,
        benign,
    );
    assert_apart(&map, 3, "asking as ordinary users do");
    // Two power users whose prompts happen to share a template's bands are
    // not an operator: a value counts in full only once `support` (3)
    // accounts that look like harvesting hold it.
    let map = rotating(
        &ClusterEngine::new(ClusterConfig::default()),
        2,
        9_000,
        harvesting(),
    );
    assert_apart(&map, 3, "two accounts are below support");
}

#[test]
fn a_burst_of_small_teams_does_not_make_a_popular_value_theirs() {
    // A popular agent's system prompt and the stock SDK's header order, sent
    // by a hundred people in conversations (ordinary use); then, within two minutes, three small teams (each
    // already one cluster: one payment card per team) fill the values'
    // posting lists. Counted over the list alone, the values now look like
    // three clusters' own, but the teams share nothing else: they must not
    // merge once `common_memory` remembers the values as common.
    let remembering = ClusterConfig {
        common_memory: std::time::Duration::from_secs(6 * 3600),
        ..ClusterConfig::default()
    };
    let sizes = burst_of_teams(&ClusterEngine::new(remembering));
    assert_eq!(sizes, [8, 8, 8], "the teams stayed apart");
    // Without it (the default, see docs/detection.md) they merge.
    let sizes = burst_of_teams(&ClusterEngine::new(ClusterConfig::default()));
    assert!(sizes.iter().any(|&n| n > 8), "{sizes:?}");
}

/// The traffic of `a_burst_of_small_teams_does_not_make_a_popular_value_theirs`;
/// the teams' cluster sizes after it.
fn burst_of_teams(engine: &ClusterEngine) -> Vec<u32> {
    let popular = |extra: u64| {
        vec![
            feat(Family::Template, "system_prompt", 31_337),
            feat(Family::Template, "head_band", 31_338),
            feat(Family::Client, "header_order", 31_339),
            feat(Family::Shape, "key_order", 31_340),
            feat(Family::Template, "tail_band", extra),
        ]
    };
    let mut t = T0;
    for u in 0..100u32 {
        t += 20_000;
        engine.observe(&Observation {
            account: acct(1, u),
            now_ms: t,
            features: &popular(1_000 + u64::from(u)),
            signals: ordinary_use(),
        });
    }
    // The teams form (a card per team).
    for team in 0..3u8 {
        for i in 0..8u32 {
            t += 1_000;
            let card = [feat(Family::HardLink, "hard_link", 7_000 + u64::from(team))];
            engine.observe(&Observation {
                account: acct(10 + team, i),
                now_ms: t,
                features: &card,
                signals: [0.0; SIGNALS],
            });
        }
    }
    for team in 0..3u8 {
        assert_eq!(
            engine
                .cluster_of(&acct(10 + team, 0))
                .expect("tracked")
                .size,
            8
        );
    }
    // The burst: every team member, round after round, within minutes.
    for round in 0..4u64 {
        for i in 0..8u32 {
            for team in 0..3u8 {
                t += 1_500;
                engine.observe(&Observation {
                    account: acct(10 + team, i),
                    now_ms: t,
                    features: &popular(50_000 + round * 100 + u64::from(i)),
                    signals: [0.0; SIGNALS],
                });
            }
        }
    }
    (0..3u8)
        .map(|team| {
            engine
                .cluster_of(&acct(10 + team, 0))
                .expect("tracked")
                .size
        })
        .collect()
}

/// Two accounts that share an address block, a client build and a parameter
/// vector (and `template`, when given) link; the tie of the second to its
/// cluster, then after it is unlinked.
fn tie_after_a_link(cfg: ClusterConfig, template: bool) -> (f32, f32) {
    let engine = ClusterEngine::new(ClusterConfig {
        warmup_accounts: 0,
        ..cfg
    });
    let mut features = vec![
        feat(Family::Network, "ip_prefix", 61),
        feat(Family::Client, "user_agent", 62),
        feat(Family::Shape, "params", 63),
    ];
    if template {
        features.extend((64..67).map(|v| feat(Family::Template, "head_band", v)));
    }
    for (i, t) in [(0u32, T0), (1, T0 + 60_000)] {
        engine.observe(&Observation {
            account: acct(8, i),
            now_ms: t,
            features: &features,
            signals: [0.0; SIGNALS],
        });
    }
    assert_eq!(engine.cluster_of(&acct(8, 1)).expect("tracked").size, 2);
    let tie = |now| {
        engine
            .inspect_account(&acct(8, 1), 0, now)
            .expect("tracked")
            .stats
            .tie
    };
    let linked = tie(T0 + 60_000);
    assert!(engine.unlink(&acct(8, 1), T0 + 120_000, 0));
    (linked, tie(T0 + 120_000))
}

#[test]
fn a_members_tie_is_its_anchor_weight_and_is_forgotten_when_it_leaves() {
    // Linked on a whole template: tied strongly; alone again: no tie.
    let (linked, after) = tie_after_a_link(ClusterConfig::default(), true);
    assert!(linked >= 0.9, "{linked}");
    assert_eq!(after, 0.0);
    // Without anchor families every link counts as anchored, so every member
    // is tied in full (nothing tells a loose tie from a strong one).
    let no_anchors = ClusterConfig {
        anchor_families: Vec::new(),
        ..ClusterConfig::default()
    };
    let (linked, _) = tie_after_a_link(no_anchors, false);
    assert!(linked >= 2.5, "{linked}");
}
