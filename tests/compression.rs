//! Compressed answers through the real layers: a client's `Accept-Encoding`
//! must not hide the upstream's `usage` from the token quota, nor the answer
//! from the watermark. The upstream is the demo model behind a compressing mock
//! (what nginx or a hosted API does), JSON and SSE, both dialects, every coding.

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use distill_guard::clock::ManualClock;
use distill_guard::proxy::demo::{DemoModel, DemoUsage};
use distill_guard::proxy::server::{stack, Backend, HttpService};
use distill_guard::{Config, Guard};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use support::compress::{compress, decompress, negotiate, Pieces, CODINGS};

const T0: u64 = 1_714_000_000_000;
const BUDGET: u64 = 100_000;

/// How the mock upstream compresses.
#[derive(Clone, Copy, Debug)]
enum Policy {
    /// As the request's `Accept-Encoding` allows (nginx, hosted APIs).
    Negotiate,
    /// Always with this coding, whatever the request asked for.
    Always(&'static str),
}

/// The demo model behind a compressing mock; records the `Accept-Encoding`
/// each request reached it with.
fn upstream(policy: Policy, seen: Arc<Mutex<Vec<Option<String>>>>) -> HttpService {
    let demo = Backend::Demo(DemoModel::new()).into_service();
    BoxCloneSyncService::new(tower::service_fn(move |req: Request<Body>| {
        let demo = demo.clone();
        let seen = seen.clone();
        async move {
            let accept = req
                .headers()
                .get(ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let coding = match policy {
                Policy::Negotiate => negotiate(accept.as_deref()),
                Policy::Always(c) => Some(c),
            };
            seen.lock().expect("lock").push(accept);
            let res = demo.oneshot(req).await?;
            let Some(coding) = coding else {
                return Ok(res);
            };
            let (mut parts, body) = res.into_parts();
            let plain = body.collect().await.expect("demo body").to_bytes();
            parts.headers.remove(CONTENT_LENGTH);
            parts
                .headers
                .insert(CONTENT_ENCODING, coding.parse().expect("value"));
            // Small pieces: the decoder sees every kind of split.
            let z = compress(coding, &plain);
            Ok::<_, std::convert::Infallible>(Response::from_parts(
                parts,
                Body::new(Pieces::new(z, 7)),
            ))
        }
    }))
}

struct Harness {
    svc: HttpService,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

fn harness(policy: Policy, extra: &str) -> Harness {
    let seen = Arc::new(Mutex::new(Vec::new()));
    guarded(upstream(policy, seen.clone()), extra, seen)
}

/// The guard's layers around `upstream`, with a token budget of [`BUDGET`] a minute.
fn guarded(upstream: HttpService, extra: &str, seen: Arc<Mutex<Vec<Option<String>>>>) -> Harness {
    let cfg = Config::from_toml_str(&format!(
        r#"
        [identity]
        secret = "compression-test-secret"
        [tiers.default]
        requests_per_minute = 1000
        tokens_per_minute = {BUDGET}
        tokens_per_day = "unlimited"
        {extra}
        "#
    ))
    .expect("config");
    let guard = Guard::builder(cfg)
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
        .expect("guard");
    Harness {
        svc: stack(Some(&guard), upstream),
        seen,
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    OpenAiJson,
    OpenAiSse,
    AnthropicJson,
    AnthropicSse,
}

const KINDS: [Kind; 4] = [
    Kind::OpenAiJson,
    Kind::OpenAiSse,
    Kind::AnthropicJson,
    Kind::AnthropicSse,
];

fn request(kind: Kind, key: &str, accept: &str) -> Request<Body> {
    let (path, stream) = match kind {
        Kind::OpenAiJson => ("/v1/chat/completions", false),
        Kind::OpenAiSse => ("/v1/chat/completions", true),
        Kind::AnthropicJson => ("/v1/messages", false),
        Kind::AnthropicSse => ("/v1/messages", true),
    };
    let mut body = json!({"model": "m", "max_tokens": 4000, "stream": stream,
        "messages": [{"role": "user", "content": "hello"}]});
    if stream && path == "/v1/chat/completions" {
        body["stream_options"] = json!({"include_usage": true});
    }
    let mut req = Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .header("x-api-key", key)
        .header(ACCEPT_ENCODING, accept)
        .body(Body::from(body.to_string()))
        .expect("request");
    // The answer reports 3,000 output tokens, as in the issue's report.
    req.extensions_mut().insert(DemoUsage {
        input_tokens: 12,
        output_tokens: 3_000,
    });
    req
}

/// Sends, reads the whole answer; returns its headers and its body decoded
/// (as the client would).
async fn exchange(h: &Harness, req: Request<Body>) -> (http::response::Parts, Vec<u8>) {
    let res = h.svc.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let raw: Bytes = body.collect().await.expect("body").to_bytes();
    let plain = match parts.headers.get(CONTENT_ENCODING) {
        Some(c) => decompress(c.to_str().expect("ascii"), &raw),
        None => raw.to_vec(),
    };
    (parts, plain)
}

async fn remaining(h: &Harness, key: &str) -> u64 {
    let req = Request::get("/v1/models")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .expect("request");
    let res = h.svc.clone().oneshot(req).await.expect("infallible");
    res.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number")
}

fn assert_complete(kind: Kind, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    match kind {
        Kind::OpenAiJson | Kind::AnthropicJson => {
            let v: Value = serde_json::from_slice(body).expect("a JSON answer");
            assert!(v.get("usage").is_some(), "{text}");
        }
        Kind::OpenAiSse => assert!(text.ends_with("data: [DONE]\n\n"), "{text}"),
        Kind::AnthropicSse => assert!(text.contains("message_stop"), "{text}"),
    }
}

#[tokio::test]
async fn an_upstream_that_compresses_anyway_is_still_charged_its_usage() {
    // The upstream ignores the guard's `Accept-Encoding: identity`: the enforce
    // stage decodes for accounting and passes the compressed bytes through.
    for coding in CODINGS {
        let h = harness(Policy::Always(coding), "");
        for kind in KINDS {
            let key = format!("sk-{coding}-{kind:?}");
            let (parts, body) = exchange(&h, request(kind, &key, coding)).await;
            assert_eq!(parts.status, 200, "{coding} {kind:?}");
            assert_eq!(parts.headers[CONTENT_ENCODING], coding, "passed through");
            assert_complete(kind, &body);
            assert_eq!(
                remaining(&h, &key).await,
                BUDGET - 3_012,
                "{coding} {kind:?}: charged the reported usage"
            );
        }
    }
}

#[tokio::test]
async fn the_guard_asks_the_upstream_for_identity() {
    // A negotiating upstream (nginx) then answers uncompressed: nothing to decode.
    let h = harness(Policy::Negotiate, "");
    for kind in KINDS {
        let key = format!("sk-neg-{kind:?}");
        let (parts, body) = exchange(&h, request(kind, &key, "gzip, deflate, br, zstd")).await;
        assert!(parts.headers.get(CONTENT_ENCODING).is_none());
        assert_complete(kind, &body);
        assert_eq!(remaining(&h, &key).await, BUDGET - 3_012, "{kind:?}");
    }
    let seen = h.seen.lock().expect("lock").clone();
    assert!(!seen.is_empty());
    // Generating requests reach the upstream asking for identity, whatever the
    // client accepted.
    for a in seen.iter().flatten() {
        assert_eq!(a, "identity");
    }
    assert!(seen.iter().any(|a| a.as_deref() == Some("identity")));
}

#[tokio::test]
async fn an_unreadable_coding_is_charged_its_whole_reservation() {
    // `compress` (LZW) is not decoded: the answer costs what was reserved, so a
    // client gains nothing by it.
    let demo = Backend::Demo(DemoModel::new()).into_service();
    let upstream: HttpService = BoxCloneSyncService::new(tower::service_fn(move |req| {
        let demo = demo.clone();
        async move {
            let mut res: Response<Body> = demo.oneshot(req).await?;
            res.headers_mut()
                .insert(CONTENT_ENCODING, "compress".parse().expect("value"));
            Ok::<_, std::convert::Infallible>(res)
        }
    }));
    let h = guarded(upstream, "", Arc::default());
    for kind in [Kind::OpenAiJson, Kind::AnthropicSse] {
        let key = format!("sk-lzw-{kind:?}");
        let res = h
            .svc
            .clone()
            .oneshot(request(kind, &key, "compress"))
            .await
            .expect("infallible");
        let _ = res.into_body().collect().await.expect("body");
        // Input estimate ("user" + "hello": 3 tokens) + 4,000 output reserved.
        assert_eq!(remaining(&h, &key).await, BUDGET - 4_003, "{kind:?}");
    }
}

#[tokio::test]
async fn a_corrupt_compressed_answer_is_charged_its_whole_reservation() {
    let demo = Backend::Demo(DemoModel::new()).into_service();
    let upstream: HttpService = BoxCloneSyncService::new(tower::service_fn(move |req| {
        let demo = demo.clone();
        async move {
            let res: Response<Body> = demo.oneshot(req).await?;
            let (mut parts, _) = res.into_parts();
            parts.headers.remove(CONTENT_LENGTH);
            parts
                .headers
                .insert(CONTENT_ENCODING, "gzip".parse().expect("value"));
            let garbage: Vec<u8> = (0..500u32).map(|i| (i * 31 % 251) as u8).collect();
            Ok::<_, std::convert::Infallible>(Response::from_parts(parts, Body::from(garbage)))
        }
    }));
    let h = guarded(upstream, "", Arc::default());
    let res = h
        .svc
        .clone()
        .oneshot(request(Kind::OpenAiSse, "sk-corrupt", "gzip"))
        .await
        .expect("infallible");
    let _ = res.into_body().collect().await.expect("body");
    assert_eq!(remaining(&h, "sk-corrupt").await, BUDGET - 4_003);
}

#[tokio::test]
async fn compressed_answers_are_still_tagged() {
    let tagging = "[watermark]\ntag = \"always\"\ntext_mark = false\n[[watermark.keys]]\nid = \"k1\"\nsecret = \"compression-test-watermark-key\"\n";
    for coding in CODINGS {
        let h = harness(Policy::Always(coding), tagging);
        for kind in KINDS {
            let key = format!("sk-tag-{coding}-{kind:?}");
            let (parts, body) = exchange(&h, request(kind, &key, coding)).await;
            assert_eq!(parts.status, 200);
            assert!(
                parts.headers.contains_key("x-distill-guard-tag"),
                "{coding} {kind:?}: header tag"
            );
            assert_complete(kind, &body);
            let text = String::from_utf8_lossy(&body);
            match kind {
                Kind::OpenAiJson | Kind::AnthropicJson => {
                    let v: Value = serde_json::from_slice(&body).expect("json");
                    assert!(
                        v["distill_guard"]["tag"].is_string(),
                        "{coding} {kind:?}: {text}"
                    );
                }
                Kind::OpenAiSse | Kind::AnthropicSse => {
                    assert!(text.contains(": dg-tag "), "{coding} {kind:?}: {text}");
                    assert!(text.contains(": dg-final "), "{coding} {kind:?}");
                }
            }
            assert_eq!(
                remaining(&h, &key).await,
                BUDGET - 3_012,
                "{coding} {kind:?}"
            );
        }
    }
}
