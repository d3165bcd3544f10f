//! Library side of the `tinylstm` command line: the host data pipeline.
//!
//! Modules, in the order data flows through them:
//!
//! - [`data`]: load text CSVs (`label,text`) and sequence CSVs (label, then values flattened
//!   timestep-major) into a [`data::Dataset`], with errors that name file, line and field.
//! - [`tokenizer`]: the Keras `Tokenizer` (fit on texts, texts to sequences), byte-exact with
//!   `tf_keras.preprocessing.text.Tokenizer`, and its compact serialisation for the model file.
//! - [`pad`]: Keras `pad_sequences` (pre/post padding and truncation).
//! - [`split`]: seeded, stratified train/validation/test splits (8:1:1 by default).
//! - [`normalize`]: per-channel standardisation fitted on the training split.
//! - [`metrics`]: accuracy, precision/recall/F1, confusion matrix, ROC AUC, log loss.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod bundle;
pub mod commands;
pub mod config;
pub mod data;
pub mod export;
pub mod fit;
pub mod metrics;
pub mod normalize;
pub mod pad;
pub mod plots;
pub mod prepare;
pub mod split;
pub mod synthetic;
pub mod tokenizer;
pub mod tune;
