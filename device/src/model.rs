//! The embedded model: its description, its weights read in place, inference and streaming.

use tinylstm::format::{ModelFile, TAG_PARAMS};
use tinylstm::model::{self, Sequences};
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
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    /// Every parameter, `[spec.param_count()]`, in the core's flat order.
    pub all: &'a [f32],
    /// The Dense head `[H·K + K]` replacing `all[spec.head_range()]`, if any.
    pub head: Option<&'a [f32]>,
}

impl<'a> Weights<'a> {
    /// The flat buffer with its own head.
    pub fn flat(all: &'a [f32]) -> Self {
        Weights { all, head: None }
    }

    /// The head in use, `[H·K + K]`.
    pub fn head(&self, spec: &Spec) -> &'a [f32] {
        self.head.unwrap_or_else(|| &self.all[spec.head_range()])
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
    match w.head {
        None => model::forward_logits(&m.spec, w.all, x, 1, work, out),
        Some(head) => {
            let hidden = &mut hidden[..m.spec.top_units()];
            model::forward_hidden(&m.spec, w.all, x, 1, work, hidden)?;
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
    match (w.head, out) {
        (None, out) => model::step(spec, w.all, input, 1, state, work, out),
        (Some(head), out) => {
            model::step(spec, w.all, input, 1, state, work, None)?;
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
