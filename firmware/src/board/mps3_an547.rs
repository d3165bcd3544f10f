//! QEMU `mps3-an547`: an ARM MPS3 board with the AN547 (Corstone-300) FPGA image, a Cortex-M55
//! with the FPU and Helium (MVE), built for `thumbv8m.main-none-eabihf` with
//! `-C target-cpu=cortex-m55` (.cargo/config.toml), so the core's loops are vectorised to MVE.
//! Memory: `boards/mps3-an547/memory.x` (the image in the 512 KiB ITCM at 0, RAM at
//! 0x2100_0000). No clock set-up; QEMU clocks this machine at 32 MHz. Logs with defmt over
//! semihosting; exits through semihosting.

use defmt_semihosting as _;

/// The board, for the log.
pub const NAME: &str = "qemu-mps3-an547";
/// SysTick's clock (the machine's 32 MHz system clock): one tick is 31.25 instructions.
pub const COUNTER_HZ: u64 = 32_000_000;
/// QEMU counts instructions.
pub const COUNTS: super::Counts = super::Counts::Instructions;

/// Nothing to set up: cortex-m-rt enables the FPU (which also enables MVE) before `main`.
pub fn init() {}

/// Ends the program through semihosting: QEMU exits with code 0 on success, 1 on failure.
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}
