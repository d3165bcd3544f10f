//! `tinylstm train`: load and split data, fit the preprocessing on the training split, train,
//! checkpoint, evaluate on the test split, and write the model, history, pictures and firmware
//! exports into the output folder.
//!
//! The pipeline is a library too, so other commands (hyperparameter search) run trainings as
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

use super::report::{print_report, EvalReport};
use crate::bundle::{ModelBundle, ModelMeta, Task, TrainState};
use crate::config::{SpecInput, TrainArgs};
use crate::data::{
    load_sequence_csv, load_text_csv, Column, Dataset, DatasetKind, LabelKind, SequenceCsvOptions,
    TextCsvOptions,
};
use crate::fit::{EpochEvent, EpochStats, FitConfig, Trainer};
use crate::normalize::Normalizer;
use crate::pad::Side;
use crate::prepare::{Prepared, Preprocessor};
use crate::split::{stratified_holdout, stratified_split, Split, SplitFractions};
use crate::synthetic::{self, SyntheticConfig};
use crate::tokenizer::{Tokenizer, TokenizerConfig};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tinylstm::Spec;

/// `tinylstm train` options.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  tinylstm train                                   # built-in synthetic gestures → out/synthetic/
  tinylstm train --data sms.csv --maxlen 60 --epochs 10 --patience 2
  tinylstm train --data train.csv --test test.csv --channels 6 --units 64 --lr 1e-2 --batch-size 16
  tinylstm train --config train.toml --lr 3e-4     # flags override the file
  tinylstm train --out runs/a --resume             # continue an interrupted run")]
pub struct TrainCmd {
    /// Every training setting.
    #[command(flatten)]
    pub args: TrainArgs,
    /// TOML file with the same settings as the flags (flags win).
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Output folder [default: out/<data file stem>, or out/synthetic].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run whose checkpoint is in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// No progress bars or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

fn column(s: &Option<String>, default: usize) -> Column {
    match s {
        None => Column::Index(default),
        Some(v) => v.parse().map(Column::Index).unwrap_or_else(|_| Column::Name(v.clone())),
    }
}

fn side(s: &Option<String>) -> Side {
    match s.as_deref() {
        Some("post") => Side::Post,
        _ => Side::Pre,
    }
}

/// Loads a data file as the args say (text unless `--channels`).
pub fn load(path: &Path, args: &TrainArgs, real_labels: bool) -> Result<Dataset> {
    let labels = if real_labels { LabelKind::Real } else { LabelKind::Class };
    let ds = match args.channels {
        Some(0) => bail!("--channels must be at least 1"),
        Some(c) => load_sequence_csv(
            path,
            &SequenceCsvOptions {
                channels: c,
                has_header: args.header.or(Some(false)),
                labels,
                num_classes: args.classes,
            },
        )?,
        None => load_text_csv(
            path,
            &TextCsvOptions {
                label_column: column(&args.label_column, 0),
                text_column: column(&args.text_column, 1),
                has_header: args.header,
                labels,
                num_classes: args.classes,
            },
        )?,
    };
    if ds.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(ds)
}

/// Loaded data and its split (what does not depend on the preprocessing settings).
#[derive(Debug)]
struct Loaded {
    data: Dataset,
    test: Option<Dataset>,
    split: Split,
    class_names: Vec<String>,
    classes: Option<u32>,
    name: String,
}

fn load_all(args: &TrainArgs) -> Result<Loaded> {
    let real = args.head == Some(crate::config::HeadKind::Linear);
    let seed = args.split_seed();
    let (data, test, name) = match &args.data {
        None => {
            if args.test.is_some() {
                bail!("--test needs --data");
            }
            let cfg = SyntheticConfig {
                samples: args.synthetic_samples.unwrap_or(2000),
                ..SyntheticConfig::default()
            };
            if cfg.samples < 4 * synthetic::CLASSES {
                bail!("--synthetic-samples must be at least {}", 4 * synthetic::CLASSES);
            }
            (synthetic::generate(&cfg), None, "synthetic".to_string())
        }
        Some(path) => {
            let data = load(path, args, real)?;
            let test = match &args.test {
                Some(t) => Some(load(t, args, real)?),
                None => None,
            };
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            (data, test, name.unwrap_or_else(|| "model".into()))
        }
    };
    let classes = if real {
        None
    } else {
        let k = match args.classes {
            Some(k) => k,
            None => {
                let max = data
                    .samples
                    .iter()
                    .chain(test.iter().flat_map(|t| t.samples.iter()))
                    .filter_map(|s| s.label.class())
                    .max()
                    .unwrap_or(0);
                max + 1
            }
        };
        if k < 2 {
            bail!(
                "{}: all labels are 0; a classifier needs at least 2 classes (or --head linear)",
                data.source.display()
            );
        }
        data.check_classes(k, true)?;
        if let Some(t) = &test {
            t.check_classes(k, false)?;
        }
        Some(k)
    };
    let labels: Vec<u32> = data.samples.iter().map(|s| s.label.class().unwrap_or(0)).collect();
    let split = if test.is_some() {
        stratified_holdout(
            &labels,
            args.valid_split.unwrap_or(crate::split::DEFAULT_HOLDOUT),
            seed,
        )?
    } else {
        let valid = args.valid_split.unwrap_or(0.1);
        let test_frac = args.test_split.unwrap_or(0.1);
        stratified_split(&labels, SplitFractions { train: 1.0 - valid - test_frac, valid }, seed)?
    };
    if split.train.is_empty() {
        bail!("the training split is empty ({} samples)", data.len());
    }
    let class_names = match (&args.data, classes) {
        (None, _) => synthetic::CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        (_, Some(k)) => (0..k).map(|i| i.to_string()).collect(),
        (_, None) => Vec::new(),
    };
    Ok(Loaded { data, test, split, class_names, classes, name })
}

/// Fits the tokenizer or the normaliser on the training split and builds the metadata.
fn preprocessing(
    args: &TrainArgs,
    l: &Loaded,
) -> Result<(ModelMeta, Option<Tokenizer>, Option<Normalizer>, SpecInput)> {
    let padding = side(&args.padding);
    let truncating = side(&args.truncating);
    match l.data.kind {
        DatasetKind::Text => {
            let cfg = TokenizerConfig {
                num_words: Some(args.num_words.unwrap_or(10000)),
                oov_token: args.oov_token.clone(),
                char_level: args.char_level.unwrap_or(false),
                lower: args.lower.unwrap_or(true),
                filters: args
                    .filters
                    .clone()
                    .unwrap_or_else(|| crate::tokenizer::DEFAULT_FILTERS.into()),
                ..TokenizerConfig::default()
            };
            let mut tok = Tokenizer::new(cfg)?;
            tok.fit_on_texts(
                l.split.train.iter().map(|&i| l.data.samples[i].text().unwrap_or("")),
            )?;
            let maxlen = args.maxlen.unwrap_or(60);
            if maxlen == 0 {
                bail!("--maxlen must be at least 1");
            }
            let vocab = tok.vocab_size().max(2);
            let mut meta = ModelMeta::new(Task::Text, maxlen, padding, truncating);
            meta.class_names = l.class_names.clone();
            Ok((meta, Some(tok), None, SpecInput::Tokens { vocab }))
        }
        DatasetKind::Sequence { channels } => {
            let longest =
                l.split.train.iter().filter_map(|&i| l.data.samples[i].steps()).max().unwrap_or(1);
            let steps = args.maxlen.unwrap_or(longest);
            if steps == 0 {
                bail!("--maxlen must be at least 1");
            }
            let norm = if args.standardize.unwrap_or(true) {
                Some(Normalizer::fit_dataset(&l.data, &l.split.train)?)
            } else {
                None
            };
            let mut meta = ModelMeta::new(Task::Sequence, steps, padding, truncating);
            meta.class_names = l.class_names.clone();
            Ok((meta, None, norm, SpecInput::Channels(channels)))
        }
    }
}

/// Data loaded, split and preprocessed for one set of data settings: what every run with those
/// settings shares.
#[derive(Debug)]
pub struct PreparedData {
    /// Name of the data (file stem, or `synthetic`).
    pub name: String,
    /// Model metadata without the training settings (task, steps, padding, class names).
    pub meta: ModelMeta,
    /// Tokenizer fitted on the training split (text).
    pub tokenizer: Option<Tokenizer>,
    /// Standardisation fitted on the training split (sequences).
    pub normalizer: Option<Normalizer>,
    /// Input side of the model spec (vocabulary size or channels).
    pub input: SpecInput,
    /// Number of classes (`None`: real-valued labels).
    pub classes: Option<u32>,
    /// Training split.
    pub train: Prepared,
    /// Validation split (may be empty).
    pub valid: Prepared,
    /// Test split: the `--test` file, or the held-out part of the data (may be empty).
    pub test: Prepared,
}

/// Settings that decide what [`load_all`] returns.
const LOAD_KEYS: &[&str] = &[
    "data",
    "test",
    "synthetic_samples",
    "channels",
    "label_column",
    "text_column",
    "header",
    "classes",
    "valid_split",
    "test_split",
];
/// Settings that, on top of [`LOAD_KEYS`], decide the preprocessing.
const PREPARE_KEYS: &[&str] = &[
    "num_words",
    "oov_token",
    "char_level",
    "lower",
    "filters",
    "maxlen",
    "padding",
    "truncating",
    "standardize",
];

fn cache_key(args: &TrainArgs, keys: &[&str]) -> String {
    let v = serde_json::to_value(args).unwrap_or_default();
    let mut key = format!(
        "split_seed={};real={}",
        args.split_seed(),
        args.head == Some(crate::config::HeadKind::Linear)
    );
    for k in keys {
        key += &format!(";{k}={}", v.get(*k).unwrap_or(&serde_json::Value::Null));
    }
    key
}

type CacheSlot<T> = Arc<OnceLock<std::result::Result<Arc<T>, String>>>;

/// Loaded and prepared data shared between runs (hyperparameter trials), keyed by the settings
/// that decide them: data files, columns, split fractions and split seed for loading; on top of
/// those maxlen, num_words, tokenizer and padding settings and standardisation for preparing.
/// Runs that differ only in model or optimizer settings share one copy. Safe to share between
/// threads; concurrent requests for the same key compute it once.
#[derive(Debug, Default)]
pub struct DataCache {
    loaded: Mutex<HashMap<String, CacheSlot<Loaded>>>,
    prepared: Mutex<HashMap<String, CacheSlot<PreparedData>>>,
}

impl DataCache {
    /// An empty cache.
    pub fn new() -> DataCache {
        DataCache::default()
    }

    /// Number of distinct prepared datasets held.
    pub fn prepared_len(&self) -> usize {
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn get<T>(
        map: &Mutex<HashMap<String, CacheSlot<T>>>,
        key: String,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<T>> {
        let slot =
            map.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().clone();
        slot.get_or_init(|| make().map(Arc::new).map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow!(e))
    }
}

/// Loads, splits and preprocesses the data as `args` say, through `cache` when given.
pub fn prepare_data(args: &TrainArgs, cache: Option<&DataCache>) -> Result<Arc<PreparedData>> {
    let prepare = |loaded: &Loaded| -> Result<PreparedData> {
        let (meta, tokenizer, normalizer, input) = preprocessing(args, loaded)?;
        let channels = match input {
            SpecInput::Tokens { .. } => 1,
            SpecInput::Channels(c) => c,
        };
        let pre = Preprocessor {
            meta: &meta,
            tokenizer: tokenizer.as_ref(),
            normalizer: normalizer.as_ref(),
            channels,
        };
        let train = pre.prepare_indices(&loaded.data, &loaded.split.train)?;
        let valid = pre.prepare_indices(&loaded.data, &loaded.split.valid)?;
        let test = match &loaded.test {
            Some(t) => pre.prepare_indices(t, &(0..t.len()).collect::<Vec<_>>())?,
            None => pre.prepare_indices(&loaded.data, &loaded.split.test)?,
        };
        Ok(PreparedData {
            name: loaded.name.clone(),
            meta,
            tokenizer,
            normalizer,
            input,
            classes: loaded.classes,
            train,
            valid,
            test,
        })
    };
    match cache {
        None => Ok(Arc::new(prepare(&load_all(args)?)?)),
        Some(c) => {
            let load_key = cache_key(args, LOAD_KEYS);
            let prep_key = format!("{load_key};{}", cache_key(args, PREPARE_KEYS));
            DataCache::get(&c.prepared, prep_key, || {
                let loaded = DataCache::get(&c.loaded, load_key, || load_all(args))?;
                prepare(&loaded)
            })
        }
    }
}

/// A per-epoch callback of [`RunOptions`].
pub type EpochCallback<'a> = dyn FnMut(&EpochEvent<'_>) -> Result<()> + Send + 'a;

/// How a training run is carried out, besides its [`TrainArgs`].
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Output folder for the model, checkpoint, history, pictures, metrics and firmware exports;
    /// `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// No progress bars, per-epoch lines or set-up messages.
    pub quiet: bool,
    /// Worker threads, overriding `args.threads` [default: all cores].
    pub threads: Option<usize>,
    /// Share loaded and prepared data with other runs.
    pub cache: Option<&'a DataCache>,
    /// Continue from this checkpoint (its path, for messages).
    pub resume: Option<(PathBuf, ModelBundle)>,
    /// Called after every epoch (after the checkpoint is written); an error stops the run.
    pub on_epoch: Option<&'a mut EpochCallback<'a>>,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("out_dir", &self.out_dir)
            .field("quiet", &self.quiet)
            .field("threads", &self.threads)
            .field("cache", &self.cache.is_some())
            .field("resume", &self.resume.as_ref().map(|r| &r.0))
            .field("on_epoch", &self.on_epoch.is_some())
            .finish()
    }
}

/// What a training run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The final model (the best epoch's weights unless `restore_best = false`).
    pub model: ModelBundle,
    /// Progress and per-epoch history.
    pub state: TrainState,
    /// Metrics on the validation split (when it is not empty).
    pub valid_report: Option<EvalReport>,
    /// Metrics on the test split (when it is not empty).
    pub test_report: Option<EvalReport>,
    /// Samples in the training, validation and test splits.
    pub sizes: (usize, usize, usize),
    /// Name of the data (file stem, or `synthetic`).
    pub name: String,
    /// Threads used.
    pub threads: usize,
    /// Files written into the output folder.
    pub written: Vec<PathBuf>,
}

/// One training run held in memory: prepared data, model, weights, optimizer state and progress.
///
/// [`fit_to`](TrainSession::fit_to) advances it to a number of epochs; calling it again with a
/// larger number continues exactly where it stopped (same weights, optimizer state, schedule
/// step, shuffling), so a run advanced in several calls equals one run in a single call.
#[derive(Debug)]
pub struct TrainSession {
    /// The settings.
    pub args: TrainArgs,
    /// The data.
    pub data: Arc<PreparedData>,
    /// The model architecture.
    pub spec: Spec,
    /// Model metadata, with the settings.
    pub meta: ModelMeta,
    /// Current weights.
    pub params: Vec<f32>,
    /// Optimizer state.
    pub optimizer_state: Vec<f32>,
    /// Weights of the best epoch so far.
    pub best_params: Vec<f32>,
    /// Progress and history.
    pub state: TrainState,
    trainer: Trainer,
    restore_best: bool,
}

impl TrainSession {
    /// Prepares data (through `opts.cache`), builds the model and initialises its weights, or
    /// restores them from `opts.resume`. `opts.out_dir` and `opts.on_epoch` are not used here.
    pub fn new(args: &TrainArgs, opts: &RunOptions<'_>) -> Result<TrainSession> {
        args.check_floats()?;
        let data = prepare_data(args, opts.cache)?;
        let spec = args.spec(data.input, data.classes)?;
        let optimizer = args.optimizer()?;
        let penalties = args.penalties(&spec)?;
        let bptt = args.bptt()?;
        let mut meta = data.meta.clone();
        meta.config = Some(args.clone());
        let threads = opts
            .threads
            .or(args.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let default_epochs = if args.data.is_none() { 25 } else { 10 };
        let epochs = args.epochs.unwrap_or(default_epochs);
        let monitor = args.monitor.unwrap_or(if data.valid.len > 0 {
            crate::config::Monitor::ValLoss
        } else {
            crate::config::Monitor::Loss
        });
        let fit_cfg = FitConfig {
            spec,
            optimizer,
            penalties,
            bptt,
            batch_size: args.batch_size(),
            epochs,
            seed: args.seed(),
            threads,
            monitor,
            patience: args.patience.unwrap_or(0),
            min_delta: args.min_delta.unwrap_or(0.0),
            // Restored by `final_params`, so a session can be continued after any epoch.
            restore_best: false,
            quiet: opts.quiet,
            kernels: args.kernels(),
        };
        let trainer = Trainer::new(fit_cfg)?;
        let mut session = TrainSession {
            args: args.clone(),
            data,
            spec,
            meta,
            params: vec![0.0f32; spec.param_count()],
            optimizer_state: Vec::new(),
            best_params: Vec::new(),
            state: TrainState::default(),
            trainer,
            restore_best: args.restore_best.unwrap_or(true),
        };
        match &opts.resume {
            Some((path, ck)) => session.restore(ck, path)?,
            None => tinylstm::init::init_params(&spec, args.seed(), &mut session.params)
                .map_err(|e| anyhow!("initialising the model: {e}"))?,
        }
        Ok(session)
    }

    /// Takes weights, optimizer state and progress from a checkpoint written by
    /// [`TrainSession::checkpoint`] (or `tinylstm train`); `origin` names it in errors.
    pub fn restore(&mut self, ck: &ModelBundle, origin: &Path) -> Result<()> {
        if ck.spec != self.spec {
            bail!("{}: the checkpoint's model does not match these settings", origin.display());
        }
        self.params = ck.params.clone();
        self.optimizer_state = ck.optimizer_state.clone().unwrap_or_default();
        self.best_params = ck.best_params.clone().unwrap_or_default();
        self.state = ck.meta.train_state.clone().unwrap_or_default();
        Ok(())
    }

    /// Epochs the settings ask for (`--epochs`, or its default).
    pub fn planned_epochs(&self) -> usize {
        self.trainer.config().epochs
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.trainer.config().threads
    }

    /// Early stopping ended the run (no improvement for `--patience` epochs).
    pub fn stopped_early(&self) -> bool {
        let p = self.trainer.config().patience;
        p > 0 && self.state.wait >= p
    }

    /// Nothing is left to train: the planned epochs are done or early stopping ended the run.
    pub fn finished(&self) -> bool {
        self.stopped_early() || self.state.epochs_done >= self.planned_epochs()
    }

    /// Trains until `epochs` epochs are done in total (or early stopping), calling `on_epoch`
    /// after each. Training stops at the first error (a diverging loss, an error of
    /// `on_epoch`) with no step applied after it.
    pub fn fit_to(
        &mut self,
        epochs: usize,
        on_epoch: impl FnMut(&EpochEvent<'_>) -> Result<()>,
    ) -> Result<()> {
        if self.stopped_early() {
            return Ok(());
        }
        let other;
        let trainer = if epochs == self.trainer.config().epochs {
            &self.trainer
        } else {
            other = Trainer::new(FitConfig { epochs, ..self.trainer.config().clone() })?;
            &other
        };
        let valid = if self.data.valid.len > 0 { Some(&self.data.valid) } else { None };
        trainer.fit(
            &mut self.params,
            &mut self.optimizer_state,
            &mut self.best_params,
            &mut self.state,
            &self.data.train,
            valid,
            on_epoch,
        )
    }

    /// The model's weights as they would be kept now: the best epoch's (Keras
    /// `restore_best_weights`, the default) or the current ones.
    pub fn final_params(&self) -> &[f32] {
        if self.restore_best
            && self.state.best.is_some()
            && self.best_params.len() == self.params.len()
        {
            &self.best_params
        } else {
            &self.params
        }
    }

    fn bundle_with(&self, params: Vec<f32>, meta: ModelMeta) -> ModelBundle {
        ModelBundle {
            spec: self.spec,
            params,
            tokenizer: self.data.tokenizer.clone(),
            normalizer: self.data.normalizer.clone(),
            meta,
            optimizer_state: None,
            best_params: None,
        }
    }

    /// The model as it stands ([`final_params`](TrainSession::final_params)).
    pub fn model(&self) -> ModelBundle {
        self.bundle_with(self.final_params().to_vec(), self.meta.clone())
    }

    /// A checkpoint: current weights, optimizer state, best weights and progress, from which
    /// [`TrainSession::restore`] (or `tinylstm train --resume`) continues.
    pub fn checkpoint(&self) -> ModelBundle {
        let mut meta = self.meta.clone();
        meta.train_state = Some(self.state.clone());
        let mut ck = self.bundle_with(self.params.clone(), meta);
        ck.optimizer_state = Some(self.optimizer_state.clone());
        ck.best_params = Some(self.best_params.clone());
        ck
    }

    /// Metrics of `params` on `data` (one of this session's splits, or data prepared the same
    /// way).
    pub fn evaluate_params(&self, params: &[f32], data: &Prepared) -> Result<EvalReport> {
        let (loss, outputs) = self.trainer.evaluate(params, data)?;
        let names = self.bundle_with(Vec::new(), self.meta.clone()).class_names();
        EvalReport::new(&self.spec, &names, loss, data, &outputs)
    }

    /// Metrics of the model ([`final_params`](TrainSession::final_params)) on `data`.
    pub fn evaluate(&self, data: &Prepared) -> Result<EvalReport> {
        self.evaluate_params(self.final_params(), data)
    }
}

/// Runs a whole training as `tinylstm train` does, without its console report: prepares the
/// data, trains (resuming from `opts.resume`), and evaluates on the validation and test splits.
/// With `opts.out_dir`, writes what `train` writes there: `checkpoint.tlm` after every epoch,
/// `model.tlm` (whenever the monitored value improves, and at the end), `history.json`/`.csv`,
/// loss/metric curves, `metrics.json` and the confusion matrix (test split), and firmware
/// exports. Every file is written atomically.
pub fn train_model(args: &TrainArgs, opts: RunOptions<'_>) -> Result<TrainOutcome> {
    if let Some(dir) = &opts.out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }
    let mut session = TrainSession::new(args, &opts)?;
    let RunOptions { out_dir, quiet, resume, mut on_epoch, .. } = opts;
    let data = session.data.clone();
    let (train, valid, test) = (&data.train, &data.valid, &data.test);
    if !quiet {
        if resume.is_some() {
            eprintln!(
                "Resuming after epoch {} (step {})",
                session.state.epochs_done, session.state.iteration
            );
        }
        eprintln!(
            "Training {} on {} samples ({} validation, {} test), {} steps each, {} parameters, {} threads",
            data.name,
            train.len,
            valid.len,
            test.len,
            train.steps,
            session.spec.param_count(),
            session.threads()
        );
    }
    let model_path = out_dir.as_ref().map(|d| d.join("model.tlm"));
    let checkpoint_path = out_dir.as_ref().map(|d| d.join("checkpoint.tlm"));
    let bundle_for = {
        let spec = session.spec;
        let tokenizer = data.tokenizer.clone();
        let normalizer = data.normalizer.clone();
        move |params: &[f32], meta: &ModelMeta| ModelBundle {
            spec,
            params: params.to_vec(),
            tokenizer: tokenizer.clone(),
            normalizer: normalizer.clone(),
            meta: meta.clone(),
            optimizer_state: None,
            best_params: None,
        }
    };
    let meta = session.meta.clone();
    let planned = session.planned_epochs();
    session.fit_to(planned, |ev| {
        if let (Some(dir), Some(ck_path), Some(model_path)) =
            (&out_dir, &checkpoint_path, &model_path)
        {
            let mut ck_meta = meta.clone();
            ck_meta.train_state = Some(ev.state.clone());
            let mut ck = bundle_for(ev.params, &ck_meta);
            ck.optimizer_state = Some(ev.optimizer_state.to_vec());
            ck.best_params = Some(ev.best_params.to_vec());
            ck.save(ck_path)?;
            if ev.improved {
                bundle_for(ev.best_params, &meta).save(model_path)?;
            }
            write_history(dir, &ev.state.history)?;
        }
        match on_epoch.as_mut() {
            Some(f) => f(ev),
            None => Ok(()),
        }
    })?;

    let model = session.model();
    let valid_report = if valid.len > 0 { Some(session.evaluate(valid)?) } else { None };
    let test_report = if test.len > 0 { Some(session.evaluate(test)?) } else { None };
    let mut written = Vec::new();
    if let (Some(dir), Some(model_path)) = (&out_dir, &model_path) {
        model.save(model_path)?;
        write_history(dir, &session.state.history)?;
        written.extend([model_path.clone(), dir.join("history.json"), dir.join("history.csv")]);
        written.extend(history_plots(
            dir,
            &session.state.history,
            session.state.best.map(|b| b.1),
        )?);
        if let Some(r) = &test_report {
            crate::export::write_atomic(&dir.join("metrics.json"), &serde_json::to_vec_pretty(r)?)?;
            written.push(dir.join("metrics.json"));
            if let Some(cm) = &r.confusion {
                written.extend(crate::plots::confusion(
                    &dir.join("confusion"),
                    cm,
                    &model.class_names(),
                    &format!("{} — test split", data.name),
                )?);
            }
        }
        written.extend(super::export::firmware_exports(&model, dir)?);
    }
    let threads = session.threads();
    Ok(TrainOutcome {
        model,
        state: session.state,
        valid_report,
        test_report,
        sizes: (train.len, valid.len, test.len),
        name: data.name.clone(),
        threads,
        written,
    })
}

/// Writes `history.json` and `history.csv`.
pub fn write_history(dir: &Path, history: &[EpochStats]) -> Result<()> {
    let json = serde_json::to_vec_pretty(history)?;
    crate::export::write_atomic(&dir.join("history.json"), &json)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
        "samples_per_sec",
    ])?;
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for h in history {
        w.write_record([
            h.epoch.to_string(),
            h.loss.to_string(),
            opt(h.accuracy),
            opt(h.val_loss),
            opt(h.val_accuracy),
            h.lr.to_string(),
            h.seconds.to_string(),
            h.samples_per_sec.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow!("history.csv: {e}"))?;
    crate::export::write_atomic(&dir.join("history.csv"), &bytes)?;
    Ok(())
}

fn history_plots(dir: &Path, history: &[EpochStats], best: Option<usize>) -> Result<Vec<PathBuf>> {
    let col = |f: fn(&EpochStats) -> Option<f64>| -> Vec<f64> {
        history.iter().map(|h| f(h).unwrap_or(f64::NAN)).collect()
    };
    let loss = col(|h| Some(h.loss));
    let val_loss = col(|h| h.val_loss);
    let acc = col(|h| h.accuracy);
    let val_acc = col(|h| h.val_accuracy);
    let mut metrics = Vec::new();
    if acc.iter().any(|v| v.is_finite()) {
        metrics.push(("accuracy", acc.as_slice(), val_acc.as_slice()));
    }
    let view =
        crate::plots::HistoryView { loss: &loss, val_loss: &val_loss, metrics, best_epoch: best };
    Ok(crate::plots::training_curves(dir, &view)?)
}

/// Runs `tinylstm train`.
pub fn run(cmd: &TrainCmd) -> Result<()> {
    let file_args = match &cmd.config {
        Some(p) => TrainArgs::from_toml_file(p)?,
        None => TrainArgs::default(),
    };
    let mut args = file_args.overlaid(&cmd.args);
    let out_dir = cmd.out.clone().unwrap_or_else(|| {
        let stem = args
            .data
            .as_ref()
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned());
        PathBuf::from("out").join(stem.unwrap_or_else(|| "synthetic".into()))
    });
    let checkpoint_path = out_dir.join("checkpoint.tlm");
    let resume = if cmd.resume {
        let ck = ModelBundle::load(&checkpoint_path)
            .with_context(|| format!("--resume: no usable checkpoint in {}", out_dir.display()))?;
        let stored = ck.meta.config.clone().ok_or_else(|| {
            anyhow!("{}: checkpoint has no training settings", checkpoint_path.display())
        })?;
        args = stored.overlaid(&cmd.args);
        Some((checkpoint_path, ck))
    } else {
        None
    };
    let outcome = train_model(
        &args,
        RunOptions { out_dir: Some(out_dir), quiet: cmd.quiet, resume, ..RunOptions::default() },
    )?;
    if let Some(r) = &outcome.test_report {
        println!("Test metrics ({} samples):", outcome.sizes.2);
        print_report(r);
    }
    let history = &outcome.state.history;
    let total: f64 = history.iter().map(|h| h.seconds).sum();
    let samples: f64 = history.iter().map(|h| h.samples_per_sec * h.seconds).sum();
    if total > 0.0 {
        println!(
            "Training throughput: {:.0} samples/s over {} epochs ({:.1} s)",
            samples / total,
            history.len(),
            total
        );
    }
    println!("Wrote:");
    for p in &outcome.written {
        println!("  {}", p.display());
    }
    Ok(())
}
