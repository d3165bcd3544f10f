//! Scalar math used by the kernels: `exp`, `tanh`, `sigmoid`, `ln_1p`, `sqrt`.
//!
//! With the default `libm` feature every function is libm's correctly-rounded-or-nearly
//! implementation in pure Rust, so a host, CI and a Cortex-M produce the same bits.
//! With `micromath` (opt-in, takes precedence) `exp` is micromath's fast approximation
//! (relative error around 1e-4) and `tanh`/`sigmoid` are built on it — cheaper on an M4F,
//! but no longer Keras-exact. Without either, `std` is used when enabled.

#[cfg(not(any(feature = "libm", feature = "micromath", feature = "std", test)))]
compile_error!("tinylstm needs one of the features `libm` (default), `micromath` or `std`");

#[cfg(feature = "micromath")]
use micromath::F32Ext as _;

/// `e^x`.
#[inline]
pub fn exp(x: f32) -> f32 {
    #[cfg(feature = "micromath")]
    {
        // micromath's exp misbehaves far outside the range where f32 exp is finite.
        x.clamp(-87.0, 88.0).exp()
    }
    #[cfg(all(not(feature = "micromath"), feature = "libm"))]
    {
        libm::expf(x)
    }
    #[cfg(all(not(feature = "micromath"), not(feature = "libm")))]
    {
        x.exp()
    }
}

/// Hyperbolic tangent.
#[inline]
pub fn tanh(x: f32) -> f32 {
    #[cfg(feature = "micromath")]
    {
        // tanh(x) = 1 - 2 / (e^{2x} + 1), saturating cleanly at both ends.
        1.0 - 2.0 / (exp(2.0 * x) + 1.0)
    }
    #[cfg(all(not(feature = "micromath"), feature = "libm"))]
    {
        libm::tanhf(x)
    }
    #[cfg(all(not(feature = "micromath"), not(feature = "libm")))]
    {
        x.tanh()
    }
}

/// Logistic sigmoid `1 / (1 + e^{-x})`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
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
