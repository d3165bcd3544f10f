//! [`TrainSession`]: one training run held in memory — built from settings (or a checkpoint),
//! advanced epoch budget by epoch budget ([`TrainSession::fit_to`]), evaluated in between,
//! continued later, exactly as if it had run in one go.

use super::prepared::{prepare_data, DataCache, PreparedData};
use crate::history::TrainState;
use crate::model_file::{ModelBundle, ModelMeta};
use crate::preprocess::Prepared;
use crate::report::EvalReport;
use crate::settings::TrainArgs;
use crate::training::fit::{EpochEvent, FitConfig, Trainer};
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tinylstm::Spec;

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
    /// Worker threads, overriding `args.run.threads` [default: all cores].
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
    /// restores them from `opts.resume`. `args` are settings that passed
    /// [`TrainArgs::validate`] (flags, config files and tune trials are validated where they
    /// are assembled). `opts.out_dir` and `opts.on_epoch` are not used here.
    pub fn new(args: &TrainArgs, opts: &RunOptions<'_>) -> Result<TrainSession> {
        let data = if args.data.task == Some(crate::settings::TaskKind::Forecast) {
            Arc::new(super::forecast::prepare_forecast(args)?)
        } else {
            prepare_data(args, opts.cache)?
        };
        let spec = super::prepared::with_mask(args.spec(data.input, data.classes)?, data.mask)?;
        let optimizer = args.optimizer();
        let penalties = args.penalties(&spec);
        let bptt = args.bptt();
        let mut meta = data.meta.clone();
        meta.config = Some(args.clone());
        let threads = opts
            .threads
            .or(args.run.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let default_epochs = if args.data.file.is_none() { 25 } else { 10 };
        let epochs = args.run.epochs.unwrap_or(default_epochs);
        if epochs == 0 {
            bail!("--epochs must be at least 1 (0 would write an untrained model over --out)");
        }
        crate::limits::check_count("--epochs", epochs)?;
        crate::limits::check_count("--patience", args.run.patience.unwrap_or(0))?;
        // Parameters, best parameters, gradients and up to two optimizer-state vectors, and
        // one gradient per thread.
        let p = spec.param_count() as u64;
        crate::limits::Machine::detect()?.check_memory(
            "the parameters, gradients and optimizer state",
            &format!(
                "the model's size ({p} parameters from --units, --embedding-dim, --num-words)"
            ),
            (threads as u64).checked_add(5).and_then(|n| n.checked_mul(p)?.checked_mul(4)),
        )?;
        let monitor = args.run.monitor.unwrap_or(if data.valid.len > 0 {
            crate::settings::Monitor::ValLoss
        } else {
            crate::settings::Monitor::Loss
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
            patience: args.run.patience.unwrap_or(0),
            min_delta: args.run.min_delta.unwrap_or(0.0),
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
            restore_best: args.run.restore_best.unwrap_or(true),
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
            bail!(
                "{}: the checkpoint's model does not match these settings: the checkpoint reads \
                 {}, these settings and data make {} (flags that change the model or the \
                 data's shape cannot change on resume)",
                origin.display(),
                crate::export::describe(&ck.spec),
                crate::export::describe(&self.spec)
            );
        }
        let want = self.trainer.config().optimizer.state_len(self.spec.param_count());
        let have = ck.optimizer_state.as_ref().map_or(0, Vec::len);
        if have != want {
            bail!(
                "{}: the optimizer-state section holds {have} values, but the optimizer of these \
                 settings needs {want} ({} parameters); the checkpoint was written with another \
                 optimizer or is damaged, and resuming would silently restart the optimizer",
                origin.display(),
                self.spec.param_count()
            );
        }
        self.params = ck.params.clone();
        self.optimizer_state = ck.optimizer_state.clone().unwrap_or_default();
        self.best_params = ck.best_params.clone().unwrap_or_default();
        self.state = ck.meta.train_state.clone().unwrap_or_default();
        Ok(())
    }

    /// The metric early stopping and the best checkpoint watch.
    pub fn monitor(&self) -> crate::settings::Monitor {
        self.trainer.config().monitor
    }

    /// The epoch whose weights [`final_params`](TrainSession::final_params) returns when that is
    /// not the last epoch trained (Keras `restore_best_weights`); `None` otherwise.
    pub fn restored_epoch(&self) -> Option<usize> {
        let (_, epoch) = self.state.best?;
        let restored = self.restore_best && self.best_params.len() == self.params.len();
        (restored && epoch != self.state.epochs_done).then_some(epoch)
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

    /// The model's outputs ([`final_params`](TrainSession::final_params)) on `data`, `[N][K]`.
    pub fn outputs(&self, data: &Prepared) -> Result<Vec<f32>> {
        Ok(self.trainer.evaluate(self.final_params(), data)?.1)
    }

    /// Metrics of the model ([`final_params`](TrainSession::final_params)) on `data`.
    pub fn evaluate(&self, data: &Prepared) -> Result<EvalReport> {
        self.evaluate_params(self.final_params(), data)
    }
}
