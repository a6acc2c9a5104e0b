//! Upstream faults through the real layers: a stream reset midway, malformed
//! SSE, a stream that ends without usage. Nothing panics, the client gets what
//! was sent, and the reservation settles once on what was delivered: neither
//! the whole reservation nor nothing.

mod support;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use distill_guard::clock::ManualClock;
use distill_guard::proxy::server::{stack, HttpService};
use distill_guard::{Config, Guard};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use support::stack::{remaining_tokens, streamed_chat};

const BUDGET: u64 = 100_000;

/// A body that sends its pieces, then fails (a connection reset) or ends.
struct Script {
    pieces: VecDeque<Bytes>,
    reset: bool,
}

impl http_body::Body for Script {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.pieces.pop_front() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None if self.reset => {
                self.reset = false;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "upstream reset",
                ))))
            }
            None => Poll::Ready(None),
        }
    }
}

fn upstream(pieces: Vec<&'static str>, reset: bool) -> HttpService {
    BoxCloneSyncService::new(tower::service_fn(move |_req: Request<Body>| {
        let pieces: VecDeque<Bytes> = pieces
            .iter()
            .map(|p| Bytes::from_static(p.as_bytes()))
            .collect();
        async move {
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::new(Script { pieces, reset }))
                    .expect("response"),
            )
        }
    }))
}

fn guarded(up: HttpService) -> HttpService {
    let cfg = Config::from_toml_str(&format!(
        "[identity]\nsecret = \"faults-test-secret\"\n[tiers.default]\nrequests_per_minute = 1000\ntokens_per_minute = {BUDGET}\ntokens_per_day = \"unlimited\"\n[watermark]\ntag = \"always\"\n[[watermark.keys]]\nid = \"k1\"\nsecret = \"faults-test-watermark-key\"\n"
    ))
    .expect("config");
    let guard = Guard::builder(cfg)
        .clock(Arc::new(ManualClock::new(1_714_000_000_000)))
        .build()
        .expect("guard");
    stack(Some(&guard), up)
}

/// Reads the whole answer; returns what arrived before the end or the error.
async fn read(svc: &HttpService, req: Request<Body>) -> (String, bool) {
    let res = svc.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut text = Vec::new();
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    text.extend_from_slice(d);
                }
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    (String::from_utf8_lossy(&text).into_owned(), failed)
}

const TEXT_32: &str =
    "data: {\"choices\":[{\"delta\":{\"content\":\"0123456789abcdef0123456789abcdef\"}}]}\n\n";
const ANTHROPIC_32: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"0123456789abcdef0123456789abcdef\"}}\n\n";

#[tokio::test]
async fn a_stream_reset_midway_settles_on_what_was_delivered() {
    for (path, event) in [
        ("/v1/chat/completions", TEXT_32),
        ("/v1/messages", ANTHROPIC_32),
    ] {
        let svc = guarded(upstream(vec![event, event], true));
        let key = format!("sk-reset{path}");
        let (text, failed) = read(&svc, streamed_chat(path, &key)).await;
        assert!(failed, "{path}: the client sees the reset");
        assert!(
            text.contains("0123456789abcdef"),
            "{path}: what came first arrived"
        );
        // 64 bytes of text (16 tokens) plus the input: not 8,000, not 0.
        let c = BUDGET - remaining_tokens(&svc, path, &key).await;
        assert!((10..40).contains(&c), "{path}: charged {c}");
    }
}

#[tokio::test]
async fn malformed_sse_passes_and_settles_on_an_estimate() {
    let garbage = vec![
        "data: {\"usage\": {\"completion_tokens\": \"many\"}}\n\n",
        "data: {not json at all\n\n",
        "event: \u{0}\u{7f}\r\r\n",
        ": comment\n",
        "data: [DONE]\n\n",
        TEXT_32,
        "data: {\"usage\":",
    ];
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let svc = guarded(upstream(garbage.clone(), false));
        let key = format!("sk-garbage{path}");
        let (text, failed) = read(&svc, streamed_chat(path, &key)).await;
        assert!(!failed);
        assert!(
            text.contains("{not json at all"),
            "{path}: passed through: {text}"
        );
        assert!(text.contains(": dg-tag "), "{path}: still tagged");
        let c = BUDGET - remaining_tokens(&svc, path, &key).await;
        assert!((5..60).contains(&c), "{path}: charged {c}");
    }
}

#[tokio::test]
async fn a_stream_that_ends_without_usage_is_charged_what_it_delivered() {
    let svc = guarded(upstream(vec![TEXT_32, TEXT_32, TEXT_32, TEXT_32], false));
    let (_, failed) = read(&svc, streamed_chat("/v1/chat/completions", "sk-nousage")).await;
    assert!(!failed);
    // 128 bytes of text: 32 tokens, plus the input estimate.
    let c = BUDGET - remaining_tokens(&svc, "/v1/chat/completions", "sk-nousage").await;
    assert!((32..50).contains(&c), "charged {c}");
}
