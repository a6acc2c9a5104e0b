//! `[server]` limits through the real layers, on tokio's paused clock: a stalled
//! upstream stream ends with an error event in dialect and settles on what was
//! delivered; a slow request body gets 408 in dialect; requests beyond
//! `max_concurrency` get 503 in dialect until a permit frees.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use distill_guard::clock::ManualClock;
use distill_guard::proxy::demo::DemoModel;
use distill_guard::proxy::limits::{stream_idle_timeout, ServeLimits};
use distill_guard::proxy::server::{app_with_limits, stack, Backend, HttpService};
use distill_guard::{Config, Guard};
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use support::compress::Pieces;
use support::stack::{remaining_tokens, streamed_chat};
use support::wait::finishes_at;

const BUDGET: u64 = 100_000;

fn guard() -> Guard {
    let cfg = Config::from_toml_str(&format!(
        "[identity]\nsecret = \"limits-test-secret\"\n[tiers.default]\nrequests_per_minute = 1000\ntokens_per_minute = {BUDGET}\ntokens_per_day = \"unlimited\"\n"
    ))
    .expect("config");
    Guard::builder(cfg)
        .clock(Arc::new(ManualClock::new(1_714_000_000_000)))
        .build()
        .expect("guard")
}

/// An upstream that sends SSE headers and `events`, then stalls.
fn stalling_upstream(events: Vec<&'static str>) -> HttpService {
    BoxCloneSyncService::new(tower::service_fn(move |_req: Request<Body>| {
        let events = events.clone();
        async move {
            let body =
                Pieces::stalling(events.into_iter().map(|e| Bytes::from_static(e.as_bytes())));
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::new(body))
                    .expect("response"),
            )
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_ends_with_an_error_event_and_settles_on_what_was_delivered() {
    let g = guard();
    let openai = vec![
        "data: {\"choices\":[{\"delta\":{\"content\":\"0123456789abcdef0123456789abcdef\"}}]}\n\n",
    ];
    let anthropic = vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"0123456789abcdef0123456789abcdef\"}}\n\n",
    ];
    for (path, events) in [
        ("/v1/chat/completions", openai),
        ("/v1/messages", anthropic),
    ] {
        let svc = stack(
            Some(&g),
            stream_idle_timeout(stalling_upstream(events), Duration::from_secs(60)),
        );
        let key = format!("sk-stall{path}");
        let started = tokio::time::Instant::now();
        let res = svc
            .clone()
            .oneshot(streamed_chat(path, &key))
            .await
            .expect("infallible");
        assert_eq!(res.status(), 200);
        // On the paused clock: the stream ends at the idle bound, not before, not never.
        let body = finishes_at(
            "the end of the stalled stream",
            started + Duration::from_secs(60),
            res.into_body().collect(),
        )
        .await
        .expect("body")
        .to_bytes();
        let text = String::from_utf8_lossy(&body);
        if path == "/v1/messages" {
            let last = text
                .rsplit("event: error\ndata: ")
                .next()
                .expect("error event");
            let v: Value = serde_json::from_str(last.trim()).expect("json");
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "timeout_error");
        } else {
            let last = text.rsplit("data: ").next().expect("error event");
            let v: Value = serde_json::from_str(last.trim()).expect("json");
            assert_eq!(v["error"]["code"], "timeout", "{text}");
        }
        // Settled on what was delivered (32 bytes of text: 8 tokens, plus the
        // input), not the 8,000-token reservation.
        let charged = BUDGET - remaining_tokens(&svc, path, &key).await;
        assert!(charged > 0 && charged < 20, "{path}: charged {charged}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_body_gets_408_in_dialect() {
    let g = guard();
    let limits = ServeLimits {
        request_read_timeout: Duration::from_secs(30),
        max_concurrency: 0,
    };
    let app = app_with_limits(
        stack(Some(&g), Backend::Demo(DemoModel::new()).into_service()),
        limits,
    );
    for (path, check) in [
        ("/v1/chat/completions", "request_timeout"),
        ("/v1/messages", "timeout_error"),
    ] {
        // Ten bytes of a body, then nothing (a byte-a-second client, slowed to none).
        let req = Request::post(path)
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-slow")
            .header("x-api-key", "sk-slow")
            .body(Body::new(Pieces::stalling([Bytes::from_static(
                b"{\"model\":",
            )])))
            .expect("request");
        let started = tokio::time::Instant::now();
        let res = finishes_at(
            "the answer to a stalled body",
            started + Duration::from_secs(30),
            app.clone().oneshot(req),
        )
        .await
        .expect("infallible");
        assert_eq!(res.status(), 408, "{path}");
        let v: Value =
            serde_json::from_slice(&res.into_body().collect().await.expect("body").to_bytes())
                .expect("json");
        if path == "/v1/messages" {
            assert_eq!(v["error"]["type"], check);
        } else {
            assert_eq!(v["error"]["code"], check);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn requests_beyond_max_concurrency_get_503_until_a_stream_ends() {
    let g = guard();
    let limits = ServeLimits {
        request_read_timeout: Duration::from_secs(30),
        max_concurrency: 2,
    };
    let upstream = stalling_upstream(vec!["data: {\"choices\":[]}\n\n"]);
    let app = app_with_limits(stack(Some(&g), upstream), limits);
    // Two streams in flight hold both permits while their bodies are open.
    let a = app
        .clone()
        .oneshot(streamed_chat("/v1/chat/completions", "sk-c1"))
        .await
        .expect("ok");
    let b = app
        .clone()
        .oneshot(streamed_chat("/v1/messages", "sk-c2"))
        .await
        .expect("ok");
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let res = app
            .clone()
            .oneshot(streamed_chat(path, "sk-c3"))
            .await
            .expect("ok");
        assert_eq!(res.status(), 503, "{path}");
        assert_eq!(res.headers()["retry-after"], "1");
        let v: Value =
            serde_json::from_slice(&res.into_body().collect().await.expect("body").to_bytes())
                .expect("json");
        if path == "/v1/messages" {
            assert_eq!(v["error"]["type"], "overloaded_error");
        } else {
            assert_eq!(v["error"]["code"], "service_unavailable");
        }
    }
    // The client of one stream goes away: its permit comes back.
    drop(a);
    let res = app
        .clone()
        .oneshot(streamed_chat("/v1/chat/completions", "sk-c4"))
        .await
        .expect("ok");
    assert_eq!(res.status(), 200);
}
