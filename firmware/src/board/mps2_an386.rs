//! QEMU `mps2-an386`: an ARM MPS2 board with the AN386 FPGA image, a Cortex-M4 with FPU
//! (`thumbv7em-none-eabihf`). Memory: `boards/mps2-an386/memory.x` (4 MiB at 0 for the image,
//! 4 MiB of RAM at 0x2000_0000). No clock set-up: QEMU's system clock is 25 MHz. Logs with
//! defmt over semihosting; exits through semihosting.

use defmt_semihosting as _;

/// The board, for the log.
pub const NAME: &str = "qemu-mps2-an386";
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
