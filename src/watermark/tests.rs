//! The stage driven through `tower::ServiceExt::oneshot` with a mock upstream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::clock::ManualClock;
use crate::extensions::{Account, AccountId, Action, Cluster, ClusterId, Decision, Suspicion};

const NOW: u64 = 1_764_201_600_000;
const PROSE: &str = "Rivers carry water from the mountains down to the sea, shaping valleys and plains along the way. People have always settled near them for food, for trade and for the simple pleasure of watching the current go by on a summer evening.";

/// A body that yields its chunks one frame at a time.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

fn chunks(text: &str, size: usize) -> Chunks {
    Chunks(
        text.as_bytes()
            .chunks(size)
            .map(Bytes::copy_from_slice)
            .collect(),
    )
}

fn marker(toml_text: &str) -> Arc<Watermarker> {
    let cfg: WatermarkConfig = toml::from_str(toml_text).expect("section");
    Arc::new(
        Watermarker::from_config(&cfg)
            .expect("valid")
            .with_clock(Arc::new(ManualClock::new(NOW))),
    )
}

const ALWAYS: &str =
    "tag = \"always\"\ntext_mark = true\n[[keys]]\nid = \"k1\"\nsecret = \"layer test secret\"\n";

fn decision(action: Action, suspicion: f64) -> Decision {
    Decision {
        request_id: None,
        account: AccountId([0x11; 16]),
        cluster: Cluster {
            id: ClusterId([0x22; 16]),
            size: 3,
        },
        suspicion,
        action,
        status: 200,
        limited_by: None,
        shadowed: false,
        reserved_tokens: 10,
        tier: "default".into(),
        model_group: None,
        limited_in_group: false,
        reasons: Vec::new(),
    }
}

fn openai_json() -> String {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": PROSE}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 50, "total_tokens": 55}
    })
    .to_string()
}

fn anthropic_json() -> String {
    serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": PROSE}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 50}
    })
    .to_string()
}

fn openai_sse() -> String {
    let mut s = String::new();
    for piece in PROSE.split_inclusive(' ').collect::<Vec<_>>().chunks(3) {
        let delta = serde_json::json!({"id": "c", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": piece.concat()}}]});
        s.push_str(&format!("data: {delta}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s
}

fn anthropic_sse() -> String {
    let mut s = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for piece in PROSE.split_inclusive(' ').collect::<Vec<_>>().chunks(4) {
        let delta = serde_json::json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece.concat()}});
        s.push_str(&format!("event: content_block_delta\ndata: {delta}\n\n"));
    }
    s.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":50}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s
}

/// A mock upstream answering by path and `stream`, in chunks of 7 bytes.
fn upstream(
    req: Request<Full<Bytes>>,
) -> impl std::future::Future<Output = Result<Response<Chunks>, Infallible>> {
    let path = req.uri().path().to_owned();
    let stream = req.uri().query() == Some("stream");
    async move {
        let (ct, body) = match (path.as_str(), stream) {
            ("/v1/messages", false) => ("application/json", anthropic_json()),
            ("/v1/messages", true) => ("text/event-stream", anthropic_sse()),
            (_, false) => ("application/json", openai_json()),
            (_, true) => ("text/event-stream", openai_sse()),
        };
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, ct)
            .header(header::CONTENT_LENGTH, body.len())
            .body(chunks(&body, 7))
            .expect("response"))
    }
}

fn request(path: &str, ext: Option<Decision>) -> Request<Full<Bytes>> {
    let mut req = Request::post(path)
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    if let Some(d) = ext {
        req.extensions_mut().insert(d);
    }
    req
}

async fn call(m: &Arc<Watermarker>, req: Request<Full<Bytes>>) -> (http::response::Parts, Bytes) {
    let svc = WatermarkLayer::new(m.clone()).layer(service_fn(upstream));
    let res = svc.oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts, bytes)
}

fn header_tag(parts: &http::response::Parts) -> Option<&str> {
    parts.headers.get(TAG_HEADER).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn json_bodies_of_both_dialects_are_tagged_with_a_fixed_length() {
    let m = marker(ALWAYS);
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let (parts, body) = call(&m, request(path, Some(decision(Action::Allow, 0.0)))).await;
        let tag = header_tag(&parts).expect("header tag").to_owned();
        let fields = m.verify(&tag).expect("valid tag");
        assert_eq!(fields.kind, TagKind::Body);
        assert_eq!(fields.account, AccountId([0x11; 16]));
        assert_eq!(fields.cluster, ClusterId([0x22; 16]));
        assert_eq!(fields.issued_at_ms, NOW);
        assert!(fields.text_marked);
        let len: usize = parts.headers[header::CONTENT_LENGTH]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("number");
        assert_eq!(
            len,
            body.len(),
            "{path}: Content-Length matches the new body"
        );
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["distill_guard"]["tag"], tag.as_str());
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .or(v["content"][0]["text"].as_str())
            .expect("text");
        assert_ne!(text, PROSE);
        assert_eq!(strip_marks(text), PROSE);
        assert_eq!(
            fields.text_digest,
            Some(tag::ContentDigest::of(text.as_bytes()))
        );
        let marks = m.detect_marks(text);
        assert_eq!(marks.len(), 1);
        assert!(marks[0].payload.matches_account(&AccountId([0x11; 16])));
    }
    assert_eq!(m.index().len(), 2);
}

#[tokio::test]
async fn sse_streams_of_both_dialects_carry_records() {
    let m = marker(ALWAYS);
    for (path, end) in [
        ("/v1/chat/completions?stream", "data: [DONE]"),
        ("/v1/messages?stream", "event: message_stop"),
    ] {
        let (parts, body) = call(&m, request(path, Some(decision(Action::Tag, 0.9)))).await;
        assert!(
            parts.headers.get(header::CONTENT_LENGTH).is_none(),
            "length dropped"
        );
        let start = m
            .verify(header_tag(&parts).expect("header"))
            .expect("valid");
        assert_eq!(start.kind, TagKind::StreamStart);
        let text = String::from_utf8(body.to_vec()).expect("utf-8");
        let first = text.lines().next().expect("first line");
        assert_eq!(
            first,
            format!(": dg-tag {}", header_tag(&parts).expect("tag"))
        );
        let fin = text
            .lines()
            .find(|l| l.starts_with(": dg-final "))
            .expect("final record");
        let fields = m.verify(fin).expect("valid final");
        assert_eq!(fields.kind, TagKind::StreamEnd);
        assert_eq!(fields.request_id, start.request_id);
        assert!(text.find(fin).expect("fin") < text.find(end).expect("end"));
        // The delivered text carries the mark and reads as the original.
        let mut delivered = String::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("data: ") {
                if let Ok(v) = serde_json::from_str::<Value>(d) {
                    delivered.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
                    if v["delta"]["type"] == "text_delta" {
                        delivered.push_str(v["delta"]["text"].as_str().unwrap_or(""));
                    }
                }
            }
        }
        assert_eq!(strip_marks(&delivered), PROSE);
        assert_eq!(
            fields.text_digest,
            Some(tag::ContentDigest::of(delivered.as_bytes()))
        );
        assert_eq!(m.detect_marks(&delivered).len(), 1);
    }
}

#[tokio::test]
async fn tracing_finds_the_account_by_mark_and_after_stripping() {
    let m = marker(ALWAYS);
    let (_, body) = call(
        &m,
        request("/v1/messages", Some(decision(Action::Tag, 0.9))),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).expect("json");
    let text = v["content"][0]["text"].as_str().expect("text");
    let by_mark = m.trace(text).expect("traced");
    assert_eq!(by_mark.method, TraceMethod::Mark);
    assert_eq!(
        by_mark.account,
        AccountId([0x11; 16]).to_string(),
        "completed from the index"
    );
    assert_eq!(by_mark.cluster, ClusterId([0x22; 16]).to_string());
    assert_eq!(by_mark.issued_at_ms, NOW);
    let stripped: String = text.chars().filter(|c| !mark::is_mark_char(*c)).collect();
    let by_index = m.trace(&stripped).expect("traced");
    assert_eq!(by_index.method, TraceMethod::Index);
    assert_eq!(by_index.account, AccountId([0x11; 16]).to_string());
    assert!(by_index.confidence > 0.8, "{by_index:?}");
    let json = serde_json::to_value(&by_index).expect("json");
    for k in ["account", "cluster", "issued_at", "method", "confidence"] {
        assert!(json.get(k).is_some(), "{k} missing");
    }
    assert_eq!(json["method"], "index");
    assert!(m
        .trace("Nothing like any response at all, about baking sourdough bread at home.")
        .is_none());
}

#[tokio::test]
async fn policy_decides_who_is_tagged() {
    let keys = "[[keys]]\nid = \"k1\"\nsecret = \"layer test secret\"\n";
    let suspicious = marker(&format!(
        "tag = \"suspicious\"\nsuspicion_threshold = 0.6\n{keys}"
    ));
    let cases = [
        (decision(Action::Allow, 0.1), false),
        (decision(Action::Allow, 0.7), true),
        (decision(Action::Tag, 0.0), true),
        (decision(Action::Degrade, 0.0), true),
    ];
    for (d, tagged) in cases {
        let (parts, body) = call(
            &suspicious,
            request("/v1/chat/completions", Some(d.clone())),
        )
        .await;
        assert_eq!(header_tag(&parts).is_some(), tagged, "{d:?}");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v.get("distill_guard").is_some(), tagged);
        // text_mark defaults to off.
        assert_eq!(v["choices"][0]["message"]["content"], PROSE);
    }
    let (parts, _) = call(
        &suspicious,
        request("/v1/models", Some(decision(Action::Tag, 1.0))),
    )
    .await;
    assert!(
        header_tag(&parts).is_none(),
        "only generating endpoints are tagged"
    );
    let never = marker(&format!("tag = \"never\"\n{keys}"));
    let (parts, _) = call(
        &never,
        request("/v1/chat/completions", Some(decision(Action::Block, 1.0))),
    )
    .await;
    assert!(header_tag(&parts).is_none());
    // Used alone: the fingerprint stage's extensions, or nothing at all.
    let always = marker(ALWAYS);
    let (parts, _) = call(&always, request("/v1/chat/completions", None)).await;
    assert!(header_tag(&parts).is_none(), "no account, no tag");
    let mut req = request("/v1/chat/completions", None);
    req.extensions_mut().insert(Account {
        id: AccountId([0x33; 16]),
        anonymous: false,
    });
    req.extensions_mut().insert(Suspicion::new(0.2));
    let (parts, _) = call(&always, req).await;
    let f = always
        .verify(header_tag(&parts).expect("tag"))
        .expect("valid");
    assert_eq!(f.account, AccountId([0x33; 16]));
    assert_eq!(f.cluster, ClusterId::of_account(AccountId([0x33; 16])));
}

#[tokio::test]
async fn errors_compressed_and_oversized_bodies() {
    let m = marker(ALWAYS);
    let d = decision(Action::Tag, 1.0);
    let error = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(header::CONTENT_TYPE, "application/json")
                .body(chunks("{\"error\":{}}", 4))
                .expect("response"),
        )
    });
    let res = WatermarkLayer::new(m.clone())
        .layer(error)
        .oneshot(request("/v1/chat/completions", Some(d.clone())))
        .await
        .expect("infallible");
    assert!(res.headers().get(TAG_HEADER).is_none());
    assert_eq!(
        &res.into_body().collect().await.expect("body").to_bytes()[..],
        b"{\"error\":{}}"
    );

    let gz = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_ENCODING, "gzip")
                .header(header::CONTENT_LENGTH, "5")
                .body(Chunks(VecDeque::from([Bytes::from_static(
                    b"\x1f\x8b\x08\x00\x00",
                )])))
                .expect("response"),
        )
    });
    let res = WatermarkLayer::new(m.clone())
        .layer(gz)
        .oneshot(request("/v1/chat/completions", Some(d.clone())))
        .await
        .expect("infallible");
    let f = m
        .verify(res.headers()[TAG_HEADER].to_str().expect("ascii"))
        .expect("valid");
    assert_eq!(f.kind, TagKind::Header);
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "5");
    assert_eq!(
        res.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .len(),
        5
    );

    let small = marker(&format!("max_json_bytes = 64\n{ALWAYS}"));
    let (parts, body) = call(&small, request("/v1/chat/completions", Some(d))).await;
    let f = small
        .verify(header_tag(&parts).expect("tag"))
        .expect("valid");
    assert_eq!(f.kind, TagKind::Header);
    assert_eq!(
        body,
        Bytes::from(openai_json()),
        "oversized body passes unchanged"
    );
}

#[tokio::test]
async fn prompts_are_cleaned_of_marks_before_the_handler() {
    let m = marker(ALWAYS);
    let (_, body) = call(
        &m,
        request("/v1/chat/completions", Some(decision(Action::Tag, 1.0))),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).expect("json");
    let marked = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    let prompt = serde_json::json!({"messages": [{"role": "user", "content": marked}]}).to_string();
    let info = Arc::new(crate::request::RequestInfo::parse(
        "/v1/chat/completions",
        Bytes::from(prompt.clone()),
    ));
    let mut req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(prompt)))
        .expect("request");
    req.extensions_mut().insert(info);
    let echo = service_fn(|req: Request<Full<Bytes>>| async move {
        let bytes = req.into_body().collect().await.expect("body").to_bytes();
        Ok::<_, Infallible>(Response::new(Full::new(bytes)))
    });
    let res = WatermarkLayer::new(m.clone())
        .layer(echo)
        .oneshot(req)
        .await
        .expect("infallible");
    let seen = res.into_body().collect().await.expect("body").to_bytes();
    let seen = String::from_utf8(seen.to_vec()).expect("utf-8");
    assert!(m.detect_marks(&seen).is_empty(), "the handler saw no marks");
    assert!(seen.contains("Rivers carry water"));
    // The same prompt from another account is an echo: a hard link.
    let echoes = m.echoes(&marked, &AccountId([0x99; 16]));
    assert_eq!(echoes.len(), 1);
    assert_eq!(echoes[0].link, mark::source_link(&AccountId([0x11; 16])));
}

#[test]
fn futures_and_bodies_are_send() {
    fn send<T: Send>(_: &T) {}
    let m = marker(ALWAYS);
    let mut svc = WatermarkLayer::new(m).layer(service_fn(upstream));
    let fut = tower::Service::call(&mut svc, request("/v1/chat/completions", None));
    send(&fut);
}

#[tokio::test]
async fn escaped_marks_in_a_prompt_are_cleaned_and_reported_as_echoes() {
    let m = marker(ALWAYS);
    let (_, body) = call(
        &m,
        request("/v1/messages", Some(decision(Action::Tag, 1.0))),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).expect("json");
    let marked = v["content"][0]["text"].as_str().expect("text").to_owned();
    // As Python's json.dumps sends it: every non-ASCII character escaped.
    let mut escaped = String::new();
    for c in marked.chars() {
        if c.is_ascii() {
            escaped.push(c);
        } else {
            escaped.push_str(&format!("\\u{:04x}", c as u32));
        }
    }
    let prompt = format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"{escaped}\"}}]}}");
    let info = Arc::new(crate::request::RequestInfo::parse(
        "/v1/messages",
        Bytes::from(prompt.clone()),
    ));
    let mut other = decision(Action::Allow, 0.0);
    other.account = AccountId([0x77; 16]);
    let mut req = Request::post("/v1/messages")
        .body(Full::new(Bytes::from(prompt)))
        .expect("request");
    req.extensions_mut().insert(info);
    req.extensions_mut().insert(other);
    let echo = service_fn(|req: Request<Full<Bytes>>| async move {
        let bytes = req.into_body().collect().await.expect("body").to_bytes();
        Ok::<_, Infallible>(Response::new(Full::new(bytes)))
    });
    let res = WatermarkLayer::new(m.clone())
        .layer(echo)
        .oneshot(req)
        .await
        .expect("infallible");
    let echoes = res
        .extensions()
        .get::<mark::MarkEchoes>()
        .cloned()
        .expect("echo reported");
    assert_eq!(echoes.0.len(), 1);
    assert_eq!(echoes.0[0].link, mark::source_link(&AccountId([0x11; 16])));
    let seen = res.into_body().collect().await.expect("body").to_bytes();
    let seen: Value = serde_json::from_slice(&seen).expect("json");
    let content = seen["messages"][0]["content"].as_str().expect("content");
    assert_eq!(
        content,
        strip_marks(&marked),
        "handler saw the clean prompt"
    );
}
