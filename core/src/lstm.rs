//! One LSTM layer over a segment of time steps: forward with a tape, and backward through it.
//!
//! Keras semantics (gate order `i, f, c, o`; sigmoid recurrent activation, tanh activation):
//!
//! ```text
//! z_t = b + x_t·W + h_{t-1}·U            W [I][4H], U [H][4H], b [4H]
//! i = σ(z_i)  f = σ(z_f)  g = tanh(z_c)  o = σ(z_o)
//! c_t = f ⊙ c_{t-1} + i ⊙ g
//! h_t = o ⊙ tanh(c_t)
//! ```
//!
//! Sequences here are **time-major**: `x [S][B][I]`, so that one segment's input projections
//! are a single `[S·B][I] × [I][4H]` GEMM and each step's recurrent product is a
//! `[B][H] × [H][4H]` GEMM (a vector–matrix product when `B = 1`).
//!
//! A [`Tape`] holds what the backward pass needs: the activated gates `[S][B][4H]` and the
//! states `h`, `c` over `S + 1` slots `[S+1][B][H]`, slot 0 being the state the segment
//! started from. The backward pass overwrites the gates with the pre-activation gradients
//! `dz`, which then feed the weight-gradient GEMMs — no extra memory.
//!
//! ## Masking
//! [`forward_masked`] and [`backward_masked`] take one keep flag per step and sequence,
//! `keep [S][B]` (a step is kept when its flag is not `0.0`), with Keras's semantics: a masked
//! step copies `(h, c)` from the previous slot, so the layer's output there repeats the last
//! output (zeros before the first kept step, from a zero state), and its gradient passes
//! straight through to the previous state with `dz = 0` (no weight or input gradient). Kept
//! steps compute exactly what the unmasked pass computes, bit for bit; the unmasked entry
//! points are separate instances with no mask test in their loops.

use crate::error::{check_len, sized, Error};
use crate::kernels::{CellBackward, Exact, Kernels};

/// Shape of one layer's pass: input width, units, batch and segment length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dims {
    /// Input width `I`.
    pub input: usize,
    /// Hidden units `H`.
    pub units: usize,
    /// Sequences processed together `B`.
    pub batch: usize,
    /// Time steps in the segment `S`.
    pub steps: usize,
}

impl Dims {
    /// Length of the gates part of a tape, `S·B·4H`; `None` if it overflows `usize`.
    pub const fn gates_len(&self) -> Option<usize> {
        let rows = checked!(self.steps.checked_mul(self.batch));
        checked!(rows.checked_mul(self.units)).checked_mul(4)
    }

    /// Length of the `h` (and of the `c`) part of a tape, `(S+1)·B·H`; `None` on overflow.
    pub const fn states_len(&self) -> Option<usize> {
        let slots = checked!(self.steps.checked_add(1));
        checked!(slots.checked_mul(self.batch)).checked_mul(self.units)
    }

    /// Length of a time-major input `[S][B][I]`; `None` on overflow.
    pub const fn input_len(&self) -> Option<usize> {
        checked!(self.steps.checked_mul(self.batch)).checked_mul(self.input)
    }
}

/// A layer's weights, borrowed from the flat parameter buffer in Keras layout.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    /// Input kernel `W [I][4H]`.
    pub kernel: &'a [f32],
    /// Recurrent kernel `U [H][4H]`.
    pub recurrent: &'a [f32],
    /// Bias `b [4H]`.
    pub bias: &'a [f32],
}

/// A layer's gradient accumulators (same shapes as [`Weights`]); the backward pass adds into them.
#[derive(Debug)]
pub struct Grads<'a> {
    /// `dW [I][4H]`.
    pub kernel: &'a mut [f32],
    /// `dU [H][4H]`.
    pub recurrent: &'a mut [f32],
    /// `db [4H]`.
    pub bias: &'a mut [f32],
}

/// The forward tape of one layer over one segment.
#[derive(Debug)]
pub struct Tape<'a> {
    /// Activated gates `[S][B][4H]` (`i, f, g, o` blocks of `H` per row); `dz` after backward.
    pub gates: &'a mut [f32],
    /// Hidden states `[S+1][B][H]`; slot 0 is the incoming state.
    pub h: &'a mut [f32],
    /// Cell states `[S+1][B][H]`; slot 0 is the incoming state.
    pub c: &'a mut [f32],
}

fn check_weights(d: &Dims, w: &Weights<'_>) -> Result<(), Error> {
    let g = sized("bias", d.units.checked_mul(4))?;
    check_len("kernel", sized("kernel", d.input.checked_mul(g))?, w.kernel.len())?;
    check_len(
        "recurrent kernel",
        sized("recurrent kernel", d.units.checked_mul(g))?,
        w.recurrent.len(),
    )?;
    check_len("bias", g, w.bias.len())
}

fn check_tape(d: &Dims, t: &Tape<'_>) -> Result<(), Error> {
    check_len("tape gates", sized("tape gates", d.gates_len())?, t.gates.len())?;
    let states = sized("tape h and c", d.states_len())?;
    check_len("tape h", states, t.h.len())?;
    check_len("tape c", states, t.c.len())
}

/// The length of a time-major input, or an error if it overflows.
fn input_len(d: &Dims) -> Result<usize, Error> {
    sized("layer input", d.input_len())
}

/// The length of keep flags `[S][B]`, or an error if it overflows.
fn keep_len(d: &Dims) -> Result<usize, Error> {
    sized("keep flags", d.steps.checked_mul(d.batch))
}

/// Runs the layer over `d.steps` steps of `x [S][B][I]`, starting from the state in slot 0 of
/// `tape.h` / `tape.c`, and fills the rest of the tape.
///
/// # Errors
/// [`Error::BufferLength`] if any slice does not match `d`.
pub fn forward(d: &Dims, w: &Weights<'_>, x: &[f32], tape: &mut Tape<'_>) -> Result<(), Error> {
    forward_with(Exact, d, w, x, tape)
}

/// [`forward`] on the kernel path `kern` (see [`Kernels`]).
///
/// # Errors
/// As [`forward`].
pub fn forward_with<K: Kernels>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    tape: &mut Tape<'_>,
) -> Result<(), Error> {
    check_weights(d, w)?;
    check_tape(d, tape)?;
    check_len("layer input", input_len(d)?, x.len())?;
    forward_unchecked(kern, d, w, x, tape);
    Ok(())
}

/// [`forward`] with a mask: step `t` of sequence `r` is skipped (its `(h, c)` copied from
/// slot `t`) when `keep[t·B + r] == 0.0`.
///
/// * `keep [S][B]` — keep flags, time-major like `x`.
///
/// # Errors
/// [`Error::BufferLength`] if any slice does not match `d`.
pub fn forward_masked(
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    keep: &[f32],
    tape: &mut Tape<'_>,
) -> Result<(), Error> {
    check_weights(d, w)?;
    check_tape(d, tape)?;
    check_len("layer input", input_len(d)?, x.len())?;
    check_len("keep flags", keep_len(d)?, keep.len())?;
    forward_unchecked_masked(Exact, d, w, x, keep, tape);
    Ok(())
}

/// [`forward`] without the length checks (callers have validated every size).
pub(crate) fn forward_unchecked<K: Kernels>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    tape: &mut Tape<'_>,
) {
    forward_impl::<K, false>(kern, d, w, x, &[], false, tape);
}

/// [`forward_masked`] without the length checks; `keep` is `[S][B]`.
pub(crate) fn forward_unchecked_masked<K: Kernels>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    keep: &[f32],
    tape: &mut Tape<'_>,
) {
    forward_impl::<K, true>(kern, d, w, x, keep, false, tape);
}

/// [`forward_unchecked`] (`MASKED = false`) or [`forward_unchecked_masked`] for a layer whose
/// input projections `b + x·W` are already in `tape.gates` (a token model's rows of its
/// projection table, [`model::projection_rows_with`](crate::model::projection_rows_with)):
/// every later operation is the same, so the same bits as when this pass's GEMM computes them.
pub(crate) fn forward_unchecked_projected<K: Kernels, const MASKED: bool>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    keep: &[f32],
    tape: &mut Tape<'_>,
) {
    forward_impl::<K, MASKED>(kern, d, w, &[], keep, true, tape);
}

/// The forward pass; `MASKED = false` ignores `keep` (and compiles without any mask test).
/// `projected`: `tape.gates` already holds `b + x·W` (and `x` is not read).
fn forward_impl<K: Kernels, const MASKED: bool>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    keep: &[f32],
    projected: bool,
    tape: &mut Tape<'_>,
) {
    let (h, b) = (d.units, d.batch);
    let g4 = 4 * h;
    let rows = d.steps * b;
    // One sequence on a scalar FPU: each step's `b + x·W + h·U` in one pass (gates stay in
    // registers). Otherwise the input projections of the whole segment at once (one GEMM),
    // then each step's recurrent product. Same operations per element, so the same bits.
    let fused = !projected && b == 1 && cfg!(target_arch = "arm");
    if !fused && !projected {
        kern.gemm_nn_start(rows, g4, d.input, x, w.kernel, w.bias, tape.gates);
    }

    let bh = b * h;
    for t in 0..d.steps {
        let z = &mut tape.gates[t * b * g4..(t + 1) * b * g4];
        if MASKED && fused && keep[t] == 0.0 {
            // One masked sequence: the state carries over, no gate is computed.
            tape.h.copy_within(t * bh..(t + 1) * bh, (t + 1) * bh);
            tape.c.copy_within(t * bh..(t + 1) * bh, (t + 1) * bh);
            continue;
        }
        if !MASKED && !fused {
            // The recurrent product and the cell of every sequence: one kernel-path call, so a
            // path may tile the rows and update each tile's cells while its gates are in cache.
            let (h_prev, h_next) = tape.h[t * bh..(t + 2) * bh].split_at_mut(bh);
            let (c_prev, c_next) = tape.c[t * bh..(t + 2) * bh].split_at_mut(bh);
            let rows = StepRows { units: h, batch: b, h_prev, recurrent: w.recurrent, z };
            kern.lstm_step(rows, c_prev, c_next, h_next);
            continue;
        }
        let h_prev = &tape.h[t * bh..(t + 1) * bh];
        if fused {
            let x_t = &x[t * d.input..(t + 1) * d.input];
            kern.gemv_terms(g4, Some(w.bias), &[(x_t, w.kernel), (h_prev, w.recurrent)], z);
        } else {
            // Recurrent contribution z += h_{t-1}·U.
            kern.gemm_nn(b, g4, h, h_prev, w.recurrent, z);
        }
        let (c_prev, c_next) = tape.c[t * bh..(t + 2) * bh].split_at_mut(bh);
        if MASKED {
            let (h_prev, h_next) = tape.h[t * bh..(t + 2) * bh].split_at_mut(bh);
            let rows = z
                .chunks_exact_mut(g4)
                .zip(c_prev.chunks_exact(h))
                .zip(c_next.chunks_exact_mut(h))
                .zip(h_prev.chunks_exact(h).zip(h_next.chunks_exact_mut(h)));
            for (r, (((zb, cp), cn), (hp, hn))) in rows.enumerate() {
                if keep[t * b + r] == 0.0 {
                    cn.copy_from_slice(cp);
                    hn.copy_from_slice(hp);
                } else {
                    kern.cell_step(zb, cp, cn, hn, h);
                }
            }
            continue;
        }
        // One unmasked sequence on a scalar FPU (the fused branch above).
        let h_next = &mut tape.h[(t + 1) * bh..(t + 2) * bh];
        cell_rows(kern, h, b, z, c_prev, c_next, h_next);
    }
}

/// The operands of one LSTM time step of `batch` sequences ([`step_rows`]).
#[derive(Debug)]
pub struct StepRows<'a> {
    /// Hidden units `H`.
    pub units: usize,
    /// Sequences `B`.
    pub batch: usize,
    /// The previous hidden states `h_{t-1} [B][H]`.
    pub h_prev: &'a [f32],
    /// The recurrent kernel `U [H][4H]`.
    pub recurrent: &'a [f32],
    /// On entry the input projections `b + x_t·W [B][4H]`; on return the activated gates.
    pub z: &'a mut [f32],
}

/// One LSTM time step of `B` sequences: `z += h_{t-1}·U` (one `[B][H] × [H][4H]` GEMM), then
/// every row's cell ([`cell_rows`]). `c_prev`, `c_next`, `h_next` are `[B][H]`. This is the
/// default of [`Kernels::lstm_step`]; a path may tile the rows, with the same operations per
/// element.
///
/// # Panics
/// When a slice is shorter than its shape above.
pub fn step_rows<K: Kernels>(
    kern: K,
    step: StepRows<'_>,
    c_prev: &[f32],
    c_next: &mut [f32],
    h_next: &mut [f32],
) {
    let (h, b) = (step.units, step.batch);
    kern.gemm_nn(b, 4 * h, h, step.h_prev, step.recurrent, step.z);
    cell_rows(kern, h, b, step.z, c_prev, c_next, h_next);
}

/// The cells of `b` sequences from their pre-activations `z [b][4H]` (activated in place):
/// `c_next`, `h_next [b][H]` from `c_prev [b][H]`, with the path's cell steps
/// ([`Kernels::cell_steps`]).
///
/// # Panics
/// When a slice is shorter than its shape above.
pub fn cell_rows<K: Kernels>(
    kern: K,
    h: usize,
    b: usize,
    z: &mut [f32],
    c_prev: &[f32],
    c_next: &mut [f32],
    h_next: &mut [f32],
) {
    let (g4, bh) = (4 * h, b * h);
    assert!(
        z.len() >= b * g4 && c_prev.len() >= bh && c_next.len() >= bh && h_next.len() >= bh,
        "cell_rows: a slice is shorter than its rows"
    );
    kern.cell_steps(b, z, c_prev, c_next, h_next, h);
}

/// Backward pass through one segment's tape.
///
/// * `x [S][B][I]` — the segment's input, as given to [`forward`].
/// * `dh_seq [S][B][H]` — gradient arriving at each `h_t` from above (the next layer), or `None`.
/// * `carry_dh`, `carry_dc [B][H]` — on entry the gradient at the segment's last state
///   (from the head, or from the following segment); on return the gradient at slot 0,
///   the state the segment started from (`∂/∂h0`, `∂/∂c0` for the first segment).
/// * `grads` — `dW`, `dU`, `db` are **added to**.
/// * `dx [S][B][I]` — overwritten with the input gradient, or `None` to skip that GEMM.
///
/// The tape's gates are overwritten with `dz`.
///
/// # Errors
/// [`Error::BufferLength`] if any slice does not match `d`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    tape: &mut Tape<'_>,
    dh_seq: Option<&[f32]>,
    carry_dh: &mut [f32],
    carry_dc: &mut [f32],
    grads: &mut Grads<'_>,
    dx: Option<&mut [f32]>,
) -> Result<(), Error> {
    backward_with(Exact, d, w, x, tape, dh_seq, carry_dh, carry_dc, grads, dx)
}

/// [`backward`] on the kernel path `kern` (see [`Kernels`]).
///
/// # Errors
/// As [`backward`].
#[allow(clippy::too_many_arguments)]
pub fn backward_with<K: Kernels>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    tape: &mut Tape<'_>,
    dh_seq: Option<&[f32]>,
    carry_dh: &mut [f32],
    carry_dc: &mut [f32],
    grads: &mut Grads<'_>,
    dx: Option<&mut [f32]>,
) -> Result<(), Error> {
    check_backward(d, w, x, tape, dh_seq, carry_dh, carry_dc, grads, dx.as_deref())?;
    backward_unchecked(kern, d, w, x, tape, dh_seq, carry_dh, carry_dc, grads, dx);
    Ok(())
}

/// [`backward`] through a tape written by [`forward_masked`] with the same `keep [S][B]`
/// flags: a masked step passes `dh` (its own plus the one from above) and `dc` straight to
/// the previous state, and its `dz` and input gradient are zero.
///
/// # Errors
/// [`Error::BufferLength`] if any slice does not match `d`.
#[allow(clippy::too_many_arguments)]
pub fn backward_masked(
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    keep: &[f32],
    tape: &mut Tape<'_>,
    dh_seq: Option<&[f32]>,
    carry_dh: &mut [f32],
    carry_dc: &mut [f32],
    grads: &mut Grads<'_>,
    dx: Option<&mut [f32]>,
) -> Result<(), Error> {
    check_backward(d, w, x, tape, dh_seq, carry_dh, carry_dc, grads, dx.as_deref())?;
    check_len("keep flags", keep_len(d)?, keep.len())?;
    backward_unchecked_masked(Exact, d, w, x, keep, tape, dh_seq, carry_dh, carry_dc, grads, dx);
    Ok(())
}

/// The length checks of [`backward`].
#[allow(clippy::too_many_arguments)]
fn check_backward(
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    tape: &Tape<'_>,
    dh_seq: Option<&[f32]>,
    carry_dh: &[f32],
    carry_dc: &[f32],
    grads: &Grads<'_>,
    dx: Option<&[f32]>,
) -> Result<(), Error> {
    check_weights(d, w)?;
    check_tape(d, tape)?;
    check_len("layer input", input_len(d)?, x.len())?;
    let bh = sized("carry dh", d.batch.checked_mul(d.units))?;
    if let Some(s) = dh_seq {
        check_len("dh_seq", sized("dh_seq", d.steps.checked_mul(bh))?, s.len())?;
    }
    check_len("carry dh", bh, carry_dh.len())?;
    check_len("carry dc", bh, carry_dc.len())?;
    check_len("kernel gradient", w.kernel.len(), grads.kernel.len())?;
    check_len("recurrent gradient", w.recurrent.len(), grads.recurrent.len())?;
    check_len("bias gradient", w.bias.len(), grads.bias.len())?;
    if let Some(dx) = dx {
        check_len("dx", input_len(d)?, dx.len())?;
    }
    Ok(())
}

/// [`backward`] without the length checks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_unchecked<K: Kernels>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    tape: &mut Tape<'_>,
    dh_seq: Option<&[f32]>,
    carry_dh: &mut [f32],
    carry_dc: &mut [f32],
    grads: &mut Grads<'_>,
    dx: Option<&mut [f32]>,
) {
    backward_impl::<K, false>(kern, d, w, x, &[], tape, dh_seq, carry_dh, carry_dc, grads, dx);
}

/// [`backward_masked`] without the length checks; `keep` is `[S][B]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_unchecked_masked<K: Kernels>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    keep: &[f32],
    tape: &mut Tape<'_>,
    dh_seq: Option<&[f32]>,
    carry_dh: &mut [f32],
    carry_dc: &mut [f32],
    grads: &mut Grads<'_>,
    dx: Option<&mut [f32]>,
) {
    backward_impl::<K, true>(kern, d, w, x, keep, tape, dh_seq, carry_dh, carry_dc, grads, dx);
}

/// The backward pass; `MASKED = false` ignores `keep` (and compiles without any mask test).
#[allow(clippy::too_many_arguments)]
fn backward_impl<K: Kernels, const MASKED: bool>(
    kern: K,
    d: &Dims,
    w: &Weights<'_>,
    x: &[f32],
    keep: &[f32],
    tape: &mut Tape<'_>,
    dh_seq: Option<&[f32]>,
    carry_dh: &mut [f32],
    carry_dc: &mut [f32],
    grads: &mut Grads<'_>,
    dx: Option<&mut [f32]>,
) {
    let (h, b) = (d.units, d.batch);
    let g4 = 4 * h;
    let bh = b * h;
    let rows = d.steps * b;
    for t in (0..d.steps).rev() {
        let z = &mut tape.gates[t * b * g4..(t + 1) * b * g4];
        let c_prev = &tape.c[t * bh..(t + 1) * bh];
        let c_cur = &tape.c[(t + 1) * bh..(t + 2) * bh];
        for r in 0..b {
            let zb = &mut z[r * g4..(r + 1) * g4];
            let above = dh_seq.map(|s| &s[(t * b + r) * h..(t * b + r + 1) * h]);
            if MASKED && keep[t * b + r] == 0.0 {
                // h_t = h_{t-1}, c_t = c_{t-1}: the gradients pass through unchanged (dc stays
                // in `carry_dc`; dh collects the output's gradient and is kept below).
                if let Some(a) = above {
                    for (o, v) in carry_dh[r * h..(r + 1) * h].iter_mut().zip(a) {
                        *o += v;
                    }
                }
                zb.fill(0.0);
                continue;
            }
            let step = CellBackward {
                z: zb,
                c_prev: &c_prev[r * h..(r + 1) * h],
                c_cur: &c_cur[r * h..(r + 1) * h],
                dh: &carry_dh[r * h..(r + 1) * h],
                above,
                dc: &mut carry_dc[r * h..(r + 1) * h],
            };
            kern.cell_backward(step, h);
        }
        // Gradient at h_{t-1}: dz_t · Uᵀ (plus, for a masked row whose dz is zero, the
        // gradient it passes through, left in place).
        if MASKED {
            for r in 0..b {
                if keep[t * b + r] != 0.0 {
                    carry_dh[r * h..(r + 1) * h].fill(0.0);
                }
            }
        } else {
            carry_dh.fill(0.0);
        }
        kern.gemm_nt(b, h, g4, z, w.recurrent, carry_dh);
    }
    let dz = &*tape.gates;
    kern.gemm_tn(d.input, g4, rows, x, dz, grads.kernel);
    kern.gemm_tn(h, g4, rows, &tape.h[..rows * h], dz, grads.recurrent);
    kern.add_column_sums(rows, g4, dz, grads.bias);
    if let Some(dx) = dx {
        dx.fill(0.0);
        kern.gemm_nt(rows, d.input, g4, dz, w.kernel, dx);
    }
}
