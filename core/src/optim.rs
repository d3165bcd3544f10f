//! Optimizers (SGD, momentum, Nesterov, Adam, AdamW, AMSGrad) and gradient clipping on flat buffers.
//!
//! Everything works on flat `f32` slices: the parameters `[n]`, their gradients `[n]` and an
//! optimizer state `[Optimizer::state_len(n)]`, zero-initialised by the caller before the first
//! step. A step can cover any sub-range of the model's flat parameter buffer (for example
//! [`Spec::head_range`] for head-only fine-tuning); the state then covers that range only.
//!
//! # Keras semantics (tf_keras 2.21, the optimizers of `tf.keras.optimizers`)
//!
//! All arithmetic is `f32` in TensorFlow's operation order; `lr` is the learning rate of this
//! step and `t = iteration + 1`:
//!
//! | optimizer | update per element |
//! |---|---|
//! | SGD | `w += −g·lr` |
//! | SGD, momentum `μ` | `vel = −g·lr + vel·μ; w += vel` |
//! | SGD, Nesterov | `vel = −g·lr + vel·μ; w += −g·lr + vel·μ` |
//! | Adam | `α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ); m += (g−m)(1−β₁); v += (g²−v)(1−β₂); w −= (m·α)/(√v + ε)` |
//! | AMSGrad | as Adam, with `v̂ = max(v̂, v)` in place of `v` in the denominator |
//!
//! A non-zero `weight_decay` (Keras's base-optimizer `weight_decay`, which is what `AdamW` is)
//! first decays every parameter of the step, biases included: `w −= w·wd·lr`, then takes the
//! step above. So `Optimizer::adamw()` is Keras `AdamW`, and `Optimizer::sgd().with_weight_decay(x)`
//! is Keras `SGD(weight_decay=x)`.
//!
//! # Clipping
//!
//! [`Clip`] is applied to the gradients before the optimizer sees them, exactly as Keras's
//! `clipnorm` (per tensor: `g·c / max(‖g‖, c)`), `global_clipnorm`
//! (`g · c·min(1/‖G‖, 1/c)` over all gradients of the step) and `clipvalue` (elementwise clamp
//! to `[−c, c]`). Keras applies only one of them (the first set of `clipnorm`,
//! `global_clipnorm`, `clipvalue`); [`Clip::validate`] therefore accepts at most one.
//!
//! # Example: head-only fine-tuning
//!
//! ```
//! use tinylstm::optim::{Clip, Optimizer, OptimizerConfig};
//! use tinylstm::schedule::Schedule;
//! use tinylstm::{Head, Spec};
//!
//! const SPEC: Spec = Spec::channels(3).lstm(8).dense(2, Head::Softmax);
//! const CFG: OptimizerConfig = OptimizerConfig::new(Optimizer::adam())
//!     .with_schedule(Schedule::constant(1e-2))
//!     .with_clip(Clip::global_norm(1.0));
//! const HEAD: usize = SPEC.head_len();
//! let mut params = [0.1f32; SPEC.param_count()];
//! let mut grads = [0.5f32; SPEC.param_count()];
//! let mut state = [0.0f32; CFG.optimizer.state_len(HEAD)];
//! CFG.apply(&SPEC, SPEC.head_range(), 0, &mut params, &mut grads, &mut state).unwrap();
//! assert_eq!(params[0], 0.1); // the LSTM is untouched
//! assert!(params[SPEC.param_count() - 1] < 0.1); // the head moved
//! ```

use core::ops::Range;

use crate::error::{check_len, Error, Hyperparameter};
use crate::math;
use crate::schedule::Schedule;
use crate::spec::Spec;

/// Keras's default `epsilon` for Adam and AdamW.
pub const KERAS_EPSILON: f32 = 1e-7;

/// Keras's default `weight_decay` for `AdamW`.
pub const KERAS_ADAMW_WEIGHT_DECAY: f32 = 0.004;

/// The update rule of an [`Optimizer`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Method {
    /// Stochastic gradient descent, with optional (Nesterov) momentum.
    Sgd {
        /// Momentum `μ` in `[0, 1]`; 0 means plain SGD (no state).
        momentum: f32,
        /// Nesterov momentum (only meaningful with `momentum > 0`).
        nesterov: bool,
    },
    /// Adam, with bias correction as Keras.
    Adam {
        /// First-moment decay `β₁` in `[0, 1)`.
        ///
        /// Kept in `f64` because Keras computes `1 − β₁` on the Python double and only then
        /// rounds it to `f32`; an `f32` β would make `1 − β₂` differ from Keras's by up to 5e-5
        /// (relative) for `β₂ = 0.999`.
        beta_1: f64,
        /// Second-moment decay `β₂` in `[0, 1)` (`f64` for the same reason as `beta_1`).
        beta_2: f64,
        /// `ε` added to `√v` (finite, > 0).
        epsilon: f32,
        /// AMSGrad: divide by the running maximum `v̂` of `v`.
        amsgrad: bool,
    },
}

/// An optimizer: an update rule plus decoupled weight decay (`AdamW` when the rule is Adam).
///
/// Build with [`sgd`](Optimizer::sgd), [`adam`](Optimizer::adam) or [`adamw`](Optimizer::adamw)
/// (Keras defaults) and the `with_*` builders. The state it needs for `n` parameters is
/// [`state_len(n)`](Optimizer::state_len) floats, laid out as:
///
/// | method | state |
/// |---|---|
/// | SGD, `momentum == 0` | empty |
/// | SGD with momentum | `vel [n]` |
/// | Adam | `m [n]`, then `v [n]` |
/// | Adam with AMSGrad | `m [n]`, `v [n]`, then `v̂ [n]` |
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Optimizer {
    /// The update rule.
    pub method: Method,
    /// Decoupled weight decay `wd` (finite, ≥ 0; 0 disables it): `w −= w·wd·lr` before each step.
    pub weight_decay: f32,
}

impl Default for Optimizer {
    /// Keras `Adam()`.
    fn default() -> Self {
        Optimizer::adam()
    }
}

impl Optimizer {
    /// Keras `SGD()`: plain SGD, no momentum, no weight decay.
    pub const fn sgd() -> Self {
        Optimizer { method: Method::Sgd { momentum: 0.0, nesterov: false }, weight_decay: 0.0 }
    }

    /// Keras `Adam()`: β₁ 0.9, β₂ 0.999, ε 1e-7, no AMSGrad, no weight decay.
    pub const fn adam() -> Self {
        Optimizer {
            method: Method::Adam {
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: KERAS_EPSILON,
                amsgrad: false,
            },
            weight_decay: 0.0,
        }
    }

    /// Keras `AdamW()`: Adam with weight decay 0.004.
    pub const fn adamw() -> Self {
        Optimizer::adam().with_weight_decay(KERAS_ADAMW_WEIGHT_DECAY)
    }

    /// Sets the SGD momentum (no effect on Adam).
    pub const fn with_momentum(mut self, momentum: f32) -> Self {
        if let Method::Sgd { nesterov, .. } = self.method {
            self.method = Method::Sgd { momentum, nesterov };
        }
        self
    }

    /// Turns Nesterov momentum on or off (no effect on Adam).
    pub const fn with_nesterov(mut self, on: bool) -> Self {
        if let Method::Sgd { momentum, .. } = self.method {
            self.method = Method::Sgd { momentum, nesterov: on };
        }
        self
    }

    /// Sets Adam's β₁ (no effect on SGD).
    pub const fn with_beta_1(mut self, beta_1: f64) -> Self {
        if let Method::Adam { beta_2, epsilon, amsgrad, .. } = self.method {
            self.method = Method::Adam { beta_1, beta_2, epsilon, amsgrad };
        }
        self
    }

    /// Sets Adam's β₂ (no effect on SGD).
    pub const fn with_beta_2(mut self, beta_2: f64) -> Self {
        if let Method::Adam { beta_1, epsilon, amsgrad, .. } = self.method {
            self.method = Method::Adam { beta_1, beta_2, epsilon, amsgrad };
        }
        self
    }

    /// Sets Adam's ε (no effect on SGD).
    pub const fn with_epsilon(mut self, epsilon: f32) -> Self {
        if let Method::Adam { beta_1, beta_2, amsgrad, .. } = self.method {
            self.method = Method::Adam { beta_1, beta_2, epsilon, amsgrad };
        }
        self
    }

    /// Turns AMSGrad on or off (no effect on SGD).
    pub const fn with_amsgrad(mut self, on: bool) -> Self {
        if let Method::Adam { beta_1, beta_2, epsilon, .. } = self.method {
            self.method = Method::Adam { beta_1, beta_2, epsilon, amsgrad: on };
        }
        self
    }

    /// Sets the decoupled weight decay (any method; Adam with weight decay is AdamW).
    pub const fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Length of the state for `n` parameters: 0 (SGD), `n` (momentum), `2n` (Adam) or `3n`
    /// (AMSGrad). Saturates instead of overflowing.
    pub const fn state_len(&self, n: usize) -> usize {
        match self.method {
            Method::Sgd { momentum, .. } => {
                if momentum == 0.0 {
                    0
                } else {
                    n
                }
            }
            Method::Adam { amsgrad, .. } => {
                if amsgrad {
                    n.saturating_mul(3)
                } else {
                    n.saturating_mul(2)
                }
            }
        }
    }

    /// Checks the hyper-parameters: momentum in `[0, 1]`, β in `[0, 1)`, ε finite and > 0,
    /// weight decay finite and ≥ 0.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::Hyperparameter(Hyperparameter::WeightDecay));
        }
        match self.method {
            Method::Sgd { momentum, .. } => {
                if !(0.0..=1.0).contains(&momentum) {
                    return Err(Error::Hyperparameter(Hyperparameter::Momentum));
                }
            }
            Method::Adam { beta_1, beta_2, epsilon, .. } => {
                if !(0.0..1.0).contains(&beta_1) {
                    return Err(Error::Hyperparameter(Hyperparameter::Beta1));
                }
                if !(0.0..1.0).contains(&beta_2) {
                    return Err(Error::Hyperparameter(Hyperparameter::Beta2));
                }
                if !(epsilon.is_finite() && epsilon > 0.0) {
                    return Err(Error::Hyperparameter(Hyperparameter::Epsilon));
                }
            }
        }
        Ok(())
    }

    /// One optimizer step on `params [n]` with gradients `grads [n]` and state
    /// `state [state_len(n)]` (zeros before the first step), at learning rate `lr` and
    /// `iteration` = number of steps already taken with this state (0 for the first).
    ///
    /// The gradients are used as given (clip them first, see [`Clip`] or
    /// [`OptimizerConfig::apply`]). Errors, leaving everything untouched: `grads` or `state` of
    /// the wrong length, invalid hyper-parameters, `lr` not finite or negative.
    pub fn step(
        &self,
        lr: f32,
        iteration: u32,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        let n = params.len();
        check_len("gradient", n, grads.len())?;
        check_len("optimizer state", self.state_len(n), state.len())?;
        self.validate()?;
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::Hyperparameter(Hyperparameter::StepLearningRate));
        }
        self.step_unchecked(lr, iteration, params, grads, state);
        Ok(())
    }

    /// `state [state_len(n)]` cut into its kinds ([`StateParts`]) for `n` parameters.
    ///
    /// # Errors
    /// [`Error::BufferLength`] unless `state.len() == state_len(n)`.
    pub fn state_parts<'a>(&self, state: &'a mut [f32], n: usize) -> Result<StateParts<'a>, Error> {
        check_len("optimizer state", self.state_len(n), state.len())?;
        Ok(self.parts_unchecked(state, n))
    }

    /// [`Optimizer::state_parts`] without the length check.
    fn parts_unchecked<'a>(&self, state: &'a mut [f32], n: usize) -> StateParts<'a> {
        let (first, rest) = state.split_at_mut(n.min(state.len()));
        let (second, max_second) = rest.split_at_mut(n.min(rest.len()));
        StateParts { first, second, max_second }
    }

    /// [`Optimizer::step`] on a part of the parameters: `params [m]`, `grads [m]` and `state`
    /// holding the same part of every moment the method keeps (cut with
    /// [`StateParts::split_at`]). Each parameter's update reads only its own gradient and
    /// moments, so stepping the parts of a buffer one by one, or on several threads, gives the
    /// bits of one [`Optimizer::step`] over the whole buffer.
    ///
    /// # Errors
    /// As [`Optimizer::step`]; a part of `state` of another length than `params`.
    pub fn step_part(
        &self,
        lr: f32,
        iteration: u32,
        params: &mut [f32],
        grads: &[f32],
        state: StateParts<'_>,
    ) -> Result<(), Error> {
        let n = params.len();
        check_len("gradient", n, grads.len())?;
        let kept = self.state_len(n);
        let held = state.first.len() + state.second.len() + state.max_second.len();
        check_len("optimizer state", kept, held)?;
        for part in [&*state.first, &*state.second, &*state.max_second] {
            if !part.is_empty() {
                check_len("optimizer state part", n, part.len())?;
            }
        }
        self.validate()?;
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::Hyperparameter(Hyperparameter::StepLearningRate));
        }
        self.step_part_unchecked(lr, iteration, params, grads, state);
        Ok(())
    }

    /// The step itself; lengths and hyper-parameters have been checked by the caller.
    fn step_unchecked(
        &self,
        lr: f32,
        iteration: u32,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) {
        let parts = self.parts_unchecked(state, params.len());
        self.step_part_unchecked(lr, iteration, params, grads, parts);
    }

    /// [`Optimizer::step_part`] without the checks.
    fn step_part_unchecked(
        &self,
        lr: f32,
        iteration: u32,
        params: &mut [f32],
        grads: &[f32],
        state: StateParts<'_>,
    ) {
        if self.weight_decay != 0.0 {
            // Keras `_apply_weight_decay`: variable.assign_sub(variable * wd * lr).
            let wd = self.weight_decay;
            for w in params.iter_mut() {
                *w -= *w * wd * lr;
            }
        }
        match self.method {
            Method::Sgd { momentum, nesterov } => {
                if momentum == 0.0 {
                    // Keras keeps a velocity even here, but vel = −g·lr + vel·0 = −g·lr exactly.
                    for (w, &g) in params.iter_mut().zip(grads) {
                        *w += -g * lr;
                    }
                } else if nesterov {
                    for ((w, &g), vel) in params.iter_mut().zip(grads).zip(state.first.iter_mut()) {
                        let step = -g * lr;
                        *vel = step + *vel * momentum;
                        *w += step + *vel * momentum;
                    }
                } else {
                    for ((w, &g), vel) in params.iter_mut().zip(grads).zip(state.first.iter_mut()) {
                        *vel = -g * lr + *vel * momentum;
                        *w += *vel;
                    }
                }
            }
            Method::Adam { beta_1, beta_2, epsilon, amsgrad } => {
                // Keras: local_step = cast(iterations + 1); beta powers and alpha in f32.
                let t = (u64::from(iteration) + 1) as f32;
                let beta_1_power = math::powf(beta_1 as f32, t);
                let beta_2_power = math::powf(beta_2 as f32, t);
                let alpha = lr * math::sqrt(1.0 - beta_2_power) / (1.0 - beta_1_power);
                // `1 - self.beta_1` is evaluated by Python in double precision, then cast.
                let one_minus_b1 = (1.0 - beta_1) as f32;
                let one_minus_b2 = (1.0 - beta_2) as f32;
                let StateParts { first: m, second: v, max_second: v_hat } = state;
                if amsgrad {
                    for ((((w, &g), m), v), vh) in params
                        .iter_mut()
                        .zip(grads)
                        .zip(m.iter_mut())
                        .zip(v.iter_mut())
                        .zip(v_hat.iter_mut())
                    {
                        *m += (g - *m) * one_minus_b1;
                        *v += (g * g - *v) * one_minus_b2;
                        *vh = vh.max(*v);
                        *w -= (*m * alpha) / (math::sqrt(*vh) + epsilon);
                    }
                } else {
                    for (((w, &g), m), v) in
                        params.iter_mut().zip(grads).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        *m += (g - *m) * one_minus_b1;
                        *v += (g * g - *v) * one_minus_b2;
                        *w -= (*m * alpha) / (math::sqrt(*v) + epsilon);
                    }
                }
            }
        }
    }
}

/// An optimizer's state for `n` parameters cut into its kinds, each `[n]`, or empty when the
/// method keeps no such moment ([`Optimizer::state_parts`]): `first` is SGD's velocity or Adam's
/// first moment, `second` Adam's second moment, `max_second` AMSGrad's running maximum of it.
/// [`StateParts::split_at`] cuts every kind at the same parameter, for [`Optimizer::step_part`].
#[derive(Debug)]
pub struct StateParts<'a> {
    /// SGD with momentum: the velocity; Adam: the first moment.
    pub first: &'a mut [f32],
    /// Adam: the second moment.
    pub second: &'a mut [f32],
    /// AMSGrad: the running maximum of the second moment.
    pub max_second: &'a mut [f32],
}

impl<'a> StateParts<'a> {
    /// The state of parameters `..mid` and of `mid..`: every kind cut at `mid` (an empty kind
    /// stays empty on both sides).
    pub fn split_at(self, mid: usize) -> (StateParts<'a>, StateParts<'a>) {
        fn cut(part: &mut [f32], mid: usize) -> (&mut [f32], &mut [f32]) {
            part.split_at_mut(if part.is_empty() { 0 } else { mid.min(part.len()) })
        }
        let (f0, f1) = cut(self.first, mid);
        let (s0, s1) = cut(self.second, mid);
        let (m0, m1) = cut(self.max_second, mid);
        (
            StateParts { first: f0, second: s0, max_second: m0 },
            StateParts { first: f1, second: s1, max_second: m1 },
        )
    }
}

/// Gradient clipping, applied before the optimizer step (Keras's `clipvalue`, `clipnorm` and
/// `global_clipnorm`). At most one may be set, as Keras applies only one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Clip {
    /// Keras `clipvalue`: clamp every gradient element to `[−value, value]`.
    pub value: Option<f32>,
    /// Keras `clipnorm`: scale each tensor's gradient to L2 norm at most `norm`
    /// (`g·norm / max(‖g‖, norm)`).
    pub norm: Option<f32>,
    /// Keras `global_clipnorm`: scale all gradients of the step together to global L2 norm at
    /// most `global_norm` (`g · c·min(1/‖G‖, 1/c)`).
    pub global_norm: Option<f32>,
}

impl Clip {
    /// No clipping.
    pub const fn none() -> Self {
        Clip { value: None, norm: None, global_norm: None }
    }

    /// Keras `clipvalue = value`.
    pub const fn value(value: f32) -> Self {
        Clip { value: Some(value), norm: None, global_norm: None }
    }

    /// Keras `clipnorm = norm` (per tensor).
    pub const fn norm(norm: f32) -> Self {
        Clip { value: None, norm: Some(norm), global_norm: None }
    }

    /// Keras `global_clipnorm = norm`.
    pub const fn global_norm(norm: f32) -> Self {
        Clip { value: None, norm: None, global_norm: Some(norm) }
    }

    /// True when no clipping is set.
    pub const fn is_none(&self) -> bool {
        self.value.is_none() && self.norm.is_none() && self.global_norm.is_none()
    }

    /// Checks that at most one bound is set and that it is finite and > 0.
    pub fn validate(&self) -> Result<(), Error> {
        let set = self.value.is_some() as u8
            + self.norm.is_some() as u8
            + self.global_norm.is_some() as u8;
        if set > 1 {
            return Err(Error::ConflictingClips);
        }
        for c in [self.value, self.norm, self.global_norm].into_iter().flatten() {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::Hyperparameter(Hyperparameter::ClipBound));
            }
        }
        Ok(())
    }

    /// Clips, in place, the gradients of the parameters in `range` of the whole flat gradient
    /// buffer `grads [spec.param_count()]`; the elements outside `range` are not touched.
    ///
    /// Per-tensor norm clipping treats each tensor's intersection with `range` as the tensor
    /// (what Keras does when only those variables are trainable); global norm clipping takes the
    /// norm over `grads[range]`.
    pub fn apply(&self, spec: &Spec, range: Range<usize>, grads: &mut [f32]) -> Result<(), Error> {
        spec.validate()?;
        check_len("gradient", spec.param_count(), grads.len())?;
        check_range(&range, grads.len())?;
        self.validate()?;
        self.apply_unchecked(spec, range, grads);
        Ok(())
    }

    fn apply_unchecked(&self, spec: &Spec, range: Range<usize>, grads: &mut [f32]) {
        if let Some(c) = self.norm {
            for t in spec.tensors() {
                let tr = t.range();
                let lo = tr.start.max(range.start);
                let hi = tr.end.min(range.end);
                if lo < hi {
                    clip_by_norm(&mut grads[lo..hi], c);
                }
            }
        } else if let Some(c) = self.global_norm {
            clip_by_global_norm(&mut grads[range], c);
        } else if let Some(c) = self.value {
            clip_by_value(&mut grads[range], c);
        }
    }
}

/// Returns `Err` unless `range.start <= range.end <= len`.
fn check_range(range: &Range<usize>, len: usize) -> Result<(), Error> {
    if range.start <= range.end && range.end <= len {
        Ok(())
    } else {
        Err(Error::RangeOutOfBounds { start: range.start, end: range.end, len })
    }
}

/// Block length of the blocked sum of squares in [`l2_norm`].
const NORM_BLOCK: usize = 256;
/// Independent accumulators per block (one SIMD register of f32 on most hosts).
const LANES: usize = 8;

/// Sum of squares of `xs`, accumulated blockwise.
///
/// Within blocks of 256 elements the squares go into 8 independent `f32` accumulators
/// (vectorises); the block sums are added in `f64`, so the error stays at a few `f32` ulps for
/// any length (a plain `f32` running sum loses accuracy in proportion to the length). The cost
/// of the `f64` adds, one per 256 elements, is negligible even with soft-float `f64` on a
/// Cortex-M4F.
fn sum_squares(xs: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for block in xs.chunks(NORM_BLOCK) {
        let mut acc = [0.0f32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += x * x;
            }
        }
        let mut s = 0.0f32;
        for &x in chunks.remainder() {
            s += x * x;
        }
        let pairs = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
        s += (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]);
        total += f64::from(s);
    }
    total
}

/// L2 norm `√(Σ x²)` of `xs [n]`, rounded to `f32` (0 for an empty slice).
pub fn l2_norm(xs: &[f32]) -> f32 {
    math::sqrt(sum_squares(xs) as f32)
}

/// TensorFlow `clip_by_value(g, −clip, clip)` in place on `grads [n]`: `min(max(g, −clip), clip)`
/// in TF's order (`min` first, then `max`). Never panics (unlike `f32::clamp`).
pub fn clip_by_value(grads: &mut [f32], clip: f32) {
    for g in grads.iter_mut() {
        *g = g.min(clip).max(-clip);
    }
}

/// TensorFlow `clip_by_norm(g, clip_norm)` in place on `grads [n]` treated as one tensor:
/// `g·clip_norm / max(‖g‖, clip_norm)`, applied to every element even when the norm is below
/// the bound (as TF does, so results match bit for bit up to the norm's rounding).
/// Returns the norm before clipping.
pub fn clip_by_norm(grads: &mut [f32], clip_norm: f32) -> f32 {
    let norm = l2_norm(grads);
    let denom = norm.max(clip_norm);
    for g in grads.iter_mut() {
        *g = (*g * clip_norm) / denom;
    }
    norm
}

/// TensorFlow `clip_by_global_norm` in place on `grads [n]` (all the tensors of a step, as one
/// slice): `g · clip_norm·min(1/‖G‖, 1/clip_norm)`. Returns the global norm `‖G‖` before
/// clipping.
pub fn clip_by_global_norm(grads: &mut [f32], clip_norm: f32) -> f32 {
    let norm = l2_norm(grads);
    let scale = clip_norm * (1.0 / norm).min(1.0 / clip_norm);
    for g in grads.iter_mut() {
        *g *= scale;
    }
    norm
}

/// True when no element of `xs` is NaN or infinite.
pub fn all_finite(xs: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    // Branch-free within chunks (vectorises), early exit between chunks.
    xs.chunks(1024)
        .all(|c| c.iter().fold(0u32, |a, x| a | u32::from(x.to_bits() & EXP == EXP)) == 0)
}

/// A full training update: optimizer, learning-rate schedule and gradient clipping.
///
/// [`apply`](OptimizerConfig::apply) does what Keras's `optimizer.apply_gradients` does for one
/// step: refuse non-finite gradients, evaluate the schedule at `iteration`, clip, decay the
/// weights, step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OptimizerConfig {
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The learning-rate schedule, evaluated at the step's `iteration`.
    pub schedule: Schedule,
    /// Gradient clipping applied before the step.
    pub clip: Clip,
}

impl OptimizerConfig {
    /// `optimizer` with a constant learning rate of 1e-3 and no clipping.
    pub const fn new(optimizer: Optimizer) -> Self {
        OptimizerConfig { optimizer, schedule: Schedule::constant(1e-3), clip: Clip::none() }
    }

    /// Sets the learning-rate schedule.
    pub const fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Sets a constant learning rate.
    pub const fn with_lr(mut self, lr: f32) -> Self {
        self.schedule = Schedule::constant(lr);
        self
    }

    /// Sets the gradient clipping.
    pub const fn with_clip(mut self, clip: Clip) -> Self {
        self.clip = clip;
        self
    }

    /// Length of the optimizer state for a step covering `n` parameters.
    pub const fn state_len(&self, n: usize) -> usize {
        self.optimizer.state_len(n)
    }

    /// Checks the optimizer, the schedule and the clipping.
    pub fn validate(&self) -> Result<(), Error> {
        self.optimizer.validate()?;
        self.schedule.validate()?;
        self.clip.validate()
    }

    /// The first half of [`OptimizerConfig::apply`], for a caller that steps the parameters in
    /// parts ([`Optimizer::step_part`], e.g. on several threads): checks the spec, the range,
    /// the config and `grads [spec.param_count()]`, checks that `grads[range]` is finite,
    /// evaluates the schedule at `iteration`, clips `grads[range]` in place, and returns the
    /// learning rate of the step. On `Err` nothing is modified.
    ///
    /// # Errors
    /// As [`OptimizerConfig::apply`], but for the parameter and state buffers it does not see.
    pub fn prepare(
        &self,
        spec: &Spec,
        range: Range<usize>,
        iteration: u32,
        grads: &mut [f32],
    ) -> Result<f32, Error> {
        spec.validate()?;
        let count = spec.param_count();
        check_len("gradient", count, grads.len())?;
        check_range(&range, count)?;
        self.validate()?;
        if !all_finite(&grads[range.clone()]) {
            return Err(Error::NonFiniteGradient);
        }
        let lr = self.schedule.lr(iteration);
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::NonFiniteRate { iteration });
        }
        self.clip.apply_unchecked(spec, range, grads);
        Ok(lr)
    }

    /// One training step on the parameters in `range`.
    ///
    /// - `params [spec.param_count()]`: the whole flat parameter buffer; only `range` changes.
    /// - `grads [spec.param_count()]`: the whole flat gradient buffer; `grads[range]` is clipped
    ///   in place, the rest is neither read nor written.
    /// - `state [self.state_len(range.len())]`: the optimizer state of `range`, zeros before the
    ///   first step.
    /// - `iteration`: steps already taken with this state (0 for the first); the schedule is
    ///   evaluated at it and Adam's bias correction uses `iteration + 1`.
    ///
    /// `range = 0..spec.param_count()` trains everything; `spec.head_range()` only the head.
    ///
    /// Every check runs before anything is modified: on `Err` the parameters, gradients and state
    /// are untouched. Errors: an invalid spec, config or range, a buffer of the wrong length, a
    /// NaN/infinite gradient in `range` ([`Error::NonFiniteGradient`]), or a
    /// non-finite learning rate from the schedule.
    pub fn apply(
        &self,
        spec: &Spec,
        range: Range<usize>,
        iteration: u32,
        params: &mut [f32],
        grads: &mut [f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        spec.validate()?;
        check_len("parameter", spec.param_count(), params.len())?;
        check_range(&range, spec.param_count())?;
        check_len("optimizer state", self.optimizer.state_len(range.len()), state.len())?;
        let lr = self.prepare(spec, range.clone(), iteration, grads)?;
        self.optimizer.step_unchecked(
            lr,
            iteration,
            &mut params[range.clone()],
            &grads[range],
            state,
        );
        Ok(())
    }
}
