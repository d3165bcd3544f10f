//! The fuzz oracles, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, nightly) and by
//! `tests/tests/reliability.rs` (stable, CI), which replays every saved input
//! (`tests/fixtures/fuzz-regressions/<target>/*`) through the same functions.
//!
//! Each function takes arbitrary bytes and panics only when a reader misbehaves: a panic inside
//! the reader itself, an error message that does not name the file, a line number past the end
//! of the input, a value that should have been rejected (NaN/Inf, a label out of range), an id
//! outside the vocabulary, or a round trip (write → read) that changes the result.
//! Allocation bounds are enforced by the fuzzer's `-malloc_limit_mb` (RELIABILITY.md).
//!
//! Where the first input byte selects options, the rest of the input is the file.

#![allow(dead_code)]

use std::path::Path;

use tinylstm::format::{self, ModelFile, Section, TAG_PARAMS};
use tinylstm::{Head, Spec};
use tinylstm_cli::data::{
    self, Column, DataError, Dataset, LabelKind, SequenceCsvOptions, TextCsvOptions,
};
use tinylstm_cli::model_file::ModelBundle;
use tinylstm_cli::preprocess::tokenizer::{Tokenizer, TokenizerConfig};

/// The file name every error message must contain.
const TLM_NAME: &str = "fuzz-input.tlm";
const CSV_NAME: &str = "fuzz-input.csv";
const NPZ_NAME: &str = "fuzz-input.npz";

// ---------------------------------------------------------------------------------------------
// .tlm: core reader and CLI bundle
// ---------------------------------------------------------------------------------------------

/// The `.tlm` reader: `ModelFile::parse`, `read_params`, `sections`, `peek_spec` and the CLI's
/// `ModelBundle::from_bytes` (metadata JSON, tokenizer, normalization, checkpoint sections), on
/// the input as it is and on the input with its last 4 bytes replaced by the correct CRC-32 (so
/// the fuzzer gets past the CRC and reaches the section, spec and bundle parsers).
pub fn tlm(data: &[u8]) {
    check_tlm(data);
    if data.len() >= format::HEADER_LEN + format::CRC_LEN {
        let mut fixed = data.to_vec();
        let body = fixed.len() - format::CRC_LEN;
        let crc = crc32(&fixed[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        check_tlm(&fixed);
    }
}

/// CRC-32 (zlib/PNG polynomial), as the `.tlm` trailer.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn check_tlm(data: &[u8]) {
    let parsed = ModelFile::parse(data);
    if let Ok(file) = &parsed {
        let spec = file.spec();
        assert!(spec.is_valid(), "parse accepted an invalid spec {spec:?}");
        assert_eq!(format::peek_spec(data), Ok(spec), "peek_spec disagrees with parse");
        assert_eq!(file.param_count(), spec.param_count());
        let mut params = vec![0.0f32; file.param_count()];
        file.read_params(&mut params).expect("read_params with the right length");
        let short = params.len() - 1;
        assert!(file.read_params(&mut params[..short]).is_err());
        if file.embedding_int8().is_some() {
            let table = &params[..spec.embedding_len()];
            assert!(table.iter().all(|p| p.is_finite()), "a dequantised int8 value is not finite");
            // Version 3: the table need not be what the writer would quantise, so the oracle is
            // a re-encoding of the dequantised values that reads back with the same spec and
            // the same f32 parameters after the Embedding.
            let sections: Vec<Section<'_>> = file
                .sections()
                .filter(|s| s.tag != TAG_PARAMS && s.tag != format::TAG_EMBEDDING_I8)
                .collect();
            let int8 = format::EmbeddingStorage::Int8;
            let len = format::encoded_len_with(&spec, &sections, int8).expect("encoded_len");
            let mut out = vec![0u8; len];
            format::write_into_with(&spec, &params, &sections, int8, &mut out).expect("re-encode");
            let again = ModelFile::parse(&out).expect("a re-encoded int8 file parses");
            assert_eq!(again.spec(), spec);
            let e = spec.embedding_len();
            assert!(again
                .params()
                .skip(e)
                .map(f32::to_bits)
                .eq(params[e..].iter().map(|p| p.to_bits())));
            return;
        }
        // Writing the same sections back gives the same bytes: the reader kept everything.
        let sections: Vec<Section<'_>> = file.sections().filter(|s| s.tag != TAG_PARAMS).collect();
        assert_eq!(file.sections().filter(|s| s.tag == TAG_PARAMS).count(), 1);
        let len = format::encoded_len(&spec, &sections).expect("encoded_len of a parsed file");
        assert_eq!(len, data.len(), "re-encoded length differs");
        let mut out = vec![0u8; len];
        format::write_into(&spec, &params, &sections, &mut out).expect("re-encode");
        assert!(out == data, "re-encoding a parsed file changed its bytes");
    } else if let Err(e) = &parsed {
        // Messages are never empty, and peek agrees on the header-level errors.
        assert!(!e.to_string().is_empty());
    }

    match ModelBundle::from_bytes(data, TLM_NAME) {
        Ok(bundle) => {
            assert!(parsed.is_ok(), "bundle accepted what ModelFile rejected");
            assert_eq!(bundle.params.len(), bundle.spec.param_count());
            // A bundle that loads must save and load again (a checkpoint that cannot be read
            // back would break --resume), with the same spec and the same parameter bits.
            let bytes = bundle.to_bytes().expect("a loaded bundle re-encodes");
            let back = ModelBundle::from_bytes(&bytes, TLM_NAME).expect("re-encoded bundle loads");
            assert_eq!(back.spec, bundle.spec);
            assert!(bits(&back.params) == bits(&bundle.params), "params changed on round trip");
            assert_eq!(back.optimizer_state.is_some(), bundle.optimizer_state.is_some());
            assert_eq!(back.best_params.is_some(), bundle.best_params.is_some());
            let _ = bundle.class_names();
        }
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(msg.contains(TLM_NAME), "bundle error does not name the file: {msg}");
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// CSV loaders
// ---------------------------------------------------------------------------------------------

/// Highest 1-based line number an input can have (counting `\n`, `\r\n` and lone `\r`).
fn max_line(bytes: &[u8]) -> u64 {
    let mut n = 1;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => n += 1,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => n += 1,
            _ => {}
        }
    }
    n
}

fn num_classes(bits: u8) -> Option<u32> {
    match bits & 7 {
        0 => None,
        k => Some(u32::from(k)),
    }
}

fn has_header(bits: u8) -> Option<bool> {
    match bits & 3 {
        0 => None,
        1 => Some(true),
        _ => Some(false),
    }
}

/// Text CSV loader. Byte 0: bits 0–1 header (detect / yes / no), bit 2 real labels, bits 3–5
/// class count (0 = not given), bits 6–7 columns (default / swapped / by name / missing index).
pub fn text_csv(data: &[u8]) {
    let Some((&sel, csv)) = data.split_first() else { return };
    let (label_column, text_column) = match sel >> 6 {
        0 => (Column::Index(0), Column::Index(1)),
        1 => (Column::Index(1), Column::Index(0)),
        2 => (Column::Name("label".into()), Column::Name("text".into())),
        _ => (Column::Index(0), Column::Index(5)),
    };
    let options = TextCsvOptions {
        label_column,
        text_column,
        has_header: has_header(sel),
        labels: if sel & 4 != 0 { LabelKind::Real } else { LabelKind::Class },
        num_classes: num_classes(sel >> 3),
    };
    let result = data::parse_text_csv(Path::new(CSV_NAME), csv, &options);
    check_dataset(csv, result, options.labels, options.num_classes, None);
}

/// Sequence CSV loader. Byte 0: bits 0–1 channels − 1, bits 2–3 header (detect / yes / no),
/// bit 4 real labels, bits 5–7 class count (0 = not given).
pub fn sequence_csv(data: &[u8]) {
    let Some((&sel, csv)) = data.split_first() else { return };
    let options = SequenceCsvOptions {
        channels: usize::from(sel & 3) + 1,
        has_header: has_header(sel >> 2),
        labels: if sel & 16 != 0 { LabelKind::Real } else { LabelKind::Class },
        num_classes: num_classes(sel >> 5),
    };
    let result = data::parse_sequence_csv(Path::new(CSV_NAME), csv, &options);
    check_dataset(csv, result, options.labels, options.num_classes, Some(options.channels));
}

fn check_dataset(
    bytes: &[u8],
    result: Result<Dataset, DataError>,
    labels: LabelKind,
    classes: Option<u32>,
    channels: Option<usize>,
) {
    let last = max_line(bytes);
    match result {
        Ok(ds) => {
            assert!(!ds.is_empty(), "an empty dataset was accepted");
            let mut prev = 0;
            for s in &ds.samples {
                assert!(
                    s.line > prev && s.line <= last,
                    "line {} (prev {prev}, last {last})",
                    s.line
                );
                prev = s.line;
                match (labels, s.label) {
                    (LabelKind::Class, data::Label::Class(c)) => {
                        if let Some(k) = classes {
                            assert!(c < k, "label {c} accepted with {k} classes");
                        }
                    }
                    (LabelKind::Real, data::Label::Real(v)) => assert!(v.is_finite()),
                    (kind, label) => panic!("{kind:?} labels gave {label:?}"),
                }
                match (channels, &s.features) {
                    (Some(c), data::Features::Values { steps, values }) => {
                        assert!(*steps >= 1 && values.len() == steps * c);
                        assert!(values.iter().all(|v| v.is_finite()), "non-finite value accepted");
                    }
                    (None, data::Features::Text(_)) => {}
                    (c, f) => panic!("channels {c:?} gave {f:?}"),
                }
            }
            if let Some(k) = classes {
                assert_eq!(ds.num_classes(), k as usize);
                // Every declared class occurs (a class count means nothing for real labels).
                if labels == LabelKind::Class {
                    assert!(ds.class_counts().iter().all(|&n| n > 0), "a declared class is empty");
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(CSV_NAME), "error does not name the file: {msg}");
            assert_eq!(e.path(), Path::new(CSV_NAME));
            if let Some(at) = e.location() {
                if let Some(line) = at.line {
                    assert!(line >= 1 && line <= last, "line {line} past the end ({last}): {msg}");
                    assert!(msg.contains(&format!("line {line}")), "{msg}");
                }
                if let Some(field) = at.field {
                    assert!(msg.contains(&format!("field {field}")), "{msg}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

/// Tokenizer. Byte 0 even: `Tokenizer::from_bytes` on the rest, then (when it decodes) apply and
/// a serialisation round trip. Byte 0 odd: a tokenizer configured from byte 0 and byte 1 is
/// fitted on the rest (UTF-8, lossily; one text per line) and applied to it; every id must be
/// below `vocab_size()`, and the serialised tokenizer must decode and give the same ids.
pub fn tokenizer(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else { return };
    if sel & 1 == 0 {
        // The core's in-place reader never panics on any bytes, with or without an index.
        let _ = tinylstm::text::Tokenizer::parse(rest, None);
        let half = rest.len() / 2;
        if let Ok(t) = tinylstm::text::Tokenizer::parse(&rest[..half], Some(&rest[half..])) {
            t.for_each_id("a b c the cat", |_| {});
        }
        if let Ok(t) = Tokenizer::from_bytes(rest) {
            let sample = String::from_utf8_lossy(rest);
            check_applied(&t, &[sample.as_ref(), "a b c", "the cat sat"]);
        }
        return;
    }
    let Some((&more, text)) = rest.split_first() else { return };
    let split = match (sel >> 1) & 3 {
        0 => " ",
        1 => "--",
        2 => ",",
        _ => "é",
    };
    let config = TokenizerConfig {
        num_words: match more & 7 {
            0 => None,
            n => Some(usize::from(n) - 1), // Some(0) = no limit too, as Keras
        },
        filters: if sel & 8 != 0 { String::new() } else { TokenizerConfig::default().filters },
        lower: sel & 16 != 0,
        split: split.into(),
        char_level: sel & 32 != 0,
        oov_token: match (sel >> 6) & 3 {
            0 => None,
            1 => Some("<OOV>".into()),
            2 => Some("a".into()), // may also occur as a word: the Keras collision case
            _ => Some(String::new()),
        },
    };
    let text = String::from_utf8_lossy(text);
    let texts: Vec<&str> = text.split('\n').collect();
    let mut t = Tokenizer::new(config).expect("a non-empty split is accepted");
    t.fit_on_texts(&texts).expect("a fresh tokenizer fits");
    assert_eq!(t.document_count(), texts.len() as u64);
    check_applied(&t, &texts);
}

fn check_applied(t: &Tokenizer, texts: &[&str]) {
    let vocab = t.vocab_size();
    let seqs = t.texts_to_sequences(texts);
    for s in &seqs {
        for &id in s {
            assert!(id >= 1 && (id as usize) < vocab, "id {id} outside 1..{vocab}");
        }
    }
    let bytes = t.to_bytes();
    let back = Tokenizer::from_bytes(&bytes).expect("a serialised tokenizer decodes");
    assert_eq!(back.vocab_size(), vocab, "vocab_size changed on round trip");
    assert_eq!(back.oov_index(), t.oov_index());
    assert!(back.texts_to_sequences(texts) == seqs, "ids changed on round trip");
    // The decoded form serialises to the same bytes (it keeps only what applying needs).
    assert!(back.to_bytes() == bytes, "serialisation is not stable");
    // The core's in-place tokenizer (what a device runs) reads it with its index and gives the
    // same ids, unless a stored word is longer than it holds.
    let index = t.index_bytes();
    match tinylstm::text::Tokenizer::parse(&bytes, Some(&index)) {
        Ok(core) => {
            for (text, want) in texts.iter().zip(&seqs) {
                let mut ids = Vec::new();
                core.for_each_id(text, |i| ids.push(i));
                assert!(&ids == want, "core tokenizer ids differ from the host's for {text:?}");
            }
        }
        Err(tinylstm::text::TextError::WordTooLong { .. }) => {}
        Err(e) => panic!("the core refuses the host's tokenizer: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Keras npz importer
// ---------------------------------------------------------------------------------------------

/// The specs the npz target imports into, chosen by byte 0 (mod 3).
pub fn npz_specs() -> [Spec; 3] {
    [
        Spec::channels(3).lstm(4).dense(2, Head::Softmax),
        Spec::tokens(20, 3).lstm(4).lstm(2).dense(1, Head::Sigmoid),
        Spec::channels(1).lstm(1).dense(1, Head::Linear),
    ]
}

/// Keras npz importer: `read_keras_npz_bytes` for the spec byte 0 picks, on the rest.
pub fn keras_npz(data: &[u8]) {
    let Some((&sel, zip)) = data.split_first() else { return };
    let spec = npz_specs()[usize::from(sel) % 3];
    match tinylstm_cli::export::read_keras_npz_bytes(zip, Path::new(NPZ_NAME), &spec) {
        Ok(params) => assert_eq!(params.len(), spec.param_count()),
        Err(e) => {
            let msg = e.to_string();
            // Spec errors cannot happen (the specs are valid); every file error names the file.
            assert!(msg.contains(NPZ_NAME), "error does not name the file: {msg}");
        }
    }
}
