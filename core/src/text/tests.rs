//! Unit tests of the in-place tokenizer. The host tokenizer (`tinylstm-cli`) is the reference
//! in `tests/tests/text_tokenizer.rs`; here, hand-computed cases and `std`'s lower-casing.

use super::*;
use std::string::String;
use std::vec::Vec;

const FILTERS: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

struct Built {
    section: Vec<u8>,
    index: Vec<u8>,
}

/// A TOKENIZER section and its TOKEN_INDEX section (`width` 2 or 4) for `words` (index order).
fn build(
    flags: u8,
    num_words: u32,
    oov: u32,
    split: &str,
    oov_token: Option<&str>,
    words: &[&str],
    width: usize,
) -> Built {
    let mut s = Vec::new();
    s.extend_from_slice(b"TLTK\x01");
    s.push(flags);
    s.extend_from_slice(&num_words.to_le_bytes());
    s.extend_from_slice(&oov.to_le_bytes());
    put_str(&mut s, FILTERS);
    put_str(&mut s, split);
    if let Some(o) = oov_token {
        put_str(&mut s, o);
    }
    put_varint(&mut s, words.len() as u32);
    let mut offsets = Vec::new();
    for w in words {
        offsets.push(s.len());
        put_str(&mut s, w);
    }
    let mut sorted: Vec<usize> = (0..words.len()).filter(|&i| !words[i].is_empty()).collect();
    sorted.sort_by_key(|&i| words[i].as_bytes());
    let mut ix = Vec::new();
    ix.extend_from_slice(b"TLTI\x01");
    ix.push(width as u8);
    ix.extend_from_slice(&[0, 0]);
    ix.extend_from_slice(&(words.len() as u32).to_le_bytes());
    ix.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    let put = |ix: &mut Vec<u8>, v: usize| ix.extend_from_slice(&(v as u32).to_le_bytes()[..width]);
    for o in offsets {
        put(&mut ix, o);
    }
    for i in sorted {
        put(&mut ix, i + 1);
    }
    Built { section: s, index: ix }
}

fn words_tok() -> Built {
    build(
        FLAG_LOWER | FLAG_OOV,
        0,
        1,
        " ",
        Some("<oov>"),
        &["<oov>", "the", "cat", "it's", "σας", "café"],
        2,
    )
}

fn encode(
    t: &Tokenizer<'_>,
    text: &str,
    maxlen: usize,
    padding: Side,
    truncating: Side,
) -> Vec<u32> {
    let mut row = vec![7u32; maxlen];
    t.encode(text, &Pad { maxlen, padding, truncating }, &mut row).unwrap();
    row
}

fn ids(t: &Tokenizer<'_>, text: &str) -> Vec<u32> {
    let mut v = Vec::new();
    t.for_each_id(text, |i| v.push(i));
    v
}

#[test]
fn lower_char_matches_std_except_newer_letters() {
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let ours: String = python_lower_char(c).collect();
        let want = if newer_than_python(c) { c.to_string() } else { c.to_lowercase().collect() };
        assert_eq!(ours, want, "U+{:04X}", c as u32);
    }
}

#[test]
fn final_sigma_as_std_to_lowercase() {
    for text in ["ΣΑΣ", "Σ", "ΑΣ", "ΑΣ Α", "ΑΣΑ", "ΑΣ'", "Α'Σ", "ΑΣ.Β", "ΑΣ'Β", "ΟΔΟΣ, ΣΑΣ!", "aΣ"]
    {
        let mut ours = String::new();
        for_each_lowered(text, true, |c| ours.push(c));
        assert_eq!(ours, text.to_lowercase(), "{text}");
    }
}

#[test]
fn words_filters_lower_and_oov() {
    for width in [2, 4] {
        let b =
            build(FLAG_LOWER | FLAG_OOV, 0, 1, " ", Some("<oov>"), &["<oov>", "the", "cat"], width);
        let t = Tokenizer::parse(&b.section, Some(&b.index)).unwrap();
        assert!(t.has_index());
        // "dog" unknown → OOV 1; punctuation and tabs split words.
        assert_eq!(ids(&t, "The CAT,the\tdog."), [2, 3, 2, 1]);
    }
    let b = words_tok();
    for index in [None, Some(&b.index[..])] {
        let t = Tokenizer::parse(&b.section, index).unwrap();
        assert_eq!(ids(&t, "IT'S  CAFÉ ΣΑΣ"), [4, 6, 5]);
        assert_eq!(t.index_of("<oov>"), Some(1));
        assert_eq!(t.index_of("dog"), None);
    }
}

#[test]
fn pad_and_truncate_both_sides() {
    let b = words_tok();
    let t = Tokenizer::parse(&b.section, Some(&b.index)).unwrap();
    let text = "the cat the cat it's"; // ids 2 3 2 3 4
    assert_eq!(encode(&t, text, 3, Side::Pre, Side::Pre), [2, 3, 4]);
    assert_eq!(encode(&t, text, 3, Side::Pre, Side::Post), [2, 3, 2]);
    assert_eq!(encode(&t, text, 7, Side::Pre, Side::Pre), [0, 0, 2, 3, 2, 3, 4]);
    assert_eq!(encode(&t, text, 7, Side::Post, Side::Pre), [2, 3, 2, 3, 4, 0, 0]);
    assert_eq!(encode(&t, text, 5, Side::Pre, Side::Pre), [2, 3, 2, 3, 4]);
    assert_eq!(encode(&t, "", 2, Side::Post, Side::Post), [0, 0]);
    // Every cut position of a long row keeps the last ids in order.
    for n in 1..12 {
        let text: Vec<&str> = ["the", "cat", "it's"].iter().cycle().take(n).copied().collect();
        let all = ids(&t, &text.join(" "));
        let row = encode(&t, &text.join(" "), 4, Side::Pre, Side::Pre);
        let want: Vec<u32> =
            if n >= 4 { all[n - 4..].to_vec() } else { [vec![0; 4 - n], all.clone()].concat() };
        assert_eq!(row, want, "n = {n}");
    }
    let mut short = [0u32; 2];
    let pad = Pad { maxlen: 3, padding: Side::Pre, truncating: Side::Pre };
    assert_eq!(
        t.encode("the", &pad, &mut short),
        Err(TextError::RowLength { maxlen: 3, found: 2 })
    );
}

#[test]
fn char_level_keeps_spaces_and_punctuation() {
    let b = build(FLAG_LOWER | FLAG_CHAR_LEVEL, 0, 0, " ", None, &["好", "，", " ", "a"], 2);
    let t = Tokenizer::parse(&b.section, Some(&b.index)).unwrap();
    // Unknown characters are dropped without an OOV token.
    assert_eq!(ids(&t, "好，好 A吃"), [1, 2, 1, 3, 4]);
}

#[test]
fn num_words_and_multichar_split() {
    let b = build(0, 3, 0, "--", None, &["a", "b"], 4);
    let t = Tokenizer::parse(&b.section, Some(&b.index)).unwrap();
    // '-' is a default filter, so each becomes "--" first: "a----b------a" splits into a, b, a.
    assert_eq!(ids(&t, "a--b---a"), [1, 2, 1]);
    // A separator of letters, as Python's "axyb xxya".split("xy") → ["a", "b x", "a"].
    let b = build(0, 0, 0, "xy", None, &["a", "b"], 2);
    let t = Tokenizer::parse(&b.section, Some(&b.index)).unwrap();
    assert_eq!(ids(&t, "axyb xxya"), [1, 1]);
    assert_eq!(ids(&t, "axybxy"), [1, 2]);
    // Not lowered without the flag.
    assert_eq!(ids(&t, "A--b"), [2]);
}

#[test]
fn words_longer_than_the_buffer_are_unknown() {
    let long = "x".repeat(MAX_WORD_BYTES + 40);
    let b = build(FLAG_LOWER | FLAG_OOV, 0, 1, " ", Some("<oov>"), &["<oov>", "the"], 2);
    let t = Tokenizer::parse(&b.section, Some(&b.index)).unwrap();
    assert_eq!(ids(&t, &format!("the {long} the {long}")), [2, 1, 2, 1]);
    let stored = "y".repeat(MAX_WORD_BYTES + 1);
    let b = build(0, 0, 0, " ", None, &["a", &stored], 2);
    assert_eq!(
        Tokenizer::parse(&b.section, None).unwrap_err(),
        TextError::WordTooLong { index: 2, len: MAX_WORD_BYTES + 1 }
    );
    // Exactly MAX_WORD_BYTES is found.
    let edge = "z".repeat(MAX_WORD_BYTES);
    let b = build(0, 0, 0, " ", None, &["a", &edge], 2);
    let t = Tokenizer::parse(&b.section, Some(&b.index)).unwrap();
    assert_eq!(ids(&t, &format!("{edge} a {edge}z")), [2, 1]);
}

#[test]
fn every_truncation_and_bad_index_is_an_error() {
    let b = words_tok();
    for n in 0..b.section.len() {
        assert!(Tokenizer::parse(&b.section[..n], None).is_err(), "cut at {n}");
    }
    for n in 0..b.index.len() {
        assert!(Tokenizer::parse(&b.section, Some(&b.index[..n])).is_err(), "index cut at {n}");
    }
    // Two sorted entries swapped: order error.
    let mut ix = b.index.clone();
    let m0 = 16 + 2 * 6;
    ix.swap(m0, m0 + 2);
    ix.swap(m0 + 1, m0 + 3);
    assert!(matches!(
        Tokenizer::parse(&b.section, Some(&ix)),
        Err(TextError::IndexMismatch { what: "order", .. })
    ));
    // A wrong offset.
    let mut ix = b.index.clone();
    ix[16] ^= 1;
    assert!(matches!(
        Tokenizer::parse(&b.section, Some(&ix)),
        Err(TextError::IndexMismatch { what: "offset", entry: 0 })
    ));
    // A duplicate word, caught by the index's strict order.
    let d = build(0, 0, 0, " ", None, &["a", "b", "a"], 2);
    assert!(matches!(
        Tokenizer::parse(&d.section, Some(&d.index)),
        Err(TextError::IndexMismatch { what: "order", .. })
    ));
    // Flipping any byte never panics.
    for i in 0..b.section.len() {
        let mut s = b.section.clone();
        s[i] ^= 0xA5;
        let _ = Tokenizer::parse(&s, Some(&b.index));
    }
}
