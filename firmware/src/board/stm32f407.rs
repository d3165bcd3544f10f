//! STM32F407VG (STM32F4 Discovery), a Cortex-M4F (`thumbv7em-none-eabihf`). Memory:
//! `boards/stm32f407/memory.x` (1 MiB flash at 0x0800_0000, 128 KiB SRAM at 0x2000_0000).
//!
//! * **Clocks** ([`init`]): 168 MHz from the Discovery's 8 MHz crystal (HSE → PLL:
//!   M = 8, N = 336, P = 2, Q = 7 for 48 MHz USB), AHB 168 MHz, APB1 42 MHz, APB2 84 MHz,
//!   flash 5 wait states with prefetch and both caches, regulator scale 1 — RM0090's settings
//!   for 168 MHz at 2.7–3.6 V. Written with volatile register accesses (about 20 lines; a PAC
//!   or HAL crate would add more build time than the whole firmware for this one routine).
//!   If the crystal does not start, the firmware logs it and stays on the 16 MHz HSI: the
//!   counts are in cycles either way.
//! * **Log**: defmt over RTT (`probe-rs run` decodes it).
//! * **Exit** ([`exit`]): with a debugger attached, through semihosting — exit code 0 for
//!   success, 1 for failure, which `probe-rs run` returns as its own status (it implements
//!   the semihosting exit calls); with no debugger, the core sleeps (`wfi`) forever after
//!   logging the outcome.
//! * **Counter**: SysTick on the core clock: counts are core cycles.

use defmt_rtt as _;

/// The board, for the log.
pub const NAME: &str = "stm32f407vg";
/// SysTick's clock: the core clock after [`init`].
pub const COUNTER_HZ: u64 = 168_000_000;
/// On hardware SysTick counts core cycles.
pub const COUNTS: super::Counts = super::Counts::Cycles;

// Register addresses (RM0090: RCC §7.3, PWR §5.4, FLASH §3.9).
const RCC: usize = 0x4002_3800;
const RCC_CR: usize = RCC;
const RCC_PLLCFGR: usize = RCC + 0x04;
const RCC_CFGR: usize = RCC + 0x08;
const RCC_APB1ENR: usize = RCC + 0x40;
const PWR_CR: usize = 0x4000_7000;
const FLASH_ACR: usize = 0x4002_3C00;

const CR_HSEON: u32 = 1 << 16;
const CR_HSERDY: u32 = 1 << 17;
const CR_PLLON: u32 = 1 << 24;
const CR_PLLRDY: u32 = 1 << 25;
const APB1ENR_PWREN: u32 = 1 << 28;
const PWR_CR_VOS: u32 = 1 << 14;
/// LATENCY = 5 wait states, PRFTEN, ICEN, DCEN.
const ACR_168MHZ: u32 = 5 | (1 << 8) | (1 << 9) | (1 << 10);
/// PLLM = 8 (1 MHz input), PLLN = 336 (336 MHz VCO), PLLP = 2 (bits 00: 168 MHz),
/// PLLSRC = HSE, PLLQ = 7 (48 MHz).
const PLLCFGR_168MHZ: u32 = 8 | (336 << 6) | (1 << 22) | (7 << 24);
/// HPRE = /1, PPRE1 = /4 (0b101), PPRE2 = /2 (0b100).
const CFGR_PRESCALERS: u32 = (0b101 << 10) | (0b100 << 13);
const CFGR_SW_MASK: u32 = 0b11;
const CFGR_SW_PLL: u32 = 0b10;
const CFGR_SWS_PLL: u32 = 0b10 << 2;
/// Polls of a ready flag before giving up (HSE start-up is a few ms; 16 MHz HSI).
const READY_POLLS: u32 = 1_000_000;

fn read(reg: usize) -> u32 {
    // SAFETY: `reg` is one of the RCC, PWR or FLASH register addresses above: 32-bit aligned,
    // always mapped on the STM32F407, and no Rust object lives there. Reading has no side
    // effects on these registers.
    unsafe { core::ptr::read_volatile(reg as *const u32) }
}

fn write(reg: usize, value: u32) {
    // SAFETY: as in `read`. Only `init` writes these registers, once, at boot before any
    // interrupt is enabled, with the values RM0090 gives for 168 MHz operation.
    unsafe { core::ptr::write_volatile(reg as *mut u32, value) }
}

fn wait_for(reg: usize, mask: u32, want: u32) -> bool {
    (0..READY_POLLS).any(|_| read(reg) & mask == want)
}

/// Clocks the core at 168 MHz from the 8 MHz HSE through the PLL (see the module doc).
pub fn init() {
    write(RCC_CR, read(RCC_CR) | CR_HSEON);
    if !wait_for(RCC_CR, CR_HSERDY, CR_HSERDY) {
        defmt::warn!("clock: the 8 MHz HSE did not start; running on the 16 MHz HSI");
        return;
    }
    write(RCC_APB1ENR, read(RCC_APB1ENR) | APB1ENR_PWREN);
    let _ = read(RCC_APB1ENR); // the clock enable takes effect before PWR is accessed
    write(PWR_CR, read(PWR_CR) | PWR_CR_VOS);
    write(FLASH_ACR, ACR_168MHZ);
    if !wait_for(FLASH_ACR, 0b111, 5) {
        defmt::warn!("clock: flash wait states not accepted; running on the 16 MHz HSI");
        return;
    }
    write(RCC_CFGR, (read(RCC_CFGR) & !0xFCF0) | CFGR_PRESCALERS);
    write(RCC_PLLCFGR, PLLCFGR_168MHZ);
    write(RCC_CR, read(RCC_CR) | CR_PLLON);
    if !wait_for(RCC_CR, CR_PLLRDY, CR_PLLRDY) {
        defmt::warn!("clock: the PLL did not lock; running on the 16 MHz HSI");
        return;
    }
    write(RCC_CFGR, (read(RCC_CFGR) & !CFGR_SW_MASK) | CFGR_SW_PLL);
    if !wait_for(RCC_CFGR, 0b11 << 2, CFGR_SWS_PLL) {
        defmt::warn!("clock: the switch to the PLL did not happen; running on the 16 MHz HSI");
        return;
    }
    defmt::info!("clock: 168 MHz from the 8 MHz HSE (PLL M=8 N=336 P=2 Q=7), flash 5 wait states");
}

/// Ends the program: with a debugger attached, a semihosting exit (code 0 on success, 1 on
/// failure; `probe-rs run` returns it); otherwise the core sleeps forever.
pub fn exit(success: bool) -> ! {
    if success {
        defmt::info!("exit: success");
    } else {
        defmt::error!("exit: failure");
    }
    if cortex_m::peripheral::DCB::is_debugger_attached() {
        semihosting::process::exit(if success { 0 } else { 1 })
    }
    loop {
        cortex_m::asm::wfi();
    }
}
