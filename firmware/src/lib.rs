//! tinylstm firmware support: the platform layer (log transport, exit codes, fault handlers,
//! instruction counter, stack painting), the embedded model and data, and the
//! platform-independent [`engine`] the application and the on-target tests share.
//!
//! One of the features `qemu` (default: QEMU mps2-an386, defmt over semihosting, semihosting
//! exit codes) or `board-stm32f407` (defmt over RTT, `bkpt` on exit) must be on.
#![no_std]

#[cfg(all(feature = "qemu", feature = "board-stm32f407"))]
compile_error!("features `qemu` and `board-stm32f407` are exclusive: use --no-default-features");
#[cfg(not(any(feature = "qemu", feature = "board-stm32f407")))]
compile_error!("enable one of the features `qemu` or `board-stm32f407`");
// Full fine-tuning keeps a candidate copy, the gradients and Adam's two moments of every
// parameter (5 x 70.7 KB for the default model): it cannot fit the STM32F407's 128 KiB,
// whatever the BPTT window. The board fine-tunes the head only.
#[cfg(all(feature = "board-stm32f407", feature = "full-finetune"))]
compile_error!(
    "`full-finetune` needs about 390 KB of RAM with the default model; the STM32F407 has 128 KiB: \
     build the board with `--features board-stm32f407,head-finetune`"
);

pub mod embedded;
pub mod engine;
pub mod platform;
