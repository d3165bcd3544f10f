//! Keras initialisers from a seeded, portable PRNG.
//!
//! [`init_params`] fills a model's flat parameter buffer the way a fresh Keras model is
//! initialised:
//!
//! | tensor | shape | Keras initialiser | here |
//! |---|---|---|---|
//! | Embedding | `[V][E]` | `RandomUniform(−0.05, 0.05)` | uniform in `[−0.05, 0.05)` |
//! | LSTM kernel | `[I][4H]` | `glorot_uniform` | uniform in `[−l, l)`, `l = √(6 / (I + 4H))` |
//! | LSTM recurrent kernel | `[H][4H]` | `orthogonal` | `H` orthonormal rows ([`orthogonal_rows`]) |
//! | LSTM bias | `[4H]` | `zeros` + `unit_forget_bias` | 0, except the forget gate `[H, 2H)` = 1 |
//! | Dense kernel | `[H][K]` | `glorot_uniform` | uniform in `[−l, l)`, `l = √(6 / (H + K))` |
//! | Dense bias | `[K]` | `zeros` | 0 |
//!
//! The random numbers come from [`Rng`] (PCG32, `rand_pcg::Pcg32`), not from TensorFlow's
//! generator, so the values are **Keras-distributed, not Keras-identical**: a model initialised
//! here has the same distributions as a fresh Keras model but different numbers. To reproduce a
//! particular Keras model, import its weights instead.
//!
//! The same seed gives the same bits on every platform (host, CI, Cortex-M): the generator is
//! integer-only, and the floating-point work is IEEE basic operations (`+ − × ÷`, which Rust
//! never contracts into FMAs or reassociates) and [`crate::math`]'s `sqrt`/`ln`/`cos`, which
//! with the default `libm` feature are portable pure-Rust code. (With the approximate
//! `micromath` feature `ln`/`cos` differ, so the values differ from a default build — still
//! deterministic for that feature set.) The tensors are filled in `model.get_weights()` order
//! from one generator stream.

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

use crate::error::{check_len, Error};
use crate::math;
use crate::spec::{Spec, TensorKind};

/// Half-width of Keras's Embedding initialiser, `RandomUniform(-0.05, 0.05)`.
pub const EMBEDDING_LIMIT: f32 = 0.05;

/// A seeded, portable random number generator (PCG32) with the draws the initialisers need.
///
/// `Rng::new(seed)` is `Pcg32::seed_from_u64(seed)`; every draw is a pure function of the seed
/// and the number of previous draws.
#[derive(Clone, Debug)]
pub struct Rng(Pcg32);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(Pcg32::seed_from_u64(seed))
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    /// A uniform `f32` in `[0, 1)` with 24 random bits (every value is a multiple of 2⁻²⁴).
    pub fn unit(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// A uniform `f32` in `[lo, hi)`, computed as TensorFlow does: `u·(hi − lo) + lo`.
    ///
    /// A draw that rounds up to `hi` is redrawn, so `hi` is never returned. Returns `lo` when
    /// the interval is empty, reversed, or not finite (never panics).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let width = hi - lo;
        if !(lo < hi && width.is_finite()) {
            return lo;
        }
        loop {
            let x = self.unit() * width + lo;
            if x < hi {
                return x;
            }
        }
    }

    /// A standard normal `f32` (mean 0, variance 1) by the Box–Muller transform,
    /// `√(−2 ln u₁) · cos(2π u₂)` with `u₁ ∈ (0, 1]`, `u₂ ∈ [0, 1)`; uses two `u32` draws.
    ///
    /// The 24-bit `u₁` bounds the output to about ±5.8.
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u32() >> 8) + 1) as f32 * (1.0 / 16_777_216.0);
        let u2 = self.unit();
        math::sqrt(-2.0 * math::ln(u1)) * math::cos(core::f32::consts::TAU * u2)
    }
}

/// Fills `out [n]` with uniform values in `[lo, hi)` (see [`Rng::uniform`]).
pub fn uniform(lo: f32, hi: f32, rng: &mut Rng, out: &mut [f32]) {
    for x in out.iter_mut() {
        *x = rng.uniform(lo, hi);
    }
}

/// The Glorot-uniform limit `√(3 / max(1, (fan_in + fan_out)/2))` = `√(6 / (fan_in + fan_out))`:
/// the quotient in `f64`, the square root in `f32` (within an ulp of Keras's all-double value).
pub fn glorot_limit(fan_in: usize, fan_out: usize) -> f32 {
    let fan_avg = (fan_in as f64 + fan_out as f64) / 2.0;
    math::sqrt((3.0 / fan_avg.max(1.0)) as f32)
}

/// Keras `glorot_uniform` into `out [rows][cols]` (row-major; `fan_in = rows`,
/// `fan_out = cols`): uniform in `[−l, l)` with `l` = [`glorot_limit`]`(rows, cols)`.
///
/// Errors with `BufferLength` unless `out.len() == rows·cols`.
pub fn glorot_uniform(
    rows: usize,
    cols: usize,
    rng: &mut Rng,
    out: &mut [f32],
) -> Result<(), Error> {
    check_len("glorot tensor", rows.saturating_mul(cols), out.len())?;
    let limit = glorot_limit(rows, cols);
    uniform(-limit, limit, rng, out);
    Ok(())
}

/// Independent accumulators of [`dot`] (one SIMD register of `f32` on most hosts).
const LANES: usize = 8;

/// `Σ aᵢ·bᵢ` over equal-length slices with 8 independent `f32` accumulators (vectorises, and
/// is deterministic: Rust never reassociates, so every platform adds in the same order).
///
/// Deliberately not [`kernels::dot`](crate::kernels::dot): the two reduce their lanes in a
/// different order, and this one is part of what a seed means. Every seeded model since the
/// first release starts from the weights it defines (`tests/tests/init.rs` pins them), so a run
/// repeated with the same `--seed` after an upgrade starts where it started before. Routing it
/// through the kernels would change those bits for no gain in accuracy (both are `f32` sums of
/// the same products; the rows stay orthonormal to `f32` precision either way).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    let mut tail = 0.0f32;
    for (&p, &q) in ca.remainder().iter().zip(cb.remainder()) {
        tail += p * q;
    }
    let pairs = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

/// Attempts per row before [`orthogonal_rows`] gives up (a redraw has probability ~0).
const MAX_DRAWS: usize = 64;

/// Keras `orthogonal` (gain 1) for a wide matrix: fills `out [rows][cols]` (`rows ≤ cols`) with
/// `rows` orthonormal rows.
///
/// Each row is drawn as `cols` standard normals ([`Rng::normal`]), then orthogonalised against
/// the previous rows by modified Gram–Schmidt — two passes, for orthogonality to `f32`
/// precision — and normalised. This is the Q of the QR factorisation of the Gaussian matrix's
/// transpose with the sign correction Keras applies (positive diagonal of R), so the rows are
/// distributed as Keras's (Haar-uniform). A row whose residual after projection is below 10⁻³ of
/// its drawn norm (probability ~0) is redrawn. Works in place, without extra memory.
///
/// Errors: `BufferLength` unless `out.len() == rows·cols`; `OrthogonalShape` when
/// `rows > cols` (the rows cannot be orthonormal).
pub fn orthogonal_rows(
    rows: usize,
    cols: usize,
    rng: &mut Rng,
    out: &mut [f32],
) -> Result<(), Error> {
    check_len("orthogonal tensor", rows.saturating_mul(cols), out.len())?;
    if rows > cols {
        return Err(Error::OrthogonalShape { rows, cols });
    }
    if cols == 0 {
        return Ok(());
    }
    for i in 0..rows {
        let (done, rest) = out.split_at_mut(i * cols);
        let row = &mut rest[..cols];
        let mut ok = false;
        for _ in 0..MAX_DRAWS {
            for x in row.iter_mut() {
                *x = rng.normal();
            }
            let drawn = math::sqrt(dot(row, row));
            for _pass in 0..2 {
                for q in done.chunks_exact(cols) {
                    let r = dot(row, q);
                    for (x, &qj) in row.iter_mut().zip(q) {
                        *x -= r * qj;
                    }
                }
            }
            let norm = math::sqrt(dot(row, row));
            if norm.is_finite() && norm > 1e-3 * drawn {
                for x in row.iter_mut() {
                    *x /= norm;
                }
                ok = true;
                break;
            }
        }
        if !ok {
            return Err(Error::OrthogonalNoConvergence);
        }
    }
    Ok(())
}

/// Keras LSTM bias with `unit_forget_bias`: `out [4H]` is 0 except the forget-gate block
/// `[H, 2H)`, which is 1 (gate order i, f, c, o).
///
/// Errors with `BufferLength` unless `out.len() == 4·units`.
pub fn lstm_bias(units: usize, out: &mut [f32]) -> Result<(), Error> {
    check_len("LSTM bias", units.saturating_mul(4), out.len())?;
    out.fill(0.0);
    out[units..2 * units].fill(1.0);
    Ok(())
}

/// Initialises the whole flat parameter buffer `params [spec.param_count()]` as a fresh Keras
/// model (see the [module docs](self)) from the generator seeded with `seed`.
///
/// Errors: an invalid spec, or `params` of the wrong length (nothing is written then).
pub fn init_params(spec: &Spec, seed: u64, params: &mut [f32]) -> Result<(), Error> {
    init_params_with(spec, &mut Rng::new(seed), params)
}

/// [`init_params`] drawing from a caller's generator (which advances).
pub fn init_params_with(spec: &Spec, rng: &mut Rng, params: &mut [f32]) -> Result<(), Error> {
    spec.validate()?;
    check_len("parameter", spec.param_count(), params.len())?;
    for t in spec.tensors() {
        let out = &mut params[t.range()];
        match t.kind {
            TensorKind::Embedding => uniform(-EMBEDDING_LIMIT, EMBEDDING_LIMIT, rng, out),
            TensorKind::Kernel | TensorKind::DenseKernel => {
                glorot_uniform(t.rows, t.cols, rng, out)?
            }
            TensorKind::RecurrentKernel => orthogonal_rows(t.rows, t.cols, rng, out)?,
            TensorKind::Bias => lstm_bias(t.cols / 4, out)?,
            TensorKind::DenseBias => out.fill(0.0),
        }
    }
    Ok(())
}
