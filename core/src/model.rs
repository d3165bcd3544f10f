//! Whole-model inference: batched full-sequence forward and step-by-step streaming.
//!
//! Inputs are **batch-major**, as Keras takes them: token ids `[B][T]` or values `[B][T][C]`.
//! Outputs are the head's activated outputs `[B][K]` (sigmoid probabilities, softmax
//! probabilities, or linear values).
//!
//! The forward pass walks the sequence in chunks of time steps (as many as the work buffer
//! holds) and every layer carries its `(h, c)` state from chunk to chunk. A streaming
//! [`step`] is the same code with a chunk of one step, so the two agree bit for bit (see the
//! order contract in [`kernels`](crate::kernels)).
//!
//! A spec with a [`Mask`] skips masked steps in every layer (Keras semantics: the state carries
//! over and the output repeats; see [`lstm`]); the forward pass, [`step`] and the
//! training pass agree bit for bit with masks too, and a masked step gives exactly what
//! removing it would. A spec without a mask runs the unmasked code, untouched.
//!
//! [`Model`] and [`Stream`] are the readable front: a model is its spec and parameters, a
//! stream the state and scratch a streaming model carries between steps. The free functions
//! below them ([`forward`], [`step`], their `_with` forms for another [`Kernels`] path, …) are
//! the low-level layer they call, with every size passed explicitly.
//!
//! ```
//! use tinylstm::{Head, Model, Sequences, Spec, Stream};
//! const SPEC: Spec = Spec::channels(2).lstm(5).dense(3, Head::Softmax);
//! const T: usize = 6;
//! let mut params = [0.0f32; SPEC.param_count()];
//! tinylstm::init::init_params(&SPEC, 42, &mut params).unwrap();
//! let model = Model::new(&SPEC, &params);
//! let x = [0.1f32; T * 2]; // one sequence [T][C]
//!
//! // Whole sequence at once (here with room for 2 steps per chunk); B = probs.len() / K = 1.
//! let mut work = [0.0f32; SPEC.forward_work_len(1, 2).unwrap()];
//! let mut probs = [0.0f32; 3];
//! model.forward(Sequences::Values(&x), &mut work, &mut probs).unwrap();
//!
//! // The same sequence streamed one step at a time, carrying the state in a `Stream`.
//! let mut state = [0.0f32; SPEC.state_len(1).unwrap()];
//! let mut step_work = [0.0f32; SPEC.step_work_len(1).unwrap()];
//! let mut stream = Stream { state: &mut state, work: &mut step_work };
//! let mut streamed = [0.0f32; 3];
//! for xt in x.chunks_exact(2) {
//!     model.step_outputs(&mut stream, Sequences::Values(xt), &mut streamed).unwrap();
//! }
//! assert_eq!(probs, streamed); // bit for bit
//! ```

use crate::error::{check_len, check_min_len, sized, Error};
use crate::kernels::{Exact, Kernels};
use crate::lstm::{self, Dims, Tape, Weights};
use crate::math::{exp, sigmoid};
use crate::quant::Int8Embedding;
use crate::spec::{Head, InputKind, Mask, Spec, MAX_LAYERS};

/// Where a forward pass reads its weights: the flat buffer, or an int8 Embedding table apart
/// from the other parameters (`rest` = the flat buffer without its first `V·E` floats).
#[derive(Clone, Copy)]
pub(crate) struct Params<'a> {
    table: Option<Int8Embedding<'a>>,
    /// Parameter `i` of the flat order is `body[i - base]` (for `i >= base`).
    body: &'a [f32],
    base: usize,
}

impl<'a> Params<'a> {
    /// The flat buffer `[spec.param_count()]`.
    pub(crate) fn flat(params: &'a [f32]) -> Self {
        Params { table: None, body: params, base: 0 }
    }

    /// An int8 Embedding `[V][E]` and the other parameters `rest` in the flat order.
    pub(crate) fn int8(spec: &Spec, embedding: Int8Embedding<'a>, rest: &'a [f32]) -> Self {
        Params { table: Some(embedding), body: rest, base: spec.embedding_len() }
    }

    /// Checks the buffer lengths against the spec.
    fn check(&self, spec: &Spec) -> Result<(), Error> {
        match self.table {
            None => check_params(spec, self.body),
            Some(t) => {
                if spec.input != (InputKind::Tokens { vocab: t.vocab(), embed: t.embed() }) {
                    return Err(Error::InputKind);
                }
                check_len(
                    "parameters without the Embedding",
                    spec.param_count() - self.base,
                    self.body.len(),
                )
            }
        }
    }

    /// The head's parameters (kernel `[H][K]` then bias `[K]`).
    fn head(&self, spec: &Spec) -> &'a [f32] {
        let r = spec.head_range();
        &self.body[r.start - self.base..r.end - self.base]
    }
}

/// A batch of input sequences, batch-major.
#[derive(Clone, Copy, Debug)]
pub enum Sequences<'a> {
    /// Token ids `[B][T]`, each below the vocabulary size.
    Tokens(&'a [u32]),
    /// Real values `[B][T][C]`.
    Values(&'a [f32]),
}

impl Sequences<'_> {
    /// Number of scalars (ids or values).
    pub fn len(&self) -> usize {
        match self {
            Sequences::Tokens(t) => t.len(),
            Sequences::Values(v) => v.len(),
        }
    }

    /// True when there is no input at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks the input against the spec and returns the number of time steps `T`.
pub(crate) fn check_input(
    spec: &Spec,
    input: &Sequences<'_>,
    batch: usize,
) -> Result<usize, Error> {
    spec.validate()?;
    if batch == 0 {
        return Err(Error::EmptyBatch);
    }
    let per_step = sized("input", batch.checked_mul(spec.step_width()))?;
    match (spec.input, input) {
        (InputKind::Tokens { vocab, .. }, Sequences::Tokens(ids)) => {
            if let Some(index) = ids.iter().position(|&t| t as usize >= vocab) {
                return Err(Error::TokenOutOfRange { index, token: ids[index], vocab });
            }
        }
        (InputKind::Channels(_), Sequences::Values(_)) => {}
        _ => return Err(Error::InputKind),
    }
    let n = input.len();
    if n == 0 || n % per_step != 0 {
        return Err(Error::BufferLength {
            what: "input (batch × steps × step width)",
            expected: (n / per_step).max(1) * per_step,
            actual: n,
        });
    }
    Ok(n / per_step)
}

/// Offsets inside a segment tape of capacity `cap` steps, placed by
/// [`Spec::segment_layer_offset`] (the one definition of the layout).
///
/// Built only for a tape whose length the caller has checked against
/// [`Spec::segment_tape_len`]`(batch, cap)`, so every offset fits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TapeLayout {
    pub batch: usize,
    pub cap: usize,
    /// Start of each layer's region; `layer[spec.layers]` is the end of the layers' part.
    layer: [usize; MAX_LAYERS + 1],
}

impl TapeLayout {
    /// The layout of a segment tape of `cap` steps for `batch` sequences.
    pub fn new(spec: &Spec, batch: usize, cap: usize) -> Self {
        let mut layer = [0; MAX_LAYERS + 1];
        for (l, start) in layer.iter_mut().enumerate().take(spec.layers + 1) {
            // Fits: the caller checked the whole tape's length (see the type's docs).
            *start = spec.segment_layer_offset(batch, cap, l).unwrap_or(usize::MAX);
        }
        TapeLayout { batch, cap, layer }
    }

    /// Start of layer `l`'s region (`l = spec.layers` gives the end of the layers' part).
    pub fn layer_start(&self, l: usize) -> usize {
        self.layer[l]
    }

    /// Offset of the keep flags `[cap][B]` (present when the spec has a [`Mask`]).
    pub fn keep_start(&self, spec: &Spec) -> usize {
        self.layer_start(spec.layers)
    }

    /// Offset of layer `l`'s `h` slot 0 (its `c` starts `(cap+1)·B·H` later).
    pub fn h_start(&self, spec: &Spec, l: usize) -> usize {
        self.layer_start(l) + self.cap * self.batch * 4 * spec.units[l]
    }

    /// Offset of layer `l`'s `c` slot 0.
    pub fn c_start(&self, spec: &Spec, l: usize) -> usize {
        self.h_start(spec, l) + (self.cap + 1) * self.batch * spec.units[l]
    }

    /// Splits the tape into layer `l`'s input for `s` steps (read-only) and its tape (mutable).
    pub fn split<'a>(
        &self,
        spec: &Spec,
        l: usize,
        s: usize,
        tape: &'a mut [f32],
    ) -> (&'a [f32], Tape<'a>) {
        let b = self.batch;
        let start = self.layer_start(l);
        let (left, right) = tape.split_at_mut(start);
        let x: &[f32] = if l == 0 {
            &left[..s * b * spec.input_width()]
        } else {
            let hp = spec.units[l - 1];
            let h0 = self.h_start(spec, l - 1);
            &left[h0 + b * hp..h0 + (s + 1) * b * hp]
        };
        let h = spec.units[l];
        let (gates, rest) = right.split_at_mut(self.cap * b * 4 * h);
        let (hs, rest) = rest.split_at_mut((self.cap + 1) * b * h);
        let cs = &mut rest[..(self.cap + 1) * b * h];
        (
            x,
            Tape {
                gates: &mut gates[..s * b * 4 * h],
                h: &mut hs[..(s + 1) * b * h],
                c: &mut cs[..(s + 1) * b * h],
            },
        )
    }

    /// Copies every layer's state at slot `from` to slot `to`.
    pub fn copy_slot(&self, spec: &Spec, tape: &mut [f32], from: usize, to: usize) {
        let b = self.batch;
        for l in 0..spec.layers {
            let bh = b * spec.units[l];
            for base in [self.h_start(spec, l), self.c_start(spec, l)] {
                tape.copy_within(base + from * bh..base + (from + 1) * bh, base + to * bh);
            }
        }
    }

    /// Copies a state `[L]{h [B][H], c [B][H]}` into (`load`) or out of slot `slot`.
    pub fn transfer_state(
        &self,
        spec: &Spec,
        tape: &mut [f32],
        state: &mut [f32],
        slot: usize,
        load: bool,
    ) {
        let b = self.batch;
        let mut so = 0;
        for l in 0..spec.layers {
            let bh = b * spec.units[l];
            for base in [self.h_start(spec, l), self.c_start(spec, l)] {
                let t = &mut tape[base + slot * bh..base + (slot + 1) * bh];
                let s = &mut state[so..so + bh];
                if load {
                    t.copy_from_slice(s);
                } else {
                    s.copy_from_slice(t);
                }
                so += bh;
            }
        }
    }
}

/// Layer `l`'s weights inside the flat parameter buffer.
pub(crate) fn layer_weights<'a>(spec: &Spec, params: &'a [f32], l: usize) -> Weights<'a> {
    layer_weights_at(spec, params, 0, l)
}

/// [`layer_weights`] in a buffer whose first float is parameter `base` of the flat order.
fn layer_weights_at<'a>(spec: &Spec, params: &'a [f32], base: usize, l: usize) -> Weights<'a> {
    let h = spec.units[l];
    let k = spec.kernel_offset(l) - base;
    let r = spec.recurrent_offset(l) - base;
    let b = spec.bias_offset(l) - base;
    Weights { kernel: &params[k..r], recurrent: &params[r..b], bias: &params[b..b + 4 * h] }
}

/// Writes the layer-0 input of steps `t0..t0+s` time-major into `xin [s][B][I_0]`.
#[inline(always)]
pub(crate) fn gather_input(
    spec: &Spec,
    params: Params<'_>,
    input: &Sequences<'_>,
    batch: usize,
    steps: usize,
    t0: usize,
    s: usize,
    xin: &mut [f32],
) {
    let w = spec.input_width();
    for t in 0..s {
        for b in 0..batch {
            let dst = &mut xin[(t * batch + b) * w..(t * batch + b + 1) * w];
            match input {
                Sequences::Tokens(ids) => {
                    let id = ids[b * steps + t0 + t] as usize;
                    match params.table {
                        None => dst.copy_from_slice(&params.body[id * w..(id + 1) * w]),
                        Some(table) => table.dequantize_row(id, dst),
                    }
                }
                Sequences::Values(v) => {
                    let at = (b * steps + t0 + t) * w;
                    dst.copy_from_slice(&v[at..at + w]);
                }
            }
        }
    }
}

/// Writes the keep flags `[s][B]` of steps `t0..t0+s` (1.0 kept, 0.0 masked) from the input
/// and the spec's [`Mask`]: a value step is masked when all its values equal the mask value, a
/// token step when its id is 0.
pub(crate) fn gather_keep(
    spec: &Spec,
    input: &Sequences<'_>,
    batch: usize,
    steps: usize,
    t0: usize,
    s: usize,
    keep: &mut [f32],
) {
    let w = spec.step_width();
    for t in 0..s {
        for b in 0..batch {
            let at = b * steps + t0 + t;
            let kept = match (spec.mask, input) {
                (Mask::Zero, Sequences::Tokens(ids)) => ids[at] != 0,
                (Mask::Value(m), Sequences::Values(v)) => {
                    v[at * w..(at + 1) * w].iter().any(|&x| x != m)
                }
                _ => true,
            };
            keep[t * batch + b] = if kept { 1.0 } else { 0.0 };
        }
    }
}

/// Runs every layer over steps `t0..t0+s`, each starting from the state in its slot 0 — for a
/// spec without a mask; [`run_chunk_masked`] otherwise (callers test `spec.mask` once, outside
/// their loops, so the unmasked path runs exactly the code it ran before masking existed).
pub(crate) fn run_chunk<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: Params<'_>,
    input: &Sequences<'_>,
    steps: usize,
    layout: &TapeLayout,
    t0: usize,
    s: usize,
    tape: &mut [f32],
) {
    let b = layout.batch;
    gather_input(spec, params, input, b, steps, t0, s, &mut tape[..s * b * spec.input_width()]);
    for l in 0..spec.layers {
        let d = Dims { input: spec.layer_input(l), units: spec.units[l], batch: b, steps: s };
        let w = layer_weights_at(spec, params.body, params.base, l);
        let (x, mut t) = layout.split(spec, l, s, tape);
        lstm::forward_unchecked(kern, &d, &w, x, &mut t);
    }
}

/// [`run_chunk`] for a spec with a [`Mask`]: the keep flags go to the end of the tape
/// ([`TapeLayout::keep_start`]) and every layer skips the masked steps.
#[inline(never)]
pub(crate) fn run_chunk_masked<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: Params<'_>,
    input: &Sequences<'_>,
    steps: usize,
    layout: &TapeLayout,
    t0: usize,
    s: usize,
    tape: &mut [f32],
) {
    let b = layout.batch;
    gather_input(spec, params, input, b, steps, t0, s, &mut tape[..s * b * spec.input_width()]);
    let (tape, keep) = tape.split_at_mut(layout.keep_start(spec));
    let keep = &mut keep[..s * b];
    gather_keep(spec, input, b, steps, t0, s, keep);
    for l in 0..spec.layers {
        let d = Dims { input: spec.layer_input(l), units: spec.units[l], batch: b, steps: s };
        let w = layer_weights_at(spec, params.body, params.base, l);
        let (x, mut t) = layout.split(spec, l, s, tape);
        lstm::forward_unchecked_masked(kern, &d, &w, x, keep, &mut t);
    }
}

/// [`run_chunk`] / [`run_chunk_masked`] for a token model with its projection table
/// `table [vocab][4H₀]` (checked by the caller): layer 0's gates are the table's rows of the
/// chunk's tokens instead of an embedding gather and a GEMM; every later operation is the same.
#[allow(clippy::too_many_arguments)]
fn run_chunk_projected<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: Params<'_>,
    table: &[f32],
    ids: &[u32],
    steps: usize,
    layout: &TapeLayout,
    t0: usize,
    s: usize,
    tape: &mut [f32],
) {
    let b = layout.batch;
    let g4 = 4 * spec.units[0];
    let masked = spec.mask.is_on();
    let split = if masked { layout.keep_start(spec) } else { tape.len() };
    let (tape, keep) = tape.split_at_mut(split);
    let keep = &mut keep[..if masked { s * b } else { 0 }];
    if masked {
        gather_keep(spec, &Sequences::Tokens(ids), b, steps, t0, s, keep);
    }
    for l in 0..spec.layers {
        let d = Dims { input: spec.layer_input(l), units: spec.units[l], batch: b, steps: s };
        let w = layer_weights_at(spec, params.body, params.base, l);
        let (x, mut t) = layout.split(spec, l, s, tape);
        if l == 0 {
            // Gates `[s][B][4H]`: row `t·B + r` is token `ids[r·T + t0 + t]`'s table row.
            for (row, z) in t.gates.chunks_exact_mut(g4).enumerate() {
                let id = ids[(row % b) * steps + t0 + row / b] as usize;
                z.copy_from_slice(&table[id * g4..(id + 1) * g4]);
            }
            if masked {
                lstm::forward_unchecked_projected::<K, true>(kern, &d, &w, keep, &mut t);
            } else {
                lstm::forward_unchecked_projected::<K, false>(kern, &d, &w, &[], &mut t);
            }
        } else if masked {
            lstm::forward_unchecked_masked(kern, &d, &w, x, keep, &mut t);
        } else {
            lstm::forward_unchecked(kern, &d, &w, x, &mut t);
        }
    }
}

/// Length of a token model's input-projection table `[vocab][4·H₀]` ([`projection_rows_with`]);
/// `None` for a model with channel input, or when the length overflows a `usize`.
pub fn projection_table_len(spec: &Spec) -> Option<usize> {
    match spec.input {
        InputKind::Tokens { vocab, .. } => vocab.checked_mul(spec.units[0].checked_mul(4)?),
        InputKind::Channels(_) => None,
    }
}

/// Rows `first..first + n` of a token model's input-projection table: `out [n][4H₀]` gets
/// `b₀ + E[v]·W₀` for each token `v` of the range — layer 0's pre-activations before the
/// recurrent term, computed once per model instead of at every time step of every sequence
/// (`E` the embedding, `W₀`, `b₀` layer 0's kernel and bias). The whole table is
/// [`projection_table_len`] floats; build it in one call, or in row ranges on several threads
/// (each row is independent). It costs `vocab·E·4H₀` multiply-adds and saves `E·4H₀` per token
/// and time step, so it pays from `vocab` token-steps of inference on.
///
/// Each element is the start value `b₀[j]` followed by the products in increasing input
/// index, which is what layer 0's input GEMM computes for that token on the same kernel path
/// whatever the row it is in ([the order contract](crate::kernels)): so on [`Exact`] a pass
/// from the table ([`forward_projected_with`]) gives the bits of [`forward`].
///
/// # Errors
/// A spec with channel input ([`Error::InputKind`]), rows past the vocabulary
/// ([`Error::TokenOutOfRange`]), `out` not a whole number of rows or wrong parameter length.
pub fn projection_rows_with<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: &[f32],
    first: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    spec.validate()?;
    check_params(spec, params)?;
    let InputKind::Tokens { vocab, embed } = spec.input else {
        return Err(Error::InputKind);
    };
    let g4 = 4 * spec.units[0];
    let n = out.len() / g4;
    check_len("projection table rows", n * g4, out.len())?;
    let end = first.saturating_add(n);
    if end > vocab {
        let token = u32::try_from(end - 1).unwrap_or(u32::MAX);
        return Err(Error::TokenOutOfRange { index: n.saturating_sub(1), token, vocab });
    }
    let w = layer_weights(spec, params, 0);
    for row in out.chunks_exact_mut(g4) {
        row.copy_from_slice(w.bias);
    }
    let emb = &params[first * embed..end * embed];
    kern.gemm_nn(n, g4, embed, emb, w.kernel, out);
    Ok(())
}

/// [`forward_with`] for a token model from its input-projection table `table [vocab][4H₀]`
/// ([`projection_rows_with`], on the same kernel path): layer 0 gathers the tokens' rows
/// instead of computing `b₀ + x·W₀`. On [`Exact`] the outputs are those of [`forward`], bit
/// for bit.
///
/// # Errors
/// As [`forward`]; a table of another length than [`projection_table_len`], or a spec with
/// channel input ([`Error::InputKind`]).
#[allow(clippy::too_many_arguments)]
pub fn forward_projected_with<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: &[f32],
    table: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    forward_logits_projected_with(kern, spec, params, table, input, batch, work, out)?;
    activate(spec.head, spec.outputs, out);
    Ok(())
}

/// [`forward_projected_with`] returning the head's logits (pre-activation).
///
/// # Errors
/// As [`forward_projected_with`].
#[allow(clippy::too_many_arguments)]
pub fn forward_logits_projected_with<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: &[f32],
    table: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let steps = check_input(spec, &input, batch)?;
    check_params(spec, params)?;
    let table_len = projection_table_len(spec).ok_or(Error::InputKind)?;
    check_len("projection table", table_len, table.len())?;
    check_len("output", sized("output", batch.checked_mul(spec.outputs))?, out.len())?;
    let h = run_layers(kern, spec, Params::flat(params), Some(table), input, batch, steps, work)?;
    head_logits(kern, spec, &params[spec.head_range()], h, batch, out);
    Ok(())
}

/// Dense head: `logits [B][K] = bias + h [B][H] · W [H][K]`, with `head` the head's own
/// parameters (kernel `[H][K]` then bias `[K]`, [`Spec::head_range`] of the flat buffer).
pub(crate) fn head_logits<K: Kernels>(
    kern: K,
    spec: &Spec,
    head: &[f32],
    h: &[f32],
    batch: usize,
    out: &mut [f32],
) {
    let k = spec.outputs;
    let (wk, bias) = head.split_at(spec.top_units() * k);
    for row in out.chunks_exact_mut(k) {
        row.copy_from_slice(bias);
    }
    kern.gemm_nn(batch, k, spec.top_units(), h, wk, out);
}

/// The Dense head on its own: `logits [B][K] = bias + h [B][H] · W [H][K]`.
///
/// * `head` — the head's parameters, kernel `[H][K]` then bias `[K]`
///   (`params[spec.head_range()]`, or a separate copy being fine-tuned).
/// * `h` — `[B][H]`, the top LSTM layer's last hidden state ([`forward_hidden`]).
/// * `out` — `[B][K]` logits (pre-activation; [`activate`] gives the outputs).
///
/// [`forward_logits`] is [`forward_hidden`] followed by this, so the bits agree.
///
/// # Errors
/// Wrong buffer lengths.
pub fn dense_logits(
    spec: &Spec,
    head: &[f32],
    h: &[f32],
    batch: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    spec.validate()?;
    check_len("head parameters", spec.head_range().len(), head.len())?;
    check_len(
        "hidden state",
        sized("hidden state", batch.checked_mul(spec.top_units()))?,
        h.len(),
    )?;
    check_len("output", sized("output", batch.checked_mul(spec.outputs))?, out.len())?;
    head_logits(Exact, spec, head, h, batch, out);
    Ok(())
}

/// Applies the head activation in place to logits `[B][K]`.
pub fn activate(head: Head, outputs: usize, logits: &mut [f32]) {
    match head {
        Head::Linear => {}
        Head::Sigmoid => logits.iter_mut().for_each(|v| *v = sigmoid(*v)),
        Head::Softmax => {
            for row in logits.chunks_exact_mut(outputs.max(1)) {
                softmax_in_place(row);
            }
        }
    }
}

/// Numerically stable softmax of one row.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

fn check_params(spec: &Spec, params: &[f32]) -> Result<(), Error> {
    check_len("parameters", spec.param_count(), params.len())
}

/// Steps per chunk that fit a tape of `len` floats (0 if not even one fits).
fn chunk_capacity(spec: &Spec, batch: usize, len: usize) -> usize {
    match (spec.segment_tape_len(batch, 0), spec.segment_tape_len(batch, 1)) {
        (Some(base), Some(one)) if len >= base => (len - base) / (one - base),
        _ => 0,
    }
}

/// Batched forward pass over whole sequences.
///
/// * `input` — `[B][T]` ids or `[B][T][C]` values; `T` is inferred from its length.
/// * `work` — at least [`Spec::forward_work_len`]`(B, 1)`; a larger buffer lets more time steps
///   share one input-projection GEMM (faster on hosts; results are identical).
/// * `out [B][K]` — the head's activated outputs.
///
/// # Errors
/// Wrong buffer lengths, token ids out of range, an input kind that does not match the spec.
pub fn forward(
    spec: &Spec,
    params: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    forward_with(Exact, spec, params, input, batch, work, out)
}

/// [`forward`] on the kernel path `kern` (see [`Kernels`]).
///
/// # Errors
/// As [`forward`].
pub fn forward_with<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    forward_logits_with(kern, spec, params, input, batch, work, out)?;
    activate(spec.head, spec.outputs, out);
    Ok(())
}

/// [`forward`] returning the head's logits (pre-activation) instead of its outputs.
///
/// # Errors
/// As [`forward`].
pub fn forward_logits(
    spec: &Spec,
    params: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    forward_logits_with(Exact, spec, params, input, batch, work, out)
}

/// [`forward_logits`] on the kernel path `kern` (see [`Kernels`]).
///
/// # Errors
/// As [`forward`].
pub fn forward_logits_with<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    logits_of(kern, spec, Params::flat(params), input, batch, work, out)
}

/// [`forward_logits_with`] over any [`Params`].
fn logits_of<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: Params<'_>,
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let steps = check_input(spec, &input, batch)?;
    params.check(spec)?;
    check_len("output", sized("output", batch.checked_mul(spec.outputs))?, out.len())?;
    let h = run_layers(kern, spec, params, None, input, batch, steps, work)?;
    head_logits(kern, spec, params.head(spec), h, batch, out);
    Ok(())
}

/// [`forward_logits`] of a model whose Embedding is stored as int8 (see
/// [`quant`](crate::quant)): each looked-up row is dequantised (`q as f32 * scale`) into the
/// work buffer, everything else is the `f32` computation of [`forward_logits`]. Equal, bit for
/// bit, to [`forward_logits`] on the flat buffer whose Embedding holds the dequantised table
/// (what [`ModelFile::read_params`](crate::format::ModelFile::read_params) gives).
///
/// * `embedding` — the table `[V][E]`, `V` and `E` those of the spec's token input.
/// * `rest` — the other parameters, `[spec.param_count() − V·E]`, in the flat order (the
///   flat buffer without its first `V·E` floats: a version-3 file's PARAMS section).
/// * `input`, `work`, `out` — as [`forward_logits`].
///
/// # Errors
/// As [`forward`]; [`Error::InputKind`] when the spec has no token input of the table's size.
pub fn forward_logits_int8(
    spec: &Spec,
    embedding: Int8Embedding<'_>,
    rest: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let params = Params::int8(spec, embedding, rest);
    logits_of(Exact, spec, params, input, batch, work, out)
}

/// [`forward_hidden`] of a model with an int8 Embedding (see [`forward_logits_int8`]): the top
/// layer's last hidden state `[B][H]`; `rest`'s head part is not read.
///
/// # Errors
/// As [`forward_logits_int8`].
pub fn forward_hidden_int8(
    spec: &Spec,
    embedding: Int8Embedding<'_>,
    rest: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    hidden: &mut [f32],
) -> Result<(), Error> {
    let params = Params::int8(spec, embedding, rest);
    hidden_of(spec, params, input, batch, work, hidden)
}

/// [`forward_logits`] without the head: the top LSTM layer's last hidden state `[B][H]` of
/// every sequence into `hidden` — the Dense head's input, which is all head-only fine-tuning
/// needs (see [`dense_logits`] and [`train::dense_loss_and_grad`](crate::train::dense_loss_and_grad)).
/// `params` is the whole flat buffer; its head part is not read.
///
/// # Errors
/// As [`forward`].
pub fn forward_hidden(
    spec: &Spec,
    params: &[f32],
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    hidden: &mut [f32],
) -> Result<(), Error> {
    hidden_of(spec, Params::flat(params), input, batch, work, hidden)
}

/// [`forward_hidden`] over any [`Params`].
fn hidden_of(
    spec: &Spec,
    params: Params<'_>,
    input: Sequences<'_>,
    batch: usize,
    work: &mut [f32],
    hidden: &mut [f32],
) -> Result<(), Error> {
    let steps = check_input(spec, &input, batch)?;
    params.check(spec)?;
    let hidden_len = sized("hidden state", batch.checked_mul(spec.top_units()))?;
    check_len("hidden state", hidden_len, hidden.len())?;
    let h = run_layers(Exact, spec, params, None, input, batch, steps, work)?;
    hidden.copy_from_slice(h);
    Ok(())
}

/// Runs every LSTM layer over `steps` time steps of checked input; returns the top layer's
/// last `h [B][H]` (inside `work`). With `table` (a token model's checked projection table)
/// layer 0 gathers its rows.
#[allow(clippy::too_many_arguments)]
fn run_layers<'w, K: Kernels>(
    kern: K,
    spec: &Spec,
    params: Params<'_>,
    table: Option<&[f32]>,
    input: Sequences<'_>,
    batch: usize,
    steps: usize,
    work: &'w mut [f32],
) -> Result<&'w [f32], Error> {
    let state_len = sized("state", spec.state_len(batch))?;
    check_min_len("work", sized("work", spec.forward_work_len(batch, 1))?, work.len())?;
    let (state, tape) = work.split_at_mut(state_len);
    let cap = chunk_capacity(spec, batch, tape.len()).min(steps);
    let layout = TapeLayout::new(spec, batch, cap);
    state.fill(0.0);
    let masked = spec.mask.is_on();
    let mut t0 = 0;
    while t0 < steps {
        let s = cap.min(steps - t0);
        layout.transfer_state(spec, tape, state, 0, true);
        match (table, input) {
            (Some(table), Sequences::Tokens(ids)) => {
                run_chunk_projected(kern, spec, params, table, ids, steps, &layout, t0, s, tape)
            }
            _ if masked => {
                run_chunk_masked(kern, spec, params, &input, steps, &layout, t0, s, tape)
            }
            _ => run_chunk(kern, spec, params, &input, steps, &layout, t0, s, tape),
        }
        layout.transfer_state(spec, tape, state, s, false);
        t0 += s;
    }
    let top = spec.layers - 1;
    let ho = spec.state_offset(top, batch);
    Ok(&state[ho..ho + batch * spec.top_units()])
}

/// One streaming step for `B` sequences: consumes one time step of input, updates the carried
/// `(h, c)` state and, when `out` is given, writes the head's outputs `[B][K]` for the
/// sequences seen so far.
///
/// * `input` — `[B]` token ids or `[B][C]` values (one time step).
/// * `state` — [`Spec::state_len`]`(B)` floats, zero for a fresh sequence ([`reset_state`]).
/// * `work` — [`Spec::step_work_len`]`(B)` floats of scratch.
///
/// # Errors
/// Wrong buffer lengths, token ids out of range, an input kind that does not match the spec.
pub fn step(
    spec: &Spec,
    params: &[f32],
    input: Sequences<'_>,
    batch: usize,
    state: &mut [f32],
    work: &mut [f32],
    out: Option<&mut [f32]>,
) -> Result<(), Error> {
    step_with(Exact, spec, params, input, batch, state, work, out)
}

/// [`step`] on the kernel path `kern` (see [`Kernels`]).
///
/// # Errors
/// As [`step`].
#[allow(clippy::too_many_arguments)]
pub fn step_with<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: &[f32],
    input: Sequences<'_>,
    batch: usize,
    state: &mut [f32],
    work: &mut [f32],
    out: Option<&mut [f32]>,
) -> Result<(), Error> {
    step_of(kern, spec, Params::flat(params), input, batch, state, work, out)
}

/// [`step`] of a model with an int8 Embedding (see [`forward_logits_int8`]); after `T` steps
/// the outputs equal [`forward_logits_int8`]'s, activated, bit for bit.
///
/// # Errors
/// As [`step`]; [`Error::InputKind`] as [`forward_logits_int8`].
#[allow(clippy::too_many_arguments)]
pub fn step_int8(
    spec: &Spec,
    embedding: Int8Embedding<'_>,
    rest: &[f32],
    input: Sequences<'_>,
    batch: usize,
    state: &mut [f32],
    work: &mut [f32],
    out: Option<&mut [f32]>,
) -> Result<(), Error> {
    let params = Params::int8(spec, embedding, rest);
    step_of(Exact, spec, params, input, batch, state, work, out)
}

/// [`step_with`] over any [`Params`].
#[allow(clippy::too_many_arguments)]
fn step_of<K: Kernels>(
    kern: K,
    spec: &Spec,
    params: Params<'_>,
    input: Sequences<'_>,
    batch: usize,
    state: &mut [f32],
    work: &mut [f32],
    out: Option<&mut [f32]>,
) -> Result<(), Error> {
    let steps = check_input(spec, &input, batch)?;
    if steps != 1 {
        return Err(Error::BufferLength {
            what: "streaming input (one step per sequence)",
            expected: batch.saturating_mul(spec.step_width()),
            actual: input.len(),
        });
    }
    params.check(spec)?;
    check_len("state", sized("state", spec.state_len(batch))?, state.len())?;
    check_min_len("work", sized("work", spec.step_work_len(batch))?, work.len())?;
    if let Some(o) = out.as_deref() {
        check_len("output", sized("output", batch.checked_mul(spec.outputs))?, o.len())?;
    }
    let layout = TapeLayout::new(spec, batch, 1);
    layout.transfer_state(spec, work, state, 0, true);
    if spec.mask.is_on() {
        run_chunk_masked(kern, spec, params, &input, 1, &layout, 0, 1, work);
    } else {
        run_chunk(kern, spec, params, &input, 1, &layout, 0, 1, work);
    }
    layout.transfer_state(spec, work, state, 1, false);
    if let Some(o) = out {
        let ho = spec.state_offset(spec.layers - 1, batch);
        head_logits(
            kern,
            spec,
            params.head(spec),
            &state[ho..ho + batch * spec.top_units()],
            batch,
            o,
        );
        activate(spec.head, spec.outputs, o);
    }
    Ok(())
}

/// Resets a streaming state to zeros (the state Keras starts every sequence from).
pub fn reset_state(state: &mut [f32]) {
    state.fill(0.0);
}

/// A model to run: its [`Spec`] and its flat parameters, both borrowed — the readable front of
/// this module's free functions, which stay available as the low-level layer.
///
/// Nothing is copied or allocated: a `Model` is two references, and each method is one call to
/// the free function it is named after, so it costs what that call costs. The batch size `B` is
/// read from the buffer that holds one row per sequence (the output, the hidden state, or the
/// streaming input), so it cannot disagree with it.
///
/// See the [module docs](self) for an example.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    /// The architecture.
    pub spec: &'a Spec,
    /// The parameters: [`Spec::param_count`] floats in Keras `get_weights()` order.
    pub params: &'a [f32],
}

/// The buffers a streaming model carries from one [`Model::step`] to the next, for `B`
/// sequences.
#[derive(Debug)]
pub struct Stream<'a> {
    /// `(h, c)` of every layer, [`Spec::state_len`]`(B)` floats; zeros start fresh sequences
    /// ([`Stream::reset`]).
    pub state: &'a mut [f32],
    /// Scratch of at least [`Spec::step_work_len`]`(B)` floats.
    pub work: &'a mut [f32],
}

impl Stream<'_> {
    /// Zeroes the state: the next step starts new sequences (Keras's initial state).
    pub fn reset(&mut self) {
        reset_state(self.state);
    }
}

/// The batch size of a row buffer of `len` floats in rows of `width`: `len / width`, or the
/// error for a buffer that is empty or not whole rows — or the spec's own error first, when the
/// spec is invalid. (The free function called next validates the spec, so a valid call checks
/// it once.)
fn batch_of(spec: &Spec, what: &'static str, width: usize, len: usize) -> Result<usize, Error> {
    if width != 0 && len != 0 && len % width == 0 {
        return Ok(len / width);
    }
    spec.validate()?;
    if len == 0 {
        return Err(Error::EmptyBatch);
    }
    Err(Error::BufferLength { what, expected: (len / width).max(1) * width, actual: len })
}

impl<'a> Model<'a> {
    /// The model with architecture `spec` and parameters `params`.
    pub const fn new(spec: &'a Spec, params: &'a [f32]) -> Self {
        Model { spec, params }
    }

    /// Batched forward pass over whole sequences ([`forward`]).
    ///
    /// * `input` — `[B][T]` ids or `[B][T][C]` values.
    /// * `work` — at least [`Spec::forward_work_len`]`(B, 1)` floats.
    /// * `out` — `[B][K]`, receives the head's outputs; `B = out.len() / K`.
    ///
    /// # Errors
    /// As [`forward`]; [`Error::EmptyBatch`] for an empty `out`.
    pub fn forward(
        &self,
        input: Sequences<'_>,
        work: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.forward_with(Exact, input, work, out)
    }

    /// [`Model::forward`] on the kernel path `kern` ([`forward_with`]).
    ///
    /// # Errors
    /// As [`Model::forward`].
    pub fn forward_with<K: Kernels>(
        &self,
        kern: K,
        input: Sequences<'_>,
        work: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        let batch = batch_of(self.spec, "output", self.spec.outputs, out.len())?;
        forward_with(kern, self.spec, self.params, input, batch, work, out)
    }

    /// [`Model::forward`] returning the head's logits ([`forward_logits`]).
    ///
    /// # Errors
    /// As [`Model::forward`].
    pub fn forward_logits(
        &self,
        input: Sequences<'_>,
        work: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.forward_logits_with(Exact, input, work, out)
    }

    /// [`Model::forward_logits`] on the kernel path `kern` ([`forward_logits_with`]).
    ///
    /// # Errors
    /// As [`Model::forward`].
    pub fn forward_logits_with<K: Kernels>(
        &self,
        kern: K,
        input: Sequences<'_>,
        work: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        let batch = batch_of(self.spec, "output", self.spec.outputs, out.len())?;
        forward_logits_with(kern, self.spec, self.params, input, batch, work, out)
    }

    /// The top layer's last hidden state `[B][H]` into `hidden` ([`forward_hidden`]);
    /// `B = hidden.len() / H`.
    ///
    /// # Errors
    /// As [`Model::forward`].
    pub fn forward_hidden(
        &self,
        input: Sequences<'_>,
        work: &mut [f32],
        hidden: &mut [f32],
    ) -> Result<(), Error> {
        self.spec.validate()?; // `top_units` needs a layer
        let batch = batch_of(self.spec, "hidden state", self.spec.top_units(), hidden.len())?;
        forward_hidden(self.spec, self.params, input, batch, work, hidden)
    }

    /// One streaming step ([`step`]): consumes one time step of `input` — `[B]` ids or
    /// `[B][C]` values, which gives `B` — and updates `stream.state`.
    ///
    /// # Errors
    /// As [`step`]; [`Error::EmptyBatch`] for an empty input.
    pub fn step(&self, stream: &mut Stream<'_>, input: Sequences<'_>) -> Result<(), Error> {
        self.step_with(Exact, stream, input, None)
    }

    /// [`Model::step`], then the head's outputs `[B][K]` for the sequences so far into `out`.
    ///
    /// # Errors
    /// As [`Model::step`].
    pub fn step_outputs(
        &self,
        stream: &mut Stream<'_>,
        input: Sequences<'_>,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.step_with(Exact, stream, input, Some(out))
    }

    /// [`Model::step`] on the kernel path `kern`, with the outputs when `out` is given
    /// ([`step_with`]).
    ///
    /// # Errors
    /// As [`Model::step`].
    pub fn step_with<K: Kernels>(
        &self,
        kern: K,
        stream: &mut Stream<'_>,
        input: Sequences<'_>,
        out: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        let what = "streaming input (one step per sequence)";
        let batch = batch_of(self.spec, what, self.spec.step_width(), input.len())?;
        step_with(kern, self.spec, self.params, input, batch, stream.state, stream.work, out)
    }
}
