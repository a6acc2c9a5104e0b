//! Operator overrides kept in a real `redis-server` and followed by every replica.
//!
//! When `redis-server` is not on PATH every test prints
//! `redis tests SKIPPED: redis-server not found` and returns; CI fails on that line.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use distill_guard::admin::{self, AdminHooks};
use distill_guard::extensions::AccountId;
use distill_guard::identity::Identity;
use distill_guard::policy::ListKind;
use distill_guard::telemetry::Telemetry;
use distill_guard::{Config, Guard};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use support::RedisServer;
use tower::{service_fn, Layer, ServiceExt};

const TOKEN: &str = "an admin token that is long enough";
const SECRET: &str = "shared-secret";

fn replica(server: &RedisServer) -> (Guard, Router) {
    let cfg = Config::from_toml_str(&format!(
        r#"
        [identity]
        secret = "{SECRET}"
        [store]
        backend = "redis"
        url = "{}"
        timeout = "1s"
        key_prefix = "o:"
        "#,
        server.url()
    ))
    .expect("config");
    let telemetry = Arc::new(Telemetry::new(100));
    let guard = Guard::builder(cfg)
        .sink(telemetry.clone())
        .build()
        .expect("guard");
    let router = admin::router(&guard, &telemetry, TOKEN, None, AdminHooks::default());
    assert!(guard.shared().overrides().is_shared());
    (guard, router)
}

fn account(key: &str) -> AccountId {
    Identity::new(SECRET.as_bytes()).hash_key(key)
}

async fn post_override(router: &Router, body: serde_json::Value) -> (StatusCode, String) {
    let req = Request::post("/api/overrides")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn chat(guard: &Guard, key: &str) -> StatusCode {
    let handler = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            br#"{"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
        ))))
    });
    let req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .expect("request");
    let res = guard
        .layer()
        .layer(handler)
        .oneshot(req)
        .await
        .expect("infallible");
    res.status()
}

/// Waits (in real time: the replicas poll Redis) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A block set on one replica is enforced by the other and by a replica started
/// later; clearing it on the second lifts it on the first; garbage in the hash
/// is skipped; with Redis down a change is refused and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_reach_every_replica_and_survive_restarts() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (a, a_admin) = replica(&server);
    let (b, b_admin) = replica(&server);
    let bad = account("sk-bad");
    assert_eq!(chat(&b, "sk-bad").await, StatusCode::OK);

    let (status, text) = post_override(
        &a_admin,
        json!({"account": bad.to_string(), "action": "block", "note": "T-7"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        chat(&a, "sk-bad").await,
        StatusCode::FORBIDDEN,
        "in force at once where it was made"
    );
    eventually("replica b follows the block", || {
        b.shared().overrides().get(&bad).and_then(|o| o.list) == Some(ListKind::Block)
    })
    .await;
    assert_eq!(chat(&b, "sk-bad").await, StatusCode::FORBIDDEN);
    assert_eq!(chat(&b, "sk-good").await, StatusCode::OK);
    let note = b.shared().overrides().get(&bad).and_then(|o| o.note);
    assert_eq!(note.as_deref(), Some("T-7"));

    // Garbage next to the good entry: skipped by a new replica, which still
    // loads the block at start.
    let mut conn = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let _: () = redis::cmd("HSET")
        .arg("o:overrides")
        .arg("not-an-account")
        .arg("{}")
        .arg(AccountId([9; 16]).to_string())
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let (c, _) = replica(&server);
    eventually("a new replica loads the overrides", || {
        c.shared().overrides().get(&bad).is_some()
    })
    .await;
    assert_eq!(c.shared().overrides().list().len(), 1, "garbage skipped");
    assert_eq!(chat(&c, "sk-bad").await, StatusCode::FORBIDDEN);

    // Cleared on b: lifted on a.
    let (status, text) = post_override(
        &b_admin,
        json!({"account": bad.to_string(), "action": "clear"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    eventually("replica a follows the clear", || {
        a.shared().overrides().get(&bad).is_none()
    })
    .await;
    assert_eq!(chat(&a, "sk-bad").await, StatusCode::OK);

    // Redis down: the change is refused with the reason, and nothing changes.
    server.kill();
    let (status, text) = post_override(
        &a_admin,
        json!({"account": bad.to_string(), "action": "block"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("not changed"), "{text}");
    assert!(a.shared().overrides().get(&bad).is_none());
}
