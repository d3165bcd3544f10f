//! A token model's input-projection table (`b₀ + E·W₀` per token, computed once per model):
//! a forward pass from the table gives the bits of the ordinary forward pass on the exact path
//! (the exact GEMM computes each element the same way whatever its row), with masks, several
//! layers, batch 1 and chunked sequences; the table built in row ranges equals the table built
//! at once; the fast path's table pass agrees with the fast forward pass; bad arguments are
//! errors, not panics.

use tinylstm::init::init_params;
use tinylstm::kernels::{Exact, Kernels};
use tinylstm::model::{
    forward_logits_projected_with, forward_logits_with, forward_projected_with, forward_with,
    projection_rows_with, projection_table_len,
};
use tinylstm::{Error, Head, Mask, Sequences, Spec};
use tinylstm_fast::{Fast, Isa};

fn specs() -> Vec<Spec> {
    vec![
        Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, Head::Sigmoid),
        Spec::tokens(37, 5).lstm(7).dense(3, Head::Softmax),
        Spec::tokens(50, 8).mask_zero().lstm(16).lstm(8).dense(1, Head::Sigmoid),
        Spec::tokens(300, 64).lstm(33).lstm(9).lstm(4).dense(2, Head::Linear),
        Spec::tokens(1000, 64).lstm(128).lstm(64).dense(1, Head::Sigmoid),
    ]
}

struct Xorshift(u32);

impl Xorshift {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

/// Initialised parameters with every LSTM bias drawn too (the table starts from the bias, so
/// a zero bias would test less).
fn params(spec: &Spec, seed: u64) -> Vec<f32> {
    let mut p = vec![0.0; spec.param_count()];
    init_params(spec, seed, &mut p).unwrap();
    let mut rng = Xorshift(seed as u32 | 1);
    for l in 0..spec.layers {
        let b = spec.bias_offset(l);
        for v in &mut p[b..b + 4 * spec.units[l]] {
            *v = (rng.next() % 2001) as f32 / 1000.0 - 1.0;
        }
    }
    p
}

/// Token ids `[B][T]`; with a mask, some steps are padding (id 0), whole sequence 2 included.
fn tokens(spec: &Spec, b: usize, t: usize, seed: u32) -> Vec<u32> {
    let tinylstm::InputKind::Tokens { vocab, .. } = spec.input else { unreachable!() };
    let mut rng = Xorshift(seed.wrapping_mul(2654435761) | 1);
    let mut ids: Vec<u32> = (0..b * t).map(|_| rng.next() % vocab as u32).collect();
    if spec.mask == Mask::Zero {
        for (i, id) in ids.iter_mut().enumerate() {
            let (r, s) = (i / t, i % t);
            *id = if r == 2 || s % 4 == 2 || (r == 1 && s < 3) { 0 } else { (*id).max(1) };
        }
    }
    ids
}

fn table<K: Kernels>(kern: K, spec: &Spec, p: &[f32]) -> Vec<f32> {
    let mut table = vec![0.0; projection_table_len(spec).unwrap()];
    projection_rows_with(kern, spec, p, 0, &mut table).unwrap();
    table
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn exact_forward_from_the_table_equals_the_forward_pass_bit_for_bit() {
    for (si, spec) in specs().iter().enumerate() {
        let p = params(spec, 40 + si as u64);
        let table = table(Exact, spec, &p);
        for (b, t) in [(1, 1), (1, 23), (3, 11), (32, 17)] {
            let ids = tokens(spec, b, t, (si * 100 + b + t) as u32);
            let k = spec.outputs;
            // Whole sequences in one chunk, and in chunks of 1 and 4 steps.
            for chunk in [t, 1, 4] {
                let mut work = vec![0.0; spec.forward_work_len(b, chunk).unwrap()];
                let (mut want, mut got) = (vec![0.0; b * k], vec![0.0; b * k]);
                let seqs = Sequences::Tokens(&ids);
                forward_with(Exact, spec, &p, seqs, b, &mut work, &mut want).unwrap();
                forward_projected_with(Exact, spec, &p, &table, seqs, b, &mut work, &mut got)
                    .unwrap();
                assert_eq!(bits(&want), bits(&got), "spec {si}, B {b}, T {t}, chunk {chunk}");
                forward_logits_with(Exact, spec, &p, seqs, b, &mut work, &mut want).unwrap();
                forward_logits_projected_with(
                    Exact, spec, &p, &table, seqs, b, &mut work, &mut got,
                )
                .unwrap();
                assert_eq!(bits(&want), bits(&got), "logits: spec {si}, B {b}, T {t}");
            }
        }
    }
}

#[test]
fn table_rows_equal_the_layer_input_gemm_and_ranges_equal_the_whole() {
    let spec = Spec::tokens(37, 5).lstm(7).dense(3, Head::Softmax);
    let p = params(&spec, 9);
    let g4 = 4 * 7;
    let whole = table(Exact, &spec, &p);
    // Row v is b₀ + E[v]·W₀ in the scalar reference's order (start value, then increasing p).
    let (emb, w0) = (&p[..37 * 5], &p[spec.kernel_offset(0)..spec.recurrent_offset(0)]);
    let b0 = &p[spec.bias_offset(0)..spec.bias_offset(0) + g4];
    let mut want = Vec::new();
    for v in 0..37 {
        let mut row = b0.to_vec();
        tinylstm::kernels::reference::gemm_nn(1, g4, 5, &emb[v * 5..(v + 1) * 5], w0, &mut row);
        want.extend(row);
    }
    assert_eq!(bits(&whole), bits(&want));
    // Built in ranges of 1, 10 and 26 rows (as threads would), the same table.
    let mut parts = vec![0.0; whole.len()];
    let (a, rest) = parts.split_at_mut(g4);
    let (b, c) = rest.split_at_mut(10 * g4);
    projection_rows_with(Exact, &spec, &p, 0, a).unwrap();
    projection_rows_with(Exact, &spec, &p, 1, b).unwrap();
    projection_rows_with(Exact, &spec, &p, 11, c).unwrap();
    assert_eq!(bits(&whole), bits(&parts));
}

/// The fast path's table agrees with the exact one within the parity tolerance of the fast
/// path (relative 1e-5 of the magnitude of the summed terms: E = 64 products, f32 rounding
/// of a different order and FMA), and a fast forward pass from it with the fast forward pass.
#[test]
fn fast_forward_from_the_table_agrees_with_the_fast_forward_pass() {
    let spec = Spec::tokens(1000, 64).lstm(128).lstm(64).dense(1, Head::Sigmoid);
    let p = params(&spec, 77);
    let exact = table(Exact, &spec, &p);
    for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
        let fast = Fast::with_isa(isa).unwrap();
        let t = table(fast, &spec, &p);
        let (emb, w0) = (&p[..1000 * 64], &p[spec.kernel_offset(0)..spec.recurrent_offset(0)]);
        let b0 = &p[spec.bias_offset(0)..spec.bias_offset(0) + 512];
        for (i, (&e, &f)) in exact.iter().zip(&t).enumerate() {
            let (v, j) = (i / 512, i % 512);
            let scale = b0[j].abs()
                + (0..64).map(|q| (emb[v * 64 + q] * w0[q * 512 + j]).abs()).sum::<f32>();
            assert!((e - f).abs() <= 1e-5 * scale, "{isa:?} row {v} col {j}: {e} vs {f}");
        }
        let (b, steps) = (5, 30);
        let ids = tokens(&spec, b, steps, 3);
        let mut work = vec![0.0; spec.forward_work_len(b, 8).unwrap()];
        let (mut want, mut got) = (vec![0.0; b], vec![0.0; b]);
        let seqs = Sequences::Tokens(&ids);
        forward_with(fast, &spec, &p, seqs, b, &mut work, &mut want).unwrap();
        forward_projected_with(fast, &spec, &p, &t, seqs, b, &mut work, &mut got).unwrap();
        for (w, g) in want.iter().zip(&got) {
            assert!((w - g).abs() <= 1e-5, "{isa:?}: {want:?} vs {got:?}");
        }
    }
}

#[test]
fn bad_tables_and_specs_are_errors() {
    let spec = Spec::tokens(20, 4).lstm(3).dense(1, Head::Sigmoid);
    let p = params(&spec, 1);
    assert_eq!(projection_table_len(&spec), Some(20 * 12));
    let channels = Spec::channels(3).lstm(3).dense(1, Head::Sigmoid);
    assert_eq!(projection_table_len(&channels), None);
    let pc = params(&channels, 1);
    let mut out = vec![0.0; 12];
    assert_eq!(projection_rows_with(Exact, &channels, &pc, 0, &mut out), Err(Error::InputKind));
    // Rows past the vocabulary, a partial row, wrong parameter length.
    let mut two = vec![0.0; 24];
    assert!(matches!(
        projection_rows_with(Exact, &spec, &p, 19, &mut two),
        Err(Error::TokenOutOfRange { token: 20, vocab: 20, .. })
    ));
    let mut partial = vec![0.0; 13];
    assert!(matches!(
        projection_rows_with(Exact, &spec, &p, 0, &mut partial),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        projection_rows_with(Exact, &spec, &p[1..], 0, &mut two),
        Err(Error::BufferLength { .. })
    ));
    // A forward pass with a table of the wrong length, or on a channel model.
    let table = table(Exact, &spec, &p);
    let ids = [1u32, 2, 3];
    let mut work = vec![0.0; spec.forward_work_len(1, 3).unwrap()];
    let mut out = [0.0f32];
    let seqs = Sequences::Tokens(&ids);
    let short = &table[..table.len() - 1];
    assert!(matches!(
        forward_projected_with(Exact, &spec, &p, short, seqs, 1, &mut work, &mut out),
        Err(Error::BufferLength { .. })
    ));
    let xs = [0.5f32; 9];
    let mut cw = vec![0.0; channels.forward_work_len(1, 3).unwrap()];
    assert_eq!(
        forward_projected_with(
            Exact,
            &channels,
            &pc,
            &table,
            Sequences::Values(&xs),
            1,
            &mut cw,
            &mut out
        ),
        Err(Error::InputKind)
    );
    // Token ids out of range are refused as by the forward pass.
    let bad = [1u32, 20, 3];
    assert!(matches!(
        forward_projected_with(
            Exact,
            &spec,
            &p,
            &table,
            Sequences::Tokens(&bad),
            1,
            &mut work,
            &mut out
        ),
        Err(Error::TokenOutOfRange { token: 20, .. })
    ));
}
