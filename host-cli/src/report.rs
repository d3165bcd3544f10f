//! Evaluation reports: metrics of a model on prepared data, as a table or JSON.

use crate::metrics::predicted_classes;
use crate::metrics::{
    classification_report, precision_recall_curve, roc_auc, roc_curve, ClassificationReport,
    ConfusionMatrix,
};
use crate::plots::{PlotError, XySeries};
use crate::preprocess::{Labels, Prepared};
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tinylstm::{Head, Spec};

/// Everything `eval` reports.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Samples evaluated.
    pub samples: usize,
    /// Mean loss (with the training penalties).
    pub loss: f64,
    /// Accuracy, per-class precision/recall/F1 and macro averages (classification).
    pub classification: Option<ClassificationReport>,
    /// ROC AUC of class 1's score (binary tasks).
    pub roc_auc: Option<f64>,
    /// Mean absolute error (regression).
    pub mae: Option<f64>,
    /// Class names.
    pub class_names: Vec<String>,
    /// Forecast errors in the series' units beside the naive baselines (forecast models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::forecast::ForecastReport>,
    /// Confusion matrix `[true][pred]` (classification).
    #[serde(skip)]
    pub confusion: Option<ConfusionMatrix>,
    /// ROC curve points `(false positive rate, true positive rate)` (binary tasks).
    #[serde(skip)]
    pub roc_curve: Option<Vec<(f64, f64)>>,
    /// Precision–recall curve points `(recall, precision)` (binary tasks).
    #[serde(skip)]
    pub pr_curve: Option<Vec<(f64, f64)>>,
}

impl EvalReport {
    /// Computes the report from the model's outputs `[N][K]` on `data`.
    pub fn new(
        spec: &Spec,
        class_names: &[String],
        loss: f64,
        data: &Prepared,
        outputs: &[f32],
    ) -> Result<EvalReport> {
        let k = spec.outputs;
        let mut r = EvalReport {
            samples: data.len,
            loss,
            classification: None,
            roc_auc: None,
            mae: None,
            class_names: class_names.to_vec(),
            forecast: None,
            confusion: None,
            roc_curve: None,
            pr_curve: None,
        };
        match &data.labels {
            Labels::Classes(y) if spec.head != Head::Linear => {
                let pred = predicted_classes(spec.head, k, outputs);
                let classes = class_names.len().max(k).max(2);
                let rep = classification_report(y, &pred, classes)?;
                r.confusion = Some(rep.confusion.clone());
                r.classification = Some(rep);
                if classes == 2 {
                    let scores: Vec<f32> = if k == 1 {
                        outputs.to_vec()
                    } else {
                        outputs.chunks_exact(k).map(|row| row[1]).collect()
                    };
                    r.roc_auc = roc_auc(y, &scores)?;
                    r.roc_curve = roc_curve(y, &scores)?;
                    r.pr_curve = precision_recall_curve(y, &scores)?;
                }
            }
            Labels::Classes(y) => {
                let err: f64 =
                    y.iter().zip(outputs).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum();
                r.mae = Some(err / y.len().max(1) as f64);
            }
            Labels::Real(y) => {
                let err: f64 =
                    y.iter().zip(outputs).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum();
                r.mae = Some(err / y.len().max(1) as f64);
            }
        }
        Ok(r)
    }
}

impl EvalReport {
    /// Writes the report's pictures into `dir`: `confusion.svg`/`.png` (classification) and, for
    /// binary tasks, `roc.svg`/`.png` and `precision_recall.svg`/`.png` beside it. `title`
    /// names the data (`sms — test split`). Returns the paths written.
    pub fn write_plots(&self, dir: &Path, title: &str) -> Result<Vec<PathBuf>, PlotError> {
        let mut written = Vec::new();
        if let Some(cm) = &self.confusion {
            written.extend(crate::plots::confusion(
                &dir.join("confusion"),
                cm,
                &self.class_names,
                title,
            )?);
        }
        if let Some(points) = &self.roc_curve {
            let name = match self.roc_auc {
                Some(auc) => format!("model (AUC {auc:.4})"),
                None => "model".to_string(),
            };
            let series = [XySeries { name: &name, points }];
            written.extend(crate::plots::roc(
                &dir.join("roc"),
                &format!("ROC — {title}"),
                &series,
            )?);
        }
        if let Some(points) = &self.pr_curve {
            let series = [XySeries { name: "model", points }];
            written.extend(crate::plots::precision_recall(
                &dir.join("precision_recall"),
                &format!("Precision–recall — {title}"),
                &series,
            )?);
        }
        Ok(written)
    }
}

/// Prints the report as a human table.
pub fn print_report(r: &EvalReport) {
    crate::outln!("  loss       {}", crate::history::format_loss(r.loss));
    if let Some(c) = &r.classification {
        crate::outln!("  accuracy   {:.4}", c.accuracy);
        crate::outln!(
            "  macro P/R/F1  {:.4} / {:.4} / {:.4}",
            c.macro_precision,
            c.macro_recall,
            c.macro_f1
        );
        if let Some(auc) = r.roc_auc {
            crate::outln!("  ROC AUC    {auc:.4}");
        }
        let width = r.class_names.iter().map(|n| n.len()).max().unwrap_or(5).max(5);
        crate::outln!("  {:<width$}  precision  recall  f1      support", "class");
        for (i, m) in c.per_class.iter().enumerate() {
            let name = r.class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
            crate::outln!(
                "  {name:<width$}  {:<9.4}  {:<6.4}  {:<6.4}  {}",
                m.precision,
                m.recall,
                m.f1,
                m.support
            );
        }
        crate::outln!("  confusion matrix (rows: true, columns: predicted)");
        for (i, row) in c.confusion.rows().iter().enumerate() {
            let name = r.class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>6}")).collect();
            crate::outln!("  {name:<width$} {}", cells.join(""));
        }
    }
    if let Some(f) = &r.forecast {
        crate::forecast::print_forecast_report(f);
    } else if let Some(m) = r.mae {
        crate::outln!("  MAE        {m:.4}");
    }
}
