//! Reliability (RELIABILITY.md), runs and their numbers: bounded sizes, checkpoints that stay
//! readable, resume that never silently changes what it resumes, and honest errors.
//!
//! * `bounds_*`: every size from a file, flag or config is checked against the machine's
//!   memory (`TINYLSTM_MEMORY_LIMIT` here, so the results do not depend on the test machine)
//!   and cores before anything is allocated or spawned; the error names the flag or field,
//!   the value, the limit and the bytes needed.

mod common;

use common::binary;
use std::path::Path;
use std::process::Command;

use tinylstm::{Head, Spec};
use tinylstm_cli::model_file::{ModelBundle, ModelMeta, Task};
use tinylstm_cli::preprocess::pad::Side;
use tinylstm_cli::preprocess::tokenizer::{Tokenizer, TokenizerConfig};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the binary with `TINYLSTM_MEMORY_LIMIT` = `memory` (when given); the command must fail
/// cleanly (exit 1 or 2, no panic, no abort); returns stderr.
fn fails_with(memory: Option<u64>, args: &[&str]) -> String {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    if let Some(m) = memory {
        cmd.env("TINYLSTM_MEMORY_LIMIT", m.to_string());
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(matches!(out.status.code(), Some(1 | 2)), "tinylstm {args:?}: {:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "tinylstm {args:?} panicked: {err}");
    err
}

fn contains_all(err: &str, needles: &[&str]) {
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

/// A small text model (finite parameters).
fn text_model(steps: usize) -> ModelBundle {
    let cfg = TokenizerConfig { oov_token: Some("<OOV>".into()), ..Default::default() };
    let mut tok = Tokenizer::new(cfg).unwrap();
    tok.fit_on_texts(["the cat sat on the mat", "free prize now"]).unwrap();
    let spec = Spec::tokens(tok.vocab_size(), 3).lstm(4).dense(2, Head::Softmax);
    let params = (0..spec.param_count()).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let mut meta = ModelMeta::new(Task::Text, steps, Side::Pre, Side::Post);
    meta.class_names = vec!["ham".into(), "spam".into()];
    ModelBundle {
        spec,
        params,
        tokenizer: Some(tok),
        normalizer: None,
        meta,
        optimizer_state: None,
        best_params: None,
    }
}

/// A labelled text CSV of `n` rows (two classes).
fn text_csv(path: &Path, n: usize) {
    let mut t = String::from("label,text\n");
    for i in 0..n {
        t.push_str(if i % 2 == 0 { "0,the cat sat on the mat\n" } else { "1,free prize now\n" });
    }
    std::fs::write(path, t).unwrap();
}

#[test]
fn bounds_model_steps_from_the_file_are_checked_before_padding() {
    // A model whose metadata says 10^12 steps: predict used to abort on a 4·10^15-byte
    // allocation. Now refused before padding, with the steps, the bytes and the limit.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("huge-steps.tlm");
    text_model(1_000_000_000_000).save(&model).unwrap();
    let e = fails_with(None, &["predict", "--model", s(&model), "--text", "free prize"]);
    contains_all(&e, &["1000000000000 steps per sequence", "4000000000000 bytes", "memory limit"]);
    let csv = dir.path().join("t.csv");
    text_csv(&csv, 4);
    let e = fails_with(Some(1 << 30), &["eval", "--model", s(&model), "--data", s(&csv)]);
    contains_all(&e, &["1000000000000 steps", "16000000000000 bytes", "1073741824 bytes"]);
}

#[test]
fn bounds_import_maxlen_is_checked_before_reading_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.tlm");
    // The npz does not exist: the bound comes first, so nothing is read or written.
    let e = fails_with(
        Some(1 << 30),
        &[
            "import",
            "--npz",
            "missing.npz",
            "--channels",
            "3",
            "--units",
            "4",
            "--classes",
            "2",
            "--maxlen",
            "1000000000000",
            "--out",
            s(&out),
        ],
    );
    contains_all(&e, &["1000000000000 steps per sequence", "12000000000000 bytes", "--maxlen"]);
    assert!(!out.exists());
}

#[test]
fn bounds_train_maxlen_and_batch_are_checked_against_memory() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    text_csv(&csv, 20);
    let out = dir.path().join("out");
    let common = ["train", "--data", s(&csv), "--out", s(&out), "--epochs", "1", "--quiet"];
    // Padding the training split (16 of the 20 samples) to 10^7 steps: 640 MB of token ids,
    // over a 100 MB limit.
    let e = fails_with(Some(100_000_000), &[&common[..], &["--maxlen", "10000000"]].concat());
    contains_all(
        &e,
        &["10000000 steps per sequence", "--maxlen", "640000000 bytes", "100000000 bytes"],
    );
    // 200 000 steps pad to 16 MB, but the training tape of a batch of 16 over them does not
    // fit in 100 MB: the error names batch size, threads and steps.
    let e = fails_with(
        Some(100_000_000),
        &[&common[..], &["--maxlen", "200000", "--batch-size", "16", "--threads", "1"]].concat(),
    );
    contains_all(&e, &["--batch-size 16", "--threads 1", "200000 steps", "training", "bytes"]);
    assert!(!out.join("model.tlm").exists());
}

#[test]
fn bounds_thread_and_loop_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = s(&out);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limit = (4 * cores).max(64);
    let e = fails_with(None, &["train", "--out", o, "--threads", "100000", "--quiet"]);
    contains_all(&e, &["--threads 100000", &format!("at most {limit} threads")]);
    let e = fails_with(None, &["train", "--out", o, "--epochs", "1000000000000", "--quiet"]);
    contains_all(&e, &["--epochs 1000000000000", "at most 1000000000"]);
    let e = fails_with(
        Some(1 << 30),
        &["train", "--out", o, "--synthetic-samples", "1000000000000", "--quiet"],
    );
    contains_all(&e, &["--synthetic-samples 1000000000000", "1073741824 bytes"]);
    let model = dir.path().join("m.tlm");
    text_model(6).save(&model).unwrap();
    let e =
        fails_with(None, &["predict", "--model", s(&model), "--text", "x", "--threads", "99999"]);
    contains_all(&e, &["--threads 99999", "at most"]);
    assert!(!out.exists() || !out.join("model.tlm").exists());
}

#[test]
fn bounds_tune_counts() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(
        &space,
        "[base]\nsynthetic_samples = 200\nepochs = 1\nunits = [4]\n\n\
         [search]\nstrategy = \"random\"\ntrials = 1000000000000000\n\n\
         [space]\nlr = { low = 1e-3, high = 3e-2, scale = \"log\" }\n",
    )
    .unwrap();
    let out = dir.path().join("tune");
    let e = fails_with(Some(1 << 30), &["tune", "--space", s(&space), "--out", s(&out), "--quiet"]);
    contains_all(&e, &["`trials` = 1000000000000000", "4096000000000000000 bytes", "1073741824"]);
    std::fs::write(
        &space,
        "[base]\nsynthetic_samples = 200\nepochs = 1\nunits = [4]\n\n\
         [search]\nstrategy = \"random\"\ntrials = 2\n\n\
         [space]\nlr = { low = 1e-3, high = 3e-2, scale = \"log\" }\n",
    )
    .unwrap();
    let e = fails_with(
        None,
        &["tune", "--space", s(&space), "--out", s(&out), "--jobs", "100000", "--quiet"],
    );
    contains_all(&e, &["--jobs 100000", "at most"]);
}
