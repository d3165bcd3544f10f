//! `dot` and the three GEMM shapes at the sizes the two workloads run them.

use super::{config, values};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use tinylstm::kernels;

/// `(label, m, n, k)`: the seed model (Embedding 64 → LSTM 128 → LSTM 64) and the MCU model
/// (6 → LSTM 32) at T = 100, B = 32, plus the batch-1 shapes a device runs.
const NN: &[(&str, usize, usize, usize)] = &[
    ("seed l1 x·W (T·B rows)", 3200, 512, 64),
    ("seed l1 h·U (B rows)", 32, 512, 128),
    ("seed l2 x·W (T·B rows)", 3200, 256, 128),
    ("seed l2 h·U (B rows)", 32, 256, 64),
    ("seed l1 h·U batch 1", 1, 512, 128),
    ("mcu x·W (T·B rows)", 3200, 128, 6),
    ("mcu h·U (B rows)", 32, 128, 32),
    ("mcu h·U batch 1", 1, 128, 32),
    ("firmware 3→64 h·U batch 1", 1, 256, 64),
];

const NT: &[(&str, usize, usize, usize)] = &[
    ("seed l1 dz·Uᵀ (B rows)", 32, 128, 512),
    ("seed l1 dz·Wᵀ (T·B rows)", 3200, 64, 512),
    ("seed l2 dz·Uᵀ (B rows)", 32, 64, 256),
    ("seed l2 dz·Wᵀ (T·B rows)", 3200, 128, 256),
    ("mcu dz·Uᵀ (B rows)", 32, 32, 128),
    ("firmware dz·Uᵀ batch 1", 1, 64, 256),
];

const TN: &[(&str, usize, usize, usize)] = &[
    ("seed l1 dW = xᵀ·dz", 64, 512, 3200),
    ("seed l1 dU = hᵀ·dz", 128, 512, 3200),
    ("seed l2 dW", 128, 256, 3200),
    ("seed l2 dU", 64, 256, 3200),
    ("mcu dW", 6, 128, 3200),
    ("mcu dU", 32, 128, 3200),
    ("firmware dU (window 20, batch 1)", 64, 256, 20),
];

type Gemm = fn(usize, usize, usize, &[f32], &[f32], &mut [f32]);

fn gemm_group(c: &mut Criterion, name: &str, f: Gemm, shapes: &[(&str, usize, usize, usize)]) {
    let mut g = c.benchmark_group(format!("{name} (elements = FLOP)"));
    for &(label, m, n, k) in shapes {
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let mut out = values(m * n, 3);
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_with_input(BenchmarkId::new(label, format!("{m}x{n}x{k}")), &(), |bch, _| {
            bch.iter(|| f(m, n, k, black_box(&a), black_box(&b), black_box(&mut out)))
        });
    }
    g.finish();
}

fn dot(c: &mut Criterion) {
    let mut g = c.benchmark_group("dot (elements = FLOP)");
    for n in [32usize, 128, 512, 4096] {
        let a = values(n, 4);
        let b = values(n, 5);
        g.throughput(Throughput::Elements(2 * n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bch, _| {
            bch.iter(|| kernels::dot(black_box(&a), black_box(&b)))
        });
    }
    g.finish();
}

fn gemm_nn(c: &mut Criterion) {
    gemm_group(c, "gemm_nn", kernels::gemm_nn, NN);
}

fn gemm_nt(c: &mut Criterion) {
    gemm_group(c, "gemm_nt", kernels::gemm_nt, NT);
}

fn gemm_tn(c: &mut Criterion) {
    gemm_group(c, "gemm_tn", kernels::gemm_tn, TN);
}

criterion_group! {
    name = benches;
    config = config();
    targets = dot, gemm_nn, gemm_nt, gemm_tn
}
