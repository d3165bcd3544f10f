//! Labelled sequence sets a device embeds: the inference samples, the field set it fine-tunes
//! on and the validation set of the transaction.
//!
//! # Format (`TLSEQ002`)
//!
//! Little-endian 32-bit words throughout:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic, the ASCII bytes `TLSEQ002` ([`DATA_MAGIC`]) |
//! | 8 | 4 | `u32` number of sequences `N` (`1..=`[`MAX_SET`]) |
//! | 12 | 4 | `u32` time steps `T` per sequence |
//! | 16 | 4 | `u32` words per time step `W`: the channel count `C`, or 1 for token ids |
//! | 20 | 4 | `u32` input kind: 0 = token ids (`u32`), 1 = raw values (`f32`) |
//! | 24 | 4 | `u32` target words `Y` per sequence: 1 for a class id, `K` for target values |
//! | 28 | 4 | `u32` target kind: 0 = class id (`u32`, softmax head), 1 = values (`f32`: 0/1 labels of a sigmoid head, regression targets of a linear head) |
//! | 32 | `N · 4 · (Y + T·W)` | per sequence: its `Y` target words, then its `T·W` input words, timestep-major |
//!
//! Nothing follows the last record. Values are **raw** readings: a [`View`] standardises them
//! with the model's [`Standardize`] on the way in. `tinylstm device-data` writes these files
//! from a CSV in the training format.
//!
//! A sequence is handled as words (`[u32]`): token ids as they are, values as `f32` bit
//! patterns ([`values`] and [`values_mut`] view them as `f32` without copying).

use tinylstm::{Head, InputKind, Spec};

use crate::norm::{standardize, Standardize};

/// Magic bytes of a data set.
pub const DATA_MAGIC: [u8; 8] = *b"TLSEQ002";
/// Header length of a data set in bytes.
pub const DATA_HEADER_LEN: usize = 32;
/// Largest number of sequences in one data set.
pub const MAX_SET: usize = 32;

/// The words of a value sequence as `f32`.
pub fn values(words: &[u32]) -> &[f32] {
    bytemuck::cast_slice(words)
}

/// The words of a value sequence as mutable `f32`.
pub fn values_mut(words: &mut [u32]) -> &mut [f32] {
    bytemuck::cast_slice_mut(words)
}

/// What a model's data sets look like: derived from its spec and sequence length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Time steps `T`.
    pub steps: usize,
    /// Words per time step `W` (channels, or 1 for token ids).
    pub width: usize,
    /// Vocabulary size for token input, 0 for values.
    pub vocab: usize,
    /// The model's head (decides the targets).
    pub head: Head,
    /// Outputs `K` of the head.
    pub outputs: usize,
}

impl Shape {
    /// The data shape of a model with `spec` reading `steps` time steps.
    pub const fn of(spec: &Spec, steps: usize) -> Shape {
        let (width, vocab) = match spec.input {
            InputKind::Tokens { vocab, .. } => (1, vocab),
            InputKind::Channels(c) => (c, 0),
        };
        Shape { steps, width, vocab, head: spec.head, outputs: spec.outputs }
    }

    /// True for token-id input.
    pub const fn tokens(&self) -> bool {
        self.vocab != 0
    }

    /// True when targets are class ids (softmax head).
    pub const fn classes(&self) -> bool {
        matches!(self.head, Head::Softmax)
    }

    /// Target words per sequence `Y`.
    pub const fn target_words(&self) -> usize {
        if self.classes() {
            1
        } else {
            self.outputs
        }
    }

    /// Input words per sequence, `T·W`.
    pub const fn seq_words(&self) -> usize {
        self.steps * self.width
    }

    /// Bytes per record.
    pub const fn record_len(&self) -> usize {
        4 * (self.target_words() + self.seq_words())
    }

    /// Bytes of a set of `n` sequences.
    pub const fn set_len(&self, n: usize) -> usize {
        DATA_HEADER_LEN + n * self.record_len()
    }

    /// The header of a set of `n` sequences of this shape.
    pub const fn header(&self, n: usize) -> [u8; DATA_HEADER_LEN] {
        let words = [
            n as u32,
            self.steps as u32,
            self.width as u32,
            if self.tokens() { 0 } else { 1 },
            self.target_words() as u32,
            if self.classes() { 0 } else { 1 },
        ];
        let mut h = [0u8; DATA_HEADER_LEN];
        let mut i = 0;
        while i < 8 {
            h[i] = DATA_MAGIC[i];
            i += 1;
        }
        let mut w = 0;
        while w < words.len() {
            let b = words[w].to_le_bytes();
            let mut j = 0;
            while j < 4 {
                h[8 + 4 * w + j] = b[j];
                j += 1;
            }
            w += 1;
        }
        h
    }
}

/// A problem with a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DataError {
    /// It does not start with [`DATA_MAGIC`].
    BadMagic,
    /// Its steps, width, input kind or targets differ from the model's.
    Shape,
    /// No sequences, or more than [`MAX_SET`].
    Count,
    /// Its length is not header + `N` records.
    Length,
    /// A class id is not below `K`.
    Label,
    /// A token id is not below the vocabulary size.
    Token,
}

impl DataError {
    /// A sentence for a log or a build error.
    pub const fn message(self) -> &'static str {
        match self {
            DataError::BadMagic => "data set does not start with TLSEQ002",
            DataError::Shape => {
                "data set steps, channels, input kind or targets differ from the model's"
            }
            DataError::Count => "data set has no sequences or more than MAX_SET (32)",
            DataError::Length => "data set length is not header + N records",
            DataError::Label => "data set has a class id outside the model's classes",
            DataError::Token => "data set has a token id outside the model's vocabulary",
        }
    }
}

impl core::fmt::Display for DataError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for DataError {}

const fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks a data set against `shape` completely (usable in a `const` assertion); returns its
/// sequence count.
pub const fn check_data(bytes: &[u8], shape: &Shape) -> Result<usize, DataError> {
    if bytes.len() < DATA_HEADER_LEN {
        return Err(DataError::Length);
    }
    let mut i = 0;
    while i < 8 {
        if bytes[i] != DATA_MAGIC[i] {
            return Err(DataError::BadMagic);
        }
        i += 1;
    }
    let want = shape.header(0);
    let mut i = 12;
    while i < DATA_HEADER_LEN {
        if bytes[i] != want[i] {
            return Err(DataError::Shape);
        }
        i += 1;
    }
    let n = le_u32(bytes, 8) as usize;
    if n == 0 || n > MAX_SET {
        return Err(DataError::Count);
    }
    if bytes.len() != shape.set_len(n) {
        return Err(DataError::Length);
    }
    let mut r = 0;
    while r < n {
        let at = DATA_HEADER_LEN + r * shape.record_len();
        if shape.classes() && le_u32(bytes, at) as usize >= shape.outputs {
            return Err(DataError::Label);
        }
        if shape.tokens() {
            let mut w = 0;
            while w < shape.seq_words() {
                if le_u32(bytes, at + 4 * (shape.target_words() + w)) as usize >= shape.vocab {
                    return Err(DataError::Token);
                }
                w += 1;
            }
        }
        r += 1;
    }
    Ok(n)
}

/// A validated data set borrowed from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Dataset<'a> {
    bytes: &'a [u8],
    shape: Shape,
    len: usize,
}

impl<'a> Dataset<'a> {
    /// Validates `bytes` against `shape` (see [`check_data`]).
    ///
    /// # Errors
    /// The first problem [`check_data`] finds.
    pub fn parse(bytes: &'a [u8], shape: Shape) -> Result<Self, DataError> {
        let len = check_data(bytes, &shape)?;
        Ok(Dataset { bytes, shape, len })
    }

    /// The shape it was checked against.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (never, for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn word(&self, i: usize, w: usize) -> u32 {
        le_u32(self.bytes, DATA_HEADER_LEN + i * self.shape.record_len() + 4 * w)
    }

    /// The target words `[Y]` of sequence `i` into `out[..Y]`.
    pub fn targets(&self, i: usize, out: &mut [u32]) {
        for (w, o) in out[..self.shape.target_words()].iter_mut().enumerate() {
            *o = self.word(i, w);
        }
    }

    /// The class id (or first target word) of sequence `i`.
    pub fn label(&self, i: usize) -> u32 {
        self.word(i, 0)
    }

    /// Copies the raw input words of sequence `i` (`[T][W]`) into `out[..T·W]`.
    pub fn read(&self, i: usize, out: &mut [u32]) {
        let y = self.shape.target_words();
        for (w, o) in out[..self.shape.seq_words()].iter_mut().enumerate() {
            *o = self.word(i, y + w);
        }
    }
}

/// A non-finite sensor reading, as a [`Poison`] injects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Glitch {
    /// NaN (a failed conversion).
    Nan,
    /// +Inf (a saturated or overflowing reading).
    PosInf,
    /// −Inf.
    NegInf,
}

impl Glitch {
    /// The reading.
    pub const fn value(self) -> f32 {
        match self {
            Glitch::Nan => f32::NAN,
            Glitch::PosInf => f32::INFINITY,
            Glitch::NegInf => f32::NEG_INFINITY,
        }
    }
}

/// A deliberate corruption of a data set, to exercise the transactional update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Poison {
    /// The data as embedded.
    None,
    /// One raw value of one sequence replaced by a non-finite reading (value input only).
    NonFinite {
        /// Sequence index.
        sample: usize,
        /// Value index inside the sequence (`t · C + c`).
        value: usize,
        /// The reading.
        glitch: Glitch,
    },
    /// Every target wrong: class ids shifted by one class, sigmoid labels flipped (`1 − y`),
    /// regression targets moved by `3·(1 + |y|)`.
    Mislabel,
}

/// A data set holds sequences the model cannot take: a value that is NaN or infinite as the
/// model would see it (raw, then standardised — a huge finite reading can overflow there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NonFiniteInput {
    /// Sequences holding such a value.
    pub sequences: usize,
    /// The first of them.
    pub first: usize,
    /// The first such value's index inside that sequence (`t · C + c`).
    pub value: usize,
}

/// A data set as the model sees it: raw input, through a [`Poison`], then standardised.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The raw data.
    pub data: Dataset<'a>,
    /// The corruption applied on reading.
    pub poison: Poison,
    /// The model's standardisation, applied last (value input only).
    pub norm: Option<Standardize<'a>>,
}

impl<'a> View<'a> {
    /// The data as it is, standardised with `norm`.
    pub fn clean(data: Dataset<'a>, norm: Option<Standardize<'a>>) -> Self {
        View { data, poison: Poison::None, norm }
    }

    /// The same data and standardisation through another poison.
    pub fn poisoned(&self, poison: Poison) -> Self {
        View { poison, ..*self }
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The shape of the data.
    pub fn shape(&self) -> Shape {
        self.data.shape
    }

    /// The (possibly poisoned) target words `[Y]` of sequence `i` into `out[..Y]`.
    pub fn targets(&self, i: usize, out: &mut [u32]) {
        let s = self.data.shape;
        self.data.targets(i, out);
        if self.poison != Poison::Mislabel {
            return;
        }
        let out = &mut out[..s.target_words()];
        match s.head {
            Head::Softmax => out[0] = (out[0] + 1) % s.outputs as u32,
            Head::Sigmoid => values_mut(out).iter_mut().for_each(|y| *y = 1.0 - *y),
            Head::Linear => values_mut(out).iter_mut().for_each(|y| *y += 3.0 * (1.0 + y.abs())),
        }
    }

    /// The target words of every sequence into `out[..N·Y]`.
    pub fn all_targets(&self, out: &mut [u32]) {
        let y = self.data.shape.target_words();
        for i in 0..self.len() {
            self.targets(i, &mut out[i * y..(i + 1) * y]);
        }
    }

    /// Copies sequence `i` into `x[..T·W]` — raw, poisoned, then standardised.
    pub fn read(&self, i: usize, x: &mut [u32]) {
        let s = self.data.shape;
        self.data.read(i, x);
        if s.tokens() {
            return;
        }
        let v = &mut values_mut(x)[..s.seq_words()];
        if let Poison::NonFinite { sample, value, glitch } = self.poison {
            if sample == i {
                v[value] = glitch.value();
            }
        }
        standardize(&self.norm, v);
    }

    /// [`View::read`], refusing a sequence with a NaN or infinite value (after
    /// standardisation) with [`Error::NonFiniteInput`](tinylstm::Error::NonFiniteInput): the training paths read
    /// through this, so such a sequence never reaches a training step.
    ///
    /// # Errors
    /// [`Error::NonFiniteInput`](tinylstm::Error::NonFiniteInput).
    pub fn read_finite(&self, i: usize, x: &mut [u32]) -> Result<(), tinylstm::Error> {
        self.read(i, x);
        match self.first_non_finite(x) {
            None => Ok(()),
            Some(_) => Err(tinylstm::Error::NonFiniteInput),
        }
    }

    fn first_non_finite(&self, x: &[u32]) -> Option<usize> {
        let s = self.data.shape;
        if s.tokens() {
            return None;
        }
        values(&x[..s.seq_words()]).iter().position(|v| !v.is_finite())
    }

    /// Checks every sequence as the model would see it (`x [T·W]` is scratch): the intake
    /// check before fine-tuning, which refuses a set holding a NaN or infinite value.
    ///
    /// # Errors
    /// [`NonFiniteInput`] counting the bad sequences and naming the first bad value.
    pub fn check_finite(&self, x: &mut [u32]) -> Result<(), NonFiniteInput> {
        let mut bad: Option<NonFiniteInput> = None;
        for i in 0..self.len() {
            self.read(i, x);
            if let Some(value) = self.first_non_finite(x) {
                match &mut bad {
                    Some(b) => b.sequences += 1,
                    None => bad = Some(NonFiniteInput { sequences: 1, first: i, value }),
                }
            }
        }
        bad.map_or(Ok(()), Err)
    }
}
