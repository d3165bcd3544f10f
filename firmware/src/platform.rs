//! Platform layer: exit codes, panic and fault handlers, the instruction counter and the stack
//! high-water mark, over the selected [`board`](crate::board) (which brings the defmt
//! transport, the clocks and the exit itself).

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{exception, ExceptionFrame};

use crate::board;

/// Name of the board, for the log.
pub const BOARD: &str = board::NAME;

/// Ends the program with success or failure (the board's exit: QEMU's exit code through
/// semihosting, or the debugger's).
pub fn exit(success: bool) -> ! {
    board::exit(success)
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

/// ARMv6-M has no fault status registers: 0 there.
#[cfg(armv6m)]
fn hfsr() -> u32 {
    0
}

#[cfg(armv6m)]
fn cfsr() -> u32 {
    0
}

#[cfg(not(armv6m))]
fn hfsr() -> u32 {
    // SAFETY: a read-only access to the SCB's HardFault status register: no side effects,
    // no aliasing with any Rust object.
    unsafe { (*SCB::PTR).hfsr.read() }
}

#[cfg(not(armv6m))]
fn cfsr() -> u32 {
    // SAFETY: as `hfsr`, for the configurable fault status register.
    unsafe { (*SCB::PTR).cfsr.read() }
}

// ---------------------------------------------------------------------------------------------
// Instruction counter
// ---------------------------------------------------------------------------------------------

const RELOAD: u32 = 0x00FF_FFFF;
static WRAPS: AtomicU32 = AtomicU32::new(0);

/// What one SysTick tick is worth, and in which unit: `((numerator, denominator), unit)`,
/// one tick = numerator / denominator units.
///
/// QEMU with `-icount shift=0,align=off` runs one instruction per virtual nanosecond, so a
/// tick of the board's SysTick clock is `10⁹ / COUNTER_HZ` instructions: 40 at 25 MHz
/// (mps2-an386, mps2-an385), 31.25 at 32 MHz (mps3-an547). DWT CYCCNT reads 0 there. On
/// hardware SysTick runs on the core clock: one tick is one cycle.
pub const TICK: ((u64, u64), &str) = (board::PER_TICK, board::COUNTS.unit());

#[exception]
fn SysTick() {
    // The only writer, and it does not preempt itself: a load and a store suffice (ARMv6-M has
    // no atomic read-modify-write).
    WRAPS.store(WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
}

/// Starts SysTick as a free-running 24-bit counter at the core clock; the SysTick exception
/// extends it to 64 bits.
pub fn start_counter(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The cleared counter reads 0 until its first clock loads RELOAD; a reading in between
    // would look like a whole period. Wait for the load (one tick).
    while SYST::get_current() == 0 {}
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

/// Instructions (QEMU) or cycles (hardware) since [`start_counter`]: exact to one tick
/// (40 instructions at 25 MHz, 31.25 at 32 MHz).
pub fn count() -> u64 {
    let (num, den) = TICK.0;
    ticks() * num / den
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

/// Boot-time set-up: the board's clocks, then paints the stack, starts the instruction
/// counter and checks it against a loop of known length ([`counter_check`]).
pub fn init(syst: SYST) {
    board::init();
    paint_stack();
    start_counter(syst);
    counter_check();
}

/// Iterations of the calibration loop: 2 instructions each.
const CHECK_LOOPS: u32 = 500_000;

/// Measures `cortex_m::asm::delay(n)`, whose loop is `subs` + `bne` run `n + 1` times
/// (2·(n + 1) instructions), and logs the count next to the known instruction count: under
/// QEMU the two agree to a tick plus the few instructions around the loop, which checks the
/// board's counter rate; on hardware it gives the cycles the loop takes.
pub fn counter_check() {
    let n = CHECK_LOOPS - 1;
    let ((), measured) = measure(|| cortex_m::asm::delay(n));
    defmt::info!(
        "counter check: a loop of {=u32} instructions measured {=u64} {=str} (SysTick {=u64} Hz, {=u64}/{=u64} per tick)",
        2 * CHECK_LOOPS,
        measured,
        TICK.1,
        board::COUNTER_HZ,
        TICK.0 .0,
        TICK.0 .1
    );
}
