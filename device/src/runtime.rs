//! A model slot loaded at run time: a `.tlm` file that arrives while the device runs (over
//! semihosting under QEMU, a UART or RTT channel on a board) replaces the built-in model only
//! when every check passes and its buffers fit the memory the firmware gives it.
//!
//! No heap and no `unsafe` here: the firmware owns the memory (an `embedded-alloc` heap) and
//! hands this module one block of `u32` words; this module decides how big the block must be,
//! checks the file in it and carves it into the model's buffers. The steps:
//!
//! 1. [`plan`] reads the first [`PREFIX_LEN`] bytes (magic, version, spec block: the core's
//!    [`peek_spec`]) and the file's length, computes the words every buffer needs
//!    ([`Layout::of`], from the core's size functions) and refuses a model that does not fit
//!    the heap — before anything is allocated or the rest of the file is read, so every size
//!    read from the file is bounded by the heap first;
//! 2. the firmware allocates [`Layout::words`] words and reads the whole file into the start
//!    of the block;
//! 3. [`install`] parses the file with the core's reader ([`ModelFile::parse`]: magic, version,
//!    CRC-32, spec, sections), checks its spec is the planned one, reads its sequence length
//!    from the metadata, refuses a model whose input differs from the device's (channels or
//!    vocabulary, time steps; for text, the tokenizer), decodes its standardisation into the block and moves the file so
//!    that its parameters are 4-byte aligned (they are then read in place);
//! 4. [`parts`] gives the model, its weights and its work buffers out of the block, for
//!    [`predict`](crate::model::predict).
//!
//! The block holds, in words: the file (its length rounded up to a word, plus one word for the
//! alignment shift), the forward work of one sequence ([`Spec::forward_work_len`]`(1, 1)`), the
//! top layer's hidden state ([`Spec::top_units`]), the outputs ([`Spec::outputs`]) and, for
//! value input, the means and standard deviations of the channels.
//!
//! ```
//! use tinylstm::format::{encoded_len, write_into, Section, TAG_METADATA};
//! use tinylstm::{Head, Spec};
//! use tinylstm_device::data::Shape;
//! use tinylstm_device::model::{predict, Weights};
//! use tinylstm_device::runtime::{install, parts, plan, PREFIX_LEN};
//!
//! // A model file as the device would receive it: 2 channels, 5 steps.
//! const SPEC: Spec = Spec::channels(2).lstm(4).dense(3, Head::Softmax);
//! let params = [0.01f32; SPEC.param_count()];
//! let meta = [Section { tag: TAG_METADATA, bytes: br#"{"steps":5}"# }];
//! let mut file = vec![0u8; encoded_len(&SPEC, &meta).unwrap()];
//! write_into(&SPEC, &params, &meta, &mut file).unwrap();
//!
//! // The device reads 2 channels x 5 steps and has a heap of 4096 bytes.
//! let device = Shape::of(&Spec::channels(2).lstm(8).dense(1, Head::Sigmoid), 5);
//! let planned = plan(&file[..PREFIX_LEN], file.len(), 4096).unwrap();
//! let mut block = vec![0u32; planned.layout.words()]; // the firmware's heap allocation
//! bytemuck::cast_slice_mut::<u32, u8>(&mut block)[..file.len()].copy_from_slice(&file);
//! let slot = install(&mut block, &planned, &device, None).unwrap();
//! let p = parts(&mut block, &slot);
//! let x = [0.5f32.to_bits(); 10];
//! let mut out = [0.0f32; 3];
//! predict(&p.model, Weights::flat(p.params), &x, p.forward, p.hidden, &mut out).unwrap();
//! assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! ```

// A `Refusal` carries the core's `FormatError` (which holds two specs for a spec mismatch),
// as the core's reader returns it.
#![allow(clippy::result_large_err)]

use core::ops::Range;

use tinylstm::format::{peek_spec, FormatError, ModelFile, CRC_LEN, HEADER_LEN};
use tinylstm::{InputKind, Spec};

use crate::data::Shape;
use crate::model::{params_offset, Model};
use crate::norm::{decode_section, metadata_steps, NormError, Standardize};

/// Bytes [`plan`] needs from the start of the file: the header and as many bytes as the CRC
/// (the shortest file the core reads).
pub const PREFIX_LEN: usize = HEADER_LEN + CRC_LEN;

/// The words each buffer of a runtime model takes, from its spec and its file's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Layout {
    /// Bytes of the file.
    pub file_len: usize,
    /// Words for the file: its length rounded up to a word, plus one word, so that it can be
    /// moved by up to 3 bytes to align its parameters.
    pub file: usize,
    /// Forward work of one sequence, [`Spec::forward_work_len`]`(1, 1)`.
    pub forward: usize,
    /// The top layer's hidden state, [`Spec::top_units`].
    pub hidden: usize,
    /// The head's outputs, [`Spec::outputs`].
    pub outputs: usize,
    /// Input channels whose mean and standard deviation are kept (0 for token input).
    pub channels: usize,
}

impl Layout {
    /// The layout of a model of `spec` in a file of `file_len` bytes; `None` when a size
    /// overflows `usize`.
    pub const fn of(spec: &Spec, file_len: usize) -> Option<Layout> {
        let Some(forward) = spec.forward_work_len(1, 1) else { return None };
        let file = file_len.div_ceil(4) + 1;
        let channels = match spec.input {
            InputKind::Channels(c) => c,
            InputKind::Tokens { .. } => 0,
        };
        let l = Layout {
            file_len,
            file,
            forward,
            hidden: spec.top_units(),
            outputs: spec.outputs,
            channels,
        };
        match l.checked_words() {
            Some(_) => Some(l),
            None => None,
        }
    }

    const fn checked_words(&self) -> Option<usize> {
        // The means and standard deviations take one word per channel each.
        let terms =
            [self.file, self.forward, self.hidden, self.outputs, self.channels, self.channels];
        let mut sum = 0usize;
        let mut i = 0;
        while i < terms.len() {
            sum = match sum.checked_add(terms[i]) {
                Some(s) => s,
                None => return None,
            };
            i += 1;
        }
        match sum.checked_mul(4) {
            Some(_) => Some(sum),
            None => None,
        }
    }

    /// Words of the whole block (checked not to overflow by [`Layout::of`]).
    pub const fn words(&self) -> usize {
        match self.checked_words() {
            Some(w) => w,
            None => usize::MAX / 4,
        }
    }

    /// Bytes of the whole block: what the model needs from the heap.
    pub const fn bytes(&self) -> usize {
        4 * self.words()
    }
}

/// A model that passed [`plan`]: its spec (from the header) and the layout of its block.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Plan {
    /// The spec in the file's header.
    pub spec: Spec,
    /// The block it needs.
    pub layout: Layout,
}

/// Why a model offered at run time is refused (the device keeps its model).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Refusal {
    /// The file is not a valid model file: bad magic, version, CRC, spec or sections (the
    /// core's error).
    Format(FormatError),
    /// The model's buffers need more memory than the heap has.
    TooBig {
        /// Bytes the model needs ([`Layout::bytes`]; `usize::MAX` when the sizes overflow).
        needed: usize,
        /// Bytes free in the heap.
        heap: usize,
    },
    /// The heap had the bytes but the allocation failed (fragmentation).
    Alloc {
        /// Bytes asked for.
        needed: usize,
    },
    /// The channel could not deliver the file (the firmware's reading failed).
    Read,
    /// The file changed between the header's reading and the whole file's: its spec differs
    /// from the planned one.
    Changed,
    /// The metadata holds no sequence length (`"steps":N`, which `tinylstm train` writes).
    NoSteps,
    /// The model reads other input than the device's samples.
    Shape {
        /// Words per time step the device has (channels, or 1 for tokens).
        width: usize,
        /// Its vocabulary for token input (0 for values).
        vocab: usize,
        /// Its time steps.
        steps: usize,
        /// Words per time step the model reads.
        found_width: usize,
        /// The model's vocabulary (0 for values).
        found_vocab: usize,
        /// The model's time steps.
        found_steps: usize,
    },
    /// The model's NORMALIZATION section cannot be used.
    Norm(NormError),
    /// A token model whose tokenizer differs from the device's (the device turns its text into
    /// ids with its own tokenizer, so another vocabulary would read other words).
    Tokenizer,
}

impl Refusal {
    /// A one-word name of the reason, for logs and tests: `format`, `too-big`, `alloc`, `read`,
    /// `changed`, `no-steps`, `shape`, `normalization`.
    pub const fn reason(&self) -> &'static str {
        match self {
            Refusal::Format(_) => "format",
            Refusal::TooBig { .. } => "too-big",
            Refusal::Alloc { .. } => "alloc",
            Refusal::Read => "read",
            Refusal::Changed => "changed",
            Refusal::NoSteps => "no-steps",
            Refusal::Shape { .. } => "shape",
            Refusal::Norm(_) => "normalization",
            Refusal::Tokenizer => "tokenizer",
        }
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Refusal::Format(e) => write!(f, "{e}"),
            Refusal::TooBig { needed, heap } => {
                write!(f, "the model needs {needed} bytes of heap and the heap has {heap}")
            }
            Refusal::Alloc { needed } => {
                write!(f, "allocating {needed} bytes failed (the heap is fragmented)")
            }
            Refusal::Read => f.write_str("reading the model from its channel failed"),
            Refusal::Changed => f.write_str("the file changed while it was read"),
            Refusal::NoSteps => f.write_str("its metadata holds no sequence length (\"steps\":N)"),
            Refusal::Shape { width, vocab, steps, found_width, found_vocab, found_steps } => {
                write!(
                    f,
                    "the device's input is {steps} steps of {width} words (vocabulary {vocab}), \
                     the model's {found_steps} steps of {found_width} words (vocabulary \
                     {found_vocab})"
                )
            }
            Refusal::Norm(e) => write!(f, "{e}"),
            Refusal::Tokenizer => {
                f.write_str("its tokenizer differs from the one the device tokenizes text with")
            }
        }
    }
}

impl core::error::Error for Refusal {}

/// Step 1: the model's spec from the first bytes of its file (`prefix`: the first
/// [`PREFIX_LEN`] bytes, or the whole file if it is shorter) and the block it needs, checked
/// against `heap` (bytes free).
///
/// # Errors
/// [`Refusal::Format`] for a bad magic, version, flags or spec block, or a file shorter than
/// [`PREFIX_LEN`]; [`Refusal::TooBig`] when the block exceeds `heap`.
pub fn plan(prefix: &[u8], file_len: usize, heap: usize) -> Result<Plan, Refusal> {
    let head = &prefix[..prefix.len().min(file_len)];
    let spec = peek_spec(head).map_err(Refusal::Format)?;
    let layout = Layout::of(&spec, file_len).ok_or(Refusal::TooBig { needed: usize::MAX, heap })?;
    if layout.bytes() > heap {
        return Err(Refusal::TooBig { needed: layout.bytes(), heap });
    }
    Ok(Plan { spec, layout })
}

/// A model installed in its block by [`install`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Slot {
    /// The model's spec.
    pub spec: Spec,
    /// Its time steps (metadata `steps`).
    pub steps: usize,
    /// The block's layout.
    pub layout: Layout,
    /// Where the file starts in the block, in bytes (0 to 3: moved to align the parameters).
    pub shift: usize,
    /// The parameters' words in the block.
    pub params: Range<usize>,
    /// True when the model standardises its input (the means and standard deviations are in
    /// the block).
    pub standardizes: bool,
    /// The file's CRC-32.
    pub crc: u32,
}

/// Step 3: checks the file the firmware read into the start of `block` (its first
/// `plan.layout.file_len` bytes; `block` is `plan.layout.words()` words) and makes it ready to
/// run. `device` is the shape of the device's input: the model must read the same channels
/// (or the same vocabulary) and the same number of steps. `tokenizer` is the TOKENIZER section
/// the device tokenizes text with, if it does: a token model must hold the same one. Never
/// panics on any file.
///
/// # Errors
/// [`Refusal::Format`] (the core's reader: magic, version, CRC, sections),
/// [`Refusal::Changed`], [`Refusal::NoSteps`], [`Refusal::Shape`], [`Refusal::Tokenizer`],
/// [`Refusal::Norm`]; a block shorter than the layout gives [`Refusal::Alloc`].
pub fn install(
    block: &mut [u32],
    plan: &Plan,
    device: &Shape,
    tokenizer: Option<&[u8]>,
) -> Result<Slot, Refusal> {
    let layout = plan.layout;
    if block.len() < layout.words() {
        return Err(Refusal::Alloc { needed: layout.bytes() });
    }
    let (file_words, rest) = block.split_at_mut(layout.file);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(file_words);
    let len = layout.file_len;
    let (spec, steps, offset, crc, norm) = {
        let file = ModelFile::parse(&bytes[..len]).map_err(Refusal::Format)?;
        if file.spec() != plan.spec {
            return Err(Refusal::Changed);
        }
        let steps = file.metadata().and_then(metadata_steps).ok_or(Refusal::NoSteps)?;
        let found = Shape::of(&file.spec(), steps);
        if (found.width, found.vocab, found.steps) != (device.width, device.vocab, device.steps) {
            return Err(Refusal::Shape {
                width: device.width,
                vocab: device.vocab,
                steps: device.steps,
                found_width: found.width,
                found_vocab: found.vocab,
                found_steps: found.steps,
            });
        }
        if let (Some(own), true) = (tokenizer, found.tokens()) {
            if file.tokenizer() != Some(own) {
                return Err(Refusal::Tokenizer);
            }
        }
        // The statistics go to their place in the block (after the file).
        let c = layout.channels;
        let norm = match (file.normalization(), c) {
            (Some(section), c) if c > 0 => {
                let at = layout.forward + layout.hidden + layout.outputs;
                let stats = &mut rest[at..at + 2 * c];
                let (means, stds) = stats.split_at_mut(c);
                decode_section(
                    section,
                    c,
                    bytemuck::cast_slice_mut(means),
                    bytemuck::cast_slice_mut(stds),
                )
                .map_err(Refusal::Norm)?;
                true
            }
            _ => false,
        };
        (file.spec(), steps, params_offset(&file), file.crc(), norm)
    };
    // Move the file so that its PARAMS section starts on a word: the block is word-aligned.
    let shift = (4 - offset % 4) % 4;
    if shift != 0 {
        bytes.copy_within(0..len, shift);
    }
    let start = (offset + shift) / 4;
    let params = start..start + spec.param_count();
    Ok(Slot { spec, steps, layout, shift, params, standardizes: norm, crc })
}

/// A runtime model's parts, borrowed from its block.
#[derive(Debug)]
pub struct Parts<'a> {
    /// The model: spec, steps, standardisation.
    pub model: Model<'a>,
    /// Its parameters, read in place from the file in the block.
    pub params: &'a [f32],
    /// Forward work of one sequence.
    pub forward: &'a mut [f32],
    /// The top layer's hidden state.
    pub hidden: &'a mut [f32],
    /// The head's outputs `[K]`.
    pub out: &'a mut [f32],
}

/// Step 4: the parts of a model [`install`] accepted in `block`.
///
/// # Panics
/// When `block` is not the block `slot` was installed in (shorter than its layout): a caller
/// bug, never caused by a file.
pub fn parts<'a>(block: &'a mut [u32], slot: &Slot) -> Parts<'a> {
    let l = slot.layout;
    let (file, rest) = block.split_at_mut(l.file);
    let (forward, rest) = rest.split_at_mut(l.forward);
    let (hidden, rest) = rest.split_at_mut(l.hidden);
    let (out, stats) = rest.split_at_mut(l.outputs);
    let stats: &'a [u32] = stats;
    let (means, stds) = stats[..2 * l.channels].split_at(l.channels);
    let norm = if slot.standardizes {
        Standardize::new(bytemuck::cast_slice(means), bytemuck::cast_slice(stds)).ok()
    } else {
        None
    };
    let file: &'a [u32] = file;
    Parts {
        model: Model { spec: slot.spec, steps: slot.steps, norm },
        params: bytemuck::cast_slice(&file[slot.params.clone()]),
        forward: bytemuck::cast_slice_mut(forward),
        hidden: bytemuck::cast_slice_mut(hidden),
        out: bytemuck::cast_slice_mut(out),
    }
}
