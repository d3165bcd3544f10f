//! A trained model as the CLI stores it: the core's `.tlm` file with the preprocessing that
//! turns raw input into model input (tokenizer, standardisation, sequence length, class names)
//! in its optional sections, so `eval`, `predict` and a device need nothing else.
//!
//! Sections written (see `tinylstm::format`): `TOKENIZER` (text models, the serialised Keras
//! tokenizer) with its `TOKEN_INDEX` (the words sorted for a device's lookup, see
//! `tinylstm::text`), `NORMALIZATION` (sequence models with standardisation), `METADATA` (JSON,
//! [`ModelMeta`]), and for training checkpoints [`TAG_OPTIMIZER_STATE`] and [`TAG_BEST_PARAMS`]
//! (ignored by readers that do not know them).

use crate::history::TrainState;
use crate::preprocess::normalize::Normalizer;
use crate::preprocess::pad::Side;
use crate::preprocess::tokenizer::Tokenizer;
use crate::preprocess::Preprocessor;
pub use crate::preprocess::Task;
use crate::settings::TrainArgs;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tinylstm::format::{self, ModelFile, Section};
use tinylstm::Spec;

/// Section tag of a checkpoint's optimizer state (little-endian f32).
pub const TAG_OPTIMIZER_STATE: u32 = 0x1000;
/// Section tag of a checkpoint's best-so-far parameters (little-endian f32).
pub const TAG_BEST_PARAMS: u32 = 0x1001;

/// The `METADATA` section: how to prepare input and name outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Format marker, `tinylstm-meta/1`.
    pub format: String,
    /// Input kind.
    pub task: Task,
    /// Time steps the model was trained on (maxlen).
    pub steps: usize,
    /// Where shorter sequences are padded.
    pub padding: Side,
    /// Where longer sequences are cut.
    pub truncating: Side,
    /// Class names by label (empty for regression).
    pub class_names: Vec<String>,
    /// Distinct words (or characters) the tokenizer saw in training, Keras `len(word_index)`
    /// (text models; the tokenizer section keeps only the words below `num_words`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<usize>,
    /// Forecasting models: their windows and value columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::forecast::ForecastMeta>,
    /// The training settings, for reference and `--resume`.
    #[serde(default)]
    pub config: Option<TrainArgs>,
    /// Training progress (checkpoints only).
    #[serde(default)]
    pub train_state: Option<TrainState>,
}

impl ModelMeta {
    /// Metadata for a new model.
    pub fn new(task: Task, steps: usize, padding: Side, truncating: Side) -> Self {
        ModelMeta {
            format: "tinylstm-meta/1".into(),
            task,
            steps,
            padding,
            truncating,
            class_names: Vec::new(),
            vocabulary: None,
            forecast: None,
            config: None,
            train_state: None,
        }
    }
}

/// A model with its preprocessing.
#[derive(Clone, Debug)]
pub struct ModelBundle {
    /// Architecture.
    pub spec: Spec,
    /// Flat parameters (Keras order).
    pub params: Vec<f32>,
    /// Text tokenizer (text models).
    pub tokenizer: Option<Tokenizer>,
    /// Per-channel standardisation (sequence models).
    pub normalizer: Option<Normalizer>,
    /// Everything else.
    pub meta: ModelMeta,
    /// Optimizer state (checkpoints).
    pub optimizer_state: Option<Vec<f32>>,
    /// Best parameters so far (checkpoints).
    pub best_params: Option<Vec<f32>>,
}

fn f32s_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_to_f32s(b: &[u8], what: &str) -> Result<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        bail!("{what} section has {} bytes, not a whole number of f32", b.len());
    }
    Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

impl ModelBundle {
    /// The preprocessing this model was trained with, to turn samples into its input.
    pub fn preprocessor(&self) -> Preprocessor<'_> {
        Preprocessor {
            task: self.meta.task,
            steps: self.meta.steps,
            padding: self.meta.padding,
            truncating: self.meta.truncating,
            tokenizer: self.tokenizer.as_ref(),
            normalizer: self.normalizer.as_ref(),
            channels: self.spec.step_width(),
            pad_value: match self.spec.mask {
                tinylstm::Mask::Value(v) => v,
                _ => 0.0,
            },
            // Rows longer than the model's are an error, unless training cut them itself
            // (an explicit --maxlen), in which case they are cut the same way.
            strict: self.meta.config.as_ref().is_none_or(|c| c.preprocessing.maxlen.is_none()),
        }
    }

    /// Encodes the bundle as `.tlm` bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_with(format::EmbeddingStorage::F32)
    }

    /// Encodes the bundle as `.tlm` bytes with the Embedding stored as `storage` (int8: format
    /// version 3, see `tinylstm::quant`; reading it back gives the dequantised table).
    pub fn to_bytes_with(&self, storage: format::EmbeddingStorage) -> Result<Vec<u8>> {
        let tok = self.tokenizer.as_ref().map(Tokenizer::to_bytes);
        let tok_index = self.tokenizer.as_ref().map(Tokenizer::index_bytes);
        let norm = self.normalizer.as_ref().map(Normalizer::to_bytes);
        let meta = serde_json::to_vec(&self.meta)?;
        let opt = self.optimizer_state.as_deref().map(f32s_to_bytes);
        let best = self.best_params.as_deref().map(f32s_to_bytes);
        let mut sections = Vec::new();
        if let Some(t) = &tok {
            sections.push(Section { tag: format::TAG_TOKENIZER, bytes: t });
        }
        if let Some(t) = &tok_index {
            sections.push(Section { tag: format::TAG_TOKEN_INDEX, bytes: t });
        }
        if let Some(n) = &norm {
            sections.push(Section { tag: format::TAG_NORMALIZATION, bytes: n });
        }
        sections.push(Section { tag: format::TAG_METADATA, bytes: &meta });
        if let Some(o) = &opt {
            sections.push(Section { tag: TAG_OPTIMIZER_STATE, bytes: o });
        }
        if let Some(b) = &best {
            sections.push(Section { tag: TAG_BEST_PARAMS, bytes: b });
        }
        let len =
            format::encoded_len_with(&self.spec, &sections, storage).map_err(|e| anyhow!("{e}"))?;
        let mut out = vec![0u8; len];
        format::write_into_with(&self.spec, &self.params, &sections, storage, &mut out)
            .map_err(|e| anyhow!("encoding the model: {e}"))?;
        Ok(out)
    }

    /// Decodes `.tlm` bytes (`origin` names them in errors).
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<ModelBundle> {
        let file = ModelFile::parse(bytes).map_err(|e| anyhow!("{origin}: {e}"))?;
        let spec = file.spec();
        let mut params = vec![0.0; file.param_count()];
        file.read_params(&mut params).map_err(|e| anyhow!("{origin}: {e}"))?;
        let meta_bytes = file.metadata().ok_or_else(|| {
            anyhow!("{origin}: no metadata section (not written by tinylstm train?)")
        })?;
        let meta: ModelMeta = serde_json::from_slice(meta_bytes)
            .with_context(|| format!("{origin}: metadata section"))?;
        let tokenizer = match file.tokenizer() {
            Some(b) => Some(
                Tokenizer::from_bytes(b)
                    .map_err(|e| anyhow!("{origin}: tokenizer section: {e}"))?,
            ),
            None => None,
        };
        let normalizer = match file.normalization() {
            Some(b) => Some(
                Normalizer::from_bytes(b)
                    .map_err(|e| anyhow!("{origin}: normalization section: {e}"))?,
            ),
            None => None,
        };
        let optimizer_state = match file.section(TAG_OPTIMIZER_STATE) {
            Some(b) => Some(bytes_to_f32s(b, &format!("{origin}: optimizer state"))?),
            None => None,
        };
        let best_params = match file.section(TAG_BEST_PARAMS) {
            Some(b) => {
                let v = bytes_to_f32s(b, &format!("{origin}: best parameters"))?;
                if v.len() != params.len() {
                    bail!(
                        "{origin}: best-parameters section has {} values, expected {}",
                        v.len(),
                        params.len()
                    );
                }
                Some(v)
            }
            None => None,
        };
        let bundle =
            ModelBundle { spec, params, tokenizer, normalizer, meta, optimizer_state, best_params };
        bundle.check_consistency(origin)?;
        bundle.check_checkpoint_finite(origin)?;
        Ok(bundle)
    }

    /// Whether this is a training checkpoint (progress, optimizer state or best parameters).
    pub fn is_checkpoint(&self) -> bool {
        self.meta.train_state.is_some()
            || self.optimizer_state.is_some()
            || self.best_params.is_some()
    }

    /// Training never writes a NaN or infinity into a checkpoint (it stops before the step), so
    /// one in a checkpoint's parameters, best parameters or optimizer state means a damaged or
    /// hand-made file: refuse it rather than resume from it (the best parameters would
    /// otherwise become `model.tlm`).
    fn check_checkpoint_finite(&self, origin: &str) -> Result<()> {
        if !self.is_checkpoint() {
            return Ok(());
        }
        let tensor_of = |i: usize| {
            let t = self.spec.tensors().position(|t| t.range().contains(&i)).unwrap_or(0);
            let start = self.spec.tensor(t).map_or(0, |t| t.offset);
            format!("{}[{}]", crate::keras_names::tensor_name(&self.spec, t), i - start)
        };
        let sets = [
            ("parameters", Some(&self.params)),
            ("best-parameters section", self.best_params.as_ref()),
        ];
        for (what, values) in sets {
            if let Some(i) = values.and_then(|v| v.iter().position(|x| !x.is_finite())) {
                bail!(
                    "{origin}: checkpoint {what}: {} (parameter {i}) is {}; training never \
                     checkpoints NaN or infinity, so the file is damaged or hand-made",
                    tensor_of(i),
                    values.map_or(0.0, |v| v[i])
                );
            }
        }
        if let Some(state) = &self.optimizer_state {
            if let Some(i) = state.iter().position(|x| !x.is_finite()) {
                bail!(
                    "{origin}: checkpoint optimizer state: value {i} is {}; training never \
                     checkpoints NaN or infinity, so the file is damaged or hand-made",
                    state[i]
                );
            }
        }
        Ok(())
    }

    fn check_consistency(&self, origin: &str) -> Result<()> {
        match (self.meta.task, self.spec.input) {
            (Task::Text, tinylstm::InputKind::Tokens { vocab, .. }) => {
                let tok = self
                    .tokenizer
                    .as_ref()
                    .ok_or_else(|| anyhow!("{origin}: text model without a tokenizer section"))?;
                if tok.vocab_size() > vocab {
                    bail!(
                        "{origin}: tokenizer emits ids up to {} but the embedding has {vocab} rows",
                        tok.vocab_size() - 1
                    );
                }
            }
            (Task::Sequence, tinylstm::InputKind::Channels(c)) => {
                if let Some(n) = &self.normalizer {
                    if n.channels() != c {
                        bail!(
                            "{origin}: normalization has {} channels, the model {c}",
                            n.channels()
                        );
                    }
                }
            }
            _ => bail!("{origin}: metadata task does not match the model's input kind"),
        }
        if self.meta.steps == 0 {
            bail!("{origin}: metadata has a sequence length of 0");
        }
        Ok(())
    }

    /// Reads a bundle from a `.tlm` file.
    pub fn load(path: &Path) -> Result<ModelBundle> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read model file {}", path.display()))?;
        ModelBundle::from_bytes(&bytes, &path.display().to_string())
    }

    /// Writes the bundle atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::files::write_atomic(path, &bytes)
            .with_context(|| format!("cannot write model file {}", path.display()))
    }

    /// Class names, or `0..K` as strings when none were stored.
    pub fn class_names(&self) -> Vec<String> {
        if self.meta.class_names.is_empty() {
            let k = if self.spec.outputs == 1 && self.spec.head == tinylstm::Head::Sigmoid {
                2
            } else {
                self.spec.outputs
            };
            (0..k).map(|i| i.to_string()).collect()
        } else {
            self.meta.class_names.clone()
        }
    }
}
