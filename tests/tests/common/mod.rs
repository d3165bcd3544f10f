//! Helpers shared by the integration tests: tolerances, JSON array flattening, and the
//! `tinylstm` binary.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `tinylstm` binary, built once per test executable with the tests' own profile (`cargo
/// build --profile test -p tinylstm-cli --bin tinylstm`, up to date after the first time), so
/// the binary and the test code always come from the same sources.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "--profile",
                "test",
                "-p",
                "tinylstm-cli",
                "--bin",
                "tinylstm",
            ])
            .status()
            .expect("run cargo build for the tinylstm binary");
        assert!(status.success(), "building the tinylstm binary failed");
        // Test executables live in target/<profile dir>/deps; the binary one level up.
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap();
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
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}
