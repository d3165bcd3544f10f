//! One SIMD vector abstraction and its instruction sets: AVX-512F, AVX2 + FMA (x86-64), NEON
//! (aarch64) and a portable fallback. The kernels in [`crate::generic`] are written once over
//! [`Simd`] and instantiated per instruction set inside `#[target_feature]` entry points.

/// A vector of `LANES` f32 and the operations the kernels use.
///
/// # Safety
/// Every method may only run on a CPU that has the implementation's target features (the
/// dispatch in [`crate::Isa`] checks them at run time before any entry point of that set is
/// called). `load` reads and `store` writes `LANES` consecutive floats at the pointer, which
/// must be valid for that many (no alignment is required).
pub(crate) unsafe trait Simd {
    /// f32 lanes per vector.
    const LANES: usize;
    /// The vector type.
    type V: Copy;
    /// All lanes 0.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` floats from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` floats to `p` (unaligned).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a · b + c` (fused where the set has FMA).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The sum of the lanes (a fixed order per instruction set).
    unsafe fn hsum(v: Self::V) -> f32;
}

/// Portable fallback: four lanes as an array, multiply then add (not fused: without FMA
/// hardware `f32::mul_add` is a slow library call). LLVM vectorises it to the baseline SIMD.
#[derive(Debug)]
pub(crate) struct Portable;

// SAFETY: plain Rust on every target; `load`/`store` touch exactly `LANES` floats.
unsafe impl Simd for Portable {
    const LANES: usize = 4;
    type V = [f32; 4];
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; 4]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 4]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: the caller guarantees 4 readable floats at `p` (trait contract).
        unsafe { core::ptr::read_unaligned(p.cast::<[f32; 4]>()) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: the caller guarantees 4 writable floats at `p` (trait contract).
        unsafe { core::ptr::write_unaligned(p.cast::<[f32; 4]>(), v) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        [a[0] * b[0] + c[0], a[1] * b[1] + c[1], a[2] * b[2] + c[2], a[3] * b[3] + c[3]]
    }
    #[inline(always)]
    unsafe fn hsum(v: Self::V) -> f32 {
        (v[0] + v[2]) + (v[1] + v[3])
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::Simd;
    use core::arch::x86_64::*;

    /// AVX-512F: 16 lanes, 32 registers.
    #[derive(Debug)]
    pub(crate) struct Avx512;

    // SAFETY: every method is compiled with `avx512f` and the trait contract requires the CPU
    // to have it; loads and stores are unaligned and touch exactly 16 floats.
    unsafe impl Simd for Avx512 {
        const LANES: usize = 16;
        type V = __m512;
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: 16 readable floats at `p` (trait contract); loadu needs no alignment.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: 16 writable floats at `p` (trait contract); storeu needs no alignment.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn hsum(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
    }

    /// AVX2 + FMA: 8 lanes, 16 registers.
    #[derive(Debug)]
    pub(crate) struct Avx2;

    // SAFETY: every method is compiled with `avx2,fma` and the trait contract requires the CPU
    // to have them; loads and stores are unaligned and touch exactly 8 floats.
    unsafe impl Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: 8 readable floats at `p` (trait contract); loadu needs no alignment.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: 8 writable floats at `p` (trait contract); storeu needs no alignment.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) mod arm {
    use super::Simd;
    use core::arch::aarch64::*;

    /// NEON (always present on aarch64): 4 lanes, 32 registers.
    #[derive(Debug)]
    pub(crate) struct Neon;

    // SAFETY: NEON is part of the aarch64 baseline; loads and stores touch exactly 4 floats.
    unsafe impl Simd for Neon {
        const LANES: usize = 4;
        type V = float32x4_t;
        #[inline(always)]
        unsafe fn zero() -> float32x4_t {
            // SAFETY: NEON is always available on aarch64.
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> float32x4_t {
            // SAFETY: NEON is always available on aarch64.
            unsafe { vdupq_n_f32(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            // SAFETY: 4 readable floats at `p` (trait contract).
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            // SAFETY: 4 writable floats at `p` (trait contract).
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            // SAFETY: NEON is always available on aarch64.
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        unsafe fn hsum(v: float32x4_t) -> f32 {
            // SAFETY: NEON is always available on aarch64.
            unsafe { vaddvq_f32(v) }
        }
    }
}
