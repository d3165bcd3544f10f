//! Every fast kernel against the core's scalar reference, on every instruction set this CPU
//! supports, over odd shapes (tails of every width, 1-row and 1-column cases) and large ones
//! (past the register tiles and the reduction block).
//!
//! Tolerance: the fast path sums in another order and fuses, so each element may differ from
//! the reference by the rounding of two different summations of the same terms. Any order of
//! summing `c0 + Σ_p a_p·b_p` in f32 is within `γ_{k+1} · (|c0| + Σ_p |a_p·b_p|)` of the exact
//! value (`γ_n = n·ε/(1 − n·ε)`, ε = 2⁻²⁴, the standard bound), so the two results are within
//! twice that of each other. The check uses exactly that bound — it cannot pass a wrong term
//! or a missing one (an error of one whole product is far above it for these magnitudes).

use proptest::prelude::*;
use tinylstm::kernels::{reference, Kernels};
use tinylstm_fast::{Fast, Isa};

fn paths() -> Vec<Fast> {
    let v: Vec<Fast> = Isa::ALL.into_iter().filter_map(Fast::with_isa).collect();
    assert!(v.iter().any(|f| f.isa() == Isa::Portable));
    v
}

fn gamma(n: usize) -> f32 {
    let e = f32::EPSILON / 2.0;
    let ne = n as f32 * e;
    ne / (1.0 - ne)
}

/// Checks `got` against `want` element by element with the bound above; `mag[i]` is
/// `|c0| + Σ |terms|` of element `i`.
fn check(what: &str, isa: Isa, got: &[f32], want: &[f32], mag: &[f32], k: usize) {
    let g = 2.0 * gamma(k + 2);
    for (i, ((g1, w), m)) in got.iter().zip(want).zip(mag).enumerate() {
        let tol = g * m + f32::MIN_POSITIVE;
        assert!(
            (g1 - w).abs() <= tol,
            "{what} on {isa:?}: element {i}: {g1} vs reference {w} (|diff| {} > {tol})",
            (g1 - w).abs()
        );
    }
}

fn data(len: usize, seed: u64) -> Vec<f32> {
    // A small LCG: values in [-1, 1) with every mantissa pattern.
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

fn run_nn(m: usize, n: usize, k: usize, seed: u64) {
    let (a, b, c0) = (data(m * k, seed), data(k * n, seed + 1), data(m * n, seed + 2));
    let mut want = c0.clone();
    reference::gemm_nn(m, n, k, &a, &b, &mut want);
    let mut mag = abs(&c0);
    reference::gemm_nn(m, n, k, &abs(&a), &abs(&b), &mut mag);
    for f in paths() {
        let mut got = c0.clone();
        f.gemm_nn(m, n, k, &a, &b, &mut got);
        check("gemm_nn", f.isa(), &got, &want, &mag, k);
    }
}

fn run_tn(m: usize, n: usize, k: usize, seed: u64) {
    let (a, b, c0) = (data(k * m, seed), data(k * n, seed + 1), data(m * n, seed + 2));
    let mut want = c0.clone();
    reference::gemm_tn(m, n, k, &a, &b, &mut want);
    let mut mag = abs(&c0);
    reference::gemm_tn(m, n, k, &abs(&a), &abs(&b), &mut mag);
    for f in paths() {
        let mut got = c0.clone();
        f.gemm_tn(m, n, k, &a, &b, &mut got);
        check("gemm_tn", f.isa(), &got, &want, &mag, k);
    }
}

fn run_nt(m: usize, n: usize, k: usize, seed: u64) {
    let (a, b, c0) = (data(m * k, seed), data(n * k, seed + 1), data(m * n, seed + 2));
    let mut want = c0.clone();
    reference::gemm_nt(m, n, k, &a, &b, &mut want);
    let mut mag = abs(&c0);
    reference::gemm_nt(m, n, k, &abs(&a), &abs(&b), &mut mag);
    for f in paths() {
        let mut got = c0.clone();
        f.gemm_nt(m, n, k, &a, &b, &mut got);
        check("gemm_nt", f.isa(), &got, &want, &mag, k);
    }
}

fn run_gemv_terms(n: usize, k1: usize, k2: usize, with_start: bool, seed: u64) {
    let (x, w) = (data(k1, seed), data(k1 * n, seed + 1));
    let (h, u) = (data(k2, seed + 2), data(k2 * n, seed + 3));
    let start = data(n, seed + 4);
    let out0 = data(n, seed + 5);
    let c0 = if with_start { start.clone() } else { out0.clone() };
    let mut want = c0.clone();
    reference::gemm_nn(1, n, k1, &x, &w, &mut want);
    reference::gemm_nn(1, n, k2, &h, &u, &mut want);
    let mut mag = abs(&c0);
    reference::gemm_nn(1, n, k1, &abs(&x), &abs(&w), &mut mag);
    reference::gemm_nn(1, n, k2, &abs(&h), &abs(&u), &mut mag);
    for f in paths() {
        let mut got = out0.clone();
        let s = with_start.then_some(&start[..]);
        f.gemv_terms(n, s, &[(&x, &w), (&h, &u)], &mut got);
        check("gemv_terms", f.isa(), &got, &want, &mag, k1 + k2);
    }
}

#[test]
fn seed_and_mcu_shapes() {
    // The shapes the benchmark models run (rows cut to keep the test quick).
    run_nn(320, 512, 64, 1); // seed l1 x·W
    run_nn(16, 512, 128, 2); // seed l1 h·U, half a batch
    run_nn(1, 512, 128, 3); // batch 1
    run_nn(320, 128, 6, 4); // mcu x·W
    run_nn(32, 4, 32, 5); // mcu head
    run_tn(64, 512, 640, 6); // seed dW over 640 rows (past the 256 block)
    run_tn(32, 128, 321, 7);
    run_nt(16, 128, 512, 8); // seed dz·Uᵀ
    run_nt(320, 64, 512, 9); // seed dz·Wᵀ
    run_nt(1, 64, 256, 10);
    run_gemv_terms(512, 64, 128, true, 11);
    run_gemv_terms(128, 6, 32, false, 12);
}

#[test]
fn column_sums_and_activations_equal_the_exact_path() {
    // Same functions compiled for wider vectors: same bits.
    let x = data(37 * 45, 13);
    let z0: Vec<f32> = data(4 * 45, 14).iter().map(|v| v * 12.0).collect();
    for f in paths() {
        let mut a = data(45, 15);
        let mut b = a.clone();
        f.add_column_sums(37, 45, &x, &mut a);
        tinylstm::kernels::add_column_sums(37, 45, &x, &mut b);
        assert_eq!(a, b, "{:?}", f.isa());
        let (mut z1, mut z2) = (z0.clone(), z0.clone());
        f.activate_gates(&mut z1, 45);
        tinylstm::kernels::activate_gates(&mut z2, 45);
        assert_eq!(z1, z2, "{:?}", f.isa());
    }
}

#[test]
fn cell_steps_equal_the_exact_path_bit_for_bit() {
    // The core's element-wise cell functions compiled for each set's vectors: same bits. An
    // odd width (45) leaves a tail on every vector width; the gates span σ's and tanh's
    // saturated and linear ranges.
    let h = 45;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let z0: Vec<f32> = data(4 * h, 16).iter().map(|v| v * 12.0).collect();
    let (c_prev, dh, above) = (data(h, 17), data(h, 18), data(h, 19));
    for f in paths() {
        let mut want = (z0.clone(), vec![0.0; h], vec![0.0; h]);
        tinylstm::kernels::cell_step(&mut want.0, &c_prev, &mut want.1, &mut want.2, h);
        let mut got = (z0.clone(), vec![0.0; h], vec![0.0; h]);
        f.cell_step(&mut got.0, &c_prev, &mut got.1, &mut got.2, h);
        assert_eq!(bits(&got.0), bits(&want.0), "gates on {:?}", f.isa());
        assert_eq!(bits(&got.1), bits(&want.1), "c on {:?}", f.isa());
        assert_eq!(bits(&got.2), bits(&want.2), "h on {:?}", f.isa());
        for up in [None, Some(&above[..])] {
            let (gates, c_cur) = (want.0.clone(), want.1.clone());
            let run = |back: &dyn Fn(tinylstm::kernels::CellBackward<'_>)| {
                let (mut z, mut dc) = (gates.clone(), data(h, 20));
                back(tinylstm::kernels::CellBackward {
                    z: &mut z,
                    c_prev: &c_prev,
                    c_cur: &c_cur,
                    dh: &dh,
                    above: up,
                    dc: &mut dc,
                });
                (bits(&z), bits(&dc))
            };
            let want = run(&|s| tinylstm::kernels::cell_backward(s, h));
            let got = run(&|s| f.cell_backward(s, h));
            assert_eq!(got, want, "backward on {:?} (above: {})", f.isa(), up.is_some());
        }
    }
}

#[test]
fn short_slices_panic_like_the_exact_kernels() {
    for f in paths() {
        let r = std::panic::catch_unwind(|| {
            let mut c = [0.0f32; 4];
            f.gemm_nn(2, 2, 3, &[1.0; 5], &[1.0; 6], &mut c);
        });
        assert!(r.is_err(), "{:?}", f.isa());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn gemm_nn_any_shape(m in 1usize..40, n in 1usize..150, k in 1usize..300, seed in 0u64..1000) {
        run_nn(m, n, k, seed);
    }

    #[test]
    fn gemm_tn_any_shape(m in 1usize..40, n in 1usize..150, k in 1usize..600, seed in 0u64..1000) {
        run_tn(m, n, k, seed);
    }

    #[test]
    fn gemm_nt_any_shape(m in 1usize..40, n in 1usize..40, k in 1usize..300, seed in 0u64..1000) {
        run_nt(m, n, k, seed);
    }

    #[test]
    fn gemv_terms_any_shape(n in 1usize..300, k1 in 0usize..70, k2 in 0usize..140, s in any::<bool>(), seed in 0u64..1000) {
        run_gemv_terms(n, k1, k2, s, seed);
    }
}

/// `KernelPath::Exact` (the exact kernels compiled for this CPU's widest vectors, chosen at run
/// time) against the scalar reference (`gemm_nn`, `gemm_tn`: one product at a time in the
/// contract's order) and the baseline build of the exact kernels (`gemm_nt`'s 8-lane dot,
/// `gemv_terms`, column sums, activations): equal bit for bit, whatever the shape.
fn run_exact_dispatch(m: usize, n: usize, k: usize, seed: u64) {
    use tinylstm_fast::KernelPath;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (a, b, c0) = (data(m * k, seed), data(k * n, seed + 1), data(m * n, seed + 2));
    let (mut want, mut got) = (c0.clone(), c0.clone());
    reference::gemm_nn(m, n, k, &a, &b, &mut want);
    KernelPath::Exact.gemm_nn(m, n, k, &a, &b, &mut got);
    assert_eq!(bits(&got), bits(&want), "gemm_nn {m}x{n}x{k}");
    let (mut want, mut got) = (c0.clone(), c0.clone());
    reference::gemm_tn(m, n, k, &a, &b, &mut want);
    KernelPath::Exact.gemm_tn(m, n, k, &a, &b, &mut got);
    assert_eq!(bits(&got), bits(&want), "gemm_tn {m}x{n}x{k}");
    let bt = data(n * k, seed + 3);
    let (mut want, mut got) = (c0.clone(), c0.clone());
    std::hint::black_box(tinylstm::kernels::gemm_nt)(m, n, k, &a, &bt, &mut want);
    KernelPath::Exact.gemm_nt(m, n, k, &a, &bt, &mut got);
    assert_eq!(bits(&got), bits(&want), "gemm_nt {m}x{n}x{k}");
    let (x, h) = (&a[..k], data(m, seed + 4));
    let u = data(m * n, seed + 5);
    let start = &c0[..n];
    let (mut want, mut got) = (vec![0.0; n], vec![0.0; n]);
    std::hint::black_box(tinylstm::kernels::gemv_terms)(
        n,
        Some(start),
        &[(x, &b), (&h, &u)],
        &mut want,
    );
    KernelPath::Exact.gemv_terms(n, Some(start), &[(x, &b), (&h, &u)], &mut got);
    assert_eq!(bits(&got), bits(&want), "gemv_terms {n} {k} {m}");
    let (mut want, mut got) = (c0[..n].to_vec(), c0[..n].to_vec());
    std::hint::black_box(tinylstm::kernels::add_column_sums)(m, n, &u, &mut want);
    KernelPath::Exact.add_column_sums(m, n, &u, &mut got);
    assert_eq!(bits(&got), bits(&want), "add_column_sums {m}x{n}");
}

#[test]
fn exact_path_on_this_cpu_equals_the_baseline_exact_kernels_bit_for_bit() {
    run_exact_dispatch(320, 512, 64, 21); // seed l1 x·W
    run_exact_dispatch(16, 512, 128, 22);
    run_exact_dispatch(1, 512, 128, 23);
    run_exact_dispatch(64, 256, 300, 24); // past the reduction block
    run_exact_dispatch(7, 13, 5, 25);
    let z0: Vec<f32> = data(4 * 45, 26).iter().map(|v| v * 12.0).collect();
    let (mut z1, mut z2) = (z0.clone(), z0);
    tinylstm_fast::KernelPath::Exact.activate_gates(&mut z1, 45);
    std::hint::black_box(tinylstm::kernels::activate_gates)(&mut z2, 45);
    assert_eq!(z1, z2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn exact_path_on_this_cpu_any_shape(m in 1usize..40, n in 1usize..150, k in 1usize..300, seed in 0u64..1000) {
        run_exact_dispatch(m, n, k, seed);
    }
}
