//! The fast path's LSTM time step ([`Kernels::lstm_step`]): how the recurrent product and the
//! cells of a batch are scheduled.
//!
//! * **fused** (the default): row tiles of [`StepMode::Fused`]'s `tile` sequences; each tile's
//!   `z += h_{t-1}·U` is computed, then its rows' gates activated and cells updated while the
//!   tile's `[tile][4H]` gates are still in L1 — instead of one GEMM over the whole batch whose
//!   `[B][4H]` output (64 KB for 128 sequences of 32 units, 256 KB at 128 units) has left L1
//!   before the element-wise pass reads it back.
//! * **plain**: one GEMM over the batch, then the cells (the core's
//!   [`step_rows`]).
//!
//! Both compute every element with the same operations in the same order (the fast GEMM's
//! order per element does not depend on the number of rows), so they give the same bits.
//!
//! At **batch 1** the product is a vector–matrix product; [`Gemv`] chooses its kernel: the
//! fast one (FMA, 8-vector panels; or the same on AVX2's 256-bit vectors) or the exact path's
//! one-row kernel (compiled for this CPU's widest vectors), whichever measures faster on the
//! machine (BENCHMARKS.md).
//!
//! Chosen at run time from the environment, read once per process:
//! `TINYLSTM_FAST_FORWARD=fused|plain`, `TINYLSTM_FAST_TILE=<rows, 1–256>`,
//! `TINYLSTM_FAST_GEMV=fast|exact|avx2` and `TINYLSTM_FAST_PROJECTION=fused|copy` (the input
//! projections `b + x·W` of a segment: the bias loaded into the GEMM's register tiles, or
//! copied into every row first — [`Projection`]). A value that does not parse is reported once on standard
//! error and the default is used.

use crate::{Fast, KernelPath};
use std::sync::OnceLock;
use tinylstm::kernels::Kernels;
use tinylstm::lstm::{cell_rows, step_rows, StepRows};

/// How the fast path schedules one LSTM time step of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepMode {
    /// Row tiles of `tile` sequences, each tile's cells updated right after its product.
    Fused {
        /// Sequences per tile (at least 1).
        tile: usize,
    },
    /// One GEMM over the batch, then every row's cell.
    Plain,
}

/// The batch-1 vector–matrix kernel of the fast path's step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gemv {
    /// The fast path's `gemm_nn` with one row (FMA).
    Fast,
    /// The exact path's one-row kernel (no FMA, the order contract).
    Exact,
    /// The fast kernel on 256-bit vectors (AVX2 + FMA) even where AVX-512 is chosen for the
    /// rest (where 512-bit code lowers the clock, a vector–matrix product bound by loads may
    /// gain); the fast kernel where this CPU has no AVX2.
    Avx2,
}

/// How the input projections `b + x·W` of a segment start from the bias
/// ([`Kernels::gemm_nn_start`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// The bias loaded into the GEMM's register tiles: no separate pass over the gates.
    Fused,
    /// The bias copied into every row first, then the GEMM adds into it.
    Copy,
}

/// The step's settings: [`StepMode`], [`Gemv`] and [`Projection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepConfig {
    /// Batch > 1: fused row tiles or one GEMM.
    pub mode: StepMode,
    /// Batch 1: which vector–matrix kernel.
    pub gemv: Gemv,
    /// The input projections' start from the bias.
    pub projection: Projection,
}

/// Rows per tile by default: enough rows that a tile's GEMM reuses each loaded row of `U` for
/// two register tiles of 6 rows, few enough that a tile's gates (`12 × 4H` floats: 24 KB at
/// 128 units) stay in L1 for the cell pass.
pub const DEFAULT_TILE: usize = 12;

impl Default for StepConfig {
    fn default() -> Self {
        StepConfig {
            mode: StepMode::Fused { tile: DEFAULT_TILE },
            gemv: Gemv::Fast,
            projection: Projection::Fused,
        }
    }
}

impl StepConfig {
    /// The settings from `TINYLSTM_FAST_FORWARD`, `TINYLSTM_FAST_TILE`, `TINYLSTM_FAST_GEMV`
    /// and `TINYLSTM_FAST_PROJECTION` (see the module docs), read once per process.
    pub fn from_env() -> StepConfig {
        static CONFIG: OnceLock<StepConfig> = OnceLock::new();
        *CONFIG.get_or_init(|| {
            let var = |name: &str| std::env::var(name).ok();
            let (mut config, mut problems) = StepConfig::parse(
                var("TINYLSTM_FAST_FORWARD").as_deref(),
                var("TINYLSTM_FAST_TILE").as_deref(),
                var("TINYLSTM_FAST_GEMV").as_deref(),
            );
            config.projection = match var("TINYLSTM_FAST_PROJECTION").as_deref().map(str::trim) {
                None | Some("fused") => Projection::Fused,
                Some("copy") => Projection::Copy,
                Some(other) => {
                    problems
                        .push(format!("TINYLSTM_FAST_PROJECTION={other:?} is not fused or copy"));
                    Projection::Fused
                }
            };
            for p in problems {
                eprintln!("warning: {p}; using the default");
            }
            config
        })
    }

    /// The settings from the three variables' values (`None` when unset), and a message for
    /// each value that does not parse (its default is used).
    pub fn parse(
        forward: Option<&str>,
        tile: Option<&str>,
        gemv: Option<&str>,
    ) -> (StepConfig, Vec<String>) {
        let mut c = StepConfig::default();
        let mut problems = Vec::new();
        let tile = match tile.map(|t| t.trim().parse::<usize>()) {
            None => DEFAULT_TILE,
            Some(Ok(t)) if (1..=256).contains(&t) => t,
            Some(_) => {
                problems.push(format!(
                    "TINYLSTM_FAST_TILE={:?} is not a number of rows from 1 to 256",
                    tile.unwrap_or_default()
                ));
                DEFAULT_TILE
            }
        };
        c.mode = match forward.map(str::trim) {
            None | Some("fused") => StepMode::Fused { tile },
            Some("plain") => StepMode::Plain,
            Some(other) => {
                problems.push(format!("TINYLSTM_FAST_FORWARD={other:?} is not fused or plain"));
                StepMode::Fused { tile }
            }
        };
        c.gemv = match gemv.map(str::trim) {
            None | Some("fast") => Gemv::Fast,
            Some("exact") => Gemv::Exact,
            Some("avx2") => Gemv::Avx2,
            Some(other) => {
                problems.push(format!("TINYLSTM_FAST_GEMV={other:?} is not fast, exact or avx2"));
                Gemv::Fast
            }
        };
        (c, problems)
    }
}

/// One LSTM time step on the fast path `fast` with the settings `config` (see the module
/// docs and [`step_rows`] for the operands).
///
/// # Panics
/// When a slice is shorter than its shape.
pub fn lstm_step_with(
    fast: Fast,
    config: StepConfig,
    step: StepRows<'_>,
    c_prev: &[f32],
    c_next: &mut [f32],
    h_next: &mut [f32],
) {
    let (h, b) = (step.units, step.batch);
    let g4 = 4 * h;
    let bh = b * h;
    assert!(
        step.h_prev.len() >= bh
            && step.recurrent.len() >= h * g4
            && step.z.len() >= b * g4
            && c_prev.len() >= bh
            && c_next.len() >= bh
            && h_next.len() >= bh,
        "lstm_step: a slice is shorter than its shape"
    );
    if b == 1 && config.gemv == Gemv::Exact {
        KernelPath::Exact.gemm_nn(1, g4, h, step.h_prev, step.recurrent, step.z);
        cell_rows(fast, h, 1, step.z, c_prev, c_next, h_next);
        return;
    }
    if b == 1 && config.gemv == Gemv::Avx2 {
        let narrow = Fast::with_isa(crate::Isa::Avx2Fma).unwrap_or(fast);
        narrow.gemm_nn(1, g4, h, step.h_prev, step.recurrent, step.z);
        cell_rows(fast, h, 1, step.z, c_prev, c_next, h_next);
        return;
    }
    let tile = match config.mode {
        StepMode::Fused { tile } if b > tile => tile.max(1),
        _ => return step_rows(fast, step, c_prev, c_next, h_next),
    };
    // Every row's operands, cut to the batch's length (checked above).
    let (h_prev, z) = (&step.h_prev[..bh], &mut step.z[..b * g4]);
    let (c_prev, c_next, h_next) = (&c_prev[..bh], &mut c_next[..bh], &mut h_next[..bh]);
    let tiles = z
        .chunks_mut(tile * g4)
        .zip(h_prev.chunks(tile * h))
        .zip(c_prev.chunks(tile * h))
        .zip(c_next.chunks_mut(tile * h).zip(h_next.chunks_mut(tile * h)));
    for (((zt, hp), cp), (cn, hn)) in tiles {
        let rows = hp.len() / h.max(1);
        fast.gemm_nn(rows, g4, h, hp, step.recurrent, zt);
        cell_rows(fast, h, rows, zt, cp, cn, hn);
    }
}
