//! Platform layer: defmt transport, exit codes, panic and fault handlers, the instruction
//! counter and the stack high-water mark.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{exception, ExceptionFrame};

#[cfg(feature = "board-stm32f407")]
use defmt_rtt as _;
#[cfg(feature = "qemu")]
use defmt_semihosting as _;

/// Name of the platform, for the log.
#[cfg(feature = "qemu")]
pub const BOARD: &str = "qemu-mps2-an386";
/// Name of the platform, for the log.
#[cfg(feature = "board-stm32f407")]
pub const BOARD: &str = "stm32f407vg";

/// Ends the program. On QEMU, through semihosting: exit code 0 on success, 1 on failure.
#[cfg(feature = "qemu")]
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}

/// Ends the program. On the board: a breakpoint when a debugger (probe-rs) is attached, which
/// ends `probe-rs run`; then sleep forever.
#[cfg(feature = "board-stm32f407")]
pub fn exit(success: bool) -> ! {
    if !success {
        defmt::error!("exit: failure");
    }
    if cortex_m::peripheral::DCB::is_debugger_attached() {
        cortex_m::asm::bkpt();
    }
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(false)
}

/// `defmt::panic!` and `defmt::unwrap!` have logged their message already: just fail.
#[defmt::panic_handler]
fn defmt_panic() -> ! {
    exit(false)
}

// SAFETY: cortex-m-rt requires `unsafe fn` for this handler; it only logs and exits.
#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    defmt::error!(
        "HardFault: pc={=u32:#010x} lr={=u32:#010x} xpsr={=u32:#010x} hfsr={=u32:#010x} cfsr={=u32:#010x}",
        ef.pc(),
        ef.lr(),
        ef.xpsr(),
        hfsr(),
        cfsr()
    );
    exit(false)
}

// SAFETY: cortex-m-rt requires `unsafe fn` for this handler; it only logs and exits.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    defmt::error!("unexpected exception or interrupt {=i16}", irqn);
    exit(false)
}

fn hfsr() -> u32 {
    // SAFETY: a read-only access to the SCB's HardFault status register: no side effects,
    // no aliasing with any Rust object.
    unsafe { (*SCB::PTR).hfsr.read() }
}

fn cfsr() -> u32 {
    // SAFETY: as `hfsr`, for the configurable fault status register.
    unsafe { (*SCB::PTR).cfsr.read() }
}

// ---------------------------------------------------------------------------------------------
// Instruction counter
// ---------------------------------------------------------------------------------------------

const RELOAD: u32 = 0x00FF_FFFF;
static WRAPS: AtomicU32 = AtomicU32::new(0);

/// What one SysTick tick is worth, and in which unit.
///
/// QEMU with `-icount shift=0,align=off` runs one instruction per virtual nanosecond and
/// clocks SysTick at 25 MHz: one tick is exactly 40 instructions (DWT CYCCNT reads 0 there).
#[cfg(feature = "qemu")]
pub const TICK: (u64, &str) = (40, "instructions");
/// On the board SysTick runs at the core clock: one tick is one cycle.
#[cfg(feature = "board-stm32f407")]
pub const TICK: (u64, &str) = (1, "cycles");

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Starts SysTick as a free-running 24-bit counter at the core clock; the SysTick exception
/// extends it to 64 bits.
pub fn start_counter(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Ticks since [`start_counter`].
pub fn ticks() -> u64 {
    loop {
        let w = WRAPS.load(Ordering::Acquire);
        let v = SYST::get_current();
        let pending = SCB::is_pendst_pending();
        if WRAPS.load(Ordering::Acquire) != w {
            continue;
        }
        // A wrap whose exception has not run yet: the counter restarted near RELOAD.
        let wraps = u64::from(w) + u64::from(pending && v > RELOAD / 2);
        return wraps * (u64::from(RELOAD) + 1) + u64::from(RELOAD - v);
    }
}

/// Instructions (QEMU) or cycles (board) since [`start_counter`].
pub fn count() -> u64 {
    ticks() * TICK.0
}

/// Runs `f` and returns its result with the instructions (cycles) it took.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let t0 = count();
    let r = f();
    (r, count() - t0)
}

// ---------------------------------------------------------------------------------------------
// Stack high-water mark
// ---------------------------------------------------------------------------------------------

/// The word painted over the free stack at boot.
pub const STACK_PAINT: u32 = 0x5AC3_5AC3;

extern "C" {
    /// Lowest address the stack may reach (end of .bss/.uninit, from cortex-m-rt's link.x).
    static _stack_end: u32;
    /// Initial stack pointer (top of RAM).
    static _stack_start: u32;
}

fn stack_bounds() -> (usize, usize) {
    (&raw const _stack_end as usize, &raw const _stack_start as usize)
}

/// Bytes reserved for the stack: from the end of the statics to the top of RAM.
pub fn stack_size() -> usize {
    let (lo, hi) = stack_bounds();
    hi - lo
}

/// Paints the unused stack (from the end of the statics up to just below the current stack
/// frame) with [`STACK_PAINT`]. Call once, first thing in `main`.
#[inline(never)]
pub fn paint_stack() {
    let (lo, _) = stack_bounds();
    // Leave the caller's frame and this one alone: stop 256 bytes below the stack pointer.
    let top = (cortex_m::register::msp::read() as usize).saturating_sub(256) & !3;
    let mut p = lo;
    while p < top {
        // SAFETY: [lo, top) lies between the end of every static (`_stack_end`) and the live
        // part of the stack, which grows down from `_stack_start` and is above `top`. No Rust
        // object lives there (there is no heap), so writing to it cannot alias anything.
        unsafe { core::ptr::write_volatile(p as *mut u32, STACK_PAINT) };
        p += 4;
    }
}

/// The deepest the stack has been since [`paint_stack`], in bytes from its top.
pub fn stack_high_water() -> usize {
    let (lo, hi) = stack_bounds();
    let mut p = lo;
    // SAFETY: reads words of the stack region [lo, hi), which is mapped RAM; volatile so the
    // compiler does not assume their contents.
    while p < hi && unsafe { core::ptr::read_volatile(p as *const u32) } == STACK_PAINT {
        p += 4;
    }
    hi - p
}

/// Boot-time set-up: paints the stack and starts the instruction counter.
pub fn init(syst: SYST) {
    paint_stack();
    start_counter(syst);
}
