//! Host tools for the firmware (run from the repository root):
//!
//! ```text
//! cargo run --release --manifest-path firmware/tools/Cargo.toml -- gen
//! cargo run --release --manifest-path firmware/tools/Cargo.toml -- data
//! cargo run --release --manifest-path firmware/tools/Cargo.toml -- report [MODEL.tlm]
//! cargo run --release --manifest-path firmware/tools/Cargo.toml -- keras
//! ```
//!
//! * `gen` makes the firmware's default model with the CLI's main job — it runs
//!   `tinylstm train --out target/firmware-default-model --threads 2` (the `tinylstm` binary's own
//!   code, [`tinylstm_cli::commands`], in this process: the built-in synthetic task, LSTM 64 →
//!   Dense 4 softmax on 3 channels, T = 40, every other setting the CLI's default) — copies its
//!   `model.tlm` to `firmware/models/default.tlm`, then does `data` and `report`. Training is
//!   deterministic for a fixed seed and thread count, so the same command writes the same bytes.
//! * `data` writes the embedded data sets `firmware/data/{samples,field_train,field_valid}.bin`
//!   from the CLI's generator ([`tinylstm_cli::data::synthetic::generate`]): **raw** sensor values, as
//!   the CLI reads them; the firmware standardises them with the model's NORMALIZATION section.
//! * `report` replays the firmware's evaluation and fine-tuning on the host (same engine source)
//!   and prints what the firmware should log.
//! * `keras` turns `tests/fixtures/keras/lstm_layer.json` into `firmware/tests/keras_lstm_layer.rs`
//!   (the on-target gradient test embeds it).

#[path = "../../src/engine.rs"]
mod engine;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser as _;
use engine::*;
use tinylstm::format::ModelFile;
use tinylstm_cli::data::synthetic::{self, SyntheticConfig};

/// The CLI command that makes the default model (from the repository root). `--threads` is
/// fixed because training is deterministic for a given seed and thread count.
const TRAIN_ARGS: [&str; 6] =
    ["tinylstm", "train", "--out", "target/firmware-default-model", "--threads", "2"];

/// Embedded sets: (file stem, sequences, generator seed, recorded with the field sensor).
/// The seeds differ from the training data's (the CLI's default, 2026).
const SETS: [(&str, usize, u64, bool); 3] =
    [("samples", 8, 11, false), ("field_train", 16, 12, true), ("field_valid", 8, 13, true)];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// The field condition the default model was not trained for: the sensor is mounted mirrored
/// (x axis flipped) and reads 1.8x too strong with a +0.6 bias on z. A mirrored clockwise
/// circle looks like a counter-clockwise one, so the default model gets the circles wrong.
fn field_shift(x: &mut [f32]) {
    for t in 0..STEPS {
        x[t * CHANNELS] *= -1.8;
        x[t * CHANNELS + 1] *= 1.8;
        x[t * CHANNELS + 2] = 1.8 * x[t * CHANNELS + 2] + 0.6;
    }
}

/// `n` raw sequences of the CLI's synthetic task (classes interleaved), encoded as a data set.
fn make_set(n: usize, seed: u64, shift: bool) -> Vec<u8> {
    let cfg = SyntheticConfig { samples: n, steps: STEPS, seed, ..SyntheticConfig::default() };
    let ds = synthetic::generate(&cfg);
    assert_eq!(ds.samples.len(), n);
    let mut out = Vec::with_capacity(DATA_HEADER_LEN + n * RECORD_LEN);
    out.extend_from_slice(&DATA_MAGIC);
    for v in [n as u32, STEPS as u32, CHANNELS as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for s in &ds.samples {
        let mut x = s.values().expect("a sequence sample").to_vec();
        assert_eq!(x.len(), SEQ_LEN);
        if shift {
            field_shift(&mut x);
        }
        out.extend_from_slice(&s.label.class().expect("a class label").to_le_bytes());
        for v in &x {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    assert_eq!(check_data(&out), Ok(n));
    out
}

fn cmd_data() {
    let fw = repo_root().join("firmware");
    for (name, n, seed, shift) in SETS {
        let path = fw.join(format!("data/{name}.bin"));
        std::fs::write(&path, make_set(n, seed, shift)).unwrap();
        eprintln!("wrote {} ({n} sequences, seed {seed})", path.display());
    }
}

fn cmd_gen() {
    let root = repo_root();
    std::env::set_current_dir(&root).expect("cd to the repository root");
    eprintln!("running `{}`", TRAIN_ARGS.join(" "));
    let t0 = Instant::now();
    let cli = tinylstm_cli::commands::Cli::try_parse_from(TRAIN_ARGS).unwrap_or_else(|e| e.exit());
    if let Err(e) = tinylstm_cli::commands::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    eprintln!("trained in {:.0?}", t0.elapsed());
    let model = root.join("firmware/models/default.tlm");
    std::fs::copy(root.join(TRAIN_ARGS[3]).join("model.tlm"), &model).unwrap();
    eprintln!("wrote {}", model.display());
    cmd_data();
    cmd_report(&model);
}

/// The model's parameters and standardisation.
fn load(path: &Path) -> (Vec<f32>, Option<Standardize>) {
    let bytes = std::fs::read(path).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    file.check_spec(&SPEC).unwrap();
    let mut p = vec![0.0f32; PARAMS];
    file.read_params(&mut p).unwrap();
    (p, Standardize::from_model(&file).unwrap())
}

fn read_set(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join(format!("firmware/data/{name}.bin"))).unwrap()
}

fn eval(params: &[f32], view: &View<'_>) -> Score {
    let mut x = vec![0.0; SEQ_LEN];
    let mut work = vec![0.0; FORWARD_WORK];
    let mut logits = vec![0.0; view.len() * CLASSES];
    let mut d = logits.clone();
    logits_full(params, view, &mut x, &mut work, &mut logits).unwrap();
    let mut labels = vec![0u32; view.len()];
    view.labels(&mut labels);
    score(&logits, &labels, &mut d).unwrap()
}

fn show(what: &str, s: &Score) {
    eprintln!("{what}: loss {:.4}, accuracy {}/{}", s.loss, s.correct, s.count);
}

fn cmd_report(model: &Path) {
    let (params, norm) = load(model);
    match &norm {
        Some(n) => eprintln!("standardisation: means {:?}, stds {:?}", n.means, n.stds),
        None => eprintln!("no standardisation"),
    }
    let (samples, ft, fv) = (read_set("samples"), read_set("field_train"), read_set("field_valid"));
    let samples = View::clean(Dataset::parse(&samples).unwrap(), norm);
    let ft = View::clean(Dataset::parse(&ft).unwrap(), norm);
    let fv = View::clean(Dataset::parse(&fv).unwrap(), norm);
    show("samples", &eval(&params, &samples));
    show("field train before", &eval(&params, &ft));
    show("field valid before", &eval(&params, &fv));

    // Head-only.
    let mut x = vec![0.0; SEQ_LEN];
    let mut st = vec![0.0; STATE];
    let mut sw = vec![0.0; STEP_WORK];
    let mut ftf = vec![0.0; ft.len() * UNITS];
    let mut fvf = vec![0.0; fv.len() * UNITS];
    features(&params, &ft, &mut x, &mut st, &mut sw, &mut ftf).unwrap();
    features(&params, &fv, &mut x, &mut st, &mut sw, &mut fvf).unwrap();
    let mut head = params[HEAD].to_vec();
    let (mut g, mut s) = (vec![0.0; HEAD_LEN], vec![0.0; HEAD_STATE]);
    let (mut lg, mut dl) = (vec![0.0; MAX_SET * CLASSES], vec![0.0; MAX_SET * CLASSES]);
    let mut yt = vec![0u32; ft.len()];
    ft.labels(&mut yt);
    let mut yv = vec![0u32; fv.len()];
    fv.labels(&mut yv);
    let mut hb = HeadBufs {
        head: &mut head,
        grads: &mut g,
        state: &mut s,
        logits: &mut lg,
        dlogits: &mut dl,
    };
    for it in 0..HEAD_STEPS {
        let l = head_step(&mut hb, &ftf, &yt, it).unwrap();
        if it % 10 == 0 {
            eprintln!("  head step {it}: loss {l:.4}");
        }
    }
    let mut p2 = params.clone();
    p2[HEAD].copy_from_slice(&head);
    show("field train after head", &eval(&p2, &ft));
    show("field valid after head", &eval(&p2, &fv));

    // Full from the head-tuned model.
    let mut cand = p2.clone();
    let mut grads = vec![0.0; PARAMS];
    let mut state = vec![0.0; FULL_STATE];
    let mut work = vec![0.0; TRAIN_WORK];
    let mut fb = FullBufs {
        params: &mut cand,
        grads: &mut grads,
        state: &mut state,
        work: &mut work,
        x: &mut x,
    };
    let mut it = 0;
    let t0 = Instant::now();
    for e in 0..FULL_EPOCHS {
        for mb in minibatches(ft.len()) {
            let l = full_step(&mut fb, &ft, mb, it).unwrap();
            eprintln!("  full epoch {e} step {it}: loss {l:.4}");
            it += 1;
        }
    }
    eprintln!("  ({:.0?})", t0.elapsed());
    show("field train after full", &eval(&cand, &ft));
    show("field valid after full", &eval(&cand, &fv));
}

fn cmd_keras() {
    let root = repo_root();
    let json = std::fs::read_to_string(root.join("tests/fixtures/keras/lstm_layer.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    fn flat(v: &serde_json::Value, out: &mut Vec<f32>) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
            serde_json::Value::Number(n) => out.push(n.as_f64().unwrap() as f32),
            other => panic!("not a number: {other}"),
        }
    }
    let int = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}")) as usize;
    let mut src = String::new();
    writeln!(
        src,
        "// @generated from tests/fixtures/keras/lstm_layer.json by\n\
         // `cargo run --release --manifest-path firmware/tools/Cargo.toml -- keras`; do not edit.\n\
         // Keras (tf_keras 2.21) LSTM layer forward/backward reference; arrays are flattened\n\
         // row-major exactly as in the JSON (x, h_seq, cotangent and grad_x are batch-major\n\
         // [B][T][..]), each value as its f32 bit pattern."
    )
    .unwrap();
    for k in ["I", "H", "T", "B"] {
        writeln!(src, "pub const {k}: usize = {};", int(k)).unwrap();
    }
    for key in [
        "kernel",
        "recurrent_kernel",
        "bias",
        "x",
        "h_seq",
        "h_last",
        "c_last",
        "cotangent",
        "grad_kernel",
        "grad_recurrent_kernel",
        "grad_bias",
        "grad_x",
    ] {
        let mut vals = Vec::new();
        flat(&v[key], &mut vals);
        writeln!(src, "pub static {}: [f32; {}] = [", key.to_uppercase(), vals.len()).unwrap();
        for chunk in vals.chunks(3) {
            let items: Vec<String> =
                chunk.iter().map(|x| format!("f32::from_bits({:#010x})", x.to_bits())).collect();
            writeln!(src, "    {},", items.join(", ")).unwrap();
        }
        writeln!(src, "];").unwrap();
    }
    let out = root.join("firmware/tests/keras_lstm_layer.rs");
    std::fs::write(&out, src).unwrap();
    // Leave it as `cargo fmt` would (the firmware's fmt check covers tests/).
    let fmt = std::process::Command::new("rustfmt").args(["--edition", "2021"]).arg(&out).status();
    assert!(fmt.is_ok_and(|s| s.success()), "rustfmt failed on {}", out.display());
    eprintln!("wrote {}", out.display());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") => cmd_gen(),
        Some("data") => cmd_data(),
        Some("keras") => cmd_keras(),
        Some("report") => {
            let model = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("firmware/models/default.tlm"));
            cmd_report(&model)
        }
        _ => {
            eprintln!("usage: tools gen | data | report [MODEL.tlm] | keras");
            std::process::exit(2);
        }
    }
}
