//! `tinylstm eval`, `tinylstm predict` and `tinylstm info`.

use crate::data::{Features, Label, Sample};
use crate::metrics::predicted_classes;
use crate::model_file::{ModelBundle, Task};
use crate::report::{print_report, EvalReport};
use crate::settings::{HeadKind, TrainArgs};
use crate::training::fit::{FitConfig, Trainer};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use std::path::PathBuf;
use tinylstm::{Bptt, Head, InputKind};

/// `tinylstm eval` options.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Example:
  tinylstm eval --model out/sms/model.tlm --data sms_test.csv --json")]
pub struct EvalCmd {
    /// The model.
    #[arg(long, value_name = "TLM")]
    pub model: PathBuf,
    /// Labelled data in the format the model was trained on.
    #[arg(long, value_name = "CSV")]
    pub data: PathBuf,
    /// Column of the label (text CSV): index or header name.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Column of the text (text CSV): index or header name.
    #[arg(long)]
    pub text_column: Option<String>,
    /// The CSV has a header row (default: detected for text, none for sequences).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub header: Option<bool>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also draw the confusion matrix into this folder (SVG and PNG).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run on the fast kernel path (FMA and SIMD; outputs differ from the device's in the last
    /// bits) instead of the exact one, whose outputs are the device's bit for bit.
    #[arg(long)]
    pub fast: bool,
}

fn trainer_for(bundle: &ModelBundle, threads: Option<usize>, fast: bool) -> Result<Trainer> {
    let penalties = match &bundle.meta.config {
        Some(c) => c.penalties(&bundle.spec)?,
        None => tinylstm::penalty::Penalties::NONE,
    };
    Trainer::new(FitConfig {
        spec: bundle.spec,
        optimizer: TrainArgs::default().optimizer()?,
        penalties,
        bptt: Bptt::FULL,
        batch_size: 1,
        epochs: 0,
        seed: 0,
        threads: threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        monitor: crate::settings::Monitor::Loss,
        patience: 0,
        min_delta: 0.0,
        restore_best: false,
        quiet: true,
        kernels: tinylstm_fast::KernelPath::choose(fast),
    })
}

fn data_args(
    bundle: &ModelBundle,
    label: &Option<String>,
    text: &Option<String>,
    header: Option<bool>,
) -> TrainArgs {
    TrainArgs {
        channels: match bundle.spec.input {
            InputKind::Channels(c) => Some(c),
            InputKind::Tokens { .. } => None,
        },
        label_column: label.clone(),
        text_column: text.clone(),
        header,
        head: (bundle.spec.head == Head::Linear).then_some(HeadKind::Linear),
        ..TrainArgs::default()
    }
}

/// Refuses a model whose parameters hold NaN or ±∞: its outputs would be NaN, not predictions.
fn refuse_non_finite(b: &ModelBundle, path: &std::path::Path) -> Result<()> {
    if let Some(i) = b.params.iter().position(|x| !x.is_finite()) {
        bail!(
            "{}: parameter {i} (of {}) is {}: the model's weights are not finite numbers (a \
             diverged or damaged model), so it cannot evaluate or predict",
            path.display(),
            b.params.len(),
            b.params[i]
        );
    }
    Ok(())
}

/// Refuses sequence data whose rows have another number of channels than the model, where the
/// value count hides it: every row of `path` holds the same `L` values, `L` is the model's
/// `T` steps times some `C'` ≠ `C` channels. (Read with the model's `C`, such rows would pass
/// as `L / C` steps, and predictions would be made on scrambled values.)
fn check_shape(b: &ModelBundle, path: &std::path::Path, samples: &[Sample]) -> Result<()> {
    let InputKind::Channels(c) = b.spec.input else { return Ok(()) };
    let t = b.meta.steps;
    let mut lens = samples.iter().filter_map(|s| s.values().map(<[f32]>::len));
    let Some(l) = lens.next() else { return Ok(()) };
    if t == 0 || l == t * c || l % t != 0 || lens.any(|x| x != l) {
        return Ok(());
    }
    bail!(
        "{}: every row holds {l} values, {t} steps × {} channels, but the model reads {c} channels \
         per step ({t} × {c} = {} values per row); if the rows really are {} steps of \
         {c} channels, pad or cut them to {t} steps",
        path.display(),
        l / t,
        t * c,
        l / c
    );
}

/// Runs `tinylstm eval`.
pub fn run_eval(cmd: &EvalCmd) -> Result<()> {
    if let Some(dir) = &cmd.plots {
        check_plots_folder(dir, &[("--model", &cmd.model), ("--data", &cmd.data)])?;
    }
    let bundle = ModelBundle::load(&cmd.model)?;
    refuse_non_finite(&bundle, &cmd.model)?;
    let args = data_args(&bundle, &cmd.label_column, &cmd.text_column, cmd.header);
    let data = crate::training::load(&cmd.data, &args, bundle.spec.head == Head::Linear)?;
    check_shape(&bundle, &cmd.data, &data.samples)?;
    let names = bundle.class_names();
    if bundle.spec.head != Head::Linear {
        data.check_classes(names.len() as u32, false)?;
    }
    let prepared =
        bundle.preprocessor().prepare_indices(&data, &(0..data.len()).collect::<Vec<_>>())?;
    let trainer = trainer_for(&bundle, cmd.threads, cmd.fast)?;
    let (loss, outputs) = trainer.evaluate(&bundle.params, &prepared)?;
    let report = EvalReport::new(&bundle.spec, &names, loss, &prepared, &outputs)?;
    if cmd.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::outln!(
            "{} on {} ({} samples):",
            cmd.model.display(),
            cmd.data.display(),
            prepared.len
        );
        print_report(&report);
    }
    if let Some(dir) = &cmd.plots {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow!("cannot create the --plots folder {}: {e}", dir.display()))?;
        for p in report.write_plots(dir, &cmd.data.display().to_string())? {
            eprintln!("Wrote {}", p.display());
        }
    }
    Ok(())
}

/// Checks `--plots DIR` before any work: a folder (or nothing yet), holding none of `inputs`
/// under a picture's name.
fn check_plots_folder(dir: &std::path::Path, inputs: &[(&str, &std::path::Path)]) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "--plots {}: exists and is not a folder (the pictures are written into a folder)",
            dir.display()
        );
    }
    crate::files::refuse_inputs_in_folder("--plots", dir, &[], inputs)
}

/// `tinylstm predict` options.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  tinylstm predict --model out/sms/model.tlm --text \"WINNER! Claim your prize now\" --text \"see you at 6\"
  tinylstm predict --model out/synthetic/model.tlm --data windows.csv --json")]
pub struct PredictCmd {
    /// The model.
    #[arg(long, value_name = "TLM")]
    pub model: PathBuf,
    /// A CSV of samples (labels in the first column are read but not needed to be right).
    #[arg(long, value_name = "CSV", conflicts_with = "text")]
    pub data: Option<PathBuf>,
    /// Texts to classify (text models; repeatable).
    #[arg(long)]
    pub text: Vec<String>,
    /// Column of the text (CSV): index or header name.
    #[arg(long)]
    pub text_column: Option<String>,
    /// The CSV has a header row.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub header: Option<bool>,
    /// Print JSON lines (one object per sample, probabilities as exact f32 bits too).
    #[arg(long)]
    pub json: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run on the fast kernel path (FMA and SIMD; outputs differ from the device's in the last
    /// bits) instead of the exact one, whose outputs are the device's bit for bit.
    #[arg(long)]
    pub fast: bool,
}

/// Runs `tinylstm predict`.
pub fn run_predict(cmd: &PredictCmd) -> Result<()> {
    let bundle = ModelBundle::load(&cmd.model)?;
    refuse_non_finite(&bundle, &cmd.model)?;
    let samples: Vec<Sample> = if !cmd.text.is_empty() {
        if bundle.meta.task != Task::Text {
            bail!(
                "--text needs a text model; {} reads sequences (use --data)",
                cmd.model.display()
            );
        }
        cmd.text
            .iter()
            .enumerate()
            .map(|(i, t)| Sample {
                line: i as u64 + 1,
                label: Label::Class(0),
                features: Features::Text(t.clone()),
            })
            .collect()
    } else if let Some(path) = &cmd.data {
        let args = data_args(&bundle, &None, &cmd.text_column, cmd.header);
        let samples = crate::training::load(path, &args, bundle.spec.head == Head::Linear)?.samples;
        check_shape(&bundle, path, &samples)?;
        samples
    } else {
        bail!("give --data FILE or one or more --text");
    };
    let refs: Vec<&Sample> = samples.iter().collect();
    let prepared = bundle.preprocessor().prepare(&refs)?;
    let trainer = trainer_for(&bundle, cmd.threads, cmd.fast)?;
    let (_, outputs) = trainer.evaluate(&bundle.params, &prepared)?;
    let k = bundle.spec.outputs;
    let names = bundle.class_names();
    let classes = if bundle.spec.head == Head::Linear {
        None
    } else {
        Some(predicted_classes(bundle.spec.head, k, &outputs))
    };
    for (i, row) in outputs.chunks_exact(k).enumerate() {
        let class = classes.as_ref().map(|c| c[i]);
        let name = class.and_then(|c| names.get(c as usize).cloned());
        if cmd.json {
            let v = serde_json::json!({
                "index": i,
                "line": samples[i].line,
                "outputs": row,
                "output_bits": row.iter().map(|x| format!("{:08x}", x.to_bits())).collect::<Vec<_>>(),
                "class": class,
                "class_name": name,
            });
            crate::outln!("{v}");
        } else {
            let vals: Vec<String> = row.iter().map(|x| format!("{x:.4}")).collect();
            match name {
                Some(n) => crate::outln!("{i}\t{n}\t[{}]", vals.join(", ")),
                None => crate::outln!("{i}\t[{}]", vals.join(", ")),
            }
        }
    }
    Ok(())
}

/// `tinylstm info` options.
#[derive(Args, Debug, Clone)]
pub struct InfoCmd {
    /// The model.
    #[arg(long, value_name = "TLM")]
    pub model: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tinylstm info`.
pub fn run_info(cmd: &InfoCmd) -> Result<()> {
    let b = ModelBundle::load(&cmd.model)?;
    let s = b.spec;
    let t = b.meta.steps;
    let bytes = |floats: usize| floats.saturating_mul(4);
    let too_large = || anyhow!("{}: {t} steps: work buffer sizes overflow", cmd.model.display());
    let fwd = s.forward_work_len(1, 1).ok_or_else(too_large)?;
    let state = s.state_len(1).ok_or_else(too_large)?;
    let train = s.train_work_len(1, t, Bptt::FULL).ok_or_else(too_large)?;
    let info = serde_json::json!({
        "file": cmd.model.display().to_string(),
        "input": match s.input {
            InputKind::Tokens { vocab, embed } => serde_json::json!({"tokens": {"vocab": vocab, "embedding_dim": embed}}),
            InputKind::Channels(c) => serde_json::json!({"channels": c}),
        },
        "lstm_units": &s.units[..s.layers],
        "outputs": s.outputs,
        "head": crate::summary::head_name(s.head),
        "steps": t,
        "parameters": s.param_count(),
        "parameter_bytes": bytes(s.param_count()),
        "inference_ram_bytes_batch1": bytes(fwd + s.outputs),
        "streaming_state_bytes": bytes(state),
        "training_ram_bytes_batch1_full_bptt": bytes(train.saturating_add(2 * s.param_count())),
        "classes": b.class_names(),
        "padding": b.meta.padding, "truncating": b.meta.truncating,
        "tokenizer": b.tokenizer.as_ref().map(|tok| serde_json::json!({
            "vocabulary": tok.vocabulary_len(),
            "vocab_size": tok.vocab_size(),
            "num_words": tok.config().num_words,
            "char_level": tok.config().char_level,
            "lower": tok.config().lower,
            "oov_token": tok.config().oov_token,
        })),
        "standardization": b.normalizer.as_ref().map(|n| serde_json::json!({"means": n.means(), "stds": n.stds()})),
        "trained_with": b.meta.config,
    });
    if cmd.json {
        crate::outln!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    crate::outln!("{}", cmd.model.display());
    match s.input {
        InputKind::Tokens { vocab, embed } => {
            crate::outln!("  input       token ids, vocabulary {vocab}, embedding {embed}")
        }
        InputKind::Channels(c) => crate::outln!("  input       {c} channels per step"),
    }
    let units: Vec<String> = s.units[..s.layers].iter().map(|u| u.to_string()).collect();
    crate::outln!("  LSTM units  {}", units.join(", "));
    crate::outln!("  head        Dense({}, {})", s.outputs, crate::summary::head_name(s.head));
    crate::outln!(
        "  steps       {t} ({} padding, {} truncation)",
        b.meta.padding,
        b.meta.truncating
    );
    crate::outln!(
        "  parameters  {} ({} KiB as f32)",
        s.param_count(),
        bytes(s.param_count()) / 1024
    );
    crate::outln!("  RAM         inference {} B work + streaming state {} B; training (batch 1, full BPTT over {t} steps) {} KiB incl. gradients and Adam state",
        bytes(fwd + s.outputs), bytes(state),
        bytes(train + 3 * s.param_count()) / 1024);
    crate::outln!("  classes     {}", b.class_names().join(", "));
    if let Some(tok) = &b.tokenizer {
        crate::outln!(
            "  tokenizer   {} words kept of {}, ids < {}, {}{}",
            tok.vocab_size().saturating_sub(1),
            tok.vocabulary_len(),
            tok.vocab_size(),
            if tok.config().char_level { "character level" } else { "word level" },
            tok.config()
                .oov_token
                .as_ref()
                .map(|o| format!(", OOV token {o:?}"))
                .unwrap_or_default()
        );
    }
    if let Some(n) = &b.normalizer {
        crate::outln!("  standardize means {:?}, stds {:?}", n.means(), n.stds());
    }
    crate::outln!();
    crate::out!("{}", crate::summary::summary(&s, Some(t)));
    Ok(())
}
