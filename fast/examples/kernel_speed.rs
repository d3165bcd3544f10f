//! GFLOP/s of the exact and fast kernels on the benchmark models' shapes, one core:
//! `cargo run --release -p tinylstm-fast --example kernel_speed`. (The criterion benches in
//! `benches/` are the reference figures; this is the quick look used while tuning.)

use std::hint::black_box;
use std::time::Instant;
use tinylstm::kernels::{Exact, Kernels};
use tinylstm_fast::{Fast, Isa};

fn gflops(flop: f64, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed().as_secs_f64() < 0.3 {
        f();
        n += 1;
    }
    flop * f64::from(n) / t.elapsed().as_secs_f64() / 1e9
}

fn row(name: &str, kern: &impl Kernels, op: char, m: usize, n: usize, k: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let flop = 2.0 * (m * n * k) as f64;
    let _ = name;
    gflops(flop, || {
        match op {
            'n' => kern.gemm_nn(m, n, k, black_box(&a), black_box(&b), &mut c),
            't' => kern.gemm_tn(m, n, k, black_box(&a), black_box(&b), &mut c),
            _ => kern.gemm_nt(m, n, k, black_box(&a), black_box(&b), &mut c),
        }
        black_box(&mut c);
    })
}

fn main() {
    let shapes: &[(&str, char, usize, usize, usize)] = &[
        ("seed l1 x·W", 'n', 3200, 512, 64),
        ("seed l1 h·U B16", 'n', 16, 512, 128),
        ("seed l1 h·U B32", 'n', 32, 512, 128),
        ("seed l1 h·U B1", 'n', 1, 512, 128),
        ("seed l2 x·W", 'n', 3200, 256, 128),
        ("seed l2 h·U B16", 'n', 16, 256, 64),
        ("mcu x·W", 'n', 3200, 128, 6),
        ("mcu h·U B16", 'n', 16, 128, 32),
        ("seed l1 dW", 't', 64, 512, 3200),
        ("seed l1 dU", 't', 128, 512, 3200),
        ("seed l2 dW", 't', 128, 256, 3200),
        ("mcu dW", 't', 6, 128, 3200),
        ("mcu dU", 't', 32, 128, 3200),
        ("seed l1 dz·Uᵀ B16", 'x', 16, 128, 512),
        ("seed l1 dz·Wᵀ", 'x', 3200, 64, 512),
        ("seed l2 dz·Wᵀ", 'x', 3200, 128, 256),
        ("mcu dz·Uᵀ B16", 'x', 16, 32, 128),
    ];
    let fast = Fast::new();
    let isas: Vec<Fast> = Isa::ALL.into_iter().filter_map(Fast::with_isa).collect();
    print!("{:<20} {:>16} {:>8}", "shape", "m×n×k", "exact");
    for f in &isas {
        print!(" {:>9}", f.isa().name());
    }
    println!("   (GFLOP/s, one core; default fast = {})", fast.isa().name());
    for &(name, op, m, n, k) in shapes {
        print!("{name:<20} {:>16} {:>8.1}", format!("{m}×{n}×{k}"), row(name, &Exact, op, m, n, k));
        for f in &isas {
            print!(" {:>9.1}", row(name, f, op, m, n, k));
        }
        println!();
    }
}
