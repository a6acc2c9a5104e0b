//! The enforce stage end to end through `oneshot`, with a virtual clock and the demo
//! model as the upstream.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use distill_guard::clock::ManualClock;
use distill_guard::config::{Config, Limit, TierConfig};
use distill_guard::extensions::{Action, Cluster, ClusterId, Decision, Suspicion, Verdict};
use distill_guard::proxy::demo::{DemoModel, DemoUsage};
use distill_guard::proxy::server::{stack, Backend, HttpService};
use distill_guard::Guard;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const T0: u64 = 1_714_000_000_000;

fn tier(rpm: u64, rpd: Option<u64>, tpm: Option<u64>) -> TierConfig {
    TierConfig {
        requests_per_minute: Limit::Count(rpm),
        requests_per_day: rpd.map_or(
            Limit::Unlimited(distill_guard::config::Unlimited::Unlimited),
            Limit::Count,
        ),
        tokens_per_minute: tpm.map_or(
            Limit::Unlimited(distill_guard::config::Unlimited::Unlimited),
            Limit::Count,
        ),
        tokens_per_day: Limit::Unlimited(distill_guard::config::Unlimited::Unlimited),
        ..TierConfig::default()
    }
}

struct Harness {
    guard: Guard,
    clock: ManualClock,
    svc: HttpService,
}

fn harness(t: TierConfig, edit: impl FnOnce(&mut Config)) -> Harness {
    let mut cfg = Config::with_secret("test-secret");
    cfg.tiers.insert("default".into(), t);
    edit(&mut cfg);
    let clock = ManualClock::new(T0);
    let guard = Guard::builder(cfg)
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("valid config");
    let svc = stack(Some(&guard), Backend::Demo(DemoModel::new()).into_service());
    Harness { guard, clock, svc }
}

struct Req {
    path: &'static str,
    key: Option<String>,
    body: Value,
    cluster: Option<Cluster>,
    suspicion: Option<f64>,
    verdict: Option<Verdict>,
    usage: Option<DemoUsage>,
}

fn chat(key: &str) -> Req {
    Req {
        path: "/v1/chat/completions",
        key: Some(key.to_owned()),
        body: json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}),
        cluster: None,
        suspicion: None,
        verdict: None,
        usage: None,
    }
}

impl Req {
    fn build(&self) -> Request<Body> {
        let mut b = Request::post(self.path).header("content-type", "application/json");
        if let Some(k) = &self.key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let mut req = b.body(Body::from(self.body.to_string())).expect("request");
        if let Some(c) = self.cluster {
            req.extensions_mut().insert(c);
        }
        if let Some(s) = self.suspicion {
            req.extensions_mut().insert(Suspicion::new(s));
        }
        if let Some(v) = &self.verdict {
            req.extensions_mut().insert(v.clone());
        }
        if let Some(u) = self.usage {
            req.extensions_mut().insert(u);
        }
        req
    }
}

impl Harness {
    async fn send(&self, r: &Req) -> (Response<()>, Bytes) {
        let res = self
            .svc
            .clone()
            .oneshot(r.build())
            .await
            .expect("infallible");
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (Response::from_parts(parts, ()), bytes)
    }

    async fn status(&self, r: &Req) -> StatusCode {
        self.send(r).await.0.status()
    }
}

fn header<'a>(res: &'a Response<()>, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}"))
}

fn num(res: &Response<()>, name: &str) -> u64 {
    header(res, name).parse().expect("number")
}

#[tokio::test]
async fn account_limit_refills_continuously() {
    let h = harness(tier(3, None, None), |_| {});
    let r = chat("sk-a");
    for i in 0..3 {
        let (res, _) = h.send(&r).await;
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(num(&res, "x-ratelimit-remaining-requests"), 2 - i);
    }
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), "20");
    assert_eq!(header(&res, "retry-after-ms"), "20000");
    // A short wait: the SDKs' automatic retry may sleep through it.
    assert!(res.headers().get("x-should-retry").is_none());
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("this account") && msg.contains("requests per minute"),
        "{msg}"
    );
    // Another account is unaffected.
    assert_eq!(h.status(&chat("sk-b")).await, 200);
    h.clock.advance_ms(19_999);
    assert_eq!(h.status(&r).await, 429);
    h.clock.advance_ms(1);
    assert_eq!(h.status(&r).await, 200);
}

#[tokio::test]
async fn cluster_capacity_grows_with_the_square_root_of_members() {
    let h = harness(tier(3, None, None), |_| {});
    let cluster = Cluster {
        id: ClusterId::from_name("operator-1"),
        size: 4,
    };
    // 4 members → 3 × 4^0.5 = 6 requests per minute for the whole cluster.
    let mut admitted = 0;
    for i in 0..8 {
        let mut r = chat(&format!("sk-member-{i}"));
        r.cluster = Some(cluster);
        let (res, body) = h.send(&r).await;
        match res.status().as_u16() {
            200 => admitted += 1,
            429 => {
                let v: Value = serde_json::from_slice(&body).expect("json");
                let msg = v["error"]["message"].as_str().expect("message");
                assert!(msg.contains("group of accounts"), "{msg}");
                assert_eq!(
                    header(&res, "x-distill-guard-limit"),
                    "cluster; requests-minute"
                );
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(admitted, 6);
    // A cluster of 25,000 gets about 158 accounts' budget.
    let scale = h.guard.shared().settings().cluster_scale(25_000);
    assert!((scale - 158.1).abs() < 0.1, "{scale}");
}

#[tokio::test]
async fn per_day_limits_outlast_the_minute() {
    let h = harness(tier(100, Some(5), None), |_| {});
    let r = chat("sk-day");
    for _ in 0..5 {
        assert_eq!(h.status(&r).await, 200);
    }
    let (res, _) = h.send(&r).await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        header(&res, "x-distill-guard-limit"),
        "account; requests-day"
    );
    // One request per 86400/5 s = 17280 s.
    assert_eq!(num(&res, "retry-after"), 17_280);
    // Hours away: SDKs must raise at once instead of sleeping through it.
    assert_eq!(header(&res, "x-should-retry"), "false");
    h.clock.advance_ms(60_000);
    assert_eq!(h.status(&r).await, 429);
    h.clock.advance_ms(17_280_000);
    assert_eq!(h.status(&r).await, 200);
}

async fn remaining_tokens(h: &Harness, key: &str) -> u64 {
    // A request that generates nothing (GET /v1/models) still reports the buckets.
    let req = Request::get("/v1/models")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .expect("request");
    let res = h.svc.clone().oneshot(req).await.expect("infallible");
    num(
        &Response::from_parts(res.into_parts().0, ()),
        "x-ratelimit-remaining-tokens",
    )
}

#[tokio::test]
async fn a_token_window_429_says_tokens() {
    let h = harness(tier(1000, None, Some(1_000)), |_| {});
    let mut r = chat("sk-tpm");
    r.body["max_tokens"] = json!(600);
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&body));
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        header(&res, "x-distill-guard-limit"),
        "account; tokens-minute"
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "tokens");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    // A request window still says `requests`.
    let h = harness(tier(1, None, None), |_| {});
    let r = chat("sk-rpm");
    assert_eq!(h.status(&r).await, 200);
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 429);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "requests");
}

#[tokio::test]
async fn json_reservation_is_reconciled_with_usage() {
    let h = harness(tier(1000, None, Some(10_000)), |_| {});
    let mut r = chat("sk-tok");
    r.body["max_tokens"] = json!(2_000);
    r.usage = Some(DemoUsage {
        input_tokens: 40,
        output_tokens: 60,
    });
    let (res, _) = h.send(&r).await;
    assert_eq!(res.status(), 200);
    // On admission: 2 input estimate ("user" + "hello" = 9 bytes → 3 tokens) + 2000 reserved.
    assert_eq!(num(&res, "x-ratelimit-remaining-tokens"), 10_000 - 2_003);
    // After the body completed: charged 40 + 60 = 100 instead.
    assert_eq!(remaining_tokens(&h, "sk-tok").await, 10_000 - 100);
}

#[tokio::test]
async fn sse_reservation_is_reconciled_in_both_dialects() {
    let h = harness(tier(1000, None, Some(10_000)), |_| {});
    let mut r = chat("sk-sse");
    r.body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
        "max_tokens": 3000, "messages": [{"role": "user", "content": "hi"}]});
    r.usage = Some(DemoUsage {
        input_tokens: 10,
        output_tokens: 90,
    });
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 200);
    assert!(body.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(remaining_tokens(&h, "sk-sse").await, 10_000 - 100);

    let mut a = chat("sk-sse-anthropic");
    a.path = "/v1/messages";
    a.body = json!({"model": "m", "stream": true, "max_tokens": 3000, "messages": [{"role": "user", "content": "hi"}]});
    a.usage = Some(DemoUsage {
        input_tokens: 25,
        output_tokens: 75,
    });
    let (res, _) = h.send(&a).await;
    assert_eq!(res.status(), 200);
    assert_eq!(num(&res, "anthropic-ratelimit-tokens-limit"), 10_000);
    let req = Request::get("/v1/messages")
        .header("x-api-key", "sk-sse-anthropic")
        .body(Body::empty())
        .expect("request");
    let res = h.svc.clone().oneshot(req).await.expect("infallible");
    let res = Response::from_parts(res.into_parts().0, ());
    assert_eq!(
        num(&res, "anthropic-ratelimit-tokens-remaining"),
        10_000 - 100
    );
}

#[tokio::test]
async fn a_stream_dropped_midway_still_settles() {
    let h = harness(tier(1000, None, Some(100_000)), |_| {});
    let mut r = chat("sk-drop");
    r.body = json!({"model": "m", "stream": true, "max_tokens": 40_000, "messages": [{"role": "user", "content": "hi"}]});
    r.usage = Some(DemoUsage {
        input_tokens: 10,
        output_tokens: 8_000,
    });
    let res = h.svc.clone().oneshot(r.build()).await.expect("infallible");
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut seen = 0usize;
    for _ in 0..20 {
        let frame = body.frame().await.expect("frame").expect("ok");
        seen += frame.data_ref().map_or(0, |d| d.len());
    }
    drop(body);
    let remaining = remaining_tokens(&h, "sk-drop").await;
    let charged = 100_000 - remaining;
    // Not the 40,000-token reservation, not nothing: the input estimate plus what
    // was delivered before the client went away.
    assert!(
        charged > 0 && charged < 1_000,
        "charged {charged} after {seen} bytes"
    );
}

#[tokio::test]
async fn fifty_concurrent_requests_never_overshoot() {
    let h = harness(tier(1000, None, Some(10_000)), |_| {});
    let mut r = chat("sk-burst");
    r.body["max_tokens"] = json!(997); // 3 input + 997 = 1000 per request
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let svc = h.svc.clone();
        let req = r.build();
        tasks.push(tokio::spawn(async move {
            let res = svc.oneshot(req).await.expect("infallible");
            let status = res.status();
            // Hold the body (do not settle) so every reservation stays in flight.
            (status, res.into_body())
        }));
    }
    let mut ok = 0;
    let mut bodies = Vec::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        if status == 200 {
            ok += 1;
        } else {
            assert_eq!(status, 429);
        }
        bodies.push(body);
    }
    assert_eq!(ok, 10, "exactly capacity / reservation requests admitted");
}

#[tokio::test]
async fn suspicion_bands_shrink_the_rate_without_resetting_state() {
    let h = harness(tier(10, None, None), |_| {});
    let mut r = chat("sk-sus");
    for _ in 0..4 {
        assert_eq!(h.status(&r).await, 200);
    }
    // Band 0.5 → multiplier 0.5: capacity 5, and 4 are already used.
    r.suspicion = Some(0.6);
    let (res, _) = h.send(&r).await;
    assert_eq!(res.status(), 200);
    assert_eq!(num(&res, "x-ratelimit-limit-requests"), 5);
    assert_eq!(num(&res, "x-ratelimit-remaining-requests"), 0);
    assert_eq!(h.status(&r).await, 429);
    // Back to normal: the 5 used are still there.
    r.suspicion = Some(0.0);
    for _ in 0..5 {
        assert_eq!(h.status(&r).await, 200);
    }
    assert_eq!(h.status(&r).await, 429);
    // Band 0.95 → multiplier 0: nothing passes, however long one waits.
    r.suspicion = Some(0.99);
    h.clock.advance_ms(3_600_000);
    let (res, _) = h.send(&r).await;
    assert_eq!(res.status(), 429);
    // Waiting alone cannot help, so automatic retries are pointless.
    assert_eq!(header(&res, "x-should-retry"), "false");
}

#[tokio::test]
async fn anthropic_dialect_bodies_and_headers() {
    let h = harness(tier(1, None, Some(100_000)), |_| {});
    let mut r = chat("sk-anth");
    r.path = "/v1/messages";
    let (res, _) = h.send(&r).await;
    assert_eq!(res.status(), 200);
    for name in [
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "ratelimit-policy",
        "ratelimit",
    ] {
        header(&res, name);
    }
    assert!(res.headers().get("x-ratelimit-limit-requests").is_none());
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 429);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(header(&res, "retry-after"), "60");
    assert_eq!(
        header(&res, "anthropic-ratelimit-requests-reset"),
        "2024-04-24T23:07:40Z"
    );
}

#[tokio::test]
async fn a_request_larger_than_the_bucket_is_a_400() {
    let h = harness(tier(100, None, Some(1_000)), |_| {});
    let mut r = chat("sk-big");
    r.body["max_tokens"] = json!(5_000);
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("retry-after").is_none());
    assert_eq!(header(&res, "x-should-retry"), "false");
    let v: Value = serde_json::from_slice(&body).expect("json");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("5003") && msg.contains("tokens per minute") && msg.contains("max_tokens"),
        "{msg}"
    );
    // It charged nothing.
    r.body["max_tokens"] = json!(500);
    let (res, _) = h.send(&r).await;
    assert_eq!(num(&res, "x-ratelimit-remaining-tokens"), 1_000 - 503);
}

#[tokio::test]
async fn missing_key_is_401_and_a_large_body_is_413() {
    let h = harness(tier(100, None, None), |c| c.guard.max_body_bytes = 1_024);
    let mut r = chat("x");
    r.key = None;
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 401);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    r.path = "/v1/messages";
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 401);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "authentication_error");

    let mut big = chat("sk-413");
    big.body["messages"][0]["content"] = json!("x".repeat(2_000));
    let (res, body) = h.send(&big).await;
    assert_eq!(res.status(), 413);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["code"], "request_too_large");
}

#[tokio::test]
async fn anonymous_traffic_can_be_keyed_by_network() {
    let h = harness(tier(1, None, None), |c| {
        c.identity.anonymous = distill_guard::config::AnonymousPolicy::Network;
    });
    let mk = |ip: &str| {
        let mut req = chat("x");
        req.key = None;
        let mut req = req.build();
        req.extensions_mut()
            .insert(distill_guard::network::PeerAddr(
                format!("{ip}:4000").parse().expect("addr"),
            ));
        req
    };
    let s = |req| async { h.svc.clone().oneshot(req).await.expect("ok").status() };
    assert_eq!(s(mk("203.0.113.5")).await, 200);
    // Same /24: same anonymous account, over its limit.
    assert_eq!(s(mk("203.0.113.77")).await, 429);
    assert_eq!(s(mk("198.51.100.1")).await, 200);
}

#[tokio::test]
async fn shadow_mode_decides_but_never_rejects() {
    let mut t = tier(1, None, Some(100));
    t.shadow = true;
    let h = harness(t, |_| {});
    let mut r = chat("sk-shadow");
    for _ in 0..3 {
        let res = h.svc.clone().oneshot(r.build()).await.expect("ok");
        assert_eq!(res.status(), 200);
    }
    let res = h.svc.clone().oneshot(r.build()).await.expect("ok");
    let d = res
        .extensions()
        .get::<Decision>()
        .expect("decision")
        .clone();
    assert!(d.shadowed, "the decision says it would have been rejected");
    // Over the whole bucket, blocked: all still served.
    r.body["max_tokens"] = json!(10_000);
    assert_eq!(h.status(&r).await, 200);
    r.verdict = Some(Verdict {
        action: Action::Block,
        reasons: vec![],
    });
    assert_eq!(h.status(&r).await, 200);
    // Global shadow mode too.
    let h = harness(tier(1, None, None), |c| c.guard.shadow = true);
    let r = chat("sk-shadow2");
    assert_eq!(h.status(&r).await, 200);
    assert_eq!(h.status(&r).await, 200);
}

#[tokio::test]
async fn a_block_verdict_is_a_403_in_dialect() {
    let h = harness(tier(100, None, None), |_| {});
    let mut r = chat("sk-blocked");
    r.verdict = Some(Verdict {
        action: Action::Block,
        reasons: vec![],
    });
    let (res, body) = h.send(&r).await;
    assert_eq!(res.status(), 403);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "permission_error");
}

#[tokio::test]
async fn disabled_guard_is_a_plain_pass_through() {
    let h = harness(tier(1, None, None), |c| c.guard.enabled = false);
    let mut r = chat("x");
    r.key = None;
    for _ in 0..3 {
        let (res, _) = h.send(&r).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("x-ratelimit-limit-requests").is_none());
    }
}

#[tokio::test]
async fn reload_keeps_bucket_state_and_rejects_bad_configs() {
    let h = harness(tier(2, None, None), |_| {});
    let r = chat("sk-reload");
    assert_eq!(h.status(&r).await, 200);
    assert_eq!(h.status(&r).await, 200);
    assert_eq!(h.status(&r).await, 429);
    let mut cfg = Config::with_secret("test-secret");
    cfg.tiers.insert("default".into(), tier(3, None, None));
    h.guard.reload(cfg).expect("valid");
    // Two used of three: one more, then denied.
    assert_eq!(h.status(&r).await, 200);
    assert_eq!(h.status(&r).await, 429);
    let mut bad = Config::with_secret("test-secret");
    bad.quota.cluster_exponent = 7.0;
    assert!(h.guard.reload(bad).is_err());
    assert_eq!(h.status(&r).await, 429, "the old config still applies");
}
