//! The host data pipeline: CSV loaders (every error path), splits, normalisation, and — when
//! `TINYLSTM_DATASETS` points at the shared datasets folder — the real data sets, checked
//! against the counts and shapes their README.md files state.
mod common;

use std::path::{Path, PathBuf};

use tinylstm_cli::data::split::{
    random_split, stratified_holdout, stratified_split, SplitFractions, DEFAULT_HOLDOUT,
};
use tinylstm_cli::data::{
    load_sequence_csv, load_text_csv, Column, DataError, Dataset, LabelKind, SequenceCsvOptions,
    TextCsvOptions,
};
use tinylstm_cli::preprocess::normalize::Normalizer;
use tinylstm_cli::preprocess::tokenizer::{Tokenizer, TokenizerConfig};

/// Writes `bytes` to `name` in a fresh temporary folder (kept alive by the returned guard).
fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    (dir, path)
}

fn text(bytes: &[u8], opts: &TextCsvOptions) -> (PathBuf, Result<Dataset, DataError>) {
    let (dir, path) = file("texts.csv", bytes);
    let r = load_text_csv(&path, opts);
    drop(dir);
    (path, r)
}

fn seq(bytes: &[u8], opts: &SequenceCsvOptions) -> (PathBuf, Result<Dataset, DataError>) {
    let (dir, path) = file("seqs.csv", bytes);
    let r = load_sequence_csv(&path, opts);
    drop(dir);
    (path, r)
}

/// Asserts the message names the file and, when given, the line and field.
fn assert_names(err: &DataError, path: &Path, line: Option<u64>, field: Option<usize>) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "no path in: {msg}");
    if let Some(l) = line {
        assert!(msg.contains(&format!("line {l}")), "no `line {l}` in: {msg}");
        assert_eq!(err.location().and_then(|a| a.line), Some(l), "{msg}");
    }
    if let Some(f) = field {
        assert!(msg.contains(&format!("field {f}")), "no `field {f}` in: {msg}");
        assert_eq!(err.location().and_then(|a| a.field), Some(f), "{msg}");
    }
    assert_eq!(err.path(), path);
}

// ---------------------------------------------------------------- text CSV

#[test]
fn text_csv_bom_crlf_quotes_and_newlines() {
    let data = "\u{feff}label,text\r\n\
                0,\"hello, world\"\r\n\
                1,\"she said \"\"hi\"\"\"\r\n\
                0,\"two\r\nlines\"\r\n\
                1,plain\r\n";
    let (_, r) = text(data.as_bytes(), &TextCsvOptions::default());
    let ds = r.expect("loads");
    assert_eq!(ds.len(), 4);
    let texts: Vec<&str> = ds.texts().collect();
    assert_eq!(texts, ["hello, world", "she said \"hi\"", "two\r\nlines", "plain"]);
    assert_eq!(ds.class_labels().unwrap(), [0, 1, 0, 1]);
    // Lines as an editor counts them: header 1; the two-line record starts on 4, next is 6.
    let lines: Vec<u64> = ds.samples.iter().map(|s| s.line).collect();
    assert_eq!(lines, [2, 3, 4, 6]);
    assert_eq!(ds.label_name, "label");
    assert_eq!(ds.class_counts(), [2, 2]);
}

#[test]
fn text_csv_header_detection_and_named_columns() {
    // No header: detected because the first record has a number.
    let (_, r) = text(b"0,hello\n1,world\n", &TextCsvOptions::default());
    assert_eq!(r.unwrap().len(), 2);
    // Named columns in another order.
    let opts = TextCsvOptions {
        label_column: Column::Name("y".into()),
        text_column: Column::Name("review".into()),
        ..TextCsvOptions::default()
    };
    let (_, r) = text(b"id,review,y\n7,good,1\n8,bad,0\n", &opts);
    let ds = r.unwrap();
    assert_eq!(ds.texts().collect::<Vec<_>>(), ["good", "bad"]);
    assert_eq!(ds.class_labels().unwrap(), [1, 0]);
    assert_eq!((ds.label_field, ds.label_name.as_str()), (3, "y"));
    // A named column that is not there.
    let opts = TextCsvOptions { text_column: Column::Name("body".into()), ..opts };
    let (path, r) = text(b"id,review,y\n7,good,1\n", &opts);
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::MissingColumn { .. }), "{e}");
    assert_names(&e, &path, Some(1), None);
    assert!(e.to_string().contains("body"), "{e}");
    // Forced header off keeps line 1 as data.
    let opts = TextCsvOptions { has_header: Some(false), ..TextCsvOptions::default() };
    let (_, r) = text(b"3,first\n", &opts);
    assert_eq!(r.unwrap().samples[0].line, 1);
    // Regression targets.
    let opts = TextCsvOptions { labels: LabelKind::Real, ..TextCsvOptions::default() };
    let (_, r) = text(b"label,text\n0.25,a\n-3,b\n", &opts);
    let ds = r.unwrap();
    assert_eq!(ds.samples[1].label.value(), -3.0);
    assert!(ds.class_labels().is_none());
}

#[test]
fn text_csv_missing_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let e = load_text_csv(&missing, &TextCsvOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e}");
    assert_names(&e, &missing, None, None);

    let (path, r) = text(b"", &TextCsvOptions::default());
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::NoData { header: false, .. }), "{e}");
    assert_names(&e, &path, None, None);

    let (path, r) = text(b"label,text\n", &TextCsvOptions::default());
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::NoData { header: true, .. }), "{e}");
    assert_names(&e, &path, None, None);
}

#[test]
fn text_csv_wrong_arity() {
    let (path, r) = text(b"label,text\n0,fine\n1,unquoted, comma\n", &TextCsvOptions::default());
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::Arity { found: 3, .. }), "{e}");
    assert_names(&e, &path, Some(3), Some(3));
    assert!(e.to_string().contains("expected 2 fields"), "{e}");
}

#[test]
fn text_csv_bad_labels() {
    for (bad, line) in [("-1", 3), ("x", 3), ("1.5", 3), ("99999999999", 3), ("", 3)] {
        let data = format!("label,text\n0,ok\n{bad},text\n");
        let (path, r) = text(data.as_bytes(), &TextCsvOptions::default());
        let e = r.unwrap_err();
        assert!(matches!(e, DataError::BadLabel { .. }), "{bad:?}: {e}");
        assert_names(&e, &path, Some(line), Some(1));
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        assert!(e.to_string().contains("(label)"), "{e}");
    }
}

#[test]
fn text_csv_label_out_of_range_and_empty_class() {
    let opts = TextCsvOptions { num_classes: Some(2), ..TextCsvOptions::default() };
    let (path, r) = text(b"label,text\n0,a\n1,b\n2,c\n", &opts);
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::LabelOutOfRange { label: 2, num_classes: 2, .. }), "{e}");
    assert_names(&e, &path, Some(4), Some(1));

    let opts = TextCsvOptions { num_classes: Some(3), ..TextCsvOptions::default() };
    let (path, r) = text(b"label,text\n0,a\n2,b\n", &opts);
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::EmptyClass { class: 1, num_classes: 3, .. }), "{e}");
    // No single line is at fault: the message names the file and the label field.
    assert_names(&e, &path, None, Some(1));
}

#[test]
fn text_csv_invalid_utf8() {
    let (path, r) = text(b"label,text\n0,ok\n1,bad \xff byte\n", &TextCsvOptions::default());
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::InvalidUtf8 { .. }), "{e}");
    assert_names(&e, &path, Some(3), Some(2));
}

// ---------------------------------------------------------------- sequence CSV

#[test]
fn sequence_csv_variable_length_bom_crlf() {
    let data = b"\xEF\xBB\xBF0,1,2,3,4\r\n1, 5.5 ,-6e-1\r\n\r\n2,1,1,2,2,3,3\r\n";
    let (_, r) = seq(data, &SequenceCsvOptions::new(2));
    let ds = r.unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.channels(), Some(2));
    let steps: Vec<usize> = ds.samples.iter().map(|s| s.steps().unwrap()).collect();
    assert_eq!(steps, [2, 1, 3]);
    assert_eq!(ds.samples[1].values().unwrap(), [5.5, -0.6]);
    assert_eq!(ds.steps_range(), Some((1, 3)));
    // The blank line is skipped but counted.
    assert_eq!(ds.samples[2].line, 4);
    // Values are the f64 → f32 rounding of the text (as NumPy's float64 → float32 cast).
    let (_, r) = seq(b"0,0.47297301\n", &SequenceCsvOptions::new(1));
    assert_eq!(r.unwrap().samples[0].values().unwrap(), [0.47297301f64 as f32]);
}

#[test]
fn sequence_csv_wrong_arity() {
    for (row, found) in [("1,1,2,3,4", 5), ("1", 1), ("1,5", 2)] {
        let data = format!("0,1,2,3,4,5,6\n{row}\n");
        let (path, r) = seq(data.as_bytes(), &SequenceCsvOptions::new(3));
        let e = r.unwrap_err();
        assert!(matches!(e, DataError::Arity { found: f, .. } if f == found), "{row}: {e}");
        assert_names(&e, &path, Some(2), Some(found));
        assert!(e.to_string().contains("T×3"), "{e}");
    }
}

#[test]
fn sequence_csv_non_numeric_and_non_finite() {
    let long = "x".repeat(100);
    let data = format!("0,1,2,3,4\n1,1,2,{long},4\n");
    let (path, r) = seq(data.as_bytes(), &SequenceCsvOptions::new(2));
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::NotNumeric { .. }), "{e}");
    assert_names(&e, &path, Some(2), Some(4));
    let msg = e.to_string();
    assert!(msg.contains("(t1 c0)"), "{msg}");
    assert!(msg.contains(&format!("\"{}…\"", "x".repeat(40))), "offending text cut: {msg}");
    assert!(!msg.contains(&long), "{msg}");

    for bad in ["NaN", "nan", "inf", "-Infinity", "1e39"] {
        let data = format!("0,1,2\n1,3,{bad}\n");
        let (path, r) = seq(data.as_bytes(), &SequenceCsvOptions::new(1));
        let e = r.unwrap_err();
        assert!(matches!(e, DataError::NonFinite { .. }), "{bad}: {e}");
        assert_names(&e, &path, Some(2), Some(3));
        assert!(e.to_string().contains(bad), "{e}");
    }
    let (path, r) = seq(b"0,1\n1,\n", &SequenceCsvOptions::new(1));
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::NotNumeric { .. }), "{e}");
    assert_names(&e, &path, Some(2), Some(2));
}

#[test]
fn sequence_csv_labels() {
    let (path, r) = seq(b"0,1\nA,2\n", &SequenceCsvOptions::new(1));
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::BadLabel { .. }), "{e}");
    assert_names(&e, &path, Some(2), Some(1));

    let opts = SequenceCsvOptions { num_classes: Some(3), ..SequenceCsvOptions::new(1) };
    let (path, r) = seq(b"0,1\n1,1\n3,2\n", &opts);
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::LabelOutOfRange { label: 3, .. }), "{e}");
    assert_names(&e, &path, Some(3), Some(1));

    let (path, r) = seq(b"0,1\n2,1\n0,2\n", &opts);
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::EmptyClass { class: 1, .. }), "{e}");
    assert_names(&e, &path, None, Some(1));

    let opts = SequenceCsvOptions { labels: LabelKind::Real, ..SequenceCsvOptions::new(1) };
    let (_, r) = seq(b"1.5,1\n-2,1\n", &opts);
    assert_eq!(r.unwrap().samples[0].label.value(), 1.5);
}

#[test]
fn sequence_csv_empty_header_and_options() {
    let (path, r) = seq(b"", &SequenceCsvOptions::new(1));
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::NoData { .. }), "{e}");
    assert_names(&e, &path, None, None);
    let (_, r) = seq(b"\n\n", &SequenceCsvOptions::new(1));
    assert!(matches!(r.unwrap_err(), DataError::NoData { .. }));

    // A header is detected when asked to (no field of line 1 is a number).
    let opts = SequenceCsvOptions { has_header: None, ..SequenceCsvOptions::new(2) };
    let (_, r) = seq(b"label,t0c0,t0c1\n1,2,3\n", &opts);
    let ds = r.unwrap();
    assert_eq!((ds.len(), ds.samples[0].line), (1, 2));
    // Not by default: the format has none, so a header is an error naming line 1.
    let (path, r) = seq(b"label,t0c0,t0c1\n1,2,3\n", &SequenceCsvOptions::new(2));
    let e = r.unwrap_err();
    assert_names(&e, &path, Some(1), Some(1));

    let (_, r) = seq(b"0,1\n", &SequenceCsvOptions::new(0));
    assert!(matches!(r.unwrap_err(), DataError::BadOptions { .. }));
}

#[test]
fn loaders_never_panic_on_junk() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let alphabet = b"01,.-e\"\r\n \xEF\xBB\xBF\xffaN";
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| alphabet[((state >> (i % 50)) as usize + i * 7) % alphabet.len()])
            .collect();
        let p = Path::new("junk.csv");
        let _ = tinylstm_cli::data::parse_text_csv(p, &bytes, &TextCsvOptions::default());
        let _ = tinylstm_cli::data::parse_sequence_csv(p, &bytes, &SequenceCsvOptions::new(2));
    }
}

// ---------------------------------------------------------------- split

#[test]
fn split_is_deterministic_stratified_8_1_1() {
    // 4 classes × 10 samples, interleaved.
    let labels: Vec<u32> = (0..40).map(|i| i % 4).collect();
    let a = stratified_split(&labels, SplitFractions::default(), 2024).unwrap();
    let b = stratified_split(&labels, SplitFractions::default(), 2024).unwrap();
    assert_eq!(a, b, "same seed, same split");
    let c = stratified_split(&labels, SplitFractions::default(), 2025).unwrap();
    assert_ne!(a, c, "another seed, another split");
    for class in 0..4 {
        let n = |v: &[usize]| v.iter().filter(|&&i| labels[i] == class).count();
        assert_eq!((n(&a.train), n(&a.valid), n(&a.test)), (8, 1, 1), "class {class}");
    }
    let mut all: Vec<usize> = a.train.iter().chain(&a.valid).chain(&a.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "a partition");

    // Uneven classes: round(0.8n), round(0.1n) (half away from zero), rest.
    let labels: Vec<u32> = [vec![0; 15], vec![1; 7], vec![2; 1]].concat();
    let s = stratified_split(&labels, SplitFractions::default(), 1).unwrap();
    for (class, want) in [(0, (12, 2, 1)), (1, (6, 1, 0)), (2, (1, 0, 0))] {
        let n = |v: &[usize]| v.iter().filter(|&&i| labels[i] == class).count();
        assert_eq!((n(&s.train), n(&s.valid), n(&s.test)), want, "class {class}");
    }

    // A file with its own test split: validation carved out of train, 1/9 per class.
    let labels: Vec<u32> = (0..81).map(|i| i % 3).collect();
    let h = stratified_holdout(&labels, DEFAULT_HOLDOUT, 5).unwrap();
    assert_eq!((h.train.len(), h.valid.len(), h.test.len()), (72, 9, 0));
    assert_eq!(h, stratified_holdout(&labels, DEFAULT_HOLDOUT, 5).unwrap());

    let r = random_split(100, SplitFractions::default(), 3).unwrap();
    assert_eq!((r.train.len(), r.valid.len(), r.test.len()), (80, 10, 10));
}

// ---------------------------------------------------------------- normalisation

#[test]
fn normalisation_uses_training_split_only() {
    // 20 samples, C = 2, T = 3; class 1 has much larger values.
    let mut csv = String::new();
    for i in 0..20 {
        let label = i % 2;
        let scale = if label == 1 { 100.0 } else { 1.0 };
        let vals: Vec<String> = (0..6).map(|k| format!("{}", scale * (i * 6 + k) as f64)).collect();
        csv.push_str(&format!("{label},{}\n", vals.join(",")));
    }
    let (_, r) = seq(csv.as_bytes(), &SequenceCsvOptions::new(2));
    let mut ds = r.unwrap();
    let split =
        stratified_split(&ds.class_labels().unwrap(), SplitFractions::default(), 9).unwrap();
    let norm = Normalizer::fit_dataset(&ds, &split.train).unwrap();

    // Expected: population mean/std over the training samples' timesteps, per channel.
    for c in 0..2 {
        let xs: Vec<f64> = split
            .train
            .iter()
            .flat_map(|&i| ds.samples[i].values().unwrap().chunks(2).map(move |t| t[c] as f64))
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((norm.means()[c] as f64 - mean).abs() <= 1e-4 * mean.abs().max(1.0), "mean {c}");
        assert!((norm.stds()[c] as f64 - var.sqrt()).abs() <= 1e-4 * var.sqrt(), "std {c}");
    }
    let all: Vec<usize> = (0..ds.len()).collect();
    assert_ne!(Normalizer::fit_dataset(&ds, &all).unwrap(), norm, "test data must not leak in");

    // Applying: training values end up with mean 0, std 1 per channel.
    norm.apply_dataset(&mut ds).unwrap();
    let train = ds.subset(&split.train).unwrap();
    let refit = Normalizer::fit_dataset(&train, &(0..train.len()).collect::<Vec<_>>()).unwrap();
    for c in 0..2 {
        assert!(refit.means()[c].abs() < 1e-4 && (refit.stds()[c] - 1.0).abs() < 1e-4);
    }
    let back = Normalizer::from_bytes(&norm.to_bytes()).unwrap();
    assert_eq!(back, norm);
}

// ---------------------------------------------------------------- real data sets

struct TextSet {
    file: &'static str,
    counts: [usize; 2],
    chars: (usize, usize, usize), // min, median, max (characters)
}

#[test]
fn real_text_datasets() {
    let Some(root) = common::datasets("real_text_datasets") else { return };
    let sets = [
        TextSet { file: "text/sms_spam_en/sms_spam.csv", counts: [4827, 747], chars: (2, 61, 910) },
        TextSet {
            file: "text/waimai10k_zh/waimai_10k.csv",
            counts: [7987, 4000],
            chars: (5, 17, 463),
        },
    ];
    for set in sets {
        let path = root.join(set.file);
        let opts = TextCsvOptions { num_classes: Some(2), ..TextCsvOptions::default() };
        let ds = load_text_csv(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ds.class_counts(), set.counts, "{}", set.file);
        assert_eq!(ds.len(), set.counts.iter().sum::<usize>());
        let mut lens: Vec<usize> = ds.texts().map(|t| t.chars().count()).collect();
        lens.sort_unstable();
        let median = (lens[(lens.len() - 1) / 2] + lens[lens.len() / 2]) / 2;
        assert_eq!((lens[0], median, lens[lens.len() - 1]), set.chars, "{}", set.file);
        // "Every record is on exactly one physical line": header is 1, record i on line i + 2.
        assert!(ds.samples.iter().enumerate().all(|(i, s)| s.line == i as u64 + 2));

        // 8:1:1 stratified split, exact per-class counts.
        let labels = ds.class_labels().unwrap();
        let split = stratified_split(&labels, SplitFractions::default(), 1337).unwrap();
        for (class, &n) in set.counts.iter().enumerate() {
            let count = |v: &[usize]| v.iter().filter(|&&i| labels[i] == class as u32).count();
            let tr = (0.8 * n as f64).round() as usize;
            let va = (0.1 * n as f64).round() as usize;
            assert_eq!(
                (count(&split.train), count(&split.valid), count(&split.test)),
                (tr, va, n - tr - va),
                "{} class {class}",
                set.file
            );
        }

        // The tokenizer fits and applies on the training split (word level for English,
        // character level for Chinese) and round-trips through its serialised form.
        let cfg = TokenizerConfig {
            num_words: Some(2000),
            oov_token: Some("<OOV>".into()),
            char_level: set.file.contains("zh"),
            ..TokenizerConfig::default()
        };
        let mut tok = Tokenizer::new(cfg).unwrap();
        tok.fit_on_texts(split.train.iter().map(|&i| ds.samples[i].text().unwrap())).unwrap();
        let test_texts: Vec<&str> =
            split.test.iter().map(|&i| ds.samples[i].text().unwrap()).collect();
        let seqs = tok.texts_to_sequences(&test_texts);
        assert!(seqs.iter().flatten().all(|id| (1..2000).contains(id)));
        let back = Tokenizer::from_bytes(&tok.to_bytes()).unwrap();
        assert_eq!(back.texts_to_sequences(&test_texts), seqs);
    }
}

struct SeqSet {
    dir: &'static str,
    channels: usize,
    train: &'static [usize],
    test: &'static [usize],
    steps_train: (usize, usize),
    steps_test: (usize, usize),
}

#[test]
fn real_sequence_datasets() {
    let Some(root) = common::datasets("real_sequence_datasets") else { return };
    let sets = [
        SeqSet {
            dir: "sensor/basicmotions",
            channels: 6,
            train: &[10, 10, 10, 10],
            test: &[10, 10, 10, 10],
            steps_train: (100, 100),
            steps_test: (100, 100),
        },
        SeqSet {
            dir: "sensor/epilepsy",
            channels: 3,
            train: &[34, 37, 36, 30],
            test: &[34, 37, 37, 30],
            steps_train: (206, 206),
            steps_test: (206, 206),
        },
        SeqSet {
            dir: "sensor/japanesevowels",
            channels: 12,
            train: &[30; 9],
            test: &[31, 35, 88, 44, 29, 24, 40, 50, 29],
            steps_train: (7, 26),
            steps_test: (7, 29),
        },
        SeqSet {
            dir: "univariate/italypowerdemand",
            channels: 1,
            train: &[34, 33],
            test: &[513, 516],
            steps_train: (24, 24),
            steps_test: (24, 24),
        },
    ];
    for set in sets {
        let k = set.train.len() as u32;
        let opts =
            SequenceCsvOptions { num_classes: Some(k), ..SequenceCsvOptions::new(set.channels) };
        for (file, counts, steps) in
            [("train.csv", set.train, set.steps_train), ("test.csv", set.test, set.steps_test)]
        {
            let path = root.join(set.dir).join(file);
            let ds = load_sequence_csv(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ds.class_counts(), counts, "{}/{file}", set.dir);
            assert_eq!(ds.steps_range(), Some(steps), "{}/{file}", set.dir);
            for s in &ds.samples {
                assert_eq!(s.values().unwrap().len(), s.steps().unwrap() * set.channels);
            }
        }
        // Own split: validation carved from train (1/9 per class), normalisation from train.
        let train = load_sequence_csv(root.join(set.dir).join("train.csv"), &opts).unwrap();
        let labels = train.class_labels().unwrap();
        let split = stratified_holdout(&labels, DEFAULT_HOLDOUT, 7).unwrap();
        assert_eq!(split.train.len() + split.valid.len(), train.len());
        let norm = Normalizer::fit_dataset(&train, &split.train).unwrap();
        assert_eq!(norm.channels(), set.channels);
        assert!(norm.stds().iter().all(|s| s.is_finite() && *s > 0.0));
    }
}
