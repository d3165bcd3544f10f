//! The Keras `Tokenizer` (`tf_keras.preprocessing.text.Tokenizer`), reproduced exactly, and its
//! compact serialisation for the tokenizer section of the `.tlm` model file.
//!
//! # Semantics (as Keras 2 / `tf_keras` 2.21)
//!
//! * **Word level** ([`text_to_word_sequence`]): the text is lowercased with Python's
//!   `str.lower` (when `lower`), every character of `filters` is replaced by `split`, the text is
//!   split on the exact `split` string (Python `str.split(sep)`, not on runs of whitespace) and
//!   empty pieces are dropped. So `"  spaces\tand\ttabs\nnewline  "` gives
//!   `["spaces", "and", "tabs", "newline"]` with the default filters (which contain `\t` and
//!   `\n`), and `"it's"` stays one word (`'` is not a default filter).
//! * **Character level** (`char_level`): the text is lowercased (when `lower`) and every Unicode
//!   scalar value is a token; `filters` and `split` are **not** applied (spaces and punctuation
//!   are tokens), exactly as Keras does. This is the mode for Chinese/Japanese text.
//! * **Fitting** ([`Tokenizer::fit_on_texts`]): word counts are kept in first-seen order; the
//!   vocabulary is that order sorted by count, descending, with a *stable* sort (ties keep
//!   first-seen order, like Python's `list.sort(reverse=True)`); indices start at 1 (0 is the
//!   padding value); the OOV token, when set, is put first and gets index 1. Fitting again adds
//!   to the counts and rebuilds the index, as Keras does. If the OOV token also occurs as a word,
//!   Keras's `dict(zip(...))` keeps the *later* index for it and index 1 is left unused; this is
//!   reproduced.
//! * **Applying** ([`Tokenizer::texts_to_sequences`]): known words with index `< num_words` (or
//!   any index when `num_words` is `None` or `Some(0)`, which Keras treats as "no limit") are
//!   emitted; a known word with a larger index becomes the OOV index when an OOV token is set and
//!   is dropped otherwise; an unknown word becomes the OOV index or is dropped. `num_words = n`
//!   therefore keeps `n − 1` indices (`n − 2` real words when the OOV token takes index 1).
//!
//! # Lowercasing: Rust versus Python
//!
//! Python's `str.lower` and Rust's [`str::to_lowercase`] apply the same Unicode rules
//! (unconditional `SpecialCasing`, e.g. `İ` → `i̇`, and the context-sensitive final sigma,
//! `ΣΑΣ` → `σας`). Compared code point by code point against CPython 3.11 (Unicode 14), the only
//! differences are letters that Unicode 16 and 17 added with a lowercase mapping (U+1C89,
//! U+A7CB, U+A7CC, U+A7CE, U+A7D2, U+A7D4, U+A7DA, U+A7DC, Garay U+10D50–U+10D65 and
//! U+16EA0–U+16EB8), which the Python versions that TensorFlow 2.21 runs on (3.10–3.13, Unicode
//! ≤ 15.1) leave unchanged. [`python_lower`] keeps those characters unchanged too. Remaining,
//! negligible difference: the final-sigma rule looks at neighbouring *cased* letters, and the
//! lowercase forms of those new letters are cased for Rust but unassigned for such a Python, so
//! a `Σ` directly followed by one of them may lower differently. A Python ≥ 3.14 (Unicode 16)
//! would lowercase part of that list.
//!
//! # Serialised form (`to_bytes` / `from_bytes`), version 1
//!
//! Only what *applying* the tokenizer needs: its settings and the words that can be emitted
//! (index `< num_words`), in index order. Counts are not stored. All integers little-endian;
//! `varint` is unsigned LEB128 of a `u32` (1 to 5 bytes); every string is a `varint` byte length
//! followed by that many bytes of UTF-8.
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `b"TLTK"` |
//! | 1 | format version, `1` |
//! | 1 | flags: bit 0 `lower`, bit 1 `char_level`, bit 2 OOV token present; other bits 0 |
//! | 4 | `num_words` as `u32` (0 = no limit) |
//! | 4 | OOV index as `u32` (0 = no OOV token) |
//! | string | `filters` |
//! | string | `split` |
//! | string | OOV token (only when flag bit 2 is set) |
//! | varint | `N`, number of words that follow |
//! | N × string | word with index 1, 2, …, N; an empty string marks an unused index (only index 1 can be unused: the OOV-collision case above, or an empty OOV token) |
//!
//! No byte may follow. The reader never panics and never allocates more than the input could
//! describe (every length is checked against the remaining input first). To map a word to its
//! index without heap, the model file also holds a TOKEN_INDEX section ([`Tokenizer::index_bytes`]:
//! the words sorted for binary search), which the core's `tinylstm::text` reads in place; the OOV
//! index is explicit because it can lie beyond the stored words.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The Keras default `filters`: ``!"#$%&()*+,-./:;<=>?@[\]^_`{|}~`` plus tab and newline.
pub const DEFAULT_FILTERS: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";

/// Magic bytes that open the serialised tokenizer.
pub const MAGIC: [u8; 4] = *b"TLTK";

/// Version of the serialised form written by [`Tokenizer::to_bytes`].
pub const FORMAT_VERSION: u8 = 1;

const FLAG_LOWER: u8 = 1;
const FLAG_CHAR_LEVEL: u8 = 2;
const FLAG_OOV: u8 = 4;

mod index;

/// Settings of a [`Tokenizer`], named and defaulted as the Keras constructor arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizerConfig {
    /// Keep indices `< num_words` when applying (`num_words − 1` indices). `None` or `Some(0)`:
    /// no limit (Keras treats `0` as "not set").
    pub num_words: Option<usize>,
    /// Characters replaced by `split` before splitting (word level only).
    pub filters: String,
    /// Lowercase texts with Python's `str.lower` rules first.
    pub lower: bool,
    /// Separator between words (word level only); must not be empty.
    pub split: String,
    /// Tokens are single characters (Unicode scalar values) instead of words.
    pub char_level: bool,
    /// Token given index 1; unknown words (and known words cut by `num_words`) map to it.
    pub oov_token: Option<String>,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            num_words: None,
            filters: DEFAULT_FILTERS.to_owned(),
            lower: true,
            split: " ".to_owned(),
            char_level: false,
            oov_token: None,
        }
    }
}

/// What can go wrong when building, fitting or decoding a [`Tokenizer`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// `split` is empty for a word-level tokenizer (Python's `str.split("")` fails too).
    #[error("tokenizer setting `split` must not be empty for a word-level tokenizer")]
    EmptySplit,
    /// The tokenizer was read with [`Tokenizer::from_bytes`], which keeps no word counts, so it
    /// cannot be fitted further without changing its vocabulary.
    #[error("a tokenizer read from a model file has no word counts and cannot be fitted further")]
    NotFittable,
    /// The serialised tokenizer does not start with [`MAGIC`].
    #[error("tokenizer data: bad magic (expected \"TLTK\")")]
    BadMagic,
    /// The serialised tokenizer has a format version this build does not read.
    #[error("tokenizer data: unsupported format version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// Flag bits that this version does not define are set.
    #[error("tokenizer data: unknown flag bits {0:#04x}")]
    UnknownFlags(u8),
    /// The input ends inside a field.
    #[error("tokenizer data: truncated in {what} at byte {offset}")]
    Truncated {
        /// Field being read.
        what: &'static str,
        /// Byte offset where the field starts.
        offset: usize,
    },
    /// A length or count is larger than the bytes that remain.
    #[error(
        "tokenizer data: {what} at byte {offset} declares length {len}, only {remaining} bytes remain"
    )]
    LengthTooLarge {
        /// Field being read.
        what: &'static str,
        /// Byte offset of the length.
        offset: usize,
        /// Declared length.
        len: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A varint is longer than 5 bytes or exceeds `u32::MAX`.
    #[error("tokenizer data: invalid varint in {what} at byte {offset}")]
    BadVarint {
        /// Field being read.
        what: &'static str,
        /// Byte offset of the varint.
        offset: usize,
    },
    /// A string is not valid UTF-8.
    #[error("tokenizer data: {what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Field being read.
        what: &'static str,
        /// Byte offset of the string.
        offset: usize,
    },
    /// The same word is stored at two indices.
    #[error("tokenizer data: word at index {index} is a duplicate of index {first}")]
    DuplicateWord {
        /// The later index.
        index: u32,
        /// The earlier index.
        first: u32,
    },
    /// An empty word (unused index) where none is allowed.
    #[error("tokenizer data: empty word at index {index}")]
    EmptyWord {
        /// The index of the empty word.
        index: u32,
    },
    /// The OOV flag, OOV index and stored words disagree.
    #[error("tokenizer data: OOV token and OOV index disagree")]
    OovMismatch,
    /// Bytes follow the last word.
    #[error("tokenizer data: {count} unexpected trailing bytes at byte {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// Number of extra bytes.
        count: usize,
    },
}

/// A Keras-compatible text tokenizer: fitted on texts on the host, applied anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokenizer {
    config: TokenizerConfig,
    /// Sorted filter characters, for binary search.
    filter_chars: Vec<char>,
    /// Word counts in first-seen order; `None` for a tokenizer read from bytes.
    word_counts: Option<Vec<(String, u64)>>,
    /// Position of each word in `word_counts`.
    count_pos: HashMap<String, usize>,
    /// Word of index `i` at position `i − 1`; an empty string is an unused index.
    index_word: Vec<String>,
    word_index: HashMap<String, u32>,
    oov_index: Option<u32>,
    document_count: u64,
}

/// Python's `str.lower` (CPython 3.10–3.13 rules); see the module documentation for the few
/// characters where Rust's [`str::to_lowercase`] would differ.
pub fn python_lower(text: &str) -> String {
    if !text.chars().any(tinylstm::text::newer_than_python) {
        return text.to_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        if tinylstm::text::newer_than_python(ch) {
            out.push_str(&text[start..i].to_lowercase());
            out.push(ch);
            start = i + ch.len_utf8();
        }
    }
    out.push_str(&text[start..].to_lowercase());
    out
}

/// Keras `text_to_word_sequence`: lowercase (optional), replace every `filters` character by
/// `split`, split on `split`, drop empty strings. An empty `split` yields the whole (filtered)
/// text as one word, where Python would raise an error; [`Tokenizer::new`] rejects it.
pub fn text_to_word_sequence(text: &str, filters: &str, lower: bool, split: &str) -> Vec<String> {
    let mut filter_chars: Vec<char> = filters.chars().collect();
    filter_chars.sort_unstable();
    let mut out = Vec::new();
    for_each_word(text, &filter_chars, lower, split, |w| out.push(w.to_owned()));
    out
}

fn for_each_word(
    text: &str,
    filter_chars: &[char],
    lower: bool,
    split: &str,
    mut f: impl FnMut(&str),
) {
    let lowered;
    let text = if lower {
        lowered = python_lower(text);
        lowered.as_str()
    } else {
        text
    };
    let mut translated = String::with_capacity(text.len());
    for ch in text.chars() {
        if filter_chars.binary_search(&ch).is_ok() {
            translated.push_str(split);
        } else {
            translated.push(ch);
        }
    }
    if split.is_empty() {
        if !translated.is_empty() {
            f(&translated);
        }
        return;
    }
    for word in translated.split(split) {
        if !word.is_empty() {
            f(word);
        }
    }
}

/// Keras's tokenisation for `config`: characters for `char_level`, else words.
fn for_each_token(
    config: &TokenizerConfig,
    filter_chars: &[char],
    text: &str,
    mut f: impl FnMut(&str),
) {
    if !config.char_level {
        return for_each_word(text, filter_chars, config.lower, &config.split, f);
    }
    let lowered;
    let text = if config.lower {
        lowered = python_lower(text);
        lowered.as_str()
    } else {
        text
    };
    let mut buf = [0u8; 4];
    for ch in text.chars() {
        f(ch.encode_utf8(&mut buf));
    }
}

impl Tokenizer {
    /// An unfitted tokenizer with these settings.
    pub fn new(config: TokenizerConfig) -> Result<Self, TokenizerError> {
        if config.split.is_empty() && !config.char_level {
            return Err(TokenizerError::EmptySplit);
        }
        let mut filter_chars: Vec<char> = config.filters.chars().collect();
        filter_chars.sort_unstable();
        filter_chars.dedup();
        Ok(Self {
            config,
            filter_chars,
            word_counts: Some(Vec::new()),
            count_pos: HashMap::new(),
            index_word: Vec::new(),
            word_index: HashMap::new(),
            oov_index: None,
            document_count: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// Calls `f` on every token of `text`, as Keras splits it for this configuration.
    pub fn for_each_token(&self, text: &str, f: impl FnMut(&str)) {
        for_each_token(&self.config, &self.filter_chars, text, f);
    }

    /// The tokens of `text` (words, or characters for `char_level`), before any lookup.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_token(text, |t| out.push(t.to_owned()));
        out
    }

    /// Keras `fit_on_texts`: counts the tokens of `texts` (adding to earlier counts) and rebuilds
    /// the index. Fails only for a tokenizer read with [`Tokenizer::from_bytes`].
    pub fn fit_on_texts<I, S>(&mut self, texts: I) -> Result<(), TokenizerError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut counts = self.word_counts.take().ok_or(TokenizerError::NotFittable)?;
        let count_pos = &mut self.count_pos;
        let mut add = |tok: &str| match count_pos.get(tok) {
            Some(&p) => counts[p].1 += 1,
            None => {
                count_pos.insert(tok.to_owned(), counts.len());
                counts.push((tok.to_owned(), 1));
            }
        };
        for text in texts {
            self.document_count += 1;
            for_each_token(&self.config, &self.filter_chars, text.as_ref(), &mut add);
        }
        self.rebuild_index(&counts);
        self.word_counts = Some(counts);
        Ok(())
    }

    fn rebuild_index(&mut self, counts: &[(String, u64)]) {
        let mut order: Vec<usize> = (0..counts.len()).collect();
        // `sort_by` is stable: ties keep first-seen order, as Python's sort(reverse=True).
        order.sort_by(|&a, &b| counts[b].1.cmp(&counts[a].1));
        let mut sorted: Vec<String> = Vec::with_capacity(order.len() + 1);
        if let Some(oov) = &self.config.oov_token {
            sorted.push(oov.clone());
        }
        sorted.extend(order.iter().map(|&i| counts[i].0.clone()));
        let mut word_index = HashMap::with_capacity(sorted.len());
        for (i, w) in sorted.iter().enumerate() {
            // Later duplicates win, as Python's dict(zip(words, range(1, n + 1))).
            word_index.insert(w.clone(), index_u32(i + 1));
        }
        for (i, w) in sorted.iter_mut().enumerate() {
            if word_index.get(w.as_str()) != Some(&index_u32(i + 1)) {
                w.clear();
            }
        }
        self.oov_index = self.config.oov_token.as_ref().and_then(|o| word_index.get(o).copied());
        self.index_word = sorted;
        self.word_index = word_index;
    }

    /// Keras `texts_to_sequences`.
    pub fn texts_to_sequences<I, S>(&self, texts: I) -> Vec<Vec<u32>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        texts.into_iter().map(|t| self.text_to_sequence(t.as_ref())).collect()
    }

    /// Keras `texts_to_sequences` for one text.
    pub fn text_to_sequence(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let limit = self.config.num_words.unwrap_or(0);
        self.for_each_token(text, |tok| match self.word_index.get(tok) {
            Some(&i) if limit != 0 && i as usize >= limit => {
                if let Some(o) = self.oov_index {
                    out.push(o);
                }
            }
            Some(&i) => out.push(i),
            None => {
                if let Some(o) = self.oov_index {
                    out.push(o);
                }
            }
        });
        out
    }

    /// Index of `word` in the full vocabulary (Keras `word_index[word]`), if any.
    pub fn index_of(&self, word: &str) -> Option<u32> {
        self.word_index.get(word).copied()
    }

    /// Word with this index (Keras `index_word[index]`), if any.
    pub fn word(&self, index: u32) -> Option<&str> {
        let i = (index as usize).checked_sub(1)?;
        self.index_word.get(i).map(String::as_str).filter(|w| !w.is_empty())
    }

    /// The full vocabulary as `(word, index)` in index order (Keras `word_index`, ordered).
    pub fn word_index(&self) -> Vec<(&str, u32)> {
        self.index_word
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.is_empty())
            .map(|(i, w)| (w.as_str(), index_u32(i + 1)))
            .collect()
    }

    /// Number of distinct words in the vocabulary (Keras `len(word_index)`).
    pub fn vocabulary_len(&self) -> usize {
        self.word_index.len()
    }

    /// Word counts in first-seen order (Keras `word_counts`); `None` for a tokenizer read from
    /// bytes.
    pub fn word_counts(&self) -> Option<&[(String, u64)]> {
        self.word_counts.as_deref()
    }

    /// Number of texts seen by [`fit_on_texts`](Self::fit_on_texts) (Keras `document_count`).
    pub fn document_count(&self) -> u64 {
        self.document_count
    }

    /// Index of the OOV token, when one is set and the tokenizer is fitted.
    pub fn oov_index(&self) -> Option<u32> {
        self.oov_index
    }

    /// Embedding `input_dim` for the ids this tokenizer emits, sized as the Keras seed code
    /// sizes it: `min(num_words, len(word_index) + 1)` (`len(word_index) + 1` without a
    /// limit); never less than the OOV index + 1. Every id from
    /// [`text_to_sequence`](Self::text_to_sequence) is `< vocab_size()`. A tokenizer read back
    /// from bytes gives the same value (it keeps the words below `num_words`).
    pub fn vocab_size(&self) -> usize {
        let oov = self.oov_index.map_or(0, |o| o as usize + 1);
        let all = self.index_word.len() + 1;
        let base = match self.config.num_words {
            Some(n) if n > 0 => n.min(all),
            _ => all,
        };
        base.max(oov)
    }

    /// Serialises the settings and the words that can be emitted (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let kept = match self.config.num_words {
            Some(n) if n > 0 => self.index_word.len().min(n - 1),
            _ => self.index_word.len(),
        };
        let words = &self.index_word[..kept];
        let mut out = Vec::with_capacity(32 + words.iter().map(|w| w.len() + 1).sum::<usize>());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        let mut flags = 0;
        if self.config.lower {
            flags |= FLAG_LOWER;
        }
        if self.config.char_level {
            flags |= FLAG_CHAR_LEVEL;
        }
        if self.config.oov_token.is_some() {
            flags |= FLAG_OOV;
        }
        out.push(flags);
        let num_words = self.config.num_words.unwrap_or(0);
        out.extend_from_slice(&u32::try_from(num_words).unwrap_or(u32::MAX).to_le_bytes());
        // An OOV token set on a tokenizer never fitted has no index yet; Keras would give it 1.
        let oov_index = match (&self.config.oov_token, self.oov_index) {
            (Some(_), Some(i)) => i,
            (Some(_), None) => 1,
            (None, _) => 0,
        };
        out.extend_from_slice(&oov_index.to_le_bytes());
        put_str(&mut out, &self.config.filters);
        put_str(&mut out, &self.config.split);
        if let Some(oov) = &self.config.oov_token {
            put_str(&mut out, oov);
        }
        put_varint(&mut out, index_u32(words.len()));
        for w in words {
            put_str(&mut out, w);
        }
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote. The result applies texts exactly like the
    /// original but holds no word counts (so it cannot be fitted further). Never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(TokenizerError::BadMagic);
        }
        let version = r.take(1, "version")?[0];
        if version != FORMAT_VERSION {
            return Err(TokenizerError::UnsupportedVersion(version));
        }
        let flags = r.take(1, "flags")?[0];
        if flags & !(FLAG_LOWER | FLAG_CHAR_LEVEL | FLAG_OOV) != 0 {
            return Err(TokenizerError::UnknownFlags(flags));
        }
        let num_words = r.u32("num_words")?;
        let oov_index = r.u32("oov index")?;
        let filters = r.string("filters")?;
        let split = r.string("split")?;
        let oov_token = if flags & FLAG_OOV != 0 { Some(r.string("oov token")?) } else { None };
        if oov_token.is_some() != (oov_index != 0) {
            return Err(TokenizerError::OovMismatch);
        }
        let count_offset = r.pos;
        let count = r.varint("word count")?;
        // Every word takes at least one byte (its length), so the count is bounded by the input.
        if count as usize > r.remaining() {
            return Err(TokenizerError::LengthTooLarge {
                what: "word count",
                offset: count_offset,
                len: u64::from(count),
                remaining: r.remaining(),
            });
        }
        let mut index_word = Vec::with_capacity(count as usize);
        let mut word_index = HashMap::with_capacity(count as usize);
        for i in 0..count {
            let index = i + 1;
            let w = r.string("word")?;
            if w.is_empty() {
                if !(index == 1 && oov_token.is_some()) {
                    return Err(TokenizerError::EmptyWord { index });
                }
            } else if let Some(first) = word_index.insert(w.clone(), index) {
                return Err(TokenizerError::DuplicateWord { index, first });
            }
            index_word.push(w);
        }
        if r.remaining() != 0 {
            return Err(TokenizerError::TrailingBytes { offset: r.pos, count: r.remaining() });
        }
        if let Some(oov) = &oov_token {
            let stored = index_word.get(oov_index as usize - 1);
            let consistent = match stored {
                Some(w) => w == oov,
                None => !word_index.contains_key(oov.as_str()),
            };
            if !consistent {
                return Err(TokenizerError::OovMismatch);
            }
        }
        let config = TokenizerConfig {
            num_words: (num_words != 0).then_some(num_words as usize),
            filters,
            lower: flags & FLAG_LOWER != 0,
            split,
            char_level: flags & FLAG_CHAR_LEVEL != 0,
            oov_token,
        };
        let mut tok = Self::new(config)?;
        tok.word_counts = None;
        tok.index_word = index_word;
        tok.word_index = word_index;
        tok.oov_index = (oov_index != 0).then_some(oov_index);
        Ok(tok)
    }
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings longer than u32::MAX bytes cannot occur in practice; clamp rather than panic.
    let len = s.len().min(u32::MAX as usize);
    put_varint(out, len as u32);
    out.extend_from_slice(&s.as_bytes()[..len]);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TokenizerError> {
        if n > self.remaining() {
            return Err(TokenizerError::Truncated { what, offset: self.pos });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, TokenizerError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn varint(&mut self, what: &'static str) -> Result<u32, TokenizerError> {
        let offset = self.pos;
        let mut v: u64 = 0;
        for shift in 0..5 {
            let b = self.take(1, what)?[0];
            v |= u64::from(b & 0x7f) << (7 * shift);
            if b & 0x80 == 0 {
                return u32::try_from(v).map_err(|_| TokenizerError::BadVarint { what, offset });
            }
        }
        Err(TokenizerError::BadVarint { what, offset })
    }

    fn string(&mut self, what: &'static str) -> Result<String, TokenizerError> {
        let offset = self.pos;
        let len = self.varint(what)?;
        if len as usize > self.remaining() {
            return Err(TokenizerError::LengthTooLarge {
                what,
                offset,
                len: u64::from(len),
                remaining: self.remaining(),
            });
        }
        let b = self.take(len as usize, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| TokenizerError::InvalidUtf8 { what, offset })
    }
}

#[cfg(test)]
mod tests;
