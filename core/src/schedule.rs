//! Learning-rate schedules (constant, exponential decay, cosine decay, step decay, linear warm-up).
//!
//! A [`Schedule`] maps an optimizer step to a learning rate. The step is the number of optimizer
//! steps **already taken** (0 for the first update), which is what Keras passes to a schedule
//! (`optimizer.iterations` before it is incremented).
//!
//! Every formula is evaluated in `f32` with TensorFlow's operation order, so the values match
//! `tf_keras.optimizers.schedules` to within an ulp or two of `powf`/`cosf`:
//!
//! | [`Decay`] | Keras class | value at step `s` (after warm-up, see below) |
//! |---|---|---|
//! | `Constant` | a float learning rate | `initial` |
//! | `Exponential` | `ExponentialDecay(initial, decay_steps, rate, staircase)` | `initial · rate^(s / decay_steps)` (`floor` of the exponent when `staircase`) |
//! | `Cosine` | `CosineDecay(…, decay_steps, alpha)` | `initial · ((1 − alpha) · ½(1 + cos(π · min(s, decay_steps) / decay_steps)) + alpha)` |
//! | `Step` | (PyTorch `StepLR`; Keras has no class) | `initial · gamma^⌊s / step_size⌋` |
//!
//! **Warm-up** (`warmup_steps = w > 0`) is Keras `CosineDecay`'s warm-up, extended to every decay:
//! for `s < w` the rate rises linearly, `(initial − warmup_start) · (s / w) + warmup_start`, from
//! `warmup_start` (usually 0) at `s = 0` towards `initial`; from `s = w` on, the decay runs on
//! `s − w`, starting from `initial`. So `Schedule::cosine_decay(peak, d, a).with_warmup(w, start)`
//! equals Keras `CosineDecay(start, d, alpha=a, warmup_target=peak, warmup_steps=w)` exactly.
//! With `w = 0` there is no warm-up and `warmup_start` is ignored.
//!
//! ```
//! use tinylstm::schedule::Schedule;
//! let s = Schedule::exponential_decay(1e-3, 100, 0.96, false);
//! assert_eq!(s.lr(0), 1e-3);
//! assert!((s.lr(100) - 0.96e-3).abs() < 1e-9);
//! let w = Schedule::cosine_decay(1e-3, 1000, 0.1).with_warmup(10, 0.0);
//! assert_eq!(w.lr(0), 0.0);
//! assert_eq!(w.lr(10), 1e-3);
//! ```

use crate::error::{Error, Hyperparameter};
use crate::math;

/// How the learning rate decays after the warm-up. See the [module docs](self) for the formulas.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Decay {
    /// No decay: the rate stays at `initial`.
    Constant,
    /// Keras `ExponentialDecay`: `initial · rate^(s / decay_steps)`.
    Exponential {
        /// Steps over which the rate is multiplied by `rate` once (must be > 0).
        decay_steps: u32,
        /// Decay factor per `decay_steps` steps (finite, > 0).
        rate: f32,
        /// Use `floor(s / decay_steps)` as the exponent (a staircase).
        staircase: bool,
    },
    /// Keras `CosineDecay`: half a cosine from `initial` down to `alpha · initial` over
    /// `decay_steps`, then constant at `alpha · initial`.
    Cosine {
        /// Length of the cosine (must be > 0).
        decay_steps: u32,
        /// Final rate as a fraction of `initial`, in `[0, 1]`.
        alpha: f32,
    },
    /// Step decay: the rate is multiplied by `gamma` every `step_size` steps (integer division).
    Step {
        /// Steps between two multiplications (must be > 0).
        step_size: u32,
        /// Factor applied every `step_size` steps (finite, > 0).
        gamma: f32,
    },
}

/// A learning-rate schedule: a peak rate, its decay and an optional linear warm-up.
///
/// Build with [`constant`](Schedule::constant), [`exponential_decay`](Schedule::exponential_decay),
/// [`cosine_decay`](Schedule::cosine_decay) or [`step_decay`](Schedule::step_decay), then optionally
/// [`with_warmup`](Schedule::with_warmup). Check it with [`validate`](Schedule::validate); evaluate
/// it with [`lr`](Schedule::lr).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Schedule {
    /// The rate at the end of the warm-up and at the start of the decay (finite, > 0).
    pub initial: f32,
    /// The decay applied to the steps after the warm-up.
    pub decay: Decay,
    /// Length of the linear warm-up in steps (0: none).
    pub warmup_steps: u32,
    /// Rate at step 0 of the warm-up (finite, ≥ 0; Keras `CosineDecay`'s `initial_learning_rate`
    /// when it has a `warmup_target`). Ignored when `warmup_steps == 0`.
    pub warmup_start: f32,
}

impl Default for Schedule {
    /// Constant 1e-3, the Keras Adam default.
    fn default() -> Self {
        Schedule::constant(1e-3)
    }
}

impl Schedule {
    /// A constant learning rate `lr`.
    pub const fn constant(lr: f32) -> Self {
        Schedule { initial: lr, decay: Decay::Constant, warmup_steps: 0, warmup_start: 0.0 }
    }

    /// Keras `ExponentialDecay(initial, decay_steps, rate, staircase)`.
    pub const fn exponential_decay(
        initial: f32,
        decay_steps: u32,
        rate: f32,
        staircase: bool,
    ) -> Self {
        Schedule {
            initial,
            decay: Decay::Exponential { decay_steps, rate, staircase },
            warmup_steps: 0,
            warmup_start: 0.0,
        }
    }

    /// Keras `CosineDecay(initial, decay_steps, alpha)`.
    pub const fn cosine_decay(initial: f32, decay_steps: u32, alpha: f32) -> Self {
        Schedule {
            initial,
            decay: Decay::Cosine { decay_steps, alpha },
            warmup_steps: 0,
            warmup_start: 0.0,
        }
    }

    /// Step decay: `initial · gamma^⌊s / step_size⌋`.
    pub const fn step_decay(initial: f32, step_size: u32, gamma: f32) -> Self {
        Schedule {
            initial,
            decay: Decay::Step { step_size, gamma },
            warmup_steps: 0,
            warmup_start: 0.0,
        }
    }

    /// Adds a linear warm-up of `steps` steps starting at rate `start` (see the [module docs](self)).
    pub const fn with_warmup(mut self, steps: u32, start: f32) -> Self {
        self.warmup_steps = steps;
        self.warmup_start = start;
        self
    }

    /// Checks the parameters: `initial` finite and > 0, `warmup_start` finite and ≥ 0,
    /// `decay_steps`/`step_size` > 0, `rate`/`gamma` finite and > 0, `alpha` in `[0, 1]`.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.initial.is_finite() && self.initial > 0.0) {
            return Err(Error::Hyperparameter(Hyperparameter::LearningRate));
        }
        if !(self.warmup_start.is_finite() && self.warmup_start >= 0.0) {
            return Err(Error::Hyperparameter(Hyperparameter::WarmupStart));
        }
        match self.decay {
            Decay::Constant => {}
            Decay::Exponential { decay_steps, rate, .. } => {
                if decay_steps == 0 {
                    return Err(Error::Hyperparameter(Hyperparameter::ExponentialDecaySteps));
                }
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(Error::Hyperparameter(Hyperparameter::ExponentialDecayRate));
                }
            }
            Decay::Cosine { decay_steps, alpha } => {
                if decay_steps == 0 {
                    return Err(Error::Hyperparameter(Hyperparameter::CosineDecaySteps));
                }
                if !(alpha.is_finite() && (0.0..=1.0).contains(&alpha)) {
                    return Err(Error::Hyperparameter(Hyperparameter::CosineAlpha));
                }
            }
            Decay::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(Error::Hyperparameter(Hyperparameter::StepDecaySize));
                }
                if !(gamma.is_finite() && gamma > 0.0) {
                    return Err(Error::Hyperparameter(Hyperparameter::StepDecayGamma));
                }
            }
        }
        Ok(())
    }

    /// The learning rate for optimizer step `step` (steps already taken; 0 for the first update).
    ///
    /// Never panics; for a schedule that fails [`validate`](Schedule::validate) the value may be
    /// meaningless (NaN or infinite), so validate first.
    pub fn lr(&self, step: u32) -> f32 {
        // Keras casts the step to float first and does all arithmetic in f32; so do we
        // (exact for steps below 2^24).
        let s = step as f32;
        let w = self.warmup_steps as f32;
        if self.warmup_steps > 0 && s < w {
            // Keras CosineDecay._warmup_function: total_delta * (step / warmup_steps) + start.
            let completed = s / w;
            return (self.initial - self.warmup_start) * completed + self.warmup_start;
        }
        match self.decay {
            Decay::Constant => self.initial,
            Decay::Exponential { decay_steps, rate, staircase } => {
                let mut p = (s - w) / decay_steps as f32;
                if staircase {
                    p = floor_non_negative(p);
                }
                self.initial * math::powf(rate, p)
            }
            Decay::Cosine { decay_steps, alpha } => {
                let d = decay_steps as f32;
                // Keras clamps to decay_steps + warmup_steps, then subtracts the warm-up
                // (without warm-up this is min(step, decay_steps)).
                let done = s.min(d + w) - w;
                let completed = done / d;
                let cosine = 0.5 * (1.0 + math::cos(core::f32::consts::PI * completed));
                // Keras computes `1 - alpha` on the Python double, then rounds it to f32.
                let one_minus_alpha = (1.0 - alpha as f64) as f32;
                self.initial * (one_minus_alpha * cosine + alpha)
            }
            Decay::Step { step_size, gamma } => {
                let k = step.saturating_sub(self.warmup_steps).checked_div(step_size).unwrap_or(0);
                self.initial * math::powf(gamma, k as f32)
            }
        }
    }
}

/// `floor(x)` for `x >= 0` (exact; also for NaN/∞ it never panics): below 2²³ the value fits a
/// `u32` and truncation is the floor; from 2²³ on every `f32` is already an integer.
fn floor_non_negative(x: f32) -> f32 {
    if x < 8_388_608.0 {
        (x as u32) as f32
    } else {
        x
    }
}
