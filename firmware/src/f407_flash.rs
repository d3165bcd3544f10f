//! The STM32F407's flash as a NOR flash for the weight slots (`embedded-storage`'s
//! [`NorFlash`] and [`ReadNorFlash`]): the last two 128 KiB sectors, 10 (slot A at
//! 0x080C_0000) and 11 (slot B at 0x080E_0000). `boards/stm32f407/memory-slots.x` (what
//! build.rs links with under `flash-slots`) ends the program's flash at 768 KiB (sectors 0–9),
//! so the linker never puts code or constants there. With `persist` the firmware's slot store
//! runs on it (`persist::slot_flash`).
//!
//! Offsets are relative to [`REGION_START`]; [`F407Flash::ERASE_SIZE`] is one 128 KiB sector,
//! [`F407Flash::WRITE_SIZE`] one 32-bit word. Erase and program follow RM0090 §3.6: wait for
//! `FLASH_SR.BSY` to clear, unlock `FLASH_CR` through `FLASH_KEYR`, clear the error flags, set
//! `PSIZE` = x32 (2.7–3.6 V supply, as on the F4 Discovery), then `SER` + `SNB` + `STRT` for a
//! sector erase or `PG` and a word store per word; wait for `BSY`, map the `FLASH_SR` error
//! flags to [`NorFlashErrorKind::Other`], lock again. After each operation the data cache is
//! reset so that reads see the new contents. The F407 has one flash bank: the core stalls on
//! instruction fetches while a sector erases (RM0090; datasheet `t_ERASE128KB` typ. 1 s,
//! max 2 s at x32) — a commit pauses the device for that long.
//!
//! Endurance: 10 000 program/erase cycles per sector (datasheet `N_END`); a commit erases one
//! sector and the slots alternate, so the two sectors allow 20 000 commits.

use core::sync::atomic::{AtomicBool, Ordering};

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

/// Address of sector 10, the start of the slot region.
pub const REGION_START: u32 = 0x080C_0000;
/// Bytes of one slot sector (sectors 10 and 11 are 128 KiB each).
pub const SECTOR: usize = 128 * 1024;
/// The region: sectors 10 and 11.
pub const REGION_LEN: usize = 2 * SECTOR;
/// The first sector of the region, as `FLASH_CR.SNB` numbers it.
const FIRST_SECTOR: u32 = 10;

// Registers (RM0090 §3.9).
const FLASH: usize = 0x4002_3C00;
const FLASH_ACR: usize = FLASH;
const FLASH_KEYR: usize = FLASH + 0x04;
const FLASH_SR: usize = FLASH + 0x0C;
const FLASH_CR: usize = FLASH + 0x10;

const KEY1: u32 = 0x4567_0123;
const KEY2: u32 = 0xCDEF_89AB;

const SR_BSY: u32 = 1 << 16;
/// OPERR, WRPERR, PGAERR, PGPERR, PGSERR (write 1 to clear).
const SR_ERRORS: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);
const SR_EOP: u32 = 1;

const CR_PG: u32 = 1 << 0;
const CR_SER: u32 = 1 << 1;
const CR_SNB_SHIFT: u32 = 3;
const CR_PSIZE_X32: u32 = 0b10 << 8;
const CR_STRT: u32 = 1 << 16;
const CR_LOCK: u32 = 1 << 31;

const ACR_DCEN: u32 = 1 << 10;
const ACR_DCRST: u32 = 1 << 12;

fn reg_read(reg: usize) -> u32 {
    // SAFETY: `reg` is one of the FLASH interface registers above: 32-bit aligned, always
    // mapped on the STM32F407, no Rust object lives there. Reading FLASH_ACR/SR/CR has no side
    // effects.
    unsafe { core::ptr::read_volatile(reg as *const u32) }
}

fn reg_write(reg: usize, value: u32) {
    // SAFETY: as in `reg_read`. Only the one `F407Flash` (see `take`) writes FLASH_KEYR,
    // FLASH_SR and FLASH_CR, through `&mut self`, and FLASH_ACR only to reset the data cache
    // with its other bits (latency, prefetch, instruction cache) kept as they are.
    unsafe { core::ptr::write_volatile(reg as *mut u32, value) }
}

/// The slot sectors of the STM32F407's flash. One instance at most ([`F407Flash::take`]).
#[derive(Debug)]
pub struct F407Flash {
    _only_one: (),
}

static TAKEN: AtomicBool = AtomicBool::new(false);

impl F407Flash {
    /// The flash driver, the first time; `None` afterwards (it owns the flash interface).
    pub fn take() -> Option<Self> {
        (!TAKEN.swap(true, Ordering::AcqRel)).then_some(F407Flash { _only_one: () })
    }

    fn wait_idle() {
        while reg_read(FLASH_SR) & SR_BSY != 0 {}
    }

    /// Waits for the flash to be idle, unlocks `FLASH_CR` and clears stale flags.
    fn unlock(&mut self) {
        Self::wait_idle();
        if reg_read(FLASH_CR) & CR_LOCK != 0 {
            reg_write(FLASH_KEYR, KEY1);
            reg_write(FLASH_KEYR, KEY2);
        }
        reg_write(FLASH_SR, SR_ERRORS | SR_EOP);
    }

    /// Waits for the operation under way, locks `FLASH_CR`, resets the data cache and reports
    /// the error flags.
    fn finish(&mut self) -> Result<(), NorFlashErrorKind> {
        Self::wait_idle();
        let sr = reg_read(FLASH_SR);
        reg_write(FLASH_CR, CR_LOCK);
        let acr = reg_read(FLASH_ACR);
        if acr & ACR_DCEN != 0 {
            reg_write(FLASH_ACR, acr & !ACR_DCEN);
            reg_write(FLASH_ACR, (acr & !ACR_DCEN) | ACR_DCRST);
            reg_write(FLASH_ACR, acr & !ACR_DCRST);
        }
        if sr & SR_ERRORS != 0 {
            reg_write(FLASH_SR, SR_ERRORS);
            return Err(NorFlashErrorKind::Other);
        }
        Ok(())
    }

    fn check(offset: u32, len: usize) -> Result<(), NorFlashErrorKind> {
        if (offset as usize).checked_add(len).is_none_or(|end| end > REGION_LEN) {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        Ok(())
    }
}

impl ErrorType for F407Flash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for F407Flash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        Self::check(offset, bytes.len())?;
        let start = (REGION_START + offset) as usize;
        for (i, b) in bytes.iter_mut().enumerate() {
            // SAFETY: `start + i` lies in sectors 10–11 of the on-chip flash (checked above),
            // memory-mapped and readable; the linker script keeps every Rust object out of
            // them, so this byte aliases nothing.
            *b = unsafe { core::ptr::read_volatile((start + i) as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        REGION_LEN
    }
}

impl NorFlash for F407Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let (from_b, to_b) = (from as usize, to as usize);
        if from_b % SECTOR != 0 || to_b % SECTOR != 0 {
            return Err(NorFlashErrorKind::NotAligned);
        }
        if from > to {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        Self::check(from, to_b - from_b)?;
        for s in from_b / SECTOR..to_b / SECTOR {
            self.unlock();
            let snb = (FIRST_SECTOR + s as u32) << CR_SNB_SHIFT;
            reg_write(FLASH_CR, CR_PSIZE_X32 | CR_SER | snb);
            reg_write(FLASH_CR, CR_PSIZE_X32 | CR_SER | snb | CR_STRT);
            self.finish()?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if !offset.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        Self::check(offset, bytes.len())?;
        self.unlock();
        reg_write(FLASH_CR, CR_PSIZE_X32 | CR_PG);
        let mut addr = (REGION_START + offset) as usize;
        for w in bytes.chunks_exact(4) {
            // SAFETY: `addr` is word-aligned and lies in sectors 10–11 (checked above), which
            // no Rust object occupies (memory.x); with FLASH_CR.PG set, a word store there
            // programs the flash (RM0090 §3.6.4) and changes nothing else.
            unsafe {
                core::ptr::write_volatile(
                    addr as *mut u32,
                    u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
                )
            };
            Self::wait_idle();
            if reg_read(FLASH_SR) & SR_ERRORS != 0 {
                break;
            }
            addr += 4;
        }
        self.finish()
    }
}
