//! Tagging cost per KB of response, JSON and SSE, against an untagged
//! pass-through of the same stage (`tag = "never"`), through the layer.
//!
//! `cargo bench --bench watermark`; compare the medians of `*/untagged`,
//! `*/tagged` and `*/tagged+marked` within each group.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use distill_guard::extensions::{AccountId, Action, Cluster, ClusterId, Decision};
use distill_guard::watermark::{WatermarkConfig, WatermarkLayer, Watermarker};
use http::{header, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};

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

const SENTENCE: &str = "The committee reviewed the proposal in detail and agreed that the new bridge should be built upstream of the old ford, where the banks are higher and the current is slower. ";

fn json_body(bytes: usize) -> Bytes {
    let text = SENTENCE.repeat(bytes / SENTENCE.len() + 1);
    let v = serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": &text[..bytes.min(text.len())]}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 50, "total_tokens": 55}
    });
    Bytes::from(v.to_string())
}

/// An OpenAI stream of about `bytes` bytes, one event per four words, sent in
/// network-sized chunks.
fn sse_chunks(bytes: usize) -> Vec<Bytes> {
    let mut s = String::new();
    let words: Vec<&str> = SENTENCE.split_inclusive(' ').collect();
    let mut i = 0;
    while s.len() < bytes {
        let piece: String = (0..4).map(|k| words[(i + k) % words.len()]).collect();
        i += 4;
        let ev = serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
        s.push_str(&format!("data: {ev}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s.as_bytes()
        .chunks(1400)
        .map(Bytes::copy_from_slice)
        .collect()
}

fn marker(tag: &str, text_mark: bool) -> Arc<Watermarker> {
    let cfg: WatermarkConfig = toml::from_str(&format!(
        "tag = \"{tag}\"\ntext_mark = {text_mark}\n[[keys]]\nid = \"k1\"\nsecret = \"benchmark secret value\"\n"
    ))
    .expect("config");
    Arc::new(Watermarker::from_config(&cfg).expect("valid"))
}

fn decision() -> Decision {
    Decision {
        request_id: None,
        account: AccountId([1; 16]),
        cluster: Cluster {
            id: ClusterId([2; 16]),
            size: 4,
        },
        suspicion: 0.9,
        action: Action::Tag,
        status: 200,
        limited_by: None,
        shadowed: false,
        reserved_tokens: 100,
        tier: "default".into(),
        model_group: None,
        limited_in_group: false,
        reasons: Vec::new(),
    }
}

async fn run(m: &Arc<Watermarker>, content_type: &'static str, chunks: &[Bytes]) -> usize {
    let chunks: VecDeque<Bytes> = chunks.iter().cloned().collect();
    let upstream = service_fn(move |_req: Request<Full<Bytes>>| {
        let body = Chunks(chunks.clone());
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, content_type)
                    .body(body)
                    .expect("response"),
            )
        }
    });
    let mut req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    req.extensions_mut().insert(decision());
    let res = WatermarkLayer::new(m.clone())
        .layer(upstream)
        .oneshot(req)
        .await
        .expect("infallible");
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let variants = [
        ("untagged", marker("never", false)),
        ("tagged", marker("always", false)),
        ("tagged+marked", marker("always", true)),
    ];
    for size in [4 * 1024, 32 * 1024] {
        let json = vec![json_body(size)];
        let sse = sse_chunks(size);
        for (kind, ct, chunks) in [
            ("json", "application/json", &json),
            ("sse", "text/event-stream", &sse),
        ] {
            let total: usize = chunks.iter().map(Bytes::len).sum();
            let mut group = c.benchmark_group(format!("{kind}_{}k", size / 1024));
            group.throughput(Throughput::Bytes(total as u64));
            for (name, m) in &variants {
                group.bench_with_input(BenchmarkId::from_parameter(name), m, |b, m| {
                    b.iter(|| rt.block_on(run(m, ct, chunks)));
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
