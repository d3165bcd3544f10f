//! Classification metrics from predictions: accuracy, per-class precision/recall/F1 with macro
//! averages, the confusion matrix, ROC AUC for binary tasks and log loss.
//!
//! Conventions (those of scikit-learn with `zero_division=0`):
//! * precision of a class never predicted, recall of a class absent from `y_true`, and F1 when
//!   both are 0, are **0** (not NaN); F1 is `2·tp / (2·tp + fp + fn)`;
//! * macro averages are the unweighted mean over the classes that occur in `y_true` or `y_pred`
//!   (scikit-learn's default label set); per-class values are reported for all `K` classes;
//! * the confusion matrix is indexed `[true][pred]`;
//! * for a binary task, Keras's `Precision()`/`Recall()` metrics are the per-class values of
//!   class 1.
//!
//! ROC AUC is the Mann–Whitney statistic with average ranks for tied scores, which equals the
//! area under the ROC curve drawn with the trapezoid rule; it is undefined (`None`) when only one
//! class occurs. All sums are in `f64`.
use serde::{Deserialize, Serialize};
use tinylstm::Head;

/// Predicted classes from head outputs `[N][K]`.
pub fn predicted_classes(head: Head, outputs: usize, out: &[f32]) -> Vec<u32> {
    if outputs == 1 {
        out.iter().map(|&p| u32::from(p >= 0.5)).collect()
    } else {
        debug_assert!(head != Head::Linear);
        argmax_rows(out, outputs)
    }
}

/// Probabilities are clipped to `[EPSILON, 1 − EPSILON]` in log losses (Keras's `epsilon()`).
pub const EPSILON: f64 = 1e-7;

/// Invalid metric inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Inputs of different lengths.
    #[error("{what}: {left} labels but {right} predictions")]
    LengthMismatch {
        /// Which metric.
        what: &'static str,
        /// Number of true labels.
        left: usize,
        /// Number of predictions (or scores, or probabilities / classes).
        right: usize,
    },
    /// No samples.
    #[error("{0}: no samples")]
    Empty(&'static str),
    /// Zero classes.
    #[error("the class count must be at least 1")]
    ZeroClasses,
    /// A label or prediction is not below the class count.
    #[error("sample {index}: class {class} out of range for {num_classes} classes")]
    ClassOutOfRange {
        /// Sample position.
        index: usize,
        /// The class.
        class: u32,
        /// The class count.
        num_classes: usize,
    },
    /// A binary label is not 0 or 1.
    #[error("sample {index}: label {label} is not 0 or 1")]
    NotBinary {
        /// Sample position.
        index: usize,
        /// The label.
        label: u32,
    },
    /// A score or probability is NaN (or a probability is outside [0, 1]).
    #[error("sample {index}: score or probability is NaN or out of range")]
    BadScore {
        /// Sample position.
        index: usize,
    },
}

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    num_classes: usize,
    /// Row-major `[true][pred]`.
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// Counts the pairs; every label and prediction must be `< num_classes`.
    pub fn new(y_true: &[u32], y_pred: &[u32], num_classes: usize) -> Result<Self, MetricsError> {
        if num_classes == 0 {
            return Err(MetricsError::ZeroClasses);
        }
        same_len("confusion matrix", y_true.len(), y_pred.len())?;
        let mut counts = vec![0u64; num_classes * num_classes];
        for (index, (&t, &p)) in y_true.iter().zip(y_pred).enumerate() {
            for class in [t, p] {
                if class as usize >= num_classes {
                    return Err(MetricsError::ClassOutOfRange { index, class, num_classes });
                }
            }
            counts[t as usize * num_classes + p as usize] += 1;
        }
        Ok(Self { num_classes, counts })
    }

    /// Number of classes `K`.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Samples of class `truth` predicted as `pred` (0 when out of range).
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        if truth < self.num_classes && pred < self.num_classes {
            self.counts[truth * self.num_classes + pred]
        } else {
            0
        }
    }

    /// The matrix as rows `[true][pred]`.
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts.chunks(self.num_classes).map(<[u64]>::to_vec).collect()
    }

    /// Total number of samples.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Number of correct predictions (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.num_classes).map(|k| self.get(k, k)).sum()
    }
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// `tp / (tp + fp)`, 0 when nothing was predicted as this class.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when the class does not occur.
    pub recall: f64,
    /// `2·tp / (2·tp + fp + fn)`, 0 when that is 0/0.
    pub f1: f64,
    /// Samples of this class in `y_true`.
    pub support: u64,
    /// Samples predicted as this class.
    pub predicted: u64,
}

/// Everything [`classification_report`] computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Per class, indexed by class.
    pub per_class: Vec<ClassMetrics>,
    /// Mean precision over the classes occurring in `y_true` or `y_pred`.
    pub macro_precision: f64,
    /// Mean recall over the classes occurring in `y_true` or `y_pred`.
    pub macro_recall: f64,
    /// Mean F1 over the classes occurring in `y_true` or `y_pred`.
    pub macro_f1: f64,
    /// The confusion matrix `[true][pred]`.
    pub confusion: ConfusionMatrix,
}

fn same_len(what: &'static str, left: usize, right: usize) -> Result<(), MetricsError> {
    if left == right {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch { what, left, right })
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Fraction of positions where `y_pred` equals `y_true`.
pub fn accuracy(y_true: &[u32], y_pred: &[u32]) -> Result<f64, MetricsError> {
    same_len("accuracy", y_true.len(), y_pred.len())?;
    if y_true.is_empty() {
        return Err(MetricsError::Empty("accuracy"));
    }
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / y_true.len() as f64)
}

/// Accuracy, per-class and macro precision/recall/F1 and the confusion matrix.
pub fn classification_report(
    y_true: &[u32],
    y_pred: &[u32],
    num_classes: usize,
) -> Result<ClassificationReport, MetricsError> {
    let confusion = ConfusionMatrix::new(y_true, y_pred, num_classes)?;
    if y_true.is_empty() {
        return Err(MetricsError::Empty("classification report"));
    }
    let k = num_classes;
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion.get(c, c);
            let support: u64 = (0..k).map(|p| confusion.get(c, p)).sum();
            let predicted: u64 = (0..k).map(|t| confusion.get(t, c)).sum();
            let (fp, fn_) = (predicted - tp, support - tp);
            ClassMetrics {
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                f1: ratio(2 * tp, 2 * tp + fp + fn_),
                support,
                predicted,
            }
        })
        .collect();
    let present: Vec<&ClassMetrics> =
        per_class.iter().filter(|m| m.support > 0 || m.predicted > 0).collect();
    let mean = |f: fn(&ClassMetrics) -> f64| -> f64 {
        present.iter().map(|m| f(m)).sum::<f64>() / present.len().max(1) as f64
    };
    Ok(ClassificationReport {
        accuracy: ratio(confusion.correct(), confusion.total()),
        macro_precision: mean(|m| m.precision),
        macro_recall: mean(|m| m.recall),
        macro_f1: mean(|m| m.f1),
        per_class,
        confusion,
    })
}

/// ROC AUC of `scores` (higher = more likely class 1) against binary labels (0 or 1).
/// `Ok(None)` when only one class occurs. Ties get average ranks.
pub fn roc_auc(y_true: &[u32], scores: &[f32]) -> Result<Option<f64>, MetricsError> {
    same_len("ROC AUC", y_true.len(), scores.len())?;
    for (index, (&label, s)) in y_true.iter().zip(scores).enumerate() {
        if label > 1 {
            return Err(MetricsError::NotBinary { index, label });
        }
        if s.is_nan() {
            return Err(MetricsError::BadScore { index });
        }
    }
    let n_pos = y_true.iter().filter(|&&l| l == 1).count();
    let n_neg = y_true.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0f64;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        // -0.0 and 0.0 are adjacent in the total order and equal here, so they tie.
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // 1-based ranks start+1 ..= end share their mean.
        let avg_rank = (start + 1 + end) as f64 / 2.0;
        let pos_in_group = order[start..end].iter().filter(|&&i| y_true[i] == 1).count();
        rank_sum_pos += avg_rank * pos_in_group as f64;
        start = end;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Ok(Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n)))
}

/// Checks binary labels and scores as [`roc_auc`] does; `Ok(None)` when one class is absent.
fn binary_order(y_true: &[u32], scores: &[f32]) -> Result<Option<Vec<usize>>, MetricsError> {
    same_len("ROC curve", y_true.len(), scores.len())?;
    for (index, (&label, s)) in y_true.iter().zip(scores).enumerate() {
        if label > 1 {
            return Err(MetricsError::NotBinary { index, label });
        }
        if s.is_nan() {
            return Err(MetricsError::BadScore { index });
        }
    }
    let n_pos = y_true.iter().filter(|&&l| l == 1).count();
    if n_pos == 0 || n_pos == y_true.len() {
        return Ok(None);
    }
    // Highest score first: lowering the threshold admits samples in this order.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    Ok(Some(order))
}

/// `(true positives, false positives)` after each distinct threshold, highest first (tied
/// scores enter together).
fn threshold_counts(y_true: &[u32], scores: &[f32], order: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if y_true[order[i]] == 1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.push((tp, fp));
    }
    out
}

/// The ROC curve of class-1 scores: `(false positive rate, true positive rate)` from `(0, 0)`
/// through every distinct threshold (highest first) to `(1, 1)`, as scikit-learn's `roc_curve`
/// with `drop_intermediate=False`. `Ok(None)` when one class is absent.
pub fn roc_curve(y_true: &[u32], scores: &[f32]) -> Result<Option<Vec<(f64, f64)>>, MetricsError> {
    let Some(order) = binary_order(y_true, scores)? else { return Ok(None) };
    let p = y_true.iter().filter(|&&l| l == 1).count() as f64;
    let n = y_true.len() as f64 - p;
    let mut points = vec![(0.0, 0.0)];
    points.extend(
        threshold_counts(y_true, scores, &order)
            .into_iter()
            .map(|(tp, fp)| (fp as f64 / n, tp as f64 / p)),
    );
    Ok(Some(points))
}

/// The precision–recall curve of class-1 scores: `(recall, precision)` at every distinct
/// threshold (highest first), starting from `(0, 1)` as scikit-learn's curve ends.
/// `Ok(None)` when one class is absent.
pub fn precision_recall_curve(
    y_true: &[u32],
    scores: &[f32],
) -> Result<Option<Vec<(f64, f64)>>, MetricsError> {
    let Some(order) = binary_order(y_true, scores)? else { return Ok(None) };
    let p = y_true.iter().filter(|&&l| l == 1).count() as f64;
    let mut points = vec![(0.0, 1.0)];
    points.extend(
        threshold_counts(y_true, scores, &order)
            .into_iter()
            .map(|(tp, fp)| (tp as f64 / p, tp as f64 / (tp + fp) as f64)),
    );
    Ok(Some(points))
}

/// Mean binary cross-entropy of probabilities `probs` (of class 1) against labels 0/1, with the
/// probabilities clipped to `[EPSILON, 1 − EPSILON]` as Keras does.
pub fn binary_log_loss(y_true: &[u32], probs: &[f32]) -> Result<f64, MetricsError> {
    same_len("log loss", y_true.len(), probs.len())?;
    if y_true.is_empty() {
        return Err(MetricsError::Empty("log loss"));
    }
    let mut sum = 0f64;
    for (index, (&label, &p)) in y_true.iter().zip(probs).enumerate() {
        if label > 1 {
            return Err(MetricsError::NotBinary { index, label });
        }
        if !(0.0..=1.0).contains(&p) {
            return Err(MetricsError::BadScore { index });
        }
        let p = f64::from(p).clamp(EPSILON, 1.0 - EPSILON);
        sum -= if label == 1 { p.ln() } else { (1.0 - p).ln() };
    }
    Ok(sum / y_true.len() as f64)
}

/// Mean sparse categorical cross-entropy: `probs` holds `num_classes` probabilities per sample,
/// row after row; the true class's probability is clipped to `[EPSILON, 1 − EPSILON]`.
pub fn categorical_log_loss(
    y_true: &[u32],
    probs: &[f32],
    num_classes: usize,
) -> Result<f64, MetricsError> {
    if num_classes == 0 {
        return Err(MetricsError::ZeroClasses);
    }
    same_len("log loss", y_true.len() * num_classes, probs.len())?;
    if y_true.is_empty() {
        return Err(MetricsError::Empty("log loss"));
    }
    let mut sum = 0f64;
    for (index, (&class, row)) in y_true.iter().zip(probs.chunks_exact(num_classes)).enumerate() {
        let p = *row.get(class as usize).ok_or(MetricsError::ClassOutOfRange {
            index,
            class,
            num_classes,
        })?;
        if !(0.0..=1.0).contains(&p) {
            return Err(MetricsError::BadScore { index });
        }
        sum -= f64::from(p).clamp(EPSILON, 1.0 - EPSILON).ln();
    }
    Ok(sum / y_true.len() as f64)
}

/// Index of the largest value of each row of `num_classes` scores (first on ties; NaN never
/// wins). Returns an empty vector when `num_classes` is 0.
pub fn argmax_rows(scores: &[f32], num_classes: usize) -> Vec<u32> {
    if num_classes == 0 {
        return Vec::new();
    }
    scores
        .chunks_exact(num_classes)
        .map(|row| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] || row[best].is_nan() && !v.is_nan() {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_auc(y: &[u32], s: &[f32]) -> Option<f64> {
        let (mut num, mut den) = (0f64, 0f64);
        for (i, &yi) in y.iter().enumerate() {
            for (j, &yj) in y.iter().enumerate() {
                if yi == 1 && yj == 0 {
                    den += 1.0;
                    if s[i] > s[j] {
                        num += 1.0;
                    } else if s[i] == s[j] {
                        num += 0.5;
                    }
                }
            }
        }
        (den > 0.0).then_some(num / den)
    }

    #[test]
    fn hand_computed_binary_report() {
        // tp=2 fp=1 fn=1 tn=2 for class 1.
        let y = [1, 1, 1, 0, 0, 0];
        let p = [1, 1, 0, 1, 0, 0];
        let r = classification_report(&y, &p, 2).unwrap();
        assert_eq!(r.confusion.rows(), [vec![2, 1], vec![1, 2]]);
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
        let c1 = r.per_class[1];
        assert!((c1.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((c1.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((c1.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((c1.support, c1.predicted), (3, 3));
    }

    #[test]
    fn zero_division_is_zero_and_macro_over_present_classes() {
        // Class 2 never occurs nor is predicted: excluded from macro averages.
        // Class 1 is never predicted: precision 0 (0/0), recall 0, F1 0.
        let y = [0, 0, 1, 1];
        let p = [0, 0, 0, 0];
        let r = classification_report(&y, &p, 3).unwrap();
        assert_eq!(r.per_class[1].precision, 0.0);
        assert_eq!(r.per_class[1].f1, 0.0);
        assert_eq!(
            r.per_class[2],
            ClassMetrics { precision: 0.0, recall: 0.0, f1: 0.0, support: 0, predicted: 0 }
        );
        // Class 0: precision 0.5, recall 1, F1 2/3.
        assert!((r.macro_precision - 0.25).abs() < 1e-12);
        assert!((r.macro_recall - 0.5).abs() < 1e-12);
        assert!((r.macro_f1 - (2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn auc_hand_cases() {
        assert_eq!(roc_auc(&[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8]).unwrap(), Some(0.75));
        assert_eq!(roc_auc(&[0, 1], &[0.5, 0.5]).unwrap(), Some(0.5));
        assert_eq!(roc_auc(&[1, 1], &[0.5, 0.2]).unwrap(), None);
        assert_eq!(roc_auc(&[0, 1], &[-0.0, 0.0]).unwrap(), Some(0.5));
        assert!(matches!(roc_auc(&[0, 2], &[0.1, 0.2]), Err(MetricsError::NotBinary { .. })));
        assert!(matches!(roc_auc(&[0, 1], &[f32::NAN, 0.2]), Err(MetricsError::BadScore { .. })));
    }

    #[test]
    fn auc_matches_brute_force_pairs() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
        for case in 0..300 {
            let n = rng.random_range(1..40);
            let levels = if case % 2 == 0 { 4 } else { 1000 }; // many ties, then few
            let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..2)).collect();
            let s: Vec<f32> = (0..n).map(|_| rng.random_range(0..levels) as f32 / 7.0).collect();
            let fast = roc_auc(&y, &s).unwrap();
            let slow = brute_auc(&y, &s);
            match (fast, slow) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "case {case}: {a} vs {b}"),
                (a, b) => assert_eq!(a, b, "case {case}"),
            }
        }
    }

    #[test]
    fn log_losses() {
        let l = binary_log_loss(&[1, 0], &[0.8, 0.4]).unwrap();
        assert!((l - (-(0.8f64.ln()) - 0.6f64.ln()) / 2.0).abs() < 1e-6);
        // Clipping keeps a confident mistake finite.
        let l = binary_log_loss(&[1], &[0.0]).unwrap();
        assert!((l + EPSILON.ln()).abs() < 1e-9);
        let l = categorical_log_loss(&[2, 0], &[0.1, 0.2, 0.7, 0.5, 0.25, 0.25], 3).unwrap();
        assert!((l - (-(0.7f64.ln()) - 0.5f64.ln()) / 2.0).abs() < 1e-6);
        assert!(categorical_log_loss(&[3], &[0.1, 0.2, 0.7], 3).is_err());
        assert!(binary_log_loss(&[1], &[1.5]).is_err());
    }

    #[test]
    fn argmax_and_errors() {
        assert_eq!(argmax_rows(&[0.1, 0.7, 0.2, 0.5, 0.5, 0.0], 3), [1, 0]);
        assert_eq!(argmax_rows(&[f32::NAN, 0.1], 2), [1]);
        assert!(matches!(accuracy(&[0], &[0, 1]), Err(MetricsError::LengthMismatch { .. })));
        assert_eq!(accuracy(&[], &[]), Err(MetricsError::Empty("accuracy")));
        assert!(matches!(
            ConfusionMatrix::new(&[0, 4], &[0, 0], 3),
            Err(MetricsError::ClassOutOfRange { index: 1, class: 4, .. })
        ));
    }

    /// Hand-computed: scores 0.9 (1), 0.8 (0), 0.7 (1), 0.1 (0). Thresholds admit one sample
    /// each: TP/FP = 1/0, 1/1, 2/1, 2/2.
    #[test]
    fn roc_and_pr_curves_by_hand() {
        let y = [1, 0, 1, 0];
        let s = [0.9f32, 0.8, 0.7, 0.1];
        let roc = roc_curve(&y, &s).unwrap().unwrap();
        assert_eq!(roc, [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let pr = precision_recall_curve(&y, &s).unwrap().unwrap();
        assert_eq!(pr, [(0.0, 1.0), (0.5, 1.0), (0.5, 0.5), (1.0, 2.0 / 3.0), (1.0, 0.5)]);
        // Ties enter together.
        let roc = roc_curve(&[1, 0], &[0.5, 0.5]).unwrap().unwrap();
        assert_eq!(roc, [(0.0, 0.0), (1.0, 1.0)]);
        assert!(roc_curve(&[1, 1], &[0.5, 0.4]).unwrap().is_none());
        assert!(roc_curve(&[2, 0], &[0.5, 0.4]).is_err());
    }

    /// The area under the ROC points (trapezoids) equals the rank-statistic AUC, computed
    /// another way, on random scores with ties.
    #[test]
    fn roc_curve_area_equals_rank_auc() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
        for _ in 0..50 {
            let n = rng.random_range(2..60usize);
            let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..2u32)).collect();
            let s: Vec<f32> = (0..n).map(|_| rng.random_range(0..8u32) as f32 / 8.0).collect();
            let Some(roc) = roc_curve(&y, &s).unwrap() else { continue };
            let area: f64 =
                roc.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
            let auc = roc_auc(&y, &s).unwrap().unwrap();
            assert!((area - auc).abs() < 1e-12, "{area} vs {auc}");
        }
    }
}
