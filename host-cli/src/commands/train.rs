//! `tinylstm train`: load and split data, fit the preprocessing on the training split, train,
//! checkpoint, evaluate on the test split, and write the model, history, pictures and firmware
//! exports into the output folder.

use super::report::{print_report, EvalReport};
use crate::bundle::{ModelBundle, ModelMeta, Task, TrainState};
use crate::config::{SpecInput, TrainArgs};
use crate::data::{
    load_sequence_csv, load_text_csv, Column, Dataset, DatasetKind, LabelKind, SequenceCsvOptions,
    TextCsvOptions,
};
use crate::fit::{EpochStats, FitConfig, Trainer};
use crate::normalize::Normalizer;
use crate::pad::Side;
use crate::prepare::Preprocessor;
use crate::split::{stratified_holdout, stratified_split, Split, SplitFractions};
use crate::synthetic::{self, SyntheticConfig};
use crate::tokenizer::{Tokenizer, TokenizerConfig};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

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
    /// Samples of the built-in synthetic task [default: 2000].
    #[arg(long)]
    pub synthetic_samples: Option<usize>,
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

struct Loaded {
    data: Dataset,
    test: Option<Dataset>,
    split: Split,
    class_names: Vec<String>,
    classes: Option<u32>,
    name: String,
}

fn load_all(cmd: &TrainCmd, args: &TrainArgs) -> Result<Loaded> {
    let real = args.head == Some(crate::config::HeadKind::Linear);
    let seed = args.seed();
    let (data, test, name) = match &args.data {
        None => {
            if args.test.is_some() {
                bail!("--test needs --data");
            }
            let cfg = SyntheticConfig {
                samples: cmd.synthetic_samples.unwrap_or(2000),
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
    let resumed = if cmd.resume {
        let ck = ModelBundle::load(&checkpoint_path)
            .with_context(|| format!("--resume: no usable checkpoint in {}", out_dir.display()))?;
        let stored = ck.meta.config.clone().ok_or_else(|| {
            anyhow!("{}: checkpoint has no training settings", checkpoint_path.display())
        })?;
        args = stored.overlaid(&cmd.args);
        Some(ck)
    } else {
        None
    };
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create output folder {}", out_dir.display()))?;

    let loaded = load_all(cmd, &args)?;
    let (mut meta, tokenizer, normalizer, input) = preprocessing(&args, &loaded)?;
    let spec = args.spec(input, loaded.classes)?;
    let optimizer = args.optimizer()?;
    let penalties = args.penalties(&spec)?;
    let bptt = args.bptt()?;
    let channels = spec.step_width();
    meta.config = Some(args.clone());
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
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let default_epochs = if args.data.is_none() { 25 } else { 10 };
    let epochs = args.epochs.unwrap_or(default_epochs);
    let monitor = args.monitor.unwrap_or(if valid.len > 0 {
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
        restore_best: args.restore_best.unwrap_or(true),
        quiet: cmd.quiet,
    };
    let trainer = Trainer::new(fit_cfg)?;

    let mut params = vec![0.0f32; spec.param_count()];
    let mut opt_state = Vec::new();
    let mut best = Vec::new();
    let mut state = TrainState::default();
    match resumed {
        Some(ck) => {
            if ck.spec != spec {
                bail!(
                    "{}: the checkpoint's model does not match these settings",
                    checkpoint_path.display()
                );
            }
            params = ck.params;
            opt_state = ck.optimizer_state.unwrap_or_default();
            best = ck.best_params.unwrap_or_default();
            state = ck.meta.train_state.unwrap_or_default();
            if !cmd.quiet {
                eprintln!("Resuming after epoch {} (step {})", state.epochs_done, state.iteration);
            }
        }
        None => tinylstm::init::init_params(&spec, args.seed(), &mut params)
            .map_err(|e| anyhow!("initialising the model: {e}"))?,
    }
    if !cmd.quiet {
        eprintln!(
            "Training {} on {} samples ({} validation, {} test), {} steps each, {} parameters, {} threads",
            loaded.name, train.len, valid.len, test.len, train.steps, spec.param_count(), threads
        );
    }
    let bundle_for = |params: &[f32], meta: &ModelMeta| ModelBundle {
        spec,
        params: params.to_vec(),
        tokenizer: tokenizer.clone(),
        normalizer: normalizer.clone(),
        meta: meta.clone(),
        optimizer_state: None,
        best_params: None,
    };
    let model_path = out_dir.join("model.tlm");
    let valid_opt = if valid.len > 0 { Some(&valid) } else { None };
    trainer.fit(&mut params, &mut opt_state, &mut best, &mut state, &train, valid_opt, |ev| {
        let mut ck_meta = meta.clone();
        ck_meta.train_state = Some(ev.state.clone());
        let mut ck = bundle_for(ev.params, &ck_meta);
        ck.optimizer_state = Some(ev.optimizer_state.to_vec());
        ck.best_params = Some(ev.best_params.to_vec());
        ck.save(&checkpoint_path)?;
        if ev.improved {
            bundle_for(ev.best_params, &meta).save(&model_path)?;
        }
        write_history(&out_dir, &ev.state.history)
    })?;

    let final_bundle = bundle_for(&params, &meta);
    final_bundle.save(&model_path)?;
    write_history(&out_dir, &state.history)?;
    let mut written =
        vec![model_path.clone(), out_dir.join("history.json"), out_dir.join("history.csv")];
    written.extend(history_plots(&out_dir, &state.history, state.best.map(|b| b.1))?);

    let report = if test.len > 0 {
        let (loss, outputs) = trainer.evaluate(&params, &test)?;
        Some(EvalReport::new(&spec, &final_bundle.class_names(), loss, &test, &outputs)?)
    } else {
        None
    };
    if let Some(r) = &report {
        crate::export::write_atomic(&out_dir.join("metrics.json"), &serde_json::to_vec_pretty(r)?)?;
        written.push(out_dir.join("metrics.json"));
        if let Some(cm) = &r.confusion {
            written.extend(crate::plots::confusion(
                &out_dir.join("confusion"),
                cm,
                &final_bundle.class_names(),
                &format!("{} — test split", loaded.name),
            )?);
        }
    }
    written.extend(super::export::firmware_exports(&final_bundle, &out_dir)?);
    if let Some(r) = &report {
        println!("Test metrics ({} samples):", test.len);
        print_report(r);
    }
    let total: f64 = state.history.iter().map(|h| h.seconds).sum();
    let samples: f64 = state.history.iter().map(|h| h.samples_per_sec * h.seconds).sum();
    if total > 0.0 {
        println!(
            "Training throughput: {:.0} samples/s over {} epochs ({:.1} s)",
            samples / total,
            state.history.len(),
            total
        );
    }
    println!("Wrote:");
    for p in written {
        println!("  {}", p.display());
    }
    Ok(())
}
