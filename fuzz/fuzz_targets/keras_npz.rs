//! Fuzz target `keras_npz`: the oracle is `harness::keras_npz` (see `fuzz/harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::keras_npz(data));
