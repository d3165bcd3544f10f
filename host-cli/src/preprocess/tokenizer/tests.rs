//! Unit tests of the tokenizer.

use super::*;

fn fitted(config: TokenizerConfig, texts: &[&str]) -> Tokenizer {
    let mut t = Tokenizer::new(config).unwrap();
    t.fit_on_texts(texts).unwrap();
    t
}

#[test]
fn word_sequence_keras_examples() {
    assert_eq!(
        text_to_word_sequence("  spaces\tand\ttabs\nnewline  ", DEFAULT_FILTERS, true, " "),
        ["spaces", "and", "tabs", "newline"]
    );
    assert_eq!(
        text_to_word_sequence("I LOVE this movie, it's great", DEFAULT_FILTERS, true, " "),
        ["i", "love", "this", "movie", "it's", "great"]
    );
    assert_eq!(text_to_word_sequence("CAFÉ Naïve", DEFAULT_FILTERS, true, " "), ["café", "naïve"]);
    // Multi-character separator: exact match, like Python's str.split(sep).
    assert_eq!(text_to_word_sequence("a--b---c", "", false, "--"), ["a", "b", "-c"]);
}

#[test]
fn python_lower_matches_python_rules() {
    assert_eq!(python_lower("ΣΑΣ"), "σας");
    assert_eq!(python_lower("İ"), "i\u{307}");
    assert_eq!(python_lower("CAFÉ"), "café");
    // Letters newer than Python's Unicode database stay as they are.
    assert_eq!(python_lower("A\u{A7CB}B"), "a\u{A7CB}b");
    assert_eq!(python_lower("\u{1C89}"), "\u{1C89}");
}

#[test]
fn ties_keep_first_seen_order_and_oov_first() {
    let cfg = TokenizerConfig { oov_token: Some("<OOV>".into()), ..Default::default() };
    let t = fitted(cfg, &["b a c a", "c"]);
    assert_eq!(t.word_index(), [("<OOV>", 1), ("a", 2), ("c", 3), ("b", 4)]);
    assert_eq!(t.text_to_sequence("a zzz b"), [2, 1, 4]);
}

#[test]
fn oov_token_that_is_also_a_word_keeps_later_index_like_keras() {
    let cfg = TokenizerConfig { oov_token: Some("unk".into()), ..Default::default() };
    let t = fitted(cfg, &["x unk x"]);
    // sorted_voc = [unk, x, unk] -> dict keeps unk: 3; index 1 unused.
    assert_eq!(t.index_of("unk"), Some(3));
    assert_eq!(t.word(1), None);
    assert_eq!(t.oov_index(), Some(3));
    assert_eq!(t.text_to_sequence("x y unk"), [2, 3, 3]);
    let back = Tokenizer::from_bytes(&t.to_bytes()).unwrap();
    assert_eq!(back.text_to_sequence("x y unk"), [2, 3, 3]);
    assert_eq!(back.vocab_size(), t.vocab_size());
}

#[test]
fn num_words_truncates_serialised_vocabulary() {
    let cfg = TokenizerConfig { num_words: Some(3), ..Default::default() };
    let t = fitted(cfg, &["a a a b b c d"]);
    let back = Tokenizer::from_bytes(&t.to_bytes()).unwrap();
    assert_eq!(back.word_index(), [("a", 1), ("b", 2)]);
    assert_eq!(back.text_to_sequence("d c b a"), t.text_to_sequence("d c b a"));
    assert_eq!(back.vocab_size(), 3);
    assert_eq!(back.word_counts(), None);
    let mut back = back;
    assert_eq!(back.fit_on_texts(["a"]), Err(TokenizerError::NotFittable));
}

#[test]
fn empty_split_rejected() {
    let cfg = TokenizerConfig { split: String::new(), ..Default::default() };
    assert_eq!(Tokenizer::new(cfg).unwrap_err(), TokenizerError::EmptySplit);
}

#[test]
fn reader_rejects_malformed_input_without_panicking() {
    let cfg = TokenizerConfig { oov_token: Some("<OOV>".into()), ..Default::default() };
    let t = fitted(cfg, &["the cat sat on the mat", "我喜欢"]);
    let bytes = t.to_bytes();
    // Every truncation fails cleanly.
    for n in 0..bytes.len() {
        assert!(Tokenizer::from_bytes(&bytes[..n]).is_err(), "prefix {n} accepted");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(matches!(
        Tokenizer::from_bytes(&extra),
        Err(TokenizerError::TrailingBytes { count: 1, .. })
    ));
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(Tokenizer::from_bytes(&bad), Err(TokenizerError::BadMagic));
    let mut bad = bytes.clone();
    bad[4] = 9;
    assert_eq!(Tokenizer::from_bytes(&bad), Err(TokenizerError::UnsupportedVersion(9)));
    // Huge declared count with little input: rejected before allocating.
    let mut huge = Vec::from(MAGIC);
    huge.extend_from_slice(&[
        1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b' ', 0xff, 0xff, 0xff, 0xff, 0x0f,
    ]);
    assert!(matches!(
        Tokenizer::from_bytes(&huge),
        Err(TokenizerError::LengthTooLarge { what: "word count", .. })
    ));
    // Every single-byte corruption either decodes or errors; never panics.
    for i in 0..bytes.len() {
        for v in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = Tokenizer::from_bytes(&b);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
    for _ in 0..5000 {
        let len = rng.random_range(0..64);
        let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) && b.len() >= 5 {
            b[..5].copy_from_slice(b"TLTK\x01");
        }
        let _ = Tokenizer::from_bytes(&b);
    }
}

#[test]
fn duplicate_word_rejected() {
    let t = fitted(TokenizerConfig::default(), &["a b"]);
    let mut bytes = t.to_bytes();
    let n = bytes.len();
    bytes[n - 1] = b'a'; // "a", "b" -> "a", "a"
    assert_eq!(
        Tokenizer::from_bytes(&bytes),
        Err(TokenizerError::DuplicateWord { index: 2, first: 1 })
    );
}
