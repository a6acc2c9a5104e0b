//! What a compressed answer costs the guard: reading `usage` from a body as it
//! streams past, uncompressed (the guard asks the upstream for `identity`)
//! against decoding it first (an upstream that compresses anyway), for each
//! coding; and, for scale, what compressing the same body costs the upstream
//! (the work negotiating `identity` saves it).
//!
//! `cargo bench --bench encoding`; compare each group's `scan/*` medians with
//! `scan/identity`, and `upstream-compress/*` with them.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use distill_guard::quota::usage::UsageScanner;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};

const CODINGS: [&str; 4] = ["gzip", "deflate", "br", "zstd"];
const SENTENCE: &str = "The committee reviewed the proposal in detail and agreed that the new bridge should be built upstream of the old ford, where the banks are higher and the current is slower. ";

/// An OpenAI JSON answer of 3,000 output tokens (~12 KB of text).
fn json_body() -> Vec<u8> {
    let text = SENTENCE.repeat(12_000 / SENTENCE.len() + 1);
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": &text[..12_000]}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3000, "total_tokens": 3012}
    })
    .to_string()
    .into_bytes()
}

/// An OpenAI stream of the same answer: one event per word, the usage chunk last.
fn sse_body() -> Vec<u8> {
    let mut s = String::new();
    let text = SENTENCE.repeat(12_000 / SENTENCE.len() + 1);
    for word in text[..12_000].split_inclusive(' ') {
        let ev = serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]});
        s.push_str(&format!("data: {ev}\n\n"));
    }
    s.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3000}}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(data).expect("deflate");
            e.finish().expect("deflate")
        }
        "br" => {
            let mut out = Vec::new();
            // Quality 4: a typical on-the-fly setting (nginx's brotli module, CDNs).
            let params = brotli::enc::BrotliEncoderParams {
                quality: 4,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut std::io::Cursor::new(data), &mut out, &params).expect("br");
            out
        }
        "zstd" => zstd::encode_all(data, 3).expect("zstd"),
        other => panic!("no coding {other}"),
    }
}

fn headers(content_type: &str, coding: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("value"),
    );
    if let Some(c) = coding {
        h.insert(CONTENT_ENCODING, HeaderValue::from_str(c).expect("value"));
    }
    h
}

/// The enforce stage's reading of one answer: network-sized chunks through the
/// scanner (decoded first when compressed), then the usage.
fn scan(h: &HeaderMap, body: &[u8]) -> u64 {
    let mut s = UsageScanner::for_response(h);
    for chunk in body.chunks(4096) {
        s.feed(chunk);
    }
    let u = s.finish();
    assert!(!s.unreadable());
    u.output.expect("usage read")
}

fn bench(c: &mut Criterion) {
    for (name, ct, body) in [
        ("json", "application/json", json_body()),
        ("sse", "text/event-stream", sse_body()),
    ] {
        let mut g = c.benchmark_group(format!("encoding/{name}"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        let h = headers(ct, None);
        g.bench_function("scan/identity", |b| {
            b.iter(|| scan(&h, std::hint::black_box(&body)))
        });
        for coding in CODINGS {
            let z = compress(coding, &body);
            let h = headers(ct, Some(coding));
            assert_eq!(scan(&h, &z), 3000);
            g.bench_function(format!("scan/{coding}"), |b| {
                b.iter(|| scan(&h, std::hint::black_box(&z)))
            });
            g.bench_function(format!("upstream-compress/{coding}"), |b| {
                b.iter(|| compress(coding, std::hint::black_box(&body)).len())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
