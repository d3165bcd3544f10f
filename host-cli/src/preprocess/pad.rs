//! Keras `pad_sequences` (`tf_keras.preprocessing.sequence.pad_sequences`).
//!
//! Every sequence is cut to `maxlen` (keeping its end for [`Side::Pre`] truncation, its start for
//! [`Side::Post`]) and then filled with `value` up to `maxlen` (in front for [`Side::Pre`]
//! padding, behind for [`Side::Post`]). `maxlen = None` uses the longest sequence; an empty
//! sequence becomes a row of `value`. Keras's defaults are `padding = "pre"`,
//! `truncating = "pre"`, `value = 0`.
//!
//! [`pad_frames`] does the same for multichannel sequences flattened timestep-major (each
//! timestep is `channels` values): padding and truncation move whole timesteps, as Keras does for
//! a list of `[T][C]` arrays.
use serde::{Deserialize, Serialize};

/// Which end of a sequence is padded or truncated.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// At the start (Keras `"pre"`, the default).
    #[default]
    Pre,
    /// At the end (Keras `"post"`).
    Post,
}

impl std::fmt::Display for Side {
    /// `pre` or `post`, as Keras spells them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Pre => "pre",
            Side::Post => "post",
        })
    }
}

impl std::str::FromStr for Side {
    type Err = PadError;

    /// Parses `"pre"` or `"post"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pre" => Ok(Side::Pre),
            "post" => Ok(Side::Post),
            other => Err(PadError::BadSide(other.to_owned())),
        }
    }
}

/// Settings of [`pad_sequences`], named as Keras's arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PadOptions<T> {
    /// Length of every output row; `None`: the longest input sequence. `Some(0)` is an error.
    pub maxlen: Option<usize>,
    /// Where to add `value`.
    pub padding: Side,
    /// Where to cut sequences longer than `maxlen`.
    pub truncating: Side,
    /// The padding value.
    pub value: T,
}

impl<T: Default> Default for PadOptions<T> {
    fn default() -> Self {
        Self { maxlen: None, padding: Side::Pre, truncating: Side::Pre, value: T::default() }
    }
}

/// What can go wrong when padding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PadError {
    /// `maxlen` is `Some(0)`.
    #[error("maxlen must be at least 1")]
    ZeroMaxlen,
    /// `channels` is 0 in [`pad_frames`].
    #[error("channels must be at least 1")]
    ZeroChannels,
    /// A sequence's length is not a multiple of `channels`.
    #[error("sequence {index} has {len} values, not a multiple of {channels} channels")]
    Ragged {
        /// Position of the sequence in the input.
        index: usize,
        /// Its number of values.
        len: usize,
        /// The channel count.
        channels: usize,
    },
    /// The output would not fit in memory's address space.
    #[error("padded output of {rows} × {maxlen} × {channels} values is too large")]
    TooLarge {
        /// Number of sequences.
        rows: usize,
        /// Timesteps per row.
        maxlen: usize,
        /// Values per timestep.
        channels: usize,
    },
    /// Not `"pre"` or `"post"`.
    #[error("expected \"pre\" or \"post\", found {0:?}")]
    BadSide(String),
}

/// Padded sequences: `rows × steps × channels` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Padded<T> {
    /// Number of sequences.
    pub rows: usize,
    /// Timesteps per row (`maxlen`).
    pub steps: usize,
    /// Values per timestep (1 for token ids).
    pub channels: usize,
    /// The values, row after row.
    pub data: Vec<T>,
}

impl<T: Copy> Padded<T> {
    /// Row `i` (`steps × channels` values); `None` when out of range.
    pub fn row(&self, i: usize) -> Option<&[T]> {
        let w = self.steps * self.channels;
        (i < self.rows).then(|| &self.data[i * w..(i + 1) * w])
    }

    /// The rows as nested vectors (Keras's 2-D array for `channels = 1`).
    pub fn to_nested(&self) -> Vec<Vec<T>> {
        (0..self.rows).filter_map(|i| self.row(i)).map(<[T]>::to_vec).collect()
    }
}

/// Keras `pad_sequences` for sequences of scalars (token ids, or one channel of values).
pub fn pad_sequences<T: Copy, S: AsRef<[T]>>(
    sequences: &[S],
    options: &PadOptions<T>,
) -> Result<Padded<T>, PadError> {
    pad_frames(sequences, 1, options)
}

/// Keras `pad_sequences` for sequences of `channels`-wide timesteps, flattened timestep-major.
pub fn pad_frames<T: Copy, S: AsRef<[T]>>(
    sequences: &[S],
    channels: usize,
    options: &PadOptions<T>,
) -> Result<Padded<T>, PadError> {
    if channels == 0 {
        return Err(PadError::ZeroChannels);
    }
    for (index, s) in sequences.iter().enumerate() {
        let len = s.as_ref().len();
        if len % channels != 0 {
            return Err(PadError::Ragged { index, len, channels });
        }
    }
    let maxlen = match options.maxlen {
        Some(0) => return Err(PadError::ZeroMaxlen),
        Some(m) => m,
        None => sequences.iter().map(|s| s.as_ref().len() / channels).max().unwrap_or(0),
    };
    let rows = sequences.len();
    let width = maxlen.checked_mul(channels);
    let total = width.and_then(|w| w.checked_mul(rows));
    let (Some(width), Some(total)) = (width, total) else {
        return Err(PadError::TooLarge { rows, maxlen, channels });
    };
    if total.checked_mul(size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return Err(PadError::TooLarge { rows, maxlen, channels });
    }
    let mut data = vec![options.value; total];
    for (i, s) in sequences.iter().enumerate() {
        let s = s.as_ref();
        let kept = match options.truncating {
            Side::Pre => &s[s.len().saturating_sub(width)..],
            Side::Post => &s[..s.len().min(width)],
        };
        let row = &mut data[i * width..(i + 1) * width];
        match options.padding {
            Side::Pre => row[width - kept.len()..].copy_from_slice(kept),
            Side::Post => row[..kept.len()].copy_from_slice(kept),
        }
    }
    Ok(Padded { rows, steps: maxlen, channels, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pre_pad_to_longest() {
        let p =
            pad_sequences(&[vec![1, 2], vec![3, 4, 5], vec![]], &PadOptions::default()).unwrap();
        assert_eq!(p.to_nested(), [vec![0, 1, 2], vec![3, 4, 5], vec![0, 0, 0]]);
    }

    #[test]
    fn zero_maxlen_is_an_error() {
        let o = PadOptions { maxlen: Some(0), ..PadOptions::<i32>::default() };
        assert_eq!(pad_sequences(&[vec![1]], &o), Err(PadError::ZeroMaxlen));
    }

    #[test]
    fn frames_move_whole_timesteps() {
        let seqs = [vec![1.0f32, 1.5, 2.0, 2.5, 3.0, 3.5], vec![9.0, 9.5]];
        let o = PadOptions { maxlen: Some(2), value: -1.0, ..Default::default() };
        let p = pad_frames(&seqs, 2, &o).unwrap();
        assert_eq!(p.row(0).unwrap(), [2.0, 2.5, 3.0, 3.5]);
        assert_eq!(p.row(1).unwrap(), [-1.0, -1.0, 9.0, 9.5]);
        assert!(matches!(pad_frames(&[vec![1.0f32]], 2, &o), Err(PadError::Ragged { .. })));
    }

    #[test]
    fn no_sequences_gives_empty_output() {
        let p = pad_sequences::<u32, Vec<u32>>(&[], &PadOptions::default()).unwrap();
        assert_eq!((p.rows, p.steps), (0, 0));
        assert!(p.row(0).is_none());
    }

    #[test]
    fn side_parses() {
        assert_eq!("post".parse::<Side>(), Ok(Side::Post));
        assert!("middle".parse::<Side>().is_err());
    }
}
