//! Slice kernels: dot, axpy and the three GEMM shapes the LSTM needs.
//!
//! All matrices are row-major and dense. Every kernel *adds* into its output
//! (`C += …`), so one buffer can collect several contributions.
//!
//! | kernel | computes | used for |
//! |---|---|---|
//! | [`gemm_nn`] | `C[m][n] += A[m][k] · B[k][n]` | gate pre-activations `x·W`, `h·U`, Dense logits |
//! | [`gemm_nt`] | `C[m][n] += A[m][k] · B[n][k]ᵀ` | `dz·Wᵀ` (input and state gradients) |
//! | [`gemm_tn`] | `C[m][n] += A[k][m]ᵀ · B[k][n]` | weight gradients `xᵀ·dz` |
//!
//! With batch 1 the same kernels are a vector–matrix product, a matrix–vector
//! product and an outer-product update, so the device and the host share one copy of the math.
//!
//! **Order contract.** Each output element is computed by the same sequence of floating-point
//! operations whatever the number of rows `m` and whatever row it is in: [`gemm_nn`] adds the
//! products into `C` one `k` at a time in increasing `k`, and [`gemm_nt`] adds one [`dot`] per
//! element. That is what makes a streaming forward pass (one time step per call) bit-identical
//! to a full-sequence pass (all time steps' input projections in one call).
//!
//! [`gemm_tn`] and [`add_column_sums`] reduce over rows that are time steps in the backward
//! pass, and they visit them **last row first**. BPTT walks time backwards, so a gradient
//! summed over one whole sequence and the same gradient summed segment by segment (the
//! recomputing mode, last segment first) add the same terms in the same order: both modes
//! give the same bits.
//!
//! Every kernel has a plain scalar twin in [`mod@reference`], which the property tests compare
//! against over odd lengths.
//!
//! # Panics
//! The kernels index with the dimensions they are given and panic if a slice is shorter
//! (like `copy_from_slice`). The model-level functions validate every length before calling
//! them, so no caller input reaches a kernel with wrong sizes.

/// Lanes of the independent accumulators in [`dot`]: wide enough for AVX (8 × f32) and for the
/// Cortex-M4F's FPU pipeline (independent adds hide the latency).
pub const LANES: usize = 8;

/// Dot product `Σ a[i]·b[i]` over `min(a.len(), b.len())` elements.
///
/// Accumulates in [`LANES`] independent lanes over `chunks_exact`, reduces the lanes pairwise,
/// then adds the remainder in order.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y[i] += alpha · x[i]` over `min(x.len(), y.len())` elements.
#[inline]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `C[m][n] += A[m][k] · B[k][n]`.
///
/// Per element, products are added into `C` in increasing `k` (see the order contract).
/// Four rows of `B` are streamed per pass over a row of `C`, so `C` is loaded and stored a
/// quarter as often as in the plain loop, with the same rounding.
pub fn gemm_nn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    let a = &a[..m * k];
    let b = &b[..k * n];
    let c = &mut c[..m * n];
    for (ci, ai) in c.chunks_exact_mut(n).zip(a.chunks_exact(k.max(1))) {
        let mut p = 0;
        while p + 4 <= k {
            let (a0, a1, a2, a3) = (ai[p], ai[p + 1], ai[p + 2], ai[p + 3]);
            let b0 = &b[p * n..(p + 1) * n];
            let b1 = &b[(p + 1) * n..(p + 2) * n];
            let b2 = &b[(p + 2) * n..(p + 3) * n];
            let b3 = &b[(p + 3) * n..(p + 4) * n];
            for ((((cj, x0), x1), x2), x3) in ci.iter_mut().zip(b0).zip(b1).zip(b2).zip(b3) {
                *cj = (((*cj + a0 * x0) + a1 * x1) + a2 * x2) + a3 * x3;
            }
            p += 4;
        }
        while p < k {
            axpy(ai[p], &b[p * n..(p + 1) * n], ci);
            p += 1;
        }
    }
}

/// `C[m][n] += A[m][k] · B[n][k]ᵀ`: each element adds one [`dot`] of a row of `A` and a row of `B`.
pub fn gemm_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    let a = &a[..m * k];
    let b = &b[..n * k];
    let c = &mut c[..m * n];
    for (ci, ai) in c.chunks_exact_mut(n).zip(a.chunks_exact(k.max(1))) {
        for (cij, bj) in ci.iter_mut().zip(b.chunks_exact(k.max(1))) {
            *cij += dot(ai, bj);
        }
    }
}

/// `C[m][n] += A[k][m]ᵀ · B[k][n]`: a sum of `k` outer products, added in **decreasing** `k`
/// (see the order contract).
pub fn gemm_tn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    let a = &a[..k * m];
    let b = &b[..k * n];
    let c = &mut c[..m * n];
    for (ap, bp) in a.chunks_exact(m).rev().zip(b.chunks_exact(n).rev()) {
        for (ci, &api) in c.chunks_exact_mut(n).zip(ap) {
            axpy(api, bp, ci);
        }
    }
}

/// `out[j] += Σ_r x[r][j]` over `rows` rows of `cols` columns (bias gradients), last row first.
pub fn add_column_sums(rows: usize, cols: usize, x: &[f32], out: &mut [f32]) {
    if cols == 0 {
        return;
    }
    let out = &mut out[..cols];
    for row in x[..rows * cols].chunks_exact(cols).rev() {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// Plain scalar versions of every kernel: the definitions the optimised kernels are tested against.
pub mod reference {
    /// `Σ a[i]·b[i]`, summed left to right.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut s = 0.0;
        for i in 0..a.len().min(b.len()) {
            s += a[i] * b[i];
        }
        s
    }

    /// `y[i] += alpha · x[i]`.
    pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        for i in 0..x.len().min(y.len()) {
            y[i] += alpha * x[i];
        }
    }

    /// `C[m][n] += A[m][k] · B[k][n]`, one product at a time in increasing `k`.
    pub fn gemm_nn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a[i * k + p] * b[p * n + j];
                }
            }
        }
    }

    /// `C[m][n] += A[m][k] · B[n][k]ᵀ`.
    pub fn gemm_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += a[i * k + p] * b[j * k + p];
                }
                c[i * n + j] += s;
            }
        }
    }

    /// `C[m][n] += A[k][m]ᵀ · B[k][n]`, in decreasing `k`.
    pub fn gemm_tn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..m {
            for j in 0..n {
                for p in (0..k).rev() {
                    c[i * n + j] += a[p * m + i] * b[p * n + j];
                }
            }
        }
    }

    /// `out[j] += Σ_r x[r][j]`, last row first.
    pub fn add_column_sums(rows: usize, cols: usize, x: &[f32], out: &mut [f32]) {
        for r in (0..rows).rev() {
            for j in 0..cols {
                out[j] += x[r * cols + j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_nn_matches_reference_bitwise() {
        // gemm_nn keeps the reference's order of additions, so the results are identical.
        let (m, n, k) = (3, 7, 9);
        let a: [f32; 27] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        let b: [f32; 63] = core::array::from_fn(|i| (i as f32 * 0.11).cos());
        let mut c1 = [0.5f32; 21];
        let mut c2 = c1;
        gemm_nn(m, n, k, &a, &b, &mut c1);
        reference::gemm_nn(m, n, k, &a, &b, &mut c2);
        assert_eq!(c1, c2);
    }
}
