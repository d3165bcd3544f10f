//! Reading text and sequence CSV files (see the module docs of [`super`]).

use super::*;

/// Reads a whole file, mapping "not found" to [`DataError::NotFound`].
fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound { path: path.to_owned() },
        _ => DataError::Io { path: path.to_owned(), source: e },
    })
}

/// Loads a text CSV file (see the module docs).
pub fn load_text_csv(
    path: impl AsRef<Path>,
    options: &TextCsvOptions,
) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    parse_text_csv(path, &read_file(path)?, options)
}

/// Loads a sequence CSV file (see the module docs).
pub fn load_sequence_csv(
    path: impl AsRef<Path>,
    options: &SequenceCsvOptions,
) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    parse_sequence_csv(path, &read_file(path)?, options)
}

/// Reads CSV records from bytes (BOM stripped), yielding each record with its 1-based line.
///
/// Lines are counted here from the record's byte offset: the `csv` crate's own line numbers do
/// not advance on CR-only line ends and lag by one after CRLF, and its byte offset of a record can
/// point at the tail of the previous line end or at skipped blank lines.
struct Records<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    reader: csv::Reader<&'a [u8]>,
    record: csv::StringRecord,
    /// Byte offset up to which line breaks have been counted, and the line number there.
    scan: (usize, u64),
}

impl<'a> Records<'a> {
    fn new(path: &'a Path, bytes: &'a [u8]) -> Self {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
        Self { path, bytes, reader, record: csv::StringRecord::new(), scan: (0, 1) }
    }

    /// 1-based line of the record that the reader places at byte `offset`.
    fn line_at(&mut self, offset: usize) -> u64 {
        let mut start = offset.min(self.bytes.len());
        while matches!(self.bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        let (mut pos, mut line) = self.scan;
        if start < pos {
            (pos, line) = (0, 1);
        }
        for i in pos..start {
            match self.bytes[i] {
                b'\n' => line += 1,
                b'\r' if self.bytes.get(i + 1) != Some(&b'\n') => line += 1,
                _ => {}
            }
        }
        self.scan = (start, line);
        line
    }

    /// The next record and its line, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<(u64, &csv::StringRecord)>, DataError> {
        let before = self.reader.position().byte();
        match self.reader.read_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let byte = self.record.position().map_or(before, csv::Position::byte);
                let line = self.line_at(usize::try_from(byte).unwrap_or(usize::MAX));
                Ok(Some((line, &self.record)))
            }
            Err(e) => {
                let byte = e.position().map_or(before, csv::Position::byte);
                let line = self.line_at(usize::try_from(byte).unwrap_or(usize::MAX));
                Err(self.csv_error(e, line))
            }
        }
    }

    fn csv_error(&self, e: csv::Error, line: u64) -> DataError {
        match e.kind() {
            csv::ErrorKind::Utf8 { err, .. } => DataError::InvalidUtf8 {
                at: Location::field(self.path, line, err.field() + 1, None),
            },
            _ => DataError::Csv { at: Location::line(self.path, line), message: e.to_string() },
        }
    }
}

/// Cuts `text` to [`QUOTE_MAX_CHARS`] characters, marking the cut with `…`.
pub(super) fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn is_number(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok()
}

fn detect_header(record: &csv::StringRecord) -> bool {
    !record.iter().any(is_number)
}

/// Parses a finite `f32` (via `f64`).
fn parse_value(text: &str, at: impl Fn() -> Box<Location>) -> Result<f32, DataError> {
    let t = text.trim();
    let v: f64 = t.parse().map_err(|_| DataError::NotNumeric { at: at(), text: quote(text) })?;
    let f = v as f32;
    if !f.is_finite() {
        return Err(DataError::NonFinite { at: at(), text: quote(text) });
    }
    Ok(f)
}

fn parse_label(
    text: &str,
    kind: LabelKind,
    num_classes: Option<u32>,
    at: impl Fn() -> Box<Location>,
) -> Result<Label, DataError> {
    match kind {
        LabelKind::Real => parse_value(text, at).map(Label::Real),
        // Resolved in `finish` once every label is known (integers or names).
        LabelKind::Named if text.trim().is_empty() => {
            Err(DataError::BadLabel { at: at(), text: quote(text) })
        }
        LabelKind::Named | LabelKind::Unlabelled => Ok(Label::Class(0)),
        LabelKind::Class => {
            let t = text.trim();
            let c: u32 = if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
                t.parse().map_err(|_| DataError::BadLabel { at: at(), text: quote(text) })?
            } else {
                return Err(DataError::BadLabel { at: at(), text: quote(text) });
            };
            if let Some(k) = num_classes {
                if c >= k {
                    return Err(DataError::LabelOutOfRange { at: at(), label: c, num_classes: k });
                }
            }
            Ok(Label::Class(c))
        }
    }
}

/// Parses a text CSV held in memory; `path` is only used in errors and [`Dataset::source`].
pub fn parse_text_csv(
    path: &Path,
    bytes: &[u8],
    options: &TextCsvOptions,
) -> Result<Dataset, DataError> {
    if options.num_classes == Some(0) {
        return Err(DataError::BadOptions {
            path: path.to_owned(),
            message: "the class count must be at least 1".into(),
        });
    }
    let mut records = Records::new(path, bytes);
    let Some((first_line, first)) = records.next_record()? else {
        return Err(DataError::NoData { path: path.to_owned(), header: false });
    };
    let first = first.clone();
    let named = matches!(options.label_column, Column::Name(_))
        || matches!(options.text_column, Column::Name(_));
    let has_header = options.has_header.unwrap_or_else(|| named || detect_header(&first));
    let header: Option<Vec<String>> =
        has_header.then(|| first.iter().map(|f| f.trim().to_owned()).collect());
    let expected = first.len();
    let resolve = |col: &Column| -> Result<usize, DataError> {
        let found = match (col, &header) {
            (Column::Index(i), _) => (*i < expected).then_some(*i),
            (Column::Name(n), Some(h)) => h.iter().position(|f| f == n),
            (Column::Name(_), None) => None,
        };
        found.ok_or_else(|| DataError::MissingColumn {
            at: Location::line(path, first_line),
            column: col.clone(),
            header: match &header {
                Some(h) => h.join(","),
                None => format!("none; {expected} fields"),
            },
        })
    };
    let unlabelled = options.labels == LabelKind::Unlabelled;
    let label_idx = if unlabelled { usize::MAX } else { resolve(&options.label_column)? };
    let text_idx = resolve(&options.text_column)?;
    let name_of = |i: usize| -> Option<String> {
        match &header {
            Some(h) => h.get(i).cloned(),
            None if i == label_idx => Some("label".into()),
            None if i == text_idx => Some("text".into()),
            None => None,
        }
    };
    let mut samples = Vec::new();
    let mut raw = Vec::new();
    let mut handle = |line: u64, rec: &csv::StringRecord| -> Result<(), DataError> {
        if rec.len() != expected {
            return Err(DataError::Arity {
                at: Location::field(path, line, rec.len(), None),
                expected: format!(
                    "{expected} fields (as {})",
                    if header.is_some() { "the header" } else { "line 1" }
                ),
                found: rec.len(),
            });
        }
        let field = |i: usize| rec.get(i).unwrap_or_default();
        let at = || Location::field(path, line, label_idx.wrapping_add(1), name_of(label_idx));
        let label = parse_label(field(label_idx), options.labels, options.num_classes, at)?;
        if options.labels == LabelKind::Named {
            raw.push(field(label_idx).trim().to_owned());
        }
        samples.push(Sample { line, label, features: Features::Text(field(text_idx).to_owned()) });
        Ok(())
    };
    if !has_header {
        handle(first_line, &first)?;
    }
    while let Some((line, rec)) = records.next_record()? {
        handle(line, rec)?;
    }
    let label = (label_idx.wrapping_add(1), name_of(label_idx).unwrap_or_else(|| "label".into()));
    finish(path, samples, DatasetKind::Text, has_header, options.num_classes, label, raw)
}

/// Parses a sequence CSV held in memory; `path` is only used in errors and [`Dataset::source`].
pub fn parse_sequence_csv(
    path: &Path,
    bytes: &[u8],
    options: &SequenceCsvOptions,
) -> Result<Dataset, DataError> {
    let c = options.channels;
    if c == 0 {
        return Err(DataError::BadOptions {
            path: path.to_owned(),
            message: "the channel count must be at least 1".into(),
        });
    }
    if options.num_classes == Some(0) {
        return Err(DataError::BadOptions {
            path: path.to_owned(),
            message: "the class count must be at least 1".into(),
        });
    }
    let mut records = Records::new(path, bytes);
    let mut samples = Vec::new();
    let mut raw = Vec::new();
    let mut has_header = false;
    let mut first = true;
    while let Some((line, rec)) = records.next_record()? {
        if first {
            first = false;
            has_header = options.has_header.unwrap_or_else(|| detect_header(rec));
            if has_header {
                continue;
            }
        }
        let n = rec.len();
        let first = usize::from(options.labels != LabelKind::Unlabelled);
        if n < first + c || (n - first) % c != 0 {
            let expected = if first == 1 {
                format!("1 + T×{c} fields (label, then T ≥ 1 timesteps of {c} channels)")
            } else {
                format!("T×{c} fields (T ≥ 1 timesteps of {c} channels, no label)")
            };
            return Err(DataError::Arity {
                at: Location::field(path, line, n, None),
                expected,
                found: n,
            });
        }
        let steps = (n - first) / c;
        let label = if first == 1 {
            let at_label = || Location::field(path, line, 1, Some("label".into()));
            parse_label(&rec[0], options.labels, options.num_classes, at_label)?
        } else {
            Label::Class(0)
        };
        if options.labels == LabelKind::Named {
            raw.push(rec[0].trim().to_owned());
        }
        let mut values = Vec::with_capacity(n - first);
        for (k, text) in rec.iter().enumerate().skip(first) {
            let v = k - first;
            let at = || Location::field(path, line, k + 1, Some(format!("t{} c{}", v / c, v % c)));
            values.push(parse_value(text, at)?);
        }
        samples.push(Sample { line, label, features: Features::Values { steps, values } });
    }
    let kind = DatasetKind::Sequence { channels: c };
    finish(path, samples, kind, has_header, options.num_classes, (1, "label".into()), raw)
}

/// Whether a label is a class index: a non-negative integer that fits a `u32`.
fn class_index(text: &str) -> Option<u32> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Gives `samples` their classes from the label texts `raw` (one per sample): indices when
/// every label is one, else the sorted distinct names, returned.
fn resolve_named(samples: &mut [Sample], raw: &[String]) -> Option<Vec<String>> {
    if raw.iter().all(|t| class_index(t).is_some()) {
        for (s, t) in samples.iter_mut().zip(raw) {
            s.label = Label::Class(class_index(t).unwrap_or(0));
        }
        return None;
    }
    let mut names: Vec<String> = raw.to_vec();
    names.sort_unstable();
    names.dedup();
    for (s, t) in samples.iter_mut().zip(raw) {
        let c = names.binary_search(t).unwrap_or(0);
        s.label = Label::Class(u32::try_from(c).unwrap_or(u32::MAX));
    }
    Some(names)
}

fn finish(
    path: &Path,
    samples: Vec<Sample>,
    kind: DatasetKind,
    header: bool,
    num_classes: Option<u32>,
    label: (usize, String),
    raw: Vec<String>,
) -> Result<Dataset, DataError> {
    let mut samples = samples;
    if samples.is_empty() {
        return Err(DataError::NoData { path: path.to_owned(), header });
    }
    // A number that is not a class index (1.5, -1) is a mistaken label, not a class name.
    for (smp, t) in samples.iter().zip(&raw) {
        if class_index(t).is_none() && is_number(t) {
            return Err(DataError::BadLabel {
                at: Location::field(path, smp.line, label.0, Some(label.1.clone())),
                text: quote(t),
            });
        }
    }
    let class_names =
        if raw.len() == samples.len() { resolve_named(&mut samples, &raw) } else { None };
    let ds = Dataset {
        class_names,
        source: path.to_owned(),
        kind,
        declared_classes: num_classes,
        label_field: label.0,
        label_name: label.1,
        samples,
    };
    if let Some(k) = num_classes {
        ds.check_classes(k, true)?;
    }
    Ok(ds)
}
