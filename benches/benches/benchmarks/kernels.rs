//! `dot` and the three GEMM shapes at the sizes the two workloads run them: the exact kernels
//! (baseline build), the exact path as `KernelPath::Exact` runs it (compiled for this CPU's
//! widest vectors, chosen at run time: `exact_isa_*`), and the fast path (`fast_*`).

use super::{config, values};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use tinylstm::kernels::{self, Kernels};
use tinylstm_fast::{Fast, KernelPath};

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

type Gemm<'a> = &'a dyn Fn(usize, usize, usize, &[f32], &[f32], &mut [f32]);

fn gemm_group(c: &mut Criterion, name: &str, f: Gemm<'_>, shapes: &[(&str, usize, usize, usize)]) {
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
    gemm_group(c, "gemm_nn", &kernels::gemm_nn, NN);
}

fn gemm_nt(c: &mut Criterion) {
    gemm_group(c, "gemm_nt", &kernels::gemm_nt, NT);
}

fn gemm_tn(c: &mut Criterion) {
    gemm_group(c, "gemm_tn", &kernels::gemm_tn, TN);
}

fn exact_isa(c: &mut Criterion) {
    let e = KernelPath::Exact;
    gemm_group(c, "exact_isa_gemm_nn", &|m, n, k, a, b, o| e.gemm_nn(m, n, k, a, b, o), NN);
    gemm_group(c, "exact_isa_gemm_nt", &|m, n, k, a, b, o| e.gemm_nt(m, n, k, a, b, o), NT);
    gemm_group(c, "exact_isa_gemm_tn", &|m, n, k, a, b, o| e.gemm_tn(m, n, k, a, b, o), TN);
}

fn fast(c: &mut Criterion) {
    let f = Fast::new();
    gemm_group(c, "fast_gemm_nn", &|m, n, k, a, b, o| f.gemm_nn(m, n, k, a, b, o), NN);
    gemm_group(c, "fast_gemm_nt", &|m, n, k, a, b, o| f.gemm_nt(m, n, k, a, b, o), NT);
    gemm_group(c, "fast_gemm_tn", &|m, n, k, a, b, o| f.gemm_tn(m, n, k, a, b, o), TN);
}

criterion_group! {
    name = benches;
    config = config();
    targets = dot, gemm_nn, gemm_nt, gemm_tn, exact_isa, fast
}
