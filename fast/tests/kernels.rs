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
use tinylstm_fast::{Elementwise, Fast, Isa};

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

/// Every set with its element-wise work on the core's exact functions.
fn exact_elementwise_paths() -> Vec<Fast> {
    paths().into_iter().map(|f| f.with_elementwise(Elementwise::Exact)).collect()
}

#[test]
fn column_sums_and_activations_equal_the_exact_path() {
    // Same functions compiled for wider vectors: same bits.
    let x = data(37 * 45, 13);
    let z0: Vec<f32> = data(4 * 45, 14).iter().map(|v| v * 12.0).collect();
    for f in exact_elementwise_paths() {
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
    for f in exact_elementwise_paths() {
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

/// The vectorised element-wise paths (every set, default [`Elementwise::Vector`]).
fn vector_paths() -> Vec<Fast> {
    paths().into_iter().map(|f| f.with_elementwise(Elementwise::Vector)).collect()
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn fast_activations_are_within_their_stated_error_of_f64() {
    // A dense grid over [-30, 30] (step 2^-12, every region of σ and tanh: linear, curved,
    // saturated, the switch of tanh's two forms at 0.4) plus the clamp edges and beyond.
    // Stated bounds (module docs of `elementwise`): σ within 2.5e-7 absolute, tanh within 4e-7
    // absolute and 4e-6 relative where |tanh x| ≥ 0.1 (its one formula cancels near 0: the
    // absolute error is what a gate needs). f32 itself resolves 6e-8 near 1, so these are a
    // few ulps of 1; the Keras parity bound is 1e-5 + 1e-4·|b|.
    let mut grid: Vec<f32> = (-(30 << 12)..=(30 << 12)).map(|i| i as f32 / 4096.0).collect();
    grid.extend([-1e3, -100.0, -88.5, -87.5, -44.0, 1e-30, -1e-30, 43.9, 87.5, 88.5, 100.0, 1e3]);
    let n = grid.len();
    let z0: Vec<f32> = grid.iter().cycle().take(4 * n).copied().collect();
    for f in vector_paths() {
        let mut z = z0.clone();
        f.activate_gates(&mut z, n);
        let (mut s_abs, mut t_abs, mut t_rel) = (0.0f64, 0.0f64, 0.0f64);
        for (j, &x) in grid.iter().enumerate() {
            let (s, t) = (sigmoid64(x as f64), (x as f64).tanh());
            for got in [z[j], z[n + j], z[3 * n + j]] {
                s_abs = s_abs.max((got as f64 - s).abs());
            }
            let e = (z[2 * n + j] as f64 - t).abs();
            t_abs = t_abs.max(e);
            if t.abs() >= 0.1 {
                t_rel = t_rel.max(e / t.abs());
            }
        }
        eprintln!(
            "{:?}: max |σ − σ64| {s_abs:.2e}, max |tanh − tanh64| {t_abs:.2e} (relative {t_rel:.2e})",
            f.isa()
        );
        assert!(s_abs <= 2.5e-7, "σ on {:?}: {s_abs:e}", f.isa());
        assert!(t_abs <= 4e-7, "tanh on {:?}: {t_abs:e}", f.isa());
        assert!(t_rel <= 4e-6, "tanh on {:?}: relative {t_rel:e}", f.isa());
        // NaN propagates (a diverged run must stay visible), through both functions.
        let mut z = vec![f32::NAN; 4 * 3];
        f.activate_gates(&mut z, 3);
        assert!(z.iter().all(|v| v.is_nan()), "NaN on {:?}: {z:?}", f.isa());
    }
}

#[test]
fn fast_cell_steps_match_an_f64_reference() {
    // The vectorised forward and backward cell steps against the same formulas in f64 from
    // the same f32 inputs. Each activation is within 2.5e-7 of its f64 value (test above); the
    // outputs are products and sums of a few such terms of magnitude ≤ 12 (gates) and ≤ 2
    // (states, gradients), so they stay within 1e-5·(1 + |want|), an error budget of about 25
    // activations' worth. A wrong formula or block is off by 1e-2 or more for these inputs.
    let h = 45;
    let z0: Vec<f32> = data(4 * h, 16).iter().map(|v| v * 6.0).collect();
    let (c_prev, dh, above, dc0) = (data(h, 17), data(h, 18), data(h, 19), data(h, 20));
    let close = |what: &str, isa: Isa, got: &[f32], want: &[f64]| {
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            let tol = 1e-5 * (1.0 + w.abs());
            assert!((*g as f64 - w).abs() <= tol, "{what} on {isa:?}, element {j}: {g} vs {w}");
        }
    };
    // f64 reference: gates, c, h.
    let zz: Vec<f64> = z0.iter().map(|&v| v as f64).collect();
    let act: Vec<f64> = (0..4 * h)
        .map(|k| if (2 * h..3 * h).contains(&k) { zz[k].tanh() } else { sigmoid64(zz[k]) })
        .collect();
    let c: Vec<f64> =
        (0..h).map(|j| act[h + j] * c_prev[j] as f64 + act[j] * act[2 * h + j]).collect();
    let hh: Vec<f64> = (0..h).map(|j| act[3 * h + j] * c[j].tanh()).collect();
    for f in vector_paths() {
        let mut got = (z0.clone(), vec![0.0; h], vec![0.0; h]);
        f.cell_step(&mut got.0, &c_prev, &mut got.1, &mut got.2, h);
        close("gates", f.isa(), &got.0, &act);
        close("c", f.isa(), &got.1, &c);
        close("h", f.isa(), &got.2, &hh);
        for up in [None, Some(&above[..])] {
            // Backward from the f32 gates and c the step produced, in f64.
            let (gates, c_cur) = (got.0.clone(), got.1.clone());
            let mut want = vec![0.0f64; 5 * h];
            for j in 0..h {
                let g = |k: usize| gates[k * h + j] as f64;
                let (i, fg, gg, o) = (g(0), g(1), g(2), g(3));
                let d = dh[j] as f64 + up.map_or(0.0, |a| a[j] as f64);
                let tc = (c_cur[j] as f64).tanh();
                let dc = dc0[j] as f64 + d * o * (1.0 - tc * tc);
                want[j] = dc * gg * i * (1.0 - i);
                want[h + j] = dc * c_prev[j] as f64 * fg * (1.0 - fg);
                want[2 * h + j] = dc * i * (1.0 - gg * gg);
                want[3 * h + j] = d * tc * o * (1.0 - o);
                want[4 * h + j] = dc * fg;
            }
            let (mut z, mut dc) = (gates.clone(), dc0.clone());
            f.cell_backward(
                tinylstm::kernels::CellBackward {
                    z: &mut z,
                    c_prev: &c_prev,
                    c_cur: &c_cur,
                    dh: &dh,
                    above: up,
                    dc: &mut dc,
                },
                h,
            );
            z.extend(dc);
            close("backward", f.isa(), &z, &want);
        }
    }
}

#[test]
fn batched_cell_steps_equal_one_row_at_a_time_bit_for_bit() {
    // `cell_steps` over 5 rows (odd width 45: a tail on every vector width) against
    // `cell_step` row by row, on both element-wise variants of every set and on the exact path.
    let (rows, h) = (5, 45);
    let z0: Vec<f32> = data(rows * 4 * h, 30).iter().map(|v| v * 8.0).collect();
    let c_prev = data(rows * h, 31);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut kerns: Vec<tinylstm_fast::KernelPath> =
        vector_paths().into_iter().map(tinylstm_fast::KernelPath::Fast).collect();
    kerns.extend(exact_elementwise_paths().into_iter().map(tinylstm_fast::KernelPath::Fast));
    kerns.push(tinylstm_fast::KernelPath::Exact);
    for k in kerns {
        let mut one = (z0.clone(), vec![0.0; rows * h], vec![0.0; rows * h]);
        for r in 0..rows {
            let (z, hr) = (&mut one.0[r * 4 * h..(r + 1) * 4 * h], r * h..(r + 1) * h);
            k.cell_step(z, &c_prev[hr.clone()], &mut one.1[hr.clone()], &mut one.2[hr], h);
        }
        let mut all = (z0.clone(), vec![0.0; rows * h], vec![0.0; rows * h]);
        k.cell_steps(rows, &mut all.0, &c_prev, &mut all.1, &mut all.2, h);
        assert_eq!(bits(&all.0), bits(&one.0), "gates on {}", k.describe());
        assert_eq!(bits(&all.1), bits(&one.1), "c on {}", k.describe());
        assert_eq!(bits(&all.2), bits(&one.2), "h on {}", k.describe());
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

/// The element-wise switch names its two choices; any other value is refused with the
/// variable's name and the accepted values (the program then warns and uses the default).
#[test]
fn elementwise_switch_parses_and_refuses_other_values() {
    use tinylstm_fast::Elementwise;
    assert_eq!(Elementwise::parse(None), Ok(Elementwise::Vector));
    assert_eq!(Elementwise::parse(Some("vector")), Ok(Elementwise::Vector));
    assert_eq!(Elementwise::parse(Some(" exact ")), Ok(Elementwise::Exact));
    let e = Elementwise::parse(Some("exakt")).unwrap_err();
    assert_eq!(e, "TINYLSTM_FAST_ELEMENTWISE=\"exakt\" is not vector or exact");
}
