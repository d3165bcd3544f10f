//! Error types of the core. Every one is `#[non_exhaustive]`, implements `Display` and
//! `core::error::Error`, and derives `defmt::Format` under the `defmt` feature.

use core::fmt;

/// A problem with a [`Spec`](crate::Spec)'s dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SpecError {
    /// Vocabulary size is 0 or above [`MAX_VOCAB`](crate::spec::MAX_VOCAB).
    Vocab,
    /// Embedding size or channel count is 0 or above [`MAX_DIM`](crate::spec::MAX_DIM).
    Width,
    /// Layer count is 0 or above [`MAX_LAYERS`](crate::spec::MAX_LAYERS).
    Layers,
    /// A layer has 0 units or more than [`MAX_DIM`](crate::spec::MAX_DIM), or unused layer slots are non-zero.
    Units,
    /// Output count is 0, above [`MAX_DIM`](crate::spec::MAX_DIM), or a softmax head has fewer than 2 outputs.
    Outputs,
    /// The parameter count exceeds [`MAX_PARAMS`](crate::spec::MAX_PARAMS).
    TooLarge,
    /// The mask does not fit the input: a mask value needs channel input and must be finite;
    /// `mask_zero` needs token input.
    Mask,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpecError::Vocab => "vocabulary size must be between 1 and 4194304",
            SpecError::Width => "embedding size or channel count must be between 1 and 4096",
            SpecError::Layers => "the model needs between 1 and 4 LSTM layers",
            SpecError::Units => "every LSTM layer needs between 1 and 4096 units",
            SpecError::Outputs => {
                "the Dense head needs between 1 and 4096 outputs (at least 2 for softmax)"
            }
            SpecError::TooLarge => "the model has more than 2^28 parameters",
            SpecError::Mask => {
                "masking needs a finite mask value for channel input, or mask_zero for token input"
            }
        })
    }
}

impl core::error::Error for SpecError {}

/// An error from a core computation: a buffer of the wrong size or an input out of range.
///
/// The core never panics on caller input; it returns one of these instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The spec is invalid.
    Spec(SpecError),
    /// A caller buffer has the wrong length.
    BufferLength {
        /// Which buffer.
        what: &'static str,
        /// Length required (the minimum, for work buffers).
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// A token id is not below the vocabulary size.
    TokenOutOfRange {
        /// Flat index of the token in the input.
        index: usize,
        /// The token id.
        token: u32,
    },
    /// A class label is not below the number of outputs.
    LabelOutOfRange {
        /// Sample index in the batch.
        index: usize,
        /// The label.
        label: u32,
    },
    /// The targets do not match the head (class ids for softmax, values otherwise).
    TargetKind,
    /// The input kind does not match the spec (token ids for a token model, values otherwise).
    InputKind,
    /// An argument is out of its domain (the text says which and why).
    InvalidArgument(&'static str),
    /// A size computed from the arguments (a batch or sequence length times the model's
    /// widths) does not fit a `usize`: the arguments are far beyond any buffer.
    SizeOverflow {
        /// The buffer whose size overflows.
        what: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spec(e) => write!(f, "invalid model spec: {e}"),
            Error::BufferLength { what, expected, actual } => {
                write!(f, "{what} buffer has length {actual}, expected {expected}")
            }
            Error::TokenOutOfRange { index, token } => {
                write!(f, "token id {token} at input position {index} is outside the vocabulary")
            }
            Error::LabelOutOfRange { index, label } => {
                write!(f, "label {label} of sample {index} is not below the number of outputs")
            }
            Error::TargetKind => f.write_str(
                "targets do not match the head: softmax needs class ids, sigmoid and linear need values",
            ),
            Error::InputKind => f.write_str(
                "input does not match the spec: token models take ids, channel models take values",
            ),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::SizeOverflow { what } => write!(
                f,
                "the {what} size overflows the address space: the batch or sequence is too large"
            ),
        }
    }
}

impl core::error::Error for Error {}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        Error::Spec(e)
    }
}

/// The size, or `Err(SizeOverflow)` when checked arithmetic found none.
pub(crate) fn sized(what: &'static str, size: Option<usize>) -> Result<usize, Error> {
    size.ok_or(Error::SizeOverflow { what })
}

/// Returns `Err(BufferLength)` unless `actual == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if actual == expected {
        Ok(())
    } else {
        Err(Error::BufferLength { what, expected, actual })
    }
}

/// Returns `Err(BufferLength)` unless `actual >= expected`.
pub(crate) fn check_min_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), Error> {
    if actual >= expected {
        Ok(())
    } else {
        Err(Error::BufferLength { what, expected, actual })
    }
}
