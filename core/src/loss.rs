//! Losses from the head's logits, as Keras computes them, and their gradients.
//!
//! | head | loss | per sample |
//! |---|---|---|
//! | sigmoid | binary cross-entropy from logits | `mean_k [max(x,0) − x·y + ln(1 + e^{−|x|})]` |
//! | softmax | sparse categorical cross-entropy | `logsumexp(x) − x[label]` |
//! | linear | mean squared error | `mean_k (x − y)²` |
//!
//! Keras applies binary and categorical cross-entropy to the logits of a sigmoid/softmax output
//! (the forms above), and averages the per-sample losses over the batch. Here the sum of the
//! per-sample losses is divided by a caller-given `norm` — the batch size, or the whole batch's
//! size when a batch is split across threads or accumulated sample by sample on a device.

use crate::error::{check_len, sized, Error, Hyperparameter};
use crate::math::{exp, ln, ln_1p, sigmoid};
use crate::spec::Head;

/// Training targets for a batch, matching the head.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Class ids `[B]` for a softmax head, each below `K`.
    Classes(&'a [u32]),
    /// Values `[B][K]`: 0/1 labels (or soft labels) for a sigmoid head, regression targets for a linear head.
    Values(&'a [f32]),
}

/// Adds the loss of `batch` samples to the return value (divided by `norm`) and writes
/// `∂loss/∂logits` into `dlogits [B][K]` (overwritten).
///
/// # Errors
/// Targets that do not match the head, wrong lengths, a class id `≥ K`, or `norm ≤ 0`.
pub fn loss_and_grad(
    head: Head,
    outputs: usize,
    batch: usize,
    logits: &[f32],
    targets: Targets<'_>,
    norm: f32,
    dlogits: &mut [f32],
) -> Result<f32, Error> {
    let k = outputs;
    let bk = sized("logits", batch.checked_mul(k))?;
    check_len("logits", bk, logits.len())?;
    check_len("logit gradient", bk, dlogits.len())?;
    if norm.is_nan() || norm <= 0.0 {
        return Err(Error::Hyperparameter(Hyperparameter::LossNorm));
    }
    let mut total = 0.0f32;
    match (head, targets) {
        (Head::Softmax, Targets::Classes(labels)) => {
            check_len("class labels", batch, labels.len())?;
            if let Some(index) = labels.iter().position(|&l| l as usize >= k) {
                return Err(Error::LabelOutOfRange { index, label: labels[index], outputs: k });
            }
            for ((x, d), &label) in
                logits.chunks_exact(k).zip(dlogits.chunks_exact_mut(k)).zip(labels)
            {
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for (di, xi) in d.iter_mut().zip(x) {
                    *di = exp(xi - max);
                    sum += *di;
                }
                let lse = max + ln(sum);
                total += lse - x[label as usize];
                for di in d.iter_mut() {
                    *di /= sum * norm;
                }
                d[label as usize] -= 1.0 / norm;
            }
        }
        (Head::Sigmoid, Targets::Values(y)) => {
            check_len("targets", bk, y.len())?;
            let scale = 1.0 / (k as f32 * norm);
            for ((x, d), t) in
                logits.chunks_exact(k).zip(dlogits.chunks_exact_mut(k)).zip(y.chunks_exact(k))
            {
                let mut sample = 0.0f32;
                for ((&xi, di), &yi) in x.iter().zip(d.iter_mut()).zip(t) {
                    sample += xi.max(0.0) - xi * yi + ln_1p(exp(-xi.abs()));
                    *di = (sigmoid(xi) - yi) * scale;
                }
                total += sample / k as f32;
            }
        }
        (Head::Linear, Targets::Values(y)) => {
            check_len("targets", bk, y.len())?;
            let scale = 2.0 / (k as f32 * norm);
            for ((x, d), t) in
                logits.chunks_exact(k).zip(dlogits.chunks_exact_mut(k)).zip(y.chunks_exact(k))
            {
                let mut sample = 0.0f32;
                for ((&xi, di), &yi) in x.iter().zip(d.iter_mut()).zip(t) {
                    let e = xi - yi;
                    sample += e * e;
                    *di = e * scale;
                }
                total += sample / k as f32;
            }
        }
        _ => return Err(Error::TargetKind),
    }
    Ok(total / norm)
}
