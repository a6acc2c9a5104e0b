//! The fuzz targets (`fuzz/targets.rs`) on stable: each driven by proptest with
//! arbitrary bytes and with mutations of its seed corpus (`fuzz/corpus/<target>/`),
//! and every file of the corpora (seeds and the crashes libFuzzer found, kept as
//! regressions) replayed. The long runs are `cargo +nightly fuzz run <target>`
//! (see `fuzz/README.md`).

// The targets are shared with the cargo-fuzz crate through `include!`.
#[allow(dead_code, unreachable_pub, clippy::unwrap_used)]
mod targets {
    include!("../fuzz/targets.rs");
}

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let p = e.path();
            if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_target_has_a_seed_corpus_and_passes_it() {
    for (name, run) in targets::TARGETS {
        let files = corpus(name);
        assert!(!files.is_empty(), "fuzz/corpus/{name} holds no seed");
        for (path, bytes) in files {
            // A panic names the file: it is the regression case.
            eprintln!("{name}: {}", path.display());
            run(&bytes);
        }
    }
}

/// Seeds with a few bytes flipped, cut or repeated: proptest's stand-in for
/// libFuzzer's mutations, so stable runs reach past the parsers' first checks.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, b)| b).collect();
    let n = seeds.len().max(1);
    (
        0..n,
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..8),
    )
        .prop_map(move |(i, edits)| {
            let mut b = seeds.get(i).cloned().unwrap_or_default();
            for (at, byte, op) in edits {
                let at = if b.is_empty() { 0 } else { at % b.len() };
                match op {
                    0 if !b.is_empty() => b[at] = byte,
                    1 => b.insert(at.min(b.len()), byte),
                    2 if !b.is_empty() => {
                        b.truncate(at);
                    }
                    _ => {
                        let tail: Vec<u8> = b[at.min(b.len())..].to_vec();
                        b.extend_from_slice(&tail);
                    }
                }
            }
            b
        })
}

macro_rules! fuzz_on_stable {
    ($($name:ident),* $(,)?) => {
        $(
            proptest! {
                #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]
                #[test]
                fn $name(bytes in prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..2048),
                    mutated(stringify!($name)),
                ]) {
                    targets::$name(&bytes);
                }
            }
        )*
    };
}

fuzz_on_stable!(
    request_body,
    headers,
    usage_scanner,
    decoder,
    watermark_body,
    config,
    tag,
    text_marks,
    replay_line,
    share_codec,
);
