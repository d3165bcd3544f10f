//! RAM of each mode, in bytes, from the spec: what a device's static buffers take. The firmware
//! sizes its statics with the same terms (and checks the sums at compile time); its build
//! script compares them with the board's RAM, so a model that does not fit fails the build
//! with the bytes needed and available.

use tinylstm::Spec;

use crate::tune::{FullConfig, HeadConfig};

/// How many sequences the data sets hold: the inference samples, the field training and
/// validation sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sets {
    /// Inference samples.
    pub samples: usize,
    /// Field training sequences (0: no fine-tuning data).
    pub train: usize,
    /// Field validation sequences.
    pub valid: usize,
}

impl Sets {
    /// The largest set.
    pub const fn max(&self) -> usize {
        let m = if self.samples > self.train { self.samples } else { self.train };
        if m > self.valid {
            m
        } else {
            self.valid
        }
    }
}

const F: usize = 4;

/// `x`, or `usize::MAX` when a size overflowed: a model that large needs more than any board
/// has, so the fit check refuses it.
const fn or_max(x: Option<usize>) -> usize {
    match x {
        Some(v) => v,
        None => usize::MAX,
    }
}

/// `Σ terms · F` bytes, saturating at `usize::MAX`.
const fn bytes(terms: &[usize]) -> usize {
    let mut sum = 0usize;
    let mut i = 0;
    while i < terms.len() {
        sum = sum.saturating_add(terms[i]);
        i += 1;
    }
    sum.saturating_mul(F)
}

/// Inference and streaming: forward work, streaming state and work, one sequence, the hidden
/// state, the logits and logit gradients of the largest set and its targets. (The weights stay
/// in flash.) Saturates at `usize::MAX` for a spec whose sizes overflow.
pub const fn inference(spec: &Spec, steps: usize, sets: &Sets) -> usize {
    let n = sets.max();
    let y = if matches!(spec.head, tinylstm::Head::Softmax) { 1 } else { spec.outputs };
    bytes(&[
        or_max(spec.forward_work_len(1, 1)),
        or_max(spec.state_len(1)),
        or_max(spec.step_work_len(1)),
        steps.saturating_mul(spec.step_width()),
        spec.top_units(),
        n.saturating_mul(spec.outputs).saturating_mul(2),
        n.saturating_mul(y),
    ])
}

/// Head-only fine-tuning, on top of inference: the live head, the candidate head, its gradient,
/// its optimizer state and the cached features of the training and validation sets.
pub const fn head(spec: &Spec, cfg: &HeadConfig, sets: &Sets) -> usize {
    let hl = spec.head_len();
    bytes(&[
        hl.saturating_mul(3),
        cfg.state_len(spec),
        sets.train.saturating_add(sets.valid).saturating_mul(spec.top_units()),
    ])
}

/// Full fine-tuning, on top of inference: the live parameters once an update commits, the
/// candidate, the gradients, the optimizer state and the BPTT work of one sequence (plus its
/// target words).
pub const fn full(spec: &Spec, steps: usize, cfg: &FullConfig) -> usize {
    let y = if matches!(spec.head, tinylstm::Head::Softmax) { 1 } else { spec.outputs };
    bytes(&[
        spec.param_count().saturating_mul(3),
        cfg.state_len(spec),
        cfg.work_len(spec, steps),
        y,
    ])
}
