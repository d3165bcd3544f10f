//! Training pass: forward with a tape, loss, and backpropagation through time.
//!
//! [`loss_and_grad`] runs the model over a batch, computes the loss of the head against the
//! targets, and **adds** the gradient of every parameter to a flat gradient buffer (same layout
//! as the parameters). It allocates nothing: the caller passes a work buffer of
//! [`Spec::train_work_len`] floats.
//!
//! ## BPTT modes ([`Bptt`])
//! * **Full** (`Bptt::FULL`): gradients flow through every time step.
//! * **Truncated** (`Bptt::truncated(k)`): only the last `k` steps are differentiated; the state
//!   entering the window is treated as a constant. The first `T − k` steps run forward without a
//!   tape, so tape memory grows with `k`, not `T`.
//! * **Recompute** (`.recompute(s)`): the differentiated window is split into segments of `s`
//!   steps; the forward pass keeps only each segment's starting state (a checkpoint), and the
//!   backward pass re-runs each segment's forward before going back through it. Tape memory
//!   drops from `~W` to `~s` steps for one extra forward pass. Results are bit-identical to
//!   the tape-keeping mode.
//!
//! A training loop is easiest written with a [`Trainer`]: its settings and buffers named in
//! one struct, and [`Trainer::step`] for forward, loss, backward, penalties and the optimizer
//! update in one call. The functions below are the layer it calls.
//!
//! ## Work buffer layout
//! `[segment tape | checkpoints | carried (dh, dc) | dx ping | dx pong | logits | dlogits]`.
//!
//! ```
//! use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainBuffers, TrainOptions};
//! use tinylstm::{Head, Sequences, Spec, Targets};
//! const SPEC: Spec = Spec::channels(3).lstm(8).dense(1, Head::Sigmoid);
//! const T: usize = 10;
//! const B: usize = 2;
//! let mut params = vec![0.0f32; SPEC.param_count()];
//! tinylstm::init::init_params(&SPEC, 7, &mut params).unwrap();
//! let x = vec![0.25f32; B * T * 3];
//! let y = [1.0f32, 0.0];
//! let batch = Batch { inputs: Sequences::Values(&x), targets: Targets::Values(&y), batch: B };
//! let opts = TrainOptions { bptt: Bptt::truncated(4), ..TrainOptions::default() };
//! let mut work = vec![0.0f32; SPEC.train_work_len(B, T, opts.bptt).unwrap()];
//! let mut grads = vec![0.0f32; SPEC.param_count()];
//! let buffers = TrainBuffers::new(&mut work, &mut grads);
//! let loss = loss_and_grad(&SPEC, &params, &batch, &opts, buffers).unwrap();
//! assert!(loss.is_finite() && loss > 0.0);
//! ```

use crate::error::{check_len, check_min_len, sized, Error};
use crate::kernels::{Exact, Kernels};
use crate::loss::{self, Targets};
use crate::lstm::{self, Dims, Grads};
use crate::model::Sequences;
use crate::model::{
    activate, check_input, head_logits, layer_weights, run_chunk, run_chunk_masked, Params,
    TapeLayout,
};
use crate::optim::OptimizerConfig;
use crate::penalty::Penalties;
use crate::spec::{InputKind, Spec};

/// How backpropagation through time runs (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Bptt {
    /// Steps differentiated, counted back from the last; 0 (or ≥ T) means all of them.
    pub window: usize,
    /// Steps per recomputed segment; 0 (or ≥ the window) keeps the whole window's tape.
    pub segment: usize,
}

impl Bptt {
    /// Full BPTT with the whole tape kept.
    pub const FULL: Bptt = Bptt { window: 0, segment: 0 };

    /// Truncated BPTT over the last `window` steps.
    pub const fn truncated(window: usize) -> Self {
        Bptt { window, segment: 0 }
    }

    /// Keeps only `segment` steps of tape, recomputing the rest during the backward pass.
    pub const fn recompute(self, segment: usize) -> Self {
        Bptt { window: self.window, segment }
    }

    /// The effective `(window, segment)` for a sequence of `steps` steps.
    pub const fn resolve(&self, steps: usize) -> (usize, usize) {
        let w = if self.window == 0 || self.window > steps { steps } else { self.window };
        let s = if self.segment == 0 || self.segment > w { w } else { self.segment };
        (w, s)
    }

    /// Number of segments the window is split into.
    pub const fn segments(&self, steps: usize) -> usize {
        let (w, s) = self.resolve(steps);
        if s == 0 {
            0
        } else {
            w.div_ceil(s)
        }
    }
}

/// The parts of [`loss_and_grad`]'s work buffer, in floats, in their order in the buffer (see
/// the module docs): the one definition of that layout, which [`Spec::train_work_len`] sums
/// and [`loss_and_grad`] splits.
#[derive(Clone, Copy, Debug)]
struct WorkParts {
    /// One segment's tape ([`Spec::segment_tape_len`]).
    tape: usize,
    /// One streaming state per segment.
    checkpoints: usize,
    /// The carried `(dh, dc)`, one state.
    carry: usize,
    /// One of the two ping-pong input-gradient buffers `[s][B][max I]`.
    dx: usize,
    /// One of the logits and logit-gradient buffers `[B][K]`.
    head: usize,
}

impl WorkParts {
    /// The parts for `batch` sequences of `steps` steps; `None` when a size overflows.
    const fn of(spec: &Spec, batch: usize, steps: usize, bptt: Bptt) -> Option<Self> {
        let (_, s) = bptt.resolve(steps);
        let state = checked!(spec.state_len(batch));
        Some(WorkParts {
            tape: checked!(spec.segment_tape_len(batch, s)),
            checkpoints: checked!(bptt.segments(steps).checked_mul(state)),
            carry: state,
            dx: checked!(checked!(s.checked_mul(batch)).checked_mul(spec.max_layer_input())),
            head: checked!(batch.checked_mul(spec.outputs)),
        })
    }
}

impl Spec {
    /// Work-buffer length for [`loss_and_grad`] on `batch` sequences of `steps` steps; `None`
    /// when it does not fit a `usize` (checked arithmetic, never wraps).
    pub const fn train_work_len(&self, batch: usize, steps: usize, bptt: Bptt) -> Option<usize> {
        let p = checked!(WorkParts::of(self, batch, steps, bptt));
        let n = checked!(checked!(self.tape_len(batch, steps, bptt)).checked_add(p.carry));
        let n = checked!(n.checked_add(checked!(p.dx.checked_mul(2))));
        n.checked_add(checked!(p.head.checked_mul(2)))
    }

    /// The part of [`train_work_len`](Spec::train_work_len) that holds the forward tape:
    /// one segment's tape plus one checkpointed state per segment; `None` on overflow.
    pub const fn tape_len(&self, batch: usize, steps: usize, bptt: Bptt) -> Option<usize> {
        let p = checked!(WorkParts::of(self, batch, steps, bptt));
        p.tape.checked_add(p.checkpoints)
    }
}

/// One training batch.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Input sequences, `[B][T]` ids or `[B][T][C]` values.
    pub inputs: Sequences<'a>,
    /// Targets matching the head.
    pub targets: Targets<'a>,
    /// Number of sequences `B`.
    pub batch: usize,
}

/// Options of a training pass.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrainOptions {
    /// BPTT mode.
    pub bptt: Bptt,
    /// Divisor of the summed per-sample losses; 0 means the batch size (Keras's mean). Set it to
    /// the full batch size when a batch is split across threads or accumulated sample by sample.
    pub norm: usize,
}

/// The buffers a training pass ([`loss_and_grad`]) uses, each named: scratch and the gradient
/// it adds to, plus what it can also write on request.
///
/// For `B` sequences of `T` steps:
/// * `work` — scratch, at least [`Spec::train_work_len`]`(B, T, opts.bptt)` floats.
/// * `grads` — [`Spec::param_count`] floats; the gradient of the returned loss is **added**.
/// * `input_grad` — for channel input, `[B][T][C]`, overwritten with `∂loss/∂x` (zero outside
///   the BPTT window). Token models get their input gradient in the embedding rows of `grads`.
/// * `outputs` — `[B][K]`, receives the head's activated outputs (for metrics).
///
/// Build it with [`TrainBuffers::new`] and the `with_…` methods, or with a struct literal.
#[derive(Debug, Default)]
pub struct TrainBuffers<'a> {
    /// Scratch for the forward tape and the backward pass.
    pub work: &'a mut [f32],
    /// The flat gradient, same layout as the parameters; the pass **adds** to it.
    pub grads: &'a mut [f32],
    /// `[B][T][C]` for `∂loss/∂x` of channel input; `None` skips it.
    pub input_grad: Option<&'a mut [f32]>,
    /// `[B][K]` for the head's activated outputs; `None` skips them.
    pub outputs: Option<&'a mut [f32]>,
}

impl<'a> TrainBuffers<'a> {
    /// The two buffers every pass needs: `work` scratch and the `grads` it adds to.
    pub fn new(work: &'a mut [f32], grads: &'a mut [f32]) -> Self {
        TrainBuffers { work, grads, input_grad: None, outputs: None }
    }

    /// Also writes the head's activated outputs `[B][K]` into `outputs`.
    pub fn with_outputs(self, outputs: &'a mut [f32]) -> Self {
        TrainBuffers { outputs: Some(outputs), ..self }
    }

    /// Also writes `∂loss/∂x` `[B][T][C]` into `input_grad` (channel input only).
    pub fn with_input_grad(self, input_grad: &'a mut [f32]) -> Self {
        TrainBuffers { input_grad: Some(input_grad), ..self }
    }
}

/// Runs forward and backward over one batch, with the buffers of [`TrainBuffers`].
///
/// Returns the data loss (sum of per-sample losses / `norm`); add
/// [`Penalties::add_loss_and_grad`](crate::penalty::Penalties::add_loss_and_grad) for L1/L2.
///
/// # Errors
/// Wrong buffer lengths, ids or labels out of range, targets or inputs of the wrong kind.
pub fn loss_and_grad(
    spec: &Spec,
    params: &[f32],
    batch: &Batch<'_>,
    opts: &TrainOptions,
    buffers: TrainBuffers<'_>,
) -> Result<f32, Error> {
    loss_and_grad_with(Exact, spec, params, batch, opts, buffers)
}

/// [`loss_and_grad`] on the kernel path `kern` (see [`Kernels`]).
///
/// # Errors
/// As [`loss_and_grad`].
pub fn loss_and_grad_with<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: &[f32],
    batch: &Batch<'_>,
    opts: &TrainOptions,
    buffers: TrainBuffers<'_>,
) -> Result<f32, Error> {
    let TrainBuffers { work, grads, input_grad, outputs } = buffers;
    let b = batch.batch;
    let input = batch.inputs;
    let steps = check_input(spec, &input, b)?;
    let p = spec.param_count();
    check_len("parameters", p, params.len())?;
    check_len("gradients", p, grads.len())?;
    let k = spec.outputs;
    let bk = sized("outputs", b.checked_mul(k))?;
    if let Some(o) = outputs.as_deref() {
        check_len("outputs", bk, o.len())?;
    }
    let mut input_grad = input_grad;
    if let Some(ig) = input_grad.as_deref_mut() {
        if matches!(spec.input, InputKind::Tokens { .. }) {
            return Err(Error::NoInputGradient);
        }
        check_len("input gradient", input.len(), ig.len())?;
        ig.fill(0.0);
    }
    let bptt = opts.bptt;
    // Every part of the work buffer is at most this checked total, so the offsets below fit.
    check_min_len("work", sized("work", spec.train_work_len(b, steps, bptt))?, work.len())?;
    let norm = if opts.norm == 0 { b } else { opts.norm } as f32;
    let (w, s) = bptt.resolve(steps);
    let nseg = bptt.segments(steps);
    let parts = WorkParts::of(spec, b, steps, bptt).ok_or(Error::SizeOverflow { what: "work" })?;
    let state_len = parts.carry;

    let (tape, rest) = work.split_at_mut(parts.tape);
    let (ckpt, rest) = rest.split_at_mut(parts.checkpoints);
    let (carry, rest) = rest.split_at_mut(parts.carry);
    let (dx_a, rest) = rest.split_at_mut(parts.dx);
    let (dx_b, rest) = rest.split_at_mut(parts.dx);
    let (logits, rest) = rest.split_at_mut(parts.head);
    let dlogits = &mut rest[..parts.head];
    let layout = TapeLayout::new(spec, b, s);
    let run_chunk = if spec.mask.is_on() { run_chunk_masked::<K> } else { run_chunk::<K> };

    // Forward: untaped prefix, then the window, checkpointing each segment's starting state.
    carry.fill(0.0);
    layout.transfer_state(spec, tape, carry, 0, true);
    let start = steps - w;
    let mut t0 = 0;
    while t0 < start {
        let n = s.min(start - t0);
        run_chunk(kern, spec, Params::flat(params), &input, steps, &layout, t0, n, tape);
        layout.copy_slot(spec, tape, n, 0);
        t0 += n;
    }
    let seg = |j: usize| {
        let t0 = start + j * s;
        (t0, s.min(steps - t0))
    };
    for j in 0..nseg {
        let (t0, n) = seg(j);
        layout.transfer_state(spec, tape, &mut ckpt[j * state_len..(j + 1) * state_len], 0, false);
        run_chunk(kern, spec, Params::flat(params), &input, steps, &layout, t0, n, tape);
        if j + 1 < nseg {
            layout.copy_slot(spec, tape, n, 0);
        }
    }

    // Head and loss.
    let top = spec.layers - 1;
    let ht = spec.top_units();
    let (_, last_n) = seg(nseg - 1);
    let hs = layout.h_start(spec, top) + last_n * b * ht;
    let h_last = &tape[hs..hs + b * ht];
    let head = &params[spec.head_range()];
    let loss = dense_pass(kern, spec, head, h_last, b, batch.targets, norm, logits, dlogits)?;
    if let Some(o) = outputs {
        o.copy_from_slice(logits);
        activate(spec.head, k, o);
    }
    dense_grad(kern, spec, h_last, b, dlogits, &mut grads[spec.head_range()]);
    carry.fill(0.0);
    let wk = &params[spec.dense_kernel_offset()..spec.dense_bias_offset()];
    let top_off = spec.state_offset(top, b);
    kern.gemm_nt(b, ht, k, dlogits, wk, &mut carry[top_off..top_off + b * ht]);

    // Backward, segment by segment from the last, each layer from the top.
    let width = spec.input_width();
    let need_dx0 = matches!(input, Sequences::Tokens(_)) || input_grad.is_some();
    let (mut cur, mut next) = (dx_a, dx_b);
    for j in (0..nseg).rev() {
        let (t0, n) = seg(j);
        if j + 1 < nseg {
            layout.transfer_state(
                spec,
                tape,
                &mut ckpt[j * state_len..(j + 1) * state_len],
                0,
                true,
            );
            run_chunk(kern, spec, Params::flat(params), &input, steps, &layout, t0, n, tape);
        }
        for l in (0..spec.layers).rev() {
            let h = spec.units[l];
            let d = Dims { input: spec.layer_input(l), units: h, batch: b, steps: n };
            let wts = layer_weights(spec, params, l);
            let (layers, keep) = tape.split_at_mut(layout.keep_start(spec));
            let keep = if spec.mask.is_on() { Some(&keep[..n * b]) } else { None };
            let (x, mut lt) = layout.split(spec, l, n, layers);
            let (gk, rest) = grads[spec.kernel_offset(l)..spec.bias_offset(l) + 4 * h]
                .split_at_mut(d.input * 4 * h);
            let (gr, gb) = rest.split_at_mut(h * 4 * h);
            let mut g = Grads { kernel: gk, recurrent: gr, bias: gb };
            let co = spec.state_offset(l, b);
            let (cdh, cdc) = carry[co..co + 2 * b * h].split_at_mut(b * h);
            let dh_seq = if l == top { None } else { Some(&cur[..n * b * h]) };
            let dx = if l > 0 || need_dx0 { Some(&mut next[..n * b * d.input]) } else { None };
            match keep {
                None => lstm::backward_unchecked(
                    kern, &d, &wts, x, &mut lt, dh_seq, cdh, cdc, &mut g, dx,
                ),
                Some(k) => lstm::backward_unchecked_masked(
                    kern, &d, &wts, x, k, &mut lt, dh_seq, cdh, cdc, &mut g, dx,
                ),
            }
            core::mem::swap(&mut cur, &mut next);
        }
        // `cur` now holds layer 0's input gradient for this segment.
        match input {
            Sequences::Tokens(ids) => {
                // Last step first, like every other reduction over time (bit-identical modes).
                for t in (0..n).rev() {
                    for r in (0..b).rev() {
                        let id = ids[r * steps + t0 + t] as usize;
                        let src = &cur[(t * b + r) * width..(t * b + r + 1) * width];
                        let dst = &mut grads[id * width..(id + 1) * width];
                        for (o, v) in dst.iter_mut().zip(src) {
                            *o += v;
                        }
                    }
                }
            }
            Sequences::Values(_) => {
                if let Some(ig) = input_grad.as_deref_mut() {
                    for t in 0..n {
                        for r in 0..b {
                            let at = (r * steps + t0 + t) * width;
                            ig[at..at + width].copy_from_slice(
                                &cur[(t * b + r) * width..(t * b + r + 1) * width],
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(loss)
}

/// The Dense head's logits `[B][K]` and loss, with `∂loss/∂logits` in `dlogits [B][K]`.
#[allow(clippy::too_many_arguments)]
fn dense_pass<K: Kernels>(
    kern: K,
    spec: &Spec,
    head: &[f32],
    h: &[f32],
    b: usize,
    targets: Targets<'_>,
    norm: f32,
    logits: &mut [f32],
    dlogits: &mut [f32],
) -> Result<f32, Error> {
    head_logits(kern, spec, head, h, b, logits);
    loss::loss_and_grad(spec.head, spec.outputs, b, logits, targets, norm, dlogits)
}

/// Adds the Dense head's gradient (kernel `hᵀ · dlogits`, bias the column sums) to
/// `grads [H·K + K]`.
fn dense_grad<K: Kernels>(
    kern: K,
    spec: &Spec,
    h: &[f32],
    b: usize,
    dlogits: &[f32],
    grads: &mut [f32],
) {
    let (ht, k) = (spec.top_units(), spec.outputs);
    let (dk, db) = grads.split_at_mut(ht * k);
    kern.gemm_tn(ht, k, b, h, dlogits, dk);
    kern.add_column_sums(b, k, dlogits, db);
}

/// The features and targets of a head-only pass ([`dense_loss_and_grad`]).
#[derive(Clone, Copy, Debug)]
pub struct HeadBatch<'a> {
    /// `[B][H]` top-layer last hidden states ([`model::forward_hidden`](crate::model::forward_hidden)).
    pub features: &'a [f32],
    /// Targets matching the head, as for [`Batch::targets`].
    pub targets: Targets<'a>,
    /// Number of sequences `B`.
    pub batch: usize,
}

/// The buffers a head-only pass ([`dense_loss_and_grad`]) writes, for `B` sequences and `K`
/// outputs.
#[derive(Debug, Default)]
pub struct HeadBuffers<'a> {
    /// `[B][K]`, receives the logits.
    pub logits: &'a mut [f32],
    /// `[B][K]`, receives `∂loss/∂logits`.
    pub dlogits: &'a mut [f32],
    /// `[H·K + K]`, the head's gradient (kernel then bias); it is **added**.
    pub grads: &'a mut [f32],
}

/// Loss and gradient of the Dense head alone, on given features: what head-only fine-tuning
/// needs once the (frozen) LSTM's last hidden states are cached. The same code
/// [`loss_and_grad`] runs for its head, so the loss and the head's gradient are bit-identical
/// to the head part of a full pass on the same hidden states.
///
/// * `head` — the head's parameters, kernel `[H][K]` then bias `[K]` ([`Spec::head_range`]).
/// * `batch` — the features `[B][H]`, the targets and `B`.
/// * `opts` — [`TrainOptions::norm`] divides the summed loss as for [`loss_and_grad`]
///   (0: `B`); its `bptt` does not apply (the head has no time steps).
/// * `buffers` — logits, their gradient and the head's gradient ([`HeadBuffers`]).
///
/// ```
/// use tinylstm::train::{dense_loss_and_grad, HeadBatch, HeadBuffers, TrainOptions};
/// use tinylstm::{Head, Spec, Targets};
/// const SPEC: Spec = Spec::channels(2).lstm(3).dense(2, Head::Softmax);
/// let head = [0.1f32, -0.2, 0.3, 0.0, -0.1, 0.2, 0.05, -0.05]; // [3][2] kernel, [2] bias
/// let h = [0.5f32, -0.5, 0.25]; // one sequence's features
/// let batch = HeadBatch { features: &h, targets: Targets::Classes(&[1]), batch: 1 };
/// let (mut logits, mut dlogits, mut grads) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 8]);
/// let buffers = HeadBuffers { logits: &mut logits, dlogits: &mut dlogits, grads: &mut grads };
/// let loss = dense_loss_and_grad(&SPEC, &head, &batch, &TrainOptions::default(), buffers).unwrap();
/// assert!(loss > 0.0 && grads.iter().any(|g| *g != 0.0));
/// ```
///
/// # Errors
/// Wrong buffer lengths, labels out of range, targets of the wrong kind.
pub fn dense_loss_and_grad(
    spec: &Spec,
    head: &[f32],
    batch: &HeadBatch<'_>,
    opts: &TrainOptions,
    buffers: HeadBuffers<'_>,
) -> Result<f32, Error> {
    let HeadBatch { features: h, targets, batch } = *batch;
    let HeadBuffers { logits, dlogits, grads } = buffers;
    let norm = opts.norm;
    spec.validate()?;
    if batch == 0 {
        return Err(Error::EmptyBatch);
    }
    let hl = spec.head_range().len();
    check_len("head parameters", hl, head.len())?;
    check_len("head gradients", hl, grads.len())?;
    check_len(
        "hidden state",
        sized("hidden state", batch.checked_mul(spec.top_units()))?,
        h.len(),
    )?;
    let out_len = sized("logits", batch.checked_mul(spec.outputs))?;
    check_len("logits", out_len, logits.len())?;
    check_len("logit gradients", out_len, dlogits.len())?;
    let norm = if norm == 0 { batch } else { norm } as f32;
    let loss = dense_pass(Exact, spec, head, h, batch, targets, norm, logits, dlogits)?;
    dense_grad(Exact, spec, h, batch, dlogits, grads);
    Ok(loss)
}

/// A training loop's state between steps: the settings of a step and the buffers it reuses —
/// the readable front of [`loss_and_grad`], [`Penalties`] and [`OptimizerConfig::apply`],
/// which stay available as the low-level layer (for a parameter range, an input gradient, or
/// gradients accumulated over several calls).
///
/// Every field is public, so a `Trainer` is built with a struct literal that names each part;
/// it borrows its buffers and allocates nothing. Sizes, for batches of `B` sequences of `T`
/// steps:
///
/// | field | floats |
/// |---|---|
/// | `work` | at least [`Spec::train_work_len`]`(B, T, options.bptt)` |
/// | `grads` | [`Spec::param_count`] |
/// | `optimizer_state` | `optimizer.state_len(spec.param_count())`, zeros before the first step |
///
/// ```
/// use tinylstm::optim::{Optimizer, OptimizerConfig};
/// use tinylstm::penalty::Penalties;
/// use tinylstm::{Batch, Bptt, Head, Sequences, Spec, Targets, TrainOptions, Trainer};
/// const SPEC: Spec = Spec::channels(3).lstm(8).dense(2, Head::Softmax);
/// const B: usize = 2;
/// const T: usize = 10;
/// const OPTIONS: TrainOptions = TrainOptions { bptt: Bptt::truncated(4), norm: 0 };
/// const ADAM: OptimizerConfig = OptimizerConfig::new(Optimizer::adam()).with_lr(1e-2);
/// let mut params = [0.0f32; SPEC.param_count()];
/// tinylstm::init::init_params(&SPEC, 7, &mut params).unwrap();
/// let mut work = [0.0f32; SPEC.train_work_len(B, T, OPTIONS.bptt).unwrap()];
/// let mut grads = [0.0f32; SPEC.param_count()];
/// let mut state = [0.0f32; ADAM.state_len(SPEC.param_count())];
/// let mut trainer = Trainer {
///     spec: &SPEC,
///     options: OPTIONS,
///     optimizer: ADAM,
///     penalties: Penalties::NONE,
///     iteration: 0,
///     work: &mut work,
///     grads: &mut grads,
///     optimizer_state: &mut state,
/// };
///
/// let x = [0.25f32; B * T * 3];
/// let batch = Batch { inputs: Sequences::Values(&x), targets: Targets::Classes(&[0, 1]), batch: B };
/// let first = trainer.step(&mut params, &batch).unwrap();
/// for _ in 0..20 {
///     trainer.step(&mut params, &batch).unwrap();
/// }
/// assert_eq!(trainer.iteration, 21);
/// assert!(trainer.step(&mut params, &batch).unwrap() < first);
/// ```
#[derive(Debug)]
pub struct Trainer<'a> {
    /// The architecture.
    pub spec: &'a Spec,
    /// BPTT mode and loss normalisation.
    pub options: TrainOptions,
    /// Optimizer, learning-rate schedule and clipping.
    pub optimizer: OptimizerConfig,
    /// L1/L2 penalties added to the loss and the gradient ([`Penalties::NONE`] for none).
    pub penalties: Penalties,
    /// Steps taken so far with `optimizer_state` (0 before the first); the schedule is
    /// evaluated at it, and [`step`](Trainer::step) adds 1.
    pub iteration: u32,
    /// Scratch for the forward and backward pass.
    pub work: &'a mut [f32],
    /// The gradient of the last step (overwritten by each step).
    pub grads: &'a mut [f32],
    /// The optimizer's moments; zeros before the first step.
    pub optimizer_state: &'a mut [f32],
}

impl Trainer<'_> {
    /// One training step on all of `params`: zeroes `grads`, runs [`loss_and_grad`] on
    /// `batch`, adds the penalties, applies the optimizer at `iteration`
    /// ([`OptimizerConfig::apply`]) and counts the step. Returns the loss before the update
    /// (data loss plus penalties), as Keras reports it.
    ///
    /// # Errors
    /// As [`loss_and_grad`] and [`OptimizerConfig::apply`] (a NaN or infinite gradient is
    /// [`Error::NonFiniteGradient`]). On `Err` the parameters, the optimizer state and
    /// `iteration` are unchanged.
    pub fn step(&mut self, params: &mut [f32], batch: &Batch<'_>) -> Result<f32, Error> {
        self.step_with(Exact, params, batch, None)
    }

    /// [`Trainer::step`], also writing the head's activated outputs `[B][K]` for the batch
    /// (computed before the update) into `outputs`, for metrics.
    ///
    /// # Errors
    /// As [`Trainer::step`].
    pub fn step_outputs(
        &mut self,
        params: &mut [f32],
        batch: &Batch<'_>,
        outputs: &mut [f32],
    ) -> Result<f32, Error> {
        self.step_with(Exact, params, batch, Some(outputs))
    }

    /// [`Trainer::step`] on the kernel path `kern` ([`loss_and_grad_with`]), with the outputs
    /// when `outputs` is given.
    ///
    /// # Errors
    /// As [`Trainer::step`].
    pub fn step_with<K: Kernels>(
        &mut self,
        kern: K,
        params: &mut [f32],
        batch: &Batch<'_>,
        outputs: Option<&mut [f32]>,
    ) -> Result<f32, Error> {
        let spec = self.spec;
        // The gradient buffer is checked before it is cleared.
        check_len("gradients", spec.param_count(), self.grads.len())?;
        self.grads.fill(0.0);
        let buffers =
            TrainBuffers { work: self.work, grads: self.grads, input_grad: None, outputs };
        let mut loss = loss_and_grad_with(kern, spec, params, batch, &self.options, buffers)?;
        if !self.penalties.is_none() {
            loss += self.penalties.add_loss_and_grad(spec, params, self.grads)?;
        }
        let all = 0..spec.param_count();
        self.optimizer.apply(
            spec,
            all,
            self.iteration,
            params,
            self.grads,
            self.optimizer_state,
        )?;
        self.iteration = self.iteration.saturating_add(1);
        Ok(loss)
    }
}
