//! L1/L2 weight penalties per tensor, added to the loss as Keras's regularizers are.
//!
//! Keras adds `l1·Σ|w| + l2·Σw²` of every regularized tensor to the loss (not divided by the
//! batch size); the gradient is `l1·sign(w) + 2·l2·w`, with `sign(0) = 0` as in TensorFlow.
//!
//! ```
//! use tinylstm::penalty::{Penalties, Penalty};
//! use tinylstm::{Head, Spec};
//! let spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
//! // Keras `kernel_regularizer=l2(0.01)` on the LSTM and on the Dense layer:
//! let p = Penalties::kernels(&spec, Penalty::l2(0.01));
//! let params = vec![0.5f32; spec.param_count()];
//! let mut grads = vec![0.0f32; spec.param_count()];
//! let loss = p.add_loss_and_grad(&spec, &params, &mut grads).unwrap();
//! let regularized = 3 * 16 + 4 * 2; // LSTM kernel [3][16] and Dense kernel [4][2]
//! assert!((loss - 0.01 * 0.25 * regularized as f32).abs() < 1e-6);
//! ```

use crate::error::{check_len, Error};
use crate::spec::{Spec, TensorKind, MAX_TENSORS};

/// An L1 and an L2 coefficient.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Penalty {
    /// Coefficient of `Σ|w|`.
    pub l1: f32,
    /// Coefficient of `Σw²`.
    pub l2: f32,
}

impl Penalty {
    /// No penalty.
    pub const NONE: Penalty = Penalty { l1: 0.0, l2: 0.0 };

    /// Keras `l1(l1)`.
    pub const fn l1(l1: f32) -> Self {
        Penalty { l1, l2: 0.0 }
    }

    /// Keras `l2(l2)`.
    pub const fn l2(l2: f32) -> Self {
        Penalty { l1: 0.0, l2 }
    }

    /// Keras `l1_l2(l1, l2)`.
    pub const fn l1_l2(l1: f32, l2: f32) -> Self {
        Penalty { l1, l2 }
    }

    /// True when both coefficients are zero.
    pub fn is_none(&self) -> bool {
        self.l1 == 0.0 && self.l2 == 0.0
    }
}

/// A penalty for each tensor of a spec, indexed in `model.get_weights()` order.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Penalties {
    /// Penalty of tensor `i` ([`Spec::tensor`]); entries past the spec's tensor count are unused.
    pub per_tensor: [Penalty; MAX_TENSORS],
}

impl Default for Penalties {
    fn default() -> Self {
        Penalties::NONE
    }
}

impl Penalties {
    /// No penalty anywhere.
    pub const NONE: Penalties = Penalties { per_tensor: [Penalty::NONE; MAX_TENSORS] };

    /// `p` on every tensor of kind `kind` (e.g. every LSTM recurrent kernel).
    pub fn on_kind(spec: &Spec, kind: TensorKind, p: Penalty) -> Self {
        Penalties::NONE.with_kind(spec, kind, p)
    }

    /// Keras's `kernel_regularizer` on every layer: `p` on each LSTM kernel and the Dense kernel.
    pub fn kernels(spec: &Spec, p: Penalty) -> Self {
        Penalties::NONE.with_kind(spec, TensorKind::Kernel, p).with_kind(
            spec,
            TensorKind::DenseKernel,
            p,
        )
    }

    /// Returns a copy with `p` on every tensor of kind `kind`.
    pub fn with_kind(mut self, spec: &Spec, kind: TensorKind, p: Penalty) -> Self {
        for (i, t) in spec.tensors().enumerate() {
            if t.kind == kind {
                self.per_tensor[i] = p;
            }
        }
        self
    }

    /// Returns a copy with `p` on tensor `index` (ignored past [`MAX_TENSORS`]).
    pub fn with_tensor(mut self, index: usize, p: Penalty) -> Self {
        if let Some(slot) = self.per_tensor.get_mut(index) {
            *slot = p;
        }
        self
    }

    /// True when no tensor is penalised.
    pub fn is_none(&self) -> bool {
        self.per_tensor.iter().all(Penalty::is_none)
    }

    /// Returns the penalty `Σ l1·Σ|w| + l2·Σw²` and adds its gradient to `grads`.
    ///
    /// # Errors
    /// [`Error::BufferLength`] if `params` or `grads` is not [`Spec::param_count`] long.
    pub fn add_loss_and_grad(
        &self,
        spec: &Spec,
        params: &[f32],
        grads: &mut [f32],
    ) -> Result<f32, Error> {
        check_len("parameters", spec.param_count(), params.len())?;
        check_len("gradients", spec.param_count(), grads.len())?;
        let mut loss = 0.0f32;
        for (t, p) in spec.tensors().zip(self.per_tensor.iter()) {
            if p.is_none() {
                continue;
            }
            let w = &params[t.range()];
            let g = &mut grads[t.range()];
            let (mut abs, mut sq) = (0.0f32, 0.0f32);
            for (gi, &wi) in g.iter_mut().zip(w) {
                abs += wi.abs();
                sq += wi * wi;
                let sign = if wi > 0.0 {
                    1.0
                } else if wi < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                *gi += p.l1 * sign + 2.0 * p.l2 * wi;
            }
            if p.l1 != 0.0 {
                loss += p.l1 * abs;
            }
            if p.l2 != 0.0 {
                loss += p.l2 * sq;
            }
        }
        Ok(loss)
    }
}
