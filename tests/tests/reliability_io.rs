//! Reliability (RELIABILITY.md), the CLI's files and streams: a closed or full standard output,
//! outputs that would overwrite inputs, the output folder's lock, interrupted runs.
//!
//! * `stdout_*`: a reader that closes early and `/dev/full` (exit status and message, no panic).
//! * `clobber_*`: every command refuses an output path that names one of its inputs.

mod common;

use common::binary;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use tinylstm::{Head, Spec};
use tinylstm_cli::model_file::{ModelBundle, ModelMeta, Task};
use tinylstm_cli::preprocess::pad::Side;
use tinylstm_cli::preprocess::tokenizer::{Tokenizer, TokenizerConfig};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small text model with its tokenizer (parameters small and finite).
fn text_model() -> ModelBundle {
    let cfg = TokenizerConfig { oov_token: Some("<OOV>".into()), ..Default::default() };
    let mut tok = Tokenizer::new(cfg).unwrap();
    tok.fit_on_texts(["the cat sat on the mat", "free prize now"]).unwrap();
    let spec = Spec::tokens(tok.vocab_size(), 3).lstm(4).dense(2, Head::Softmax);
    let params = (0..spec.param_count()).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let mut meta = ModelMeta::new(Task::Text, 6, Side::Pre, Side::Post);
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

/// `predict` arguments whose output is far over a pipe's buffer (64 KiB on Linux): 4000 texts,
/// one line of about 40 bytes each (index, line, class, two probabilities, the text).
fn long_predict(model: &Path) -> Vec<String> {
    let mut args = vec!["predict".to_string(), "--model".into(), s(model).into()];
    for i in 0..4000 {
        args.push("--text".into());
        args.push(if i % 2 == 0 { "free prize now".into() } else { "the cat".into() });
    }
    args
}

#[test]
fn stdout_closed_by_the_reader_exits_quietly_with_status_141() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.tlm");
    text_model().save(&model).unwrap();
    let mut child = Command::new(binary())
        .args(long_predict(&model))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: read one line, then close the pipe. The rest of the output does not fit in
    // the pipe's buffer, so the child's later writes fail with EPIPE whatever the timing.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("index\t"), "first line (the table's header): {first:?}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "status {:?}, stderr: {err}", out.status);
    assert!(err.is_empty(), "a closed pipe is not an error to report; stderr: {err}");
}

#[test]
fn stdout_on_a_full_device_is_an_error_naming_standard_output() {
    if !Path::new("/dev/full").exists() {
        common::missing("stdout_on_a_full_device", "/dev/full (Linux only)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.tlm");
    text_model().save(&model).unwrap();
    let full = || Stdio::from(std::fs::File::create("/dev/full").unwrap());
    // A long output (fails at a newline) and a short one (fails at the final flush), and a
    // command whose output is one buffer (completions).
    let cases: Vec<Vec<String>> = vec![
        long_predict(&model),
        vec!["info".into(), "--model".into(), s(&model).into()],
        vec!["completions".into(), "bash".into()],
    ];
    for args in cases {
        let out = Command::new(binary()).args(&args).stdout(full()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{:?}: {:?}, stderr: {err}", &args[..1], out.status);
        assert!(!err.contains("panicked"), "{:?} panicked: {err}", &args[..1]);
        assert!(
            err.contains("error: writing to standard output:") && err.contains("No space left"),
            "{:?}: {err}",
            &args[..1]
        );
        assert_eq!(err.matches("No space left").count(), 1, "OS error printed once: {err}");
    }
}

#[test]
fn stdout_is_written_only_through_the_output_module() {
    // The mechanism: `println!`/`print!` panic on a closed or full stdout, so no CLI source
    // but `output.rs` may use them (or `std::io::stdout()`).
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host-cli/src");
    let mut bad = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") || p.ends_with("output.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for (n, line) in code.lines().enumerate() {
                let t = line.trim_start();
                if t.starts_with("//") {
                    continue;
                }
                let direct = ["println!", "print!", "stdout()"].iter().any(|m| {
                    t.match_indices(m)
                        .any(|(i, _)| !t[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
                });
                if direct {
                    bad.push(format!("{}:{}: {t}", p.display(), n + 1));
                }
            }
        }
    }
    assert!(bad.is_empty(), "direct stdout writes (use crate::outln!): {bad:#?}");
}

/// Runs the binary; it must fail cleanly (exit 1 or 2, no panic); returns stderr.
fn fails(args: &[&str]) -> String {
    let out = Command::new(binary()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(matches!(out.status.code(), Some(1 | 2)), "tinylstm {args:?}: {:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "tinylstm {args:?} panicked: {err}");
    err
}

#[test]
fn clobber_export_and_import_refuse_an_output_that_is_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.tlm");
    text_model().save(&model).unwrap();
    let before = std::fs::read(&model).unwrap();
    // The same path, another spelling of it, and a hard link.
    let other_spelling = dir.path().join("sub/../m.tlm");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let link = dir.path().join("link.tlm");
    std::fs::hard_link(&model, &link).unwrap();
    for out in [&model, &other_spelling, &link] {
        let e = fails(&["export", "--model", s(&model), "--format", "json", "--out", s(out)]);
        assert!(
            e.contains(&format!("--out {}", out.display()))
                && e.contains(&format!("--model {}", model.display()))
                && e.contains("would overwrite"),
            "{e}"
        );
    }
    assert_eq!(std::fs::read(&model).unwrap(), before, "the model was changed");

    let npz = dir.path().join("w.npz");
    std::fs::write(&npz, b"not read: refused before").unwrap();
    let e = fails(&[
        "import",
        "--npz",
        s(&npz),
        "--channels",
        "3",
        "--units",
        "4",
        "--classes",
        "2",
        "--maxlen",
        "10",
        "--out",
        s(&npz),
    ]);
    assert!(e.contains("would overwrite the input --npz"), "{e}");
    let e = fails(&[
        "import",
        "--npz",
        s(&npz),
        "--tokenizer-from",
        s(&model),
        "--units",
        "4",
        "--maxlen",
        "10",
        "--out",
        s(&link),
    ]);
    assert!(e.contains("would overwrite the input --tokenizer-from"), "{e}");
    assert_eq!(std::fs::read(&npz).unwrap(), b"not read: refused before");
    assert_eq!(std::fs::read(&model).unwrap(), before);
}

#[test]
fn clobber_train_refuses_inputs_among_its_outputs_and_eval_checks_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir(&out).unwrap();
    let mut csv = String::from("label,text\n");
    for i in 0..12 {
        csv.push_str(if i % 2 == 0 { "0,the cat sat\n" } else { "1,free prize now\n" });
    }
    for (flag, name) in [("--data", "history.csv"), ("--test", "metrics.json")] {
        let input = out.join(name);
        std::fs::write(&input, &csv).unwrap();
        let other = dir.path().join("d.csv");
        std::fs::write(&other, &csv).unwrap();
        let mut args = vec!["train", "--out", s(&out), "--epochs", "1", "--quiet"];
        if flag == "--data" {
            args.extend(["--data", s(&input)]);
        } else {
            args.extend(["--data", s(&other), "--test", s(&input)]);
        }
        let e = fails(&args);
        assert!(
            e.contains(&format!("--out {}", out.display()))
                && e.contains(&format!("{flag} {}", input.display()))
                && e.contains(name),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&input).unwrap(), csv);
        std::fs::remove_file(&input).unwrap();
    }
    // eval --plots naming an existing file: the message names it, nothing is written.
    let model = dir.path().join("m.tlm");
    text_model().save(&model).unwrap();
    let data = dir.path().join("d.csv");
    let e = fails(&["eval", "--model", s(&model), "--data", s(&data), "--plots", s(&model)]);
    assert!(e.contains(&format!("--plots {}: exists and is not a folder", model.display())), "{e}");
    let e = fails(&["eval", "--model", s(&model), "--data", s(&data), "--plots", s(&data)]);
    assert!(e.contains(&format!("--plots {}", data.display())), "{e}");
}

/// Starts a long training into `out` (not quiet) and returns it once its first epoch is done
/// (its stderr has printed `Epoch 1/`): synchronised on the child's output, not on time.
// The child is returned to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
fn start_long_training(out: &Path) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(binary())
        .args(["train", "--out", s(out), "--synthetic-samples", "64", "--units", "4"])
        .args(["--threads", "1", "--epochs", "100000", "--seed", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if !matches!(err.read_line(&mut line), Ok(n) if n > 0) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("training ended before its first epoch");
        }
        if line.starts_with("Epoch 1/") {
            return (child, err);
        }
    }
}

#[test]
fn lock_one_run_owns_its_output_folder_and_a_stale_lock_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (mut first, _err) = start_long_training(&out);
    let lock = out.join(".tinylstm.lock");
    assert!(lock.exists(), "the running training holds no lock file");
    let quick = ["--synthetic-samples", "64", "--units", "4", "--epochs", "1", "--quiet"];
    let e = fails(&[&["train", "--out", s(&out)][..], &quick].concat());
    assert!(
        e.contains(&format!("--out {}", out.display()))
            && e.contains(&format!("process {}", first.id()))
            && e.contains("another run"),
        "{e}"
    );
    let e = fails(&[&["train", "--out", s(&out), "--resume"][..], &quick[4..]].concat());
    assert!(e.contains(&format!("process {}", first.id())), "{e}");
    // Killed without a chance to clean up: its lock stays, but is stale and does not block.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(lock.exists());
    let out2 = Command::new(binary())
        .args([&["train", "--out", s(&out)][..], &quick].concat())
        .output()
        .unwrap();
    assert!(out2.status.success(), "{}", String::from_utf8_lossy(&out2.stderr));
    assert!(!lock.exists(), "a finished run leaves its lock behind");
}

#[test]
fn set_a_failed_run_leaves_the_previous_set_intact_and_a_complete_run_publishes_its_files() {
    use tinylstm_cli::manifest;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let quick = ["--synthetic-samples", "64", "--units", "4", "--epochs", "1", "--quiet"];
    let train = |seed: &str| {
        Command::new(binary())
            .args([&["train", "--out", s(&out), "--seed", seed][..], &quick].concat())
            .output()
            .unwrap()
    };
    let first = train("1");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let m = manifest::verify(&out).unwrap();
    let names: Vec<&str> = m.files.iter().map(|e| e.file.as_str()).collect();
    for f in ["model.tlm", "history.json", "model.h", "model.rs"] {
        assert!(names.contains(&f), "{f} not in the manifest: {names:?}");
    }
    let model = std::fs::read(out.join("model.tlm")).unwrap();
    // A killed run's temporary file and staging folder, and a fault at the end of the next
    // run: a folder where the C export goes makes publishing fail after model.tlm was written.
    let stale = out.join(".model.tlm.abc123.tmp");
    std::fs::write(&stale, b"half").unwrap();
    let stale_staging = out.join(".run-999999.tmp");
    std::fs::create_dir(&stale_staging).unwrap();
    std::fs::write(stale_staging.join("model.tlm"), b"a killed run's").unwrap();
    let h = std::fs::read(out.join("model.h")).unwrap();
    std::fs::remove_file(out.join("model.h")).unwrap();
    std::fs::create_dir(out.join("model.h")).unwrap();
    let second = train("2");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("model.h") && err.contains("in the way"), "{err}");
    assert!(!stale.exists(), "the stale temporary file was not cleaned");
    assert!(!stale_staging.exists(), "the stale staging folder was not cleaned");
    // The previous run's set is complete and untouched: model.tlm was not replaced.
    std::fs::remove_dir(out.join("model.h")).unwrap();
    std::fs::write(out.join("model.h"), &h).unwrap();
    assert_eq!(manifest::verify(&out).unwrap().run, m.run);
    assert!(std::fs::read(out.join("model.tlm")).unwrap() == model, "model.tlm replaced");
    let hidden: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    let third = train("3");
    assert!(third.status.success(), "{}", String::from_utf8_lossy(&third.stderr));
    let m3 = manifest::verify(&out).unwrap();
    assert_ne!(m3.run, m.run);
    assert!(std::fs::read(out.join("model.tlm")).unwrap() != model, "model.tlm not replaced");
}
