//! Bench groups and the shapes they share.

pub mod kernels;
pub mod lstm;
pub mod train;

use criterion::Criterion;
use std::time::Duration;
use tinylstm::{Head, Spec};

/// The seed (Keras tutorial) model: Embedding 10000×64 → LSTM 128 (sequences) → LSTM 64 → Dense 1.
pub const SEED: Spec = Spec::tokens(10_000, 64).lstm(128).lstm(64).dense(1, Head::Sigmoid);
/// The MCU model: 6 real channels → LSTM 32 → Dense 4 softmax.
pub const MCU: Spec = Spec::channels(6).lstm(32).dense(4, Head::Softmax);
/// Time steps of both workloads.
pub const STEPS: usize = 100;
/// Batch of both workloads.
pub const BATCH: usize = 32;

/// Short measurements so the whole suite runs in a few minutes.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// Deterministic values in `[-1, 1)` (a small LCG: benches need data, not randomness).
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / 8_388_608.0) - 1.0
        })
        .collect()
}

/// Deterministic token ids below `vocab`.
pub fn tokens(len: usize, vocab: usize, seed: u64) -> Vec<u32> {
    values(len, seed)
        .iter()
        .map(|v| (((v + 1.0) * 0.5 * vocab as f32) as usize).min(vocab - 1) as u32)
        .collect()
}

/// FLOPs of one LSTM layer's forward over `steps` steps of `batch` rows (the two GEMMs).
pub const fn lstm_forward_flops(input: usize, units: usize, batch: usize, steps: usize) -> u64 {
    (2 * steps * batch * (input + units) * 4 * units) as u64
}

/// FLOPs of a whole model's forward pass (LSTM GEMMs plus the Dense head).
pub const fn model_forward_flops(spec: &Spec, batch: usize, steps: usize) -> u64 {
    let mut f = 0u64;
    let mut l = 0;
    while l < spec.layers {
        f += lstm_forward_flops(spec.layer_input(l), spec.units[l], batch, steps);
        l += 1;
    }
    f + (2 * batch * spec.top_units() * spec.outputs) as u64
}

/// FLOPs of `loss_and_grad`: the forward, then per layer `dU`, `dW`, `dh` (`dz·Uᵀ`) and, except
/// for a layer-0 channel input whose gradient is not asked for, `dx` (`dz·Wᵀ`).
pub const fn train_flops(spec: &Spec, batch: usize, steps: usize) -> u64 {
    let mut f = model_forward_flops(spec, batch, steps);
    let mut l = 0;
    while l < spec.layers {
        let (i, h) = (spec.layer_input(l), spec.units[l]);
        let rows = (steps * batch) as u64;
        let g4 = (4 * h) as u64;
        f += 2 * rows * (i as u64 + 2 * h as u64) * g4; // dW, dU, dh
        let dx = l > 0 || matches!(spec.input, tinylstm::InputKind::Tokens { .. });
        if dx {
            f += 2 * rows * i as u64 * g4;
        }
        l += 1;
    }
    f + (4 * batch * spec.top_units() * spec.outputs) as u64
}
