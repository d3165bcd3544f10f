//! Copies the board's memory.x and the model to embed into OUT_DIR.
//!
//! * memory.x comes from `boards/qemu/` (default) or `boards/stm32f407/` (feature
//!   `board-stm32f407`). It must not live in the crate root: a root memory.x would silently
//!   take precedence over the one written here.
//! * The model (`TINYLSTM_MODEL`, default `models/default.tlm`) and its data sets become
//!   `OUT_DIR/model.rs` (see `build_model.rs`): spec, steps, classes, standardisation, data
//!   sets, and a RAM check against the board's memory.x.
use std::path::PathBuf;
use std::{env, fs};

#[path = "build_model.rs"]
mod build_model;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));

    let board =
        if env::var_os("CARGO_FEATURE_BOARD_STM32F407").is_some() { "stm32f407" } else { "qemu" };
    let memory = manifest.join("boards").join(board).join("memory.x");
    fs::copy(&memory, out.join("memory.x"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", memory.display()));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=boards");

    build_model::generate(&out, &manifest, &out.join("memory.x"));
}
