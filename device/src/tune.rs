//! Scoring and transactional fine-tuning: head-only on cached features, every parameter with
//! truncated BPTT, and the acceptance rule that commits a candidate or rolls it back.
//!
//! Every loss and gradient comes from the core: [`tinylstm::train::dense_loss_and_grad`] for the
//! head on cached features, [`tinylstm::train::loss_and_grad`] for full BPTT, and
//! [`tinylstm::loss::loss_and_grad`] for scores. Every buffer comes from the caller.

use core::ops::Range;

use tinylstm::optim::{all_finite, Clip, Optimizer, OptimizerConfig};
use tinylstm::train::{
    dense_loss_and_grad, loss_and_grad, Batch, Bptt, HeadBatch, HeadBuffers, TrainBuffers,
    TrainOptions,
};
use tinylstm::{loss, Error, Head, Spec, Targets};

use crate::data::{values, View};
use crate::model::{logits, Model, Weights};

/// Loss and (for classifiers) accuracy over a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Score {
    /// The mean loss of the head (cross-entropy, binary cross-entropy or MSE), as Keras
    /// computes it for one batch of `count`.
    pub loss: f32,
    /// Sequences classified right (softmax: the largest logit is the label; sigmoid: every
    /// output on the side of 0.5 of its label); `None` for a linear head.
    pub correct: Option<usize>,
    /// Sequences scored.
    pub count: usize,
}

/// The targets of `n` sequences from their words `[n·Y]` (see [`View::all_targets`]).
pub fn targets<'t>(spec: &Spec, words: &'t [u32], n: usize) -> Targets<'t> {
    match spec.head {
        Head::Softmax => Targets::Classes(&words[..n]),
        _ => Targets::Values(&values(words)[..n * spec.outputs]),
    }
}

/// Scores logits `[n][K]` against target words `[n·Y]`; `dlogits [n][K]` is scratch.
///
/// # Errors
/// Wrong lengths, class ids out of range.
pub fn score(
    spec: &Spec,
    logits: &[f32],
    target_words: &[u32],
    n: usize,
    dlogits: &mut [f32],
) -> Result<Score, Error> {
    let k = spec.outputs;
    let t = targets(spec, target_words, n);
    let lg = &logits[..n * k];
    let loss = loss::loss_and_grad(spec.head, k, n, lg, t, n as f32, &mut dlogits[..n * k])?;
    let correct = match t {
        Targets::Classes(labels) => Some(
            lg.chunks_exact(k)
                .zip(labels)
                .filter(|(row, &l)| crate::model::argmax(row) == l as usize)
                .count(),
        ),
        Targets::Values(ys) if spec.head == Head::Sigmoid => Some(
            lg.chunks_exact(k)
                .zip(ys.chunks_exact(k))
                .filter(|(row, y)| row.iter().zip(*y).all(|(z, y)| (*z > 0.0) == (*y > 0.5)))
                .count(),
        ),
        Targets::Values(_) => None,
    };
    Ok(Score { loss, correct, count: n })
}

/// Logits `[n][K]` of every sequence of `view` (`x [T·W]`, `work`, `hidden [H]` scratch as for
/// [`logits`]).
///
/// # Errors
/// As [`logits`].
pub fn logits_set(
    m: &Model<'_>,
    w: Weights<'_>,
    view: &View<'_>,
    x: &mut [u32],
    work: &mut [f32],
    hidden: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let k = m.spec.outputs;
    for i in 0..view.len() {
        view.read(i, x);
        logits(m, w, x, work, hidden, &mut out[i * k..(i + 1) * k])?;
    }
    Ok(())
}

/// The top layer's last hidden state `h_T [H]` of every sequence of `view` into
/// `feats [n][H]` (`model::forward_hidden`): the input of the Dense head, which is all head-only
/// training needs (the LSTM and Embedding are frozen; the head of `w` is not read). A
/// sequence with a NaN or infinite value is refused ([`Error::NonFiniteInput`]): an
/// infinite reading saturates the gates and would give finite features.
///
/// # Errors
/// That refusal, or wrong buffer lengths.
pub fn features(
    m: &Model<'_>,
    w: Weights<'_>,
    view: &View<'_>,
    x: &mut [u32],
    work: &mut [f32],
    feats: &mut [f32],
) -> Result<(), Error> {
    let h = m.spec.top_units();
    for i in 0..view.len() {
        view.read_finite(i, x)?;
        let x = m.inputs(&x[..m.seq_words()]);
        w.hidden(&m.spec, x, work, &mut feats[i * h..(i + 1) * h])?;
    }
    Ok(())
}

/// Settings of head-only fine-tuning: full-batch steps on the cached features.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadConfig {
    /// Optimizer steps.
    pub steps: u32,
    /// Learning rate.
    pub lr: f32,
    /// The optimizer (its state covers the head only).
    pub optimizer: Optimizer,
}

impl HeadConfig {
    /// 60 full-batch Adam steps at lr 1e-2 (Keras `Adam(learning_rate=1e-2)`).
    pub const DEFAULT: HeadConfig =
        HeadConfig { steps: 60, lr: 1e-2, optimizer: Optimizer::adam() };

    /// Optimizer state for a head of `spec`.
    pub const fn state_len(&self, spec: &Spec) -> usize {
        self.optimizer.state_len(spec.head_len())
    }
}

/// Buffers of head-only training (statics on a device).
#[derive(Debug)]
pub struct HeadBufs<'a> {
    /// Candidate head `[H·K + K]` (kernel then bias), trained in place.
    pub head: &'a mut [f32],
    /// Its gradient `[H·K + K]`.
    pub grads: &'a mut [f32],
    /// Optimizer state [`HeadConfig::state_len`], zero before the first step.
    pub state: &'a mut [f32],
    /// Logits `[n][K]`.
    pub logits: &'a mut [f32],
    /// Logit gradients `[n][K]`.
    pub dlogits: &'a mut [f32],
}

/// One full-batch step of the head on `feats [n][H]` with target words `[n·Y]`; returns the
/// loss before the step. The loss and gradient are the core's
/// ([`dense_loss_and_grad`]). A non-finite loss or gradient returns `Err` and leaves the head
/// and the optimizer state untouched.
///
/// # Errors
/// [`Error::NonFiniteGradient`], wrong buffer lengths.
pub fn head_step(
    spec: &Spec,
    cfg: &HeadConfig,
    b: &mut HeadBufs<'_>,
    feats: &[f32],
    target_words: &[u32],
    n: usize,
    iteration: u32,
) -> Result<f32, Error> {
    let (h, k) = (spec.top_units(), spec.outputs);
    b.grads.fill(0.0);
    let batch =
        HeadBatch { features: &feats[..n * h], targets: targets(spec, target_words, n), batch: n };
    let buffers = HeadBuffers {
        logits: &mut b.logits[..n * k],
        dlogits: &mut b.dlogits[..n * k],
        grads: b.grads,
    };
    let loss = dense_loss_and_grad(spec, b.head, &batch, &TrainOptions::default(), buffers)?;
    if !loss.is_finite() || !all_finite(b.grads) {
        return Err(Error::NonFiniteGradient);
    }
    cfg.optimizer.step(cfg.lr, iteration, b.head, b.grads, b.state)?;
    Ok(loss)
}

/// Settings of full fine-tuning with truncated BPTT.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FullConfig {
    /// The BPTT window (and recomputation).
    pub bptt: Bptt,
    /// Sequences per optimizer step (gradients accumulated one sequence at a time).
    pub minibatch: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Optimizer, schedule and clipping.
    pub optimizer: OptimizerConfig,
}

impl FullConfig {
    /// Truncated BPTT over the last 20 steps, minibatches of 4, 2 epochs, Adam lr 2e-3 with
    /// global-norm clipping at 1.
    pub const DEFAULT: FullConfig = FullConfig {
        bptt: Bptt::truncated(20),
        minibatch: 4,
        epochs: 2,
        optimizer: OptimizerConfig::new(Optimizer::adam())
            .with_lr(2e-3)
            .with_clip(Clip::global_norm(1.0)),
    };

    /// Optimizer state for every parameter of `spec`.
    pub const fn state_len(&self, spec: &Spec) -> usize {
        self.optimizer.state_len(spec.param_count())
    }

    /// BPTT work buffer for one sequence of `steps` steps (`usize::MAX` if it overflows,
    /// which no board can hold).
    pub const fn work_len(&self, spec: &Spec, steps: usize) -> usize {
        match spec.train_work_len(1, steps, self.bptt) {
            Some(n) => n,
            None => usize::MAX,
        }
    }

    /// The minibatches of one epoch over `n` sequences, in order.
    pub fn minibatches(&self, n: usize) -> impl Iterator<Item = Range<usize>> {
        let m = self.minibatch.max(1);
        (0..n.div_ceil(m)).map(move |j| j * m..((j + 1) * m).min(n))
    }
}

/// Buffers of full fine-tuning.
#[derive(Debug)]
pub struct FullBufs<'a> {
    /// Candidate parameters `[P]`, trained in place.
    pub params: &'a mut [f32],
    /// Gradients `[P]`.
    pub grads: &'a mut [f32],
    /// Optimizer state [`FullConfig::state_len`], zero before the first step.
    pub state: &'a mut [f32],
    /// BPTT work [`FullConfig::work_len`].
    pub work: &'a mut [f32],
    /// One input sequence `[T·W]`.
    pub x: &'a mut [u32],
    /// One sequence's target words `[Y]`.
    pub y: &'a mut [u32],
}

/// One optimizer step on the sequences `batch` of `view`, their gradients (the core's
/// [`loss_and_grad`]) accumulated one sequence at a time and normalised by the batch size;
/// returns the batch loss. A sequence with a NaN or infinite value
/// ([`Error::NonFiniteInput`]) or a non-finite gradient returns `Err` before the
/// parameters or the optimizer state change.
///
/// # Errors
/// Those refusals, wrong buffer lengths.
pub fn full_step(
    m: &Model<'_>,
    cfg: &FullConfig,
    b: &mut FullBufs<'_>,
    view: &View<'_>,
    batch: Range<usize>,
    iteration: u32,
) -> Result<f32, Error> {
    let spec = &m.spec;
    let opts = TrainOptions { bptt: cfg.bptt, norm: batch.len() };
    b.grads.fill(0.0);
    let mut loss = 0.0f32;
    for i in batch {
        view.read_finite(i, b.x)?;
        view.targets(i, b.y);
        let data = Batch {
            inputs: m.inputs(&b.x[..m.seq_words()]),
            targets: targets(spec, b.y, 1),
            batch: 1,
        };
        loss += loss_and_grad(spec, b.params, &data, &opts, TrainBuffers::new(b.work, b.grads))?;
    }
    cfg.optimizer.apply(spec, 0..spec.param_count(), iteration, b.params, b.grads, b.state)?;
    Ok(loss)
}

/// Why an update was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reject {
    /// The training or validation data hold a NaN/Inf value ([`View::check_finite`]): refused
    /// before any training step.
    NonFiniteInput,
    /// Training produced a NaN/Inf (loss, gradient or parameters).
    NonFinite,
    /// The candidate's validation loss is not below the current model's.
    WorseValidation,
}

impl Reject {
    /// A word for the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reject::NonFiniteInput => "non-finite-input",
            Reject::NonFinite => "non-finite",
            Reject::WorseValidation => "worse-validation",
        }
    }
}

/// The acceptance rule: a candidate replaces the current parameters only if every candidate
/// parameter is finite and its validation loss is finite and strictly below the current one.
///
/// # Errors
/// The [`Reject`] reason.
pub fn accept(candidate: &[f32], before: &Score, after: &Score) -> Result<(), Reject> {
    if !all_finite(candidate) || !after.loss.is_finite() {
        Err(Reject::NonFinite)
    } else if after.loss.partial_cmp(&before.loss) == Some(core::cmp::Ordering::Less) {
        Ok(())
    } else {
        Err(Reject::WorseValidation)
    }
}
