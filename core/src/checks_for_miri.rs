//! Unit tests small enough to run under Miri (`scripts/check` runs this module with
//! `cargo +nightly miri test -p tinylstm --lib`): every public kernel of the exact path on sizes
//! that reach its register tiles and its edges, checked against the scalar
//! [`reference`](crate::kernels::reference) bit for bit (the order contract), and the model-file
//! reader on every truncation and every one-byte corruption of a valid file, which it must
//! refuse with an error (the CRC covers every byte), never a panic or an out-of-bounds read.

use crate::format::{write_into, write_into_with, EmbeddingStorage, ModelFile, Section};
use crate::kernels::{self, reference};
use crate::{Head, Spec};

/// Deterministic values in `[-1, 1)` with no pattern a wrong index could hide behind.
fn values(n: usize, seed: u32) -> [f32; 96] {
    let mut v = [0.0f32; 96];
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    for x in v.iter_mut().take(n) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *x = (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
    }
    v
}

fn bits(xs: &[f32]) -> [u32; 96] {
    let mut b = [0u32; 96];
    for (o, x) in b.iter_mut().zip(xs) {
        *o = x.to_bits();
    }
    b
}

/// Sizes covering a full register tile, a partial one and the one-row GEMV path.
const SIZES: [(usize, usize, usize); 4] = [(1, 9, 5), (5, 9, 7), (6, 8, 4), (2, 3, 1)];

#[test]
fn gemms_equal_the_reference_bitwise() {
    for (m, n, k) in SIZES {
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let c0 = values(m * n, 3);
        type Gemm = fn(usize, usize, usize, &[f32], &[f32], &mut [f32]);
        let pairs: [(&str, Gemm, Gemm); 3] = [
            ("gemm_nn", kernels::gemm_nn, reference::gemm_nn),
            ("gemm_nt", kernels::gemm_nt, reference::gemm_nt),
            ("gemm_tn", kernels::gemm_tn, reference::gemm_tn),
        ];
        for (name, kernel, scalar) in pairs {
            let (mut got, mut want) = (c0, c0);
            kernel(m, n, k, &a[..m * k], &b[..k * n], &mut got[..m * n]);
            scalar(m, n, k, &a[..m * k], &b[..k * n], &mut want[..m * n]);
            assert_eq!(bits(&got), bits(&want), "{name} ({m}, {n}, {k})");
        }
    }
}

#[test]
fn gemv_terms_column_sums_and_gates_equal_the_reference() {
    // gemv_terms = start, then one gemm_nn row per term (its documented equivalent).
    let (n, k1, k2) = (13, 3, 5);
    let (x1, x2) = (values(k1, 4), values(k2, 5));
    let (b1, b2) = (values(k1 * n, 6), values(k2 * n, 7));
    let start = values(n, 8);
    let mut got = [0.0f32; 96];
    kernels::gemv_terms(
        n,
        Some(&start[..n]),
        &[(&x1[..k1], &b1[..k1 * n]), (&x2[..k2], &b2[..k2 * n])],
        &mut got[..n],
    );
    let mut want = start;
    reference::gemm_nn(1, n, k1, &x1[..k1], &b1[..k1 * n], &mut want[..n]);
    reference::gemm_nn(1, n, k2, &x2[..k2], &b2[..k2 * n], &mut want[..n]);
    assert_eq!(bits(&got), bits(&want), "gemv_terms");

    let (rows, cols) = (7, 11);
    let x = values(rows * cols, 9);
    let (mut got, mut want) = (values(cols, 10), values(cols, 10));
    kernels::add_column_sums(rows, cols, &x[..rows * cols], &mut got[..cols]);
    reference::add_column_sums(rows, cols, &x[..rows * cols], &mut want[..cols]);
    assert_eq!(bits(&got), bits(&want), "add_column_sums");

    // activate_gates: σ on i, f, o and tanh on c, each the scalar function; past 4h untouched.
    let h = 5;
    let z0 = values(4 * h + 2, 11);
    let mut z = z0;
    kernels::activate_gates(&mut z[..4 * h + 2], h);
    for (j, (&got, &x)) in z.iter().zip(&z0).enumerate().take(4 * h + 2) {
        let want = match j / h {
            2 => crate::math::tanh(x),
            0 | 1 | 3 => crate::math::sigmoid(x),
            _ => x,
        };
        assert_eq!(got.to_bits(), want.to_bits(), "activate_gates [{j}]");
    }
}

/// Every prefix and every one-byte corruption of `file` is refused with an error.
fn refuses_damage(file: &[u8], what: &str) {
    assert!(ModelFile::parse(file).is_ok(), "{what}: the intact file");
    for len in 0..file.len() {
        assert!(ModelFile::parse(&file[..len]).is_err(), "{what}: truncated to {len} bytes");
    }
    let mut bad = [0u8; 512];
    for at in 0..file.len() {
        bad[..file.len()].copy_from_slice(file);
        bad[at] ^= 0xA5;
        assert!(ModelFile::parse(&bad[..file.len()]).is_err(), "{what}: byte {at} changed");
    }
}

#[test]
fn reader_refuses_every_truncation_and_corruption() {
    // A channel model with a section, and a token model with an int8 Embedding (version 3).
    const CH: Spec = Spec::channels(2).lstm(3).dense(2, Head::Softmax);
    let params = values(CH.param_count(), 12);
    let section = Section { tag: 0x5445_5354, bytes: b"meta" };
    let mut buf = [0u8; 512];
    let n = write_into(&CH, &params[..CH.param_count()], &[section], &mut buf).unwrap();
    refuses_damage(&buf[..n], "channel model");

    const TOK: Spec = Spec::tokens(5, 2).lstm(2).dense(1, Head::Sigmoid);
    let params = values(TOK.param_count(), 13);
    let p = &params[..TOK.param_count()];
    let n = write_into_with(&TOK, p, &[], EmbeddingStorage::Int8, &mut buf).unwrap();
    refuses_damage(&buf[..n], "int8 token model");
}
