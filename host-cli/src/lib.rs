//! Library side of the `tinylstm` command line: the host pipeline, in layers. A module imports
//! only from the layers above it in this list (ARCHITECTURE.md draws it):
//!
//! 1. [`files`] (atomic writes), [`output`] (stdout that never panics),
//!    [`limits`] (bounds on sizes from files and flags), [`lock`] (one run per output folder),
//!    [`manifest`] (which files form a run's set), [`interrupt`] (Ctrl-C and SIGTERM),
//!    [`keras_names`], [`settings`] (every training setting, as flags and TOML keys),
//!    [`metrics`], [`summary`] (per-layer summary).
//! 2. [`data`]: load text and sequence CSVs into a [`data::Dataset`] (errors name file, line and
//!    field), the built-in synthetic task, seeded stratified splits.
//! 3. [`preprocess`]: the Keras `Tokenizer`, `pad_sequences`, per-channel standardisation, and
//!    the batches the model reads ([`preprocess::Prepared`]).
//! 4. [`history`], [`report`] (evaluation metrics), [`plots`] (SVG/PNG pictures).
//! 5. [`model_file`]: a trained model with its preprocessing, as a `.tlm` file.
//! 6. [`export`]: Rust, C, JSON and Keras npz, one module per format.
//! 7. [`training`]: the training loop, prepared data, sessions and whole runs.
//! 8. [`tune`] (hyperparameter search) and [`bench`](mod@bench) (throughput).
//! 9. [`commands`]: the `tinylstm` subcommands, thin clap glue over the layers above.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod commands;
pub mod data;
pub mod export;
pub mod files;
pub mod forecast;
pub mod history;
pub mod interrupt;
pub mod keras_names;
pub mod limits;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod model_file;
pub mod output;
pub mod plots;
pub mod preprocess;
pub mod report;
pub mod settings;
pub mod summary;
pub mod training;
pub mod tune;
