//! Reliability (RELIABILITY.md), runs and their numbers: bounded sizes, checkpoints that stay
//! readable, resume that never silently changes what it resumes, and honest errors.
//!
//! * `bounds_*`: every size from a file, flag or config is checked against the machine's
//!   memory (`TINYLSTM_MEMORY_LIMIT` here, so the results do not depend on the test machine)
//!   and cores before anything is allocated or spawned; the error names the flag or field,
//!   the value, the limit and the bytes needed.
//! * `resume_*`, `checkpoint_*`: what `--resume` refuses; non-finite metrics in checkpoints.
//! * `honest_errors_*`: OS errors once, NaN-weight models, flags that do nothing in the mode.

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

/// Trains a tiny synthetic model for `epochs` epochs into `out` (must succeed).
fn train_tiny(out: &Path, extra: &[&str]) {
    let args = [
        &["train", "--out", s(out), "--synthetic-samples", "64", "--units", "4", "--threads", "1"]
            [..],
        &["--seed", "1", "--quiet"],
        extra,
    ]
    .concat();
    common::ok(&args);
}

#[test]
fn resume_refuses_what_would_silently_change_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train_tiny(&out, &["--epochs", "1"]);
    let model = std::fs::read(out.join("model.tlm")).unwrap();
    let ck_path = out.join("checkpoint.tlm");
    let ck_bytes = std::fs::read(&ck_path).unwrap();
    let o = s(&out);

    // --epochs 0 (fresh or resumed) would write an untrained model: refused, model untouched.
    let e = fails_with(None, &["train", "--out", o, "--epochs", "0", "--quiet"]);
    contains_all(&e, &["--epochs must be at least 1"]);
    let e = fails_with(None, &["train", "--out", o, "--resume", "--epochs", "0", "--quiet"]);
    contains_all(&e, &["--epochs must be at least 1"]);

    // Another optimizer on resume: refused, naming both.
    let e = fails_with(
        None,
        &["train", "--out", o, "--resume", "--epochs", "2", "--optimizer", "sgd", "--quiet"],
    );
    contains_all(&e, &["optimizer adam", "--optimizer sgd"]);

    // An optimizer-state section of the wrong length: refused, naming the file (it used to be
    // zeroed without a word).
    let mut ck = ModelBundle::load(&ck_path).unwrap();
    let state = ck.optimizer_state.as_mut().unwrap();
    let n = state.len();
    state.truncate(n - 1);
    ck.save(&ck_path).unwrap();
    let e = fails_with(None, &["train", "--out", o, "--resume", "--epochs", "2", "--quiet"]);
    contains_all(&e, &[s(&ck_path), &format!("holds {} values", n - 1), &format!("needs {n}")]);
    assert_eq!(std::fs::read(out.join("model.tlm")).unwrap(), model, "model.tlm was changed");

    // Settings that change the model: both shapes are named.
    std::fs::write(&ck_path, &ck_bytes).unwrap();
    let e = fails_with(
        None,
        &["train", "--out", o, "--resume", "--epochs", "2", "--units", "8", "--quiet"],
    );
    contains_all(&e, &["does not match", "3 channels -> LSTM(4)", "3 channels -> LSTM(8)"]);

    // The intact checkpoint resumes.
    std::fs::write(&ck_path, &ck_bytes).unwrap();
    common::ok(&["train", "--out", o, "--resume", "--epochs", "2", "--quiet"]);
    let done = ModelBundle::load(&ck_path).unwrap().meta.train_state.unwrap();
    assert_eq!(done.epochs_done, 2);
}

#[test]
fn checkpoint_with_non_finite_metrics_stays_readable() {
    use tinylstm_cli::history::TrainState;
    // The reader accepts what older files hold (`null` for NaN/inf, also as the best value)…
    let old = r#"{"epochs_done":1,"iteration":4,"best":[null,1],"wait":0,"history":[
        {"epoch":1,"loss":null,"accuracy":null,"val_loss":null,"val_accuracy":0.5,
         "lr":0.001,"seconds":0.1,"samples_per_sec":100.0}]}"#;
    let st: TrainState = serde_json::from_str(old).unwrap();
    assert_eq!(st.best, None, "a non-finite best reads as no best");
    assert!(st.history[0].loss.is_nan());
    assert_eq!(st.history[0].val_loss, None);
    // …and writes non-finite values as strings that read back to the same values.
    let mut st = st;
    st.history[0].loss = f64::INFINITY;
    st.history[0].val_loss = Some(f64::NEG_INFINITY);
    st.history[0].accuracy = Some(f64::NAN);
    let text = serde_json::to_string(&st).unwrap();
    assert!(text.contains(r#""loss":"inf""#) && text.contains(r#""val_loss":"-inf""#), "{text}");
    let back: TrainState = serde_json::from_str(&text).unwrap();
    assert_eq!(back.history[0].loss, f64::INFINITY);
    assert_eq!(back.history[0].val_loss, Some(f64::NEG_INFINITY));
    assert!(back.history[0].accuracy.unwrap().is_nan());
    let bad = text.replace(r#""inf""#, r#""lots""#);
    assert!(serde_json::from_str::<TrainState>(&bad).is_err());

    // Through the binary: a real checkpoint whose history holds an infinite validation loss
    // loads in `info` and resumes.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train_tiny(&out, &["--epochs", "1"]);
    let ck_path = out.join("checkpoint.tlm");
    let mut ck = ModelBundle::load(&ck_path).unwrap();
    let ts = ck.meta.train_state.as_mut().unwrap();
    ts.history[0].val_loss = Some(f64::INFINITY);
    ts.history[0].loss = f64::NAN;
    ck.save(&ck_path).unwrap();
    common::ok(&["info", "--model", s(&ck_path)]);
    common::ok(&["train", "--out", s(&out), "--resume", "--epochs", "2", "--quiet"]);
    let ts = ModelBundle::load(&ck_path).unwrap().meta.train_state.unwrap();
    assert_eq!(ts.epochs_done, 2);
    assert_eq!(ts.history[0].val_loss, Some(f64::INFINITY));
    assert!(ts.best.is_some_and(|b| b.0.is_finite()));
}

#[test]
fn honest_errors_os_errors_print_once_without_temporary_names() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.tlm");
    text_model(6).save(&model).unwrap();
    let missing_dir = dir.path().join("no/such/folder/x.json");
    let e = fails_with(
        None,
        &["export", "--model", s(&model), "--format", "json", "--out", s(&missing_dir)],
    );
    contains_all(&e, &[s(&missing_dir), "No such file or directory"]);
    assert_eq!(e.matches("No such file").count(), 1, "{e}");
    assert!(!e.contains(".x.json."), "the temporary name leaked: {e}");
    let npz = dir.path().join("missing.npz");
    let e = fails_with(
        None,
        &[
            "import",
            "--npz",
            s(&npz),
            "--channels",
            "3",
            "--units",
            "4",
            "--maxlen",
            "4",
            "--out",
            s(&model),
        ],
    );
    contains_all(&e, &[s(&npz), "No such file or directory"]);
    assert_eq!(e.matches("No such file").count(), 1, "{e}");
}

#[test]
fn honest_errors_a_model_with_nan_weights_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("nan.tlm");
    let mut b = text_model(6);
    b.params[3] = f32::NAN;
    b.save(&model).unwrap();
    let e = fails_with(None, &["predict", "--model", s(&model), "--text", "free prize"]);
    contains_all(&e, &[s(&model), "parameter 3", "NaN", "not finite"]);
    assert!(!e.contains("--lr"), "blames the learning rate: {e}");
    let csv = dir.path().join("t.csv");
    text_csv(&csv, 4);
    let e = fails_with(None, &["eval", "--model", s(&model), "--data", s(&csv)]);
    contains_all(&e, &[s(&model), "parameter 3", "not finite"]);
}

#[test]
fn honest_errors_flags_that_do_nothing_in_the_mode_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = s(&out);
    // The synthetic task and sequence CSVs have no text: tokenizer and column flags do nothing.
    let e = fails_with(None, &["train", "--out", o, "--char-level", "true", "--quiet"]);
    contains_all(&e, &["--char-level does nothing for the synthetic task"]);
    let seq = dir.path().join("seq.csv");
    let rows: String = (0..8).map(|i| format!("{},1,2,3,4,5,6\n", i % 2)).collect();
    std::fs::write(&seq, rows).unwrap();
    let e = fails_with(
        None,
        &[
            "train",
            "--out",
            o,
            "--data",
            s(&seq),
            "--channels",
            "3",
            "--label-column",
            "1",
            "--num-words",
            "5",
        ],
    );
    contains_all(&e, &["--label-column", "--num-words", "do nothing for sequence data"]);
    // Text data: --standardize does nothing.
    let txt = dir.path().join("t.csv");
    text_csv(&txt, 8);
    let e = fails_with(None, &["train", "--out", o, "--data", s(&txt), "--standardize", "false"]);
    contains_all(&e, &["--standardize does nothing for text data"]);
    assert!(!out.join("model.tlm").exists());
    // eval on a sequence model with a text-only flag: refused, naming the data file.
    let seq_model = dir.path().join("seqrun");
    train_tiny(&seq_model, &["--epochs", "1"]);
    let e = fails_with(
        None,
        &[
            "eval",
            "--model",
            s(&seq_model.join("model.tlm")),
            "--data",
            s(&seq),
            "--label-column",
            "0",
        ],
    );
    contains_all(&e, &[s(&seq), "--label-column does nothing for sequence data (--channels 3)"]);
}

#[test]
fn honest_errors_labels_are_blamed_on_their_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    text_csv(&train, 12);
    let test = dir.path().join("test.csv");
    std::fs::write(&test, "label,text\n0,the cat\n2,free prize\n1,now\n").unwrap();
    let out = dir.path().join("run");
    let e = fails_with(
        None,
        &["train", "--data", s(&train), "--test", s(&test), "--out", s(&out), "--quiet"],
    );
    contains_all(&e, &[&format!("{}: line 3: label 2", test.display()), s(&train)]);
    let gappy = dir.path().join("gappy.csv");
    std::fs::write(&gappy, "label,text\n0,a b\n1,c d\n3,e f\n0,g\n1,h\n").unwrap();
    let e = fails_with(None, &["train", "--data", s(&gappy), "--out", s(&out), "--quiet"]);
    contains_all(&e, &[&format!("{}: line 4: label 3", gappy.display()), "class 2 has no samples"]);
}

#[test]
fn honest_errors_data_with_other_channels_than_the_model_is_refused_with_both_shapes() {
    // The synthetic model reads 40 steps of 3 channels (120 values per row). A file of 40 steps
    // of 6 channels (240 values, a whole number of 3-channel steps) used to pass as 80 steps.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_tiny(&run, &["--epochs", "1"]);
    let model = run.join("model.tlm");
    let six = dir.path().join("six.csv");
    let row = |label: usize| {
        let v: Vec<String> = (0..240).map(|i| format!("{}", (i % 7) as f32 * 0.1)).collect();
        format!("{label},{}\n", v.join(","))
    };
    std::fs::write(&six, (0..4).map(|i| row(i % 4)).collect::<String>()).unwrap();
    let needles = [s(&six), "240 values, 40 steps × 6 channels", "reads 3 channels", "120 values"];
    let e = fails_with(None, &["eval", "--model", s(&model), "--data", s(&six)]);
    contains_all(&e, &needles);
    let e = fails_with(None, &["predict", "--model", s(&model), "--data", s(&six)]);
    contains_all(&e, &needles);
}
