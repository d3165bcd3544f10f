//! tinylstm firmware support: the [`board`] (memory map, clocks, log transport, exit), the
//! platform layer (exit codes, fault handlers, instruction counter, stack painting), the
//! embedded model and data, and the platform-independent [`engine`] the application and the
//! on-target tests share.
//!
//! Exactly one `board-*` feature must be on (build.rs says which and checks the target):
//! `board-mps2-an386` (default: QEMU, Cortex-M4F), `board-mps3-an547` (QEMU, Cortex-M55),
//! `board-mps2-an385` (QEMU, soft-float Cortex-M0+ build) or `board-stm32f407`.
#![no_std]

// Full fine-tuning keeps a candidate copy, the gradients and Adam's two moments of every
// parameter (5 x 70.7 KB for the default model): it cannot fit the STM32F407's 128 KiB,
// whatever the BPTT window. The board fine-tunes the head only.
#[cfg(all(feature = "board-stm32f407", feature = "full-finetune"))]
compile_error!(
    "`full-finetune` needs about 390 KB of RAM with the default model; the STM32F407 has 128 KiB: \
     build the board with `--features board-stm32f407,head-finetune`"
);

pub mod board;
pub mod embedded;
pub mod engine;
pub mod platform;
