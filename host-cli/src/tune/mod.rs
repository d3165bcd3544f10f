//! Hyperparameter search (`tinylstm tune`): grid, seeded random, successive halving and
//! Hyperband over any training setting, trials in parallel, resumable, shardable across
//! machines and mergeable.
//!
//! - [`space`]: the search space (per setting a value, a list, or a linear/log range), parsed
//!   from TOML or `--param` flags and validated before any trial runs.
//! - [`plan`]: the search ([`Search`]: base settings, space, strategy, objective) and its
//!   deterministic plan of trials and brackets; trial `k`'s settings and seed depend only on
//!   the search and `k`.
//! - [`run`]: [`run_search`] trains the trials (in parallel, each trial on its own fixed
//!   thread count so results do not depend on the parallelism), halves brackets, prints the
//!   live table, writes one file per finished trial, resumes, and writes the report.
//! - [`report`]: `results.json`/`.csv`, `best.json`, `best.toml` (a ready `train` config),
//!   `best_model.tlm`, pictures; [`merge`] builds the same report from shard folders.
//!
//! Output folder layout:
//!
//! ```text
//! search.json                  the search (and shard) this folder holds
//! trials/trial-00007.json      one record per trial (written atomically when it finishes)
//! trials/trial-00007.checkpoint.tlm   a trial paused between halving rungs
//! results.json, results.csv    every trial: settings, history, metrics, time, status
//! best.json, best.toml         the best trial, its test metrics; its `train` config
//! best_model.tlm               the best trial's model
//! plots/best_so_far.svg|png, plots/<parameter>.svg|png
//! ```

pub mod folder;
pub mod plan;
pub mod plots;
pub mod report;
pub mod results;
pub mod run;
pub mod space;

pub use folder::Shard;
pub use plan::{Direction, Metric, Objective, Search, SearchToml, Strategy};
pub use report::merge;
pub use results::{Results, TrialRecord, TrialStatus};
pub use run::{run_search, TuneOptions, TuneSummary};
pub use space::Space;
