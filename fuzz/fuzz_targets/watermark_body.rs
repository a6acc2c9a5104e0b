#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distill_guard_fuzz::watermark_body(data));
