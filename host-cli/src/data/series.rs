//! Time series for forecasting: a CSV of `time,value` (or `time,a,b,…`) rows in time order,
//! and the lookback/horizon windows cut from it.
//!
//! The first column is the time stamp (any text, kept for labels); every other column is a
//! value, a finite number. A header is detected (a first row whose value fields are not all
//! numbers) and names the value columns; without one they are `value`, `value2`, … Errors name
//! the file, the line and the field.

use super::{DataError, Location};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A multivariate series: `len` rows of `names.len()` values, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The file it came from.
    pub source: PathBuf,
    /// Time stamp of each row.
    pub times: Vec<String>,
    /// Name of each value column.
    pub names: Vec<String>,
    /// The values, `times.len() × names.len()`, row-major (time-major).
    pub values: Vec<f32>,
}

impl Series {
    /// Number of rows (time steps).
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Values per row `V`.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// The row at time `t` (`V` values).
    pub fn row(&self, t: usize) -> &[f32] {
        let v = self.width();
        &self.values[t * v..(t + 1) * v]
    }

    /// Number of windows of `lookback` inputs followed by `horizon` targets: window `w` reads
    /// rows `w..w + lookback` and predicts rows `w + lookback..w + lookback + horizon`.
    pub fn windows(&self, lookback: usize, horizon: usize) -> usize {
        (self.len() + 1).saturating_sub(lookback + horizon)
    }

    /// Inputs (`lookback × V`) and targets (`horizon × V`) of window `w`.
    pub fn window(&self, w: usize, lookback: usize, horizon: usize) -> (&[f32], &[f32]) {
        let v = self.width();
        let (a, b) = ((w + lookback) * v, (w + lookback + horizon) * v);
        (&self.values[w * v..a], &self.values[a..b])
    }
}

fn is_number(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok()
}

/// Parses a series CSV held in memory; `path` names it in errors.
pub fn parse_series_csv(path: &Path, bytes: &[u8]) -> Result<Series, DataError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let at = |line: u64, field: usize, name: Option<String>| {
        Box::new(Location { path: path.to_owned(), line: Some(line), field: Some(field), name })
    };
    let mut series = Series {
        source: path.to_owned(),
        times: Vec::new(),
        names: Vec::new(),
        values: Vec::new(),
    };
    let mut width = 0;
    for (i, rec) in reader.records().enumerate() {
        let line = i as u64 + 1;
        let rec = rec.map_err(|e| DataError::Csv {
            at: Box::new(Location {
                path: path.to_owned(),
                line: e.position().map(|p| p.line()),
                field: None,
                name: None,
            }),
            message: e.to_string(),
        })?;
        let line = rec.position().map_or(line, |p| p.line());
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if width == 0 {
            if rec.len() < 2 {
                return Err(DataError::Arity {
                    at: at(line, rec.len(), None),
                    expected: "2 or more fields (time, then one or more values)".into(),
                    found: rec.len(),
                });
            }
            width = rec.len() - 1;
            if !rec.iter().skip(1).all(is_number) {
                series.names = rec.iter().skip(1).map(|f| f.trim().to_owned()).collect();
                continue;
            }
            series.names = (0..width)
                .map(|j| if j == 0 { "value".into() } else { format!("value{}", j + 1) })
                .collect();
        }
        if rec.len() != width + 1 {
            return Err(DataError::Arity {
                at: at(line, rec.len(), None),
                expected: format!("{} fields (as the first row)", width + 1),
                found: rec.len(),
            });
        }
        series.times.push(rec[0].trim().to_owned());
        for (k, text) in rec.iter().enumerate().skip(1) {
            let name = || Some(series.names[k - 1].clone());
            let v: f64 = text.trim().parse().map_err(|_| DataError::NotNumeric {
                at: at(line, k + 1, name()),
                text: super::csv_file::quote(text),
            })?;
            let f = v as f32;
            if !f.is_finite() {
                return Err(DataError::NonFinite {
                    at: at(line, k + 1, name()),
                    text: super::csv_file::quote(text),
                });
            }
            series.values.push(f);
        }
    }
    if series.is_empty() {
        return Err(DataError::NoData { path: path.to_owned(), header: !series.names.is_empty() });
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_windows_and_errors() {
        let s =
            parse_series_csv(Path::new("s.csv"), b"time,a,b\n1,1,10\n2,2,20\n3,3,30\n").unwrap();
        assert_eq!(s.names, ["a", "b"]);
        assert_eq!(s.times, ["1", "2", "3"]);
        assert_eq!(s.windows(2, 1), 1);
        assert_eq!(s.window(0, 2, 1), (&[1.0, 10.0, 2.0, 20.0][..], &[3.0, 30.0][..]));
        assert_eq!(s.windows(3, 1), 0);
        let e = parse_series_csv(Path::new("s.csv"), b"time,value\n1,5\n2,x\n").unwrap_err();
        assert_eq!(e.to_string(), "s.csv: line 3, field 2 (value): \"x\" is not a number");
        let e = parse_series_csv(Path::new("s.csv"), b"1,5\n2,6,7\n").unwrap_err();
        assert!(e.to_string().starts_with("s.csv: line 2, field 3"), "{e}");
    }
}
