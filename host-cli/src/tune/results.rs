//! Trial records, their storage (one JSON file per trial, each written atomically, so an
//! interrupted search loses at most the trials in flight), and the reports built from them:
//! `results.json`, `results.csv`, the best trial's `best.json` and `best.toml`, and the live
//! table lines.

use super::plan::{Objective, Search};
use crate::files::write_atomic;
use crate::history::EpochStats;
use crate::report::EvalReport;
use crate::settings::TrainArgs;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format marker of `results.json`.
pub const RESULTS_FORMAT: &str = "tinylstm-tune/1";

/// Where a trial stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    /// Trained to the end (or to early stopping): a candidate for the best.
    Ok,
    /// Training failed (diverged, or another error): see `reason`.
    Failed,
    /// Stopped by successive halving at a rung.
    Pruned,
    /// Between rungs of successive halving (only in an interrupted search's trial files).
    Paused,
}

impl TrialStatus {
    /// Nothing more will happen to the trial.
    pub fn is_final(self) -> bool {
        self != TrialStatus::Paused
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            TrialStatus::Ok => "ok",
            TrialStatus::Failed => "failed",
            TrialStatus::Pruned => "pruned",
            TrialStatus::Paused => "paused",
        }
    }
}

/// The validation metrics of a trial's model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValMetrics {
    /// Samples in the validation split.
    pub samples: usize,
    /// Loss with penalties.
    pub loss: f64,
    /// Accuracy (classification).
    pub accuracy: Option<f64>,
    /// Macro precision.
    pub macro_precision: Option<f64>,
    /// Macro recall.
    pub macro_recall: Option<f64>,
    /// Macro F1.
    pub macro_f1: Option<f64>,
    /// ROC AUC (binary).
    pub roc_auc: Option<f64>,
    /// Mean absolute error (regression).
    pub mae: Option<f64>,
}

impl ValMetrics {
    /// From an evaluation report.
    pub fn from_report(r: &EvalReport) -> ValMetrics {
        let c = r.classification.as_ref();
        ValMetrics {
            samples: r.samples,
            loss: r.loss,
            accuracy: c.map(|c| c.accuracy),
            macro_precision: c.map(|c| c.macro_precision),
            macro_recall: c.map(|c| c.macro_recall),
            macro_f1: c.map(|c| c.macro_f1),
            roc_auc: r.roc_auc,
            mae: r.mae,
        }
    }

    /// The value of `metric` (`None`: not reported for this task).
    pub fn get(&self, metric: super::plan::Metric) -> Option<f64> {
        use super::plan::Metric as M;
        match metric {
            M::Loss => Some(self.loss),
            M::Accuracy => self.accuracy,
            M::MacroF1 => self.macro_f1,
            M::MacroPrecision => self.macro_precision,
            M::MacroRecall => self.macro_recall,
            M::RocAuc => self.roc_auc,
            M::Mae => self.mae,
        }
    }
}

/// The objective at the end of one rung.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RungValue {
    /// Epochs trained at that point.
    pub epochs: usize,
    /// Objective value (validation).
    pub value: f64,
}

/// Everything about one trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Trial number.
    pub trial: usize,
    /// Bracket number.
    pub bracket: usize,
    /// Training seed.
    pub seed: u64,
    /// The unchanged base settings.
    pub baseline: bool,
    /// Values of the searched parameters.
    pub params: BTreeMap<String, Value>,
    /// Outcome.
    pub status: TrialStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Objective on the validation split (of the kept weights), at the last rung reached.
    pub objective: Option<f64>,
    /// Epochs trained.
    pub epochs: usize,
    /// Epoch whose weights were kept.
    pub best_epoch: Option<usize>,
    /// Objective after each rung reached.
    pub rungs: Vec<RungValue>,
    /// Validation metrics of the kept weights.
    pub metrics: Option<ValMetrics>,
    /// Training wall time, seconds (a timing field: differs run to run).
    pub seconds: f64,
    /// Per-epoch history.
    pub history: Vec<EpochStats>,
    /// Complete training settings (a ready `tinylstm train` config).
    pub config: TrainArgs,
}

/// Trial files live in `<out>/trials/`.
pub fn trial_path(dir: &Path, trial: usize) -> PathBuf {
    dir.join("trials").join(format!("trial-{trial:05}.json"))
}

/// Checkpoint of a paused trial.
pub fn checkpoint_path(dir: &Path, trial: usize) -> PathBuf {
    dir.join("trials").join(format!("trial-{trial:05}.checkpoint.tlm"))
}

/// Writes a trial's record atomically.
pub fn write_record(dir: &Path, r: &TrialRecord) -> Result<()> {
    let path = trial_path(dir, r.trial);
    std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
    write_atomic(&path, &serde_json::to_vec_pretty(r)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads every trial record of an output folder, by trial number.
pub fn read_records(dir: &Path) -> Result<BTreeMap<usize, TrialRecord>> {
    let mut out = BTreeMap::new();
    let tdir = dir.join("trials");
    let entries = match std::fs::read_dir(&tdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", tdir.display())),
    };
    for e in entries {
        let path = e?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !(name.starts_with("trial-") && name.ends_with(".json")) {
            continue;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let r: TrialRecord = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a trial record", path.display()))?;
        out.insert(r.trial, r);
    }
    Ok(out)
}

/// The best finished trial: status ok with a finite objective, best by the objective (ties: the
/// lower trial number).
pub fn best_record<'a>(
    objective: &Objective,
    records: impl IntoIterator<Item = &'a TrialRecord>,
) -> Option<&'a TrialRecord> {
    records
        .into_iter()
        .filter(|r| r.status == TrialStatus::Ok)
        .filter_map(|r| r.objective.filter(|v| v.is_finite()).map(|v| (v, r)))
        .min_by(|a, b| objective.cmp((a.0, a.1.trial), (b.0, b.1.trial)))
        .map(|(_, r)| r)
}

/// `best.json`: the best trial and its test metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestTrial {
    /// Trial number.
    pub trial: usize,
    /// Objective name.
    pub metric: String,
    /// Its objective value (validation).
    pub objective: f64,
    /// Searched values.
    pub params: BTreeMap<String, Value>,
    /// Validation metrics.
    pub valid: Option<ValMetrics>,
    /// Test metrics of the best model (an `eval` report), when there is a test split.
    pub test: Option<Value>,
    /// The baseline trial's objective, for comparison.
    pub baseline_objective: Option<f64>,
    /// Complete settings.
    pub config: TrainArgs,
}

/// `results.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// [`RESULTS_FORMAT`].
    pub format: String,
    /// The search.
    pub search: Search,
    /// Trials by number.
    pub trials: Vec<TrialRecord>,
    /// Counts by status.
    pub counts: BTreeMap<String, usize>,
    /// The best trial.
    pub best: Option<BestTrial>,
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join("/"),
        other => other.to_string(),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// `results.csv`: one row per trial; parameter columns are the space's keys (layer sizes
/// joined with `/`).
pub fn results_csv(search: &Search, records: &[TrialRecord]) -> Result<Vec<u8>> {
    let keys: Vec<&str> = search.space.params.iter().map(|p| p.key.as_str()).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "trial",
        "bracket",
        "status",
        "objective",
        "epochs",
        "best_epoch",
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "val_roc_auc",
        "val_mae",
        "seconds",
        "seed",
        "baseline",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(keys.iter().map(|k| k.to_string()));
    header.push("reason".into());
    w.write_record(&header)?;
    for r in records {
        let m = r.metrics.clone().unwrap_or_default();
        let has = r.metrics.is_some();
        let mut row = vec![
            r.trial.to_string(),
            r.bracket.to_string(),
            r.status.name().to_string(),
            opt(r.objective),
            r.epochs.to_string(),
            r.best_epoch.map(|e| e.to_string()).unwrap_or_default(),
            if has { m.loss.to_string() } else { String::new() },
            opt(m.accuracy),
            opt(m.macro_f1),
            opt(m.roc_auc),
            opt(m.mae),
            format!("{:.3}", r.seconds),
            r.seed.to_string(),
            r.baseline.to_string(),
        ];
        for k in &keys {
            let v =
                r.params.get(*k).cloned().unwrap_or_else(|| super::space::value_of(&r.config, k));
            row.push(cell(&v));
        }
        row.push(r.reason.clone().unwrap_or_default());
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| anyhow!("results.csv: {e}"))
}

/// A number in at most 4 significant digits.
fn short_num(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(x) if n.is_f64() && x != 0.0 => {
            let a = x.abs();
            if (1e-3..1e4).contains(&a) {
                let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
                let s = format!("{x:.decimals$}");
                if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    s
                }
            } else {
                format!("{x:.3e}")
            }
        }
        _ => n.to_string(),
    }
}

/// Compact `key=value` text of a trial's parameters.
pub fn describe(r: &TrialRecord) -> String {
    if r.baseline {
        return "baseline (the base settings)".into();
    }
    r.params
        .iter()
        .map(|(k, v)| {
            let s = match v {
                Value::Number(n) => short_num(n),
                other => cell(other),
            };
            format!("{k}={s}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn table_columns(objective: &Objective) -> (bool, bool) {
    use super::plan::Metric;
    (objective.metric != Metric::Loss, objective.metric != Metric::Accuracy)
}

/// Header of the live table.
pub fn table_header(objective: &Objective) -> String {
    let (loss, acc) = table_columns(objective);
    let mut h = format!("{:>6}  {:<7} {:>12}", "trial", "status", objective.metric.name());
    if loss {
        h += &format!(" {:>9}", "val_loss");
    }
    if acc {
        h += &format!(" {:>9}", "val_acc");
    }
    h + &format!(" {:>6} {:>8}  settings", "epochs", "time")
}

/// One line of the live table.
pub fn table_line(objective: &Objective, r: &TrialRecord) -> String {
    let (loss, acc) = table_columns(objective);
    let f = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
    let m = r.metrics.as_ref();
    let mut line = format!("{:>6}  {:<7} {:>12}", r.trial, r.status.name(), f(r.objective));
    if loss {
        line += &format!(" {:>9}", f(m.map(|m| m.loss)));
    }
    if acc {
        line += &format!(" {:>9}", f(m.and_then(|m| m.accuracy)));
    }
    line += &format!(" {:>6} {:>7.1}s  {}", r.epochs, r.seconds, describe(r));
    if let Some(reason) = &r.reason {
        let short: String = reason.chars().take(100).collect();
        line += &format!("  [{short}]");
    }
    line
}

/// The best trial's settings as a `tinylstm train` config file (data paths made absolute).
pub fn best_toml(best: &TrialRecord, objective: &Objective) -> String {
    let mut args = best.config.clone();
    for p in [&mut args.data.file, &mut args.data.test].into_iter().flatten() {
        if let Ok(abs) = std::path::absolute(&*p) {
            *p = abs;
        }
    }
    let value = best.objective.map(|v| format!("{v}")).unwrap_or_default();
    format!(
        "# Best trial of a `tinylstm tune` search: trial {}, {} = {value}.\n\
         # `tinylstm train --config best.toml` trains this model again, bit for bit (the\n\
         # seed, split seed and thread count are part of the result).\n{}",
        best.trial,
        objective.metric.name(),
        args.to_toml()
    )
}
