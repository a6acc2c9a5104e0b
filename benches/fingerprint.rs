//! Cost of fingerprinting one request: a 4 KB chat body with the OpenAI Python
//! SDK's headers, and the same with an Anthropic body with tools and a long system
//! prompt.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use distill_guard::fingerprint::{Fingerprint, FingerprintSettings};
use distill_guard::request::RequestInfo;
use http::HeaderMap;

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("user-agent", "OpenAI/Python 1.54.3"),
        ("x-stainless-lang", "python"),
        ("x-stainless-package-version", "1.54.3"),
        ("x-stainless-os", "Linux"),
        ("x-stainless-arch", "x64"),
        ("x-stainless-runtime", "CPython"),
        ("x-stainless-runtime-version", "3.12.4"),
        ("authorization", "Bearer sk-bench"),
        ("x-stainless-async", "false"),
        ("x-stainless-retry-count", "0"),
        ("content-length", "4096"),
    ] {
        h.insert(k, v.parse().expect("header"));
    }
    h
}

fn prose(words: usize, seed: usize) -> String {
    const W: &[&str] = &[
        "the",
        "model",
        "should",
        "consider",
        "each",
        "case",
        "carefully",
        "and",
        "then",
        "return",
        "a",
        "concise",
        "answer",
        "with",
        "supporting",
        "evidence",
        "from",
        "text",
        "including",
        "numbers",
        "like",
        "42",
        "or",
        "\"quoted phrases\"",
        "where",
        "relevant",
    ];
    (0..words)
        .map(|i| W[(i * 7 + seed) % W.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn chat_4k() -> RequestInfo {
    let body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": prose(60, 1)},
            {"role": "user", "content": prose(200, 2)},
            {"role": "assistant", "content": prose(120, 3)},
            {"role": "user", "content": format!("Solve the following problem. {} Think step by step and show your full reasoning.", prose(170, 4))}
        ],
        "temperature": 0.7,
        "max_tokens": 2048,
        "stream": true
    });
    let text = body.to_string();
    RequestInfo::parse("/v1/chat/completions", Bytes::from(text))
}

fn anthropic_agent() -> RequestInfo {
    let tools: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"name": format!("tool_{i}"), "description": prose(30, i), "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["path"]}}))
        .collect();
    let body = serde_json::json!({
        "model": "claude",
        "max_tokens": 8192,
        "system": [{"type": "text", "text": prose(2000, 5)}],
        "tools": tools,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prose(300, 6)}]}]
    });
    RequestInfo::parse("/v1/messages", Bytes::from(body.to_string()))
}

fn bench(c: &mut Criterion) {
    let cfg = FingerprintSettings::default();
    let h = headers();
    let peer = Some("203.0.113.7".parse().expect("ip"));
    let chat = chat_4k();
    assert!(
        (3500..5000).contains(&chat.body.len()),
        "{}",
        chat.body.len()
    );
    c.bench_function("compute/chat_4k", |b| {
        b.iter(|| Fingerprint::compute(black_box(&h), peer, black_box(&chat), &cfg))
    });
    c.bench_function("compute_and_features/chat_4k", |b| {
        b.iter(|| Fingerprint::compute(black_box(&h), peer, black_box(&chat), &cfg).features())
    });
    let agent = anthropic_agent();
    c.bench_function("compute/anthropic_2000_word_system_12_tools", |b| {
        b.iter(|| Fingerprint::compute(black_box(&h), peer, black_box(&agent), &cfg))
    });
    let garbage = RequestInfo::parse("/v1/chat/completions", Bytes::from_static(b"not json"));
    c.bench_function("compute/headers_only", |b| {
        b.iter(|| Fingerprint::compute(black_box(&h), peer, black_box(&garbage), &cfg))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
