//! The build script's model step: reads the `.tlm` to embed (through the core's reader), checks
//! it, and generates `OUT_DIR/model.rs` with everything the firmware compiles from it — spec,
//! sequence length, class names, head and input kind, standardisation, the data sets and the
//! board's RAM — so any model `tinylstm train` writes builds with no source edit. A model that
//! does not fit the board's RAM fails the build with the bytes needed and available.
//!
//! Inputs (environment):
//! * `TINYLSTM_MODEL` — the model (absolute, or relative to `firmware/`); default
//!   `models/default.tlm`.
//! * `TINYLSTM_DATA` — a folder with `samples.bin` and optionally `field_train.bin` and
//!   `field_valid.bin` (written by `tinylstm device-data`); default `data/` when its sets fit
//!   the model, else a generated probe set (8 sequences of deterministic pseudo-random input in
//!   the model's training range) and no fine-tuning data. For a text model the folder may hold
//!   the sets as sentences instead — `samples.json` (and `field_train.json`, `field_valid.json`),
//!   each a JSON array of `{"label": L, "text": "…"}` (L: class id, or the target value of a
//!   sigmoid/linear head), also written by `tinylstm device-data` — which the firmware
//!   tokenizes at boot with the model's own tokenizer (`tinylstm::text`); they take precedence
//!   over the `.bin` sets.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use tinylstm::format::ModelFile;
use tinylstm::text::Tokenizer;
use tinylstm::{Head, InputKind, Spec};
use tinylstm_device::data::{check_data, Shape, MAX_SET};
use tinylstm_device::norm::{decode_section, metadata_steps};
use tinylstm_device::ram::{self, Sets};
use tinylstm_device::tune::{FullConfig, HeadConfig};

/// Bytes of RAM kept for the stack and the firmware's other statics (defmt, the log summary).
const STACK_RESERVE: usize = 16 * 1024;
/// Sequences of the generated probe set.
const PROBE_N: usize = 8;

fn fail(msg: String) -> ! {
    eprintln!("error: {msg}");
    panic!("{msg}");
}

fn spec_expr(spec: &Spec) -> String {
    let mut s = match spec.input {
        InputKind::Tokens { vocab, embed } => format!("Spec::tokens({vocab}, {embed})"),
        InputKind::Channels(c) => format!("Spec::channels({c})"),
    };
    for l in 0..spec.layers {
        write!(s, ".lstm({})", spec.units[l]).unwrap();
    }
    let head = match spec.head {
        Head::Sigmoid => "Sigmoid",
        Head::Softmax => "Softmax",
        Head::Linear => "Linear",
    };
    write!(s, ".dense({}, Head::{head})", spec.outputs).unwrap();
    // The mask of a `.tlm` v2 model: the device skips the same steps as the host.
    match spec.mask {
        tinylstm::Mask::Off => {}
        tinylstm::Mask::Zero => s.push_str(".mask_zero()"),
        tinylstm::Mask::Value(v) => {
            write!(s, ".masking(f32::from_bits({:#010x}))", v.to_bits()).unwrap()
        }
    }
    s
}

fn f32s(v: &[f32]) -> String {
    let items: Vec<String> =
        v.iter().map(|x| format!("f32::from_bits({:#010x})", x.to_bits())).collect();
    format!("[{}]", items.join(", "))
}

/// RAM LENGTH of the board's memory.x (`4M`, `128K`, `0x20000` or decimal).
fn board_ram(memory_x: &Path) -> usize {
    let text = fs::read_to_string(memory_x).unwrap_or_default();
    for line in text.lines() {
        let l = line.trim();
        if !l.starts_with("RAM") {
            continue;
        }
        if let Some(len) = l.split("LENGTH").nth(1) {
            let v = len.trim_start_matches([' ', '=']).trim().trim_end_matches(',');
            let (num, mul) = match v.chars().last() {
                Some('K') => (&v[..v.len() - 1], 1024),
                Some('M') => (&v[..v.len() - 1], 1024 * 1024),
                _ => (v, 1),
            };
            let n = match num.strip_prefix("0x") {
                Some(h) => usize::from_str_radix(h, 16).ok(),
                None => num.parse().ok(),
            };
            if let Some(n) = n {
                return n * mul;
            }
        }
    }
    fail(format!("{}: no `RAM : ORIGIN = …, LENGTH = …` line", memory_x.display()))
}

/// A deterministic probe set: `n` sequences of pseudo-random raw input in the model's training
/// range (mean ± 1.5 std per channel when the model standardises, else ±1.5; token ids in
/// `1..V`), targets 0.
fn probe_set(shape: &Shape, means: &[f32], stds: &[f32], n: usize) -> Vec<u8> {
    let mut out = shape.header(n).to_vec();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    for i in 0..n {
        for w in 0..shape.target_words() {
            let y = match shape.head {
                Head::Softmax => (i % shape.outputs) as u32,
                Head::Sigmoid => (((i + w) % 2) as f32).to_bits(),
                Head::Linear => 0f32.to_bits(),
            };
            out.extend_from_slice(&y.to_le_bytes());
        }
        for k in 0..shape.seq_words() {
            let u = next();
            let word = if shape.tokens() {
                1 + ((u * (shape.vocab - 1) as f32) as u32).min(shape.vocab as u32 - 2)
            } else {
                let c = k % shape.width;
                let (m, sd) = if means.is_empty() { (0.0, 1.0) } else { (means[c], stds[c]) };
                (m + sd * (3.0 * u - 1.5)).to_bits()
            };
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    out
}

/// Generates `OUT_DIR/model.rs` and the files it embeds. `memory_x` is the board's memory.x.
/// `heap`: bytes of the heap of a model loaded at run time (0 without `runtime-model`), counted
/// in the RAM check.
pub fn generate(out: &Path, manifest: &Path, memory_x: &Path, heap: usize) {
    println!("cargo:rerun-if-env-changed=TINYLSTM_MODEL");
    println!("cargo:rerun-if-env-changed=TINYLSTM_DATA");
    println!("cargo:rerun-if-changed=build_model.rs");
    let model_path = match env::var_os("TINYLSTM_MODEL") {
        Some(p) if !p.is_empty() => manifest.join(PathBuf::from(p)),
        _ => manifest.join("models/default.tlm"),
    };
    println!("cargo:rerun-if-changed={}", model_path.display());
    let bytes = fs::read(&model_path).unwrap_or_else(|e| {
        fail(format!("TINYLSTM_MODEL: cannot read the model {}: {e}", model_path.display()))
    });
    let file = ModelFile::parse(&bytes).unwrap_or_else(|e| {
        fail(format!("TINYLSTM_MODEL {}: not a usable model file: {e}", model_path.display()))
    });
    let spec = file.spec();
    let embedding_int8 = file.embedding_int8().is_some();
    if embedding_int8 && env::var_os("CARGO_FEATURE_FULL_FINETUNE").is_some() {
        fail(format!(
            "TINYLSTM_MODEL {}: the Embedding is stored as int8 (frozen on the device): build              without `full-finetune` (`--no-default-features --features <board>,head-finetune`)",
            model_path.display()
        ));
    }
    let meta = file.metadata().map(|m| String::from_utf8_lossy(m).into_owned());
    let meta_json: Option<serde_json::Value> =
        meta.as_deref().and_then(|m| serde_json::from_str(m).ok());
    let steps = match file.metadata().and_then(metadata_steps) {
        Some(t) if t > 0 => t,
        _ => fail(format!(
            "TINYLSTM_MODEL {}: its METADATA section does not say the sequence length \
             (`\"steps\":T`, written by `tinylstm train`)",
            model_path.display()
        )),
    };
    let class_names: Vec<String> = match spec.head {
        Head::Linear => Vec::new(),
        _ => {
            let named = meta_json
                .as_ref()
                .and_then(|j| j.get("class_names"))
                .and_then(|c| c.as_array())
                .map(|a| {
                    a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let k = if spec.head == Head::Sigmoid && spec.outputs == 1 { 2 } else { spec.outputs };
            if named.len() == k {
                named
            } else {
                (0..k).map(|i| i.to_string()).collect()
            }
        }
    };

    // Standardisation.
    let (mut means, mut stds) = (Vec::new(), Vec::new());
    if let (Some(sec), InputKind::Channels(c)) = (file.normalization(), spec.input) {
        means = vec![0.0f32; c];
        stds = vec![0.0f32; c];
        if let Err(e) = decode_section(sec, c, &mut means, &mut stds) {
            fail(format!("TINYLSTM_MODEL {}: model rejected: {e}", model_path.display()));
        }
    }

    // The model, padded so that its parameters start at a 4-byte aligned address.
    let params_at = tinylstm_device::model::params_offset(&file);
    let pad = (4 - params_at % 4) % 4;
    let mut padded = vec![0u8; pad];
    padded.extend_from_slice(&bytes);
    fs::write(out.join("model.bin"), &padded).unwrap();

    // Data sets.
    let shape = Shape::of(&spec, steps);
    let default_data = manifest.join("data");
    let (data_dir, explicit) = match env::var_os("TINYLSTM_DATA") {
        Some(p) if !p.is_empty() => (manifest.join(PathBuf::from(p)), true),
        _ => (default_data, false),
    };
    println!("cargo:rerun-if-changed={}", data_dir.display());
    let read_set = |name: &str| -> Option<Vec<u8>> {
        let p = data_dir.join(format!("{name}.bin"));
        let b = fs::read(&p).ok()?;
        match check_data(&b, &shape) {
            Ok(_) => Some(b),
            Err(e) if explicit => fail(format!(
                "TINYLSTM_DATA {}: {e} (model: {steps} steps, {shape:?})",
                p.display()
            )),
            Err(_) => None,
        }
    };
    let text_sets = read_text_sets(&file, &model_path, &data_dir, &shape, &class_names);
    let (samples, train, valid, source) = match read_set("samples") {
        _ if text_sets.is_some() => {
            (Vec::new(), Vec::new(), Vec::new(), format!("{} (sentences)", data_dir.display()))
        }
        Some(s) => {
            let (t, v) = (read_set("field_train"), read_set("field_valid"));
            match (t, v) {
                (Some(t), Some(v)) => (s, t, v, data_dir.display().to_string()),
                _ => (s, Vec::new(), Vec::new(), data_dir.display().to_string()),
            }
        }
        None if explicit => fail(format!(
            "TINYLSTM_DATA {}: no samples.bin (write it with `tinylstm device-data`)",
            data_dir.display()
        )),
        None => {
            (probe_set(&shape, &means, &stds, PROBE_N), Vec::new(), Vec::new(), "probe".to_string())
        }
    };
    for (name, b) in [("samples", &samples), ("field_train", &train), ("field_valid", &valid)] {
        fs::write(out.join(format!("{name}.bin")), b).unwrap();
    }
    let count = |b: &[u8]| if b.is_empty() { 0 } else { check_data(b, &shape).unwrap() };
    let sets = match &text_sets {
        Some(t) => Sets { samples: t[0].len(), train: t[1].len(), valid: t[2].len() },
        None => Sets { samples: count(&samples), train: count(&train), valid: count(&valid) },
    };
    // Sentences are tokenized at boot into data sets in RAM.
    let text_ram = match &text_sets {
        Some(_) => [sets.samples, sets.train, sets.valid]
            .iter()
            .map(|&n| if n == 0 { 0 } else { shape.set_len(n) })
            .sum(),
        None => 0,
    };

    // RAM per mode against the board's.
    let feature = |f: &str| env::var_os(format!("CARGO_FEATURE_{f}")).is_some();
    let inference = ram::inference(&spec, steps, &sets);
    let head =
        if feature("HEAD_FINETUNE") { ram::head(&spec, &HeadConfig::DEFAULT, &sets) } else { 0 };
    let full =
        if feature("FULL_FINETUNE") { ram::full(&spec, steps, &FullConfig::DEFAULT) } else { 0 };
    let board = board_ram(memory_x);
    // Persisting without full fine-tuning keeps a RAM copy of every parameter (full
    // fine-tuning's own live copy serves otherwise).
    let persist =
        if feature("PERSIST") && !feature("FULL_FINETUNE") { 4 * spec.param_count() } else { 0 };
    let needed = inference + head + full + text_ram + heap + persist;
    let available = board.saturating_sub(STACK_RESERVE);
    if needed > available {
        fail(format!(
            "the model does not fit the board's RAM: it needs {needed} bytes (inference {inference}, \
             head-only fine-tuning {head}, full fine-tuning {full}, sentences tokenized {text_ram}, heap of the runtime model {heap}, parameters kept for the flash slots {persist}) and the board has {available} \
             bytes ({board} bytes of RAM less {STACK_RESERVE} kept for the stack); build without \
             `full-finetune` (or `head-finetune`), or train a smaller model ({})",
            model_path.display()
        ));
    }

    let mut src = String::new();
    let names: Vec<String> = class_names.iter().map(|n| format!("{n:?}")).collect();
    let w = &mut src;
    writeln!(
        w,
        "// @generated by build.rs (build_model.rs) from {}; do not edit.",
        model_path.display()
    )
    .unwrap();
    writeln!(w, "/// The model's architecture, read from its file.").unwrap();
    writeln!(w, "pub const SPEC: Spec = {};", spec_expr(&spec)).unwrap();
    writeln!(w, "/// Time steps per sequence (the model's METADATA `steps`).").unwrap();
    writeln!(w, "pub const STEPS: usize = {steps};").unwrap();
    writeln!(w, "/// True when the model file stores the Embedding as int8 (format version 3).")
        .unwrap();
    writeln!(w, "pub const EMBEDDING_INT8: bool = {embedding_int8};").unwrap();
    writeln!(
        w,
        "/// Class names by label (empty for a linear head; `0`, `1` for one sigmoid output)."
    )
    .unwrap();
    writeln!(w, "pub const CLASS_NAMES: &[&str] = &[{}];", names.join(", ")).unwrap();
    writeln!(w, "/// True when the model standardises its input (NORMALIZATION section).").unwrap();
    writeln!(w, "pub const HAS_NORM: bool = {};", !means.is_empty()).unwrap();
    writeln!(w, "/// Per-channel means of the standardisation (empty without one).").unwrap();
    writeln!(w, "pub const NORM_MEANS: [f32; {}] = {};", means.len(), f32s(&means)).unwrap();
    writeln!(w, "/// Per-channel standard deviations of the standardisation.").unwrap();
    writeln!(w, "pub const NORM_STDS: [f32; {}] = {};", stds.len(), f32s(&stds)).unwrap();
    writeln!(w, "/// Zero bytes in front of the model in [`MODEL_ALIGNED`].").unwrap();
    writeln!(w, "pub const MODEL_PAD: usize = {pad};").unwrap();
    writeln!(w, "/// The `.tlm` file after [`MODEL_PAD`] bytes, 4-byte aligned so its parameters are read in place.").unwrap();
    writeln!(w, "pub static MODEL_ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!(\"OUT_DIR\"), \"/model.bin\")));").unwrap();
    writeln!(w, "/// Where the embedded model came from.").unwrap();
    writeln!(w, "pub const MODEL_PATH: &str = {:?};", model_path.display().to_string()).unwrap();
    writeln!(w, "/// Where the data sets came from (`probe`: generated, no fine-tuning data).")
        .unwrap();
    writeln!(w, "pub const DATA_SOURCE: &str = {source:?};").unwrap();
    for (name, n) in
        [("SAMPLES", "samples"), ("FIELD_TRAIN", "field_train"), ("FIELD_VALID", "field_valid")]
    {
        writeln!(w, "/// The `{n}` data set (raw input; empty when absent).").unwrap();
        writeln!(
            w,
            "pub const {name}: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{n}.bin\"));"
        )
        .unwrap();
    }
    writeln!(w, "/// True when the data sets are sentences the firmware tokenizes at boot.")
        .unwrap();
    writeln!(w, "pub const TEXT_SETS: bool = {};", text_sets.is_some()).unwrap();
    let (padding, truncating) = pad_sides(meta_json.as_ref());
    writeln!(
        w,
        "/// The model's `pad_sequences` settings (METADATA `steps`, `padding`, `truncating`)."
    )
    .unwrap();
    writeln!(
        w,
        "pub const PAD: Pad = Pad {{ maxlen: {steps}, padding: Side::{padding}, truncating: Side::{truncating} }};"
    )
    .unwrap();
    let empty: [Vec<(u32, String)>; 3] = Default::default();
    for (name, set) in ["TEXT_SAMPLES", "TEXT_TRAIN", "TEXT_VALID"]
        .iter()
        .zip(text_sets.as_ref().unwrap_or(&empty))
    {
        let items: Vec<String> = set
            .iter()
            .map(|(t, s)| format!("Sentence {{ target: {t:#010x}, text: {s:?} }}"))
            .collect();
        writeln!(w, "/// Sentences of the `{name}` set (empty unless [`TEXT_SETS`]).").unwrap();
        writeln!(w, "pub const {name}: &[Sentence<'static>] = &[{}];", items.join(", ")).unwrap();
    }
    writeln!(w, "/// RAM of the data sets tokenized at boot.").unwrap();
    writeln!(w, "pub const RAM_TEXT: usize = {text_ram};").unwrap();
    writeln!(w, "/// Bytes of RAM of the board (its memory.x).").unwrap();
    writeln!(w, "pub const BOARD_RAM: usize = {board};").unwrap();
    fs::write(out.join("model.rs"), src).unwrap();
}

/// `Pre`/`Post` of the METADATA `padding` and `truncating` (Keras's default `pre`).
fn pad_sides(meta: Option<&serde_json::Value>) -> (&'static str, &'static str) {
    let side = |key: &str| match meta.and_then(|m| m.get(key)).and_then(|v| v.as_str()) {
        Some("post") => "Post",
        _ => "Pre",
    };
    (side("padding"), side("truncating"))
}

/// The sentence sets of a text model (`samples.json`, `field_train.json`, `field_valid.json`
/// in `dir`) as `(target word, text)`; `None` when the model reads no text or there is no
/// `samples.json`. Fails the build on a set the device could not use, and when the model's
/// tokenizer does not read in the core.
fn read_text_sets(
    file: &ModelFile<'_>,
    model_path: &Path,
    dir: &Path,
    shape: &Shape,
    class_names: &[String],
) -> Option<[Vec<(u32, String)>; 3]> {
    if !shape.tokens() || file.tokenizer().is_none() {
        return None;
    }
    let samples = dir.join("samples.json");
    println!("cargo:rerun-if-changed={}", samples.display());
    if !samples.is_file() {
        return None;
    }
    let tok = Tokenizer::from_model(file).unwrap_or_else(|e| {
        fail(format!(
            "TINYLSTM_MODEL {}: its tokenizer cannot run on the device: {e}",
            model_path.display()
        ))
    });
    if tok.id_bound() as usize > shape.vocab {
        fail(format!(
            "TINYLSTM_MODEL {}: its tokenizer emits ids up to {} but the embedding has {} rows",
            model_path.display(),
            tok.id_bound() - 1,
            shape.vocab
        ));
    }
    let read = |name: &str| -> Vec<(u32, String)> {
        let p = dir.join(format!("{name}.json"));
        println!("cargo:rerun-if-changed={}", p.display());
        if !p.exists() {
            return Vec::new();
        }
        let text = fs::read_to_string(&p).unwrap_or_else(|e| {
            fail(format!("TINYLSTM_DATA {}: cannot read it as UTF-8 text: {e}", p.display()))
        });
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| fail(format!("TINYLSTM_DATA {}: not JSON: {e}", p.display())));
        let items = v.as_array().unwrap_or_else(|| {
            fail(format!("TINYLSTM_DATA {}: expected an array of {{label, text}}", p.display()))
        });
        if items.is_empty() || items.len() > MAX_SET {
            fail(format!(
                "TINYLSTM_DATA {}: {} sentences (a set holds 1 to {MAX_SET})",
                p.display(),
                items.len()
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let at = || format!("TINYLSTM_DATA {}: sentence {i}", p.display());
                let text = it
                    .get("text")
                    .and_then(|t| t.as_str())
                    .unwrap_or_else(|| fail(format!("{}: no string field `text`", at())));
                let label = it
                    .get("label")
                    .and_then(|l| l.as_f64())
                    .unwrap_or_else(|| fail(format!("{}: no number field `label`", at())));
                let target = match shape.head {
                    Head::Softmax => {
                        let k = class_names.len();
                        if label.fract() != 0.0 || label < 0.0 || label >= k as f64 {
                            fail(format!("{}: label {label} is not a class id below {k}", at()));
                        }
                        label as u32
                    }
                    _ if shape.outputs != 1 => fail(format!(
                        "{}: a sentence holds one target, the model has {} outputs",
                        at(),
                        shape.outputs
                    )),
                    _ => (label as f32).to_bits(),
                };
                (target, text.to_string())
            })
            .collect()
    };
    let sets = [read("samples"), read("field_train"), read("field_valid")];
    if sets[0].is_empty() || sets[1].is_empty() != sets[2].is_empty() {
        fail(format!(
            "TINYLSTM_DATA {}: samples.json needs sentences, and field_train.json and \
             field_valid.json come together",
            dir.display()
        ));
    }
    Some(sets)
}
