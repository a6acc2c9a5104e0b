//! The Redis store against a real `redis-server` started on a free port.
//!
//! When `redis-server` is not on PATH every test prints
//! `redis tests SKIPPED: redis-server not found` and returns; CI fails on that line.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use distill_guard::clock::ManualClock;
use distill_guard::extensions::{Cluster, ClusterId, Scope};
use distill_guard::store::gcra::BucketLimit;
use distill_guard::store::{
    Admission, Backend, MemoryStore, OnError, Outcome, RedisStore, Settlement, Store, StoreConfig,
    StoreError, Subject,
};
use distill_guard::{Config, Guard};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{wait, RedisServer};
use tower::ServiceExt;

fn store_config(server: &RedisServer, on_error: OnError, timeout_ms: u64) -> StoreConfig {
    StoreConfig {
        backend: Backend::Redis,
        url: Some(server.url()),
        timeout: Duration::from_millis(timeout_ms),
        on_error,
        key_prefix: "test:".into(),
        deny_cache: true,
        ..StoreConfig::default()
    }
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

const T0: u64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------
// The Lua arithmetic against the embedded store.

fn limits_from(rng: &mut ChaCha8Rng) -> [Option<BucketLimit>; 4] {
    // A few tiers and suspicion multipliers, so limits change under a live key.
    let m = [1.0, 1.0, 0.5, 0.1, 0.0, 2.0_f64.sqrt()][rng.random_range(0..6)];
    let rpm = [5.0, 60.0, 7.0][rng.random_range(0..3)];
    let tpm = [1_000.0, 150_000.0, 3_333.0][rng.random_range(0..3)];
    [
        Some(BucketLimit::new(rpm, 60_000.0, rpm).scaled(m)),
        if rng.random_bool(0.5) {
            Some(BucketLimit::new(200.0, 86_400_000.0, 200.0).scaled(m))
        } else {
            None
        },
        Some(BucketLimit::new(tpm, 60_000.0, tpm).scaled(m)),
        if rng.random_bool(0.7) {
            Some(BucketLimit::new(50_000.0, 86_400_000.0, 50_000.0).scaled(m))
        } else {
            None
        },
    ]
}

/// An account and maybe a cluster, and maybe their buckets of one of two model
/// groups (so the scripts see calls of one to four subjects); with `stable`
/// each key always has the same limits, otherwise they change from call to
/// call (tiers, suspicion bands).
type Subjects = (Subject, Option<Subject>, Option<Subject>, Option<Subject>);

fn random_subjects(rng: &mut ChaCha8Rng, stable: bool) -> Subjects {
    let limits = |rng: &mut ChaCha8Rng, key: u8| {
        if stable {
            limits_from(&mut ChaCha8Rng::seed_from_u64(u64::from(key)))
        } else {
            limits_from(rng)
        }
    };
    let a = rng.random_range(0..4u8);
    let account = Subject {
        scope: Scope::Account,
        key: [a; 16],
        group: None,
        limits: limits(rng, a),
    };
    let cluster = rng.random_bool(0.6).then(|| {
        let c = 100 + rng.random_range(0..2u8);
        Subject {
            scope: Scope::Cluster,
            key: [c; 16],
            group: None,
            limits: limits(rng, c),
        }
    });
    let group = rng.random_bool(0.5).then(|| rng.random_range(0..2u8));
    let account_group = group.map(|g| {
        let l = limits(rng, 200 + 10 * g + a);
        account.in_group(["gpt-5*", "o*"][usize::from(g)].into(), l)
    });
    let cluster_group = group.zip(cluster.as_ref()).map(|(g, c)| {
        let l = limits(rng, 130 + 10 * g + (c.key[0] - 100));
        c.in_group(["gpt-5*", "o*"][usize::from(g)].into(), l)
    });
    (account, cluster, account_group, cluster_group)
}

fn assert_close(a: &Outcome, b: &Outcome, step: usize) {
    match (a.denied, b.denied) {
        (None, None) => {}
        (Some(x), Some(y)) => {
            assert_eq!(
                (x.scope, x.model_group, x.window),
                (y.scope, y.model_group, y.window),
                "step {step}"
            );
            match (x.retry_after_ms, y.retry_after_ms) {
                (Some(p), Some(q)) => assert!(p.abs_diff(q) <= 1, "step {step}: {p} vs {q}"),
                (p, q) => assert_eq!(p, q, "step {step}"),
            }
        }
        (x, y) => panic!("step {step}: {x:?} vs {y:?}"),
    }
    for (va, vb) in a.views.iter().flatten().zip(b.views.iter().flatten()) {
        match (va, vb) {
            (Some(p), Some(q)) => {
                assert_eq!(p.limit, q.limit, "step {step}");
                assert!(
                    (p.remaining - q.remaining).abs() <= 1e-6 * p.limit.max(1.0),
                    "step {step}: {p:?} vs {q:?}"
                );
                assert!(p.reset_ms.abs_diff(q.reset_ms) <= 1, "step {step}");
            }
            (p, q) => assert_eq!(p, q, "step {step}"),
        }
    }
}

/// Random admissions and settlements (changing limits, clusters coming and going,
/// time jumping forward and sometimes slightly back) give the same outcomes from
/// the Lua scripts as from `MemoryStore`: bit for bit without the deny cache,
/// within float rounding with it. (A cached refusal leaves the state as Redis
/// returned it, while the embedded store brings it up to date at each refusal;
/// the two agree as long as time moves forward and the subject's limits stay the
/// same, which is what this variant generates.)
async fn lua_matches_memory(deny_cache: bool) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    for seed in 0..4u64 {
        let mut cfg = store_config(&server, OnError::FailClosed, 2_000);
        cfg.key_prefix = format!("eq{seed}{deny_cache}:");
        cfg.deny_cache = deny_cache;
        let redis = RedisStore::new(&cfg).expect("store");
        let memory = MemoryStore::new();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut now = T0;
        let (mut admitted, mut denied) = (0, 0);
        for step in 0..600 {
            now = match rng.random_range(0..10) {
                0 => now,
                // Replicas' clocks differ a little.
                1 if !deny_cache => now - rng.random_range(0..500),
                2 => now + rng.random_range(0..600_000),
                _ => now + rng.random_range(0..3_000),
            };
            let (account, cluster, account_group, cluster_group) =
                random_subjects(&mut rng, deny_cache);
            if rng.random_bool(0.2) {
                let s = Settlement {
                    now_ms: now,
                    account,
                    cluster,
                    account_group,
                    cluster_group,
                    token_delta: rng.random_range(-2_000.0..1_000.0_f64).round(),
                };
                memory.settle_now(&s);
                redis.settle_in_redis(&s).await.expect("settle");
                continue;
            }
            let a = Admission {
                now_ms: now,
                account,
                cluster,
                account_group,
                cluster_group,
                tokens: [0.0, 1.0, 250.0, 999.0, 4_000.0][rng.random_range(0..5)],
            };
            let want = memory.admit_now(&a);
            let got = redis.admit(&a).await.expect("redis answers");
            if deny_cache {
                assert_close(&got, &want, step);
            } else {
                assert_eq!(got, want, "seed {seed} step {step}: {a:?}");
            }
            if want.denied.is_some() {
                denied += 1;
            } else {
                admitted += 1;
            }
        }
        // The sequence exercised both paths.
        assert!(admitted > 50 && denied > 50, "{admitted} / {denied}");
        assert_eq!(redis.fallback_count(), 0);
        if deny_cache {
            assert!(redis.local_denial_count() > 0, "the cache answered nothing");
        }
    }
}

#[tokio::test]
async fn lua_is_bit_identical_to_the_memory_store() {
    lua_matches_memory(false).await;
}

#[tokio::test]
async fn deny_cache_answers_like_redis() {
    lua_matches_memory(true).await;
}

// ---------------------------------------------------------------------------
// Guards over one Redis.

fn guard_config(extra: &str) -> Config {
    Config::from_toml_str(&format!(
        r#"
        [identity]
        secret = "redis-test-secret"
        [tiers.default]
        requests_per_minute = 600
        requests_per_day = "unlimited"
        tokens_per_minute = "unlimited"
        tokens_per_day = "unlimited"
        {extra}
        "#
    ))
    .expect("valid config")
}

fn guard(store: Arc<dyn Store>, clock: &ManualClock) -> Guard {
    Guard::builder(guard_config(""))
        .store(store)
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("guard")
}

fn request(key: &str, cluster: Option<Cluster>) -> Request<Full<Bytes>> {
    let mut req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"hello"}],"max_tokens":16}"#,
        )))
        .expect("request");
    if let Some(c) = cluster {
        req.extensions_mut().insert(c);
    }
    req
}

/// One request through the guard's enforce stage to a mock model; the status and
/// the body text.
async fn send(g: &Guard, key: &str, cluster: Option<Cluster>) -> (StatusCode, String) {
    let handler = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            br#"{"usage":{"prompt_tokens":5,"completion_tokens":3}}"#,
        ))))
    });
    let res = tower::Layer::layer(&g.enforce_layer(), handler)
        .oneshot(request(key, cluster))
        .await
        .expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Three replicas, each with its own connection, enforce one cluster limit
/// together: what they admit over 30 s of virtual time is the cluster's burst plus
/// its rate over that time, within 2%, although each replica alone sees a third of
/// the traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_guards_enforce_one_global_limit() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::new(T0);
    let stores: Vec<RedisStore> = (0..3)
        .map(|_| RedisStore::new(&store_config(&server, OnError::FailClosed, 2_000)).expect("s"))
        .collect();
    let guards: Vec<Guard> = stores
        .iter()
        .map(|s| guard(Arc::new(s.clone()), &clock))
        .collect();
    // Four accounts in one cluster of four: the cluster gets 600 × 4^0.5 = 1200
    // per minute, less than the accounts' 4 × 600, so the cluster binds.
    let cluster = Cluster {
        id: ClusterId::from_name("ring"),
        size: 4,
    };
    let keys = ["sk-a", "sk-b", "sk-c", "sk-d"];
    let steps = 300u64;
    let mut admitted = 0u64;
    let mut refused = 0u64;
    let mut per_guard = [0u64; 3];
    for _ in 0..steps {
        let mut tasks = Vec::new();
        for (gi, g) in guards.iter().enumerate() {
            for key in keys {
                for _ in 0..2 {
                    let g = g.clone();
                    tasks.push(tokio::spawn(async move {
                        (gi, send(&g, key, Some(cluster)).await)
                    }));
                }
            }
        }
        for t in tasks {
            let (gi, (status, body)) = t.await.expect("task");
            match status {
                StatusCode::OK => {
                    admitted += 1;
                    per_guard[gi] += 1;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(body.contains("group of accounts"), "{body}");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        clock.advance_ms(100);
    }
    let expected = 1_200.0 + 1_200.0 / 60_000.0 * ((steps - 1) * 100) as f64;
    let err = (admitted as f64 - expected).abs() / expected;
    println!(
        "admitted {admitted} (expected {expected}), refused {refused}, per guard {per_guard:?}"
    );
    assert!(err <= 0.02, "admitted {admitted}, expected {expected} ±2%");
    assert!(per_guard.iter().all(|&n| n > 100), "{per_guard:?}");
    assert!(stores.iter().all(|s| s.fallback_count() == 0));
    // The local over-limit cache: whether a refusal inside one of the steps
    // above came from it depends on which replies were back first, so it is
    // checked on its own. On a stopped clock, requests one after another
    // drain the cluster's bucket; the first refusal is a round trip and
    // remembers the bucket's retry time, so the next is refused locally.
    let before = stores[0].local_denial_count();
    let mut refusals = 0;
    for _ in 0..1_300 {
        let (status, _) = send(&guards[0], "sk-a", Some(cluster)).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refusals += 1;
            if refusals == 2 {
                break;
            }
        }
    }
    assert_eq!(refusals, 2, "the bucket never ran dry");
    assert!(
        stores[0].local_denial_count() > before,
        "the second refusal on a stopped clock was a round trip too"
    );
}

// ---------------------------------------------------------------------------
// Faults.

async fn wait_until_up(g: &Guard, store: &RedisStore, clock: &ManualClock) {
    wait::until("the store recovered", || async {
        if !store.is_down() {
            return true;
        }
        clock.advance_ms(1_000);
        send(g, "sk-probe", None).await;
        false
    })
    .await;
}

/// `fail_open`: Redis killed mid-run → requests are still served, under the same
/// limits kept per replica in memory, with one outage counted; Redis back →
/// shared limits again.
#[tokio::test]
async fn fail_open_keeps_serving_and_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = RedisStore::new(&store_config(&server, OnError::FailOpen, 500)).expect("store");
    let g = guard(Arc::new(store.clone()), &clock);
    for _ in 0..10 {
        assert_eq!(send(&g, "sk-open", None).await.0, StatusCode::OK);
    }
    let mut con = raw(&server).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("test:a:*")
        .query_async(&mut con)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut con)
        .await
        .expect("pttl");
    // 10 of 600/min drain in 1 s, plus 1 s of slack.
    assert!((1..=2_000).contains(&ttl), "ttl {ttl}");

    server.kill();
    // A fresh account: 600 at once are admitted locally, the 601st is refused.
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..601 {
        match send(&g, "sk-during", None).await.0 {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (600, 1));
    assert!(store.is_down());
    assert_eq!(store.outage_count(), 1);
    assert!(store.fallback_count() >= 601, "{}", store.fallback_count());

    server.restart();
    wait_until_up(&g, &store, &clock).await;
    let before = store.fallback_count();
    assert_eq!(send(&g, "sk-after", None).await.0, StatusCode::OK);
    assert_eq!(store.fallback_count(), before);
    let mut con = raw(&server).await;
    let n: i64 = redis::cmd("EXISTS")
        .arg(store.key_of(&Subject {
            scope: Scope::Account,
            key: g.shared().settings().identity.hash_key("sk-after").0,
            group: None,
            limits: [None; 4],
        }))
        .query_async(&mut con)
        .await
        .expect("exists");
    assert_eq!(n, 1, "the admission after recovery went to Redis");
    assert_eq!(store.outage_count(), 1);
}

/// `fail_closed`: Redis killed → 503 in the path's dialect; Redis back → 200.
#[tokio::test]
async fn fail_closed_answers_503_and_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = RedisStore::new(&store_config(&server, OnError::FailClosed, 500)).expect("store");
    let g = guard(Arc::new(store.clone()), &clock);
    assert_eq!(send(&g, "sk-closed", None).await.0, StatusCode::OK);
    server.kill();
    for _ in 0..20 {
        let (status, body) = send(&g, "sk-closed", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("temporarily unavailable"), "{body}");
    }
    assert_eq!(store.fallback_count(), 0);
    assert!(store.is_down());
    server.restart();
    wait_until_up(&g, &store, &clock).await;
    assert_eq!(send(&g, "sk-closed", None).await.0, StatusCode::OK);
}

/// Two replicas on one Redis, `fail_open`: Redis is killed, replica A admits
/// during the outage, Redis restarts empty. Replica B's connection died while
/// it was idle: its next call must reconnect and go to Redis, not pass for an
/// outage and admit from B's local buckets on top of the shared ones (B used to
/// admit 15 of 15 with a limit of 10 this way).
#[tokio::test]
async fn an_idle_replica_recovers_without_a_local_leak() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let config = store_config(&server, OnError::FailOpen, 500);
    let a = RedisStore::new(&config).expect("replica A");
    let b = RedisStore::new(&config).expect("replica B");
    for store in [&a, &b] {
        assert!(store
            .admit(&admission(T0, 1))
            .await
            .expect("warm")
            .denied
            .is_none());
    }
    server.kill();
    let during = a.admit(&admission(T0 + 1, 2)).await.expect("fail_open");
    assert!(during.denied.is_none());
    assert!(a.is_down(), "A saw the outage");
    // The outage lasts longer than the client's own reconnection attempts
    // (two, 100 ms apart at most), so B's connection is dead, not renewed,
    // when Redis is back: the duration of the scenario, not a wait for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();

    // A fresh account, limit 10 per minute, 15 requests through B.
    let mut admitted = 0;
    for i in 0..15 {
        if b.admit(&admission(T0 + 2 + i, 3))
            .await
            .expect("admit")
            .denied
            .is_none()
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10, "B admitted more than the limit");
    assert_eq!(b.outage_count(), 0, "a stale connection is not an outage");
    assert_eq!(b.fallback_count(), 0, "every answer came from Redis");

    // However long B's view of Redis takes to settle, the account stays refused.
    wait::until("B answers from Redis", || async {
        b.admit(&admission(T0 + 20, 4)).await.is_ok() && !b.is_down()
    })
    .await;
    for i in 0..5 {
        let out = b.admit(&admission(T0 + 30 + i, 3)).await.expect("admit");
        assert!(
            out.denied.is_some(),
            "request {} of 10 per minute admitted",
            16 + i
        );
    }
}

fn subject(key: u8, rpm: f64) -> Subject {
    Subject {
        scope: Scope::Account,
        key: [key; 16],
        group: None,
        limits: [
            Some(BucketLimit::new(rpm, 60_000.0, rpm)),
            None,
            Some(BucketLimit::new(10_000.0, 60_000.0, 10_000.0)),
            None,
        ],
    }
}

fn admission(now_ms: u64, key: u8) -> Admission {
    Admission {
        now_ms,
        account: subject(key, 10.0),
        cluster: None,
        account_group: None,
        cluster_group: None,
        tokens: 100.0,
    }
}

/// After `SCRIPT FLUSH` the next call reloads the script and goes on with the
/// same state, without an error or a fallback.
#[tokio::test]
async fn noscript_after_script_flush_is_transparent() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&store_config(&server, OnError::FailClosed, 2_000)).expect("s");
    let first = store.admit(&admission(T0, 1)).await.expect("admit");
    assert_eq!(first.views[0][0].expect("rpm").remaining, 9.0);
    let mut con = raw(&server).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .expect("flush");
    let second = store.admit(&admission(T0, 1)).await.expect("reloaded");
    assert_eq!(second.views[0][0].expect("rpm").remaining, 8.0);
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(redis::Script::new("return 1").get_hash())
        .query_async(&mut con)
        .await
        .expect("exists");
    assert_eq!(exists, vec![false]);
    assert!(!store.is_down());
    assert_eq!(store.fallback_count(), 0);
}

/// A frozen Redis (SIGSTOP) costs a request no more than the configured timeout:
/// `fail_closed` gets `Timeout`, `fail_open` an answer from memory; once it
/// resumes, Redis answers again.
#[tokio::test]
async fn a_frozen_redis_is_bounded_by_the_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(150);
    let closed = RedisStore::new(&store_config(&server, OnError::FailClosed, 150)).expect("closed");
    let open = RedisStore::new(&store_config(&server, OnError::FailOpen, 150)).expect("open");
    // Connect both first.
    closed.admit(&admission(T0, 2)).await.expect("up");
    open.admit(&admission(T0, 3)).await.expect("up");

    server.pause();
    // The store's own timeout answers (the guard here only catches a hang).
    let guard = timeout + Duration::from_secs(5);
    let err = wait::within(
        "a fail_closed admission",
        guard,
        closed.admit(&admission(T0, 2)),
    )
    .await
    .expect_err("frozen");
    assert!(matches!(err, StoreError::Timeout), "{err:?}");
    assert!(closed.is_down());

    let out = wait::within(
        "a fail_open admission",
        guard,
        open.admit(&admission(T0, 3)),
    )
    .await
    .expect("fails open");
    assert!(out.denied.is_none());
    assert_eq!(open.fallback_count(), 1);
    assert_eq!(open.outage_count(), 1);
    // While down, requests go straight to memory: every one is a fallback, and
    // no more outages are counted (the probe interval keeps them off Redis).
    for _ in 0..50 {
        open.admit(&admission(T0, 3)).await.expect("local");
    }
    assert_eq!(open.fallback_count(), 51);
    assert_eq!(open.outage_count(), 1);

    server.resume();
    wait::until("the store recovered", || async {
        closed.admit(&admission(T0 + 1, 2)).await.is_ok() && !closed.is_down()
    })
    .await;
}

/// A settlement while Redis is down is not lost: it lands in the in-process
/// store after one retry.
#[tokio::test]
async fn settlement_during_an_outage_lands_locally() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&store_config(&server, OnError::FailOpen, 300)).expect("s");
    store.admit(&admission(T0, 4)).await.expect("up");
    server.kill();
    // The store does not know yet: the settlement is spawned, retried, then kept.
    store.settle(Settlement {
        now_ms: T0,
        account: subject(4, 10.0),
        cluster: None,
        account_group: None,
        cluster_group: None,
        token_delta: 700.0,
    });
    wait::until_true("the settlement landed locally", || {
        store.fallback_count() > 0
    })
    .await;
    let view = store.fallback_store().peek(&subject(4, 10.0), T0)[2].expect("tokens");
    assert_eq!(view.remaining, 9_300.0);
    assert!(store.is_down());
}

/// Hostile or corrupt state never panics: a value of the wrong length, with NaNs,
/// or of another type reads as a fresh subject.
#[tokio::test]
async fn corrupt_state_is_an_error_not_a_panic() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&store_config(&server, OnError::FailClosed, 2_000)).expect("s");
    let mut con = raw(&server).await;
    let nan48: Vec<u8> = std::iter::repeat_n(f64::NAN.to_le_bytes(), 6)
        .flatten()
        .collect();
    for (key, value) in [(5u8, b"garbage".to_vec()), (8, nan48), (9, vec![0xff; 48])] {
        let _: () = redis::cmd("SET")
            .arg(store.key_of(&subject(key, 10.0)))
            .arg(value)
            .query_async(&mut con)
            .await
            .expect("set");
        let out = store
            .admit(&admission(T0, key))
            .await
            .expect("garbage reads as fresh");
        assert_eq!(out.views[0][0].expect("rpm").remaining, 9.0);
    }

    // A key of another type under the prefix reads as fresh and is replaced.
    let key = store.key_of(&subject(6, 10.0));
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(&["l1", "1"])
        .query_async(&mut con)
        .await
        .expect("hset");
    let out = store.admit(&admission(T0, 6)).await.expect("replaced");
    assert_eq!(out.views[0][0].expect("rpm").remaining, 9.0);
    let kind: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut con)
        .await
        .expect("type");
    assert_eq!(kind, "string");
    assert_eq!(store.fallback_count(), 0);
}

/// A server that answers every command with nonsense: errors, no panic.
#[tokio::test]
async fn a_nonsense_server_is_an_error_not_a_panic() {
    if support::redis_server_binary().is_none() {
        support::report_skip();
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if sock.write_all(b"*2\r\n:7\r\n$-1\r\n").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let cfg = StoreConfig {
        backend: Backend::Redis,
        url: Some(format!("redis://127.0.0.1:{port}")),
        timeout: Duration::from_millis(300),
        on_error: OnError::FailClosed,
        key_prefix: "x:".into(),
        deny_cache: true,
        ..StoreConfig::default()
    };
    let store = RedisStore::new(&cfg).expect("store");
    for _ in 0..3 {
        assert!(store.admit(&admission(T0, 7)).await.is_err());
    }
    let open = RedisStore::new(&StoreConfig {
        on_error: OnError::FailOpen,
        ..cfg
    })
    .expect("store");
    assert!(open
        .admit(&admission(T0, 7))
        .await
        .expect("local")
        .denied
        .is_none());
}

/// Settlements are queued and sent in batches, in order: after a burst of them
/// Redis holds exactly what the embedded store computes for the same sequence
/// (the deltas alternate so that clamping at zero makes order matter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_settlements_arrive_complete_and_in_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&store_config(&server, OnError::FailClosed, 2_000)).expect("s");
    let memory = MemoryStore::new();
    let deltas = [7.0, -10.0, 3.0, -1.0, 12.0];
    for i in 0..900usize {
        let s = Settlement {
            now_ms: T0,
            account: subject((i % 3) as u8 + 20, 10.0),
            cluster: None,
            account_group: None,
            cluster_group: None,
            token_delta: deltas[i % deltas.len()],
        };
        memory.settle_now(&s);
        store.settle(s);
    }
    let con = raw(&server).await;
    for k in 20..23u8 {
        let want = 10_000.0
            - memory.peek(&subject(k, 10.0), T0)[2]
                .expect("tokens")
                .remaining;
        assert!(want > 0.0);
        let key = store.key_of(&subject(k, 10.0));
        wait::until(&format!("key {k} holds {want} tokens"), || {
            let (mut con, key) = (con.clone(), key.clone());
            async move {
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut con)
                    .await
                    .expect("get");
                let level = bytes
                    .filter(|b| b.len() == 48)
                    .map(|b| f64::from_le_bytes(b[16..24].try_into().expect("8 bytes")));
                level == Some(want)
            }
        })
        .await;
    }
    assert_eq!(store.fallback_count(), 0);
}

/// The settlement queue is bounded: beyond `SETTLEMENT_QUEUE` waiting, a
/// settlement of subjects already queued is folded into theirs (and still
/// reaches Redis), one of other subjects is applied in process; both are
/// counted. Single-threaded runtime: the sending task runs only once the test
/// awaits, so the queue is exactly full when the extra settlements arrive.
#[tokio::test]
async fn a_full_settlement_queue_folds_or_overflows_and_counts_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&store_config(&server, OnError::FailClosed, 2_000)).expect("s");
    let settle = |key: u8| Settlement {
        now_ms: T0,
        account: subject(key, 10.0),
        cluster: None,
        account_group: None,
        cluster_group: None,
        token_delta: 1.0,
    };
    for _ in 0..RedisStore::SETTLEMENT_QUEUE {
        store.settle(settle(30));
    }
    for _ in 0..10 {
        store.settle(settle(30));
    }
    for _ in 0..5 {
        store.settle(settle(31));
    }
    let status = |s: &RedisStore| s.status().expect("a shared store reports");
    let st = status(&store);
    assert_eq!(st.settlements_pending, RedisStore::SETTLEMENT_QUEUE as u64);
    assert_eq!((st.settlements_merged, st.settlements_overflow), (10, 5));

    wait::until_true("the queue drained", || {
        status(&store).settlements_pending == 0
    })
    .await;
    let st = status(&store);
    assert_eq!(st.settlements_sent, RedisStore::SETTLEMENT_QUEUE as u64);
    assert_eq!(st.settlements_local, 0);
    // Every token of account 30 reached Redis, the folded ones included; the
    // overflow of account 31 is in the in-process store only.
    let charged = |views: [Option<distill_guard::store::BucketView>; 4]| {
        10_000.0 - views[2].expect("tokens").remaining
    };
    let mut con = raw(&server).await;
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(store.key_of(&subject(30, 10.0)))
        .query_async(&mut con)
        .await
        .expect("get");
    let level = f64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    assert_eq!(level, (RedisStore::SETTLEMENT_QUEUE + 10) as f64);
    let absent: Option<Vec<u8>> = redis::cmd("GET")
        .arg(store.key_of(&subject(31, 10.0)))
        .query_async(&mut con)
        .await
        .expect("get");
    assert!(absent.is_none(), "the overflow never reached Redis");
    assert_eq!(
        charged(store.fallback_store().peek(&subject(31, 10.0), T0)),
        5.0
    );
}

/// Local leases (`local_leases`): two replicas hammer one account at one
/// instant. Leases answer most admissions without a round trip, yet together
/// the replicas never admit more than the limit; once the leases expire what
/// is left of them is given back, and Redis holds exactly what was admitted
/// (and settled: a lease takes its admissions' token refunds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_never_admit_more_than_the_limit_and_are_given_back() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut cfg = store_config(&server, OnError::FailClosed, 2_000);
    cfg.local_leases = true;
    let replicas = [
        RedisStore::new(&cfg).expect("replica A"),
        RedisStore::new(&cfg).expect("replica B"),
    ];
    let account = subject(40, 1_000.0);
    let at = |now_ms| Admission {
        now_ms,
        account: account.clone(),
        cluster: None,
        account_group: None,
        cluster_group: None,
        tokens: 10.0,
    };
    let mut admitted = 0u32;
    for round in 0..200u64 {
        for (i, store) in replicas.iter().enumerate() {
            // Time stands still for the first 1,000 admissions (the burst),
            // then moves on a millisecond per round.
            let now = T0 + round.saturating_sub(100);
            for _ in 0..5 {
                if store.admit(&at(now)).await.expect("admit").denied.is_none() {
                    admitted += 1;
                    // Each used 6 of the 10 tokens it reserved.
                    store.settle(Settlement {
                        now_ms: now,
                        account: account.clone(),
                        cluster: None,
                        account_group: None,
                        cluster_group: None,
                        token_delta: -4.0,
                    });
                }
            }
            let _ = i;
        }
    }
    assert!(
        leased_admissions(&replicas) > 0,
        "leases answered some admissions"
    );
    // 1,000 at once plus what 99 ms refill (1.65 requests).
    assert!(
        admitted <= 1_001,
        "{admitted} admitted over a limit of 1,000"
    );
    // Units leased to one replica wait there until used or given back: at
    // most 1/16 of the capacity per replica.
    assert!(admitted >= 1_001 - 2 * 62, "{admitted} admitted");

    // A second later every lease has expired and is given back.
    let later = T0 + 100 + 1_000;
    for store in &replicas {
        store.admit(&at(later)).await.expect("admit");
        leases_given_back(store).await;
    }
    // Redis holds exactly what was admitted (two more just now), drained by
    // the time that passed.
    let views = replicas[0]
        .inspect(&account, later)
        .await
        .expect("inspect")
        .expect("supported");
    let held = 1_000.0 - views[0].expect("rpm").remaining;
    let drained = 1_000.0 / 60_000.0 * 1_100.0;
    let expect = (f64::from(admitted) + 2.0 - drained).max(0.0);
    assert!(
        (held - expect).abs() < 1e-6,
        "Redis holds {held}, admitted {admitted} (+2) less {drained} drained"
    );
    // Tokens: 6 per settled admission (the refunds of leased ones went back
    // with their leases), 10 for each of the last two, less what drained.
    let tokens = 10_000.0 - views[2].expect("tpm").remaining;
    let expect = f64::from(admitted) * 6.0 + 20.0 - 10_000.0 / 60_000.0 * 1_100.0;
    assert!(
        (tokens - expect).abs() < 1e-6,
        "Redis holds {tokens} tokens, not {expect}"
    );
}

/// `Store::inspect` reads a subject's buckets from Redis without charging them.
#[tokio::test]
async fn inspect_reads_buckets_without_charging() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&store_config(&server, OnError::FailClosed, 2_000)).expect("s");
    store.admit(&admission(T0, 7)).await.expect("admit");
    store.admit(&admission(T0, 7)).await.expect("admit");
    for _ in 0..2 {
        let views = store
            .inspect(&subject(7, 10.0), T0)
            .await
            .expect("inspect")
            .expect("supported");
        assert_eq!(views[0].expect("rpm").remaining, 8.0);
        assert_eq!(views[2].expect("tpm").remaining, 9_800.0);
        assert!(views[1].is_none(), "unlimited window");
    }
    // Six seconds refill one request of ten per minute.
    let later = store
        .inspect(&subject(7, 10.0), T0 + 6_000)
        .await
        .expect("inspect")
        .expect("supported");
    assert_eq!(later[0].expect("rpm").remaining, 9.0);
    let fresh = store
        .inspect(&subject(8, 10.0), T0)
        .await
        .expect("inspect")
        .expect("supported");
    assert_eq!(fresh[0].expect("rpm").remaining, 10.0);
}

// ---------------------------------------------------------------------------
// Batched admissions.

/// Runs `futures` concurrently, polling them in order: each queues its admission
/// on its first poll, so they reach the store's batching task in this order.
async fn in_order<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut done: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match std::pin::Pin::new(&mut *f).poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().map(|v| v.expect("finished")).collect()
}

async fn evalsha_calls(con: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

/// Admissions that are in flight together go to Redis as one script call, and
/// each gets exactly the outcome it would get alone, in queue order: the same,
/// bit for bit, as `MemoryStore` given the same sequence. Four accounts and two
/// clusters, so a batch touches the same keys many times (with limits changing
/// and clocks going back a little between calls of one batch).
#[tokio::test]
async fn batched_admissions_are_bit_identical_to_the_memory_store_in_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut con = raw(&server).await;
    for seed in 0..16u64 {
        batched_admissions_match(&server, &mut con, seed).await;
    }
}

async fn batched_admissions_match(
    server: &RedisServer,
    con: &mut redis::aio::MultiplexedConnection,
    seed: u64,
) {
    let mut cfg = store_config(server, OnError::FailClosed, 5_000);
    cfg.deny_cache = false;
    cfg.key_prefix = format!("batch{seed}:");
    let redis = RedisStore::new(&cfg).expect("store");
    let memory = MemoryStore::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut now = T0;
    let (mut admitted, mut denied, mut sent) = (0, 0, 0u64);
    let calls_before = evalsha_calls(con).await;
    for round in 0..12 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            now = match rng.random_range(0..10) {
                0 => now - rng.random_range(0..300),
                1 => now + rng.random_range(0..60_000),
                _ => now + rng.random_range(0..400),
            };
            let (account, cluster, account_group, cluster_group) = random_subjects(&mut rng, false);
            batch.push(Admission {
                now_ms: now,
                account,
                cluster,
                account_group,
                cluster_group,
                tokens: [0.0, 1.0, 250.0, 999.0][rng.random_range(0..4)],
            });
        }
        let got = in_order(batch.iter().map(|a| redis.admit(a)).collect()).await;
        sent += batch.len() as u64;
        for (i, (a, got)) in batch.iter().zip(got).enumerate() {
            let want = memory.admit_now(a);
            let got = got.expect("redis answers");
            assert_eq!(got, want, "seed {seed} round {round} admission {i}: {a:?}");
            if want.denied.is_some() {
                denied += 1;
            } else {
                admitted += 1;
            }
        }
        // A refund between rounds, through Redis and the embedded store alike.
        let (account, cluster, account_group, cluster_group) = random_subjects(&mut rng, false);
        let s = Settlement {
            now_ms: now,
            account,
            cluster,
            account_group,
            cluster_group,
            token_delta: -rng.random_range(0.0..2_000.0_f64).round(),
        };
        memory.settle_now(&s);
        redis.settle_in_redis(&s).await.expect("settle");
    }
    assert!(admitted > 100 && denied > 100, "{admitted} / {denied}");
    // 1,200 admissions and 12 settlements took a few dozen script calls at most
    // (a NOSCRIPT retry counts twice), not one per admission.
    let calls = evalsha_calls(con).await - calls_before;
    assert!(calls <= 60, "{calls} script calls for {sent} admissions");
    assert_eq!(redis.fallback_count(), 0);
}

/// Many admissions of one account racing through three stores (each batching
/// its own) admit exactly the burst: no admission is lost or charged twice in a
/// batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admissions_over_a_limit_admit_exactly_the_limit() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let stores: Vec<RedisStore> = (0..3)
        .map(|_| RedisStore::new(&store_config(&server, OnError::FailClosed, 5_000)).expect("s"))
        .collect();
    let cluster = Subject {
        scope: Scope::Cluster,
        key: [42; 16],
        group: None,
        limits: [
            Some(BucketLimit::new(1_000.0, 60_000.0, 1_000.0)),
            None,
            None,
            None,
        ],
    };
    let mut tasks = Vec::new();
    for i in 0..900usize {
        let store = stores[i % 3].clone();
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let a = Admission {
                now_ms: T0,
                account: subject(41, 100.0),
                cluster: Some(cluster),
                account_group: None,
                cluster_group: None,
                tokens: 1.0,
            };
            store
                .admit(&a)
                .await
                .expect("redis answers")
                .denied
                .is_none()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += u32::from(t.await.expect("task"));
    }
    assert_eq!(admitted, 100);
    let views = stores[0]
        .inspect(&subject(41, 100.0), T0)
        .await
        .expect("inspect")
        .expect("views");
    assert_eq!(views[0].expect("rpm").remaining, 0.0);
    let views = stores[0]
        .inspect(&cluster, T0)
        .await
        .expect("inspect")
        .expect("views");
    assert_eq!(views[0].expect("rpm").remaining, 900.0);
    assert!(stores.iter().all(|s| s.fallback_count() == 0));
}

/// While Redis is frozen, admissions queued behind a batch that never returns
/// still get their answer within the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_admissions_are_bounded_by_the_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(150);
    let store = RedisStore::new(&store_config(&server, OnError::FailClosed, 150)).expect("s");
    store.admit(&admission(T0, 11)).await.expect("up");
    server.pause();
    // Every admission comes back with an error: none hangs behind the batch
    // that never returns (the guard only catches a hang).
    let guard = timeout + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for i in 0..300u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            wait::within(
                "a queued admission",
                guard,
                store.admit(&admission(T0 + i, 12)),
            )
            .await
        }));
    }
    for t in tasks {
        let result = t.await.expect("task");
        assert!(
            matches!(result, Err(StoreError::Timeout | StoreError::Down)),
            "a frozen redis answered: {result:?}"
        );
    }
    assert!(store.is_down());
    server.resume();
}

/// A server whose reply to every command is a well-formed batch reply of the
/// wrong size: an error for every admission, never a panic or a hang.
#[tokio::test]
async fn a_batch_reply_of_the_wrong_size_is_an_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A fake server: `+OK` to the client's connection set-up commands, and to
    // every script call a batch reply of three admissions, whatever the batch.
    let mut reply = b"*3\r\n".to_vec();
    for _ in 0..3 {
        reply.extend_from_slice(b"*2\r\n:1\r\n$48\r\n");
        reply.extend_from_slice(&[0u8; 48]);
        reply.extend_from_slice(b"\r\n");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let mut out = Vec::new();
                    for _ in 0..text.matches("CLIENT").count() {
                        out.extend_from_slice(b"+OK\r\n");
                    }
                    for _ in 0..text.matches("EVALSHA").count() {
                        out.extend_from_slice(&reply);
                    }
                    if sock.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let store = RedisStore::new(&StoreConfig {
        backend: Backend::Redis,
        url: Some(format!("redis://127.0.0.1:{port}")),
        timeout: Duration::from_millis(300),
        on_error: OnError::FailClosed,
        key_prefix: "x:".into(),
        deny_cache: true,
        ..StoreConfig::default()
    })
    .expect("store");
    let batch: Vec<Admission> = (0..5).map(|i| admission(T0 + i, 13)).collect();
    let results = in_order(batch.iter().map(|a| store.admit(a)).collect()).await;
    // Admissions that went alone got a reply of the right shape for one; at
    // least the batched ones must be refused for the reply's size.
    let mut wrong_size = 0;
    for r in &results {
        match r {
            Err(StoreError::Unavailable(m)) if m.to_string().contains("replies for a batch of") => {
                wrong_size += 1
            }
            other => assert!(
                other.is_err(),
                "a 3-reply answer admitted something: {other:?}"
            ),
        }
    }
    assert!(
        wrong_size > 0,
        "no batch was refused for its size: {results:?}"
    );
}

// ---------------------------------------------------------------------------
// TLS (`rediss://`).

/// The line printed when the TLS test cannot run.
const TLS_SKIPPED: &str = "redis TLS test SKIPPED";

/// A `redis-server` serving only TLS on a free loopback port, with a throwaway
/// CA and server certificate made by the `openssl` command; killed on drop.
struct TlsRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip_tls(why: &str) {
    support::report_skip_line(&format!("{TLS_SKIPPED}: {why}"));
}

impl TlsRedis {
    /// `None` (after printing why) when `redis-server` or `openssl` is missing or
    /// the server was built without TLS.
    fn start() -> Option<Self> {
        use std::process::{Command, Stdio};
        let binary = support::redis_server_binary().or_else(|| {
            skip_tls("redis-server not found");
            None
        })?;
        let mut dir = tempfile::tempdir().expect("temp dir");
        let openssl = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        std::fs::write(
            dir.path().join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("ext");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let made = openssl(
            &[
                &["req", "-x509", "-nodes", "-days", "2"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-subj",
                    "/CN=test CA",
                ],
            ]
            .concat(),
        ) && openssl(
            &[
                &["req", "-nodes"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr"],
                &["-subj", "/CN=localhost"],
            ]
            .concat(),
        ) && openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ]);
        if !made {
            skip_tls("the openssl command is missing or failed");
            return None;
        }
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let child = Command::new(&binary)
                .current_dir(dir.path())
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .args([
                    "--tls-cert-file",
                    "server.crt",
                    "--tls-key-file",
                    "server.key",
                ])
                .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut server = TlsRedis { dir, port, child };
            let mut exited = || matches!(server.child.try_wait(), Ok(Some(_)));
            wait::until_blocking("redis-server with TLS listens or exits", || {
                exited() || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if !exited() {
                return Some(server);
            }
            // Exited at once: most likely built without TLS (or the port was
            // taken); try another port, then give up.
            dir = std::mem::replace(&mut server.dir, tempfile::tempdir().expect("dir"));
        }
        skip_tls("redis-server would not start with --tls-port (built without TLS?)");
        None
    }

    fn config(&self, ca: bool) -> StoreConfig {
        StoreConfig {
            backend: Backend::Redis,
            url: Some(format!("rediss://127.0.0.1:{}/0", self.port)),
            timeout: Duration::from_secs(2),
            on_error: OnError::FailClosed,
            key_prefix: "tls:".into(),
            deny_cache: true,
            tls_ca_file: ca.then(|| self.dir.path().join("ca.crt")),
            ..StoreConfig::default()
        }
    }
}

/// The process-wide rustls crypto provider, the application's choice (the
/// library installs none): ring, as the binary does.
fn crypto_provider() {
    // An error only means it is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `rediss://` with the server's CA: admissions (batched), settlements and
/// inspection work over TLS. Without that CA (the platform's roots only) the
/// certificate is refused and so is every call: certificates are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_the_servers_ca_works_and_without_it_is_refused() {
    crypto_provider();
    let Some(server) = TlsRedis::start() else {
        return;
    };
    let cfg = server.config(true);
    cfg.validate().expect("valid");
    let store = RedisStore::new(&cfg).expect("tls store");
    let mut tasks = Vec::new();
    for i in 0..30u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.admit(&admission(T0 + i % 2, 30)).await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        let out = t.await.expect("task").expect("admitted over TLS");
        admitted += u32::from(out.denied.is_none());
    }
    // 10 per minute, 30 asking within 2 ms.
    assert_eq!(admitted, 10);
    store
        .settle_in_redis(&Settlement {
            now_ms: T0 + 1,
            account: subject(30, 10.0),
            cluster: None,
            account_group: None,
            cluster_group: None,
            token_delta: -400.0,
        })
        .await
        .expect("settle over TLS");
    let views = store
        .inspect(&subject(30, 10.0), T0 + 1)
        .await
        .expect("inspect over TLS")
        .expect("views");
    // 10 × 100 tokens charged, 400 refunded, at most 1 ms of refill.
    let remaining = views[2].expect("tpm").remaining;
    assert!(
        (9_400.0..=9_400.0 + 10_000.0 / 60_000.0).contains(&remaining),
        "{remaining}"
    );
    assert_eq!(store.fallback_count(), 0);

    let untrusted = RedisStore::new(&server.config(false)).expect("store");
    let err = untrusted
        .admit(&admission(T0, 31))
        .await
        .expect_err("a certificate from an unknown CA must be refused");
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.to_string().contains("certificate")),
        "{err:?}"
    );
    assert!(untrusted.is_down());

    // Plain text against the TLS port: an error, not a hang or a panic.
    let mut plain = server.config(false);
    plain.url = Some(format!("redis://127.0.0.1:{}", server.port));
    plain.timeout = Duration::from_millis(300);
    let plain = RedisStore::new(&plain).expect("store");
    assert!(plain.admit(&admission(T0, 32)).await.is_err());
}

/// TLS settings are checked when the store is built: `#insecure` is refused,
/// and so are a CA file that is missing or holds no certificate, or a CA file
/// with a plain `redis://` URL.
#[tokio::test]
async fn tls_settings_are_validated() {
    crypto_provider();
    let dir = tempfile::tempdir().expect("dir");
    let base = StoreConfig {
        backend: Backend::Redis,
        url: Some("rediss://127.0.0.1:6380".into()),
        ..StoreConfig::default()
    };
    base.validate().expect("rediss is accepted");
    let insecure = StoreConfig {
        url: Some("rediss://127.0.0.1:6380/#insecure".into()),
        ..base.clone()
    };
    let err = insecure.validate().expect_err("insecure");
    assert!(err.to_string().contains("store.url"), "{err}");

    let missing = StoreConfig {
        tls_ca_file: Some(dir.path().join("nope.pem")),
        ..base.clone()
    };
    let err = RedisStore::new(&missing).expect_err("missing file");
    assert!(err.to_string().contains("store.tls_ca_file"), "{err}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").expect("write");
    let err = RedisStore::new(&StoreConfig {
        tls_ca_file: Some(empty.clone()),
        ..base.clone()
    })
    .expect_err("no certificate");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");

    let plain = StoreConfig {
        url: Some("redis://127.0.0.1:6379".into()),
        tls_ca_file: Some(empty),
        ..base
    };
    let err = plain.validate().expect_err("CA file without TLS");
    assert!(err.to_string().contains("store.tls_ca_file"), "{err}");
}

/// Admissions the replicas answered from their leases.
fn leased_admissions(replicas: &[RedisStore]) -> u64 {
    replicas
        .iter()
        .map(|s| s.status().expect("status").leased_admissions)
        .sum()
}

/// Waits until `store` holds no lease and has sent every settlement.
async fn leases_given_back(store: &RedisStore) {
    wait::until_true("the leases given back", || {
        let s = store.status().expect("status");
        s.leases == 0 && s.settlements_pending == 0
    })
    .await;
}

/// Local leases with a model group: an admission is answered locally only
/// when the account's and its group's buckets are both leased, so across two
/// replicas the group's limit holds exactly while the tier's has room, and
/// every unit comes back when the leases expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_cover_model_group_buckets_too() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut cfg = store_config(&server, OnError::FailClosed, 2_000);
    cfg.local_leases = true;
    cfg.key_prefix = "lease-groups:".into();
    let replicas = [
        RedisStore::new(&cfg).expect("replica A"),
        RedisStore::new(&cfg).expect("replica B"),
    ];
    let account = subject(41, 100_000.0);
    let group = account.in_group(
        "gpt-5*".into(),
        [
            Some(BucketLimit::new(1_000.0, 60_000.0, 1_000.0)),
            None,
            None,
            None,
        ],
    );
    let at = |now_ms| Admission {
        now_ms,
        account: account.clone(),
        cluster: None,
        account_group: Some(group.clone()),
        cluster_group: None,
        tokens: 10.0,
    };
    let mut admitted = 0u32;
    for _ in 0..200u64 {
        for store in &replicas {
            for _ in 0..6 {
                if store.admit(&at(T0)).await.expect("admit").denied.is_none() {
                    admitted += 1;
                    store.settle(Settlement {
                        now_ms: T0,
                        account: account.clone(),
                        cluster: None,
                        account_group: Some(group.clone()),
                        cluster_group: None,
                        token_delta: -4.0,
                    });
                }
            }
        }
    }
    assert!(
        leased_admissions(&replicas) > 0,
        "leases answered some admissions"
    );
    assert!(
        admitted <= 1_000,
        "{admitted} admitted over the group's 1,000"
    );
    // Units leased to a replica and unused: at most 1/16 of the group's
    // capacity per replica.
    assert!(admitted >= 1_000 - 2 * 62, "{admitted} admitted");
    let later = T0 + 1_000;
    for store in &replicas {
        store.admit(&at(later)).await.expect("admit");
        leases_given_back(store).await;
    }
    // Redis holds exactly what was admitted in the group's bucket and in the
    // tier's (which never refused), drained by the second that passed.
    let held = |subject: &Subject, capacity: f64| {
        let subject = subject.clone();
        let store = replicas[0].clone();
        async move {
            let views = store
                .inspect(&subject, later)
                .await
                .expect("inspect")
                .expect("supported");
            capacity - views[0].expect("rpm").remaining
        }
    };
    let group_held = held(&group, 1_000.0).await;
    let expect = f64::from(admitted) + 2.0 - 1_000.0 / 60_000.0 * 1_000.0;
    assert!(
        (group_held - expect).abs() < 1e-6,
        "the group's bucket holds {group_held}, expected {expect} for {admitted} admitted"
    );
    // The tier's bucket (100,000 a minute) drained all of it in that second:
    // it holds at most the two admissions made just now (a give-back that
    // lands after one of them is clamped at an empty bucket).
    let account_held = held(&account, 100_000.0).await;
    assert!(account_held <= 2.0, "{account_held}");
}
