//! Copies the board's memory.x and the model to embed into OUT_DIR.
//!
//! * memory.x comes from `boards/qemu/` (default) or `boards/stm32f407/` (feature
//!   `board-stm32f407`). It must not live in the crate root: a root memory.x would silently
//!   take precedence over the one written here.
//! * The model is `models/default.tlm`, or the file named by the `TINYLSTM_MODEL` environment
//!   variable (absolute, or relative to `firmware/`). It is embedded with `include_bytes!`;
//!   its spec is checked against the firmware's at compile time and its CRC at boot.
use std::path::PathBuf;
use std::{env, fs};

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

    println!("cargo:rerun-if-env-changed=TINYLSTM_MODEL");
    let model = match env::var_os("TINYLSTM_MODEL") {
        Some(p) if !p.is_empty() => manifest.join(PathBuf::from(p)),
        _ => manifest.join("models/default.tlm"),
    };
    fs::copy(&model, out.join("model.tlm")).unwrap_or_else(|e| {
        panic!("TINYLSTM_MODEL: cannot read the model {}: {e}", model.display())
    });
    println!("cargo:rerun-if-changed={}", model.display());
    println!("cargo:rustc-env=TINYLSTM_MODEL_PATH={}", model.display());
}
