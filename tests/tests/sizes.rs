//! The core's size arithmetic never wraps: every `*_len` of a batch or a sequence length is
//! computed with checked arithmetic (`None` when it does not fit a `usize`), and a batch so
//! large that its sizes overflow is an error from `forward`, `step`, `loss_and_grad` and the
//! layer and loss functions — never a wrapped length that passes the checks and then panics on
//! a slice index.
//!
//! The workspace builds the core for tests without overflow checks (`Cargo.toml`,
//! `[profile.test.package.tinylstm]`), as release builds run: an unchecked multiplication
//! would wrap here instead of panicking, exactly the failure these tests look for.

use tinylstm::lstm::{self, Dims, Grads, Tape, Weights};
use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainBuffers, TrainOptions};
use tinylstm::{loss, model, Error, Head, Sequences, Spec, Targets};

/// A batch whose product with 2 wraps to 6: `(usize::MAX / 2 + 1) · 2 = 2^bits ≡ 0`.
const WRAPS_TO_6: usize = usize::MAX / 2 + 1 + 3;

const SPEC: Spec = Spec::channels(2).lstm(3).lstm(2).dense(2, Head::Softmax);

fn overflow(e: Result<impl std::fmt::Debug, Error>) -> &'static str {
    match e {
        Err(Error::SizeOverflow { what }) => what,
        other => panic!("expected a size overflow error, got {other:?}"),
    }
}

#[test]
fn the_test_batch_really_wraps() {
    assert_eq!(WRAPS_TO_6.wrapping_mul(2), 6);
    assert_eq!(WRAPS_TO_6.checked_mul(2), None);
}

/// `Σ Π terms` in `u128`, `None` past `usize::MAX` (the products of two `usize`s and a few small
/// factors can exceed even `u128`, hence checked here too).
fn size(terms: &[&[u128]]) -> Option<usize> {
    let mut total: u128 = 0;
    for t in terms {
        let p = t.iter().try_fold(1u128, |a, &b| a.checked_mul(b))?;
        total = total.checked_add(p)?;
    }
    usize::try_from(total).ok()
}

/// The lengths, checked against the documented formulas evaluated in wider arithmetic.
#[test]
fn lengths_are_exact_or_none() {
    let units: u128 = 3 + 2;
    let (i0, h0, h1, k, max_in) = (2u128, 3u128, 2u128, 2u128, 3u128);
    let batches = [1usize, 7, 1 << 20, 1 << 31, usize::MAX / 64, usize::MAX / 10, WRAPS_TO_6];
    for &b in &batches {
        let b1 = b as u128;
        assert_eq!(SPEC.state_len(b), size(&[&[2, b1, units]]), "state_len({b})");
        for s in [1usize, 3, 1 << 20, usize::MAX] {
            let s1 = s as u128;
            let seg: [&[u128]; 5] = [
                &[s1, b1, i0],
                &[s1, b1, 4, h0],
                &[2, s1 + 1, b1, h0],
                &[s1, b1, 4, h1],
                &[2, s1 + 1, b1, h1],
            ];
            assert_eq!(SPEC.segment_tape_len(b, s), size(&seg), "segment({b}, {s})");
            if s == 1 {
                assert_eq!(SPEC.step_work_len(b), size(&seg), "step_work_len({b})");
            }
            let state: [u128; 3] = [2, b1, units];
            let fwd = [&seg[..], &[&state[..]]].concat();
            assert_eq!(SPEC.forward_work_len(b, s), size(&fwd), "forward_work_len({b}, {s})");
            // Tape (one segment of s steps), its checkpoint, the carry, two dx buffers, logits
            // and their gradient.
            let extra: [&[u128]; 4] =
                [&[2, b1, units], &[2, b1, units], &[2, s1, b1, max_in], &[2, b1, k]];
            let train = [&seg[..], &extra[..]].concat();
            assert_eq!(
                SPEC.train_work_len(b, s, Bptt::FULL),
                size(&train),
                "train_work_len({b}, {s})"
            );
        }
    }
    // A masked spec adds one keep flag per step and sequence.
    let masked = Spec { mask: tinylstm::Mask::Value(0.0), ..SPEC };
    assert_eq!(masked.segment_tape_len(5, 4), Some(SPEC.segment_tape_len(5, 4).unwrap() + 20));
    assert_eq!(masked.segment_tape_len(usize::MAX / 4, 4), None);
    // Truncated windows and recompute segments: the tape holds `segment` steps and one state
    // per segment.
    let bptt = Bptt::truncated(10).recompute(3);
    assert_eq!(
        SPEC.tape_len(2, 50, bptt),
        Some(SPEC.segment_tape_len(2, 3).unwrap() + 4 * SPEC.state_len(2).unwrap())
    );
    assert_eq!(SPEC.tape_len(usize::MAX / 8, 50, bptt), None);
    for (steps, batch, input) in [(usize::MAX, 2, 3), (2, usize::MAX, 3), (3, 3, usize::MAX)] {
        let d = Dims { input, units: 4, batch, steps };
        assert_eq!(d.input_len(), None, "{d:?}");
        assert_eq!(d.gates_len().is_none(), input == 3, "{d:?}");
    }
    let d = Dims { input: 3, units: 4, batch: 5, steps: 6 };
    assert_eq!((d.input_len(), d.gates_len(), d.states_len()), (Some(90), Some(480), Some(140)));
    let d = Dims { input: 1, units: 1, batch: 1, steps: usize::MAX };
    assert_eq!(d.states_len(), None);
    // Usable in constants; an overflow there is a compile error.
    const WORK: usize = SPEC.forward_work_len(1, 1).expect("fits");
    assert_eq!(WORK, SPEC.forward_work_len(1, 1).unwrap());
}

/// A batch whose sizes wrap to the lengths of the buffers actually passed: before checked
/// arithmetic the length checks passed and the pass panicked on a slice index in release.
#[test]
fn huge_batches_are_errors_not_panics() {
    let mut params = vec![0.0f32; SPEC.param_count()];
    tinylstm::init::init_params(&SPEC, 1, &mut params).unwrap();
    let x = [0.5f32; 6]; // 6 values: "WRAPS_TO_6 sequences of 1 step × 2 channels" when wrapped
    let mut work = vec![0.0f32; 4096];
    let mut out = [0.0f32; 6];
    let seqs = Sequences::Values(&x);
    overflow(model::forward(&SPEC, &params, seqs, WRAPS_TO_6, &mut work, &mut out));
    overflow(model::forward_logits(&SPEC, &params, seqs, WRAPS_TO_6, &mut work, &mut out));
    let mut state = vec![0.0f32; 64];
    overflow(model::step(&SPEC, &params, seqs, WRAPS_TO_6, &mut state, &mut work, Some(&mut out)));

    let labels = [0u32; 6];
    let batch = Batch { inputs: seqs, targets: Targets::Classes(&labels), batch: WRAPS_TO_6 };
    let mut grads = vec![0.0f32; SPEC.param_count()];
    for bptt in [Bptt::FULL, Bptt::truncated(1), Bptt::FULL.recompute(1)] {
        let opts = TrainOptions { bptt, norm: 0 };
        let r =
            loss_and_grad(&SPEC, &params, &batch, &opts, TrainBuffers::new(&mut work, &mut grads));
        overflow(r);
    }
    assert!(grads.iter().all(|&g| g == 0.0), "a failed call touches no gradient");

    // Token models: the ids per step are not multiplied, but the outputs are.
    let tspec = Spec::tokens(10, 2).lstm(3).dense(2, Head::Sigmoid);
    let tparams = vec![0.0f32; tspec.param_count()];
    let ids = [1u32; 4];
    let r =
        model::forward(&tspec, &tparams, Sequences::Tokens(&ids), usize::MAX, &mut work, &mut out);
    assert!(r.is_err(), "{r:?}");

    // The loss alone: `batch · K` wraps to 6.
    let logits = [0.0f32; 6];
    let mut dlogits = [0.0f32; 6];
    let targets = Targets::Values(&logits);
    let r = loss::loss_and_grad(Head::Sigmoid, 2, WRAPS_TO_6, &logits, targets, 1.0, &mut dlogits);
    assert_eq!(overflow(r), "logits");
}

/// One layer with dimensions whose tape lengths wrap: an error from every check.
#[test]
fn huge_layer_dimensions_are_errors() {
    let (kernel, recurrent, bias) = ([0.0f32; 8], [0.0f32; 16], [0.0f32; 8]);
    let w = Weights { kernel: &kernel, recurrent: &recurrent, bias: &bias };
    // B·4H·S = WRAPS_TO_6 · 8 · 1 wraps to 48 = the gates given; (S+1)·B·H wraps to 12.
    let d = Dims { input: 1, units: 2, batch: WRAPS_TO_6, steps: 1 };
    let (mut gates, mut h, mut c) = (vec![0.0f32; 48], vec![0.0f32; 12], vec![0.0f32; 12]);
    let x = vec![0.0f32; 6];
    let mut tape = Tape { gates: &mut gates, h: &mut h, c: &mut c };
    overflow(lstm::forward(&d, &w, &x, &mut tape));
    overflow(lstm::forward_masked(&d, &w, &x, &[1.0; 6], &mut tape));
    let (mut dh, mut dc) = (vec![0.0f32; 12], vec![0.0f32; 12]);
    let (mut gk, mut gr, mut gb) = ([0.0f32; 8], [0.0f32; 16], [0.0f32; 8]);
    let mut g = Grads { kernel: &mut gk, recurrent: &mut gr, bias: &mut gb };
    overflow(lstm::backward(&d, &w, &x, &mut tape, None, &mut dh, &mut dc, &mut g, None));
    // Units whose 4H overflows.
    let d = Dims { input: 1, units: usize::MAX / 2, batch: 1, steps: 1 };
    overflow(lstm::forward(&d, &w, &x, &mut tape));
}
