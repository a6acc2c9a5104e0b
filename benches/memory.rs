//! Guard state per tracked account at 1M accounts: resident memory grown while one
//! million distinct accounts each make a request through the whole guard stack's
//! state (quota store; clustering once present), divided by the account count.
//!
//! Run: `cargo bench --bench memory` (prints `bytes_per_account=N`).

use std::sync::Arc;

use bytes::Bytes;
use distill_guard::clock::ManualClock;
use distill_guard::config::Config;
use distill_guard::proxy::demo::DemoModel;
use distill_guard::Guard;
use http::Request;
use tower::{Layer, ServiceExt};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let accounts: u64 = std::env::var("ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let clock = ManualClock::new(1_714_000_000_000);
    let guard = Guard::builder(Config::with_secret("memory-bench"))
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("config");
    let svc = guard.layer().layer(DemoModel::new());
    let body = Bytes::from_static(
        br#"{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hello there"}]}"#,
    );
    // Warm up allocator arenas and lazy statics before the baseline.
    rt.block_on(async {
        for i in 0..1_000u64 {
            let req = Request::post("/v1/chat/completions")
                .header("authorization", format!("Bearer warm-{i}"))
                .body(http_body_util::Full::new(body.clone()))
                .expect("request");
            let _ = svc.clone().oneshot(req).await;
        }
    });
    let before = rss_bytes();
    rt.block_on(async {
        for i in 0..accounts {
            // Spread over a few minutes of virtual time, as traffic would be.
            if i % 10_000 == 0 {
                clock.advance_ms(1_000);
            }
            let req = Request::post("/v1/chat/completions")
                .header("authorization", format!("Bearer sk-{i}"))
                .header("user-agent", "OpenAI/Python 1.54.3")
                .body(http_body_util::Full::new(body.clone()))
                .expect("request");
            let res = svc.clone().oneshot(req).await.expect("infallible");
            let _ = http_body_util::BodyExt::collect(res.into_body()).await;
        }
    });
    let after = rss_bytes();
    let tracked = guard.shared().store().tracked();
    let per = after.saturating_sub(before) as f64 / accounts as f64;
    println!("accounts={accounts} tracked_subjects={tracked} rss_growth_bytes={} bytes_per_account={per:.0}", after.saturating_sub(before));
}
