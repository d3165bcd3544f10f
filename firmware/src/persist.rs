//! Persisted fine-tuning (feature `persist`): the weight slots of `tinylstm_device::slots` on
//! the board's flash, chosen in [`slot_flash`]: the STM32F407's sectors 10–11
//! ([`F407Flash`](crate::f407_flash::F407Flash), with `flash-slots`), or, under QEMU, a file on
//! the host reached through semihosting ([`HostFlash`]), so what a run commits is there at the
//! next run: a NOR flash of [`SECTORS`] sectors of [`SECTOR`] bytes (erase sets a sector to
//! `0xFF`, a write only clears bits), slot A in the first half, slot B in the second. Both
//! implement `embedded-storage`'s `NorFlash`, the trait the slot store is generic over.
//!
//! The file is `TINYLSTM_FLASH_FILE` at build time (default `tinylstm-flash.bin`, relative to
//! the directory QEMU runs in); it is created erased when missing.
//!
//! **Power cuts.** When a file `tinylstm-flash-cut` (next to QEMU) holds a decimal number N at
//! boot, it is deleted and the flash "loses power" after N more bytes erased or programmed: the
//! operation under way stops part-way (its first bytes done), the firmware logs `power cut
//! after N bytes` and exits as a reset would end it. The next boot shows what survived.
//!
//! **A failing flash.** When a file `tinylstm-flash-fail` exists next to QEMU at boot, it is
//! deleted and every erase and program of this boot fails (`NorFlashErrorKind::Other`, the
//! flash left as it was), as a worn or write-protected flash would: the device logs the failed
//! commit and keeps running on the weights in RAM.

use core::ffi::CStr;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use semihosting::fs::{File, OpenOptions};
use semihosting::io::{Read, Seek, SeekFrom, Write};
use tinylstm_device::slots::SlotStore;

use crate::embedded::PARAMS;

/// Erase size of the emulated flash (the STM32F407's small sectors are 16 KiB).
pub const SECTOR: usize = 16 * 1024;
/// Bytes one slot needs for the model: header area and weights, rounded up to whole sectors.
pub const SLOT_BYTES: usize = SlotStore::<HostFlash>::needed(PARAMS).div_ceil(SECTOR) * SECTOR;
/// Sectors of the emulated flash: two slots.
pub const SECTORS: usize = 2 * SLOT_BYTES / SECTOR;

/// The board's flash for the weight slots: its driver, how to open it and the slot size.
#[cfg(not(feature = "flash-slots"))]
pub mod slot_flash {
    use super::*;
    /// The driver: a host file through semihosting (QEMU).
    pub type Flash = HostFlash;
    /// Bytes per slot: the model's bytes rounded up to whole 16 KiB sectors.
    pub const SLOT_BYTES: usize = super::SLOT_BYTES;
    /// Erase size.
    pub const SECTOR: usize = super::SECTOR;
    /// Opens the flash (creating the host file erased when missing).
    pub fn open() -> Result<Flash, NorFlashErrorKind> {
        HostFlash::open()
    }
}

/// The board's flash for the weight slots: its driver, how to open it and the slot size.
#[cfg(feature = "flash-slots")]
pub mod slot_flash {
    use super::*;
    use crate::f407_flash::{F407Flash, SECTOR as F407_SECTOR};
    /// The driver: the STM32F407's sectors 10 and 11.
    pub type Flash = F407Flash;
    /// Bytes per slot: one 128 KiB sector.
    pub const SLOT_BYTES: usize = F407_SECTOR;
    /// Erase size.
    pub const SECTOR: usize = F407_SECTOR;
    const _: () = assert!(
        SlotStore::<F407Flash>::needed(PARAMS) <= SLOT_BYTES,
        "the model's weights do not fit a 128 KiB flash sector: persist a smaller model"
    );
    /// Takes the flash driver (once).
    pub fn open() -> Result<Flash, NorFlashErrorKind> {
        F407Flash::take().ok_or(NorFlashErrorKind::Other)
    }
}

/// A NOR flash in a host file, through semihosting.
#[derive(Debug)]
pub struct HostFlash {
    file: File,
    /// Bytes left to erase or program before the simulated power cut, and the cut's N.
    cut: Option<(usize, usize)>,
    /// Every erase and program fails (the fail file was there at boot).
    failing: bool,
}

/// The file naming a power cut for this boot.
const CUT_FILE: &CStr = c"tinylstm-flash-cut";

/// The file making every erase and program of this boot fail.
const FAIL_FILE: &CStr = c"tinylstm-flash-fail";

/// Whether the fail file was there (then deleted).
fn take_fail() -> bool {
    let there = File::open(FAIL_FILE).is_ok();
    if there {
        let _ = semihosting::fs::remove_file(FAIL_FILE);
    }
    there
}

/// N from the cut file (then deleted), if there is one.
fn take_cut() -> Option<usize> {
    let mut f = File::open(CUT_FILE).ok()?;
    let mut buf = [0u8; 16];
    let n = f.read(&mut buf).ok()?;
    drop(f);
    let _ = semihosting::fs::remove_file(CUT_FILE);
    let text = core::str::from_utf8(&buf[..n]).ok()?;
    text.trim().parse().ok()
}

impl HostFlash {
    /// Opens the flash file, creating it erased (all `0xFF`) when missing.
    pub fn open() -> Result<Self, NorFlashErrorKind> {
        let mut name = [0u8; 256];
        let path = option_env!("TINYLSTM_FLASH_FILE").unwrap_or("tinylstm-flash.bin");
        let n = path.len().min(name.len() - 1);
        name[..n].copy_from_slice(&path.as_bytes()[..n]);
        let name = CStr::from_bytes_until_nul(&name).map_err(|_| NorFlashErrorKind::Other)?;
        let cut = take_cut().map(|n| (n, n));
        let failing = take_fail();
        if let Ok(file) = OpenOptions::new().read(true).write(true).open(name) {
            let mut f = HostFlash { file, cut: None, failing: false };
            if f.file.metadata().map(|m| m.len()).ok() != Some((SECTORS * SECTOR) as u64) {
                f.erase(0, (SECTORS * SECTOR) as u32)?;
            }
            (f.cut, f.failing) = (cut, failing);
            return Ok(f);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(name)
            .map_err(|_| NorFlashErrorKind::Other)?;
        let mut f = HostFlash { file, cut: None, failing: false };
        f.erase(0, (SECTORS * SECTOR) as u32)?;
        (f.cut, f.failing) = (cut, failing);
        Ok(f)
    }

    /// Takes up to `n` bytes from the power-cut budget: how many may be done.
    fn spend(&mut self, n: usize) -> usize {
        match &mut self.cut {
            None => n,
            Some((left, _)) => {
                let k = n.min(*left);
                *left -= k;
                k
            }
        }
    }

    /// The power is gone: ends the run as a reset would.
    fn power_cut(&self) -> ! {
        let n = self.cut.map_or(0, |c| c.1);
        defmt::warn!("power cut after {=usize} bytes erased or programmed", n);
        crate::platform::exit(true)
    }

    fn at(&mut self, offset: u32) -> Result<(), NorFlashErrorKind> {
        self.file
            .seek(SeekFrom::Start(offset.into()))
            .map(|_| ())
            .map_err(|_| NorFlashErrorKind::Other)
    }
}

impl ErrorType for HostFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for HostFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if offset as usize + bytes.len() > SECTORS * SECTOR {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        self.at(offset)?;
        self.file.read_exact(bytes).map_err(|_| NorFlashErrorKind::Other)
    }

    fn capacity(&self) -> usize {
        SECTORS * SECTOR
    }
}

impl NorFlash for HostFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let (from, to) = (from as usize, to as usize);
        if from % SECTOR != 0 || to % SECTOR != 0 {
            return Err(NorFlashErrorKind::NotAligned);
        }
        if from > to || to > SECTORS * SECTOR {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        if self.failing {
            return Err(NorFlashErrorKind::Other);
        }
        let done = self.spend(to - from);
        self.at(from as u32)?;
        let ff = [0xFFu8; 256];
        let mut left = done;
        while left > 0 {
            let k = left.min(ff.len());
            self.file.write_all(&ff[..k]).map_err(|_| NorFlashErrorKind::Other)?;
            left -= k;
        }
        if done < to - from {
            self.power_cut();
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if !(offset as usize).is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        if self.failing {
            return Err(NorFlashErrorKind::Other);
        }
        // NOR programming only clears bits: the new contents are the old AND the data.
        let mut old = [0u8; 256];
        let mut at = offset;
        let done = self.spend(bytes.len());
        for chunk in bytes[..done].chunks(old.len()) {
            let old = &mut old[..chunk.len()];
            self.read(at, old)?;
            for (o, &b) in old.iter_mut().zip(chunk) {
                *o &= b;
            }
            self.at(at)?;
            self.file.write_all(old).map_err(|_| NorFlashErrorKind::Other)?;
            at += chunk.len() as u32;
        }
        if done < bytes.len() {
            self.power_cut();
        }
        Ok(())
    }
}
