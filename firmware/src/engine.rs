//! The application's numerics, independent of the platform: the compiled spec, the model's
//! input standardisation, the embedded data sets, evaluation, head-only and full-BPTT
//! fine-tuning steps and the transaction check.
//!
//! This file depends on nothing but `core` and `tinylstm`, takes every buffer from its caller and
//! never allocates, so the same source runs on the device (statics) and on a host (`Vec`s): the
//! host tools in `firmware/tools` and the QEMU harness (`tests/tests/qemu.rs`) include it
//! with `#[path = ".../firmware/src/engine.rs"] mod engine;` and replay the firmware's
//! computations to compare them bit for bit with the device's log.
//!
//! # Data set format (`firmware/data/*.bin`)
//!
//! Little-endian throughout:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic, the ASCII bytes `TLSEQ001` ([`DATA_MAGIC`]) |
//! | 8 | 4 | `u32` number of sequences `N` (at most [`MAX_SET`]) |
//! | 12 | 4 | `u32` time steps `T` per sequence |
//! | 16 | 4 | `u32` channels `C` per time step |
//! | 20 | `N · (4 + 4·T·C)` | per sequence: `u32` class label, then `T·C` `f32` values, timestep-major |
//!
//! Nothing follows the last record. The values are **raw** sensor readings: [`View::read`]
//! standardises them with the model's [`Standardize`] (its NORMALIZATION section) on the way in.

#![allow(dead_code)]

use core::ops::Range;

use tinylstm::format::ModelFile;
use tinylstm::kernels::gemm_nn;
use tinylstm::optim::{all_finite, Clip, Optimizer, OptimizerConfig};
use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainOptions};
use tinylstm::{loss, model, Error, Head, Sequences, Spec, Targets};

/// Channels per time step (3-axis motion sensor).
pub const CHANNELS: usize = 3;
/// Classes: circle_cw, circle_ccw, tap_then_swipe, swipe_then_tap.
pub const CLASSES: usize = 4;
/// Hidden units of the LSTM.
pub const UNITS: usize = 64;
/// Time steps per sequence.
pub const STEPS: usize = 40;
/// Class names, indexed by label.
pub const CLASS_NAMES: [&str; CLASSES] =
    ["circle_cw", "circle_ccw", "tap_then_swipe", "swipe_then_tap"];

/// The firmware's compiled spec: LSTM 64 → Dense 4 softmax on 3 channels.
pub const SPEC: Spec = Spec::channels(CHANNELS).lstm(UNITS).dense(CLASSES, Head::Softmax);
const _: () = assert!(SPEC.is_valid());

/// Parameters of [`SPEC`].
pub const PARAMS: usize = SPEC.param_count();
/// The Dense head (kernel then bias) inside the flat parameter buffer.
pub const HEAD: Range<usize> = SPEC.head_range();
/// Parameters of the head.
pub const HEAD_LEN: usize = PARAMS - SPEC.dense_kernel_offset();
/// Values in one sequence, `T·C`.
pub const SEQ_LEN: usize = STEPS * CHANNELS;
/// Largest number of sequences in one embedded data set.
pub const MAX_SET: usize = 32;

/// Work buffer of one full-sequence inference (one step per chunk: the smallest buffer; the
/// results are bit-identical for every chunk size).
pub const FORWARD_WORK: usize = SPEC.forward_work_len(1, 1).unwrap();
/// Streaming state `(h, c)` of one sequence.
pub const STATE: usize = SPEC.state_len(1).unwrap();
/// Work buffer of one streaming step.
pub const STEP_WORK: usize = SPEC.step_work_len(1).unwrap();

// ---------------------------------------------------------------------------------------------
// Fine-tuning settings
// ---------------------------------------------------------------------------------------------

/// Head-only fine-tuning: full-batch Adam steps on the cached features of the field set.
pub const HEAD_STEPS: u32 = 60;
/// Head-only learning rate.
pub const HEAD_LR: f32 = 1e-2;
/// Head-only optimizer (Keras `Adam(learning_rate=HEAD_LR)`).
pub const HEAD_OPT: Optimizer = Optimizer::adam();
/// Adam state of the head.
pub const HEAD_STATE: usize = HEAD_OPT.state_len(HEAD_LEN);

/// Full fine-tuning: truncated BPTT over the last `window` steps of each sequence.
pub const BPTT: Bptt = Bptt::truncated(20);
/// Sequences per optimizer step (gradients accumulated one sequence at a time).
pub const MINIBATCH: usize = 4;
/// Passes over the field training set.
pub const FULL_EPOCHS: usize = 2;
/// Full fine-tuning optimizer: Adam, constant learning rate, global-norm clipping at 1.
pub const FULL_CFG: OptimizerConfig =
    OptimizerConfig::new(Optimizer::adam()).with_lr(2e-3).with_clip(Clip::global_norm(1.0));
/// Adam state of every parameter.
pub const FULL_STATE: usize = FULL_CFG.state_len(PARAMS);
/// Work buffer of one BPTT pass over one sequence.
pub const TRAIN_WORK: usize = SPEC.train_work_len(1, STEPS, BPTT).unwrap();

// ---------------------------------------------------------------------------------------------
// Input standardisation (the model file's NORMALIZATION section)
// ---------------------------------------------------------------------------------------------

/// Per-channel standardisation of raw sensor values, `x' = (x − mean[c]) / std[c]`, with the
/// statistics `tinylstm train` fitted on its training split and stored in the model file's
/// NORMALIZATION section. The same `f32` operations as the CLI's `Normalizer::apply`
/// (`host-cli/src/normalize.rs`), so a device and `tinylstm predict` feed the model the same bits.
///
/// Section body, little-endian: `u32 C`, then `C` `f32` means, then `C` `f32` standard
/// deviations (`4 + 8·C` bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standardize {
    /// Per-channel means.
    pub means: [f32; CHANNELS],
    /// Per-channel standard deviations (finite, positive).
    pub stds: [f32; CHANNELS],
}

/// A NORMALIZATION section the firmware cannot use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormError {
    /// Its length is not `4 + 8·C`.
    Length(usize),
    /// Its channel count `C` differs from the firmware's.
    Channels(u32),
    /// A mean is not finite, or a standard deviation is not finite and positive.
    Value(usize),
}

impl core::fmt::Display for NormError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            NormError::Length(n) => {
                write!(f, "normalization section has {n} bytes, expected {}", 4 + 8 * CHANNELS)
            }
            NormError::Channels(c) => {
                write!(f, "normalization section is for {c} channels, the firmware has {CHANNELS}")
            }
            NormError::Value(c) => write!(
                f,
                "normalization section: channel {c} has a non-finite mean or a standard deviation \
                 that is not finite and positive"
            ),
        }
    }
}

impl Standardize {
    /// Reads a NORMALIZATION section body (checked as the CLI's `Normalizer::from_bytes` does).
    pub fn parse(bytes: &[u8]) -> Result<Self, NormError> {
        if bytes.len() < 4 {
            return Err(NormError::Length(bytes.len()));
        }
        let c = le_u32(bytes, 0);
        if c as usize != CHANNELS {
            return Err(NormError::Channels(c));
        }
        if bytes.len() != 4 + 8 * CHANNELS {
            return Err(NormError::Length(bytes.len()));
        }
        let f = |k: usize| f32::from_bits(le_u32(bytes, 4 + 4 * k));
        let means: [f32; CHANNELS] = core::array::from_fn(f);
        let stds: [f32; CHANNELS] = core::array::from_fn(|k| f(CHANNELS + k));
        for k in 0..CHANNELS {
            if !means[k].is_finite() || !stds[k].is_finite() || stds[k] <= 0.0 {
                return Err(NormError::Value(k));
            }
        }
        Ok(Standardize { means, stds })
    }

    /// The model's standardisation: `Ok(None)` when the file has no NORMALIZATION section
    /// (a model trained with `--standardize false` reads raw values).
    pub fn from_model(file: &ModelFile<'_>) -> Result<Option<Self>, NormError> {
        file.normalization().map(Self::parse).transpose()
    }

    /// Standardises `values` (whole time steps of `C` values, timestep-major) in place.
    pub fn apply(&self, values: &mut [f32]) {
        for step in values.chunks_exact_mut(CHANNELS) {
            for ((x, m), s) in step.iter_mut().zip(&self.means).zip(&self.stds) {
                *x = (*x - m) / s;
            }
        }
    }
}

/// Applies the model's standardisation, if it has one, to `values` in place.
pub fn standardize(norm: &Option<Standardize>, values: &mut [f32]) {
    if let Some(n) = norm {
        n.apply(values);
    }
}

/// The sequence length `tinylstm train` recorded in the metadata section (`"steps":N` in its
/// JSON), if the section has one. The CLI pads or truncates every input to this length, so a
/// model made for another `T` would see different inputs on the host and on the device.
pub fn metadata_steps(meta: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"steps\":";
    let at = meta.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = meta[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n = 0usize;
    let mut any = false;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

// ---------------------------------------------------------------------------------------------
// Data sets
// ---------------------------------------------------------------------------------------------

/// Magic bytes of an embedded data set.
pub const DATA_MAGIC: [u8; 8] = *b"TLSEQ001";
/// Header length of a data set.
pub const DATA_HEADER_LEN: usize = 20;
/// Bytes per record.
pub const RECORD_LEN: usize = 4 + 4 * SEQ_LEN;

/// A problem with an embedded data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    /// It does not start with [`DATA_MAGIC`].
    BadMagic,
    /// Its `T` or `C` differs from the firmware's.
    Shape,
    /// No sequences, or more than [`MAX_SET`].
    Count,
    /// Its length is not header + `N` records.
    Length,
    /// A label is not below [`CLASSES`].
    Label,
}

impl DataError {
    /// A sentence for the log.
    pub const fn message(self) -> &'static str {
        match self {
            DataError::BadMagic => "data set does not start with TLSEQ001",
            DataError::Shape => "data set steps/channels differ from the firmware's",
            DataError::Count => "data set has no sequences or more than MAX_SET",
            DataError::Length => "data set length is not header + N records",
            DataError::Label => "data set has a label outside the classes",
        }
    }
}

const fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks a data set completely (usable in a `const` assertion); returns its sequence count.
pub const fn check_data(bytes: &[u8]) -> Result<usize, DataError> {
    if bytes.len() < DATA_HEADER_LEN {
        return Err(DataError::Length);
    }
    let mut i = 0;
    while i < 8 {
        if bytes[i] != DATA_MAGIC[i] {
            return Err(DataError::BadMagic);
        }
        i += 1;
    }
    let n = le_u32(bytes, 8) as usize;
    if le_u32(bytes, 12) as usize != STEPS || le_u32(bytes, 16) as usize != CHANNELS {
        return Err(DataError::Shape);
    }
    if n == 0 || n > MAX_SET {
        return Err(DataError::Count);
    }
    if bytes.len() != DATA_HEADER_LEN + n * RECORD_LEN {
        return Err(DataError::Length);
    }
    let mut r = 0;
    while r < n {
        if le_u32(bytes, DATA_HEADER_LEN + r * RECORD_LEN) as usize >= CLASSES {
            return Err(DataError::Label);
        }
        r += 1;
    }
    Ok(n)
}

/// A validated data set borrowed from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Dataset<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Dataset<'a> {
    /// Validates `bytes` (see [`check_data`]).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DataError> {
        let len = check_data(bytes)?;
        Ok(Dataset { bytes, len })
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (never, for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The label of sequence `i`.
    pub fn label(&self, i: usize) -> u32 {
        le_u32(self.bytes, DATA_HEADER_LEN + i * RECORD_LEN)
    }

    /// Copies the raw values of sequence `i` (`[T][C]`) into `out` and returns its label.
    pub fn read(&self, i: usize, out: &mut [f32]) -> u32 {
        let at = DATA_HEADER_LEN + i * RECORD_LEN + 4;
        for (k, o) in out[..SEQ_LEN].iter_mut().enumerate() {
            *o = f32::from_bits(le_u32(self.bytes, at + 4 * k));
        }
        self.label(i)
    }
}

/// A non-finite sensor reading, as a [`Poison`] injects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Glitch {
    /// NaN (a failed conversion).
    Nan,
    /// +Inf (a saturated or overflowing reading).
    PosInf,
    /// −Inf.
    NegInf,
}

impl Glitch {
    /// The reading.
    pub const fn value(self) -> f32 {
        match self {
            Glitch::Nan => f32::NAN,
            Glitch::PosInf => f32::INFINITY,
            Glitch::NegInf => f32::NEG_INFINITY,
        }
    }
}

/// A deliberate corruption of a data set, to exercise the transactional update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poison {
    /// The data as embedded.
    None,
    /// One raw value of one sequence replaced by a non-finite reading (a sensor glitch).
    NonFinite {
        /// Sequence index.
        sample: usize,
        /// Value index inside the sequence.
        value: usize,
        /// The reading.
        glitch: Glitch,
    },
    /// Every label shifted by one class (a mislabelled batch).
    Mislabel,
}

/// A data set holds sequences the model cannot take: a value that is NaN or infinite as the
/// model would see it (raw, then standardised — a huge finite reading can overflow there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonFiniteInput {
    /// Sequences holding such a value.
    pub sequences: usize,
    /// The first of them.
    pub first: usize,
    /// The first such value's index inside that sequence (`t · C + c`).
    pub value: usize,
}

/// A data set as the model sees it: raw values, through a [`Poison`], then standardised.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The raw data.
    pub data: Dataset<'a>,
    /// The corruption applied to the raw values on reading.
    pub poison: Poison,
    /// The model's standardisation, applied last.
    pub norm: Option<Standardize>,
}

impl<'a> View<'a> {
    /// The data as it is, standardised with `norm`.
    pub fn clean(data: Dataset<'a>, norm: Option<Standardize>) -> Self {
        View { data, poison: Poison::None, norm }
    }

    /// The same data and standardisation through another poison.
    pub fn poisoned(&self, poison: Poison) -> Self {
        View { poison, ..*self }
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The (possibly poisoned) label of sequence `i`.
    pub fn label(&self, i: usize) -> u32 {
        let l = self.data.label(i);
        match self.poison {
            Poison::Mislabel => (l + 1) % CLASSES as u32,
            _ => l,
        }
    }

    /// Copies sequence `i` into `out` — raw, poisoned, then standardised — and returns its
    /// (poisoned) label.
    pub fn read(&self, i: usize, out: &mut [f32]) -> u32 {
        self.data.read(i, out);
        if let Poison::NonFinite { sample, value, glitch } = self.poison {
            if sample == i {
                out[value] = glitch.value();
            }
        }
        standardize(&self.norm, &mut out[..SEQ_LEN]);
        self.label(i)
    }

    /// [`View::read`], refusing a sequence with a NaN or infinite value (after
    /// standardisation) with `InvalidArgument("non-finite input")`: the training paths read
    /// through this, so such a sequence never reaches a training step.
    pub fn read_finite(&self, i: usize, out: &mut [f32]) -> Result<u32, Error> {
        let label = self.read(i, out);
        if all_finite(&out[..SEQ_LEN]) {
            Ok(label)
        } else {
            Err(Error::InvalidArgument("non-finite input"))
        }
    }

    /// Checks every sequence as the model would see it (`x [SEQ_LEN]` is scratch): the intake
    /// check before fine-tuning, which refuses a data set holding a NaN or infinite value.
    pub fn check_finite(&self, x: &mut [f32]) -> Result<(), NonFiniteInput> {
        let mut bad: Option<NonFiniteInput> = None;
        for i in 0..self.len() {
            self.read(i, x);
            if let Some(value) = x[..SEQ_LEN].iter().position(|v| !v.is_finite()) {
                match &mut bad {
                    Some(b) => b.sequences += 1,
                    None => bad = Some(NonFiniteInput { sequences: 1, first: i, value }),
                }
            }
        }
        bad.map_or(Ok(()), Err)
    }

    /// The labels of every sequence into `out[..len]`.
    pub fn labels(&self, out: &mut [u32]) {
        for (i, o) in out[..self.len()].iter_mut().enumerate() {
            *o = self.label(i);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inference and evaluation
// ---------------------------------------------------------------------------------------------

/// Loss and accuracy over a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Mean softmax cross-entropy.
    pub loss: f32,
    /// Sequences whose largest logit is their label.
    pub correct: usize,
    /// Sequences scored.
    pub count: usize,
}

/// Index of the largest value (the first on ties; NaN never wins).
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Scores logits `[n][K]` against `labels [n]`: the mean loss as Keras computes it for one
/// batch of `n`, and the accuracy. `dlogits [n][K]` is scratch.
pub fn score(logits: &[f32], labels: &[u32], dlogits: &mut [f32]) -> Result<Score, Error> {
    let n = labels.len();
    let k = CLASSES;
    let loss = loss::loss_and_grad(
        Head::Softmax,
        k,
        n,
        &logits[..n * k],
        Targets::Classes(labels),
        n as f32,
        &mut dlogits[..n * k],
    )?;
    let correct = logits[..n * k]
        .chunks_exact(k)
        .zip(labels)
        .filter(|(row, &l)| argmax(row) == l as usize)
        .count();
    Ok(Score { loss, correct, count: n })
}

/// Logits `[n][K]` of every sequence of `view` with the full model (`model::forward_logits`).
pub fn logits_full(
    params: &[f32],
    view: &View<'_>,
    x: &mut [f32],
    work: &mut [f32],
    logits: &mut [f32],
) -> Result<(), Error> {
    for i in 0..view.len() {
        view.read(i, x);
        let out = &mut logits[i * CLASSES..(i + 1) * CLASSES];
        model::forward_logits(&SPEC, params, Sequences::Values(&x[..SEQ_LEN]), 1, work, out)?;
    }
    Ok(())
}

/// Class probabilities of one sequence `x [T][C]` (`model::forward`).
pub fn predict(
    params: &[f32],
    x: &[f32],
    work: &mut [f32],
    probs: &mut [f32],
) -> Result<(), Error> {
    model::forward(&SPEC, params, Sequences::Values(&x[..SEQ_LEN]), 1, work, probs)
}

// ---------------------------------------------------------------------------------------------
// Head-only fine-tuning on cached features
// ---------------------------------------------------------------------------------------------

/// The last hidden state `h_T [H]` of every sequence of `view` into `feats [n][H]`: the input of
/// the Dense head, which is all head-only training needs (the LSTM is frozen). A sequence with a
/// NaN or infinite value is refused (`InvalidArgument("non-finite input")`): an infinite reading
/// saturates the gates and would give finite features, so nothing downstream would notice it.
pub fn features(
    params: &[f32],
    view: &View<'_>,
    x: &mut [f32],
    state: &mut [f32],
    work: &mut [f32],
    feats: &mut [f32],
) -> Result<(), Error> {
    let top = SPEC.state_offset(SPEC.layers - 1, 1);
    for i in 0..view.len() {
        view.read_finite(i, x)?;
        model::reset_state(state);
        for t in 0..STEPS {
            let xt = Sequences::Values(&x[t * CHANNELS..(t + 1) * CHANNELS]);
            model::step(&SPEC, params, xt, 1, state, work, None)?;
        }
        feats[i * UNITS..(i + 1) * UNITS].copy_from_slice(&state[top..top + UNITS]);
    }
    Ok(())
}

/// Head logits `[n][K]` = bias + `feats [n][H]` · kernel `[H][K]`, with the core's kernel and in
/// the core's order (bit-identical to `model::forward_logits`).
pub fn head_logits(head: &[f32], feats: &[f32], n: usize, logits: &mut [f32]) {
    let (kernel, bias) = head.split_at(UNITS * CLASSES);
    for row in logits[..n * CLASSES].chunks_exact_mut(CLASSES) {
        row.copy_from_slice(bias);
    }
    gemm_nn(n, CLASSES, UNITS, &feats[..n * UNITS], kernel, &mut logits[..n * CLASSES]);
}

/// Buffers of head-only training (all sized by the caller, statics on the device).
#[derive(Debug)]
pub struct HeadBufs<'a> {
    /// Candidate head `[HEAD_LEN]` (kernel then bias), trained in place.
    pub head: &'a mut [f32],
    /// Its gradient `[HEAD_LEN]`.
    pub grads: &'a mut [f32],
    /// Adam state `[HEAD_STATE]`, zero before the first step.
    pub state: &'a mut [f32],
    /// Logits `[n][K]`.
    pub logits: &'a mut [f32],
    /// Logit gradients `[n][K]`.
    pub dlogits: &'a mut [f32],
}

/// Loss of the head on `feats [n][H]`, `labels [n]` (mean over `n`), with its gradient written
/// to `grads [HEAD_LEN]` (kernel then bias) — the Dense part of `train::loss_and_grad`, formed
/// with the same kernels in the same order, so the bits agree (checked on the device by
/// `tests/gradcheck.rs`). `logits`, `dlogits` `[n][K]` are scratch.
pub fn head_loss_and_grad(
    head: &[f32],
    feats: &[f32],
    labels: &[u32],
    logits: &mut [f32],
    dlogits: &mut [f32],
    grads: &mut [f32],
) -> Result<f32, Error> {
    let n = labels.len();
    let k = CLASSES;
    head_logits(head, feats, n, logits);
    let loss = loss::loss_and_grad(
        Head::Softmax,
        k,
        n,
        &logits[..n * k],
        Targets::Classes(labels),
        n as f32,
        &mut dlogits[..n * k],
    )?;
    grads.fill(0.0);
    let (gk, gb) = grads.split_at_mut(UNITS * k);
    tinylstm::kernels::gemm_tn(UNITS, k, n, &feats[..n * UNITS], &dlogits[..n * k], gk);
    tinylstm::kernels::add_column_sums(n, k, &dlogits[..n * k], gb);
    Ok(loss)
}

/// One full-batch Adam step of the head on `feats [n][H]`, `labels [n]`; returns the loss before
/// the step. A non-finite loss or gradient returns `Err` and leaves the head untouched.
pub fn head_step(
    b: &mut HeadBufs<'_>,
    feats: &[f32],
    labels: &[u32],
    iteration: u32,
) -> Result<f32, Error> {
    let loss = head_loss_and_grad(b.head, feats, labels, b.logits, b.dlogits, b.grads)?;
    if !loss.is_finite() || !all_finite(b.grads) {
        return Err(Error::InvalidArgument("non-finite gradient"));
    }
    HEAD_OPT.step(HEAD_LR, iteration, b.head, b.grads, b.state)?;
    Ok(loss)
}

// ---------------------------------------------------------------------------------------------
// Full fine-tuning with truncated BPTT
// ---------------------------------------------------------------------------------------------

/// Buffers of full fine-tuning.
#[derive(Debug)]
pub struct FullBufs<'a> {
    /// Candidate parameters `[PARAMS]`, trained in place.
    pub params: &'a mut [f32],
    /// Gradients `[PARAMS]`.
    pub grads: &'a mut [f32],
    /// Adam state `[FULL_STATE]`, zero before the first step.
    pub state: &'a mut [f32],
    /// BPTT work `[TRAIN_WORK]`.
    pub work: &'a mut [f32],
    /// One input sequence `[SEQ_LEN]`.
    pub x: &'a mut [f32],
}

/// One Adam step on the sequences `batch` of `view`, their gradients accumulated one sequence
/// at a time (`norm` = batch size, so the step is the batch mean's); returns the batch loss.
/// A sequence with a NaN or infinite value (`InvalidArgument("non-finite input")`) or a
/// non-finite gradient returns `Err` before the parameters or the optimizer state change.
pub fn full_step(
    b: &mut FullBufs<'_>,
    view: &View<'_>,
    batch: Range<usize>,
    iteration: u32,
) -> Result<f32, Error> {
    let opts = TrainOptions { bptt: BPTT, norm: batch.len() };
    b.grads.fill(0.0);
    let mut loss = 0.0f32;
    for i in batch {
        let label = [view.read_finite(i, b.x)?];
        let data = Batch {
            inputs: Sequences::Values(&b.x[..SEQ_LEN]),
            targets: Targets::Classes(&label),
            batch: 1,
        };
        loss += loss_and_grad(&SPEC, b.params, &data, &opts, b.work, b.grads, None, None)?;
    }
    FULL_CFG.apply(&SPEC, 0..PARAMS, iteration, b.params, b.grads, b.state)?;
    Ok(loss)
}

/// The minibatches of one epoch over `n` sequences, in order.
pub fn minibatches(n: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n.div_ceil(MINIBATCH)).map(move |j| j * MINIBATCH..((j + 1) * MINIBATCH).min(n))
}

// ---------------------------------------------------------------------------------------------
// The transaction check
// ---------------------------------------------------------------------------------------------

/// Why an update was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
pub fn accept(candidate: &[f32], before: &Score, after: &Score) -> Result<(), Reject> {
    if !all_finite(candidate) || !after.loss.is_finite() {
        Err(Reject::NonFinite)
    } else if after.loss.partial_cmp(&before.loss) == Some(core::cmp::Ordering::Less) {
        Ok(())
    } else {
        Err(Reject::WorseValidation)
    }
}
