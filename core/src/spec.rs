//! Model specification: shapes, the flat parameter layout and work-buffer sizes.
//!
//! A model is a [`Spec`] plus one flat `f32` parameter buffer of length
//! [`Spec::param_count`]. Tensors are stored one after another in Keras's
//! `model.get_weights()` order and in Keras's own row-major layouts:
//!
//! | tensor | shape | when |
//! |---|---|---|
//! | embedding | `[V][E]` | token input only |
//! | LSTM `l` kernel | `[I_l][4·H_l]` | every layer, gates `i, f, c, o` |
//! | LSTM `l` recurrent kernel | `[H_l][4·H_l]` | every layer |
//! | LSTM `l` bias | `[4·H_l]` | every layer |
//! | Dense kernel | `[H_last][K]` | always |
//! | Dense bias | `[K]` | always |
//!
//! where `I_0` is the embedding size `E` (tokens) or the channel count `C`, and
//! `I_l = H_{l-1}` for the layers above.
//!
//! Every size is a `const fn`, so firmware can declare its buffers as
//! `[f32; SPEC.param_count()]` on stable Rust:
//!
//! ```
//! use tinylstm::{Head, Spec};
//! const SPEC: Spec = Spec::channels(6).lstm(32).dense(4, Head::Softmax);
//! const _: () = assert!(SPEC.is_valid());
//! static PARAMS: [f32; SPEC.param_count()] = [0.0; SPEC.param_count()];
//! // Sizes that depend on a batch or a sequence length are checked: `None` on overflow.
//! const WORK: usize = SPEC.forward_work_len(1, 1).expect("fits usize");
//! let work = [0.0f32; WORK];
//! # let _ = work;
//! assert_eq!(SPEC.state_len(usize::MAX), None);
//! assert_eq!(PARAMS.len(), 6 * 128 + 32 * 128 + 128 + 32 * 4 + 4);
//! ```

use crate::error::SpecError;

/// Largest number of stacked LSTM layers a [`Spec`] can describe.
pub const MAX_LAYERS: usize = 4;

/// Largest number of tensors a [`Spec`] can have: embedding, three per LSTM layer, Dense kernel and bias.
pub const MAX_TENSORS: usize = 1 + 3 * MAX_LAYERS + 2;

/// Largest value accepted for any single dimension (units, channels, embedding size, outputs).
///
/// Together with [`MAX_PARAMS`], bounding every dimension keeps every size computed from a
/// validated spec far below `usize::MAX` on 32-bit targets.
pub const MAX_DIM: usize = 4096;

/// Largest vocabulary accepted for token input.
pub const MAX_VOCAB: usize = 1 << 22;

/// Largest parameter count a valid spec may have (2²⁸ floats, 1 GiB).
///
/// [`Spec::validate`] checks the count in 64-bit arithmetic, so every size computed from a
/// valid spec (`param_count`, offsets) fits a 32-bit `usize` without overflow.
pub const MAX_PARAMS: usize = 1 << 28;

/// What the model reads at each time step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InputKind {
    /// Integer token ids in `0..vocab`, looked up in an Embedding `[vocab][embed]`.
    ///
    /// Id 0 is Keras's padding id: an ordinary input that goes through embedding row 0, unless
    /// the spec masks it ([`Mask::Zero`], Keras `Embedding(mask_zero=True)`).
    Tokens {
        /// Vocabulary size `V` (rows of the embedding).
        vocab: usize,
        /// Embedding size `E` (columns of the embedding, input width of the first LSTM).
        embed: usize,
    },
    /// `C` real values per time step.
    Channels(usize),
}

/// The activation of the Dense head, which also fixes the loss used in training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Head {
    /// Sigmoid outputs, trained with binary cross-entropy computed from the logits.
    Sigmoid,
    /// Softmax over the `K` outputs, trained with sparse categorical cross-entropy.
    Softmax,
    /// Linear outputs, trained with mean squared error.
    Linear,
}

/// Which time steps the LSTM layers skip, as Keras's `Masking` layer and
/// `Embedding(mask_zero=True)` decide it.
///
/// A masked step leaves every layer's `(h, c)` unchanged and repeats the last output (zeros
/// before the first kept step, from a zero initial state); the next layer skips the same steps,
/// and a masked step receives no gradient. The same steps are masked in every layer because the
/// mask comes from the input alone.
#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mask {
    /// Every step is processed (Keras without masking).
    Off,
    /// Channel input: a step is masked when **all** its `C` values equal this value (compared as
    /// floats, so `-0.0` equals `0.0`), wherever the step stands — Keras `Masking(mask_value)`.
    /// Must be finite (a NaN would mask nothing; an infinite one would turn the zero gradient
    /// of a masked step into NaN).
    Value(f32),
    /// Token input: id 0 is masked wherever it stands — Keras `Embedding(mask_zero=True)`.
    Zero,
}

impl PartialEq for Mask {
    /// Mask values are compared by their bits, so equality is an equivalence (`Eq`).
    fn eq(&self, other: &Self) -> bool {
        self.same(other)
    }
}

impl Eq for Mask {}

impl core::fmt::Debug for Mask {
    /// `Off`, `Zero`, or `Value(f32::from_bits(0x…))`: exact, and without pulling float
    /// formatting into firmware that prints a spec.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Mask::Off => f.write_str("Off"),
            Mask::Zero => f.write_str("Zero"),
            Mask::Value(v) => write!(f, "Value(f32::from_bits({:#010x}))", v.to_bits()),
        }
    }
}

impl Mask {
    /// Equality usable in `const` contexts (mask values compared by their bits).
    pub const fn same(&self, other: &Mask) -> bool {
        match (*self, *other) {
            (Mask::Off, Mask::Off) | (Mask::Zero, Mask::Zero) => true,
            (Mask::Value(a), Mask::Value(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }

    /// True unless the mask is [`Mask::Off`].
    pub const fn is_on(&self) -> bool {
        !matches!(self, Mask::Off)
    }
}

/// The kind of a parameter tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TensorKind {
    /// Embedding `[V][E]`.
    Embedding,
    /// LSTM input kernel `[I][4H]`.
    Kernel,
    /// LSTM recurrent kernel `[H][4H]`.
    RecurrentKernel,
    /// LSTM bias `[4H]`.
    Bias,
    /// Dense kernel `[H][K]`.
    DenseKernel,
    /// Dense bias `[K]`.
    DenseBias,
}

/// One tensor inside the flat parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Tensor {
    /// What the tensor is.
    pub kind: TensorKind,
    /// LSTM layer index for LSTM tensors, 0 otherwise.
    pub layer: usize,
    /// Offset of the first element in the flat buffer.
    pub offset: usize,
    /// Rows (1 for vectors).
    pub rows: usize,
    /// Columns (the length for vectors).
    pub cols: usize,
}

impl Tensor {
    /// Number of elements, `rows * cols`.
    pub const fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True when the tensor has no elements (never for a valid spec).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element range of this tensor in the flat buffer.
    pub const fn range(&self) -> core::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// The architecture of a model: input, stacked LSTM layers and Dense head.
///
/// Built with `const fn`s: `Spec::tokens(v, e)` or `Spec::channels(c)`, then one
/// [`lstm`](Spec::lstm) per layer (all but the last return sequences, as in the Keras seed
/// model), then [`dense`](Spec::dense). Check the result with [`validate`](Spec::validate) or,
/// in a constant, `assert!(SPEC.is_valid())`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Spec {
    /// The input kind.
    pub input: InputKind,
    /// Units `H_l` of each LSTM layer; only the first `layers` entries are used.
    pub units: [usize; MAX_LAYERS],
    /// Number of LSTM layers, `1..=MAX_LAYERS`.
    pub layers: usize,
    /// Number of Dense outputs `K`.
    pub outputs: usize,
    /// Head activation.
    pub head: Head,
    /// Which time steps are masked ([`Mask::Off`] unless set by [`masking`](Spec::masking) or
    /// [`mask_zero`](Spec::mask_zero)).
    pub mask: Mask,
}

impl Spec {
    /// A model reading token ids with vocabulary `vocab` and embedding size `embed`.
    pub const fn tokens(vocab: usize, embed: usize) -> Self {
        Self::empty(InputKind::Tokens { vocab, embed })
    }

    /// A model reading `channels` real values per time step.
    pub const fn channels(channels: usize) -> Self {
        Self::empty(InputKind::Channels(channels))
    }

    const fn empty(input: InputKind) -> Self {
        Spec {
            input,
            units: [0; MAX_LAYERS],
            layers: 0,
            outputs: 1,
            head: Head::Sigmoid,
            mask: Mask::Off,
        }
    }

    /// Masks every time step whose `C` values all equal `value` (channel input; Keras
    /// `Masking(mask_value=value)`). `-0.0` is stored as `0.0` (they mask the same steps).
    pub const fn masking(mut self, value: f32) -> Self {
        self.mask = Mask::Value(value + 0.0);
        self
    }

    /// Masks token id 0 wherever it stands (token input; Keras `Embedding(mask_zero=True)`).
    pub const fn mask_zero(mut self) -> Self {
        self.mask = Mask::Zero;
        self
    }

    /// Adds an LSTM layer with `units` hidden units on top of the existing ones.
    ///
    /// Adding more than [`MAX_LAYERS`] layers makes the spec invalid (see [`validate`](Spec::validate)).
    pub const fn lstm(mut self, units: usize) -> Self {
        if self.layers < MAX_LAYERS {
            self.units[self.layers] = units;
        }
        self.layers += 1;
        self
    }

    /// Sets the Dense head: `outputs` units with activation `head`.
    pub const fn dense(mut self, outputs: usize, head: Head) -> Self {
        self.outputs = outputs;
        self.head = head;
        self
    }

    /// Checks every dimension; returns the first problem found.
    pub const fn validate(&self) -> Result<(), SpecError> {
        match self.input {
            InputKind::Tokens { vocab, embed } => {
                if vocab == 0 || vocab > MAX_VOCAB {
                    return Err(SpecError::Vocab);
                }
                if embed == 0 || embed > MAX_DIM {
                    return Err(SpecError::Width);
                }
            }
            InputKind::Channels(c) => {
                if c == 0 || c > MAX_DIM {
                    return Err(SpecError::Width);
                }
            }
        }
        if self.layers == 0 || self.layers > MAX_LAYERS {
            return Err(SpecError::Layers);
        }
        let mut l = 0;
        while l < MAX_LAYERS {
            let u = self.units[l];
            if l < self.layers && (u == 0 || u > MAX_DIM) {
                return Err(SpecError::Units);
            }
            if l >= self.layers && u != 0 {
                return Err(SpecError::Units);
            }
            l += 1;
        }
        if self.outputs == 0 || self.outputs > MAX_DIM {
            return Err(SpecError::Outputs);
        }
        if matches!(self.head, Head::Softmax) && self.outputs < 2 {
            return Err(SpecError::Outputs);
        }
        match (self.mask, self.input) {
            (Mask::Off, _)
            | (Mask::Zero, InputKind::Tokens { .. })
            | (Mask::Value(_), InputKind::Channels(_)) => {}
            _ => return Err(SpecError::Mask),
        }
        if let Mask::Value(v) = self.mask {
            if !v.is_finite() {
                return Err(SpecError::Mask);
            }
        }
        // Every factor is bounded above, so this u64 sum cannot overflow.
        let mut n = self.outputs as u64 * (self.units[self.layers - 1] as u64 + 1);
        if let InputKind::Tokens { vocab, embed } = self.input {
            n += vocab as u64 * embed as u64;
        }
        let mut l = 0;
        while l < self.layers {
            let h = self.units[l] as u64;
            let i = if l == 0 { self.input_width() as u64 } else { self.units[l - 1] as u64 };
            n += 4 * h * (i + h + 1);
            l += 1;
        }
        if n > MAX_PARAMS as u64 {
            return Err(SpecError::TooLarge);
        }
        Ok(())
    }

    /// True when [`validate`](Spec::validate) succeeds; usable in `const` assertions.
    pub const fn is_valid(&self) -> bool {
        self.validate().is_ok()
    }

    /// Input width of the first LSTM layer: `E` for tokens, `C` for channels.
    pub const fn input_width(&self) -> usize {
        match self.input {
            InputKind::Tokens { embed, .. } => embed,
            InputKind::Channels(c) => c,
        }
    }

    /// Values per time step in the caller's input: 1 token id, or `C` channels.
    pub const fn step_width(&self) -> usize {
        match self.input {
            InputKind::Tokens { .. } => 1,
            InputKind::Channels(c) => c,
        }
    }

    /// Hidden units of layer `l` (0 past the last layer).
    pub const fn layer_units(&self, l: usize) -> usize {
        if l < self.layers && l < MAX_LAYERS {
            self.units[l]
        } else {
            0
        }
    }

    /// Input width `I_l` of layer `l`.
    pub const fn layer_input(&self, l: usize) -> usize {
        if l == 0 {
            self.input_width()
        } else {
            self.layer_units(l - 1)
        }
    }

    /// Hidden units of the last LSTM layer (the Dense input width).
    pub const fn top_units(&self) -> usize {
        self.layer_units(self.layers - 1)
    }

    /// Largest hidden size over the layers.
    pub const fn max_units(&self) -> usize {
        let mut m = 0;
        let mut l = 0;
        while l < self.layers {
            if self.units[l] > m {
                m = self.units[l];
            }
            l += 1;
        }
        m
    }

    /// Largest input width over the layers (`max(I_0, H_0 .. H_{L-2})`).
    pub const fn max_layer_input(&self) -> usize {
        let mut m = 0;
        let mut l = 0;
        while l < self.layers {
            let i = self.layer_input(l);
            if i > m {
                m = i;
            }
            l += 1;
        }
        m
    }

    /// Sum of hidden units over the layers.
    pub const fn total_units(&self) -> usize {
        let mut s = 0;
        let mut l = 0;
        while l < self.layers {
            s += self.units[l];
            l += 1;
        }
        s
    }

    /// Number of embedding parameters (`V·E`, or 0 for channel input).
    ///
    /// Never overflows for a valid spec ([`validate`](Spec::validate) bounds every size);
    /// saturates at `usize::MAX` for an invalid one rather than wrapping.
    pub const fn embedding_len(&self) -> usize {
        match self.input {
            InputKind::Tokens { vocab, embed } => vocab.saturating_mul(embed),
            InputKind::Channels(_) => 0,
        }
    }

    /// Number of parameters of LSTM layer `l`: `4H(I + H + 1)`.
    ///
    /// Never overflows for a valid spec; saturates for an invalid one rather than wrapping.
    pub const fn layer_len(&self, l: usize) -> usize {
        let h = self.layer_units(l);
        let rows = self.layer_input(l).saturating_add(h).saturating_add(1);
        h.saturating_mul(4).saturating_mul(rows)
    }

    /// Offset of the embedding `[V][E]` (always 0; empty for channel input).
    pub const fn embedding_offset(&self) -> usize {
        0
    }

    /// Offset of LSTM layer `l`'s kernel `[I_l][4H_l]`.
    pub const fn kernel_offset(&self, l: usize) -> usize {
        let mut off = self.embedding_len();
        let mut k = 0;
        while k < l {
            off = off.saturating_add(self.layer_len(k));
            k += 1;
        }
        off
    }

    /// Offset of LSTM layer `l`'s recurrent kernel `[H_l][4H_l]`.
    pub const fn recurrent_offset(&self, l: usize) -> usize {
        self.kernel_offset(l) + self.layer_input(l) * 4 * self.layer_units(l)
    }

    /// Offset of LSTM layer `l`'s bias `[4H_l]`.
    pub const fn bias_offset(&self, l: usize) -> usize {
        let h = self.layer_units(l);
        self.recurrent_offset(l) + h * 4 * h
    }

    /// Offset of the Dense kernel `[H_last][K]`.
    pub const fn dense_kernel_offset(&self) -> usize {
        self.kernel_offset(self.layers)
    }

    /// Offset of the Dense bias `[K]`.
    pub const fn dense_bias_offset(&self) -> usize {
        self.dense_kernel_offset() + self.top_units() * self.outputs
    }

    /// Total number of `f32` parameters.
    pub const fn param_count(&self) -> usize {
        self.dense_bias_offset() + self.outputs
    }

    /// Number of parameters of the Dense head, `H_last·K + K` (kernel and bias).
    pub const fn head_len(&self) -> usize {
        self.param_count() - self.dense_kernel_offset()
    }

    /// The parameter range of the Dense head (kernel and bias), for head-only fine-tuning.
    pub const fn head_range(&self) -> core::ops::Range<usize> {
        self.dense_kernel_offset()..self.param_count()
    }

    /// Number of tensors: 3 per layer, 2 for the head, 1 more for an embedding.
    pub const fn tensor_count(&self) -> usize {
        let emb = match self.input {
            InputKind::Tokens { .. } => 1,
            InputKind::Channels(_) => 0,
        };
        emb + 3 * self.layers + 2
    }

    /// Tensor `i` in `model.get_weights()` order, or `None` past the end.
    pub const fn tensor(&self, i: usize) -> Option<Tensor> {
        if i >= self.tensor_count() {
            return None;
        }
        let mut j = i;
        if let InputKind::Tokens { vocab, embed } = self.input {
            if j == 0 {
                return Some(Tensor {
                    kind: TensorKind::Embedding,
                    layer: 0,
                    offset: 0,
                    rows: vocab,
                    cols: embed,
                });
            }
            j -= 1;
        }
        if j < 3 * self.layers {
            let l = j / 3;
            let h = self.layer_units(l);
            return Some(match j % 3 {
                0 => Tensor {
                    kind: TensorKind::Kernel,
                    layer: l,
                    offset: self.kernel_offset(l),
                    rows: self.layer_input(l),
                    cols: 4 * h,
                },
                1 => Tensor {
                    kind: TensorKind::RecurrentKernel,
                    layer: l,
                    offset: self.recurrent_offset(l),
                    rows: h,
                    cols: 4 * h,
                },
                _ => Tensor {
                    kind: TensorKind::Bias,
                    layer: l,
                    offset: self.bias_offset(l),
                    rows: 1,
                    cols: 4 * h,
                },
            });
        }
        if j == 3 * self.layers {
            Some(Tensor {
                kind: TensorKind::DenseKernel,
                layer: 0,
                offset: self.dense_kernel_offset(),
                rows: self.top_units(),
                cols: self.outputs,
            })
        } else {
            Some(Tensor {
                kind: TensorKind::DenseBias,
                layer: 0,
                offset: self.dense_bias_offset(),
                rows: 1,
                cols: self.outputs,
            })
        }
    }

    /// Iterates over the tensors in `model.get_weights()` order.
    pub fn tensors(&self) -> impl Iterator<Item = Tensor> + '_ {
        (0..self.tensor_count()).filter_map(move |i| self.tensor(i))
    }

    /// Length of a streaming state for `batch` sequences: `(h, c)` of every layer,
    /// laid out layer by layer as `h [B][H_l]` then `c [B][H_l]`.
    ///
    /// `None` when the length does not fit a `usize` (as every `*_len` of a batch or a
    /// sequence length: the sizes are computed with checked arithmetic and never wrap). In a
    /// constant, `SPEC.state_len(1).expect("…")` turns an overflow into a compile error.
    pub const fn state_len(&self, batch: usize) -> Option<usize> {
        let units = checked!(self.checked_total_units());
        checked!(batch.checked_mul(units)).checked_mul(2)
    }

    /// Sum of hidden units over the layers, checked (`total_units` of an invalid spec could
    /// overflow).
    const fn checked_total_units(&self) -> Option<usize> {
        let mut s: usize = 0;
        let mut l = 0;
        while l < self.layers {
            s = checked!(s.checked_add(self.layer_units(l)));
            l += 1;
        }
        Some(s)
    }

    /// Offset of layer `l`'s `h [B][H_l]` inside a state of `batch` sequences (its `c` follows).
    ///
    /// At most [`state_len`](Spec::state_len)`(batch)`; saturates rather than wrapping when
    /// that is `None`.
    pub const fn state_offset(&self, l: usize, batch: usize) -> usize {
        let mut off: usize = 0;
        let mut k = 0;
        while k < l {
            off = off.saturating_add(batch.saturating_mul(self.layer_units(k)).saturating_mul(2));
            k += 1;
        }
        off
    }

    /// Length of the work buffer for an inference forward pass over `batch` sequences,
    /// processed `chunk` time steps at a time (any `chunk ≥ 1`; results are bit-identical
    /// for every chunk, so a device can pick `chunk = 1`); `None` on overflow.
    ///
    /// Includes the streaming state, so only `work` and the output are needed.
    pub const fn forward_work_len(&self, batch: usize, chunk: usize) -> Option<usize> {
        let state = checked!(self.state_len(batch));
        state.checked_add(checked!(self.segment_tape_len(batch, chunk)))
    }

    /// Length of the work buffer for one streaming step (`chunk = 1`, state excluded:
    /// the caller keeps the state); `None` on overflow.
    pub const fn step_work_len(&self, batch: usize) -> Option<usize> {
        self.segment_tape_len(batch, 1)
    }

    /// Tape needed to run every layer over a segment of `s` steps for `batch` sequences:
    /// the layers' part ([`segment_layer_offset`](Spec::segment_layer_offset)`(batch, s,
    /// layers)`) and, with a [`Mask`], one keep flag per step and sequence `[s][B]` at the end.
    /// `None` on overflow.
    pub const fn segment_tape_len(&self, batch: usize, s: usize) -> Option<usize> {
        let n = checked!(self.segment_layer_offset(batch, s, self.layers));
        if self.mask.is_on() {
            n.checked_add(checked!(s.checked_mul(batch)))
        } else {
            Some(n)
        }
    }

    /// Offset of layer `l`'s region inside a segment tape of `cap` steps for `batch` sequences
    /// (`l = layers` gives the end of the last layer's region). The tape holds the layer-0
    /// input `[cap][B][I_0]`, then per layer its gates `[cap][B][4H]` and its `h` and `c` over
    /// `cap + 1` slots `[cap+1][B][H]` each (slot 0 holds the incoming state). `None` on
    /// overflow.
    ///
    /// The one definition of the tape layout: [`segment_tape_len`](Spec::segment_tape_len),
    /// the forward pass, the streaming step and the training pass all place their tape by it.
    pub const fn segment_layer_offset(&self, batch: usize, cap: usize, l: usize) -> Option<usize> {
        let rows = checked!(cap.checked_mul(batch));
        let slots = checked!(checked!(cap.checked_add(1)).checked_mul(batch));
        let mut n = checked!(rows.checked_mul(self.input_width()));
        let mut k = 0;
        while k < l && k < self.layers {
            let h = self.layer_units(k);
            let gates = checked!(checked!(rows.checked_mul(h)).checked_mul(4));
            let states = checked!(checked!(slots.checked_mul(h)).checked_mul(2));
            n = checked!(checked!(n.checked_add(gates)).checked_add(states));
            k += 1;
        }
        Some(n)
    }
}
