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
