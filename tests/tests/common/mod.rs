//! Helpers shared by the integration tests: tolerances, JSON array flattening, and the
//! `tinylstm` binary.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Whether the tests run under CI (`CI` set and not `false`/`0`/empty): there, a test whose
/// data or tool is missing fails instead of skipping.
pub fn under_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"),
        Err(_) => false,
    }
}

/// A test (or part of one) cannot run because `what` is missing: under CI ([`under_ci`]) this
/// panics, so the test fails rather than passing hollow; elsewhere it prints
/// `SKIPPED <test>: <what>` straight to stderr (past the harness's output capture, so it is
/// always seen) and returns, and the caller skips that part.
pub fn missing(test: &str, what: &str) {
    if under_ci() {
        panic!("{test}: {what}; CI must provide it (.ci/run installs it)");
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {what}");
}

/// The shared datasets folder (`TINYLSTM_DATASETS`), or `None` after [`missing`] (which fails
/// the test under CI).
pub fn datasets(test: &str) -> Option<PathBuf> {
    match std::env::var_os("TINYLSTM_DATASETS") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            missing(
                test,
                "TINYLSTM_DATASETS is not set (point it at the shared datasets folder, e.g. \
                 ../shared/datasets; .ci/run does)",
            );
            None
        }
    }
}

/// The `tinylstm` binary, built once per test executable with the tests' own profile, so the
/// binary and the test code always come from the same sources and `cargo test --release` finds
/// it too. Test executables live in `<target>/<profile folder>/deps`; the binary is built into
/// `<target>/<profile folder>` with the profile that folder belongs to (`debug` is the `test`
/// profile's folder, every other folder is named after its profile).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        let profile = if folder == "debug" { "test".to_string() } else { folder };
        let target_dir = dir.parent().unwrap();
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--quiet", "--profile", &profile, "-p", "tinylstm-cli"])
            .args(["--bin", "tinylstm", "--target-dir"])
            .arg(target_dir)
            .status()
            .expect("run cargo build for the tinylstm binary");
        assert!(status.success(), "building the tinylstm binary failed");
        let bin = dir.join(format!("tinylstm{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "{} not found", bin.display());
        bin
    })
}

/// Runs the `tinylstm` binary with `args`.
pub fn run(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().expect("run tinylstm")
}

/// Runs the `tinylstm` binary, which must succeed (else panics with its output); returns its
/// stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "tinylstm {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `|a − b| ≤ abs + rel·|b|`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

/// The Keras parity bound (see tests/fixtures/keras/README.md): an independent float32
/// implementation agrees with every reference value within it, the largest difference seen
/// being under 2e-6, so a failure at this bound is a real semantic difference.
pub const KERAS: Tolerance = Tolerance { abs: 1e-5, rel: 1e-4 };

/// Largest error seen, as the ratio of `|a − b|` to the allowed bound, plus the largest
/// relative error among values of magnitude ≥ 1e-3.
#[derive(Clone, Copy, Debug, Default)]
pub struct Worst {
    pub bound_ratio: f64,
    pub rel: f64,
    pub abs: f64,
}

impl Worst {
    pub fn merge(&mut self, o: Worst) {
        self.bound_ratio = self.bound_ratio.max(o.bound_ratio);
        self.rel = self.rel.max(o.rel);
        self.abs = self.abs.max(o.abs);
    }
}

/// Asserts every element is within `tol`, naming the first offender; returns the worst errors.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: Tolerance) -> Worst {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: length {} vs {}",
        actual.len(),
        expected.len()
    );
    let mut worst = Worst::default();
    for (i, (&a, &b)) in actual.iter().zip(expected).enumerate() {
        let (a, b) = (a as f64, b as f64);
        let err = (a - b).abs();
        let bound = tol.abs + tol.rel * b.abs();
        assert!(
            err <= bound && a.is_finite() == b.is_finite(),
            "{what}[{i}]: got {a:e}, expected {b:e}, |diff| {err:e} > bound {bound:e}"
        );
        worst.bound_ratio = worst.bound_ratio.max(err / bound);
        worst.abs = worst.abs.max(err);
        if b.abs() >= 1e-3 {
            worst.rel = worst.rel.max(err / b.abs());
        }
    }
    worst
}

/// Flattens a nested JSON array of numbers in row-major order.
pub fn flat(v: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    fn go(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| go(x, out)),
            Value::Number(n) => out.push(n.as_f64().expect("number") as f32),
            other => panic!("not a number: {other}"),
        }
    }
    go(v, &mut out);
    out
}

/// Flattens a list of tensors (Keras `get_weights()`) into one flat parameter buffer.
pub fn flat_all(v: &Value) -> Vec<f32> {
    v.as_array().expect("list of tensors").iter().flat_map(flat).collect()
}

/// A JSON integer field.
pub fn int(v: &Value, key: &str) -> usize {
    v[key].as_u64().unwrap_or_else(|| panic!("field {key} is not an integer")) as usize
}

/// Batch-major `[B][T][W]` → time-major `[T][B][W]`.
pub fn to_time_major(x: &[f32], b: usize, t: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for ti in 0..t {
            out[(ti * b + bi) * w..(ti * b + bi + 1) * w]
                .copy_from_slice(&x[(bi * t + ti) * w..(bi * t + ti + 1) * w]);
        }
    }
    out
}

/// Time-major `[T][B][W]` → batch-major `[B][T][W]`.
pub fn to_batch_major(x: &[f32], b: usize, t: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for ti in 0..t {
            out[(bi * t + ti) * w..(bi * t + ti + 1) * w]
                .copy_from_slice(&x[(ti * b + bi) * w..(ti * b + bi + 1) * w]);
        }
    }
    out
}

/// A `.npy` 1.0 member with this header dict text (padded to 64 bytes as NumPy pads) and data.
pub fn npy_raw(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}
