//! Ctrl-C and SIGTERM during `train` and `tune`: the run stops at the next batch boundary,
//! writes a checkpoint of the work done so far, prints the exact command that continues it and
//! exits 130; continuing gives the uninterrupted run's results bit for bit. A second signal
//! stops at once, leaving only complete files.
//!
//! Two kinds of test:
//! * in process (`stop_at_*`): `tinylstm_cli::interrupt::request_after` puts the stop at an
//!   exact batch boundary, so a stop within an epoch and one between epochs are each certain;
//! * through the binary (`signal_*`): a real SIGINT/SIGTERM sent to a child process once its
//!   first epoch line is out (no test waits on a timer: each waits for a line of the child's
//!   output or for its exit).
//!
//! This file is a test binary of its own: the stop request is process-wide.

mod common;

use common::{binary, ok};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use tinylstm_cli::history::TrainState;
use tinylstm_cli::interrupt;
use tinylstm_cli::model_file::ModelBundle;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 400 synthetic samples (320 for training) in batches of 4: 80 batches per epoch.
const RUN: &[&str] = &[
    "--epochs",
    "3",
    "--synthetic-samples",
    "400",
    "--batch-size",
    "4",
    "--units",
    "8",
    "--seed",
    "3",
    "--threads",
    "2",
    "--quiet",
];
const BATCHES: u64 = 80;

fn train_in_process(out: &Path, extra: &[&str]) -> anyhow::Result<()> {
    let argv = [&["tinylstm", "train", "--out", s(out)][..], extra].concat();
    tinylstm_cli::commands::tune::run_command_line(argv)
}

fn state(out: &Path) -> TrainState {
    let ck = ModelBundle::load(&out.join("checkpoint.tlm")).unwrap();
    ck.meta.train_state.unwrap()
}

/// Losses and accuracies of `history.json`, as bits.
fn history_bits(out: &Path) -> Vec<(u64, u64, u64)> {
    let h: Vec<tinylstm_cli::history::EpochStats> =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    h.iter()
        .map(|e| {
            let bits = |v: Option<f64>| v.map_or(u64::MAX, f64::to_bits);
            (e.loss.to_bits(), bits(e.accuracy), bits(e.val_loss))
        })
        .collect()
}

fn same_run(reference: &Path, out: &Path) {
    let a = std::fs::read(reference.join("model.tlm")).unwrap();
    let b = std::fs::read(out.join("model.tlm")).unwrap();
    assert!(a == b, "the continued run's model.tlm differs from the uninterrupted run's");
    assert_eq!(history_bits(reference), history_bits(out));
    tinylstm_cli::manifest::verify(out).expect("the continued run publishes its set");
}

/// The in-process tests share the process-wide stop request: one at a time.
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn stop_at_exact_batch_boundaries_then_resume_equals_an_uninterrupted_run() {
    let _one = IN_PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    interrupt::clear();
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    train_in_process(&reference, RUN).unwrap();

    let out = dir.path().join("stopped");
    // Within epoch 1: the fifth boundary is before batch 5 (index 4).
    interrupt::request_after(5);
    let e = train_in_process(&out, RUN).unwrap_err();
    assert!(interrupt::is_interrupted(&e), "{e:#}");
    let text = format!("{e:#}");
    assert!(text.contains("train --out") && text.ends_with("--resume"), "{text}");
    let st = state(&out);
    let p = st.partial.as_ref().expect("a stop within an epoch records its position");
    assert_eq!((st.epochs_done, st.iteration, p.epoch, p.batches), (0, 4, 1, 4));
    assert_eq!(p.outputs_bits.len(), 320 * 4);
    // Nothing was published: no set, no staging folder, no lock.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["checkpoint.tlm"]);

    // Continue, and stop again within epoch 2: 76 boundaries finish epoch 1, one more is the
    // epoch boundary, then ten batches of epoch 2.
    interrupt::clear();
    interrupt::request_after((BATCHES - 4) + 1 + 11);
    let e = train_in_process(&out, &["--resume", "--quiet"]).unwrap_err();
    assert!(interrupt::is_interrupted(&e), "{e:#}");
    let st = state(&out);
    let p = st.partial.as_ref().expect("stopped within epoch 2");
    assert_eq!((st.epochs_done, st.iteration, p.epoch, p.batches), (1, 90, 2, 10));

    // Continue to the end of epoch 2 and stop at the epoch boundary: no partial epoch.
    interrupt::clear();
    interrupt::request_after((BATCHES - 10) + 1);
    let e = train_in_process(&out, &["--resume", "--quiet"]).unwrap_err();
    assert!(interrupt::is_interrupted(&e), "{e:#}");
    let st = state(&out);
    assert_eq!((st.epochs_done, st.iteration, st.partial.is_none()), (2, 160, true));

    // A changed batch size cannot continue a partial epoch; say so rather than guess.
    interrupt::clear();
    let other = dir.path().join("other");
    interrupt::request_after(3);
    train_in_process(&other, RUN).unwrap_err();
    interrupt::clear();
    let e = train_in_process(&other, &["--resume", "--batch-size", "8"]).unwrap_err();
    assert!(!interrupt::is_interrupted(&e));
    assert!(format!("{e:#}").contains("--batch-size"), "{e:#}");

    train_in_process(&out, &["--resume", "--quiet"]).unwrap();
    same_run(&reference, &out);
}

/// A JSON file without its timing fields (wall times, throughput).
fn untimed(path: &Path) -> serde_json::Value {
    use serde_json::Value;
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "seconds" | "samples_per_sec"))
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            other => other,
        }
    }
    strip(serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
}

#[test]
fn stop_a_search_within_a_trial_then_the_same_command_finishes_it_as_if_never_stopped() {
    let _one = IN_PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    interrupt::clear();
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    // 200 samples: 160 for training, in 5 batches of 32; two trials of 2 epochs.
    std::fs::write(
        &space,
        "[base]\nsynthetic_samples = 200\nepochs = 2\nunits = [8]\n\n\
         [search]\nstrategy = \"grid\"\n\n\
         [space]\nlr = { low = 1e-3, high = 3e-2, scale = \"log\", points = 2 }\n",
    )
    .unwrap();
    let command = |out: &Path| -> Vec<String> {
        ["tinylstm", "tune", "--space", s(&space), "--jobs", "1", "--quiet", "--out", s(out)]
            .map(String::from)
            .to_vec()
    };
    let whole = dir.path().join("whole");
    tinylstm_cli::commands::tune::run_command_line(command(&whole)).unwrap();

    let out = dir.path().join("stopped");
    // Trial 0: five batch boundaries in epoch 1, the epoch boundary, then batch 1 of epoch 2.
    interrupt::request_after(8);
    let e = tinylstm_cli::commands::tune::run_command_line(command(&out)).unwrap_err();
    assert!(interrupt::is_interrupted(&e), "{e:#}");
    assert!(format!("{e:#}").contains("continue with:"), "{e:#}");
    let ck = ModelBundle::load(&out.join("trials/trial-00000.checkpoint.tlm")).unwrap();
    let st = ck.meta.train_state.unwrap();
    let p = st.partial.as_ref().expect("the trial stopped within epoch 2");
    assert_eq!((st.epochs_done, st.iteration, p.epoch, p.batches), (1, 6, 2, 1));
    assert!(!out.join("results.json").exists());

    interrupt::clear();
    tinylstm_cli::commands::tune::run_command_line(command(&out)).unwrap();
    assert_eq!(untimed(&out.join("results.json")), untimed(&whole.join("results.json")));
    let a = std::fs::read(whole.join("best_model.tlm")).unwrap();
    assert!(std::fs::read(out.join("best_model.tlm")).unwrap() == a, "best model differs");
}

/// Reads the child's stderr line by line on a thread; `wait_for` blocks until a line starting
/// with `prefix` arrives (or the child closed stderr).
struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx, seen: Vec::new() }
    }

    fn wait_for(&mut self, prefix: &str) {
        while let Ok(line) = self.rx.recv() {
            let found = line.starts_with(prefix);
            self.seen.push(line);
            if found {
                return;
            }
        }
        panic!("the child ended without a line starting {prefix:?}: {:#?}", self.seen);
    }

    fn rest(mut self) -> Vec<String> {
        while let Ok(line) = self.rx.recv() {
            self.seen.push(line);
        }
        self.seen
    }
}

fn kill(signal: &str, child: &Child) {
    let st = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(st.success(), "kill {signal} failed");
}

/// The arguments of the command the interrupted run printed after "continue with:".
fn resume_command(lines: &[String]) -> Vec<String> {
    let at = lines.iter().position(|l| l.ends_with("continue with:")).unwrap_or_else(|| {
        panic!("no resume command printed: {lines:#?}");
    });
    let cmd = lines[at + 1].trim();
    assert!(!cmd.contains('\''), "quoted words need a shell: {cmd}");
    let words: Vec<String> = cmd.split(' ').map(String::from).collect();
    assert_eq!(words[0], s(binary()), "{cmd}");
    words[1..].to_vec()
}

#[test]
fn signal_sigint_during_train_checkpoints_prints_the_command_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    ok(&[&["train", "--out", s(&reference)][..], RUN].concat());
    let out = dir.path().join("stopped");
    let loud: Vec<&str> = RUN.iter().copied().filter(|a| *a != "--quiet").collect();
    let mut child = Command::new(binary())
        .args([&["train", "--out", s(&out)][..], &loud].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::of(&mut child);
    lines.wait_for("Epoch 1/3");
    kill("-INT", &child);
    let status = child.wait().unwrap();
    let lines = lines.rest();
    assert_eq!(status.code(), Some(130), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("Interrupted: stopping after the current batch")));
    let args = resume_command(&lines);
    assert_eq!(args, ["train", "--out", s(&out), "--resume"]);
    // The next batch boundary is within epoch 2, or (if the signal came before the loop went
    // on) the end of epoch 1; either way the checkpoint holds at least epoch 1.
    let st = state(&out);
    println!(
        "stopped at step {} (partial epoch: {:?})",
        st.iteration,
        st.partial.as_ref().map(|p| p.batches)
    );
    assert!(st.epochs_done >= 1 && st.iteration >= 80, "{st:?}");
    assert!(!out.join("model.tlm").exists(), "an interrupted run published a model");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args);
    same_run(&reference, &out);
}

#[test]
fn signal_a_second_one_stops_at_once_and_leaves_only_complete_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stopped");
    // A previous run's published set, which the stopped run must leave as it was.
    ok(&[&["train", "--out", s(&out), "--epochs", "1"][..], &RUN[2..]].concat());
    let before = tinylstm_cli::manifest::verify(&out).unwrap();
    let loud: Vec<&str> = RUN.iter().copied().filter(|a| *a != "--quiet").collect();
    let mut child = Command::new(binary())
        .args([&["train", "--out", s(&out)][..], &loud].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::of(&mut child);
    lines.wait_for("Epoch 1/3");
    // Two different signals while the child is stopped are both pending when it continues
    // (two of the same kind would merge into one); the handler sees them back to back, long
    // before the training loop reaches its next batch boundary.
    kill("-STOP", &child);
    kill("-INT", &child);
    kill("-TERM", &child);
    kill("-CONT", &child);
    let status = child.wait().unwrap();
    let lines = lines.rest();
    assert_eq!(status.code(), Some(130), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("Interrupted again: stopping at once")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.ends_with("continue with:")), "{lines:#?}");
    // Every file under a real name is complete: the previous set verifies, the checkpoint
    // (epoch 1's) loads; only temporaries, the staging folder and the stale lock are left.
    assert_eq!(tinylstm_cli::manifest::verify(&out).unwrap(), before);
    assert_eq!(state(&out).epochs_done, 1);
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.') || name.ends_with(".tmp") || name == ".tinylstm.lock",
            "{name}"
        );
    }
    // The next run takes the stale lock over, cleans up and continues.
    ok(&["train", "--out", s(&out), "--resume", "--quiet"]);
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
