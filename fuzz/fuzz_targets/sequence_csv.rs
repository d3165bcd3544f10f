//! Fuzz target `sequence_csv`: the oracle is `harness::sequence_csv` (see `fuzz/harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sequence_csv(data));
