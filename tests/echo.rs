//! A text mark echoed back by a different account links the two accounts.

use std::sync::Arc;

use axum::body::Body;
use distill_guard::clock::ManualClock;
use distill_guard::config::Config;
use distill_guard::extensions::Decision;
use distill_guard::proxy::demo::DemoModel;
use distill_guard::proxy::server::{stack, Backend, HttpService};
use distill_guard::Guard;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn service() -> (HttpService, ManualClock) {
    let cfg = Config::from_toml_str(
        r#"
        [identity]
        secret = "echo-test"
        [watermark]
        tag = "always"
        text_mark = true
        [[watermark.keys]]
        id = "k1"
        secret = "a long random secret for the echo test"
        "#,
    )
    .expect("valid");
    let clock = ManualClock::new(1_714_000_000_000);
    let guard = Guard::builder(cfg)
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("guard");
    (
        stack(Some(&guard), Backend::Demo(DemoModel::new()).into_service()),
        clock,
    )
}

/// Linking starts after `[cluster] warmup_accounts` (50) distinct accounts.
async fn warm_up(svc: &HttpService) {
    for i in 0..60 {
        ask(
            svc,
            &format!("sk-bystander-{i}"),
            &format!("question number {i} about cooking"),
        )
        .await;
    }
}

async fn ask(svc: &HttpService, key: &str, content: &str) -> (Decision, String) {
    let body = json!({"model": "m", "max_tokens": 300, "messages": [{"role": "user", "content": content}]});
    let req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let res = svc.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), 200);
    let decision = res
        .extensions()
        .get::<Decision>()
        .expect("decision")
        .clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    (decision, text)
}

#[tokio::test]
async fn an_echoed_mark_links_the_echoing_account_to_the_source() {
    let (svc, clock) = service();
    warm_up(&svc).await;
    let (a, answer) = ask(&svc, "sk-source", "Explain tokio's scheduler").await;
    assert_eq!(a.cluster.size, 1);
    clock.advance_ms(60_000);
    // Another account feeds an excerpt of that (marked) answer back in.
    let excerpt: Vec<&str> = answer.split(' ').take(80).collect();
    let prompt = format!("Improve this explanation: {}", excerpt.join(" "));
    let (b, _) = ask(&svc, "sk-echo", &prompt).await;
    assert_eq!(b.cluster.size, 2, "the echo links the two accounts");
    clock.advance_ms(60_000);
    let (a2, _) = ask(&svc, "sk-source", "Another question").await;
    assert_eq!(a2.cluster.id, b.cluster.id, "one cluster for both");
}

#[tokio::test]
async fn the_same_text_without_marks_links_nobody() {
    let (svc, clock) = service();
    warm_up(&svc).await;
    let (_, answer) = ask(&svc, "sk-source", "Explain tokio's scheduler").await;
    clock.advance_ms(60_000);
    let stripped = distill_guard::watermark::strip_marks(&answer).into_owned();
    let excerpt: Vec<&str> = stripped.split(' ').take(80).collect();
    let prompt = format!("Improve this explanation: {}", excerpt.join(" "));
    let (b, _) = ask(&svc, "sk-echo", &prompt).await;
    assert_eq!(b.cluster.size, 1);
    // An account echoing its own marks is not linked to anyone either.
    let (own, _) = ask(&svc, "sk-source", &format!("Again: {}", answer)).await;
    assert_eq!(own.cluster.size, 1);
}
