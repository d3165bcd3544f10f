//! Loading labelled samples from CSV files into a [`Dataset`].
//!
//! Two formats (those of the shared datasets):
//!
//! * **Text CSV** ([`load_text_csv`]): a label column and a text column, header `label,text`
//!   by default. RFC 4180 quoting (quoted fields may hold commas, doubled quotes and newlines),
//!   UTF-8. Columns are chosen by 0-based index or by header name ([`TextCsvOptions`]).
//! * **Sequence CSV** ([`load_sequence_csv`]): no header (unless told), one sample per row: the
//!   label, then `T × C` values flattened **timestep-major** (`t0c0, t0c1, …, t0c(C−1), t1c0, …`)
//!   for a given channel count `C`. Rows may differ in length (variable `T`): `T = (fields − 1) /
//!   C` must be a whole number ≥ 1.
//!
//! Both accept a UTF-8 byte-order mark and CRLF, LF or CR line ends; blank lines are skipped.
//! Numbers may have surrounding spaces. Values are parsed as `f64` and rounded to `f32` (as NumPy
//! does when a float64 array from `pandas`/`numpy.loadtxt` is cast to float32); a value that is
//! NaN, infinite or outside the `f32` range is an error. Class labels are non-negative integers
//! (`0..K`); with [`LabelKind::Named`] they may also be names (`ham`/`spam`), which become the
//! classes in sorted order; with [`LabelKind::Real`] the label is a finite real number
//! (regression).
//!
//! Every error names the file, the 1-based line (as an editor counts them; a header is line 1;
//! for a record with quoted newlines, the line where it starts) and the 1-based field number,
//! with the column's name when known (header name, `label`, or `t{t} c{c}` for a value), and
//! quotes the offending text (cut to 40 characters). Loading never panics on any input.
mod csv_file;
pub mod series;
pub mod split;
pub mod synthetic;

pub use csv_file::{load_sequence_csv, load_text_csv, parse_sequence_csv, parse_text_csv};

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How long a quoted offending value may be in an error message before it is cut.
const QUOTE_MAX_CHARS: usize = 40;

/// A column chosen by 0-based position or by header name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Column {
    /// 0-based position (field 1 is index 0).
    Index(usize),
    /// Name in the header row (a header is then required).
    Name(String),
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Index(i) => write!(f, "field {}", i + 1),
            Column::Name(n) => write!(f, "column {n:?}"),
        }
    }
}

/// What the label column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelKind {
    /// A class index, a non-negative integer (classification).
    #[default]
    Class,
    /// A finite real number (regression).
    Real,
    /// Class labels as users write them: non-negative integers are class indices (as
    /// [`LabelKind::Class`]); when any label is not one, every label is a class *name*, the
    /// classes are the distinct names sorted (by their UTF-8 bytes) and
    /// [`Dataset::class_names`] holds them.
    Named,
    /// No label column (data to predict on): every sample gets `Label::Class(0)`; a sequence
    /// row is `T × C` values, a text CSV's label column is not read.
    Unlabelled,
}

/// How to read a text CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextCsvOptions {
    /// The label column (default: the first field).
    pub label_column: Column,
    /// The text column (default: the second field).
    pub text_column: Column,
    /// Whether line 1 is a header. `None`: detect — a header is assumed when a column is given
    /// by name, or when no field of the first record is a number (so `label,text` is a header
    /// and `0,hello` is data).
    pub has_header: Option<bool>,
    /// Class labels or real-valued targets.
    pub labels: LabelKind,
    /// Number of classes `K`, when known: labels must be `< K` and every class must occur.
    pub num_classes: Option<u32>,
}

impl Default for TextCsvOptions {
    fn default() -> Self {
        Self {
            label_column: Column::Index(0),
            text_column: Column::Index(1),
            has_header: None,
            labels: LabelKind::Class,
            num_classes: None,
        }
    }
}

/// How to read a sequence CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceCsvOptions {
    /// Values per timestep, `C ≥ 1`.
    pub channels: usize,
    /// Whether line 1 is a header. Default `Some(false)` (the format has none); `None`: detect
    /// (a header when no field of the first record is a number).
    #[serde(default = "no_header")]
    pub has_header: Option<bool>,
    /// Class labels or real-valued targets.
    #[serde(default)]
    pub labels: LabelKind,
    /// Number of classes `K`, when known: labels must be `< K` and every class must occur.
    #[serde(default)]
    pub num_classes: Option<u32>,
}

fn no_header() -> Option<bool> {
    Some(false)
}

impl SequenceCsvOptions {
    /// Options for `channels` values per timestep, no header, class labels.
    pub fn new(channels: usize) -> Self {
        Self { channels, has_header: Some(false), labels: LabelKind::Class, num_classes: None }
    }
}

/// The target of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Label {
    /// Class index.
    Class(u32),
    /// Real-valued target.
    Real(f32),
}

impl Label {
    /// The class index, for a class label.
    pub fn class(self) -> Option<u32> {
        match self {
            Label::Class(c) => Some(c),
            Label::Real(_) => None,
        }
    }

    /// The label as a number (the class index as `f32` for a class label).
    pub fn value(self) -> f32 {
        match self {
            Label::Class(c) => c as f32,
            Label::Real(v) => v,
        }
    }
}

/// The input of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Features {
    /// Raw text, to be tokenized.
    Text(String),
    /// `steps × channels` values, timestep-major.
    Values {
        /// Number of timesteps `T`.
        steps: usize,
        /// The values, `T × C` of them.
        values: Vec<f32>,
    },
}

/// One labelled sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// 1-based line of the file where the sample's record starts.
    pub line: u64,
    /// Its target.
    pub label: Label,
    /// Its input.
    pub features: Features,
}

impl Sample {
    /// The text, for a text sample.
    pub fn text(&self) -> Option<&str> {
        match &self.features {
            Features::Text(t) => Some(t),
            Features::Values { .. } => None,
        }
    }

    /// The values (timestep-major), for a sequence sample.
    pub fn values(&self) -> Option<&[f32]> {
        match &self.features {
            Features::Values { values, .. } => Some(values),
            Features::Text(_) => None,
        }
    }

    /// Mutable values (timestep-major), for a sequence sample.
    pub fn values_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.features {
            Features::Values { values, .. } => Some(values),
            Features::Text(_) => None,
        }
    }

    /// Number of timesteps, for a sequence sample.
    pub fn steps(&self) -> Option<usize> {
        match &self.features {
            Features::Values { steps, .. } => Some(*steps),
            Features::Text(_) => None,
        }
    }
}

/// What kind of samples a [`Dataset`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetKind {
    /// Texts.
    Text,
    /// Real-valued sequences of this many channels.
    Sequence {
        /// Values per timestep.
        channels: usize,
    },
}

/// Samples loaded from one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// The file they came from.
    pub source: PathBuf,
    /// Texts or sequences.
    pub kind: DatasetKind,
    /// Number of classes, when given at loading.
    pub declared_classes: Option<u32>,
    /// 1-based field number of the label column in the source file.
    pub label_field: usize,
    /// Name of the label column (the header's, else `label`).
    pub label_name: String,
    /// The samples in file order.
    pub samples: Vec<Sample>,
    /// Class names by class index, when the labels were names ([`LabelKind::Named`]).
    #[serde(default)]
    pub class_names: Option<Vec<String>>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Channels per timestep, for sequence data.
    pub fn channels(&self) -> Option<usize> {
        match self.kind {
            DatasetKind::Sequence { channels } => Some(channels),
            DatasetKind::Text => None,
        }
    }

    /// The class label of every sample, or `None` when the labels are real numbers.
    pub fn class_labels(&self) -> Option<Vec<u32>> {
        self.samples.iter().map(|s| s.label.class()).collect()
    }

    /// The number of classes: the declared count, else the largest class label + 1 (0 for
    /// real-valued labels or no samples).
    pub fn num_classes(&self) -> usize {
        if let Some(k) = self.declared_classes {
            return k as usize;
        }
        self.samples.iter().filter_map(|s| s.label.class()).max().map_or(0, |m| m as usize + 1)
    }

    /// Samples per class, indexed by class (length [`num_classes`](Self::num_classes)).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for c in self.samples.iter().filter_map(|s| s.label.class()) {
            if let Some(n) = counts.get_mut(c as usize) {
                *n += 1;
            }
        }
        counts
    }

    /// Shortest and longest sequence (in timesteps), for non-empty sequence data.
    pub fn steps_range(&self) -> Option<(usize, usize)> {
        let mut it = self.samples.iter().filter_map(Sample::steps);
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t))))
    }

    /// The texts, for text data.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.samples.iter().filter_map(Sample::text)
    }

    /// A new dataset with the samples at `indices`, in that order; `None` if an index is out of
    /// range.
    pub fn subset(&self, indices: &[usize]) -> Option<Dataset> {
        let samples =
            indices.iter().map(|&i| self.samples.get(i).cloned()).collect::<Option<_>>()?;
        Some(Dataset {
            source: self.source.clone(),
            kind: self.kind,
            declared_classes: self.declared_classes,
            label_field: self.label_field,
            label_name: self.label_name.clone(),
            samples,
            class_names: self.class_names.clone(),
        })
    }

    /// Renumbers the class labels to a model's classes `names`: a label read as a name maps to
    /// that name's position, an integer label to the class of the same name when there is one,
    /// else stays the index it is (models trained on integer labels name their classes `0..K`).
    /// A name the model does not know is an error naming the file, the line and the classes.
    pub fn map_to_classes(&mut self, names: &[String]) -> Result<(), DataError> {
        let own = self.class_names.take();
        for i in 0..self.samples.len() {
            let Label::Class(c) = self.samples[i].label else { continue };
            let text = match &own {
                Some(n) => n.get(c as usize).cloned().unwrap_or_default(),
                None => c.to_string(),
            };
            let mapped = match names.iter().position(|n| *n == text) {
                Some(p) => p as u32,
                None if own.is_none() => c,
                None => {
                    let line = self.samples[i].line;
                    return Err(DataError::UnknownClass {
                        at: self.label_location(Some(line)),
                        text: csv_file::quote(&text),
                        classes: csv_file::quote(&names.join(", ")),
                    });
                }
            };
            self.samples[i].label = Label::Class(mapped);
        }
        Ok(())
    }

    /// Checks that every class label is `< num_classes` and, when `require_all`, that every class
    /// has at least one sample. Real-valued labels always pass.
    pub fn check_classes(&self, num_classes: u32, require_all: bool) -> Result<(), DataError> {
        let mut seen = vec![false; num_classes as usize];
        for s in &self.samples {
            let Some(c) = s.label.class() else { return Ok(()) };
            match seen.get_mut(c as usize) {
                Some(b) => *b = true,
                None => {
                    return Err(DataError::LabelOutOfRange {
                        at: self.label_location(Some(s.line)),
                        label: c,
                        num_classes,
                    });
                }
            }
        }
        if require_all {
            if let Some(class) = seen.iter().position(|b| !b) {
                return Err(DataError::EmptyClass {
                    at: self.label_location(None),
                    class: class as u32,
                    num_classes,
                });
            }
        }
        Ok(())
    }

    fn label_location(&self, line: Option<u64>) -> Box<Location> {
        Box::new(Location {
            path: self.source.clone(),
            line,
            field: Some(self.label_field),
            name: Some(self.label_name.clone()),
        })
    }
}

/// Where in a file an error is: path, 1-based line, 1-based field and the column's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// 1-based line (the header is line 1), when the error is about one record.
    pub line: Option<u64>,
    /// 1-based field number, when the error is about one field.
    pub field: Option<usize>,
    /// The column's name (from the header, `label`, or `t{t} c{c}`), when known.
    pub name: Option<String>,
}

impl Location {
    fn line(path: &Path, line: u64) -> Box<Self> {
        Box::new(Self { path: path.to_owned(), line: Some(line), field: None, name: None })
    }

    fn field(path: &Path, line: u64, field: usize, name: Option<String>) -> Box<Self> {
        Box::new(Self { path: path.to_owned(), line: Some(line), field: Some(field), name })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ": line {line}")?;
        }
        if let Some(field) = self.field {
            write!(f, ", field {field}")?;
        }
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}

/// Why a data file could not be loaded. Every variant names the file; those about a record or a
/// field carry its [`Location`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file does not exist.
    #[error("{}: file not found", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is empty or holds only a header.
    #[error("{}: no data rows{}", path.display(), if *header { " after the header (line 1)" } else { " (the file is empty)" })]
    NoData {
        /// The file.
        path: PathBuf,
        /// Whether a header was read.
        header: bool,
    },
    /// The CSV reader failed.
    #[error("{at}: malformed CSV: {message}")]
    Csv {
        /// Where.
        at: Box<Location>,
        /// The reader's message.
        message: String,
    },
    /// A field is not valid UTF-8.
    #[error("{at}: not valid UTF-8")]
    InvalidUtf8 {
        /// Where.
        at: Box<Location>,
    },
    /// A record has the wrong number of fields.
    #[error("{at}: expected {expected}, found {found} fields")]
    Arity {
        /// Where (line; field number = the count found).
        at: Box<Location>,
        /// What was expected, in words.
        expected: String,
        /// Number of fields found.
        found: usize,
    },
    /// A column named in the options is not in the header, or an index is past the last field.
    #[error("{at}: {column} not found (header: {header})")]
    MissingColumn {
        /// Where (line 1).
        at: Box<Location>,
        /// The column asked for.
        column: Column,
        /// The header fields, or the field count when there is no header.
        header: String,
    },
    /// A value is not a number.
    #[error("{at}: {text:?} is not a number")]
    NotNumeric {
        /// Where.
        at: Box<Location>,
        /// The offending text (cut to 40 characters).
        text: String,
    },
    /// A value is NaN, infinite or outside the `f32` range.
    #[error("{at}: {text:?} is not a finite 32-bit number (NaN, infinity or out of range)")]
    NonFinite {
        /// Where.
        at: Box<Location>,
        /// The offending text (cut to 40 characters).
        text: String,
    },
    /// A class label is not a non-negative integer.
    #[error("{at}: label {text:?} is not a non-negative integer")]
    BadLabel {
        /// Where.
        at: Box<Location>,
        /// The offending text (cut to 40 characters).
        text: String,
    },
    /// A class name that the model's classes do not include.
    #[error("{at}: label {text:?} is not one of the model's classes ({classes})")]
    UnknownClass {
        /// Where.
        at: Box<Location>,
        /// The label (cut to 40 characters).
        text: String,
        /// The model's classes (cut to 40 characters).
        classes: String,
    },
    /// A class label is not below the class count.
    #[error("{at}: label {label} out of range for {num_classes} classes (0..={})", num_classes.saturating_sub(1))]
    LabelOutOfRange {
        /// Where.
        at: Box<Location>,
        /// The label.
        label: u32,
        /// The class count.
        num_classes: u32,
    },
    /// A class has no sample.
    #[error("{at}: class {class} has no samples ({num_classes} classes expected)")]
    EmptyClass {
        /// The file and the label column.
        at: Box<Location>,
        /// The missing class.
        class: u32,
        /// The class count.
        num_classes: u32,
    },
    /// The options are invalid (e.g. zero channels).
    #[error("{}: invalid options: {message}", path.display())]
    BadOptions {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl DataError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DataError::NotFound { path }
            | DataError::Io { path, .. }
            | DataError::NoData { path, .. }
            | DataError::BadOptions { path, .. } => path,
            DataError::Csv { at, .. }
            | DataError::InvalidUtf8 { at }
            | DataError::Arity { at, .. }
            | DataError::MissingColumn { at, .. }
            | DataError::NotNumeric { at, .. }
            | DataError::NonFinite { at, .. }
            | DataError::BadLabel { at, .. }
            | DataError::UnknownClass { at, .. }
            | DataError::LabelOutOfRange { at, .. }
            | DataError::EmptyClass { at, .. } => &at.path,
        }
    }

    /// Where in the file, for errors about a record or field.
    pub fn location(&self) -> Option<&Location> {
        match self {
            DataError::Csv { at, .. }
            | DataError::InvalidUtf8 { at }
            | DataError::Arity { at, .. }
            | DataError::MissingColumn { at, .. }
            | DataError::NotNumeric { at, .. }
            | DataError::NonFinite { at, .. }
            | DataError::BadLabel { at, .. }
            | DataError::UnknownClass { at, .. }
            | DataError::LabelOutOfRange { at, .. }
            | DataError::EmptyClass { at, .. } => Some(&**at),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::csv_file::quote;
    use super::*;

    fn lines(bytes: &[u8]) -> Vec<u64> {
        let ds =
            parse_sequence_csv(Path::new("t.csv"), bytes, &SequenceCsvOptions::new(1)).unwrap();
        ds.samples.iter().map(|s| s.line).collect()
    }

    #[test]
    fn lines_counted_for_every_line_end() {
        assert_eq!(lines(b"0,1\n1,2\n\n2,3\n"), [1, 2, 4]);
        assert_eq!(lines(b"0,1\r\n1,2\r\n\r\n2,3\r\n"), [1, 2, 4]);
        assert_eq!(lines(b"0,1\r1,2\r\r2,3"), [1, 2, 4]);
        assert_eq!(lines(b"\xEF\xBB\xBF\n0,1\n"), [2]);
        let text = b"label,text\r\n0,\"a\r\nb\r\nc\"\r\n1,d\r\n";
        let ds = parse_text_csv(Path::new("t.csv"), text, &TextCsvOptions::default()).unwrap();
        assert_eq!(ds.samples.iter().map(|s| s.line).collect::<Vec<_>>(), [2, 5]);
    }

    #[test]
    fn quote_cuts_long_text() {
        assert_eq!(quote("short"), "short");
        let cut = quote(&"é".repeat(50));
        assert_eq!(cut.chars().count(), QUOTE_MAX_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn subset_and_check_classes() {
        let ds = parse_sequence_csv(Path::new("t.csv"), b"0,1\n2,1\n", &SequenceCsvOptions::new(1))
            .unwrap();
        assert_eq!(ds.num_classes(), 3);
        assert_eq!(ds.class_counts(), [1, 0, 1]);
        assert!(ds.subset(&[5]).is_none());
        assert_eq!(ds.subset(&[1]).unwrap().samples[0].line, 2);
        assert!(matches!(ds.check_classes(2, false), Err(DataError::LabelOutOfRange { .. })));
        assert!(matches!(ds.check_classes(3, true), Err(DataError::EmptyClass { class: 1, .. })));
        assert!(ds.check_classes(3, false).is_ok());
    }
}
