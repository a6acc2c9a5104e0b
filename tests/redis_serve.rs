//! Two `distill-guard serve` processes on one real `redis-server`, as replicas
//! behind a load balancer: a campaign whose accounts each talk to one replica
//! is one cluster, with one id, on both; an override made on one replica is
//! enforced by the other.
//!
//! When `redis-server` is not on PATH the test prints
//! `redis tests SKIPPED: redis-server not found` and returns; CI fails on that line.

mod support;

use axum::body::Body;
use distill_guard::identity::Identity;
use http::Request;
use serde_json::{json, Value};
use support::process::{send, serve, Served};
use support::{wait, RedisServer};

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
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("guard.toml");
    std::fs::write(
        &config,
        format!(
            "[identity]\nsecret = \"{SECRET}\"\n[store]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"1s\"\n[cluster]\nwarmup_accounts = 3\n[admin]\ntoken = \"{TOKEN}\"\n",
            redis.url()
        ),
    )
    .expect("write config");
    let path = config.to_str().expect("utf-8 path");
    let replicas = [
        serve(&["--config", path], true),
        serve(&["--config", path], true),
    ];

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
