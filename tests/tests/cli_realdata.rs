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
        let (label, t) = if i % 2 == 0 { ("pos", good[i % 4]) } else { ("neg", bad[i % 4]) };
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
    let args = ["train", "--data", s(&data), "--epochs", "8", "--units", "8", "--maxlen", "4"];
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
