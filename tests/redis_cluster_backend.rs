//! The Redis store on a real Redis Cluster: local `redis-server`s in cluster
//! mode joined with `redis-cli --cluster create` (three primaries, with a
//! replica each where a failover is tested).
//!
//! When `redis-server` or `redis-cli` is not on PATH every test prints
//! `redis tests SKIPPED: redis-server or redis-cli not found` and returns; CI
//! fails on that line.

mod support;

use std::time::Duration;

use distill_guard::extensions::Scope;
use distill_guard::store::gcra::BucketLimit;
use distill_guard::store::{
    Admission, Backend, OnError, RedisStore, Store, StoreConfig, StoreStatus, Subject,
};
use support::{wait, RedisCluster};

const T0: u64 = 1_700_000_000_000;

fn config(cluster: &RedisCluster, on_error: OnError) -> StoreConfig {
    StoreConfig {
        backend: Backend::RedisCluster,
        // Two nodes are enough: the client learns the others from them.
        nodes: cluster.urls().into_iter().take(2).collect(),
        timeout: Duration::from_millis(1_000),
        on_error,
        key_prefix: "test:".into(),
        ..StoreConfig::default()
    }
}

fn limits(rpm: f64) -> [Option<BucketLimit>; 4] {
    [
        Some(BucketLimit::new(rpm, 60_000.0, rpm)),
        None,
        Some(BucketLimit::new(1e9, 60_000.0, 1e9)),
        None,
    ]
}

fn account(id: u8, rpm: f64) -> Subject {
    let mut key = [0u8; 16];
    key[0] = id;
    Subject {
        scope: Scope::Account,
        key,
        group: None,
        limits: limits(rpm),
    }
}

fn cluster_of(id: u8, rpm: f64) -> Subject {
    Subject {
        scope: Scope::Cluster,
        ..account(id, rpm)
    }
}

fn status(store: &RedisStore) -> StoreStatus {
    store.status().expect("a shared store reports its status")
}

/// Accounts in slots of their own, their cluster in another: admissions from
/// two replicas (two stores) are enforced exactly against the cluster's limit
/// and each account's; refused halves are given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_enforce_one_limit_across_slots() {
    let Some(redis) = RedisCluster::start(3, 0) else {
        return;
    };
    let cfg = config(&redis, OnError::FailClosed);
    let replicas = [
        RedisStore::new(&cfg).expect("replica A"),
        RedisStore::new(&cfg).expect("replica B"),
    ];
    // The founder (id 1) shares its cluster's id, and so its slot; 2..=6 do not.
    let keys: Vec<String> = (1..=6u8)
        .map(|id| replicas[0].key_of(&account(id, 1.0)))
        .collect();
    let cluster_key = replicas[0].key_of(&cluster_of(1, 1.0));
    assert!(keys[0].ends_with('}') && cluster_key.contains('{'));

    // Cluster limit 20 per minute, each account 8: 6 accounts × 10 requests.
    let mut admitted = 0;
    for round in 0..10u64 {
        for id in 1..=6u8 {
            let store = &replicas[usize::from(id) % 2];
            let out = store
                .admit(&Admission {
                    now_ms: T0 + round,
                    account: account(id, 8.0),
                    cluster: Some(cluster_of(1, 20.0)),
                    account_group: None,
                    cluster_group: None,
                    tokens: 10.0,
                })
                .await
                .expect("admit");
            if out.denied.is_none() {
                admitted += 1;
            }
        }
    }
    assert_eq!(
        admitted, 20,
        "the cluster's limit, across slots and replicas"
    );
    for store in &replicas {
        wait::until_true("refunds sent", || status(store).settlements_pending == 0).await;
        assert_eq!(status(store).fallbacks, 0);
    }
    // What the accounts and the cluster hold is exactly what was admitted:
    // every refused half was given back.
    let mut held = 0.0;
    for id in 1..=6u8 {
        let v = replicas[0]
            .inspect(&account(id, 8.0), T0 + 9)
            .await
            .expect("inspect")
            .expect("supported");
        held += 8.0 - v[0].expect("rpm").remaining;
    }
    let c = replicas[1]
        .inspect(&cluster_of(1, 20.0), T0 + 9)
        .await
        .expect("inspect")
        .expect("supported");
    assert!(c[0].expect("rpm").remaining < 0.01, "the cluster is full");
    assert!((held - 20.0).abs() < 0.01, "accounts hold {held}");

    // Settlements of all six accounts at once: batched per slot, the
    // cluster's half of each in the cluster's slot.
    let tokens =
        |v: [Option<distill_guard::store::BucketView>; 4]| 1e9 - v[2].expect("tpm").remaining;
    let before = tokens(c);
    for id in 1..=6u8 {
        replicas[0].settle(distill_guard::store::Settlement {
            now_ms: T0 + 9,
            account: account(id, 8.0),
            cluster: Some(cluster_of(1, 20.0)),
            account_group: None,
            cluster_group: None,
            token_delta: 5.0,
        });
    }
    wait::until_true("settlements sent", || {
        status(&replicas[0]).settlements_pending == 0
    })
    .await;
    assert_eq!(status(&replicas[0]).settlements_local, 0, "none failed");
    let c = replicas[1]
        .inspect(&cluster_of(1, 20.0), T0 + 9)
        .await
        .expect("inspect")
        .expect("supported");
    assert_eq!(tokens(c) - before, 30.0);
}

/// 50 admissions in flight at once from two replicas, ten accounts each in a
/// slot of its own and their cluster in another: the cluster's halves never
/// grant more than its limit (no overshoot), and what was held by halves
/// refused on the other side comes back, so later requests fill the limit
/// exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_never_overshoot() {
    let Some(redis) = RedisCluster::start(3, 0) else {
        return;
    };
    let cfg = config(&redis, OnError::FailClosed);
    let replicas = [
        std::sync::Arc::new(RedisStore::new(&cfg).expect("replica A")),
        std::sync::Arc::new(RedisStore::new(&cfg).expect("replica B")),
    ];
    let admission = |id: u8, at: u64| Admission {
        now_ms: T0 + at,
        account: account(id, 4.0),
        cluster: Some(cluster_of(200, 20.0)),
        account_group: None,
        cluster_group: None,
        tokens: 10.0,
    };
    // Accounts 10..20, five requests each (their own limit is 4).
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50u8 {
        let store = replicas[usize::from(i % 2)].clone();
        let a = admission(10 + i % 10, 0);
        tasks.spawn(async move { store.admit(&a).await });
    }
    let mut first = 0;
    while let Some(r) = tasks.join_next().await {
        if r.expect("task").expect("admit").denied.is_none() {
            first += 1;
        }
    }
    assert!(first <= 20, "{first} admitted over a cluster limit of 20");
    for store in &replicas {
        wait::until_true("refunds sent", || status(store).settlements_pending == 0).await;
    }
    // Room held by halves granted in flight and refunded is back: one request
    // at a time now, the accounts that still have room fill the cluster.
    let mut later = 0;
    for round in 0..5u64 {
        for id in 10..20u8 {
            let out = replicas[0]
                .admit(&admission(id, 1 + round))
                .await
                .expect("admit");
            if out.denied.is_none() {
                later += 1;
            }
        }
    }
    assert_eq!(first + later, 20, "{first} at once, then {later}");
}

/// A primary is killed and its replica promoted: meanwhile `fail_open`
/// answers from the in-process buckets and `fail_closed` refuses; once the
/// cluster has failed over, both answer from Redis again, on the promoted
/// replica, which kept the account's bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_followed_with_the_configured_fail_mode() {
    let Some(mut redis) = RedisCluster::start(3, 1) else {
        return;
    };
    let mut cfg = config(&redis, OnError::FailOpen);
    cfg.timeout = Duration::from_millis(300);
    let open = RedisStore::new(&cfg).expect("fail_open store");
    cfg.on_error = OnError::FailClosed;
    let closed = RedisStore::new(&cfg).expect("fail_closed store");
    let admission = |id: u8, at: u64| Admission {
        now_ms: T0 + at,
        account: account(id, 10.0),
        cluster: None,
        account_group: None,
        cluster_group: None,
        tokens: 1.0,
    };
    for i in 0..3 {
        let out = open.admit(&admission(3, i)).await.expect("admit");
        assert!(out.denied.is_none());
    }
    let key = open.key_of(&account(3, 10.0));
    let primary = redis.primary_of(&key).expect("the slot's primary");
    // Other accounts on the same primary, to probe it with.
    let on_primary: Vec<u8> = (10..=255u8)
        .filter(|&id| redis.primary_of(&open.key_of(&account(id, 10.0))) == Some(primary))
        .take(3)
        .collect();
    assert_eq!(
        on_primary.len(),
        3,
        "a third of the slots are on each primary"
    );
    // The replica has the bucket before its primary dies.
    assert_eq!(redis.nodes[primary].cli(&["wait", "1", "5000"]).trim(), "1");
    redis.nodes[primary].kill();

    assert!(
        closed.admit(&admission(on_primary[0], 10)).await.is_err(),
        "fail_closed refuses while the slot has no primary"
    );
    let out = open
        .admit(&admission(on_primary[0], 10))
        .await
        .expect("fail_open answers");
    assert!(out.denied.is_none());
    assert!(status(&open).fallbacks > 0 && status(&open).outages >= 1);

    // Probing with other accounts until the slot's new primary answers.
    let mut at = 100;
    wait::until("the cluster failed over", || {
        at += 1;
        let (open, closed, probes) = (&open, &closed, &on_primary);
        async move {
            let before = status(open).fallbacks;
            let ok = open.admit(&admission(probes[1], at)).await.is_ok()
                && closed.admit(&admission(probes[2], at)).await.is_ok();
            ok && status(open).up && status(open).fallbacks == before
        }
    })
    .await;
    let promoted = wait::until_some("the cluster names the slot's new primary", || {
        std::future::ready(redis.primary_of(&key).filter(|&p| p != primary))
    })
    .await;
    assert_ne!(promoted, primary, "a replica was promoted");
    // Three of ten were admitted before the failover; seven remain.
    let mut admitted = 0;
    for i in 0..10 {
        let out = open.admit(&admission(3, at + i)).await.expect("admit");
        if out.denied.is_none() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 7, "the promoted replica kept the bucket");
}
