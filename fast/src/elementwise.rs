//! The fast path's element-wise LSTM work — σ, tanh, the cell update and its backward step —
//! written explicitly over vectors (AVX-512F, AVX2 + FMA) instead of as loops over the core's
//! exact scalar functions.
//!
//! **What differs from the exact path.** The exact σ and tanh divide (`1 / (1 + e^-x)`,
//! `1 − 2 / (e^{2x} + 1)`) and compute tanh's Taylor and exponential forms for every element;
//! divisions are the slowest vector instructions (AVX-512: about one per 10 cycles). Here:
//! - tanh is `1 − 2 / (e^{2x} + 1)` alone (no second form near 0, no sign handling);
//! - `e^x` is the same Cephes-style reduction as the exact one with a shorter polynomial
//!   (degree 5 instead of 7, 1.7e-7 relative), evaluated with fused multiply-adds and scaled
//!   by `2^n` in one instruction (`vscalefps`) or an exponent add (AVX2);
//! - every division is a reciprocal estimate (`vrcp14ps`, 14 bits; AVX2 `vrcpps`, 12 bits)
//!   refined by one Newton step `r ← r·(2 − d·r)` (about 23 bits);
//! - the cell update `f ⊙ c + i ⊙ g` is fused, and the activations, cell update and `tanh(c)`
//!   run in one pass over each row.
//!
//! Measured against f64 over a dense grid (test `fast/tests/kernels.rs`,
//! `fast_activations_are_within_their_stated_error_of_f64`): σ within 2.5e-7 absolute, tanh
//! within 4e-7 absolute (4e-6 relative where `|tanh x| ≥ 0.1`) on both instruction sets
//! (measured: σ 1.4e-7 on AVX-512, 1.9e-7 on AVX2; tanh 2.7e-7 and 3.7e-7). tanh uses one
//! formula everywhere, so near 0 its relative error grows (its absolute error does not): the
//! gates and `h = o·tanh(c)` need the absolute one. A few ulps of 1, far inside the Keras
//! parity bound `1e-5 + 1e-4·|b|`. NaN propagates as on the exact path.
//!
//! The results are deterministic (one fixed sequence of operations per element and instruction
//! set). `TINYLSTM_FAST_ELEMENTWISE=exact` makes the fast path use the exact element-wise
//! functions instead (see [`crate::Elementwise`]), to measure one against the other.

use crate::simd::Simd;
use tinylstm::kernels::CellBackward;

/// The vector operations the element-wise kernels need beyond [`Simd`].
///
/// # Safety
/// As [`Simd`]: every method may only run on a CPU with the implementation's target features.
pub(crate) unsafe trait Elem: Simd {
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a − b`.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// `a · b`.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `min(hi, max(lo, x))`, NaN in `x` passed through.
    unsafe fn clamp(x: Self::V, lo: Self::V, hi: Self::V) -> Self::V;
    /// `1 / d`: the hardware estimate and one Newton step.
    unsafe fn recip(d: Self::V) -> Self::V;
    /// `y · 2^n` for `n` an integer-valued float in `[-126, 127]`.
    unsafe fn ldexp(y: Self::V, n: Self::V) -> Self::V;
}

/// `e^x` with `x` clamped to `[-87, 88]` (where `2^n` stays a normal float), NaN propagated.
#[inline(always)]
unsafe fn exp<S: Elem>(x: S::V) -> S::V {
    // SAFETY: the caller runs on a CPU with S's features (trait contract).
    unsafe {
        let x = S::clamp(x, S::splat(-87.0), S::splat(88.0));
        let t = S::fma(x, S::splat(core::f32::consts::LOG2_E), S::splat(12_582_912.0));
        let n = S::sub(t, S::splat(12_582_912.0)); // round(x·log2 e), exactly
        let r = S::fma(n, S::splat(-0.693_359_4), x); // ln 2 in two parts (Cody–Waite)
        let r = S::fma(n, S::splat(2.121_944_4e-4), r);
        // e^r ≈ 1 + r + r²·p(r) on |r| ≤ ln2/2, p of degree 3 fitted for least maximum relative
        // error (Lawson iteration, coefficients rounded to f32): 1.7e-7 relative, evaluated in
        // f32 — two multiply-adds fewer than the exact path's degree-5 p.
        let mut p = S::splat(0.008_312_525);
        p = S::fma(p, r, S::splat(0.041_890_115));
        p = S::fma(p, r, S::splat(0.166_671_14));
        p = S::fma(p, r, S::splat(0.499_992_3));
        let y = S::add(S::fma(p, S::mul(r, r), r), S::splat(1.0));
        S::ldexp(y, n)
    }
}

/// σ(x) = 1 / (1 + e^-x).
#[inline(always)]
pub(crate) unsafe fn sigmoid<S: Elem>(x: S::V) -> S::V {
    // SAFETY: as `exp`.
    unsafe { S::recip(S::add(S::splat(1.0), exp::<S>(S::sub(S::zero(), x)))) }
}

/// tanh(x) = 1 − 2 / (e^{2x} + 1), on the signed argument (no separate form near 0: its
/// absolute error stays a few ulps of 1 there, which is what a gate or `h = o·tanh(c)` needs;
/// the relative error grows as |x| → 0).
#[inline(always)]
pub(crate) unsafe fn tanh<S: Elem>(x: S::V) -> S::V {
    // SAFETY: as `exp`.
    unsafe {
        let q = S::recip(S::add(exp::<S>(S::add(x, x)), S::splat(1.0)));
        S::fma(S::splat(-2.0), q, S::splat(1.0))
    }
}

/// A loop body of [`lanes`]: `I` input vectors to `O` output vectors. (A trait with
/// `#[inline(always)]` methods rather than a closure: a closure is not inlined into the
/// `#[target_feature]` entry point reliably, and then neither are the intrinsics it calls.)
trait Body<S: Elem, const I: usize, const O: usize> {
    /// # Safety
    /// A CPU with S's features.
    unsafe fn apply(&self, x: [S::V; I]) -> [S::V; O];
}

/// Runs `f` over `n` elements: `I` inputs read and `O` outputs written, `S::LANES` at a time,
/// the tail through zero-padded copies. An output may be the same pointer as an input (each
/// vector is read before it is written).
///
/// # Safety
/// A CPU with S's features; every pointer valid for `n` floats (reads, or writes for `outs`);
/// `S::LANES ≤ 16`.
#[inline(always)]
unsafe fn lanes<S: Elem, const I: usize, const O: usize>(
    n: usize,
    ins: [*const f32; I],
    outs: [*mut f32; O],
    f: impl Body<S, I, O>,
) {
    let w = S::LANES;
    let mut j = 0;
    // SAFETY: j + w ≤ n, so every load and store is inside the n floats the caller vouches for.
    unsafe {
        while j + w <= n {
            let mut x = [S::zero(); I];
            for k in 0..I {
                x[k] = S::load(ins[k].add(j));
            }
            let y = f.apply(x);
            for k in 0..O {
                S::store(outs[k].add(j), y[k]);
            }
            j += w;
        }
    }
    let rem = n - j;
    if rem == 0 {
        return;
    }
    let mut bin = [[0.0f32; 16]; I];
    let mut bout = [[0.0f32; 16]; O];
    // SAFETY: `rem` < w ≤ 16 floats from offset j are inside the caller's n; the buffers hold 16.
    unsafe {
        let mut x = [S::zero(); I];
        for k in 0..I {
            core::ptr::copy_nonoverlapping(ins[k].add(j), bin[k].as_mut_ptr(), rem);
            x[k] = S::load(bin[k].as_ptr());
        }
        let y = f.apply(x);
        for k in 0..O {
            S::store(bout[k].as_mut_ptr(), y[k]);
            core::ptr::copy_nonoverlapping(bout[k].as_ptr(), outs[k].add(j), rem);
        }
    }
}

/// [`Body`]: σ of one vector.
struct Sigmoid;
impl<S: Elem> Body<S, 1, 1> for Sigmoid {
    #[inline(always)]
    unsafe fn apply(&self, [v]: [S::V; 1]) -> [S::V; 1] {
        // SAFETY: as the caller's.
        [unsafe { sigmoid::<S>(v) }]
    }
}

/// [`Body`]: tanh of one vector.
struct Tanh;
impl<S: Elem> Body<S, 1, 1> for Tanh {
    #[inline(always)]
    unsafe fn apply(&self, [v]: [S::V; 1]) -> [S::V; 1] {
        // SAFETY: as the caller's.
        [unsafe { tanh::<S>(v) }]
    }
}

/// σ on the `i, f, o` blocks and tanh on the `g` block of `z [4h]`, in place.
///
/// # Safety
/// A CPU with S's features. Panics (before any vector work) when `z` is shorter than `4h`.
#[inline(always)]
pub(crate) unsafe fn activate<S: Elem>(z: &mut [f32], h: usize) {
    let z = &mut z[..4 * h];
    let p = z.as_mut_ptr();
    // SAFETY: the blocks [0, 2h), [2h, 3h), [3h, 4h) lie inside z (4h floats).
    unsafe {
        lanes::<S, 1, 1>(2 * h, [p], [p], Sigmoid);
        lanes::<S, 1, 1>(h, [p.add(2 * h)], [p.add(2 * h)], Tanh);
        lanes::<S, 1, 1>(h, [p.add(3 * h)], [p.add(3 * h)], Sigmoid);
    }
}

/// [`Body`]: the forward cell step from `[z_i, z_f, z_g, z_o, c_prev]` to
/// `[i, f, g, o, c, h]`.
struct CellForward;
impl<S: Elem> Body<S, 5, 6> for CellForward {
    #[inline(always)]
    unsafe fn apply(&self, [zi, zf, zg, zo, c0]: [S::V; 5]) -> [S::V; 6] {
        // SAFETY: as the caller's.
        unsafe {
            let (i, f) = (sigmoid::<S>(zi), sigmoid::<S>(zf));
            let (g, o) = (tanh::<S>(zg), sigmoid::<S>(zo));
            let c = S::fma(f, c0, S::mul(i, g));
            [i, f, g, o, c, S::mul(o, tanh::<S>(c))]
        }
    }
}

/// One sequence's forward step in one pass: activates `z [4h]` in place and writes
/// `c_next = f ⊙ c_prev + i ⊙ g`, `h_next = o ⊙ tanh(c_next)` (all `[h]`).
///
/// # Safety
/// A CPU with S's features. Panics (before any vector work) on a short slice.
#[inline(always)]
pub(crate) unsafe fn cell_step<S: Elem>(
    z: &mut [f32],
    c_prev: &[f32],
    c_next: &mut [f32],
    h_next: &mut [f32],
    h: usize,
) {
    let z = &mut z[..4 * h];
    let (cp, cn, hn) = (&c_prev[..h], &mut c_next[..h], &mut h_next[..h]);
    let p = z.as_mut_ptr();
    // SAFETY: the four gate blocks lie inside z (4h floats); cp, cn, hn hold h floats each and
    // are distinct from z (borrow rules).
    unsafe {
        let (pi, pf, pg, po) = (p, p.add(h), p.add(2 * h), p.add(3 * h));
        lanes::<S, 5, 6>(
            h,
            [pi, pf, pg, po, cp.as_ptr()],
            [pi, pf, pg, po, cn.as_mut_ptr(), hn.as_mut_ptr()],
            CellForward,
        );
    }
}

/// [`Body`]: the backward cell step from the gates `[i, f, g, o]`, `c_prev`, `c_t`, `dh` and
/// `dc` to `[di, df, dg, do, dc_prev]`.
struct CellBack;
impl<S: Elem> Body<S, 8, 5> for CellBack {
    #[inline(always)]
    unsafe fn apply(&self, [i, f, g, o, c0, c1, dh, dc]: [S::V; 8]) -> [S::V; 5] {
        // SAFETY: as the caller's.
        unsafe {
            let one = S::splat(1.0);
            let tc = tanh::<S>(c1);
            let dc = S::fma(S::mul(dh, o), S::fma(S::sub(S::zero(), tc), tc, one), dc);
            let d_o = S::mul(dh, tc);
            [
                S::mul(S::mul(dc, g), S::mul(i, S::sub(one, i))),
                S::mul(S::mul(dc, c0), S::mul(f, S::sub(one, f))),
                S::mul(S::mul(dc, i), S::fma(S::sub(S::zero(), g), g, one)),
                S::mul(d_o, S::mul(o, S::sub(one, o))),
                S::mul(dc, f),
            ]
        }
    }
}

/// [`Body`]: [`CellBack`] with the gradient from the layer above added to `dh` (inputs
/// `[i, f, g, o, c_prev, c_t, dh, above, dc]`).
struct CellBackAbove;
impl<S: Elem> Body<S, 9, 5> for CellBackAbove {
    #[inline(always)]
    unsafe fn apply(&self, [i, f, g, o, c0, c1, dh, up, dc]: [S::V; 9]) -> [S::V; 5] {
        // SAFETY: as the caller's.
        unsafe {
            <CellBack as Body<S, 8, 5>>::apply(&CellBack, [i, f, g, o, c0, c1, S::add(dh, up), dc])
        }
    }
}

/// One sequence's backward step (the exact [`tinylstm::kernels::cell_backward`]'s formulas,
/// with this module's tanh and fused multiply-adds).
///
/// # Safety
/// A CPU with S's features. Panics (before any vector work) on a short slice.
#[inline(always)]
pub(crate) unsafe fn cell_backward<S: Elem>(step: CellBackward<'_>, h: usize) {
    let z = &mut step.z[..4 * h];
    let (cp, cc, dh) = (&step.c_prev[..h], &step.c_cur[..h], &step.dh[..h]);
    let dc = &mut step.dc[..h];
    let above = step.above.map(|a| &a[..h]);
    let p = z.as_mut_ptr();
    // SAFETY: the four gate blocks lie inside z (4h floats); the other slices hold h floats
    // each; z and dc are written, each vector after it is read.
    unsafe {
        let (pi, pf, pg, po) = (p, p.add(h), p.add(2 * h), p.add(3 * h));
        let dcm = dc.as_mut_ptr();
        let outs = [pi, pf, pg, po, dcm];
        let (cp, cc, dh, dcp) = (cp.as_ptr(), cc.as_ptr(), dh.as_ptr(), dcm as *const f32);
        match above {
            None => lanes::<S, 8, 5>(h, [pi, pf, pg, po, cp, cc, dh, dcp], outs, CellBack),
            Some(a) => {
                let ins = [pi as *const f32, pf, pg, po, cp, cc, dh, a.as_ptr(), dcp];
                lanes::<S, 9, 5>(h, ins, outs, CellBackAbove)
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Elem;
    use crate::simd::x86::{Avx2, Avx512};
    use core::arch::x86_64::*;

    // SAFETY: every method is compiled with `avx512f`, which the trait contract requires.
    unsafe impl Elem for Avx512 {
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn sub(a: __m512, b: __m512) -> __m512 {
            _mm512_sub_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            _mm512_mul_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn clamp(x: __m512, lo: __m512, hi: __m512) -> __m512 {
            // vmaxps/vminps return the second operand when either is NaN: `x` passes through.
            _mm512_min_ps(hi, _mm512_max_ps(lo, x))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn recip(d: __m512) -> __m512 {
            let r = _mm512_rcp14_ps(d);
            _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn ldexp(y: __m512, n: __m512) -> __m512 {
            _mm512_scalef_ps(y, n)
        }
    }

    // SAFETY: every method is compiled with `avx2,fma`, which the trait contract requires.
    unsafe impl Elem for Avx2 {
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn sub(a: __m256, b: __m256) -> __m256 {
            _mm256_sub_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            _mm256_mul_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn clamp(x: __m256, lo: __m256, hi: __m256) -> __m256 {
            // vmaxps/vminps return the second operand when either is NaN: `x` passes through.
            _mm256_min_ps(hi, _mm256_max_ps(lo, x))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn recip(d: __m256) -> __m256 {
            let r = _mm256_rcp_ps(d);
            _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0)))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn ldexp(y: __m256, n: __m256) -> __m256 {
            // Adds n to the exponent field (y is in [0.7, 1.5], so the result stays finite; at
            // n = −126 it may land among the subnormals as a tiny wrong value, below 2e-38).
            let e = _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n));
            _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e))
        }
    }
}
