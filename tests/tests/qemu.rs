//! QEMU harness for the firmware (`firmware/`): builds it for `thumbv7em-none-eabihf` with a
//! model this test makes, boots it on QEMU's `mps2-an386` (Cortex-M4) through the firmware's
//! cargo runner (`firmware/qemu-run.sh`: timeout, `-icount shift=0,align=off`, defmt-print),
//! and checks the decoded log against the host:
//!
//! * every class probability of the sample sequences equals the core's forward pass on the host,
//!   bit for bit (the reference is the core; it will become `tinylstm predict` once the CLI has it);
//! * streaming the first sample step by step gives the full forward's bits;
//! * the field-set scores before fine-tuning, and after head-only and full-BPTT fine-tuning,
//!   equal the host's replay of the same computations (`firmware/src/engine.rs` is compiled
//!   into this test) bit for bit; fine-tuning lowers the loss and raises the accuracy; both
//!   clean updates commit;
//! * the poisoned runs (a NaN in the data; wrong labels) roll back and leave the parameters'
//!   CRC unchanged; the firmware exits with 0;
//! * a model with a corrupted byte fails at boot with the CRC error in the log and a non-zero
//!   exit; a model of another spec does not compile; a HardFault exits with failure;
//! * the on-target test suite (`firmware/tests/gradcheck.rs`: Keras `lstm_layer` and central
//!   differences on the device) passes.
//!
//! Prerequisites: the `thumbv7em-none-eabihf` target, `qemu-system-arm` and `defmt-print`
//! (`.ci/run` installs them). When one is missing the tests print why and pass, except under
//! CI (`CI` set), where they fail.

#[path = "../../firmware/src/engine.rs"]
mod engine;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use engine::*;
use tinylstm::format::{self, ModelFile, Section, TAG_METADATA};
use tinylstm::{Head, Spec};

/// Seconds one QEMU run may take before the runner kills it.
const QEMU_TIMEOUT_S: u32 = 240;

/// Builds share one target directory: only one at a time, and each ELF is copied out at once.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

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

fn thumb_target_installed() -> bool {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", "thumbv7em-none-eabihf"])
        .output();
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
    prerequisites_for(test, true)
}

/// [`prerequisites`]; `boots` false for a test that only builds (no QEMU, no defmt-print).
fn prerequisites_for(test: &str, boots: bool) -> bool {
    let mut missing = Vec::new();
    if !thumb_target_installed() {
        missing.push("the thumbv7em-none-eabihf target (rustup target add thumbv7em-none-eabihf)");
    }
    if boots && !on_path("qemu-system-arm") {
        missing.push("qemu-system-arm (apt-get install qemu-system-arm)");
    }
    if boots && !on_path("defmt-print") {
        missing.push("defmt-print (cargo install defmt-print --locked)");
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: missing {}", missing.join(", "));
    if std::env::var_os("CI").is_some() {
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

/// Builds the firmware with `model` embedded and extra `features`; returns a private copy of
/// the ELF, or the build's output on failure.
fn build(model: &Path, features: &[&str], out_dir: &Path) -> Result<PathBuf, String> {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = cargo(&firmware_dir());
    c.args(["build", "--release", "--locked"]).env("TINYLSTM_MODEL", model);
    if !features.is_empty() {
        c.args(["--features", &features.join(",")]);
    }
    let o = c.output().expect("running cargo build for the firmware");
    if !o.status.success() {
        return Err(text(&o));
    }
    let elf = target_dir().join("thumbv7em-none-eabihf/release/tinylstm-firmware");
    let name = if features.is_empty() { "default".to_string() } else { features.join("-") };
    let copy = out_dir.join(format!("tinylstm-firmware-{name}"));
    std::fs::copy(&elf, &copy).expect("copying the ELF");
    Ok(copy)
}

/// Boots `elf` on QEMU through the firmware's runner; returns the exit code and decoded log.
fn run(elf: &Path) -> (i32, String) {
    let start = std::time::Instant::now();
    let o = Command::new(firmware_dir().join("qemu-run.sh"))
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

/// The test's model: the committed default model with every parameter nudged by a deterministic
/// amount up to ±1e-3, so its bits differ from anything committed while it still classifies.
fn make_model(dir: &Path) -> (PathBuf, Vec<f32>) {
    let bytes = std::fs::read(firmware_dir().join("models/default.tlm")).expect("default model");
    let file = ModelFile::parse(&bytes).expect("default model parses");
    let mut params = vec![0.0f32; PARAMS];
    file.read_params(&mut params).expect("default model params");
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for p in params.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *p += ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2e-3;
    }
    let path = dir.join("harness.tlm");
    write_model(&path, &SPEC, &params);
    (path, params)
}

fn write_model(path: &Path, spec: &Spec, params: &[f32]) {
    let meta = b"QEMU harness model (tests/tests/qemu.rs)";
    let sections = [Section { tag: TAG_METADATA, bytes: meta }];
    let mut buf = vec![0u8; format::encoded_len(spec, &sections).unwrap()];
    format::write_into(spec, params, &sections, &mut buf).unwrap();
    std::fs::write(path, buf).unwrap();
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
    if !prerequisites("firmware_boot_sequence_matches_host") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (model, mut params) = make_model(dir.path());
    let elf = build(&model, &[], dir.path()).unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let (code, log) = run(&elf);
    println!("{log}");
    assert_eq!(code, 0, "firmware exit code\n{log}");
    assert!(lines(&log, &["done"]).len() == 1, "no `done` line");

    // (a) The model verified at boot is the one this test wrote.
    let bytes = std::fs::read(&model).unwrap();
    let crc = ModelFile::parse(&bytes).unwrap().crc();
    let l = line(&log, &["model", "verified:"]);
    assert_eq!(hex_bits(kv(l, "crc")), crc);
    assert_eq!(hex_bits(kv(l, "params_crc")), params_crc(&params));

    // (b) Predictions, bit for bit.
    let samples_bytes = dataset("samples");
    let samples = Dataset::parse(&samples_bytes).unwrap();
    let (mut x, mut work) = (vec![0.0; SEQ_LEN], vec![0.0; FORWARD_WORK]);
    let probs_lines = lines(&log, &["probs"]);
    assert_eq!(probs_lines.len(), samples.len(), "one probs line per sample");
    for (i, l) in probs_lines.iter().enumerate() {
        assert_eq!(kv(l, "sample"), i.to_string());
        samples.read(i, &mut x);
        let mut host = [0.0f32; CLASSES];
        predict(&params, &x, &mut work, &mut host).unwrap();
        let device: Vec<u32> = kv(l, "bits").split(',').map(hex_bits).collect();
        let host: Vec<u32> = host.iter().map(|p| p.to_bits()).collect();
        assert_eq!(device, host, "sample {i}: device probabilities differ from the host's");
    }

    // (c) Streaming equals the full forward (on the device, and against the host's bits).
    let l = line(&log, &["stream", "sample=0"]);
    assert_eq!(kv(l, "equal_to_full_forward"), "true", "{l}");
    samples.read(0, &mut x);
    let mut full = [0.0f32; CLASSES];
    predict(&params, &x, &mut work, &mut full).unwrap();
    let streamed: Vec<u32> =
        kv(line(&log, &["streamed", "sample=0"]), "bits").split(',').map(hex_bits).collect();
    assert_eq!(streamed, full.iter().map(|p| p.to_bits()).collect::<Vec<_>>());

    // (d) Fine-tuning, replayed on the host.
    let (tb, vb) = (dataset("field_train"), dataset("field_valid"));
    let ft = Dataset::parse(&tb).unwrap();
    let (train, valid) = (View::clean(ft), View::clean(Dataset::parse(&vb).unwrap()));
    let initial = [score_full(&params, &train), score_full(&params, &valid)];
    check_score(&log, "deployed", "clean", "train", "initial", &initial[0]);
    check_score(&log, "deployed", "clean", "valid", "initial", &initial[1]);

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

    // (e) Poisoned updates roll back and leave the parameters as they were.
    let (a, b) = check_result(&log, "full", "poisoned-nan", "rollback", "non-finite");
    assert_eq!((a, b), (committed, committed));
    let (a, b) = check_result(&log, "head", "poisoned-labels", "rollback", "worse-validation");
    assert_eq!((a, b), (committed, committed));
    let wrong = View { data: ft, poison: Poison::Mislabel };
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

#[test]
fn corrupt_model_fails_at_boot() {
    if !prerequisites("corrupt_model_fails_at_boot") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = make_model(dir.path());
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
fn model_of_another_spec_does_not_compile() {
    if !prerequisites_for("model_of_another_spec_does_not_compile", false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let other = Spec::channels(3).lstm(8).dense(4, Head::Softmax);
    let params = vec![0.01f32; other.param_count()];
    let model = dir.path().join("other.tlm");
    write_model(&model, &other, &params);
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
    let (model, _) = make_model(dir.path());
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
