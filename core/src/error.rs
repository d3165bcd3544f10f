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

/// A training hyper-parameter, as named by [`Error::Hyperparameter`]; its `Display` gives the
/// rule it breaks ("SGD momentum must be in [0, 1]").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Hyperparameter {
    /// Decoupled weight decay of an [`Optimizer`](crate::optim::Optimizer): finite and ≥ 0.
    WeightDecay,
    /// SGD momentum: in `[0, 1]`.
    Momentum,
    /// Adam `β₁`: in `[0, 1)`.
    Beta1,
    /// Adam `β₂`: in `[0, 1)`.
    Beta2,
    /// Adam `ε`: finite and > 0.
    Epsilon,
    /// The initial rate of a [`Schedule`](crate::schedule::Schedule): finite and > 0.
    LearningRate,
    /// The rate given to one [`Optimizer::step`](crate::optim::Optimizer::step): finite and ≥ 0.
    StepLearningRate,
    /// The warm-up start rate of a schedule: finite and ≥ 0.
    WarmupStart,
    /// `decay_steps` of an exponential decay: > 0.
    ExponentialDecaySteps,
    /// The rate of an exponential decay: finite and > 0.
    ExponentialDecayRate,
    /// `decay_steps` of a cosine decay: > 0.
    CosineDecaySteps,
    /// `alpha` of a cosine decay: in `[0, 1]`.
    CosineAlpha,
    /// `step_size` of a step decay: > 0.
    StepDecaySize,
    /// `gamma` of a step decay: finite and > 0.
    StepDecayGamma,
    /// A gradient clipping bound ([`Clip`](crate::optim::Clip)): finite and > 0.
    ClipBound,
    /// The divisor of the summed per-sample losses: > 0 (not NaN).
    LossNorm,
}

impl fmt::Display for Hyperparameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hyperparameter::WeightDecay => "weight decay must be finite and >= 0",
            Hyperparameter::Momentum => "SGD momentum must be in [0, 1]",
            Hyperparameter::Beta1 => "Adam beta_1 must be in [0, 1)",
            Hyperparameter::Beta2 => "Adam beta_2 must be in [0, 1)",
            Hyperparameter::Epsilon => "Adam epsilon must be finite and > 0",
            Hyperparameter::LearningRate => "learning rate must be finite and > 0",
            Hyperparameter::StepLearningRate => "learning rate must be finite and >= 0",
            Hyperparameter::WarmupStart => "warm-up start rate must be finite and >= 0",
            Hyperparameter::ExponentialDecaySteps => "exponential decay_steps must be > 0",
            Hyperparameter::ExponentialDecayRate => "exponential decay rate must be finite and > 0",
            Hyperparameter::CosineDecaySteps => "cosine decay_steps must be > 0",
            Hyperparameter::CosineAlpha => "cosine decay alpha must be in [0, 1]",
            Hyperparameter::StepDecaySize => "step decay step_size must be > 0",
            Hyperparameter::StepDecayGamma => "step decay gamma must be finite and > 0",
            Hyperparameter::ClipBound => "clipping bound must be finite and > 0",
            Hyperparameter::LossNorm => "loss normaliser must be positive",
        })
    }
}

/// An error from a core computation: a buffer of the wrong size, an input out of range or a
/// hyper-parameter out of its domain. Each variant names the buffer, value or setting at fault
/// and, where there is one, the number it expected.
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
        /// The vocabulary size `V` of the spec.
        vocab: usize,
    },
    /// A class label is not below the number of outputs.
    LabelOutOfRange {
        /// Sample index in the batch.
        index: usize,
        /// The label.
        label: u32,
        /// The number of outputs `K` of the head.
        outputs: usize,
    },
    /// The targets do not match the head (class ids for softmax, values otherwise).
    TargetKind,
    /// The input kind does not match the spec (token ids for a token model, values otherwise).
    InputKind,
    /// The batch size is 0.
    EmptyBatch,
    /// A hyper-parameter is out of its domain (the variant says which and its rule).
    Hyperparameter(Hyperparameter),
    /// More than one of clip value, clip norm and global clip norm is set (Keras applies only one).
    ConflictingClips,
    /// A parameter range `start..end` does not lie inside a parameter buffer of `len` floats.
    RangeOutOfBounds {
        /// First index of the range.
        start: usize,
        /// One past the last index of the range.
        end: usize,
        /// Length of the parameter buffer.
        len: usize,
    },
    /// A gradient of the step is NaN or infinite (training diverged); nothing was updated.
    NonFiniteGradient,
    /// An input value is NaN or infinite.
    NonFiniteInput,
    /// The learning-rate schedule gave a NaN or infinite rate at this iteration.
    NonFiniteRate {
        /// The optimizer iteration the schedule was evaluated at.
        iteration: u32,
    },
    /// An input gradient was asked of a token model: its gradient is in the embedding rows of
    /// the parameter gradient.
    NoInputGradient,
    /// Orthogonal initialisation of a `rows × cols` tensor needs `rows ≤ cols`.
    OrthogonalShape {
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
    /// Orthogonal initialisation drew degenerate rows too many times (probability ~0).
    OrthogonalNoConvergence,
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
            Error::TokenOutOfRange { index, token, vocab } => write!(
                f,
                "token id {token} at input position {index} is outside the vocabulary of {vocab}"
            ),
            Error::LabelOutOfRange { index, label, outputs } => write!(
                f,
                "label {label} of sample {index} is not below the number of outputs ({outputs})"
            ),
            Error::TargetKind => f.write_str(
                "targets do not match the head: softmax needs class ids, sigmoid and linear need values",
            ),
            Error::InputKind => f.write_str(
                "input does not match the spec: token models take ids, channel models take values",
            ),
            Error::EmptyBatch => f.write_str("invalid argument: batch size must be at least 1"),
            Error::Hyperparameter(h) => write!(f, "invalid argument: {h}"),
            Error::ConflictingClips => f.write_str(
                "invalid argument: set at most one of clip value, clip norm and global clip norm \
                 (Keras applies only one)",
            ),
            Error::RangeOutOfBounds { start, end, len } => write!(
                f,
                "invalid argument: parameter range {start}..{end} is outside the parameter buffer \
                 of {len}"
            ),
            Error::NonFiniteGradient => f.write_str("invalid argument: non-finite gradient"),
            Error::NonFiniteInput => f.write_str("invalid argument: non-finite input"),
            Error::NonFiniteRate { iteration } => write!(
                f,
                "invalid argument: learning-rate schedule gave a non-finite rate at step {iteration}"
            ),
            Error::NoInputGradient => f.write_str(
                "invalid argument: token input has no input gradient; its embedding gradient is in \
                 `grads`",
            ),
            Error::OrthogonalShape { rows, cols } => write!(
                f,
                "invalid argument: orthogonal rows need rows <= cols, got {rows} x {cols}"
            ),
            Error::OrthogonalNoConvergence => {
                f.write_str("invalid argument: orthogonal initialisation did not converge")
            }
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
