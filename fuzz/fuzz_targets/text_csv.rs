//! Fuzz target `text_csv`: the oracle is `harness::text_csv` (see `fuzz/harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::text_csv(data));
