//! `tinylstm export` and `tinylstm import`: a trained model to firmware sources, JSON or Keras
//! weights, and Keras weights (plus architecture flags) to a `.tlm` model.

use crate::export::{self as ex, Format};
use crate::model_file::{ModelBundle, ModelMeta, Task};
use crate::preprocess::pad::Side;
use crate::settings::{HeadKind, ModelArgs, SpecInput, TrainArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// `tinylstm export` options.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  tinylstm export --model out/synthetic/model.tlm --format rust --out firmware/src/model.rs
  tinylstm export --model out/sms/model.tlm --format tlm --embedding int8 --out sms-int8.tlm
  tinylstm export --model model.tlm --format keras-npz --out weights.npz
    # in Python: model.set_weights(list(np.load('weights.npz').values()))")]
pub struct ExportCmd {
    /// The model to export.
    #[arg(long, value_name = "TLM")]
    pub model: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Output file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Identifier used in generated sources [default: model].
    #[arg(long, default_value = "model")]
    pub name: String,
    /// How a `.tlm` stores the Embedding of a text model: f32, or int8 with an f32 scale per
    /// row (a quarter of the flash; `predict`/`eval` and a device dequantise it identically).
    /// int8 applies to `--format tlm` only.
    #[arg(long, value_enum, default_value = "f32")]
    pub embedding: EmbeddingKind,
}

/// The Embedding storage of `tinylstm export --embedding`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbeddingKind {
    /// 4 bytes per value (the trained table as it is).
    F32,
    /// 1 byte per value and 4 per row: symmetric, scale = max|row|/127, round half to even.
    Int8,
}

/// Runs `tinylstm export`.
pub fn run_export(cmd: &ExportCmd) -> Result<()> {
    crate::files::refuse_clobber(&[("--out", &cmd.out)], &[("--model", &cmd.model)])?;
    let bundle = ModelBundle::load(&cmd.model)?;
    if cmd.embedding == EmbeddingKind::Int8 {
        if cmd.format != Format::Tlm {
            bail!("--embedding int8 applies to --format tlm; the other formats hold f32 values");
        }
        if !matches!(bundle.spec.input, tinylstm::InputKind::Tokens { .. }) {
            bail!("--embedding int8: {} has no Embedding (not a text model)", cmd.model.display());
        }
        let storage = tinylstm::format::EmbeddingStorage::Int8;
        let bytes = bundle.to_bytes_with(storage)?;
        let f32_len = bundle.to_bytes()?.len();
        crate::files::write_atomic(&cmd.out, &bytes)
            .with_context(|| format!("cannot write model file {}", cmd.out.display()))?;
        crate::outln!(
            "Wrote {} ({} bytes with an int8 Embedding; {} with f32)",
            cmd.out.display(),
            bytes.len(),
            f32_len
        );
        return Ok(());
    }
    ex::write_format(&bundle, cmd.format, &cmd.out, &cmd.name)?;
    crate::outln!("Wrote {}", cmd.out.display());
    Ok(())
}

/// `tinylstm import` options: Keras weights plus the architecture they belong to.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  # in Python: np.savez('w.npz', *model.get_weights())
  tinylstm import --npz w.npz --channels 6 --units 32 --classes 4 --maxlen 100 --out m.tlm
  tinylstm import --npz w.npz --tokenizer-from sms.tlm --units 128,64 --maxlen 60 --out m.tlm")]
pub struct ImportCmd {
    /// Weights saved with `numpy.savez(path, *model.get_weights())`.
    #[arg(long, value_name = "NPZ")]
    pub npz: PathBuf,
    /// Output `.tlm` file.
    #[arg(long, value_name = "TLM")]
    pub out: PathBuf,
    /// Channels per step (real-valued input).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Take the tokenizer (and so the vocabulary) of a text model from this `.tlm`.
    #[arg(long, value_name = "TLM")]
    pub tokenizer_from: Option<PathBuf>,
    /// Embedding size (text) [default: 64].
    #[arg(long)]
    pub embedding_dim: Option<usize>,
    /// LSTM units per layer, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub units: Vec<usize>,
    /// Number of classes (2 with a sigmoid head means Dense(1)).
    #[arg(long)]
    pub classes: Option<u32>,
    /// Head activation [default: sigmoid for 2 text classes, softmax otherwise].
    #[arg(long, value_enum)]
    pub head: Option<HeadKind>,
    /// Sequence length the model expects.
    #[arg(long)]
    pub maxlen: usize,
    /// Padding side [default: pre].
    #[arg(long, value_enum)]
    pub padding: Option<Side>,
}

/// Runs `tinylstm import`.
pub fn run_import(cmd: &ImportCmd) -> Result<()> {
    if cmd.maxlen == 0 {
        bail!("--maxlen must be at least 1");
    }
    let mut inputs = vec![("--npz", cmd.npz.as_path())];
    inputs.extend(cmd.tokenizer_from.as_deref().map(|p| ("--tokenizer-from", p)));
    crate::files::refuse_clobber(&[("--out", &cmd.out)], &inputs)?;
    let tok_bundle = match &cmd.tokenizer_from {
        Some(p) => Some(ModelBundle::load(p)?),
        None => None,
    };
    let (input, task) = match (&tok_bundle, cmd.channels) {
        (Some(b), None) => {
            let tok = b.tokenizer.as_ref().with_context(|| {
                format!(
                    "{}: has no tokenizer section",
                    cmd.tokenizer_from.as_ref().map_or(String::new(), |p| p.display().to_string())
                )
            })?;
            let vocab = match b.spec.input {
                tinylstm::InputKind::Tokens { vocab, .. } => vocab,
                _ => tok.vocab_size(),
            };
            (SpecInput::Tokens { vocab }, Task::Text)
        }
        (None, Some(c)) => (SpecInput::Channels(c), Task::Sequence),
        _ => bail!("give exactly one of --channels (real-valued input) or --tokenizer-from (text)"),
    };
    let args = TrainArgs {
        model: ModelArgs {
            units: Some(cmd.units.clone()),
            embedding_dim: cmd.embedding_dim,
            head: cmd.head,
        },
        ..TrainArgs::default()
    };
    let classes =
        if cmd.head == Some(HeadKind::Linear) { None } else { Some(cmd.classes.unwrap_or(2)) };
    let spec = args.spec(input, classes)?;
    let width = if let SpecInput::Channels(c) = input { c } else { 1 };
    crate::limits::Machine::detect()?.check_inputs(1, cmd.maxlen, width)?;
    let params = ex::read_keras_npz(&cmd.npz, &spec)?;
    let padding = cmd.padding.unwrap_or_default();
    let mut meta = ModelMeta::new(task, cmd.maxlen, padding, Side::Pre);
    if let Some(k) = classes {
        meta.class_names = tok_bundle
            .as_ref()
            .map(|b| b.meta.class_names.clone())
            .filter(|n| n.len() == k as usize)
            .unwrap_or_else(|| (0..k).map(|i| i.to_string()).collect());
    }
    let bundle = ModelBundle {
        spec,
        params,
        tokenizer: tok_bundle.as_ref().and_then(|b| b.tokenizer.clone()),
        normalizer: None,
        meta,
        optimizer_state: None,
        best_params: None,
    };
    bundle.save(&cmd.out)?;
    crate::outln!("Wrote {} ({} parameters)", cmd.out.display(), spec.param_count());
    Ok(())
}
