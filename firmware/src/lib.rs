//! tinylstm firmware support: the platform layer (log transport, exit codes, fault handlers,
//! instruction counter, stack painting) and the embedded model and data ([`embedded`], generated
//! by build.rs from the model file). The numerics are the `tinylstm-device` crate's.
//!
//! One of the features `qemu` (default: QEMU mps2-an386, defmt over semihosting, semihosting
//! exit codes) or `board-stm32f407` (defmt over RTT, `bkpt` on exit) must be on.
#![no_std]

#[cfg(all(feature = "qemu", feature = "board-stm32f407"))]
compile_error!("features `qemu` and `board-stm32f407` are exclusive: use --no-default-features");
#[cfg(not(any(feature = "qemu", feature = "board-stm32f407")))]
compile_error!("enable one of the features `qemu` or `board-stm32f407`");
pub mod embedded;
pub mod platform;
