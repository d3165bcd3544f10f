//! The FMA peak of one core, measured: a loop of independent fused multiply-adds (12 chains,
//! more than latency × ports of any current x86-64 core), on 512-bit (AVX-512) and 256-bit
//! (AVX2+FMA) vectors, as this CPU supports them:
//! `cargo run --release -p tinylstm-fast --example fma_peak`. The roofline of BENCHMARKS.md
//! ("Host: fast path") compares the kernels with these figures.

use std::time::Instant;

/// Runs `f` (which does `flop` floating-point operations) for ≈ 0.5 s, five times; the best
/// GFLOP/s (the least disturbed by other processes on a shared machine).
fn best_gflops(flop: f64, mut f: impl FnMut() -> f32) -> f64 {
    let mut best = 0.0f64;
    let mut sink = 0.0f32;
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0u32;
        while t.elapsed().as_secs_f64() < 0.5 {
            sink += f();
            n += 1;
        }
        best = best.max(flop * f64::from(n) / t.elapsed().as_secs_f64() / 1e9);
    }
    std::hint::black_box(sink);
    best
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Iterations of the FMA loop per call.
    pub const ITERS: usize = 100_000;
    /// Independent accumulator chains.
    pub const CHAINS: usize = 12;

    /// `ITERS × CHAINS` 16-lane FMAs.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512() -> f32 {
        let m = _mm512_set1_ps(0.999_999);
        let a = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..ITERS {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, m, a);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }

    /// `ITERS × CHAINS` 8-lane FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2() -> f32 {
        let m = _mm256_set1_ps(0.999_999);
        let a = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..ITERS {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, m, a);
            }
        }
        let mut out = [0.0f32; 8];
        let mut s = _mm256_setzero_ps();
        for x in acc {
            s = _mm256_add_ps(s, x);
        }
        // SAFETY: `out` holds 8 floats, the store's width.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        let fmas = (x86::ITERS * x86::CHAINS) as f64;
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked on the line above).
            let g = best_gflops(fmas * 32.0, || unsafe { x86::avx512() });
            println!("avx512 fma: {g:.1} GFLOP/s per core (32 FLOP per instruction)");
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked on the line above).
            let g = best_gflops(fmas * 16.0, || unsafe { x86::avx2() });
            println!("avx2 fma:   {g:.1} GFLOP/s per core (16 FLOP per instruction)");
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("no FMA loop for this architecture");
}
