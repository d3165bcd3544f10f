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

mod elementwise;
pub mod forward;
mod generic;
pub mod sequence;
mod simd;

use simd::Portable;
use tinylstm::kernels::{CellBackward, Kernels};

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
    elementwise: Elementwise,
}

/// How the fast path computes its element-wise work (σ, tanh, the cell update and its
/// backward step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elementwise {
    /// Explicit vectors with approximate divisions (reciprocal estimate + one Newton step) and
    /// fused multiply-adds: within a few f32 ulps of the exact functions (the errors are
    /// stated in the `elementwise` module). On AVX-512 and AVX2 + FMA; other sets use the
    /// exact functions. The default.
    Vector,
    /// The core's exact functions, compiled for this set's vectors (the exact path's bits).
    Exact,
}

impl Elementwise {
    /// [`Elementwise::Exact`] when the environment variable `TINYLSTM_FAST_ELEMENTWISE` is
    /// `exact`, [`Elementwise::Vector`] when it is unset or `vector` (a tuning switch, to
    /// measure one against the other). Read once per process; any other value prints a
    /// warning and means the default.
    pub fn from_env() -> Elementwise {
        static CHOICE: std::sync::OnceLock<Elementwise> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let value = std::env::var("TINYLSTM_FAST_ELEMENTWISE").ok();
            Elementwise::parse(value.as_deref()).unwrap_or_else(|problem| {
                eprintln!("warning: {problem}; using the default");
                Elementwise::Vector
            })
        })
    }

    /// The choice a value of `TINYLSTM_FAST_ELEMENTWISE` names (`None`: unset, the default),
    /// or what is wrong with it.
    pub fn parse(value: Option<&str>) -> Result<Elementwise, String> {
        match value.map(str::trim) {
            None | Some("vector") => Ok(Elementwise::Vector),
            Some("exact") => Ok(Elementwise::Exact),
            Some(other) => {
                Err(format!("TINYLSTM_FAST_ELEMENTWISE={other:?} is not vector or exact"))
            }
        }
    }
}

impl Default for Fast {
    fn default() -> Self {
        Fast::new()
    }
}

impl Fast {
    /// The fastest instruction set of this CPU ([`Isa::detect`]).
    /// The element-wise work as [`Elementwise::from_env`] says.
    pub fn new() -> Fast {
        Fast { isa: Isa::detect(), elementwise: Elementwise::from_env() }
    }

    /// A path on `isa`, or `None` when this CPU does not support it (element-wise work as
    /// [`Elementwise::from_env`] says).
    pub fn with_isa(isa: Isa) -> Option<Fast> {
        isa.is_supported().then_some(Fast { isa, elementwise: Elementwise::from_env() })
    }

    /// This path with its element-wise work computed as `e` says.
    pub fn with_elementwise(self, e: Elementwise) -> Fast {
        Fast { elementwise: e, ..self }
    }

    /// How the element-wise work is computed.
    pub fn elementwise(&self) -> Elementwise {
        self.elementwise
    }

    /// The instruction set in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// The exact path's gate activations ([`tinylstm::kernels::activate_gates`]: σ on the `i, f,
/// o` blocks of `z [4H]`, tanh on the `c` block), written as loops over the core's per-element
/// functions so that they are inlined into the `#[target_feature]` entry points and vectorised
/// for their instruction set (the core's slice function, called from there, stayed an
/// out-of-line call compiled for baseline x86-64). Element-wise: the same bits.
#[inline(always)]
fn activate(z: &mut [f32], h: usize) {
    let z = &mut z[..4 * h];
    let (i_f, rest) = z.split_at_mut(2 * h);
    let (g, o) = rest.split_at_mut(h);
    for v in i_f {
        *v = tinylstm::math::sigmoid(*v);
    }
    for v in g {
        *v = tinylstm::math::tanh(*v);
    }
    for v in o {
        *v = tinylstm::math::sigmoid(*v);
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

            /// The exact path's column sums (last row first, one add per element and row: the
            /// same order, so the same values), written out here so that the loop is compiled
            /// for this set's vectors (the core's function is not inlined across crates).
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn add_column_sums(
                rows: usize,
                cols: usize,
                x: &[f32],
                out: &mut [f32],
            ) {
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

            /// The exact activations (the core's `#[inline]` functions, inlined here and so
            /// compiled for this set's vectors; element-wise, so the same values).

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn activate_gates(z: &mut [f32], h: usize) {
                activate(z, h)
            }

            /// The exact cell steps, inlined and so compiled for this set's vectors
            /// (element-wise: the same values as the exact path).
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn cell_step(
                z: &mut [f32],
                c_prev: &[f32],
                c_next: &mut [f32],
                h_next: &mut [f32],
                h: usize,
            ) {
                activate(z, h);
                tinylstm::kernels::cell_state(z, c_prev, c_next, h_next, h)
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn cell_backward(step: CellBackward<'_>, h: usize) {
                tinylstm::kernels::cell_backward(step, h)
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

/// The explicitly vectorised element-wise kernels ([`elementwise`]) per x86-64 set.
#[cfg(target_arch = "x86_64")]
macro_rules! vector_elementwise {
    ($mod:ident, $simd:ty, $feat:literal) => {
        mod $mod {
            use super::*;
            type S = $simd;

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn activate_gates(z: &mut [f32], h: usize) {
                // SAFETY: the caller checked the features; slices are bounded inside.
                unsafe { elementwise::activate::<S>(z, h) }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn cell_step(
                z: &mut [f32],
                c_prev: &[f32],
                c_next: &mut [f32],
                h_next: &mut [f32],
                h: usize,
            ) {
                // SAFETY: as activate_gates.
                unsafe { elementwise::cell_step::<S>(z, c_prev, c_next, h_next, h) }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn cell_steps(
                rows: usize,
                z: &mut [f32],
                c_prev: &[f32],
                c_next: &mut [f32],
                h_next: &mut [f32],
                h: usize,
            ) {
                let g4 = 4 * h;
                let rows_of = z[..rows * g4]
                    .chunks_exact_mut(g4)
                    .zip(c_prev[..rows * h].chunks_exact(h))
                    .zip(c_next[..rows * h].chunks_exact_mut(h))
                    .zip(h_next[..rows * h].chunks_exact_mut(h));
                for (((zb, cp), cn), hn) in rows_of {
                    // SAFETY: as activate_gates.
                    unsafe { elementwise::cell_step::<S>(zb, cp, cn, hn, h) }
                }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn cell_backward(step: CellBackward<'_>, h: usize) {
                // SAFETY: as activate_gates.
                unsafe { elementwise::cell_backward::<S>(step, h) }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
vector_elementwise!(avx512_vector, simd::x86::Avx512, "avx512f");
#[cfg(target_arch = "x86_64")]
vector_elementwise!(avx2_vector, simd::x86::Avx2, "avx2,fma");

/// Calls the vectorised element-wise kernel when `self` asks for it and its set has one,
/// else the set's exact entry point (`dispatch!`).
macro_rules! dispatch_elementwise {
    ($self:ident, $f:ident ( $($arg:expr),* ), portable = $portable:expr) => {
        match ($self.elementwise, $self.isa) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Fast` only holds an `Isa` that `is_supported` on this CPU.
            (Elementwise::Vector, Isa::Avx512) => unsafe { avx512_vector::$f($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            (Elementwise::Vector, Isa::Avx2Fma) => unsafe { avx2_vector::$f($($arg),*) },
            _ => dispatch!($self, $f($($arg),*), portable = $portable),
        }
    };
}

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
        dispatch_elementwise!(
            self,
            activate_gates(z, h),
            portable = tinylstm::kernels::activate_gates(z, h)
        )
    }

    fn cell_step(
        &self,
        z: &mut [f32],
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
        h: usize,
    ) {
        dispatch_elementwise!(
            self,
            cell_step(z, c_prev, c_next, h_next, h),
            portable = tinylstm::kernels::cell_step(z, c_prev, c_next, h_next, h)
        )
    }

    fn cell_steps(
        &self,
        rows: usize,
        z: &mut [f32],
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
        h: usize,
    ) {
        match (self.elementwise, self.isa) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Fast` only holds an `Isa` that `is_supported` on this CPU.
            (Elementwise::Vector, Isa::Avx512) => unsafe {
                avx512_vector::cell_steps(rows, z, c_prev, c_next, h_next, h)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            (Elementwise::Vector, Isa::Avx2Fma) => unsafe {
                avx2_vector::cell_steps(rows, z, c_prev, c_next, h_next, h)
            },
            _ => {
                let g4 = 4 * h;
                let rows_of = z[..rows * g4]
                    .chunks_exact_mut(g4)
                    .zip(c_prev[..rows * h].chunks_exact(h))
                    .zip(c_next[..rows * h].chunks_exact_mut(h))
                    .zip(h_next[..rows * h].chunks_exact_mut(h));
                for (((zb, cp), cn), hn) in rows_of {
                    self.cell_step(zb, cp, cn, hn, h);
                }
            }
        }
    }

    fn cell_backward(&self, step: CellBackward<'_>, h: usize) {
        dispatch_elementwise!(
            self,
            cell_backward(step, h),
            portable = tinylstm::kernels::cell_backward(step, h)
        )
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

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn cell_step(
                    z: &mut [f32],
                    c_prev: &[f32],
                    c_next: &mut [f32],
                    h_next: &mut [f32],
                    h: usize,
                ) {
                    // The core's `cell_step` (activations, then `cell_state`) with the
                    // activations through this module's entry point, so that they too run at
                    // this width (the core's `activate_gates` is not inlined here on its own).
                    // SAFETY: this function runs with the same features.
                    unsafe { activate_gates(z, h) };
                    k::cell_state(z, c_prev, c_next, h_next, h)
                }

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn cell_steps(
                    rows: usize,
                    z: &mut [f32],
                    c_prev: &[f32],
                    c_next: &mut [f32],
                    h_next: &mut [f32],
                    h: usize,
                ) {
                    // The core's default `cell_steps`: `cell_step` row by row.
                    let g4 = 4 * h;
                    for (((zb, cp), cn), hn) in z[..rows * g4]
                        .chunks_exact_mut(g4)
                        .zip(c_prev[..rows * h].chunks_exact(h))
                        .zip(c_next[..rows * h].chunks_exact_mut(h))
                        .zip(h_next[..rows * h].chunks_exact_mut(h))
                    {
                        // SAFETY: this function runs with the same features.
                        unsafe { cell_step(zb, cp, cn, hn, h) };
                    }
                }

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn cell_backward(step: k::CellBackward<'_>, h: usize) {
                    k::cell_backward(step, h)
                }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    exact_entry_points!(avx512, "avx512f");
    #[cfg(target_arch = "x86_64")]
    exact_entry_points!(avx2, "avx2,fma");
}

/// The exact path's [`Kernels::cell_steps`] compiled for [`exact::isa`] (the core's default:
/// [`tinylstm::kernels::cell_step`] row by row; the same bits at every width).
fn exact_cell_steps(
    rows: usize,
    z: &mut [f32],
    c_prev: &[f32],
    c_next: &mut [f32],
    h_next: &mut [f32],
    h: usize,
) {
    match exact::isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `exact::isa` only returns a set that `is_supported` on this CPU; the kernel
        // checks its slice lengths itself (safe code).
        Isa::Avx512 => unsafe { exact::avx512::cell_steps(rows, z, c_prev, c_next, h_next, h) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma => unsafe { exact::avx2::cell_steps(rows, z, c_prev, c_next, h_next, h) },
        _ => tinylstm::kernels::Exact.cell_steps(rows, z, c_prev, c_next, h_next, h),
    }
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

    /// `exact`, or `fast (avx512)` and the like (`fast (avx512, exact element-wise)` under
    /// [`Elementwise::Exact`]): for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            KernelPath::Exact => "exact".into(),
            KernelPath::Fast(f) if f.elementwise() == Elementwise::Exact => {
                format!("fast ({}, exact element-wise)", f.isa().name())
            }
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

    #[inline]
    fn cell_step(
        &self,
        z: &mut [f32],
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
        h: usize,
    ) {
        match self {
            KernelPath::Exact => exact_dispatch!(cell_step(z, c_prev, c_next, h_next, h)),
            KernelPath::Fast(f) => f.cell_step(z, c_prev, c_next, h_next, h),
        }
    }

    #[inline]
    fn cell_steps(
        &self,
        rows: usize,
        z: &mut [f32],
        c_prev: &[f32],
        c_next: &mut [f32],
        h_next: &mut [f32],
        h: usize,
    ) {
        match self {
            KernelPath::Exact => exact_cell_steps(rows, z, c_prev, c_next, h_next, h),
            KernelPath::Fast(f) => f.cell_steps(rows, z, c_prev, c_next, h_next, h),
        }
    }

    #[inline]
    fn cell_backward(&self, step: CellBackward<'_>, h: usize) {
        match self {
            KernelPath::Exact => exact_dispatch!(cell_backward(step, h)),
            KernelPath::Fast(f) => f.cell_backward(step, h),
        }
    }
}
