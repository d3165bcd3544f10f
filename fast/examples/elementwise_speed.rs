//! Nanoseconds per element of the LSTM cell steps (forward: gates, cell update, `tanh(c)`;
//! backward: gate derivatives, `dc`) on the benchmark models' shapes, one core, for each
//! instruction set and both element-wise variants of the fast path and for the exact path:
//! `cargo run --release -p tinylstm-fast --example elementwise_speed`.
//!
//! Timed per second of this thread's CPU time (Linux `/proc/thread-self/schedstat`), best of
//! five, so that a loaded machine changes the figures little.

use std::hint::black_box;
use std::time::Instant;
use tinylstm::kernels::{CellBackward, Kernels};
use tinylstm_fast::{Elementwise, Fast, Isa, KernelPath};

/// Nanoseconds this thread has run on a CPU (wall-clock time where that is not available).
fn cpu_ns(wall: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| wall.elapsed().as_secs_f64() * 1e9)
}

/// The best CPU nanoseconds per call of `f` over five runs of ≈ 0.2 s.
fn best_ns(mut f: impl FnMut()) -> f64 {
    let origin = Instant::now();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let (t, c0) = (Instant::now(), cpu_ns(origin));
        let mut n = 0u32;
        while t.elapsed().as_secs_f64() < 0.2 {
            f();
            n += 1;
        }
        best = best.min((cpu_ns(origin) - c0) / f64::from(n));
    }
    best
}

/// (forward, backward) nanoseconds per element (`rows × h`) of one step of `rows` sequences.
fn measure(kern: KernelPath, rows: usize, h: usize) -> (f64, f64) {
    let z0: Vec<f32> =
        (0..rows * 4 * h).map(|i| ((i * 7919) % 1000) as f32 / 125.0 - 4.0).collect();
    let c_prev: Vec<f32> = (0..rows * h).map(|i| ((i * 31) % 100) as f32 / 50.0 - 1.0).collect();
    let (mut z, mut c, mut hh) = (z0.clone(), vec![0.0; rows * h], vec![0.0; rows * h]);
    let fwd = best_ns(|| {
        z.copy_from_slice(&z0);
        kern.cell_steps(rows, black_box(&mut z), black_box(&c_prev), &mut c, &mut hh, h);
        black_box((&z, &c, &hh));
    });
    let gates = z.clone();
    let (dh, mut dc) = (c_prev.clone(), vec![0.0f32; rows * h]);
    let bwd = best_ns(|| {
        z.copy_from_slice(&gates);
        for r in 0..rows {
            let s = r * h..(r + 1) * h;
            let step = CellBackward {
                z: &mut z[r * 4 * h..(r + 1) * 4 * h],
                c_prev: &c_prev[s.clone()],
                c_cur: &c[s.clone()],
                dh: &dh[s.clone()],
                above: None,
                dc: &mut dc[s],
            };
            kern.cell_backward(step, h);
        }
        black_box((&z, &dc));
    });
    let n = (rows * h) as f64;
    (fwd / n, bwd / n)
}

fn main() {
    let shapes =
        [("mcu B16 H32", 16, 32), ("seed l1 B16 H128", 16, 128), ("seed l2 B16 H64", 16, 64)];
    let mut kerns = vec![KernelPath::Exact];
    for f in Isa::ALL.into_iter().filter_map(Fast::with_isa) {
        kerns.push(KernelPath::Fast(f.with_elementwise(Elementwise::Vector)));
        kerns.push(KernelPath::Fast(f.with_elementwise(Elementwise::Exact)));
    }
    println!("ns per element (forward cell step incl. the copy of z; backward) per CPU second:");
    for (name, rows, h) in shapes {
        for k in &kerns {
            let (f, b) = measure(*k, rows, h);
            println!("{name:<18} {:<40} forward {f:6.3}  backward {b:6.3}", k.describe());
        }
    }
}
