//! From loaded samples to model input: tokenize and pad texts, standardise and pad sequences,
//! all as the model's stored preprocessing says, so training, evaluation
//! and prediction prepare data identically.

pub mod normalize;
pub mod pad;
pub mod tokenizer;

use crate::data::{Dataset, Label, Sample};
use crate::preprocess::normalize::Normalizer;
use crate::preprocess::pad::Side;
use crate::preprocess::pad::{pad_frames, pad_sequences, PadOptions};
use crate::preprocess::tokenizer::Tokenizer;
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use tinylstm::{Sequences, Targets};

/// Model inputs `[N][T]` ids or `[N][T][C]` values.
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs {
    /// Token ids.
    Tokens(Vec<u32>),
    /// Real values.
    Values(Vec<f32>),
}

/// Labels of the samples.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Class ids.
    Classes(Vec<u32>),
    /// Real targets.
    Real(Vec<f32>),
}

/// A prepared set of samples, ready for the core.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// Inputs, batch-major.
    pub inputs: Inputs,
    /// Labels.
    pub labels: Labels,
    /// Number of samples `N`.
    pub len: usize,
    /// Time steps `T`.
    pub steps: usize,
    /// Values per step (1 for tokens).
    pub width: usize,
}

/// What [`Prepared::gather`] gathers: inputs and the core's targets for some samples.
#[derive(Clone, Debug, Default)]
pub struct BatchBuf {
    /// Gathered ids.
    pub tokens: Vec<u32>,
    /// Gathered values.
    pub values: Vec<f32>,
    /// Gathered class ids.
    pub classes: Vec<u32>,
    /// Gathered targets as floats (sigmoid/linear heads).
    pub targets: Vec<f32>,
}

impl BatchBuf {
    /// The gathered inputs as the core takes them.
    pub fn sequences(&self) -> Sequences<'_> {
        if self.tokens.is_empty() {
            Sequences::Values(&self.values)
        } else {
            Sequences::Tokens(&self.tokens)
        }
    }

    /// The gathered targets for a head.
    pub fn core_targets(&self, head: tinylstm::Head) -> Targets<'_> {
        match head {
            tinylstm::Head::Softmax => Targets::Classes(&self.classes),
            _ => Targets::Values(&self.targets),
        }
    }
}

impl Prepared {
    /// Gathers the samples `idx` into `buf` (reusing its allocations). `outputs` is the head's
    /// width, for one-hot sigmoid targets.
    pub fn gather(&self, idx: &[usize], outputs: usize, buf: &mut BatchBuf) {
        let row = self.steps * self.width;
        buf.tokens.clear();
        buf.values.clear();
        buf.classes.clear();
        buf.targets.clear();
        for &i in idx {
            match &self.inputs {
                Inputs::Tokens(t) => buf.tokens.extend_from_slice(&t[i * row..(i + 1) * row]),
                Inputs::Values(v) => buf.values.extend_from_slice(&v[i * row..(i + 1) * row]),
            }
            match &self.labels {
                Labels::Classes(c) => {
                    buf.classes.push(c[i]);
                    if outputs == 1 {
                        buf.targets.push(c[i] as f32);
                    } else {
                        buf.targets.extend((0..outputs).map(|k| (k as u32 == c[i]) as u32 as f32));
                    }
                }
                Labels::Real(r) => {
                    // One target per output (forecasts: horizon × values).
                    let k = r.len() / self.len.max(1);
                    buf.targets.extend_from_slice(&r[i * k..(i + 1) * k]);
                }
            }
        }
    }

    /// Class ids (empty for real labels).
    pub fn classes(&self) -> &[u32] {
        match &self.labels {
            Labels::Classes(c) => c,
            Labels::Real(_) => &[],
        }
    }
}

/// What the model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Texts, tokenized by the stored tokenizer.
    Text,
    /// Real-valued sequences.
    Sequence,
}

/// Turns samples into model input with the model's preprocessing.
#[derive(Clone, Debug)]
pub struct Preprocessor<'a> {
    /// What the model reads.
    pub task: Task,
    /// Time steps after padding/truncation (maxlen).
    pub steps: usize,
    /// Where shorter sequences are padded.
    pub padding: Side,
    /// Where longer sequences are cut.
    pub truncating: Side,
    /// Tokenizer for text.
    pub tokenizer: Option<&'a Tokenizer>,
    /// Standardisation for sequences.
    pub normalizer: Option<&'a Normalizer>,
    /// Channels for sequences.
    pub channels: usize,
    /// The value sequences are padded with (the mask value of a masked model, else 0).
    pub pad_value: f32,
    /// Refuse a sequence longer than `steps` (naming its line) instead of truncating it: a
    /// trained model's `steps` is the longest row it was trained on.
    pub strict: bool,
}

impl Preprocessor<'_> {
    /// Prepares `samples` (labels as loaded).
    pub fn prepare(&self, samples: &[&Sample]) -> Result<Prepared> {
        let labels = if samples.iter().all(|s| matches!(s.label, Label::Class(_))) {
            Labels::Classes(samples.iter().filter_map(|s| s.label.class()).collect())
        } else {
            Labels::Real(samples.iter().map(|s| s.label.value()).collect())
        };
        let steps = self.steps;
        crate::limits::Machine::detect()?.check_inputs(
            samples.len(),
            steps,
            self.channels.max(1),
        )?;
        let (inputs, width) = match self.task {
            Task::Text => {
                let tok = self.tokenizer.ok_or_else(|| anyhow!("text model without tokenizer"))?;
                let seqs: Vec<Vec<u32>> =
                    samples.iter().map(|s| tok.text_to_sequence(s.text().unwrap_or(""))).collect();
                let opts = PadOptions {
                    maxlen: Some(steps),
                    padding: self.padding,
                    truncating: self.truncating,
                    value: 0u32,
                };
                (Inputs::Tokens(pad_sequences(&seqs, &opts)?.data), 1)
            }
            Task::Sequence => {
                let c = self.channels;
                let mut seqs: Vec<Vec<f32>> = Vec::with_capacity(samples.len());
                for s in samples {
                    let mut v = s
                        .values()
                        .ok_or_else(|| anyhow!("line {}: not a sequence sample", s.line))?
                        .to_vec();
                    if v.len() % c != 0 {
                        return Err(anyhow!(
                            "line {}: {} values are not a whole number of {c}-channel steps",
                            s.line,
                            v.len()
                        ));
                    }
                    if self.strict && v.len() / c > steps {
                        return Err(anyhow!(
                            "line {}: {} steps, but the model takes at most {steps} (the \
                             longest row it was trained on); cut the row or train with longer rows",
                            s.line,
                            v.len() / c
                        ));
                    }
                    if let Some(n) = self.normalizer {
                        n.apply(&mut v)?;
                    }
                    seqs.push(v);
                }
                let opts = PadOptions {
                    maxlen: Some(steps),
                    padding: self.padding,
                    truncating: self.truncating,
                    value: self.pad_value,
                };
                (Inputs::Values(pad_frames(&seqs, c, &opts)?.data), c)
            }
        };
        Ok(Prepared { inputs, labels, len: samples.len(), steps, width })
    }

    /// Prepares the samples of `data` at `indices` (errors name the file).
    pub fn prepare_indices(&self, data: &Dataset, indices: &[usize]) -> Result<Prepared> {
        let s: Vec<&Sample> = indices.iter().map(|&i| &data.samples[i]).collect();
        self.prepare(&s).map_err(|e| anyhow!("{}: {e:#}", data.source.display()))
    }
}
