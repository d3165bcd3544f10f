//! Reliability (RELIABILITY.md): replays of the fuzzers' saved inputs, the bad-input
//! catalogue, crash safety of checkpointing under SIGKILL, and numerical faults.
//!
//! * `fuzz_regressions_*`: every file under `tests/fixtures/fuzz-regressions/<target>/` (seed
//!   corpus `seed-*`, a sample of the fuzzer's corpus `corpus-*`, findings `oracle-*`/`crash-*`)
//!   goes through the same oracle as the cargo-fuzz target (`fuzz/harness.rs`, compiled here on
//!   stable); `fuzz_seeds_are_current` checks the `seed-*` files equal what the code writes now.
//! * `bad_input_catalogue*`: malformed model files, CSVs, configs and flags; each asserts the
//!   error kind and that the message names the file, line or field, and that nothing panics.
//! * `sigkill_*`: `tinylstm train` killed at seeded random points, then resumed.
//! * `numerical_*`: NaN/Inf in data, in gradients and in checkpoints.
//! * `firmware_*`: poisoned on-device fine-tuning, replayed on the host with the firmware's
//!   `engine.rs`.
//!
//! Regenerate the seed corpus (after a format change) with
//! `TINYLSTM_REGENERATE_FUZZ_SEEDS=1 cargo test -p tinylstm-tests --test reliability
//! fuzz_seeds_are_current`.

mod common;
#[path = "../../fuzz/harness.rs"]
mod harness;

use common::{binary, ok, run};
use std::fmt::{Debug, Display};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tinylstm::format::{self, FormatError, ModelFile, Section, TAG_METADATA};
use tinylstm::optim::{Optimizer, OptimizerConfig};
use tinylstm::{Head, Spec};
use tinylstm_cli::data::{self, Column, DataError, LabelKind, SequenceCsvOptions, TextCsvOptions};
use tinylstm_cli::export::{self, ExportError};
use tinylstm_cli::history::TrainState;
use tinylstm_cli::model_file::{ModelBundle, ModelMeta, Task};
use tinylstm_cli::preprocess::normalize::{NormalizeError, Normalizer};
use tinylstm_cli::preprocess::pad::Side;
use tinylstm_cli::preprocess::tokenizer::{Tokenizer, TokenizerConfig, TokenizerError};
use tinylstm_cli::settings::TrainArgs;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn regressions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz-regressions")
}

/// Runs a command that must fail cleanly (exit code 1 or clap's 2, no panic); returns stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "tinylstm {args:?} should fail; stderr: {err}");
    assert!(matches!(out.status.code(), Some(1 | 2)), "tinylstm {args:?}: {:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "tinylstm {args:?} panicked: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// SplitMix64: a seeded source for kill points and test values (no extra dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn finite_params(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    (0..n).map(|_| (r.unit() as f32 - 0.5) * 0.2).collect()
}

/// A small sequence-model checkpoint as `tinylstm train` writes one: normalization, metadata
/// with training progress, optimizer state, best parameters, then the parameters.
fn sequence_checkpoint() -> ModelBundle {
    let spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
    let p = spec.param_count();
    let mut meta = ModelMeta::new(Task::Sequence, 10, Side::Pre, Side::Pre);
    meta.class_names = vec!["a".into(), "b".into()];
    meta.train_state = Some(TrainState {
        epochs_done: 1,
        iteration: 5,
        best: Some((0.5, 1)),
        wait: 0,
        history: Vec::new(),
        partial: None,
    });
    ModelBundle {
        spec,
        params: finite_params(p, 1),
        tokenizer: None,
        normalizer: Some(
            Normalizer::from_stats(vec![0.5, -1.0, 2.0], vec![1.0, 0.5, 2.0]).unwrap(),
        ),
        meta,
        optimizer_state: Some(vec![0.0; 2 * p]),
        best_params: Some(finite_params(p, 2)),
    }
}

/// A small text model with its tokenizer.
fn text_model() -> ModelBundle {
    let cfg = TokenizerConfig { oov_token: Some("<OOV>".into()), ..Default::default() };
    let mut tok = Tokenizer::new(cfg).unwrap();
    tok.fit_on_texts(["the cat sat on the mat", "free prize now", "我喜欢"]).unwrap();
    let spec = Spec::tokens(tok.vocab_size(), 3).lstm(4).dense(1, Head::Sigmoid);
    ModelBundle {
        spec,
        params: finite_params(spec.param_count(), 3),
        tokenizer: Some(tok),
        normalizer: None,
        meta: ModelMeta::new(Task::Text, 6, Side::Pre, Side::Post),
        optimizer_state: None,
        best_params: None,
    }
}

/// Replaces the last 4 bytes with the CRC-32 of the rest (a file "written wrongly" but intact).
fn fix_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 4;
    let crc = harness::crc32(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// `(offset of the section header, tag, body length)` of every section of a valid file.
fn section_layout(bytes: &[u8]) -> Vec<(usize, u32, usize)> {
    let file = ModelFile::parse(bytes).unwrap();
    let mut at = format::HEADER_LEN;
    file.sections()
        .map(|sec| {
            let here = at;
            at += format::SECTION_HEADER_LEN + sec.bytes.len();
            (here, sec.tag, sec.bytes.len())
        })
        .collect()
}

/// A zip of stored (uncompressed) members, as `numpy.savez` writes, built by hand so a test can
/// put any bytes in a member and still have correct zip CRCs.
fn stored_zip(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let crc = harness::crc32(data);
        let offset = out.len() as u32;
        let local = |v: &mut Vec<u8>, sig: u32| {
            v.extend_from_slice(&sig.to_le_bytes());
        };
        local(&mut out, 0x0403_4b50);
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // version, flags, stored, time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        local(&mut central, 0x0201_4b50);
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // made by, needed, flags, stored, time, date
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]); // extra, comment, disk, internal and external attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Fuzz regressions
// ---------------------------------------------------------------------------------------------

/// Runs `oracle` on every saved input of a target; fails naming each input that panics.
fn replay(target: &str, oracle: fn(&[u8])) {
    let dir = regressions_dir().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no saved inputs in {}", dir.display());
    let mut failed = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        if std::panic::catch_unwind(|| oracle(&bytes)).is_err() {
            failed.push(f.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(failed.is_empty(), "{target}: inputs failing the oracle: {failed:?}");
    let kind = |prefix: &str| {
        files
            .iter()
            .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .count()
    };
    println!(
        "{target}: {} saved inputs replayed ({} seed-*, {} corpus-*, {} other: findings)",
        files.len(),
        kind("seed-"),
        kind("corpus-"),
        files.len() - kind("seed-") - kind("corpus-")
    );
}

#[test]
fn fuzz_regressions_tlm() {
    replay("tlm", harness::tlm);
}

#[test]
fn fuzz_regressions_text_csv() {
    replay("text_csv", harness::text_csv);
}

#[test]
fn fuzz_regressions_sequence_csv() {
    replay("sequence_csv", harness::sequence_csv);
}

#[test]
fn fuzz_regressions_tokenizer() {
    replay("tokenizer", harness::tokenizer);
}

#[test]
fn fuzz_regressions_keras_npz() {
    replay("keras_npz", harness::keras_npz);
}

/// The seed corpus (`seed-*` files) of every fuzz target equals what the current code writes.
/// With `TINYLSTM_REGENERATE_FUZZ_SEEDS=1` the files are rewritten instead.
#[test]
fn fuzz_seeds_are_current() {
    let base = regressions_dir();
    let regenerate = std::env::var_os("TINYLSTM_REGENERATE_FUZZ_SEEDS").is_some();
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = base.join(target);
        let path = dir.join(format!("seed-{name}"));
        if regenerate {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, bytes).unwrap();
        } else {
            let stored = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (set TINYLSTM_REGENERATE_FUZZ_SEEDS=1)", path.display())
            });
            assert!(
                stored == bytes,
                "{} is stale (set TINYLSTM_REGENERATE_FUZZ_SEEDS=1)",
                path.display()
            );
        }
    };
    let with = |sel: u8, rest: &[u8]| -> Vec<u8> { [&[sel][..], rest].concat() };

    // .tlm: a checkpoint, a text model, a bare core file with an unknown section.
    let ck = sequence_checkpoint();
    put("tlm", "checkpoint", &ck.to_bytes().unwrap());
    put("tlm", "text-model", &text_model().to_bytes().unwrap());
    let spec = Spec::channels(1).lstm(1).dense(1, Head::Linear);
    let sections =
        [Section { tag: 77, bytes: b"future" }, Section { tag: TAG_METADATA, bytes: b"{}" }];
    let mut buf = vec![0u8; format::encoded_len(&spec, &sections).unwrap()];
    format::write_into(&spec, &finite_params(spec.param_count(), 4), &sections, &mut buf).unwrap();
    put("tlm", "core-unknown-section", &buf);

    // Text CSVs (byte 0: options, see harness::text_csv).
    put("text_csv", "header", &with(0, b"label,text\n0,hello there\n1,\"buy, now\"\n"));
    put(
        "text_csv",
        "quoted-newline-crlf",
        &with(0b0001_0000, b"\xEF\xBB\xBFlabel,text\r\n0,\"a\r\nb\"\r\n1,c\r\n"),
    );
    put("text_csv", "by-name-real", &with(0b1000_0101, b"text,label\nx,0.5\ny,-2e3\n"));
    put("text_csv", "no-header-swapped", &with(0b0100_0010, b"hello,0\nbye,1\r"));

    // Sequence CSVs (byte 0: options, see harness::sequence_csv).
    put("sequence_csv", "three-channels", &with(2, b"0,1,2,3,4,5,6\n1,0.5,-1e-3,2, 3 ,4,5\n"));
    put("sequence_csv", "header-classes", &with(0b0100_0100, b"y,a\n0,1\n1,2\n\n"));
    put("sequence_csv", "real-cr", &with(0b0001_0000, b"0.25,1\r-3,2\r"));

    // Tokenizer: serialised (byte 0 even) and fit/apply (byte 0 odd).
    put("tokenizer", "serialised-oov", &with(0, &text_model().tokenizer.unwrap().to_bytes()));
    let mut plain =
        Tokenizer::new(TokenizerConfig { num_words: Some(3), ..Default::default() }).unwrap();
    plain.fit_on_texts(["a a b c", "d"]).unwrap();
    put("tokenizer", "serialised-num-words", &with(2, &plain.to_bytes()));
    put(
        "tokenizer",
        "fit-words",
        &[&[0b0101_0001u8, 3][..], b"The cat, the HAT.\nit's a cat\n"].concat(),
    );
    put(
        "tokenizer",
        "fit-chars",
        &[&[0b1011_0001u8, 0][..], "我喜欢猫\nΣΑΣ İ\n".as_bytes()].concat(),
    );

    // Keras npz for each spec of harness::npz_specs (byte 0 picks the spec).
    let dir = tempfile::tempdir().unwrap();
    for (i, spec) in harness::npz_specs().iter().enumerate() {
        let p = dir.path().join("w.npz");
        export::write_keras_npz(&p, spec, &finite_params(spec.param_count(), 5)).unwrap();
        put("keras_npz", &format!("spec{i}"), &with(i as u8, &std::fs::read(&p).unwrap()));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The bad-input catalogue (library API)
// ---------------------------------------------------------------------------------------------

/// Records the catalogue's cases: each must fail with the expected kind and a message that
/// contains every needle (file name, line, field, value…).
struct Catalogue {
    names: Vec<String>,
}

impl Catalogue {
    fn case<T: Debug, E: Debug + Display>(
        &mut self,
        name: impl Into<String>,
        result: Result<T, E>,
        kind: impl Fn(&E) -> bool,
        needles: &[&str],
    ) {
        let name = name.into();
        assert!(!self.names.contains(&name), "duplicate case {name}");
        let e = match result {
            Ok(v) => panic!("{name}: accepted: {v:?}"),
            Err(e) => e,
        };
        assert!(kind(&e), "{name}: wrong error kind: {e:?}");
        let msg = e.to_string();
        for n in needles {
            assert!(msg.contains(n), "{name}: message lacks {n:?}: {msg}");
        }
        self.names.push(name);
    }

    /// An `anyhow` error: its whole chain is the message.
    fn case_anyhow<T: Debug, E: Display>(
        &mut self,
        name: impl Into<String>,
        result: Result<T, E>,
        needles: &[&str],
    ) {
        let r = result.map_err(|e| AnyhowMsg(format!("{e:#}")));
        self.case(name, r, |_| true, needles);
    }

    /// An `anyhow` error whose whole message (chain included) is exactly `message`.
    fn case_exact<T: Debug, E: Display>(
        &mut self,
        name: impl Into<String>,
        result: Result<T, E>,
        message: &str,
    ) {
        let name = name.into();
        let r = result.map_err(|e| AnyhowMsg(format!("{e:#}")));
        self.case(name.clone(), r, |e| e.0 == message, &[]);
    }
}

#[derive(Debug)]
struct AnyhowMsg(String);

impl Display for AnyhowMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A model-file case: the core reader gives `kind`, and `ModelBundle::load` of the same bytes
/// written to `<name>.tlm` fails with a message naming that file and containing `needles`.
fn model_case(
    cat: &mut Catalogue,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    kind: impl Fn(&FormatError) -> bool,
    needles: &[&str],
) {
    let path = dir.join(format!("{name}.tlm"));
    std::fs::write(&path, bytes).unwrap();
    let e = ModelFile::parse(bytes).map(|_| ()).expect_err(name);
    assert!(kind(&e), "{name}: wrong error kind: {e:?}");
    let file = path.file_name().unwrap().to_str().unwrap().to_string();
    let mut all = vec![file.as_str()];
    all.extend_from_slice(needles);
    cat.case_anyhow(format!("model file: {name}"), ModelBundle::load(&path), &all);
}

/// A bundle-level case: the core file is valid, the CLI bundle reader must reject it.
fn bundle_case(cat: &mut Catalogue, dir: &Path, name: &str, bytes: &[u8], needles: &[&str]) {
    let path = dir.join(format!("{name}.tlm"));
    std::fs::write(&path, bytes).unwrap();
    ModelFile::parse(bytes).unwrap_or_else(|e| panic!("{name}: the core file should parse: {e}"));
    let file = path.file_name().unwrap().to_str().unwrap().to_string();
    let mut all = vec![file.as_str()];
    all.extend_from_slice(needles);
    cat.case_anyhow(format!("model file: {name}"), ModelBundle::load(&path), &all);
}

fn model_file_cases(cat: &mut Catalogue, dir: &Path) {
    let ck = sequence_checkpoint();
    let good = ck.to_bytes().unwrap();
    ModelBundle::from_bytes(&good, "good").unwrap();

    // Truncated at every section boundary (and inside the fixed header and the CRC).
    let layout = section_layout(&good);
    assert_eq!(layout.len(), 5, "normalization, metadata, optimizer state, best params, PARAMS");
    model_case(
        cat,
        dir,
        "empty",
        &[],
        |e| matches!(e, FormatError::Truncated { available: 0, .. }),
        &["truncated"],
    );
    model_case(
        cat,
        dir,
        "cut-after-magic",
        &good[..8],
        |e| matches!(e, FormatError::Truncated { what: "header and CRC", .. }),
        &["truncated", "header and CRC"],
    );
    model_case(
        cat,
        dir,
        "cut-after-header",
        &good[..format::HEADER_LEN],
        |e| matches!(e, FormatError::Truncated { what: "header and CRC", .. }),
        &["truncated"],
    );
    for (i, &(at, tag, len)) in layout.iter().enumerate() {
        if at > format::HEADER_LEN {
            model_case(
                cat,
                dir,
                &format!("cut-at-section-{i}-header"),
                &good[..at],
                |e| {
                    matches!(e, FormatError::Truncated { what: "section header", available: 0, .. })
                },
                &["truncated", "section header"],
            );
        }
        let body = at + format::SECTION_HEADER_LEN;
        let what = match tag {
            format::TAG_NORMALIZATION => "normalization section body",
            TAG_METADATA => "metadata section body",
            format::TAG_PARAMS => "PARAMS section body",
            _ => "section body",
        };
        model_case(
            cat,
            dir,
            &format!("cut-at-section-{i}-body"),
            &good[..body],
            |e| matches!(e, FormatError::Truncated { what: w, needed, available: 0 } if *w == what && *needed == len),
            &["truncated", what],
        );
    }
    let end = good.len() - format::CRC_LEN;
    model_case(
        cat,
        dir,
        "cut-before-crc",
        &good[..end],
        |e| matches!(e, FormatError::Truncated { what: "CRC", available: 0, .. }),
        &["truncated", "CRC"],
    );
    model_case(
        cat,
        dir,
        "cut-inside-crc",
        &good[..end + 3],
        |e| matches!(e, FormatError::Truncated { what: "CRC", available: 3, .. }),
        &["truncated", "CRC"],
    );

    // Damage: magic, version, CRC, a body byte.
    let mut b = good.clone();
    b[0] = b'X';
    model_case(cat, dir, "wrong-magic", &b, |e| matches!(e, FormatError::BadMagic), &["TINYLSTM"]);
    let mut b = good.clone();
    b[8] = 9;
    model_case(
        cat,
        dir,
        "wrong-version",
        &b,
        |e| matches!(e, FormatError::UnsupportedVersion { found: 9 }),
        &["version 9"],
    );
    let mut b = good.clone();
    let n = b.len();
    b[n - 1] ^= 0x01;
    model_case(
        cat,
        dir,
        "flipped-crc",
        &b,
        |e| matches!(e, FormatError::CrcMismatch { .. }),
        &["CRC-32"],
    );
    let mut b = good.clone();
    b[n / 2] ^= 0x40;
    model_case(
        cat,
        dir,
        "flipped-body-bit",
        &b,
        |e| matches!(e, FormatError::CrcMismatch { .. }),
        &["corrupted"],
    );

    // Written wrongly with a correct CRC: flags, spec fields, absurd sizes, section rules.
    let mut b = good.clone();
    b[10] = 1;
    model_case(
        cat,
        dir,
        "unknown-flags",
        &fix_crc(b),
        |e| matches!(e, FormatError::UnsupportedFlags { flags: 1 }),
        &["flags"],
    );
    let mut b = good.clone();
    b[12] = 7;
    model_case(
        cat,
        dir,
        "unknown-input-kind",
        &fix_crc(b),
        |e| matches!(e, FormatError::InvalidField { field: "input kind", value: 7 }),
        &["input kind"],
    );
    // 4096 channels, 4 layers of 4096 units, 4096 outputs: ~470 M parameters (> 2^28), whose
    // buffer would be 1.9 GB. Rejected from the header, before any allocation.
    let mut b = good.clone();
    b[14] = 4;
    for off in [20, 24, 28, 32, 36, 40] {
        b[off..off + 4].copy_from_slice(&4096u32.to_le_bytes());
    }
    model_case(
        cat,
        dir,
        "absurd-spec-size",
        &fix_crc(b),
        |e| matches!(e, FormatError::InvalidSpec(tinylstm::SpecError::TooLarge)),
        &["2^28 parameters"],
    );
    let text = text_model().to_bytes().unwrap();
    let mut b = text.clone();
    b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    model_case(
        cat,
        dir,
        "absurd-vocabulary",
        &fix_crc(b),
        |e| matches!(e, FormatError::InvalidSpec(tinylstm::SpecError::Vocab)),
        &["vocabulary size"],
    );
    // A section declaring 4 GiB: reported as truncated, nothing allocated.
    let (meta_at, _, _) = layout[1];
    let mut b = good.clone();
    b[meta_at + 4..meta_at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    model_case(
        cat,
        dir,
        "absurd-section-length",
        &fix_crc(b),
        |e| matches!(e, FormatError::Truncated { what: "metadata section body", needed, .. } if *needed == u32::MAX as usize),
        &["metadata section body", "4294967295"],
    );
    let (params_at, _, params_len) = layout[4];
    let mut b = good.clone();
    b[params_at + 4..params_at + 8].copy_from_slice(&((params_len - 4) as u32).to_le_bytes());
    model_case(
        cat,
        dir,
        "params-length-mismatch",
        &fix_crc(b),
        |e| matches!(e, FormatError::ParamsLength { .. }),
        &["PARAMS section has"],
    );
    let spec = Spec::channels(1).lstm(1).dense(1, Head::Linear);
    let params = finite_params(spec.param_count(), 4);
    let dup = [Section { tag: 77, bytes: b"x" }, Section { tag: 77, bytes: b"y" }];
    let mut b = vec![0u8; format::encoded_len(&spec, &dup).unwrap()];
    format::write_into(&spec, &params, &dup, &mut b).unwrap();
    // Turn the two unknown sections into two metadata sections.
    b[44..48].copy_from_slice(&TAG_METADATA.to_le_bytes());
    b[53..57].copy_from_slice(&TAG_METADATA.to_le_bytes());
    model_case(
        cat,
        dir,
        "duplicate-metadata",
        &fix_crc(b),
        |e| matches!(e, FormatError::DuplicateSection { tag: TAG_METADATA }),
        &["more than one metadata section"],
    );
    let mut b = vec![0u8; format::encoded_len(&spec, &[]).unwrap()];
    format::write_into(&spec, &params, &[], &mut b).unwrap();
    let crc_at = b.len() - 4;
    b.splice(crc_at..crc_at, [3, 0, 0, 0, 0, 0, 0, 0]); // an empty metadata section after PARAMS
    model_case(
        cat,
        dir,
        "section-after-params",
        &fix_crc(b),
        |e| matches!(e, FormatError::ParamsNotLast { tag: 3 }),
        &["after the PARAMS section"],
    );

    // Valid core files the CLI bundle rejects: what is inside the sections.
    let mut b = vec![0u8; format::encoded_len(&spec, &[]).unwrap()];
    format::write_into(&spec, &params, &[], &mut b).unwrap();
    bundle_case(cat, dir, "no-metadata", &b, &["no metadata section"]);
    let bad_json = [Section { tag: TAG_METADATA, bytes: b"{\"format\": 1" }];
    let mut b = vec![0u8; format::encoded_len(&spec, &bad_json).unwrap()];
    format::write_into(&spec, &params, &bad_json, &mut b).unwrap();
    bundle_case(cat, dir, "metadata-not-json", &b, &["metadata section", "line 1 column"]);
    // A tokenizer section declaring 2^32 − 1 words in a few bytes.
    let mut tok = Vec::from(*b"TLTK");
    tok.extend_from_slice(&[
        1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b' ', 0xff, 0xff, 0xff, 0xff, 0x0f,
    ]);
    assert!(matches!(
        Tokenizer::from_bytes(&tok),
        Err(TokenizerError::LengthTooLarge { what: "word count", .. })
    ));
    let file = ModelFile::parse(&text).unwrap();
    let meta = file.metadata().unwrap();
    let sections = [
        Section { tag: format::TAG_TOKENIZER, bytes: &tok },
        Section { tag: TAG_METADATA, bytes: meta },
    ];
    let tspec = file.spec();
    let mut tparams = vec![0.0; tspec.param_count()];
    file.read_params(&mut tparams).unwrap();
    let mut b = vec![0u8; format::encoded_len(&tspec, &sections).unwrap()];
    format::write_into(&tspec, &tparams, &sections, &mut b).unwrap();
    bundle_case(
        cat,
        dir,
        "tokenizer-absurd-word-count",
        &b,
        &["tokenizer section", "word count", "4294967295"],
    );
    // A normalization section declaring 2^32 − 1 channels.
    let norm = u32::MAX.to_le_bytes();
    assert!(matches!(Normalizer::from_bytes(&norm), Err(NormalizeError::BadLength { .. })));
    let gfile = ModelFile::parse(&good).unwrap();
    let mut rebuilt: Vec<Section<'_>> =
        gfile.sections().filter(|s| s.tag != format::TAG_PARAMS).collect();
    rebuilt[0] = Section { tag: format::TAG_NORMALIZATION, bytes: &norm };
    let mut gparams = vec![0.0; gfile.param_count()];
    gfile.read_params(&mut gparams).unwrap();
    let mut b = vec![0u8; format::encoded_len(&ck.spec, &rebuilt).unwrap()];
    format::write_into(&ck.spec, &gparams, &rebuilt, &mut b).unwrap();
    bundle_case(cat, dir, "normalization-absurd-channels", &b, &["normalization section"]);
    // Checkpoint sections of the wrong size.
    let mut rebuilt: Vec<Section<'_>> =
        gfile.sections().filter(|s| s.tag != format::TAG_PARAMS).collect();
    rebuilt[2] = Section { tag: rebuilt[2].tag, bytes: &[0, 0, 0] };
    let mut b = vec![0u8; format::encoded_len(&ck.spec, &rebuilt).unwrap()];
    format::write_into(&ck.spec, &gparams, &rebuilt, &mut b).unwrap();
    bundle_case(
        cat,
        dir,
        "optimizer-state-odd-length",
        &b,
        &["optimizer state section has 3 bytes"],
    );
    let mut rebuilt: Vec<Section<'_>> =
        gfile.sections().filter(|s| s.tag != format::TAG_PARAMS).collect();
    rebuilt[3] = Section { tag: rebuilt[3].tag, bytes: &[0; 8] };
    let mut b = vec![0u8; format::encoded_len(&ck.spec, &rebuilt).unwrap()];
    format::write_into(&ck.spec, &gparams, &rebuilt, &mut b).unwrap();
    bundle_case(cat, dir, "best-params-wrong-count", &b, &["best-parameters section has 2 values"]);

    // The model does not match what the caller expects.
    let other = Spec::channels(3).lstm(8).dense(2, Head::Softmax);
    cat.case(
        "model file: spec mismatch (check_spec)",
        ModelFile::parse(&good).unwrap().check_spec(&other),
        |e| matches!(e, FormatError::SpecMismatch { .. }),
        &["does not match", "units: [8"],
    );
    cat.case(
        "model file: parameter buffer of the wrong length",
        ModelFile::parse(&good).unwrap().read_params(&mut [0.0; 3]),
        |e| matches!(e, FormatError::ParamCount { found: 3, .. }),
        &["3 values"],
    );
    let csv = dir.join("not-a-model.csv");
    std::fs::write(&csv, "label,text\n0,hello\n").unwrap();
    cat.case_anyhow(
        "model file: a CSV given as a model",
        ModelBundle::load(&csv),
        &["not-a-model.csv", "TINYLSTM"],
    );
    cat.case_anyhow(
        "model file: missing",
        ModelBundle::load(&dir.join("missing.tlm")),
        &["missing.tlm"],
    );
}

fn csv_cases(cat: &mut Catalogue) {
    let seq = |name: &str, bytes: &[u8], opts: SequenceCsvOptions| {
        data::parse_sequence_csv(Path::new(name), bytes, &opts)
    };
    let c3 = || SequenceCsvOptions::new(3);
    let text = |name: &str, bytes: &[u8], opts: TextCsvOptions| {
        data::parse_text_csv(Path::new(name), bytes, &opts)
    };
    let t = TextCsvOptions::default;

    cat.case(
        "csv: sequence, wrong arity",
        seq("arity.csv", b"0,1,2,3\n1,1,2\n", c3()),
        |e| matches!(e, DataError::Arity { found: 3, .. }),
        &["arity.csv: line 2, field 3", "found 3 fields"],
    );
    cat.case(
        "csv: sequence, values not whole time steps",
        seq("steps.csv", b"0,1,2,3,4,5\n", c3()),
        |e| matches!(e, DataError::Arity { found: 6, .. }),
        &["steps.csv: line 1", "1 + T×3"],
    );
    cat.case(
        "csv: text, wrong arity",
        text("arity.csv", b"label,text\n0,hi\n1,a,b\n", t()),
        |e| matches!(e, DataError::Arity { found: 3, .. }),
        &["arity.csv: line 3", "as the header"],
    );
    cat.case(
        "csv: non-numeric value",
        seq("x.csv", b"0,1,2,3\n1,1,x,3\n", c3()),
        |e| matches!(e, DataError::NotNumeric { .. }),
        &["x.csv: line 2, field 3 (t0 c1)", "\"x\""],
    );
    cat.case(
        "csv: NaN value",
        seq("nan.csv", b"0,1,2,3\n1,1,2,NaN\n", c3()),
        |e| matches!(e, DataError::NonFinite { .. }),
        &["nan.csv: line 2, field 4 (t0 c2)", "NaN"],
    );
    cat.case(
        "csv: +Inf value",
        seq("inf.csv", b"0,1,2,3,inf,5,6\n", c3()),
        |e| matches!(e, DataError::NonFinite { .. }),
        &["inf.csv: line 1, field 5 (t1 c0)", "inf"],
    );
    cat.case(
        "csv: -infinity value",
        seq("ninf.csv", b"0,1,2,3\n0,-infinity,2,3\n", c3()),
        |e| matches!(e, DataError::NonFinite { .. }),
        &["ninf.csv: line 2, field 2 (t0 c0)"],
    );
    cat.case(
        "csv: value beyond f32",
        seq("big.csv", b"0,1,2,1e39\n", c3()),
        |e| matches!(e, DataError::NonFinite { .. }),
        &["big.csv: line 1, field 4", "1e39"],
    );
    let k2 = SequenceCsvOptions { num_classes: Some(2), ..c3() };
    cat.case(
        "csv: label out of range",
        seq("range.csv", b"0,1,2,3\n5,1,2,3\n", k2),
        |e| matches!(e, DataError::LabelOutOfRange { label: 5, num_classes: 2, .. }),
        &["range.csv: line 2, field 1 (label)", "5"],
    );
    cat.case(
        "csv: negative label",
        seq("neg.csv", b"-1,1,2,3\n", c3()),
        |e| matches!(e, DataError::BadLabel { .. }),
        &["neg.csv: line 1, field 1 (label)", "-1"],
    );
    cat.case(
        "csv: fractional label",
        seq("frac.csv", b"0,1,2,3\n1.5,1,2,3\n", c3()),
        |e| matches!(e, DataError::BadLabel { .. }),
        &["frac.csv: line 2, field 1", "1.5"],
    );
    let k3 = SequenceCsvOptions { num_classes: Some(3), ..c3() };
    cat.case(
        "csv: declared class without samples",
        seq("gap.csv", b"0,1,2,3\n2,1,2,3\n", k3),
        |e| matches!(e, DataError::EmptyClass { class: 1, .. }),
        &["gap.csv", "class 1 has no samples"],
    );
    cat.case(
        "csv: BOM, then a bad value on line 2",
        seq("bom.csv", b"\xEF\xBB\xBF0,1,2,3\n1,1,2,zz\n", c3()),
        |e| matches!(e, DataError::NotNumeric { .. }),
        &["bom.csv: line 2, field 4 (t0 c2)", "\"zz\""],
    );
    cat.case(
        "csv: text with BOM and header, bad label",
        text("bomtext.csv", "\u{FEFF}label,text\r\n0,ok\r\nspam,buy\r\n".as_bytes(), t()),
        |e| matches!(e, DataError::BadLabel { .. }),
        &["bomtext.csv: line 3, field 1 (label)", "\"spam\""],
    );
    cat.case(
        "csv: CRLF and a blank line",
        seq("crlf.csv", b"0,1,2,3\r\n\r\n1,1,2,x\r\n", c3()),
        |e| matches!(e, DataError::NotNumeric { .. }),
        &["crlf.csv: line 3, field 4"],
    );
    cat.case(
        "csv: CR-only line ends",
        seq("cr.csv", b"0,1,2,3\r1,1,y,3\r", c3()),
        |e| matches!(e, DataError::NotNumeric { .. }),
        &["cr.csv: line 2, field 3"],
    );
    cat.case(
        "csv: quoted newline, error on the next record",
        text("quoted.csv", b"label,text\n0,\"a\nb\"\nx,c\n", t()),
        |e| matches!(e, DataError::BadLabel { .. }),
        &["quoted.csv: line 4, field 1"],
    );
    cat.case(
        "csv: empty file",
        seq("empty.csv", b"", c3()),
        |e| matches!(e, DataError::NoData { header: false, .. }),
        &["empty.csv", "the file is empty"],
    );
    cat.case(
        "csv: only blank lines",
        seq("blank.csv", b"\n\r\n\n", c3()),
        |e| matches!(e, DataError::NoData { header: false, .. }),
        &["blank.csv"],
    );
    cat.case(
        "csv: text, only a header",
        text("header.csv", b"label,text\n", t()),
        |e| matches!(e, DataError::NoData { header: true, .. }),
        &["header.csv", "after the header (line 1)"],
    );
    let hdr = SequenceCsvOptions { has_header: Some(true), ..c3() };
    cat.case(
        "csv: sequence, only a header",
        seq("seqheader.csv", b"y,a,b,c\r\n", hdr),
        |e| matches!(e, DataError::NoData { header: true, .. }),
        &["seqheader.csv"],
    );
    cat.case(
        "csv: invalid UTF-8",
        text("utf8.csv", b"label,text\n0,caf\xe9\n", t()),
        |e| matches!(e, DataError::InvalidUtf8 { .. }),
        &["utf8.csv: line 2, field 2", "UTF-8"],
    );
    let named = TextCsvOptions { label_column: Column::Name("y".into()), ..t() };
    cat.case(
        "csv: missing named column",
        text("cols.csv", b"label,text\n0,a\n", named),
        |e| matches!(e, DataError::MissingColumn { .. }),
        &["cols.csv: line 1", "column \"y\" not found", "label,text"],
    );
    let real = TextCsvOptions { labels: LabelKind::Real, ..t() };
    cat.case(
        "csv: NaN regression target",
        text("target.csv", b"label,text\n1.5,a\nnan,b\n", real),
        |e| matches!(e, DataError::NonFinite { .. }),
        &["target.csv: line 3, field 1 (label)"],
    );
    let zero = SequenceCsvOptions::new(0);
    cat.case(
        "csv: zero channels",
        seq("opts.csv", b"0,1\n", zero),
        |e| matches!(e, DataError::BadOptions { .. }),
        &["opts.csv", "channel count"],
    );
    let missing = data::load_sequence_csv("/nonexistent/dir/missing.csv", &c3());
    cat.case(
        "csv: missing file",
        missing,
        |e| matches!(e, DataError::NotFound { .. }),
        &["missing.csv", "not found"],
    );
}

fn config_cases(cat: &mut Catalogue, dir: &Path) {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write("unknown-key.toml", "epochs = 3\nepochz = 3\n");
    cat.case_anyhow(
        "config: unknown key",
        TrainArgs::from_toml_file(&p),
        &["unknown-key.toml", "line 2", "unknown field `epochz`"],
    );
    let p = write("wrong-type.toml", "lr = 0.01\nepochs = \"ten\"\n");
    cat.case_anyhow(
        "config: wrong type",
        TrainArgs::from_toml_file(&p),
        &["wrong-type.toml", "line 2", "invalid type", "epochs"],
    );
    let p = write("syntax.toml", "epochs = 3\nlr = = 1\n");
    cat.case_anyhow(
        "config: TOML syntax error",
        TrainArgs::from_toml_file(&p),
        &["syntax.toml", "line 2"],
    );
    let p = write("enum.toml", "optimizer = \"adamm\"\n");
    cat.case_anyhow(
        "config: unknown optimizer",
        TrainArgs::from_toml_file(&p),
        &["enum.toml", "line 1", "adamm"],
    );
    let p = write("padding.toml", "epochs = 3\npadding = \"psot\"\n");
    cat.case_anyhow(
        "config: unknown padding side",
        TrainArgs::from_toml_file(&p),
        &["padding.toml", "line 2", "`padding` = \"psot\"", "`pre`", "`post`"],
    );
    let p = write("negative.toml", "epochs = -3\n");
    cat.case_anyhow(
        "config: negative count",
        TrainArgs::from_toml_file(&p),
        &["negative.toml", "line 1", "epochs"],
    );
    cat.case_anyhow(
        "config: missing file",
        TrainArgs::from_toml_file(&dir.join("nope.toml")),
        &["nope.toml"],
    );
    // Values that parse but are out of their domain are refused by the one check of a set of
    // settings, naming the setting.
    let flag_error = |a: &TrainArgs| a.validate().map_err(|e| e.as_flag_error());
    let mut args = TrainArgs::default();
    args.optimizer.lr = Some(-1.0);
    cat.case_exact(
        "config: negative learning rate",
        flag_error(&args),
        "--lr must be a finite number > 0 (an f32: at most 3.4e38), got -1",
    );
    let mut args = TrainArgs::default();
    (args.optimizer.clipnorm, args.optimizer.clipvalue) = (Some(1.0), Some(1.0));
    cat.case_anyhow("config: two clipping modes", flag_error(&args), &["--clipnorm", "clipvalue"]);
    let mut args = TrainArgs::default();
    args.run.bptt_window = Some(0);
    cat.case_exact(
        "config: zero BPTT window",
        flag_error(&args),
        "--bptt-window must be at least 1, got 0",
    );
    let mut args = TrainArgs::default();
    args.optimizer.l2 = Some(f32::INFINITY);
    cat.case_anyhow("config: infinite L2", flag_error(&args), &["--l2", "inf"]);
    let mut args = TrainArgs::default();
    args.optimizer.beta_1 = Some(1.0);
    cat.case_anyhow(
        "config: beta_1 out of range",
        flag_error(&args),
        &["--beta-1", "beta_1 must be in [0, 1)", "got 1"],
    );
    // Non-finite and out-of-range floats in a config file: refused when the file is read,
    // naming file, line and key (merging the file with the flags goes through JSON, where NaN
    // and infinity would silently become "not given", that is the default).
    for (name, text, message) in [
        (
            "lr-inf",
            "epochs = 2\nlr = inf\n",
            "line 2: `lr` = inf: must be a finite number > 0 (an f32: at most 3.4e38)",
        ),
        (
            "lr-nan",
            "lr = nan\n",
            "line 1: `lr` = NaN: must be a finite number > 0 (an f32: at most 3.4e38)",
        ),
        (
            "l2-minus-inf",
            "l2 = -inf\n",
            "line 1: `l2` = -inf: must be a finite number ≥ 0 (an f32: at most 3.4e38)",
        ),
        (
            "clipnorm-beyond-f32",
            "clipnorm = 1e39\n",
            "line 1: `clipnorm` = inf: must be a finite number (an f32: at most ±3.4e38)",
        ),
        ("beta-2-nan", "beta_2 = nan\n", "line 1: `beta_2` = NaN: must be a finite number"),
        (
            "min-delta-negative",
            "min_delta = -0.01\n",
            "line 1: `min_delta` = -0.01: must be a finite number ≥ 0",
        ),
        (
            "valid-split-above-1",
            "valid_split = 1.5\n",
            "line 1: `valid_split` = 1.5: must be a fraction from 0 to 1",
        ),
    ] {
        let p = write(&format!("{name}.toml"), text);
        let exact = format!("config file {}, {message}", p.display());
        cat.case_exact(format!("config: {name}"), TrainArgs::from_toml_file(&p), &exact);
    }
    // The same checks on settings built in code (a search space's values), naming the flag.
    let mut args = TrainArgs::default();
    args.run.min_delta = Some(f64::NAN);
    cat.case_exact(
        "config: NaN min_delta in code",
        args.validate().map_err(|e| e.as_flag_error()),
        "--min-delta must be a finite number ≥ 0, got NaN",
    );
}

fn npz_cases(cat: &mut Catalogue, dir: &Path) {
    let spec = harness::npz_specs()[0]; // channels 3 → LSTM 4 → Dense 2 softmax
    let path = dir.join("w.npz");
    export::write_keras_npz(&path, &spec, &finite_params(spec.param_count(), 6)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let name = Path::new("weights.npz");
    export::read_keras_npz_bytes(&good, name, &spec).unwrap();
    let read = |bytes: &[u8]| export::read_keras_npz_bytes(bytes, name, &spec);
    cat.case(
        "npz: not a zip",
        read(b"PK\x03\x04 garbage"),
        |e| matches!(e, ExportError::NotZip { .. }),
        &["weights.npz", "not a readable .npz"],
    );
    cat.case(
        "npz: cut short",
        read(&good[..good.len() / 2]),
        |e| matches!(e, ExportError::NotZip { .. }),
        &["weights.npz", "cut short"],
    );
    let members = |first: Vec<u8>| -> Vec<u8> {
        let mut m = vec![("arr_0.npy", first)];
        for (i, t) in spec.tensors().enumerate().skip(1) {
            let shape = export::keras_shape(&t);
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            let tuple = if dims.len() == 1 {
                format!("({},)", dims[0])
            } else {
                format!("({})", dims.join(", "))
            };
            let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
            let name: &'static str = Box::leak(format!("arr_{i}.npy").into_boxed_str());
            m.push((name, common::npy_raw(&dict, &vec![0u8; 4 * t.len()])));
        }
        stored_zip(&m)
    };
    // The first tensor is lstm kernel (3, 16).
    let ok_first =
        common::npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 16), }", &[0; 192]);
    export::read_keras_npz_bytes(&members(ok_first), name, &spec).expect("hand-made zip reads");
    let huge = common::npy_raw(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
        &[],
    );
    cat.case(
        "npz: absurd shape",
        read(&members(huge)),
        |e| matches!(e, ExportError::Shape { .. }),
        &["weights.npz", "arr_0.npy", "(4294967296, 4294967296)", "(3, 16)", "lstm"],
    );
    let mut long_header = b"\x93NUMPY\x02\x00".to_vec();
    long_header.extend_from_slice(&u32::MAX.to_le_bytes());
    cat.case(
        "npz: absurd .npy header length",
        read(&members(long_header)),
        |e| matches!(e, ExportError::Npy { .. }),
        &["weights.npz", "arr_0.npy", "4294967295"],
    );
    let int =
        common::npy_raw("{'descr': '<i8', 'fortran_order': False, 'shape': (3, 16), }", &[0; 384]);
    cat.case(
        "npz: wrong dtype",
        read(&members(int)),
        |e| matches!(e, ExportError::Dtype { .. }),
        &["weights.npz", "arr_0.npy", "<i8"],
    );
    let short =
        common::npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 16), }", &[0; 100]);
    cat.case(
        "npz: array data cut short",
        read(&members(short)),
        |e| matches!(e, ExportError::Truncated { .. }),
        &["weights.npz", "arr_0.npy", "truncated"],
    );
    let big = common::npy_raw(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 16), }",
        &[0x7f; 384],
    );
    cat.case(
        "npz: float64 beyond float32",
        read(&members(big)),
        |e| matches!(e, ExportError::OutOfRange { .. }),
        &["weights.npz", "arr_0.npy", "float32 range"],
    );
    let only_one = stored_zip(&[(
        "arr_0.npy",
        common::npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 16), }", &[0; 192]),
    )]);
    cat.case(
        "npz: missing arrays",
        read(&only_one),
        |e| matches!(e, ExportError::Arrays { found: 1, .. }),
        &["weights.npz", "missing arr_1.npy"],
    );
}

#[test]
fn bad_input_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = Catalogue { names: Vec::new() };
    model_file_cases(&mut cat, dir.path());
    let models = cat.names.len();
    csv_cases(&mut cat);
    let csvs = cat.names.len() - models;
    config_cases(&mut cat, dir.path());
    let configs = cat.names.len() - models - csvs;
    npz_cases(&mut cat, dir.path());
    let npzs = cat.names.len() - models - csvs - configs;
    println!(
        "catalogue (library): {} cases: {models} model files, {csvs} CSVs, {configs} configs, {npzs} npz",
        cat.names.len()
    );
    for n in &cat.names {
        println!("  {n}");
    }
    assert!(cat.names.len() >= 88, "{} cases", cat.names.len());
}

/// The same kinds of bad input through the binary: a clean message naming the file, line,
/// field or flag, and a non-zero exit, never a panic.
#[test]
fn bad_input_catalogue_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let out = d.join("o");
    let o = s(&out);
    let mut n = 0;
    let mut expect = |args: &[&str], needles: &[&str]| {
        let e = fails(args);
        for x in needles {
            assert!(e.contains(x), "tinylstm {args:?}: stderr lacks {x:?}: {e}");
        }
        n += 1;
    };

    // Data.
    let p = write("inf.csv", b"0,1,2,3\n1,1,inf,3\n");
    expect(
        &["train", "--data", s(&p), "--channels", "3", "--out", o],
        &["inf.csv: line 2, field 3 (t0 c1)", "inf"],
    );
    let p = write("bom-crlf.csv", b"\xEF\xBB\xBF0,1,2,3\r\n1,1,2,3\r\n\r\n1,1,2\r\n");
    expect(
        &["train", "--data", s(&p), "--channels", "3", "--out", o],
        &["bom-crlf.csv: line 4, field 3", "found 3 fields"],
    );
    let p = write("texts.csv", b"label,text\n0,hello\n7,buy\n");
    expect(
        &["train", "--data", s(&p), "--classes", "2", "--out", o],
        &["texts.csv: line 3, field 1 (label)", "7"],
    );
    // Config and flags.
    let p = write("bad.toml", b"epochs = 2\nbatch_size = \"big\"\n");
    expect(&["train", "--config", s(&p), "--out", o], &["bad.toml", "line 2", "batch_size"]);
    expect(&["train", "--optimizer", "adamm", "--out", o], &["adamm", "--optimizer"]);
    expect(&["train", "--epochs", "many", "--out", o], &["many", "--epochs"]);
    expect(
        &["train", "--batch-size", "0", "--synthetic-samples", "40", "--out", o],
        &["--batch-size"],
    );
    expect(
        &["train", "--units", "8,8,8,8,8", "--synthetic-samples", "40", "--out", o],
        &["--units must list 1 to 4 layer sizes (5 given)"],
    );
    expect(
        &["train", "--clipnorm", "1", "--clipvalue", "1", "--synthetic-samples", "40", "--out", o],
        &["--clipnorm", "--clipvalue"],
    );
    // Non-finite floats used to be dropped silently (trained with the default): now the exact
    // message names the flag, or the config file, line and key; exit 2 for flags (clap), 1 for
    // the file; nothing is trained or written.
    let never = d.join("floats");
    let o2 = s(&never);
    for (flag, v, problem) in [
        ("--lr", "inf", "must be a finite number > 0 (an f32: at most 3.4e38)"),
        ("--lr", "nan", "must be a finite number > 0 (an f32: at most 3.4e38)"),
        ("--l2", "-inf", "must be a finite number ≥ 0 (an f32: at most 3.4e38)"),
        ("--momentum", "1e39", "must be a finite number (an f32: at most ±3.4e38)"),
        ("--beta-1", "NaN", "must be a finite number"),
        ("--min-delta", "-1", "must be a finite number ≥ 0"),
        ("--valid-split", "2", "must be a fraction from 0 to 1"),
    ] {
        let value_name = flag.trim_start_matches("--").replace('-', "_").to_uppercase();
        let first = format!("error: invalid value '{v}' for '{flag} <{value_name}>': {problem}\n");
        let code = run(&["train", flag, v, "--out", o2]).status.code();
        assert_eq!(code, Some(2), "{flag} {v}");
        expect(&["train", flag, v, "--out", o2], &[&first]);
        assert!(!never.exists(), "{flag} {v}: something was written");
    }
    let p = write("lr-inf.toml", b"epochs = 1\nlr = inf\n");
    expect(
        &["train", "--config", s(&p), "--out", o2],
        &[&format!(
            "error: config file {}, line 2: `lr` = inf: must be a finite number > 0 (an f32: at \
             most 3.4e38)\n",
            p.display()
        )],
    );
    assert!(!never.exists(), "lr = inf: something was written");
    expect(
        &["tune", "--param", "lr=[1e-3, inf]", "--out", o2],
        &["error: search space: `lr`: inf is not a finite number\n"],
    );
    assert!(!never.exists(), "tune lr=inf: something was written");
    expect(
        &["train", "--out", s(&d.join("never")), "--resume"],
        &["--resume", "never", "checkpoint.tlm"],
    );
    // Model files.
    let run_dir = d.join("m");
    ok(&["train", "--out", s(&run_dir), "--epochs", "1", "--synthetic-samples", "80", "--quiet"]);
    let model = std::fs::read(run_dir.join("model.tlm")).unwrap();
    let p = write("cut.tlm", &model[..model.len() - 4]);
    expect(&["info", "--model", s(&p)], &["cut.tlm", "truncated", "CRC"]);
    let mut b = model.clone();
    b[8] = 9;
    let p = write("v9.tlm", &b);
    expect(&["eval", "--model", s(&p), "--data", s(&d.join("inf.csv"))], &["v9.tlm", "version 9"]);
    // A checkpoint whose model does not match the settings (--units differs).
    expect(
        &["train", "--out", s(&run_dir), "--resume", "--units", "8", "--quiet"],
        &["checkpoint.tlm", "does not match"],
    );
    // Data that does not fit the model (6 values per row for a 3-channel model is fine, 4 is not).
    let p = write("four.csv", b"0,1,2,3,4\n");
    expect(
        &["eval", "--model", s(&run_dir.join("model.tlm")), "--data", s(&p)],
        &["four.csv: line 1"],
    );
    println!("catalogue (binary): {n} cases");
    assert!(n >= 23, "{n} cases");
}

// ---------------------------------------------------------------------------------------------
// 3. Crash safety: SIGKILL during training, then --resume
// ---------------------------------------------------------------------------------------------

const KILL_SEED: u64 = 0x7117_5EED;
const KILLS: usize = 5;
const EPOCHS: usize = 8;

fn train_args(out: &Path, resume: bool) -> Vec<String> {
    let mut a: Vec<String> =
        ["train", "--out", s(out), "--epochs", "8", "--threads", "2", "--quiet"]
            .iter()
            .map(|x| x.to_string())
            .collect();
    if resume {
        a.push("--resume".into());
    } else {
        a.extend(["--synthetic-samples", "400", "--seed", "11"].iter().map(|x| x.to_string()));
    }
    a
}

/// What a killed run left behind must be usable: a checkpoint (when there is one) that loads
/// and passes its CRC, with consistent progress and finite values; a model file (when there is
/// one) that loads; no partially written file under a real name (temporary files may remain).
fn check_after_kill(out: &Path) -> Option<usize> {
    if !out.exists() {
        return None;
    }
    for entry in std::fs::read_dir(out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            // Temporary files of the atomic writer, and the lock of the killed run (stale).
            assert!(
                name.ends_with(".tmp") || name == ".tinylstm.lock",
                "unexpected hidden file {name}"
            );
        }
    }
    if out.join("model.tlm").exists() {
        ModelBundle::load(&out.join("model.tlm")).expect("model.tlm after SIGKILL");
    }
    let ck_path = out.join("checkpoint.tlm");
    if !ck_path.exists() {
        return None;
    }
    let ck = ModelBundle::load(&ck_path).expect("checkpoint.tlm after SIGKILL loads (CRC)");
    let state = ck.meta.train_state.as_ref().expect("checkpoint has training progress");
    assert!((1..=EPOCHS).contains(&state.epochs_done), "{state:?}");
    let epochs: Vec<usize> = state.history.iter().map(|h| h.epoch).collect();
    assert_eq!(epochs, (1..=state.epochs_done).collect::<Vec<_>>());
    assert!(ck.params.iter().all(|v| v.is_finite()));
    assert!(ck.optimizer_state.as_ref().unwrap().iter().all(|v| v.is_finite()));
    Some(state.epochs_done)
}

#[test]
fn sigkill_during_training_leaves_a_loadable_checkpoint_and_resume_finishes() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // The uninterrupted run: reference result and timing.
    let reference = dir.path().join("reference");
    binary(); // build first: the timing below is of the run alone
    let t0 = Instant::now();
    ok(&train_args(&reference, false).iter().map(String::as_str).collect::<Vec<_>>());
    let full = t0.elapsed();

    let out = dir.path().join("killed");
    let mut rng = Rng(KILL_SEED);
    let mut log = Vec::new();
    let mut kills = 0;
    for k in 0..KILLS {
        let done_before = check_after_kill(&out).unwrap_or(0);
        let resume = done_before > 0;
        // A kill point anywhere in what is left of the run, from process start-up to the final
        // exports (a resumed run only trains the remaining epochs).
        let left = (EPOCHS - done_before).max(1) as f64 / EPOCHS as f64;
        let delay = full.mul_f64((0.05 + 0.9 * rng.unit()) * left);
        let mut child = Command::new(binary())
            .args(train_args(&out, resume))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if t.elapsed() >= delay {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if !finished {
            child.kill().unwrap(); // SIGKILL on Unix
        }
        child.wait().unwrap();
        let done = check_after_kill(&out);
        log.push(format!(
            "kill {}: {} from epoch {done_before} after {:.2} s ({}) → checkpoint epochs {done:?}",
            k + 1,
            if resume { "resumed run" } else { "fresh run" },
            delay.as_secs_f64(),
            if finished { "had already finished" } else { "SIGKILL" }
        ));
        kills += usize::from(!finished);
    }
    // A stale temporary file from an earlier crash must not confuse the next run either.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(".checkpoint.tlm.stale0.tmp"), b"half a checkpoint").unwrap();
    let resume = out.join("checkpoint.tlm").exists();
    ok(&train_args(&out, resume).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(check_after_kill(&out), Some(EPOCHS));
    // The finished run cleaned the stale temporary files, released its lock (taking over the
    // killed runs' stale one) and published its set.
    assert!(!out.join(".checkpoint.tlm.stale0.tmp").exists(), "stale temporary file kept");
    assert!(!out.join(".tinylstm.lock").exists(), "lock left by a finished run");
    tinylstm_cli::manifest::verify(&out).expect("the finished run publishes its set");
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let epochs: Vec<u64> =
        history.as_array().unwrap().iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, (1..=EPOCHS as u64).collect::<Vec<_>>());
    // Resuming from epoch boundaries gives the uninterrupted run's weights, bit for bit.
    let a = ModelBundle::load(&reference.join("model.tlm")).unwrap();
    let b = ModelBundle::load(&out.join("model.tlm")).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&a.params) == bits(&b.params),
        "killed-and-resumed run differs from the reference"
    );
    for l in &log {
        println!("{l}");
    }
    // Kill points are wall-clock times, so how many land inside a run depends on the machine's
    // speed and load; at least one must, or the test proved nothing.
    assert!(kills >= 1, "none of the {KILLS} runs was killed: {log:#?}");
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    println!(
        "reference run {:.1} s; temporary files left by the kills: {leftovers:?}; total {:.1} s",
        full.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Numerical faults
// ---------------------------------------------------------------------------------------------

#[test]
fn numerical_optimizer_refuses_non_finite_gradients() {
    let spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
    let p = spec.param_count();
    for opt in [Optimizer::sgd(), Optimizer::sgd().with_momentum(0.9), Optimizer::adam()] {
        let cfg = OptimizerConfig::new(opt);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, p / 2, p - 1] {
                let mut params = finite_params(p, 7);
                let mut grads = finite_params(p, 8);
                grads[at] = bad;
                let mut state = vec![0.25f32; cfg.state_len(p)];
                let (p0, g0, s0) = (params.clone(), grads.clone(), state.clone());
                let e = cfg.apply(&spec, 0..p, 3, &mut params, &mut grads, &mut state).unwrap_err();
                assert_eq!(e, tinylstm::Error::NonFiniteGradient);
                // Nothing changed: parameters, gradients and optimizer state.
                let same =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same(&params, &p0) && same(&state, &s0) && same(&grads, &g0));
            }
        }
    }
    // Head-only steps ignore (and keep) a NaN outside their range, and refuse one inside.
    let cfg = OptimizerConfig::new(Optimizer::adam());
    let head = spec.head_range();
    let mut params = finite_params(p, 7);
    let mut grads = finite_params(p, 8);
    grads[0] = f32::NAN;
    let mut state = vec![0.0; cfg.state_len(head.len())];
    cfg.apply(&spec, head.clone(), 0, &mut params, &mut grads, &mut state).unwrap();
    assert!(params.iter().all(|v| v.is_finite()));
    grads[head.start] = f32::NAN;
    assert!(cfg.apply(&spec, head, 1, &mut params, &mut grads, &mut state).is_err());
}

#[test]
fn numerical_non_finite_data_is_rejected_at_load() {
    let dir = tempfile::tempdir().unwrap();
    for (i, v) in ["nan", "NaN", "inf", "-inf", "+infinity", "3.5e38", "-1e300"].iter().enumerate()
    {
        let name = format!("v{i}.csv");
        let p = dir.path().join(&name);
        std::fs::write(&p, format!("0,1,2,3\n1,0,0,0,1,{v},1\n")).unwrap();
        let e = data::load_sequence_csv(&p, &SequenceCsvOptions::new(3)).unwrap_err();
        assert!(matches!(e, DataError::NonFinite { .. }), "{v}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("{name}: line 2, field 6 (t1 c1)")), "{msg}");
    }
    // Real-valued labels too.
    let e = data::parse_sequence_csv(
        Path::new("y.csv"),
        b"0.5,1\ninf,2\n",
        &SequenceCsvOptions { labels: LabelKind::Real, ..SequenceCsvOptions::new(1) },
    )
    .unwrap_err();
    assert!(
        matches!(e, DataError::NonFinite { .. })
            && e.to_string().contains("y.csv: line 2, field 1 (label)")
    );
}

/// Writes `ck` (a checkpoint loaded from `out`) back with `poison` applied.
fn poison_checkpoint(out: &Path, poison: impl FnOnce(&mut ModelBundle)) -> Vec<u8> {
    let path = out.join("checkpoint.tlm");
    let mut ck = ModelBundle::load(&path).unwrap();
    poison(&mut ck);
    ck.save(&path).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn numerical_huge_learning_rate_is_detected_and_never_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = s(&out);
    let e = fails(&[
        "train",
        "--out",
        o,
        "--epochs",
        "2",
        "--synthetic-samples",
        "120",
        "--optimizer",
        "sgd",
        "--lr",
        "1e38",
        "--threads",
        "2",
        "--quiet",
    ]);
    assert!(e.contains("training diverged at epoch 1, batch "), "{e}");
    assert!(e.contains("the loss is") || e.contains("the gradient of"), "{e}");
    assert!(e.contains("no weights were changed"), "{e}");
    // Diverged inside the first epoch: no checkpoint and no model were written.
    assert!(!out.join("checkpoint.tlm").exists() && !out.join("model.tlm").exists());
}

#[test]
fn numerical_nan_in_a_checkpoint_is_refused_and_not_propagated() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = s(&out);
    let base = ["--synthetic-samples", "120", "--threads", "2", "--quiet"];
    ok(&[&["train", "--out", o, "--epochs", "1"][..], &base].concat());
    let clean = std::fs::read(out.join("checkpoint.tlm")).unwrap();
    let model = std::fs::read(out.join("model.tlm")).unwrap();

    // A NaN in the parameters (a hand-crafted or bit-rotted file with a valid CRC).
    let poisoned = poison_checkpoint(&out, |ck| {
        let at = ck.spec.dense_bias_offset();
        ck.params[at] = f32::NAN;
    });
    let e = fails(&["train", "--out", o, "--resume", "--epochs", "2", "--quiet"]);
    assert!(e.contains("checkpoint.tlm: checkpoint parameters: dense/bias[0]"), "{e}");
    assert!(e.contains("is NaN"), "{e}");
    assert_eq!(
        std::fs::read(out.join("checkpoint.tlm")).unwrap(),
        poisoned,
        "checkpoint rewritten"
    );
    assert_eq!(std::fs::read(out.join("model.tlm")).unwrap(), model, "model rewritten");

    // A NaN in the best-so-far parameters or the optimizer state: refused as well.
    std::fs::write(out.join("checkpoint.tlm"), &clean).unwrap();
    let poisoned = poison_checkpoint(&out, |ck| ck.best_params.as_mut().unwrap()[3] = f32::NAN);
    let e = fails(&["train", "--out", o, "--resume", "--epochs", "2", "--quiet"]);
    assert!(
        e.contains("checkpoint.tlm: checkpoint best-parameters section: lstm/kernel[3]"),
        "{e}"
    );
    assert!(e.contains("is NaN"), "{e}");
    assert_eq!(std::fs::read(out.join("checkpoint.tlm")).unwrap(), poisoned);
    assert_eq!(std::fs::read(out.join("model.tlm")).unwrap(), model, "NaN best weights written");
    std::fs::write(out.join("checkpoint.tlm"), &clean).unwrap();
    poison_checkpoint(&out, |ck| ck.optimizer_state.as_mut().unwrap()[0] = f32::INFINITY);
    let e = fails(&["train", "--out", o, "--resume", "--epochs", "2", "--quiet"]);
    assert!(e.contains("checkpoint.tlm: checkpoint optimizer state: value 0 is inf"), "{e}");

    // The clean checkpoint still resumes.
    std::fs::write(out.join("checkpoint.tlm"), &clean).unwrap();
    ok(&["train", "--out", o, "--resume", "--epochs", "2", "--quiet"]);
}

// ---------------------------------------------------------------------------------------------
// 5. No unsafe code in the core
// ---------------------------------------------------------------------------------------------

#[test]
fn core_and_cli_forbid_unsafe_code() {
    let lib = std::fs::read_to_string(root().join("core/src/lib.rs")).unwrap();
    assert!(lib.contains("#![forbid(unsafe_code)]"), "core/src/lib.rs must forbid unsafe code");
    let cli = std::fs::read_to_string(root().join("host-cli/src/lib.rs")).unwrap();
    assert!(cli.contains("#![forbid(unsafe_code)]"));
    let ws = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(ws.contains("unsafe_code = \"forbid\""), "workspace lint");
}

// ---------------------------------------------------------------------------------------------
// 6. Firmware fine-tuning: adversarial poisons roll back (host replay with the device library)
// ---------------------------------------------------------------------------------------------

mod device_replay;

/// The firmware's field training set with raw value `value` of sequence `sample` replaced.
fn poisoned_set(
    bytes: &[u8],
    shape: &tinylstm_device::data::Shape,
    sample: usize,
    value: usize,
    v: f32,
) -> Vec<u8> {
    use tinylstm_device::data::DATA_HEADER_LEN;
    let mut b = bytes.to_vec();
    let at = DATA_HEADER_LEN + sample * shape.record_len() + 4 * (shape.target_words() + value);
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    b
}

/// The device library's refusal of a sequence with a NaN or infinite value (`View::read_finite`).
const NON_FINITE_INPUT: tinylstm::Error = tinylstm::Error::NonFiniteInput;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Committed,
    RolledBack,
}

impl Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Committed => "commits",
            Outcome::RolledBack => "rolls back",
        })
    }
}

fn outcome(r: Result<(), tinylstm_device::tune::Reject>) -> Outcome {
    if r.is_ok() {
        Outcome::Committed
    } else {
        Outcome::RolledBack
    }
}

/// What the firmware does with its field set with one raw value replaced by `v`: the device's
/// intake check (`View::check_finite`), and — past that check, to test the library's own
/// guards — the full and the head-only update (`device_replay`, which also checks that a
/// failing step changes nothing).
fn poisoned_update(
    m: &tinylstm_device::model::Model<'_>,
    live: &[f32],
    train_bytes: &[u8],
    sample: usize,
    value: usize,
    v: f32,
    valid: &tinylstm_device::data::View<'_>,
) -> (Result<(), tinylstm_device::data::NonFiniteInput>, Outcome, Outcome) {
    use tinylstm_device::data::{Dataset, View};
    let shape = m.shape();
    let bytes = poisoned_set(train_bytes, &shape, sample, value, v);
    let view = View::clean(Dataset::parse(&bytes, shape).expect("values are not checked"), m.norm);
    let mut x = vec![0u32; m.seq_words()];
    let intake = view.check_finite(&mut x);
    let full = outcome(device_replay::replay_full(m, &mut live.to_vec(), &view, valid).1);
    // Head-only: features of every sequence first; a refused sequence rolls back.
    if let Err(e) = device_replay::try_feats(m, live, &view) {
        assert_eq!(e, NON_FINITE_INPUT);
        return (intake, full, Outcome::RolledBack);
    }
    let head = outcome(device_replay::replay_head(m, &mut live.to_vec(), &view, valid).1);
    (intake, full, head)
}

#[test]
fn firmware_fine_tuning_rolls_back_adversarial_poisons() {
    use tinylstm_device::data::*;
    use tinylstm_device::norm::{decode_section, NormError};
    use tinylstm_device::tune::{accept, Reject, Score};
    let fw = root().join("firmware");
    let loaded = device_replay::Loaded::load(&fw.join("models/default.tlm"));
    let m = loaded.model();
    let shape = m.shape();
    let (steps, channels) = (m.steps, shape.width);
    let live = loaded.params.clone();
    let train_bytes = std::fs::read(fw.join("data/field_train.bin")).unwrap();
    let valid_bytes = std::fs::read(fw.join("data/field_valid.bin")).unwrap();
    let valid = View::clean(Dataset::parse(&valid_bytes, shape).unwrap(), m.norm);
    let train = Dataset::parse(&train_bytes, shape).unwrap();
    let n = train.len();
    let live_crc = harness::crc32(&loaded.bytes);

    // Non-finite sensor readings — NaN (with and without a payload), +Inf, -Inf — at the edges
    // of the set and of a sequence, on both sides of the truncated-BPTT window (the last 20 of 40
    // steps): the device's intake check refuses the set, naming the sequence and value, so no
    // training step sees them. Past that check the library's own guards refuse them too: both
    // update modes roll back. (Before the intake check and the guards, ±Inf outside the window
    // committed a full update, and anywhere committed a head-only one: the saturated gates keep
    // features, losses and gradients finite.)
    let nan_payload = f32::from_bits(0x7fc0_dead);
    let window = steps - 20;
    for (sample, t, c, v) in [
        (0, 0, 0, f32::NAN),
        (n - 1, steps - 1, channels - 1, f32::NAN),
        (n / 2, window - 1, 1, nan_payload),
        (1, window, 2, f32::NAN),
        (0, 0, 0, f32::INFINITY),
        (2, window - 1, 0, f32::NEG_INFINITY),
        (3, window, 1, f32::INFINITY),
        (n - 1, steps - 1, channels - 1, f32::NEG_INFINITY),
    ] {
        let value = t * channels + c;
        let (intake, full, head) =
            poisoned_update(&m, &live, &train_bytes, sample, value, v, &valid);
        println!(
            "{v} at sequence {sample}, t{t} c{c}: intake {intake:?}, full update {full}, \
             head-only update {head}"
        );
        assert_eq!(intake, Err(NonFiniteInput { sequences: 1, first: sample, value }), "{v}");
        assert_eq!(
            (full, head),
            (Outcome::RolledBack, Outcome::RolledBack),
            "{v} at {sample} t{t} c{c}"
        );
    }
    // The intake check counts every refused sequence and names the first; it checks the
    // validation set as well (the device checks both before training).
    let at = |t: usize, c: usize| t * channels + c;
    let two = poisoned_set(
        &poisoned_set(&train_bytes, &shape, 7, at(5, 1), f32::NAN),
        &shape,
        3,
        at(9, 2),
        f32::INFINITY,
    );
    let mut x = vec![0u32; m.seq_words()];
    assert_eq!(
        View::clean(Dataset::parse(&two, shape).unwrap(), m.norm).check_finite(&mut x),
        Err(NonFiniteInput { sequences: 2, first: 3, value: at(9, 2) })
    );
    let bad_valid = poisoned_set(&valid_bytes, &shape, 0, 0, f32::NEG_INFINITY);
    assert!(View::clean(Dataset::parse(&bad_valid, shape).unwrap(), m.norm)
        .check_finite(&mut x)
        .is_err());
    assert_eq!(valid.check_finite(&mut x), Ok(()));
    assert_eq!(View::clean(train, m.norm).check_finite(&mut x), Ok(()));
    // The firmware's own poisons go through the same check (the device's demo runs).
    for glitch in [Glitch::Nan, Glitch::PosInf, Glitch::NegInf] {
        let view = View::clean(train, m.norm).poisoned(Poison::NonFinite {
            sample: 1,
            value: 100,
            glitch,
        });
        assert_eq!(
            view.check_finite(&mut x),
            Err(NonFiniteInput { sequences: 1, first: 1, value: 100 }),
            "{glitch:?}"
        );
        assert_eq!(view.read_finite(1, &mut x), Err(NON_FINITE_INPUT));
        assert_eq!(view.read_finite(0, &mut x), Ok(()));
    }
    // A huge but finite raw value: refused at intake if standardising it overflows, else
    // trained on with finite values only (checked inside) and judged by the validation rule.
    let bytes = poisoned_set(&train_bytes, &shape, 0, 0, 3.0e38);
    let view = View::clean(Dataset::parse(&bytes, shape).unwrap(), m.norm);
    let committed = device_replay::replay_full(&m, &mut live.clone(), &view, &valid).1.is_ok();
    println!(
        "3e38 at sequence 0, t0 c0: intake {:?}, full update commits: {committed}",
        view.check_finite(&mut x)
    );
    // The clean update still commits (the model file is untouched by all of the above).
    let clean = View::clean(train, m.norm);
    assert!(device_replay::replay_full(&m, &mut live.clone(), &clean, &valid).1.is_ok());
    assert_eq!(harness::crc32(&std::fs::read(fw.join("models/default.tlm")).unwrap()), live_crc);

    // The acceptance rule against adversarial scores and candidates.
    let good = Score { loss: 0.5, correct: Some(1), count: 2 };
    let better = Score { loss: 0.25, ..good };
    let finite = vec![0.5f32; 4];
    assert_eq!(accept(&finite, &good, &better), Ok(()));
    for bad in [f32::NAN, nan_payload, f32::INFINITY, f32::NEG_INFINITY] {
        let mut c = finite.clone();
        c[3] = bad;
        assert_eq!(accept(&c, &good, &better), Err(Reject::NonFinite));
        assert_eq!(accept(&finite, &good, &Score { loss: bad, ..good }), Err(Reject::NonFinite));
    }
    assert_eq!(accept(&finite, &good, &good), Err(Reject::WorseValidation), "equal loss commits");
    assert_eq!(
        accept(&finite, &Score { loss: 0.0, ..good }, &Score { loss: -0.0, ..good }),
        Err(Reject::WorseValidation)
    );
    // A live model whose validation loss is NaN is never replaced blindly either.
    assert_eq!(
        accept(&finite, &Score { loss: f32::NAN, ..good }, &better),
        Err(Reject::WorseValidation)
    );
    // Corrupt firmware inputs are refused at parse.
    assert_eq!(
        Dataset::parse(&train_bytes[..train_bytes.len() - 1], shape).unwrap_err(),
        DataError::Length
    );
    let mut b = train_bytes.clone();
    b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Dataset::parse(&b, shape).unwrap_err(), DataError::Count);
    let mut b = train_bytes.clone();
    b[DATA_HEADER_LEN..DATA_HEADER_LEN + 4].copy_from_slice(&(shape.outputs as u32).to_le_bytes());
    assert_eq!(Dataset::parse(&b, shape).unwrap_err(), DataError::Label);
    let mut b = train_bytes.clone();
    b[16..20].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(Dataset::parse(&b, shape).unwrap_err(), DataError::Shape);
    let (mut mm, mut ss) = (vec![0.0; channels], vec![0.0; channels]);
    let mut sec = vec![0u8; 4 + 8 * channels];
    sec[..4].copy_from_slice(&(channels as u32).to_le_bytes());
    assert_eq!(decode_section(&sec, channels, &mut mm, &mut ss), Err(NormError::Value(0)));
    sec[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode_section(&sec, channels, &mut mm, &mut ss),
        Err(NormError::Channels(u32::MAX))
    );
}
