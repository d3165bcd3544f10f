//! The board: everything that differs between the machines the firmware runs on. One module
//! per board, selected by its cargo feature (`board-<name>`); its memory map is
//! `boards/<name>/memory.x` (build.rs).
//!
//! Every board module provides:
//!
//! * `NAME: &str` — the board, for the log;
//! * `COUNTER_HZ: u64` — the rate of the SysTick clock the instruction counter runs on;
//! * `COUNTS: Counts` — what a counter reading means there: QEMU instructions (under
//!   `-icount shift=0` one instruction takes 1 ns of virtual time, so an interval of `t` ticks
//!   is `t · 10⁹ / COUNTER_HZ` instructions) or core cycles (SysTick on the core clock);
//! * `fn init()` — clocks and whatever the board needs before `main` logs anything;
//! * `fn exit(success: bool) -> !` — ends the program with a success or failure the host
//!   sees (QEMU's exit code, or the debugger's);
//! * the defmt transport (`use defmt_semihosting as _;` or `use defmt_rtt as _;`).
//!
//! Here, for every board: [`RAM_BYTES`] and [`FLASH_BYTES`] from its memory.x.

#[cfg(feature = "board-mps2-an385")]
mod mps2_an385;
#[cfg(feature = "board-mps2-an385")]
pub use mps2_an385::*;

#[cfg(feature = "board-mps2-an386")]
mod mps2_an386;
#[cfg(feature = "board-mps2-an386")]
pub use mps2_an386::*;

#[cfg(feature = "board-mps3-an547")]
mod mps3_an547;
#[cfg(feature = "board-mps3-an547")]
pub use mps3_an547::*;

#[cfg(feature = "board-stm32f407")]
mod stm32f407;
#[cfg(feature = "board-stm32f407")]
pub use stm32f407::*;

/// What the counter counts on a board.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Counts {
    /// QEMU with `-icount shift=0,align=off`: one instruction per nanosecond of virtual time.
    Instructions,
    /// Core clock cycles (SysTick clocked by the core on real hardware).
    Cycles,
}

impl Counts {
    /// The unit, for the log: `instructions` or `cycles`.
    pub const fn unit(self) -> &'static str {
        match self {
            Counts::Instructions => "instructions",
            Counts::Cycles => "cycles",
        }
    }
}

/// What one SysTick tick is worth in [`COUNTS`] units, as a reduced fraction
/// `(numerator, denominator)`: `10⁹ / COUNTER_HZ` instructions under QEMU (40/1 at 25 MHz,
/// 125/4 at 32 MHz), 1/1 cycle on hardware.
pub const PER_TICK: (u64, u64) = match COUNTS {
    Counts::Instructions => {
        let g = gcd(1_000_000_000, COUNTER_HZ);
        (1_000_000_000 / g, COUNTER_HZ / g)
    }
    Counts::Cycles => (1, 1),
};

const fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Bytes of RAM on the board (the `RAM` region of its memory.x): statics and stack.
pub const RAM_BYTES: usize = parse_bytes(env!("TINYLSTM_BOARD_RAM_BYTES"));
/// Bytes of flash on the board (the `FLASH` region of its memory.x): code and read-only data.
pub const FLASH_BYTES: usize = parse_bytes(env!("TINYLSTM_BOARD_FLASH_BYTES"));
/// Bytes of the heap of a model loaded at run time (build.rs's `HEAPS`; 0 without the
/// `runtime-model` feature).
pub const HEAP_BYTES: usize = parse_bytes(env!("TINYLSTM_BOARD_HEAP_BYTES"));

/// A decimal number written by build.rs.
const fn parse_bytes(s: &str) -> usize {
    let b = s.as_bytes();
    assert!(!b.is_empty(), "build.rs wrote an empty size");
    let mut i = 0;
    let mut n = 0usize;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "build.rs wrote a size that is not a decimal number");
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    n
}

const _: () = assert!(PER_TICK.0 > 0 && PER_TICK.1 > 0);
