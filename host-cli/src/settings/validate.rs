//! The one check of a set of training settings, [`TrainArgs::validate`], run once where settings
//! are assembled: flags over a config file (`train`, `tune`), a config file or a search file's
//! `[base]` when it is read, each hyperparameter-search trial. Everything built from settings
//! afterwards (`optimizer`, `penalties`, `bptt`, the session) takes them as checked.

use super::TrainArgs;
use tinylstm::error::Hyperparameter;
use tinylstm::Error;

/// A setting whose value no run accepts, found by [`TrainArgs::validate`]: the key as a config
/// file spells it (`lr`, `batch_size`), its value as given, and the rule it breaks.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingError {
    /// The key as a config file spells it; the flag is the same with `-` for `_`.
    pub key: &'static str,
    /// The value as given (`-1`, `NaN`, `[]`).
    pub value: String,
    /// The rule it breaks (`must be a finite number > 0`).
    pub problem: String,
}

impl SettingError {
    fn new(key: &'static str, value: impl ToString, problem: impl Into<String>) -> SettingError {
        SettingError { key, value: value.to_string(), problem: problem.into() }
    }

    /// The setting's flag (`--lr`, `--batch-size`).
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// The error as a flag's message (`--lr must be a finite number > 0, got -1`), for
    /// settings that came from the command line or were built in code.
    pub fn as_flag_error(&self) -> anyhow::Error {
        anyhow::anyhow!("{} {}, got {}", self.flag(), self.problem, self.value)
    }
}

impl std::fmt::Display for SettingError {
    /// As a config file's key: `` `lr` = -1: must be a finite number > 0 ``.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` = {}: {}", self.key, self.value, self.problem)
    }
}

impl std::error::Error for SettingError {}

impl From<super::InvalidFloat> for SettingError {
    fn from(bad: super::InvalidFloat) -> SettingError {
        // An f32 setting's value is held as f64: print it as the f32 it is (`-0.1`, not
        // `-0.10000000149011612`).
        let single = bad.value as f32;
        if f64::from(single) == bad.value {
            SettingError::new(bad.key, single, bad.problem)
        } else {
            SettingError::new(bad.key, bad.value, bad.problem)
        }
    }
}

/// The config key a core hyperparameter error is about (`clip` for a clipping bound).
fn hyperparameter_key(h: Hyperparameter, clip: &'static str) -> &'static str {
    match h {
        Hyperparameter::WeightDecay => "weight_decay",
        Hyperparameter::Momentum => "momentum",
        Hyperparameter::Beta1 => "beta_1",
        Hyperparameter::Beta2 => "beta_2",
        Hyperparameter::Epsilon => "epsilon",
        Hyperparameter::LearningRate | Hyperparameter::StepLearningRate => "lr",
        Hyperparameter::WarmupStart => "warmup_steps",
        Hyperparameter::ExponentialDecaySteps | Hyperparameter::CosineDecaySteps => "decay_steps",
        Hyperparameter::ExponentialDecayRate => "decay_rate",
        Hyperparameter::CosineAlpha => "alpha",
        Hyperparameter::StepDecaySize => "step_size",
        Hyperparameter::StepDecayGamma => "gamma",
        Hyperparameter::ClipBound => clip,
        _ => "optimizer",
    }
}

impl TrainArgs {
    /// Checks every setting that can be checked without data, naming the first bad one:
    /// - every float by its rule (`lr` finite and > 0, splits in [0, 1], `min_delta` ≥ 0,
    ///   `l1`/`l2` ≥ 0, the rest finite: see `floats()`); the flags' value parsers apply the
    ///   same rules when a flag is read;
    /// - counts that must be at least 1 (`batch_size`, `epochs`, `maxlen`, `num_words`,
    ///   `embedding_dim`, `threads`, `horizon`, `lookback`, `bptt_window`, `channels`, every
    ///   entry of `units`) and 1 to `MAX_LAYERS` LSTM layers;
    /// - at most one of `clipnorm`, `global_clipnorm`, `clipvalue`;
    /// - the optimizer, schedule and clipping as the core checks them (`beta_1` in [0, 1), …).
    ///
    /// Closed sets (optimizer, schedule, padding, …) are enums: a value outside them never gets
    /// this far. Called once where settings are assembled (see the module documentation).
    pub fn validate(&self) -> Result<(), SettingError> {
        if let Some(bad) = self.invalid_float() {
            return Err(bad.into());
        }
        let counts = [
            ("batch_size", self.run.batch_size),
            ("epochs", self.run.epochs),
            ("maxlen", self.preprocessing.maxlen),
            ("num_words", self.preprocessing.num_words),
            ("embedding_dim", self.model.embedding_dim),
            ("threads", self.run.threads),
            ("horizon", self.data.horizon),
            ("lookback", self.data.lookback),
            ("bptt_window", self.run.bptt_window),
            ("channels", self.data.channels),
        ];
        for (key, v) in counts {
            if v == Some(0) {
                return Err(SettingError::new(key, 0, "must be at least 1"));
            }
        }
        if let Some(units) = &self.model.units {
            let shown = format!("{units:?}");
            if units.is_empty() || units.len() > tinylstm::MAX_LAYERS {
                let rule = format!(
                    "must list 1 to {} layer sizes ({} given)",
                    tinylstm::MAX_LAYERS,
                    units.len()
                );
                return Err(SettingError::new("units", shown, rule));
            }
            if units.contains(&0) {
                return Err(SettingError::new(
                    "units",
                    shown,
                    "must list layer sizes of at least 1",
                ));
            }
        }
        let clips = [
            ("clipnorm", self.optimizer.clipnorm),
            ("global_clipnorm", self.optimizer.global_clipnorm),
            ("clipvalue", self.optimizer.clipvalue),
        ];
        let mut given = clips.iter().filter_map(|(k, v)| Some((*k, (*v)?)));
        let clip_key = match (given.next(), given.next()) {
            (Some((a, v)), Some((b, _))) => {
                let rule = format!(
                    "cannot be combined with {b} (--{}): Keras takes one of clipnorm, \
                     global_clipnorm, clipvalue",
                    b.replace('_', "-")
                );
                return Err(SettingError::new(a, v, rule));
            }
            (Some((a, _)), None) => a,
            _ => "clipnorm",
        };
        let (optimizer, schedule, clip) = self.optimizer_parts();
        let core = |e: Error| match e {
            Error::Hyperparameter(h) => {
                let key = hyperparameter_key(h, clip_key);
                SettingError::new(key, self.shown(key), h.to_string())
            }
            other => SettingError::new("optimizer", self.shown("optimizer"), other.to_string()),
        };
        optimizer.validate().map_err(core)?;
        schedule.validate().map_err(core)?;
        clip.validate().map_err(core)?;
        Ok(())
    }

    /// The value of `key` as these settings hold it (`default` when not given), for errors.
    fn shown(&self, key: &str) -> String {
        match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t.get(key).map_or("default".into(), |v| v.to_string()),
            _ => "default".into(),
        }
    }
}
