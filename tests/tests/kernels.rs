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
