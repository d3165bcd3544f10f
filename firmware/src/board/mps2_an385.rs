//! QEMU `mps2-an385` running the soft-float Cortex-M0+ build (`thumbv6m-none-eabi`): the
//! machine's core is a Cortex-M3, which executes ARMv6-M code (a subset of ARMv7-M), so the
//! image is the one a Cortex-M0+ runs; floating point is in software (compiler-builtins).
//! Memory: `boards/mps2-an385/memory.x` (4 MiB at 0 for the image, 4 MiB of RAM at
//! 0x2000_0000). No clock set-up: QEMU's system clock is 25 MHz. Logs with defmt over
//! semihosting; exits through semihosting.
//!
//! Instruction counts are those of the M0+ code (the Cortex-M3 runs the same instructions; a
//! Cortex-M0+ has no FPU either); a real Cortex-M0+ takes more cycles for them (loads and
//! taken branches 2 cycles each).

use defmt_semihosting as _;

/// The board, for the log.
pub const NAME: &str = "qemu-mps2-an385-m0plus";
/// SysTick's clock (the machine's 25 MHz system clock): one tick is 40 instructions.
pub const COUNTER_HZ: u64 = 25_000_000;
/// QEMU counts instructions.
pub const COUNTS: super::Counts = super::Counts::Instructions;

/// Nothing to set up.
pub fn init() {}

/// Ends the program through semihosting: QEMU exits with code 0 on success, 1 on failure.
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}
