//! The TOKEN_INDEX section: the words of a serialised tokenizer sorted for binary search, so a
//! device finds a word's index in place, without heap (the core's `tinylstm::text` reads it and
//! documents its layout).

use super::{Tokenizer, FLAG_OOV};

/// Bytes before the tables: magic, version, width, reserved, `N`, `M`.
const HEADER_LEN: usize = 16;

/// The LEB128 varint at `pos` (in bytes this crate wrote), moving `pos` past it.
fn varint(b: &[u8], pos: &mut usize) -> usize {
    let mut v = 0usize;
    for shift in 0..5 {
        let byte = b[*pos];
        *pos += 1;
        v |= usize::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

/// Offset of each stored word's length varint in `section` (the bytes of
/// [`Tokenizer::to_bytes`]), in index order.
fn word_offsets(section: &[u8]) -> Vec<usize> {
    let skip_str = |pos: &mut usize| {
        let len = varint(section, pos);
        *pos += len;
    };
    // Magic, version, flags, num_words, OOV index.
    let mut pos = 14;
    skip_str(&mut pos); // filters
    skip_str(&mut pos); // split
    if section[5] & FLAG_OOV != 0 {
        skip_str(&mut pos);
    }
    let count = varint(section, &mut pos);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(pos);
        skip_str(&mut pos);
    }
    out
}

impl Tokenizer {
    /// The TOKEN_INDEX section for `self.to_bytes()`: offsets of the stored words and their
    /// indices sorted by their UTF-8 bytes (2-byte entries when the tokenizer section is
    /// shorter than 65 536 bytes, else 4).
    pub fn index_bytes(&self) -> Vec<u8> {
        let section = self.to_bytes();
        let offsets = word_offsets(&section);
        let word = |i: usize| {
            let mut pos = offsets[i];
            let len = varint(&section, &mut pos);
            &section[pos..pos + len]
        };
        let mut sorted: Vec<usize> = (0..offsets.len()).filter(|&i| !word(i).is_empty()).collect();
        sorted.sort_unstable_by(|&a, &b| word(a).cmp(word(b)));
        let width = if section.len() < 1 << 16 { 2 } else { 4 };
        let mut out = Vec::with_capacity(HEADER_LEN + width * (offsets.len() + sorted.len()));
        out.extend_from_slice(b"TLTI");
        out.push(1);
        out.push(width as u8);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
        out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
        for v in offsets.iter().copied().chain(sorted.iter().map(|&i| i + 1)) {
            out.extend_from_slice(&(v as u32).to_le_bytes()[..width]);
        }
        out
    }
}
