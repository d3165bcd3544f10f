//! A model loaded at run time (feature `runtime-model`): the heap, the channel a model arrives
//! on, and the load that either yields a [`RuntimeModel`] or the [`Refusal`] naming why.
//!
//! The checks and sizes are the device library's ([`tinylstm_device::runtime`]: the core's
//! `.tlm` reader, the core's size functions); this module owns the memory. The heap is an
//! `embedded-alloc` linked-list heap of [`HEAP_BYTES`] (per board, build.rs), set up by
//! [`init_heap`] first thing at boot. A load asks the heap for one block only after the
//! header's sizes passed the check against the free heap, and with `try_reserve_exact`, so a
//! failing allocation is a refusal, never an out-of-memory abort.
//!
//! **The seam.** A model arrives through a [`ModelSource`]: its length, then its bytes in
//! order. Under QEMU that is [`HostModelFile`], the host file `tinylstm-model.tlm` in the
//! directory QEMU runs in, read through semihosting. On a board the same trait takes the bytes
//! from a UART or an RTT down-channel (a length word, then the file); [`load`] reads the first
//! [`PREFIX_LEN`] bytes into a stack buffer, refuses a model too big before reading on, and
//! reads the rest straight into the block, so a streaming channel needs no buffer of its own.

extern crate alloc;

use alloc::vec::Vec;
use core::ffi::CStr;

use embedded_alloc::LlffHeap;
use tinylstm_device::data::Shape;
use tinylstm_device::runtime::{install, parts, plan, Parts, Refusal, Slot, PREFIX_LEN};

pub use crate::board::HEAP_BYTES;

#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();

/// Sets up the heap. Call it once, first thing at boot, before anything allocates.
pub fn init_heap() {
    // SAFETY: `init!` declares the heap's own static buffer of HEAP_BYTES bytes (nothing else
    // refers to it) and hands it to HEAP; `main` calls this once, before any allocation (a
    // second call would panic inside `init`, never alias).
    unsafe {
        embedded_alloc::init!(HEAP, HEAP_BYTES);
    }
}

/// Bytes free in the heap now.
pub fn heap_free() -> usize {
    HEAP.free()
}

/// Bytes of the heap in use now.
pub fn heap_used() -> usize {
    HEAP.used()
}

/// A channel a model file arrives on: its length, then its bytes in order.
pub trait ModelSource {
    /// Bytes of the file on offer.
    fn len(&self) -> usize;
    /// True when the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads the next `buf.len()` bytes of the file.
    ///
    /// # Errors
    /// The channel failed or ended early.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ReadError>;
}

/// A [`ModelSource`] failed or ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadError;

/// A model file on the host, through semihosting (QEMU): `tinylstm-model.tlm` in QEMU's
/// working directory.
#[derive(Debug)]
pub struct HostModelFile {
    file: semihosting::fs::File,
    len: usize,
}

impl HostModelFile {
    /// The file's name, relative to the directory QEMU runs in.
    pub const NAME: &'static CStr = c"tinylstm-model.tlm";

    /// The offered file, or `None` when there is none (or its length cannot be read).
    pub fn open() -> Option<Self> {
        let file = semihosting::fs::File::open(Self::NAME).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        Some(HostModelFile { file, len })
    }
}

impl ModelSource for HostModelFile {
    fn len(&self) -> usize {
        self.len
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ReadError> {
        semihosting::io::Read::read_exact(&mut self.file, buf).map_err(|_| ReadError)
    }
}

/// A model accepted at run time: its block on the heap and what [`install`] found in it.
#[derive(Debug)]
pub struct RuntimeModel {
    block: Vec<u32>,
    slot: Slot,
}

impl RuntimeModel {
    /// What the checks found: spec, steps, layout, the file's CRC.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The model, its weights (in place in the file) and its work buffers.
    pub fn parts(&mut self) -> Parts<'_> {
        parts(&mut self.block, &self.slot)
    }
}

/// Reads a model from `src` and checks it for a device whose input is `device` (and, for text,
/// whose tokenizer section is `tokenizer`): the header's sizes against the free heap, then one
/// block from the heap, the whole file into it, and the device library's checks. The current
/// model is untouched; on success the caller switches to the returned one.
///
/// # Errors
/// The [`Refusal`]: [`Refusal::Read`] when the channel fails, [`Refusal::TooBig`] before any
/// allocation, [`Refusal::Alloc`] when the heap cannot give the block, and every check of
/// [`install`]. Nothing stays allocated after a refusal.
pub fn load<S: ModelSource>(
    src: &mut S,
    device: &Shape,
    tokenizer: Option<&[u8]>,
) -> Result<RuntimeModel, Refusal> {
    let len = src.len();
    let mut prefix = [0u8; PREFIX_LEN];
    let head = len.min(PREFIX_LEN);
    src.read_exact(&mut prefix[..head]).map_err(|ReadError| Refusal::Read)?;
    let p = plan(&prefix[..head], len, HEAP.free())?;
    let words = p.layout.words();
    let mut block: Vec<u32> = Vec::new();
    block.try_reserve_exact(words).map_err(|_| Refusal::Alloc { needed: p.layout.bytes() })?;
    block.resize(words, 0);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut block);
    bytes[..head].copy_from_slice(&prefix[..head]);
    src.read_exact(&mut bytes[head..len]).map_err(|ReadError| Refusal::Read)?;
    let slot = install(&mut block, &p, device, tokenizer)?;
    Ok(RuntimeModel { block, slot })
}
