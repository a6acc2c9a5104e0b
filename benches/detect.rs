//! Detect-stage costs: the linking engine's update (with scoring) on a warm
//! engine, the same with the update published to the shared cluster log in a
//! real `redis-server` (skipped when it is not installed), the whole detection
//! of a ~4 KB chat request (fingerprint, features, link, score), and the degrade
//! rewrite.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use distill_guard::config::Config;
use distill_guard::detect::{degrade_body, Detector};
use distill_guard::extensions::AccountId;
use distill_guard::features::{Feature, FeatureKind};
use distill_guard::request::{Endpoint, RequestInfo};
use distill_guard::score::Signals;
use http::HeaderMap;

const T0: u64 = 1_767_571_200_000;

fn account(i: u64) -> AccountId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b[8..].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    AccountId(b)
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// About the features of a real request: 5 client, 2 network, 3 shape, 17
/// template (system prompt and 8 + 8 bands), mostly popular or unique values.
fn features(i: u64, r: u64) -> Vec<Feature> {
    let mut f = vec![
        Feature {
            kind: FeatureKind::HeaderOrder,
            value: mix(i % 7),
        },
        Feature {
            kind: FeatureKind::UserAgent,
            value: mix(100 + i % 5),
        },
        Feature {
            kind: FeatureKind::Stainless,
            value: mix(200 + i % 5),
        },
        Feature {
            kind: FeatureKind::AcceptValues,
            value: mix(300 + i % 3),
        },
        Feature {
            kind: FeatureKind::IpPrefix,
            value: mix(1_000 + i % 50_000),
        },
        Feature {
            kind: FeatureKind::KeyOrder,
            value: mix(400 + i % 11),
        },
        Feature {
            kind: FeatureKind::Params,
            value: mix(500 + i % 40),
        },
        Feature {
            kind: FeatureKind::SystemPrompt,
            value: mix(600 + i % 1000),
        },
    ];
    for band in 0..16 {
        f.push(Feature {
            kind: if band < 8 {
                FeatureKind::HeadLshBand
            } else {
                FeatureKind::TailLshBand
            },
            value: mix(i << 20 ^ r << 5 ^ band),
        });
    }
    f
}

fn warm_detector(accounts: u64) -> Detector {
    let d = Detector::from_config(&Config::with_secret("bench")).expect("valid");
    for r in 0..3 {
        for i in 0..accounts {
            let t = T0 + r * 3_600_000 + i;
            d.observe(account(i), &features(i, r), Signals::default(), t);
        }
    }
    d
}

fn chat_body() -> Bytes {
    let words: String = (0..600).map(|k| format!("word{} ", k % 97)).collect();
    Bytes::from(format!(
        r#"{{"model":"gpt-4o","temperature":0.7,"max_tokens":4096,"stream":true,"messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"Please review this: {words} and think step by step."}}]}}"#
    ))
}

fn bench(c: &mut Criterion) {
    let d = warm_detector(100_000);
    let mut i = 0u64;
    c.bench_function("engine_observe_and_score_100k_accounts", |b| {
        b.iter(|| {
            i += 1;
            let a = i % 100_000;
            let f = features(a, 10 + i / 100_000);
            black_box(d.observe(
                account(a),
                black_box(&f),
                Signals::default(),
                T0 + 4 * 3_600_000 + i,
            ))
        })
    });

    // The same with every observation published to the shared cluster log (the
    // writer runs on a runtime thread, as in `serve`; feature `redis`).
    #[cfg(feature = "redis")]
    if let Some(server) = support::RedisServer::start() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let store = distill_guard::store::StoreConfig {
            backend: distill_guard::store::Backend::Redis,
            url: Some(server.url()),
            ..Default::default()
        };
        let share = {
            let _g = rt.enter();
            distill_guard::cluster::share::ClusterShare::start(&store, Box::new(|_| true))
                .expect("share")
        };
        let d = warm_detector(100_000);
        d.attach_share(share.clone());
        let mut i = 0u64;
        c.bench_function("engine_observe_and_score_100k_accounts_published", |b| {
            b.iter(|| {
                i += 1;
                let a = i % 100_000;
                let f = features(a, 10 + i / 100_000);
                black_box(d.observe(
                    account(a),
                    black_box(&f),
                    Signals::default(),
                    T0 + 5 * 3_600_000 + i,
                ))
            })
        });
        let counts = share.counts();
        println!(
            "cluster log: {} published, {} dropped (queue full while Redis was slower)",
            counts.published, counts.dropped
        );
    }

    let body = chat_body();
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", "OpenAI/Python 1.54.3".parse().expect("hv"));
    headers.insert("x-stainless-lang", "python".parse().expect("hv"));
    headers.insert("x-stainless-package-version", "1.54.3".parse().expect("hv"));
    headers.insert("content-type", "application/json".parse().expect("hv"));
    headers.insert("authorization", "Bearer sk-test".parse().expect("hv"));
    let info = RequestInfo::parse("/v1/chat/completions", body.clone());
    let mut j = 0u64;
    c.bench_function("detect_4kb_chat_request", |b| {
        b.iter(|| {
            j += 1;
            let a = j % 100_000;
            black_box(d.detect(
                account(a),
                &headers,
                Some(IpAddr::V4(Ipv4Addr::new(203, 0, (a % 250) as u8, 7))),
                black_box(&info),
                &[],
                T0 + 5 * 3_600_000 + j,
            ))
        })
    });

    c.bench_function("fingerprint_4kb_chat_request", |b| {
        b.iter(|| {
            let fp = distill_guard::fingerprint::Fingerprint::compute(
                &headers,
                Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
                black_box(&info),
                d.fingerprint_settings(),
            );
            black_box(fp.features())
        })
    });

    let json = info.json.clone().expect("json");
    c.bench_function("degrade_rewrite_4kb", |b| {
        b.iter(|| {
            black_box(degrade_body(
                Endpoint::ChatCompletions,
                black_box(&json),
                1024,
            ))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
