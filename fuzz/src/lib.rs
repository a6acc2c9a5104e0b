//! The fuzz targets' bodies (`targets.rs`, shared with the stable tests in
//! `tests/fuzz_targets.rs`), one binary each under `fuzz_targets/`.
#![allow(missing_docs, clippy::unwrap_used)]

include!("../targets.rs");
