//! One sequence at a time (batch 1) on the fast path, on one or two cores: [`OneSequence`].
//!
//! At batch 1 every time step is a vector–matrix product `h_{t-1}·U` (`[H] × [H][4H]`) followed
//! by the cell: 100 dependent steps whose matrices (256 KB for `H` = 128) stream from L2 at
//! every step. [`OneSequence`] prepares a model once for that case:
//!
//! * **Packed, 64-byte aligned weights.** Each worker's share of `W`, `U` and the bias is copied
//!   into its own aligned buffer, laid out in the order the step reads it (column panels, each
//!   a contiguous stream). A vector load of a matrix that starts 16 bytes past a cache line
//!   touches two lines: with the parameters where the allocator happened to put them, the same
//!   forward pass measured 0.39 ms (aligned) or 0.49 ms (16 bytes off) on this path
//!   (BENCHMARKS.md, "Inference on the fast path").
//! * **Two cores per step.** With two workers the units of every layer are split in two: each
//!   worker computes the gate columns `i, f, g, o` of its units (half of `U`, which then stays
//!   in its own core's L2), updates their cells, and hands its half of `h_t` to the other
//!   through a two-slot exchange with one release/acquire flag per step; then both hold the whole
//!   `h_t` for the next step. The next layer's input projections `b + h·W` of all steps are one
//!   GEMM per worker over its columns, after the layer below has finished.
//! * **The projection table read in place.** For a token model, layer 0 starts each step from
//!   its token's row of `b₀ + E·W₀` (each worker holds its columns of that table), without
//!   copying the rows into a gate buffer first.
//!
//! **Same bits whatever the split.** Every gate pre-activation is its start value (the table
//! row or `b + x·W`) followed by one fused multiply-add per input in increasing index — the
//! order of the fast path's own kernels — and every worker pads its columns to whole vectors,
//! so no column takes a scalar tail. The element-wise cell step is lane by lane. So one worker
//! or two, the outputs are the same bits (tested), and they equal the fast path's
//! [`forward_projected_with`](tinylstm::model::forward_projected_with) /
//! [`forward_with`](tinylstm::model::forward_with) at batch 1 whenever that path has no scalar
//! column tail either (`4H` a multiple of the vector width, e.g. `H` a multiple of 4 on
//! AVX-512); otherwise they agree within the fast path's tolerance.
//!
//! The second worker is a thread owned by the value: it waits for a call by spinning for
//! 200 µs, then sleeps until the caller wakes it. During a call each worker spins on the
//! other's flag at every step (100–500 ns on this machine's two cores) and, after 20 µs,
//! sleeps until the other wakes it. When the other core is busy (another program), two workers
//! wait for each other at every step, so the value measures both ways — two workers, or the
//! calling thread computing both halves itself — in blocks of calls and runs the faster one
//! ([`OneSequence::workers`]); the bits are the same either way.

use crate::{simd, Fast, Isa};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tinylstm::kernels::Kernels;
use tinylstm::{model, Error, InputKind, Mask, Sequences, Spec};

/// How the fast path's programs run one sequence (`TINYLSTM_FAST_BATCH1`, read once per
/// process): [`OneSequence`] (the default) or the plain forward pass at batch 1, for A/B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch1 {
    /// [`OneSequence`] (`one-sequence`).
    OneSequence,
    /// The core's forward pass on the fast kernels (`plain`).
    Plain,
}

impl Batch1 {
    /// The choice of `TINYLSTM_FAST_BATCH1` (`one-sequence` when unset; a value that does not
    /// parse is reported once on standard error and means the default).
    pub fn from_env() -> Batch1 {
        static CHOICE: std::sync::OnceLock<Batch1> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let value = std::env::var("TINYLSTM_FAST_BATCH1").ok();
            Batch1::parse(value.as_deref()).unwrap_or_else(|problem| {
                eprintln!("warning: {problem}; using the default");
                Batch1::OneSequence
            })
        })
    }

    /// The choice a value of `TINYLSTM_FAST_BATCH1` names (`None`: unset), or what is wrong
    /// with it.
    pub fn parse(value: Option<&str>) -> Result<Batch1, String> {
        match value.map(str::trim) {
            None | Some("one-sequence") => Ok(Batch1::OneSequence),
            Some("plain") => Ok(Batch1::Plain),
            Some(other) => {
                Err(format!("TINYLSTM_FAST_BATCH1={other:?} is not one-sequence or plain"))
            }
        }
    }
}

/// Floats per 64-byte cache line.
const LINE: usize = 16;

/// Vectors per column panel of the step's product (8 × 16 floats on AVX-512: 512 bytes of a
/// row of `U` per reduction step, 8 independent accumulators).
const PANEL_VECTORS: usize = 8;

/// A zeroed `f32` buffer whose first element is on a 64-byte boundary.
#[derive(Debug, Default)]
struct Aligned {
    buf: Vec<f32>,
    at: usize,
    len: usize,
}

impl Aligned {
    fn zeros(len: usize) -> Aligned {
        let buf = vec![0.0f32; len + LINE];
        let misaligned = (buf.as_ptr() as usize / size_of::<f32>()) % LINE;
        Aligned { at: (LINE - misaligned) % LINE, buf, len }
    }

    fn get(&self) -> &[f32] {
        &self.buf[self.at..self.at + self.len]
    }

    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.at..self.at + self.len]
    }
}

/// The vector width (floats) of the fast path's kernels on `isa`.
fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2Fma => 8,
        Isa::Neon | Isa::Portable => 4,
    }
}

/// One worker's share of one LSTM layer: units `u0..u0 + hw` of the layer's `units`, whose
/// gate columns `[i | f | g | o]` (each `hw` wide) are padded with zero columns to `cw`, a
/// whole number of vectors.
#[derive(Debug)]
struct Part {
    u0: usize,
    hw: usize,
    cw: usize,
    units: usize,
    input: usize,
    /// `W`'s columns `[input][cw]`; empty for a token model's layer 0 (the table holds them).
    w: Aligned,
    /// `U`'s columns in panels: for each panel of `pw` columns, `[units][pw]` (contiguous).
    u: Aligned,
    /// The bias's columns `[cw]`.
    bias: Aligned,
    /// A token model's layer 0: the projection table's columns `[vocab][cw]`.
    table: Aligned,
}

impl Part {
    /// The packed column `c < 4·hw` of this part in the layer's `4·units` columns.
    fn column(&self, c: usize) -> usize {
        (c / self.hw) * self.units + self.u0 + c % self.hw
    }

    /// Copies the columns of the rows of `src` (rows of `4·units`) into `dst` (rows of `cw`).
    fn gather_rows(&self, src: &[f32], dst: &mut [f32]) {
        let g4 = 4 * self.units;
        for (s, d) in src.chunks_exact(g4).zip(dst.chunks_exact_mut(self.cw)) {
            for (c, v) in d[..4 * self.hw].iter_mut().enumerate() {
                *v = s[self.column(c)];
            }
        }
    }
}

/// Splits `units` between `workers` (1 or 2): the first worker's count, a multiple of 4 where
/// possible so that each worker's gate blocks start on whole vectors.
fn first_share(units: usize, workers: usize) -> usize {
    if workers < 2 {
        return units;
    }
    let half = units.div_ceil(2);
    let rounded = half.div_ceil(4) * 4;
    if rounded < units {
        rounded
    } else {
        half
    }
}

/// Per-worker columns padded to `pad` floats.
fn padded(n: usize, pad: usize) -> usize {
    n.div_ceil(pad) * pad
}

/// One worker's step-exchange slots and flag, on cache lines of their own.
#[derive(Debug)]
#[repr(align(128))]
struct Exchange {
    /// The last exchange number this worker has published.
    flag: AtomicU64,
    /// Two slots of `h` halves (`f32` bits), exchange number `s` in slot `s % 2`.
    slots: [Box<[AtomicU32]>; 2],
}

/// The input of one call, as the second worker reads it.
#[derive(Debug, Default)]
struct Input {
    ids: Vec<u32>,
    values: Vec<f32>,
    steps: usize,
    /// The exchange number before this call's first step.
    base: u64,
}

/// What the two workers share.
#[derive(Debug)]
struct Shared {
    spec: Spec,
    fast: Fast,
    /// `parts[worker][layer]`.
    parts: Vec<Vec<Part>>,
    exchange: [Exchange; 2],
    input: Mutex<Input>,
    /// Calls started (by the caller) and finished (by the second worker).
    job: AtomicU64,
    done: AtomicU64,
    shutdown: AtomicBool,
    /// A worker is asleep waiting for the other ([`wait_for`]); the threads to wake.
    sleeping: [AtomicBool; 2],
    threads: Mutex<[Option<std::thread::Thread>; 2]>,
    /// Set when the second worker has stopped on a panic: the caller then panics too rather
    /// than wait for it.
    poisoned: AtomicBool,
}

/// A worker's buffers for one part of a layer.
#[derive(Debug, Default)]
struct PartScratch {
    /// The part's projections `b + x·W` of every step, `[T][cw]`.
    proj: Aligned,
    /// One step's gates `[cw]`.
    z: Aligned,
    /// The part's cell state, current and next `[hw]`, and its new `h` `[hw]`.
    c: Vec<f32>,
    c_next: Vec<f32>,
    h_next: Vec<f32>,
}

/// A worker's buffers for one call.
#[derive(Debug, Default)]
struct Scratch {
    /// The layer below's outputs `[T][H_{l-1}]` (or the channel input `[T][C]`).
    below: Vec<f32>,
    /// This layer's `h` of every step `[T + 1][H_l]` (slot 0: the zero start state).
    seq: Vec<f32>,
    /// Per part this worker computes.
    parts: Vec<PartScratch>,
    /// Kept steps (`true`: processed; `false`: the state carries over).
    keep: Vec<bool>,
}

/// How long a worker spins on the other's flag before it sleeps until woken.
const SPIN: std::time::Duration = std::time::Duration::from_micros(20);

/// Waits until `flag` reaches `target`: spins for [`SPIN`], then sleeps (announcing it in
/// `sleeping[me]`, so that the publisher wakes it: [`publish`]). Panics when the other worker
/// has stopped on a panic; returns at once when the value is being dropped.
fn wait_for(flag: &AtomicU64, target: u64, shared: &Shared, me: usize) {
    let mut spins = 0u32;
    let mut since: Option<std::time::Instant> = None;
    while flag.load(Ordering::Acquire) < target {
        if shared.poisoned.load(Ordering::Relaxed) {
            panic!("OneSequence: the other worker stopped");
        }
        if shared.shutdown.load(Ordering::Relaxed) {
            // The value is being dropped with a call unfinished (its caller panicked): run
            // through the rest of the call without waiting; its results are not read.
            return;
        }
        spins += 1;
        std::hint::spin_loop();
        if !spins.is_multiple_of(64) {
            continue;
        }
        let start = *since.get_or_insert_with(std::time::Instant::now);
        if start.elapsed() < SPIN {
            continue;
        }
        // The other is late (descheduled, or the machine is busy): sleep until it publishes.
        // Either it sees `sleeping` set and wakes us, or we see its flag here (both SeqCst).
        shared.sleeping[me].store(true, Ordering::SeqCst);
        if flag.load(Ordering::SeqCst) < target && !shared.poisoned.load(Ordering::Relaxed) {
            std::thread::park_timeout(std::time::Duration::from_millis(1));
        }
        shared.sleeping[me].store(false, Ordering::SeqCst);
    }
}

/// Publishes `n` on `flag` for the other worker (`1 - me`) and wakes it if it sleeps.
fn publish(flag: &AtomicU64, n: u64, shared: &Shared, me: usize) {
    flag.store(n, Ordering::SeqCst);
    if shared.sleeping[1 - me].load(Ordering::SeqCst) {
        let threads = shared.threads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = &threads[1 - me] {
            t.unpark();
        }
    }
}

/// The keep flag of every step (`Mask::Zero`: token 0 is masked; `Mask::Value(m)`: a step whose
/// values all equal `m`), as the core's masked forward decides it.
fn keep_flags(spec: &Spec, ids: &[u32], values: &[f32], steps: usize, keep: &mut Vec<bool>) {
    keep.clear();
    let w = spec.step_width();
    keep.extend((0..steps).map(|t| match (spec.mask, spec.input) {
        (Mask::Zero, InputKind::Tokens { .. }) => ids[t] != 0,
        (Mask::Value(m), InputKind::Channels(_)) => {
            values[t * w..(t + 1) * w].iter().any(|&x| x != m)
        }
        _ => true,
    }));
}

/// Runs the parts `mine` (worker indices) of every layer over one call's input — one part with
/// the other worker computing the other (`exchange`: `h` is handed over at every step), or
/// every part on this thread. Returns with `s.seq` holding the top layer's last `h` (all
/// units) at `[T·H..]`.
fn run_worker(shared: &Shared, mine: &[usize], exchange: bool, input: &Input, s: &mut Scratch) {
    let spec = &shared.spec;
    let fast = shared.fast;
    let steps = input.steps;
    let mut exchange_no = input.base;
    keep_flags(spec, &input.ids, &input.values, steps, &mut s.keep);
    if let InputKind::Channels(_) = spec.input {
        s.below.clear();
        s.below.extend_from_slice(&input.values);
    }
    s.parts.resize_with(mine.len(), PartScratch::default);
    for l in 0..spec.layers {
        let h = spec.units[l];
        // The input projections of every step, unless the table holds them.
        let tokens = l == 0 && matches!(spec.input, InputKind::Tokens { .. });
        for (&w, ps) in mine.iter().zip(s.parts.iter_mut()) {
            let part = &shared.parts[w][l];
            let (cw, hw) = (part.cw, part.hw);
            if !tokens && cw > 0 {
                if ps.proj.len < steps * cw {
                    ps.proj = Aligned::zeros(steps * cw);
                }
                let proj = &mut ps.proj.get_mut()[..steps * cw];
                let (wk, bias) = (part.w.get(), part.bias.get());
                project(fast.isa(), steps, cw, part.input, &s.below, wk, bias, proj);
            }
            if ps.z.len < cw {
                ps.z = Aligned::zeros(cw);
            }
            for v in [&mut ps.c, &mut ps.c_next, &mut ps.h_next] {
                v.clear();
                v.resize(hw, 0.0);
            }
        }
        s.seq.clear();
        s.seq.resize((steps + 1) * h, 0.0);
        for t in 0..steps {
            let (done, next) = s.seq.split_at_mut((t + 1) * h);
            let h_prev = &done[t * h..];
            let h_next = &mut next[..h];
            if !s.keep[t] {
                // A masked step: every layer's state carries over (both workers know it).
                h_next.copy_from_slice(h_prev);
                continue;
            }
            for (&w, ps) in mine.iter().zip(s.parts.iter_mut()) {
                let part = &shared.parts[w][l];
                let (cw, hw) = (part.cw, part.hw);
                if hw == 0 {
                    continue;
                }
                let z = &mut ps.z.get_mut()[..cw];
                let start = if tokens {
                    let id = input.ids[t] as usize;
                    &part.table.get()[id * cw..(id + 1) * cw]
                } else {
                    &ps.proj.get()[t * cw..(t + 1) * cw]
                };
                recurrent(fast.isa(), cw, h, h_prev, part.u.get(), start, z);
                fast.cell_steps(1, z, &ps.c, &mut ps.c_next, &mut ps.h_next, hw);
                std::mem::swap(&mut ps.c, &mut ps.c_next);
                h_next[part.u0..part.u0 + hw].copy_from_slice(&ps.h_next);
            }
            if exchange {
                let me = mine[0];
                let hw = shared.parts[me][l].hw;
                exchange_no += 1;
                let own = &shared.exchange[me];
                let slot = &own.slots[(exchange_no % 2) as usize];
                for (a, v) in slot.iter().zip(&s.parts[0].h_next[..hw]) {
                    a.store(v.to_bits(), Ordering::Relaxed);
                }
                publish(&own.flag, exchange_no, shared, me);
                let other = &shared.exchange[1 - me];
                wait_for(&other.flag, exchange_no, shared, me);
                // The other worker writes this slot again only at exchange number
                // `exchange_no + 2`, which it reaches after it has seen our flag at
                // `exchange_no + 1`, published after this copy.
                let op = &shared.parts[1 - me][l];
                let slot = &other.slots[(exchange_no % 2) as usize];
                for (v, a) in h_next[op.u0..op.u0 + op.hw].iter_mut().zip(slot.iter()) {
                    *v = f32::from_bits(a.load(Ordering::Relaxed));
                }
            }
        }
        // This layer's outputs are the next one's input.
        std::mem::swap(&mut s.below, &mut s.seq);
        s.below.drain(..h);
    }
    // `below` now holds the top layer's `h` of steps 1..=T; put it back in `seq`'s shape.
    let top = spec.units[spec.layers - 1];
    s.seq.clear();
    s.seq.resize(top, 0.0);
    s.seq.extend_from_slice(&s.below);
}

/// `proj [T][cw] = bias + x [T][k] · w [k][cw]` (fused multiply-adds in increasing `k`).
fn project(
    isa: Isa,
    steps: usize,
    cw: usize,
    k: usize,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    proj: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Fast` only holds an `Isa` that `is_supported` on this CPU; `outer_from`
        // checks every slice against the shapes.
        Isa::Avx512 => unsafe { kernels::avx512::project(steps, cw, k, x, w, bias, proj) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma => unsafe { kernels::avx2::project(steps, cw, k, x, w, bias, proj) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above.
        Isa::Neon => unsafe { kernels::neon::project(steps, cw, k, x, w, bias, proj) },
        // SAFETY: `Portable` needs no target feature.
        _ => unsafe { kernels::project::<simd::Portable>(steps, cw, k, x, w, bias, proj) },
    }
}

/// `z [cw] = start + h [k] · U`, `U` packed in panels ([`Part::u`]).
fn recurrent(isa: Isa, cw: usize, k: usize, h: &[f32], u: &[f32], start: &[f32], z: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Fast` only holds an `Isa` that `is_supported` on this CPU; the kernel
        // checks its slices against the shapes.
        Isa::Avx512 => unsafe { kernels::avx512::recurrent(cw, k, h, u, start, z) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma => unsafe { kernels::avx2::recurrent(cw, k, h, u, start, z) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above.
        Isa::Neon => unsafe { kernels::neon::recurrent(cw, k, h, u, start, z) },
        // SAFETY: `Portable` needs no target feature.
        _ => unsafe { kernels::recurrent::<simd::Portable>(cw, k, h, u, start, z) },
    }
}

mod kernels {
    use crate::generic;
    use crate::simd::Simd;

    /// `proj = bias + x · w` through the fast GEMM (every column a vector column: `cw` is a
    /// whole number of vectors).
    ///
    /// # Safety
    /// `S`'s features are present (bounds are checked inside).
    #[inline(always)]
    pub(super) unsafe fn project<S: Simd>(
        steps: usize,
        cw: usize,
        k: usize,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        proj: &mut [f32],
    ) {
        // SAFETY: forwarded contract; `outer_from` checks the slices.
        unsafe { generic::outer_from::<S, 6, 4>(steps, cw, k, x, k, 1, w, Some(bias), proj) }
    }

    /// One panel: `z[..NV·L] = start[..NV·L] + Σ_p h[p] · u[p·pw ..][..NV·L]`.
    ///
    /// # Safety
    /// `S`'s features are present; `u` valid for `(k − 1)·pw + NV·L` floats, `start` and `z`
    /// for `NV·L`, `h` for `k`.
    #[inline(always)]
    unsafe fn panel<S: Simd, const NV: usize>(
        k: usize,
        h: *const f32,
        u: *const f32,
        pw: usize,
        start: *const f32,
        z: *mut f32,
    ) {
        let l = S::LANES;
        // SAFETY: the function's contract covers every offset (p < k, v < NV).
        unsafe {
            let mut acc = [S::zero(); NV];
            for v in 0..NV {
                acc[v] = S::load(start.add(v * l));
            }
            for p in 0..k {
                let a = S::splat(*h.add(p));
                let row = u.add(p * pw);
                for v in 0..NV {
                    acc[v] = S::fma(a, S::load(row.add(v * l)), acc[v]);
                }
            }
            for v in 0..NV {
                S::store(z.add(v * l), acc[v]);
            }
        }
    }

    /// `z [cw] = start + h [k] · U` with `U` packed as panels of `PANEL_VECTORS` vectors (the
    /// last one narrower), each `[k][pw]`.
    ///
    /// # Safety
    /// `S`'s features are present (bounds are checked here: panics on short slices).
    #[inline(always)]
    pub(super) unsafe fn recurrent<S: Simd>(
        cw: usize,
        k: usize,
        h: &[f32],
        u: &[f32],
        start: &[f32],
        z: &mut [f32],
    ) {
        const NV: usize = super::PANEL_VECTORS;
        let l = S::LANES;
        assert!(cw.is_multiple_of(l), "recurrent: columns not whole vectors");
        let (h, u, start, z) = (&h[..k], &u[..k * cw], &start[..cw], &mut z[..cw]);
        let mut j = 0;
        while j < cw {
            let pw = (cw - j).min(NV * l);
            let (uj, sj, zj) = (u[j * k..].as_ptr(), start[j..].as_ptr(), z[j..].as_mut_ptr());
            // SAFETY: the panel at column j holds `k·pw` floats from `j·k` (inside `u`, whose
            // `k·cw` floats were checked); `start` and `z` hold `pw` from j; `h` holds k.
            unsafe {
                if pw == NV * l {
                    panel::<S, NV>(k, h.as_ptr(), uj, pw, sj, zj);
                } else {
                    // A narrower last panel, one vector at a time (rows still `pw` apart).
                    for v in 0..pw / l {
                        let o = v * l;
                        panel::<S, 1>(k, h.as_ptr(), uj.add(o), pw, sj.add(o), zj.add(o));
                    }
                }
            }
            j += pw;
        }
    }

    macro_rules! entry_points {
        ($mod:ident, $simd:ty, $feat:literal) => {
            pub(super) mod $mod {
                type S = $simd;

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn project(
                    steps: usize,
                    cw: usize,
                    k: usize,
                    x: &[f32],
                    w: &[f32],
                    bias: &[f32],
                    proj: &mut [f32],
                ) {
                    // SAFETY: the caller checked the features.
                    unsafe { super::project::<S>(steps, cw, k, x, w, bias, proj) }
                }

                #[target_feature(enable = $feat)]
                pub(crate) unsafe fn recurrent(
                    cw: usize,
                    k: usize,
                    h: &[f32],
                    u: &[f32],
                    start: &[f32],
                    z: &mut [f32],
                ) {
                    // SAFETY: the caller checked the features.
                    unsafe { super::recurrent::<S>(cw, k, h, u, start, z) }
                }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    entry_points!(avx512, crate::simd::x86::Avx512, "avx512f");
    #[cfg(target_arch = "x86_64")]
    entry_points!(avx2, crate::simd::x86::Avx2, "avx2,fma");
    #[cfg(target_arch = "aarch64")]
    entry_points!(neon, crate::simd::arm::Neon, "neon");
}

/// A model prepared for one sequence at a time on the fast path, on one or two cores (see the
/// module docs). Build it once per model ([`OneSequence::new`]: packs the weights and, for a
/// token model, computes the projection table), then call [`OneSequence::forward`] per
/// sequence.
#[derive(Debug)]
pub struct OneSequence {
    shared: Arc<Shared>,
    workers: usize,
    head: Vec<f32>,
    scratch: Scratch,
    helper: Option<JoinHandle<()>>,
    exchanges: u64,
    /// Which way the calls run: two workers or this thread alone ([`Choice`]).
    choice: Choice,
    /// Calls run on two workers, and on this thread alone.
    calls: [u64; 2],
}

/// Calls per block of [`Choice`], and per block that tries the slower way.
const BLOCK: u32 = 32;
const PROBE_BLOCK: u32 = 8;
/// Blocks of the faster way between two tries of the slower one (at most).
const PROBE_EVERY: u32 = 16;

/// Chooses between two workers and one for the next calls from their measured times: blocks of
/// [`BLOCK`] calls of the faster way (each way's mean time per call kept from its last block),
/// and every [`PROBE_EVERY`] blocks a short block ([`PROBE_BLOCK`]) of the other. A call on two
/// workers that takes more than twice the one-worker mean ends its block at once (the other
/// core was busy: its worker waited for the other's half of `h`); two workers are then tried
/// again after 1 block, then 2, 4, … up to [`PROBE_EVERY`] while such calls continue. Both ways
/// give the same bits.
#[derive(Debug, Default)]
struct Choice {
    /// A way fixed by [`OneSequence::pin`] (`Some(true)`: two workers).
    pinned: Option<bool>,
    /// Running on two workers in this block (the first block runs on one).
    pair: bool,
    /// This block tries the slower way.
    probing: bool,
    /// Calls and seconds so far in this block.
    calls: u32,
    seconds: f64,
    /// Mean seconds per call of the last block of each way (two workers, one); 0: not yet.
    mean: [f64; 2],
    /// Blocks since the slower way was last tried, and how many to wait while one worker is
    /// faster.
    since_probe: u32,
    wait: u32,
}

impl Choice {
    /// Records a call of `seconds` run the current way; decides the way of the next call.
    fn record(&mut self, seconds: f64) {
        let way = usize::from(!self.pair);
        self.calls += 1;
        self.seconds += seconds;
        let late = self.pair && self.mean[1] > 0.0 && seconds > 2.0 * self.mean[1];
        let len = if self.probing { PROBE_BLOCK } else { BLOCK };
        if self.calls < len && !late {
            return;
        }
        self.mean[way] = self.seconds / f64::from(self.calls);
        (self.calls, self.seconds) = (0, 0.0);
        self.since_probe += 1;
        if self.pair {
            self.wait = if late { (self.wait * 2).clamp(1, PROBE_EVERY) } else { 1 };
        }
        let faster_pair = self.mean[0] <= self.mean[1];
        let wait = if faster_pair { PROBE_EVERY } else { self.wait.max(1) };
        self.probing = false;
        self.pair = if self.mean[0] == 0.0 || self.mean[1] == 0.0 {
            // Each way once first: one worker, then two (whose block ends early if late).
            self.mean[0] == 0.0
        } else if self.since_probe >= wait {
            self.since_probe = 0;
            self.probing = true;
            !faster_pair
        } else {
            faster_pair
        };
    }
}

/// How long the second worker spins for the next call before it sleeps.
const IDLE_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

impl OneSequence {
    /// Prepares `params` (the flat buffer of `spec`) for batch-1 inference on `fast`, with
    /// `threads` workers (1 or 2; more count as 2, 0 as 1). A model whose layers all have
    /// fewer than 64 units runs on one worker whatever `threads` says: its steps are too short
    /// for the exchange between two cores to pay.
    ///
    /// # Errors
    /// An invalid spec, or `params` not [`Spec::param_count`] long.
    pub fn new(
        fast: Fast,
        spec: &Spec,
        params: &[f32],
        threads: usize,
    ) -> Result<OneSequence, Error> {
        spec.validate()?;
        if params.len() != spec.param_count() {
            return Err(Error::BufferLength {
                what: "parameters",
                expected: spec.param_count(),
                actual: params.len(),
            });
        }
        let widest = spec.units[..spec.layers].iter().copied().max().unwrap_or(0);
        let workers = if threads >= 2 && widest >= 64 { 2 } else { 1 };
        let pad = lanes(fast.isa());
        let mut parts: Vec<Vec<Part>> = (0..workers).map(|_| Vec::new()).collect();
        for l in 0..spec.layers {
            let (h, input) = (spec.units[l], spec.layer_input(l));
            let g4 = 4 * h;
            let first = first_share(h, workers);
            let kernel = &params[spec.kernel_offset(l)..spec.recurrent_offset(l)];
            let recur = &params[spec.recurrent_offset(l)..spec.bias_offset(l)];
            let bias = &params[spec.bias_offset(l)..spec.bias_offset(l) + g4];
            for (w, list) in parts.iter_mut().enumerate() {
                let (u0, hw) = if w == 0 { (0, first) } else { (first, h - first) };
                let cw = padded(4 * hw, pad);
                let mut part = Part {
                    u0,
                    hw,
                    cw,
                    units: h,
                    input,
                    w: Aligned::zeros(0),
                    u: Aligned::zeros(h * cw),
                    bias: Aligned::zeros(cw),
                    table: Aligned::zeros(0),
                };
                if hw > 0 {
                    let mut b = vec![0.0f32; cw];
                    part.gather_rows(bias, &mut b);
                    part.bias.get_mut().copy_from_slice(&b);
                    let tokens = l == 0 && matches!(spec.input, InputKind::Tokens { .. });
                    if !tokens {
                        let mut wk = Aligned::zeros(input * cw);
                        part.gather_rows(kernel, wk.get_mut());
                        part.w = wk;
                    }
                    // U's rows, then cut into panels of PANEL_VECTORS vectors.
                    let mut rows = vec![0.0f32; h * cw];
                    part.gather_rows(recur, &mut rows);
                    let u = part.u.get_mut();
                    let mut j = 0;
                    while j < cw {
                        let pw = (cw - j).min(PANEL_VECTORS * pad);
                        for p in 0..h {
                            u[j * h + p * pw..j * h + (p + 1) * pw]
                                .copy_from_slice(&rows[p * cw + j..p * cw + j + pw]);
                        }
                        j += pw;
                    }
                }
                list.push(part);
            }
        }
        if let InputKind::Tokens { vocab, .. } = spec.input {
            // The table `b₀ + E·W₀` in blocks of rows, on the same kernels as the fast path's
            // own table, then each worker's columns of it.
            let g4 = 4 * spec.units[0];
            for list in parts.iter_mut() {
                let cw = list[0].cw;
                list[0].table = Aligned::zeros(vocab * cw);
            }
            const BLOCK: usize = 256;
            let mut rows = vec![0.0f32; BLOCK * g4];
            let mut first = 0;
            while first < vocab {
                let n = BLOCK.min(vocab - first);
                let block = &mut rows[..n * g4];
                model::projection_rows_with(fast, spec, params, first, block)?;
                for list in parts.iter_mut() {
                    let part = &mut list[0];
                    let cw = part.cw;
                    let mut dst = std::mem::take(&mut part.table);
                    part.gather_rows(block, &mut dst.get_mut()[first * cw..(first + n) * cw]);
                    part.table = dst;
                }
                first += n;
            }
        }
        let max_hw = parts.iter().flatten().map(|p| p.hw).max().unwrap_or(0);
        let exchange = || Exchange {
            flag: AtomicU64::new(0),
            slots: [0, 1].map(|_| (0..max_hw).map(|_| AtomicU32::new(0)).collect()),
        };
        let shared = Arc::new(Shared {
            spec: *spec,
            fast,
            parts,
            exchange: [exchange(), exchange()],
            input: Mutex::new(Input::default()),
            job: AtomicU64::new(0),
            done: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            sleeping: [AtomicBool::new(false), AtomicBool::new(false)],
            threads: Mutex::new([None, None]),
            poisoned: AtomicBool::new(false),
        });
        let helper = (workers > 1).then(|| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || helper_loop(&shared))
        });
        if let Some(h) = &helper {
            shared.threads.lock().unwrap_or_else(|e| e.into_inner())[1] = Some(h.thread().clone());
        }
        Ok(OneSequence {
            shared,
            workers,
            head: params[spec.head_range()].to_vec(),
            scratch: Scratch::default(),
            helper,
            exchanges: 0,
            choice: Choice::default(),
            calls: [0, 0],
        })
    }

    /// The number of workers (cores) a call may run on: 1 or 2. With 2, the calls run on two
    /// workers or on the calling thread alone, whichever has measured faster over the last
    /// calls (when the other core is busy, two workers wait for each other); the bits are the
    /// same either way.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Fixes how the calls run when [`OneSequence::workers`] is 2: `Some(true)` on two workers,
    /// `Some(false)` on the calling thread alone, `None` (the default) whichever measures
    /// faster. The outputs are the same bits either way; this is for tests and measurements.
    pub fn pin(&mut self, two: Option<bool>) {
        self.choice.pinned = two;
    }

    /// How many calls ran on two workers and how many on the calling thread alone (see
    /// [`OneSequence::workers`]).
    pub fn calls(&self) -> (u64, u64) {
        (self.calls[0], self.calls[1])
    }

    /// The activated outputs `out [K]` of one sequence (`[T]` token ids or `[T][C]` values).
    ///
    /// # Errors
    /// An input kind that does not match the spec, a token id out of range, an input length
    /// that is no whole number of steps (or empty), `out` not `K` long.
    pub fn forward(&mut self, input: Sequences<'_>, out: &mut [f32]) -> Result<(), Error> {
        self.forward_logits(input, out)?;
        model::activate(self.shared.spec.head, self.shared.spec.outputs, out);
        Ok(())
    }

    /// [`OneSequence::forward`] returning the head's logits (pre-activation).
    ///
    /// # Errors
    /// As [`OneSequence::forward`].
    pub fn forward_logits(&mut self, input: Sequences<'_>, out: &mut [f32]) -> Result<(), Error> {
        let spec = self.shared.spec;
        let width = spec.step_width();
        let steps = match (spec.input, input) {
            (InputKind::Tokens { vocab, .. }, Sequences::Tokens(ids)) => {
                if let Some(index) = ids.iter().position(|&t| t as usize >= vocab) {
                    return Err(Error::TokenOutOfRange { index, token: ids[index], vocab });
                }
                ids.len()
            }
            (InputKind::Channels(_), Sequences::Values(v)) => v.len() / width.max(1),
            _ => return Err(Error::InputKind),
        };
        if steps == 0 || input.len() != steps * width {
            return Err(Error::BufferLength {
                what: "input (steps × step width)",
                expected: steps.max(1) * width,
                actual: input.len(),
            });
        }
        if out.len() != spec.outputs {
            return Err(Error::BufferLength {
                what: "output",
                expected: spec.outputs,
                actual: out.len(),
            });
        }
        let mut call = Input { steps, base: self.exchanges, ..Input::default() };
        match input {
            Sequences::Tokens(ids) => call.ids.extend_from_slice(ids),
            Sequences::Values(v) => call.values.extend_from_slice(v),
        }
        let shared = &*self.shared;
        let started = std::time::Instant::now();
        if self.workers > 1 && self.choice.pinned.unwrap_or(self.choice.pair) {
            {
                let mut slot = shared.input.lock().unwrap_or_else(|e| e.into_inner());
                slot.ids.clone_from(&call.ids);
                slot.values.clone_from(&call.values);
                slot.steps = steps;
                slot.base = call.base;
            }
            shared.threads.lock().unwrap_or_else(|e| e.into_inner())[0] =
                Some(std::thread::current());
            let job = shared.job.fetch_add(1, Ordering::AcqRel) + 1;
            if let Some(h) = &self.helper {
                h.thread().unpark();
            }
            run_worker(shared, &[0], true, &call, &mut self.scratch);
            wait_for(&shared.done, job, shared, 0);
            // One exchange per kept step and layer.
            let kept = self.scratch.keep.iter().filter(|&&k| k).count() as u64;
            self.exchanges += kept * spec.layers as u64;
            self.calls[0] += 1;
        } else {
            let all: &[usize] = if self.workers > 1 { &[0, 1] } else { &[0] };
            run_worker(shared, all, false, &call, &mut self.scratch);
            self.calls[1] += 1;
        }
        if self.workers > 1 && self.choice.pinned.is_none() {
            self.choice.record(started.elapsed().as_secs_f64());
        }
        let top = spec.units[spec.layers - 1];
        let h = &self.scratch.seq[steps * top..(steps + 1) * top];
        let k = spec.outputs;
        let (wk, bias) = self.head.split_at(top * k);
        out.copy_from_slice(bias);
        shared.fast.gemm_nn(1, k, top, h, wk, out);
        Ok(())
    }
}

/// The second worker: waits for a call (spinning a little, then sleeping), runs its half.
fn helper_loop(shared: &Shared) {
    struct Poison<'a>(&'a Shared);
    impl Drop for Poison<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.poisoned.store(true, Ordering::Release);
            }
        }
    }
    let _guard = Poison(shared);
    let mut scratch = Scratch::default();
    let mut input = Input::default();
    let mut seen = 0u64;
    loop {
        // Spin a little after a call (the next one often follows at once), then sleep: the
        // caller wakes this thread at every call.
        let idle = std::time::Instant::now();
        let mut spins = 0u32;
        let job = loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            let job = shared.job.load(Ordering::Acquire);
            if job > seen {
                break job;
            }
            spins += 1;
            if !spins.is_multiple_of(64) || idle.elapsed() < IDLE_SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::park_timeout(std::time::Duration::from_millis(10));
            }
        };
        {
            let slot = shared.input.lock().unwrap_or_else(|e| e.into_inner());
            input.ids.clone_from(&slot.ids);
            input.values.clone_from(&slot.values);
            input.steps = slot.steps;
            input.base = slot.base;
        }
        run_worker(shared, &[1], true, &input, &mut scratch);
        seen = job;
        publish(&shared.done, job, shared, 1);
    }
}

impl Drop for OneSequence {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        if let Some(h) = self.helper.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}
