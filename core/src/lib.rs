//! # tinylstm
//!
//! A `no_std`, allocation-free LSTM engine: forward passes (batched, full-sequence and
//! streaming), backpropagation through time (full, truncated, and with recomputation),
//! losses, L1/L2 penalties, SGD/Adam/AdamW with clipping and schedules, masking (Keras
//! `Masking` and `Embedding(mask_zero=True)`, see [`Mask`]), and the `.tlm` model file — with
//! Keras's layouts and numerics.
//!
//! A model is a [`Spec`] plus one flat `f32` parameter buffer in Keras `get_weights()` order.
//! Every buffer size is a `const fn` of the spec, so a microcontroller can keep everything in
//! statics and a host can use `Vec`s of the same lengths.
//!
//! ## Two layers
//!
//! * **The readable front**: [`Model`] (a spec and its parameters: [`Model::forward`], and
//!   [`Model::step`] over a [`Stream`] of carried state) and [`Trainer`] (a training loop's
//!   settings and buffers: [`Trainer::step`] runs forward, loss, backpropagation, penalties
//!   and the optimizer update). Every part is a named field or a typed argument; the batch size
//!   is read from the buffers, so it cannot disagree with them.
//! * **The low-level layer** they call: the free functions of [`model`], [`train`], [`optim`],
//!   [`loss`], [`penalty`] and [`lstm`], with every size explicit and a `_with` form taking a
//!   [`kernels::Kernels`] path. Use them for what the front does not cover: a parameter range
//!   (head-only fine-tuning), the gradient of the input, gradients accumulated over several
//!   calls.
//!
//! Both borrow their buffers and allocate nothing; the front is a thin call into the layer
//! below. Every failure is an [`Error`] variant naming the buffer or setting at fault and the
//! numbers involved (`BufferLength { what: "work", expected, actual }`, `TokenOutOfRange { token,
//! vocab, .. }`, `Hyperparameter(Momentum)`, …); the core never panics on caller input.
//!
//! ```
//! use tinylstm::optim::{Optimizer, OptimizerConfig};
//! use tinylstm::penalty::Penalties;
//! use tinylstm::{Batch, Head, Model, Sequences, Spec, Targets, TrainOptions, Trainer};
//! const SPEC: Spec = Spec::channels(2).lstm(8).dense(1, Head::Sigmoid);
//! const SGD: OptimizerConfig = OptimizerConfig::new(Optimizer::sgd()).with_lr(0.5);
//! let mut params = [0.0f32; SPEC.param_count()];
//! tinylstm::init::init_params(&SPEC, 1, &mut params).unwrap();
//!
//! // Two sequences of 3 steps [B][T][C], labelled 1 and 0.
//! let x = [0.5f32, 0.5, 0.5, 0.5, 0.5, 0.5, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5];
//! let batch = Batch { inputs: Sequences::Values(&x), targets: Targets::Values(&[1.0, 0.0]), batch: 2 };
//! let mut work = [0.0f32; SPEC.train_work_len(2, 3, tinylstm::Bptt::FULL).unwrap()];
//! let mut grads = [0.0f32; SPEC.param_count()];
//! let mut trainer = Trainer {
//!     spec: &SPEC,
//!     options: TrainOptions::default(),
//!     optimizer: SGD,
//!     penalties: Penalties::NONE,
//!     iteration: 0,
//!     work: &mut work,
//!     grads: &mut grads,
//!     optimizer_state: &mut [], // plain SGD keeps no state
//! };
//! for _ in 0..50 {
//!     trainer.step(&mut params, &batch).unwrap();
//! }
//!
//! let mut fwd = [0.0f32; SPEC.forward_work_len(1, 1).unwrap()];
//! let mut p = [0.0f32; 1];
//! Model::new(&SPEC, &params).forward(Sequences::Values(&x[..6]), &mut fwd, &mut p).unwrap();
//! assert!(p[0] > 0.5); // the first sequence is now classified 1
//! ```
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The value of an `Option` expression, or `return None` from the enclosing `const fn` (where
/// `?` is not available): the checked size arithmetic of the `*_len` functions.
macro_rules! checked {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return None,
        }
    };
}

pub mod error;
pub mod format;
pub mod init;
pub mod kernels;
pub mod loss;
pub mod lstm;
pub mod math;
pub mod model;
pub mod optim;
pub mod penalty;
pub mod quant;
pub mod schedule;
pub mod spec;
pub mod text;
pub mod train;

#[cfg(test)]
mod checks_for_miri;

pub use error::{Error, Hyperparameter, SpecError};
pub use loss::Targets;
pub use model::{Model, Sequences, Stream};
pub use spec::{Head, InputKind, Mask, Spec, Tensor, TensorKind, MAX_LAYERS};
pub use train::{Batch, Bptt, TrainBuffers, TrainOptions, Trainer};
