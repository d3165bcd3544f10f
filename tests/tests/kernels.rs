//! Kernel property tests: every optimised kernel against its scalar reference over odd and
//! awkward lengths. proptest prints the seed of any failure and keeps it in
//! `proptest-regressions/`, so a failure replays.
//!
//! `gemm_nn`, `gemm_tn`, `gemv_terms`, `axpy` and `add_column_sums` keep the reference's order of additions,
//! so they must agree bit for bit. `gemm_nt` must add exactly one `dot` per element. `dot` and
//! `gemm_nt` reassociate the sum (8 lanes), so against the sequential reference they are held to `|a − b| ≤ 4·k·ε·Σ|aᵢbᵢ|`, the textbook bound for a reordered f32 sum of k products.

use proptest::prelude::*;
use tinylstm::kernels::{self, reference};

fn vec_f32(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-4.0f32..4.0, len)
}

fn dims() -> impl Strategy<Value = (usize, usize, usize)> {
    (0usize..9, 0usize..37, 0usize..41)
}

fn bitwise(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()) && a.len() == b.len()
}

proptest! {
    #[test]
    fn dot_within_reordering_bound(len in 0usize..100, seed in any::<u64>()) {
        let mut s = seed;
        let mut next = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); ((s >> 40) as f32 / 8388608.0) - 1.0 };
        let a: Vec<f32> = (0..len).map(|_| next()).collect();
        let b: Vec<f32> = (0..len).map(|_| next()).collect();
        let got = kernels::dot(&a, &b);
        let want = reference::dot(&a, &b);
        let mag: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        prop_assert!((got - want).abs() <= 4.0 * len as f32 * f32::EPSILON * mag + f32::MIN_POSITIVE);
    }

    #[test]
    fn axpy_bitwise(alpha in -3.0f32..3.0, x in vec_f32(67), y in vec_f32(67), len in 0usize..67) {
        let mut y1 = y[..len].to_vec();
        let mut y2 = y1.clone();
        kernels::axpy(alpha, &x[..len], &mut y1);
        reference::axpy(alpha, &x[..len], &mut y2);
        prop_assert!(bitwise(&y1, &y2));
    }

    #[test]
    fn gemm_nn_bitwise((m, n, k) in dims(), a in vec_f32(8 * 40), b in vec_f32(40 * 36), c in vec_f32(8 * 36)) {
        let (a, b) = (&a[..m * k], &b[..k * n]);
        let mut c1 = c[..m * n].to_vec();
        let mut c2 = c1.clone();
        kernels::gemm_nn(m, n, k, a, b, &mut c1);
        reference::gemm_nn(m, n, k, a, b, &mut c2);
        prop_assert!(bitwise(&c1, &c2));
    }

    #[test]
    fn gemm_tn_bitwise((m, n, k) in dims(), a in vec_f32(8 * 40), b in vec_f32(40 * 36), c in vec_f32(8 * 36)) {
        let (a, b) = (&a[..k * m], &b[..k * n]);
        let mut c1 = c[..m * n].to_vec();
        let mut c2 = c1.clone();
        kernels::gemm_tn(m, n, k, a, b, &mut c1);
        reference::gemm_tn(m, n, k, a, b, &mut c2);
        prop_assert!(bitwise(&c1, &c2));
    }

    #[test]
    fn gemm_nt_within_reordering_bound((m, n, k) in dims(), a in vec_f32(8 * 40), b in vec_f32(40 * 36), c in vec_f32(8 * 36)) {
        let (a, b) = (&a[..m * k], &b[..n * k]);
        let mut c1 = c[..m * n].to_vec();
        let mut c2 = c1.clone();
        kernels::gemm_nt(m, n, k, a, b, &mut c1);
        reference::gemm_nt(m, n, k, a, b, &mut c2);
        for i in 0..m {
            for j in 0..n {
                let mag: f32 = (0..k).map(|p| (a[i * k + p] * b[j * k + p]).abs()).sum::<f32>() + c[i * n + j].abs();
                let bound = 4.0 * (k + 1) as f32 * f32::EPSILON * mag + f32::MIN_POSITIVE;
                prop_assert!((c1[i * n + j] - c2[i * n + j]).abs() <= bound);
            }
        }
    }

    #[test]
    fn gemm_nt_is_one_dot_per_element_bitwise((m, n, k) in dims(), a in vec_f32(8 * 40), b in vec_f32(40 * 36), c in vec_f32(8 * 36)) {
        // The tiled gemm_nt shares loads between elements but adds exactly `dot`'s sum into each.
        let (a, b) = (&a[..m * k], &b[..n * k]);
        let mut c1 = c[..m * n].to_vec();
        kernels::gemm_nt(m, n, k, a, b, &mut c1);
        let c2: Vec<f32> = (0..m * n)
            .map(|e| c[e] + kernels::dot(&a[e / n * k..][..k], &b[e % n * k..][..k]))
            .collect();
        prop_assert!(bitwise(&c1, &c2));
    }

    #[test]
    fn gemv_terms_equals_start_then_one_gemm_per_term_bitwise(
        n in 0usize..37, k1 in 0usize..9, k2 in 0usize..41,
        a in vec_f32(50), b in vec_f32(50 * 36), start in vec_f32(36), c in vec_f32(36),
    ) {
        // What an LSTM step on a device computes in one pass: b + x·W + h·U.
        let (a1, a2) = (&a[..k1], &a[k1..k1 + k2]);
        let (b1, b2) = (&b[..k1 * n], &b[k1 * n..(k1 + k2) * n]);
        let mut fused = c[..n].to_vec();
        kernels::gemv_terms(n, Some(&start[..n]), &[(a1, b1), (a2, b2)], &mut fused);
        let mut want = start[..n].to_vec();
        reference::gemm_nn(1, n, k1, a1, b1, &mut want);
        reference::gemm_nn(1, n, k2, a2, b2, &mut want);
        prop_assert!(bitwise(&fused, &want));
        // Without a start value the sums are added to `out`.
        let mut acc = c[..n].to_vec();
        kernels::gemv_terms(n, None, &[(a1, b1)], &mut acc);
        let mut want = c[..n].to_vec();
        reference::gemm_nn(1, n, k1, a1, b1, &mut want);
        prop_assert!(bitwise(&acc, &want));
    }

    #[test]
    fn column_sums_bitwise(rows in 0usize..13, cols in 0usize..29, x in vec_f32(12 * 28), o in vec_f32(28)) {
        let mut o1 = o[..cols].to_vec();
        let mut o2 = o1.clone();
        kernels::add_column_sums(rows, cols, &x[..rows * cols], &mut o1);
        reference::add_column_sums(rows, cols, &x[..rows * cols], &mut o2);
        prop_assert!(bitwise(&o1, &o2));
    }
}

/// The order contract: one row of `gemm_nn` alone gives the same bits as that row inside a
/// larger product (what makes streaming equal the full-sequence pass).
#[test]
fn gemm_nn_rows_are_independent_of_m() {
    let (m, n, k) = (7, 33, 19);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 13.0).collect();
    let mut all = vec![0.25; m * n];
    kernels::gemm_nn(m, n, k, &a, &b, &mut all);
    for i in 0..m {
        let mut row = vec![0.25; n];
        kernels::gemm_nn(1, n, k, &a[i * k..(i + 1) * k], &b, &mut row);
        assert!(bitwise(&row, &all[i * n..(i + 1) * n]), "row {i}");
    }
}

/// Sizes past every cache block and register tile (`BLOCK_ROWS` = 32 rows, `BLOCK_STEPS` = 128
/// reduction steps, 4 × 32 tiles on x86-64) with ragged edges: the blocked kernels must still
/// add each element's products in the reference's order.
#[test]
fn blocked_kernels_keep_the_order_past_the_block_sizes() {
    let value = |i: usize, salt: usize| ((i * 2_654_435_761 + salt) % 2003) as f32 / 1001.0 - 1.0;
    for &(m, n, k) in &[(70, 77, 300), (33, 130, 129), (1, 517, 260), (65, 5, 1)] {
        let a: Vec<f32> = (0..m * k).map(|i| value(i, 1)).collect();
        let b: Vec<f32> = (0..k * n).map(|i| value(i, 2)).collect();
        let c0: Vec<f32> = (0..m * n).map(|i| value(i, 3)).collect();
        let (mut c1, mut c2) = (c0.clone(), c0.clone());
        kernels::gemm_nn(m, n, k, &a, &b, &mut c1);
        reference::gemm_nn(m, n, k, &a, &b, &mut c2);
        assert!(bitwise(&c1, &c2), "gemm_nn {m}x{n}x{k}");
        // `a` read as A[k][m] for the transposed product.
        let (mut c1, mut c2) = (c0.clone(), c0.clone());
        kernels::gemm_tn(m, n, k, &a, &b, &mut c1);
        reference::gemm_tn(m, n, k, &a, &b, &mut c2);
        assert!(bitwise(&c1, &c2), "gemm_tn {m}x{n}x{k}");
        // `b` read as B[n][k]: one dot per element.
        let mut c1 = c0.clone();
        kernels::gemm_nt(m, n, k, &a, &b, &mut c1);
        let c2: Vec<f32> = (0..m * n)
            .map(|e| c0[e] + kernels::dot(&a[e / n * k..][..k], &b[e % n * k..][..k]))
            .collect();
        assert!(bitwise(&c1, &c2), "gemm_nt {m}x{n}x{k}");
    }
}

/// Runs `f` and returns its panic message, or `None` when it did not panic.
fn panic_message(f: impl FnOnce()) -> Option<String> {
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).err()?;
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
}

/// Every kernel of path `kern`, with each slice in turn one float short (and dimensions of 0
/// where a silent early return used to hide a short output), panics with the message that
/// names the slice, before writing anything.
fn short_slices_panic<K: kernels::Kernels>(kern: K, path: &str) {
    let (m, n, k) = (3, 5, 4);
    let a = [0.5f32; 32];
    let b = [0.25f32; 32];
    let c0 = [1.0f32; 32];
    type Case<'a> = (&'a str, usize, usize, usize, usize, usize, usize);
    // (kernel, m, n, k, len a, len b, len c): one slice short, the others exact.
    let cases: [Case; 13] = [
        ("gemm_nn: A", m, n, k, m * k - 1, k * n, m * n),
        ("gemm_nn: B", m, n, k, m * k, k * n - 1, m * n),
        ("gemm_nn: C", m, n, k, m * k, k * n, m * n - 1),
        ("gemm_nn: C", m, n, 0, 0, 0, m * n - 1), // k = 0 used to return before any check
        ("gemm_nn: B", 0, n, k, 0, k * n - 1, 0), // m = 0 too
        ("gemm_nt: A", m, n, k, m * k - 1, n * k, m * n),
        ("gemm_nt: B", m, n, k, m * k, n * k - 1, m * n),
        ("gemm_nt: C", m, n, k, m * k, n * k, m * n - 1),
        ("gemm_nt: C", m, n, 0, 0, 0, m * n - 1),
        ("gemm_tn: A", m, n, k, k * m - 1, k * n, m * n),
        ("gemm_tn: B", m, n, k, k * m, k * n - 1, m * n),
        ("gemm_tn: C", m, n, k, k * m, k * n, m * n - 1),
        ("gemm_tn: C", m, n, 0, 0, 0, m * n - 1),
    ];
    for (what, m, n, k, la, lb, lc) in cases {
        let mut c = c0[..lc].to_vec();
        let msg = panic_message(|| match &what[..7] {
            "gemm_nn" => kern.gemm_nn(m, n, k, &a[..la], &b[..lb], &mut c),
            "gemm_nt" => kern.gemm_nt(m, n, k, &a[..la], &b[..lb], &mut c),
            _ => kern.gemm_tn(m, n, k, &a[..la], &b[..lb], &mut c),
        });
        let msg = msg.unwrap_or_else(|| panic!("{path}: {what} ({m}, {n}, {k}) did not panic"));
        assert!(msg.starts_with(what), "{path}: {what}: message {msg:?}");
        assert_eq!(c, c0[..lc], "{path}: {what} wrote before panicking");
    }
    // gemv_terms: out, start and a term's B.
    let x = [1.0f32; 3];
    let msg = |f: &dyn Fn(&mut [f32])| {
        let mut out = vec![0.0f32; 8];
        panic_message(|| f(&mut out)).unwrap_or_else(|| panic!("{path}: did not panic"))
    };
    let m1 = msg(&|o| kern.gemv_terms(8, None, &[(&x, &b[..24])], &mut o[..7]));
    assert!(m1.starts_with("gemv_terms: out"), "{path}: {m1}");
    let m2 = msg(&|o| kern.gemv_terms(8, Some(&c0[..7]), &[(&x, &b[..24])], o));
    assert!(m2.starts_with("gemv_terms: start"), "{path}: {m2}");
    let m3 = msg(&|o| kern.gemv_terms(8, None, &[(&x, &b[..24]), (&x, &b[..23])], o));
    assert!(m3.starts_with("gemv_terms: a term's B"), "{path}: {m3}");
    // add_column_sums and activate_gates.
    let m4 = msg(&|o| kern.add_column_sums(3, 4, &a[..11], o));
    assert!(m4.starts_with("add_column_sums: x"), "{path}: {m4}");
    let m5 = msg(&|o| kern.add_column_sums(3, 9, &a[..27], o));
    assert!(m5.starts_with("add_column_sums: out"), "{path}: {m5}");
    let m6 = msg(&|o| kern.activate_gates(&mut o[..7], 2));
    assert!(m6.starts_with("activate_gates: z"), "{path}: {m6}");
}

#[test]
fn short_slices_panic_on_the_exact_path() {
    short_slices_panic(kernels::Exact, "exact");
}

#[test]
fn short_slices_panic_on_the_fast_paths() {
    short_slices_panic(tinylstm_fast::Fast::new(), "fast (detected)");
    short_slices_panic(tinylstm_fast::KernelPath::fast(), "KernelPath::fast");
    let portable = tinylstm_fast::Fast::with_isa(tinylstm_fast::Isa::Portable).unwrap();
    short_slices_panic(portable, "fast (portable)");
}

/// Longer slices are allowed, and the elements past what the dimensions need are neither read
/// (NaN there changes nothing) nor written.
#[test]
fn elements_past_the_dimensions_are_untouched() {
    let (m, n, k) = (2, 3, 4);
    let mut a = vec![0.5f32; m * k + 3];
    let mut b = vec![0.25f32; k * n + 3];
    a[m * k..].fill(f32::NAN);
    b[k * n..].fill(f32::NAN);
    let mut c = vec![1.0f32; m * n + 3];
    c[m * n..].fill(7.0);
    kernels::gemm_nn(m, n, k, &a, &b, &mut c);
    // Each element: 1 + 4 · (0.5 · 0.25) = 1.5, exactly.
    assert_eq!(c[..m * n], [1.5; 6]);
    assert_eq!(c[m * n..], [7.0; 3]);
    // activate_gates: one row of 4h = 8 pre-activations of 0, then two that must stay.
    let mut z = [0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, -5.0];
    kernels::activate_gates(&mut z, 2);
    // σ(0) = 0.5 on i, f, o; tanh(0) = 0 on c.
    assert_eq!(z, [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 5.0, -5.0]);
}
