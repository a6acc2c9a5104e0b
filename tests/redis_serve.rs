//! Two `distill-guard serve` processes on one real `redis-server`, as replicas
//! behind a load balancer: a campaign whose accounts each talk to one replica
//! is one cluster, with one id, on both; an override made on one replica is
//! enforced by the other; after Redis restarts, a replica that was idle
//! through the outage holds the limit.
//!
//! When `redis-server` is not on PATH the test prints
//! `redis tests SKIPPED: redis-server not found` and returns; CI fails on that line.

mod support;

use std::time::Duration;

use axum::body::Body;
use distill_guard::identity::Identity;
use http::Request;
use serde_json::{json, Value};
use support::process::{send, serve, Served};
use support::{wait, RedisCluster, RedisServer};

const TOKEN: &str = "an admin token for the replicas test";
const SECRET: &str = "replicas-secret";

async fn campaign(url: &str, key: &str, i: u64) -> u16 {
    send(support::traffic::campaign_request(url, key, i, 16))
        .await
        .status
}

async fn admin(s: &Served, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("{}{path}", s.admin()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let r = send(req).await;
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_replicas_share_clusters_and_overrides() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    share_clusters_and_overrides(&format!("backend = \"redis\"\nurl = \"{}\"", redis.url())).await;
}

/// The same on a Redis Cluster of three primaries: the log, the overrides and
/// the buckets each live in a slot of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_replicas_share_clusters_and_overrides_on_a_redis_cluster() {
    let Some(redis) = RedisCluster::start(3, 0) else {
        return;
    };
    let nodes: Vec<String> = redis.urls().iter().map(|u| format!("\"{u}\"")).collect();
    share_clusters_and_overrides(&format!(
        "backend = \"redis-cluster\"\nnodes = [{}]",
        nodes.join(", ")
    ))
    .await;
}

/// Two `serve` replicas with the admin API, sharing a config of `sections`
/// (the identity secret and admin token added); the directory holds it.
fn replicas(sections: &str) -> (tempfile::TempDir, [Served; 2]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("guard.toml");
    std::fs::write(
        &config,
        format!("[identity]\nsecret = \"{SECRET}\"\n[admin]\ntoken = \"{TOKEN}\"\n{sections}"),
    )
    .expect("write config");
    let path = config.to_str().expect("utf-8 path");
    let replicas = [
        serve(&["--config", path], true),
        serve(&["--config", path], true),
    ];
    (dir, replicas)
}

async fn share_clusters_and_overrides(store: &str) {
    let (_dir, replicas) = replicas(&format!(
        "[store]\n{store}\ntimeout = \"1s\"\n[cluster]\nwarmup_accounts = 3\n"
    ));

    // Six accounts; account `a` only ever talks to replica `a % 2`.
    for round in 0..3u64 {
        for a in 0..6u64 {
            let s = &replicas[(a % 2) as usize];
            let status = campaign(&s.url, &format!("sk-rep-{a}"), round * 10 + a).await;
            assert!([200, 403, 429].contains(&status), "{status}");
        }
    }
    let id = Identity::new(SECRET.as_bytes());
    let first = id.hash_key("sk-rep-0").to_string();
    let mut ids = Vec::new();
    for s in &replicas {
        let c = wait::until_some("both replicas see the whole campaign", || async {
            let (code, v) = admin(s, "GET", &format!("/api/accounts/{first}"), None).await;
            let size = v["engine"]["cluster"]["size"]
                .as_u64()
                .or(v["cluster"]["size"].as_u64());
            (code == 200 && size == Some(6)).then_some(v)
        })
        .await;
        let cid = c["cluster_engine"]["cluster"]["id"]
            .as_str()
            .expect("cluster id")
            .to_owned();
        ids.push(cid);
    }
    assert_eq!(ids[0], ids[1], "one cluster id on both replicas");
    for s in &replicas {
        let (code, st) = admin(s, "GET", "/api/status", None).await;
        assert_eq!(code, 200);
        let log = &st["cluster_log"];
        assert_eq!(log["up"], true, "{st}");
        assert!(log["published"].as_u64() >= Some(9), "{log}");
        assert!(log["applied"].as_u64() >= Some(9), "{log}");
        assert_eq!(log["malformed"], 0);
        assert_eq!(st["overrides"]["shared"], true);
    }
    let metrics = send(
        Request::get(format!("{}/metrics", replicas[0].admin()))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .text();
    for name in [
        "distill_guard_cluster_log_events_total{event=\"published\"}",
        "distill_guard_cluster_log_events_total{event=\"applied\"}",
        "distill_guard_cluster_log_up 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    // A block made on replica 0 is enforced by replica 1.
    let blocked = id.hash_key("sk-rep-blocked").to_string();
    let (code, v) = admin(
        &replicas[0],
        "POST",
        "/api/overrides",
        Some(json!({"account": blocked, "action": "block"})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let url = replicas[1].url.clone();
    wait::until_some("replica 1 enforces the block", || {
        let url = url.clone();
        async move { (campaign(&url, "sk-rep-blocked", 99).await == 403).then_some(()) }
    })
    .await;
}

async fn organic(url: &str, key: &str) -> u16 {
    let req = Request::post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(support::traffic::organic_body(1)))
        .expect("request");
    send(req).await.status
}

/// The leak once seen after an outage: two replicas, 10 requests per minute,
/// `fail_open`; Redis is killed, one request goes through replica A, Redis
/// restarts empty; replica B (idle through the outage) then admitted 15 of 15
/// requests of a fresh account, from its local buckets and then Redis'. It
/// must admit exactly 10, and no more once it has settled on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_idle_through_an_outage_holds_the_limit_after_it() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (_dir, [a, b]) = replicas(&format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\non_error = \"fail_open\"\n[tiers.default]\nrequests_per_minute = 10\n",
        redis.url()
    ));
    assert_eq!(organic(&a.url, "sk-warm-a").await, 200);
    assert_eq!(organic(&b.url, "sk-warm-b").await, 200);
    // B is idle through the outage: its warm-up's token settlement is sent
    // before Redis goes away.
    wait::until("replica B has nothing left to send", || async {
        let (_, st) = admin(&b, "GET", "/api/status", None).await;
        st["store"]["shared"]["settlements_pending"] == 0
            && st["store"]["shared"]["settlements_sent"] == 1
    })
    .await;

    redis.kill();
    assert_eq!(organic(&a.url, "sk-outage").await, 200, "fail_open");
    // The outage lasts longer than the client's own reconnection attempts
    // (two, 100 ms apart at most), so B's connection is dead, not renewed,
    // when Redis is back: the duration of the scenario, not a wait for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();

    let mut admitted = 0;
    for _ in 0..15 {
        if organic(&b.url, "sk-fresh").await == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10, "replica B admitted more than the limit");
    let (_, st) = admin(&b, "GET", "/api/status", None).await;
    assert_eq!(st["store"]["shared"]["outages"], 0, "{st}");
    assert_eq!(st["store"]["shared"]["fallbacks"], 0, "{st}");

    // Once B answers from Redis (whatever it went through), still refused.
    wait::until("replica B's store is up", || async {
        organic(&b.url, "sk-probe").await;
        let (_, st) = admin(&b, "GET", "/api/status", None).await;
        st["store"]["shared"]["up"] == true
    })
    .await;
    for _ in 0..5 {
        assert_eq!(organic(&b.url, "sk-fresh").await, 429);
    }
}

/// The watermark trace-back index is shared: a response served by replica A
/// is traced by replica B's admin API (`trace --server` may ask either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_served_by_one_replica_is_traced_by_the_other() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    trace_across_replicas(&format!("backend = \"redis\"\nurl = \"{}\"", redis.url())).await;
}

/// The same on a Redis Cluster of three primaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_served_by_one_replica_is_traced_by_the_other_on_a_redis_cluster() {
    let Some(redis) = RedisCluster::start(3, 0) else {
        return;
    };
    let nodes: Vec<String> = redis.urls().iter().map(|u| format!("\"{u}\"")).collect();
    trace_across_replicas(&format!(
        "backend = \"redis-cluster\"\nnodes = [{}]",
        nodes.join(", ")
    ))
    .await;
}

async fn trace_across_replicas(store: &str) {
    let (_dir, [a, b]) = replicas(&format!(
        "[store]\n{store}\ntimeout = \"1s\"\n[watermark]\ntag = \"always\"\ntext_mark = false\n[[watermark.keys]]\nid = \"k1\"\nsecret = \"a watermark key for the replicas test\"\n"
    ));
    let req = Request::post(format!("{}/v1/chat/completions", a.url))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-traced")
        .body(Body::from(
            json!({"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": "tell me about caches"}]})
                .to_string(),
        ))
        .expect("request");
    let reply = send(req).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.contains_key("x-distill-guard-tag"));
    let text = reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    let account = Identity::new(SECRET.as_bytes())
        .hash_key("sk-traced")
        .to_string();
    let query = format!(
        "/api/trace?text={}",
        url_escape(&text[..text.len().min(600)])
    );
    let hit = wait::until_some("replica B traces replica A's response", || async {
        let (code, v) = admin(&b, "GET", &query, None).await;
        (code == 200 && v["hits"][0]["account"] == json!(account)).then_some(v)
    })
    .await;
    assert_eq!(hit["hits"][0]["detail"]["method"], "index", "{hit}");
    let (_, st) = admin(&b, "GET", "/api/status", None).await;
    assert!(
        st["trace_index"]["shared"]["applied"].as_u64() >= Some(1),
        "{st}"
    );
}

/// Percent-encodes `s` for a query string.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
