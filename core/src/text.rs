//! Text to token ids without heap: the Keras `Tokenizer` as a model file stores it, applied
//! in place, then Keras `pad_sequences`.
//!
//! A text model's `.tlm` carries its tokenizer in the TOKENIZER section
//! ([`TAG_TOKENIZER`], written by `tinylstm train`) and, from
//! this version of the CLI on, a lookup table for it in the TOKEN_INDEX section
//! ([`TAG_TOKEN_INDEX`]). [`Tokenizer::parse`] validates both
//! and borrows them; [`Tokenizer::encode`] then turns UTF-8 into the ids
//! `tinylstm predict --text` feeds the model, exactly:
//!
//! 1. lower-case (when the tokenizer was fitted with `lower`) as Python's `str.lower` does —
//!    [`char::to_lowercase`] per character, the final-sigma rule, and the letters newer than
//!    Python's Unicode database left unchanged (see [`python_lower_char`]);
//! 2. word level: every character of `filters` becomes `split`, the text is cut at every
//!    `split` (Python `str.split(sep)`), empty pieces are dropped; character level (`char_level`,
//!    for Chinese or Japanese): every lowered character is a token, no filter, no split;
//! 3. each token is looked up (binary search in TOKEN_INDEX, or a scan of the word list for a
//!    file without one); a known token with an index below `num_words` gives that index, any
//!    other gives the OOV index when the tokenizer has an OOV token and nothing otherwise;
//! 4. the ids are cut to `maxlen` and padded with 0 ([`Pad`], Keras `pad_sequences`).
//!
//! Nothing allocates: a word is assembled in a buffer of [`MAX_WORD_BYTES`] bytes on the stack
//! (a longer word cannot be in the vocabulary, which [`Tokenizer::parse`] checks, so it is
//! unknown), and the ids go straight into the caller's `[maxlen]` row.
//!
//! # TOKENIZER section (version 1, written by the CLI)
//!
//! All integers little-endian; `varint` is unsigned LEB128 of a `u32`; a string is a `varint`
//! byte length then that many bytes of UTF-8.
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `b"TLTK"` |
//! | 1 | version, `1` |
//! | 1 | flags: bit 0 `lower`, bit 1 `char_level`, bit 2 OOV token present |
//! | 4 | `num_words` as `u32` (0 = no limit) |
//! | 4 | OOV index as `u32` (0 = no OOV token) |
//! | string | `filters` |
//! | string | `split` |
//! | string | OOV token (only with flag bit 2) |
//! | varint | `N`, number of words that follow |
//! | N × string | the word of index 1, 2, …, N (an empty string marks an unused index 1) |
//!
//! # TOKEN_INDEX section (version 1)
//!
//! A table to find a word's index by binary search, in place, built by the CLI from the
//! TOKENIZER section it writes next to it. Offsets and ids are unsigned integers of `w` bytes
//! (`w` = 2 when the TOKENIZER section is shorter than 65 536 bytes, else 4), little-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `b"TLTI"` |
//! | 1 | version, `1` |
//! | 1 | `w`, 2 or 4 |
//! | 2 | reserved, `0` |
//! | 4 | `u32 N`: the words of the TOKENIZER section |
//! | 4 | `u32 M`: the non-empty words among them |
//! | N × w | byte offset, in the TOKENIZER section, of the length of the word of index 1, 2, …, N |
//! | M × w | the indices of the non-empty words, sorted by their UTF-8 bytes (strictly increasing) |
//!
//! [`Tokenizer::parse`] checks every offset against the word list and that the sorted table is
//! strictly increasing and covers every non-empty word once (so no word is stored twice). A
//! file without the section still works, with a linear scan per token.
//!
//! # Example
//!
//! ```
//! use tinylstm::text::{Pad, Side, Tokenizer};
//! // A tokenizer section as the CLI writes it: lower, word level, no num_words, OOV "<oov>"
//! // at index 1, default filters, split " ", words "<oov>", "the", "cat".
//! let mut s = Vec::new();
//! s.extend_from_slice(b"TLTK\x01\x05");
//! s.extend_from_slice(&0u32.to_le_bytes());
//! s.extend_from_slice(&1u32.to_le_bytes());
//! let filters = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";
//! for f in [filters, " ", "<oov>"] {
//!     s.push(f.len() as u8);
//!     s.extend_from_slice(f.as_bytes());
//! }
//! s.push(3);
//! for w in ["<oov>", "the", "cat"] {
//!     s.push(w.len() as u8);
//!     s.extend_from_slice(w.as_bytes());
//! }
//! let tok = Tokenizer::parse(&s, None)?;
//! let pad = Pad { maxlen: 6, padding: Side::Pre, truncating: Side::Pre };
//! let mut ids = [0u32; 6];
//! let n = tok.encode("The CAT, the dog.", &pad, &mut ids)?;
//! assert_eq!(n, 4);
//! assert_eq!(ids, [0, 0, 2, 3, 2, 1]);
//! # Ok::<(), tinylstm::text::TextError>(())
//! ```

use core::fmt;

use crate::format::ModelFile;
use crate::format::{TAG_TOKENIZER, TAG_TOKEN_INDEX};

/// Longest word, in UTF-8 bytes, the tokenizer can hold; a vocabulary with a longer word is
/// refused by [`Tokenizer::parse`] ([`TextError::WordTooLong`]).
pub const MAX_WORD_BYTES: usize = 256;

/// Longest `split` separator, in bytes, the tokenizer can hold.
pub const MAX_SPLIT_BYTES: usize = 16;

const MAGIC: [u8; 4] = *b"TLTK";
const INDEX_MAGIC: [u8; 4] = *b"TLTI";
const FLAG_LOWER: u8 = 1;
const FLAG_CHAR_LEVEL: u8 = 2;
const FLAG_OOV: u8 = 4;
const INDEX_HEADER_LEN: usize = 16;

/// Which end of a sequence is padded or cut (Keras `"pre"` / `"post"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Side {
    /// At the start (Keras's default).
    Pre,
    /// At the end.
    Post,
}

/// Keras `pad_sequences` settings of a model: every row has `maxlen` ids, padded with 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pad {
    /// Ids per row (the model's time steps, `maxlen`); at least 1.
    pub maxlen: usize,
    /// Where zeros are added to a shorter row.
    pub padding: Side,
    /// Which end of a longer row is cut off (`Pre` keeps the last `maxlen` ids).
    pub truncating: Side,
}

/// A TOKENIZER or TOKEN_INDEX section the core cannot use, or a bad call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TextError {
    /// The model file has no TOKENIZER section.
    NoTokenizer,
    /// The section does not start with its magic (`"TLTK"`, or `"TLTI"` for the index).
    BadMagic {
        /// The section's tag.
        tag: u32,
    },
    /// The section has a version this build does not read.
    UnsupportedVersion {
        /// The section's tag.
        tag: u32,
        /// The version found.
        version: u8,
    },
    /// Undefined flag bits are set, or a reserved field is not zero.
    BadFlags {
        /// The section's tag.
        tag: u32,
        /// The value found.
        value: u32,
    },
    /// The section ends inside a field.
    Truncated {
        /// The section's tag.
        tag: u32,
        /// The field.
        what: &'static str,
        /// Its byte offset in the section.
        offset: usize,
    },
    /// A varint is longer than 5 bytes or exceeds `u32::MAX`.
    BadVarint {
        /// The field.
        what: &'static str,
        /// Its byte offset in the TOKENIZER section.
        offset: usize,
    },
    /// A string is not valid UTF-8.
    InvalidUtf8 {
        /// The field.
        what: &'static str,
        /// Its byte offset in the TOKENIZER section.
        offset: usize,
    },
    /// An empty word where only index 1 of a tokenizer with an OOV token may be empty.
    EmptyWord {
        /// The word's index.
        index: u32,
    },
    /// The OOV flag, OOV index and stored words disagree.
    OovMismatch,
    /// Bytes follow the last field.
    TrailingBytes {
        /// The section's tag.
        tag: u32,
        /// Offset of the first extra byte.
        offset: usize,
    },
    /// A stored word is longer than [`MAX_WORD_BYTES`].
    WordTooLong {
        /// The word's index.
        index: u32,
        /// Its length in bytes.
        len: usize,
    },
    /// `split` is empty (word level) or longer than [`MAX_SPLIT_BYTES`].
    BadSplit {
        /// Its length in bytes.
        len: usize,
    },
    /// The TOKEN_INDEX section does not describe the TOKENIZER section next to it (word
    /// count, an offset, or the order or coverage of the sorted table).
    IndexMismatch {
        /// What disagrees: `"word count"`, `"offset"`, `"order"`, `"id"` or `"coverage"`.
        what: &'static str,
        /// The entry (0 for the counts).
        entry: usize,
    },
    /// [`Tokenizer::encode`] got an output row whose length is not `maxlen`, or `maxlen` is 0.
    RowLength {
        /// `maxlen`.
        maxlen: usize,
        /// The row's length.
        found: usize,
    },
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |tag: u32| if tag == TAG_TOKEN_INDEX { "token index" } else { "tokenizer" };
        match *self {
            TextError::NoTokenizer => f.write_str("the model file has no tokenizer section"),
            TextError::BadMagic { tag } => write!(f, "{} section: bad magic", name(tag)),
            TextError::UnsupportedVersion { tag, version } => write!(
                f,
                "{} section: unsupported version {version} (this build reads version 1)",
                name(tag)
            ),
            TextError::BadFlags { tag, value } => {
                write!(f, "{} section: undefined flags or reserved bits {value:#x}", name(tag))
            }
            TextError::Truncated { tag, what, offset } => {
                write!(f, "{} section: truncated in {what} at byte {offset}", name(tag))
            }
            TextError::BadVarint { what, offset } => {
                write!(f, "tokenizer section: invalid varint in {what} at byte {offset}")
            }
            TextError::InvalidUtf8 { what, offset } => {
                write!(f, "tokenizer section: {what} at byte {offset} is not valid UTF-8")
            }
            TextError::EmptyWord { index } => {
                write!(f, "tokenizer section: empty word at index {index}")
            }
            TextError::OovMismatch => {
                f.write_str("tokenizer section: OOV token and OOV index disagree")
            }
            TextError::TrailingBytes { tag, offset } => {
                write!(f, "{} section: unexpected bytes from byte {offset}", name(tag))
            }
            TextError::WordTooLong { index, len } => write!(
                f,
                "tokenizer section: word {index} has {len} bytes, more than the {MAX_WORD_BYTES} \
                 the device tokenizer holds"
            ),
            TextError::BadSplit { len } => write!(
                f,
                "tokenizer section: split of {len} bytes (must be 1 to {MAX_SPLIT_BYTES} bytes)"
            ),
            TextError::IndexMismatch { what, entry } => write!(
                f,
                "token index section does not match the tokenizer section: {what} at entry {entry}"
            ),
            TextError::RowLength { maxlen, found } => write!(
                f,
                "output row has {found} ids, maxlen is {maxlen} (must be equal and at least 1)"
            ),
        }
    }
}

impl core::error::Error for TextError {}

/// Python's `str.lower` of one character, outside the final-sigma context: the characters
/// [`char::to_lowercase`] gives, except for the letters that Unicode 16 and 17 gave a
/// lowercase mapping, which the Python versions TensorFlow runs on (Unicode ≤ 15.1) leave
/// unchanged (the host tokenizer's `python_lower` makes the same exception).
pub fn python_lower_char(ch: char) -> impl Iterator<Item = char> {
    let keep = newer_than_python(ch);
    let mut lower = ch.to_lowercase();
    let mut own = Some(ch);
    core::iter::from_fn(move || if keep { own.take() } else { lower.next() })
}

/// Letters that Unicode 16/17 gave a lowercase mapping, unknown to Python ≤ 3.13 (Unicode
/// 15.1): Python's `str.lower` leaves them unchanged, and so do the tokenizers here.
pub fn newer_than_python(ch: char) -> bool {
    matches!(
        ch as u32,
        0x1C89
            | 0xA7CB
            | 0xA7CC
            | 0xA7CE
            | 0xA7D2
            | 0xA7D4
            | 0xA7DA
            | 0xA7DC
            | 0x10D50..=0x10D65
            | 0x16EA0..=0x16EB8
    )
}

/// Unicode `Cased`: lowercase, uppercase or titlecase letters.
fn is_cased(c: char) -> bool {
    c.is_lowercase()
        || c.is_uppercase()
        || matches!(
            c as u32,
            0x01C5 | 0x01C8 | 0x01CB | 0x01F2 | 0x1F88..=0x1F8F | 0x1F98..=0x1F9F | 0x1FA8..=0x1FAF
                | 0x1FBC | 0x1FCC | 0x1FFC
        )
}

/// Unicode `Case_Ignorable`, for the final-sigma rule: the ASCII and Latin-1 members, the
/// apostrophes and middle dots, and the combining diacritical marks. (Other members — rarer
/// marks, format characters, modifier letters — count as not ignorable here, so a `Σ` next to
/// one of them may lower differently from Python.)
fn is_case_ignorable(c: char) -> bool {
    matches!(
        c as u32,
        0x27 | 0x2E
            | 0x3A
            | 0x5E
            | 0x60
            | 0xA8
            | 0xAD
            | 0xAF
            | 0xB4
            | 0xB7
            | 0xB8
            | 0x02B0..=0x036F
            | 0x0374
            | 0x0375
            | 0x037A
            | 0x0384
            | 0x0385
            | 0x0387
            | 0x1DC0..=0x1DFF
            | 0x200B..=0x200F
            | 0x2018
            | 0x2019
            | 0x2024
            | 0x2027
            | 0x20D0..=0x20FF
            | 0xFE00..=0xFE0F
            | 0xFE20..=0xFE2F
    )
}

fn ignorable_then_cased(mut it: impl Iterator<Item = char>) -> bool {
    it.find(|&c| !is_case_ignorable(c)).is_some_and(is_cased)
}

/// Calls `f` on every character of Python's `str.lower(text)` (or of `text` when `lower` is
/// false), without allocating.
fn for_each_lowered(text: &str, lower: bool, mut f: impl FnMut(char)) {
    for (i, ch) in text.char_indices() {
        if !lower {
            f(ch);
        } else if ch.is_ascii() {
            // The common case, without the Unicode tables.
            f(ch.to_ascii_lowercase());
        } else if ch == 'Σ' {
            // Final sigma, as str::to_lowercase and Python: preceded by a cased letter and not
            // followed by one (case-ignorable characters skipped on both sides).
            let before = ignorable_then_cased(text[..i].chars().rev());
            let after = ignorable_then_cased(text[i + 'Σ'.len_utf8()..].chars());
            f(if before && !after { 'ς' } else { 'σ' });
        } else {
            python_lower_char(ch).for_each(&mut f);
        }
    }
}

/// Little-endian `u32` at `at` (callers checked the bounds).
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A cursor over the TOKENIZER section.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TextError> {
        let s = self
            .bytes
            .get(self.pos..)
            .and_then(|r| r.get(..n))
            .ok_or(TextError::Truncated { tag: TAG_TOKENIZER, what, offset: self.pos })?;
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, TextError> {
        Ok(le32(self.take(4, what)?, 0))
    }

    fn varint(&mut self, what: &'static str) -> Result<u32, TextError> {
        let offset = self.pos;
        let mut v: u64 = 0;
        for shift in 0..5 {
            let b = self.take(1, what)?[0];
            v |= u64::from(b & 0x7f) << (7 * shift);
            if b & 0x80 == 0 {
                return u32::try_from(v).map_err(|_| TextError::BadVarint { what, offset });
            }
        }
        Err(TextError::BadVarint { what, offset })
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, TextError> {
        let offset = self.pos;
        let len = self.varint(what)? as usize;
        let b = self.take(len, what)?;
        core::str::from_utf8(b).map_err(|_| TextError::InvalidUtf8 { what, offset })
    }
}

/// The TOKEN_INDEX tables, validated.
#[derive(Clone, Copy, Debug)]
struct Index<'a> {
    width: usize,
    offsets: &'a [u8],
    sorted: &'a [u8],
}

impl Index<'_> {
    fn get(table: &[u8], width: usize, i: usize) -> usize {
        let at = i * width;
        if width == 2 {
            usize::from(u16::from_le_bytes([table[at], table[at + 1]]))
        } else {
            le32(table, at) as usize
        }
    }
}

/// A Keras tokenizer read in place from a model file's sections; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct Tokenizer<'a> {
    lower: bool,
    char_level: bool,
    num_words: u32,
    oov: u32,
    filters: &'a str,
    /// Bit `c` set for every ASCII filter character `c`.
    ascii_filters: u128,
    split: &'a str,
    /// The TOKENIZER section.
    section: &'a [u8],
    /// Offset of the first word's length in `section`.
    words_at: usize,
    count: u32,
    index: Option<Index<'a>>,
}

impl<'a> Tokenizer<'a> {
    /// The tokenizer of a parsed model file (its TOKENIZER section and, when present, its
    /// TOKEN_INDEX section).
    ///
    /// # Errors
    /// [`TextError::NoTokenizer`], or what [`parse`](Self::parse) finds.
    pub fn from_model(file: &ModelFile<'a>) -> Result<Self, TextError> {
        let section = file.tokenizer().ok_or(TextError::NoTokenizer)?;
        Self::parse(section, file.section(TAG_TOKEN_INDEX))
    }

    /// Validates a TOKENIZER section (and its TOKEN_INDEX section, if given) and borrows them.
    /// Reads every word once; never panics, never allocates.
    ///
    /// # Errors
    /// The first problem found, as a [`TextError`].
    pub fn parse(section: &'a [u8], index: Option<&'a [u8]>) -> Result<Self, TextError> {
        let mut r = Reader { bytes: section, pos: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(TextError::BadMagic { tag: TAG_TOKENIZER });
        }
        let version = r.take(1, "version")?[0];
        if version != 1 {
            return Err(TextError::UnsupportedVersion { tag: TAG_TOKENIZER, version });
        }
        let flags = r.take(1, "flags")?[0];
        if flags & !(FLAG_LOWER | FLAG_CHAR_LEVEL | FLAG_OOV) != 0 {
            return Err(TextError::BadFlags { tag: TAG_TOKENIZER, value: u32::from(flags) });
        }
        let char_level = flags & FLAG_CHAR_LEVEL != 0;
        let num_words = r.u32("num_words")?;
        let oov = r.u32("oov index")?;
        let filters = r.string("filters")?;
        let split = r.string("split")?;
        if !char_level && (split.is_empty() || split.len() > MAX_SPLIT_BYTES) {
            return Err(TextError::BadSplit { len: split.len() });
        }
        let oov_token = if flags & FLAG_OOV != 0 { Some(r.string("oov token")?) } else { None };
        if oov_token.is_some() != (oov != 0) {
            return Err(TextError::OovMismatch);
        }
        let count = r.varint("word count")?;
        let words_at = r.pos;
        let mut ascii_filters = 0u128;
        for c in filters.chars().filter(char::is_ascii) {
            ascii_filters |= 1 << (c as u32);
        }
        let mut tok = Tokenizer {
            lower: flags & FLAG_LOWER != 0,
            char_level,
            num_words,
            oov,
            filters,
            ascii_filters,
            split,
            section,
            words_at,
            count,
            index: None,
        };
        let index = match index {
            Some(b) => Some(tok.index_tables(b)?),
            None => None,
        };
        // Walk the words: UTF-8, lengths, empties, the OOV token, and the index's offsets.
        let mut oov_stored = None;
        for i in 0..count {
            let at = r.pos;
            let w = r.string("word")?;
            let id = i + 1;
            if w.len() > MAX_WORD_BYTES {
                return Err(TextError::WordTooLong { index: id, len: w.len() });
            }
            if w.is_empty() && !(id == 1 && oov_token.is_some()) {
                return Err(TextError::EmptyWord { index: id });
            }
            if let Some(ix) = &index {
                if Index::get(ix.offsets, ix.width, i as usize) != at {
                    return Err(TextError::IndexMismatch { what: "offset", entry: i as usize });
                }
            }
            if id == oov {
                oov_stored = Some(w);
            }
        }
        if r.pos != section.len() {
            return Err(TextError::TrailingBytes { tag: TAG_TOKENIZER, offset: r.pos });
        }
        if let Some(ix) = index {
            tok.check_sorted(ix)?;
            tok.index = Some(ix);
        }
        if let Some(o) = oov_token {
            // The OOV token sits at its index, or (index beyond the stored words) is no word.
            let consistent = match oov_stored {
                Some(w) => w == o,
                None => tok.scan(o).is_none(),
            };
            if !consistent {
                return Err(TextError::OovMismatch);
            }
        }
        Ok(tok)
    }

    /// Header and table bounds of a TOKEN_INDEX section.
    fn index_tables(&self, b: &'a [u8]) -> Result<Index<'a>, TextError> {
        let truncated = |what, offset| TextError::Truncated { tag: TAG_TOKEN_INDEX, what, offset };
        if b.len() < INDEX_HEADER_LEN {
            return Err(truncated("header", 0));
        }
        if b[..4] != INDEX_MAGIC {
            return Err(TextError::BadMagic { tag: TAG_TOKEN_INDEX });
        }
        if b[4] != 1 {
            return Err(TextError::UnsupportedVersion { tag: TAG_TOKEN_INDEX, version: b[4] });
        }
        let width = usize::from(b[5]);
        if !(width == 2 || width == 4) || b[6] != 0 || b[7] != 0 {
            return Err(TextError::BadFlags { tag: TAG_TOKEN_INDEX, value: le32(b, 4) });
        }
        let (n, m) = (le32(b, 8), le32(b, 12) as usize);
        if n != self.count {
            return Err(TextError::IndexMismatch { what: "word count", entry: 0 });
        }
        let body = &b[INDEX_HEADER_LEN..];
        let olen = (n as usize).checked_mul(width).ok_or(truncated("offsets", 16))?;
        let slen = m.checked_mul(width).ok_or(truncated("sorted ids", 16))?;
        let offsets = body.get(..olen).ok_or(truncated("offsets", INDEX_HEADER_LEN))?;
        let rest = &body[olen..];
        let sorted = rest.get(..slen).ok_or(truncated("sorted ids", INDEX_HEADER_LEN + olen))?;
        if rest.len() != slen {
            return Err(TextError::TrailingBytes {
                tag: TAG_TOKEN_INDEX,
                offset: INDEX_HEADER_LEN + olen + slen,
            });
        }
        Ok(Index { width, offsets, sorted })
    }

    /// The sorted table is strictly increasing over valid ids of non-empty words and has one
    /// entry per non-empty word (offsets already checked).
    fn check_sorted(&self, ix: Index<'a>) -> Result<(), TextError> {
        let m = ix.sorted.len() / ix.width;
        let mut prev: Option<&[u8]> = None;
        for e in 0..m {
            let id = Index::get(ix.sorted, ix.width, e);
            let w = match id.checked_sub(1).filter(|&i| i < self.count as usize) {
                Some(i) => self.word_at(Index::get(ix.offsets, ix.width, i)),
                None => return Err(TextError::IndexMismatch { what: "id", entry: e }),
            };
            if w.is_empty() || prev.is_some_and(|p| p >= w) {
                return Err(TextError::IndexMismatch { what: "order", entry: e });
            }
            prev = Some(w);
        }
        let empty = usize::from(self.count > 0 && self.word_at(self.words_at).is_empty());
        if m + empty != self.count as usize {
            return Err(TextError::IndexMismatch { what: "coverage", entry: m });
        }
        Ok(())
    }

    /// The bytes of the word whose length varint starts at `at` (validated by `parse`).
    fn word_at(&self, at: usize) -> &'a [u8] {
        let mut r = Reader { bytes: self.section, pos: at };
        r.string("word").map(str::as_bytes).unwrap_or(&[])
    }

    /// Index of `token` by a scan of the word list.
    fn scan(&self, token: &str) -> Option<u32> {
        let mut r = Reader { bytes: self.section, pos: self.words_at };
        for i in 0..self.count {
            let w = r.string("word").ok()?;
            if !w.is_empty() && w == token {
                return Some(i + 1);
            }
        }
        None
    }

    /// Keras `word_index[token]` among the stored words (those with an index below
    /// `num_words`): binary search with a TOKEN_INDEX section, a scan without.
    pub fn index_of(&self, token: &str) -> Option<u32> {
        let Some(ix) = self.index else {
            return self.scan(token);
        };
        let key = token.as_bytes();
        let (mut lo, mut hi) = (0, ix.sorted.len() / ix.width);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = Index::get(ix.sorted, ix.width, mid);
            let w = self.word_at(Index::get(ix.offsets, ix.width, id - 1));
            match w.cmp(key) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some(id as u32),
            }
        }
        None
    }

    /// True for a character-level tokenizer.
    pub fn char_level(&self) -> bool {
        self.char_level
    }

    /// True when texts are lower-cased first.
    pub fn lower(&self) -> bool {
        self.lower
    }

    /// `num_words` (0: no limit).
    pub fn num_words(&self) -> u32 {
        self.num_words
    }

    /// The OOV index, if the tokenizer has an OOV token.
    pub fn oov_index(&self) -> Option<u32> {
        (self.oov != 0).then_some(self.oov)
    }

    /// Number of stored words (indices 1..=N).
    pub fn word_count(&self) -> u32 {
        self.count
    }

    /// The Keras `filters` characters.
    pub fn filters(&self) -> &'a str {
        self.filters
    }

    /// The Keras `split` separator.
    pub fn split(&self) -> &'a str {
        self.split
    }

    /// Whether lookups use a TOKEN_INDEX section (binary search) rather than a scan.
    pub fn has_index(&self) -> bool {
        self.index.is_some()
    }

    /// One past the largest id [`for_each_id`](Self::for_each_id) can emit: the embedding
    /// rows the ids need.
    pub fn id_bound(&self) -> u32 {
        self.count.max(self.oov).saturating_add(1)
    }

    fn is_filter(&self, c: char) -> bool {
        if c.is_ascii() {
            self.ascii_filters & (1 << (c as u32)) != 0
        } else {
            self.filters.chars().any(|f| f == c)
        }
    }

    /// Calls `f` on every token of `text` as Keras splits it: `Some(word)`, or `None` for a
    /// word longer than [`MAX_WORD_BYTES`] (which no stored word is).
    pub fn for_each_token(&self, text: &str, mut f: impl FnMut(Option<&str>)) {
        if self.char_level {
            let mut buf = [0u8; 4];
            for_each_lowered(text, self.lower, |c| f(Some(c.encode_utf8(&mut buf))));
            return;
        }
        let mut word = Word { buf: [0; MAX_WORD_BYTES + MAX_SPLIT_BYTES], len: 0, long: false };
        let split = self.split.as_bytes();
        for_each_lowered(text, self.lower, |c| {
            let mut b = [0u8; 4];
            let bytes: &[u8] =
                if self.is_filter(c) { split } else { c.encode_utf8(&mut b).as_bytes() };
            for &byte in bytes {
                word.push(byte, split, &mut f);
            }
        });
        word.finish(&mut f);
    }

    /// Calls `f` on every id of `text` (Keras `texts_to_sequences` for one text).
    pub fn for_each_id(&self, text: &str, mut f: impl FnMut(u32)) {
        self.for_each_token(text, |tok| match tok.and_then(|t| self.index_of(t)) {
            Some(i) if self.num_words == 0 || i < self.num_words => f(i),
            _ if self.oov != 0 => f(self.oov),
            _ => {}
        });
    }

    /// The model input of `text`: its ids cut and padded to `pad.maxlen` in `row`
    /// (`[maxlen]`), as `tinylstm predict --text` prepares it. Returns the number of ids
    /// before cutting and padding.
    ///
    /// # Errors
    /// [`TextError::RowLength`] when `row.len() != pad.maxlen` or `maxlen` is 0.
    pub fn encode(&self, text: &str, pad: &Pad, row: &mut [u32]) -> Result<usize, TextError> {
        let maxlen = pad.maxlen;
        if maxlen == 0 || row.len() != maxlen {
            return Err(TextError::RowLength { maxlen, found: row.len() });
        }
        let mut n = 0usize;
        self.for_each_id(text, |id| {
            match pad.truncating {
                // Keep the last maxlen ids: a ring, put in order below.
                Side::Pre => row[n % maxlen] = id,
                Side::Post if n < maxlen => row[n] = id,
                Side::Post => {}
            }
            n += 1;
        });
        if n > maxlen {
            if pad.truncating == Side::Pre {
                row.rotate_left(n % maxlen);
            }
        } else {
            row[n..].fill(0);
            if pad.padding == Side::Pre {
                row.rotate_right(maxlen - n);
            }
        }
        Ok(n)
    }
}

/// The word being assembled by [`Tokenizer::for_each_token`].
struct Word {
    buf: [u8; MAX_WORD_BYTES + MAX_SPLIT_BYTES],
    len: usize,
    /// More than `MAX_WORD_BYTES` bytes since the last separator.
    long: bool,
}

impl Word {
    fn push(&mut self, byte: u8, split: &[u8], f: &mut impl FnMut(Option<&str>)) {
        if self.len == self.buf.len() {
            // Too long to be a word of the vocabulary: keep only what may start a separator.
            self.long = true;
            let keep = split.len() - 1;
            self.buf.copy_within(self.len - keep..self.len, 0);
            self.len = keep;
        }
        self.buf[self.len] = byte;
        self.len += 1;
        if self.buf[..self.len].ends_with(split) {
            self.len -= split.len();
            self.emit(f);
        }
    }

    fn emit(&mut self, f: &mut impl FnMut(Option<&str>)) {
        if self.long || self.len > MAX_WORD_BYTES {
            f(None);
        } else if self.len > 0 {
            // Separators fall on character boundaries, so the bytes are UTF-8.
            if let Ok(w) = core::str::from_utf8(&self.buf[..self.len]) {
                f(Some(w));
            }
        }
        self.len = 0;
        self.long = false;
    }

    fn finish(&mut self, f: &mut impl FnMut(Option<&str>)) {
        self.emit(f);
    }
}

#[cfg(test)]
mod tests;
