//! The FMA peak of one core, measured: a loop of independent fused multiply-adds (12 chains,
//! more than latency × ports of any current x86-64 core), on 512-bit (AVX-512) and 256-bit
//! (AVX2+FMA) vectors, as this CPU supports them, per second of the thread's CPU time:
//! `cargo run --release -p tinylstm-fast --example fma_peak`. The roofline of BENCHMARKS.md
//! ("Host: fast path") compares the kernels with these figures.

use std::time::Instant;

/// Nanoseconds this thread has run on a CPU (Linux: `/proc/thread-self/schedstat`), so that
/// the figure does not depend on how many other processes share the machine; wall-clock time
/// elsewhere.
fn cpu_ns(wall: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| wall.elapsed().as_secs_f64() * 1e9)
}

/// Runs `f` (which does `flop` floating-point operations) for ≈ 0.5 s, five times; the best
/// GFLOP/s per second of this thread's CPU time.
fn best_gflops(flop: f64, mut f: impl FnMut() -> f32) -> f64 {
    let mut best = 0.0f64;
    let mut sink = 0.0f32;
    let origin = Instant::now();
    for _ in 0..5 {
        let t = Instant::now();
        let c0 = cpu_ns(origin);
        let mut n = 0u32;
        while t.elapsed().as_secs_f64() < 0.5 {
            sink += f();
            n += 1;
        }
        let ns = cpu_ns(origin) - c0;
        best = best.max(flop * f64::from(n) / ns);
    }
    std::hint::black_box(sink);
    best
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// Iterations of the FMA loop per call.
    pub const ITERS: usize = 100_000;
    /// Independent accumulator chains.
    pub const CHAINS: usize = 12;

    /// `ITERS × CHAINS` 16-lane FMAs.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512() -> f32 {
        // Inputs through `black_box`, one start value per chain: nothing to fold or merge.
        let m = _mm512_set1_ps(black_box(0.999_999));
        let a = _mm512_set1_ps(black_box(1e-7));
        let acc: [__m512; CHAINS] =
            core::array::from_fn(|i| _mm512_set1_ps(black_box(1.0 + i as f32)));
        // Twelve named registers (an array indexed in the loop may live in memory).
        let [mut x0, mut x1, mut x2, mut x3, mut x4, mut x5, mut x6, mut x7, mut x8, mut x9, mut x10, mut x11] =
            acc;
        for _ in 0..black_box(ITERS) {
            x0 = _mm512_fmadd_ps(x0, m, a);
            x1 = _mm512_fmadd_ps(x1, m, a);
            x2 = _mm512_fmadd_ps(x2, m, a);
            x3 = _mm512_fmadd_ps(x3, m, a);
            x4 = _mm512_fmadd_ps(x4, m, a);
            x5 = _mm512_fmadd_ps(x5, m, a);
            x6 = _mm512_fmadd_ps(x6, m, a);
            x7 = _mm512_fmadd_ps(x7, m, a);
            x8 = _mm512_fmadd_ps(x8, m, a);
            x9 = _mm512_fmadd_ps(x9, m, a);
            x10 = _mm512_fmadd_ps(x10, m, a);
            x11 = _mm512_fmadd_ps(x11, m, a);
        }
        let acc = [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11];
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }

    /// `ITERS × CHAINS` 8-lane FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2() -> f32 {
        // Inputs through `black_box`, one start value per chain: nothing to fold or merge.
        let m = _mm256_set1_ps(black_box(0.999_999));
        let a = _mm256_set1_ps(black_box(1e-7));
        let acc: [__m256; CHAINS] =
            core::array::from_fn(|i| _mm256_set1_ps(black_box(1.0 + i as f32)));
        // Twelve named registers (an array indexed in the loop may live in memory).
        let [mut x0, mut x1, mut x2, mut x3, mut x4, mut x5, mut x6, mut x7, mut x8, mut x9, mut x10, mut x11] =
            acc;
        for _ in 0..black_box(ITERS) {
            x0 = _mm256_fmadd_ps(x0, m, a);
            x1 = _mm256_fmadd_ps(x1, m, a);
            x2 = _mm256_fmadd_ps(x2, m, a);
            x3 = _mm256_fmadd_ps(x3, m, a);
            x4 = _mm256_fmadd_ps(x4, m, a);
            x5 = _mm256_fmadd_ps(x5, m, a);
            x6 = _mm256_fmadd_ps(x6, m, a);
            x7 = _mm256_fmadd_ps(x7, m, a);
            x8 = _mm256_fmadd_ps(x8, m, a);
            x9 = _mm256_fmadd_ps(x9, m, a);
            x10 = _mm256_fmadd_ps(x10, m, a);
            x11 = _mm256_fmadd_ps(x11, m, a);
        }
        let acc = [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11];
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
