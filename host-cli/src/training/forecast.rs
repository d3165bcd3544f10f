//! Data for `train --task forecast`: the series, its windows split in time order, standardised
//! inputs and targets (statistics of the training span), and the predictions turned back into
//! the series' units.

use super::prepared::PreparedData;
use crate::data::series::{parse_series_csv, Series};
use crate::data::DataError;
use crate::forecast::{ForecastData, ForecastMeta};
use crate::model_file::{ModelMeta, Task};
use crate::preprocess::normalize::Normalizer;
use crate::preprocess::{Inputs, Labels, Prepared};
use crate::settings::{SpecInput, TrainArgs};
use anyhow::{bail, Result};
use std::path::Path;
use tinylstm::Mask;

/// Default rows of history a forecast model reads.
pub const DEFAULT_LOOKBACK: usize = 12;

/// Reads a series file (`time,value` or `time,a,b,…`).
pub fn load_series(path: &Path) -> Result<Series> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound { path: path.to_owned() },
        _ => DataError::Io { path: path.to_owned(), source: e },
    })?;
    Ok(parse_series_csv(path, &bytes)?)
}

/// Standardised inputs and targets of `windows`.
pub fn prepare_windows(
    series: &Series,
    windows: &[usize],
    meta: &ForecastMeta,
    norm: &Normalizer,
) -> Result<Prepared> {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for &w in windows {
        let (i, t) = series.window(w, meta.lookback, meta.horizon);
        x.extend_from_slice(i);
        y.extend_from_slice(t);
    }
    norm.apply(&mut x)?;
    norm.apply(&mut y)?;
    Ok(Prepared {
        inputs: Inputs::Values(x),
        labels: Labels::Real(y),
        len: windows.len(),
        steps: meta.lookback,
        width: series.width(),
    })
}

/// Model outputs (standardised, `[N][horizon × V]`) back in the series' units.
pub fn unstandardize(outputs: &[f32], norm: &Normalizer) -> Vec<f32> {
    let (m, s) = (norm.means(), norm.stds());
    let v = m.len();
    outputs.iter().enumerate().map(|(k, &o)| o * s[k % v] + m[k % v]).collect()
}

/// Loads the series of `--data`, cuts and splits its windows in time order and standardises
/// them.
pub fn prepare_forecast(args: &TrainArgs) -> Result<PreparedData> {
    let Some(path) = &args.data.file else {
        bail!("--task forecast needs --data (a time,value CSV)")
    };
    if args.data.test.is_some() {
        bail!("--task forecast tests on the end of the series; --test is not used");
    }
    if args.data.channels.is_some() {
        bail!("--task forecast reads every column after the time as a value; drop --channels");
    }
    let series = load_series(path)?;
    let lookback = args.data.lookback.unwrap_or(DEFAULT_LOOKBACK);
    let horizon = args.data.horizon.unwrap_or(1);
    if lookback == 0 || horizon == 0 {
        bail!("--lookback and --horizon must be at least 1");
    }
    let n = series.windows(lookback, horizon);
    let frac = |f: Option<f64>| (f.unwrap_or(0.1) * n as f64).round() as usize;
    let (n_test, n_valid) = (frac(args.data.test_split), frac(args.data.valid_split));
    // A gap of horizon − 1 windows keeps every training target before the first validation
    // target (and validation before test).
    let gap = horizon - 1;
    let test_start = n.saturating_sub(n_test);
    let valid_end = if n_valid > 0 { test_start.saturating_sub(gap) } else { test_start };
    let valid_start = valid_end.saturating_sub(n_valid);
    let train_end = valid_start.saturating_sub(gap);
    if train_end < 2 {
        bail!(
            "{}: {} rows give {n} windows of {lookback} + {horizon} rows; {train_end} are left \
             for training (lower --lookback, --horizon or the splits)",
            path.display(),
            series.len()
        );
    }
    let season = args.data.season.filter(|&s| s > 0);
    let meta_f = ForecastMeta { lookback, horizon, names: series.names.clone(), season };
    let train: Vec<usize> = (0..train_end).collect();
    let valid: Vec<usize> = (valid_start..valid_end).collect();
    let test: Vec<usize> = (test_start..n).collect();
    // Statistics of the rows the training windows cover.
    let rows = train_end - 1 + lookback + horizon;
    let norm = Normalizer::fit(series.width(), [&series.values[..rows * series.width()]])?;
    let prepared = |w: &[usize]| prepare_windows(&series, w, &meta_f, &norm);
    let (tr, va, te) = (prepared(&train)?, prepared(&valid)?, prepared(&test)?);
    let mut meta = ModelMeta::new(Task::Sequence, lookback, Default::default(), Default::default());
    meta.forecast = Some(meta_f.clone());
    let description = format!(
        "Task: forecast {horizon} step{} ahead of {} ({}) from the last {lookback}; input: a \
         series of {} rows, {} windows in time order ({} training, {} validation, {} test, \
         the last); targets standardised; from {}",
        if horizon == 1 { "" } else { "s" },
        if series.width() == 1 { "1 value" } else { "every value" },
        series.names.join(", "),
        series.len(),
        n,
        train.len(),
        valid.len(),
        test.len(),
        path.display()
    );
    let name = path.file_stem().map_or_else(|| "series".into(), |s| s.to_string_lossy().into());
    Ok(PreparedData {
        name,
        meta,
        tokenizer: None,
        normalizer: Some(norm),
        input: SpecInput::Channels(series.width()),
        classes: None,
        train: tr,
        valid: va,
        test: te,
        mask: Mask::Off,
        description,
        forecast: Some(ForecastData { series, meta: meta_f, train, valid, test }),
    })
}
