//! # tinylstm-fast
//!
//! The host's fast kernel path for [`tinylstm`]: the same operations as the core's exact
//! kernels ([`tinylstm::kernels::Kernels`]), computed as fast as the CPU allows — fused
//! multiply-add and explicit SIMD, chosen **at run time** ([`Isa::detect`]), so one binary
//! runs on any CPU of its architecture:
//!
//! | instruction set | where | vector | GEMM register tile (`C` rows × columns) |
//! |---|---|---|---|
//! | [`Isa::Avx512`] | x86-64 with AVX-512F | 16 × f32 | 6 × 64 |
//! | [`Isa::Avx2Fma`] | x86-64 with AVX2 and FMA | 8 × f32 | 6 × 16 |
//! | [`Isa::Neon`] | aarch64 | 4 × f32 | 6 × 16 |
//! | [`Isa::Portable`] | anything (and Miri) | 4 × f32, unfused | 6 × 8 |
//!
//! **What it gives up.** The exact path keeps the order contract (no FMA, a fixed order of
//! additions), which makes host inference equal the device's bit for bit. This path fuses and
//! reorders, so its results differ from the exact path's in the last bits (within the parity
//! tolerance of the tests: relative 1e-4 of the sums' magnitude). It is **deterministic**: for
//! given inputs, instruction set and shapes it computes every element in one fixed order (no
//! threads inside a kernel, no data-dependent blocking), so a training run is repeatable for
//! a seed and thread count on one machine, and resumed runs continue bit for bit.
//!
//! **Why our own micro-kernels and no GEMM crate.** The LSTM's GEMMs are small in one
//! dimension: the per-step recurrent product is `[B][H] × [H][4H]` with `B` = 16 or 32 rows
//! (a batch of 32 split over two threads), and the batch-1 forward is a vector–matrix product.
//! A general GEMM packs both operands on every call; for these shapes the packing costs as
//! much as the multiply (measured in BENCHMARKS.md with `matrixmultiply` 0.3, the best-kept
//! pure-Rust sgemm). Our kernels read `A` and `B` in place (row-major `B` already streams a
//! row of 64 columns per reduction step, which is what a packed panel would give), keep a
//! 6 × 64 tile of `C` in 24 of AVX-512's 32 registers, and block the reduction by 256 steps so
//! the panel of `B` stays in L2.
//!
//! `unsafe` lives in this crate only: the intrinsics (which need their target features) and
//! the raw-pointer tiles. Every entry point checks the slice lengths its shapes need before
//! any pointer arithmetic (panicking like the exact kernels on short slices), and every
//! `unsafe` block states the bound it relies on. The tests compare every kernel with the
//! core's scalar reference over odd and large shapes on every instruction set this CPU has,
//! and the portable instantiation runs under Miri.
//!
//! ```
//! use tinylstm::kernels::Kernels;
//! let fast = tinylstm_fast::Fast::new();
//! let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0, 5.0, 6.0]); // A [1][2], B [2][2]
//! let mut c = [0.0f32; 2];
//! fast.gemm_nn(1, 2, 2, &a, &b, &mut c);
//! assert_eq!(c, [13.0, 16.0]);
//! ```

pub mod forward;
mod generic;
mod simd;

use simd::Portable;
use tinylstm::kernels::Kernels;

/// An instruction set the fast path can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 AVX-512F (16 lanes, FMA).
    Avx512,
    /// x86-64 AVX2 + FMA (8 lanes).
    Avx2Fma,
    /// aarch64 NEON (4 lanes, FMA).
    Neon,
    /// Portable Rust (no intrinsics), for any other CPU and for Miri.
    Portable,
}

impl Isa {
    /// The fastest set this CPU supports (always [`Isa::Portable`] under Miri).
    pub fn detect() -> Isa {
        Isa::ALL.into_iter().find(|i| i.is_supported()).unwrap_or(Isa::Portable)
    }

    /// Every set, fastest first.
    pub const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Portable];

    /// True when this CPU can run the set.
    pub fn is_supported(self) -> bool {
        if cfg!(miri) {
            return self == Isa::Portable;
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Lower-case name (`avx512`, `avx2+fma`, `neon`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Neon => "neon",
            Isa::Portable => "portable",
        }
    }
}

/// The fast kernel path (see the crate docs): a [`Kernels`] implementation bound to one
/// instruction set that this CPU supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fast {
    isa: Isa,
}

impl Default for Fast {
    fn default() -> Self {
        Fast::new()
    }
}

impl Fast {
    /// The fastest instruction set of this CPU ([`Isa::detect`]).
    pub fn new() -> Fast {
        Fast { isa: Isa::detect() }
    }

    /// A path on `isa`, or `None` when this CPU does not support it.
    pub fn with_isa(isa: Isa) -> Option<Fast> {
        isa.is_supported().then_some(Fast { isa })
    }

    /// The instruction set in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// Defines one `#[target_feature]` entry point per kernel for an instruction set.
macro_rules! entry_points {
    ($mod:ident, $simd:ty, $feat:literal, mr = $mr:literal, nv = $nv:literal, gemv_nv = $gnv:literal, nt = ($tr:literal, $tq:literal)) => {
        mod $mod {
            #[allow(unused_imports)]
            use super::*;
            type S = $simd;

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn gemm_nn(
                m: usize,
                n: usize,
                k: usize,
                a: &[f32],
                b: &[f32],
                c: &mut [f32],
            ) {
                // SAFETY: the caller checked the features (Isa::is_supported); bounds are checked inside.
                unsafe {
                    if m == 1 {
                        generic::outer::<S, 1, $gnv>(m, n, k, a, k, 1, b, c)
                    } else {
                        generic::outer::<S, $mr, $nv>(m, n, k, a, k, 1, b, c)
                    }
                }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn gemm_nn_start(
                m: usize,
                n: usize,
                k: usize,
                a: &[f32],
                b: &[f32],
                start: &[f32],
                c: &mut [f32],
            ) {
                // SAFETY: as gemm_nn; `outer_from` checks `start` too.
                unsafe {
                    if m == 1 {
                        generic::outer_from::<S, 1, $gnv>(m, n, k, a, k, 1, b, Some(start), c)
                    } else {
                        generic::outer_from::<S, $mr, $nv>(m, n, k, a, k, 1, b, Some(start), c)
                    }
                }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn gemm_tn(
                m: usize,
                n: usize,
                k: usize,
                a: &[f32],
                b: &[f32],
                c: &mut [f32],
            ) {
                // SAFETY: as gemm_nn; A is [k][m], so a(i, p) = a[i + p·m].
                unsafe { generic::outer::<S, $mr, $nv>(m, n, k, a, 1, m, b, c) }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn gemm_nt(
                m: usize,
                n: usize,
                k: usize,
                a: &[f32],
                b: &[f32],
                c: &mut [f32],
            ) {
                // SAFETY: as gemm_nn.
                unsafe { generic::gemm_nt::<S, $tr, $tq>(m, n, k, a, b, c) }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn gemv_terms(
                n: usize,
                start: Option<&[f32]>,
                terms: &[(&[f32], &[f32])],
                out: &mut [f32],
            ) {
                // SAFETY: as gemm_nn.
                unsafe { generic::gemv_terms::<S, $gnv>(n, start, terms, out) }
            }

            /// The exact column sums and activations, compiled for this set's vectors (same
            /// functions, so the same values as the exact path).
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn add_column_sums(
                rows: usize,
                cols: usize,
                x: &[f32],
                out: &mut [f32],
            ) {
                tinylstm::kernels::add_column_sums(rows, cols, x, out)
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn activate_gates(z: &mut [f32], h: usize) {
                tinylstm::kernels::activate_gates(z, h)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
entry_points!(avx512, simd::x86::Avx512, "avx512f", mr = 6, nv = 4, gemv_nv = 8, nt = (4, 4));
#[cfg(target_arch = "x86_64")]
entry_points!(avx2, simd::x86::Avx2, "avx2,fma", mr = 6, nv = 2, gemv_nv = 8, nt = (2, 4));
#[cfg(target_arch = "aarch64")]
entry_points!(neon, simd::arm::Neon, "neon", mr = 6, nv = 4, gemv_nv = 8, nt = (4, 4));

/// The portable instantiation: no target features needed.
mod portable {
    use super::*;
    type S = Portable;
    pub(super) fn gemm_nn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        // SAFETY: `Portable` needs no target feature; bounds are checked inside.
        unsafe { generic::outer::<S, 6, 2>(m, n, k, a, k, 1, b, c) }
    }
    pub(super) fn gemm_nn_start(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        start: &[f32],
        c: &mut [f32],
    ) {
        // SAFETY: as gemm_nn; `outer_from` checks `start` too.
        unsafe { generic::outer_from::<S, 6, 2>(m, n, k, a, k, 1, b, Some(start), c) }
    }
    pub(super) fn gemm_tn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        // SAFETY: as gemm_nn.
        unsafe { generic::outer::<S, 6, 2>(m, n, k, a, 1, m, b, c) }
    }
    pub(super) fn gemm_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        // SAFETY: as gemm_nn.
        unsafe { generic::gemm_nt::<S, 2, 4>(m, n, k, a, b, c) }
    }
    pub(super) fn gemv_terms(
        n: usize,
        start: Option<&[f32]>,
        terms: &[(&[f32], &[f32])],
        out: &mut [f32],
    ) {
        // SAFETY: as gemm_nn.
        unsafe { generic::gemv_terms::<S, 4>(n, start, terms, out) }
    }
}

/// Calls the entry point of `self.isa` for one kernel.
macro_rules! dispatch {
    ($self:ident, $f:ident ( $($arg:expr),* ), portable = $portable:expr) => {
        match $self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Fast` only holds an `Isa` that `is_supported` on this CPU.
            Isa::Avx512 => unsafe { avx512::$f($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2Fma => unsafe { avx2::$f($($arg),*) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: as above.
            Isa::Neon => unsafe { neon::$f($($arg),*) },
            _ => $portable,
        }
    };
}

/// `start[..n]` into each of the `m` rows of `c [m][n]` (sizes checked by the caller).
fn fill_rows(m: usize, n: usize, start: &[f32], c: &mut [f32]) {
    if n > 0 {
        for row in c[..m * n].chunks_exact_mut(n) {
            row.copy_from_slice(&start[..n]);
        }
    }
}

/// Every method first runs the exact kernel's size check (`tinylstm::kernels::assert_*`), so
/// a short slice panics here exactly as it does on the exact path, whatever the instruction set.
impl Kernels for Fast {
    fn gemm_nn(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        tinylstm::kernels::assert_gemm_nn(m, n, k, a, b, c);
        dispatch!(self, gemm_nn(m, n, k, a, b, c), portable = portable::gemm_nn(m, n, k, a, b, c))
    }

    /// The start row loaded into the GEMM's register tiles (no pass to fill `C` first), or
    /// the fill then `gemm_nn` when `TINYLSTM_FAST_PROJECTION=copy` ([`forward`]).
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
        tinylstm::kernels::assert_gemm_nn(m, n, k, a, b, c);
        assert!(start.len() >= n, "gemm_nn_start: start is shorter than n");
        if forward::StepConfig::from_env().projection == forward::Projection::Copy {
            fill_rows(m, n, start, c);
            return self.gemm_nn(m, n, k, a, b, c);
        }
        dispatch!(
            self,
            gemm_nn_start(m, n, k, a, b, start, c),
            portable = portable::gemm_nn_start(m, n, k, a, b, start, c)
        )
    }

    fn gemm_nt(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        tinylstm::kernels::assert_gemm_nt(m, n, k, a, b, c);
        dispatch!(self, gemm_nt(m, n, k, a, b, c), portable = portable::gemm_nt(m, n, k, a, b, c))
    }

    fn gemm_tn(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        tinylstm::kernels::assert_gemm_tn(m, n, k, a, b, c);
        dispatch!(self, gemm_tn(m, n, k, a, b, c), portable = portable::gemm_tn(m, n, k, a, b, c))
    }

    fn gemv_terms(
        &self,
        n: usize,
        start: Option<&[f32]>,
        terms: &[(&[f32], &[f32])],
        out: &mut [f32],
    ) {
        tinylstm::kernels::assert_gemv_terms(n, start, terms, out);
        dispatch!(
            self,
            gemv_terms(n, start, terms, out),
            portable = portable::gemv_terms(n, start, terms, out)
        )
    }

    fn add_column_sums(&self, rows: usize, cols: usize, x: &[f32], out: &mut [f32]) {
        tinylstm::kernels::assert_column_sums(rows, cols, x, out);
        dispatch!(
            self,
            add_column_sums(rows, cols, x, out),
            portable = tinylstm::kernels::add_column_sums(rows, cols, x, out)
        )
    }

    fn activate_gates(&self, z: &mut [f32], h: usize) {
        tinylstm::kernels::assert_gates(z, h);
        dispatch!(self, activate_gates(z, h), portable = tinylstm::kernels::activate_gates(z, h))
    }

    /// Row tiles with the cells updated per tile, or one GEMM; at batch 1 the chosen one-row
    /// kernel ([`forward`], settings from the environment).
    fn lstm_step(
        &self,
        step: tinylstm::lstm::StepRows<'_>,
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
    ) {
        let config = forward::StepConfig::from_env();
        forward::lstm_step_with(*self, config, step, c_prev, c_next, h_next)
    }
}

/// The exact kernels ([`tinylstm::kernels`]) compiled once more for the vector instructions of
/// the CPU the program runs on, chosen at run time like the fast ones: the same Rust functions
/// (the core marks them `#[inline]` on hosts, so they are generated here inside each
/// `#[target_feature]` function), hence the same operations in the same order — Rust never
/// fuses a multiply and an add, and the kernels fix every order of additions — so the same bits
/// as the baseline build, on wider vectors. [`KernelPath::Exact`] runs through it.
mod exact {
    use super::Isa;
    use std::sync::OnceLock;

    /// The widest set for the exact kernels on this CPU (detected once).
    pub(super) fn isa() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2Fma]
                .into_iter()
                .find(|i| i.is_supported())
                .unwrap_or(Isa::Portable)
        })
    }

    macro_rules! exact_entry_points {
        ($mod:ident, $feat:literal) => {
            pub(super) mod $mod {
                use tinylstm::kernels as k;

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn gemm_nn(
                    m: usize,
                    n: usize,
                    kk: usize,
                    a: &[f32],
                    b: &[f32],
                    c: &mut [f32],
                ) {
                    k::gemm_nn(m, n, kk, a, b, c)
                }

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn gemm_nt(
                    m: usize,
                    n: usize,
                    kk: usize,
                    a: &[f32],
                    b: &[f32],
                    c: &mut [f32],
                ) {
                    k::gemm_nt(m, n, kk, a, b, c)
                }

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn gemm_tn(
                    m: usize,
                    n: usize,
                    kk: usize,
                    a: &[f32],
                    b: &[f32],
                    c: &mut [f32],
                ) {
                    k::gemm_tn(m, n, kk, a, b, c)
                }

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn gemv_terms(
                    n: usize,
                    start: Option<&[f32]>,
                    terms: &[(&[f32], &[f32])],
                    out: &mut [f32],
                ) {
                    k::gemv_terms(n, start, terms, out)
                }

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn add_column_sums(
                    rows: usize,
                    cols: usize,
                    x: &[f32],
                    out: &mut [f32],
                ) {
                    k::add_column_sums(rows, cols, x, out)
                }

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn activate_gates(z: &mut [f32], h: usize) {
                    k::activate_gates(z, h)
                }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    exact_entry_points!(avx512, "avx512f");
    #[cfg(target_arch = "x86_64")]
    exact_entry_points!(avx2, "avx2,fma");
}

/// Calls the exact kernel `f` compiled for [`exact::isa`] (the baseline build elsewhere).
macro_rules! exact_dispatch {
    ($f:ident ( $($arg:expr),* )) => {
        match exact::isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `exact::isa` only returns a set that `is_supported` on this CPU; the
            // kernel checks its slice lengths itself (safe code).
            Isa::Avx512 => unsafe { exact::avx512::$f($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2Fma => unsafe { exact::avx2::$f($($arg),*) },
            _ => tinylstm::kernels::$f($($arg),*),
        }
    };
}

/// The kernel path a host program chose at run time: the exact one (the device's bits) or the
/// fast one. Implements [`Kernels`] by forwarding to the chosen path (one predictable branch
/// per kernel call), so a program holds one value and passes it to the core's `*_with`
/// functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// [`tinylstm::kernels::Exact`]: the order contract, bit-identical with the device (its
    /// kernels compiled for this CPU's widest vectors, chosen at run time: same bits).
    Exact,
    /// [`Fast`] on the instruction set it holds.
    Fast(Fast),
}

impl KernelPath {
    /// The fast path on this CPU's best instruction set.
    pub fn fast() -> KernelPath {
        KernelPath::Fast(Fast::new())
    }

    /// `fast` when `fast` is true, else `exact`.
    pub fn choose(fast: bool) -> KernelPath {
        if fast {
            KernelPath::fast()
        } else {
            KernelPath::Exact
        }
    }

    /// `exact`, or `fast (avx512)` and the like: for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            KernelPath::Exact => "exact".into(),
            KernelPath::Fast(f) => format!("fast ({})", f.isa().name()),
        }
    }
}

impl Kernels for KernelPath {
    #[inline]
    fn gemm_nn(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        match self {
            KernelPath::Exact => exact_dispatch!(gemm_nn(m, n, k, a, b, c)),
            KernelPath::Fast(f) => f.gemm_nn(m, n, k, a, b, c),
        }
    }

    #[inline]
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
        match self {
            KernelPath::Exact => {
                // The core's default (fill, then the product) on the run-time-width kernel.
                tinylstm::kernels::assert_gemm_nn(m, n, k, a, b, c);
                assert!(start.len() >= n, "gemm_nn_start: start is shorter than n");
                fill_rows(m, n, start, c);
                exact_dispatch!(gemm_nn(m, n, k, a, b, c))
            }
            KernelPath::Fast(f) => f.gemm_nn_start(m, n, k, a, b, start, c),
        }
    }

    #[inline]
    fn gemm_nt(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        match self {
            KernelPath::Exact => exact_dispatch!(gemm_nt(m, n, k, a, b, c)),
            KernelPath::Fast(f) => f.gemm_nt(m, n, k, a, b, c),
        }
    }

    #[inline]
    fn gemm_tn(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        match self {
            KernelPath::Exact => exact_dispatch!(gemm_tn(m, n, k, a, b, c)),
            KernelPath::Fast(f) => f.gemm_tn(m, n, k, a, b, c),
        }
    }

    #[inline]
    fn gemv_terms(
        &self,
        n: usize,
        start: Option<&[f32]>,
        terms: &[(&[f32], &[f32])],
        out: &mut [f32],
    ) {
        match self {
            KernelPath::Exact => exact_dispatch!(gemv_terms(n, start, terms, out)),
            KernelPath::Fast(f) => f.gemv_terms(n, start, terms, out),
        }
    }

    #[inline]
    fn add_column_sums(&self, rows: usize, cols: usize, x: &[f32], out: &mut [f32]) {
        match self {
            KernelPath::Exact => exact_dispatch!(add_column_sums(rows, cols, x, out)),
            KernelPath::Fast(f) => f.add_column_sums(rows, cols, x, out),
        }
    }

    #[inline]
    fn activate_gates(&self, z: &mut [f32], h: usize) {
        match self {
            KernelPath::Exact => exact_dispatch!(activate_gates(z, h)),
            KernelPath::Fast(f) => f.activate_gates(z, h),
        }
    }

    #[inline]
    fn lstm_step(
        &self,
        step: tinylstm::lstm::StepRows<'_>,
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
    ) {
        match self {
            KernelPath::Exact => tinylstm::lstm::step_rows(*self, step, c_prev, c_next, h_next),
            KernelPath::Fast(f) => f.lstm_step(step, c_prev, c_next, h_next),
        }
    }
}
