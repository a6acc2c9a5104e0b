#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distill_guard_fuzz::replay_line(data));
