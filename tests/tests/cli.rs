//! The `tinylstm` binary end to end: train → eval → predict → export → import on the built-in
//! task, resume, determinism, every bad-input path, and (when `TINYLSTM_DATASETS` is set) real
//! datasets.

mod common;

use common::{ok, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tinylstm::format::ModelFile;
use tinylstm::{model, Sequences};

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "tinylstm {args:?} should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "tinylstm {args:?} panicked: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes the built-in task's samples as a sequence CSV (label, then values timestep-major).
fn synthetic_csv(path: &Path, samples: usize, seed: u64) {
    let ds =
        tinylstm_cli::data::synthetic::generate(&tinylstm_cli::data::synthetic::SyntheticConfig {
            samples,
            seed,
            ..Default::default()
        });
    let mut text = String::new();
    for smp in &ds.samples {
        text += &smp.label.class().unwrap().to_string();
        for v in smp.values().unwrap() {
            text += &format!(",{v}");
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn train_eval_predict_export_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let stdout = ok(&[
        "train",
        "--out",
        s(&out),
        "--epochs",
        "6",
        "--synthetic-samples",
        "600",
        "--threads",
        "2",
        "--quiet",
        "--lr",
        "0.01",
    ]);
    assert!(stdout.contains("Test metrics"), "{stdout}");
    for f in [
        "model.tlm",
        "checkpoint.tlm",
        "history.json",
        "history.csv",
        "metrics.json",
        "loss.svg",
        "loss.png",
        "accuracy.svg",
        "accuracy.png",
        "confusion.svg",
        "confusion.png",
        "model.rs",
        "model.h",
        "model.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing; stdout:\n{stdout}");
    }
    let metrics: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let acc = metrics["classification"]["accuracy"].as_f64().unwrap();
    // Four balanced classes: chance is 0.25. Six short epochs already separate them well.
    assert!(acc > 0.6, "test accuracy {acc} after 6 epochs");
    let history: Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 6);

    // eval and predict on a fresh CSV of the same task.
    let csv = dir.path().join("fresh.csv");
    synthetic_csv(&csv, 80, 99);
    let model = out.join("model.tlm");
    let eval: Value =
        serde_json::from_str(&ok(&["eval", "--model", s(&model), "--data", s(&csv), "--json"]))
            .unwrap();
    assert_eq!(eval["samples"], 80);
    let eval_acc = eval["classification"]["accuracy"].as_f64().unwrap();
    assert!(eval_acc > 0.5, "fresh-data accuracy {eval_acc}");
    let pred = ok(&["predict", "--model", s(&model), "--data", s(&csv), "--json"]);
    let rows: Vec<Value> = pred.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 80);

    // Predictions equal the core's forward pass on the same (standardised) input, bit for bit.
    let bundle = tinylstm_cli::model_file::ModelBundle::load(&model).unwrap();
    let ds = tinylstm_cli::data::load_sequence_csv(
        &csv,
        &tinylstm_cli::data::SequenceCsvOptions::new(3),
    )
    .unwrap();
    let spec = bundle.spec;
    let mut work = vec![0.0; spec.forward_work_len(1, 8).unwrap()];
    for (i, smp) in ds.samples.iter().enumerate().take(10) {
        let mut x = smp.values().unwrap().to_vec();
        bundle.normalizer.as_ref().unwrap().apply(&mut x).unwrap();
        let mut probs = vec![0.0; spec.outputs];
        model::forward(&spec, &bundle.params, Sequences::Values(&x), 1, &mut work, &mut probs)
            .unwrap();
        let bits: Vec<String> = probs.iter().map(|p| format!("{:08x}", p.to_bits())).collect();
        let cli: Vec<String> = rows[i]["output_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(bits, cli, "sample {i}");
    }

    // info
    let info: Value = serde_json::from_str(&ok(&["info", "--model", s(&model), "--json"])).unwrap();
    assert_eq!(info["parameters"].as_u64().unwrap() as usize, spec.param_count());
    assert_eq!(info["input"]["channels"], 3);

    // export → Keras npz → import: the same parameters, bit for bit.
    let npz = dir.path().join("w.npz");
    ok(&["export", "--model", s(&model), "--format", "keras-npz", "--out", s(&npz)]);
    let back = dir.path().join("back.tlm");
    ok(&[
        "import",
        "--npz",
        s(&npz),
        "--channels",
        "3",
        "--units",
        "64",
        "--classes",
        "4",
        "--maxlen",
        "40",
        "--out",
        s(&back),
    ]);
    let a = std::fs::read(&model).unwrap();
    let b = std::fs::read(&back).unwrap();
    let (fa, fb) = (ModelFile::parse(&a).unwrap(), ModelFile::parse(&b).unwrap());
    assert_eq!(fa.spec(), fb.spec());
    let pa: Vec<u32> = fa.params().map(f32::to_bits).collect();
    let pb: Vec<u32> = fb.params().map(f32::to_bits).collect();
    assert_eq!(pa, pb);
    for fmt in ["rust", "c", "json", "tlm"] {
        let p = dir.path().join(format!("m.{fmt}"));
        ok(&["export", "--model", s(&model), "--format", fmt, "--out", s(&p)]);
        assert!(std::fs::metadata(&p).unwrap().len() > 0);
    }
}

#[test]
fn same_seed_same_model_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let common =
        ["--epochs", "2", "--synthetic-samples", "160", "--threads", "2", "--quiet", "--seed", "7"];
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    ok(&[&["train", "--out", s(&a)][..], &common].concat());
    ok(&[&["train", "--out", s(&b)][..], &common].concat());
    assert_eq!(
        std::fs::read(a.join("model.tlm")).unwrap(),
        std::fs::read(b.join("model.tlm")).unwrap()
    );

    // Resume a 2-epoch run to 3 epochs: the history continues.
    ok(&["train", "--out", s(&a), "--resume", "--epochs", "3", "--quiet"]);
    let h: Value = serde_json::from_slice(&std::fs::read(a.join("history.json")).unwrap()).unwrap();
    let epochs: Vec<u64> =
        h.as_array().unwrap().iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![1, 2, 3]);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &str| -> PathBuf {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let out = d.join("o");
    let o = s(&out);

    let e = fails(&["train", "--data", s(&d.join("missing.csv")), "--out", o]);
    assert!(e.contains("missing.csv"), "{e}");
    // A failed run leaves no empty output folder behind.
    assert!(!out.exists(), "the failed run left {}", out.display());

    let arity = write("arity.csv", "0,1,2,3,4,5,6\n1,1,2,3,4,5\n");
    let e = fails(&["train", "--data", s(&arity), "--channels", "3", "--out", o]);
    assert!(e.contains("arity.csv") && e.contains("line 2"), "{e}");

    let nonnum = write("nonnum.csv", "0,1,2,3\n1,1,x,3\n");
    let e = fails(&["train", "--data", s(&nonnum), "--channels", "3", "--out", o]);
    assert!(e.contains("line 2") && e.contains("\"x\""), "{e}");

    let nan = write("nan.csv", "0,1,2,3\n1,1,NaN,3\n");
    let e = fails(&["train", "--data", s(&nan), "--channels", "3", "--out", o]);
    assert!(e.contains("line 2"), "{e}");

    let range = write("range.csv", "0,1,2,3\n5,1,2,3\n");
    let e = fails(&["train", "--data", s(&range), "--channels", "3", "--classes", "2", "--out", o]);
    assert!(e.contains("line 2") && e.contains('5'), "{e}");

    let frac = write("frac.csv", "0,1,2,3\n1.5,1,2,3\n");
    let e = fails(&["train", "--data", s(&frac), "--channels", "3", "--out", o]);
    assert!(e.contains("line 2") && e.contains("1.5"), "{e}");

    let gap = write("gap.csv", "0,1,2,3\n2,1,2,3\n");
    let e = fails(&["train", "--data", s(&gap), "--channels", "3", "--out", o]);
    assert!(e.contains("gap.csv") && e.contains("class 1"), "{e}");

    let empty = write("empty.csv", "");
    let e = fails(&["train", "--data", s(&empty), "--channels", "3", "--out", o]);
    assert!(e.contains("empty.csv"), "{e}");

    let header_only = write("header.csv", "label,text\n");
    let e = fails(&["train", "--data", s(&header_only), "--out", o]);
    assert!(e.contains("header.csv"), "{e}");

    let texts =
        write("texts.csv", "label,text\n0,hello there\n1,buy now\n0,see you\n1,free prize\n");
    let e = fails(&["train", "--data", s(&texts), "--maxlen", "0", "--out", o]);
    assert!(e.contains("--maxlen"), "{e}");

    let e = fails(&["train", "--optimizer", "adamm", "--out", o]);
    assert!(e.contains("adamm"), "{e}");
    let e = fails(&["train", "--lr=-1", "--out", o, "--synthetic-samples", "40"]);
    assert!(e.contains("--lr"), "{e}");

    // A closed set's value in a config file is checked, naming the file and the key.
    let cfg = write("psot.toml", "epochs = 1\npadding = \"psot\"\n");
    let e = fails(&["train", "--config", s(&cfg), "--out", o]);
    assert!(e.contains("psot.toml") && e.contains("padding") && e.contains("`pre`"), "{e}");

    let cfg = write("bad.toml", "epochz = 3\n");
    let e = fails(&["train", "--config", s(&cfg), "--out", o]);
    assert!(e.contains("epochz") && e.contains("bad.toml"), "{e}");

    // Model files: corrupt, truncated, not a model, and a model that does not fit the data.
    let run_dir = d.join("m");
    ok(&["train", "--out", s(&run_dir), "--epochs", "1", "--synthetic-samples", "80", "--quiet"]);
    let model = run_dir.join("model.tlm");
    let mut bytes = std::fs::read(&model).unwrap();
    let corrupt = d.join("corrupt.tlm");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&corrupt, &bytes).unwrap();
    let csv = d.join("s.csv");
    synthetic_csv(&csv, 8, 1);
    let e = fails(&["eval", "--model", s(&corrupt), "--data", s(&csv)]);
    assert!(e.contains("corrupt.tlm") && e.contains("CRC"), "{e}");
    let truncated = d.join("trunc.tlm");
    std::fs::write(&truncated, &std::fs::read(&model).unwrap()[..100]).unwrap();
    let e = fails(&["info", "--model", s(&truncated)]);
    assert!(e.contains("trunc.tlm") && e.contains("truncated"), "{e}");
    let e = fails(&["info", "--model", s(&texts)]);
    assert!(e.contains("texts.csv"), "{e}");
    // The model reads 3 channels: 4 values per row are not whole time steps.
    let four = write("four.csv", "0,1,2,3,4\n1,1,2,3,4\n");
    let e = fails(&["eval", "--model", s(&model), "--data", s(&four)]);
    assert!(e.contains("four.csv") && e.contains("line 1"), "{e}");
    // A text file given to a sequence model.
    let e = fails(&["eval", "--model", s(&model), "--data", s(&texts)]);
    assert!(e.contains("texts.csv"), "{e}");
}

fn test_accuracy(out: &Path) -> f64 {
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    m["classification"]["accuracy"].as_f64().unwrap()
}

#[test]
fn sms_spam_seed_model_reaches_097() {
    let Some(root) = common::datasets("sms_spam_seed_model_reaches_097") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sms");
    let data = root.join("text/sms_spam_en/sms_spam.csv");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--maxlen",
        "60",
        "--epochs",
        "3",
        "--out",
        s(&out),
        "--quiet",
        "--lr",
        "3e-3",
    ]);
    let acc = test_accuracy(&out);
    println!("sms_spam_en test accuracy {acc:.4}");
    assert!(acc >= 0.97, "sms_spam_en test accuracy {acc}");
}

#[test]
fn basicmotions_reaches_085() {
    let Some(root) = common::datasets("basicmotions_reaches_085") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bm");
    let base = root.join("sensor/basicmotions");
    ok(&[
        "train",
        "--data",
        s(&base.join("train.csv")),
        "--test",
        s(&base.join("test.csv")),
        "--channels",
        "6",
        "--epochs",
        "200",
        "--patience",
        "20",
        "--batch-size",
        "16",
        "--lr",
        "1e-2",
        "--valid-split",
        "0.2",
        "--out",
        s(&out),
        "--quiet",
    ]);
    let acc = test_accuracy(&out);
    println!("basicmotions test accuracy {acc:.4}");
    assert!(acc >= 0.85, "basicmotions test accuracy {acc}");
}

#[test]
fn divergence_stops_with_a_clear_message_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = s(&out);
    // SGD from the start: resuming keeps the optimizer (another one is refused).
    ok(&[
        "train",
        "--out",
        o,
        "--epochs",
        "2",
        "--synthetic-samples",
        "120",
        "--optimizer",
        "sgd",
        "--quiet",
    ]);
    let checkpoint = std::fs::read(out.join("checkpoint.tlm")).unwrap();
    let model = std::fs::read(out.join("model.tlm")).unwrap();
    // Resume with an absurd learning rate: the weights overflow and the next loss is NaN/Inf.
    let e = fails(&[
        "train",
        "--out",
        o,
        "--resume",
        "--epochs",
        "4",
        "--optimizer",
        "sgd",
        "--lr",
        "1e37",
        "--quiet",
    ]);
    assert!(e.contains("diverged") && e.contains("epoch 3"), "{e}");
    assert_eq!(
        std::fs::read(out.join("checkpoint.tlm")).unwrap(),
        checkpoint,
        "checkpoint overwritten"
    );
    assert_eq!(std::fs::read(out.join("model.tlm")).unwrap(), model, "model overwritten");
    // The kept checkpoint still resumes with sane settings.
    ok(&["train", "--out", o, "--resume", "--epochs", "3", "--quiet"]);
}

/// What a Keras user looks for on the console: the per-layer summary and the legend of the `*`
/// marker at the start, "restored the best weights" exactly when the kept epoch is not the last,
/// a note when an output folder is reused; plus `-v` and shell completions.
#[test]
fn console_summary_restore_note_reuse_version_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = [
        "train",
        "--out",
        s(&out),
        "--epochs",
        "6",
        "--lr",
        "0.3",
        "--synthetic-samples",
        "80",
        "--threads",
        "1",
    ];
    let first = run(&args);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let err = String::from_utf8_lossy(&first.stderr);
    for want in [
        "Layer (type)",
        "lstm (LSTM)",
        "Total params:",
        "Device RAM besides the weights",
        "(* after an epoch: val_loss improved",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("Reusing output folder"), "{err}");
    let history: Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let losses: Vec<f64> =
        history.as_array().unwrap().iter().map(|h| h["val_loss"].as_f64().unwrap()).collect();
    // Keras's rule: the first epoch with the lowest val_loss is kept.
    let best = 1 + (0..losses.len()).fold(0, |b, i| if losses[i] < losses[b] { i } else { b });
    let note = format!("Restored the best weights, from epoch {best} (val_loss");
    assert_eq!(
        err.contains(&note),
        best != losses.len(),
        "best epoch {best} of {losses:?}:\n{err}"
    );

    let second = run(&args);
    assert!(second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("Reusing output folder {}", out.display())), "{err}");

    // `info` prints the same summary for a saved model.
    let info = ok(&["info", "--model", s(&out.join("model.tlm"))]);
    for want in ["Layer (type)", "lstm (LSTM)", "Total params:", "Device RAM besides the weights"] {
        assert!(info.contains(want), "info lacks {want:?}:\n{info}");
    }

    let version = ok(&["-v"]);
    assert!(version.starts_with("tinylstm "), "{version}");
    let bash = ok(&["completions", "bash"]);
    assert!(bash.contains("_tinylstm") && bash.contains("--monitor"), "{}", &bash[..200]);
}

/// Both kernel paths, the fast one (the default) and the exact one (`--exact`): a run repeats
/// bit for bit for a seed and thread count, and a run stopped after 2 epochs and resumed to 3
/// ends with the weights and optimizer state of the 3-epoch run, bit for bit. The resumed run
/// is given no path flag: it keeps the path it started with.
#[test]
fn both_kernel_paths_repeat_and_resume_bit_for_bit() {
    use tinylstm_cli::model_file::ModelBundle;
    let dir = tempfile::tempdir().unwrap();
    let common = ["--synthetic-samples", "160", "--threads", "2", "--quiet", "--seed", "5"];
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let load = |run: &Path, file: &str| ModelBundle::load(&run.join(file)).unwrap();
    let mut finals = Vec::new();
    for (name, flags) in [("fast", &[][..]), ("exact", &["--exact"][..])] {
        let run_dir = |tag: &str| dir.path().join(format!("{name}-{tag}"));
        let (a, b, c) = (run_dir("a"), run_dir("b"), run_dir("c"));
        for (out, epochs) in [(&a, "3"), (&b, "3"), (&c, "2")] {
            ok(&[&["train", "--out", s(out), "--epochs", epochs][..], &common, flags].concat());
        }
        assert_eq!(
            std::fs::read(a.join("model.tlm")).unwrap(),
            std::fs::read(b.join("model.tlm")).unwrap(),
            "{name}: two runs with one seed and thread count differ"
        );
        ok(&["train", "--out", s(&c), "--resume", "--epochs", "3", "--quiet"]);
        let (ma, mc) = (load(&a, "model.tlm"), load(&c, "model.tlm"));
        assert!(bits(&ma.params) == bits(&mc.params), "{name}: the resumed run's weights differ");
        let (ka, kc) = (load(&a, "checkpoint.tlm"), load(&c, "checkpoint.tlm"));
        assert!(
            bits(ka.optimizer_state.as_deref().unwrap())
                == bits(kc.optimizer_state.as_deref().unwrap()),
            "{name}: the resumed run's optimizer state differs"
        );
        finals.push(bits(&ma.params));
    }
    // With FMA the paths round differently: this tells that --exact did switch the path.
    if tinylstm_fast::Isa::detect() != tinylstm_fast::Isa::Portable {
        assert!(finals[0] != finals[1], "the fast and the exact run trained the same bits");
    }
}

/// UEA-style data sets all call their file `train.csv`: the default output folder is named
/// after the data set's folder (`out/BasicMotions-train`), so runs on two data sets never share
/// one; a second run into a folder with files says it reuses it; a failed run whose default
/// folder (and `out/` itself) did not exist leaves neither behind.
#[test]
fn default_output_folders_are_named_after_the_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let in_work = |args: &[&str]| {
        let out = std::process::Command::new(common::binary())
            .args(args)
            .current_dir(&work)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    std::fs::create_dir(dir.path().join("Broken")).unwrap();
    std::fs::write(dir.path().join("Broken/train.csv"), "0,1,2\n1,x,3\n").unwrap();
    let (ok_run, err) = in_work(&["train", "--data", "../Broken/train.csv", "--channels", "1"]);
    assert!(!ok_run && err.contains("train.csv") && err.contains("line 2"), "{err}");
    assert!(!work.join("out").exists(), "the failed run left out/ behind");

    let channels = tinylstm_cli::data::synthetic::CHANNELS.to_string();
    for (i, set) in ["BasicMotions", "Epilepsy"].into_iter().enumerate() {
        std::fs::create_dir(dir.path().join(set)).unwrap();
        synthetic_csv(&dir.path().join(set).join("train.csv"), 60, i as u64);
        let data = format!("../{set}/train.csv");
        let args = ["train", "--data", &data, "--channels", &channels, "--epochs", "1"];
        let (ok_run, err) = in_work(&[&args[..], &["--threads", "1", "--units", "8"]].concat());
        assert!(ok_run, "{err}");
        assert!(work.join(format!("out/{set}-train/model.tlm")).exists(), "{set}: {err}");
        assert!(!err.contains("Reusing"), "{err}");
    }
    let mut folders: Vec<String> = std::fs::read_dir(work.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders, ["BasicMotions-train", "Epilepsy-train"]);
    let again = ["--data", "../Epilepsy/train.csv", "--epochs", "1", "--units", "8"];
    let (ok_run, err) = in_work(&[&["train", "--channels", &channels][..], &again].concat());
    assert!(ok_run, "{err}");
    let reused = Path::new("out").join("Epilepsy-train");
    assert!(err.contains(&format!("Reusing output folder {}", reused.display())), "{err}");
}

/// A binary classification run writes the ROC and precision–recall pictures beside the
/// confusion matrix, from `train` (test split) and from `eval --plots`; a run with more
/// classes writes the confusion matrix only.
#[test]
fn binary_runs_write_roc_and_precision_recall_beside_the_confusion_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("words.csv");
    let mut text = String::new();
    for i in 0..120 {
        let (label, words) =
            if i % 2 == 0 { (1, "good great fine nice") } else { (0, "bad awful poor sad") };
        let w: Vec<&str> = words.split(' ').collect();
        text += &format!("{label},{} {} {}\n", w[i % 4], w[(i / 2) % 4], w[(i / 3) % 4]);
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("run");
    let small = ["--epochs", "2", "--units", "8", "--embedding-dim", "4", "--maxlen", "4"];
    let args = [&["train", "--data", s(&csv), "--out", s(&out), "--quiet"][..], &small].concat();
    ok(&args);
    for f in ["confusion", "roc", "precision_recall"] {
        for ext in ["svg", "png"] {
            assert!(out.join(format!("{f}.{ext}")).exists(), "train: {f}.{ext} missing");
        }
    }
    let plots = dir.path().join("eval-plots");
    let model = out.join("model.tlm");
    ok(&["eval", "--model", s(&model), "--data", s(&csv), "--plots", s(&plots)]);
    for f in ["confusion.svg", "roc.svg", "precision_recall.svg"] {
        assert!(plots.join(f).exists(), "eval --plots: {f} missing");
    }
    // The built-in task has four classes: no ROC.
    let four = dir.path().join("four");
    ok(&["train", "--out", s(&four), "--epochs", "1", "--synthetic-samples", "60", "--quiet"]);
    assert!(four.join("confusion.svg").exists());
    assert!(!four.join("roc.svg").exists() && !four.join("precision_recall.svg").exists());
}

/// The words of a help example: `"…"` quoting kept together; a `#` comment or a `>`
/// redirection ends it.
fn example_words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            '#' | '>' if !quoted => break,
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => (cur, any) = (cur + &c.to_string(), true),
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The examples `tinylstm CMD --help` prints, as argument lists (without `tinylstm`).
fn help_examples(cmd: &str) -> Vec<Vec<String>> {
    let help = ok(&[cmd, "--help"]);
    let examples: Vec<Vec<String>> = help
        .lines()
        .skip_while(|l| !l.starts_with("Example"))
        .map(str::trim_start)
        .filter(|l| l.starts_with("tinylstm "))
        .map(|l| example_words(l)[1..].to_vec())
        .collect();
    assert!(!examples.is_empty(), "`{cmd} --help` shows no example:\n{help}");
    examples
}

/// Every example that `train`, `eval`, `predict`, `export`, `completions`, `import` and
/// `device-data` show in their `--help` runs as printed, in a scratch folder holding the files
/// the examples name (a text CSV `sms.csv`, a 6-channel `train.csv`/`test.csv`, `train.toml`,
/// Keras weights `w.npz` of the shapes each import example names, …). The examples of `tune`
/// and `bench` run with their sizes cut so the test takes seconds ([`cut_to_test_size`]: one
/// epoch on 40 synthetic samples, 2 trials; 0.05 s per bench phase); every other word of them
/// runs as printed.
#[test]
fn help_examples_run_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    let texts = |n: usize| -> String {
        let words = [["win", "prize", "claim", "free"], ["see", "you", "at", "home"]];
        (0..n)
            .map(|i| {
                let w = &words[i % 2];
                format!("{},{} {} {} now\n", 1 - i % 2, w[i % 4], w[(i / 2) % 4], w[(i / 3) % 4])
            })
            .collect()
    };
    write("sms.csv", &texts(60));
    write("sms_test.csv", &texts(20));
    let sequences = |n: usize, labels: bool| -> String {
        let mut text = String::new();
        for i in 0..n {
            let label = i % 2;
            if labels {
                text += &format!("{label}");
            }
            for v in 0..60 {
                let x = ((v * (label + 1) + i) % 7) as f32 * 0.3 - label as f32;
                text += &format!("{}{x}", if labels || v > 0 { "," } else { "" });
            }
            text.push('\n');
        }
        text
    };
    write("train.csv", &sequences(60, true));
    write("test.csv", &sequences(20, true));
    write("train.toml", "data = \"sms.csv\"\nepochs = 1\n");
    synthetic_csv(&d.join("windows.csv"), 20, 3);
    let run_here = |args: &[String], stdin: &[u8]| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(common::binary())
            .args(args)
            .current_dir(d)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Only `predict` reads its input; any other command may exit before the write, which
        // then meets a closed pipe (its exit status is checked below).
        if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing the input: {e}");
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "help example `tinylstm {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let setup = |args: &[&str]| {
        run_here(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), b"");
    };
    // What the examples take as given: an interrupted run in runs/a, a 6-channel model in
    // out/motion, a model.tlm, a firmware/src folder.
    setup(&["train", "--out", "runs/a", "--epochs", "1", "--synthetic-samples", "60", "--quiet"]);
    let motion = ["--data", "train.csv", "--channels", "6", "--epochs", "1", "--quiet"];
    setup(&[&["train", "--out", "out/motion"][..], &motion].concat());
    std::fs::create_dir_all(d.join("firmware/src")).unwrap();
    // What the import examples take: Keras weights of a 6-channel LSTM 32 → Dense 4 model, and
    // of a text model LSTM 128 → LSTM 64 → Dense 1 whose tokenizer is in sms.tlm.
    synthetic_csv(&d.join("four.csv"), 40, 5);
    let four = ["--data", "four.csv", "--channels", "6", "--units", "32", "--epochs", "1"];
    setup(&[&["train", "--out", "out/four", "--quiet"][..], &four].concat());
    let text = ["--data", "sms.csv", "--units", "128,64", "--maxlen", "60", "--epochs", "1"];
    setup(&[&["train", "--out", "out/text", "--quiet"][..], &text].concat());
    std::fs::copy(d.join("out/text/model.tlm"), d.join("sms.tlm")).unwrap();
    for (model, npz) in [("out/four/model.tlm", "w-four.npz"), ("sms.tlm", "w-text.npz")] {
        setup(&["export", "--model", model, "--format", "keras-npz", "--out", npz]);
    }
    // What the device-data example takes: labelled data in the synthetic model's format.
    synthetic_csv(&d.join("my.csv"), 40, 9);
    // What the search examples take: a search file, and the other three shards to merge.
    write(
        "space.toml",
        "[search]\ntrials = 4\n\n[space]\nlr = { low = 1e-3, high = 3e-2, scale = \"log\" }\n\
         units = [[8], [16]]\n",
    );
    for shard in 1..4 {
        let (part, out) = (format!("{shard}/4"), format!("runs/s{shard}"));
        let args = ["tune", "--space", "space.toml", "--shard", &part, "--out", &out, "--quiet"];
        run_here(&cut_to_test_size(args.map(String::from).to_vec()), b"");
    }
    let mut ran = 0;
    let commands =
        ["train", "eval", "predict", "export", "completions", "import", "device-data", "tune"];
    for cmd in commands.into_iter().chain(["bench"]) {
        for args in help_examples(cmd) {
            assert_eq!(args[0], cmd);
            if cmd == "export" && args.iter().any(|a| a == "model.tlm") {
                std::fs::copy(d.join("out/synthetic/model.tlm"), d.join("model.tlm")).unwrap();
            }
            if cmd == "import" {
                let text = args.iter().any(|a| a == "--tokenizer-from");
                let npz = if text { "w-text.npz" } else { "w-four.npz" };
                std::fs::copy(d.join(npz), d.join("w.npz")).unwrap();
                let _ = std::fs::remove_file(d.join("m.tlm"));
            }
            if cmd == "tune" && !args.iter().any(|a| ["merge", "--out", "--data"].contains(&&**a)) {
                // Each search of the examples in the default folder starts afresh there.
                let _ = std::fs::remove_dir_all(d.join("out/tune-synthetic"));
            }
            run_here(&cut_to_test_size(args.clone()), sequences(3, false).as_bytes());
            if cmd == "import" {
                assert!(d.join("m.tlm").exists(), "`{}` wrote no m.tlm", args.join(" "));
            }
            ran += 1;
        }
    }
    assert!(ran >= 22, "only {ran} examples ran");
    for f in ["out/synthetic/model.tlm", "out/sms/model.tlm", "out/train/model.tlm"] {
        assert!(d.join(f).exists(), "{f} missing");
    }
    for f in ["firmware/src/model.rs", "sms-int8.tlm", "weights.npz", "out/device/samples.bin"] {
        assert!(d.join(f).exists(), "{f} missing");
    }
    for f in ["out/tune-synthetic/best_model.tlm", "runs/s0/results.json", "runs/all"] {
        assert!(d.join(f).exists(), "{f} missing");
    }
}

/// A `tune` or `bench` help example at test size: `--trials`, `--epochs` and `--seconds` cut
/// where the example gives them and added where it does not (one epoch on 40 synthetic
/// samples, 2 trials, 0.05 s and one repeat per bench phase); every other word unchanged. Other
/// commands' examples are returned as they are.
fn cut_to_test_size(mut args: Vec<String>) -> Vec<String> {
    let cuts: &[(&str, &str)] = match args[0].as_str() {
        "tune" if args[1] != "merge" => &[("--trials", "2"), ("--epochs", "1")],
        "bench" => &[("--seconds", "0.05"), ("--repeats", "1")],
        _ => return args,
    };
    for &(flag, value) in cuts {
        match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_string(),
            None => args.extend([flag.to_string(), value.to_string()]),
        }
    }
    if args[0] == "tune" && !args.iter().any(|a| a == "--data") {
        args.extend(["--synthetic-samples".to_string(), "40".to_string()]);
    }
    args
}

/// Names as the flags spell them, end to end: `--monitor val_loss` and `--optimizer
/// sgd+momentum` are accepted on the command line and in a config file, and messages name them
/// the same way (never `ValLoss` or `Momentum`).
#[test]
fn flags_and_messages_spell_names_alike() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let small = ["--epochs", "1", "--synthetic-samples", "40", "--quiet"];
    let flags = ["train", "--out", s(&out), "--monitor", "val_loss", "--optimizer", "sgd+momentum"];
    ok(&[&flags[..], &small].concat());
    let e = fails(&["train", "--out", s(&out), "--resume", "--optimizer", "adam"]);
    assert!(
        e.contains("the checkpoint's optimizer sgd+momentum; --optimizer adam would start"),
        "{e}"
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "monitor = \"val_loss\"\noptimizer = \"sgd+momentum\"\nepochs = 1\n")
        .unwrap();
    let out2 = dir.path().join("run2");
    let err =
        run(&["train", "--config", s(&config), "--out", s(&out2), "--synthetic-samples", "40"]);
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(out2.join("model.tlm").exists(), "{err}");
    for debug_name in ["ValLoss", "Momentum", "Pre ", "Adam "] {
        assert!(!err.contains(debug_name), "{debug_name:?} in:\n{err}");
    }
    let bad = fails(&["train", "--monitor", "valloss", "--out", s(&out2)]);
    assert!(bad.contains("val_loss") && bad.contains("val_accuracy"), "{bad}");
    // The search objective is a closed set too, named as the results name it.
    let bad = fails(&["tune", "--objective", "val_accurcy", "--out", s(&out2)]);
    assert!(bad.contains("val_accurcy") && bad.contains("val_macro_f1"), "{bad}");
}
