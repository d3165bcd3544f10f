//! Keras parity of the host tokenizer and `pad_sequences`.
//!
//! Runs every fixture in `tests/fixtures/keras/` whose `case` is `"tokenizer"` (dispatching on
//! the field, not the file name): for each tokenizer case, `word_index`, `word_counts` (including
//! their first-seen order) and the sequences of the probe texts must equal Keras's exactly, and
//! the serialised tokenizer must round-trip, and the core's in-place tokenizer (`tinylstm::text`)
//! must give the same sequences; for each pad case, the padded rows must be equal.
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use tinylstm_cli::preprocess::pad::{pad_sequences, PadOptions, Side};
use tinylstm_cli::preprocess::tokenizer::{Tokenizer, TokenizerConfig};

/// A JSON object read as `(key, value)` pairs in document order.
#[derive(Debug)]
struct Ordered<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenizerCase {
    config: Map<String, Value>,
    word_index: Ordered<u32>,
    word_counts: Ordered<u64>,
    probe_texts: Vec<String>,
    sequences: Vec<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PadCase {
    config: Map<String, Value>,
    sequences: Vec<Vec<i64>>,
    padded: Vec<Vec<i64>>,
}

#[derive(Debug, Deserialize)]
struct TokenizerFixture {
    texts: Vec<String>,
    tokenizer_cases: Vec<TokenizerCase>,
    pad_cases: Vec<PadCase>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keras")
}

/// Every fixture file whose `case` is `"tokenizer"`.
fn tokenizer_fixtures() -> Vec<(PathBuf, TokenizerFixture)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("fixture folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).expect("read fixture");
        let v: Value = serde_json::from_str(&text).expect("fixture is JSON");
        if v.get("case").and_then(Value::as_str) == Some("tokenizer") {
            let f: TokenizerFixture =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((p, f));
        }
    }
    assert!(!out.is_empty(), "no tokenizer fixture in {}", fixture_dir().display());
    out
}

fn config_of(c: &Map<String, Value>) -> TokenizerConfig {
    let mut cfg = TokenizerConfig::default();
    for (k, v) in c {
        match k.as_str() {
            "num_words" => cfg.num_words = v.as_u64().map(|n| n as usize),
            "oov_token" => cfg.oov_token = v.as_str().map(str::to_owned),
            "char_level" => cfg.char_level = v.as_bool().expect("bool"),
            "lower" => cfg.lower = v.as_bool().expect("bool"),
            "filters" => cfg.filters = v.as_str().expect("string").to_owned(),
            "split" => cfg.split = v.as_str().expect("string").to_owned(),
            other => panic!("unknown tokenizer config key {other:?}"),
        }
    }
    cfg
}

fn pad_options_of(c: &Map<String, Value>) -> PadOptions<i64> {
    let mut o = PadOptions::<i64>::default();
    for (k, v) in c {
        match k.as_str() {
            "maxlen" => o.maxlen = v.as_u64().map(|n| n as usize),
            "padding" => o.padding = v.as_str().expect("string").parse::<Side>().expect("side"),
            "truncating" => {
                o.truncating = v.as_str().expect("string").parse::<Side>().expect("side")
            }
            "value" => {
                let f = v.as_f64().expect("number");
                assert_eq!(f.fract(), 0.0, "integer padding value expected");
                o.value = f as i64;
            }
            other => panic!("unknown pad config key {other:?}"),
        }
    }
    o
}

#[test]
fn tokenizer_cases_match_keras() {
    let mut n = 0;
    for (path, fx) in tokenizer_fixtures() {
        for (i, case) in fx.tokenizer_cases.iter().enumerate() {
            let what = format!("{} tokenizer case {i} {:?}", path.display(), case.config);
            let mut tok = Tokenizer::new(config_of(&case.config)).expect(&what);
            tok.fit_on_texts(&fx.texts).expect(&what);

            let counts: Vec<(String, u64)> = tok.word_counts().expect("fitted").to_vec();
            assert_eq!(counts, case.word_counts.0, "{what}: word_counts (in first-seen order)");

            let index: Vec<(String, u32)> =
                tok.word_index().into_iter().map(|(w, i)| (w.to_owned(), i)).collect();
            let mut want = case.word_index.0.clone();
            want.sort_by_key(|(_, i)| *i);
            assert_eq!(index, want, "{what}: word_index");
            assert_eq!(tok.vocabulary_len(), case.word_index.0.len(), "{what}");

            let seqs = tok.texts_to_sequences(&case.probe_texts);
            assert_eq!(seqs, case.sequences, "{what}: sequences");
            for s in &seqs {
                assert!(s.iter().all(|&id| (id as usize) < tok.vocab_size()), "{what}: vocab_size");
            }
            // The Embedding's rows as the Keras seed code sizes them, from Keras's word_index:
            // min(num_words, len(word_index) + 1), without a limit len(word_index) + 1.
            let keras_rows = case.word_index.0.len() + 1;
            let keras_rows = match tok.config().num_words.filter(|&n| n > 0) {
                Some(n) => n.min(keras_rows),
                None => keras_rows,
            };
            assert_eq!(tok.vocab_size(), keras_rows, "{what}: Keras-sized embedding rows");

            // Serialised form: applies identically, and re-serialises to the same bytes.
            let bytes = tok.to_bytes();
            // The core's in-place tokenizer (what a device runs; with and without the lookup
            // table) gives Keras's sequences too.
            let index = tok.index_bytes();
            for table in [Some(&index[..]), None] {
                let core = tinylstm::text::Tokenizer::parse(&bytes, table).expect(&what);
                for (text, want) in case.probe_texts.iter().zip(&case.sequences) {
                    let mut ids = Vec::new();
                    core.for_each_id(text, |id| ids.push(id));
                    assert_eq!(&ids, want, "{what}: core tokenizer on {text:?}");
                }
            }
            let back = Tokenizer::from_bytes(&bytes).expect(&what);
            assert_eq!(back.config(), tok.config(), "{what}: config round trip");
            assert_eq!(back.texts_to_sequences(&case.probe_texts), case.sequences, "{what}");
            assert_eq!(back.texts_to_sequences(&fx.texts), tok.texts_to_sequences(&fx.texts));
            assert_eq!(back.to_bytes(), bytes, "{what}: canonical bytes");
            assert_eq!(back.vocab_size(), tok.vocab_size(), "{what}: vocab_size");
            // Only words that can be emitted are stored.
            if let Some(limit) = tok.config().num_words.filter(|&n| n > 0) {
                assert!(back.word_index().iter().all(|&(_, i)| (i as usize) < limit), "{what}");
                assert_eq!(back.vocabulary_len(), limit - 1, "{what}");
            } else {
                assert_eq!(back.word_index(), tok.word_index(), "{what}");
            }
            n += 1;
        }
    }
    assert!(n >= 6, "expected the fixture's tokenizer cases, ran {n}");
}

#[test]
fn pad_cases_match_keras() {
    let mut n = 0;
    for (path, fx) in tokenizer_fixtures() {
        for (i, case) in fx.pad_cases.iter().enumerate() {
            let what = format!("{} pad case {i} {:?}", path.display(), case.config);
            let padded =
                pad_sequences(&case.sequences, &pad_options_of(&case.config)).expect(&what);
            assert_eq!(padded.to_nested(), case.padded, "{what}");
            n += 1;
        }
    }
    assert!(n >= 6, "expected the fixture's pad cases, ran {n}");
}

#[test]
fn chinese_char_level_round_trip_is_compact() {
    let cfg = TokenizerConfig { char_level: true, ..TokenizerConfig::default() };
    let mut tok = Tokenizer::new(cfg).unwrap();
    tok.fit_on_texts(["我喜欢这个外卖 很好吃", "很快，好吃，味道足，量大"]).unwrap();
    let bytes = tok.to_bytes();
    // Header + filters + split + count, then 1 length byte + 3 UTF-8 bytes per CJK character.
    let cjk = tok.word_index().iter().filter(|(w, _)| w.len() == 3).count();
    assert!(bytes.len() <= 64 + cjk * 4 + 8, "{} bytes", bytes.len());
    let back = Tokenizer::from_bytes(&bytes).unwrap();
    assert_eq!(back.text_to_sequence("好吃！"), tok.text_to_sequence("好吃！"));
}
