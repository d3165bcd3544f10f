//! The closed sets of the data settings: what to learn (`--task`) and how to split
//! (`--split`).

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// How the data is split into training, validation and test samples (`--split`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitKind {
    /// Per class, a seeded shuffle then 8:1:1 (every split keeps the class balance).
    #[default]
    Stratified,
    /// The Keras seed code's protocol: one seeded permutation of all samples, then 8:1:1,
    /// without regard to the classes.
    Seed,
}

/// What to learn (`--task`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Labels are classes (integers or names) [the default unless `--head linear`].
    #[default]
    Classify,
    /// Labels are real numbers (a linear head, mean squared error).
    Regress,
    /// A `time,value` (or `time,a,b,…`) series: predict the next `--horizon` steps from the
    /// last `--lookback` ones.
    Forecast,
}
