//! Per-channel standardisation of real-valued sequences: `x' = (x − mean[c]) / std[c]`.
//!
//! Statistics come from the **training split only** ([`Normalizer::fit`]) and are then applied
//! to every split and, on the device, to live data. Mean and standard deviation are taken over
//! every timestep of every training sequence, per channel, accumulated in `f64` (Welford); the
//! standard deviation is the population one (divide by `n`, as NumPy's `std` and Keras's
//! `Normalization` layer). A channel whose standard deviation is 0 (constant) — or smaller than
//! the smallest normal `f32` — gets 1, so it is only centred.
//!
//! # Serialised form (normalization section of the `.tlm` file)
//!
//! Little-endian: `u32 C`, then `C` `f32` means, then `C` `f32` standard deviations —
//! `4 + 8·C` bytes, nothing else. [`Normalizer::from_bytes`] rejects `C = 0`, a length other than
//! `4 + 8·C` (checked before allocating), non-finite means and standard deviations that are not
//! finite and positive; it never panics.
use serde::{Deserialize, Serialize};

use crate::data::Dataset;

/// Per-channel means and standard deviations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    means: Vec<f32>,
    stds: Vec<f32>,
}

/// What can go wrong when fitting, applying or decoding a [`Normalizer`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// Zero channels.
    #[error("normalization needs at least one channel")]
    ZeroChannels,
    /// A sequence's length is not a multiple of the channel count.
    #[error("sequence {index} has {len} values, not a multiple of {channels} channels")]
    Ragged {
        /// Position of the sequence.
        index: usize,
        /// Its number of values.
        len: usize,
        /// The channel count.
        channels: usize,
    },
    /// No timestep to compute statistics from.
    #[error("no training values to compute normalization statistics from")]
    NoData,
    /// A training value is NaN or infinite.
    #[error("sequence {index} holds a NaN or infinite value")]
    NonFinite {
        /// Position of the sequence.
        index: usize,
    },
    /// The dataset holds texts, or its channel count differs from the normalizer's.
    #[error("dataset does not hold sequences of {channels} channels")]
    WrongData {
        /// The normalizer's channel count.
        channels: usize,
    },
    /// An index given to [`Normalizer::fit_dataset`] is out of range.
    #[error("sample index {0} is out of range")]
    BadIndex(usize),
    /// Means and standard deviations differ in count.
    #[error("{means} means but {stds} standard deviations")]
    LengthMismatch {
        /// Number of means.
        means: usize,
        /// Number of standard deviations.
        stds: usize,
    },
    /// Serialised form: the length is not `4 + 8·C`.
    #[error("normalization data: {len} bytes, expected {expected}")]
    BadLength {
        /// Actual length.
        len: usize,
        /// Expected length (0 when the header itself is missing).
        expected: u64,
    },
    /// A mean is not finite or a standard deviation is not finite and positive.
    #[error("normalization data: channel {channel} has an invalid mean or standard deviation")]
    BadValue {
        /// The channel.
        channel: usize,
    },
}

impl Normalizer {
    /// Fits means and standard deviations to `sequences` (each `T × channels` values,
    /// timestep-major) — pass the training split only.
    pub fn fit<'a, I>(channels: usize, sequences: I) -> Result<Self, NormalizeError>
    where
        I: IntoIterator<Item = &'a [f32]>,
    {
        if channels == 0 {
            return Err(NormalizeError::ZeroChannels);
        }
        let mut count: u64 = 0;
        let mut mean = vec![0f64; channels];
        let mut m2 = vec![0f64; channels];
        for (index, seq) in sequences.into_iter().enumerate() {
            if seq.len() % channels != 0 {
                return Err(NormalizeError::Ragged { index, len: seq.len(), channels });
            }
            if seq.iter().any(|v| !v.is_finite()) {
                return Err(NormalizeError::NonFinite { index });
            }
            for step in seq.chunks_exact(channels) {
                count += 1;
                let n = count as f64;
                for ((x, m), s) in step.iter().zip(&mut mean).zip(&mut m2) {
                    let x = f64::from(*x);
                    let d = x - *m;
                    *m += d / n;
                    *s += d * (x - *m);
                }
            }
        }
        if count == 0 {
            return Err(NormalizeError::NoData);
        }
        let stds = m2
            .iter()
            .map(|s| {
                let sd = (s / count as f64).sqrt() as f32;
                if sd.is_finite() && sd >= f32::MIN_POSITIVE {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Self { means: mean.iter().map(|&m| m as f32).collect(), stds })
    }

    /// Fits to the samples of `dataset` at `train` (the training split's indices).
    pub fn fit_dataset(dataset: &Dataset, train: &[usize]) -> Result<Self, NormalizeError> {
        let channels = dataset.channels().ok_or(NormalizeError::WrongData { channels: 0 })?;
        let mut seqs = Vec::with_capacity(train.len());
        for &i in train {
            let s = dataset.samples.get(i).ok_or(NormalizeError::BadIndex(i))?;
            seqs.push(s.values().ok_or(NormalizeError::WrongData { channels })?);
        }
        Self::fit(channels, seqs)
    }

    /// A normalizer with given statistics (e.g. from a Keras `Normalization` layer).
    pub fn from_stats(means: Vec<f32>, stds: Vec<f32>) -> Result<Self, NormalizeError> {
        if means.len() != stds.len() {
            return Err(NormalizeError::LengthMismatch { means: means.len(), stds: stds.len() });
        }
        if means.is_empty() {
            return Err(NormalizeError::ZeroChannels);
        }
        for (channel, (m, s)) in means.iter().zip(&stds).enumerate() {
            if !m.is_finite() || !s.is_finite() || *s <= 0.0 {
                return Err(NormalizeError::BadValue { channel });
            }
        }
        Ok(Self { means, stds })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.means.len()
    }

    /// Per-channel means.
    pub fn means(&self) -> &[f32] {
        &self.means
    }

    /// Per-channel standard deviations (never 0).
    pub fn stds(&self) -> &[f32] {
        &self.stds
    }

    /// Standardises `values` (timestep-major, a multiple of the channel count) in place.
    pub fn apply(&self, values: &mut [f32]) -> Result<(), NormalizeError> {
        let c = self.channels();
        if !values.len().is_multiple_of(c) {
            return Err(NormalizeError::Ragged { index: 0, len: values.len(), channels: c });
        }
        for step in values.chunks_exact_mut(c) {
            for ((x, m), s) in step.iter_mut().zip(&self.means).zip(&self.stds) {
                *x = (*x - m) / s;
            }
        }
        Ok(())
    }

    /// Standardises every sample of `dataset` in place.
    pub fn apply_dataset(&self, dataset: &mut Dataset) -> Result<(), NormalizeError> {
        if dataset.channels() != Some(self.channels()) {
            return Err(NormalizeError::WrongData { channels: self.channels() });
        }
        for s in &mut dataset.samples {
            if let Some(v) = s.values_mut() {
                self.apply(v)?;
            }
        }
        Ok(())
    }

    /// The serialised form (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * self.channels());
        out.extend_from_slice(&(self.channels() as u32).to_le_bytes());
        for v in self.means.iter().chain(&self.stds) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads the serialised form; never panics, allocates only after the length checks out.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NormalizeError> {
        let Some((head, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(NormalizeError::BadLength { len: bytes.len(), expected: 0 });
        };
        let c = u32::from_le_bytes(*head) as usize;
        if c == 0 {
            return Err(NormalizeError::ZeroChannels);
        }
        let expected = 4 + 8 * c as u64;
        if bytes.len() as u64 != expected {
            return Err(NormalizeError::BadLength { len: bytes.len(), expected });
        }
        let floats: Vec<f32> =
            rest.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let (means, stds) = floats.split_at(c);
        Self::from_stats(means.to_vec(), stds.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_std_and_zero_guard() {
        // Channel 0: 1, 3 -> mean 2, std 1. Channel 1 constant 5 -> std guarded to 1.
        let a = [1.0f32, 5.0];
        let b = [3.0f32, 5.0];
        let n = Normalizer::fit(2, [&a[..], &b[..]]).unwrap();
        assert_eq!(n.means(), [2.0, 5.0]);
        assert_eq!(n.stds(), [1.0, 1.0]);
        let mut x = [4.0f32, 6.0, 0.0, 5.0];
        n.apply(&mut x).unwrap();
        assert_eq!(x, [2.0, 1.0, -2.0, 0.0]);
    }

    #[test]
    fn round_trip_and_robust_reader() {
        let n = Normalizer::from_stats(vec![0.5, -1.0, 3.0], vec![2.0, 0.25, 1.0]).unwrap();
        let b = n.to_bytes();
        assert_eq!(b.len(), 4 + 8 * 3);
        assert_eq!(Normalizer::from_bytes(&b).unwrap(), n);
        for k in 0..b.len() {
            assert!(Normalizer::from_bytes(&b[..k]).is_err());
        }
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 8]);
        assert!(matches!(Normalizer::from_bytes(&huge), Err(NormalizeError::BadLength { .. })));
        let mut bad = b.clone();
        bad[4 + 12..4 + 16].copy_from_slice(&0f32.to_le_bytes()); // std of channel 0 = 0
        assert_eq!(Normalizer::from_bytes(&bad), Err(NormalizeError::BadValue { channel: 0 }));
        let mut nan = b;
        nan[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(Normalizer::from_bytes(&nan), Err(NormalizeError::BadValue { channel: 0 }));
    }

    #[test]
    fn errors() {
        assert_eq!(Normalizer::fit(0, Vec::<&[f32]>::new()), Err(NormalizeError::ZeroChannels));
        assert_eq!(Normalizer::fit(2, Vec::<&[f32]>::new()), Err(NormalizeError::NoData));
        let odd = [1.0f32, 2.0, 3.0];
        assert!(matches!(Normalizer::fit(2, [&odd[..]]), Err(NormalizeError::Ragged { .. })));
        let inf = [f32::INFINITY, 0.0];
        assert_eq!(Normalizer::fit(2, [&inf[..]]), Err(NormalizeError::NonFinite { index: 0 }));
    }
}
