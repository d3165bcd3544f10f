//! Training settings: command-line flags named as Keras names them, the same keys in a TOML
//! config file, and their resolution into the core's spec, optimizer and penalties.
//!
//! Precedence: built-in defaults < `--config FILE` < flags. Every key of the file is a flag's
//! long name with `_` for `-` (`batch_size = 32` ↔ `--batch-size 32`); an unknown key is an error
//! naming it.
//!
//! ```toml
//! # train.toml
//! data = "sms.csv"
//! maxlen = 60
//! num_words = 10000
//! units = [128, 64]
//! optimizer = "adam"
//! lr = 1e-3
//! schedule = "cosine"
//! decay_steps = 2000
//! l2 = 1e-4
//! epochs = 10
//! patience = 2
//! ```

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tinylstm::optim::{Clip, Optimizer, OptimizerConfig};
use tinylstm::penalty::{Penalties, Penalty};
use tinylstm::schedule::Schedule;
use tinylstm::{Bptt, Head, Spec};

pub use crate::preprocess::pad::Side;

mod floats;
mod kinds;

pub use kinds::{SplitKind, TaskKind};

pub use floats::InvalidFloat;
use floats::{
    finite_f32, finite_f64, fraction_f64, key_line, non_negative_f64, positive_f32, FloatRule,
};

/// Optimizer choices (`--optimizer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain gradient descent (`SGD()`).
    Sgd,
    /// SGD with momentum (`SGD(momentum=0.9)`): `sgd+momentum` (also `momentum`).
    #[value(name = "sgd+momentum", alias = "momentum")]
    #[serde(rename = "sgd+momentum", alias = "momentum")]
    Momentum,
    /// SGD with Nesterov momentum: `nesterov` (also `sgd+nesterov`).
    #[value(alias = "sgd+nesterov")]
    #[serde(alias = "sgd+nesterov")]
    Nesterov,
    /// Adam (Keras defaults).
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
    /// Adam with AMSGrad.
    Amsgrad,
}

/// Learning-rate schedules (`--schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Constant learning rate.
    Constant,
    /// Keras `ExponentialDecay` (`--decay-steps`, `--decay-rate`, `--staircase`).
    Exponential,
    /// Keras `CosineDecay` (`--decay-steps`, `--alpha`).
    Cosine,
    /// Step decay: multiply by `--gamma` every `--step-size` steps.
    Step,
}

/// Head activation (`--head`); also fixes the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// One sigmoid output, binary cross-entropy (the Keras seed model's head; binary tasks).
    Sigmoid,
    /// K softmax outputs, sparse categorical cross-entropy.
    Softmax,
    /// Linear outputs, mean squared error (regression).
    Linear,
}

/// Metric watched by early stopping and best-model checkpointing (`--monitor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Validation loss (lower is better).
    #[value(name = "val_loss", alias = "val-loss")]
    ValLoss,
    /// Validation accuracy (higher is better).
    #[value(name = "val_accuracy", alias = "val-accuracy")]
    ValAccuracy,
    /// Training loss (when there is no validation split).
    Loss,
}

/// Displays a closed set's value as flags and config files spell it (`val_loss`,
/// `sgd+momentum`), never as its Rust name.
macro_rules! display_as_flag_value {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.to_possible_value() {
                    Some(v) => f.write_str(v.get_name()),
                    None => Ok(()),
                }
            }
        }
    )*};
}
display_as_flag_value!(OptimizerKind, ScheduleKind, HeadKind, Monitor, SplitKind, TaskKind);

/// Every training setting. `None` means "not given": the default applies (see each field).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainArgs {
    /// Training data CSV: `label,text` (text task) or label then values (sequence task, needs
    /// --channels). Without data, the built-in synthetic gesture task is used.
    #[arg(long, value_name = "CSV")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
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
    /// Optimizer [default: adam].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
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
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1: Option<f32>,
    /// L2 penalty on the LSTM and Dense kernels (Keras kernel_regularizer) [default: 0].
    #[arg(long, value_parser = finite_f32, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2: Option<f32>,
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
    /// Seed of the train/valid/test split only [default: --seed]. Hyperparameter search keeps
    /// it fixed while trials get their own --seed, so every trial sees the same split.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// Worker threads; results are deterministic for a fixed seed and thread count
    /// [default: all cores].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
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

impl TrainArgs {
    /// The kernel path these settings train on (fast unless `--exact`).
    pub fn kernels(&self) -> tinylstm_fast::KernelPath {
        tinylstm_fast::KernelPath::choose(self.exact != Some(true))
    }
}

fn default_text_units() -> Vec<usize> {
    vec![128, 64]
}

impl TrainArgs {
    /// Reads a TOML config file into a `TrainArgs` (unknown keys are errors naming the key; a
    /// NaN, infinite or out-of-range float is an error naming the file, line and key).
    pub fn from_toml_file(path: &Path) -> Result<TrainArgs> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut args: TrainArgs =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        if let Some(bad) = args.invalid_float() {
            let line = key_line(&text, bad.key).map_or_else(String::new, |l| format!(", line {l}"));
            bail!("config file {}{line}: {bad}", path.display());
        }
        // Relative data paths in a config file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut args.data, &mut args.test].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(args)
    }

    /// Every floating-point setting: key, value (if set, widened to `f64`), rule, and whether it
    /// is an `f32`. The flags' value parsers apply the same rules (a unit test keeps them equal).
    fn floats(&self) -> [(&'static str, Option<f64>, FloatRule, bool); 18] {
        use FloatRule::*;
        let w = |v: Option<f32>| v.map(f64::from);
        [
            ("lr", w(self.lr), Positive, true),
            ("momentum", w(self.momentum), Finite, true),
            ("beta_1", self.beta_1, Finite, false),
            ("beta_2", self.beta_2, Finite, false),
            ("epsilon", w(self.epsilon), Finite, true),
            ("weight_decay", w(self.weight_decay), Finite, true),
            ("decay_rate", w(self.decay_rate), Finite, true),
            ("alpha", w(self.alpha), Finite, true),
            ("gamma", w(self.gamma), Finite, true),
            ("clipnorm", w(self.clipnorm), Finite, true),
            ("global_clipnorm", w(self.global_clipnorm), Finite, true),
            ("clipvalue", w(self.clipvalue), Finite, true),
            ("l1", w(self.l1), Finite, true),
            ("l2", w(self.l2), Finite, true),
            ("valid_split", self.valid_split, Fraction, false),
            ("test_split", self.test_split, Fraction, false),
            ("min_delta", self.min_delta, NonNegative, false),
            ("mask_value", w(self.mask_value), Finite, true),
        ]
    }

    /// The first floating-point setting holding a value no setting accepts: NaN or ±Inf (any
    /// float), a negative `min_delta`, a `valid_split`/`test_split` outside [0, 1]. Flags are
    /// checked when they are parsed and config files when they are read; this is the check for
    /// settings built another way.
    pub fn invalid_float(&self) -> Option<InvalidFloat> {
        self.floats().into_iter().find_map(|(key, value, rule, f32_setting)| {
            let value = value?;
            rule.problem(value, f32_setting).map(|problem| InvalidFloat { key, value, problem })
        })
    }

    /// [`TrainArgs::invalid_float`] as an error naming the flag
    /// (`--min-delta must be a finite number ≥ 0, got -1`).
    pub fn check_floats(&self) -> Result<()> {
        match self.invalid_float() {
            Some(bad) => bail!("{} {}, got {}", bad.flag(), bad.problem, bad.value),
            None => Ok(()),
        }
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    ///
    /// Goes through JSON, where a NaN or infinite float would become "not given": both sides
    /// must pass [`TrainArgs::invalid_float`] (flags and config files do).
    pub fn overlaid(&self, over: &TrainArgs) -> TrainArgs {
        let top = match serde_json::to_value(over).expect("TrainArgs serialises") {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        self.with_values(top.iter().map(|(k, v)| (k.as_str(), v)))
            .expect("overlay of valid TrainArgs is valid")
    }

    /// `self` with every `(key, value)` set, keys as a config file spells them (`batch_size`),
    /// values as JSON. The one place settings are merged (flags over a file, a checkpoint's
    /// settings, hyperparameter trials). Errors name the key and value.
    pub fn with_values<'a>(
        &self,
        values: impl IntoIterator<Item = (&'a str, &'a serde_json::Value)>,
    ) -> Result<TrainArgs> {
        use serde_json::{Map, Value};
        let mut obj = match serde_json::to_value(self)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in values {
            obj.insert(k.to_string(), v.clone());
            let probe: Result<TrainArgs, _> =
                serde_json::from_value(Value::Object(Map::from_iter([(k.to_string(), v.clone())])));
            if let Err(e) = probe {
                if e.to_string().contains("unknown field") {
                    bail!("`{k}` is not a training setting (the keys are `tinylstm train` flags)");
                }
                bail!("`{k}` = {v}: {e}");
            }
        }
        Ok(serde_json::from_value(Value::Object(obj))?)
    }

    /// The settings that decide which samples are loaded and how they are split.
    pub fn data_settings(&self) -> DataSettings {
        DataSettings {
            data: self.data.clone(),
            test: self.test.clone(),
            synthetic_samples: self.synthetic_samples,
            channels: self.channels,
            label_column: self.label_column.clone(),
            text_column: self.text_column.clone(),
            header: self.header,
            classes: self.classes,
            valid_split: self.valid_split.map(f64::to_bits),
            test_split: self.test_split.map(f64::to_bits),
            split_seed: self.split_seed(),
            split: self.split.unwrap_or_default(),
            real_labels: self.real_labels(),
            task: self.task.unwrap_or_default(),
            lookback: self.lookback,
            horizon: self.horizon,
        }
    }

    /// The settings that, on top of [`TrainArgs::data_settings`], decide the preprocessing.
    pub fn preprocessing_settings(&self) -> PreprocessingSettings {
        PreprocessingSettings {
            num_words: self.num_words,
            oov_token: self.oov_token.clone(),
            char_level: self.char_level,
            lower: self.lower,
            filters: self.filters.clone(),
            maxlen: self.maxlen,
            padding: self.padding.unwrap_or_default(),
            truncating: self.truncating.unwrap_or_default(),
            standardize: self.standardize,
            mask_value: self.mask_value.map(f32::to_bits),
            mask_zero: self.mask_zero,
        }
    }

    /// Outputs of a linear head: `horizon × values` for a forecast, else 1.
    fn linear_outputs(&self, input: SpecInput) -> usize {
        match (self.task, input) {
            (Some(TaskKind::Forecast), SpecInput::Channels(c)) => self.horizon.unwrap_or(1) * c,
            _ => 1,
        }
    }

    /// Whether the labels are real numbers: `--task regress`/`forecast` or `--head linear`.
    pub fn real_labels(&self) -> bool {
        self.head == Some(HeadKind::Linear)
            || matches!(self.task, Some(TaskKind::Regress | TaskKind::Forecast))
    }

    /// This config as TOML (every setting given), for `--save-config` and tuning results.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// A name for runs on these settings' data, for default output folders: the data file's
    /// folder and stem (`…/BasicMotions/train.csv` → `BasicMotions-train`, so data sets whose
    /// files are all called `train.csv` do not share a folder), the stem alone for a file
    /// without a named folder (`sms.csv` → `sms`), or `synthetic`.
    pub fn run_name(&self) -> String {
        let Some(path) = &self.data else { return "synthetic".into() };
        let stem = path.file_stem().map_or_else(|| "data".into(), |s| s.to_string_lossy());
        let folder = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy())
            .filter(|f| !f.is_empty() && f != "." && f != "..");
        match folder {
            Some(f) => format!("{f}-{stem}"),
            None => stem.into_owned(),
        }
    }

    /// Seed [default 42].
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(42)
    }

    /// Seed of the data split [default: the seed].
    pub fn split_seed(&self) -> u64 {
        self.split_seed.unwrap_or_else(|| self.seed())
    }

    /// Batch size [default 32].
    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(32)
    }

    /// LSTM units for a text or sequence task.
    pub fn units(&self, text: bool) -> Vec<usize> {
        match &self.units {
            Some(u) => u.clone(),
            None if text => default_text_units(),
            None => vec![64],
        }
    }

    /// The head for a task with `classes` classes (`None`: real-valued labels).
    pub fn head(&self, text: bool, classes: Option<u32>) -> HeadKind {
        self.head.unwrap_or(match classes {
            None => HeadKind::Linear,
            Some(2) if text => HeadKind::Sigmoid,
            Some(_) => HeadKind::Softmax,
        })
    }

    /// Builds the model spec and checks it.
    pub fn spec(&self, input: SpecInput, classes: Option<u32>) -> Result<Spec> {
        let text = matches!(input, SpecInput::Tokens { .. });
        let mut spec = match input {
            SpecInput::Tokens { vocab } => Spec::tokens(vocab, self.embedding_dim.unwrap_or(64)),
            SpecInput::Channels(c) => Spec::channels(c),
        };
        let units = self.units(text);
        if units.is_empty() || units.len() > tinylstm::MAX_LAYERS {
            bail!("--units: give 1 to {} layer sizes, got {}", tinylstm::MAX_LAYERS, units.len());
        }
        for u in units {
            spec = spec.lstm(u);
        }
        let head = self.head(text, classes);
        let (k, h) = match (head, classes) {
            (HeadKind::Sigmoid, Some(2)) => (1, Head::Sigmoid),
            (HeadKind::Sigmoid, Some(k)) => (k as usize, Head::Sigmoid),
            (HeadKind::Softmax, Some(k)) => (k as usize, Head::Softmax),
            (HeadKind::Linear, _) => (self.linear_outputs(input), Head::Linear),
            (_, None) => bail!("--head: real-valued labels need --head linear"),
        };
        let spec = spec.dense(k, h);
        spec.validate().map_err(|e| anyhow::anyhow!("model settings: {e}"))?;
        Ok(spec)
    }

    /// The optimizer, schedule and clipping; rejects invalid values naming the flag.
    pub fn optimizer(&self) -> Result<OptimizerConfig> {
        // The one check of every float setting (`--lr` > 0 among them), as for flags and files.
        self.check_floats()?;
        let lr = self.lr.unwrap_or(1e-3);
        let kind = self.optimizer.unwrap_or(OptimizerKind::Adam);
        let momentum = self.momentum.unwrap_or(0.9);
        let mut opt = match kind {
            OptimizerKind::Sgd => Optimizer::sgd(),
            OptimizerKind::Momentum => Optimizer::sgd().with_momentum(momentum),
            OptimizerKind::Nesterov => Optimizer::sgd().with_momentum(momentum).with_nesterov(true),
            OptimizerKind::Adam => Optimizer::adam(),
            OptimizerKind::Adamw => Optimizer::adamw(),
            OptimizerKind::Amsgrad => Optimizer::adam().with_amsgrad(true),
        };
        if let Some(b) = self.beta_1 {
            opt = opt.with_beta_1(b);
        }
        if let Some(b) = self.beta_2 {
            opt = opt.with_beta_2(b);
        }
        if let Some(e) = self.epsilon {
            opt = opt.with_epsilon(e);
        }
        if let Some(w) = self.weight_decay {
            opt = opt.with_weight_decay(w);
        }
        opt.validate().map_err(|e| anyhow::anyhow!("optimizer settings: {e}"))?;
        let decay_steps = self.decay_steps.unwrap_or(1000);
        let mut schedule = match self.schedule.unwrap_or(ScheduleKind::Constant) {
            ScheduleKind::Constant => Schedule::constant(lr),
            ScheduleKind::Exponential => Schedule::exponential_decay(
                lr,
                decay_steps,
                self.decay_rate.unwrap_or(0.96),
                self.staircase.unwrap_or(false),
            ),
            ScheduleKind::Cosine => {
                Schedule::cosine_decay(lr, decay_steps, self.alpha.unwrap_or(0.0))
            }
            ScheduleKind::Step => {
                Schedule::step_decay(lr, self.step_size.unwrap_or(1000), self.gamma.unwrap_or(0.5))
            }
        };
        if let Some(w) = self.warmup_steps {
            schedule = schedule.with_warmup(w, 0.0);
        }
        schedule.validate().map_err(|e| anyhow::anyhow!("schedule settings: {e}"))?;
        let clip = match (self.clipnorm, self.global_clipnorm, self.clipvalue) {
            (None, None, None) => Clip::none(),
            (Some(c), None, None) => Clip::norm(c),
            (None, Some(c), None) => Clip::global_norm(c),
            (None, None, Some(c)) => Clip::value(c),
            _ => bail!("give at most one of --clipnorm, --global-clipnorm, --clipvalue (as Keras)"),
        };
        clip.validate().map_err(|e| anyhow::anyhow!("clipping settings: {e}"))?;
        Ok(OptimizerConfig::new(opt).with_schedule(schedule).with_clip(clip))
    }

    /// L1/L2 on the LSTM and Dense kernels.
    pub fn penalties(&self, spec: &Spec) -> Result<Penalties> {
        let (l1, l2) = (self.l1.unwrap_or(0.0), self.l2.unwrap_or(0.0));
        for (name, v) in [("--l1", l1), ("--l2", l2)] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("{name} must be a non-negative number, got {v}");
            }
        }
        Ok(Penalties::kernels(spec, Penalty::l1_l2(l1, l2)))
    }

    /// The BPTT mode.
    pub fn bptt(&self) -> Result<Bptt> {
        match self.bptt_window {
            Some(0) => bail!("--bptt-window must be at least 1"),
            Some(k) => Ok(Bptt::truncated(k)),
            None => Ok(Bptt::FULL),
        }
    }
}

/// The data settings of a [`TrainArgs`] ([`TrainArgs::data_settings`]): runs whose data
/// settings are equal load and split the same samples (floats compared by their bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DataSettings {
    /// Training data file (`None`: the synthetic task).
    pub data: Option<PathBuf>,
    /// The dataset's own test file.
    pub test: Option<PathBuf>,
    /// Samples of the synthetic task.
    pub synthetic_samples: Option<usize>,
    /// Values per time step (sequence CSV).
    pub channels: Option<usize>,
    /// Label column.
    pub label_column: Option<String>,
    /// Text column.
    pub text_column: Option<String>,
    /// Header row.
    pub header: Option<bool>,
    /// Number of classes.
    pub classes: Option<u32>,
    /// Validation fraction (bits of the f64).
    pub valid_split: Option<u64>,
    /// Test fraction (bits of the f64).
    pub test_split: Option<u64>,
    /// Seed of the split.
    pub split_seed: u64,
    /// Split protocol.
    pub split: SplitKind,
    /// Labels are real numbers (`--head linear`).
    pub real_labels: bool,
    /// What to learn.
    pub task: TaskKind,
    /// Forecasting history.
    pub lookback: Option<usize>,
    /// Forecasting horizon.
    pub horizon: Option<usize>,
}

/// The preprocessing settings of a [`TrainArgs`] ([`TrainArgs::preprocessing_settings`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PreprocessingSettings {
    /// Tokenizer vocabulary limit.
    pub num_words: Option<usize>,
    /// Out-of-vocabulary token.
    pub oov_token: Option<String>,
    /// Character-level tokens.
    pub char_level: Option<bool>,
    /// Lowercase first.
    pub lower: Option<bool>,
    /// Characters removed.
    pub filters: Option<String>,
    /// Sequence length.
    pub maxlen: Option<usize>,
    /// Where to pad.
    pub padding: Side,
    /// Where to truncate.
    pub truncating: Side,
    /// Standardise sequences.
    pub standardize: Option<bool>,
    /// Mask value (bits of the f32).
    pub mask_value: Option<u32>,
    /// Mask token id 0.
    pub mask_zero: Option<bool>,
}

/// The input side of a spec being built.
#[derive(Clone, Copy, Debug)]
pub enum SpecInput {
    /// Token ids below `vocab`.
    Tokens {
        /// Vocabulary size (Embedding input_dim).
        vocab: usize,
    },
    /// Real values per step.
    Channels(usize),
}

#[cfg(test)]
mod tests;
