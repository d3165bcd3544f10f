//! `tinylstm device-data`: the firmware's data sets (`samples.bin`, `field_train.bin`,
//! `field_valid.bin`, format `TLSEQ002` of the `tinylstm-device` crate) from a CSV in the format
//! the model was trained on, so the boot demo and on-device fine-tuning run on your own data.
//!
//! Each sequence is prepared as `tinylstm predict` prepares it — texts tokenized with the
//! model's tokenizer and padded or cut to the model's length; sequences padded or cut to the
//! model's length on the side its metadata says — and written as the device reads it: token ids,
//! or **raw** values that the device standardises with the model's statistics, exactly as the
//! CLI does (a padded frame holds the channel means, which standardise to exactly 0, the CLI's
//! padding value). Targets follow the head: class ids (softmax), 0/1 values (sigmoid),
//! regression targets (linear).
//!
//! For a text model it also writes the sets as sentences — `samples.json`, `field_train.json`,
//! `field_valid.json`, each a JSON array of `{"label": L, "text": "…"}` (L: the class id, or the
//! target value) — which the firmware embeds as text and tokenizes on the device with the
//! model's own tokenizer (the `.bin` sets hold the ids the host computes for the same texts).

use crate::data::Sample;
use crate::model_file::{ModelBundle, Task};
use crate::preprocess::pad::Side;
use crate::preprocess::{Inputs, Preprocessor};
use crate::settings::{HeadKind, TrainArgs};
use crate::training::prepared::load;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tinylstm::{Head, InputKind};
use tinylstm_device::data::{check_data, Shape, MAX_SET};

/// `tinylstm device-data` options.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Example (then build the firmware with TINYLSTM_DATA=out/device):
  tinylstm device-data --model out/synthetic/model.tlm --data my.csv --out out/device")]
pub struct DeviceDataCmd {
    /// The model the data sets are for.
    #[arg(long, value_name = "TLM")]
    pub model: PathBuf,
    /// Labelled data in the format the model was trained on: the inference samples, and (without
    /// --field) the field training and validation sets, taken in this order from its rows.
    #[arg(long, value_name = "CSV")]
    pub data: PathBuf,
    /// Labelled field data for fine-tuning (training rows first, then validation rows).
    #[arg(long, value_name = "CSV")]
    pub field: Option<PathBuf>,
    /// Folder to write samples.bin, field_train.bin and field_valid.bin into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Inference samples (at most 32).
    #[arg(long, default_value_t = 8)]
    pub samples: usize,
    /// Field training sequences (at most 32; 0: no fine-tuning sets).
    #[arg(long, default_value_t = 16)]
    pub field_train: usize,
    /// Field validation sequences (at most 32).
    #[arg(long, default_value_t = 8)]
    pub field_valid: usize,
    /// Column of the label (text CSV): index or header name.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Column of the text (text CSV): index or header name.
    #[arg(long)]
    pub text_column: Option<String>,
    /// The CSV has a header row (default: detected for text, none for sequences).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub header: Option<bool>,
}

/// One value sequence padded or cut to `steps` frames of `c` values, on the sides the model's
/// metadata says; padded frames hold `pad [C]`.
fn fit_frames(
    v: &[f32],
    c: usize,
    steps: usize,
    padding: Side,
    cut: Side,
    pad: &[f32],
) -> Vec<f32> {
    let n = v.len() / c;
    let kept = if n > steps {
        match cut {
            Side::Pre => &v[(n - steps) * c..],
            Side::Post => &v[..steps * c],
        }
    } else {
        v
    };
    let missing = steps - kept.len() / c;
    let fill: Vec<f32> = (0..missing).flat_map(|_| pad.iter().copied()).collect();
    match padding {
        Side::Pre => fill.iter().chain(kept).copied().collect(),
        Side::Post => kept.iter().chain(&fill).copied().collect(),
    }
}

/// The words of one data set: header and records.
fn encode(bundle: &ModelBundle, shape: &Shape, samples: &[&Sample]) -> Result<Vec<u8>> {
    let spec = &bundle.spec;
    let meta = &bundle.meta;
    let mut out = shape.header(samples.len()).to_vec();
    let tokens = if meta.task == Task::Text {
        let pre = Preprocessor { normalizer: None, channels: 1, ..bundle.preprocessor() };
        match pre.prepare(samples)?.inputs {
            Inputs::Tokens(t) => Some(t),
            Inputs::Values(_) => bail!("a text model prepared values"),
        }
    } else {
        None
    };
    let c = shape.width;
    let pad = match &bundle.normalizer {
        Some(n) => n.means().to_vec(),
        None => vec![0.0; c],
    };
    for (i, s) in samples.iter().enumerate() {
        let label = s.label;
        match spec.head {
            Head::Softmax => {
                let k =
                    label.class().with_context(|| format!("line {}: not a class label", s.line))?;
                out.extend_from_slice(&k.to_le_bytes());
            }
            Head::Sigmoid | Head::Linear => {
                if spec.outputs != 1 {
                    bail!("{} outputs: one target value per line is all a CSV holds", spec.outputs);
                }
                out.extend_from_slice(&label.value().to_le_bytes());
            }
        }
        match &tokens {
            Some(t) => {
                for id in &t[i * shape.steps..(i + 1) * shape.steps] {
                    out.extend_from_slice(&id.to_le_bytes());
                }
            }
            None => {
                let v = s.values().with_context(|| format!("line {}: not a sequence", s.line))?;
                if v.len() % c != 0 {
                    bail!("line {}: {} values are not whole {c}-channel steps", s.line, v.len());
                }
                for x in fit_frames(v, c, shape.steps, meta.padding, meta.truncating, &pad) {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    check_data(&out, shape).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(out)
}

/// A set as sentences: `[{"label": L, "text": "…"}]` (text models).
fn sentences(bundle: &ModelBundle, samples: &[&Sample]) -> Result<Vec<u8>> {
    let items = samples
        .iter()
        .map(|s| {
            let label = match bundle.spec.head {
                Head::Softmax => serde_json::json!(s
                    .label
                    .class()
                    .with_context(|| format!("line {}: not a class label", s.line))?),
                Head::Sigmoid | Head::Linear => serde_json::json!(s.label.value()),
            };
            let text = s.text().with_context(|| format!("line {}: not a text", s.line))?;
            Ok(serde_json::json!({ "label": label, "text": text }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::to_vec_pretty(&items)?)
}

/// The rows of a set as references.
fn refs(s: &[Sample]) -> Vec<&Sample> {
    s.iter().collect()
}

fn rows(path: &Path, bundle: &ModelBundle, cmd: &DeviceDataCmd) -> Result<Vec<Sample>> {
    let mut args = TrainArgs::default();
    args.data.channels = match bundle.spec.input {
        InputKind::Channels(c) => Some(c),
        InputKind::Tokens { .. } => None,
    };
    args.data.label_column = cmd.label_column.clone();
    args.data.text_column = cmd.text_column.clone();
    args.data.header = cmd.header;
    args.model.head = (bundle.spec.head == Head::Linear).then_some(HeadKind::Linear);
    let data = load(path, &args, bundle.spec.head == Head::Linear)?;
    if bundle.spec.head != Head::Linear {
        data.check_classes(bundle.class_names().len().max(2) as u32, false)?;
    }
    Ok(data.samples)
}

/// Runs `tinylstm device-data`.
pub fn run(cmd: &DeviceDataCmd) -> Result<()> {
    for (what, n) in [
        ("--samples", cmd.samples),
        ("--field-train", cmd.field_train),
        ("--field-valid", cmd.field_valid),
    ] {
        if n > MAX_SET {
            bail!("{what} {n}: a device data set holds at most {MAX_SET} sequences");
        }
    }
    if cmd.samples == 0 {
        bail!("--samples must be at least 1");
    }
    if (cmd.field_train == 0) != (cmd.field_valid == 0) {
        bail!("--field-train and --field-valid are both 0 (no fine-tuning) or both at least 1");
    }
    let bundle = ModelBundle::load(&cmd.model)?;
    let shape = Shape::of(&bundle.spec, bundle.meta.steps);
    let data = rows(&cmd.data, &bundle, cmd)?;
    let field = match &cmd.field {
        Some(p) => rows(p, &bundle, cmd)?,
        None => data.get(cmd.samples..).unwrap_or(&[]).to_vec(),
    };
    let need = cmd.field_train + cmd.field_valid;
    if data.len() < cmd.samples || field.len() < need {
        bail!(
            "{}: {} rows, not enough for {} samples and {need} field sequences{}",
            cmd.data.display(),
            data.len(),
            cmd.samples,
            if cmd.field.is_some() { " (from --field)" } else { "" }
        );
    }
    let parts = [
        ("samples", &data[..cmd.samples]),
        ("field_train", &field[..cmd.field_train]),
        ("field_valid", &field[cmd.field_train..need]),
    ];
    let text = bundle.meta.task == Task::Text;
    let mut sets = Vec::new();
    for (name, rows) in parts.iter().filter(|(_, r)| !r.is_empty()) {
        sets.push((*name, "bin", encode(&bundle, &shape, &refs(rows))?));
        if text {
            sets.push((*name, "json", sentences(&bundle, &refs(rows))?));
        }
    }
    std::fs::create_dir_all(&cmd.out).with_context(|| format!("creating {}", cmd.out.display()))?;
    for (name, ext, bytes) in &sets {
        let path = cmd.out.join(format!("{name}.{ext}"));
        crate::files::write_atomic(&path, bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("Wrote {} ({} bytes)", path.display(), bytes.len());
    }
    if need == 0 {
        for name in ["field_train.bin", "field_valid.bin", "field_train.json", "field_valid.json"] {
            let stale = cmd.out.join(name);
            if stale.exists() {
                std::fs::remove_file(&stale)
                    .with_context(|| format!("removing the stale {}", stale.display()))?;
            }
        }
    }
    Ok(())
}
