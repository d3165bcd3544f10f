//! The model and the data sets embedded at build time, with their compile-time checks.

use tinylstm::format::{peek_check_spec, FormatError};

use crate::engine::{check_data, DataError, SPEC};

/// The `.tlm` model: `models/default.tlm` or the file named by `TINYLSTM_MODEL` at build time
/// (build.rs copies it into OUT_DIR).
pub const MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.tlm"));

/// Where the embedded model came from (build.rs).
pub const MODEL_PATH: &str = env!("TINYLSTM_MODEL_PATH");

// The model's spec is checked against the firmware's compiled SPEC while compiling: a model
// made for another architecture does not build. (Its CRC is checked at boot.)
const _: () = match peek_check_spec(MODEL, &SPEC) {
    Ok(()) => {}
    Err(FormatError::SpecMismatch { .. }) => panic!(
        "the embedded model (TINYLSTM_MODEL) does not match the firmware's compiled SPEC \
         (LSTM 64 -> Dense 4 softmax on 3 channels, see src/engine.rs)"
    ),
    Err(_) => panic!(
        "the embedded model (TINYLSTM_MODEL) is not a tinylstm model file: bad magic, version, \
         length or spec block"
    ),
};

// The data sets hold raw sensor values (from the CLI's synthetic generator, `firmware/tools`):
// the firmware standardises them with the model's NORMALIZATION section (`engine::Standardize`).

/// Sample sequences for the inference demo (2 per class, the training distribution).
pub const SAMPLES: &[u8] = include_bytes!("../data/samples.bin");
/// Field set used to fine-tune: gestures recorded with a mirrored, miscalibrated sensor.
pub const FIELD_TRAIN: &[u8] = include_bytes!("../data/field_train.bin");
/// Held-out field sequences: the validation check of the transactional update.
pub const FIELD_VALID: &[u8] = include_bytes!("../data/field_valid.bin");

const fn count(bytes: &[u8]) -> usize {
    match check_data(bytes) {
        Ok(n) => n,
        Err(DataError::BadMagic) => panic!("embedded data set: bad magic"),
        Err(DataError::Shape) => panic!("embedded data set: steps/channels differ from SPEC"),
        Err(DataError::Count) => panic!("embedded data set: no sequences or more than MAX_SET"),
        Err(DataError::Length) => panic!("embedded data set: wrong length"),
        Err(DataError::Label) => panic!("embedded data set: label out of range"),
    }
}

/// Sequences in [`SAMPLES`] (checked at compile time).
pub const SAMPLES_N: usize = count(SAMPLES);
/// Sequences in [`FIELD_TRAIN`].
pub const FIELD_TRAIN_N: usize = count(FIELD_TRAIN);
/// Sequences in [`FIELD_VALID`].
pub const FIELD_VALID_N: usize = count(FIELD_VALID);
/// The largest field set.
pub const FIELD_MAX_N: usize =
    if FIELD_TRAIN_N > FIELD_VALID_N { FIELD_TRAIN_N } else { FIELD_VALID_N };
