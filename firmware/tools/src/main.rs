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
//! * `report` replays the firmware's evaluation and fine-tuning on the host (the same
//!   `tinylstm-device` code) and prints what the firmware should log.
//! * `keras` turns `tests/fixtures/keras/lstm_layer.json` into `firmware/tests/keras_lstm_layer.rs`
//!   (the on-target gradient test embeds it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser as _;
use tinylstm::format::ModelFile;
use tinylstm::{Head, Spec};
use tinylstm_cli::data::synthetic::{self, SyntheticConfig};
use tinylstm_device::data::{check_data, Dataset, Shape, View};
use tinylstm_device::model::{Model, Weights};
use tinylstm_device::norm::{decode_section, metadata_steps, Standardize};
use tinylstm_device::tune::*;

/// The default model's shape: LSTM 64 → Dense 4 softmax on 3 channels, T = 40.
const STEPS: usize = 40;
const CHANNELS: usize = 3;
const SPEC: Spec = Spec::channels(CHANNELS).lstm(64).dense(4, Head::Softmax);
const SHAPE: Shape = Shape::of(&SPEC, STEPS);

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
    let mut out = SHAPE.header(n).to_vec();
    for s in &ds.samples {
        let mut x = s.values().expect("a sequence sample").to_vec();
        assert_eq!(x.len(), SHAPE.seq_words());
        if shift {
            field_shift(&mut x);
        }
        out.extend_from_slice(&s.label.class().expect("a class label").to_le_bytes());
        for v in &x {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    assert_eq!(check_data(&out, &SHAPE), Ok(n));
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

/// Standardisation statistics: means and standard deviations.
type Stats = (Vec<f32>, Vec<f32>);

/// The model's parameters, standardisation statistics and sequence length.
fn load(path: &Path) -> (Vec<f32>, Option<Stats>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    file.check_spec(&SPEC).unwrap();
    let mut p = vec![0.0f32; SPEC.param_count()];
    file.read_params(&mut p).unwrap();
    let norm = file.normalization().map(|sec| {
        let (mut m, mut s) = (vec![0.0; CHANNELS], vec![0.0; CHANNELS]);
        decode_section(sec, CHANNELS, &mut m, &mut s).unwrap();
        (m, s)
    });
    let steps = file.metadata().and_then(metadata_steps).unwrap_or(STEPS);
    (p, norm, steps)
}

fn read_set(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join(format!("firmware/data/{name}.bin"))).unwrap()
}

fn eval(m: &Model<'_>, params: &[f32], view: &View<'_>) -> Score {
    let n = view.len();
    let mut x = vec![0u32; m.seq_words()];
    let mut work = vec![0.0; SPEC.forward_work_len(1, 1).unwrap()];
    let mut hidden = vec![0.0; SPEC.top_units()];
    let mut logits = vec![0.0; n * SPEC.outputs];
    let mut d = logits.clone();
    logits_set(m, Weights::flat(params), view, &mut x, &mut work, &mut hidden, &mut logits)
        .unwrap();
    let mut y = vec![0u32; n * SHAPE.target_words()];
    view.all_targets(&mut y);
    score(&SPEC, &logits, &y, n, &mut d).unwrap()
}

fn show(what: &str, s: &Score) {
    eprintln!("{what}: loss {:.4}, accuracy {:?}/{}", s.loss, s.correct, s.count);
}

fn cmd_report(model: &Path) {
    let (params, stats, steps) = load(model);
    assert_eq!(steps, STEPS, "the firmware's data sets are for T = {STEPS}");
    let norm = stats.as_ref().map(|(m, s)| Standardize::new(m, s).unwrap());
    match &norm {
        Some(n) => eprintln!("standardisation: means {:?}, stds {:?}", n.means(), n.stds()),
        None => eprintln!("no standardisation"),
    }
    let m = Model { spec: SPEC, steps: STEPS, norm };
    let (samples, ft, fv) = (read_set("samples"), read_set("field_train"), read_set("field_valid"));
    let samples = View::clean(Dataset::parse(&samples, SHAPE).unwrap(), norm);
    let ft = View::clean(Dataset::parse(&ft, SHAPE).unwrap(), norm);
    let fv = View::clean(Dataset::parse(&fv, SHAPE).unwrap(), norm);
    show("samples", &eval(&m, &params, &samples));
    show("field train before", &eval(&m, &params, &ft));
    show("field valid before", &eval(&m, &params, &fv));

    // Head-only.
    let h = SPEC.top_units();
    let mut x = vec![0u32; m.seq_words()];
    let mut work = vec![0.0; SPEC.forward_work_len(1, 1).unwrap()];
    let mut ftf = vec![0.0; ft.len() * h];
    features(&m, Weights::flat(&params), &ft, &mut x, &mut work, &mut ftf).unwrap();
    let mut head = params[SPEC.head_range()].to_vec();
    let cfg = HeadConfig::DEFAULT;
    let (mut g, mut s) = (vec![0.0; head.len()], vec![0.0; cfg.state_len(&SPEC)]);
    let k = SPEC.outputs;
    let (mut lg, mut dl) = (vec![0.0; ft.len() * k], vec![0.0; ft.len() * k]);
    let mut yt = vec![0u32; ft.len() * SHAPE.target_words()];
    ft.all_targets(&mut yt);
    let mut hb = HeadBufs {
        head: &mut head,
        grads: &mut g,
        state: &mut s,
        logits: &mut lg,
        dlogits: &mut dl,
    };
    for it in 0..cfg.steps {
        let l = head_step(&SPEC, &cfg, &mut hb, &ftf, &yt, ft.len(), it).unwrap();
        if it % 10 == 0 {
            eprintln!("  head step {it}: loss {l:.4}");
        }
    }
    let mut p2 = params.clone();
    p2[SPEC.head_range()].copy_from_slice(&head);
    show("field train after head", &eval(&m, &p2, &ft));
    show("field valid after head", &eval(&m, &p2, &fv));

    // Full from the head-tuned model.
    let full = FullConfig::DEFAULT;
    let mut cand = p2.clone();
    let mut grads = vec![0.0; cand.len()];
    let mut state = vec![0.0; full.state_len(&SPEC)];
    let mut work = vec![0.0; full.work_len(&SPEC, STEPS)];
    let mut y = vec![0u32; SHAPE.target_words()];
    let mut fb = FullBufs {
        params: &mut cand,
        grads: &mut grads,
        state: &mut state,
        work: &mut work,
        x: &mut x,
        y: &mut y,
    };
    let mut it = 0;
    let t0 = Instant::now();
    for e in 0..full.epochs {
        for mb in full.minibatches(ft.len()) {
            let l = full_step(&m, &full, &mut fb, &ft, mb, it).unwrap();
            eprintln!("  full epoch {e} step {it}: loss {l:.4}");
            it += 1;
        }
    }
    eprintln!("  ({:.0?})", t0.elapsed());
    show("field train after full", &eval(&m, &cand, &ft));
    show("field valid after full", &eval(&m, &cand, &fv));
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
