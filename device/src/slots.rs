//! Fine-tuned weights that survive a reset: two flash slots (A/B) behind the `embedded-storage`
//! NOR-flash traits ([`NorFlash`], [`ReadNorFlash`](embedded_storage::nor_flash::ReadNorFlash)), so a board plugs in its own flash.
//!
//! **Layout.** The store uses `2 · slot_len` bytes of the flash from offset `base`: slot A at
//! `base`, slot B at `base + slot_len` (`base` and `slot_len` multiples of the erase size). A
//! slot holds a header area of [`HEADER_LEN`] bytes rounded up to the write size, then the
//! weights as little-endian `f32`s (padded with `0xFF` to the write size). The header
//! (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `TLWS` |
//! | 4..6 | format version ([`VERSION`]) |
//! | 6..8 | zero |
//! | 8..12 | [`spec_hash`] of the model the weights belong to |
//! | 12..16 | sequence number (newer = `seq − other` as `i32` > 0, so it wraps) |
//! | 16..20 | parameter count |
//! | 20..24 | CRC-32 of the weights' bytes |
//! | 24..28 | zero |
//! | 28..32 | CRC-32 of bytes 0..28 |
//!
//! **Commit order.** A commit writes the slot that is *not* the active one: it erases the
//! sectors the new contents cover (only those: a slot's sectors past its weights are never
//! erased), writes the weights, reads them back, then writes the header last and reads it back. The
//! active slot is not touched, and the new slot is valid only once its header — and its CRCs
//! over header and weights — are complete; so a power cut at any byte leaves the old weights
//! active (or, after the header is complete, the new ones), never a mix.
//!
//! **Boot.** [`SlotStore::open`] validates both slots (magic, version, header CRC, spec hash,
//! parameter count, weights CRC) and makes the newest valid one active; with none the device
//! runs on its flashed weights. A failing or full flash is an error that leaves the active slot
//! (and the caller's weights in RAM) as they were.
//!
//! ```
//! use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
//! use tinylstm_device::slots::{SlotStore, Active};
//! // A 2-sector RAM "flash" (any NorFlash works: a board's flash driver, a host file, ...).
//! struct Ram([u8; 2048]);
//! impl ErrorType for Ram { type Error = NorFlashErrorKind; }
//! impl ReadNorFlash for Ram {
//!     const READ_SIZE: usize = 1;
//!     fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), Self::Error> {
//!         out.copy_from_slice(&self.0[at as usize..at as usize + out.len()]); Ok(())
//!     }
//!     fn capacity(&self) -> usize { self.0.len() }
//! }
//! impl NorFlash for Ram {
//!     const WRITE_SIZE: usize = 4;
//!     const ERASE_SIZE: usize = 1024;
//!     fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
//!         self.0[from as usize..to as usize].fill(0xFF); Ok(())
//!     }
//!     fn write(&mut self, at: u32, b: &[u8]) -> Result<(), Self::Error> {
//!         for (d, s) in self.0[at as usize..].iter_mut().zip(b) { *d &= *s; } Ok(())
//!     }
//! }
//! let weights = [0.5f32; 10];
//! let mut store = SlotStore::open(Ram([0xFF; 2048]), 0, 1024, 0x1234, 10).unwrap();
//! assert_eq!(store.active(), None); // nothing committed yet: run on the flashed weights
//! store.commit(&weights).unwrap();
//! // After a reset:
//! let mut store = SlotStore::open(store.release(), 0, 1024, 0x1234, 10).unwrap();
//! let mut out = [0.0f32; 10];
//! let a: Active = store.read_active(&mut out).unwrap().unwrap();
//! assert_eq!((a.slot, a.seq, out), (0, 1, weights));
//! ```

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};
use tinylstm::{Head, InputKind, Mask, Spec};

/// Bytes of a slot header.
pub const HEADER_LEN: usize = 32;
/// Magic at the start of a slot header.
pub const MAGIC: [u8; 4] = *b"TLWS";
/// Slot format version.
pub const VERSION: u16 = 1;
/// Bytes moved through the stack per flash read or write.
const CHUNK: usize = 256;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A hash of a model's architecture (CRC-32 of its fields): weights saved for one spec are never
/// loaded into another.
pub fn spec_hash(spec: &Spec) -> u32 {
    let mut d = CRC.digest();
    let mut put = |v: usize| d.update(&(v as u64).to_le_bytes());
    match spec.input {
        InputKind::Tokens { vocab, embed } => [0, vocab, embed].into_iter().for_each(&mut put),
        InputKind::Channels(c) => [1, c, 0].into_iter().for_each(&mut put),
    }
    put(spec.layers);
    spec.units[..spec.layers.min(spec.units.len())].iter().for_each(|&u| put(u));
    put(spec.outputs);
    put(match spec.head {
        Head::Sigmoid => 0,
        Head::Softmax => 1,
        Head::Linear => 2,
    });
    match spec.mask {
        Mask::Off => put(0),
        Mask::Value(v) => [1, v.to_bits() as usize].into_iter().for_each(&mut put),
        Mask::Zero => put(2),
    }
    d.finalize()
}

/// The active slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Active {
    /// 0 for slot A, 1 for slot B.
    pub slot: usize,
    /// Its sequence number.
    pub seq: u32,
    /// CRC-32 of its weights' bytes.
    pub crc: u32,
}

/// Why the slot store cannot be opened or a commit failed. A failed commit leaves the active
/// slot as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SlotError {
    /// The geometry does not fit the flash: `base`/`slot_len` not multiples of the erase size,
    /// the two slots beyond its capacity, a write size that does not divide 256 or a read size
    /// that does not divide 4.
    Layout,
    /// A slot of `available` bytes cannot hold the `needed` bytes of header and weights.
    TooLarge {
        /// Header area plus padded weights, bytes.
        needed: usize,
        /// Bytes per slot.
        available: usize,
    },
    /// The weights given to a commit are not the store's parameter count.
    WrongLength,
    /// The flash driver failed.
    Flash(NorFlashErrorKind),
    /// What was written reads back differently (a worn or failing flash).
    Verify,
}

impl core::fmt::Display for SlotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SlotError::Layout => f.write_str(
                "weight slots: the slot geometry does not fit the flash (alignment to the erase or write size, or capacity)",
            ),
            SlotError::TooLarge { needed, available } => write!(
                f,
                "weight slots: the weights need {needed} bytes per slot and a slot has {available}"
            ),
            SlotError::WrongLength => f.write_str("weight slots: wrong number of parameters"),
            SlotError::Flash(k) => write!(f, "weight slots: flash error: {k}"),
            SlotError::Verify => f.write_str("weight slots: flash contents read back differ from what was written"),
        }
    }
}

impl core::error::Error for SlotError {}

fn flash<E: NorFlashError>(e: E) -> SlotError {
    SlotError::Flash(e.kind())
}

/// Two weight slots on a NOR flash. See the module documentation for layout and write order.
#[derive(Debug)]
pub struct SlotStore<F> {
    flash: F,
    base: u32,
    slot_len: u32,
    spec_hash: u32,
    params: usize,
    active: Option<Active>,
}

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl<F: NorFlash> SlotStore<F> {
    /// Header area of one slot: [`HEADER_LEN`] rounded up to the write size.
    pub const HEADER_AREA: usize = round_up(HEADER_LEN, F::WRITE_SIZE);

    /// Bytes one slot needs for `params` weights.
    pub const fn needed(params: usize) -> usize {
        Self::HEADER_AREA + round_up(4 * params, F::WRITE_SIZE)
    }

    /// Opens the store on `flash` (slots at `base` and `base + slot_len`) for a model with
    /// `spec_hash` and `params` parameters, and finds the active slot: the newest one whose
    /// header and weights are valid and belong to this model.
    ///
    /// # Errors
    /// [`SlotError::Layout`], [`SlotError::TooLarge`], [`SlotError::Flash`] when reading fails.
    pub fn open(
        flash: F,
        base: u32,
        slot_len: u32,
        spec_hash: u32,
        params: usize,
    ) -> Result<Self, SlotError> {
        let (es, ws) = (F::ERASE_SIZE.max(1), F::WRITE_SIZE.max(1));
        let (b, l) = (base as usize, slot_len as usize);
        if b % es != 0 || l % es != 0 || !CHUNK.is_multiple_of(ws) || 4 % F::READ_SIZE.max(1) != 0 {
            return Err(SlotError::Layout);
        }
        if l.checked_mul(2).and_then(|s| s.checked_add(b)).is_none_or(|end| end > flash.capacity())
        {
            return Err(SlotError::Layout);
        }
        let needed = params.checked_mul(4).map(|_| Self::needed(params)).unwrap_or(usize::MAX);
        if needed > l {
            return Err(SlotError::TooLarge { needed, available: l });
        }
        let mut s = SlotStore { flash, base, slot_len, spec_hash, params, active: None };
        let mut best: Option<Active> = None;
        for slot in 0..2 {
            if let Some(a) = s.validate(slot)? {
                if best.is_none_or(|b| (a.seq.wrapping_sub(b.seq) as i32) > 0) {
                    best = Some(a);
                }
            }
        }
        s.active = best;
        Ok(s)
    }

    /// The active slot, or `None` when no slot holds valid weights for this model (run on the
    /// flashed weights).
    pub fn active(&self) -> Option<Active> {
        self.active
    }

    /// Gives the flash back.
    pub fn release(self) -> F {
        self.flash
    }

    fn slot_at(&self, slot: usize) -> u32 {
        self.base + slot as u32 * self.slot_len
    }

    /// The slot's header and weights checked; `Some` when valid for this model.
    fn validate(&mut self, slot: usize) -> Result<Option<Active>, SlotError> {
        let at = self.slot_at(slot);
        let mut h = [0u8; HEADER_LEN];
        self.flash.read(at, &mut h).map_err(flash)?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let ok = h[0..4] == MAGIC
            && h[4..6] == VERSION.to_le_bytes()
            && word(28) == CRC.checksum(&h[..28])
            && word(8) == self.spec_hash
            && word(16) as usize == self.params;
        if !ok {
            return Ok(None);
        }
        let crc = self.weights_crc(at)?;
        Ok((crc == word(20)).then_some(Active { slot, seq: word(12), crc }))
    }

    fn weights_crc(&mut self, slot_at: u32) -> Result<u32, SlotError> {
        let mut d = CRC.digest();
        let mut buf = [0u8; CHUNK];
        let (mut at, end) = (slot_at as usize + Self::HEADER_AREA, 4 * self.params);
        let mut done = 0;
        while done < end {
            let n = CHUNK.min(end - done);
            self.flash.read((at) as u32, &mut buf[..n]).map_err(flash)?;
            d.update(&buf[..n]);
            (at, done) = (at + n, done + n);
        }
        Ok(d.finalize())
    }

    /// Reads the active slot's weights into `out [params]`, checking their CRC again, and
    /// returns the slot; `Ok(None)` (and `out` untouched) when there is none.
    ///
    /// # Errors
    /// [`SlotError::WrongLength`], [`SlotError::Flash`], [`SlotError::Verify`] when the
    /// weights no longer match their CRC (`out` then holds them: do not use it).
    pub fn read_active(&mut self, out: &mut [f32]) -> Result<Option<Active>, SlotError> {
        if out.len() != self.params {
            return Err(SlotError::WrongLength);
        }
        let Some(a) = self.active else { return Ok(None) };
        let mut at = self.slot_at(a.slot) as usize + Self::HEADER_AREA;
        let mut d = CRC.digest();
        let mut buf = [0u8; CHUNK];
        for chunk in out.chunks_mut(CHUNK / 4) {
            let bytes = &mut buf[..4 * chunk.len()];
            self.flash.read(at as u32, bytes).map_err(flash)?;
            d.update(bytes);
            for (v, b) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            at += bytes.len();
        }
        if d.finalize() != a.crc {
            return Err(SlotError::Verify);
        }
        Ok(Some(a))
    }

    /// Persists `weights [params]` in the slot that is not active and makes it the active one
    /// (sequence number one past the active one's, wrapping). On error the active slot stays.
    ///
    /// # Errors
    /// [`SlotError::WrongLength`], [`SlotError::Flash`], [`SlotError::Verify`].
    pub fn commit(&mut self, weights: &[f32]) -> Result<Active, SlotError> {
        if weights.len() != self.params {
            return Err(SlotError::WrongLength);
        }
        let slot = self.active.map_or(0, |a| 1 - a.slot);
        let seq = self.active.map_or(1, |a| a.seq.wrapping_add(1));
        let at = self.slot_at(slot);
        let needed = Self::needed(self.params);
        // 1. Erase the sectors the new contents cover (always: after an erase cut short, cells
        // that read 0xFF may not be erased reliably, so "reads blank" is no proof).
        let erase_end = round_up(needed, F::ERASE_SIZE.max(1));
        self.flash.erase(at, at + erase_end as u32).map_err(flash)?;
        // 2. The weights, padded with 0xFF to the write size, then read back.
        let mut d = CRC.digest();
        let mut buf = [0xFFu8; CHUNK];
        let mut pos = at as usize + Self::HEADER_AREA;
        for chunk in weights.chunks(CHUNK / 4) {
            let n = 4 * chunk.len();
            for (b, v) in buf.chunks_exact_mut(4).zip(chunk) {
                b.copy_from_slice(&v.to_le_bytes());
            }
            d.update(&buf[..n]);
            let padded = round_up(n, F::WRITE_SIZE.max(1));
            buf[n..padded].fill(0xFF);
            self.flash.write(pos as u32, &buf[..padded]).map_err(flash)?;
            pos += padded;
        }
        let crc = d.finalize();
        if self.weights_crc(at)? != crc {
            return Err(SlotError::Verify);
        }
        // 3. The header last: from here on the slot is valid.
        let mut h = [0xFFu8; CHUNK];
        h[..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[6..8].fill(0);
        h[8..12].copy_from_slice(&self.spec_hash.to_le_bytes());
        h[12..16].copy_from_slice(&seq.to_le_bytes());
        h[16..20].copy_from_slice(&(self.params as u32).to_le_bytes());
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        h[24..28].fill(0);
        let hcrc = CRC.checksum(&h[..28]);
        h[28..32].copy_from_slice(&hcrc.to_le_bytes());
        // The header area is at most one chunk (the write size divides it).
        self.flash.write(at, &h[..Self::HEADER_AREA]).map_err(flash)?;
        let mut back = [0u8; HEADER_LEN];
        self.flash.read(at, &mut back).map_err(flash)?;
        if back != h[..HEADER_LEN] {
            return Err(SlotError::Verify);
        }
        let a = Active { slot, seq, crc };
        self.active = Some(a);
        Ok(a)
    }
}
