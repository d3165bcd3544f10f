//! Throughput of training and inference (`tinylstm bench`), on synthetic data of the two
//! reference workloads' shapes (BENCHMARKS.md).
//!
//! Two workloads, each measured three ways:
//!
//! | workload | model | data |
//! |---|---|---|
//! | `seed` | Embedding 10000×64 → LSTM 128 (sequences) → LSTM 64 → Dense 1 sigmoid | random token ids, T = 100 |
//! | `mcu` | 6 channels → LSTM 32 → Dense 4 softmax | random values, T = 100 |
//!
//! * **training**: samples/s of the real training loop ([`Trainer::fit`](crate::training::fit::Trainer):
//!   the threads, the gradient reduction, Adam), batch 32, full BPTT;
//! * **batch-1 latency**: one sequence, milliseconds: on the fast path through
//!   [`OneSequence`] (the model prepared once: packed aligned weights, each step's units split
//!   over two cores when `--threads` allows; `TINYLSTM_FAST_BATCH1=plain` measures the plain
//!   forward pass instead), on the exact path through [`model::forward`] on one thread;
//! * **batch-256 inference**: 256 sequences split over the threads, samples/s.
//!
//! The inference phases place the parameters on a 64-byte boundary: where the allocator put
//! them (which depends on everything allocated before) moved the batch-1 figure by up to 1.5×.
//!
//! Inference of the token model runs from its input-projection table
//! ([`crate::training::projection`]), built once per model before the measurements (as a
//! program that keeps a model for many calls would); its GFLOP/s still count the work of the
//! pass without the table, so they compare with the peers' figures.
//!
//! All three run on the fast kernel path (`tinylstm_fast`, instruction set chosen at run time)
//! unless `--exact` asks for the exact one (the device's arithmetic).
//!
//! Each figure is the median of `--repeats` measurements of `--seconds` each. GFLOP/s count the
//! useful floating-point work: the LSTM and Dense GEMMs of the forward pass (a multiply and an
//! add are two operations) and, for training, the backward GEMMs (`dW`, `dU`, `dh`, and `dx`
//! where the input gradient is needed — the embedding's); activations and the optimizer are
//! not counted.

use crate::preprocess::{Inputs, Labels, Prepared};
use crate::training::fit::{FitConfig, Trainer};
use crate::training::projection;
use anyhow::{anyhow, Result};
use clap::ValueEnum;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use serde::Serialize;
use std::time::{Duration, Instant};
use tinylstm::optim::{Optimizer, OptimizerConfig};
use tinylstm::penalty::Penalties;
use tinylstm::{init, model, Bptt, Head, InputKind, Sequences, Spec};
use tinylstm_fast::sequence::{Batch1, OneSequence};
use tinylstm_fast::KernelPath;

/// Time steps of both workloads.
pub const STEPS: usize = 100;
/// Training batch of both workloads.
pub const BATCH: usize = 32;
/// Batch of the inference measurement.
pub const INFER_BATCH: usize = 256;
/// Time steps per chunk of the batched inference (its work buffer): 10 steps of 128 sequences
/// keep the seed model's tape (gates and states) in a 2 MiB L2, where a whole-sequence tape
/// (26 MB per thread) would stream through memory. Results are identical for every chunk.
pub const INFER_CHUNK: usize = 10;

/// The seed (Keras tutorial) model.
pub const SEED: Spec = Spec::tokens(10_000, 64).lstm(128).lstm(64).dense(1, Head::Sigmoid);
/// The microcontroller model.
pub const MCU: Spec = Spec::channels(6).lstm(32).dense(4, Head::Softmax);

/// Which workloads `tinylstm bench` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// The seed text model.
    Seed,
    /// The microcontroller sensor model.
    Mcu,
    /// Both.
    All,
}

/// The figures of one workload.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    /// `seed` or `mcu`.
    pub name: &'static str,
    /// The architecture.
    pub model: String,
    /// Parameters.
    pub params: usize,
    /// Training throughput (median), samples per second.
    pub train_samples_per_s: f64,
    /// Training useful work (median), GFLOP/s.
    pub train_gflops: f64,
    /// Batch-1 forward latency over T = 100 steps (median), milliseconds.
    pub latency_ms: f64,
    /// Batch-1 forward useful work, GFLOP/s.
    pub latency_gflops: f64,
    /// Batch-256 inference throughput (median), samples per second.
    pub infer_samples_per_s: f64,
    /// Batch-256 inference useful work, GFLOP/s.
    pub infer_gflops: f64,
    /// Every measurement (samples/s, ms, samples/s), for the spread.
    pub runs: Runs,
}

/// Every repetition of every measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Runs {
    /// Training, samples/s.
    pub train_samples_per_s: Vec<f64>,
    /// Batch-1 latency, ms.
    pub latency_ms: Vec<f64>,
    /// Batch-256 inference, samples/s.
    pub infer_samples_per_s: Vec<f64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Worker threads.
    pub threads: usize,
    /// Seconds per measurement.
    pub seconds: f64,
    /// Measurements per figure.
    pub repeats: usize,
    /// Target features the binary was compiled for (`sse2`, `avx2`, `avx512f`, …).
    pub target_features: Vec<&'static str>,
    /// Kernel path measured: `exact`, or `fast (avx512)` and the like (chosen at run time).
    pub kernels: String,
    /// Per workload.
    pub workloads: Vec<WorkloadReport>,
}

/// FLOPs of one sample's forward pass: every LSTM layer's `x·W` and `h·U` and the Dense head.
pub const fn forward_flops(spec: &Spec, steps: usize) -> u64 {
    let mut f = 0;
    let mut l = 0;
    while l < spec.layers {
        let (i, h) = (spec.layer_input(l), spec.units[l]);
        f += 2 * steps * (i + h) * 4 * h;
        l += 1;
    }
    (f + 2 * spec.top_units() * spec.outputs) as u64
}

/// FLOPs of one sample's training pass: the forward, then per layer `dW`, `dU`, `dh` and — for
/// every layer but a real-valued input layer, whose input gradient is not needed — `dx`.
pub const fn train_flops(spec: &Spec, steps: usize) -> u64 {
    let mut f = forward_flops(spec, steps) as usize;
    let tokens = matches!(spec.input, InputKind::Tokens { .. });
    let mut l = 0;
    while l < spec.layers {
        let (i, h) = (spec.layer_input(l), spec.units[l]);
        f += 2 * steps * (i + 2 * h) * 4 * h;
        if l > 0 || tokens {
            f += 2 * steps * i * 4 * h;
        }
        l += 1;
    }
    (f + 4 * spec.top_units() * spec.outputs) as u64
}

/// `n` synthetic samples of `spec`'s input kind: uniform token ids (never the padding id 0) or
/// uniform values in [-1, 1), with uniform class labels.
pub fn synthetic(spec: &Spec, n: usize, seed: u64) -> Prepared {
    let mut rng = Pcg64::seed_from_u64(seed);
    let classes = spec.outputs.max(2) as u32;
    let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..classes)).collect();
    let (inputs, width) = match spec.input {
        InputKind::Tokens { vocab, .. } => {
            let ids = (0..n * STEPS).map(|_| rng.random_range(1..vocab as u32)).collect();
            (Inputs::Tokens(ids), 1)
        }
        InputKind::Channels(c) => {
            let v = (0..n * STEPS * c).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            (Inputs::Values(v), c)
        }
    };
    Prepared { inputs, labels: Labels::Classes(labels), len: n, steps: STEPS, width }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

fn params(spec: &Spec) -> Result<Vec<f32>> {
    let mut p = vec![0.0f32; spec.param_count()];
    init::init_params(spec, 42, &mut p).map_err(|e| anyhow!("init: {e}"))?;
    Ok(p)
}

/// Training samples/s of one epoch over `n` samples with the real loop.
fn train_epoch(trainer: &Trainer, params: &mut Vec<f32>, data: &Prepared) -> Result<f64> {
    let mut opt_state = Vec::new();
    let mut best = Vec::new();
    let mut state = crate::history::TrainState::default();
    let mut rate = 0.0;
    trainer.fit(params, &mut opt_state, &mut best, &mut state, data, None, |ev| {
        rate = ev.stats.samples_per_sec;
        Ok(())
    })?;
    Ok(rate)
}

fn measure_train(
    kernels: KernelPath,
    spec: &Spec,
    threads: usize,
    seconds: f64,
    repeats: usize,
) -> Result<Vec<f64>> {
    let cfg = FitConfig {
        spec: *spec,
        optimizer: OptimizerConfig::new(Optimizer::adam()),
        penalties: Penalties::default(),
        bptt: Bptt::FULL,
        batch_size: BATCH,
        epochs: 1,
        seed: 7,
        threads,
        monitor: crate::settings::Monitor::Loss,
        patience: 0,
        min_delta: 0.0,
        restore_best: false,
        quiet: true,
        kernels,
    };
    let trainer = Trainer::new(cfg)?;
    let mut p = params(spec)?;
    // Calibrate: two batches, then size an epoch to last about `seconds`.
    let warm = synthetic(spec, 2 * BATCH, 1);
    let rate = train_epoch(&trainer, &mut p, &warm)?;
    let batches = ((seconds * rate / BATCH as f64).round() as usize).clamp(2, 100_000);
    let data = synthetic(spec, batches * BATCH, 2);
    (0..repeats).map(|_| train_epoch(&trainer, &mut p, &data)).collect()
}

/// Calls `f` until `seconds` have passed (at least 3 times); returns seconds per call.
fn per_call(seconds: f64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 3 || start.elapsed() < budget {
        f()?;
        calls += 1;
    }
    Ok(start.elapsed().as_secs_f64() / f64::from(calls))
}

fn seqs<'a>(data: &'a Prepared, from: usize, n: usize) -> Sequences<'a> {
    let row = data.steps * data.width;
    match &data.inputs {
        Inputs::Tokens(t) => Sequences::Tokens(&t[from * row..(from + n) * row]),
        Inputs::Values(v) => Sequences::Values(&v[from * row..(from + n) * row]),
    }
}

/// A token model's input-projection table, built once per model as a program that keeps
/// the model for many calls would ([`crate::training::projection`]); `None` for channel models
/// and tables over the size bound.
fn projection_table(kernels: KernelPath, spec: &Spec, p: &[f32]) -> Result<Option<Vec<f32>>> {
    if !projection::table_pays(spec, usize::MAX) {
        return Ok(None);
    }
    projection::build_table(kernels, spec, p).map(Some)
}

/// One forward pass of `n` sequences, from the projection table when there is one.
#[allow(clippy::too_many_arguments)]
fn forward(
    kernels: KernelPath,
    spec: &Spec,
    p: &[f32],
    table: Option<&[f32]>,
    input: Sequences<'_>,
    n: usize,
    work: &mut [f32],
    out: &mut [f32],
) -> Result<()> {
    match table {
        Some(t) => model::forward_projected_with(kernels, spec, p, t, input, n, work, out),
        None => model::forward_with(kernels, spec, p, input, n, work, out),
    }
    .map_err(|e| anyhow!("forward: {e}"))
}

fn measure_latency(
    kernels: KernelPath,
    spec: &Spec,
    threads: usize,
    seconds: f64,
    repeats: usize,
) -> Result<Vec<f64>> {
    let p = aligned(&params(spec)?);
    let p = p.get();
    let data = synthetic(spec, 64, 3);
    let mut out = vec![0.0f32; spec.outputs];
    let mut i = 0;
    if let (KernelPath::Fast(fast), Batch1::OneSequence) = (kernels, Batch1::from_env()) {
        let mut one = OneSequence::new(fast, spec, p, threads).map_err(|e| anyhow!("{e}"))?;
        let mut call = || {
            i = (i + 1) % data.len;
            one.forward(seqs(&data, i, 1), &mut out).map_err(|e| anyhow!("forward: {e}"))
        };
        per_call(seconds.min(0.2), &mut call)?; // warm-up
        return (0..repeats).map(|_| per_call(seconds, &mut call).map(|s| s * 1e3)).collect();
    }
    let work_len = spec.forward_work_len(1, STEPS).ok_or_else(|| anyhow!("work too large"))?;
    let mut work = vec![0.0f32; work_len];
    let table = projection_table(kernels, spec, p)?;
    let mut one = || {
        i = (i + 1) % data.len;
        forward(kernels, spec, p, table.as_deref(), seqs(&data, i, 1), 1, &mut work, &mut out)
    };
    per_call(seconds.min(0.2), &mut one)?; // warm-up
    (0..repeats).map(|_| per_call(seconds, &mut one).map(|s| s * 1e3)).collect()
}

/// A copy of `v` that starts on a 64-byte boundary ([`Aligned::get`]).
fn aligned(v: &[f32]) -> Aligned {
    let mut buf = vec![0.0f32; v.len() + 16];
    let at = (16 - (buf.as_ptr() as usize / size_of::<f32>()) % 16) % 16;
    buf[at..at + v.len()].copy_from_slice(v);
    Aligned { buf, at, len: v.len() }
}

/// Floats on a 64-byte boundary: the one-row products read every row of a weight matrix once
/// per step, and a vector load that starts past a cache line touches two lines.
struct Aligned {
    buf: Vec<f32>,
    at: usize,
    len: usize,
}

impl Aligned {
    fn get(&self) -> &[f32] {
        &self.buf[self.at..self.at + self.len]
    }
}

fn measure_infer(
    kernels: KernelPath,
    spec: &Spec,
    threads: usize,
    seconds: f64,
    repeats: usize,
) -> Result<Vec<f64>> {
    let p = aligned(&params(spec)?);
    let p = p.get();
    let data = synthetic(spec, INFER_BATCH, 4);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let part = INFER_BATCH.div_ceil(threads);
    let work_len =
        spec.forward_work_len(part, INFER_CHUNK).ok_or_else(|| anyhow!("work too large"))?;
    let mut slots: Vec<(Vec<f32>, Vec<f32>)> =
        (0..threads).map(|_| (vec![0.0f32; work_len], vec![0.0; part * spec.outputs])).collect();
    let table = pool.install(|| projection_table(kernels, spec, p))?;
    let mut batch = || -> Result<()> {
        pool.install(|| {
            slots.par_iter_mut().enumerate().try_for_each(|(t, (work, out))| {
                let from = t * part;
                let n = part.min(INFER_BATCH.saturating_sub(from));
                if n == 0 {
                    return Ok(());
                }
                let out = &mut out[..n * spec.outputs];
                forward(kernels, spec, p, table.as_deref(), seqs(&data, from, n), n, work, out)
            })
        })
    };
    per_call(seconds.min(0.5), &mut batch)?; // warm-up
    (0..repeats).map(|_| per_call(seconds, &mut batch).map(|s| INFER_BATCH as f64 / s)).collect()
}

/// One line describing a workload's model.
pub fn describe(spec: &Spec) -> String {
    let mut s = match spec.input {
        InputKind::Tokens { vocab, embed } => format!("Embedding {vocab}×{embed}"),
        InputKind::Channels(c) => format!("{c} channels"),
    };
    for l in 0..spec.layers {
        s += &format!(" → LSTM {}", spec.units[l]);
    }
    let head = match spec.head {
        Head::Sigmoid => "sigmoid",
        Head::Softmax => "softmax",
        Head::Linear => "linear",
    };
    s + &format!(" → Dense {} {head}; T={STEPS}", spec.outputs)
}

/// Runs the measurements of one workload.
pub fn bench_workload(
    kernels: KernelPath,
    name: &'static str,
    spec: &Spec,
    threads: usize,
    seconds: f64,
    repeats: usize,
) -> Result<WorkloadReport> {
    let train = measure_train(kernels, spec, threads, seconds, repeats)?;
    let latency = measure_latency(kernels, spec, threads, seconds, repeats)?;
    let infer = measure_infer(kernels, spec, threads, seconds, repeats)?;
    let (t, l, i) = (median(&train), median(&latency), median(&infer));
    let fwd = forward_flops(spec, STEPS) as f64;
    Ok(WorkloadReport {
        name,
        model: describe(spec),
        params: spec.param_count(),
        train_samples_per_s: t,
        train_gflops: t * train_flops(spec, STEPS) as f64 / 1e9,
        latency_ms: l,
        latency_gflops: fwd / (l * 1e-3) / 1e9,
        infer_samples_per_s: i,
        infer_gflops: i * fwd / 1e9,
        runs: Runs { train_samples_per_s: train, latency_ms: latency, infer_samples_per_s: infer },
    })
}

/// The SIMD target features this binary was compiled with.
pub fn target_features() -> Vec<&'static str> {
    let mut v = Vec::new();
    macro_rules! feature {
        ($($f:tt),*) => {$( if cfg!(target_feature = $f) { v.push($f); } )*};
    }
    feature!("sse2", "sse4.1", "avx", "avx2", "fma", "avx512f", "neon");
    v
}

/// The report as a text table.
pub fn table(r: &BenchReport) -> String {
    let mut s = format!(
        "threads {}, {} s × {} per figure (median), kernels {}, built for {}\n",
        r.threads,
        r.seconds,
        r.repeats,
        r.kernels,
        r.target_features.join("+")
    );
    s += &format!(
        "{:<6} {:>18} {:>9} {:>16} {:>9} {:>18} {:>9}\n",
        "model",
        "train samples/s",
        "GFLOP/s",
        "batch-1 ms",
        "GFLOP/s",
        "batch-256 samp/s",
        "GFLOP/s"
    );
    for w in &r.workloads {
        s += &format!(
            "{:<6} {:>18.0} {:>9.1} {:>16.3} {:>9.1} {:>18.0} {:>9.1}\n",
            w.name,
            w.train_samples_per_s,
            w.train_gflops,
            w.latency_ms,
            w.latency_gflops,
            w.infer_samples_per_s,
            w.infer_gflops
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_counts() {
        // Seed: forward 2·100·(64+128)·512 + 2·100·(128+64)·256 + 2·64.
        assert_eq!(forward_flops(&SEED, 100), 19_660_800 + 9_830_400 + 128);
        // MCU training: forward + dW, dU, dh (no dx for a real-valued input layer) + head.
        let f = forward_flops(&MCU, 100);
        assert_eq!(train_flops(&MCU, 100), f + 2 * 100 * (6 + 64) * 128 + 4 * 32 * 4);
    }

    #[test]
    fn tiny_bench_runs() {
        let spec = Spec::channels(2).lstm(4).dense(3, Head::Softmax);
        let w = bench_workload(KernelPath::fast(), "tiny", &spec, 2, 0.01, 1).unwrap();
        assert!(w.train_samples_per_s > 0.0 && w.latency_ms > 0.0 && w.infer_samples_per_s > 0.0);
        assert!(table(&BenchReport {
            threads: 2,
            seconds: 0.01,
            repeats: 1,
            target_features: target_features(),
            kernels: KernelPath::fast().describe(),
            workloads: vec![w]
        })
        .contains("tiny"));
    }
}
