//! The model's input standardisation and the sequence length it was trained on.
//!
//! `tinylstm train` fits per-channel means and standard deviations on its training split and
//! stores them in the model file's NORMALIZATION section: `u32 C`, then `C` `f32` means, then
//! `C` `f32` standard deviations, little-endian (`4 + 8·C` bytes). A device maps every raw value
//! through `x' = (x − mean[c]) / std[c]`, the same `f32` operations as the CLI's
//! `Normalizer::apply`, so the model sees the bits `tinylstm predict` feeds it.

/// Per-channel standardisation of raw values, borrowing its statistics (constants in flash on a
/// device, the decoded section on a host).
///
/// ```
/// use tinylstm_device::norm::Standardize;
/// let (means, stds) = ([1.0f32, 0.0], [2.0f32, 0.5]);
/// let s = Standardize::new(&means, &stds).unwrap();
/// let mut x = [3.0f32, 1.0, 1.0, -1.0]; // two time steps of two channels
/// s.apply(&mut x);
/// assert_eq!(x, [1.0, 2.0, 0.0, -2.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standardize<'a> {
    means: &'a [f32],
    stds: &'a [f32],
}

/// A NORMALIZATION section (or statistics) a device cannot use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NormError {
    /// The section's length is not `4 + 8·C` (the length found).
    Length(usize),
    /// Its channel count `C` differs from the model's (the count found).
    Channels(u32),
    /// A mean is not finite, or a standard deviation is not finite and positive (the channel).
    Value(usize),
}

impl core::fmt::Display for NormError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            NormError::Length(n) => {
                write!(f, "normalization section has {n} bytes, not 4 + 8 x channels")
            }
            NormError::Channels(c) => {
                write!(f, "normalization section is for {c} channels, the model has another count")
            }
            NormError::Value(c) => write!(
                f,
                "normalization section: channel {c} has a non-finite mean or a standard deviation \
                 that is not finite and positive"
            ),
        }
    }
}

impl core::error::Error for NormError {}

const fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a NORMALIZATION section body for a model of `channels` channels into `means` and
/// `stds` (each `[channels]`), with the checks of the CLI's `Normalizer::from_bytes`: length
/// `4 + 8·C`, `C` = `channels`, finite means, finite positive standard deviations.
///
/// # Errors
/// [`NormError`] naming the first problem; `means`/`stds` of the wrong length give
/// [`NormError::Channels`].
pub fn decode_section(
    bytes: &[u8],
    channels: usize,
    means: &mut [f32],
    stds: &mut [f32],
) -> Result<(), NormError> {
    if bytes.len() < 4 {
        return Err(NormError::Length(bytes.len()));
    }
    let c = le_u32(bytes, 0);
    if c as usize != channels || means.len() != channels || stds.len() != channels {
        return Err(NormError::Channels(c));
    }
    if bytes.len() != 4 + 8 * channels {
        return Err(NormError::Length(bytes.len()));
    }
    for k in 0..channels {
        means[k] = f32::from_bits(le_u32(bytes, 4 + 4 * k));
        stds[k] = f32::from_bits(le_u32(bytes, 4 + 4 * (channels + k)));
    }
    Standardize::new(means, stds).map(|_| ())
}

impl<'a> Standardize<'a> {
    /// Statistics `means [C]`, `stds [C]`, checked: the same length, finite means, finite
    /// positive standard deviations.
    ///
    /// # Errors
    /// [`NormError::Channels`] for different lengths, [`NormError::Value`] for a bad value.
    pub fn new(means: &'a [f32], stds: &'a [f32]) -> Result<Self, NormError> {
        if means.len() != stds.len() {
            return Err(NormError::Channels(stds.len() as u32));
        }
        for (k, (m, s)) in means.iter().zip(stds).enumerate() {
            if !m.is_finite() || !s.is_finite() || *s <= 0.0 {
                return Err(NormError::Value(k));
            }
        }
        Ok(Standardize { means, stds })
    }

    /// Per-channel means `[C]`.
    pub fn means(&self) -> &'a [f32] {
        self.means
    }

    /// Per-channel standard deviations `[C]`.
    pub fn stds(&self) -> &'a [f32] {
        self.stds
    }

    /// Number of channels `C`.
    pub fn channels(&self) -> usize {
        self.means.len()
    }

    /// Standardises `values` (whole time steps of `C` values, timestep-major) in place.
    pub fn apply(&self, values: &mut [f32]) {
        for step in values.chunks_exact_mut(self.means.len().max(1)) {
            for ((x, m), s) in step.iter_mut().zip(self.means).zip(self.stds) {
                *x = (*x - m) / s;
            }
        }
    }

    /// True when a NORMALIZATION section body holds exactly these statistics (bit for bit): a
    /// device whose statistics were compiled from the model file checks them against the
    /// embedded section at boot.
    pub fn matches_section(&self, bytes: &[u8]) -> bool {
        let c = self.means.len();
        bytes.len() == 4 + 8 * c
            && le_u32(bytes, 0) as usize == c
            && self
                .means
                .iter()
                .chain(self.stds)
                .enumerate()
                .all(|(k, v)| le_u32(bytes, 4 + 4 * k) == v.to_bits())
    }
}

/// Applies `norm`, if there is one, to `values` in place.
pub fn standardize(norm: &Option<Standardize<'_>>, values: &mut [f32]) {
    if let Some(n) = norm {
        n.apply(values);
    }
}

/// The sequence length `tinylstm train` recorded in the metadata section (`"steps":N` in its
/// JSON), if the section has one. The CLI pads or truncates every input to this length.
///
/// ```
/// use tinylstm_device::norm::metadata_steps;
/// assert_eq!(metadata_steps(br#"{"task":"sequence","steps":50}"#), Some(50));
/// assert_eq!(metadata_steps(b"free text"), None);
/// ```
pub fn metadata_steps(meta: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"steps\":";
    let at = meta.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = meta[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n = 0usize;
    let mut any = false;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}
