//! `tinylstm device-data`: the firmware's data sets from a CSV, checked against an encoding
//! written out here from the format's description (`tinylstm_device::data`), and its errors.

mod common;

use std::fmt::Write as _;

/// Little-endian words.
fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn device_data_writes_padded_raw_sequences_and_refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("seq.csv");
    // 2 channels, rows of 4 steps (training) and one short row of 2 steps (padded on the device
    // side with the channel means, which standardise to the CLI's padding value 0).
    let mut text = String::new();
    for i in 0..24 {
        let class = i % 2;
        write!(text, "{class}").unwrap();
        for t in 0..4 {
            write!(text, ",{},{}", (i + t) as f32 * 0.25 - 2.0, class as f32 - 0.5 * t as f32)
                .unwrap();
        }
        text.push('\n');
    }
    std::fs::write(&csv, &text).unwrap();
    let out = dir.path().join("m");
    common::ok(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--channels",
        "2",
        "--units",
        "4",
        "--epochs",
        "1",
        "--seed",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let model = out.join("model.tlm");
    let short = dir.path().join("short.csv");
    std::fs::write(&short, "1,0.5,-1.5,2.25,3\n0,1,1,1,1\n").unwrap();
    let dev = dir.path().join("dev");
    common::ok(&[
        "device-data",
        "--model",
        model.to_str().unwrap(),
        "--data",
        short.to_str().unwrap(),
        "--samples",
        "2",
        "--field-train",
        "0",
        "--field-valid",
        "0",
        "--out",
        dev.to_str().unwrap(),
    ]);
    // The means the model standardises with (its NORMALIZATION section).
    let bytes = std::fs::read(&model).unwrap();
    let file = tinylstm::format::ModelFile::parse(&bytes).unwrap();
    let sec = file.normalization().expect("standardised");
    let mean = |c: usize| u32::from_le_bytes(sec[4 + 4 * c..8 + 4 * c].try_into().unwrap());
    let f = |x: f32| x.to_bits();
    // Header: magic, N 2, T 4, W 2, values, 1 target word, class ids; then per row the label
    // and 4 steps, the missing ones first (pre padding) holding the means.
    let mut want = b"TLSEQ002".to_vec();
    want.extend(words(&[2, 4, 2, 1, 1, 0]));
    want.extend(words(&[1, mean(0), mean(1), mean(0), mean(1), f(0.5), f(-1.5), f(2.25), f(3.0)]));
    want.extend(words(&[0, mean(0), mean(1), mean(0), mean(1), f(1.0), f(1.0), f(1.0), f(1.0)]));
    assert_eq!(std::fs::read(dev.join("samples.bin")).unwrap(), want);
    assert!(!dev.join("field_train.bin").exists());

    // Bad requests: clear errors, nothing written.
    let bad = dir.path().join("bad");
    for (args, msg) in [
        (vec!["--samples", "33"], "at most 32 sequences"),
        (vec!["--samples", "2", "--field-train", "1", "--field-valid", "0"], "both 0"),
        (vec!["--samples", "3"], "not enough for 3 samples"),
    ] {
        let mut a = vec![
            "device-data",
            "--model",
            model.to_str().unwrap(),
            "--data",
            short.to_str().unwrap(),
            "--out",
            bad.to_str().unwrap(),
        ];
        a.extend(args);
        let o = common::run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(msg), "{a:?}: {err}");
        assert!(!bad.exists(), "{a:?} wrote files");
    }
}

#[test]
fn device_data_writes_sentences_that_the_core_tokenizes_to_the_hosts_ids() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("text.csv");
    let mut text = String::from("label,text\n");
    for i in 0..30 {
        let class = i % 2;
        let word = if class == 1 { "Prize!" } else { "home" };
        writeln!(text, "{class},\"see you {word}, at {i}\"").unwrap();
    }
    std::fs::write(&csv, &text).unwrap();
    let out = dir.path().join("m");
    let (c, o) = (csv.to_str().unwrap(), out.to_str().unwrap());
    common::ok(
        &["train", "--data", c, "--maxlen", "5", "--embedding-dim", "2", "--units", "2"]
            .into_iter()
            .chain(["--epochs", "1", "--seed", "1", "--quiet", "--out", o])
            .collect::<Vec<_>>(),
    );
    let model = out.join("model.tlm");
    let dev = dir.path().join("dev");
    let (m, d) = (model.to_str().unwrap(), dev.to_str().unwrap());
    common::ok(&["device-data", "--model", m, "--data", c, "--out", d, "--samples", "4"]);
    // The sentences: the CSV's rows 0..4 (samples), 4..20 and 20..28 (field sets), as text.
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let bytes = std::fs::read(&model).unwrap();
    let file = tinylstm::format::ModelFile::parse(&bytes).unwrap();
    let tok = tinylstm::text::Tokenizer::from_model(&file).unwrap();
    assert!(tok.has_index(), "the model file has a TOKEN_INDEX section");
    let pad = tinylstm::text::Pad {
        maxlen: 5,
        padding: tinylstm::text::Side::Pre,
        truncating: tinylstm::text::Side::Pre,
    };
    let shape = tinylstm_device::data::Shape::of(&file.spec(), 5);
    for (name, first, n) in [("samples", 0, 4), ("field_train", 4, 16), ("field_valid", 20, 8)] {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dev.join(format!("{name}.json"))).unwrap())
                .unwrap();
        let items = json.as_array().unwrap();
        assert_eq!(items.len(), n, "{name}");
        let bin = std::fs::read(dev.join(format!("{name}.bin"))).unwrap();
        let set = tinylstm_device::data::Dataset::parse(&bin, shape).unwrap();
        for (i, item) in items.iter().enumerate() {
            let (label, sentence) = rows[first + i].split_once(',').unwrap();
            assert_eq!(item["label"].as_f64().unwrap(), label.parse::<f64>().unwrap());
            assert_eq!(item["text"].as_str().unwrap(), sentence.trim_matches('"'));
            // The core's ids for the sentence are the host's (the .bin set).
            let mut ids = [0u32; 5];
            tok.encode(item["text"].as_str().unwrap(), &pad, &mut ids).unwrap();
            let mut want = [0u32; 5];
            set.read(i, &mut want);
            assert_eq!(ids, want, "{name} {i}");
        }
    }
    // `predict --json` reports the ids it read.
    let out = common::ok(&["predict", "--model", m, "--text", "see you Prize!", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let mut ids = [0u32; 5];
    tok.encode("see you Prize!", &pad, &mut ids).unwrap();
    assert_eq!(v["ids"], serde_json::json!(ids));
}
