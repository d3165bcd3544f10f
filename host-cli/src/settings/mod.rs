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
use std::path::Path;
use tinylstm::optim::{Clip, Optimizer, OptimizerConfig};
use tinylstm::penalty::{Penalties, Penalty};
use tinylstm::schedule::Schedule;
use tinylstm::{Bptt, Head, Spec};

pub use crate::preprocess::pad::Side;

mod floats;
mod groups;
mod kinds;
mod validate;

pub use groups::{DataArgs, ModelArgs, OptimizerArgs, PreprocessingArgs, RunArgs};

pub use kinds::{SplitKind, TaskKind};

pub use floats::InvalidFloat;
use floats::{key_line, FloatRule};
pub use validate::SettingError;

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

/// Every training setting, in five typed groups. Each group is flattened into the flags
/// (`#[command(flatten)]`) and into the config file's keys (`#[serde(flatten)]`), so users see
/// one flat set of names (`--lr`, `lr = 1e-3`) while code reads `args.optimizer.lr`. A key no
/// group has is an error naming it; a value outside a closed set (`padding = "psot"`) is an
/// error naming the key and the accepted values.
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize)]
pub struct TrainArgs {
    /// Data file, columns, task and split.
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// Tokenizer, padding, masking, standardisation.
    #[command(flatten)]
    #[serde(flatten)]
    pub preprocessing: PreprocessingArgs,
    /// Embedding, LSTM layers, head.
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    /// Optimizer, learning rate, schedule, clipping, penalties.
    #[command(flatten)]
    #[serde(flatten)]
    pub optimizer: OptimizerArgs,
    /// Batches, epochs, seeds, threads, early stopping.
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunArgs,
}

impl<'de> Deserialize<'de> for TrainArgs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        /// The groups, and the keys none of them took.
        #[derive(Deserialize)]
        struct Groups {
            #[serde(flatten)]
            data: DataArgs,
            #[serde(flatten)]
            preprocessing: PreprocessingArgs,
            #[serde(flatten)]
            model: ModelArgs,
            #[serde(flatten)]
            optimizer: OptimizerArgs,
            #[serde(flatten)]
            run: RunArgs,
            #[serde(flatten)]
            unknown: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
        }
        let g = Groups::deserialize(d)?;
        if let Some(key) = g.unknown.keys().next() {
            return Err(serde::de::Error::custom(format_args!(
                "unknown field `{key}`: not a training setting (the keys are `tinylstm train` \
                 flags, `_` for `-`)"
            )));
        }
        let Groups { data, preprocessing, model, optimizer, run, .. } = g;
        Ok(TrainArgs { data, preprocessing, model, optimizer, run })
    }
}

impl TrainArgs {
    /// The kernel path these settings train on (fast unless `--exact`).
    pub fn kernels(&self) -> tinylstm_fast::KernelPath {
        tinylstm_fast::KernelPath::choose(self.run.exact != Some(true))
    }
}

fn default_text_units() -> Vec<usize> {
    vec![128, 64]
}

impl TrainArgs {
    /// Reads a TOML config file into validated settings ([`TrainArgs::validate`]): an unknown
    /// key, a value outside a closed set (`padding = "psot"`) or a value a setting refuses (a
    /// NaN, `lr = 0`, `batch_size = 0`) is an error naming the file, line and key.
    pub fn from_toml_file(path: &Path) -> Result<TrainArgs> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        let line =
            |key: &str| key_line(&text, key).map_or_else(String::new, |l| format!(", line {l}"));
        let mut args = match TrainArgs::from_table(table) {
            Ok(a) => a,
            Err(e) => bail!("config file {}{}: {e}", path.display(), line(&e.key)),
        };
        if let Err(bad) = args.validate() {
            bail!("config file {}{}: {bad}", path.display(), line(bad.key));
        }
        // Relative data paths in a config file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut args.data.file, &mut args.data.test].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(args)
    }

    /// The settings of a TOML table (a config file, a search file's `[base]`). Each key is read
    /// on its own first, so an error names the key and what it accepts.
    pub fn from_table(table: toml::Table) -> std::result::Result<TrainArgs, KeyError> {
        for (key, value) in &table {
            let one = toml::Table::from_iter([(key.clone(), value.clone())]);
            if let Err(e) = toml::Value::Table(one).try_into::<TrainArgs>() {
                return Err(KeyError::new(key, &value.to_string(), &e.to_string()));
            }
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| KeyError::new("", "", &e.to_string()))
    }

    /// Every floating-point setting: key, value (if set, widened to `f64`), rule, and whether it
    /// is an `f32`. The flags' value parsers apply the same rules (a unit test keeps them equal).
    fn floats(&self) -> [(&'static str, Option<f64>, FloatRule, bool); 18] {
        use FloatRule::*;
        let w = |v: Option<f32>| v.map(f64::from);
        [
            ("lr", w(self.optimizer.lr), Positive, true),
            ("momentum", w(self.optimizer.momentum), Finite, true),
            ("beta_1", self.optimizer.beta_1, Finite, false),
            ("beta_2", self.optimizer.beta_2, Finite, false),
            ("epsilon", w(self.optimizer.epsilon), Finite, true),
            ("weight_decay", w(self.optimizer.weight_decay), Finite, true),
            ("decay_rate", w(self.optimizer.decay_rate), Finite, true),
            ("alpha", w(self.optimizer.alpha), Finite, true),
            ("gamma", w(self.optimizer.gamma), Finite, true),
            ("clipnorm", w(self.optimizer.clipnorm), Finite, true),
            ("global_clipnorm", w(self.optimizer.global_clipnorm), Finite, true),
            ("clipvalue", w(self.optimizer.clipvalue), Finite, true),
            ("l1", w(self.optimizer.l1), NonNegative, true),
            ("l2", w(self.optimizer.l2), NonNegative, true),
            ("valid_split", self.data.valid_split, Fraction, false),
            ("test_split", self.data.test_split, Fraction, false),
            ("min_delta", self.run.min_delta, NonNegative, false),
            ("mask_value", w(self.preprocessing.mask_value), Finite, true),
        ]
    }

    /// The first floating-point setting holding a value no setting accepts: NaN or ±Inf (any
    /// float), `lr` ≤ 0, a negative `min_delta`, `l1` or `l2`, a `valid_split`/`test_split`
    /// outside [0, 1]. Part of [`TrainArgs::validate`].
    fn invalid_float(&self) -> Option<InvalidFloat> {
        self.floats().into_iter().find_map(|(key, value, rule, f32_setting)| {
            let value = value?;
            rule.problem(value, f32_setting).map(|problem| InvalidFloat { key, value, problem })
        })
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    ///
    /// Goes through JSON, where a NaN or infinite float would become "not given": both sides
    /// must pass [`TrainArgs::validate`] (flags and config files do).
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
                return Err(KeyError::new(k, &v.to_string(), &e.to_string()).into());
            }
        }
        Ok(serde_json::from_value(Value::Object(obj))?)
    }

    /// The key of the data these settings load and split: equal keys load and split the same
    /// samples. Made from the typed [`DataArgs`] group as a whole (so a new data setting keys
    /// the cache without being listed here), the split seed it resolves to, and whether labels
    /// are real numbers (`--head linear`).
    pub fn data_key(&self) -> SettingsKey {
        // The split seed enters resolved (an explicit seed equal to the default is the same).
        let data = DataArgs { split_seed: None, ..self.data.clone() };
        SettingsKey(format!(
            "{}|split_seed={}|real_labels={}",
            key_text(&data),
            self.split_seed(),
            self.real_labels()
        ))
    }

    /// The key of the prepared data: [`TrainArgs::data_key`] and the whole
    /// [`PreprocessingArgs`] group. Runs that differ only in model, optimizer or run settings
    /// share one prepared copy.
    pub fn preprocessing_key(&self) -> SettingsKey {
        SettingsKey(format!("{}|{}", self.data_key().0, key_text(&self.preprocessing)))
    }

    /// Outputs of a linear head: `horizon × values` for a forecast, else 1.
    fn linear_outputs(&self, input: SpecInput) -> usize {
        match (self.data.task, input) {
            (Some(TaskKind::Forecast), SpecInput::Channels(c)) => {
                self.data.horizon.unwrap_or(1) * c
            }
            _ => 1,
        }
    }

    /// Whether the labels are real numbers: `--task regress`/`forecast` or `--head linear`.
    pub fn real_labels(&self) -> bool {
        self.model.head == Some(HeadKind::Linear)
            || matches!(self.data.task, Some(TaskKind::Regress | TaskKind::Forecast))
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
        let Some(path) = &self.data.file else { return "synthetic".into() };
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
        self.run.seed.unwrap_or(42)
    }

    /// Seed of the data split [default: the seed].
    pub fn split_seed(&self) -> u64 {
        self.data.split_seed.unwrap_or_else(|| self.seed())
    }

    /// Batch size [default 32].
    pub fn batch_size(&self) -> usize {
        self.run.batch_size.unwrap_or(32)
    }

    /// LSTM units for a text or sequence task.
    pub fn units(&self, text: bool) -> Vec<usize> {
        match &self.model.units {
            Some(u) => u.clone(),
            None if text => default_text_units(),
            None => vec![64],
        }
    }

    /// The head for a task with `classes` classes (`None`: real-valued labels).
    pub fn head(&self, text: bool, classes: Option<u32>) -> HeadKind {
        self.model.head.unwrap_or(match classes {
            None => HeadKind::Linear,
            Some(2) if text => HeadKind::Sigmoid,
            Some(_) => HeadKind::Softmax,
        })
    }

    /// Builds the model spec and checks it.
    pub fn spec(&self, input: SpecInput, classes: Option<u32>) -> Result<Spec> {
        let text = matches!(input, SpecInput::Tokens { .. });
        let mut spec = match input {
            SpecInput::Tokens { vocab } => {
                Spec::tokens(vocab, self.model.embedding_dim.unwrap_or(64))
            }
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

    /// The optimizer, its learning-rate schedule and the clipping these settings name, as
    /// built, unchecked ([`TrainArgs::validate`] checks them).
    fn optimizer_parts(&self) -> (Optimizer, Schedule, Clip) {
        let lr = self.optimizer.lr.unwrap_or(1e-3);
        let kind = self.optimizer.kind.unwrap_or(OptimizerKind::Adam);
        let momentum = self.optimizer.momentum.unwrap_or(0.9);
        let mut opt = match kind {
            OptimizerKind::Sgd => Optimizer::sgd(),
            OptimizerKind::Momentum => Optimizer::sgd().with_momentum(momentum),
            OptimizerKind::Nesterov => Optimizer::sgd().with_momentum(momentum).with_nesterov(true),
            OptimizerKind::Adam => Optimizer::adam(),
            OptimizerKind::Adamw => Optimizer::adamw(),
            OptimizerKind::Amsgrad => Optimizer::adam().with_amsgrad(true),
        };
        if let Some(b) = self.optimizer.beta_1 {
            opt = opt.with_beta_1(b);
        }
        if let Some(b) = self.optimizer.beta_2 {
            opt = opt.with_beta_2(b);
        }
        if let Some(e) = self.optimizer.epsilon {
            opt = opt.with_epsilon(e);
        }
        if let Some(w) = self.optimizer.weight_decay {
            opt = opt.with_weight_decay(w);
        }
        let decay_steps = self.optimizer.decay_steps.unwrap_or(1000);
        let mut schedule = match self.optimizer.schedule.unwrap_or(ScheduleKind::Constant) {
            ScheduleKind::Constant => Schedule::constant(lr),
            ScheduleKind::Exponential => Schedule::exponential_decay(
                lr,
                decay_steps,
                self.optimizer.decay_rate.unwrap_or(0.96),
                self.optimizer.staircase.unwrap_or(false),
            ),
            ScheduleKind::Cosine => {
                Schedule::cosine_decay(lr, decay_steps, self.optimizer.alpha.unwrap_or(0.0))
            }
            ScheduleKind::Step => Schedule::step_decay(
                lr,
                self.optimizer.step_size.unwrap_or(1000),
                self.optimizer.gamma.unwrap_or(0.5),
            ),
        };
        if let Some(w) = self.optimizer.warmup_steps {
            schedule = schedule.with_warmup(w, 0.0);
        }
        // `validate` refuses more than one clipping bound; the first given is used.
        let clip = match (
            self.optimizer.clipnorm,
            self.optimizer.global_clipnorm,
            self.optimizer.clipvalue,
        ) {
            (Some(c), ..) => Clip::norm(c),
            (None, Some(c), _) => Clip::global_norm(c),
            (None, None, Some(c)) => Clip::value(c),
            (None, None, None) => Clip::none(),
        };
        (opt, schedule, clip)
    }

    /// The optimizer, schedule and clipping of settings that passed [`TrainArgs::validate`]
    /// (the core also refuses an invalid one at its first step, naming the hyperparameter).
    pub fn optimizer(&self) -> OptimizerConfig {
        let (opt, schedule, clip) = self.optimizer_parts();
        OptimizerConfig::new(opt).with_schedule(schedule).with_clip(clip)
    }

    /// L1/L2 on the LSTM and Dense kernels (`l1`, `l2` ≥ 0: see [`TrainArgs::validate`]).
    pub fn penalties(&self, spec: &Spec) -> Penalties {
        let (l1, l2) = (self.optimizer.l1.unwrap_or(0.0), self.optimizer.l2.unwrap_or(0.0));
        Penalties::kernels(spec, Penalty::l1_l2(l1, l2))
    }

    /// The BPTT mode (`bptt_window` ≥ 1: see [`TrainArgs::validate`]).
    pub fn bptt(&self) -> Bptt {
        match self.run.bptt_window {
            Some(k) => Bptt::truncated(k),
            None => Bptt::FULL,
        }
    }
}

/// A cache key made from a group of typed settings ([`TrainArgs::data_key`],
/// [`TrainArgs::preprocessing_key`]): the group as JSON, which writes every float in its
/// shortest exact form, so equal keys mean equal settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SettingsKey(String);

/// `group` as JSON text, for [`SettingsKey`]s.
fn key_text<T: Serialize>(group: &T) -> String {
    serde_json::to_string(group).unwrap_or_default()
}

/// A setting whose value is refused, from a config file or a merge: names the key, the value
/// and why (`` `padding` = "psot": unknown variant `psot`, expected `pre` or `post` ``).
#[derive(Debug)]
pub struct KeyError {
    /// The key as a config file spells it (empty when no single key is to blame).
    pub key: String,
    /// The value as given.
    pub value: String,
    /// Why it is refused.
    pub problem: String,
}

impl KeyError {
    fn new(key: &str, value: &str, problem: &str) -> KeyError {
        // TOML errors come with a snippet of the probe document: keep the message line.
        let problem = problem
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains("-->"))
            .filter(|l| !l.starts_with("TOML parse error"))
            .find(|l| !l.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or(problem)
            .to_string();
        KeyError { key: key.into(), value: value.into(), problem }
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() || self.problem.contains("unknown field") {
            f.write_str(&self.problem)
        } else {
            write!(f, "`{}` = {}: {}", self.key, self.value, self.problem)
        }
    }
}

impl std::error::Error for KeyError {}

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
