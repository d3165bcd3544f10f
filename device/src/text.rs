//! Labelled sentences a device embeds as text, turned into the data sets the rest of the
//! library reads (format `TLSEQ002`, see [`data`](crate::data)) by the core's in-place
//! tokenizer ([`tinylstm::text`]): the device classifies and fine-tunes on strings, with the
//! ids `tinylstm predict --text` computes.
//!
//! ```
//! use tinylstm::text::{Pad, Side, Tokenizer};
//! use tinylstm::{Head, Spec};
//! use tinylstm_device::data::{Dataset, Shape};
//! use tinylstm_device::text::{tokenize_set, Sentence};
//! # let mut s = Vec::new();
//! # s.extend_from_slice(b"TLTK\x01\x01");
//! # s.extend_from_slice(&[0; 8]);
//! # for f in ["!,.", " "] { s.push(f.len() as u8); s.extend_from_slice(f.as_bytes()); }
//! # s.push(2);
//! # for w in ["free", "prize"] { s.push(w.len() as u8); s.extend_from_slice(w.as_bytes()); }
//! // `s`: a TOKENIZER section with the words "free" (1) and "prize" (2).
//! let tok = Tokenizer::parse(&s, None).unwrap();
//! let spec = Spec::tokens(3, 2).lstm(4).dense(1, Head::Sigmoid);
//! let shape = Shape::of(&spec, 4);
//! let pad = Pad { maxlen: 4, padding: Side::Pre, truncating: Side::Pre };
//! let sentences = [
//!     Sentence { target: 1.0f32.to_bits(), text: "FREE prize!" },
//!     Sentence { target: 0.0f32.to_bits(), text: "see you" },
//! ];
//! let mut row = [0u32; 4];
//! let mut buf = [0u8; 32 + 2 * 4 * 5];
//! let n = tokenize_set(&tok, &pad, &shape, &sentences, &mut row, &mut buf, |_, _, _| {}).unwrap();
//! let set = Dataset::parse(&buf[..n], shape).unwrap();
//! set.read(0, &mut row);
//! assert_eq!(row, [0, 0, 1, 2]);
//! ```

use tinylstm::text::{Pad, TextError, Tokenizer};

use crate::data::{check_data, DataError, Shape, MAX_SET};

/// One labelled sentence: its target word (a class id for a softmax head, the `f32` bits of the
/// target for a sigmoid or linear head with one output) and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sentence<'a> {
    /// The target word.
    pub target: u32,
    /// The text, UTF-8.
    pub text: &'a str,
}

/// Why sentences cannot become a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TextSetError {
    /// The tokenizer refused the row (its length is not the model's steps).
    Text(TextError),
    /// The output buffer is shorter than the set (bytes needed).
    Buffer(usize),
    /// The set fails the data-set checks (count, label or token range, shape).
    Data(DataError),
}

impl core::fmt::Display for TextSetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TextSetError::Text(e) => write!(f, "tokenizing: {e}"),
            TextSetError::Buffer(n) => write!(f, "text set needs a buffer of {n} bytes"),
            TextSetError::Data(e) => write!(f, "text set: {e}"),
        }
    }
}

impl core::error::Error for TextSetError {}

/// Tokenizes `sentences` with `tok`, pads and cuts every row with `pad`, and writes them as a
/// `TLSEQ002` data set of `shape` (token input, one target word) into `out`; returns its
/// length in bytes. `row` is scratch of `pad.maxlen` ids; `each(i, ids_before_padding, row)` is
/// called after every sentence (to log it).
///
/// # Errors
/// [`TextSetError`]: a row length other than `shape.steps`, a short `out`, more than
/// [`MAX_SET`] sentences, a label or id out of the model's range.
pub fn tokenize_set(
    tok: &Tokenizer<'_>,
    pad: &Pad,
    shape: &Shape,
    sentences: &[Sentence<'_>],
    row: &mut [u32],
    out: &mut [u8],
    mut each: impl FnMut(usize, usize, &[u32]),
) -> Result<usize, TextSetError> {
    let n = sentences.len();
    if n == 0 || n > MAX_SET {
        return Err(TextSetError::Data(DataError::Count));
    }
    if !shape.tokens() || shape.target_words() != 1 || pad.maxlen != shape.steps {
        return Err(TextSetError::Data(DataError::Shape));
    }
    let len = shape.set_len(n);
    let out = out.get_mut(..len).ok_or(TextSetError::Buffer(len))?;
    let (header, mut rest) = out.split_at_mut(shape.header(n).len());
    header.copy_from_slice(&shape.header(n));
    for (i, s) in sentences.iter().enumerate() {
        let count = tok.encode(s.text, pad, row).map_err(TextSetError::Text)?;
        let (rec, tail) = core::mem::take(&mut rest).split_at_mut(shape.record_len());
        rec[..4].copy_from_slice(&s.target.to_le_bytes());
        for (dst, id) in rec[4..].chunks_exact_mut(4).zip(row.iter()) {
            dst.copy_from_slice(&id.to_le_bytes());
        }
        rest = tail;
        each(i, count, row);
    }
    check_data(out, shape).map_err(TextSetError::Data)?;
    Ok(len)
}
