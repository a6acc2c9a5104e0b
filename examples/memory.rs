//! Measures the linking engine's memory per tracked account at one million
//! accounts: the engine's own accounting of its heap and the process's resident
//! set growth.
//!
//! ```text
//! cargo run --release --example memory -- [ACCOUNTS] [REQUESTS_PER_ACCOUNT]
//! ```
//!
//! Each request carries the features of a real one (5 client, 2 network,
//! 3 shape, 1 system prompt, 16 prompt bands): popular client and shape values,
//! a network prefix shared by a few accounts, and prompt bands that are mostly
//! unique, which is what fills postings and the doorkeeper.

use distill_guard::config::Config;
use distill_guard::detect::Detector;
use distill_guard::extensions::AccountId;
use distill_guard::features::{Feature, FeatureKind};
use distill_guard::score::Signals;

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn features(i: u64, r: u64, out: &mut Vec<Feature>) {
    out.clear();
    let f = |kind, value| Feature { kind, value };
    out.extend([
        f(FeatureKind::HeaderOrder, mix(i % 7)),
        f(FeatureKind::UserAgent, mix(100 + i % 5)),
        f(FeatureKind::Stainless, mix(200 + i % 5)),
        f(FeatureKind::AcceptValues, mix(300 + i % 3)),
        f(FeatureKind::IpPrefix, mix(1_000 + i / 3)),
        f(FeatureKind::KeyOrder, mix(400 + i % 11)),
        f(FeatureKind::Params, mix(500 + i % 40)),
        f(FeatureKind::SystemPrompt, mix(600 + i % 1000)),
    ]);
    for band in 0..16 {
        let kind = if band < 8 {
            FeatureKind::HeadLshBand
        } else {
            FeatureKind::TailLshBand
        };
        out.push(f(kind, mix((i << 24) ^ (r << 6) ^ band)));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let accounts: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let before = rss_bytes();
    let d = match Detector::from_config(&Config::with_secret("memory")) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("memory: {e}");
            std::process::exit(2);
        }
    };
    let mut buf = Vec::with_capacity(32);
    let t0 = 1_767_571_200_000u64;
    let start = std::time::Instant::now();
    for r in 0..rounds {
        for i in 0..accounts {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&mix(i).to_le_bytes());
            id[8..].copy_from_slice(&i.to_le_bytes());
            features(i, r, &mut buf);
            let t = t0 + r * 8 * 3_600_000 + i * 28;
            d.observe(AccountId(id), &buf, Signals::default(), t);
        }
    }
    let elapsed = start.elapsed();
    let s = d.engine().stats();
    let rss = rss_bytes().saturating_sub(before);
    let n = s.accounts.max(1);
    println!("accounts tracked:      {}", s.accounts);
    println!(
        "postings:              {} ({} entries)",
        s.postings, s.posting_entries
    );
    println!("clusters:              {}", s.clusters);
    println!(
        "engine heap (counted): {} bytes = {:.0} bytes/account",
        s.bytes,
        s.bytes as f64 / n as f64
    );
    println!(
        "process RSS growth:    {} bytes = {:.0} bytes/account",
        rss,
        rss as f64 / n as f64
    );
    println!(
        "observe + score:       {:.2} µs/request over {} requests",
        elapsed.as_secs_f64() * 1e6 / (accounts * rounds) as f64,
        accounts * rounds
    );
}
