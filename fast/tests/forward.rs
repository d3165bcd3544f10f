//! The fast path's LSTM time step (`tinylstm_fast::forward`): every schedule (fused row tiles
//! of any size, one GEMM, either batch-1 kernel) against the core's scalar reference, on every
//! instruction set this CPU supports, over odd shapes and tiles that do not divide the batch;
//! and the schedules against each other, bit for bit (they compute every element with the same
//! operations).
//!
//! Tolerance of the reference comparison: each pre-activation `z = z0 + Σ_p h_p·U_pj` differs
//! from the scalar sum by at most `δ = 2·γ_{H+2}·(|z0| + Σ_p |h_p·U_pj|)` (the standard bound for
//! two summation orders, as in `kernels.rs`; `γ_n = n·ε/(1 − n·ε)`). The activations are the same
//! functions on both sides and have slopes ≤ 1, so each gate moves by at most `δ_max`, the
//! row's largest `δ`; then `c = f·c₀ + i·g` (gates in [-1, 1]) moves by at most
//! `δ_max·(|c₀| + 2)` and `h = o·tanh(c)` by that plus `δ_max`, each plus a few roundings of
//! values ≤ |c₀| + 1. A missing or wrong term moves a gate by about one product (≈ 0.1 here), far
//! above these bounds.

use proptest::prelude::*;
use tinylstm::kernels::{reference, Exact};
use tinylstm::lstm::{self, step_rows, Dims, StepRows, Tape, Weights};
use tinylstm_fast::forward::{
    lstm_step_with, Gemv, Projection, StepConfig, StepMode, DEFAULT_TILE,
};
use tinylstm_fast::{Fast, Isa, KernelPath};

fn paths() -> Vec<Fast> {
    Isa::ALL.into_iter().filter_map(Fast::with_isa).collect()
}

fn data(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

/// One step's operands: `h_prev [B][H]`, `U [H][4H]`, `z0 [B][4H]`, `c_prev [B][H]`.
struct Case {
    h: usize,
    b: usize,
    h_prev: Vec<f32>,
    u: Vec<f32>,
    z0: Vec<f32>,
    c_prev: Vec<f32>,
}

impl Case {
    fn new(h: usize, b: usize, seed: u64) -> Case {
        let g4 = 4 * h;
        Case {
            h,
            b,
            h_prev: data(b * h, seed, 1.0),
            u: data(h * g4, seed + 1, 0.5),
            z0: data(b * g4, seed + 2, 1.0),
            c_prev: data(b * h, seed + 3, 2.0),
        }
    }

    /// `(z, c_next, h_next)` after one step with `run`.
    fn run(
        &self,
        run: impl FnOnce(StepRows<'_>, &[f32], &mut [f32], &mut [f32]),
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut z = self.z0.clone();
        let (mut cn, mut hn) = (vec![0.0; self.b * self.h], vec![0.0; self.b * self.h]);
        let step = StepRows {
            units: self.h,
            batch: self.b,
            h_prev: &self.h_prev,
            recurrent: &self.u,
            z: &mut z,
        };
        run(step, &self.c_prev, &mut cn, &mut hn);
        (z, cn, hn)
    }

    /// The scalar reference: `z0 + h·U` by `reference::gemm_nn`, then the exact cells.
    fn reference(&self) -> (Vec<f32>, Vec<f32>) {
        let g4 = 4 * self.h;
        let mut z = self.z0.clone();
        reference::gemm_nn(self.b, g4, self.h, &self.h_prev, &self.u, &mut z);
        let (mut cn, mut hn) = (vec![0.0; self.b * self.h], vec![0.0; self.b * self.h]);
        lstm::cell_rows(Exact, self.h, self.b, &mut z, &self.c_prev, &mut cn, &mut hn);
        (cn, hn)
    }

    /// `δ_max` of each row (see the module docs).
    fn row_bounds(&self) -> Vec<f32> {
        let (h, g4) = (self.h, 4 * self.h);
        let e = f32::EPSILON / 2.0;
        let n = (h + 2) as f32 * e;
        let g = 2.0 * n / (1.0 - n);
        (0..self.b)
            .map(|r| {
                (0..g4)
                    .map(|j| {
                        let terms: f32 = (0..h)
                            .map(|p| (self.h_prev[r * h + p] * self.u[p * g4 + j]).abs())
                            .sum();
                        g * (self.z0[r * g4 + j].abs() + terms)
                    })
                    .fold(0.0f32, f32::max)
            })
            .collect()
    }

    fn check(&self, what: &str, cn: &[f32], hn: &[f32]) {
        let (want_c, want_h) = self.reference();
        let bounds = self.row_bounds();
        let eps = f32::EPSILON;
        for r in 0..self.b {
            for j in 0..self.h {
                let i = r * self.h + j;
                let c0 = self.c_prev[i].abs();
                let tol_c = bounds[r] * (c0 + 2.0) + 4.0 * eps * (c0 + 1.0);
                let tol_h = tol_c + bounds[r] + 4.0 * eps;
                assert!(
                    (cn[i] - want_c[i]).abs() <= tol_c,
                    "{what}: c[{r}][{j}] = {} vs reference {} (tolerance {tol_c})",
                    cn[i],
                    want_c[i]
                );
                assert!(
                    (hn[i] - want_h[i]).abs() <= tol_h,
                    "{what}: h[{r}][{j}] = {} vs reference {} (tolerance {tol_h})",
                    hn[i],
                    want_h[i]
                );
            }
        }
    }
}

fn configs(tile: usize) -> [StepConfig; 5] {
    [
        StepConfig {
            mode: StepMode::Fused { tile },
            gemv: Gemv::Avx2,
            projection: Projection::Fused,
        },
        StepConfig {
            mode: StepMode::Fused { tile },
            gemv: Gemv::Fast,
            projection: Projection::Fused,
        },
        StepConfig {
            mode: StepMode::Fused { tile },
            gemv: Gemv::Exact,
            projection: Projection::Fused,
        },
        StepConfig { mode: StepMode::Plain, gemv: Gemv::Fast, projection: Projection::Fused },
        StepConfig { mode: StepMode::Plain, gemv: Gemv::Exact, projection: Projection::Fused },
    ]
}

fn run_case(h: usize, b: usize, tile: usize, seed: u64) {
    let case = Case::new(h, b, seed);
    for fast in paths() {
        let plain = case.run(|s, cp, cn, hn| step_rows(fast, s, cp, cn, hn));
        for config in configs(tile) {
            let what = format!("{config:?} on {:?}, H = {h}, B = {b}", fast.isa());
            let got = case.run(|s, cp, cn, hn| lstm_step_with(fast, config, s, cp, cn, hn));
            case.check(&what, &got.1, &got.2);
            if b > 1 || config.gemv == Gemv::Fast {
                // (At batch 1 the other kernels' scalar tails or missing FMA change the bits.)
                // Same operations per element as one GEMM then the cells: the same bits.
                assert!(got == plain, "{what}: differs from the plain schedule");
            }
        }
    }
}

#[test]
fn benchmark_model_shapes() {
    // The seed model's layers (128 and 64 units) and the MCU model's (32), at the batches the
    // bench and training use (1, 16, 128 sequences per thread) and a batch no tile divides.
    for (h, b) in [(128, 1), (128, 16), (64, 128), (32, 128), (32, 1), (32, 37)] {
        run_case(h, b, DEFAULT_TILE, h as u64 * 1000 + b as u64);
    }
}

#[test]
fn settings_parse_and_reject_bad_values() {
    let (c, p) = StepConfig::parse(None, None, None);
    assert_eq!(c, StepConfig::default());
    assert!(p.is_empty());
    let (c, p) = StepConfig::parse(Some("plain"), Some("7"), Some("exact"));
    assert_eq!((c.mode, c.gemv), (StepMode::Plain, Gemv::Exact));
    assert!(p.is_empty());
    let (c, p) = StepConfig::parse(None, None, Some("avx2"));
    assert_eq!((c.mode, c.gemv), (StepConfig::default().mode, Gemv::Avx2));
    assert!(p.is_empty());
    let (c, p) = StepConfig::parse(Some("fused"), Some("7"), Some("fast"));
    assert_eq!((c.mode, c.gemv), (StepMode::Fused { tile: 7 }, Gemv::Fast));
    assert!(p.is_empty());
    let (c, p) = StepConfig::parse(Some("tiled"), Some("0"), Some("slow"));
    assert_eq!(c, StepConfig::default());
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].contains("TINYLSTM_FAST_TILE") && p[0].contains("\"0\""), "{p:?}");
    assert!(p[1].contains("TINYLSTM_FAST_FORWARD") && p[1].contains("tiled"), "{p:?}");
    assert!(p[2].contains("TINYLSTM_FAST_GEMV") && p[2].contains("slow"), "{p:?}");
    let (_, p) = StepConfig::parse(None, Some("257"), None);
    assert_eq!(p.len(), 1);
}

#[test]
#[should_panic(expected = "shorter")]
fn a_short_state_panics_before_any_write() {
    let case = Case::new(8, 5, 1);
    let fast = Fast::new();
    let mut z = case.z0.clone();
    let (mut cn, mut hn) = (vec![0.0; 5 * 8], vec![0.0; 5 * 8 - 1]);
    let step = StepRows { units: 8, batch: 5, h_prev: &case.h_prev, recurrent: &case.u, z: &mut z };
    let config = StepConfig { mode: StepMode::Fused { tile: 2 }, ..StepConfig::default() };
    lstm_step_with(fast, config, step, &case.c_prev, &mut cn, &mut hn);
}

/// A whole layer over a few steps on the fast path (whatever the environment selects) against
/// the exact path: the step's bound compounds over the steps, so the check is the parity
/// tolerance the crate states for the fast path (1e-4, for states of magnitude ≤ a few units).
fn run_layer(h: usize, b: usize, input: usize, steps: usize, seed: u64) {
    let d = Dims { input, units: h, batch: b, steps };
    let (kernel, recurrent, bias) = (
        data(input * 4 * h, seed, 0.3),
        data(h * 4 * h, seed + 1, 0.3),
        data(4 * h, seed + 2, 0.3),
    );
    let w = Weights { kernel: &kernel, recurrent: &recurrent, bias: &bias };
    let x = data(steps * b * input, seed + 3, 1.0);
    let run = |kern: KernelPath| {
        let mut gates = vec![0.0; d.gates_len().unwrap()];
        let mut hs = vec![0.0; d.states_len().unwrap()];
        let mut cs = vec![0.0; d.states_len().unwrap()];
        hs[..b * h].copy_from_slice(&data(b * h, seed + 4, 0.5));
        cs[..b * h].copy_from_slice(&data(b * h, seed + 5, 0.5));
        let mut tape = Tape { gates: &mut gates, h: &mut hs, c: &mut cs };
        lstm::forward_with(kern, &d, &w, &x, &mut tape).unwrap();
        (hs, cs)
    };
    let (want_h, want_c) = run(KernelPath::Exact);
    let (got_h, got_c) = run(KernelPath::fast());
    for (what, got, want) in [("h", &got_h, &want_h), ("c", &got_c, &want_c)] {
        for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}[{i}]: {g} vs exact {w}");
        }
    }
}

#[test]
fn a_layer_on_the_fast_path_follows_the_exact_path() {
    run_layer(128, 40, 64, 3, 11);
    run_layer(32, 128, 6, 4, 12);
    run_layer(1, 1, 1, 3, 13);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn step_any_shape_and_tile(h in 1usize..70, b in 1usize..45, tile in 1usize..20, seed in 0u64..1000) {
        run_case(h, b, tile, seed);
    }

    #[test]
    fn layer_any_shape(h in 1usize..50, b in 1usize..30, input in 1usize..20, steps in 1usize..4, seed in 0u64..1000) {
        run_layer(h, b, input, steps, seed);
    }
}

/// `gemm_nn_start` on every instruction set equals filling the rows with `start` and then
/// `gemm_nn` (itself tested against the scalar reference in `kernels.rs`) bit for bit, never
/// reads the old `C` and leaves the floats past `m·n` alone.
fn run_start(m: usize, n: usize, k: usize, seed: u64) {
    use tinylstm::kernels::Kernels;
    let (a, b) = (data(m * k, seed, 1.0), data(k * n, seed + 1, 1.0));
    let start = data(n + 3, seed + 2, 1.0);
    for fast in paths() {
        let mut want = vec![0.0f32; m * n + 5];
        for row in want[..m * n].chunks_exact_mut(n) {
            row.copy_from_slice(&start[..n]);
        }
        want[m * n..].fill(7.0);
        fast.gemm_nn(m, n, k, &a, &b, &mut want);
        let mut got = vec![f32::NAN; m * n + 5];
        got[m * n..].fill(7.0);
        fast.gemm_nn_start(m, n, k, &a, &b, &start, &mut got);
        let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
        assert!(same, "gemm_nn_start on {:?}, {m}×{n}×{k}: {got:?} vs {want:?}", fast.isa());
    }
}

#[test]
fn gemm_nn_start_on_the_models_input_projections() {
    // MCU (6 channels → 4·32) and the seed's layer 2 (128 → 4·64) over a 10-step chunk of 128.
    run_start(1280, 128, 6, 1);
    run_start(1280, 256, 128, 2);
    run_start(1, 512, 300, 3); // one row, past the reduction block
    run_start(3, 5, 0, 4); // no reduction: C is the start rows
}

#[test]
#[should_panic(expected = "start is shorter")]
fn gemm_nn_start_with_a_short_start_panics() {
    use tinylstm::kernels::Kernels;
    let mut c = [0.0f32; 6];
    Fast::new().gemm_nn_start(2, 3, 1, &[1.0, 2.0], &[1.0, 2.0, 3.0], &[0.0, 0.0], &mut c);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn gemm_nn_start_any_shape(m in 1usize..40, n in 1usize..150, k in 0usize..300, seed in 0u64..1000) {
        run_start(m, n, k, seed);
    }
}
