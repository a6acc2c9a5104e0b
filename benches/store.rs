//! Admissions per second of the Redis store against the embedded one, with 64
//! admissions in flight (the way a busy replica uses it), at two levels:
//!
//! * `store/*`: `Store::admit` alone, 10,000 accounts in 100 clusters, all
//!   admitted (every admission goes to Redis, in batches of those in flight
//!   together; the cache of refused subjects never helps);
//! * `guard/*`: whole requests through the enforce stage (key hashing, body
//!   parsing, admission, headers, settlement) to a mock model;
//! * `refused/*`: 1,000 accounts over their limit asking again (an attack): the
//!   Redis store answers from its cache of refused subjects;
//! * `*/…+group`: the same with the request's model in a model group of its
//!   tier (`[tiers.NAME.models."PATTERN"]`), so each admission checks and
//!   charges the account's and cluster's group buckets too.
//!
//! Skips the Redis half cleanly when `redis-server` is not installed. With
//! `BENCH_REDIS_STATS=1` it prints Redis' `INFO commandstats` at the end (script
//! calls and the microseconds they took).

#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use distill_guard::clock::{Clock, SystemClock};
use distill_guard::extensions::Scope;
use distill_guard::store::gcra::BucketLimit;
use distill_guard::store::{
    Admission, Backend, MemoryStore, OnError, RedisStore, Store, StoreConfig, Subject,
};
use distill_guard::{Config, Guard};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

const IN_FLIGHT: u64 = 64;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn limits() -> [Option<BucketLimit>; 4] {
    let big = 1e12;
    [
        Some(BucketLimit::new(big, 60_000.0, big)),
        Some(BucketLimit::new(big, 86_400_000.0, big)),
        Some(BucketLimit::new(big, 60_000.0, big)),
        Some(BucketLimit::new(big, 86_400_000.0, big)),
    ]
}

fn admission(i: u64) -> Admission {
    let account = i % 10_000;
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&account.to_le_bytes());
    let mut ckey = [1u8; 16];
    ckey[..8].copy_from_slice(&(account % 100).to_le_bytes());
    Admission {
        now_ms: SystemClock.now_ms(),
        account: Subject {
            scope: Scope::Account,
            key,
            group: None,
            limits: limits(),
        },
        cluster: Some(Subject {
            scope: Scope::Cluster,
            key: ckey,
            group: None,
            limits: limits(),
        }),
        account_group: None,
        cluster_group: None,
        tokens: 500.0,
    }
}

/// Runs `iters` jobs on `IN_FLIGHT` tasks; the wall time they took.
fn run<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, job: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(async {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..IN_FLIGHT {
            let job = job.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = t;
                while i < iters {
                    job(i).await;
                    i += IN_FLIGHT;
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        start.elapsed()
    })
}

/// `a` with its account's and cluster's buckets of a model group.
fn grouped(mut a: Admission) -> Admission {
    a.account_group = Some(a.account.in_group("gpt-5*".into(), limits()));
    a.cluster_group = a
        .cluster
        .as_ref()
        .map(|c| c.in_group("gpt-5*".into(), limits()));
    a
}

fn bench_store(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    groups: bool,
) {
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            run(rt, iters, move |i| {
                let store = store.clone();
                async move {
                    let a = if groups {
                        grouped(admission(i))
                    } else {
                        admission(i)
                    };
                    let out = store.admit(&a).await.expect("admit");
                    assert!(out.denied.is_none());
                }
            })
        })
    });
    group.finish();
}

/// Refused traffic: 1,000 accounts already over a 1-per-minute limit keep
/// asking. With the deny cache the Redis store answers them without a round trip.
fn bench_refused(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
) {
    let tight = |i: u64| {
        let mut a = admission(i % 1_000);
        a.account.key[15] = 0xee;
        a.cluster = None;
        a.account.limits[0] = Some(BucketLimit::new(1.0, 60_000.0, 1.0));
        a
    };
    rt.block_on(async {
        for i in 0..2_000 {
            store.admit(&tight(i)).await.expect("admit");
        }
    });
    let mut group = c.benchmark_group("refused");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            run(rt, iters, move |i| {
                let store = store.clone();
                async move {
                    let out = store.admit(&tight(i)).await.expect("admit");
                    assert!(out.denied.is_some());
                }
            })
        })
    });
    group.finish();
}

fn guard(store: Arc<dyn Store>, groups: bool) -> Guard {
    let group = if groups {
        // The request's model `m` falls in the last of three groups.
        r#"
        [tiers.default.models."gpt-5*"]
        requests_per_minute = 1000000000
        [tiers.default.models."claude-*"]
        requests_per_minute = 1000000000
        [tiers.default.models."m"]
        requests_per_minute = 1000000000
        tokens_per_minute = 1000000000
        "#
    } else {
        ""
    };
    let cfg = Config::from_toml_str(&format!(
        r#"
        [identity]
        secret = "bench-secret"
        [tiers.default]
        requests_per_minute = 1000000000
        requests_per_day = 1000000000
        tokens_per_minute = 1000000000
        tokens_per_day = 1000000000
        {group}
        "#,
    ))
    .expect("config");
    Guard::builder(cfg).store(store).build().expect("guard")
}

fn bench_guard(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    groups: bool,
) {
    let g = guard(store, groups);
    let keys: Arc<Vec<String>> = Arc::new((0..10_000).map(|i| format!("sk-bench-{i}")).collect());
    let mut group = c.benchmark_group("guard");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let g = g.clone();
            let keys = keys.clone();
            run(rt, iters, move |i| {
                let g = g.clone();
                let key = keys[(i % 10_000) as usize].clone();
                async move {
                    let handler = tower::service_fn(|_req: Request<Full<Bytes>>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            br#"{"usage":{"prompt_tokens":12,"completion_tokens":40}}"#,
                        ))))
                    });
                    let req = Request::post("/v1/chat/completions")
                        .header("authorization", format!("Bearer {key}"))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(
                            br#"{"model":"m","messages":[{"role":"user","content":"Summarise the plot of Hamlet in three sentences."}],"max_tokens":256}"#,
                        )))
                        .expect("request");
                    let res = tower::Layer::layer(&g.enforce_layer(), handler)
                        .oneshot(req)
                        .await
                        .expect("infallible");
                    assert_eq!(res.status(), StatusCode::OK);
                    let _ = res.into_body().collect().await;
                }
            })
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    bench_store(c, "memory", &rt, Arc::new(MemoryStore::new()), false);
    bench_store(c, "memory+group", &rt, Arc::new(MemoryStore::new()), true);
    bench_guard(c, "memory", &rt, Arc::new(MemoryStore::new()), false);
    bench_guard(c, "memory+group", &rt, Arc::new(MemoryStore::new()), true);
    bench_refused(c, "memory", &rt, Arc::new(MemoryStore::new()));

    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let redis = rt.block_on(async {
        RedisStore::new(&StoreConfig {
            backend: Backend::Redis,
            url: Some(server.url()),
            timeout: Duration::from_secs(1),
            on_error: OnError::FailClosed,
            key_prefix: "bench:".into(),
            deny_cache: true,
            ..StoreConfig::default()
        })
        .expect("redis store")
    });
    bench_store(c, "redis", &rt, Arc::new(redis.clone()), false);
    bench_store(c, "redis+group", &rt, Arc::new(redis.clone()), true);
    bench_guard(c, "redis", &rt, Arc::new(redis.clone()), false);
    bench_guard(c, "redis+group", &rt, Arc::new(redis.clone()), true);
    bench_refused(c, "redis", &rt, Arc::new(redis.clone()));
    assert_eq!(redis.fallback_count(), 0, "redis failed during the bench");
    if std::env::var_os("BENCH_REDIS_STATS").is_some() {
        // Where Redis spent its time: calls and microseconds per command.
        let info: String = rt.block_on(async {
            let mut con = redis::Client::open(server.url())
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("connection");
            redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut con)
                .await
                .expect("info")
        });
        eprintln!("{info}");
    }
    drop(server);
}

criterion_group!(store, benches);
criterion_main!(store);
