//! Training history: per-epoch figures ([`EpochStats`]), the progress a checkpoint stores
//! ([`TrainState`]), and their files (`history.json`, `history.csv`, loss and metric curves).

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (with penalties), as Keras reports it.
    #[serde(with = "float_text")]
    pub loss: f64,
    /// Training accuracy over the epoch (classification).
    #[serde(default, with = "float_text::option")]
    pub accuracy: Option<f64>,
    /// Validation loss (with penalties, as Keras reports `val_loss`).
    #[serde(default, with = "float_text::option")]
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    #[serde(default, with = "float_text::option")]
    pub val_accuracy: Option<f64>,
    /// Learning rate at the epoch's last step.
    #[serde(with = "float_text")]
    pub lr: f64,
    /// Wall time of the epoch's training steps, seconds.
    #[serde(with = "float_text")]
    pub seconds: f64,
    /// Training throughput, samples per second.
    #[serde(with = "float_text")]
    pub samples_per_sec: f64,
}

/// Training progress stored in a checkpoint, for `--resume`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub iteration: u32,
    /// Best monitored value so far and its epoch (1-based); always finite (a file whose best
    /// value is not a finite number reads as "no best yet").
    #[serde(default, with = "float_text::best")]
    pub best: Option<(f64, usize)>,
    /// Epochs since the last improvement.
    pub wait: usize,
    /// Per-epoch records so far.
    pub history: Vec<EpochStats>,
    /// An epoch stopped between two batches (an interrupted run), continued on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

/// Where an epoch stopped between two batches stands: enough to continue it exactly as if it
/// had not stopped. The epoch's sample order is not stored: it follows from the seed and the
/// epoch number. Floats are stored as their bit patterns, so they read back exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// The 1-based epoch (`epochs_done + 1`).
    pub epoch: usize,
    /// Batches of it done.
    pub batches: usize,
    /// Batch size and training samples it was cut with; resuming with others is refused.
    pub batch_size: usize,
    /// Training samples.
    pub samples: usize,
    /// Sum of the done batches' losses, `f64::to_bits`.
    pub loss_sum_bits: u64,
    /// Wall time of the done batches, seconds.
    pub seconds: f64,
    /// The training outputs buffer `[samples][outputs]` (done batches' samples hold this
    /// epoch's outputs), `f32::to_bits`; training accuracy is computed from it at the end.
    pub outputs_bits: Vec<u32>,
}

/// Serialising floats so that every value reads back: a finite value is a JSON number,
/// NaN and ±∞ (which JSON has no numbers for, and `serde_json` would write as `null`) are the
/// strings `"NaN"`, `"inf"` and `"-inf"`. Reading accepts numbers, those strings and `null`
/// (older files: NaN for a plain value, "absent" for an optional one).
pub mod float_text {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Text(String),
    }

    fn parse<E: serde::de::Error>(r: Option<Repr>) -> Result<f64, E> {
        match r {
            None => Ok(f64::NAN),
            Some(Repr::Num(x)) => Ok(x),
            Some(Repr::Text(t)) => match t.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "inf" | "+inf" | "Infinity" => Ok(f64::INFINITY),
                "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
                _ => Err(E::custom(format!("{t:?} is not a number (nor NaN, inf, -inf)"))),
            },
        }
    }

    fn text(v: f64) -> &'static str {
        if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "inf"
        } else {
            "-inf"
        }
    }

    /// Writes `v` (a number, or `"NaN"`/`"inf"`/`"-inf"`).
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_str(text(*v))
        }
    }

    /// Reads a number, `"NaN"`/`"inf"`/`"-inf"`, or `null` (NaN).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        parse(Option::<Repr>::deserialize(d)?)
    }

    /// The same for `Option<f64>` (`null` is `None`).
    pub mod option {
        use super::*;

        /// Writes `None` as `null`, a value as [`super::serialize`].
        pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(x) => super::serialize(x, s),
                None => s.serialize_none(),
            }
        }

        /// Reads `null` as `None`, anything else as [`super::deserialize`].
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            match Option::<Repr>::deserialize(d)? {
                None => Ok(None),
                r => parse(r).map(Some),
            }
        }
    }

    /// The best value and its epoch: `[value, epoch]` or `null`; a value that is not finite
    /// (never written now; `null` in older files) reads as `None`.
    pub mod best {
        use super::*;
        use serde::ser::SerializeTuple;

        /// Writes `[value, epoch]` or `null`.
        pub fn serialize<S: Serializer>(v: &Option<(f64, usize)>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                None => s.serialize_none(),
                Some((x, e)) => {
                    struct F(f64);
                    impl serde::Serialize for F {
                        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                            super::serialize(&self.0, s)
                        }
                    }
                    let mut t = s.serialize_tuple(2)?;
                    t.serialize_element(&F(*x))?;
                    t.serialize_element(e)?;
                    t.end()
                }
            }
        }

        /// Reads `[value, epoch]` (value as [`super::deserialize`]) or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<(f64, usize)>, D::Error> {
            let Some((r, e)) = Option::<(Option<Repr>, usize)>::deserialize(d)? else {
                return Ok(None);
            };
            let x: f64 = parse::<D::Error>(r)?;
            Ok(x.is_finite().then_some((x, e)))
        }
    }
}

/// A loss or metric value for the console: four decimals, or scientific notation when it is
/// large (≥ 10⁴) or small (< 10⁻³ but not 0), so a diverging or a tiny loss stays readable.
pub fn format_loss(v: f64) -> String {
    let a = v.abs();
    if a.is_finite() && (a >= 1e4 || (a < 1e-3 && a > 0.0)) {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

/// Writes `history.json` and `history.csv`.
pub fn write_history(dir: &Path, history: &[EpochStats]) -> Result<()> {
    let json = serde_json::to_vec_pretty(history)?;
    crate::files::write_atomic(&dir.join("history.json"), &json)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
        "samples_per_sec",
    ])?;
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for h in history {
        w.write_record([
            h.epoch.to_string(),
            h.loss.to_string(),
            opt(h.accuracy),
            opt(h.val_loss),
            opt(h.val_accuracy),
            h.lr.to_string(),
            h.seconds.to_string(),
            h.samples_per_sec.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow!("history.csv: {e}"))?;
    crate::files::write_atomic(&dir.join("history.csv"), &bytes)?;
    Ok(())
}

/// Writes the loss and metric curves (`loss.svg`/`.png`, …) with the best epoch marked.
pub fn write_history_plots(
    dir: &Path,
    history: &[EpochStats],
    best: Option<usize>,
) -> Result<Vec<PathBuf>> {
    let col = |f: fn(&EpochStats) -> Option<f64>| -> Vec<f64> {
        history.iter().map(|h| f(h).unwrap_or(f64::NAN)).collect()
    };
    let loss = col(|h| Some(h.loss));
    let val_loss = col(|h| h.val_loss);
    let acc = col(|h| h.accuracy);
    let val_acc = col(|h| h.val_accuracy);
    let mut metrics = Vec::new();
    if acc.iter().any(|v| v.is_finite()) {
        metrics.push(("accuracy", acc.as_slice(), val_acc.as_slice()));
    }
    let view =
        crate::plots::HistoryView { loss: &loss, val_loss: &val_loss, metrics, best_epoch: best };
    let mut written = crate::plots::training_curves(dir, &view)?;
    if spans_decades(loss.iter().chain(&val_loss)) {
        let log = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x.log10()).collect() };
        let (log_loss, log_val) = (log(&loss), log(&val_loss));
        written.extend(crate::plots::curves_with_best_epoch(
            &dir.join("loss_log"),
            "Training and validation loss (log scale)",
            "log10(loss)",
            "epoch",
            &[
                crate::plots::Series { name: "training", values: &log_loss },
                crate::plots::Series { name: "validation", values: &log_val },
            ],
            best,
        )?);
    }
    Ok(written)
}

/// Whether the finite positive values span at least two decades (largest ≥ 100 × smallest):
/// then a log-scale loss picture is written too (`loss_log.svg`/`.png`).
pub fn spans_decades<'a>(values: impl IntoIterator<Item = &'a f64>) -> bool {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for &v in values {
        if v.is_finite() && v > 0.0 {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    hi > 0.0 && hi >= 100.0 * lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_print_in_scientific_notation_when_large_or_tiny() {
        assert_eq!(format_loss(0.5432), "0.5432");
        assert_eq!(format_loss(123.45678), "123.4568");
        assert_eq!(format_loss(12345.678), "1.2346e4");
        assert_eq!(format_loss(0.000_012_34), "1.2340e-5");
        assert_eq!(format_loss(0.0), "0.0000");
        assert_eq!(format_loss(f64::NAN), "NaN");
    }

    #[test]
    fn decades() {
        assert!(spans_decades(&[5.0, 0.05]));
        assert!(!spans_decades(&[5.0, 0.06, f64::NAN, 0.0, -1.0]));
        assert!(!spans_decades(&[]));
    }
}
