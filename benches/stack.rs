//! The whole guard stack against the same Axum handler without it: a ~4 KB chat
//! body, 500 accounts in rotation. Report: the ratio of the medians and the time
//! added per request.

#![allow(missing_docs)] // criterion_group! generates undocumented items
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Json;
use axum::routing::post;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use distill_guard::{Config, Guard};
use http::Request;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn handler(Json(_req): Json<Value>) -> Json<Value> {
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "A short answer."}}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 4, "total_tokens": 1004}
    }))
}

fn body_4k() -> String {
    let words = "the quick brown fox jumps over a lazy dog while the compiler checks every branch ";
    let user = words.repeat(48);
    let body = json!({
        "model": "gpt-4o", "temperature": 0.7, "max_tokens": 512, "stream": false,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant that answers concisely."},
            {"role": "user", "content": user},
        ]
    })
    .to_string();
    assert!(
        (3_900..4_400).contains(&body.len()),
        "body is {} bytes",
        body.len()
    );
    body
}

fn requests(body: &str, n: usize) -> Vec<Request<Body>> {
    (0..n)
        .map(|i| {
            Request::post("/v1/chat/completions")
                .header("authorization", format!("Bearer sk-bench-{}", i % 500))
                .header("content-type", "application/json")
                .header("user-agent", "OpenAI/Python 1.54.3")
                .body(Body::from(body.to_owned()))
                .expect("request")
        })
        .collect()
}

fn run(rt: &tokio::runtime::Runtime, app: &Router, body: &str, iters: u64) -> Duration {
    let reqs = requests(body, iters as usize);
    rt.block_on(async {
        let start = Instant::now();
        for req in reqs {
            let res = app.clone().oneshot(req).await.expect("infallible");
            assert_eq!(res.status(), 200);
            let _ = http_body_util::BodyExt::collect(res.into_body()).await;
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let body = body_4k();
    let mut cfg = Config::with_secret("bench-secret");
    // Shadow mode: every stage does all its work, but these identical requests
    // (which do look like one operator) are all answered, as by the bare handler.
    cfg.guard.shadow = true;
    // Limits high enough that nothing is rejected: we measure the cost of deciding.
    cfg.tiers.insert(
        "default".into(),
        Config::from_toml_str(
            "[identity]\nsecret='x'\n[tiers.default]\nrequests_per_minute=1000000\ntokens_per_minute=1000000000\nrequests_per_day='unlimited'\ntokens_per_day='unlimited'\n",
        )
        .expect("valid")
        .tiers["default"]
            .clone(),
    );
    let guard = Guard::from_config(cfg).expect("valid");
    let bare = Router::new().route("/v1/chat/completions", post(handler));
    let guarded = Router::new()
        .route("/v1/chat/completions", post(handler))
        .layer(guard.layer());

    let mut g = c.benchmark_group("stack_4k_body_500_accounts");
    g.bench_function("bare_handler", |b| {
        b.iter_custom(|n| run(&rt, &bare, &body, n))
    });
    g.bench_function("guarded_handler", |b| {
        b.iter_custom(|n| run(&rt, &guarded, &body, n))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
