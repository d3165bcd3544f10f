//! QEMU harness for the firmware (`firmware/`): trains a model with the CLI (`tinylstm train`
//! on its built-in task), builds the firmware with that model embedded, boots it through the
//! firmware's runner (`firmware/qemu-run.sh`: timeout, `-icount shift=0,align=off`,
//! defmt-print) on QEMU's `mps2-an386` (Cortex-M4F, `thumbv7em-none-eabihf`, every feature),
//! `mps3-an547` (Cortex-M55 with Helium, `thumbv8m.main-none-eabihf`, every feature) and
//! `mps2-an385` (the soft-float Cortex-M0+ build, `thumbv6m-none-eabi`, inference only: its
//! software floating point makes fine-tuning take minutes), and checks the decoded log against
//! the host:
//!
//! * the class probabilities of every embedded sample equal `tinylstm predict --json` on the same
//!   model and the same raw inputs (written as a sequence CSV), bit for bit: the device
//!   standardises with the model's NORMALIZATION section as the CLI does (also checked directly
//!   against the CLI's `Normalizer`), and the core's forward pass uses `libm` on both sides;
//! * streaming the first sample step by step (standardising each raw step as it arrives) gives
//!   the same bits;
//! * the field-set scores before fine-tuning, and after head-only and full-BPTT fine-tuning,
//!   equal the host's replay of the same computations (`firmware/src/engine.rs` is compiled
//!   into this test) bit for bit; fine-tuning lowers the loss and raises the accuracy; both
//!   clean updates commit;
//! * the poisoned runs roll back and leave the parameters' CRC unchanged: data with a NaN, a
//!   +Inf or a -Inf reading are refused by the intake check before any training step (reason
//!   `non-finite-input`, with the sequence and value logged); wrong labels train and then fail
//!   the validation check; the firmware exits with 0;
//! * a model with a corrupted byte fails at boot with the CRC error in the log and a non-zero
//!   exit, and so does a model with an unusable NORMALIZATION section; a model of another spec
//!   does not compile; a HardFault exits with failure;
//! * the on-target test suite (`firmware/tests/gradcheck.rs`: Keras `lstm_layer` and central
//!   differences on the device) passes (M4F);
//! * each board's instruction counter, run on a loop of known length, counts it to within a
//!   SysTick tick (which checks the board's clock rate);
//! * (host only, no QEMU) the firmware's `Standardize` reads the committed default model's
//!   NORMALIZATION section as the CLI's `Normalizer` does and standardises every embedded raw
//!   value to the same bits, and refuses the sections it cannot use.
//!
//! Prerequisites: the `thumbv7em-none-eabihf`, `thumbv8m.main-none-eabihf` and
//! `thumbv6m-none-eabi` targets, `qemu-system-arm` and `defmt-print` (`.ci/run` installs them). When one is missing the tests print why and pass, except under
//! CI (`CI` set), where they fail.

mod common;
#[path = "../../firmware/src/engine.rs"]
mod engine;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use engine::*;
use tinylstm::format::{self, ModelFile, Section, TAG_METADATA, TAG_NORMALIZATION};
use tinylstm::{Head, Spec};
use tinylstm_cli::preprocess::normalize::Normalizer;

/// Seconds one QEMU run may take before the runner kills it.
const QEMU_TIMEOUT_S: u32 = 240;

/// Builds share one target directory: only one at a time, and each ELF is copied out at once.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// A firmware board the harness boots.
struct Board {
    /// Cargo target of the board's build.
    target: &'static str,
    /// QEMU machine (`qemu-run.sh --machine`).
    machine: &'static str,
    /// The firmware's features for this board (with `--no-default-features`); `None`: the
    /// default features (mps2-an386 with both fine-tuning modes).
    features: Option<&'static str>,
    /// Whether the build fine-tunes (head-only and full).
    finetune: bool,
}

/// QEMU mps2-an386, Cortex-M4F: the default build.
const M4F: Board = Board {
    target: "thumbv7em-none-eabihf",
    machine: "mps2-an386",
    features: None,
    finetune: true,
};
/// QEMU mps3-an547, Cortex-M55 with Helium, every feature.
const M55: Board = Board {
    target: "thumbv8m.main-none-eabihf",
    machine: "mps3-an547",
    features: Some("board-mps3-an547,head-finetune,full-finetune"),
    finetune: true,
};
/// QEMU mps2-an385 running the soft-float Cortex-M0+ build, inference only (one forward pass
/// is about 184 M instructions there; the fine-tuning sequence would be 40 G).
const M0PLUS: Board = Board {
    target: "thumbv6m-none-eabi",
    machine: "mps2-an385",
    features: Some("board-mps2-an385"),
    finetune: false,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

fn firmware_dir() -> PathBuf {
    repo().join("firmware")
}

fn target_dir() -> PathBuf {
    repo().join("target").join("qemu-harness")
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn target_installed(target: &str) -> bool {
    let out = Command::new("rustc").args(["--print", "target-libdir", "--target", target]).output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
            std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some())
        }
        _ => false,
    }
}

/// True when everything the harness needs is installed. Otherwise prints why and returns
/// false, or panics under CI.
fn prerequisites(test: &str) -> bool {
    prerequisites_for(test, &M4F, true)
}

/// [`prerequisites`] for `board`; `boots` false for a test that only builds (no QEMU, no
/// defmt-print).
fn prerequisites_for(test: &str, board: &Board, boots: bool) -> bool {
    let mut missing = Vec::new();
    if !target_installed(board.target) {
        missing.push(format!("the {0} target (rustup target add {0})", board.target));
    }
    if boots && !on_path("qemu-system-arm") {
        missing.push("qemu-system-arm (apt-get install qemu-system-arm)".into());
    }
    if boots && !on_path("defmt-print") {
        missing.push("defmt-print (cargo install defmt-print --locked)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: missing {}", missing.join(", "));
    if common::under_ci() {
        panic!("{msg}; CI must provide them (.ci/run installs them)");
    }
    // Straight to stderr, past the test harness's output capture, so the reason is always seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {msg}");
    false
}

fn cargo(dir: &Path) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("QEMU_TIMEOUT", QEMU_TIMEOUT_S.to_string())
        // The firmware's link arguments live in its .cargo/config.toml, which RUSTFLAGS would override.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("TINYLSTM_MODEL");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Builds the default (M4F) firmware with `model` embedded and extra `features`; returns a
/// private copy of the ELF, or the build's output on failure.
fn build(model: &Path, features: &[&str], out_dir: &Path) -> Result<PathBuf, String> {
    build_for(&M4F, model, features, out_dir)
}

/// Builds the firmware of `board` with `model` embedded and extra `features` (the target's
/// rustflags, such as `-C target-cpu=cortex-m55`, come from firmware/.cargo/config.toml).
fn build_for(
    board: &Board,
    model: &Path,
    features: &[&str],
    out_dir: &Path,
) -> Result<PathBuf, String> {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = cargo(&firmware_dir());
    c.args(["build", "--release", "--locked", "--target", board.target])
        .env("TINYLSTM_MODEL", model);
    let mut all: Vec<&str> = board.features.into_iter().collect();
    if board.features.is_some() {
        c.arg("--no-default-features");
    }
    all.extend(features);
    if !all.is_empty() {
        c.args(["--features", &all.join(",")]);
    }
    let o = c.output().expect("running cargo build for the firmware");
    if !o.status.success() {
        return Err(text(&o));
    }
    let elf = target_dir().join(board.target).join("release/tinylstm-firmware");
    let name = if features.is_empty() { "default".to_string() } else { features.join("-") };
    let copy = out_dir.join(format!("tinylstm-firmware-{}-{name}", board.machine));
    std::fs::copy(&elf, &copy).expect("copying the ELF");
    Ok(copy)
}

/// Boots `elf` on QEMU's mps2-an386 through the firmware's runner; returns the exit code and
/// decoded log.
fn run(elf: &Path) -> (i32, String) {
    run_on(&M4F, elf)
}

/// Boots `elf` on `board`'s QEMU machine through the firmware's runner.
fn run_on(board: &Board, elf: &Path) -> (i32, String) {
    let start = std::time::Instant::now();
    let o = Command::new(firmware_dir().join("qemu-run.sh"))
        .args(["--machine", board.machine])
        .arg(elf)
        .env("QEMU_TIMEOUT", QEMU_TIMEOUT_S.to_string())
        .output()
        .expect("running firmware/qemu-run.sh");
    let code = o.status.code().unwrap_or(-1);
    eprintln!("{}: exit {code} after {:.1?}", elf.display(), start.elapsed());
    (code, text(&o))
}

// ---------------------------------------------------------------------------------------------
// Models and log parsing
// ---------------------------------------------------------------------------------------------

/// The CLI's `train` settings of the harness model: the main job (built-in synthetic task, LSTM
/// 64 → Dense 4 softmax on 3 channels, T = 40, standardised input) made small enough to train
/// in a few seconds — 800 sequences, 8 epochs at lr 3e-3 (about 98 % test accuracy) — and with
/// its own seed, so its bits differ from the committed default model's.
const TRAIN_ARGS: [&str; 11] = [
    "--synthetic-samples",
    "800",
    "--epochs",
    "8",
    "--lr",
    "3e-3",
    "--seed",
    "7",
    "--threads",
    "2",
    "--quiet",
];

/// The harness model: trained once per test process with `tinylstm train` into
/// `target/qemu-harness/model/train/`; returns its path.
fn train_model() -> PathBuf {
    static MODEL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            let out = target_dir().join("model").join("train");
            let _ = std::fs::remove_dir_all(&out);
            common::binary(); // built (or found up to date) before the clock starts
            let start = std::time::Instant::now();
            let mut args = vec!["train", "--out", out.to_str().unwrap()];
            args.extend(TRAIN_ARGS);
            common::ok(&args);
            eprintln!("tinylstm train {}: {:.1?}", TRAIN_ARGS.join(" "), start.elapsed());
            out.join("model.tlm")
        })
        .clone()
}

/// The parameters and standardisation of a model file.
fn load_model(path: &Path) -> (Vec<f32>, Option<Standardize>, Vec<u8>) {
    let bytes = std::fs::read(path).expect("model file");
    let file = ModelFile::parse(&bytes).expect("model parses");
    file.check_spec(&SPEC).expect("the firmware's spec");
    let mut params = vec![0.0f32; PARAMS];
    file.read_params(&mut params).expect("model params");
    let norm = Standardize::from_model(&file).expect("a usable normalization section");
    (params, norm, bytes)
}

/// A copy of the committed default model (a model made by `tinylstm train`) in `dir`.
fn default_model(dir: &Path) -> PathBuf {
    let path = dir.join("default.tlm");
    std::fs::copy(firmware_dir().join("models/default.tlm"), &path).expect("default model");
    path
}

fn write_model(path: &Path, spec: &Spec, params: &[f32], extra: &[Section<'_>]) {
    let meta = b"QEMU harness model (tests/tests/qemu.rs)";
    let mut sections = extra.to_vec();
    sections.push(Section { tag: TAG_METADATA, bytes: meta });
    let mut buf = vec![0u8; format::encoded_len(spec, &sections).unwrap()];
    format::write_into(spec, params, &sections, &mut buf).unwrap();
    std::fs::write(path, buf).unwrap();
}

/// Writes the raw sequences of `data` as a sequence CSV for `tinylstm predict`: the label, then
/// the `T·C` values timestep-major. Each `f32` is printed as its exact `f64` value, which the
/// CLI (parse as `f64`, round to `f32`) reads back to the same bits.
fn write_csv(path: &Path, data: &Dataset<'_>) {
    let mut csv = String::new();
    let mut x = vec![0.0f32; SEQ_LEN];
    for i in 0..data.len() {
        let label = data.read(i, &mut x);
        write!(csv, "{label}").unwrap();
        for v in &x {
            write!(csv, ",{}", f64::from(*v)).unwrap();
        }
        csv.push('\n');
    }
    std::fs::write(path, csv).unwrap();
}

/// `tinylstm predict --json` on `csv`: the output bits of every row, in order.
fn cli_predict(model: &Path, csv: &Path) -> Vec<Vec<u32>> {
    let out = common::ok(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--json",
    ]);
    out.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["index"], i, "{l}");
            v["output_bits"]
                .as_array()
                .expect("output_bits")
                .iter()
                .map(|b| hex_bits(b.as_str().expect("hex string")))
                .collect()
        })
        .collect()
}

/// Lines whose whitespace-separated words include every one of `words`.
fn lines<'a>(log: &'a str, words: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| {
            let ws: Vec<&str> = l.split_whitespace().collect();
            words.iter().all(|w| ws.contains(w))
        })
        .collect()
}

fn line<'a>(log: &'a str, words: &[&str]) -> &'a str {
    let found = lines(log, words);
    assert_eq!(found.len(), 1, "expected one log line with {words:?}, found {found:?}\n{log}");
    found[0]
}

fn kv<'a>(line: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn hex_bits(s: &str) -> u32 {
    u32::from_str_radix(s, 16).unwrap_or_else(|_| panic!("not hex bits: {s:?}"))
}

fn logged_score(log: &str, mode: &str, data: &str, set: &str, when: &str) -> (u32, usize) {
    let words = [
        "score",
        &format!("mode={mode}"),
        &format!("data={data}"),
        &format!("set={set}"),
        &format!("when={when}"),
    ];
    let words: Vec<&str> = words.iter().map(|s| s.as_ref()).collect();
    let l = line(log, &words);
    (hex_bits(kv(l, "bits")), kv(l, "correct").parse().unwrap())
}

fn check_score(log: &str, mode: &str, data: &str, set: &str, when: &str, host: &Score) {
    let (bits, correct) = logged_score(log, mode, data, set, when);
    assert_eq!(
        (bits, correct),
        (host.loss.to_bits(), host.correct),
        "{mode}/{data}/{set}/{when}: device loss {} ({bits:08x}), host {} ({:08x})",
        f32::from_bits(bits),
        host.loss,
        host.loss.to_bits()
    );
}

fn check_result(log: &str, mode: &str, data: &str, decision: &str, reason: &str) -> (u32, u32) {
    let l = line(log, &["result", &format!("mode={mode}"), &format!("data={data}")]);
    assert_eq!(kv(l, "decision"), decision, "{l}");
    assert_eq!(kv(l, "reason"), reason, "{l}");
    let (a, b) = kv(l, "params_crc").split_once("->").expect("params_crc=a->b");
    (hex_bits(a), hex_bits(b))
}

// ---------------------------------------------------------------------------------------------
// Host replay of the firmware's computations (same engine source)
// ---------------------------------------------------------------------------------------------

fn dataset(name: &str) -> Vec<u8> {
    std::fs::read(firmware_dir().join(format!("data/{name}.bin"))).expect("embedded data set")
}

fn labels(view: &View<'_>) -> Vec<u32> {
    let mut l = vec![0u32; view.len()];
    view.labels(&mut l);
    l
}

fn score_full(params: &[f32], view: &View<'_>) -> Score {
    let n = view.len();
    let (mut x, mut work) = (vec![0.0; SEQ_LEN], vec![0.0; FORWARD_WORK]);
    let (mut logits, mut d) = (vec![0.0; n * CLASSES], vec![0.0; n * CLASSES]);
    logits_full(params, view, &mut x, &mut work, &mut logits).unwrap();
    score(&logits, &labels(view), &mut d).unwrap()
}

fn feats(params: &[f32], view: &View<'_>) -> Vec<f32> {
    let (mut x, mut st, mut sw) = (vec![0.0; SEQ_LEN], vec![0.0; STATE], vec![0.0; STEP_WORK]);
    let mut f = vec![0.0; view.len() * UNITS];
    features(params, view, &mut x, &mut st, &mut sw, &mut f).unwrap();
    f
}

fn head_score(head: &[f32], feats: &[f32], labels: &[u32]) -> Score {
    let n = labels.len();
    let (mut logits, mut d) = (vec![0.0; n * CLASSES], vec![0.0; n * CLASSES]);
    head_logits(head, feats, n, &mut logits);
    score(&logits, labels, &mut d).unwrap()
}

/// The firmware's head-only transaction; returns (train before, valid before, train after,
/// valid after, decision) and updates `params` on commit.
fn replay_head(
    params: &mut [f32],
    train: &View<'_>,
    valid: &View<'_>,
) -> ([Score; 4], Result<(), Reject>) {
    let (ft, fv) = (feats(params, train), feats(params, valid));
    let (lt, lv) = (labels(train), labels(valid));
    let mut head = params[HEAD].to_vec();
    let before = [head_score(&head, &ft, &lt), head_score(&head, &fv, &lv)];
    let (mut g, mut s) = (vec![0.0; HEAD_LEN], vec![0.0; HEAD_STATE]);
    let (mut lg, mut dl) = (vec![0.0; MAX_SET * CLASSES], vec![0.0; MAX_SET * CLASSES]);
    let mut b = HeadBufs {
        head: &mut head,
        grads: &mut g,
        state: &mut s,
        logits: &mut lg,
        dlogits: &mut dl,
    };
    for it in 0..HEAD_STEPS {
        head_step(&mut b, &ft, &lt, it).expect("clean head step");
    }
    let after = [head_score(&head, &ft, &lt), head_score(&head, &fv, &lv)];
    let decision = accept(&head, &before[1], &after[1]);
    if decision.is_ok() {
        params[HEAD].copy_from_slice(&head);
    }
    ([before[0], before[1], after[0], after[1]], decision)
}

/// The firmware's full-BPTT transaction on clean data.
fn replay_full(
    params: &mut [f32],
    train: &View<'_>,
    valid: &View<'_>,
) -> ([Score; 4], Result<(), Reject>) {
    let before = [score_full(params, train), score_full(params, valid)];
    let mut cand = params.to_vec();
    let (mut grads, mut state) = (vec![0.0; PARAMS], vec![0.0; FULL_STATE]);
    let (mut work, mut x) = (vec![0.0; TRAIN_WORK], vec![0.0; SEQ_LEN]);
    let mut b = FullBufs {
        params: &mut cand,
        grads: &mut grads,
        state: &mut state,
        work: &mut work,
        x: &mut x,
    };
    let mut it = 0;
    for _ in 0..FULL_EPOCHS {
        for mb in minibatches(train.len()) {
            full_step(&mut b, train, mb, it).expect("clean full step");
            it += 1;
        }
    }
    let after = [score_full(&cand, train), score_full(&cand, valid)];
    let decision = accept(&cand, &before[1], &after[1]);
    if decision.is_ok() {
        params.copy_from_slice(&cand);
    }
    ([before[0], before[1], after[0], after[1]], decision)
}

fn params_crc(p: &[f32]) -> u32 {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut d = crc.digest();
    for v in p {
        d.update(&v.to_le_bytes());
    }
    d.finalize()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn firmware_boot_sequence_matches_host() {
    boot_sequence_matches_host("firmware_boot_sequence_matches_host", &M4F);
}

/// The same model and checks on the Cortex-M55 (its loops vectorised to Helium): the same bits.
#[test]
fn m55_boot_sequence_matches_host() {
    boot_sequence_matches_host("m55_boot_sequence_matches_host", &M55);
}

/// The soft-float Cortex-M0+ build (inference and streaming): the same bits.
#[test]
fn m0plus_inference_matches_host() {
    boot_sequence_matches_host("m0plus_inference_matches_host", &M0PLUS);
}

/// Boots the harness model on `board` and checks its log against the host (module doc).
fn boot_sequence_matches_host(test: &str, board: &Board) {
    if !prerequisites_for(test, board, true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = train_model();
    let (mut params, norm, bytes) = load_model(&model);
    let norm = norm.expect("tinylstm train standardises sequence input");
    let elf = build_for(board, &model, &[], dir.path())
        .unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let (code, log) = run_on(board, &elf);
    println!("{log}");
    assert_eq!(code, 0, "firmware exit code\n{log}");
    assert!(lines(&log, &["done"]).len() == 1, "no `done` line");

    // (a) The model verified at boot is the one this test trained.
    let crc = ModelFile::parse(&bytes).unwrap().crc();
    let l = line(&log, &["model", "verified:"]);
    assert_eq!(hex_bits(kv(l, "crc")), crc);
    assert_eq!(hex_bits(kv(l, "params_crc")), params_crc(&params));
    assert!(
        log.contains("input standardisation (NORMALIZATION section)"),
        "the firmware must use the model's standardisation\n{log}"
    );

    // The firmware's standardisation is the CLI's, bit for bit.
    let section = ModelFile::parse(&bytes).unwrap().normalization().unwrap().to_vec();
    let cli_norm = Normalizer::from_bytes(&section).expect("the CLI reads the section");
    assert_eq!((cli_norm.means(), cli_norm.stds()), (&norm.means[..], &norm.stds[..]));

    // (b) Predictions: the device's probabilities equal `tinylstm predict` on the same model and
    // the same raw inputs, bit for bit.
    let samples_bytes = dataset("samples");
    let raw = Dataset::parse(&samples_bytes).unwrap();
    let samples = View::clean(raw, Some(norm));
    let (mut x, mut cli_x) = (vec![0.0; SEQ_LEN], vec![0.0; SEQ_LEN]);
    for i in 0..raw.len() {
        samples.read(i, &mut x);
        raw.read(i, &mut cli_x);
        cli_norm.apply(&mut cli_x).unwrap();
        let (a, b): (Vec<u32>, Vec<u32>) =
            (x.iter().map(|v| v.to_bits()).collect(), cli_x.iter().map(|v| v.to_bits()).collect());
        assert_eq!(a, b, "sample {i}: standardised inputs differ from the CLI's");
    }
    let csv = dir.path().join("samples.csv");
    write_csv(&csv, &raw);
    let host = cli_predict(&model, &csv);
    assert_eq!(host.len(), raw.len(), "one prediction per sample");
    let probs_lines = lines(&log, &["probs"]);
    assert_eq!(probs_lines.len(), raw.len(), "one probs line per sample");
    for (i, l) in probs_lines.iter().enumerate() {
        assert_eq!(kv(l, "sample"), i.to_string());
        let device: Vec<u32> = kv(l, "bits").split(',').map(hex_bits).collect();
        assert_eq!(
            device, host[i],
            "sample {i}: device probabilities differ from `tinylstm predict`'s"
        );
    }
    println!("probabilities of {} samples == tinylstm predict, bit for bit", raw.len());

    // (c) Streaming equals the full forward (on the device, and against the CLI's bits).
    let l = line(&log, &["stream", "sample=0"]);
    assert_eq!(kv(l, "equal_to_full_forward"), "true", "{l}");
    let streamed: Vec<u32> =
        kv(line(&log, &["streamed", "sample=0"]), "bits").split(',').map(hex_bits).collect();
    assert_eq!(streamed, host[0], "streamed probabilities differ from `tinylstm predict`'s");

    // The instruction counter counts a loop of known length to within a tick.
    check_counter(&log);

    // (d) Fine-tuning, replayed on the host.
    let (tb, vb) = (dataset("field_train"), dataset("field_valid"));
    let ft = Dataset::parse(&tb).unwrap();
    let train = View::clean(ft, Some(norm));
    let valid = View::clean(Dataset::parse(&vb).unwrap(), Some(norm));
    let initial = [score_full(&params, &train), score_full(&params, &valid)];
    check_score(&log, "deployed", "clean", "train", "initial", &initial[0]);
    check_score(&log, "deployed", "clean", "valid", "initial", &initial[1]);
    if !board.finetune {
        // Inference only: the scores stay those of the deployed model.
        check_score(&log, "deployed", "clean", "train", "final", &initial[0]);
        check_score(&log, "deployed", "clean", "valid", "final", &initial[1]);
        assert!(lines(&log, &["result"]).is_empty(), "no fine-tuning in this build");
        for l in lines(&log, &["count"]).iter().chain(lines(&log, &["stack"]).iter()) {
            println!("{l}");
        }
        assert_eq!(lines(&log, &["count"]).len(), 2, "inference and streaming counts");
        return;
    }

    let (head, decision) = replay_head(&mut params, &train, &valid);
    assert_eq!(decision, Ok(()), "host: the clean head-only update should commit");
    for (s, (set, when)) in head.iter().zip([
        ("train", "before"),
        ("valid", "before"),
        ("train", "after"),
        ("valid", "after"),
    ]) {
        check_score(&log, "head", "clean", set, when, s);
    }
    check_result(&log, "head", "clean", "commit", "validation-improved");

    let (full_scores, decision) = replay_full(&mut params, &train, &valid);
    assert_eq!(decision, Ok(()), "host: the clean full update should commit");
    for (s, (set, when)) in full_scores.iter().zip([
        ("train", "before"),
        ("valid", "before"),
        ("train", "after"),
        ("valid", "after"),
    ]) {
        check_score(&log, "full", "clean", set, when, s);
    }
    let (_, committed) = check_result(&log, "full", "clean", "commit", "validation-improved");
    assert_eq!(committed, params_crc(&params), "parameters after both updates");

    // Fine-tuning lowers the loss and raises the accuracy on the field set.
    for set in ["train", "valid"] {
        let (l0, c0) = logged_score(&log, "deployed", "clean", set, "initial");
        let (l1, c1) = logged_score(&log, "deployed", "clean", set, "final");
        let (l0, l1) = (f32::from_bits(l0), f32::from_bits(l1));
        println!("field {set}: loss {l0} -> {l1}, correct {c0} -> {c1}");
        assert!(l1 < l0, "field {set}: loss {l0} -> {l1}");
        assert!(c1 > c0, "field {set}: correct {c0} -> {c1}");
    }
    for mode in ["head", "full"] {
        let (b, _) = logged_score(&log, mode, "clean", "train", "before");
        let (a, _) = logged_score(&log, mode, "clean", "train", "after");
        assert!(f32::from_bits(a) < f32::from_bits(b), "{mode}: training loss did not drop");
    }

    // (e) Poisoned updates roll back and leave the parameters as they were. Non-finite sensor
    // readings — NaN inside the truncated-BPTT window, -Inf before it (its gradient would stay
    // finite), +Inf for head-only (the saturated gates give finite features) — are refused by the
    // intake check, before any training step; the host's replay of the check agrees.
    let mut x = vec![0.0f32; SEQ_LEN];
    for (mode, data, sample, value, glitch) in [
        ("full", "poisoned-nan", 1, 100, Glitch::Nan),
        ("full", "poisoned-neg-inf", ft.len() - 1, 0, Glitch::NegInf),
        ("head", "poisoned-inf", 0, 5, Glitch::PosInf),
    ] {
        let (a, b) = check_result(&log, mode, data, "rollback", "non-finite-input");
        assert_eq!((a, b), (committed, committed), "{mode}/{data}");
        let data_word = format!("data={data}");
        let l = line(&log, &["finetune", &format!("mode={mode}"), &data_word, "rejected:"]);
        assert_eq!(kv(l, "set"), "train", "{l}");
        assert_eq!(kv(l, "sequences"), format!("1/{}", ft.len()), "{l}");
        assert_eq!(kv(l, "sequence"), sample.to_string(), "{l}");
        assert_eq!(kv(l, "value"), value.to_string(), "{l}");
        let trained: Vec<&str> = lines(&log, &["finetune", &data_word])
            .into_iter()
            .filter(|l| l.split_whitespace().any(|w| w.starts_with("step=")))
            .collect();
        assert!(trained.is_empty(), "{data}: a training step ran: {trained:?}");
        assert!(lines(&log, &["score", &data_word]).is_empty(), "{data}: scored");
        let view = train.poisoned(Poison::NonFinite { sample, value, glitch });
        let want = NonFiniteInput { sequences: 1, first: sample, value };
        assert_eq!(view.check_finite(&mut x), Err(want), "host intake check of {data}");
    }
    let (a, b) = check_result(&log, "head", "poisoned-labels", "rollback", "worse-validation");
    assert_eq!((a, b), (committed, committed));
    let wrong = train.poisoned(Poison::Mislabel);
    let mut scratch = params.clone();
    let (poisoned, decision) = replay_head(&mut scratch, &wrong, &valid);
    assert_eq!(decision, Err(Reject::WorseValidation));
    check_score(&log, "head", "poisoned-labels", "valid", "after", &poisoned[3]);
    let l = log.lines().find(|l| l.contains("params_crc final=")).expect("final params_crc");
    assert_eq!(hex_bits(kv(l, "final")), committed);
    check_score(&log, "deployed", "clean", "valid", "final", &score_full(&params, &valid));

    // (f) Measurements are reported.
    for l in lines(&log, &["count"]).iter().chain(lines(&log, &["stack"]).iter()) {
        println!("{l}");
    }
    assert!(log.contains("stack high-water="), "no stack high-water mark");
    assert_eq!(lines(&log, &["count"]).len(), 7, "instruction counts of every phase");
}

/// The boot's counter check: `counter check: a loop of N instructions measured M instructions
/// (SysTick HZ Hz, A/B per tick)`. Under QEMU `M` is `N` to within one tick (`A/B`
/// instructions) plus the few instructions of the call around the loop.
fn check_counter(log: &str) {
    let l = line(log, &["counter", "check:"]);
    let words: Vec<&str> = l.split_whitespace().collect();
    let after = |w: &str| -> &str {
        let i = words.iter().position(|x| *x == w).unwrap_or_else(|| panic!("{w} in {l:?}"));
        words[i + 1]
    };
    let known: f64 = after("of").parse().unwrap();
    let measured: f64 = after("measured").parse().unwrap();
    let (a, b) = after("Hz,").split_once('/').expect("A/B per tick");
    let tick = a.parse::<f64>().unwrap() / b.parse::<f64>().unwrap();
    println!("counter check: {known} instructions measured as {measured} (tick {tick})");
    assert!(
        (measured - known).abs() <= tick + 16.0,
        "the counter is off: a loop of {known} instructions measured {measured} ({l})"
    );
}

#[test]
fn corrupt_model_fails_at_boot() {
    if !prerequisites("corrupt_model_fails_at_boot") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() - 1000; // inside the parameters
    bytes[at] ^= 0x01;
    std::fs::write(&model, &bytes).unwrap();
    let elf = build(&model, &[], dir.path()).unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let (code, log) = run(&elf);
    println!("{log}");
    assert_ne!(code, 0, "a corrupted model must fail\n{log}");
    assert!(
        log.contains("model rejected: corrupted model file: stored CRC-32 is"),
        "the CRC error must be in the log\n{log}"
    );
    assert!(!log.contains("infer sample="), "no inference with a rejected model");
}

#[test]
fn bad_normalization_fails_at_boot() {
    if !prerequisites("bad_normalization_fails_at_boot") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (params, norm, _) = load_model(&firmware_dir().join("models/default.tlm"));
    let mut norm = norm.expect("the default model standardises its input");
    norm.stds[1] = 0.0; // a standard deviation of 0 is not usable
    let mut section = (CHANNELS as u32).to_le_bytes().to_vec();
    for v in norm.means.iter().chain(&norm.stds) {
        section.extend_from_slice(&v.to_le_bytes());
    }
    let model = dir.path().join("bad-normalization.tlm");
    let sections = [Section { tag: TAG_NORMALIZATION, bytes: &section }];
    write_model(&model, &SPEC, &params, &sections);
    let elf = build(&model, &[], dir.path()).unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let (code, log) = run(&elf);
    println!("{log}");
    assert_ne!(code, 0, "an unusable normalization section must fail\n{log}");
    assert!(
        log.contains("model rejected: normalization section: channel 1 has"),
        "the normalization error must be in the log\n{log}"
    );
    assert!(!log.contains("infer sample="), "no inference with a rejected model");
}

#[test]
fn model_of_another_spec_does_not_compile() {
    if !prerequisites_for("model_of_another_spec_does_not_compile", &M4F, false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let other = Spec::channels(3).lstm(8).dense(4, Head::Softmax);
    let params = vec![0.01f32; other.param_count()];
    let model = dir.path().join("other.tlm");
    write_model(&model, &other, &params, &[]);
    let err = build(&model, &[], dir.path()).expect_err("a model of another spec must not build");
    assert!(
        err.contains("does not match the firmware's compiled SPEC"),
        "the compile error must say why:\n{err}"
    );
}

#[test]
fn hardfault_exits_with_failure() {
    if !prerequisites("hardfault_exits_with_failure") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let elf = build(&model, &["fault-test"], dir.path())
        .unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let (code, log) = run(&elf);
    println!("{log}");
    assert_ne!(code, 0, "a HardFault must exit with failure\n{log}");
    assert!(log.contains("HardFault: pc="), "the fault must be logged\n{log}");
}

#[test]
fn on_target_gradient_checks() {
    if !prerequisites("on_target_gradient_checks") {
        return;
    }
    let o = {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        cargo(&firmware_dir())
            .args(["test", "--release", "--locked", "--test", "gradcheck"])
            .output()
            .expect("running cargo test in firmware/")
    };
    let log = text(&o);
    println!("{log}");
    assert!(o.status.success(), "on-target tests failed\n{log}");
    assert!(log.contains("all tests passed!"), "defmt-test did not finish\n{log}");
    assert!(log.contains("keras grad_recurrent_kernel"), "Keras case not run\n{log}");
}

/// Host-only checks of the firmware's model preprocessing (`engine::Standardize`,
/// `engine::metadata_steps`) against the CLI's: no QEMU needed.
#[test]
fn firmware_preprocessing_matches_cli() {
    let bytes = std::fs::read(firmware_dir().join("models/default.tlm")).expect("default model");
    let file = ModelFile::parse(&bytes).expect("default model parses");
    // The default model is the CLI's: standardised input, metadata for T = 40.
    assert_eq!(metadata_steps(file.metadata().expect("metadata")), Some(STEPS));
    assert_eq!(metadata_steps(br#"{"task":"sequence","steps":50,"padding":"pre"}"#), Some(50));
    assert_eq!(metadata_steps(b"free text"), None);
    let section = file.normalization().expect("a NORMALIZATION section");
    let norm = Standardize::parse(section).expect("usable");
    let cli = Normalizer::from_bytes(section).expect("the CLI reads it");
    // Same statistics, same standardised bits on every embedded raw value.
    assert_eq!((cli.means(), cli.stds()), (&norm.means[..], &norm.stds[..]));
    for name in ["samples", "field_train", "field_valid"] {
        let data = dataset(name);
        let set = Dataset::parse(&data).unwrap();
        let (mut a, mut b) = (vec![0.0; SEQ_LEN], vec![0.0; SEQ_LEN]);
        for i in 0..set.len() {
            View::clean(set, Some(norm)).read(i, &mut a);
            set.read(i, &mut b);
            cli.apply(&mut b).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{name} sequence {i}");
        }
    }
    // What the firmware refuses (the CLI refuses the first and the last too).
    assert_eq!(Standardize::parse(&section[..section.len() - 1]), Err(NormError::Length(27)));
    let mut two = 2u32.to_le_bytes().to_vec();
    two.extend_from_slice(&[0; 16]);
    assert_eq!(Standardize::parse(&two), Err(NormError::Channels(2)));
    let mut zero = section.to_vec();
    zero[4 + 4 * CHANNELS..8 + 4 * CHANNELS].copy_from_slice(&0f32.to_le_bytes());
    assert_eq!(Standardize::parse(&zero), Err(NormError::Value(0)));
    assert!(Normalizer::from_bytes(&zero).is_err());
}
