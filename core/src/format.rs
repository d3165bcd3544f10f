//! The `.tlm` model file: reader and writer without allocation.
//!
//! A `.tlm` file holds one model: its [`Spec`], its flat parameter buffer (in the Keras
//! `get_weights()` layout described in [`spec`](crate::spec)), optional side sections
//! (tokenizer, input normalization, free-form metadata) and a CRC-32 over everything.
//! [`ModelFile::parse`] validates a byte slice completely up front and then borrows from it;
//! [`write_into`] and [`write_to`] produce a file into a caller buffer or a streaming
//! [`ByteSink`]. Nothing here allocates, uses `unsafe`, or panics on any input.
//!
//! # Layout (format versions 1 to 3)
//!
//! All integers are little-endian. Offsets are in bytes from the start of the file.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic: the ASCII bytes `TINYLSTM` ([`MAGIC`]) |
//! | 8 | 2 | `u16` format version, `1` to `3` ([`VERSION`] is the newest) |
//! | 10 | 2 | `u16` flags, must be `0` |
//! | 12 | 1 | `u8` input kind: `0` = token ids, `1` = real-valued channels |
//! | 13 | 1 | `u8` head: `0` = sigmoid, `1` = softmax, `2` = linear |
//! | 14 | 1 | `u8` LSTM layer count `L` (`1..=`[`MAX_LAYERS`]) |
//! | 15 | 1 | `u8` mask (versions 2, 3): `0` = none (version 3 only), `1` = mask value (channels), `2` = mask_zero (tokens); reserved, must be `0`, in version 1 |
//! | 16 | 4 | `u32` vocabulary size `V` (tokens); for channels `0`, or with mask `1` the `f32` mask value |
//! | 20 | 4 | `u32` width: embedding size `E` (tokens) or channel count `C` |
//! | 24 | 16 | `u32 units[4]`: hidden units of each LSTM layer; entries past `L` are `0` |
//! | 40 | 4 | `u32` Dense outputs `K` |
//! | 44 | … | zero or more sections (below), the PARAMS section last |
//! | `n − 4` | 4 | `u32` CRC-32 (zlib/PNG, `CRC_32_ISO_HDLC`) of bytes `0 .. n − 4` |
//!
//! Bytes 12 to 43 are the *spec block* ([`HEADER_LEN`] = 44 bytes of header in total). The spec
//! it describes must pass [`Spec::validate`].
//!
//! Each section is `u32 tag`, `u32 length`, then `length` bytes:
//!
//! | tag | constant | contents |
//! |---:|---|---|
//! | `1` | [`TAG_TOKENIZER`] | tokenizer vocabulary and settings (opaque to the core; written by the CLI) |
//! | `2` | [`TAG_NORMALIZATION`] | per-channel input mean/std (opaque to the core; written by the CLI) |
//! | `3` | [`TAG_METADATA`] | free-form UTF-8 text (opaque to the core) |
//! | `4` | [`TAG_TOKEN_INDEX`] | lookup table of the tokenizer's words (read by [`text`](crate::text)) |
//! | `5` | [`TAG_EMBEDDING_I8`] | version 3 only, exactly once, before PARAMS: the Embedding `[V][E]` as int8, [`quant::table_len`]`(V, E)` bytes — `[V]` `f32` row scales, then `[V][E]` `i8` values (see [`quant`]) |
//! | `0x4152_4150` | [`TAG_PARAMS`] | the parameters: `4 · param_count` bytes, each an `f32` in little-endian, in the flat Keras order (version 3: without the Embedding, `4 · (param_count − V·E)` bytes); the tag's bytes in the file spell `PARA` |
//!
//! Rules: the PARAMS section is present exactly once and is the last section, so the CRC
//! directly follows it and nothing follows the CRC. Each of tags 1–3 appears at most once.
//! Sections with other tags are skipped by the reader (forward compatibility: a newer writer may
//! add sections an older reader ignores) and are reachable through [`ModelFile::section`] and
//! [`ModelFile::sections`]. A file with no side sections is therefore
//! `44 + 8 + 4 · param_count + 4` bytes long.
//!
//! # Versions
//! Version 2 adds masking ([`Mask`]) in byte 15; everything else is version 1. The writer
//! writes the oldest version that holds the model — version 1 for a model without a mask, so
//! such files stay byte-identical and readable by builds that know only version 1, and version
//! 2 for a masked model, which those builds refuse ([`FormatError::UnsupportedVersion`])
//! instead of running it without its mask. The reader reads both, and refuses a version-2 file
//! without a mask, which no writer produces: every file the reader accepts is written back
//! byte for byte.
//!
//! Version 3 stores the Embedding as int8 with per-row scales ([`EmbeddingStorage::Int8`],
//! section [`TAG_EMBEDDING_I8`]); the mask byte is as in version 2, with `0` for no mask. The
//! writer writes version 3 only when asked for int8 storage, so builds that know versions 1–2
//! refuse such a file with [`FormatError::UnsupportedVersion`] rather than reading a PARAMS
//! section without its Embedding. [`ModelFile::params`] and [`ModelFile::read_params`] give
//! the dequantised Embedding ([`quant::dequantize`]) followed by the
//! stored parameters, so a host reads every version into the same flat buffer; a device reads
//! the table in place ([`ModelFile::embedding_int8`]). The section is refused in versions 1–2
//! ([`FormatError::EmbeddingUnexpected`]), and in version 3 a missing one, a wrong length or a
//! row scale that is not a finite number `>= 0` is an error (steps 7–8 below).
//!
//! # Order of the checks
//!
//! [`ModelFile::parse`] checks, in this order, and reports the first failure:
//!
//! 1. the magic, on as many of the first 8 bytes as are present → [`FormatError::BadMagic`];
//! 2. the version (1 or 2), when at least 10 bytes are present → [`FormatError::UnsupportedVersion`]
//!    (checked before the length, because another version may have another header size);
//! 3. the length, at least 48 bytes (header and CRC) → [`FormatError::Truncated`];
//! 4. the CRC-32 over everything but the last 4 bytes against the last 4 bytes. On a mismatch the
//!    section headers are walked, without trusting them any further, to tell a cut-off file from
//!    a corrupted one: if the sections run past the end of the data (or the CRC is cut short) the
//!    error is [`FormatError::Truncated`], otherwise [`FormatError::CrcMismatch`];
//! 5. the flags → [`FormatError::UnsupportedFlags`];
//! 6. the spec block: the input kind and head bytes, the mask byte (reserved in version 1) and,
//!    for channel input without a mask value, the vocabulary field →
//!    [`FormatError::InvalidField`]; then [`Spec::validate`] →
//!    [`FormatError::InvalidSpec`]; a parameter count whose byte size does not fit the target's
//!    `usize` → [`FormatError::ModelTooLarge`];
//! 7. the sections in file order: a PARAMS section whose length is not `4 · param_count` →
//!    [`FormatError::ParamsLength`]; a section header or body running past the CRC →
//!    [`FormatError::Truncated`]; a repeated known tag → [`FormatError::DuplicateSection`]; a
//!    whole section after PARAMS → [`FormatError::ParamsNotLast`], other bytes after PARAMS →
//!    [`FormatError::TrailingBytes`]; no PARAMS section → [`FormatError::ParamsMissing`];
//!    an int8 Embedding section in a version-1/2 file → [`FormatError::EmbeddingUnexpected`],
//!    of the wrong length → [`FormatError::EmbeddingLength`];
//! 8. version 3: no int8 Embedding section → [`FormatError::EmbeddingMissing`], a bad row scale
//!    → [`FormatError::EmbeddingScale`].
//!
//! Consequences: a single flipped bit in the magic gives `BadMagic`, in the version
//! `UnsupportedVersion`, in a section's tag or length field `CrcMismatch` or `Truncated`, and
//! anywhere else `CrcMismatch` (CRC-32 detects every error burst of up to 32 bits, so a flipped
//! bit can never pass). A file cut short gives `Truncated`, or `CrcMismatch` when the cut falls
//! exactly 4 bytes past a section boundary (that prefix is shaped like a complete file). Steps 5
//! to 7 can only fail for a file written wrongly with a correct CRC, never for a damaged one.
//!
//! # Example
//!
//! ```
//! use tinylstm::format::*;
//! use tinylstm::{Head, Spec};
//!
//! const SPEC: Spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
//! let mut params = [0.0f32; SPEC.param_count()];
//! for (i, p) in params.iter_mut().enumerate() {
//!     *p = i as f32 * 0.01 - 0.5;
//! }
//! let sections = [Section { tag: TAG_METADATA, bytes: "demo model".as_bytes() }];
//!
//! // Write into a caller buffer: no allocation.
//! let mut buf = [0u8; 1024];
//! let n = write_into(&SPEC, &params, &sections, &mut buf)?;
//! assert_eq!(n, encoded_len(&SPEC, &sections)?);
//!
//! // Parse (validates magic, version, CRC, spec and sections), then check and load.
//! let file = ModelFile::parse(&buf[..n])?;
//! file.check_spec(&SPEC)?;
//! assert_eq!(file.metadata(), Some("demo model".as_bytes()));
//! let mut loaded = [0.0f32; SPEC.param_count()];
//! file.read_params(&mut loaded)?;
//! assert_eq!(loaded, params);
//!
//! // Any damage is reported, never a panic.
//! buf[100] ^= 0x10;
//! assert!(matches!(ModelFile::parse(&buf[..n]), Err(FormatError::CrcMismatch { .. })));
//! # Ok::<(), FormatError>(())
//! ```
//!
//! Firmware that embeds a model with `include_bytes!` can also check its spec at compile time
//! with the `const fn` [`peek_check_spec`] (the CRC is then checked at boot by
//! [`ModelFile::parse`]):
//!
//! ```
//! # use tinylstm::{Head, Spec};
//! # const SPEC: Spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
//! // In firmware: `static MODEL: &[u8] = include_bytes!("model.tlm");` — here, a header built
//! // by hand so the example is self-contained (magic, version 1, flags 0, channels, softmax,
//! // 1 layer, width 3, units [4, 0, 0, 0], 2 outputs, then 4 bytes where the CRC would be:
//! // `peek_check_spec` reads only the header).
//! static MODEL: &[u8] = &[
//!     b'T', b'I', b'N', b'Y', b'L', b'S', b'T', b'M', 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0,
//!     3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
//! ];
//! const _: () = assert!(
//!     tinylstm::format::peek_check_spec(MODEL, &SPEC).is_ok(),
//!     "model.tlm does not match SPEC"
//! );
//! ```

// `FormatError::SpecMismatch` carries both specs so the message is self-contained on a device
// (about 80 bytes on Cortex-M, 160 on 64-bit hosts). Errors are returned once per file read or
// write, never in a loop, so the size costs nothing that matters.
#![allow(clippy::result_large_err)]

use core::fmt;

use crate::error::SpecError;
use crate::quant::{self, Int8Embedding};
use crate::spec::{Head, InputKind, Mask, Spec, MAX_LAYERS};

/// The 8 magic bytes every `.tlm` file starts with.
pub const MAGIC: [u8; 8] = *b"TINYLSTM";

/// The newest format version this module reads and writes (version 3: int8 Embedding).
pub const VERSION: u16 = 3;

/// The oldest format version this module reads (version 1: no masking).
pub const MIN_VERSION: u16 = 1;

/// Length of the fixed header: magic, version, flags and the 32-byte spec block.
pub const HEADER_LEN: usize = 44;

/// Length of a section header: `u32` tag and `u32` length.
pub const SECTION_HEADER_LEN: usize = 8;

/// Length of the trailing CRC-32.
pub const CRC_LEN: usize = 4;

/// Section tag of the tokenizer (vocabulary and settings; opaque to the core).
pub const TAG_TOKENIZER: u32 = 1;

/// Section tag of the input normalization (per-channel mean/std; opaque to the core).
pub const TAG_NORMALIZATION: u32 = 2;

/// Section tag of free-form UTF-8 metadata (opaque to the core).
pub const TAG_METADATA: u32 = 3;

/// Section tag of the tokenizer's lookup table (words sorted for binary search; see
/// [`text`](crate::text)). Read in place by [`text::Tokenizer`](crate::text::Tokenizer); a
/// file without it still tokenizes, by a scan of the word list.
pub const TAG_TOKEN_INDEX: u32 = 4;

/// Section tag of the int8 Embedding table (version 3; see [`quant`]). The
/// writer adds it itself for [`EmbeddingStorage::Int8`]; passing it in `sections` is an error.
pub const TAG_EMBEDDING_I8: u32 = 5;

/// How the writer stores the Embedding table of a token model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EmbeddingStorage {
    /// `f32`s in the PARAMS section, like every other parameter (versions 1–2).
    #[default]
    F32,
    /// int8 with an `f32` scale per row in section [`TAG_EMBEDDING_I8`] (version 3): a quarter
    /// of the bytes, quantised as [`quant`] says.
    Int8,
}

/// Section tag of the parameters, `0x4152_4150`: its little-endian bytes spell `PARA`.
///
/// The writer adds this section itself; passing it in the `sections` of [`write_into`] or
/// [`write_to`] is an error.
pub const TAG_PARAMS: u32 = u32::from_le_bytes(*b"PARA");

/// Shortest input the reader looks into: the header plus the CRC.
const MIN_LEN: usize = HEADER_LEN + CRC_LEN;

/// Parameters encoded per sink call by [`write_to`].
const PARAM_CHUNK: usize = 64;

static CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// An error reading or writing a `.tlm` model file.
///
/// Numbers are byte counts unless the variant says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with [`MAGIC`].
    BadMagic,
    /// The file has a format version this build cannot read.
    UnsupportedVersion {
        /// The version stored in the file.
        found: u16,
    },
    /// The flags field is not zero (no version defines flags).
    UnsupportedFlags {
        /// The flags stored in the file.
        flags: u16,
    },
    /// The file ends inside a part of it.
    Truncated {
        /// The part cut short: `"header and CRC"`, `"section header"`, `"PARAMS section body"`, …, `"CRC"`.
        what: &'static str,
        /// Bytes that part needs.
        needed: usize,
        /// Bytes present for it.
        available: usize,
    },
    /// The CRC-32 stored at the end does not match the contents.
    CrcMismatch {
        /// The CRC stored in the last 4 bytes.
        stored: u32,
        /// The CRC computed over the preceding bytes.
        computed: u32,
    },
    /// A spec-block field holds a value that means nothing (an unknown input kind, head or mask,
    /// a non-zero reserved byte, a vocabulary for channel input).
    InvalidField {
        /// The field: `"input kind"`, `"head"`, `"mask"`, `"reserved"` or `"vocab"`.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// The spec is invalid.
    InvalidSpec(SpecError),
    /// The parameters of this spec do not fit a model file on this target: more than
    /// `u32::MAX` bytes, or beyond the target's address space.
    ModelTooLarge,
    /// The file has no PARAMS section.
    ParamsMissing,
    /// The PARAMS section's length is not 4 bytes per parameter of the spec.
    ParamsLength {
        /// Bytes the spec needs, `4 · param_count`.
        expected: usize,
        /// Bytes the section declares.
        found: usize,
    },
    /// A section follows the PARAMS section, which must be the last one.
    ParamsNotLast {
        /// Tag of the section found after PARAMS.
        tag: u32,
    },
    /// Bytes that form no section lie between the PARAMS section and the CRC.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A known section tag appears twice.
    DuplicateSection {
        /// The repeated tag.
        tag: u32,
    },
    /// The writer was given a section with the reserved tag [`TAG_PARAMS`].
    ReservedTag {
        /// The tag.
        tag: u32,
    },
    /// The writer was given a section longer than a section can be (`u32::MAX` bytes).
    SectionTooLarge {
        /// Tag of the section.
        tag: u32,
        /// Its length.
        len: usize,
    },
    /// A parameter buffer does not have one value per parameter of the spec.
    ParamCount {
        /// Parameters of the spec.
        expected: usize,
        /// Values in the buffer.
        found: usize,
    },
    /// The file's spec differs from the one expected (for firmware: the compiled spec).
    SpecMismatch {
        /// The spec expected.
        expected: Spec,
        /// The spec in the file.
        found: Spec,
    },
    /// The output buffer is shorter than the encoded file.
    BufferTooSmall {
        /// Bytes the file needs.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
    /// The [`ByteSink`] failed.
    Sink,
    /// A version-3 file has no int8 Embedding section ([`TAG_EMBEDDING_I8`]).
    EmbeddingMissing,
    /// An int8 Embedding section in a version-1 or 2 file (only version 3 has one).
    EmbeddingUnexpected {
        /// The file's version.
        version: u16,
    },
    /// The int8 Embedding section's length is not `4·V + V·E` bytes.
    EmbeddingLength {
        /// Bytes the spec needs.
        expected: usize,
        /// Bytes the section declares.
        found: usize,
    },
    /// A row scale of the int8 Embedding is not a number `>= 0` whose 128-fold is finite.
    EmbeddingScale {
        /// The row (token id).
        row: usize,
    },
    /// int8 Embedding storage was asked for a model without an Embedding (channel input).
    NoEmbedding,
    /// A parameter to be quantised is NaN or infinite.
    NonFinite {
        /// Its index in the flat buffer.
        index: usize,
    },
}

/// Human name of a section tag, for messages.
const fn tag_name(tag: u32) -> &'static str {
    match tag {
        TAG_TOKENIZER => "tokenizer",
        TAG_NORMALIZATION => "normalization",
        TAG_METADATA => "metadata",
        TAG_EMBEDDING_I8 => "int8 embedding",
        TAG_PARAMS => "PARAMS",
        _ => "unknown",
    }
}

/// The `what` of a truncated section body.
const fn body_what(tag: u32) -> &'static str {
    match tag {
        TAG_TOKENIZER => "tokenizer section body",
        TAG_NORMALIZATION => "normalization section body",
        TAG_METADATA => "metadata section body",
        TAG_EMBEDDING_I8 => "int8 embedding section body",
        TAG_PARAMS => "PARAMS section body",
        _ => "section body",
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FormatError::BadMagic => {
                f.write_str("not a tinylstm model file: it does not start with \"TINYLSTM\"")
            }
            FormatError::UnsupportedVersion { found } => write!(
                f,
                "unsupported model file format version {found} (this build reads versions {MIN_VERSION} to {VERSION})"
            ),
            FormatError::UnsupportedFlags { flags } => write!(
                f,
                "unsupported model file flags {flags:#06x} (no format version defines any)"
            ),
            FormatError::Truncated { what, needed, available } => write!(
                f,
                "truncated model file: needs {needed} bytes for the {what}, got {available}"
            ),
            FormatError::CrcMismatch { stored, computed } => write!(
                f,
                "corrupted model file: stored CRC-32 is {stored:#010x} but the contents give {computed:#010x}"
            ),
            FormatError::InvalidField { field, value } => {
                write!(f, "invalid model file: {value} is not a valid {field} in the spec block")
            }
            FormatError::InvalidSpec(e) => write!(f, "invalid model spec: {e}"),
            FormatError::ModelTooLarge => f.write_str(
                "the model's parameters are too large for a model file on this target \
                 (over 4 GiB, or beyond the address space)",
            ),
            FormatError::ParamsMissing => f.write_str("model file has no PARAMS section"),
            FormatError::ParamsLength { expected, found } => write!(
                f,
                "model file PARAMS section has {found} bytes, the spec needs {expected} (4 per parameter)"
            ),
            FormatError::ParamsNotLast { tag } => write!(
                f,
                "model file has a {} section (tag {tag:#x}) after the PARAMS section, which must be last",
                tag_name(tag)
            ),
            FormatError::TrailingBytes { count } => write!(
                f,
                "model file has {count} stray bytes between the PARAMS section and the CRC"
            ),
            FormatError::DuplicateSection { tag } => write!(
                f,
                "model file has more than one {} section (tag {tag:#x})",
                tag_name(tag)
            ),
            FormatError::ReservedTag { tag } => write!(
                f,
                "section tag {tag:#x} is reserved for the parameters, which the writer adds itself"
            ),
            FormatError::SectionTooLarge { tag, len } => write!(
                f,
                "{} section (tag {tag:#x}) has {len} bytes, more than the {} a section can hold",
                tag_name(tag),
                u32::MAX
            ),
            FormatError::ParamCount { expected, found } => write!(
                f,
                "parameter buffer has {found} values, the spec has {expected} parameters"
            ),
            FormatError::SpecMismatch { expected, found } => write!(
                f,
                "model file spec does not match: the file has {found:?}, expected {expected:?}"
            ),
            FormatError::BufferTooSmall { needed, available } => write!(
                f,
                "output buffer too small for the model file: needs {needed} bytes, got {available}"
            ),
            FormatError::Sink => f.write_str("writing the model file failed: the byte sink returned an error"),
            FormatError::EmbeddingMissing => f.write_str(
                "model file version 3 has no int8 embedding section (tag 5): the file is damaged",
            ),
            FormatError::EmbeddingUnexpected { version } => write!(
                f,
                "model file version {version} has an int8 embedding section (tag 5), which only version 3 may have"
            ),
            FormatError::EmbeddingLength { expected, found } => write!(
                f,
                "int8 embedding section has {found} bytes; the spec needs {expected} (4 per row scale + 1 per value)"
            ),
            FormatError::EmbeddingScale { row } => write!(
                f,
                "int8 embedding row {row} has a scale that is not a finite number >= 0 (with 128 x scale finite)"
            ),
            FormatError::NoEmbedding => f.write_str(
                "int8 embedding storage needs a token model: this model has no Embedding",
            ),
            FormatError::NonFinite { index } => write!(
                f,
                "parameter {index} is NaN or infinite and cannot be stored as int8"
            ),
        }
    }
}

impl core::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            FormatError::InvalidSpec(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SpecError> for FormatError {
    fn from(e: SpecError) -> Self {
        FormatError::InvalidSpec(e)
    }
}

impl From<SinkError> for FormatError {
    fn from(_: SinkError) -> Self {
        FormatError::Sink
    }
}

/// A section to write, or one read back by [`ModelFile::sections`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    /// The tag: [`TAG_TOKENIZER`], [`TAG_NORMALIZATION`], [`TAG_METADATA`] or an
    /// application-defined value (not [`TAG_PARAMS`] when writing).
    pub tag: u32,
    /// The contents.
    pub bytes: &'a [u8],
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// Reads a little-endian `u32` at a constant offset of a fixed-size array.
macro_rules! le32 {
    ($h:expr, $at:expr) => {
        u32::from_le_bytes([$h[$at], $h[$at + 1], $h[$at + 2], $h[$at + 3]])
    };
}

/// Widens a `u32` to `usize`, saturating on targets where `usize` is narrower.
const fn widen(v: u32) -> usize {
    if v as u64 > usize::MAX as u64 {
        usize::MAX
    } else {
        v as usize
    }
}

/// Splits a section header into `(tag, length)`.
fn section_header(h: &[u8; SECTION_HEADER_LEN]) -> (u32, usize) {
    (le32!(h, 0), widen(le32!(h, 4)))
}

/// Copies up to 4 bytes into an array (never panics).
fn array4(c: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    for (d, s) in a.iter_mut().zip(c) {
        *d = *s;
    }
    a
}

/// The parameter count of a valid spec, computed with checked arithmetic.
///
/// `None` when it does not fit a `usize` (possible on 32-bit targets for a huge vocabulary).
fn checked_param_count(spec: &Spec) -> Option<usize> {
    let mut n = match spec.input {
        InputKind::Tokens { vocab, embed } => vocab.checked_mul(embed)?,
        InputKind::Channels(_) => 0,
    };
    let mut input = spec.input_width();
    for &h in spec.units.iter().take(spec.layers) {
        let layer = input.checked_add(h)?.checked_add(1)?.checked_mul(h)?.checked_mul(4)?;
        n = n.checked_add(layer)?;
        input = h;
    }
    n.checked_add(input.checked_mul(spec.outputs)?)?.checked_add(spec.outputs)
}

/// Parameter count and PARAMS byte length of a valid spec, both checked.
fn param_sizes(spec: &Spec) -> Result<(usize, usize), FormatError> {
    let count = checked_param_count(spec).ok_or(FormatError::ModelTooLarge)?;
    let bytes = count.checked_mul(4).ok_or(FormatError::ModelTooLarge)?;
    if bytes > u32::MAX as usize {
        return Err(FormatError::ModelTooLarge);
    }
    Ok((count, bytes))
}

/// Field-by-field spec equality usable in `const` contexts.
const fn spec_eq(a: &Spec, b: &Spec) -> bool {
    let input = match (a.input, b.input) {
        (
            InputKind::Tokens { vocab: va, embed: ea },
            InputKind::Tokens { vocab: vb, embed: eb },
        ) => va == vb && ea == eb,
        (InputKind::Channels(ca), InputKind::Channels(cb)) => ca == cb,
        _ => false,
    };
    let head = matches!(
        (a.head, b.head),
        (Head::Sigmoid, Head::Sigmoid)
            | (Head::Softmax, Head::Softmax)
            | (Head::Linear, Head::Linear)
    );
    let mut units = true;
    let mut l = 0;
    while l < MAX_LAYERS {
        units &= a.units[l] == b.units[l];
        l += 1;
    }
    input && head && units && a.layers == b.layers && a.outputs == b.outputs && a.mask.same(&b.mask)
}

// ---------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------

/// Steps 1–3 of the checks: magic, version, minimum length. Returns the fixed header.
const fn check_prefix(bytes: &[u8]) -> Result<&[u8; HEADER_LEN], FormatError> {
    let mut i = 0;
    while i < MAGIC.len() && i < bytes.len() {
        if bytes[i] != MAGIC[i] {
            return Err(FormatError::BadMagic);
        }
        i += 1;
    }
    if let Some(h) = bytes.first_chunk::<10>() {
        let found = u16::from_le_bytes([h[8], h[9]]);
        if found < MIN_VERSION || found > VERSION {
            return Err(FormatError::UnsupportedVersion { found });
        }
    }
    match bytes.first_chunk::<HEADER_LEN>() {
        Some(h) if bytes.len() >= MIN_LEN => Ok(h),
        _ => Err(FormatError::Truncated {
            what: "header and CRC",
            needed: MIN_LEN,
            available: bytes.len(),
        }),
    }
}

/// Steps 5–6 of the checks: flags and spec block, then [`Spec::validate`].
const fn decode_spec(h: &[u8; HEADER_LEN]) -> Result<Spec, FormatError> {
    let flags = u16::from_le_bytes([h[10], h[11]]);
    if flags != 0 {
        return Err(FormatError::UnsupportedFlags { flags });
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    let vocab = le32!(h, 16);
    let width = widen(le32!(h, 20));
    let mask = match (version, h[15]) {
        (1, 0) => Mask::Off,
        (1, v) => return Err(FormatError::InvalidField { field: "reserved", value: v as u32 }),
        (3, 0) => Mask::Off,
        (_, 1) => Mask::Value(f32::from_bits(vocab)),
        (_, 2) => Mask::Zero,
        (_, v) => return Err(FormatError::InvalidField { field: "mask", value: v as u32 }),
    };
    let input = match h[12] {
        0 => InputKind::Tokens { vocab: widen(vocab), embed: width },
        1 => {
            if vocab != 0 && !matches!(mask, Mask::Value(_)) {
                return Err(FormatError::InvalidField { field: "vocab", value: vocab });
            }
            InputKind::Channels(width)
        }
        v => return Err(FormatError::InvalidField { field: "input kind", value: v as u32 }),
    };
    let head = match h[13] {
        0 => Head::Sigmoid,
        1 => Head::Softmax,
        2 => Head::Linear,
        v => return Err(FormatError::InvalidField { field: "head", value: v as u32 }),
    };
    let spec = Spec {
        input,
        units: [widen(le32!(h, 24)), widen(le32!(h, 28)), widen(le32!(h, 32)), widen(le32!(h, 36))],
        layers: h[14] as usize,
        outputs: widen(le32!(h, 40)),
        head,
        mask,
    };
    match spec.validate() {
        Ok(()) => Ok(spec),
        Err(e) => Err(FormatError::InvalidSpec(e)),
    }
}

/// Encodes the fixed header of a valid spec.
fn encode_header(spec: &Spec, storage: EmbeddingStorage) -> Result<[u8; HEADER_LEN], FormatError> {
    spec.validate()?;
    fn field(v: usize) -> Result<[u8; 4], FormatError> {
        // Unreachable for a validated spec (every dimension is far below u32::MAX).
        u32::try_from(v).map(u32::to_le_bytes).map_err(|_| FormatError::ModelTooLarge)
    }
    let (kind, vocab, width) = match spec.input {
        InputKind::Tokens { vocab, embed } => (0u8, field(vocab)?, embed),
        InputKind::Channels(c) => (1u8, [0; 4], c),
    };
    // The oldest version that holds the model: 1 without a mask, 2 with one.
    let (version, mask, vocab) = match spec.mask {
        Mask::Off => (MIN_VERSION, 0u8, vocab),
        Mask::Value(v) => (2, 1, v.to_bits().to_le_bytes()),
        Mask::Zero => (2, 2, vocab),
    };
    // Version 3 for an int8 Embedding (any mask).
    let version = if storage == EmbeddingStorage::Int8 { 3 } else { version };
    let head = match spec.head {
        Head::Sigmoid => 0u8,
        Head::Softmax => 1,
        Head::Linear => 2,
    };
    let layers =
        u8::try_from(spec.layers).map_err(|_| FormatError::InvalidSpec(SpecError::Layers))?;
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&version.to_le_bytes());
    // h[10..12]: flags = 0.
    h[12] = kind;
    h[13] = head;
    h[14] = layers;
    h[15] = mask;
    h[16..20].copy_from_slice(&vocab);
    h[20..24].copy_from_slice(&field(width)?);
    for (dst, &u) in h[24..40].chunks_exact_mut(4).zip(spec.units.iter()) {
        dst.copy_from_slice(&field(u)?);
    }
    h[40..44].copy_from_slice(&field(spec.outputs)?);
    Ok(h)
}

/// Reads the spec from the header of a model file without checking the CRC or the sections.
///
/// Checks the magic, version, minimum length (48 bytes), flags and spec block, in that order,
/// with the same errors as [`ModelFile::parse`]. It is a `const fn`, cheap (reads 44 bytes),
/// and meant for tools that want the spec before committing to a full parse and for
/// compile-time checks; it is **not** a substitute for [`ModelFile::parse`], which also
/// verifies the CRC.
pub const fn peek_spec(bytes: &[u8]) -> Result<Spec, FormatError> {
    match check_prefix(bytes) {
        Ok(h) => decode_spec(h),
        Err(e) => Err(e),
    }
}

/// [`peek_spec`], then a comparison with `expected` → [`FormatError::SpecMismatch`].
///
/// A `const fn`, so firmware embedding a model with `include_bytes!` can reject a model built
/// for another spec at compile time:
/// `const _: () = assert!(peek_check_spec(MODEL, &SPEC).is_ok());`.
pub const fn peek_check_spec(bytes: &[u8], expected: &Spec) -> Result<(), FormatError> {
    match peek_spec(bytes) {
        Ok(found) if spec_eq(&found, expected) => Ok(()),
        Ok(found) => Err(FormatError::SpecMismatch { expected: *expected, found }),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// After a CRC mismatch, tells a cut-off file (`Some(Truncated)`) from a corrupted one (`None`)
/// by walking the section headers from offset 44. Trusts nothing beyond this diagnosis.
fn diagnose_truncation(bytes: &[u8]) -> Option<FormatError> {
    let mut rest = bytes.get(HEADER_LEN..)?;
    loop {
        if rest.len() == CRC_LEN {
            // Shaped like a complete file whose last section is followed by a CRC.
            return None;
        }
        let Some((hdr, after)) = rest.split_first_chunk::<SECTION_HEADER_LEN>() else {
            return Some(FormatError::Truncated {
                what: "section header",
                needed: SECTION_HEADER_LEN,
                available: rest.len(),
            });
        };
        let (tag, len) = section_header(hdr);
        let Some((_, after)) = after.split_at_checked(len) else {
            return Some(FormatError::Truncated {
                what: body_what(tag),
                needed: len,
                available: after.len(),
            });
        };
        if tag == TAG_PARAMS {
            return if after.len() < CRC_LEN {
                Some(FormatError::Truncated {
                    what: "CRC",
                    needed: CRC_LEN,
                    available: after.len(),
                })
            } else {
                None
            };
        }
        rest = after;
    }
}

/// Records a known section, rejecting a second one.
fn set_once<'a>(slot: &mut Option<&'a [u8]>, tag: u32, data: &'a [u8]) -> Result<(), FormatError> {
    if slot.is_some() {
        return Err(FormatError::DuplicateSection { tag });
    }
    *slot = Some(data);
    Ok(())
}

/// A parsed, fully validated `.tlm` model file borrowing its bytes.
///
/// Build it with [`ModelFile::parse`]; every accessor is then infallible (except the length
/// checks of [`read_params`](ModelFile::read_params) and [`check_spec`](ModelFile::check_spec)).
#[derive(Clone, Copy)]
pub struct ModelFile<'a> {
    bytes: &'a [u8],
    version: u16,
    spec: Spec,
    param_count: usize,
    params: &'a [u8],
    embedding: Option<Int8Embedding<'a>>,
    tokenizer: Option<&'a [u8]>,
    normalization: Option<&'a [u8]>,
    metadata: Option<&'a [u8]>,
}

impl fmt::Debug for ModelFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelFile")
            .field("len", &self.bytes.len())
            .field("version", &self.version)
            .field("spec", &self.spec)
            .field("param_count", &self.param_count)
            .field("embedding_int8", &self.embedding.is_some())
            .field("tokenizer_len", &self.tokenizer.map(<[u8]>::len))
            .field("normalization_len", &self.normalization.map(<[u8]>::len))
            .field("metadata_len", &self.metadata.map(<[u8]>::len))
            .field("crc", &self.crc())
            .finish()
    }
}

impl<'a> ModelFile<'a> {
    /// Validates `bytes` as a complete `.tlm` file and borrows it.
    ///
    /// Everything is checked here, in the order given in the [module docs](self): magic,
    /// version, length, CRC, flags, spec, sections. Never panics, whatever the input.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let header = check_prefix(bytes)?;
        let Some((body, stored)) = bytes.split_last_chunk::<CRC_LEN>() else {
            // Unreachable: check_prefix guarantees at least 48 bytes.
            return Err(FormatError::Truncated {
                what: "header and CRC",
                needed: MIN_LEN,
                available: bytes.len(),
            });
        };
        let stored = u32::from_le_bytes(*stored);
        let computed = CRC.checksum(body);
        if stored != computed {
            return Err(
                diagnose_truncation(bytes).unwrap_or(FormatError::CrcMismatch { stored, computed })
            );
        }

        let spec = decode_spec(header)?;
        let version = u16::from_le_bytes([header[8], header[9]]);
        let (param_count, mut params_len) = param_sizes(&spec)?;
        // Version 3: the Embedding is stored apart, as int8 (its size fits: V·E ≤ param_count).
        let int8_table = match (version, spec.input) {
            (3, InputKind::Tokens { vocab, embed }) => {
                params_len -= 4 * vocab * embed;
                quant::table_len(vocab, embed)
            }
            (3, InputKind::Channels(_)) => return Err(FormatError::EmbeddingMissing),
            _ => None,
        };

        let mut embedding = None;
        let mut tokenizer = None;
        let mut normalization = None;
        let mut metadata = None;
        let mut rest = body.get(HEADER_LEN..).unwrap_or(&[]);
        let params = loop {
            let Some((hdr, after)) = rest.split_first_chunk::<SECTION_HEADER_LEN>() else {
                return Err(if rest.is_empty() {
                    FormatError::ParamsMissing
                } else {
                    FormatError::Truncated {
                        what: "section header",
                        needed: SECTION_HEADER_LEN,
                        available: rest.len(),
                    }
                });
            };
            let (tag, len) = section_header(hdr);
            if tag == TAG_PARAMS && len != params_len {
                return Err(FormatError::ParamsLength { expected: params_len, found: len });
            }
            let Some((data, after)) = after.split_at_checked(len) else {
                return Err(FormatError::Truncated {
                    what: body_what(tag),
                    needed: len,
                    available: after.len(),
                });
            };
            match tag {
                TAG_PARAMS => {
                    if after.is_empty() {
                        break data;
                    }
                    return Err(match after.split_first_chunk::<SECTION_HEADER_LEN>() {
                        Some((h, more)) if section_header(h).1 <= more.len() => {
                            FormatError::ParamsNotLast { tag: section_header(h).0 }
                        }
                        _ => FormatError::TrailingBytes { count: after.len() },
                    });
                }
                TAG_TOKENIZER => set_once(&mut tokenizer, tag, data)?,
                TAG_NORMALIZATION => set_once(&mut normalization, tag, data)?,
                TAG_METADATA => set_once(&mut metadata, tag, data)?,
                TAG_EMBEDDING_I8 => match int8_table {
                    None => return Err(FormatError::EmbeddingUnexpected { version }),
                    Some(expected) if expected != len => {
                        return Err(FormatError::EmbeddingLength { expected, found: len })
                    }
                    Some(_) => set_once(&mut embedding, tag, data)?,
                },
                _ => {} // Unknown section: skipped (forward compatibility).
            }
            rest = after;
        };

        let embedding = match (spec.input, int8_table, embedding) {
            (_, None, _) => None,
            (InputKind::Tokens { vocab, embed }, Some(_), Some(bytes)) => {
                let table =
                    Int8Embedding::new(bytes, vocab, embed).ok_or(FormatError::EmbeddingMissing)?; // unreachable: length checked
                if let Some(row) = table.first_bad_scale() {
                    return Err(FormatError::EmbeddingScale { row });
                }
                Some(table)
            }
            _ => return Err(FormatError::EmbeddingMissing),
        };

        Ok(ModelFile {
            bytes,
            version,
            spec,
            param_count,
            params,
            embedding,
            tokenizer,
            normalization,
            metadata,
        })
    }

    /// The model's spec.
    pub fn spec(&self) -> Spec {
        self.spec
    }

    /// The format version of the file, [`MIN_VERSION`]`..=`[`VERSION`] (2 for a masked model).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The whole file, CRC included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The CRC-32 stored at the end of the file (and verified by [`parse`](ModelFile::parse)).
    pub fn crc(&self) -> u32 {
        self.bytes.last_chunk::<CRC_LEN>().map_or(0, |c| u32::from_le_bytes(*c))
    }

    /// Returns [`FormatError::SpecMismatch`] unless the file's spec equals `expected`.
    ///
    /// Firmware calls this at boot with its compiled spec before loading the parameters.
    pub fn check_spec(&self, expected: &Spec) -> Result<(), FormatError> {
        if self.spec == *expected {
            Ok(())
        } else {
            Err(FormatError::SpecMismatch { expected: *expected, found: self.spec })
        }
    }

    /// The contents of the first section with this tag, if any.
    ///
    /// `section(TAG_PARAMS)` returns the raw little-endian parameter bytes.
    pub fn section(&self, tag: u32) -> Option<&'a [u8]> {
        self.sections().find(|s| s.tag == tag).map(|s| s.bytes)
    }

    /// Every section in file order, unknown ones included, PARAMS last.
    pub fn sections(&self) -> Sections<'a> {
        let body = self.bytes.len().saturating_sub(CRC_LEN);
        Sections { rest: self.bytes.get(HEADER_LEN..body).unwrap_or(&[]) }
    }

    /// The tokenizer section ([`TAG_TOKENIZER`]), if present.
    pub fn tokenizer(&self) -> Option<&'a [u8]> {
        self.tokenizer
    }

    /// The normalization section ([`TAG_NORMALIZATION`]), if present.
    pub fn normalization(&self) -> Option<&'a [u8]> {
        self.normalization
    }

    /// The metadata section ([`TAG_METADATA`]), if present; UTF-8 by convention
    /// (check with [`core::str::from_utf8`]).
    pub fn metadata(&self) -> Option<&'a [u8]> {
        self.metadata
    }

    /// Number of parameters, [`Spec::param_count`] of [`spec`](ModelFile::spec).
    pub fn param_count(&self) -> usize {
        self.param_count
    }

    /// The int8 Embedding table of a version-3 file, read in place; `None` for versions 1–2
    /// (whose Embedding, if any, is in the PARAMS section).
    pub fn embedding_int8(&self) -> Option<Int8Embedding<'a>> {
        self.embedding
    }

    /// The parameters in flat Keras order, decoded from little-endian bytes on the fly; for a
    /// version-3 file the Embedding rows dequantised first ([`quant::dequantize`]), then the
    /// stored `f32`s.
    ///
    /// Bit-exact: NaN payloads and signed zeros come back as written.
    pub fn params(&self) -> impl Iterator<Item = f32> + 'a {
        let embedding = self.embedding.into_iter().flat_map(|t| {
            (0..t.vocab()).flat_map(move |id| {
                let scale = t.scale(id);
                t.row(id).map(move |q| quant::dequantize(q, scale))
            })
        });
        embedding.chain(self.params.chunks_exact(4).map(|c| f32::from_le_bytes(array4(c))))
    }

    /// Decodes the parameters into `out`, whose length must be [`param_count`](ModelFile::param_count)
    /// (else [`FormatError::ParamCount`], and `out` is left untouched).
    pub fn read_params(&self, out: &mut [f32]) -> Result<(), FormatError> {
        if out.len() != self.param_count {
            return Err(FormatError::ParamCount { expected: self.param_count, found: out.len() });
        }
        for (o, v) in out.iter_mut().zip(self.params()) {
            *o = v;
        }
        Ok(())
    }
}

/// Iterator over the sections of a [`ModelFile`], from [`ModelFile::sections`].
#[derive(Clone, Debug)]
pub struct Sections<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Sections<'a> {
    type Item = Section<'a>;

    fn next(&mut self) -> Option<Section<'a>> {
        let (hdr, after) = self.rest.split_first_chunk::<SECTION_HEADER_LEN>()?;
        let (tag, len) = section_header(hdr);
        let (bytes, after) = after.split_at_checked(len)?;
        self.rest = after;
        Some(Section { tag, bytes })
    }
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// The error a [`ByteSink`] returns when it cannot take more bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SinkError;

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("byte sink error")
    }
}

impl core::error::Error for SinkError {}

/// A destination for the streaming writer [`write_to`] (flash pages, a UART, a file…).
pub trait ByteSink {
    /// Takes all of `bytes`, or fails.
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), SinkError>;
}

impl<S: ByteSink + ?Sized> ByteSink for &mut S {
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        (**self).write_bytes(bytes)
    }
}

/// A [`ByteSink`] writing into a byte slice from the start, failing when it is full.
#[derive(Debug)]
pub struct SliceSink<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceSink<'a> {
    /// A sink writing into `buf` from offset 0.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceSink { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }
}

impl ByteSink for SliceSink<'_> {
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let end = self.pos.checked_add(bytes.len()).ok_or(SinkError)?;
        self.buf.get_mut(self.pos..end).ok_or(SinkError)?.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

/// A [`ByteSink`] over any [`std::io::Write`] (feature `std`).
///
/// On failure the sink returns [`SinkError`] and keeps the I/O error for
/// [`take_error`](IoSink::take_error).
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct IoSink<W> {
    inner: W,
    error: Option<std::io::Error>,
}

#[cfg(feature = "std")]
impl<W: std::io::Write> IoSink<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        IoSink { inner, error: None }
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The wrapped writer, mutably.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The I/O error behind the last [`SinkError`], if any (and clears it).
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    /// Unwraps the writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(feature = "std")]
impl<W: std::io::Write> ByteSink for IoSink<W> {
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.inner.write_all(bytes).map_err(|e| {
            self.error = Some(e);
            SinkError
        })
    }
}

/// Checks the writer's inputs; returns `(file length, parameter count)`.
fn plan(
    spec: &Spec,
    sections: &[Section<'_>],
    storage: EmbeddingStorage,
) -> Result<(usize, usize), FormatError> {
    spec.validate()?;
    let (count, params_len) = param_sizes(spec)?;
    let mut total = HEADER_LEN + SECTION_HEADER_LEN + CRC_LEN;
    total = total.checked_add(params_len).ok_or(FormatError::ModelTooLarge)?;
    if storage == EmbeddingStorage::Int8 {
        let InputKind::Tokens { vocab, embed } = spec.input else {
            return Err(FormatError::NoEmbedding);
        };
        // The f32 table leaves PARAMS; the int8 one comes in its own section.
        let table = quant::table_len(vocab, embed).ok_or(FormatError::ModelTooLarge)?;
        total = (total - 4 * vocab * embed)
            .checked_add(SECTION_HEADER_LEN + table)
            .ok_or(FormatError::ModelTooLarge)?;
    }
    for (i, s) in sections.iter().enumerate() {
        if s.tag == TAG_PARAMS || s.tag == TAG_EMBEDDING_I8 {
            return Err(FormatError::ReservedTag { tag: s.tag });
        }
        if s.bytes.len() > u32::MAX as usize {
            return Err(FormatError::SectionTooLarge { tag: s.tag, len: s.bytes.len() });
        }
        let known = matches!(s.tag, TAG_TOKENIZER | TAG_NORMALIZATION | TAG_METADATA);
        if known && sections.iter().take(i).any(|p| p.tag == s.tag) {
            return Err(FormatError::DuplicateSection { tag: s.tag });
        }
        total = total
            .checked_add(SECTION_HEADER_LEN)
            .and_then(|t| t.checked_add(s.bytes.len()))
            .ok_or(FormatError::ModelTooLarge)?;
    }
    Ok((total, count))
}

/// The exact length in bytes of the file [`write_into`] / [`write_to`] would produce.
///
/// Fails on the same inputs as the writers, except for the parameter buffer it is not given.
pub fn encoded_len(spec: &Spec, sections: &[Section<'_>]) -> Result<usize, FormatError> {
    encoded_len_with(spec, sections, EmbeddingStorage::F32)
}

/// [`encoded_len`] with the Embedding stored as `storage`.
pub fn encoded_len_with(
    spec: &Spec,
    sections: &[Section<'_>],
    storage: EmbeddingStorage,
) -> Result<usize, FormatError> {
    plan(spec, sections, storage).map(|(total, _)| total)
}

/// Writes the model file into the start of `out`; returns the number of bytes written.
///
/// Sections are written in the order given, then the PARAMS section, then the CRC. Fails with
/// [`FormatError::InvalidSpec`], [`FormatError::ParamCount`] (unless
/// `params.len() == spec.param_count()`), [`FormatError::ReservedTag`],
/// [`FormatError::DuplicateSection`], [`FormatError::SectionTooLarge`] or
/// [`FormatError::BufferTooSmall`], before writing anything.
pub fn write_into(
    spec: &Spec,
    params: &[f32],
    sections: &[Section<'_>],
    out: &mut [u8],
) -> Result<usize, FormatError> {
    write_into_with(spec, params, sections, EmbeddingStorage::F32, out)
}

/// [`write_into`] with the Embedding stored as `storage` (int8: version 3, quantised as
/// [`quant`] says; also fails with [`FormatError::NoEmbedding`] for a channel
/// model, [`FormatError::NonFinite`] for a NaN or infinite Embedding value and
/// [`FormatError::EmbeddingScale`] for a row whose scale the reader would refuse, one with a
/// value beyond about `1.3e36`).
pub fn write_into_with(
    spec: &Spec,
    params: &[f32],
    sections: &[Section<'_>],
    storage: EmbeddingStorage,
    out: &mut [u8],
) -> Result<usize, FormatError> {
    let (total, count) = plan(spec, sections, storage)?;
    if params.len() != count {
        return Err(FormatError::ParamCount { expected: count, found: params.len() });
    }
    let available = out.len();
    let dst =
        out.get_mut(..total).ok_or(FormatError::BufferTooSmall { needed: total, available })?;
    write_to_with(spec, params, sections, storage, &mut SliceSink::new(dst))
}

/// Streams the model file into `sink`, computing the CRC on the way; returns the bytes written.
///
/// Validates like [`write_into`] before the first byte goes out. A sink failure gives
/// [`FormatError::Sink`] and leaves a partial file in the sink: write to a temporary place and
/// commit (rename, or mark the flash slot valid) only on success.
pub fn write_to<S: ByteSink + ?Sized>(
    spec: &Spec,
    params: &[f32],
    sections: &[Section<'_>],
    sink: &mut S,
) -> Result<usize, FormatError> {
    write_to_with(spec, params, sections, EmbeddingStorage::F32, sink)
}

/// [`write_to`] with the Embedding stored as `storage` (see [`write_into_with`]).
pub fn write_to_with<S: ByteSink + ?Sized>(
    spec: &Spec,
    params: &[f32],
    sections: &[Section<'_>],
    storage: EmbeddingStorage,
    sink: &mut S,
) -> Result<usize, FormatError> {
    let (total, count) = plan(spec, sections, storage)?;
    if params.len() != count {
        return Err(FormatError::ParamCount { expected: count, found: params.len() });
    }
    let header = encode_header(spec, storage)?;
    let (vocab, embed) = match (storage, spec.input) {
        (EmbeddingStorage::Int8, InputKind::Tokens { vocab, embed }) => (vocab, embed),
        _ => (0, 0),
    };
    let table = &params[..vocab * embed];
    if let Some(index) = table.iter().position(|x| !x.is_finite()) {
        return Err(FormatError::NonFinite { index });
    }
    // The reader's bound on a scale (so that every dequantised value is finite).
    if let Some(row) =
        table.chunks_exact(embed.max(1)).position(|r| !(quant::row_scale(r) * 128.0).is_finite())
    {
        return Err(FormatError::EmbeddingScale { row });
    }

    let mut w = CrcWriter { sink, digest: CRC.digest(), written: 0 };
    w.put(&header)?;
    for s in sections {
        // Lengths were checked by plan().
        let len = u32::try_from(s.bytes.len())
            .map_err(|_| FormatError::SectionTooLarge { tag: s.tag, len: s.bytes.len() })?;
        w.section_header(s.tag, len)?;
        w.put(s.bytes)?;
    }
    if vocab > 0 {
        // Lengths were checked by plan().
        let len = quant::table_len(vocab, embed).ok_or(FormatError::ModelTooLarge)?;
        let len = u32::try_from(len).map_err(|_| FormatError::ModelTooLarge)?;
        w.section_header(TAG_EMBEDDING_I8, len)?;
        for row in table.chunks_exact(embed) {
            w.put(&quant::row_scale(row).to_le_bytes())?;
        }
        let mut buf = [0u8; PARAM_CHUNK * 4];
        for row in table.chunks_exact(embed) {
            let scale = quant::row_scale(row);
            for part in row.chunks(buf.len()) {
                for (d, &x) in buf.iter_mut().zip(part) {
                    *d = quant::quantize(x, scale) as u8;
                }
                w.put(buf.get(..part.len()).unwrap_or(&[]))?;
            }
        }
    }
    let rest = &params[vocab * embed..];
    let params_len = u32::try_from(rest.len() * 4).map_err(|_| FormatError::ModelTooLarge)?;
    w.section_header(TAG_PARAMS, params_len)?;
    let mut buf = [0u8; PARAM_CHUNK * 4];
    for chunk in rest.chunks(PARAM_CHUNK) {
        let mut n = 0;
        for (dst, v) in buf.chunks_exact_mut(4).zip(chunk) {
            dst.copy_from_slice(&v.to_le_bytes());
            n += 4;
        }
        w.put(buf.get(..n).unwrap_or(&[]))?;
    }
    let CrcWriter { sink, digest, written } = w;
    sink.write_bytes(&digest.finalize().to_le_bytes())?;
    let written = written + CRC_LEN;
    debug_assert_eq!(written, total);
    Ok(written)
}

/// A sink wrapper that feeds the CRC and counts bytes.
struct CrcWriter<'s, S: ?Sized> {
    sink: &'s mut S,
    digest: crc::Digest<'static, u32>,
    written: usize,
}

impl<S: ByteSink + ?Sized> CrcWriter<'_, S> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        self.sink.write_bytes(bytes)?;
        self.digest.update(bytes);
        self.written += bytes.len();
        Ok(())
    }

    fn section_header(&mut self, tag: u32, len: u32) -> Result<(), FormatError> {
        let mut h = [0u8; SECTION_HEADER_LEN];
        h[..4].copy_from_slice(&tag.to_le_bytes());
        h[4..].copy_from_slice(&len.to_le_bytes());
        self.put(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: [Spec; 8] = [
        Spec::channels(3).lstm(4).dense(2, Head::Softmax),
        Spec::channels(1).lstm(1).dense(1, Head::Sigmoid),
        Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, Head::Sigmoid),
        Spec::tokens(7, 3).lstm(5).lstm(4).lstm(3).lstm(2).dense(3, Head::Linear),
        Spec::channels(4096).lstm(4096).dense(4096, Head::Linear),
        Spec::channels(3).masking(0.0).lstm(4).lstm(2).dense(2, Head::Softmax),
        Spec::channels(2).masking(-1.5).lstm(4).dense(1, Head::Linear),
        Spec::tokens(20, 4).mask_zero().lstm(6).lstm(5).dense(1, Head::Sigmoid),
    ];

    #[test]
    fn checked_param_count_matches_spec() {
        for spec in SPECS {
            assert_eq!(checked_param_count(&spec), Some(spec.param_count()), "{spec:?}");
        }
    }

    #[test]
    fn tag_params_spells_para() {
        assert_eq!(TAG_PARAMS.to_le_bytes(), *b"PARA");
        assert_eq!(TAG_PARAMS, 0x4152_4150);
    }

    #[test]
    fn header_round_trip() {
        for spec in SPECS {
            let mut bytes = [0u8; HEADER_LEN + CRC_LEN];
            bytes[..HEADER_LEN]
                .copy_from_slice(&encode_header(&spec, EmbeddingStorage::F32).unwrap());
            assert_eq!(peek_spec(&bytes), Ok(spec));
            assert_eq!(peek_check_spec(&bytes, &spec), Ok(()));
        }
    }

    #[test]
    fn version_is_the_oldest_that_holds_the_model() {
        for spec in SPECS {
            let h = encode_header(&spec, EmbeddingStorage::F32).unwrap();
            let version = u16::from_le_bytes([h[8], h[9]]);
            assert_eq!(version, if spec.mask.is_on() { 2 } else { 1 }, "{spec:?}");
        }
        let masked = Spec::channels(3).masking(0.0).lstm(4).dense(2, Head::Softmax);
        let plain = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
        let mut bytes = [0u8; HEADER_LEN + CRC_LEN];
        bytes[..HEADER_LEN]
            .copy_from_slice(&encode_header(&masked, EmbeddingStorage::F32).unwrap());
        assert!(matches!(peek_check_spec(&bytes, &plain), Err(FormatError::SpecMismatch { .. })));
        assert!(matches!(
            peek_check_spec(&bytes, &Spec { mask: Mask::Value(1.0), ..masked }),
            Err(FormatError::SpecMismatch { .. })
        ));
    }

    #[test]
    fn peek_is_const() {
        const BYTES: [u8; 48] = *b"TINYLSTM\x01\x00\x00\x00\x01\x01\x01\x00\
            \x00\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\
            \x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\xff\xff\xff\xff";
        const SPEC: Spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
        const _: () = assert!(peek_check_spec(&BYTES, &SPEC).is_ok());
        const OTHER: Spec = Spec::channels(3).lstm(5).dense(2, Head::Softmax);
        const _: () = assert!(peek_check_spec(&BYTES, &OTHER).is_err());
    }

    #[test]
    fn round_trip_small() {
        let spec = SPECS[0];
        let params: [f32; SPECS[0].param_count()] = core::array::from_fn(|i| i as f32 - 3.5);
        let mut buf = [0u8; 1024];
        let n = write_into(&spec, &params, &[], &mut buf).unwrap();
        assert_eq!(n, HEADER_LEN + SECTION_HEADER_LEN + 4 * params.len() + CRC_LEN);
        let file = ModelFile::parse(&buf[..n]).unwrap();
        assert_eq!(file.spec(), spec);
        assert!(file.params().eq(params.iter().copied()));
        assert_eq!(file.sections().count(), 1);
    }

    #[test]
    fn slice_sink_overflow() {
        let mut buf = [0u8; 3];
        let mut s = SliceSink::new(&mut buf);
        assert_eq!(s.write_bytes(&[1, 2]), Ok(()));
        assert_eq!(s.write_bytes(&[3, 4]), Err(SinkError));
        assert_eq!(s.written(), &[1, 2]);
        assert_eq!(s.position(), 2);
    }
}
