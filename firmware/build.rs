//! Copies the board's memory.x and the model to embed into OUT_DIR.
//!
//! * The board is the one `board-<name>` feature that is on; its memory map is
//!   `boards/<name>/memory.x` (see [`BOARDS`]). It must not live in the crate root: a root
//!   memory.x would silently take precedence over the one written here. The board's RAM and
//!   flash sizes (the `RAM` and `FLASH` lengths of its memory.x) are passed to the crate as
//!   `TINYLSTM_BOARD_RAM_BYTES` and `TINYLSTM_BOARD_FLASH_BYTES` (`board::RAM_BYTES`,
//!   `board::FLASH_BYTES`).
//! * The model (`TINYLSTM_MODEL`, default `models/default.tlm`) and its data sets become
//!   `OUT_DIR/model.rs` (see `build_model.rs`): spec, steps, classes, standardisation, data
//!   sets, and a RAM check against the board's memory.x.
use std::path::{Path, PathBuf};
use std::{env, fs};

#[path = "build_model.rs"]
mod build_model;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));

    let board = select_board(&manifest);
    fs::copy(&board.memory, out.join("memory.x"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", board.memory.display()));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=boards");
    println!("cargo:rustc-env=TINYLSTM_BOARD={}", board.name);
    // ARMv6-M (Cortex-M0/M0+) lacks some system registers (the fault status registers).
    println!("cargo::rustc-check-cfg=cfg(armv6m)");
    if env::var("TARGET").is_ok_and(|t| t.starts_with("thumbv6m")) {
        println!("cargo:rustc-cfg=armv6m");
    }
    println!("cargo:rustc-env=TINYLSTM_BOARD_RAM_BYTES={}", board.ram_bytes);
    println!("cargo:rustc-env=TINYLSTM_BOARD_FLASH_BYTES={}", board.flash_bytes);
    // The heap of a model loaded at run time (feature `runtime-model`): 0 without it.
    let heap = if env::var_os("CARGO_FEATURE_RUNTIME_MODEL").is_some() {
        HEAPS.iter().find(|h| h.0 == board.name).map_or(0, |h| h.1)
    } else {
        0
    };
    println!("cargo:rustc-env=TINYLSTM_BOARD_HEAP_BYTES={heap}");

    build_model::generate(&out, &manifest, &out.join("memory.x"), heap);
}

/// Every board: the feature `board-<name>`, the target it builds for, and a codegen flag its
/// rustflags (.cargo/config.toml) must hold (empty: none), which catches a missing
/// `-C target-cpu`.
const BOARDS: &[(&str, &str, &str)] = &[
    ("mps2-an386", "thumbv7em-none-eabihf", ""),
    ("mps3-an547", "thumbv8m.main-none-eabihf", "target-cpu=cortex-m55"),
    ("mps2-an385", "thumbv6m-none-eabi", ""),
    ("stm32f407", "thumbv7em-none-eabihf", ""),
];

/// The heap of each board for a model loaded at run time (feature `runtime-model`), in bytes:
/// 256 KiB on the QEMU machines (their RAM is 4 MiB, 2 MiB on the mps3-an547), 48 KiB of the
/// STM32F407's 128 KiB (what its inference and head-only fine-tuning leave, with the stack).
/// build_model.rs counts it in the board's RAM check.
const HEAPS: &[(&str, usize)] = &[
    ("mps2-an386", 256 * 1024),
    ("mps3-an547", 256 * 1024),
    ("mps2-an385", 256 * 1024),
    ("stm32f407", 48 * 1024),
];

/// The selected board.
struct Board {
    name: &'static str,
    /// `boards/<name>/memory.x` (`memory-slots.x` with the `flash-slots` feature).
    memory: PathBuf,
    /// Length of the memory map's `RAM` region, in bytes.
    ram_bytes: u64,
    /// Length of the memory map's `FLASH` region, in bytes.
    flash_bytes: u64,
}

/// The board whose feature is on; stops the build with a message when there is not exactly one,
/// or when the target does not fit the board.
fn select_board(manifest: &Path) -> Board {
    let on: Vec<_> = BOARDS
        .iter()
        .filter(|(name, ..)| {
            let var = format!("CARGO_FEATURE_BOARD_{}", name.to_uppercase().replace('-', "_"));
            env::var_os(var).is_some()
        })
        .collect();
    let names = || BOARDS.iter().map(|b| format!("board-{}", b.0)).collect::<Vec<_>>().join(", ");
    let &&(name, target, needs) = match on.as_slice() {
        [one] => one,
        [] => panic!("no board selected: enable one of the features {}", names()),
        _ => panic!(
            "several boards selected ({}): enable exactly one (with --no-default-features)",
            on.iter().map(|b| format!("board-{}", b.0)).collect::<Vec<_>>().join(", ")
        ),
    };
    let actual = env::var("TARGET").unwrap_or_default();
    if actual != target {
        panic!(
            "board-{name} builds for {target}, not {actual}: pass --target {target} \
             (or use the cargo aliases in .cargo/config.toml, README.md \"Boards\")"
        );
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if !needs.is_empty() && !flags.split('\x1f').any(|f| f.ends_with(needs)) {
        panic!(
            "board-{name} needs `-C {needs}`: build with the rustflags of .cargo/config.toml's \
             [target.{target}] (RUSTFLAGS replaces them)"
        );
    }
    // With the weight slots in the board's flash (`flash-slots`), its memory-slots.x leaves
    // their sectors out of the program's flash.
    let memory = if env::var_os("CARGO_FEATURE_FLASH_SLOTS").is_some() {
        let slots = manifest.join("boards").join(name).join("memory-slots.x");
        if !slots.exists() {
            panic!("board-{name} has no weight slots in its flash (no boards/{name}/memory-slots.x): build without the `flash-slots` feature");
        }
        slots
    } else {
        manifest.join("boards").join(name).join("memory.x")
    };
    let text =
        fs::read_to_string(&memory).unwrap_or_else(|e| panic!("reading {}: {e}", memory.display()));
    let length = |region: &str| {
        region_length(&text, region).unwrap_or_else(|| {
            panic!("{}: no `{region} : ORIGIN = …, LENGTH = …` line", memory.display())
        })
    };
    Board { name, ram_bytes: length("RAM"), flash_bytes: length("FLASH"), memory }
}

/// The `LENGTH` of `region` in a memory.x (`RAM : ORIGIN = 0x20000000, LENGTH = 128K`): a
/// decimal or `0x` number with an optional `K` or `M` suffix.
fn region_length(memory_x: &str, region: &str) -> Option<u64> {
    let line = memory_x.lines().find(|l| {
        l.split(':').next().is_some_and(|n| n.trim() == region) && l.contains("LENGTH")
    })?;
    let value = line.split("LENGTH").nth(1)?.trim_start_matches([' ', '=']).trim();
    let value = value.trim_end_matches(|c: char| c == ',' || c.is_whitespace());
    let (digits, scale) = match value.as_bytes().last()? {
        b'K' | b'k' => (&value[..value.len() - 1], 1024),
        b'M' | b'm' => (&value[..value.len() - 1], 1024 * 1024),
        _ => (value, 1),
    };
    let n = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some(n * scale)
}
