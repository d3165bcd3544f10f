//! The embedded model: its description, its weights read in place, inference and streaming.

use tinylstm::format::{ModelFile, TAG_PARAMS};
use tinylstm::model::{self, Sequences};
use tinylstm::quant::Int8Embedding;
use tinylstm::{Error, InputKind, Spec};

use crate::data::{values, values_mut, Shape};
use crate::norm::{standardize, Standardize};

/// Bytes kept at an alignment of 4, for `include_bytes!` of a model whose parameters are read
/// in place: `static M: &Aligned<[u8]> = &Aligned(*include_bytes!("model.tlm"));`.
#[derive(Debug)]
#[repr(C, align(4))]
pub struct Aligned<B: ?Sized>(pub B);

/// What a device needs to know about its model besides the weights.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    /// The architecture.
    pub spec: Spec,
    /// Time steps `T` of one sequence (what `tinylstm train` padded or cut every input to).
    pub steps: usize,
    /// The input standardisation (value input trained with `--standardize true`).
    pub norm: Option<Standardize<'a>>,
}

impl Model<'_> {
    /// The shape of this model's data sets.
    pub const fn shape(&self) -> Shape {
        Shape::of(&self.spec, self.steps)
    }

    /// Input words of one sequence, `T·W`.
    pub const fn seq_words(&self) -> usize {
        self.steps * self.spec.step_width()
    }

    /// One sequence's (already standardised) words `[T][W]` as the core's input.
    pub fn inputs<'x>(&self, x: &'x [u32]) -> Sequences<'x> {
        match self.spec.input {
            InputKind::Tokens { .. } => Sequences::Tokens(x),
            InputKind::Channels(_) => Sequences::Values(values(x)),
        }
    }
}

/// The weights a model runs with: the flat parameter buffer (in flash until a full update
/// commits) and, when head-only fine-tuning has committed a new head, that head (in RAM).
///
/// A model whose Embedding is stored as int8 (format version 3, `tinylstm export --embedding
/// int8`) keeps the table in flash (`embedding`, read in place and dequantised row by row in
/// the lookup) and `all` holds the other parameters; its Embedding is frozen (head-only
/// fine-tuning only).
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    /// Every parameter, `[spec.param_count()]`, in the core's flat order — or, with an int8
    /// `embedding`, every parameter after the Embedding, `[spec.param_count() − V·E]`.
    pub all: &'a [f32],
    /// The Dense head `[H·K + K]` replacing the head in `all`, if any.
    pub head: Option<&'a [f32]>,
    /// The int8 Embedding table `[V][E]`, when the file stores it so.
    pub embedding: Option<Int8Embedding<'a>>,
}

impl<'a> Weights<'a> {
    /// The flat buffer with its own head.
    pub fn flat(all: &'a [f32]) -> Self {
        Weights { all, head: None, embedding: None }
    }

    /// The weights of a parsed model file read in place: the int8 Embedding (if the file has
    /// one) and the PARAMS section ([`params_in_place`]).
    ///
    /// # Errors
    /// As [`params_in_place`].
    pub fn in_place(file: &ModelFile<'a>) -> Result<Self, InPlaceError> {
        let all = params_in_place(file)?;
        Ok(Weights { all, head: None, embedding: file.embedding_int8() })
    }

    /// Index in `all` of parameter `i` of the flat order.
    fn at(&self, spec: &Spec, i: usize) -> usize {
        if self.embedding.is_some() {
            i - spec.embedding_len()
        } else {
            i
        }
    }

    /// The head in use, `[H·K + K]`.
    pub fn head(&self, spec: &Spec) -> &'a [f32] {
        let r = spec.head_range();
        self.head.unwrap_or_else(|| &self.all[self.at(spec, r.start)..self.at(spec, r.end)])
    }

    /// The top layer's last hidden state `[B][H]` of `x` (`model::forward_hidden`, or its
    /// int8 form).
    ///
    /// # Errors
    /// As `model::forward_hidden`.
    pub fn hidden(
        &self,
        spec: &Spec,
        x: Sequences<'_>,
        work: &mut [f32],
        hidden: &mut [f32],
    ) -> Result<(), Error> {
        match self.embedding {
            None => model::forward_hidden(spec, self.all, x, 1, work, hidden),
            Some(t) => model::forward_hidden_int8(spec, t, self.all, x, 1, work, hidden),
        }
    }

    /// Every parameter in the flat order: the Embedding dequantised when it is int8, the head
    /// in use in place of `all`'s — what the host reads from the same file.
    pub fn values(&self, spec: &Spec) -> impl Iterator<Item = f32> + 'a {
        let table = self.embedding.into_iter().flat_map(|t| {
            (0..t.vocab()).flat_map(move |id| {
                let s = t.scale(id);
                t.row(id).map(move |q| tinylstm::quant::dequantize(q, s))
            })
        });
        let body = &self.all[..self.at(spec, spec.dense_kernel_offset())];
        table.chain(body.iter().copied()).chain(self.head(spec).iter().copied())
    }
}

/// Why an embedded model's parameters cannot be read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InPlaceError {
    /// The PARAMS section does not start at a 4-byte aligned address (embed the file with
    /// [`Aligned`] and the padding the firmware's build script computes).
    Misaligned,
    /// The target is big-endian: the file's little-endian `f32`s must be decoded instead.
    BigEndian,
}

impl core::fmt::Display for InPlaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            InPlaceError::Misaligned => "the model's parameters are not 4-byte aligned in memory",
            InPlaceError::BigEndian => "a big-endian target cannot read the parameters in place",
        })
    }
}

/// The parameters of a parsed model file as `f32`s, read in place (no copy): the PARAMS
/// section's little-endian bytes reinterpreted, which needs a little-endian target and a
/// 4-byte aligned section.
///
/// # Errors
/// [`InPlaceError`].
pub fn params_in_place<'a>(file: &ModelFile<'a>) -> Result<&'a [f32], InPlaceError> {
    if cfg!(target_endian = "big") {
        return Err(InPlaceError::BigEndian);
    }
    let bytes = file.section(TAG_PARAMS).unwrap_or(&[]);
    bytemuck::try_cast_slice(bytes).map_err(|_| InPlaceError::Misaligned)
}

/// Offset of the PARAMS section's body inside a model file: the padding that makes it 4-byte
/// aligned is `(4 − offset % 4) % 4` bytes in front of the file.
pub fn params_offset(file: &ModelFile<'_>) -> usize {
    let all = file.as_bytes();
    file.section(TAG_PARAMS).map_or(0, |p| p.as_ptr() as usize - all.as_ptr() as usize)
}

/// Head logits `[n][K]` of `n` feature vectors `feats [n][H]` (the core's Dense head).
///
/// # Errors
/// Wrong buffer lengths.
pub fn head_logits(
    spec: &Spec,
    head: &[f32],
    feats: &[f32],
    n: usize,
    logits: &mut [f32],
) -> Result<(), Error> {
    let (h, k) = (spec.top_units(), spec.outputs);
    model::dense_logits(spec, head, &feats[..n * h], n, &mut logits[..n * k])
}

/// Logits `[K]` of one standardised sequence `x [T·W]`.
///
/// * `work` — [`Spec::forward_work_len`]`(1, 1)` floats (or more).
/// * `hidden` — `[H]` scratch, used when `w` has a separate head.
///
/// # Errors
/// Wrong buffer lengths, token ids out of range.
pub fn logits(
    m: &Model<'_>,
    w: Weights<'_>,
    x: &[u32],
    work: &mut [f32],
    hidden: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let x = m.inputs(&x[..m.seq_words()]);
    match (w.head, w.embedding) {
        (None, None) => model::forward_logits(&m.spec, w.all, x, 1, work, out),
        (None, Some(t)) => model::forward_logits_int8(&m.spec, t, w.all, x, 1, work, out),
        (Some(head), _) => {
            let hidden = &mut hidden[..m.spec.top_units()];
            w.hidden(&m.spec, x, work, hidden)?;
            model::dense_logits(&m.spec, head, hidden, 1, out)
        }
    }
}

/// The head's outputs `[K]` (probabilities, or values for a linear head) of one standardised
/// sequence: [`logits`], then the head's activation. Equal, bit for bit, to what
/// `tinylstm predict` gives for the same raw input.
///
/// # Errors
/// As [`logits`].
pub fn predict(
    m: &Model<'_>,
    w: Weights<'_>,
    x: &[u32],
    work: &mut [f32],
    hidden: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    logits(m, w, x, work, hidden, out)?;
    model::activate(m.spec.head, m.spec.outputs, out);
    Ok(())
}

/// One streaming step: standardises the raw time step `xt [W]` in place, advances the carried
/// state (`state [spec.state_len(1)]`, zero for a fresh sequence; `work
/// [spec.step_work_len(1)]`) and, when `out [K]` is given, writes the head's outputs for the
/// sequence so far. After `T` steps the outputs equal [`predict`]'s on the whole sequence.
///
/// # Errors
/// Wrong buffer lengths, token ids out of range.
pub fn stream_step(
    m: &Model<'_>,
    w: Weights<'_>,
    xt: &mut [u32],
    state: &mut [f32],
    work: &mut [f32],
    out: Option<&mut [f32]>,
) -> Result<(), Error> {
    let spec = &m.spec;
    let xt = &mut xt[..spec.step_width()];
    let input = match spec.input {
        InputKind::Tokens { .. } => Sequences::Tokens(xt),
        InputKind::Channels(_) => {
            standardize(&m.norm, values_mut(xt));
            Sequences::Values(values(xt))
        }
    };
    let step = |state: &mut [f32], work: &mut [f32], out: Option<&mut [f32]>| match w.embedding {
        None => model::step(spec, w.all, input, 1, state, work, out),
        Some(t) => model::step_int8(spec, t, w.all, input, 1, state, work, out),
    };
    match (w.head, out) {
        (None, out) => step(state, work, out),
        (Some(head), out) => {
            step(state, work, None)?;
            if let Some(o) = out {
                let at = spec.state_offset(spec.layers - 1, 1);
                model::dense_logits(spec, head, &state[at..at + spec.top_units()], 1, o)?;
                model::activate(spec.head, spec.outputs, o);
            }
            Ok(())
        }
    }
}

/// Index of the largest value (the first on ties; NaN never wins).
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}
