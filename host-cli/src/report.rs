//! Evaluation reports: metrics of a model on prepared data, as a table or JSON.

use crate::metrics::predicted_classes;
use crate::metrics::{classification_report, roc_auc, ClassificationReport, ConfusionMatrix};
use crate::preprocess::{Labels, Prepared};
use anyhow::Result;
use serde::Serialize;
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
    /// Confusion matrix `[true][pred]` (classification).
    #[serde(skip)]
    pub confusion: Option<ConfusionMatrix>,
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
            confusion: None,
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

/// Prints the report as a human table.
pub fn print_report(r: &EvalReport) {
    println!("  loss       {:.4}", r.loss);
    if let Some(c) = &r.classification {
        println!("  accuracy   {:.4}", c.accuracy);
        println!(
            "  macro P/R/F1  {:.4} / {:.4} / {:.4}",
            c.macro_precision, c.macro_recall, c.macro_f1
        );
        if let Some(auc) = r.roc_auc {
            println!("  ROC AUC    {auc:.4}");
        }
        let width = r.class_names.iter().map(|n| n.len()).max().unwrap_or(5).max(5);
        println!("  {:<width$}  precision  recall  f1      support", "class");
        for (i, m) in c.per_class.iter().enumerate() {
            let name = r.class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
            println!(
                "  {name:<width$}  {:<9.4}  {:<6.4}  {:<6.4}  {}",
                m.precision, m.recall, m.f1, m.support
            );
        }
        println!("  confusion matrix (rows: true, columns: predicted)");
        for (i, row) in c.confusion.rows().iter().enumerate() {
            let name = r.class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>6}")).collect();
            println!("  {name:<width$} {}", cells.join(""));
        }
    }
    if let Some(m) = r.mae {
        println!("  MAE        {m:.4}");
    }
}
