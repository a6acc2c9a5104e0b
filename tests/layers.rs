//! The Tower layers alone, as a library user with `default-features = false`
//! gets them: the composed guard over a plain `service_fn` handler, driven with
//! `oneshot`, a manual clock and `http-body-util` bodies (no Axum, no proxy).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use distill_guard::clock::ManualClock;
use distill_guard::dialect::Dialect;
use distill_guard::extensions::{Action, Decision, Verdict};
use distill_guard::network::PeerAddr;
use distill_guard::watermark::TAG_HEADER;
use distill_guard::{Config, Guard};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};

const T0: u64 = 1_714_000_000_000;

fn config(extra: &str) -> Config {
    Config::from_toml_str(&format!(
        r#"
        [identity]
        secret = "a long random secret for the layer tests"
        [tiers.default]
        requests_per_minute = 2
        tokens_per_minute = 100000
        [watermark]
        tag = "suspicious"
        [[watermark.keys]]
        id = "k1"
        secret = "a long random watermark secret"
        {extra}
        "#
    ))
    .expect("valid config")
}

struct Stack {
    guard: Guard,
    clock: ManualClock,
    decisions: Arc<Mutex<Vec<(u16, Dialect)>>>,
    handled: Arc<Mutex<Vec<Decision>>>,
}

impl Stack {
    fn new(extra: &str) -> Self {
        let clock = ManualClock::new(T0);
        let decisions: Arc<Mutex<Vec<(u16, Dialect)>>> = Arc::default();
        let sink = {
            let decisions = decisions.clone();
            move |d: &Decision, dialect: Dialect, _at: u64| {
                decisions.lock().expect("lock").push((d.status, dialect))
            }
        };
        let guard = Guard::builder(config(extra))
            .clock(Arc::new(clock.clone()))
            .sink(Arc::new(sink))
            .build()
            .expect("guard");
        Self {
            guard,
            clock,
            decisions,
            handled: Arc::default(),
        }
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
        let handled = self.handled.clone();
        let handler = service_fn(move |req: Request<Full<Bytes>>| {
            let handled = handled.clone();
            async move {
                let d = req.extensions().get::<Decision>().cloned();
                handled.lock().expect("lock").extend(d);
                let answer = json!({
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "An answer."}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3}
                });
                let mut res = Response::new(Full::new(Bytes::from(answer.to_string())));
                res.headers_mut()
                    .insert("content-type", "application/json".parse().expect("hv"));
                Ok::<_, Infallible>(res)
            }
        });
        let res = self
            .guard
            .layer()
            .layer(handler)
            .oneshot(req)
            .await
            .expect("rejections are responses, never errors");
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (Response::from_parts(parts, ()), bytes)
    }
}

fn chat(path: &str, key: &str) -> Request<Full<Bytes>> {
    let body = json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hello there"}]});
    let mut req = Request::post(path)
        .header("content-type", "application/json")
        .header("x-api-key", key)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from(([198, 51, 100, 7], 40_000))));
    req
}

#[tokio::test]
async fn quotas_answer_in_the_dialect_of_the_path() {
    let s = Stack::new("");
    for _ in 0..2 {
        let (res, _) = s.send(chat("/v1/chat/completions", "sk-a")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().contains_key("x-ratelimit-remaining-requests"));
    }
    let (res, body) = s.send(chat("/v1/chat/completions", "sk-a")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "30");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    let (res, body) = s.send(chat("/v1/messages", "sk-b")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .headers()
        .contains_key("anthropic-ratelimit-requests-remaining"));
    assert!(!body.is_empty());
    s.send(chat("/v1/messages", "sk-b")).await;
    let (res, body) = s.send(chat("/v1/messages", "sk-b")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    // The bucket refills with time.
    s.clock.advance_ms(30_000);
    let (res, _) = s.send(chat("/v1/chat/completions", "sk-a")).await;
    assert_eq!(res.status(), StatusCode::OK);

    let reported: Vec<(u16, Dialect)> = s.decisions.lock().expect("lock").clone();
    assert_eq!(
        reported,
        [
            (200, Dialect::OpenAi),
            (200, Dialect::OpenAi),
            (429, Dialect::OpenAi),
            (200, Dialect::Anthropic),
            (200, Dialect::Anthropic),
            (429, Dialect::Anthropic),
            (200, Dialect::OpenAi),
        ],
        "every decision reaches the sink"
    );
    assert_eq!(
        s.handled.lock().expect("lock").len(),
        5,
        "only admitted requests reach the handler, each with its decision"
    );
}

#[tokio::test]
async fn a_request_without_a_key_is_refused_before_the_handler() {
    let s = Stack::new("");
    let req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let (res, body) = s.send(req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("API key"));
    assert!(s.handled.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_tagged_answer_carries_a_provenance_tag_that_verifies() {
    let s = Stack::new("");
    let mut req = chat("/v1/chat/completions", "sk-tagged");
    req.extensions_mut().insert(Verdict {
        action: Action::Tag,
        reasons: vec![],
    });
    let (res, body) = s.send(req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tag = res.headers()[TAG_HEADER].to_str().expect("ascii");
    let fields = s
        .guard
        .shared()
        .watermarker()
        .verify(tag)
        .expect("the tag verifies with the configured key");
    let decision = s.handled.lock().expect("lock")[0].clone();
    assert_eq!(fields.account, decision.account);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        v.get("distill_guard").is_some(),
        "JSON answers carry the tag too"
    );
    // An untagged account's answer carries none.
    let (res, _) = s.send(chat("/v1/chat/completions", "sk-plain")).await;
    assert!(res.headers().get(TAG_HEADER).is_none());
}

#[tokio::test]
async fn a_blocked_verdict_is_refused_and_the_kill_switch_passes_everything() {
    let s = Stack::new("");
    let mut req = chat("/v1/chat/completions", "sk-x");
    req.extensions_mut().insert(Verdict {
        action: Action::Block,
        reasons: vec![],
    });
    let (res, _) = s.send(req).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let off = Stack::new("[guard]\nenabled = false");
    for _ in 0..5 {
        let (res, _) = off.send(chat("/v1/chat/completions", "sk-a")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert!(off.decisions.lock().expect("lock").is_empty());
}
