//! Batch-1 latency of the seed model (one sequence of 100 tokens) on the fast path: the plain
//! forward pass with the parameters on a 64-byte boundary, 16 and 32 bytes past one, the exact path
//! likewise, and [`OneSequence`] on one worker, on two (pinned) and choosing by time:
//! `cargo run --release -p tinylstm-fast --example batch1_speed [rounds]`.
//!
//! Wall-clock time (two workers use two cores), median of `rounds` (default 5) rounds of 0.2 s;
//! run it on a quiet machine, or interleave runs and compare medians.

use std::hint::black_box;
use std::time::Instant;
use tinylstm::{init, model, Head, Sequences, Spec};
use tinylstm_fast::sequence::OneSequence;
use tinylstm_fast::{Fast, KernelPath};

/// Median over `rounds` rounds of 0.2 s: seconds per call.
fn per_call(rounds: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..50 {
        f();
    }
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed().as_secs_f64() < 0.2 {
                for _ in 0..16 {
                    f();
                }
                n += 16;
            }
            start.elapsed().as_secs_f64() / f64::from(n)
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[rounds / 2]
}

/// A copy of `v` starting `off` floats past a 64-byte boundary, and where it starts.
fn placed(v: &[f32], off: usize) -> (Vec<f32>, usize) {
    let mut buf = vec![0.0f32; v.len() + 32];
    let at = (16 - (buf.as_ptr() as usize / 4) % 16) % 16 + off;
    buf[at..at + v.len()].copy_from_slice(v);
    (buf, at)
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let spec = Spec::tokens(10_000, 64).lstm(128).lstm(64).dense(1, Head::Sigmoid);
    let mut p = vec![0.0f32; spec.param_count()];
    init::init_params(&spec, 42, &mut p).expect("init");
    let ids: Vec<u32> = (0..100).map(|i| (i * 7919 % 10_000) as u32).collect();
    // A second argument `one` runs OneSequence pinned to two workers only (for `perf record`).
    let only_one = std::env::args().nth(2).is_some_and(|a| a == "one");
    let fast = Fast::new();
    let mut reference = 0.0f32;
    let paths = [("fast", KernelPath::Fast(fast)), ("exact", KernelPath::Exact)];
    for (name, path) in paths.into_iter().filter(|_| !only_one) {
        let mut table = vec![0.0f32; model::projection_table_len(&spec).expect("table")];
        model::projection_rows_with(path, &spec, &p, 0, &mut table).expect("table");
        let mut work = vec![0.0f32; spec.forward_work_len(1, 100).expect("work")];
        for off in [0, 4, 8] {
            let (buf, at) = placed(&p, off);
            let params = &buf[at..at + p.len()];
            let mut out = [0.0f32];
            let t = per_call(rounds, || {
                let input = Sequences::Tokens(black_box(&ids));
                model::forward_projected_with(
                    path, &spec, params, &table, input, 1, &mut work, &mut out,
                )
                .expect("forward");
                black_box(&mut out);
            });
            if name == "fast" {
                reference = out[0];
            }
            println!(
                "{name:<5} forward, parameters {:2} bytes past a line: {:.4} ms",
                off * 4,
                t * 1e3
            );
        }
    }
    // (threads, pin): one worker; two, pinned to two workers; two choosing by time.
    let runs: &[(usize, Option<bool>)] =
        if only_one { &[(2, Some(true))] } else { &[(1, None), (2, Some(true)), (2, None)] };
    for &(threads, pin) in runs {
        let mut one = OneSequence::new(fast, &spec, &p, threads).expect("prepare");
        one.pin(pin);
        let mut out = [0.0f32];
        let t = per_call(rounds, || {
            one.forward(Sequences::Tokens(black_box(&ids)), &mut out).expect("forward");
            black_box(&mut out);
        });
        let same = if out[0].to_bits() == reference.to_bits() { "same bits" } else { "DIFFERENT" };
        let (two, alone) = one.calls();
        let how = match (one.workers(), pin) {
            (1, _) => "1 worker",
            (_, Some(true)) => "2 workers, pinned",
            _ => "2 workers, by time",
        };
        println!(
            "OneSequence, {how:<18}:          {:.4} ms ({same} as the fast forward; \
             calls on two workers {two}, alone {alone})",
            t * 1e3
        );
    }
}
