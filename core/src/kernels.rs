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
//! # Sizes and panics
//! One rule for every kernel that takes dimensions ([`gemm_nn`], [`gemm_nt`], [`gemm_tn`],
//! [`gemv_terms`], [`add_column_sums`], [`activate_gates`]) and for every [`Kernels`] path:
//! it **panics**, in release builds too, when a slice is shorter than its dimensions need
//! (`A [m][k]` needs `m·k` floats, whatever `n`; a zero dimension needs nothing), before it
//! reads or writes anything. A longer slice is allowed: the elements past what the dimensions
//! need are neither read nor written. The check is a comparison per slice per call, never per
//! element; the `assert_*` functions below are the checks themselves, which other paths
//! (`tinylstm-fast`) call too. [`dot`] and [`axpy`] take no dimensions and work over the
//! common length of their slices.
//!
//! A panic here is a bug in the caller: the model-level functions validate every length
//! (returning [`Error`](crate::Error)) before calling a kernel, so no caller input reaches a
//! kernel with wrong sizes.

/// Panics with `msg` unless `len ≥ rows · cols` (and the product fits a `usize`).
#[inline(always)]
fn need(len: usize, rows: usize, cols: usize, msg: &'static str) {
    match rows.checked_mul(cols) {
        Some(n) if len >= n => {}
        _ => too_short(msg),
    }
}

/// The panic of a failed size check, out of line: one copy, off the kernels' hot paths.
#[cold]
#[inline(never)]
fn too_short(msg: &'static str) -> ! {
    panic!("{}", msg)
}

/// The size check of [`gemm_nn`]: panics unless `a ≥ m·k`, `b ≥ k·n` and `c ≥ m·n` floats.
#[inline]
pub fn assert_gemm_nn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &[f32]) {
    need(a.len(), m, k, "gemm_nn: A is shorter than m·k");
    need(b.len(), k, n, "gemm_nn: B is shorter than k·n");
    need(c.len(), m, n, "gemm_nn: C is shorter than m·n");
}

/// The size check of [`gemm_nt`]: panics unless `a ≥ m·k`, `b ≥ n·k` and `c ≥ m·n` floats.
#[inline]
pub fn assert_gemm_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &[f32]) {
    need(a.len(), m, k, "gemm_nt: A is shorter than m·k");
    need(b.len(), n, k, "gemm_nt: B is shorter than n·k");
    need(c.len(), m, n, "gemm_nt: C is shorter than m·n");
}

/// The size check of [`gemm_tn`]: panics unless `a ≥ k·m`, `b ≥ k·n` and `c ≥ m·n` floats.
#[inline]
pub fn assert_gemm_tn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &[f32]) {
    need(a.len(), k, m, "gemm_tn: A is shorter than k·m");
    need(b.len(), k, n, "gemm_tn: B is shorter than k·n");
    need(c.len(), m, n, "gemm_tn: C is shorter than m·n");
}

/// The size check of [`gemv_terms`]: panics unless `out` (and `start`, when given) holds `n`
/// floats and every term's `B` holds `a.len() · n`.
#[inline]
pub fn assert_gemv_terms(n: usize, start: Option<&[f32]>, terms: &[(&[f32], &[f32])], out: &[f32]) {
    need(out.len(), 1, n, "gemv_terms: out is shorter than n");
    if let Some(s) = start {
        need(s.len(), 1, n, "gemv_terms: start is shorter than n");
    }
    for (a, b) in terms {
        need(b.len(), a.len(), n, "gemv_terms: a term's B is shorter than a.len()·n");
    }
}

/// The size check of [`add_column_sums`]: panics unless `x ≥ rows·cols` and `out ≥ cols`.
#[inline]
pub fn assert_column_sums(rows: usize, cols: usize, x: &[f32], out: &[f32]) {
    need(x.len(), rows, cols, "add_column_sums: x is shorter than rows·cols");
    need(out.len(), 1, cols, "add_column_sums: out is shorter than cols");
}

/// The size check of [`activate_gates`]: panics unless `z ≥ 4·h` floats.
#[inline]
pub fn assert_gates(z: &[f32], h: usize) {
    need(z.len(), 4, h, "activate_gates: z is shorter than 4·h");
}

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

/// Rows of `C` in one register tile of [`gemm_nn`] / [`gemm_tn`].
///
/// Tile shapes only decide which values stay in registers; they never change the order of
/// the additions into an element (the order contract), so they may differ per target and the
/// results stay bit-identical across targets.
#[cfg(not(target_arch = "arm"))]
pub const TILE_ROWS: usize = 4;
/// Columns of `C` in one register tile of [`gemm_nn`] / [`gemm_tn`] (two AVX vectors).
#[cfg(not(target_arch = "arm"))]
pub const TILE_COLS: usize = 32;
/// Rows of `C` in one register tile of [`gemm_nn`] / [`gemm_tn`] (Cortex-M: 32 FPU registers).
#[cfg(target_arch = "arm")]
pub const TILE_ROWS: usize = 2;
/// Columns of `C` in one register tile of [`gemm_nn`] / [`gemm_tn`] (Cortex-M: 32 FPU registers).
#[cfg(target_arch = "arm")]
pub const TILE_COLS: usize = 8;

/// Where the `A` operand of an outer-product GEMM lives: element `(r, p)` (row `r` of the `C`
/// tile, reduction index `p`) is `a[r·row + p·step]`.
#[derive(Clone, Copy)]
struct Strides {
    row: usize,
    step: usize,
}

/// One `R × W` tile of `C` (rows `ldc` apart) += `Σ_{p ∈ ks} a(r, p) · b[p·ldb ..][..W]`, one
/// product at a time per element, `p` increasing (or decreasing when `REV`).
#[inline(always)]
fn outer_tile<const R: usize, const W: usize, const REV: bool>(
    ks: core::ops::Range<usize>,
    a: &[f32],
    s: Strides,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let mut acc = [[0.0f32; W]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        row.copy_from_slice(&c[r * ldc..r * ldc + W]);
    }
    let mut step = |p: usize| {
        let bp: &[f32; W] = match b[p * ldb..p * ldb + W].try_into() {
            Ok(v) => v,
            Err(_) => return,
        };
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = a[r * s.row + p * s.step];
            for l in 0..W {
                row[l] += ar * bp[l];
            }
        }
    };
    #[cfg(target_arch = "arm")]
    if REV {
        ks.rev().for_each(&mut step);
    } else {
        ks.for_each(&mut step);
    }
    // Plain loops on hosts: the closure then inlines into the `#[target_feature]` copies of
    // these kernels that `tinylstm-fast` dispatches to at run time (through `for_each` it
    // stays a separate function, compiled for the baseline's vectors).
    #[cfg(not(target_arch = "arm"))]
    if REV {
        for p in ks.rev() {
            step(p);
        }
    } else {
        for p in ks {
            step(p);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[r * ldc..r * ldc + W].copy_from_slice(row);
    }
}

/// Dispatches a tile of `rows ≤ TILE_ROWS` rows and width `W` to its const instance.
#[inline(always)]
fn outer_rows<const W: usize, const REV: bool>(
    rows: usize,
    ks: core::ops::Range<usize>,
    a: &[f32],
    s: Strides,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    // `rows` is at most TILE_ROWS: the last arm is the full tile.
    match rows {
        1 => outer_tile::<1, W, REV>(ks, a, s, b, ldb, c, ldc),
        #[cfg(not(target_arch = "arm"))]
        2 => outer_tile::<2, W, REV>(ks, a, s, b, ldb, c, ldc),
        #[cfg(not(target_arch = "arm"))]
        3 => outer_tile::<3, W, REV>(ks, a, s, b, ldb, c, ldc),
        _ => outer_tile::<TILE_ROWS, W, REV>(ks, a, s, b, ldb, c, ldc),
    }
}

/// Rows of `C` per cache block of the outer-product GEMMs: the block's rows of `A` stay in L1
/// while every column panel passes over them, and each panel of `B` stays in L1 while every
/// register tile of the block passes over it.
const BLOCK_ROWS: usize = 8 * TILE_ROWS;

/// Reduction steps per cache block: a long reduction (the weight gradients sum over every time
/// step and sequence) is cut into blocks so that a panel of `B` stays in L1. Blocks run in the
/// order of the reduction (last first when `REV`), so every element still adds its products
/// one at a time in the contract's order.
const BLOCK_STEPS: usize = 128;

/// `C[m][n] += Σ_p a(i, p) · B[p][j]` by register tiles: reduction blocks of [`BLOCK_STEPS`];
/// in each, row blocks of [`BLOCK_ROWS`]; in each, column panels of [`TILE_COLS`] (then
/// 4-wide and 1-wide edges); in each panel, the row tiles.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn outer_gemm<const REV: bool>(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    s: Strides,
    b: &[f32],
    c: &mut [f32],
) {
    let blocks = k.div_ceil(BLOCK_STEPS);
    for kb in 0..blocks {
        let kb = if REV { blocks - 1 - kb } else { kb };
        let ks = kb * BLOCK_STEPS..((kb + 1) * BLOCK_STEPS).min(k);
        let mut i0 = 0;
        while i0 < m {
            let i1 = (i0 + BLOCK_ROWS).min(m);
            let mut j = 0;
            while j < n {
                let w = if n - j >= TILE_COLS {
                    TILE_COLS
                } else if n - j >= 4 {
                    4
                } else {
                    1
                };
                let mut i = i0;
                while i < i1 {
                    let rows = (i1 - i).min(TILE_ROWS);
                    let (ai, bj, ci) = (&a[i * s.row..], &b[j..], &mut c[i * n + j..]);
                    let ks = ks.clone();
                    match w {
                        TILE_COLS => outer_rows::<TILE_COLS, REV>(rows, ks, ai, s, bj, n, ci, n),
                        4 => outer_rows::<4, REV>(rows, ks, ai, s, bj, n, ci, n),
                        _ => outer_rows::<1, REV>(rows, ks, ai, s, bj, n, ci, n),
                    }
                    i += rows;
                }
                j += w;
            }
            i0 = i1;
        }
    }
}

/// `C[m][n] += A[m][k] · B[k][n]`.
///
/// Per element, products are added into `C` one at a time in increasing `k` (see the order
/// contract), exactly as [`reference::gemm_nn`] does; register tiles of
/// [`TILE_ROWS`]` × `[`TILE_COLS`] reuse each loaded value of `A` and `B` several times.
///
/// # Panics
/// When a slice is shorter than its dimensions need ([`assert_gemm_nn`]; see the module docs).
/// (Always inlined on hosts: `tinylstm-fast` compiles it inside its `#[target_feature]` copies,
/// which only get the wide vectors when the body is inlined there.)
#[cfg_attr(not(target_arch = "arm"), inline(always))]
pub fn gemm_nn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert_gemm_nn(m, n, k, a, b, c);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let (a, b, c) = (&a[..m * k], &b[..k * n], &mut c[..m * n]);
    if m == 1 {
        gemv(n, a, b, c);
    } else {
        outer_gemm::<false>(m, n, k, a, Strides { row: k, step: 1 }, b, c);
    }
}

/// Columns of one panel of the one-row GEMM: as wide as the registers hold (x86-64: 8 AVX
/// accumulators, so each row of `B` is read in 256-byte runs; Cortex-M4F: 16 accumulators +
/// the value of `a` + one value of `B` in flight, of its 32 FPU registers).
#[cfg(not(target_arch = "arm"))]
const GEMV_COLS: usize = 64;
#[cfg(target_arch = "arm")]
const GEMV_COLS: usize = 16;

/// `c[n] += a[k] · B[k][n]` (one row: a streaming step, a batch-1 forward).
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn gemv(n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemv_terms(n, None, &[(a, b)], c);
}

/// One row of affine terms: `out[j] = start[j] + Σ_t Σ_p a_t[p] · B_t[p][j]` (or `out[j] +=`
/// the sums when `start` is `None`), for `a_t [k_t]` and `B_t [k_t][n]`.
///
/// Per element, the start value comes first, then each term's products one at a time in
/// increasing `p`, terms in order — the same operations as copying `start` into `out` and
/// calling [`gemm_nn`] with one row per term, so both give the same bits. Fusing the terms
/// keeps each output in a register across all of them: an LSTM step's `b + x·W + h·U` in one
/// pass (column panels as wide as the target's registers hold, then 4-wide and 1-wide edges).
///
/// # Panics
/// When `out` or `start` is shorter than `n`, or a term's `B` shorter than `k_t · n`
/// ([`assert_gemv_terms`]; see the module docs).
#[cfg_attr(not(target_arch = "arm"), inline(always))]
pub fn gemv_terms(n: usize, start: Option<&[f32]>, terms: &[(&[f32], &[f32])], out: &mut [f32]) {
    assert_gemv_terms(n, start, terms, out);
    let out = &mut out[..n];
    let mut j = 0;
    while j < n {
        let w = if n - j >= GEMV_COLS {
            GEMV_COLS
        } else if n - j >= 4 {
            4
        } else {
            1
        };
        let s = start.map(|s| &s[j..j + w]);
        let cj = &mut out[j..j + w];
        match w {
            GEMV_COLS => gemv_panel::<GEMV_COLS>(s, terms, n, j, cj),
            4 => gemv_panel::<4>(s, terms, n, j, cj),
            _ => gemv_panel::<1>(s, terms, n, j, cj),
        }
        j += w;
    }
}

/// `c[..W] = start[..W] (or c) + Σ_t Σ_p a_t[p] · B_t[p][j..j+W]` (rows of `ldb`), one product
/// at a time per element, terms in order, `p` increasing.
#[inline(always)]
fn gemv_panel<const W: usize>(
    start: Option<&[f32]>,
    terms: &[(&[f32], &[f32])],
    ldb: usize,
    j: usize,
    c: &mut [f32],
) {
    let Some(c) = c.first_chunk_mut::<W>() else {
        return;
    };
    let mut acc = match start.and_then(<[f32]>::first_chunk::<W>) {
        Some(s) => *s,
        None => *c,
    };
    for &(a, b) in terms {
        // Whole rows of `B` (constant length), so the column check is loop-invariant.
        for (&ap, row) in a.iter().zip(b.chunks_exact(ldb)) {
            if let Some(bp) = row.get(j..).and_then(<[f32]>::first_chunk::<W>) {
                for l in 0..W {
                    acc[l] += ap * bp[l];
                }
            }
        }
    }
    *c = acc;
}

/// Rows of `A` × rows of `B` in one register tile of [`gemm_nt`].
#[cfg(not(target_arch = "arm"))]
const NT_TILE: (usize, usize) = (2, 4);
#[cfg(target_arch = "arm")]
const NT_TILE: (usize, usize) = (1, 2);

/// `R × Q` dot products of rows of `a` (length `k`, `lda` apart) with rows of `b` (`ldb` apart),
/// each computed exactly as [`dot`] computes it, added into `c` (rows `ldc` apart).
#[inline(always)]
fn dot_tile<const R: usize, const Q: usize>(
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let chunks = k / LANES;
    let mut acc = [[[0.0f32; LANES]; Q]; R];
    for q in 0..chunks {
        let at: [&[f32; LANES]; R] = core::array::from_fn(|r| lanes(a, r * lda + q * LANES));
        let bt: [&[f32; LANES]; Q] = core::array::from_fn(|j| lanes(b, j * ldb + q * LANES));
        for r in 0..R {
            for j in 0..Q {
                for l in 0..LANES {
                    acc[r][j][l] += at[r][l] * bt[j][l];
                }
            }
        }
    }
    for r in 0..R {
        for j in 0..Q {
            let v = &acc[r][j];
            let mut s = ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
            for p in chunks * LANES..k {
                s += a[r * lda + p] * b[j * ldb + p];
            }
            c[r * ldc + j] += s;
        }
    }
}

/// `LANES` elements of `x` from `at` as an array reference (in bounds by the callers' sizes).
#[inline(always)]
fn lanes(x: &[f32], at: usize) -> &[f32; LANES] {
    x[at..].first_chunk::<LANES>().unwrap_or(&[0.0; LANES])
}

/// `C[m][n] += A[m][k] · B[n][k]ᵀ`: each element adds one [`dot`] of a row of `A` and a row of
/// `B`, bit for bit; tiles of several rows of `A` and `B` share their loads.
///
/// # Panics
/// When a slice is shorter than its dimensions need ([`assert_gemm_nt`]; see the module docs).
#[cfg_attr(not(target_arch = "arm"), inline)]
pub fn gemm_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert_gemm_nt(m, n, k, a, b, c);
    if m == 0 || n == 0 {
        return;
    }
    let (a, b, c) = (&a[..m * k], &b[..n * k], &mut c[..m * n]);
    let (tr, tq) = NT_TILE;
    let mut i = 0;
    while i < m {
        let rows = if m - i >= tr { tr } else { 1 };
        let mut j = 0;
        while j < n {
            let cols = if n - j >= tq { tq } else { 1 };
            let (ai, bj, cij) = (&a[i * k..], &b[j * k..], &mut c[i * n + j..]);
            match (rows == tr, cols == tq) {
                (true, true) => dot_tile::<{ NT_TILE.0 }, { NT_TILE.1 }>(k, ai, k, bj, k, cij, n),
                (true, false) => dot_tile::<{ NT_TILE.0 }, 1>(k, ai, k, bj, k, cij, n),
                (false, true) => dot_tile::<1, { NT_TILE.1 }>(k, ai, k, bj, k, cij, n),
                (false, false) => dot_tile::<1, 1>(k, ai, k, bj, k, cij, n),
            }
            j += cols;
        }
        i += rows;
    }
}

/// `C[m][n] += A[k][m]ᵀ · B[k][n]`: a sum of `k` outer products, added in **decreasing** `k`
/// (see the order contract), by the same register tiles as [`gemm_nn`].
///
/// # Panics
/// When a slice is shorter than its dimensions need ([`assert_gemm_tn`]; see the module docs).
#[cfg_attr(not(target_arch = "arm"), inline)]
pub fn gemm_tn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert_gemm_tn(m, n, k, a, b, c);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let (a, b, c) = (&a[..k * m], &b[..k * n], &mut c[..m * n]);
    outer_gemm::<true>(m, n, k, a, Strides { row: 1, step: m }, b, c);
}

/// `out[j] += Σ_r x[r][j]` over `rows` rows of `cols` columns (bias gradients), last row first.
///
/// # Panics
/// When `x` is shorter than `rows·cols` or `out` than `cols` ([`assert_column_sums`]).
#[cfg_attr(not(target_arch = "arm"), inline)]
pub fn add_column_sums(rows: usize, cols: usize, x: &[f32], out: &mut [f32]) {
    assert_column_sums(rows, cols, x, out);
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

/// The operations the model code needs from a kernel path: the seam between the math above the
/// kernels (written once, in [`lstm`](crate::lstm), [`model`](crate::model) and
/// [`train`](crate::train)) and the kernels themselves.
///
/// Shapes are as for the free functions of this module (row-major, dense, every GEMM *adds*
/// into `c`). Two implementations exist:
///
/// * [`Exact`] (this crate): the kernels of this module and the order contract — the default
///   everywhere and the only path on devices; host and device compute the same bits.
/// * a host-only fast path (the `tinylstm-fast` crate): fused multiply-add, explicit SIMD and
///   packing; results agree with [`Exact`] within f32 rounding, not bit for bit.
///
/// Every method has the same contract as the function it is named after, sizes included: it
/// panics on a slice shorter than its dimensions need (by the `assert_*` check of that
/// function, see the module docs). A path may compute the sums in any fixed order (the results
/// must be deterministic for given inputs), and must leave every element of `c` outside the
/// `m × n` result untouched.
///
/// The model functions take the path by value as a generic parameter (`forward_with`,
/// `step_with`, `loss_and_grad_with`, …; hence `Copy`); the functions without `_with` use
/// [`Exact`]. `Exact` is a zero-sized type whose methods call the module's functions directly,
/// so the seam compiles to the same code as calling them (no argument is passed for it).
///
/// ```
/// use tinylstm::kernels::{Exact, Kernels};
/// let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0, 5.0, 6.0]); // A [1][2], B [2][2]
/// let mut c = [0.5f32; 2];
/// Exact.gemm_nn(1, 2, 2, &a, &b, &mut c);
/// assert_eq!(c, [0.5 + 1.0 * 3.0 + 2.0 * 5.0, 0.5 + 1.0 * 4.0 + 2.0 * 6.0]);
/// ```
pub trait Kernels: Copy {
    /// `C[m][n] += A[m][k] · B[k][n]` (see [`gemm_nn`]).
    fn gemm_nn(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]);
    /// `C[m][n] += A[m][k] · B[n][k]ᵀ` (see [`gemm_nt`]).
    fn gemm_nt(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]);
    /// `C[m][n] += A[k][m]ᵀ · B[k][n]` (see [`gemm_tn`]).
    fn gemm_tn(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]);
    /// One row of affine terms `out[n] = start + Σ_t a_t · B_t` (see [`gemv_terms`]).
    fn gemv_terms(
        &self,
        n: usize,
        start: Option<&[f32]>,
        terms: &[(&[f32], &[f32])],
        out: &mut [f32],
    );
    /// `out[j] += Σ_r x[r][j]` over `rows × cols` (see [`add_column_sums`]).
    fn add_column_sums(&self, rows: usize, cols: usize, x: &[f32], out: &mut [f32]);
    /// Activates one LSTM row of pre-activations `z [4H]` in place: σ on the `i`, `f`, `o`
    /// blocks and tanh on the `c` block (Keras gate order `i, f, c, o`, blocks of `h`).
    ///
    /// The default applies [`sigmoid_in_place`](crate::math::sigmoid_in_place) and
    /// [`tanh_in_place`](crate::math::tanh_in_place). A path that keeps the exact bits may
    /// only change how the loop is compiled (wider vectors); the host's fast path computes σ
    /// and tanh its own way, within the error `tinylstm-fast` states and tests.
    #[inline(always)]
    fn activate_gates(&self, z: &mut [f32], h: usize) {
        activate_gates(z, h);
    }
    /// `C[m][n] = start[n] + A[m][k] · B[k][n]` (`start` in every row; the old `C` is not
    /// read): the same as filling every row of `C` with `start` and then
    /// [`gemm_nn`](Kernels::gemm_nn) — which the default does; a path may skip the fill.
    ///
    /// # Panics
    /// When `start` is shorter than `n`, or as [`gemm_nn`](Kernels::gemm_nn).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn gemm_nn_start(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        start: &[f32],
        c: &mut [f32],
    ) {
        assert_gemm_nn(m, n, k, a, b, c);
        need(start.len(), 1, n, "gemm_nn_start: start is shorter than n");
        if n > 0 {
            for row in c[..m * n].chunks_exact_mut(n) {
                row.copy_from_slice(&start[..n]);
            }
        }
        self.gemm_nn(m, n, k, a, b, c);
    }
    /// One LSTM time step of `B` sequences: `z += h_{t-1}·U`, then every row's cell (see
    /// [`lstm::step_rows`](crate::lstm::step_rows), the default). A path may reorder the work
    /// (row tiles whose cells are updated while their gates are in cache), not the operations.
    #[inline(always)]
    fn lstm_step(
        &self,
        step: crate::lstm::StepRows<'_>,
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
    ) {
        crate::lstm::step_rows(*self, step, c_prev, c_next, h_next);
    }
    /// One sequence's forward LSTM step (see [`cell_step`]): activates `z [4H]` in place with
    /// [`Kernels::activate_gates`], then writes `c_next [H]` and `h_next [H]` from
    /// `c_prev [H]`. The default is [`cell_step`]; a path that keeps the exact bits may only
    /// change how the loop is compiled (wider vectors), not the arithmetic.
    #[inline(always)]
    fn cell_step(
        &self,
        z: &mut [f32],
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
        h: usize,
    ) {
        self.activate_gates(z, h);
        cell_state(z, c_prev, c_next, h_next, h);
    }
    /// The forward LSTM steps of `rows` sequences at once: [`Kernels::cell_step`] on each row
    /// of `z [rows][4H]`, `c_prev`, `c_next`, `h_next [rows][H]`. The default loops over the
    /// rows; a path may run them in one call (independent rows keep the vector units busy).
    #[inline(always)]
    fn cell_steps(
        &self,
        rows: usize,
        z: &mut [f32],
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
        h: usize,
    ) {
        let g4 = 4 * h;
        for (((zb, cp), cn), hn) in z[..rows * g4]
            .chunks_exact_mut(g4)
            .zip(c_prev[..rows * h].chunks_exact(h))
            .zip(c_next[..rows * h].chunks_exact_mut(h))
            .zip(h_next[..rows * h].chunks_exact_mut(h))
        {
            self.cell_step(zb, cp, cn, hn, h);
        }
    }
    /// One sequence's backward LSTM step (see [`cell_backward`]). The default is
    /// [`cell_backward`]; a path that keeps the exact bits may only change how the loop is
    /// compiled.
    #[inline(always)]
    fn cell_backward(&self, step: CellBackward<'_>, h: usize) {
        cell_backward(step, h);
    }
}

/// `c_next = f ⊙ c_prev + i ⊙ g` and `h_next = o ⊙ tanh(c_next)` from one sequence's
/// activated gates `z [4H]` (`i, f, g, o` blocks of `h`); `c_prev`, `c_next`, `h_next` are
/// `[H]`. [`cell_step`] is [`activate_gates`] followed by this.
///
/// # Panics
/// When `z` is shorter than `4h` or another slice than `h`.
#[inline(always)]
pub fn cell_state(z: &[f32], c_prev: &[f32], c_next: &mut [f32], h_next: &mut [f32], h: usize) {
    let (ifg, o) = z[..4 * h].split_at(3 * h);
    let (i_f, g) = ifg.split_at(2 * h);
    let (i, f) = i_f.split_at(h);
    let (cp, cn, hn) = (&c_prev[..h], &mut c_next[..h], &mut h_next[..h]);
    for j in 0..h {
        let c = f[j] * cp[j] + i[j] * g[j];
        cn[j] = c;
        hn[j] = o[j] * crate::math::tanh(c);
    }
}

/// One sequence's forward LSTM step: [`activate_gates`] on the pre-activations `z [4H]` (in
/// place), then [`cell_state`].
///
/// # Panics
/// When `z` is shorter than `4h` or another slice than `h`.
#[inline]
pub fn cell_step(z: &mut [f32], c_prev: &[f32], c_next: &mut [f32], h_next: &mut [f32], h: usize) {
    activate_gates(z, h);
    cell_state(z, c_prev, c_next, h_next, h);
}

/// The operands of one sequence's backward LSTM step ([`cell_backward`]); every slice is
/// `[H]` except `z`.
#[derive(Debug)]
pub struct CellBackward<'a> {
    /// On entry the step's activated gates `[4H]` (`i, f, g, o`); on return the
    /// pre-activation gradients `dz [4H]`.
    pub z: &'a mut [f32],
    /// The cell state the step started from, `c_{t-1}`.
    pub c_prev: &'a [f32],
    /// The step's cell state `c_t`.
    pub c_cur: &'a [f32],
    /// The gradient at `h_t` carried from the following step.
    pub dh: &'a [f32],
    /// The gradient at `h_t` from the layer above, if any (added to `dh`).
    pub above: Option<&'a [f32]>,
    /// On entry the gradient at `c_t`; on return the gradient at `c_{t-1}`.
    pub dc: &'a mut [f32],
}

/// One sequence's backward LSTM step: from the gradients at `h_t` (`dh`, plus `above`) and at
/// `c_t` (`dc`), overwrites the gates with `dz` and `dc` with the gradient at `c_{t-1}`.
///
/// # Panics
/// When `z` is shorter than `4h` or another slice than `h`.
#[inline(always)]
pub fn cell_backward(step: CellBackward<'_>, h: usize) {
    let (ifg, o) = step.z[..4 * h].split_at_mut(3 * h);
    let (i_f, g) = ifg.split_at_mut(2 * h);
    let (i, f) = i_f.split_at_mut(h);
    let (cp, cc, dh_in) = (&step.c_prev[..h], &step.c_cur[..h], &step.dh[..h]);
    let dc_io = &mut step.dc[..h];
    let above = step.above.map(|a| &a[..h]);
    for j in 0..h {
        let dh = match above {
            Some(a) => dh_in[j] + a[j],
            None => dh_in[j],
        };
        let (ig, fg, gg, og) = (i[j], f[j], g[j], o[j]);
        let tc = crate::math::tanh(cc[j]);
        let dc = dc_io[j] + dh * og * (1.0 - tc * tc);
        let d_o = dh * tc;
        i[j] = dc * gg * ig * (1.0 - ig);
        f[j] = dc * cp[j] * fg * (1.0 - fg);
        g[j] = dc * ig * (1.0 - gg * gg);
        o[j] = d_o * og * (1.0 - og);
        dc_io[j] = dc * fg;
    }
}

/// σ on the `i, f, o` blocks and tanh on the `c` block of one row `[4H]` (blocks of `h`);
/// elements of `z` past `4h` are not touched.
///
/// # Panics
/// When `z` is shorter than `4h` ([`assert_gates`]).
#[inline]
pub fn activate_gates(z: &mut [f32], h: usize) {
    assert_gates(z, h);
    let z = &mut z[..4 * h];
    let (i_f, rest) = z.split_at_mut(2 * h);
    let (g, o) = rest.split_at_mut(h);
    crate::math::sigmoid_in_place(i_f);
    crate::math::tanh_in_place(g);
    crate::math::sigmoid_in_place(o);
}

/// The exact kernel path: this module's kernels, the order contract, the same bits on every
/// target. The default of every model function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exact;

impl Kernels for Exact {
    #[inline]
    fn gemm_nn(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        gemm_nn(m, n, k, a, b, c);
    }
    #[inline]
    fn gemm_nt(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        gemm_nt(m, n, k, a, b, c);
    }
    #[inline]
    fn gemm_tn(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        gemm_tn(m, n, k, a, b, c);
    }
    #[inline]
    fn gemv_terms(
        &self,
        n: usize,
        start: Option<&[f32]>,
        terms: &[(&[f32], &[f32])],
        out: &mut [f32],
    ) {
        gemv_terms(n, start, terms, out);
    }
    #[inline]
    fn add_column_sums(&self, rows: usize, cols: usize, x: &[f32], out: &mut [f32]) {
        add_column_sums(rows, cols, x, out);
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
