//! The `tinylstm` binary on data in the shapes users have it: string labels, all-number CSVs
//! without `--channels`, ragged rows with a mask, forecasting series, unlabelled input to
//! `predict`, exports that carry the preprocessing.

mod common;

use common::{ok, run};
use serde_json::Value;
use std::path::Path;

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "tinylstm {args:?} should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "tinylstm {args:?} panicked: {err}");
    err
}

/// Runs a command that must succeed; returns its stderr.
fn ok_err(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tinylstm {args:?} failed: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small text CSV with string labels: `pos` texts talk about good things, `neg` bad ones.
fn sentiment_csv(path: &Path, rows: usize) {
    let good = ["great food", "lovely fast delivery", "very good and tasty", "nice warm meal"];
    let bad = ["cold food late", "terrible slow delivery", "very bad taste", "awful and cold"];
    let mut text = String::from("label,text\n");
    for i in 0..rows {
        let (label, t) =
            if i % 2 == 0 { ("pos", good[i / 2 % 4]) } else { ("neg", bad[i / 2 % 4]) };
        text += &format!("{label},{t}\n");
    }
    std::fs::write(path, text).unwrap();
}

fn info_json(model: &Path) -> Value {
    serde_json::from_str(&ok(&["info", "--model", s(model), "--json"])).unwrap()
}

#[test]
fn string_labels_become_sorted_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reviews.csv");
    sentiment_csv(&data, 200);
    let out = dir.path().join("m");
    let args = [
        "train",
        "--data",
        s(&data),
        "--epochs",
        "20",
        "--lr",
        "1e-2",
        "--units",
        "8",
        "--maxlen",
        "4",
    ];
    ok(&[&args[..], &["--embedding-dim", "8", "--out", s(&out), "--quiet"]].concat());
    let model = out.join("model.tlm");
    // Sorted: "neg" is class 0, "pos" class 1.
    assert_eq!(info_json(&model)["classes"], serde_json::json!(["neg", "pos"]));
    let pred = ok(&["predict", "--model", s(&model), "--text", "great food", "--json"]);
    let line: Value = serde_json::from_str(pred.lines().next().unwrap()).unwrap();
    assert_eq!(line["class_name"], "pos", "{pred}");
    // eval maps the names of another file to the model's classes.
    let eval = ok(&["eval", "--model", s(&model), "--data", s(&data), "--json"]);
    let report: Value = serde_json::from_str(&eval).unwrap();
    let acc = report["classification"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "accuracy {acc} on a separable toy set");
    // A name the model does not know is an error naming the file, line and the classes.
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "label,text\npos,great food\nmaybe,so so\n").unwrap();
    let err = fails(&["eval", "--model", s(&model), "--data", s(&other)]);
    assert!(err.contains("other.csv: line 3, field 1"), "{err}");
    assert!(err.contains("\"maybe\" is not one of the model's classes (neg, pos)"), "{err}");
}

#[test]
fn embedding_is_keras_sized_and_parameters_match_keras() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reviews.csv");
    sentiment_csv(&data, 200);
    let out = dir.path().join("m");
    let err = ok_err(&[
        "train",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--units",
        "8",
        "--maxlen",
        "4",
        "--embedding-dim",
        "8",
        "--out",
        s(&out),
    ]);
    // The first line states the inferred task, input kind and shape.
    let first = err.lines().next().unwrap();
    assert!(first.starts_with("Task: classification into 2 classes (neg, pos); input: text, word level, 4 tokens per sample (19 distinct words"), "{first}");
    let info = info_json(&out.join("model.tlm"));
    // 19 distinct words in the toy corpus (counted by hand from `sentiment_csv`), so Keras's
    // seed code gives Embedding(min(10000, 19 + 1), 8). Keras's parameter count:
    // Embedding 20·8 + LSTM(8) 4·(8·8 + 8·8 + 8) + Dense(1) 8 + 1 = 160 + 544 + 9.
    assert_eq!(info["input"]["tokens"]["vocab"], 20, "{info}");
    assert_eq!(info["parameters"], 160 + 544 + 9, "{info}");
    assert_eq!(info["tokenizer"]["words_kept"], 19);
    assert_eq!(info["tokenizer"]["vocabulary"], 19);
    let text = ok(&["info", "--model", s(&out.join("model.tlm"))]);
    assert!(text.contains("tokenizer   19 words kept of 19, ids < 20"), "{text}");
}

#[test]
fn all_number_csv_without_channels_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("windows.csv");
    std::fs::write(&data, "0,1.5,2.5,3.5\n1,0.5,0.25,1\n").unwrap();
    let err = fails(&["train", "--data", s(&data), "--epochs", "1"]);
    assert!(err.contains("windows.csv: every field is a number"), "{err}");
    assert!(err.contains("give --channels C"), "{err}");
    // Two columns of numbers: label and one number as the "text".
    std::fs::write(&data, "0,1.5\n1,0.5\n0,2\n1,3\n").unwrap();
    let err = fails(&["train", "--data", s(&data), "--epochs", "1"]);
    assert!(err.contains("give --channels C"), "{err}");
}

/// Rows of 2 to 5 steps of 2 channels: class 1 rises, class 0 falls.
fn ragged_csv(path: &Path, rows: usize) {
    let mut text = String::new();
    for i in 0..rows {
        let (class, steps) = (i % 2, 2 + i % 4);
        text += &class.to_string();
        for t in 0..steps {
            let v = if class == 1 { t as f32 } else { -(t as f32) } + 0.1 * (i % 3) as f32;
            text += &format!(",{v},{}", 0.5 * v);
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn ragged_rows_are_masked_and_a_longer_row_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ragged.csv");
    ragged_csv(&data, 120);
    let out = dir.path().join("m");
    let err = ok_err(&[
        "train",
        "--data",
        s(&data),
        "--channels",
        "2",
        "--epochs",
        "2",
        "--units",
        "4",
        "--padding",
        "post",
        "--out",
        s(&out),
    ]);
    let first = err.lines().next().unwrap();
    assert!(
        first.contains("sequences of 2 channels × 5 steps (rows of 2 to 5 steps, post-padded), steps of all 0 masked"),
        "{first}"
    );
    let model = out.join("model.tlm");
    let bytes = std::fs::read(&model).unwrap();
    let spec = tinylstm::format::ModelFile::parse(&bytes).unwrap().spec();
    assert_eq!(spec.mask, tinylstm::Mask::Value(0.0));
    let info = ok(&["info", "--model", s(&model)]);
    assert!(info.contains("  mask        steps whose values all equal 0 (Masking)"), "{info}");
    // A row of 6 steps is longer than any the model was trained on: an error, not a cut.
    let long = dir.path().join("long.csv");
    std::fs::write(&long, "1,0,0,1,1\n0,1,1,2,2,3,3,4,4,5,5,6,6\n").unwrap();
    for cmd in ["eval", "predict"] {
        let err = fails(&[cmd, "--model", s(&model), "--data", s(&long)]);
        assert!(err.contains("long.csv: line 2: 6 steps, but the model takes at most 5"), "{err}");
    }
    // Trained with an explicit --maxlen, the model cuts longer rows as training did.
    let cut = dir.path().join("cut");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--channels",
        "2",
        "--epochs",
        "1",
        "--units",
        "4",
        "--maxlen",
        "3",
        "--out",
        s(&cut),
        "--quiet",
    ]);
    ok(&["eval", "--model", s(&cut.join("model.tlm")), "--data", s(&long)]);
    // --mask-value masks steps of that value, and pads with it.
    let out2 = dir.path().join("m2");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--channels",
        "2",
        "--epochs",
        "1",
        "--units",
        "4",
        "--mask-value",
        "-9",
        "--out",
        s(&out2),
        "--quiet",
    ]);
    let bytes = std::fs::read(out2.join("model.tlm")).unwrap();
    let spec = tinylstm::format::ModelFile::parse(&bytes).unwrap().spec();
    assert_eq!(spec.mask, tinylstm::Mask::Value(-9.0));
    let err = fails(&["train", "--data", s(&data), "--channels", "2", "--mask-zero"]);
    assert!(err.contains("--mask-zero is for text"), "{err}");
}

#[test]
fn japanese_vowels_ragged_set_trains_masked() {
    let Some(root) = common::datasets("japanese_vowels_ragged_set_trains_masked") else { return };
    let base = root.join("sensor/japanesevowels");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("jv");
    let err = ok_err(&[
        "train",
        "--data",
        s(&base.join("train.csv")),
        "--test",
        s(&base.join("test.csv")),
        "--channels",
        "12",
        "--epochs",
        "40",
        "--patience",
        "10",
        "--batch-size",
        "16",
        "--lr",
        "1e-2",
        "--valid-split",
        "0.2",
        "--padding",
        "post",
        "--out",
        s(&out),
    ]);
    assert!(err.lines().next().unwrap().contains("× 29 steps (rows of 7 to 29 steps"), "{err}");
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let acc = m["classification"]["accuracy"].as_f64().unwrap();
    println!("japanesevowels test accuracy {acc:.4}");
    // The archive's 1-NN (DTW) baseline is about 0.95; a masked LSTM reaches 0.97 here.
    assert!(acc >= 0.93, "japanesevowels test accuracy {acc}");
    ok(&["eval", "--model", s(&out.join("model.tlm")), "--data", s(&base.join("test.csv"))]);
}

/// Runs `tinylstm` with `stdin` on standard input; must succeed; returns stdout.
fn ok_stdin(args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(common::binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tinylstm {args:?} failed: {err}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn predict_reads_unlabelled_csv_and_stdin_names_columns_and_echoes_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reviews.csv");
    sentiment_csv(&data, 200);
    let out = dir.path().join("m");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--epochs",
        "8",
        "--units",
        "8",
        "--maxlen",
        "4",
        "--embedding-dim",
        "8",
        "--out",
        s(&out),
        "--quiet",
    ]);
    let model = out.join("model.tlm");
    let m = s(&model);
    // A one-column CSV on standard input, with and without a `text` header.
    for input in ["text\nvery bad taste\ngreat food\n", "very bad taste\ngreat food\n"] {
        let table = ok_stdin(&["predict", "--model", m, "--data", "-"], input);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "index\tline\tclass\tneg\tpos\ttext", "{table}");
        assert_eq!(lines.len(), 3, "{table}");
        for (row, text) in lines[1..].iter().zip(["very bad taste", "great food"]) {
            let cols: Vec<&str> = row.split('\t').collect();
            assert_eq!(cols.len(), 6, "{table}");
            assert_eq!(cols[5], text, "{table}");
            // The class column names the more probable class.
            let (pn, pp): (f64, f64) = (cols[3].parse().unwrap(), cols[4].parse().unwrap());
            assert_eq!(cols[2], if pp >= pn { "pos" } else { "neg" }, "{table}");
        }
        assert!(lines[1].starts_with("0\t"), "{table}");
    }
    let json = ok_stdin(&["predict", "--model", m, "--data", "-", "--json"], "great food\n");
    let v: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["text"], "great food");
    let (pn, pp) =
        (v["probabilities"]["neg"].as_f64().unwrap(), v["probabilities"]["pos"].as_f64().unwrap());
    assert_eq!(pp, v["outputs"][0].as_f64().unwrap(), "p(pos) is the sigmoid output");
    assert!((pn + pp - 1.0).abs() < 1e-6);

    // Sequences: rows of T×C values without a label are told apart from labelled ones.
    let seq = dir.path().join("ragged.csv");
    ragged_csv(&seq, 60);
    let out2 = dir.path().join("s");
    ok(&[
        "train",
        "--data",
        s(&seq),
        "--channels",
        "2",
        "--epochs",
        "1",
        "--units",
        "4",
        "--out",
        s(&out2),
        "--quiet",
    ]);
    let sm = out2.join("model.tlm");
    let labelled = ok(&["predict", "--model", s(&sm), "--data", s(&seq), "--json"]);
    let bare: String = std::fs::read_to_string(&seq)
        .unwrap()
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_string() + "\n")
        .collect();
    let unlabelled = ok_stdin(&["predict", "--model", s(&sm), "--data", "-", "--json"], &bare);
    let bits = |t: &str| -> Vec<Value> {
        t.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["output_bits"].clone())
            .collect()
    };
    assert_eq!(bits(&labelled), bits(&unlabelled));
    assert_eq!(bits(&labelled).len(), 60);
}

/// A seasonal series with trend: `time,a,b` (b = 2·a + 1), 96 rows.
fn seasonal_csv(path: &Path) {
    let mut text = String::from("time,a,b\n");
    for t in 0..96 {
        let a = 10.0 + 0.1 * t as f32 + 3.0 * (t as f32 * std::f32::consts::TAU / 12.0).sin();
        text += &format!("{t},{a},{}\n", 2.0 * a + 1.0);
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn forecast_trains_reports_baselines_predicts_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("series.csv");
    seasonal_csv(&data);
    let out = dir.path().join("f");
    let err = ok_err(&[
        "train",
        "--task",
        "forecast",
        "--data",
        s(&data),
        "--lookback",
        "12",
        "--horizon",
        "3",
        "--season",
        "12",
        "--epochs",
        "3",
        "--units",
        "8",
        "--out",
        s(&out),
    ]);
    let first = err.lines().next().unwrap();
    assert!(first.starts_with("Task: forecast 3 steps ahead of every value (a, b) from the last 12; input: a series of 96 rows, 82 windows in time order"), "{first}");
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let f = &m["forecast"];
    // 82 windows: 8 test (the last), 8 validation, a gap of 2 before each.
    assert_eq!(f["windows"], 8, "{m}");
    assert_eq!(f["span"], serde_json::json!(["86", "95"]), "{m}");
    for key in ["model", "naive", "seasonal_naive"] {
        for e in ["rmse", "mae", "mape"] {
            assert!(f[key][e].as_f64().unwrap().is_finite(), "{key}.{e}: {m}");
        }
    }
    // The seasonal-naive baseline by hand: step h of the window predicting from row t is the
    // row 12 before it; on this series that error is exactly the trend, 12 × 0.1 = 1.2 on a
    // and 2.4 on b, at every step (up to f32 rounding of the file's values).
    let sn = f["seasonal_naive"]["mae"].as_f64().unwrap();
    assert!((sn - 1.8).abs() < 1e-3, "seasonal naive MAE {sn}");
    for p in ["forecast.svg", "forecast.png"] {
        assert!(out.join(p).metadata().unwrap().len() > 1000, "{p}");
    }
    let model = out.join("model.tlm");
    let pred = ok(&["predict", "--model", s(&model), "--data", s(&data)]);
    let lines: Vec<&str> = pred.lines().collect();
    assert_eq!(lines[0], "step\ta\tb");
    assert_eq!(lines.len(), 4, "{pred}");
    assert!(lines[1].starts_with("95+1\t") && lines[3].starts_with("95+3\t"), "{pred}");
    let eval: Value =
        serde_json::from_str(&ok(&["eval", "--model", s(&model), "--data", s(&data), "--json"]))
            .unwrap();
    assert_eq!(eval["windows"], 82);
    // A series with other columns is refused, naming them.
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "time,value\n1,2\n").unwrap();
    let err = fails(&["predict", "--model", s(&model), "--data", s(&other)]);
    assert!(
        err.contains("other.csv: 1 value columns (value), the model forecasts 2 (a, b)"),
        "{err}"
    );
}

#[test]
fn airline_passengers_forecast_against_baselines() {
    let Some(root) = common::datasets("airline_passengers_forecast_against_baselines") else {
        return;
    };
    let data = root.join("forecast/airline_passengers/airline_passengers.csv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("air");
    ok(&[
        "train",
        "--task",
        "forecast",
        "--data",
        s(&data),
        "--lookback",
        "24",
        "--horizon",
        "1",
        "--season",
        "12",
        "--units",
        "32",
        "--lr",
        "1e-2",
        "--epochs",
        "200",
        "--patience",
        "30",
        "--batch-size",
        "8",
        "--out",
        s(&out),
        "--quiet",
    ]);
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let f = &m["forecast"];
    println!("airline passengers test span: {f}");
    // The last 12 windows (1960): the naive baselines are fixed numbers of the data.
    assert_eq!(f["windows"], 12, "{m}");
    assert_eq!(f["span"], serde_json::json!(["1960-01", "1960-12"]));
    let rmse = f["model"]["rmse"].as_f64().unwrap();
    // Within 50 % of the naive forecast's RMSE: a model that learnt nothing (a constant) is
    // far outside it on this trending series.
    assert!(rmse < 1.5 * f["naive"]["rmse"].as_f64().unwrap(), "{f}");
}

/// The preprocessing section of an exported `model.rs` (self-contained: no crate needed).
fn rust_preprocessing_section(model_rs: &str) -> &str {
    let at = model_rs.find("// ---- Preprocessing").expect("model.rs has a preprocessing section");
    &model_rs[at..]
}

/// Compiles `main` (with `section` included) with rustc and runs it; `None` (after a visible
/// skip, a failure under CI) without rustc.
fn run_rust(dir: &Path, test: &str, section: &str, main: &str) -> Option<String> {
    std::fs::write(dir.join("pre.rs"), section).unwrap();
    let src = dir.join("main.rs");
    std::fs::write(&src, format!("include!(\"pre.rs\");\n{main}")).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let exe = dir.join("main.bin");
    let out = match std::process::Command::new(&rustc)
        .args(["--edition", "2021", "-D", "warnings", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            common::missing(test, &format!("{rustc}: {e}"));
            return None;
        }
    };
    assert!(out.status.success(), "rustc: {}", String::from_utf8_lossy(&out.stderr));
    let run = std::process::Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    Some(String::from_utf8(run.stdout).unwrap())
}

#[test]
fn exports_carry_the_preprocessing_and_compile() {
    use tinylstm_cli::model_file::ModelBundle;
    let test = "exports_carry_the_preprocessing_and_compile";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reviews.csv");
    sentiment_csv(&data, 200);
    let out = dir.path().join("t");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--units",
        "4",
        "--maxlen",
        "6",
        "--embedding-dim",
        "4",
        "--oov-token",
        "<unk>",
        "--padding",
        "post",
        "--out",
        s(&out),
        "--quiet",
    ]);
    let bundle = ModelBundle::load(&out.join("model.tlm")).unwrap();
    let tok = bundle.tokenizer.as_ref().unwrap();
    // The host's tokenizer (Keras parity tested elsewhere) and pad_sequences give the input.
    let texts = [
        "Great FOOD!!  very\ttasty, nice",
        "unknown words, cold & late",
        "a b c d e f g h very bad",
    ];
    let mut want = String::new();
    for t in texts {
        let ids = tok.text_to_sequence(t);
        let kept: Vec<u32> = ids[ids.len().saturating_sub(6)..].to_vec(); // truncating pre
        let mut row = kept.clone();
        row.resize(6, 0); // padding post
        want += &format!("{row:?}\n");
    }
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    let pre = &json["extra"]["preprocessing"];
    assert_eq!(pre["tokenizer"]["word_index"]["great"], tok.index_of("great").unwrap());
    assert_eq!(pre["tokenizer"]["oov_index"], 1);
    assert_eq!(pre["steps"], 6);
    let model_rs = std::fs::read_to_string(out.join("model.rs")).unwrap();
    let main =
        format!("fn main() {{ for t in {texts:?} {{ println!(\"{{:?}}\", text_to_input(t)); }} }}");
    if let Some(got) = run_rust(dir.path(), test, rust_preprocessing_section(&model_rs), &main) {
        assert_eq!(got, want, "exported Rust tokenizer vs the host's");
    }
    let model_h = std::fs::read_to_string(out.join("model.h")).unwrap();
    assert!(model_h.contains("static const char *const model_words["), "{model_h}");
    assert!(model_h.contains("#define MODEL_OOV_INDEX 1u"));
    let lits: Vec<String> = texts.iter().map(|t| format!("{t:?}")).collect();
    let prog = format!(
        "#include <stdio.h>\n#include \"model.h\"\nint main(void) {{\n    \
         const char *texts[3] = {{ {} }};\n    for (int t = 0; t < 3; t++) {{\n        \
         uint32_t ids[MODEL_STEPS];\n        model_text_to_ids(texts[t], ids);\n        \
         printf(\"[\");\n        for (int i = 0; i < MODEL_STEPS; i++) \
         printf(i ? \", %u\" : \"%u\", (unsigned)ids[i]);\n        printf(\"]\\n\");\n    }}\n    \
         return 0;\n}}\n",
        lits.join(", ")
    );
    if let Some(got) = run_c(test, &out, &prog) {
        assert_eq!(got, want, "exported C tokenizer vs the host's");
    }

    // A sequence model: standardisation in every format, bit for bit as the host applies it.
    let seq = dir.path().join("ragged.csv");
    ragged_csv(&seq, 60);
    let out2 = dir.path().join("s");
    ok(&[
        "train",
        "--data",
        s(&seq),
        "--channels",
        "2",
        "--epochs",
        "1",
        "--units",
        "4",
        "--out",
        s(&out2),
        "--quiet",
    ]);
    let bundle = ModelBundle::load(&out2.join("model.tlm")).unwrap();
    let norm = bundle.normalizer.as_ref().unwrap();
    let raw = [0.3f32, -1.5, 2.25, 7.0, -0.125, 1e-3];
    let mut host = raw.to_vec();
    norm.apply(&mut host).unwrap();
    let want: String = host.iter().map(|x| format!("{:08x}\n", x.to_bits())).collect();
    let json: Value =
        serde_json::from_slice(&std::fs::read(out2.join("model.json")).unwrap()).unwrap();
    let st = &json["extra"]["preprocessing"]["standardization"];
    assert_eq!(st["means"][1].as_f64().unwrap() as f32, norm.means()[1]);
    assert_eq!(st["stds"][0].as_f64().unwrap() as f32, norm.stds()[0]);
    let model_rs = std::fs::read_to_string(out2.join("model.rs")).unwrap();
    assert!(model_rs.contains(".masking(0.0)"), "the spec carries the mask");
    let main = format!(
        "fn main() {{ let mut v = {raw:?}; standardize(&mut v); for x in v {{ println!(\"{{:08x}}\", x.to_bits()); }} }}"
    );
    if let Some(got) = run_rust(dir.path(), test, rust_preprocessing_section(&model_rs), &main) {
        assert_eq!(got, want, "exported Rust standardisation vs the host's");
    }
    // C: the whole header compiles with a program feeding raw values.
    let floats: Vec<String> = raw.iter().map(|x| format!("{x:?}f")).collect();
    let prog = format!(
        "#include <stdio.h>\n#include <string.h>\n#include \"model.h\"\nint main(void) {{\n    \
         float v[6] = {{ {} }};\n    model_standardize(v, 6);\n    for (int i = 0; i < 6; i++) \
         {{ uint32_t b; memcpy(&b, &v[i], 4); printf(\"%08x\\n\", (unsigned)b); }}\n    return 0;\n}}\n",
        floats.join(", ")
    );
    if let Some(got) = run_c(test, &out2, &prog) {
        assert_eq!(got, want, "exported C standardisation vs the host's");
    }
}

/// Compiles `prog` (C99, warnings as errors, no contraction of multiply-adds) beside the
/// `model.h` in `dir` and returns its standard output; `None` (after `common::missing`) when
/// there is no C compiler.
fn run_c(test: &str, dir: &Path, prog: &str) -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if std::process::Command::new(&cc).arg("--version").output().is_err() {
        common::missing(test, &format!("no C compiler ({cc})"));
        return None;
    }
    std::fs::write(dir.join("main.c"), prog).unwrap();
    let exe = dir.join("main.bin");
    let built = std::process::Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-O1",
            "-ffp-contract=off",
            "-o",
        ])
        .arg(&exe)
        .arg(dir.join("main.c"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let run = std::process::Command::new(&exe).output().unwrap();
    assert!(run.status.success(), "{run:?}");
    Some(String::from_utf8_lossy(&run.stdout).into_owned())
}

#[test]
fn predict_reads_real_labels_of_a_regression_model() {
    // A labelled CSV of a regression model: the label field is a real number (negative and
    // fractional here), read and skipped; predict prints one value per row.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("drift.csv");
    let mut text = String::new();
    for i in 0..40 {
        let slope = (i as f32 - 20.0) / 17.0;
        let vals: Vec<String> =
            (0..6).map(|t| format!("{:.4}", slope * t as f32 * 0.1 + (t % 2) as f32)).collect();
        text += &format!("{:.7},{}\n", -slope * 0.9, vals.join(","));
    }
    std::fs::write(&data, text).unwrap();
    let out = dir.path().join("m");
    ok_err(&[
        "train",
        "--data",
        s(&data),
        "--channels",
        "2",
        "--head",
        "linear",
        "--units",
        "4",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        s(&out),
    ]);
    let model = out.join("model.tlm");
    let json = ok(&["predict", "--model", s(&model), "--data", s(&data), "--json"]);
    let rows: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 40, "{json}");
    assert!(rows.iter().all(|r| r["outputs"].as_array().is_some_and(|o| o.len() == 1)), "{json}");
}
