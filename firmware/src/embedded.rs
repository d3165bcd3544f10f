//! The model and the data sets embedded at build time. build.rs (`build_model.rs`) reads the
//! model file named by `TINYLSTM_MODEL` and generates the constants below from it — spec,
//! sequence length, class names, standardisation, data sets — so any model `tinylstm train`
//! writes builds without a source edit; it also fails the build when the model's RAM does not
//! fit the board.

use tinylstm::text::{Pad, Side};
use tinylstm::{Head, Spec};
use tinylstm_device::data::{check_data, DataError, Shape};
use tinylstm_device::model::Aligned;
use tinylstm_device::norm::Standardize;
use tinylstm_device::ram::{self, Sets};
use tinylstm_device::text::Sentence;
use tinylstm_device::tune::{FullConfig, HeadConfig};

include!(concat!(env!("OUT_DIR"), "/model.rs"));

const _: () = assert!(SPEC.is_valid());

/// Parameters of [`SPEC`].
pub const PARAMS: usize = SPEC.param_count();
/// Parameters of the Dense head (kernel then bias).
pub const HEAD_LEN: usize = PARAMS - SPEC.dense_kernel_offset();
/// Outputs `K` of the head.
pub const OUTPUTS: usize = SPEC.outputs;
/// Hidden units of the top LSTM layer (the head's input).
pub const TOP_UNITS: usize = SPEC.top_units();
/// Shape of the data sets.
pub const SHAPE: Shape = Shape::of(&SPEC, STEPS);
/// Input words of one sequence (`T·W`).
pub const SEQ_WORDS: usize = SHAPE.seq_words();
/// Target words of one sequence.
pub const TARGET_WORDS: usize = SHAPE.target_words();
/// Words per time step.
pub const STEP_WIDTH: usize = SPEC.step_width();
/// True for a classifier (softmax or sigmoid head).
pub const CLASSIFIES: bool = !matches!(SPEC.head, Head::Linear);

/// Work buffer of one full-sequence inference (one step per chunk: the smallest buffer).
pub const FORWARD_WORK: usize = SPEC.forward_work_len(1, 1).unwrap();
/// Streaming state `(h, c)` of one sequence.
pub const STATE: usize = SPEC.state_len(1).unwrap();
/// Work buffer of one streaming step.
pub const STEP_WORK: usize = SPEC.step_work_len(1).unwrap();

/// Head-only fine-tuning settings.
pub const HEAD_CFG: HeadConfig = HeadConfig::DEFAULT;
/// Optimizer state of the head.
pub const HEAD_STATE: usize = HEAD_CFG.state_len(&SPEC);
/// Full fine-tuning settings.
pub const FULL_CFG: FullConfig = FullConfig::DEFAULT;
/// Optimizer state of every parameter.
pub const FULL_STATE: usize = FULL_CFG.state_len(&SPEC);
/// BPTT work of one sequence.
pub const TRAIN_WORK: usize = FULL_CFG.work_len(&SPEC, STEPS);

/// The model's standardisation (compiled from its NORMALIZATION section; checked against the
/// embedded section at boot).
pub fn standardization() -> Option<Standardize<'static>> {
    if HAS_NORM {
        Standardize::new(&NORM_MEANS, &NORM_STDS).ok()
    } else {
        None
    }
}

/// The embedded `.tlm` file.
pub fn model_bytes() -> &'static [u8] {
    &MODEL_ALIGNED.0[MODEL_PAD..]
}

const fn count(bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        return 0;
    }
    match check_data(bytes, &SHAPE) {
        Ok(n) => n,
        Err(DataError::BadMagic) => panic!("embedded data set: bad magic"),
        Err(DataError::Shape) => panic!("embedded data set: shape differs from the model's"),
        Err(DataError::Count) => panic!("embedded data set: no sequences or more than MAX_SET"),
        Err(DataError::Length) => panic!("embedded data set: wrong length"),
        Err(DataError::Label) => panic!("embedded data set: label out of range"),
        Err(DataError::Token) => panic!("embedded data set: token id out of range"),
    }
}

/// Sequences in [`SAMPLES`] (checked at compile time), or sentences in [`TEXT_SAMPLES`].
pub const SAMPLES_N: usize = if TEXT_SETS { TEXT_SAMPLES.len() } else { count(SAMPLES) };
/// Sequences in [`FIELD_TRAIN`] or [`TEXT_TRAIN`] (0: no fine-tuning data).
pub const FIELD_TRAIN_N: usize = if TEXT_SETS { TEXT_TRAIN.len() } else { count(FIELD_TRAIN) };
/// Sequences in [`FIELD_VALID`] or [`TEXT_VALID`].
pub const FIELD_VALID_N: usize = if TEXT_SETS { TEXT_VALID.len() } else { count(FIELD_VALID) };

/// Bytes of a data set of `n` sentences tokenized at boot (0 without sentences).
const fn text_set_len(n: usize) -> usize {
    if TEXT_SETS && n > 0 {
        SHAPE.set_len(n)
    } else {
        0
    }
}
/// Bytes of the samples tokenized at boot.
pub const TEXT_SAMPLES_LEN: usize = text_set_len(SAMPLES_N);
/// Bytes of the field training set tokenized at boot.
pub const TEXT_TRAIN_LEN: usize = text_set_len(FIELD_TRAIN_N);
/// Bytes of the field validation set tokenized at boot.
pub const TEXT_VALID_LEN: usize = text_set_len(FIELD_VALID_N);
const _: () = assert!(TEXT_SAMPLES_LEN + TEXT_TRAIN_LEN + TEXT_VALID_LEN == RAM_TEXT);
/// The sets' sizes.
pub const SETS: Sets = Sets { samples: SAMPLES_N, train: FIELD_TRAIN_N, valid: FIELD_VALID_N };
/// The largest set.
pub const MAX_N: usize = SETS.max();
const _: () = assert!(SAMPLES_N > 0, "no inference samples");
const _: () = assert!((FIELD_TRAIN_N == 0) == (FIELD_VALID_N == 0));

/// RAM of inference (weights in flash).
pub const RAM_INFERENCE: usize = ram::inference(&SPEC, STEPS, &SETS);
/// RAM added by head-only fine-tuning.
pub const RAM_HEAD: usize = ram::head(&SPEC, &HEAD_CFG, &SETS);
/// RAM added by full fine-tuning.
pub const RAM_FULL: usize = ram::full(&SPEC, STEPS, &FULL_CFG);
