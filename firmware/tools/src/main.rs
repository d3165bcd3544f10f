//! Host tools for the firmware (run from the repository root):
//!
//! ```text
//! cargo run --release --manifest-path firmware/tools/Cargo.toml -- gen
//! cargo run --release --manifest-path firmware/tools/Cargo.toml -- keras
//! cargo run --release --manifest-path firmware/tools/Cargo.toml -- report
//! ```
//!
//! * `gen` trains the default model (`SPEC` of `firmware/src/engine.rs`: LSTM 64 → Dense 4
//!   softmax on 3 channels, T = 40) on the synthetic gesture task with the core's
//!   `train::loss_and_grad` and Adam, and writes `firmware/models/default.tlm` and the embedded
//!   data sets `firmware/data/{samples,field_train,field_valid}.bin`. Everything is seeded: the
//!   same command writes the same bytes.
//! * `keras` turns `tests/fixtures/keras/lstm_layer.json` into `firmware/tests/keras_lstm_layer.rs`
//!   (the on-target gradient test embeds it).
//! * `report` replays the firmware's evaluation and fine-tuning on the host (same engine source)
//!   and prints what the firmware should log.
//!
//! The generator is a small re-implementation of `host-cli/src/synthetic.rs` (same classes and
//! shapes, drawn from the core's portable `init::Rng`), so the firmware does not depend on the CLI.
//! Once `tinylstm train` exists, the default model can be regenerated with it instead.

#[path = "../../src/engine.rs"]
mod engine;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use engine::*;
use tinylstm::format::{self, ModelFile, Section, TAG_METADATA};
use tinylstm::init::{self, Rng};
use tinylstm::optim::{Optimizer, OptimizerConfig};
use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainOptions};
use tinylstm::{Sequences, Targets};

/// Training set size, seed and noise of the default model's task.
const TRAIN_SAMPLES: usize = 1200;
const TEST_SAMPLES: usize = 400;
const DATA_SEED: u64 = 2026;
const INIT_SEED: u64 = 7;
const NOISE: f32 = 0.35;
const EPOCHS: usize = 12;
const BATCH: usize = 32;
const LR: f32 = 5e-3;

/// Embedded sets.
const SAMPLES: usize = 8;
const FIELD_TRAIN: usize = 16;
const FIELD_VALID: usize = 8;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

fn bump(t: f32, centre: f32, width: f32) -> f32 {
    let d = (t - centre) / width;
    libm::expf(-0.5 * d * d)
}

/// One gesture of class `class`, `[T][3]`, as `host-cli/src/synthetic.rs` draws it.
fn sample(class: usize, noise: f32, rng: &mut Rng) -> Vec<f32> {
    let steps = STEPS;
    let mut v = vec![0.0f32; steps * CHANNELS];
    let amp = rng.uniform(0.6, 1.4);
    let offset: [f32; CHANNELS] = core::array::from_fn(|_| rng.uniform(-0.5, 0.5));
    let n = steps as f32;
    match class {
        0 | 1 => {
            let cycles = rng.uniform(1.0, 2.5);
            let phase = rng.uniform(0.0, std::f32::consts::TAU);
            let dir = if class == 0 { 1.0 } else { -1.0 };
            for t in 0..steps {
                let a = std::f32::consts::TAU * cycles * t as f32 / n + phase;
                v[t * CHANNELS] = amp * libm::sinf(a);
                v[t * CHANNELS + 1] = dir * amp * libm::cosf(a);
                v[t * CHANNELS + 2] = 0.2 * amp * libm::sinf(2.0 * a);
            }
        }
        _ => {
            let width = rng.uniform(0.04, 0.08) * n;
            let first = rng.uniform(0.15, 0.4) * n;
            let second = rng.uniform(0.6, 0.85) * n;
            let (z_at, x_at) = if class == 2 { (first, second) } else { (second, first) };
            let sign_z = if rng.next_u32() & 1 == 0 { 1.0 } else { -1.0 };
            let sign_x = if rng.next_u32() & 1 == 0 { 1.0 } else { -1.0 };
            for t in 0..steps {
                let tf = t as f32;
                v[t * CHANNELS] = sign_x * 1.5 * amp * bump(tf, x_at, width);
                v[t * CHANNELS + 1] = 0.3 * amp * libm::sinf(tf / n * 5.0);
                v[t * CHANNELS + 2] = sign_z * 1.5 * amp * bump(tf, z_at, width);
            }
        }
    }
    for (i, x) in v.iter_mut().enumerate() {
        *x += offset[i % CHANNELS] + noise * rng.normal();
    }
    v
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

struct Set {
    x: Vec<f32>,
    y: Vec<u32>,
}

fn make_set(n: usize, seed: u64, shift: bool) -> Set {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(n * SEQ_LEN);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % CLASSES;
        let mut s = sample(class, NOISE, &mut rng);
        if shift {
            field_shift(&mut s);
        }
        x.extend_from_slice(&s);
        y.push(class as u32);
    }
    Set { x, y }
}

fn encode_set(set: &Set) -> Vec<u8> {
    let n = set.y.len();
    let mut out = Vec::with_capacity(DATA_HEADER_LEN + n * RECORD_LEN);
    out.extend_from_slice(&DATA_MAGIC);
    for v in [n as u32, STEPS as u32, CHANNELS as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, &label) in set.y.iter().enumerate() {
        out.extend_from_slice(&label.to_le_bytes());
        for v in &set.x[i * SEQ_LEN..(i + 1) * SEQ_LEN] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    assert_eq!(check_data(&out), Ok(n));
    out
}

fn accuracy(params: &[f32], set: &Set) -> (f32, f32) {
    let n = set.y.len();
    let mut work = vec![0.0f32; SPEC.forward_work_len(1, STEPS)];
    let mut logits = vec![0.0f32; n * CLASSES];
    for i in 0..n {
        tinylstm::model::forward_logits(
            &SPEC,
            params,
            Sequences::Values(&set.x[i * SEQ_LEN..(i + 1) * SEQ_LEN]),
            1,
            &mut work,
            &mut logits[i * CLASSES..(i + 1) * CLASSES],
        )
        .unwrap();
    }
    let mut d = vec![0.0f32; n * CLASSES];
    let s = score(&logits, &set.y, &mut d).unwrap();
    (s.loss, s.correct as f32 / n as f32)
}

fn train() -> Vec<f32> {
    let train = make_set(TRAIN_SAMPLES, DATA_SEED, false);
    let test = make_set(TEST_SAMPLES, DATA_SEED + 1, false);
    let mut params = vec![0.0f32; PARAMS];
    init::init_params(&SPEC, INIT_SEED, &mut params).unwrap();
    let cfg = OptimizerConfig::new(Optimizer::adam()).with_lr(LR);
    let mut state = vec![0.0f32; cfg.state_len(PARAMS)];
    let opts = TrainOptions { bptt: Bptt::FULL, norm: 0 };
    let mut work = vec![0.0f32; SPEC.train_work_len(BATCH, STEPS, opts.bptt)];
    let mut grads = vec![0.0f32; PARAMS];
    let mut order: Vec<usize> = (0..TRAIN_SAMPLES).collect();
    let mut rng = Rng::new(DATA_SEED ^ 0x5eed);
    let mut xb = vec![0.0f32; BATCH * SEQ_LEN];
    let mut yb = vec![0u32; BATCH];
    let mut it = 0u32;
    let t0 = Instant::now();
    for epoch in 0..EPOCHS {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.next_u32() as usize % (i + 1));
        }
        let mut total = 0.0;
        for chunk in order.chunks_exact(BATCH) {
            for (j, &s) in chunk.iter().enumerate() {
                xb[j * SEQ_LEN..(j + 1) * SEQ_LEN]
                    .copy_from_slice(&train.x[s * SEQ_LEN..(s + 1) * SEQ_LEN]);
                yb[j] = train.y[s];
            }
            grads.fill(0.0);
            let batch = Batch {
                inputs: Sequences::Values(&xb),
                targets: Targets::Classes(&yb),
                batch: BATCH,
            };
            total +=
                loss_and_grad(&SPEC, &params, &batch, &opts, &mut work, &mut grads, None, None)
                    .unwrap();
            cfg.apply(&SPEC, 0..PARAMS, it, &mut params, &mut grads, &mut state).unwrap();
            it += 1;
        }
        let (tl, ta) = accuracy(&params, &test);
        eprintln!(
            "epoch {epoch:2}: train loss {:.4}, test loss {tl:.4}, test accuracy {:.1}% ({:.0?})",
            total / (TRAIN_SAMPLES / BATCH) as f32,
            ta * 100.0,
            t0.elapsed()
        );
    }
    params
}

fn metadata() -> String {
    let mut m = String::new();
    write!(
        m,
        "tinylstm firmware default model: made by `cargo run --release --manifest-path \
         firmware/tools/Cargo.toml -- gen` (not the CLI); synthetic gestures \
         (circle_cw, circle_ccw, tap_then_swipe, swipe_then_tap), {TRAIN_SAMPLES} training \
         sequences of T={STEPS}, noise {NOISE}, data seed {DATA_SEED}, init seed {INIT_SEED}, \
         Adam lr {LR}, batch {BATCH}, {EPOCHS} epochs, full BPTT"
    )
    .unwrap();
    m
}

fn cmd_gen() {
    let root = repo_root();
    let fw = root.join("firmware");
    let params = train();
    let meta = metadata();
    let sections = [Section { tag: TAG_METADATA, bytes: meta.as_bytes() }];
    let len = format::encoded_len(&SPEC, &sections).unwrap();
    let mut buf = vec![0u8; len];
    format::write_into(&SPEC, &params, &sections, &mut buf).unwrap();
    std::fs::write(fw.join("models/default.tlm"), &buf).unwrap();
    for (name, set) in [
        ("samples", make_set(SAMPLES, 11, false)),
        ("field_train", make_set(FIELD_TRAIN, 12, true)),
        ("field_valid", make_set(FIELD_VALID, 13, true)),
    ] {
        std::fs::write(fw.join(format!("data/{name}.bin")), encode_set(&set)).unwrap();
    }
    eprintln!("wrote firmware/models/default.tlm ({len} bytes) and firmware/data/*.bin");
    cmd_report(&fw.join("models/default.tlm"));
}

fn load(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    file.check_spec(&SPEC).unwrap();
    let mut p = vec![0.0f32; PARAMS];
    file.read_params(&mut p).unwrap();
    p
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
    let params = load(model);
    let (samples, ft, fv) = (read_set("samples"), read_set("field_train"), read_set("field_valid"));
    let samples = View::clean(Dataset::parse(&samples).unwrap());
    let ft = View::clean(Dataset::parse(&ft).unwrap());
    let fv = View::clean(Dataset::parse(&fv).unwrap());
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
        Some("keras") => cmd_keras(),
        Some("report") => {
            let model = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("firmware/models/default.tlm"));
            cmd_report(&model)
        }
        _ => {
            eprintln!("usage: tools gen | keras | report [MODEL.tlm]");
            std::process::exit(2);
        }
    }
}
