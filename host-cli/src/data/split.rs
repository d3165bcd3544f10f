//! Seeded, stratified train/validation/test splits.
//!
//! **Per class** (classes in ascending order), the indices of that class's samples (in file
//! order) are shuffled with a PCG-64 generator (`rand_pcg::Pcg64`) seeded from the split seed and
//! the class label (`seed_from_u64(seed ^ (class × 0x9E37_79B9_7F4A_7C15))`), then the first
//! `round(train × n)` go to training, the next `round(valid × n)` to validation and the rest to
//! the test split (rounding half away from zero; validation is clamped so the counts never exceed
//! `n`). With the default 0.8/0.1 a class of 10 gives exactly 8/1/1. Each returned split is sorted
//! in ascending sample order (the training loop shuffles per epoch).
//!
//! The result depends only on the labels, fractions and seed: PCG-64 and `rand`'s `shuffle`
//! draw 32-bit bounded integers whatever the pointer width, so it is the same on every platform
//! (the pinned permutations in this module's tests and in `tests/tests/data_pipeline.rs` would
//! catch a change of `rand` version that altered it).
//!
//! When a data set comes with its own test file, [`stratified_holdout`] carves the validation
//! split out of the training file instead: per class `round(valid × n)` samples go to validation
//! (default `1/9`, so 8:1 of the training file mirrors 8:1:1).
//! For real-valued labels (regression) use [`random_split`], the same procedure with one class.
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

/// Fractions of each class that go to training and validation; the rest is the test split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFractions {
    /// Training fraction (default 0.8).
    pub train: f64,
    /// Validation fraction (default 0.1).
    pub valid: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        Self { train: 0.8, valid: 0.1 }
    }
}

/// Default validation fraction carved out of a training file that has its own test file.
pub const DEFAULT_HOLDOUT: f64 = 1.0 / 9.0;

/// Sample indices of each split, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    /// Training samples.
    pub train: Vec<usize>,
    /// Validation samples.
    pub valid: Vec<usize>,
    /// Test samples (empty for [`stratified_holdout`]).
    pub test: Vec<usize>,
}

/// Invalid split settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// A fraction is negative or not finite, or train + valid exceeds 1.
    #[error("invalid split fractions train {train}, valid {valid}: each must be in [0, 1] and their sum at most 1")]
    BadFractions {
        /// Training fraction.
        train: f64,
        /// Validation fraction.
        valid: f64,
    },
}

fn class_rng(seed: u64, class: u32) -> Pcg64 {
    Pcg64::seed_from_u64(seed ^ u64::from(class).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn check(train: f64, valid: f64) -> Result<(), SplitError> {
    let ok = |f: f64| f.is_finite() && (0.0..=1.0).contains(&f);
    if ok(train) && ok(valid) && train + valid <= 1.0 + 1e-12 {
        Ok(())
    } else {
        Err(SplitError::BadFractions { train, valid })
    }
}

/// Groups sample indices by class, classes ascending, indices in sample order.
fn by_class(labels: &[u32]) -> Vec<(u32, Vec<usize>)> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| labels[i]);
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some((c, g)) if *c == labels[i] => g.push(i),
            _ => groups.push((labels[i], vec![i])),
        }
    }
    groups
}

fn round_count(fraction: f64, n: usize) -> usize {
    ((fraction * n as f64).round() as usize).min(n)
}

/// Stratified split of samples with these class labels (see the module docs).
pub fn stratified_split(
    labels: &[u32],
    fractions: SplitFractions,
    seed: u64,
) -> Result<Split, SplitError> {
    check(fractions.train, fractions.valid)?;
    let mut split = Split::default();
    for (class, mut idx) in by_class(labels) {
        idx.shuffle(&mut class_rng(seed, class));
        let n = idx.len();
        let n_train = round_count(fractions.train, n);
        let n_valid = round_count(fractions.valid, n).min(n - n_train);
        split.train.extend_from_slice(&idx[..n_train]);
        split.valid.extend_from_slice(&idx[n_train..n_train + n_valid]);
        split.test.extend_from_slice(&idx[n_train + n_valid..]);
    }
    split.train.sort_unstable();
    split.valid.sort_unstable();
    split.test.sort_unstable();
    Ok(split)
}

/// Stratified training/validation split of a training file whose test split is a separate
/// file: per class `round(valid × n)` samples go to validation, the rest to training; `test`
/// stays empty. Use [`DEFAULT_HOLDOUT`] (1/9) for the 8:1 ratio of the default split.
pub fn stratified_holdout(labels: &[u32], valid: f64, seed: u64) -> Result<Split, SplitError> {
    check(0.0, valid)?;
    let mut split = Split::default();
    for (class, mut idx) in by_class(labels) {
        idx.shuffle(&mut class_rng(seed, class));
        let n_valid = round_count(valid, idx.len());
        split.valid.extend_from_slice(&idx[..n_valid]);
        split.train.extend_from_slice(&idx[n_valid..]);
    }
    split.train.sort_unstable();
    split.valid.sort_unstable();
    Ok(split)
}

/// Unstratified split of `n` samples (e.g. for regression): [`stratified_split`] with one class.
pub fn random_split(n: usize, fractions: SplitFractions, seed: u64) -> Result<Split, SplitError> {
    stratified_split(&vec![0; n], fractions, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_per_class_gives_8_1_1() {
        let labels: Vec<u32> = (0..30).map(|i| i % 3).collect();
        let s = stratified_split(&labels, SplitFractions::default(), 7).unwrap();
        assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (24, 3, 3));
        for c in 0..3 {
            let count = |v: &[usize]| v.iter().filter(|&&i| labels[i] == c).count();
            assert_eq!((count(&s.train), count(&s.valid), count(&s.test)), (8, 1, 1));
        }
        let mut all: Vec<usize> = s.train.iter().chain(&s.valid).chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn pinned_permutation() {
        // Guards the cross-platform, cross-version stability of the split.
        let labels: Vec<u32> = (0..20).map(|i| i % 2).collect();
        let s = stratified_split(&labels, SplitFractions::default(), 42).unwrap();
        assert_eq!(s.valid, [4, 5]);
        assert_eq!(s.test, [6, 11]);
        assert_eq!(s.train.len(), 16);
    }

    #[test]
    fn seeds_differ_and_repeat() {
        let labels = vec![0u32; 50];
        let a = stratified_split(&labels, SplitFractions::default(), 1).unwrap();
        let b = stratified_split(&labels, SplitFractions::default(), 1).unwrap();
        let c = stratified_split(&labels, SplitFractions::default(), 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn holdout_one_ninth() {
        let labels: Vec<u32> = (0..18).map(|i| i % 2).collect();
        let s = stratified_holdout(&labels, DEFAULT_HOLDOUT, 3).unwrap();
        assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (16, 2, 0));
    }

    #[test]
    fn bad_fractions() {
        let f = SplitFractions { train: 0.9, valid: 0.2 };
        assert!(stratified_split(&[0], f, 0).is_err());
        let f = SplitFractions { train: f64::NAN, valid: 0.1 };
        assert!(stratified_split(&[0], f, 0).is_err());
        assert!(stratified_holdout(&[0], -0.1, 0).is_err());
    }

    #[test]
    fn small_classes_never_overflow() {
        for n in 0..40 {
            let labels = vec![5u32; n];
            let s =
                stratified_split(&labels, SplitFractions { train: 0.5, valid: 0.5 }, 9).unwrap();
            assert_eq!(s.train.len() + s.valid.len() + s.test.len(), n);
        }
    }
}
