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
pub mod schedule;
pub mod spec;
pub mod text;
pub mod train;

pub use error::{Error, SpecError};
pub use loss::Targets;
pub use model::Sequences;
pub use spec::{Head, InputKind, Mask, Spec, Tensor, TensorKind, MAX_LAYERS};
pub use train::{Batch, Bptt, TrainOptions};
