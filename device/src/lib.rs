//! The device side of tinylstm: everything a microcontroller application needs that is not a
//! board. `no_std`, no heap, no `unsafe`; every buffer comes from the caller (statics on a
//! device, `Vec`s on a host), so the firmware, host tools and tests run the same code and a
//! host can replay a device's computations bit for bit.
//!
//! - [`model`]: the embedded model — [`Model`](model::Model) (spec, sequence length,
//!   standardisation), [`Weights`](model::Weights) read in place from flash
//!   ([`params_in_place`](model::params_in_place)) with an optional head in RAM, inference and
//!   streaming.
//! - [`norm`]: the model's input standardisation and sequence length.
//! - [`data`]: the labelled sequence sets a device embeds (format `TLSEQ002`), read through a
//!   [`View`](data::View) that poisons (for tests of the transaction) and standardises.
//! - [`tune`]: scores, head-only and truncated-BPTT fine-tuning, the acceptance rule.
//! - [`text`]: labelled sentences tokenized on the device (the core's in-place Keras
//!   tokenizer) into data sets, so the device classifies and fine-tunes on strings.
//! - [`ram`]: the RAM each mode needs, from the spec.
//! - [`runtime`]: a model loaded at run time into a block of memory the firmware allocates:
//!   sizes from the header, every check before the switch, the reason of a refusal.
//! - [`slots`]: fine-tuned weights persisted in two flash slots (A/B) that a power cut at any
//!   byte cannot mix, behind the `embedded-storage` NOR-flash traits.
//!
//! Every loss and gradient is the core's ([`tinylstm::train`], [`tinylstm::loss`]).
//!
//! ```
//! use tinylstm::{Head, Spec};
//! use tinylstm_device::model::{predict, Model, Weights};
//! const SPEC: Spec = Spec::channels(2).lstm(4).dense(3, Head::Softmax);
//! const T: usize = 5;
//! let mut params = [0.0f32; SPEC.param_count()];
//! tinylstm::init::init_params(&SPEC, 1, &mut params).unwrap();
//! let m = Model { spec: SPEC, steps: T, norm: None };
//! let x = [0.5f32.to_bits(); T * 2]; // one sequence's words [T][C]
//! let mut work = [0.0f32; SPEC.forward_work_len(1, 1).unwrap()];
//! let (mut hidden, mut probs) = ([0.0f32; 4], [0.0f32; 3]);
//! predict(&m, Weights::flat(&params), &x, &mut work, &mut hidden, &mut probs).unwrap();
//! assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod data;
pub mod model;
pub mod norm;
pub mod ram;
pub mod runtime;
pub mod slots;
pub mod text;
pub mod tune;
