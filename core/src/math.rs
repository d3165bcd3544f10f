//! Scalar math used by the kernels: `exp`, `tanh`, `sigmoid`, `ln_1p`, `sqrt`, and slice forms
//! of the two activations.
//!
//! **Activations.** [`sigmoid`] and [`tanh`] (and their slice forms [`sigmoid_in_place`],
//! [`tanh_in_place`]) are this crate's own: a Cody–Waite range reduction and a polynomial, using
//! only `+ − × ÷`, comparisons and bit moves. IEEE 754 makes each of those operations exact to
//! the bit on every target, so a host (scalar or SIMD) and a Cortex-M4F produce the same bits,
//! and the code has no branches on data, so a loop over a slice auto-vectorises. Accuracy: within
//! 4 ulp of the true value over the whole range (tested against `f64` in this module); NaN in,
//! NaN out; ±∞ saturate to the limits.
//!
//! # Which library: one rule
//!
//! * **Library functions** — [`exp`], [`ln`], [`ln_1p`], [`sqrt`], [`powf`], [`cos`] (softmax,
//!   losses, Adam, schedules, initialisers) — come from the first enabled of **`libm`, then
//!   `micromath`, then `std`**. With the default `libm` they are libm's pure-Rust
//!   implementations, so a host, CI and a Cortex-M produce the same bits.
//! * **Activations** — [`sigmoid`], [`tanh`] and their slice forms — are this crate's own
//!   polynomials (above) in every build, unless **`micromath`** is on: then they are
//!   `1/(1 + e^{−x})` and `1 − 2/(e^{2x} + 1)` over micromath's fast `exp` (relative error
//!   around 1e-4), faster on a device and no longer Keras-exact.
//!
//! So `micromath` alone (`--no-default-features --features micromath`) makes everything
//! micromath's; `libm` + `micromath` keeps libm's accuracy for the optimizer and the losses and
//! speeds up only the activations; `libm` alone (the default) is exact everywhere.

#[cfg(not(any(feature = "libm", feature = "micromath", feature = "std", test)))]
compile_error!("tinylstm needs one of the features `libm` (default), `micromath` or `std`");

#[cfg(feature = "micromath")]
use micromath::F32Ext as _;

/// `e^x` (a library function: `libm`, else `micromath`, else `std`; see the module docs).
#[inline]
pub fn exp(x: f32) -> f32 {
    #[cfg(feature = "libm")]
    {
        libm::expf(x)
    }
    #[cfg(all(not(feature = "libm"), feature = "micromath"))]
    {
        micromath_exp(x)
    }
    #[cfg(all(not(feature = "libm"), not(feature = "micromath")))]
    {
        x.exp()
    }
}

/// micromath's fast `e^x`, clamped to where `f32` `e^x` is finite and normal (micromath's
/// approximation misbehaves far outside it): the base of the `micromath` activations.
#[cfg(feature = "micromath")]
#[inline]
fn micromath_exp(x: f32) -> f32 {
    x.clamp(-87.0, 88.0).exp()
}

/// `e^x` for the activations: clamped to `[e^-87, e^88]` (the range where `2^n` is a normal
/// float), NaN propagated. Branch-free, exact-IEEE operations only (see the module docs).
///
/// Method: `n = round(x·log2 e)` by the `1.5·2^23` rounding trick, `r = x − n·ln 2` in two
/// parts (Cody–Waite: `n·C1` is exact because `C1` has 9 significant bits), `e^r` by the
/// degree-7 polynomial of Cephes `expf` on `|r| ≤ ln2/2`, and `2^n` built from its bits.
#[inline(always)]
pub fn exp_clamped(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4; // 355/512, exactly
    const C2: f32 = -2.121_944_4e-4; // ln 2 − C1
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23
                                     // `if` (not `max`/`min`) so that NaN passes through. A scalar FPU tests the common case
                                     // (|x| ≤ 87) once and clamps out of line; SIMD clamps every lane. Same values either way.
    let clamp = |x: f32| {
        let x = if x < -87.0 { -87.0 } else { x };
        if x > 88.0 {
            88.0
        } else {
            x
        }
    };
    #[cfg(target_arch = "arm")]
    let x = if f32::from_bits(x.to_bits() & 0x7FFF_FFFF) <= 87.0 { x } else { clamp(x) };
    #[cfg(not(target_arch = "arm"))]
    let x = clamp(x);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * C1) - n * C2;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e_r = (p * (r * r) + r) + 1.0;
    // t's low mantissa bits hold n (|n| ≤ 127): 2^n has exponent field n + 127.
    let scale = f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23);
    e_r * scale
}

/// Hyperbolic tangent (an activation: the crate's own, or micromath's; see the module docs).
#[inline]
pub fn tanh(x: f32) -> f32 {
    #[cfg(feature = "micromath")]
    {
        // tanh(x) = 1 - 2 / (e^{2x} + 1), saturating cleanly at both ends.
        1.0 - 2.0 / (micromath_exp(2.0 * x) + 1.0)
    }
    #[cfg(not(feature = "micromath"))]
    {
        tanh_poly(x)
    }
}

/// The crate's own tanh: an odd Taylor polynomial (to `x^13`) below `|x| = 0.4`, where
/// `1 − 2/(e^{2|x|} + 1)` would lose digits to cancellation, that formula above.
#[cfg(not(feature = "micromath"))]
#[inline(always)]
fn tanh_poly(x: f32) -> f32 {
    let sign = x.to_bits() & 0x8000_0000;
    let ax = f32::from_bits(x.to_bits() & 0x7FFF_FFFF);
    let big = |ax: f32| 1.0 - 2.0 / (exp_clamped(2.0 * ax) + 1.0);
    let small = |ax: f32| {
        let x2 = ax * ax;
        let mut p = 21_844.0 / 6_081_075.0;
        p = p * x2 - 1_382.0 / 155_925.0;
        p = p * x2 + 62.0 / 2_835.0;
        p = p * x2 - 17.0 / 315.0;
        p = p * x2 + 2.0 / 15.0;
        p = p * x2 - 1.0 / 3.0;
        ax + ax * (x2 * p)
    };
    // With SIMD both forms are computed and one selected (the loop vectorises); a scalar FPU
    // computes only the one it needs. Same bits either way.
    #[cfg(not(target_arch = "arm"))]
    let magnitude = {
        let (s, b) = (small(ax), big(ax));
        if ax < 0.4 {
            s
        } else {
            b
        }
    };
    #[cfg(target_arch = "arm")]
    let magnitude = if ax < 0.4 { small(ax) } else { big(ax) };
    // Both forms are ≥ 0 (or NaN): put x's sign back.
    f32::from_bits(magnitude.to_bits() | sign)
}

/// Logistic sigmoid `1 / (1 + e^{-x})` (an activation; see the module docs).
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    #[cfg(feature = "micromath")]
    {
        1.0 / (1.0 + micromath_exp(-x))
    }
    #[cfg(not(feature = "micromath"))]
    {
        1.0 / (1.0 + exp_clamped(-x))
    }
}

/// Applies [`sigmoid`] to every element (vectorises on targets with SIMD).
#[inline]
pub fn sigmoid_in_place(xs: &mut [f32]) {
    for v in xs {
        *v = sigmoid(*v);
    }
}

/// Applies [`tanh`] to every element (vectorises on targets with SIMD).
#[inline]
pub fn tanh_in_place(xs: &mut [f32]) {
    for v in xs {
        *v = tanh(*v);
    }
}

/// `ln(1 + x)`, accurate for small `x`.
#[inline]
pub fn ln_1p(x: f32) -> f32 {
    #[cfg(feature = "libm")]
    {
        libm::log1pf(x)
    }
    #[cfg(all(not(feature = "libm"), feature = "micromath"))]
    {
        (1.0 + x).ln()
    }
    #[cfg(all(not(feature = "libm"), not(feature = "micromath")))]
    {
        x.ln_1p()
    }
}

/// Natural logarithm.
#[inline]
pub fn ln(x: f32) -> f32 {
    #[cfg(feature = "libm")]
    {
        libm::logf(x)
    }
    #[cfg(all(not(feature = "libm"), feature = "micromath"))]
    {
        x.ln()
    }
    #[cfg(all(not(feature = "libm"), not(feature = "micromath")))]
    {
        x.ln()
    }
}

/// Square root (IEEE-exact in every configuration but micromath-only).
#[inline]
pub fn sqrt(x: f32) -> f32 {
    #[cfg(feature = "libm")]
    {
        libm::sqrtf(x)
    }
    #[cfg(all(not(feature = "libm"), feature = "micromath"))]
    {
        x.sqrt()
    }
    #[cfg(all(not(feature = "libm"), not(feature = "micromath")))]
    {
        x.sqrt()
    }
}

/// `x^y`.
#[inline]
pub fn powf(x: f32, y: f32) -> f32 {
    #[cfg(feature = "libm")]
    {
        libm::powf(x, y)
    }
    #[cfg(all(not(feature = "libm"), feature = "micromath"))]
    {
        x.powf(y)
    }
    #[cfg(all(not(feature = "libm"), not(feature = "micromath")))]
    {
        x.powf(y)
    }
}

/// Cosine.
#[inline]
pub fn cos(x: f32) -> f32 {
    #[cfg(feature = "libm")]
    {
        libm::cosf(x)
    }
    #[cfg(all(not(feature = "libm"), feature = "micromath"))]
    {
        x.cos()
    }
    #[cfg(all(not(feature = "libm"), not(feature = "micromath")))]
    {
        x.cos()
    }
}

#[cfg(all(test, not(feature = "micromath")))]
mod tests {
    use super::*;

    /// Distance in units in the last place between `a` and the f32 nearest to `exact`.
    fn ulps(a: f32, exact: f64) -> u32 {
        let e = exact as f32;
        let key = |v: f32| {
            let b = v.to_bits() as i32;
            if b < 0 {
                i32::MIN - b
            } else {
                b
            }
        };
        key(a).abs_diff(key(e))
    }

    /// 400 001 points over `[lo, hi]`.
    fn grid(lo: f32, hi: f32) -> impl Iterator<Item = f32> {
        (0..=400_000).map(move |i| lo + (hi - lo) * (i as f32 / 400_000.0))
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let worst =
            grid(-87.0, 88.0).map(|x| ulps(exp_clamped(x), f64::from(x).exp())).max().unwrap();
        assert!(worst <= 2, "worst {worst} ulp");
    }

    #[test]
    fn tanh_is_within_four_ulp_of_f64() {
        // Dense near zero, where the small-|x| polynomial and the cancellation-prone formula meet.
        let worst = grid(-1.0, 1.0)
            .chain(grid(-12.0, 12.0))
            .chain(grid(-1e-3, 1e-3))
            .map(|x| ulps(tanh(x), f64::from(x).tanh()))
            .max()
            .unwrap();
        assert!(worst <= 4, "worst {worst} ulp");
        assert_eq!(tanh(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh(1e-30), 1e-30);
    }

    #[test]
    fn sigmoid_is_within_four_ulp_of_f64() {
        let worst = grid(-88.0, 30.0)
            .map(|x| ulps(sigmoid(x), 1.0 / (1.0 + (-f64::from(x)).exp())))
            .max()
            .unwrap();
        assert!(worst <= 4, "worst {worst} ulp");
    }

    #[test]
    fn activations_saturate_and_propagate_nan() {
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert!(sigmoid(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh(1e4), 1.0);
        assert!(sigmoid(f32::NAN).is_nan());
        assert!(tanh(f32::NAN).is_nan());
        assert!(exp_clamped(f32::NAN).is_nan());
    }

    #[test]
    fn slice_forms_equal_the_scalar_forms() {
        let xs: [f32; 37] = core::array::from_fn(|i| (i as f32 - 18.0) * 0.61);
        let (mut s, mut t) = (xs, xs);
        sigmoid_in_place(&mut s);
        tanh_in_place(&mut t);
        for i in 0..xs.len() {
            assert_eq!(s[i].to_bits(), sigmoid(xs[i]).to_bits());
            assert_eq!(t[i].to_bits(), tanh(xs[i]).to_bits());
        }
    }
}
