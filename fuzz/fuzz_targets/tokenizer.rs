//! Fuzz target `tokenizer`: the oracle is `harness::tokenizer` (see `fuzz/harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::tokenizer(data));
