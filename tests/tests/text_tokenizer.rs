//! The core's in-place tokenizer (`tinylstm::text`, what a device runs) against the host's
//! Keras-parity tokenizer (`tinylstm-cli`): for every text of the real data sets and for
//! crafted texts, the ids and the padded rows must be identical. The host tokenizer is itself
//! checked against Keras in `tokenizer_parity.rs`.
mod common;

use tinylstm::text::{Pad, Side, TextError, Tokenizer as CoreTokenizer};
use tinylstm_cli::data::{load_text_csv, TextCsvOptions};
use tinylstm_cli::preprocess::pad::{pad_sequences, PadOptions, Side as HostSide};
use tinylstm_cli::preprocess::tokenizer::{Tokenizer, TokenizerConfig};

/// Asserts the core's ids and padded rows equal the host's for every text; returns the number
/// of ids compared.
fn compare(host: &Tokenizer, texts: &[&str], scan_too: usize, what: &str) -> usize {
    let section = host.to_bytes();
    let index = host.index_bytes();
    let core = CoreTokenizer::parse(&section, Some(&index))
        .unwrap_or_else(|e| panic!("{what}: core rejects the host's sections: {e}"));
    assert!(core.has_index());
    let scan = CoreTokenizer::parse(&section, None).unwrap();
    let mut compared = 0;
    for (row, text) in texts.iter().enumerate() {
        let want = host.text_to_sequence(text);
        let mut got = Vec::new();
        core.for_each_id(text, |i| got.push(i));
        assert_eq!(got, want, "{what}: row {row}: {text:?}");
        if row < scan_too {
            let mut by_scan = Vec::new();
            scan.for_each_id(text, |i| by_scan.push(i));
            assert_eq!(by_scan, want, "{what}: row {row} (scan): {text:?}");
        }
        for (padding, truncating) in [
            (Side::Pre, Side::Pre),
            (Side::Post, Side::Post),
            (Side::Pre, Side::Post),
            (Side::Post, Side::Pre),
        ] {
            let maxlen = 1 + row % 40;
            let side = |s| if s == Side::Pre { HostSide::Pre } else { HostSide::Post };
            let opts = PadOptions {
                maxlen: Some(maxlen),
                padding: side(padding),
                truncating: side(truncating),
                value: 0u32,
            };
            let padded = pad_sequences(std::slice::from_ref(&want), &opts).unwrap();
            let mut out = vec![u32::MAX; maxlen];
            let n = core.encode(text, &Pad { maxlen, padding, truncating }, &mut out).unwrap();
            assert_eq!(n, want.len());
            assert_eq!(out, padded.data, "{what}: row {row} maxlen {maxlen}: {text:?}");
        }
        compared += want.len();
    }
    compared
}

fn fitted(config: TokenizerConfig, texts: &[&str]) -> Tokenizer {
    let mut t = Tokenizer::new(config).unwrap();
    t.fit_on_texts(texts).unwrap();
    t
}

#[test]
fn core_tokenizer_equals_host_on_real_text() {
    let Some(root) = common::datasets("core_tokenizer_equals_host_on_real_text") else { return };
    for (file, char_level) in
        [("text/sms_spam_en/sms_spam.csv", false), ("text/waimai10k_zh/waimai_10k.csv", true)]
    {
        let path = root.join(file);
        let opts = TextCsvOptions { num_classes: Some(2), ..TextCsvOptions::default() };
        let ds = load_text_csv(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
        let texts: Vec<&str> = ds.samples.iter().map(|s| s.text().unwrap()).collect();
        // Fitted on the first 80 %, so the rest holds unknown words.
        let fit = &texts[..texts.len() * 4 / 5];
        let configs = [
            TokenizerConfig { char_level, ..TokenizerConfig::default() },
            TokenizerConfig {
                char_level,
                num_words: Some(2000),
                oov_token: Some("<OOV>".into()),
                ..TokenizerConfig::default()
            },
            TokenizerConfig { char_level, num_words: Some(500), ..TokenizerConfig::default() },
            TokenizerConfig { char_level, lower: false, ..TokenizerConfig::default() },
        ];
        for (k, cfg) in configs.into_iter().enumerate() {
            let host = fitted(cfg, fit);
            let n = compare(&host, &texts, 300, &format!("{file} config {k}"));
            assert!(n > texts.len(), "{file}: only {n} ids compared");
            println!("{file} config {k}: {} texts, {n} ids equal", texts.len());
        }
    }
}

#[test]
fn core_tokenizer_equals_host_on_crafted_text() {
    let texts = [
        "Hello, World! it's 2 O'CLOCK",
        "  spaces\tand\ttabs\nnewline  ",
        "ΟΔΟΣ ΣΑΣ Σ αΣ'β",
        "İstanbul CAFÉ naïve ǅemal",
        "很快，好吃，味道足，量大 OK!!",
        "a--b---c",
        "",
        "!!!",
        &"x".repeat(300),
        "emoji 🙂🙂 and \u{A7CB} newer letter",
    ];
    for char_level in [false, true] {
        for oov in [None, Some("<OOV>".to_string())] {
            let cfg = TokenizerConfig { char_level, oov_token: oov, ..TokenizerConfig::default() };
            // Fitted on all but the last three texts.
            let host = fitted(cfg, &texts[..texts.len() - 3]);
            compare(&host, &texts, usize::MAX, "crafted");
        }
    }
    let cfg = TokenizerConfig { split: "--".into(), filters: String::new(), ..Default::default() };
    let host = fitted(cfg, &["a--b---c", "x----y"]);
    compare(&host, &["a--b---c", "b--a--", "--c-"], usize::MAX, "split --");
}

#[test]
fn core_refuses_an_index_of_another_tokenizer() {
    let a = fitted(TokenizerConfig::default(), &["one two three"]);
    let b = fitted(TokenizerConfig::default(), &["four five six seven"]);
    let err = CoreTokenizer::parse(&a.to_bytes(), Some(&b.index_bytes())).unwrap_err();
    assert_eq!(err, TextError::IndexMismatch { what: "word count", entry: 0 });
}
