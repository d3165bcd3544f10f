//! The kernels, written once over [`Simd`] and instantiated per instruction set.
//!
//! Every function here is `unsafe` only because it must run on a CPU with `S`'s features (the
//! dispatch checks them); each first slices its operands to the exact lengths the shapes need
//! (panicking, like the exact kernels, when one is shorter), and every raw-pointer access below
//! stays inside those slices — the per-block `SAFETY` comments give the index bounds.
//!
//! Shapes are those of [`tinylstm::kernels`]: row-major, dense, `C +=`.

use crate::simd::Simd;

/// Reduction steps per cache block of the outer-product kernels: a panel of `B` of this many
/// rows stays in L2 while every row tile passes over it.
const KC: usize = 256;

/// One `R × (NV·LANES)` tile of `C` (rows `ldc` apart) += `Σ_{p < kc} a(r, p) · B[p][..]`, with
/// `a(r, p) = a[r·rs + p·ps]` and rows of `B` `ldb` apart. When `start` is not null, the tile's
/// old values are not read: every row starts from `start[..NV·LANES]` instead.
///
/// # Safety
/// `S`'s features are present; `a` is valid for every `r·rs + p·ps` with `r < R`, `p < kc`;
/// `b` for `p·ldb + NV·LANES` floats for `p < kc`; `c` for `r·ldc + NV·LANES` floats, `r < R`;
/// `start`, unless null, for `NV·LANES` floats.
#[inline(always)]
unsafe fn outer_tile<S: Simd, const R: usize, const NV: usize>(
    start: *const f32,
    kc: usize,
    a: *const f32,
    rs: usize,
    ps: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let l = S::LANES;
    // SAFETY: the function's contract (see above) covers every pointer offset used here.
    unsafe {
        let mut acc = [[S::zero(); NV]; R];
        if start.is_null() {
            for r in 0..R {
                for v in 0..NV {
                    acc[r][v] = S::load(c.add(r * ldc + v * l));
                }
            }
        } else {
            for v in 0..NV {
                let s = S::load(start.add(v * l));
                for r in 0..R {
                    acc[r][v] = s;
                }
            }
        }
        for p in 0..kc {
            let bp = b.add(p * ldb);
            let mut bv = [S::zero(); NV];
            for v in 0..NV {
                bv[v] = S::load(bp.add(v * l));
            }
            let ap = a.add(p * ps);
            for r in 0..R {
                let ar = S::splat(*ap.add(r * rs));
                for v in 0..NV {
                    acc[r][v] = S::fma(ar, bv[v], acc[r][v]);
                }
            }
        }
        for r in 0..R {
            for v in 0..NV {
                S::store(c.add(r * ldc + v * l), acc[r][v]);
            }
        }
    }
}

/// [`outer_tile`] for `rows ≤ MR` rows (1 to 6), dispatched to its const instance.
///
/// # Safety
/// As [`outer_tile`] with `R = rows` (and the same `start`).
#[inline(always)]
unsafe fn outer_rows<S: Simd, const MR: usize, const NV: usize>(
    start: *const f32,
    rows: usize,
    kc: usize,
    a: *const f32,
    rs: usize,
    ps: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: forwarded contract; each arm has `R = rows`.
    unsafe {
        match rows.min(MR) {
            1 => outer_tile::<S, 1, NV>(start, kc, a, rs, ps, b, ldb, c, ldc),
            2 => outer_tile::<S, 2, NV>(start, kc, a, rs, ps, b, ldb, c, ldc),
            3 => outer_tile::<S, 3, NV>(start, kc, a, rs, ps, b, ldb, c, ldc),
            4 => outer_tile::<S, 4, NV>(start, kc, a, rs, ps, b, ldb, c, ldc),
            5 => outer_tile::<S, 5, NV>(start, kc, a, rs, ps, b, ldb, c, ldc),
            _ => outer_tile::<S, 6, NV>(start, kc, a, rs, ps, b, ldb, c, ldc),
        }
    }
}

/// `C[m][n] += Σ_p a(i, p) · B[p][j]` with `a(i, p) = a[i·rs + p·ps]`: reduction blocks of
/// [`KC`]; in each, column panels of `NV` vectors (then one vector, then scalar columns); in
/// each panel, row tiles of `MR`.
///
/// # Safety
/// `S`'s features are present. (Bounds are checked here: `a` must hold every `a(i, p)`, `b`
/// `k·n` and `c` `m·n` floats, or this panics.)
#[inline(always)]
pub(crate) unsafe fn outer<S: Simd, const MR: usize, const NV: usize>(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rs: usize,
    ps: usize,
    b: &[f32],
    c: &mut [f32],
) {
    // SAFETY: forwarded contract.
    unsafe { outer_from::<S, MR, NV>(m, n, k, a, rs, ps, b, None, c) }
}

/// [`outer`] with `C[i][j] = start[j] + Σ_p a(i, p) · B[p][j]` when `start` is given (the old
/// `C` is not read): the same operations per element as copying `start` into every row of `C`
/// and then calling [`outer`], so the same bits, without the copy's pass over `C`.
///
/// # Safety
/// As [`outer`] (`start`, when given, must hold `n` floats, or this panics).
#[inline(always)]
pub(crate) unsafe fn outer_from<S: Simd, const MR: usize, const NV: usize>(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rs: usize,
    ps: usize,
    b: &[f32],
    start: Option<&[f32]>,
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let start = start.map(|s| &s[..n]);
    if k == 0 {
        if let Some(s) = start {
            for row in c[..m * n].chunks_exact_mut(n) {
                row.copy_from_slice(s);
            }
        }
        return;
    }
    let a = &a[..(m - 1) * rs + (k - 1) * ps + 1];
    let b = &b[..k * n];
    let c = &mut c[..m * n];
    let l = S::LANES;
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        let mut j = 0;
        while j < n {
            let w = if n - j >= NV * l {
                NV * l
            } else if n - j >= l {
                l
            } else {
                n - j
            };
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                let at = i * rs + k0 * ps;
                let (ai, bj, ci) =
                    (ap.wrapping_add(at), bp.wrapping_add(k0 * n + j), cp.wrapping_add(i * n + j));
                // The first reduction block starts from `start` (when given), later ones from C.
                let first = if k0 == 0 { start } else { None };
                let sj = first.map_or(core::ptr::null(), |s| s[j..].as_ptr());
                if w == NV * l {
                    // SAFETY: rows i..i+rows < m, reduction k0..k0+kc ≤ k, columns j..j+w ≤ n:
                    // every `a(i+r, k0+p)`, `B[k0+p][j..j+w]`, `C[i+r][j..j+w]` (and, when not
                    // null, `start[j..j+w]`) is inside the slices bounded above; features by
                    // this function's contract.
                    unsafe { outer_rows::<S, MR, NV>(sj, rows, kc, ai, rs, ps, bj, n, ci, n) };
                } else if w == l {
                    // SAFETY: as above with w = one vector.
                    unsafe { outer_rows::<S, MR, 1>(sj, rows, kc, ai, rs, ps, bj, n, ci, n) };
                } else {
                    // Fewer columns than a vector: plain scalar code on the slices.
                    for r in 0..rows {
                        for jj in 0..w {
                            let mut s = match first {
                                Some(st) => st[j + jj],
                                None => c[(i + r) * n + j + jj],
                            };
                            for p in k0..k0 + kc {
                                s += a[(i + r) * rs + p * ps] * b[p * n + j + jj];
                            }
                            c[(i + r) * n + j + jj] = s;
                        }
                    }
                }
                i += rows;
            }
            j += w;
        }
        k0 += kc;
    }
}

/// `R × Q` dot products of rows of `A` (`lda` apart) and rows of `B` (`ldb` apart) over `k`,
/// added into `C` (rows `ldc` apart).
///
/// # Safety
/// `S`'s features are present; `a` valid for `r·lda + k` floats (`r < R`), `b` for `q·ldb + k`
/// (`q < Q`), `c` for `r·ldc + Q` (`r < R`).
#[inline(always)]
unsafe fn dot_tile<S: Simd, const R: usize, const Q: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let l = S::LANES;
    let kv = k / l * l;
    // SAFETY: the function's contract covers every offset (p < kv ≤ k, tail p < k).
    unsafe {
        let mut acc = [[S::zero(); Q]; R];
        let mut p = 0;
        while p < kv {
            let mut av = [S::zero(); R];
            for r in 0..R {
                av[r] = S::load(a.add(r * lda + p));
            }
            for q in 0..Q {
                let bv = S::load(b.add(q * ldb + p));
                for r in 0..R {
                    acc[r][q] = S::fma(av[r], bv, acc[r][q]);
                }
            }
            p += l;
        }
        for r in 0..R {
            for q in 0..Q {
                let mut s = S::hsum(acc[r][q]);
                for p in kv..k {
                    s += *a.add(r * lda + p) * *b.add(q * ldb + p);
                }
                *c.add(r * ldc + q) += s;
            }
        }
    }
}

/// `C[m][n] += A[m][k] · B[n][k]ᵀ` by [`dot_tile`]s of `TR × TQ`.
///
/// # Safety
/// `S`'s features are present (bounds are checked here: panics on short slices).
#[inline(always)]
pub(crate) unsafe fn gemm_nt<S: Simd, const TR: usize, const TQ: usize>(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let (a, b, c) = (&a[..m * k], &b[..n * k], &mut c[..m * n]);
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let mut i = 0;
    while i < m {
        let rows = if m - i >= TR { TR } else { 1 };
        let mut j = 0;
        while j < n {
            let cols = if n - j >= TQ { TQ } else { 1 };
            let (ai, bj, cij) =
                (ap.wrapping_add(i * k), bp.wrapping_add(j * k), cp.wrapping_add(i * n + j));
            // SAFETY: rows i..i+rows ≤ m of A (k each), rows j..j+cols ≤ n of B (k each), and
            // C[i..i+rows][j..j+cols] are inside the slices bounded above.
            unsafe {
                match (rows == TR, cols == TQ) {
                    (true, true) => dot_tile::<S, TR, TQ>(k, ai, k, bj, k, cij, n),
                    (true, false) => dot_tile::<S, TR, 1>(k, ai, k, bj, k, cij, n),
                    (false, true) => dot_tile::<S, 1, TQ>(k, ai, k, bj, k, cij, n),
                    (false, false) => dot_tile::<S, 1, 1>(k, ai, k, bj, k, cij, n),
                }
            }
            j += cols;
        }
        i += rows;
    }
}

/// `out[n] = start (or out) + Σ_t a_t · B_t` — one row per term through [`outer`] (`MR = 1`,
/// panels of `NV` vectors). The caller ([`Fast`](crate::Fast)) has checked the sizes with
/// `tinylstm::kernels::assert_gemv_terms`, so every term's `B` holds `k_t · n` floats.
///
/// # Safety
/// `S`'s features are present (bounds are checked: panics on short slices).
#[inline(always)]
pub(crate) unsafe fn gemv_terms<S: Simd, const NV: usize>(
    n: usize,
    start: Option<&[f32]>,
    terms: &[(&[f32], &[f32])],
    out: &mut [f32],
) {
    let out = &mut out[..n];
    if let Some(s) = start {
        out.copy_from_slice(&s[..n]);
    }
    if n == 0 {
        return;
    }
    for &(a, b) in terms {
        let k = a.len().min(b.len() / n);
        // SAFETY: features by this function's contract; `outer` checks its own bounds.
        unsafe { outer::<S, 1, NV>(1, n, k, a, k, 1, b, out) };
    }
}
