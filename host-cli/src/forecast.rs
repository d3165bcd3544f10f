//! Forecasting: what a forecast model stores about its windows ([`ForecastMeta`]), its errors
//! in the series' own units beside the naive baselines ([`ForecastReport`]), and the picture of
//! forecast against actual.
//!
//! A window reads `lookback` rows and predicts the next `horizon` rows (every value column).
//! Errors are averaged over every predicted value of every window: RMSE, MAE and MAPE (in %,
//! over actual values that are not 0). Baselines: **naive** repeats the last observed row for
//! every step ahead; **seasonal naive** (with a season `s`) predicts step `h` (1-based) with the
//! row `s·⌈h/s⌉` steps before it, i.e. the same season's last observed value.

use crate::data::series::Series;
use crate::plots::{PlotError, Series as Curve};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `forecast` part of a model's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastMeta {
    /// Rows the model reads.
    pub lookback: usize,
    /// Rows ahead it predicts (its outputs are `horizon × names.len()`, step-major).
    pub horizon: usize,
    /// The value columns, in order.
    pub names: Vec<String>,
    /// Season length of the seasonal-naive baseline.
    #[serde(default)]
    pub season: Option<usize>,
}

/// The series and where its windows went, for the forecast report and plot.
#[derive(Debug, Clone)]
pub struct ForecastData {
    /// The whole series, in its own units.
    pub series: Series,
    /// Windows, horizon and season.
    pub meta: ForecastMeta,
    /// First window of each split (window indices, ascending).
    pub train: Vec<usize>,
    /// Validation windows.
    pub valid: Vec<usize>,
    /// Test windows: the last ones.
    pub test: Vec<usize>,
}

/// Error measures of one forecaster, in the series' units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Errors {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean absolute percentage error, % (over actual values ≠ 0; NaN when all are 0).
    pub mape: f64,
}

impl Errors {
    fn of(pairs: impl Iterator<Item = (f64, f64)>) -> Errors {
        let (mut n, mut se, mut ae, mut pe, mut pn) = (0usize, 0.0, 0.0, 0.0, 0usize);
        for (pred, actual) in pairs {
            let e = pred - actual;
            n += 1;
            se += e * e;
            ae += e.abs();
            if actual != 0.0 {
                pe += (e / actual).abs();
                pn += 1;
            }
        }
        let n = n.max(1) as f64;
        Errors {
            rmse: (se / n).sqrt(),
            mae: ae / n,
            mape: if pn == 0 { f64::NAN } else { 100.0 * pe / pn as f64 },
        }
    }
}

/// Forecast errors of a model and its baselines on a set of windows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForecastReport {
    /// Windows evaluated.
    pub windows: usize,
    /// Rows read per window.
    pub lookback: usize,
    /// Rows predicted per window.
    pub horizon: usize,
    /// Time of the first and last predicted row.
    pub span: (String, String),
    /// The model.
    pub model: Errors,
    /// Repeat the last observed row.
    pub naive: Errors,
    /// Season length of the seasonal-naive baseline.
    pub season: Option<usize>,
    /// The same season's last observed value (with `season`, when every window has one).
    pub seasonal_naive: Option<Errors>,
}

/// The baseline predictions of window `w` for step `h` (0-based), column `v`.
fn naive(s: &Series, w: usize, lookback: usize, v: usize) -> f32 {
    s.row(w + lookback - 1)[v]
}

fn seasonal(
    s: &Series,
    w: usize,
    lookback: usize,
    h: usize,
    season: usize,
    v: usize,
) -> Option<f32> {
    let t = w + lookback + h;
    let back = season * (h / season + 1);
    t.checked_sub(back).map(|i| s.row(i)[v])
}

/// The report on windows `starts` of `series`; `predictions` holds, per window, the model's
/// `horizon × V` values in the series' units.
pub fn report(
    series: &Series,
    starts: &[usize],
    meta: &ForecastMeta,
    predictions: &[f32],
) -> ForecastReport {
    let (lb, hz, width) = (meta.lookback, meta.horizon, series.width());
    let cells = |f: &dyn Fn(usize, usize, usize) -> Option<f32>| -> Option<Vec<(f64, f64)>> {
        let mut out = Vec::new();
        for (i, &w) in starts.iter().enumerate() {
            for h in 0..hz {
                for v in 0..width {
                    let actual = series.row(w + lb + h)[v];
                    out.push((f64::from(f(i, w, h * width + v)?), f64::from(actual)));
                }
            }
        }
        Some(out)
    };
    let per_window = hz * width;
    let model = cells(&|i, _, k| Some(predictions[i * per_window + k])).unwrap_or_default();
    let base = cells(&|_, w, k| Some(naive(series, w, lb, k % width))).unwrap_or_default();
    let seasonal_naive = meta.season.filter(|&s| s > 0).and_then(|s| {
        cells(&|_, w, k| seasonal(series, w, lb, k / width, s, k % width))
            .map(|c| Errors::of(c.into_iter()))
    });
    let time = |t: usize| series.times.get(t).cloned().unwrap_or_default();
    let first = starts.first().map_or(0, |&w| w + lb);
    let last = starts.last().map_or(0, |&w| w + lb + hz - 1);
    ForecastReport {
        windows: starts.len(),
        lookback: lb,
        horizon: hz,
        span: (time(first), time(last)),
        model: Errors::of(model.into_iter()),
        naive: Errors::of(base.into_iter()),
        season: meta.season,
        seasonal_naive,
    }
}

/// Prints the report as a table.
pub fn print_forecast_report(r: &ForecastReport) {
    crate::outln!(
        "  {} windows, {} → {} steps ahead, predicting {} … {}",
        r.windows,
        r.lookback,
        r.horizon,
        r.span.0,
        r.span.1
    );
    crate::outln!("  forecaster        RMSE        MAE         MAPE %");
    let row = |name: &str, e: &Errors| {
        crate::outln!("  {name:<16}  {:<10.4}  {:<10.4}  {:.2}", e.rmse, e.mae, e.mape);
    };
    row("model", &r.model);
    row("naive (last)", &r.naive);
    if let (Some(s), Some(e)) = (r.season, &r.seasonal_naive) {
        row(&format!("seasonal naive {s}"), e);
    }
}

/// Draws the first value column over the predicted span: actual values, the model's one-step-
/// ahead forecasts (the first step of each window) and the baselines'; writes
/// `<dir>/forecast.svg` and `.png`.
pub fn plot(
    dir: &Path,
    title: &str,
    series: &Series,
    starts: &[usize],
    meta: &ForecastMeta,
    predictions: &[f32],
) -> Result<Vec<PathBuf>, PlotError> {
    let (lb, width) = (meta.lookback, series.width());
    let per_window = meta.horizon * width;
    let actual: Vec<f64> = starts.iter().map(|&w| f64::from(series.row(w + lb)[0])).collect();
    let model: Vec<f64> =
        (0..starts.len()).map(|i| f64::from(predictions[i * per_window])).collect();
    let last: Vec<f64> = starts.iter().map(|&w| f64::from(naive(series, w, lb, 0))).collect();
    let mut curves =
        vec![Curve { name: "actual", values: &actual }, Curve { name: "model", values: &model }];
    curves.push(Curve { name: "naive (last value)", values: &last });
    let seasonal_values: Vec<f64>;
    let seasonal_name;
    if let Some(s) = meta.season.filter(|&s| s > 0) {
        seasonal_values = starts
            .iter()
            .map(|&w| seasonal(series, w, lb, 0, s, 0).map_or(f64::NAN, f64::from))
            .collect();
        seasonal_name = format!("seasonal naive ({s})");
        curves.push(Curve { name: &seasonal_name, values: &seasonal_values });
    }
    let first = starts.first().map_or(0, |&w| w + lb);
    let x_label = format!(
        "step of the span (1 = {}), one step ahead",
        series.times.get(first).map_or("", String::as_str)
    );
    let y_label = series.names.first().map_or("value", String::as_str);
    crate::plots::curves(&dir.join("forecast"), title, y_label, &x_label, &curves)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed errors on a 6-row series, lookback 2, horizon 2, season 2.
    #[test]
    fn errors_and_baselines_by_hand() {
        let series = Series {
            source: "s.csv".into(),
            times: (1..=6).map(|t| t.to_string()).collect(),
            names: vec!["value".into()],
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let meta =
            ForecastMeta { lookback: 2, horizon: 2, names: vec!["value".into()], season: Some(2) };
        // Window 2 reads rows 2, 3 (values 3, 4) and predicts rows 4, 5 (actual 5, 6).
        let r1 = report(&series, &[2], &meta, &[4.0, 8.0]);
        // Model: errors −1, +2 → RMSE √2.5, MAE 1.5, MAPE (1/5 + 2/6)/2 · 100.
        assert!((r1.model.rmse - 2.5f64.sqrt()).abs() < 1e-12);
        assert!((r1.model.mae - 1.5).abs() < 1e-12);
        assert!((r1.model.mape - 100.0 * (0.2 + 2.0 / 6.0) / 2.0).abs() < 1e-9);
        // Naive: last observed row is 4 (row 3) for both steps: errors −1, −2.
        assert!((r1.naive.mae - 1.5).abs() < 1e-12);
        // Seasonal naive (2): step 1 → row 4 − 2 = 2 (value 3), step 2 → row 5 − 2 = 3 (4):
        // errors −2, −2.
        assert!((r1.seasonal_naive.unwrap().mae - 2.0).abs() < 1e-12);
        assert_eq!(r1.span, ("5".to_string(), "6".to_string()));
    }
}
