//! `tinylstm eval`, `tinylstm predict` and `tinylstm info`.

use crate::data::series::Series;
use crate::data::{Features, Label, LabelKind, Sample};
use crate::forecast::ForecastMeta;
use crate::metrics::predicted_classes;
use crate::model_file::{ModelBundle, Task};
use crate::preprocess::{Inputs, Labels, Prepared};
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
        Some(c) => {
            c.validate().map_err(|e| anyhow::anyhow!("the model's training settings: {e}"))?;
            c.penalties(&bundle.spec)
        }
        None => tinylstm::penalty::Penalties::NONE,
    };
    Trainer::new(FitConfig {
        spec: bundle.spec,
        optimizer: TrainArgs::default().optimizer(),
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
    let mut args = TrainArgs::default();
    args.data.channels = match bundle.spec.input {
        InputKind::Channels(c) => Some(c),
        InputKind::Tokens { .. } => None,
    };
    args.data.label_column = label.clone();
    args.data.text_column = text.clone();
    args.data.header = header;
    args.model.head = (bundle.spec.head == Head::Linear).then_some(HeadKind::Linear);
    args
}

/// `eval` of a forecast model: every window of the series, beside the naive baselines.
fn forecast_eval(cmd: &EvalCmd, bundle: &ModelBundle, f: &ForecastMeta) -> Result<()> {
    let series = crate::training::forecast::load_series(&cmd.data)?;
    let (_, norm) = forecast_input(bundle, f, &series, cmd.data.display())?;
    let starts: Vec<usize> = (0..series.windows(f.lookback, f.horizon)).collect();
    if starts.is_empty() {
        bail!(
            "{}: {} rows hold no window of {} + {} rows",
            cmd.data.display(),
            series.len(),
            f.lookback,
            f.horizon
        );
    }
    let prep = crate::training::forecast::prepare_windows(&series, &starts, f, norm)?;
    let trainer = trainer_for(bundle, cmd.threads, cmd.fast)?;
    let (_, outputs) = trainer.evaluate(&bundle.params, &prep)?;
    let pred = crate::training::forecast::unstandardize(&outputs, norm);
    let report = crate::forecast::report(&series, &starts, f, &pred);
    if cmd.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::outln!("{} on {}:", cmd.model.display(), cmd.data.display());
        crate::forecast::print_forecast_report(&report);
    }
    if let Some(dir) = &cmd.plots {
        std::fs::create_dir_all(dir)?;
        let title = format!("{} — forecast", cmd.data.display());
        for p in crate::forecast::plot(dir, &title, &series, &starts, f, &pred)? {
            eprintln!("Wrote {}", p.display());
        }
    }
    Ok(())
}

/// Checks a series against a forecast model; the model's standardisation and the input of the
/// series' last window (the last `lookback` rows).
fn forecast_input<'a>(
    bundle: &'a ModelBundle,
    f: &ForecastMeta,
    series: &Series,
    origin: impl std::fmt::Display,
) -> Result<(Prepared, &'a crate::preprocess::normalize::Normalizer)> {
    let norm = bundle
        .normalizer
        .as_ref()
        .ok_or_else(|| anyhow!("{}: forecast model without standardisation", cmd_model(bundle)))?;
    if series.width() != f.names.len() {
        bail!(
            "{origin}: {} value columns ({}), the model forecasts {} ({})",
            series.width(),
            series.names.join(", "),
            f.names.len(),
            f.names.join(", ")
        );
    }
    if series.len() < f.lookback + 1 {
        bail!("{origin}: {} rows; the model reads the last {}", series.len(), f.lookback);
    }
    let v = series.width();
    let mut x = series.values[(series.len() - f.lookback) * v..].to_vec();
    norm.apply(&mut x)?;
    let prep = Prepared {
        inputs: Inputs::Values(x),
        labels: Labels::Real(vec![0.0; f.horizon * v]),
        len: 1,
        steps: f.lookback,
        width: v,
    };
    Ok((prep, norm))
}

fn cmd_model(bundle: &ModelBundle) -> String {
    format!("{}-value forecast model", bundle.spec.step_width())
}

/// `predict` of a forecast model: the next `horizon` rows after the series' last.
fn forecast_predict(cmd: &PredictCmd, bundle: &ModelBundle, f: &ForecastMeta) -> Result<()> {
    let path = cmd.data.as_ref().ok_or_else(|| anyhow!("give --data SERIES.csv (or -)"))?;
    let (name, bytes) = read_input(path)?;
    let series = crate::data::series::parse_series_csv(&name, &bytes)?;
    let (prep, norm) = forecast_input(bundle, f, &series, name.display())?;
    let trainer = trainer_for(bundle, cmd.threads, cmd.fast)?;
    let (_, outputs) = trainer.evaluate(&bundle.params, &prep)?;
    let pred = crate::training::forecast::unstandardize(&outputs, norm);
    let last = series.times.last().cloned().unwrap_or_default();
    if !cmd.json {
        crate::outln!("step\t{}", f.names.join("\t"));
    }
    for (h, row) in pred.chunks_exact(f.names.len()).enumerate() {
        if cmd.json {
            let values: serde_json::Map<String, serde_json::Value> = f
                .names
                .iter()
                .cloned()
                .zip(row.iter().map(|&x| serde_json::Value::from(x)))
                .collect();
            crate::outln!(
                "{}",
                serde_json::json!({"step": h + 1, "after": last, "values": values})
            );
        } else {
            let vals: Vec<String> = row.iter().map(|x| format!("{x:.4}")).collect();
            crate::outln!("{last}+{}\t{}", h + 1, vals.join("\t"));
        }
    }
    Ok(())
}

/// The bytes of `path`, `-` being standard input, with the name errors use.
fn read_input(path: &PathBuf) -> Result<(PathBuf, Vec<u8>)> {
    if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)?;
        return Ok((PathBuf::from("<stdin>"), b));
    }
    let b = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("{}: file not found", path.display()),
        _ => anyhow!("{}: cannot read: {e}", path.display()),
    })?;
    Ok((path.clone(), b))
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
    if let Some(f) = &bundle.meta.forecast {
        return forecast_eval(cmd, &bundle, f);
    }
    let args = data_args(&bundle, &cmd.label_column, &cmd.text_column, cmd.header);
    let mut data = crate::training::load(&cmd.data, &args, bundle.spec.head == Head::Linear)?;
    check_shape(&bundle, &cmd.data, &data.samples)?;
    let names = bundle.class_names();
    if bundle.spec.head != Head::Linear {
        data.map_to_classes(&names)?;
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
  tinylstm predict --model out/synthetic/model.tlm --data windows.csv --json
  tinylstm predict --model out/motion/model.tlm --data - --no-labels")]
pub struct PredictCmd {
    /// The model.
    #[arg(long, value_name = "TLM")]
    pub model: PathBuf,
    /// A CSV of samples, `-` for standard input. A label column, when there is one, is read
    /// but not used; a CSV without one is detected (one column for text, rows of T×C values
    /// for sequences) or declared with --no-labels.
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
    /// The CSV has no label column: every field of a sequence row is a value, a text CSV's
    /// first column is the text [default: detected].
    #[arg(long)]
    pub no_labels: bool,
    /// Print JSON lines (one object per sample, probabilities as exact f32 bits too; for a text
    /// model also `ids`, the padded token ids it read).
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

/// The first data record of `bytes` (after a header when `header`), if any.
fn first_record(bytes: &[u8], header: bool) -> Option<csv::StringRecord> {
    let mut r = csv::ReaderBuilder::new().has_headers(header).flexible(true).from_reader(bytes);
    r.records().next().and_then(|x| x.ok())
}

/// Reads the samples of `--data` (a file or `-`), labelled or not.
fn predict_samples(cmd: &PredictCmd, bundle: &ModelBundle, path: &PathBuf) -> Result<Vec<Sample>> {
    let (name, bytes) = read_input(path)?;
    let mut args = data_args(bundle, &None, &cmd.text_column, cmd.header);
    let first = first_record(&bytes, cmd.header == Some(true));
    let fields = first.as_ref().map_or(0, csv::StringRecord::len);
    let unlabelled = cmd.no_labels
        || match bundle.spec.input {
            // One column: the text alone.
            InputKind::Tokens { .. } => fields == 1 && cmd.text_column.is_none(),
            // Only T×C fits the row (C > 1); with one channel both fit, and a label is read.
            InputKind::Channels(c) => {
                fields.is_multiple_of(c) && (fields < 1 || !(fields - 1).is_multiple_of(c))
            }
        };
    if unlabelled && bundle.meta.task == Task::Text && cmd.text_column.is_none() {
        args.data.text_column = Some("0".into());
        // One column of text: a header only when it says `text` (or --header says so).
        let titled = first.as_ref().and_then(|r| r.get(0)).is_some_and(|f| f.trim() == "text");
        args.data.header = Some(cmd.header.unwrap_or(titled));
    }
    let kind = if unlabelled {
        LabelKind::Unlabelled
    } else if bundle.spec.head == Head::Linear {
        LabelKind::Real
    } else {
        LabelKind::Named
    };
    let ambiguous = match bundle.spec.input {
        InputKind::Channels(c) => fields.is_multiple_of(c),
        InputKind::Tokens { .. } => false,
    };
    if !unlabelled && ambiguous {
        eprintln!("{}: reading field 1 of each row as a label (not used); --no-labels reads every field as input", name.display());
    }
    Ok(crate::training::prepared::load_bytes(&name, &bytes, &args, kind)?.samples)
}

/// Runs `tinylstm predict`.
pub fn run_predict(cmd: &PredictCmd) -> Result<()> {
    let bundle = ModelBundle::load(&cmd.model)?;
    refuse_non_finite(&bundle, &cmd.model)?;
    if let Some(f) = &bundle.meta.forecast {
        return forecast_predict(cmd, &bundle, f);
    }
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
        let samples = predict_samples(cmd, &bundle, path)?;
        check_shape(&bundle, path, &samples)?;
        samples
    } else {
        bail!("give --data FILE (or - for standard input) or one or more --text");
    };
    let refs: Vec<&Sample> = samples.iter().collect();
    let origin = match &cmd.data {
        Some(p) if p.as_os_str() == "-" => "<stdin>".to_string(),
        Some(p) => p.display().to_string(),
        None => "--text".to_string(),
    };
    let prepared = bundle.preprocessor().prepare(&refs).map_err(|e| anyhow!("{origin}: {e:#}"))?;
    let trainer = trainer_for(&bundle, cmd.threads, cmd.fast)?;
    let (_, outputs) = trainer.evaluate(&bundle.params, &prepared)?;
    let k = bundle.spec.outputs;
    let names = bundle.class_names();
    let linear = bundle.spec.head == Head::Linear;
    let classes =
        if linear { None } else { Some(predicted_classes(bundle.spec.head, k, &outputs)) };
    // Probability of each named class: a binary sigmoid's one output is p(class 1).
    let probs = |row: &[f32]| -> Vec<f32> {
        if k == 1 && !linear {
            vec![1.0 - row[0], row[0]]
        } else {
            row.to_vec()
        }
    };
    if !cmd.json {
        let mut head = vec!["index".to_string(), "line".into()];
        if linear {
            head.extend((0..k).map(|j| if k == 1 { "value".into() } else { format!("value{j}") }));
        } else {
            head.push("class".into());
            head.extend(names.iter().cloned());
        }
        if bundle.meta.task == Task::Text {
            head.push("text".into());
        }
        crate::outln!("{}", head.join("\t"));
    }
    for (i, row) in outputs.chunks_exact(k).enumerate() {
        let class = classes.as_ref().map(|c| c[i]);
        let name = class.and_then(|c| names.get(c as usize).cloned());
        let text = samples[i].text();
        if cmd.json {
            // Text models: the padded token ids the model read.
            let ids = match &prepared.inputs {
                Inputs::Tokens(t) => Some(&t[i * prepared.steps..(i + 1) * prepared.steps]),
                Inputs::Values(_) => None,
            };
            let by_class: serde_json::Map<String, serde_json::Value> = if linear {
                serde_json::Map::new()
            } else {
                names
                    .iter()
                    .cloned()
                    .zip(probs(row).into_iter().map(serde_json::Value::from))
                    .collect()
            };
            let mut v = serde_json::json!({
                "index": i,
                "line": samples[i].line,
                "outputs": row,
                "output_bits": row.iter().map(|x| format!("{:08x}", x.to_bits())).collect::<Vec<_>>(),
                "class": class,
                "class_name": name,
            });
            if let Some(ids) = ids {
                v["ids"] = serde_json::json!(ids);
            }
            if !linear {
                v["probabilities"] = serde_json::Value::Object(by_class);
            }
            if let Some(t) = text {
                v["text"] = serde_json::Value::from(t);
            }
            crate::outln!("{v}");
        } else {
            let mut cols = vec![i.to_string(), samples[i].line.to_string()];
            if let Some(n) = name {
                cols.push(n);
            }
            let shown = if linear { row.to_vec() } else { probs(row) };
            cols.extend(shown.iter().map(|x| format!("{x:.4}")));
            if let Some(t) = text {
                cols.push(t.replace(['\t', '\n', '\r'], " "));
            }
            crate::outln!("{}", cols.join("\t"));
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
        "mask": match s.mask {
            tinylstm::Mask::Off => serde_json::Value::Null,
            tinylstm::Mask::Zero => serde_json::json!("zero"),
            tinylstm::Mask::Value(v) => serde_json::json!({"value": v}),
        },
        "tokenizer": b.tokenizer.as_ref().map(|tok| serde_json::json!({
            "vocabulary": b.meta.vocabulary,
            "words_kept": match tok.config().num_words {
                Some(n) if n > 0 => tok.vocabulary_len().min(n - 1),
                _ => tok.vocabulary_len(),
            },
            "vocab_size": tok.vocab_size(),
            "num_words": tok.config().num_words,
            "char_level": tok.config().char_level,
            "lower": tok.config().lower,
            "oov_token": tok.config().oov_token,
        })),
        "standardization": b.normalizer.as_ref().map(|n| serde_json::json!({"means": n.means(), "stds": n.stds()})),
        "forecast": b.meta.forecast,
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
    match s.mask {
        tinylstm::Mask::Off => {}
        tinylstm::Mask::Zero => crate::outln!("  mask        token id 0 (Embedding mask_zero)"),
        tinylstm::Mask::Value(v) => {
            crate::outln!("  mask        steps whose values all equal {v} (Masking)")
        }
    }
    crate::outln!(
        "  parameters  {} ({} KiB as f32)",
        s.param_count(),
        bytes(s.param_count()) / 1024
    );
    crate::outln!("  RAM         inference {} B work + streaming state {} B; training (batch 1, full BPTT over {t} steps) {} KiB incl. gradients and Adam state",
        bytes(fwd + s.outputs), bytes(state),
        bytes(train + 3 * s.param_count()) / 1024);
    match &b.meta.forecast {
        Some(f) => crate::outln!(
            "  forecast    {} → {} steps ahead of {}{}",
            f.lookback,
            f.horizon,
            f.names.join(", "),
            f.season.map(|s| format!(", season {s}")).unwrap_or_default()
        ),
        None if s.head == Head::Linear => {}
        None => crate::outln!("  classes     {}", b.class_names().join(", ")),
    }
    if let Some(tok) = &b.tokenizer {
        // Ids below num_words are kept: num_words − 1 of them at most.
        let kept = match tok.config().num_words {
            Some(n) if n > 0 => tok.vocabulary_len().min(n - 1),
            _ => tok.vocabulary_len(),
        };
        let of = b.meta.vocabulary.map(|v| format!(" of {v}")).unwrap_or_default();
        crate::outln!(
            "  tokenizer   {kept} words kept{of}, ids < {}, {}{}",
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
