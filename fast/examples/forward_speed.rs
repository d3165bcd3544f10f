//! Per-thread CPU time of the inference forward pass on the benchmark models, exact against fast
//! path, one thread: `cargo run --release -p tinylstm-fast --example forward_speed`.
//!
//! Counted in the thread's own CPU time (`/proc/thread-self/schedstat` on Linux, wall-clock
//! time elsewhere), so that other processes on a loaded machine do not enter the figures. The
//! environment variables of the fast forward (`TINYLSTM_FAST_FORWARD`, `TINYLSTM_FAST_GEMV`)
//! apply, so one binary compares the variants: run it once per setting, interleaved.

use std::hint::black_box;
use std::time::Instant;
use tinylstm::kernels::Kernels;
use tinylstm::{init, model, Head, InputKind, Sequences, Spec};
use tinylstm_fast::KernelPath;

/// Nanoseconds this thread has run on a CPU (wall-clock time where the kernel does not say).
fn cpu_ns(start: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| start.elapsed().as_nanos() as f64)
}

/// Median over 5 rounds of 0.3 s of CPU time: seconds per call.
fn per_call(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    f();
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = cpu_ns(start);
            let mut n = 0u32;
            // Checking the clock costs a system call: look every `group` calls only.
            let mut group = 1;
            while cpu_ns(start) - t0 < 0.3e9 {
                for _ in 0..group {
                    f();
                }
                n += group;
                group = (group * 2).min(1024);
            }
            (cpu_ns(start) - t0) / 1e9 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

const STEPS: usize = 100;

fn forward_time(kern: KernelPath, spec: &Spec, batch: usize, chunk: usize) -> f64 {
    let mut p = vec![0.0f32; spec.param_count()];
    init::init_params(spec, 42, &mut p).expect("init");
    let mut out = vec![0.0f32; batch * spec.outputs];
    let mut work = vec![0.0f32; spec.forward_work_len(batch, chunk).expect("work")];
    match spec.input {
        InputKind::Tokens { vocab, .. } => {
            let ids: Vec<u32> = (0..batch * STEPS).map(|i| (i * 7919 % vocab) as u32).collect();
            let mut table = vec![0.0f32; model::projection_table_len(spec).expect("table")];
            model::projection_rows_with(kern, spec, &p, 0, &mut table).expect("table");
            per_call(|| {
                let input = Sequences::Tokens(black_box(&ids));
                model::forward_projected_with(
                    kern, spec, &p, &table, input, batch, &mut work, &mut out,
                )
                .expect("forward");
                black_box(&mut out);
            })
        }
        InputKind::Channels(c) => {
            let x: Vec<f32> =
                (0..batch * STEPS * c).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
            per_call(|| {
                let input = Sequences::Values(black_box(&x));
                model::forward_with(kern, spec, &p, input, batch, &mut work, &mut out)
                    .expect("forward");
                black_box(&mut out);
            })
        }
    }
}

fn gemv_time(kern: KernelPath, n: usize, k: usize) -> f64 {
    let a = vec![0.5f32; k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; n];
    per_call(|| {
        kern.gemm_nn(1, n, k, black_box(&a), black_box(&b), &mut c);
        black_box(&mut c);
    })
}

fn main() {
    let seed = Spec::tokens(10_000, 64).lstm(128).lstm(64).dense(1, Head::Sigmoid);
    let mcu = Spec::channels(6).lstm(32).dense(4, Head::Softmax);
    // Optional filters, e.g. `forward_speed fast mcu` (for `perf record`): a path, a model.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |what: &str| args.is_empty() || args.iter().any(|a| a == what);
    let paths = [("exact", KernelPath::Exact), ("fast", KernelPath::fast())];
    for (name, kern) in paths
        .into_iter()
        .filter(|(n, _)| wanted(n) || !args.iter().any(|a| a == "fast" || a == "exact"))
    {
        for (n, k) in [(512, 128), (256, 64), (128, 32)] {
            if args.is_empty() {
                println!("{name:<5} gemv 1×{n}×{k}: {:8.3} µs", gemv_time(kern, n, k) * 1e6);
            }
        }
        let models = [("seed", &seed), ("mcu", &mcu)];
        let any_model = args.iter().any(|a| a == "seed" || a == "mcu");
        for (wl, spec) in models.into_iter().filter(|(w, _)| !any_model || wanted(w)) {
            let lat = forward_time(kern, spec, 1, STEPS);
            let chunk = std::env::var("FORWARD_SPEED_CHUNK")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(10);
            let b128 = forward_time(kern, spec, 128, chunk);
            println!(
                "{name:<5} {wl:<4} batch-1 {:8.4} ms   batch-128 (one thread) {:9.0} samples/s",
                lat * 1e3,
                128.0 / b128
            );
        }
    }
}
