//! Training: the loop ([`fit`]), the data a run trains on ([`prepared`]), one run held in memory
//! ([`session`]) and a whole run with its output files ([`run`]).
//!
//! The pipeline is a library, so other commands (hyperparameter search) run trainings as
//! function calls rather than subprocesses:
//!
//! - [`train_model`] is the whole of `tinylstm train` minus the console output: settings in,
//!   [`TrainOutcome`] (model, history, validation and test reports, files written) out, with
//!   [`RunOptions`] for the output folder (or none: nothing is written), threads, a shared
//!   [`DataCache`], a checkpoint to resume and a per-epoch callback.
//! - [`TrainSession`] is one run held in memory: built from settings (or a checkpoint), advanced
//!   epoch budget by epoch budget ([`TrainSession::fit_to`]), evaluated in between, continued
//!   later — exactly as if it had run in one go.
//! - [`prepare_data`] loads, splits and preprocesses data; with a [`DataCache`] runs whose
//!   data settings agree (file, split, maxlen, num_words, …) share one copy.

pub mod fit;
pub mod forecast;
pub mod prepared;
pub mod projection;
pub mod run;
pub mod session;

pub use fit::{EpochEvent, FitConfig, Trainer};
pub use prepared::{load, prepare_data, DataCache, PreparedData};
pub use run::train_model;
pub use session::{EpochCallback, RunOptions, TrainOutcome, TrainSession};
