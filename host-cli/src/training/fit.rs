//! The training loop: batches, threads and bookkeeping around the core's math.
//!
//! Each batch is cut into one contiguous part per worker thread; every part runs the core's
//! [`loss_and_grad`](tinylstm::train::loss_and_grad) into its own gradient buffer (normalised by the whole batch's size), and
//! the parts' gradients are added in part order — so a run is deterministic for a fixed seed and
//! thread count. Then the penalties are added, the loss and every gradient are checked to be
//! finite (a NaN or infinity stops training with the step and tensor, before any weight
//! changes), and the optimizer steps.

use crate::history::{format_loss, EpochStats, PartialEpoch, TrainState};
use crate::interrupt::Interrupted;
use crate::keras_names::tensor_name;
use crate::metrics::predicted_classes;
use crate::preprocess::{BatchBuf, Labels, Prepared};
use crate::settings::Monitor;
use anyhow::{anyhow, bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use rayon::prelude::*;
use std::time::Instant;
use tinylstm::optim::{OptimizerConfig, StateParts};
use tinylstm::penalty::Penalties;
use tinylstm::train::{loss_and_grad_with, Batch, TrainBuffers, TrainOptions};
use tinylstm::{model, Bptt, Head, Model, Spec};
use tinylstm_fast::KernelPath;

/// Everything the loop needs besides the data.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Architecture.
    pub spec: Spec,
    /// Optimizer, schedule, clipping.
    pub optimizer: OptimizerConfig,
    /// L1/L2 penalties.
    pub penalties: Penalties,
    /// BPTT mode.
    pub bptt: Bptt,
    /// Samples per step.
    pub batch_size: usize,
    /// Total epochs (including ones already done when resuming).
    pub epochs: usize,
    /// Shuffling seed.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
    /// Monitored metric.
    pub monitor: Monitor,
    /// Early-stopping patience (0 = never stop early).
    pub patience: usize,
    /// Minimum improvement.
    pub min_delta: f64,
    /// Restore the best weights at the end.
    pub restore_best: bool,
    /// No progress output.
    pub quiet: bool,
    /// Kernel path of every forward and backward pass (training, validation, evaluation).
    pub kernels: KernelPath,
}

/// What the loop tells its caller after each epoch.
#[derive(Debug)]
pub struct EpochEvent<'a> {
    /// The epoch's figures.
    pub stats: &'a EpochStats,
    /// The monitored value improved this epoch.
    pub improved: bool,
    /// Current parameters.
    pub params: &'a [f32],
    /// Optimizer state.
    pub optimizer_state: &'a [f32],
    /// Best parameters so far.
    pub best_params: &'a [f32],
    /// Progress (for checkpoints).
    pub state: &'a TrainState,
}

struct Slot {
    work: Vec<f32>,
    grads: Vec<f32>,
    outputs: Vec<f32>,
    buf: BatchBuf,
    loss: f32,
    result: Result<(), tinylstm::Error>,
}

fn accuracy(spec: &Spec, labels: &Labels, out: &[f32]) -> Option<f64> {
    match labels {
        Labels::Classes(c) if spec.head != Head::Linear => {
            let pred = predicted_classes(spec.head, spec.outputs, out);
            let right = pred.iter().zip(c).filter(|(a, b)| a == b).count();
            Some(right as f64 / c.len().max(1) as f64)
        }
        _ => None,
    }
}

/// Runs the training loop.
#[derive(Debug)]
pub struct Trainer {
    cfg: FitConfig,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("loss", &self.loss).finish()
    }
}

impl Trainer {
    /// A trainer with its own thread pool.
    pub fn new(cfg: FitConfig) -> Result<Trainer> {
        if cfg.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        crate::limits::Machine::detect()?.check_threads("--threads", cfg.threads)?;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(cfg.threads).build()?;
        Ok(Trainer { cfg, pool })
    }

    /// The configuration.
    pub fn config(&self) -> &FitConfig {
        &self.cfg
    }

    /// Loss (with penalties) and activated outputs `[N][K]` of `params` on `data`.
    pub fn evaluate(&self, params: &[f32], data: &Prepared) -> Result<(f64, Vec<f32>)> {
        let spec = self.cfg.spec;
        let kernels = self.cfg.kernels;
        let k = spec.outputs;
        let chunk = 128usize;
        let n = data.len;
        let work_len = spec
            .forward_work_len(chunk, data.steps.min(10))
            .ok_or_else(|| anyhow!("{} steps per sequence: work buffer too large", data.steps))?;
        let idx: Vec<usize> = (0..n).collect();
        let parts: Vec<&[usize]> = idx.chunks(chunk).collect();
        // A token model's input projections from a per-token table when it pays (same bits on
        // the exact path).
        let table = if super::projection::table_pays(&spec, n.saturating_mul(data.steps)) {
            Some(self.pool.install(|| super::projection::build_table(kernels, &spec, params))?)
        } else {
            None
        };
        let results: Vec<Result<(f64, Vec<f32>)>> = self.pool.install(|| {
            parts
                .par_iter()
                .map_init(
                    || {
                        (
                            BatchBuf::default(),
                            // Ten time steps per chunk keep the tape in L2 (a whole-sequence
                            // tape of 128 samples can be tens of MB); results are identical.
                            vec![0.0f32; work_len],
                        )
                    },
                    |(buf, work), part| {
                        data.gather(part, k, buf);
                        let b = part.len();
                        let mut logits = vec![0.0f32; b * k];
                        match &table {
                            Some(t) => model::forward_logits_projected_with(
                                kernels,
                                &spec,
                                params,
                                t,
                                buf.sequences(),
                                b,
                                work,
                                &mut logits,
                            ),
                            None => Model::new(&spec, params).forward_logits_with(
                                kernels,
                                buf.sequences(),
                                work,
                                &mut logits,
                            ),
                        }
                        .map_err(|e| anyhow!("forward pass: {e}"))?;
                        let mut d = vec![0.0f32; b * k];
                        let loss = tinylstm::loss::loss_and_grad(
                            spec.head,
                            k,
                            b,
                            &logits,
                            buf.core_targets(spec.head),
                            n as f32,
                            &mut d,
                        )
                        .map_err(|e| anyhow!("loss: {e}"))?;
                        model::activate(spec.head, k, &mut logits);
                        Ok((loss as f64, logits))
                    },
                )
                .collect()
        });
        let mut loss = 0.0;
        let mut out = Vec::with_capacity(n * k);
        for r in results {
            let (l, o) = r?;
            loss += l;
            out.extend_from_slice(&o);
        }
        let mut scratch = vec![0.0; spec.param_count()];
        loss += self.cfg.penalties.add_loss_and_grad(&spec, params, &mut scratch)? as f64;
        Ok((loss, out))
    }

    /// Trains `params` in place from `state` (fresh or resumed) until `cfg.epochs` or early
    /// stopping; calls `on_epoch` after every epoch (checkpointing happens there).
    pub fn fit(
        &self,
        params: &mut Vec<f32>,
        optimizer_state: &mut Vec<f32>,
        best_params: &mut Vec<f32>,
        state: &mut TrainState,
        train: &Prepared,
        valid: Option<&Prepared>,
        mut on_epoch: impl FnMut(&EpochEvent<'_>) -> Result<()>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let spec = cfg.spec;
        let p = spec.param_count();
        let k = spec.outputs;
        if train.len == 0 {
            bail!("the training split is empty");
        }
        let n_opt = cfg.optimizer.state_len(p);
        if optimizer_state.is_empty() {
            *optimizer_state = vec![0.0; n_opt];
        } else if optimizer_state.len() != n_opt {
            bail!(
                "the optimizer state holds {} values, the optimizer needs {n_opt} for {p} \
                 parameters",
                optimizer_state.len()
            );
        }
        if best_params.len() != p {
            *best_params = params.clone();
        }
        let bs = cfg.batch_size.min(train.len);
        let part_cap = bs.div_ceil(cfg.threads);
        let work_len = spec.train_work_len(part_cap, train.steps, cfg.bptt);
        // Per thread: work buffer, gradients, outputs; plus the epoch's outputs.
        let bytes = work_len
            .and_then(|w| w.checked_add(p)?.checked_add(part_cap.checked_mul(k)?))
            .and_then(|slot| slot.checked_mul(cfg.threads)?.checked_add(train.len.checked_mul(k)?))
            .and_then(|floats| (floats as u64).checked_mul(4));
        crate::limits::Machine::detect()?.check_memory(
            "training (work buffers of every thread)",
            &format!(
                "--batch-size {} over --threads {} with {} steps per sequence (--maxlen, or the \
                 data's longest sequence)",
                cfg.batch_size, cfg.threads, train.steps
            ),
            bytes,
        )?;
        let work_len = work_len.ok_or_else(|| anyhow!("training work buffer too large"))?;
        let mut slots: Vec<Slot> = (0..cfg.threads)
            .map(|_| Slot {
                work: vec![0.0; work_len],
                grads: vec![0.0; p],
                outputs: vec![0.0; part_cap * k],
                buf: BatchBuf::default(),
                loss: 0.0,
                result: Ok(()),
            })
            .collect();
        let mut grads = vec![0.0f32; p];
        let mut order: Vec<usize> = (0..train.len).collect();
        let batches = train.len.div_ceil(bs);
        let mut outputs = vec![0.0f32; train.len * k];
        let lower_is_better = !matches!(cfg.monitor, Monitor::ValAccuracy);

        for epoch in state.epochs_done + 1..=cfg.epochs {
            let mut rng = Pcg64::seed_from_u64(cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
            order.sort_unstable();
            order.shuffle(&mut rng);
            let bar = if cfg.quiet {
                ProgressBar::hidden()
            } else {
                let bar = ProgressBar::new(batches as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "Epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{epoch}/{}", cfg.epochs));
                bar
            };
            let start = Instant::now();
            let (skip, mut loss_sum, earlier) =
                continue_partial(state, epoch, bs, train.len, &mut outputs)?;
            for (bi, idx) in order.chunks(bs).enumerate().skip(skip) {
                if crate::interrupt::poll() {
                    // A batch boundary: record where the epoch stands and stop.
                    bar.finish_and_clear();
                    state.partial = Some(PartialEpoch {
                        epoch,
                        batches: bi,
                        batch_size: bs,
                        samples: train.len,
                        loss_sum_bits: loss_sum.to_bits(),
                        seconds: earlier + start.elapsed().as_secs_f64(),
                        outputs_bits: outputs.iter().map(|v| v.to_bits()).collect(),
                    });
                    return Err(Interrupted { resume: String::new() }.into());
                }
                let b = idx.len();
                let part_len = b.div_ceil(cfg.threads);
                let opts = TrainOptions { bptt: cfg.bptt, norm: b };
                let parts: Vec<&[usize]> = idx.chunks(part_len).collect();
                self.pool.install(|| {
                    slots.par_iter_mut().zip(parts.par_iter()).for_each(|(slot, part)| {
                        train.gather(part, k, &mut slot.buf);
                        slot.grads.fill(0.0);
                        let batch = Batch {
                            inputs: slot.buf.sequences(),
                            targets: slot.buf.core_targets(spec.head),
                            batch: part.len(),
                        };
                        let out = &mut slot.outputs[..part.len() * k];
                        slot.result = loss_and_grad_with(
                            cfg.kernels,
                            &spec,
                            params,
                            &batch,
                            &opts,
                            TrainBuffers::new(&mut slot.work, &mut slot.grads).with_outputs(out),
                        )
                        .map(|l| slot.loss = l);
                    })
                });
                let used = parts.len();
                let mut loss = 0.0f32;
                for (si, slot) in slots[..used].iter_mut().enumerate() {
                    std::mem::replace(&mut slot.result, Ok(()))
                        .map_err(|e| anyhow!("batch {}: {e}", bi + 1))?;
                    loss += slot.loss;
                    for (o, &i) in parts[si].iter().enumerate() {
                        let src = &slot.outputs[o * k..(o + 1) * k];
                        outputs[i * k..(i + 1) * k].copy_from_slice(src);
                    }
                }
                {
                    let slots = &slots[..used];
                    self.pool.install(|| {
                        grads.par_chunks_mut(4096).enumerate().for_each(|(ci, g)| {
                            let (lo, n) = (ci * 4096, g.len());
                            g.copy_from_slice(&slots[0].grads[lo..lo + n]);
                            for s in &slots[1..] {
                                for (a, b) in g.iter_mut().zip(&s.grads[lo..lo + n]) {
                                    *a += b;
                                }
                            }
                        })
                    });
                }
                loss += cfg.penalties.add_loss_and_grad(&spec, params, &mut grads)?;
                let step = state.iteration;
                if !loss.is_finite() {
                    bail!(
                        "training diverged at epoch {epoch}, batch {}: the loss is {loss}; no weights were \
                         changed by this step (try a lower --lr, or --clipnorm/--global-clipnorm)",
                        bi + 1
                    );
                }
                if let Some(bad) = grads.iter().position(|g| !g.is_finite()) {
                    let t = spec.tensors().position(|t| t.range().contains(&bad)).unwrap_or(0);
                    bail!(
                        "training diverged at epoch {epoch}, batch {}: the gradient of {} is {} \
                         (element {}); no weights were changed by this step (try a lower --lr, or \
                         --clipnorm/--global-clipnorm)",
                        bi + 1,
                        tensor_name(&spec, t),
                        grads[bad],
                        bad - spec.tensor(t).map_or(0, |t| t.offset)
                    );
                }
                let lr = cfg
                    .optimizer
                    .prepare(&spec, 0..p, step, &mut grads)
                    .map_err(|e| anyhow!("optimizer step {step}: {e}"))?;
                // The update of each parameter reads only its own gradient and moments: the
                // parts run on the pool's threads and give the bits of one whole step.
                let moments = cfg.optimizer.optimizer.state_parts(optimizer_state, p)?;
                let parts = optimizer_parts(params, &grads, moments);
                let method = &cfg.optimizer.optimizer;
                self.pool
                    .install(|| {
                        parts
                            .into_par_iter()
                            .try_for_each(|(w, g, m)| method.step_part(lr, step, w, g, m))
                    })
                    .map_err(|e| anyhow!("optimizer step {step}: {e}"))?;
                state.iteration += 1;
                loss_sum += loss as f64;
                bar.set_position(bi as u64 + 1);
                bar.set_message(format!("loss {}", format_loss(loss_sum / (bi + 1) as f64)));
            }
            let seconds = earlier + start.elapsed().as_secs_f64();
            // The rate of the epoch's last step, evaluated once per epoch (the optimizer
            // evaluates the schedule once per step); the initial rate for an empty epoch.
            let lr = cfg.optimizer.schedule.lr(state.iteration.saturating_sub(1)) as f64;
            bar.finish_and_clear();
            let train_loss = loss_sum / batches as f64;
            let train_acc = accuracy(&spec, &train.labels, &outputs);
            let (val_loss, val_accuracy) = match valid {
                Some(v) if v.len > 0 => {
                    let (l, o) = self.evaluate(params, v)?;
                    (Some(l), accuracy(&spec, &v.labels, &o))
                }
                _ => (None, None),
            };
            let stats = EpochStats {
                epoch,
                loss: train_loss,
                accuracy: train_acc,
                val_loss,
                val_accuracy,
                lr,
                seconds,
                samples_per_sec: train.len as f64 / seconds.max(1e-9),
            };
            let monitored = match cfg.monitor {
                Monitor::ValLoss => stats.val_loss,
                Monitor::ValAccuracy => stats.val_accuracy,
                Monitor::Loss => Some(stats.loss),
            }
            .ok_or_else(|| {
                anyhow!("--monitor {} needs a validation split with class labels", cfg.monitor)
            })?;
            // A value that is not a finite number is never the best (and never saved as such).
            let improved = improves(monitored, state.best, lower_is_better, cfg.min_delta);
            if improved {
                state.best = Some((monitored, epoch));
                state.wait = 0;
                best_params.copy_from_slice(params);
            } else {
                state.wait += 1;
            }
            state.epochs_done = epoch;
            state.history.push(stats.clone());
            if !cfg.quiet {
                eprintln!("{}", epoch_line(&stats, cfg.epochs, improved));
            }
            on_epoch(&EpochEvent {
                stats: &stats,
                improved,
                params,
                optimizer_state,
                best_params,
                state,
            })?;
            if cfg.patience > 0 && state.wait >= cfg.patience {
                if !cfg.quiet {
                    eprintln!(
                        "Early stopping: no improvement of {} for {} epochs",
                        cfg.monitor, cfg.patience
                    );
                }
                break;
            }
            if epoch < cfg.epochs && crate::interrupt::poll() {
                // An epoch boundary: `on_epoch` has seen (and checkpointed) the epoch.
                return Err(Interrupted { resume: String::new() }.into());
            }
        }
        if cfg.restore_best && state.best.is_some() {
            params.copy_from_slice(best_params);
        }
        Ok(())
    }
}

/// Continues an epoch a checkpoint stopped between two batches (`state.partial`, taken out of
/// `state`): restores the outputs buffer and returns the batches done, their loss sum and their
/// seconds; `(0, 0.0, 0.0)` for an epoch that starts afresh. Refuses a partial epoch of another
/// epoch, batch size or training set (resuming it would not continue the same run).
fn continue_partial(
    state: &mut TrainState,
    epoch: usize,
    batch_size: usize,
    samples: usize,
    outputs: &mut [f32],
) -> Result<(usize, f64, f64)> {
    let Some(p) = state.partial.take() else { return Ok((0, 0.0, 0.0)) };
    let batches = samples.div_ceil(batch_size.max(1));
    if p.epoch != epoch
        || p.batch_size != batch_size
        || p.samples != samples
        || p.batches > batches
        || p.outputs_bits.len() != outputs.len()
    {
        bail!(
            "the checkpoint stopped within epoch {} after {} batches of {} of {} training \
             samples; these settings continue epoch {epoch} with batches of {batch_size} of \
             {samples} samples (--batch-size and the data cannot change when resuming)",
            p.epoch,
            p.batches,
            p.batch_size,
            p.samples
        );
    }
    for (o, &b) in outputs.iter_mut().zip(&p.outputs_bits) {
        *o = f32::from_bits(b);
    }
    Ok((p.batches, f64::from_bits(p.loss_sum_bits), p.seconds))
}

/// Whether `monitored` is a new best over `best` (by more than `min_delta`). A value that is
/// not a finite number never is: a NaN or infinite validation loss must not become the best
/// (it would be checkpointed as such and its weights restored at the end).
fn improves(
    monitored: f64,
    best: Option<(f64, usize)>,
    lower_is_better: bool,
    min_delta: f64,
) -> bool {
    monitored.is_finite()
        && match best {
            None => true,
            Some((b, _)) => {
                if lower_is_better {
                    monitored < b - min_delta
                } else {
                    monitored > b + min_delta
                }
            }
        }
}

/// Parameters per part of a parallel optimizer step (64 KiB of each buffer).
const OPTIMIZER_PART: usize = 16 * 1024;

/// `params`, `grads` and the optimizer's moments cut into parts of [`OPTIMIZER_PART`]
/// parameters, in order.
fn optimizer_parts<'a>(
    params: &'a mut [f32],
    grads: &'a [f32],
    moments: StateParts<'a>,
) -> Vec<(&'a mut [f32], &'a [f32], StateParts<'a>)> {
    let mut parts = Vec::with_capacity(params.len().div_ceil(OPTIMIZER_PART));
    let (mut w, mut g, mut m) = (params, grads, moments);
    while !w.is_empty() {
        let n = OPTIMIZER_PART.min(w.len());
        let (w0, w1) = w.split_at_mut(n);
        let (g0, g1) = g.split_at(n);
        let (m0, m1) = m.split_at(n);
        parts.push((w0, g0, m0));
        (w, g, m) = (w1, g1, m1);
    }
    parts
}

fn epoch_line(s: &EpochStats, epochs: usize, improved: bool) -> String {
    let mut line = format!("Epoch {}/{epochs}  loss {}", s.epoch, format_loss(s.loss));
    if let Some(a) = s.accuracy {
        line += &format!("  accuracy {a:.4}");
    }
    if let Some(l) = s.val_loss {
        line += &format!("  val_loss {}", format_loss(l));
    }
    if let Some(a) = s.val_accuracy {
        line += &format!("  val_accuracy {a:.4}");
    }
    let time = epoch_time(s.seconds);
    line += &format!("  lr {:.3e}  {time}  {:.0} samples/s", s.lr, s.samples_per_sec);
    if improved {
        line += "  *";
    }
    line
}

/// An epoch's wall time as Keras prints it: milliseconds below a second (`44ms`), else seconds
/// with one decimal (`3.2s`).
fn epoch_time(seconds: f64) -> String {
    if seconds < 0.9995 {
        format!("{:.0}ms", seconds * 1e3)
    } else {
        format!("{seconds:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::{epoch_time, improves};

    #[test]
    fn epoch_times_below_a_second_are_in_milliseconds() {
        assert_eq!(epoch_time(0.0441), "44ms");
        assert_eq!(epoch_time(0.0004), "0ms");
        assert_eq!(epoch_time(0.9994), "999ms");
        assert_eq!(epoch_time(0.9996), "1.0s");
        assert_eq!(epoch_time(12.34), "12.3s");
    }

    #[test]
    fn non_finite_values_are_never_the_best() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!improves(v, None, true, 0.0), "{v} became the first best");
            assert!(!improves(v, Some((0.5, 1)), true, 0.0), "{v} beat a finite loss");
            assert!(!improves(v, Some((0.5, 1)), false, 0.0), "{v} beat a finite accuracy");
        }
        assert!(improves(0.4, None, true, 0.0));
        assert!(improves(0.4, Some((0.5, 1)), true, 0.05));
        assert!(!improves(0.46, Some((0.5, 1)), true, 0.05));
        assert!(improves(0.6, Some((0.5, 1)), false, 0.0));
    }
}
