//! Exports (Rust source, C header, JSON) and the Keras npz import/export of
//! `tinylstm_cli::export`.
//!
//! * npz: bit-exact round trips over token and channel specs with 1–3 layers (and a property
//!   test over random shapes and bit patterns); the members checked byte for byte with an
//!   independent zip/npy parser; the Keras reference weights (`seed_model_adam`,
//!   `multiclass_adam`) written by an independent test-only npz writer — stored, deflated,
//!   float64, big-endian, Fortran order, keyword names — import to the flattened fixture
//!   weights, which proves the flat layout is Keras's; every malformed input gives a specific
//!   error and never a panic.
//! * NumPy itself (when `python3` — or `$TINYLSTM_PYTHON` — can `import numpy`): loads what the
//!   writer wrote, and writes `savez`/`savez_compressed` files the reader reads. Without NumPy
//!   that part prints why it was skipped; nothing here requires Python.
//! * The generated Rust file is built and run by cargo (offline, in its own target directory
//!   `target/export-check`, reusing the compiled core from the second run on) and must print
//!   the exported bits; its numbers are also parsed back here.
//! * The generated C header is compiled with `$CC`, `cc`, `gcc` or `clang` (when one exists;
//!   otherwise the test says it skipped that part) under `-std=c99 -Wall -Wextra -Wpedantic
//!   -Werror`, and the program prints every float's bits; the hex constants are also parsed
//!   back here.
//! * JSON: Keras names, shapes and values; `write_atomic` semantics.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use proptest::prelude::*;
use serde_json::Value;
use tinylstm::{Head, Spec};
use tinylstm_cli::export::{self, ExportError};
use tinylstm_cli::files;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Specs covering token and channel input, 1–3 layers and every head; the last has 12
/// tensors, so `arr_10`/`arr_11` test the numeric member order.
fn specs() -> Vec<Spec> {
    vec![
        Spec::tokens(50, 8).lstm(16).dense(1, Head::Sigmoid),
        Spec::tokens(7, 3).lstm(5).lstm(4).dense(3, Head::Softmax),
        Spec::channels(6).lstm(8).dense(1, Head::Linear),
        Spec::channels(3).lstm(6).lstm(5).lstm(4).dense(2, Head::Softmax),
        Spec::tokens(11, 2).lstm(3).lstm(4).lstm(2).dense(1, Head::Sigmoid),
    ]
}

/// Deterministic pseudo-random finite values with awkward ones mixed in: ±0, subnormals, the
/// extremes, values near π and e (clippy's `approx_constant`), long decimals.
fn finite_params(spec: &Spec, seed: u64) -> Vec<f32> {
    let specials = [
        -0.0f32,
        0.0,
        f32::from_bits(1),
        -f32::from_bits(0x007f_ffff),
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        std::f32::consts::PI,
        std::f32::consts::E,
        1.0 / 3.0,
        0.1,
        16_777_217.0,
        1e-40,
        -3.4e38,
        f32::EPSILON,
    ];
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..spec.param_count())
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 7 == 3 {
                specials[(state % specials.len() as u64) as usize]
            } else {
                // Uniform in (-1, 1) with full mantissas, sometimes scaled far out.
                let u = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                let scale = [1.0f32, 1e-3, 1e3, 1e-30, 1e30][(state % 5) as usize];
                u * scale
            }
        })
        .collect()
}

/// `finite_params` plus NaNs (with payloads and sign) and infinities.
fn params_with_non_finite(spec: &Spec, seed: u64) -> Vec<f32> {
    let mut p = finite_params(spec, seed);
    let odd = [
        f32::NAN,
        f32::from_bits(0x7fc0_1234),
        f32::from_bits(0xffa0_0001),
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let n = p.len();
    for (k, v) in odd.iter().enumerate() {
        p[(k * 7919 + 5) % n] = *v;
    }
    p
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{what}[{i}]: got {g:e} ({:08x}), want {w:e} ({:08x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The Keras shape of every tensor of a spec.
fn shapes(spec: &Spec) -> Vec<Vec<usize>> {
    spec.tensors().map(|t| export::keras_shape(&t)).collect()
}

// ---------------------------------------------------------------------------------------------
// An independent, test-only npy/zip writer and zip reader
// ---------------------------------------------------------------------------------------------

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

fn py_tuple(shape: &[u64]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

fn npy(descr: &str, fortran: bool, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let f = if fortran { "True" } else { "False" };
    common::npy_raw(
        &format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {}, }}", py_tuple(shape)),
        data,
    )
}

/// How an array is encoded by [`encode`].
#[derive(Clone, Copy, Debug)]
struct Enc {
    f64: bool,
    big: bool,
    fortran: bool,
}

const PLAIN: Enc = Enc { f64: false, big: false, fortran: false };

/// A row-major tensor as `.npy` bytes in the given encoding.
fn encode(values: &[f32], shape: &[usize], enc: Enc) -> Vec<u8> {
    let order: Vec<f32> = if enc.fortran && shape.len() == 2 {
        let (r, c) = (shape[0], shape[1]);
        (0..r * c).map(|k| values[(k % r) * c + k / r]).collect()
    } else {
        values.to_vec()
    };
    let mut data = Vec::new();
    for &x in &order {
        match (enc.f64, enc.big) {
            (false, false) => data.extend_from_slice(&x.to_le_bytes()),
            (false, true) => data.extend_from_slice(&x.to_be_bytes()),
            (true, false) => data.extend_from_slice(&f64::from(x).to_le_bytes()),
            (true, true) => data.extend_from_slice(&f64::from(x).to_be_bytes()),
        }
    }
    let descr = format!("{}f{}", if enc.big { '>' } else { '<' }, if enc.f64 { 8 } else { 4 });
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    npy(&descr, enc.fortran, &shape, &data)
}

/// One zip member for [`zip`].
struct Member {
    name: String,
    data: Vec<u8>,
    /// Compression method: 0 stored, 8 deflate (written as stored deflate blocks), other
    /// values are written as stored data under that method number.
    method: u16,
    /// Override of the CRC-32 written in the headers.
    crc: Option<u32>,
    /// Override of the uncompressed size written in the headers.
    size: Option<u32>,
}

fn member(name: &str, data: Vec<u8>) -> Member {
    Member { name: name.to_string(), data, method: 0, crc: None, size: None }
}

/// Raw DEFLATE made of stored blocks (BTYPE 00): valid `savez_compressed`-style method 8
/// without a compressor.
fn deflate_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> =
        if data.is_empty() { vec![&[]] } else { data.chunks(65_535).collect() };
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// A zip archive (no zip64, no data descriptors), written independently of the `zip` crate.
fn zip(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for m in members {
        let stored = if m.method == 8 { deflate_stored(&m.data) } else { m.data.clone() };
        let crc = m.crc.unwrap_or_else(|| CRC32.checksum(&m.data));
        let size = m.size.unwrap_or(m.data.len() as u32);
        let offset = out.len() as u32;
        let name = m.name.as_bytes();
        let mut fields = Vec::new();
        fields.extend_from_slice(&m.method.to_le_bytes());
        fields.extend_from_slice(&0u16.to_le_bytes()); // time
        fields.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
        fields.extend_from_slice(&crc.to_le_bytes());
        fields.extend_from_slice(&(stored.len() as u32).to_le_bytes());
        fields.extend_from_slice(&size.to_le_bytes());
        fields.extend_from_slice(&(name.len() as u16).to_le_bytes());
        fields.extend_from_slice(&0u16.to_le_bytes()); // extra length
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&fields);
        out.extend_from_slice(name);
        out.extend_from_slice(&stored);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by
        central.extend_from_slice(&20u16.to_le_bytes()); // needed
        central.extend_from_slice(&0u16.to_le_bytes()); // flags
        central.extend_from_slice(&fields);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// An npz of `tensors` (row-major values with shapes) named `names`.
fn npz_of(tensors: &[(Vec<f32>, Vec<usize>)], names: &[String], enc: Enc, method: u16) -> Vec<u8> {
    let members: Vec<Member> = tensors
        .iter()
        .zip(names)
        .map(|((v, s), n)| Member { method, ..member(n, encode(v, s, enc)) })
        .collect();
    zip(&members)
}

fn arr_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("arr_{i}.npy")).collect()
}

/// Splits a flat buffer into its tensors with their Keras shapes.
fn split(spec: &Spec, params: &[f32]) -> Vec<(Vec<f32>, Vec<usize>)> {
    spec.tensors().map(|t| (params[t.range()].to_vec(), export::keras_shape(&t))).collect()
}

fn u16_at(b: &[u8], i: usize) -> usize {
    u16::from_le_bytes([b[i], b[i + 1]]) as usize
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The members of a zip written without zip64 sizes, read through the central directory:
/// (name, method, stored bytes, CRC-32 recorded).
fn unzip(b: &[u8]) -> Vec<(String, u16, Vec<u8>, u32)> {
    let eocd = (0..=b.len() - 22).rev().find(|&i| u32_at(b, i) == 0x0605_4b50).expect("EOCD");
    let count = u16_at(b, eocd + 10);
    let mut p = u32_at(b, eocd + 16) as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        assert_eq!(u32_at(b, p), 0x0201_4b50, "central header");
        let method = u16_at(b, p + 10) as u16;
        let crc = u32_at(b, p + 16);
        let csize = u32_at(b, p + 20) as usize;
        let (nlen, xlen, clen) = (u16_at(b, p + 28), u16_at(b, p + 30), u16_at(b, p + 32));
        let local = u32_at(b, p + 42) as usize;
        let name = String::from_utf8(b[p + 46..p + 46 + nlen].to_vec()).expect("utf-8 name");
        assert_eq!(u32_at(b, local), 0x0403_4b50, "local header of {name}");
        let start = local + 30 + u16_at(b, local + 26) + u16_at(b, local + 28);
        out.push((name, method, b[start..start + csize].to_vec(), crc));
        p += 46 + nlen + xlen + clen;
    }
    out
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

// ---------------------------------------------------------------------------------------------
// npz round trips and layout
// ---------------------------------------------------------------------------------------------

#[test]
fn npz_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    for (k, spec) in specs().iter().enumerate() {
        for params in [finite_params(spec, k as u64), params_with_non_finite(spec, k as u64 + 100)]
        {
            let path = dir.path().join(format!("m{k}.npz"));
            export::write_keras_npz(&path, spec, &params).unwrap();
            let back = export::read_keras_npz(&path, spec).unwrap();
            assert_bits_eq(&format!("spec {k}"), &back, &params);
        }
    }
    // Only the npz files are left: no temporary files.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".npz")), "{names:?}");
}

#[test]
fn npz_members_are_what_numpy_savez_writes() {
    let dir = tempfile::tempdir().unwrap();
    for (k, spec) in specs().iter().enumerate() {
        let params = finite_params(spec, 7 + k as u64);
        let path = dir.path().join("w.npz");
        export::write_keras_npz(&path, spec, &params).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let members = unzip(&bytes);
        assert_eq!(members.len(), spec.tensor_count());
        for (i, ((name, method, data, crc), t)) in members.iter().zip(spec.tensors()).enumerate() {
            assert_eq!(name, &format!("arr_{i}.npy"));
            assert_eq!(*method, 0, "{name}: numpy.savez stores members uncompressed");
            assert_eq!(*crc, CRC32.checksum(data), "{name}: CRC-32");
            // The header NumPy 2 writes, byte for byte (dict, growth spaces, 64-byte padding).
            let shape = export::keras_shape(&t);
            let dict = format!(
                "{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}",
                py_tuple(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
            );
            let mut header = dict.clone();
            header.push_str(&" ".repeat(21 - shape[0].to_string().len()));
            while (10 + header.len() + 1) % 64 != 0 {
                header.push(' ');
            }
            header.push('\n');
            assert_eq!(&data[..8], b"\x93NUMPY\x01\x00", "{name}: magic and version 1.0");
            assert_eq!(u16_at(data, 8), header.len(), "{name}: header length");
            assert_eq!(&data[10..10 + header.len()], header.as_bytes(), "{name}: header");
            let body = &data[10 + header.len()..];
            let expected: Vec<u8> =
                params[t.range()].iter().flat_map(|x| x.to_le_bytes()).collect();
            assert_eq!(body, &expected[..], "{name}: little-endian float32 data, C order");
        }
    }
}

/// The Keras reference weights, written as an npz by the test-only writer in many encodings,
/// import to the flattened fixture weights: the flat layout is Keras's `get_weights()` one.
#[test]
fn keras_reference_weights_import_into_the_flat_layout() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = workspace_root().join("tests/fixtures/keras");
    for (file, spec_of) in [
        (
            "seed_model_adam.json",
            (|v: &Value| {
                let i = |k| common::int(v, k);
                Spec::tokens(i("V"), i("E")).lstm(i("H1")).lstm(i("H2")).dense(1, Head::Sigmoid)
            }) as fn(&Value) -> Spec,
        ),
        (
            "multiclass_adam.json",
            (|v: &Value| {
                let i = |k| common::int(v, k);
                Spec::channels(i("C")).lstm(i("H")).dense(i("K"), Head::Softmax)
            }) as fn(&Value) -> Spec,
        ),
    ] {
        let text = std::fs::read_to_string(fixtures.join(file)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let spec = spec_of(&v);
        spec.validate().unwrap();
        let weights = v["weights"].as_array().unwrap();
        // Each tensor with the shape of its nested JSON array (Keras's own shape).
        let tensors: Vec<(Vec<f32>, Vec<usize>)> = weights
            .iter()
            .map(|w| {
                let mut shape = Vec::new();
                let mut x = w;
                while let Some(a) = x.as_array() {
                    shape.push(a.len());
                    x = &a[0];
                }
                (common::flat(w), shape)
            })
            .collect();
        assert_eq!(
            tensors.iter().map(|t| t.1.clone()).collect::<Vec<_>>(),
            shapes(&spec),
            "{file}: the fixture's shapes are the spec's Keras shapes"
        );
        let names: Vec<&str> =
            v["weight_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        let ours = export::keras_weight_names(&spec);
        for (theirs, ours) in names.iter().zip(&ours) {
            // `lstm_3/lstm_cell/kernel:0` vs `lstm/lstm_cell/kernel`: same layer type and weight.
            let strip = |s: &str| {
                let s = s.trim_end_matches(":0");
                let (layer, rest) = s.split_once('/').unwrap();
                (layer.split('_').next().unwrap().to_string(), rest.to_string())
            };
            assert_eq!(strip(theirs), strip(ours), "{file}: tensor names");
        }
        let flat = common::flat_all(&v["weights"]);
        let n = tensors.len();
        let cases: Vec<(&str, Vec<String>, Enc, u16)> = vec![
            ("savez", arr_names(n), PLAIN, 0),
            ("savez_compressed", arr_names(n), PLAIN, 8),
            ("float64", arr_names(n), Enc { f64: true, ..PLAIN }, 0),
            ("big-endian float32", arr_names(n), Enc { big: true, ..PLAIN }, 0),
            ("big-endian float64", arr_names(n), Enc { f64: true, big: true, fortran: false }, 8),
            ("fortran order", arr_names(n), Enc { fortran: true, ..PLAIN }, 0),
            ("keyword names", (0..n).map(|i| format!("w{i:02}.npy")).collect(), PLAIN, 0),
        ];
        for (what, names, enc, method) in cases {
            let path = write_file(dir.path(), "k.npz", &npz_of(&tensors, &names, enc, method));
            let got = export::read_keras_npz(&path, &spec)
                .unwrap_or_else(|e| panic!("{file} ({what}): {e}"));
            assert_bits_eq(&format!("{file} ({what})"), &got, &flat);
        }
        // Members stored in reverse order in the archive: the names decide the order.
        let mut members: Vec<Member> = tensors
            .iter()
            .enumerate()
            .map(|(i, (val, s))| member(&format!("arr_{i}.npy"), encode(val, s, PLAIN)))
            .collect();
        members.reverse();
        let path = write_file(dir.path(), "rev.npz", &zip(&members));
        assert_bits_eq(file, &export::read_keras_npz(&path, &spec).unwrap(), &flat);
        // And our writer gives the same flat buffer back.
        export::write_keras_npz(&path, &spec, &flat).unwrap();
        assert_bits_eq(file, &export::read_keras_npz(&path, &spec).unwrap(), &flat);
    }
}

#[test]
fn member_order_is_natural_with_more_than_ten_arrays() {
    let spec = specs()[4]; // 12 tensors
    assert_eq!(spec.tensor_count(), 12);
    let params = finite_params(&spec, 3);
    let dir = tempfile::tempdir().unwrap();
    // Keyword names without zero padding (w0 … w11): natural order, not byte order.
    let names: Vec<String> = (0..12).map(|i| format!("w{i}.npy")).collect();
    let path = write_file(dir.path(), "k.npz", &npz_of(&split(&spec, &params), &names, PLAIN, 0));
    assert_bits_eq("w0..w11", &export::read_keras_npz(&path, &spec).unwrap(), &params);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random token/channel specs with 1–3 layers and arbitrary bit patterns (NaNs and
    /// subnormals included) survive write → read bit for bit.
    #[test]
    fn npz_round_trip_random(
        tokens in any::<bool>(),
        width in 1usize..6,
        vocab in 1usize..9,
        units in proptest::collection::vec(1usize..6, 1..=3),
        outputs in 2usize..5,
        seed in any::<u64>(),
    ) {
        let mut spec = if tokens { Spec::tokens(vocab, width) } else { Spec::channels(width) };
        for &u in &units {
            spec = spec.lstm(u);
        }
        let spec = spec.dense(outputs, Head::Softmax);
        let mut state = seed | 1;
        let params: Vec<f32> = (0..spec.param_count())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                f32::from_bits(state as u32)
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.npz");
        export::write_keras_npz(&path, &spec, &params).unwrap();
        let back = export::read_keras_npz(&path, &spec).unwrap();
        prop_assert_eq!(bits(&back), bits(&params));
    }
}

// ---------------------------------------------------------------------------------------------
// npz import errors
// ---------------------------------------------------------------------------------------------

/// Reads, expecting an error whose message contains every fragment; returns the error.
fn read_err(path: &Path, spec: &Spec, fragments: &[&str]) -> ExportError {
    let e = match export::read_keras_npz(path, spec) {
        Ok(_) => panic!("{}: read succeeded, expected an error with {fragments:?}", path.display()),
        Err(e) => e,
    };
    let msg = e.to_string();
    println!("{msg}");
    for f in fragments {
        assert!(msg.contains(f), "error {msg:?} does not contain {f:?}");
    }
    assert!(msg.contains(&path.display().to_string()) || matches!(e, ExportError::Spec(_)));
    e
}

#[test]
fn import_errors_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, Head::Sigmoid);
    let params = finite_params(&spec, 11);
    let tensors = split(&spec, &params);
    let good: Vec<Vec<u8>> = tensors.iter().map(|(v, s)| encode(v, s, PLAIN)).collect();
    let with = |i: usize, bytes: Vec<u8>| -> Vec<Member> {
        good.iter()
            .enumerate()
            .map(|(k, g)| {
                member(&format!("arr_{k}.npy"), if k == i { bytes.clone() } else { g.clone() })
            })
            .collect()
    };
    let file = |name: &str, members: &[Member]| write_file(dir.path(), name, &zip(members));

    // Wrong shape: lstm/lstm_cell/bias is (64,), give (16,).
    let p = file("shape.npz", &with(3, npy("<f4", false, &[16], &[0; 64])));
    let e = read_err(
        &p,
        &spec,
        &["arr_3.npy: shape (16,) but the spec needs (64,) for lstm/lstm_cell/bias"],
    );
    assert!(matches!(e, ExportError::Shape { .. }), "{e:?}");
    // Transposed kernel: (64, 8) for (8, 64).
    let p = file("transposed.npz", &with(1, npy("<f4", false, &[64, 8], &[0; 2048])));
    read_err(
        &p,
        &spec,
        &["arr_1.npy: shape (64, 8) but the spec needs (8, 64) for lstm/lstm_cell/kernel"],
    );
    // A bias given as a (1, 64) matrix.
    let p = file("rank.npz", &with(3, npy("<f4", false, &[1, 64], &[0; 256])));
    read_err(&p, &spec, &["shape (1, 64) but the spec needs (64,)"]);

    // Huge declared shape: rejected by shape before any allocation or read.
    let p = file("huge.npz", &with(0, npy("<f4", false, &[1 << 40, 1 << 40], &[0; 16])));
    let e = read_err(&p, &spec, &["arr_0.npy: shape (1099511627776, 1099511627776)", "(50, 8)"]);
    assert!(matches!(e, ExportError::Shape { .. }));
    let p = file(
        "overflow.npz",
        &with(
            0,
            common::npy_raw(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 8), }",
                &[],
            ),
        ),
    );
    let e = read_err(&p, &spec, &["arr_0.npy", "does not fit 64 bits"]);
    assert!(matches!(e, ExportError::Npy { .. }));

    // Wrong dtypes.
    for descr in ["<i4", "<f2", "|u1", "<c8", "float32"] {
        let p = file("dtype.npz", &with(7, npy(descr, false, &[8, 1], &[0; 32])));
        let e = read_err(&p, &spec, &["arr_7.npy: dtype", descr, "dense/kernel", "'<f4'"]);
        assert!(matches!(e, ExportError::Dtype { .. }), "{descr}: {e:?}");
    }
    let p = file(
        "structured.npz",
        &with(
            8,
            common::npy_raw(
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                &[0; 4],
            ),
        ),
    );
    read_err(&p, &spec, &["arr_8.npy: dtype [('a', '<f4')]", "dense/bias"]);

    // Missing and extra arrays.
    let mut m = with(usize::MAX, vec![]);
    m.pop();
    let p = file("missing.npz", &m);
    let e = read_err(
        &p,
        &spec,
        &["8 arrays, but the spec needs 9", "missing arr_8.npy (dense/bias (1,))"],
    );
    assert!(matches!(e, ExportError::Arrays { .. }));
    let mut m = with(usize::MAX, vec![]);
    m.push(member("arr_9.npy", npy("<f4", false, &[1], &[0; 4])));
    let p = file("extra.npz", &m);
    read_err(&p, &spec, &["10 arrays, but the spec needs 9", "unexpected arr_9.npy"]);
    let mut m = with(usize::MAX, vec![]);
    m[4].name = "arr_12.npy".into();
    let p = file("gap.npz", &m);
    read_err(
        &p,
        &spec,
        &["missing arr_4.npy (lstm_1/lstm_cell/kernel (16, 32))", "unexpected arr_12.npy"],
    );
    let m: Vec<Member> = good
        .iter()
        .take(5)
        .enumerate()
        .map(|(k, g)| member(&format!("w{k}.npy"), g.clone()))
        .collect();
    let p = file("kw_missing.npz", &m);
    read_err(
        &p,
        &spec,
        &[
            "5 arrays, but the spec needs 9",
            "missing lstm_1/lstm_cell/recurrent_kernel (8, 32)",
            "w0.npy",
        ],
    );
    let p = file("empty_zip.npz", &[]);
    read_err(
        &p,
        &spec,
        &["0 arrays, but the spec needs 9", "missing arr_0.npy (embedding/embeddings (50, 8))"],
    );

    // Not a zip, empty file, missing file.
    let p = write_file(dir.path(), "text.npz", b"label,text\n1,hello\n");
    assert!(matches!(
        read_err(&p, &spec, &["not a readable .npz (zip) file"]),
        ExportError::NotZip { .. }
    ));
    let p = write_file(dir.path(), "empty.npz", b"");
    assert!(matches!(read_err(&p, &spec, &["not a readable .npz"]), ExportError::NotZip { .. }));
    let p = write_file(dir.path(), "bare.npz", &good[0]);
    read_err(&p, &spec, &["not a readable .npz"]);
    let p = dir.path().join("nope.npz");
    let e = read_err(&p, &spec, &["nope.npz: cannot open: "]);
    assert!(
        matches!(&e, ExportError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );

    // Truncated zip: every cut of a good file is an error (usually NotZip), never a panic.
    let whole = zip(&with(usize::MAX, vec![]));
    let p = write_file(dir.path(), "cut.npz", &whole[..whole.len() / 2]);
    assert!(matches!(read_err(&p, &spec, &["not a readable .npz"]), ExportError::NotZip { .. }));
    for cut in (0..whole.len()).step_by(97).chain(whole.len() - 30..whole.len()) {
        let p = write_file(dir.path(), "cut.npz", &whole[..cut]);
        assert!(export::read_keras_npz(&p, &spec).is_err(), "cut at {cut}");
    }

    // Member data shorter or longer than the shape needs.
    let short = npy("<f4", false, &[50, 8], &[0; 50 * 8 * 4 - 4]);
    let p = file("short.npz", &with(0, short));
    let e = read_err(&p, &spec, &["arr_0.npy: truncated", "(50, 8)"]);
    assert!(matches!(e, ExportError::Truncated { .. }), "{e:?}");
    let long = npy("<f4", false, &[50, 8], &[0; 50 * 8 * 4 + 3]);
    let p = file("long.npz", &with(0, long));
    let e = read_err(&p, &spec, &["arr_0.npy: the member is 1731 bytes, 3 more than"]);
    assert!(matches!(e, ExportError::TrailingData { .. }), "{e:?}");
    // A deflated member that holds more than it declares.
    let mut m = with(usize::MAX, vec![]);
    let mut data = good[8].clone();
    data.extend_from_slice(&[1, 2, 3, 4]);
    m[8] = Member { method: 8, size: Some(good[8].len() as u32), ..member("arr_8.npy", data) };
    let p = file("liar.npz", &m);
    read_err(&p, &spec, &["arr_8.npy"]);
    // Declared size far larger than the data (a "zip bomb" header): no big allocation.
    let mut m = with(usize::MAX, vec![]);
    m[2].size = Some(u32::MAX);
    let p = file("bomb.npz", &m);
    read_err(&p, &spec, &["arr_2.npy"]);

    // Damaged members: CRC mismatch, unsupported compression, bad magic, version, header.
    let mut m = with(usize::MAX, vec![]);
    m[5].crc = Some(0xdead_beef);
    let p = file("crc.npz", &m);
    let e = read_err(&p, &spec, &["arr_5.npy: cannot be read"]);
    assert!(matches!(e, ExportError::Member { .. }), "{e:?}");
    let mut m = with(usize::MAX, vec![]);
    m[6].method = 12; // bzip2
    let p = file("bzip2.npz", &m);
    assert!(matches!(
        read_err(&p, &spec, &["arr_6.npy: cannot be read"]),
        ExportError::Member { .. }
    ));
    let p = file("magic.npz", &with(2, b"PK\x03\x04 not an array at all".to_vec()));
    let e = read_err(&p, &spec, &["arr_2.npy: not a valid .npy array: bad magic 'PK\\x03\\x04 n'"]);
    assert!(matches!(e, ExportError::Npy { .. }));
    let p = file("tiny.npz", &with(2, b"\x93NUM".to_vec()));
    read_err(&p, &spec, &["arr_2.npy: not a valid .npy array: too short"]);
    let mut v4 = good[2].clone();
    v4[6] = 4;
    let p = file("v4.npz", &with(2, v4));
    read_err(&p, &spec, &["arr_2.npy", "unsupported .npy format version 4.0"]);
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend_from_slice(&u32::MAX.to_le_bytes());
    let p = file("hugeheader.npz", &with(2, v2));
    read_err(&p, &spec, &["arr_2.npy", "header declares 4294967295 bytes"]);
    let deep = "(".repeat(40);
    for (what, dict, fragment) in [
        ("no shape", "{'descr': '<f4', 'fortran_order': False, }", "no 'shape'"),
        (
            "extra key",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (64,), 'x': 1, }",
            "unexpected key 'x'",
        ),
        (
            "bad order",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (64,), }",
            "'fortran_order' is 0",
        ),
        ("not a dict", "[1, 2]", "not a dict"),
        ("garbage", "{'descr': '<f4', 'fortran_order': nope}", "unexpected 'nope"),
        ("deep", deep.as_str(), "nested too deeply"),
        ("unterminated", "{'descr': '<f4", "unterminated string"),
    ] {
        let p = file("header.npz", &with(3, common::npy_raw(dict, &[0; 256])));
        let e = read_err(&p, &spec, &["arr_3.npy: not a valid .npy array", fragment]);
        assert!(matches!(e, ExportError::Npy { .. }), "{what}: {e:?}");
    }

    // float64 values beyond the float32 range.
    let mut big = vec![0u8; 8 * 64];
    big[8 * 5..8 * 6].copy_from_slice(&1e300f64.to_le_bytes());
    let p = file("range.npz", &with(3, npy("<f8", false, &[64], &big)));
    let e = read_err(
        &p,
        &spec,
        &["arr_3.npy: value 1e300 at index 5 of lstm/lstm_cell/bias", "float32"],
    );
    assert!(matches!(e, ExportError::OutOfRange { .. }));

    // Fortran order is accepted and transposed (also for 1-D arrays, where it changes nothing).
    let mut m: Vec<Member> = Vec::new();
    for (k, (v, s)) in tensors.iter().enumerate() {
        m.push(member(&format!("arr_{k}.npy"), encode(v, s, Enc { fortran: true, ..PLAIN })));
    }
    let p = file("fortran.npz", &m);
    assert_bits_eq("fortran", &export::read_keras_npz(&p, &spec).unwrap(), &params);

    // An invalid spec is an error before the file is opened.
    let e =
        export::read_keras_npz(&p, &Spec::channels(0).lstm(4).dense(1, Head::Sigmoid)).unwrap_err();
    assert!(matches!(e, ExportError::Spec(_)), "{e:?}");
    // A file for another spec: the first difference is named.
    let other = Spec::tokens(50, 8).lstm(16).lstm(4).dense(1, Head::Sigmoid);
    read_err(
        &p,
        &other,
        &["arr_4.npy: shape (16, 32) but the spec needs (16, 16) for lstm_1/lstm_cell/kernel"],
    );
}

/// Every single-byte corruption of a small npz is read without a panic (an error, or for bytes
/// that do not matter, such as timestamps, the right values).
#[test]
fn corrupted_npz_never_panics() {
    let spec = Spec::channels(2).lstm(2).dense(2, Head::Softmax);
    let params = finite_params(&spec, 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.npz");
    export::write_keras_npz(&path, &spec, &params).unwrap();
    let good = std::fs::read(&path).unwrap();
    let mut errors = 0;
    for i in 0..good.len() {
        for flip in [0x01u8, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            std::fs::write(&path, &bad).unwrap();
            match export::read_keras_npz(&path, &spec) {
                Err(e) => {
                    errors += 1;
                    assert!(!e.to_string().is_empty());
                }
                Ok(p) => assert_eq!(p.len(), params.len()),
            }
        }
    }
    assert!(errors > good.len(), "most corruptions must be detected ({errors})");
}

#[test]
fn writer_rejects_bad_input_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
    let path = dir.path().join("w.npz");
    let e = export::write_keras_npz(&path, &spec, &[0.0; 3]).unwrap_err();
    assert!(
        matches!(e, ExportError::ParamsLength { expected, actual: 3 } if expected == spec.param_count())
    );
    let e = export::write_keras_npz(
        &dir.path().join("no/such/dir/w.npz"),
        &spec,
        &vec![0.0; spec.param_count()],
    )
    .unwrap_err();
    assert!(
        matches!(e, ExportError::Io { .. })
            && e.to_string().contains("no/such/dir/w.npz: cannot write: "),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// NumPy compatibility (optional: skipped without NumPy)
// ---------------------------------------------------------------------------------------------

/// A Python interpreter that can `import numpy` (`$TINYLSTM_PYTHON` or `python3`), or the reason
/// there is none.
fn python_with_numpy() -> Result<String, String> {
    let python = std::env::var("TINYLSTM_PYTHON").unwrap_or_else(|_| "python3".to_string());
    match Command::new(&python).args(["-c", "import numpy"]).output() {
        Ok(o) if o.status.success() => Ok(python),
        Ok(o) => Err(format!(
            "`{python} -c \"import numpy\"` failed: {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

const NUMPY_READ: &str = r#"
import json, sys
import numpy as np
f = np.load(sys.argv[1])
out = []
for k in sorted(f.files, key=lambda s: int(s[4:])):
    a = f[k]
    out.append({"name": k, "dtype": a.dtype.str, "shape": list(a.shape),
                "bits": [int(x) for x in np.ascontiguousarray(a).view("<u4").ravel()]})
print(json.dumps(out))
"#;

const NUMPY_WRITE: &str = r#"
import json, sys
import numpy as np
spec = json.load(open(sys.argv[1]))
arrays = [np.array(t["bits"], dtype="<u4").view("<f4").reshape(t["shape"]) for t in spec]
np.savez(sys.argv[2], *arrays)
np.savez_compressed(sys.argv[3], *arrays)
np.savez(sys.argv[4], **{"w%02d" % i: a.astype(np.float64) for i, a in enumerate(arrays)})
np.savez(sys.argv[5], *[np.asfortranarray(a.astype(">f4")) for a in arrays])
"#;

#[test]
fn numpy_reads_the_writer_and_writes_for_the_reader() {
    let python = match python_with_numpy() {
        Ok(p) => p,
        Err(why) => {
            common::missing(
                "numpy_reads_the_writer_and_writes_for_the_reader",
                &format!("no NumPy: {why} (pip install numpy; the npz layout is still checked byte by byte against NumPy's format)"),
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    for (k, spec) in specs().iter().enumerate() {
        let params = params_with_non_finite(spec, 40 + k as u64);
        // numpy.load of our file.
        let path = dir.path().join("ours.npz");
        export::write_keras_npz(&path, spec, &params).unwrap();
        let out = Command::new(&python).args(["-c", NUMPY_READ]).arg(&path).output().unwrap();
        assert!(out.status.success(), "numpy: {}", String::from_utf8_lossy(&out.stderr));
        let arrays: Value = serde_json::from_slice(&out.stdout).unwrap();
        let arrays = arrays.as_array().unwrap();
        assert_eq!(arrays.len(), spec.tensor_count());
        for (a, t) in arrays.iter().zip(spec.tensors()) {
            assert_eq!(a["dtype"], "<f4");
            let shape: Vec<usize> = a["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(shape, export::keras_shape(&t), "{}", a["name"]);
            let got: Vec<u32> =
                a["bits"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u32).collect();
            assert_eq!(got, bits(&params[t.range()]), "{}", a["name"]);
        }
        // Our reader on numpy's files: savez, savez_compressed, keyword float64, Fortran >f4.
        let desc: Vec<Value> = spec
            .tensors()
            .map(|t| serde_json::json!({"shape": export::keras_shape(&t), "bits": bits(&params[t.range()])}))
            .collect();
        let desc_path =
            write_file(dir.path(), "desc.json", Value::Array(desc).to_string().as_bytes());
        let files: Vec<PathBuf> = ["np.npz", "npc.npz", "np64.npz", "npf.npz"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        let out = Command::new(&python)
            .args(["-c", NUMPY_WRITE])
            .arg(&desc_path)
            .args(&files)
            .output()
            .unwrap();
        assert!(out.status.success(), "numpy: {}", String::from_utf8_lossy(&out.stderr));
        for f in &files {
            let got = export::read_keras_npz(f, spec).unwrap_or_else(|e| panic!("{e}"));
            // float64 round trip of float32 values is exact (NaN payloads may be quieted by
            // the conversion, so compare NaN-ness there).
            if f.ends_with("np64.npz") {
                for (g, w) in got.iter().zip(&params) {
                    assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()));
                }
            } else {
                assert_bits_eq(&f.display().to_string(), &got, &params);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rust source
// ---------------------------------------------------------------------------------------------

/// The numbers of `PARAMS` in a generated Rust file, parsed back to bits.
fn parse_rust_params(src: &str) -> Vec<u32> {
    let start = src.find("pub static PARAMS").expect("PARAMS");
    let body = &src[start..];
    let body = &body[body.find("= [").unwrap() + 3..body.find("\n];").unwrap()];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//"))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.strip_prefix("f32::from_bits(0x") {
            Some(hex) => u32::from_str_radix(hex.trim_end_matches(')'), 16).unwrap(),
            None => t.parse::<f32>().unwrap_or_else(|e| panic!("{t:?}: {e}")).to_bits(),
        })
        .collect()
}

fn const_value(src: &str, name: &str) -> usize {
    let key = format!("pub const {name}: usize = ");
    let at = src.find(&key).unwrap_or_else(|| panic!("{name} not found")) + key.len();
    src[at..].split(';').next().unwrap().parse().unwrap()
}

#[test]
fn rust_source_has_spec_constants_and_exact_values() {
    let spec = Spec::channels(3).lstm(64).dense(4, Head::Softmax);
    let params = params_with_non_finite(&spec, 1);
    let src = export::rust_source(&spec, &params, "gesture").unwrap();
    assert!(src.contains(
        "pub const SPEC: tinylstm::Spec = tinylstm::Spec::channels(3).lstm(64).dense(4, tinylstm::Head::Softmax);"
    ));
    assert!(src.contains("const _: () = assert!(SPEC.param_count() == PARAM_COUNT);"));
    assert!(src.contains("pub static PARAMS: [f32; PARAM_COUNT] = ["));
    assert!(src.contains("f32::from_bits(0x7fc01234)"));
    assert!(!src.contains("//!"), "usable with include!");
    assert_eq!(const_value(&src, "PARAM_COUNT"), spec.param_count());
    assert_eq!(const_value(&src, "LSTM0_KERNEL_OFFSET"), spec.kernel_offset(0));
    assert_eq!(const_value(&src, "LSTM0_RECURRENT_KERNEL_OFFSET"), spec.recurrent_offset(0));
    assert_eq!(const_value(&src, "LSTM0_BIAS_OFFSET"), spec.bias_offset(0));
    assert_eq!(const_value(&src, "DENSE_KERNEL_OFFSET"), spec.dense_kernel_offset());
    assert_eq!(const_value(&src, "DENSE_BIAS_OFFSET"), spec.dense_bias_offset());
    assert!(!src.contains("EMBEDDING_OFFSET"));
    assert!(src.contains(
        "/// Offset in [`PARAMS`] of `lstm/lstm_cell/recurrent_kernel`, shape `[64][256]`"
    ));
    assert_eq!(parse_rust_params(&src), bits(&params));
    let tok = Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, Head::Sigmoid);
    let src = export::rust_source(&tok, &finite_params(&tok, 2), "m").unwrap();
    assert_eq!(const_value(&src, "EMBEDDING_OFFSET"), 0);
    assert_eq!(const_value(&src, "LSTM1_BIAS_OFFSET"), tok.bias_offset(1));
    assert!(src.contains(
        "tinylstm::Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, tinylstm::Head::Sigmoid)"
    ));

    // Errors: name, buffer length, spec.
    for bad in ["", "1model", "my model", "a-b", "é", &"x".repeat(65)] {
        let e = export::rust_source(&spec, &params, bad).unwrap_err();
        assert!(matches!(e, ExportError::InvalidName { .. }), "{bad:?}: {e:?}");
        assert!(export::c_header(&spec, &params, bad).is_err());
    }
    let e = export::rust_source(&spec, &params[1..], "m").unwrap_err();
    assert!(matches!(e, ExportError::ParamsLength { .. }));
    assert!(e.to_string().contains(&format!(
        "{} values but the spec needs {}",
        params.len() - 1,
        params.len()
    )));
    let e = export::rust_source(&Spec::channels(3).dense(2, Head::Softmax), &[], "m").unwrap_err();
    assert!(matches!(e, ExportError::Spec(_)));
    assert_eq!(export::sanitize_name("gesture-v2.1"), "gesture_v2_1");
}

/// Where the generated-code check builds: its own directory under the workspace's target
/// directory (a nested cargo cannot share the outer build's lock), kept between runs so the
/// core is compiled once.
fn check_target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { workspace_root().join(p) })
        .unwrap_or_else(|| workspace_root().join("target"));
    base.join("export-check")
}

#[test]
fn generated_rust_compiles_against_the_core_and_reproduces_the_bits() {
    let t0 = Instant::now();
    let cases = [
        (
            Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, Head::Sigmoid),
            params_with_non_finite as fn(&Spec, u64) -> Vec<f32>,
        ),
        (
            Spec::channels(3).lstm(6).lstm(5).lstm(4).dense(4, Head::Softmax),
            finite_params as fn(&Spec, u64) -> Vec<f32>,
        ),
        (
            Spec::channels(2).lstm(3).dense(1, Head::Linear),
            params_with_non_finite as fn(&Spec, u64) -> Vec<f32>,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    let core = workspace_root().join("core");
    let manifest = format!(
        "[package]\nname = \"export-check\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [workspace]\n\n[dependencies]\ntinylstm = {{ path = {:?} }}\n",
        core.display().to_string()
    );
    std::fs::write(root.join("Cargo.toml"), manifest).unwrap();
    // The workspace's lock file pins the same dependency versions, which are in the local cache.
    let _ = std::fs::copy(workspace_root().join("Cargo.lock"), root.join("Cargo.lock"));
    // A no_std library holding the generated files (pub, so nothing is dead code), and a
    // binary that prints what the compiled statics hold.
    let mut lib = String::from("#![no_std]\n#![deny(warnings)]\n\n");
    let mut main = String::from("#![deny(warnings)]\n\nuse export_check::*;\n\nfn main() {\n");
    let mut expected = String::new();
    for (k, (spec, make)) in cases.iter().enumerate() {
        let params = make(spec, 60 + k as u64);
        let src = export::rust_source(spec, &params, &format!("model{k}")).unwrap();
        assert_eq!(parse_rust_params(&src), bits(&params), "case {k}: parsed back");
        std::fs::write(root.join(format!("src/m{k}.rs")), &src).unwrap();
        // Case 0 through include!, the others as file modules: both must work.
        if k == 0 {
            lib.push_str("pub mod m0 {\n    include!(\"m0.rs\");\n}\n");
        } else {
            lib.push_str(&format!("pub mod m{k};\n"));
        }
        expected.push_str(&format!("{k} {} {}", spec.param_count(), spec.dense_kernel_offset()));
        for b in bits(&params) {
            expected.push_str(&format!(" {b:08x}"));
        }
        expected.push('\n');
        main.push_str(&format!(
            "    print!(\"{k} {{}} {{}}\", m{k}::PARAM_COUNT, m{k}::DENSE_KERNEL_OFFSET);\n    \
             for x in m{k}::PARAMS.iter() {{\n        print!(\" {{:08x}}\", x.to_bits());\n    }}\n    \
             println!();\n    assert_eq!(m{k}::SPEC.param_count(), m{k}::PARAMS.len());\n"
        ));
    }
    main.push_str("}\n");
    std::fs::write(root.join("src/lib.rs"), lib).unwrap();
    std::fs::write(root.join("src/main.rs"), main).unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(&cargo)
        .args(["run", "--offline", "--quiet", "--target-dir"])
        .arg(check_target_dir())
        .current_dir(root)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "the generated Rust did not build or run:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "bits printed by the compiled file");
    println!("generated Rust built and ran in {:.1} s", t0.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// C header
// ---------------------------------------------------------------------------------------------

/// A C99 hexadecimal float constant as written by `c_header`, parsed back exactly.
fn parse_c_hex(tok: &str) -> f32 {
    let t = tok.strip_suffix('f').expect("f suffix");
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let t = t.strip_prefix("0x").expect("0x");
    let (mant, exp) = t.split_once('p').expect("p");
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let digits = format!("{int}{frac}");
    let m = u64::from_str_radix(&digits, 16).unwrap() as f64;
    let e: i32 = exp.parse().unwrap();
    // Exact: at most 28 significant bits, exponent well inside f64's range.
    let v = (m * 2f64.powi(e - 4 * frac.len() as i32)) as f32;
    if neg {
        -v
    } else {
        v
    }
}

fn c_params(header: &str, name: &str) -> Vec<u32> {
    let key = format!("static const float {name}_params[");
    let start = header.find(&key).expect("params array");
    let body = &header[start..];
    let body = &body[body.find("= {").unwrap() + 3..body.find("\n};").unwrap()];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("/*"))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| parse_c_hex(t).to_bits())
        .collect()
}

/// A C compiler: `$CC`, `cc`, `gcc` or `clang`, whichever runs first.
fn c_compiler() -> Result<String, String> {
    let mut candidates: Vec<String> = Vec::new();
    if let Ok(cc) = std::env::var("CC") {
        candidates.push(cc);
    }
    candidates.extend(["cc", "gcc", "clang"].map(String::from));
    for c in &candidates {
        if Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Ok(c.clone());
        }
    }
    Err(format!("no C compiler found (tried {})", candidates.join(", ")))
}

#[test]
fn c_header_compiles_and_reproduces_the_bits() {
    let cases = [
        (Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, Head::Sigmoid), "seed"),
        (Spec::channels(3).lstm(6).lstm(5).lstm(4).dense(4, Head::Softmax), "Gesture_v2"),
        (Spec::channels(6).lstm(8).dense(1, Head::Linear), "reg"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let compiler = c_compiler();
    if let Err(why) = &compiler {
        common::missing(
            "c_header_compiles_and_reproduces_the_bits",
            &format!("{why}; the header's constants are still parsed back here"),
        );
    }
    for (k, (spec, name)) in cases.iter().enumerate() {
        let params = finite_params(spec, 80 + k as u64);
        let h = export::c_header(spec, &params, name).unwrap();
        let up = name.to_ascii_uppercase();
        assert!(h.contains(&format!("#ifndef TINYLSTM_{up}_H\n#define TINYLSTM_{up}_H")));
        assert!(h.contains("#include <stdint.h>"));
        assert!(h.contains(&format!("#define {up}_PARAM_COUNT {}\n", spec.param_count())));
        assert!(h.contains(&format!("#define {up}_LAYERS {}\n", spec.layers)));
        assert!(
            h.contains(&format!("#define {up}_DENSE_BIAS_OFFSET {} ", spec.dense_bias_offset()))
        );
        assert_eq!(c_params(&h, name), bits(&params), "{name}: hex constants parsed back");
        let Ok(cc) = &compiler else { continue };

        let header = write_file(dir.path(), &format!("{name}.h"), h.as_bytes());
        let mut prog = format!(
            "#include <stdio.h>\n#include <string.h>\n#include \"{}\"\n\nint main(void) {{\n",
            header.file_name().unwrap().to_string_lossy()
        );
        let mut expected = String::new();
        // Spec macros.
        prog.push_str(&format!(
            "    printf(\"%d %d %d %d %d %d %d %d\\n\", {up}_INPUT_KIND, {up}_VOCAB, {up}_EMBEDDING_DIM, \
             {up}_CHANNELS, {up}_INPUT_WIDTH, {up}_LAYERS, {up}_OUTPUTS, {up}_HEAD);\n"
        ));
        let (kind, vocab, embed, channels) = match spec.input {
            tinylstm::InputKind::Tokens { vocab, embed } => (0, vocab, embed, 0),
            tinylstm::InputKind::Channels(c) => (1, 0, 0, c),
        };
        let head = match spec.head {
            Head::Sigmoid => 0,
            Head::Softmax => 1,
            Head::Linear => 2,
        };
        expected.push_str(&format!(
            "{kind} {vocab} {embed} {channels} {} {} {} {head}\n",
            spec.input_width(),
            spec.layers,
            spec.outputs
        ));
        for l in 0..spec.layers {
            prog.push_str(&format!(
                "    printf(\"%d %u\\n\", {up}_UNITS_{l}, (unsigned){name}_units[{l}]);\n"
            ));
            expected.push_str(&format!("{0} {0}\n", spec.units[l]));
            prog.push_str(&format!(
                "    printf(\"%d %d %d\\n\", {up}_LSTM{l}_KERNEL_OFFSET, {up}_LSTM{l}_RECURRENT_KERNEL_OFFSET, {up}_LSTM{l}_BIAS_OFFSET);\n"
            ));
            expected.push_str(&format!(
                "{} {} {}\n",
                spec.kernel_offset(l),
                spec.recurrent_offset(l),
                spec.bias_offset(l)
            ));
        }
        prog.push_str(&format!(
            "    printf(\"%d %d %d\\n\", {up}_PARAM_COUNT, {up}_DENSE_KERNEL_OFFSET, {up}_DENSE_BIAS_OFFSET);\n"
        ));
        expected.push_str(&format!(
            "{} {} {}\n",
            spec.param_count(),
            spec.dense_kernel_offset(),
            spec.dense_bias_offset()
        ));
        prog.push_str(&format!(
            "    for (int i = 0; i < {up}_PARAM_COUNT; i++) {{\n        uint32_t b;\n        \
             memcpy(&b, &{name}_params[i], sizeof b);\n        printf(\"%08x\\n\", (unsigned)b);\n    }}\n    \
             return 0;\n}}\n"
        ));
        for b in bits(&params) {
            expected.push_str(&format!("{b:08x}\n"));
        }
        let src = write_file(dir.path(), &format!("{name}.c"), prog.as_bytes());
        let exe = dir.path().join(format!("{name}.bin"));
        let out = Command::new(cc)
            .args(["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O1", "-o"])
            .arg(&exe)
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cc} failed on {name}.h:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&exe).output().unwrap();
        assert!(run.status.success());
        assert_eq!(String::from_utf8_lossy(&run.stdout), expected, "{name}: values and macros");
    }
}

#[test]
fn c_header_rejects_non_finite_values_by_name() {
    let spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
    let mut params = finite_params(&spec, 9);
    let at = spec.bias_offset(0) + 5;
    params[at] = f32::NAN;
    let e = export::c_header(&spec, &params, "m").unwrap_err();
    assert!(
        matches!(&e, ExportError::NonFinite { tensor, index: 5, flat, .. } if tensor == "lstm/lstm_cell/bias" && *flat == at),
        "{e:?}"
    );
    assert!(e.to_string().contains("lstm/lstm_cell/bias[5]"), "{e}");
    params[at] = f32::NEG_INFINITY;
    assert!(export::c_header(&spec, &params, "m").unwrap_err().to_string().contains("-inf"));
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

#[test]
fn json_has_keras_names_shapes_and_values() {
    let spec = Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, Head::Sigmoid);
    let params = params_with_non_finite(&spec, 21);
    let extra = serde_json::json!({"accuracy": 0.75});
    let v = export::json(&spec, &params, Some(extra.clone()));
    // Through text, as a user would read it.
    let v: Value = serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
    assert_eq!(v["spec"]["input"], "tokens");
    assert_eq!(v["spec"]["vocab"], 50);
    assert_eq!(v["spec"]["embedding_dim"], 8);
    assert_eq!(v["spec"]["units"], serde_json::json!([16, 8]));
    assert_eq!(v["spec"]["head"], "sigmoid");
    assert_eq!(v["spec"]["param_count"], spec.param_count());
    assert_eq!(v["extra"], extra);
    let names = [
        "embedding/embeddings",
        "lstm/lstm_cell/kernel",
        "lstm/lstm_cell/recurrent_kernel",
        "lstm/lstm_cell/bias",
        "lstm_1/lstm_cell/kernel",
        "lstm_1/lstm_cell/recurrent_kernel",
        "lstm_1/lstm_cell/bias",
        "dense/kernel",
        "dense/bias",
    ];
    assert_eq!(export::keras_weight_names(&spec), names);
    let tensors = v["tensors"].as_array().unwrap();
    for ((entry, t), name) in tensors.iter().zip(spec.tensors()).zip(names) {
        assert_eq!(entry["name"], name);
        assert_eq!(entry["offset"], t.offset);
        let shape = export::keras_shape(&t);
        assert_eq!(entry["shape"], serde_json::json!(shape));
        // The nested array has that shape and the values (shortest decimals read as f32).
        let w = &v["weights"][name];
        let mut got_shape = Vec::new();
        let mut x = w;
        while let Some(a) = x.as_array() {
            got_shape.push(a.len());
            x = &a[0];
        }
        assert_eq!(got_shape, shape, "{name}");
        let mut flat = Vec::new();
        fn go(v: &Value, out: &mut Vec<u32>) {
            match v {
                Value::Array(a) => a.iter().for_each(|x| go(x, out)),
                Value::Number(n) => out.push((n.as_f64().unwrap() as f32).to_bits()),
                Value::String(s) => out.push(match s.as_str() {
                    "NaN" => f32::NAN.to_bits(),
                    "Infinity" => f32::INFINITY.to_bits(),
                    "-Infinity" => f32::NEG_INFINITY.to_bits(),
                    other => panic!("{other}"),
                }),
                other => panic!("{other}"),
            }
        }
        go(w, &mut flat);
        for (i, (g, want)) in flat.iter().zip(&params[t.range()]).enumerate() {
            let g = f32::from_bits(*g);
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "{name}[{i}]: {g} vs {want}"
            );
        }
    }
    assert_eq!(tensors.len(), 9);

    let ch = Spec::channels(6).lstm(8).dense(4, Head::Softmax);
    let v = export::json(&ch, &finite_params(&ch, 1), None);
    assert_eq!(v["spec"]["channels"], 6);
    assert!(v.get("extra").is_none());
    assert_eq!(v["weights"]["dense/kernel"].as_array().unwrap().len(), 8);
    // Never panics: errors are reported inside the document.
    let v = export::json(&ch, &[1.0], None);
    assert!(v["error"].as_str().unwrap().contains("the spec needs"), "{v}");
    let v = export::json(
        &Spec::channels(usize::MAX).lstm(usize::MAX).dense(0, Head::Softmax),
        &[],
        None,
    );
    assert!(v["error"].as_str().unwrap().contains("invalid model spec"), "{v}");
}

// ---------------------------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------------------------

#[test]
fn write_atomic_replaces_whole_files_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.rs");
    files::write_atomic(&path, b"first").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    files::write_atomic(&path, b"second, longer").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");

    // A failing writer leaves the old file and no temporary file.
    let r = files::write_atomic_with(&path, |f| {
        f.write_all(b"half")?;
        Err::<(), _>(std::io::Error::other("disk full"))
    });
    assert_eq!(r.unwrap_err().to_string(), "disk full");
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("model.rs")]);

    // The closure's value is returned; the file is complete.
    let n = files::write_atomic_with(&path, |f| f.write_all(b"abc").map(|_| 3)).unwrap();
    assert_eq!(n, 3);
    assert_eq!(std::fs::read(&path).unwrap(), b"abc");

    // Missing directory: an error, nothing created.
    assert!(files::write_atomic(&dir.path().join("missing/x.bin"), b"x").is_err());
    // No file name.
    assert!(files::write_atomic(Path::new("/"), b"x").is_err());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A new file gets the usual permissions (0o666 minus the umask), not a temp file's 0o600.
        let fresh = dir.path().join("fresh.txt");
        files::write_atomic(&fresh, b"x").unwrap();
        let reference = dir.path().join("reference.txt");
        std::fs::write(&reference, b"x").unwrap();
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            std::fs::metadata(&reference).unwrap().permissions().mode() & 0o777
        );
        // An existing file keeps its permissions.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        files::write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    }
}

/// `export --format tlm --embedding int8`: a version-3 file whose Embedding reads back as the
/// scalar reference's quantisation (per row `scale = max|x|/127`, `q = round_half_even(x /
/// scale)`, value `q·scale` — computed here in f64 from the rule, not by the core), every other
/// parameter bit for bit, the tokenizer kept; refused for another format and for a model
/// without an Embedding.
#[test]
fn export_int8_embedding_stores_the_reference_quantisation() {
    use tinylstm_cli::model_file::{ModelBundle, ModelMeta, Task};
    use tinylstm_cli::preprocess::pad::Side;
    use tinylstm_cli::preprocess::tokenizer::{Tokenizer, TokenizerConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut tok = Tokenizer::new(TokenizerConfig::default()).unwrap();
    tok.fit_on_texts(["the cat sat on the mat", "free prize now"]).unwrap();
    let spec = Spec::tokens(tok.vocab_size(), 5).lstm(4).dense(1, Head::Sigmoid);
    // Trained-like values (finite_params' extremes would exceed the int8 scale's bound).
    let params: Vec<f32> =
        (0..spec.param_count()).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1.3e-4).collect();
    let mut meta = ModelMeta::new(Task::Text, 6, Side::Pre, Side::Pre);
    meta.class_names = vec!["0".into(), "1".into()];
    let bundle = ModelBundle {
        spec,
        params: params.clone(),
        tokenizer: Some(tok),
        normalizer: None,
        meta,
        optimizer_state: None,
        best_params: None,
    };
    let f32_path = dir.path().join("m.tlm");
    bundle.save(&f32_path).unwrap();
    let int8_path = dir.path().join("m8.tlm");
    let (m, o) = (f32_path.to_str().unwrap(), int8_path.to_str().unwrap());
    common::ok(&["export", "--model", m, "--format", "tlm", "--embedding", "int8", "--out", o]);
    let bytes = std::fs::read(&int8_path).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 3);
    assert!(bytes.len() < std::fs::read(&f32_path).unwrap().len());
    let back = ModelBundle::load(&int8_path).unwrap();
    assert_eq!(back.spec, spec);
    assert_eq!(
        back.tokenizer.as_ref().unwrap().vocab_size(),
        bundle.tokenizer.as_ref().unwrap().vocab_size()
    );
    let (e, n) = (5, spec.embedding_len());
    let mut want = Vec::new();
    for row in params[..n].chunks(e) {
        let max = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = max / 127.0;
        for &x in row {
            let q = if scale == 0.0 {
                0.0
            } else {
                ((x / scale) as f64).round_ties_even().clamp(-127.0, 127.0)
            };
            want.push((q * scale as f64) as f32);
        }
    }
    assert_bits_eq("embedding", &back.params[..n], &want);
    assert_bits_eq("the rest", &back.params[n..], &params[n..]);
    // Refusals name the reason and write nothing.
    let bad = dir.path().join("m8.rs");
    let out = common::run(&[
        "export",
        "--model",
        m,
        "--format",
        "rust",
        "--embedding",
        "int8",
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--embedding int8 applies to --format tlm"), "{err}");
    assert!(!bad.exists());
}
