//! How to share one training batch of 32 between two cores, measured at the kernel level on the
//! seed model's shapes (Embedding 64 → LSTM 128 → LSTM 64, T = 100):
//! `cargo run --release -p tinylstm-fast --example thread_split`.
//!
//! * **Batch split** (what training does): each core runs 16 sequences through the whole pass,
//!   then the two gradients are summed. Per step and layer a core runs `h·U` and `dz·Uᵀ` with
//!   16 rows; the weight gradients are one GEMM over all its `16·T` rows.
//! * **Gate-column split**: each core runs all 32 sequences for half of every layer's units
//!   (its half of `U`'s gate columns), and the two cores exchange their halves of `h` (forward)
//!   and `dh` (backward) at every step of every layer: 32 rows, half the columns, plus two
//!   hand-offs per step and layer.
//! * **Layer pipeline**: one core per layer. Not run here: its speed follows from the work per
//!   layer (printed below): the slower core sets the pace.
//!
//! Printed: the time of one batch's recurrent products and weight gradients on one core for
//! each split (the same FLOPs, shaped differently), and the measured round trip of a hand-off
//! between two threads (a release store and a spinning acquire load), times the hand-offs a
//! column split needs per batch.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tinylstm::kernels::Kernels;
use tinylstm_fast::Fast;

/// Seconds per call of `f`, median of 7 blocks of at least 0.1 s.
fn seconds(mut f: impl FnMut()) -> f64 {
    f();
    let mut blocks: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let mut n = 0u32;
            while t.elapsed().as_secs_f64() < 0.1 {
                f();
                n += 1;
            }
            t.elapsed().as_secs_f64() / f64::from(n)
        })
        .collect();
    blocks.sort_by(f64::total_cmp);
    blocks[3]
}

/// One product `op` (`'n'`: `a·b`, `'t'`: `aᵀ·b`, `'x'`: `a·bᵀ`) of `m×n×k`, in seconds.
fn product(kern: &Fast, op: char, m: usize, n: usize, k: usize) -> f64 {
    let a = vec![0.5f32; m.max(k) * k.max(m)];
    let b = vec![0.25f32; k.max(n) * n.max(k)];
    let mut c = vec![0.0f32; m * n];
    seconds(|| {
        match op {
            'n' => kern.gemm_nn(m, n, k, black_box(&a[..m * k]), black_box(&b[..k * n]), &mut c),
            't' => kern.gemm_tn(m, n, k, black_box(&a[..k * m]), black_box(&b[..k * n]), &mut c),
            _ => kern.gemm_nt(m, n, k, black_box(&a[..m * k]), black_box(&b[..n * k]), &mut c),
        }
        black_box(&mut c);
    })
}

/// Round trip of one hand-off between two threads (release store, spinning acquire load), s.
fn handoff() -> f64 {
    let flag = Arc::new(AtomicU32::new(0));
    let other = Arc::clone(&flag);
    const ROUNDS: u32 = 200_000;
    let echo = std::thread::spawn(move || {
        for i in 0..ROUNDS {
            while other.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.store(2 * i + 2, Ordering::Release);
        }
    });
    let t = Instant::now();
    for i in 0..ROUNDS {
        flag.store(2 * i + 1, Ordering::Release);
        while flag.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let s = t.elapsed().as_secs_f64() / f64::from(ROUNDS);
    echo.join().unwrap();
    s
}

fn main() {
    let kern = Fast::new();
    const T: usize = 100;
    const B: usize = 32;
    // (input, units) of the two layers.
    let layers = [(64usize, 128usize), (128, 64)];
    println!("seed model, batch {B}, T = {T}; one core, {} kernels", kern.isa().name());
    let mut per_layer = Vec::new();
    let (mut batch_split, mut column_split) = (0.0, 0.0);
    for (l, &(input, h)) in layers.iter().enumerate() {
        let g4 = 4 * h;
        // Batch split: 16 rows, every column; weight gradients over 16·T rows.
        let rows = B / 2;
        let bs = T as f64 * (product(&kern, 'n', rows, g4, h) + product(&kern, 'x', rows, h, g4))
            + product(&kern, 't', input + h, g4, rows * T)
            + product(&kern, 'n', rows * T, g4, input)
            + product(&kern, 'x', rows * T, input, g4);
        // Column split: 32 rows, half the gate columns (forward) and half of dh's columns
        // (backward: each core forms its half of dh from the whole dz after the exchange);
        // weight gradients of its columns over 32·T rows.
        let cs = T as f64 * (product(&kern, 'n', B, g4 / 2, h) + product(&kern, 'x', B, h / 2, g4))
            + product(&kern, 't', input + h, g4 / 2, B * T)
            + product(&kern, 'n', B * T, g4 / 2, input)
            + product(&kern, 'x', B * T, input / 2, g4);
        println!(
            "layer {}: batch split {:.3} ms, column split {:.3} ms per core and batch",
            l + 1,
            bs * 1e3,
            cs * 1e3
        );
        per_layer.push(bs * 2.0);
        batch_split += bs;
        column_split += cs;
    }
    let trip = handoff();
    // Two hand-offs per step and layer (h forward, dh backward).
    let handoffs = (2 * T * layers.len()) as f64 * trip;
    println!("hand-off round trip between the two threads: {:.0} ns", trip * 1e9);
    println!(
        "products per batch on each core: batch split {:.3} ms (+ the gradient sum), column split \
         {:.3} ms + {:.3} ms of hand-offs = {:.3} ms",
        batch_split * 1e3,
        column_split * 1e3,
        handoffs * 1e3,
        (column_split + handoffs) * 1e3
    );
    let (a, b) = (per_layer[0], per_layer[1]);
    println!(
        "layer pipeline: layer 1 {:.3} ms and layer 2 {:.3} ms of one core's work per batch: the \
         pace is the slower, {:.3} ms, against {:.3} ms per core for the batch split",
        a * 1e3,
        b * 1e3,
        a.max(b) * 1e3,
        batch_split * 1e3
    );
}
