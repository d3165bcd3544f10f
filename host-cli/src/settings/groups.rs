//! The five groups of training settings — data, preprocessing, model, optimizer, run — each a
//! clap `Args` and a serde struct, flattened into [`TrainArgs`](super::TrainArgs). Field names
//! are the config-file keys; the long flags are the same with `-` for `_`.

use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::floats::{
    finite_f32, finite_f64, fraction_f64, non_negative_f32, non_negative_f64, positive_f32,
};
use super::{HeadKind, Monitor, OptimizerKind, ScheduleKind, Side, SplitKind, TaskKind};

/// Which samples are loaded and how they are split: the data file and its columns, the task, the split.
///
/// Every field is a flag of `tinylstm train` and a key of its config file (`--batch-size`
/// ↔ `batch_size`); `None` means "not given": the default applies (see each field).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataArgs {
    /// Training data CSV: `label,text` (text task) or label then values (sequence task, needs
    /// --channels). Without data, the built-in synthetic gesture task is used.
    #[arg(long = "data", value_name = "CSV")]
    #[serde(rename = "data", skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The dataset's own test file; validation is then carved out of the training file.
    #[arg(long, value_name = "CSV")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// Samples of the built-in synthetic task (without --data) [default: 2000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic_samples: Option<usize>,
    /// What to learn: classify, regress (real labels) or forecast (a time,value series)
    /// [default: classify, regress with --head linear].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskKind>,
    /// Forecasting: steps of history the model reads [default: 12].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookback: Option<usize>,
    /// Forecasting: steps ahead the model predicts, at least 1 [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizon: Option<usize>,
    /// Forecasting: the season length in steps for the seasonal-naive baseline (12 for monthly
    /// data) [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season: Option<usize>,
    /// Values per time step: reads the data as a sequence CSV.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// Column holding the label: a 0-based index or a header name [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// Column holding the text: a 0-based index or a header name [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    /// The CSV has a header row (default: detected).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// Number of classes (default: largest label + 1); a class without samples is an error.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<u32>,
    /// Fraction of the data for validation (8:1:1 split) [default: 0.1; 1/9 of train with --test].
    #[arg(long, value_parser = fraction_f64, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_split: Option<f64>,
    /// Fraction of the data for the test split [default: 0.1; 0 with --test].
    #[arg(long, value_parser = fraction_f64, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_split: Option<f64>,
    /// Split protocol: stratified (per class) or seed (one permutation of all samples, as the
    /// Keras seed code) [default: stratified].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitKind>,
    /// Seed of the train/valid/test split only [default: --seed]. Hyperparameter search keeps
    /// it fixed while trials get their own --seed, so every trial sees the same split.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
}

/// How loaded samples become model inputs: the tokenizer, padding and truncation, masking, standardisation.
///
/// Every field is a flag of `tinylstm train` and a key of its config file (`--batch-size`
/// ↔ `batch_size`); `None` means "not given": the default applies (see each field).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PreprocessingArgs {
    /// Keep the most frequent `num_words − 1` words (Keras Tokenizer) [default: 10000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_words: Option<usize>,
    /// Token for out-of-vocabulary words (index 1).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oov_token: Option<String>,
    /// Character-level tokens (Chinese/Japanese text).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub char_level: Option<bool>,
    /// Lowercase texts first [default: true].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower: Option<bool>,
    /// Characters removed from texts (Keras `filters`) [default: Keras's punctuation set].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<String>,
    /// Sequence length after padding/truncation (Keras `pad_sequences` maxlen)
    /// [default: 60 for text, the longest sequence for sequences].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxlen: Option<usize>,
    /// Where to pad: pre or post [default: pre].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub padding: Option<Side>,
    /// Where to truncate: pre or post [default: pre].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncating: Option<Side>,
    /// Mask padded steps (Keras `Masking(mask_value)`): steps whose values all equal this are
    /// skipped and sequences are padded with it [default: on with 0.0 for rows of different
    /// lengths, off otherwise].
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_value: Option<f32>,
    /// Text: token id 0 (padding) is skipped (Keras `Embedding(mask_zero=True)`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_zero: Option<bool>,
    /// Standardise each channel with statistics of the training split [default: true].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standardize: Option<bool>,
}

/// The model's shape: embedding, LSTM layers, head.
///
/// Every field is a flag of `tinylstm train` and a key of its config file (`--batch-size`
/// ↔ `batch_size`); `None` means "not given": the default applies (see each field).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelArgs {
    /// Embedding size (text) [default: 64].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_dim: Option<usize>,
    /// LSTM units per layer, comma separated [default: 128,64 for text, 64 for sequences].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<Vec<usize>>,
    /// Head activation [default: sigmoid for binary text, softmax otherwise, linear for real labels].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadKind>,
}

/// The update rule: optimizer, learning rate and its schedule, clipping, L1/L2 penalties.
///
/// Every field is a flag of `tinylstm train` and a key of its config file (`--batch-size`
/// ↔ `batch_size`); `None` means "not given": the default applies (see each field).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerArgs {
    /// Optimizer [default: adam].
    #[arg(long = "optimizer", value_name = "OPTIMIZER", value_enum)]
    #[serde(rename = "optimizer", skip_serializing_if = "Option::is_none")]
    pub kind: Option<OptimizerKind>,
    /// Learning rate (initial, with a schedule) [default: 1e-3].
    #[arg(long, visible_alias = "learning-rate", value_parser = positive_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f32>,
    /// Momentum for momentum/nesterov [default: 0.9].
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f32>,
    /// Adam β₁ [default: 0.9].
    #[arg(long, value_parser = finite_f64, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta_1: Option<f64>,
    /// Adam β₂ [default: 0.999].
    #[arg(long, value_parser = finite_f64, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta_2: Option<f64>,
    /// Adam ε [default: 1e-7].
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f32>,
    /// Decoupled weight decay (AdamW, or any optimizer) [default: 0.004 for adamw, else 0].
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f32>,
    /// Learning-rate schedule [default: constant].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleKind>,
    /// Steps of exponential/cosine decay [default: 1000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_steps: Option<u32>,
    /// Exponential decay rate [default: 0.96].
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_rate: Option<f32>,
    /// Exponential decay in whole intervals.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staircase: Option<bool>,
    /// Cosine decay floor as a fraction of the initial rate [default: 0].
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f32>,
    /// Step decay interval in steps [default: 1000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_size: Option<u32>,
    /// Step decay factor [default: 0.5].
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f32>,
    /// Linear warm-up steps before the schedule [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u32>,
    /// Clip each tensor's gradient to this L2 norm (Keras clipnorm).
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clipnorm: Option<f32>,
    /// Clip all gradients together to this L2 norm (Keras global_clipnorm).
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_clipnorm: Option<f32>,
    /// Clip every gradient element to ±this (Keras clipvalue).
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clipvalue: Option<f32>,
    /// L1 penalty on the LSTM and Dense kernels (Keras kernel_regularizer) [default: 0].
    #[arg(long, value_parser = non_negative_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1: Option<f32>,
    /// L2 penalty on the LSTM and Dense kernels (Keras kernel_regularizer) [default: 0].
    #[arg(long, value_parser = non_negative_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2: Option<f32>,
}

/// How a run goes: batches, epochs, seeds, threads, early stopping, kernel path.
///
/// Every field is a flag of `tinylstm train` and a key of its config file (`--batch-size`
/// ↔ `batch_size`); `None` means "not given": the default applies (see each field).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunArgs {
    /// Truncated BPTT: differentiate only the last N steps [default: all].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bptt_window: Option<usize>,
    /// Samples per gradient step [default: 32].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Passes over the training data [default: 10, or 25 for the built-in task].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Seed of initialisation, split and shuffling [default: 42].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Worker threads; results are deterministic for a fixed seed and thread count
    /// [default: all cores].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Metric for early stopping and the best checkpoint [default: val_loss].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Monitor>,
    /// Stop after this many epochs without improvement (0: never) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Smallest change that counts as an improvement [default: 0].
    #[arg(long, value_parser = non_negative_f64, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_delta: Option<f64>,
    /// Keep the best epoch's weights at the end (Keras restore_best_weights) [default: true].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_best: Option<bool>,
    /// Train on the exact kernel path (the device's arithmetic, bit for bit) instead of the
    /// fast one (FMA and SIMD chosen at run time; results differ in the last bits)
    /// [default: fast]. Deterministic either way for a seed and thread count; a resumed run
    /// keeps the path it started with.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
}
