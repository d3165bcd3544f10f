//! The preprocessing a model was trained with, in each export format, so that a Rust, C or JSON
//! user turns raw data into model input exactly as `tinylstm predict` does:
//!
//! * **standardisation** (sequence and forecast models): per-channel means and standard
//!   deviations of the training split; a raw value `x` of channel `c` becomes
//!   `(x − mean[c]) / std[c]` (f32 arithmetic, as the host does); forecast outputs are turned
//!   back with `y · std[c] + mean[c]`;
//! * **tokenizer** (text models): the Keras settings (`num_words`, `lower`, `char_level`,
//!   `filters`, `split`, OOV index), the words that can be emitted (`WORDS[i]` has id `i + 1`),
//!   the sequence length and padding/truncation sides. The Rust export also has the whole text
//!   → ids → padded input path, `no_std` and without allocation (lowercasing with
//!   `char::to_lowercase`, which equals Python's `str.lower` except for the final-sigma rule);
//!   the C export has the word table, a lookup and `<name>_text_to_ids` (ASCII lower-casing).

use crate::model_file::ModelBundle;
use crate::preprocess::pad::Side;
use std::fmt::Write as _;

/// A Rust string literal of `s` (escaped with `{:?}`, which Rust source accepts).
fn rust_str(s: &str) -> String {
    format!("{s:?}")
}

/// The words the model can emit, by id: `table[i]` has id `i + 1` (ids below `num_words`;
/// a gap, never filled by the tokenizer, is an empty string).
fn word_table(tok: &crate::preprocess::tokenizer::Tokenizer) -> Vec<String> {
    let limit = tok.config().num_words.filter(|&n| n > 0).unwrap_or(usize::MAX);
    let words: Vec<(&str, u32)> =
        tok.word_index().into_iter().filter(|&(_, i)| (i as usize) < limit).collect();
    let n = words.last().map_or(0, |&(_, i)| i as usize);
    let mut table = vec![String::new(); n];
    for (w, i) in words {
        table[i as usize - 1] = w.to_owned();
    }
    table
}

/// A C string literal of `s`: printable ASCII as is, every other byte as an octal escape.
fn c_str(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'?' => out.push_str("\\?"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

fn f32_list(v: &[f32]) -> String {
    v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ")
}

/// Rust source appended to `model.rs`: constants and functions of the preprocessing.
pub fn rust_preprocessing(bundle: &ModelBundle) -> String {
    let mut s = String::new();
    let meta = &bundle.meta;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "// ---- Preprocessing: raw data to model input, as `tinylstm predict` does ----"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "/// Time steps of the model input (shorter input is padded, longer cut).");
    let _ = writeln!(s, "pub const STEPS: usize = {};", meta.steps);
    let _ =
        writeln!(s, "/// Padding goes before the data (`true`, Keras `padding=\"pre\"`) or after.");
    let _ = writeln!(s, "pub const PADDING_PRE: bool = {};", meta.padding == Side::Pre);
    let _ = writeln!(
        s,
        "/// Truncation drops the first steps (`true`, Keras `truncating=\"pre\"`) or the last."
    );
    let _ = writeln!(s, "pub const TRUNCATING_PRE: bool = {};", meta.truncating == Side::Pre);
    if let Some(n) = &bundle.normalizer {
        let c = n.channels();
        let _ = writeln!(s);
        let _ = writeln!(s, "/// Mean of each input channel over the training split.");
        let _ = writeln!(s, "pub const CHANNEL_MEANS: [f32; {c}] = [{}];", f32_list(n.means()));
        let _ =
            writeln!(s, "/// Standard deviation of each input channel over the training split.");
        let _ = writeln!(s, "pub const CHANNEL_STDS: [f32; {c}] = [{}];", f32_list(n.stds()));
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "/// Standardises raw values `[T][C]` (timestep-major) in place: `(x − mean) / std`."
        );
        let _ = writeln!(s, "pub fn standardize(values: &mut [f32]) {{");
        let _ = writeln!(s, "    for (i, x) in values.iter_mut().enumerate() {{");
        let _ = writeln!(s, "        let c = i % CHANNEL_MEANS.len();");
        let _ = writeln!(s, "        *x = (*x - CHANNEL_MEANS[c]) / CHANNEL_STDS[c];");
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "}}");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "/// Turns standardised values (a forecast's outputs, `[H][C]`) back into raw units."
        );
        let _ = writeln!(s, "pub fn unstandardize(values: &mut [f32]) {{");
        let _ = writeln!(s, "    for (i, x) in values.iter_mut().enumerate() {{");
        let _ = writeln!(s, "        let c = i % CHANNEL_MEANS.len();");
        let _ = writeln!(s, "        *x = *x * CHANNEL_STDS[c] + CHANNEL_MEANS[c];");
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "}}");
    }
    if let Some(tok) = &bundle.tokenizer {
        let cfg = tok.config();
        let table = word_table(tok);
        let n = table.len();
        let _ = writeln!(s);
        let _ =
            writeln!(s, "/// Keras `Tokenizer(num_words)` (0: no limit): ids below it are kept.");
        let _ = writeln!(s, "pub const NUM_WORDS: usize = {};", cfg.num_words.unwrap_or(0));
        let _ = writeln!(s, "/// Lowercase the text first.");
        let _ = writeln!(s, "pub const LOWER: bool = {};", cfg.lower);
        let _ = writeln!(s, "/// Every character is a token (else words split on `SPLIT`).");
        let _ = writeln!(s, "pub const CHAR_LEVEL: bool = {};", cfg.char_level);
        let _ = writeln!(s, "/// Characters replaced by `SPLIT` before splitting (word level).");
        let _ = writeln!(s, "pub const FILTERS: &str = {};", rust_str(&cfg.filters));
        let _ = writeln!(s, "/// The word separator.");
        let _ = writeln!(s, "pub const SPLIT: &str = {};", rust_str(&cfg.split));
        let _ = writeln!(s, "/// Id of unknown words (0: they are dropped).");
        let _ = writeln!(s, "pub const OOV_INDEX: u32 = {};", tok.oov_index().unwrap_or(0));
        let _ = writeln!(
            s,
            "/// The words that can be emitted: `WORDS[i]` has id `i + 1` (\"\" unused)."
        );
        let _ = writeln!(s, "pub static WORDS: [&str; {n}] = [");
        for w in &table {
            let _ = writeln!(s, "    {},", rust_str(w));
        }
        let _ = writeln!(s, "];");
        s.push_str(RUST_TOKENIZER);
    }
    s
}

const RUST_TOKENIZER: &str = r#"
/// The id of one token: its index in [`WORDS`] + 1, else [`OOV_INDEX`] (0: drop it).
pub fn token_id(token: &str) -> u32 {
    match WORDS.iter().position(|w| !w.is_empty() && *w == token) {
        Some(i) => i as u32 + 1,
        None => OOV_INDEX,
    }
}

/// Calls `emit` with the id of every token of `text`, in order (Keras `texts_to_sequences`).
/// Words longer than 256 bytes are unknown words.
pub fn for_each_id(text: &str, mut emit: impl FnMut(u32)) {
    fn flush(buf: &[u8], len: &mut usize, long: &mut bool, emit: &mut dyn FnMut(u32)) {
        if *len > 0 || *long {
            let word = core::str::from_utf8(&buf[..*len]);
            let id = if *long { OOV_INDEX } else { word.map_or(OOV_INDEX, token_id) };
            if id != 0 {
                emit(id);
            }
        }
        *len = 0;
        *long = false;
    }
    let mut buf = [0u8; 256];
    let mut len = 0usize;
    let mut long = false;
    let split = SPLIT.chars().next().unwrap_or(' ');
    for ch in text.chars() {
        let mut lowered = [ch, '\0', '\0'];
        let mut count = 1;
        if LOWER {
            count = 0;
            for l in ch.to_lowercase() {
                if count < 3 {
                    lowered[count] = l;
                    count += 1;
                }
            }
        }
        for &c in &lowered[..count] {
            let mut tmp = [0u8; 4];
            let bytes = c.encode_utf8(&mut tmp).as_bytes();
            if CHAR_LEVEL {
                let id = core::str::from_utf8(bytes).map_or(OOV_INDEX, token_id);
                if id != 0 {
                    emit(id);
                }
            } else if c == split || FILTERS.contains(c) {
                flush(&buf, &mut len, &mut long, &mut emit);
            } else if len + bytes.len() <= buf.len() {
                buf[len..len + bytes.len()].copy_from_slice(bytes);
                len += bytes.len();
            } else {
                long = true;
            }
        }
    }
    if !CHAR_LEVEL {
        flush(&buf, &mut len, &mut long, &mut emit);
    }
}

/// The model input of `text`: its ids cut and padded (with 0) to [`STEPS`] as Keras
/// `pad_sequences` does with this model's sides.
pub fn text_to_input(text: &str) -> [u32; STEPS] {
    let mut ring = [0u32; STEPS];
    let mut n = 0usize;
    for_each_id(text, |id| {
        if TRUNCATING_PRE {
            ring[n % STEPS] = id;
        } else if n < STEPS {
            ring[n] = id;
        }
        n += 1;
    });
    let kept = n.min(STEPS);
    let mut ids = [0u32; STEPS];
    for (k, id) in ids.iter_mut().enumerate().take(kept) {
        *id = if TRUNCATING_PRE && n > STEPS { ring[(n + k) % STEPS] } else { ring[k] };
    }
    let mut out = [0u32; STEPS];
    let start = if PADDING_PRE { STEPS - kept } else { 0 };
    out[start..start + kept].copy_from_slice(&ids[..kept]);
    out
}
"#;

/// C declarations inserted before the header's closing `#endif`.
pub fn c_preprocessing(bundle: &ModelBundle, name: &str) -> String {
    let up = name.to_ascii_uppercase();
    let meta = &bundle.meta;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "/* ---- Preprocessing: raw data to model input, as `tinylstm predict` does ---- */"
    );
    let _ = writeln!(s, "#include <stddef.h>");
    let _ = writeln!(s, "#include <string.h>");
    let _ = writeln!(s, "#define {up}_STEPS {} /* time steps of the input */", meta.steps);
    let _ = writeln!(
        s,
        "#define {up}_PADDING_PRE {} /* 1: padding before the data */",
        u8::from(meta.padding == Side::Pre)
    );
    let _ = writeln!(
        s,
        "#define {up}_TRUNCATING_PRE {} /* 1: cutting drops the first steps */",
        u8::from(meta.truncating == Side::Pre)
    );
    if let Some(n) = &bundle.normalizer {
        let c = n.channels();
        let list = |v: &[f32]| {
            v.iter()
                .map(|x| super::c::c_hex_float(*x).unwrap_or_else(|| "0.0f".into()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "/* Mean and standard deviation of each input channel over the training split. */"
        );
        let _ = writeln!(
            s,
            "static const float {name}_channel_means[{c}] = {{ {} }};",
            list(n.means())
        );
        let _ =
            writeln!(s, "static const float {name}_channel_stds[{c}] = {{ {} }};", list(n.stds()));
        let _ = writeln!(
            s,
            "/* Standardises raw values [T][C] (timestep-major) in place: (x - mean) / std. */"
        );
        let _ =
            writeln!(s, "static inline void {name}_standardize(float *values, size_t count) {{");
        let _ = writeln!(s, "    for (size_t i = 0; i < count; i++) {{");
        let _ = writeln!(s, "        values[i] = (values[i] - {name}_channel_means[i % {c}]) / {name}_channel_stds[i % {c}];");
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "}}");
        let _ = writeln!(
            s,
            "/* Turns standardised values (a forecast's outputs) back into raw units. */"
        );
        let _ =
            writeln!(s, "static inline void {name}_unstandardize(float *values, size_t count) {{");
        let _ = writeln!(s, "    for (size_t i = 0; i < count; i++) {{");
        let _ = writeln!(s, "        values[i] = values[i] * {name}_channel_stds[i % {c}] + {name}_channel_means[i % {c}];");
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "}}");
    }
    if let Some(tok) = &bundle.tokenizer {
        let cfg = tok.config();
        let table = word_table(tok);
        let n = table.len();
        let _ = writeln!(
            s,
            "/* Keras Tokenizer settings: ids below NUM_WORDS are kept (0: no limit). */"
        );
        let _ = writeln!(s, "#define {up}_NUM_WORDS {}", cfg.num_words.unwrap_or(0));
        let _ = writeln!(s, "#define {up}_LOWER {}", u8::from(cfg.lower));
        let _ = writeln!(s, "#define {up}_CHAR_LEVEL {}", u8::from(cfg.char_level));
        let _ = writeln!(
            s,
            "#define {up}_OOV_INDEX {}u /* id of unknown words; 0: dropped */",
            tok.oov_index().unwrap_or(0)
        );
        let _ = writeln!(s, "#define {up}_WORD_COUNT {n}");
        let _ = writeln!(s, "static const char {name}_filters[] = {};", c_str(&cfg.filters));
        let _ = writeln!(s, "static const char {name}_split[] = {};", c_str(&cfg.split));
        let _ = writeln!(s, "/* {name}_words[i] (UTF-8) has id i + 1; \"\" is unused. */");
        let _ = writeln!(s, "static const char *const {name}_words[{}] = {{", n.max(1));
        for w in &table {
            let _ = writeln!(s, "    {},", c_str(w));
        }
        if n == 0 {
            let _ = writeln!(s, "    \"\",");
        }
        let _ = writeln!(s, "}};");
        let _ = writeln!(s, "/* The id of one token (already lowercased and split): its index + 1, else the OOV id. */");
        let _ =
            writeln!(s, "static inline uint32_t {name}_token_id(const char *token, size_t len) {{");
        let _ = writeln!(s, "    for (uint32_t i = 0; i < {up}_WORD_COUNT; i++) {{");
        let _ = writeln!(s, "        const char *w = {name}_words[i];");
        let _ = writeln!(s, "        size_t k = 0;");
        let _ = writeln!(s, "        while (k < len && w[k] != '\\0' && w[k] == token[k]) k++;");
        let _ = writeln!(s, "        if (k == len && w[k] == '\\0' && len > 0) return i + 1;");
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "    return {up}_OOV_INDEX;");
        let _ = writeln!(s, "}}");
        s += &C_TEXT_TO_IDS.replace("@UP@", &up).replace("@name@", name);
    }
    s
}

/// C: UTF-8 text to the model's padded ids, as the Rust export's `text_to_input`. `@name@` and
/// `@UP@` stand for the export's name in lower and upper case.
const C_TEXT_TO_IDS: &str = r#"/* Bytes of the UTF-8 sequence starting with lead byte b (an invalid byte counts as one). */
static inline size_t @name@_utf8_len(unsigned char b) {
    if (b < 0x80u) return 1;
    if ((b & 0xE0u) == 0xC0u) return 2;
    if ((b & 0xF0u) == 0xE0u) return 3;
    if ((b & 0xF8u) == 0xF0u) return 4;
    return 1;
}
/* 1 when the character c (n bytes) is one of the characters of set. */
static inline int @name@_in_set(const char *set, const char *c, size_t n) {
    size_t i = 0;
    while (set[i] != '\0') {
        size_t m = @name@_utf8_len((unsigned char)set[i]);
        size_t k = 0;
        while (k < m && set[i + k] != '\0') k++;
        if (k == n && memcmp(set + i, c, n) == 0) return 1;
        i += k;
    }
    return 0;
}
/* Appends one id as pad_sequences keeps it (ring: the last STEPS ids when cutting the first). */
static inline void @name@_keep(uint32_t *ring, size_t *count, uint32_t id) {
    if (id == 0) return;
    if (@UP@_TRUNCATING_PRE) ring[*count % @UP@_STEPS] = id;
    else if (*count < @UP@_STEPS) ring[*count] = id;
    (*count)++;
}
/* Keras texts_to_sequences + pad_sequences: the model input of the NUL-terminated UTF-8 text,
   ids[STEPS]. As the host: filters and the split character separate words, a word longer than
   256 bytes is an unknown word. Lower-casing covers ASCII letters only (C has no Unicode case
   table): lower-case other scripts' capitals before calling when the model lower-cases. */
static inline void @name@_text_to_ids(const char *text, uint32_t ids[@UP@_STEPS]) {
    uint32_t ring[@UP@_STEPS];
    size_t count = 0, len = 0, i = 0;
    char word[256];
    int longer = 0;
    size_t split_len = @name@_split[0] ? @name@_utf8_len((unsigned char)@name@_split[0]) : 0;
    while (text[i] != '\0') {
        char c[4];
        size_t n = @name@_utf8_len((unsigned char)text[i]), k;
        for (k = 0; k < n && text[i + k] != '\0'; k++) c[k] = text[i + k];
        n = k;
        i += n;
        if (@UP@_LOWER && n == 1 && c[0] >= 'A' && c[0] <= 'Z') c[0] = (char)(c[0] - 'A' + 'a');
        if (@UP@_CHAR_LEVEL) {
            @name@_keep(ring, &count, @name@_token_id(c, n));
        } else if ((n == split_len && memcmp(c, @name@_split, n) == 0) || @name@_in_set(@name@_filters, c, n)) {
            if (len > 0 || longer) @name@_keep(ring, &count, longer ? @UP@_OOV_INDEX : @name@_token_id(word, len));
            len = 0;
            longer = 0;
        } else if (len + n <= sizeof word) {
            memcpy(word + len, c, n);
            len += n;
        } else {
            longer = 1;
        }
    }
    if (!@UP@_CHAR_LEVEL && (len > 0 || longer)) @name@_keep(ring, &count, longer ? @UP@_OOV_INDEX : @name@_token_id(word, len));
    {
        size_t kept = count < @UP@_STEPS ? count : @UP@_STEPS;
        size_t start = @UP@_PADDING_PRE ? @UP@_STEPS - kept : 0, j;
        for (j = 0; j < @UP@_STEPS; j++) ids[j] = 0;
        for (j = 0; j < kept; j++) {
            size_t from = (@UP@_TRUNCATING_PRE && count > @UP@_STEPS) ? (count + j) % @UP@_STEPS : j;
            ids[start + j] = ring[from];
        }
    }
}
"#;

/// The `preprocessing` member of `model.json`.
pub fn json_preprocessing(bundle: &ModelBundle) -> serde_json::Value {
    let meta = &bundle.meta;
    let mut v = serde_json::json!({
        "steps": meta.steps,
        "padding": meta.padding,
        "truncating": meta.truncating,
    });
    if let Some(n) = &bundle.normalizer {
        v["standardization"] = serde_json::json!({
            "formula": "(x - mean[c]) / std[c] per channel c",
            "means": n.means(),
            "stds": n.stds(),
        });
    }
    if let Some(tok) = &bundle.tokenizer {
        let cfg = tok.config();
        let limit = cfg.num_words.filter(|&n| n > 0).unwrap_or(usize::MAX);
        let index: serde_json::Map<String, serde_json::Value> = tok
            .word_index()
            .into_iter()
            .filter(|&(_, i)| (i as usize) < limit)
            .map(|(w, i)| (w.to_owned(), i.into()))
            .collect();
        v["tokenizer"] = serde_json::json!({
            "num_words": cfg.num_words,
            "lower": cfg.lower,
            "char_level": cfg.char_level,
            "filters": cfg.filters,
            "split": cfg.split,
            "oov_token": cfg.oov_token,
            "oov_index": tok.oov_index(),
            "word_index": index,
        });
    }
    v
}
