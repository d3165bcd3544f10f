//! Persisted fine-tuning (feature `persist`): the weight slots of `tinylstm_device::slots` on
//! the board's flash. Under QEMU the "flash" is a file on the host reached through
//! semihosting ([`HostFlash`]), so what a run commits is there at the next run: a NOR flash of
//! [`SECTORS`] sectors of [`SECTOR`] bytes (erase sets a sector to `0xFF`, a write only clears
//! bits), slot A in the first half, slot B in the second.
//!
//! The file is `TINYLSTM_FLASH_FILE` at build time (default `tinylstm-flash.bin`, relative to
//! the directory QEMU runs in); it is created erased when missing.

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

/// A NOR flash in a host file, through semihosting.
#[derive(Debug)]
pub struct HostFlash {
    file: File,
}

impl HostFlash {
    /// Opens the flash file, creating it erased (all `0xFF`) when missing.
    pub fn open() -> Result<Self, NorFlashErrorKind> {
        let mut name = [0u8; 256];
        let path = option_env!("TINYLSTM_FLASH_FILE").unwrap_or("tinylstm-flash.bin");
        let n = path.len().min(name.len() - 1);
        name[..n].copy_from_slice(&path.as_bytes()[..n]);
        let name = CStr::from_bytes_until_nul(&name).map_err(|_| NorFlashErrorKind::Other)?;
        if let Ok(file) = OpenOptions::new().read(true).write(true).open(name) {
            let mut f = HostFlash { file };
            if f.file.metadata().map(|m| m.len()).ok() == Some((SECTORS * SECTOR) as u64) {
                return Ok(f);
            }
            f.erase(0, (SECTORS * SECTOR) as u32)?;
            return Ok(f);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(name)
            .map_err(|_| NorFlashErrorKind::Other)?;
        let mut f = HostFlash { file };
        f.erase(0, (SECTORS * SECTOR) as u32)?;
        Ok(f)
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
        self.at(from as u32)?;
        let ff = [0xFFu8; 256];
        for _ in 0..(to - from) / ff.len() {
            self.file.write_all(&ff).map_err(|_| NorFlashErrorKind::Other)?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if offset as usize % 4 != 0 || bytes.len() % 4 != 0 {
            return Err(NorFlashErrorKind::NotAligned);
        }
        // NOR programming only clears bits: the new contents are the old AND the data.
        let mut old = [0u8; 256];
        let mut at = offset;
        for chunk in bytes.chunks(old.len()) {
            let old = &mut old[..chunk.len()];
            self.read(at, old)?;
            for (o, &b) in old.iter_mut().zip(chunk) {
                *o &= b;
            }
            self.at(at)?;
            self.file.write_all(old).map_err(|_| NorFlashErrorKind::Other)?;
            at += chunk.len() as u32;
        }
        Ok(())
    }
}
