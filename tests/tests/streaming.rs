//! Streaming = full-sequence forward, bit for bit, and the training pass's outputs equal the
//! inference pass's. Both follow from the kernels' order contract (`tinylstm::kernels`).
//! With a mask the same holds, and a masked step is exactly a step that is not there.

use tinylstm::init::init_params;
use tinylstm::model::{self, reset_state};
use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainBuffers, TrainOptions};
use tinylstm::{Head, InputKind, Mask, Sequences, Spec, Targets};

fn specs() -> Vec<Spec> {
    vec![
        Spec::channels(6).lstm(32).dense(4, Head::Softmax),
        Spec::channels(1).lstm(5).dense(1, Head::Linear),
        Spec::channels(3).lstm(9).lstm(7).lstm(3).dense(2, Head::Sigmoid),
        Spec::tokens(50, 8).lstm(16).lstm(8).dense(1, Head::Sigmoid),
        Spec::channels(6).masking(-1.0).lstm(32).dense(4, Head::Softmax),
        Spec::channels(3).masking(0.0).lstm(9).lstm(7).dense(2, Head::Sigmoid),
        Spec::tokens(50, 8).mask_zero().lstm(16).lstm(8).dense(1, Head::Sigmoid),
    ]
}

/// Whether step `t` of sequence `r` is masked in the inputs of masked specs: inner steps of
/// sequence 0, leading and trailing steps of sequence 1, all of sequence 2, none past that.
fn masked_step(r: usize, t: usize, steps: usize) -> bool {
    match r {
        0 => t % 4 == 2,
        1 => t < 3 || t == steps - 1,
        2 => true,
        _ => false,
    }
}

fn input(spec: &Spec, b: usize, t: usize, seed: u32) -> (Vec<u32>, Vec<f32>) {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    };
    let (mut ids, mut xs): (Vec<u32>, Vec<f32>) = match spec.input {
        InputKind::Tokens { vocab, .. } => {
            ((0..b * t).map(|_| next() % vocab as u32).collect(), vec![])
        }
        InputKind::Channels(c) => {
            (vec![], (0..b * t * c).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect())
        }
    };
    let sw = spec.step_width();
    for r in 0..b {
        for ti in 0..t {
            let i = r * t + ti;
            match spec.mask {
                Mask::Off => {}
                Mask::Zero if masked_step(r, ti, t) => ids[i] = 0,
                Mask::Zero => ids[i] = ids[i].max(1),
                Mask::Value(m) if masked_step(r, ti, t) => xs[i * sw..(i + 1) * sw].fill(m),
                Mask::Value(_) => {} // values in [-1, 1] with a step of 1e-3: never all equal m
            }
        }
    }
    (ids, xs)
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn streaming_equals_full_sequence_bit_for_bit() {
    for (si, spec) in specs().iter().enumerate() {
        let mut params = vec![0.0; spec.param_count()];
        init_params(spec, 100 + si as u64, &mut params).unwrap();
        let (b, t, k) = (3, 11, spec.outputs);
        let (ids, xs) = input(spec, b, t, si as u32);
        let seqs = if ids.is_empty() { Sequences::Values(&xs) } else { Sequences::Tokens(&ids) };

        // Full sequence in one chunk, and in chunks of 1, 2 and 4 steps.
        let mut reference = vec![0.0; b * k];
        let mut work = vec![0.0; spec.forward_work_len(b, t).unwrap()];
        model::forward(spec, &params, seqs, b, &mut work, &mut reference).unwrap();
        for chunk in [1, 2, 4] {
            let mut out = vec![0.0; b * k];
            let mut work = vec![0.0; spec.forward_work_len(b, chunk).unwrap()];
            model::forward(spec, &params, seqs, b, &mut work, &mut out).unwrap();
            assert_eq!(bits(&out), bits(&reference), "spec {si}, chunk {chunk}");
        }

        // Streaming, all sequences together, step by step with a carried state.
        let sw = spec.step_width();
        let mut state = vec![0.0; spec.state_len(b).unwrap()];
        let mut sw_work = vec![0.0; spec.step_work_len(b).unwrap()];
        let mut out = vec![0.0; b * k];
        for ti in 0..t {
            let (mut sid, mut sx) = (vec![], vec![]);
            for r in 0..b {
                if ids.is_empty() {
                    sx.extend_from_slice(&xs[(r * t + ti) * sw..(r * t + ti + 1) * sw]);
                } else {
                    sid.push(ids[r * t + ti]);
                }
            }
            let x = if sid.is_empty() { Sequences::Values(&sx) } else { Sequences::Tokens(&sid) };
            model::step(spec, &params, x, b, &mut state, &mut sw_work, Some(&mut out)).unwrap();
        }
        assert_eq!(bits(&out), bits(&reference), "spec {si}, streamed batch");

        // Streaming one sequence at a time (batch 1) after a reset.
        let mut state1 = vec![0.0; spec.state_len(1).unwrap()];
        let mut w1 = vec![0.0; spec.step_work_len(1).unwrap()];
        for r in 0..b {
            reset_state(&mut state1);
            let mut o = vec![0.0; k];
            for ti in 0..t {
                let x = if ids.is_empty() {
                    Sequences::Values(&xs[(r * t + ti) * sw..(r * t + ti + 1) * sw])
                } else {
                    Sequences::Tokens(&ids[r * t + ti..r * t + ti + 1])
                };
                model::step(spec, &params, x, 1, &mut state1, &mut w1, Some(&mut o)).unwrap();
            }
            assert_eq!(bits(&o), bits(&reference[r * k..(r + 1) * k]), "spec {si}, sequence {r}");
        }

        // The training pass computes the same outputs, in every BPTT mode.
        for bptt in [Bptt::FULL, Bptt::truncated(4), Bptt::FULL.recompute(3)] {
            let y: Vec<u32> = (0..b as u32).map(|i| i % k as u32).collect();
            let yv: Vec<f32> = (0..b * k).map(|i| (i % 2) as f32).collect();
            let targets = if spec.head == Head::Softmax {
                Targets::Classes(&y)
            } else {
                Targets::Values(&yv)
            };
            let batch = Batch { inputs: seqs, targets, batch: b };
            let opts = TrainOptions { bptt, norm: 0 };
            let mut work = vec![0.0; spec.train_work_len(b, t, bptt).unwrap()];
            let mut grads = vec![0.0; spec.param_count()];
            let mut o = vec![0.0; b * k];
            loss_and_grad(
                spec,
                &params,
                &batch,
                &opts,
                TrainBuffers::new(&mut work, &mut grads).with_outputs(&mut o),
            )
            .unwrap();
            assert_eq!(bits(&o), bits(&reference), "spec {si}, training outputs {bptt:?}");
        }
    }
}

/// A masked step is a step that is not there: each sequence of a masked spec gives, bit for
/// bit, what the same weights without a mask give on the sequence with its masked steps
/// removed; an all-masked sequence gives the head of a zero state.
#[test]
fn masked_steps_equal_removed_steps() {
    for (si, spec) in specs().iter().enumerate().filter(|(_, s)| s.mask.is_on()) {
        let plain = Spec { mask: Mask::Off, ..*spec };
        let mut params = vec![0.0; spec.param_count()];
        init_params(spec, 200 + si as u64, &mut params).unwrap();
        let (b, t, k, sw) = (4, 9, spec.outputs, spec.step_width());
        let (ids, xs) = input(spec, b, t, si as u32);
        let seqs = if ids.is_empty() { Sequences::Values(&xs) } else { Sequences::Tokens(&ids) };
        let mut out = vec![0.0; b * k];
        let mut work = vec![0.0; spec.forward_work_len(b, 3).unwrap()];
        model::forward(spec, &params, seqs, b, &mut work, &mut out).unwrap();
        for r in 0..b {
            let kept: Vec<usize> = (0..t).filter(|&ti| !masked_step(r, ti, t)).collect();
            let got = &out[r * k..(r + 1) * k];
            if kept.is_empty() {
                // h = 0: the head's bias alone.
                let bias = &params[spec.dense_bias_offset()..spec.param_count()];
                let mut want = bias.to_vec();
                model::activate(spec.head, k, &mut want);
                assert_eq!(bits(got), bits(&want), "spec {si}, all-masked sequence {r}");
                continue;
            }
            let cid: Vec<u32> = if ids.is_empty() {
                vec![]
            } else {
                kept.iter().map(|&ti| ids[r * t + ti]).collect()
            };
            let cx: Vec<f32> = if xs.is_empty() {
                vec![]
            } else {
                kept.iter()
                    .flat_map(|&ti| xs[(r * t + ti) * sw..(r * t + ti + 1) * sw].to_vec())
                    .collect()
            };
            let cs = if cid.is_empty() { Sequences::Values(&cx) } else { Sequences::Tokens(&cid) };
            let mut want = vec![0.0; k];
            let mut w = vec![0.0; plain.forward_work_len(1, kept.len()).unwrap()];
            model::forward(&plain, &params, cs, 1, &mut w, &mut want).unwrap();
            assert_eq!(bits(got), bits(&want), "spec {si}, sequence {r}, kept {kept:?}");
        }
    }
}

/// With no step masked, a masked spec computes exactly what the unmasked one does: outputs,
/// loss and every gradient, bit for bit.
#[test]
fn mask_with_nothing_masked_changes_no_bit() {
    for (si, spec) in specs().iter().enumerate().filter(|(_, s)| s.mask.is_on()) {
        let plain = Spec { mask: Mask::Off, ..*spec };
        let mut params = vec![0.0; spec.param_count()];
        init_params(spec, 300 + si as u64, &mut params).unwrap();
        let (b, t, k) = (5, 7, spec.outputs);
        let (mut ids, xs) = input(&plain, b, t, 40 + si as u32);
        ids.iter_mut().for_each(|i| *i = (*i).max(1));
        let seqs = if ids.is_empty() { Sequences::Values(&xs) } else { Sequences::Tokens(&ids) };
        let y: Vec<u32> = (0..b as u32).map(|i| i % k as u32).collect();
        let yv: Vec<f32> = (0..b * k).map(|i| (i % 2) as f32).collect();
        let targets =
            if spec.head == Head::Softmax { Targets::Classes(&y) } else { Targets::Values(&yv) };
        let batch = Batch { inputs: seqs, targets, batch: b };
        for bptt in [Bptt::FULL, Bptt::truncated(3).recompute(2)] {
            let run = |s: &Spec| {
                let opts = TrainOptions { bptt, norm: 0 };
                let mut work = vec![0.0; s.train_work_len(b, t, bptt).unwrap()];
                let mut grads = vec![0.0; s.param_count()];
                let mut ig = vec![0.0; xs.len()];
                let igo = if xs.is_empty() { None } else { Some(&mut ig[..]) };
                let mut o = vec![0.0; b * k];
                let loss = loss_and_grad(
                    s,
                    &params,
                    &batch,
                    &opts,
                    TrainBuffers {
                        work: &mut work,
                        grads: &mut grads,
                        input_grad: igo,
                        outputs: Some(&mut o),
                    },
                )
                .unwrap();
                (loss.to_bits(), bits(&o), bits(&grads), bits(&ig))
            };
            assert_eq!(run(spec), run(&plain), "spec {si}, {bptt:?}");
        }
    }
}

#[test]
fn pre_padded_tokens_go_through_embedding_row_zero() {
    // Keras mask_zero=False: padding id 0 is an ordinary input, so leading zeros change the result
    // exactly as running embedding row 0 through the LSTM does.
    let spec = Spec::tokens(10, 4).lstm(6).dense(1, Head::Sigmoid);
    let mut params = vec![0.0; spec.param_count()];
    init_params(&spec, 3, &mut params).unwrap();
    let mut work = vec![0.0; spec.forward_work_len(1, 8).unwrap()];
    let (mut padded, mut unpadded) = ([0.0f32], [0.0f32]);
    model::forward(
        &spec,
        &params,
        Sequences::Tokens(&[0, 0, 0, 4, 5, 6]),
        1,
        &mut work,
        &mut padded,
    )
    .unwrap();
    model::forward(&spec, &params, Sequences::Tokens(&[4, 5, 6]), 1, &mut work, &mut unpadded)
        .unwrap();
    assert_ne!(padded[0], unpadded[0]);
    // Zeroing embedding row 0 and its effect: a zero input row still moves the state through the
    // biases, so the results still differ — what Keras does without masking.
    let mut state = vec![0.0; spec.state_len(1).unwrap()];
    let mut sw = vec![0.0; spec.step_work_len(1).unwrap()];
    let mut o = [0.0f32];
    for id in [0u32, 0, 0, 4, 5, 6] {
        model::step(&spec, &params, Sequences::Tokens(&[id]), 1, &mut state, &mut sw, Some(&mut o))
            .unwrap();
    }
    assert_eq!(o[0].to_bits(), padded[0].to_bits());
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    use tinylstm::Error;
    let spec = Spec::tokens(10, 4).lstm(6).dense(1, Head::Sigmoid);
    let params = vec![0.0; spec.param_count()];
    let mut work = vec![0.0; spec.forward_work_len(2, 3).unwrap()];
    let mut out = [0.0f32; 2];
    let e =
        model::forward(&spec, &params, Sequences::Tokens(&[1, 2, 10, 3]), 2, &mut work, &mut out);
    assert_eq!(e, Err(Error::TokenOutOfRange { index: 2, token: 10, vocab: 10 }));
    let e = model::forward(&spec, &params, Sequences::Values(&[0.0; 4]), 2, &mut work, &mut out);
    assert_eq!(e, Err(Error::InputKind));
    let e = model::forward(&spec, &params, Sequences::Tokens(&[1, 2, 3]), 2, &mut work, &mut out);
    assert!(matches!(e, Err(Error::BufferLength { .. })));
    let e = model::forward(&spec, &params[1..], Sequences::Tokens(&[1, 2]), 2, &mut work, &mut out);
    assert!(matches!(e, Err(Error::BufferLength { what: "parameters", .. })));
    let e = model::forward(&spec, &params, Sequences::Tokens(&[1, 2]), 0, &mut work, &mut out);
    assert_eq!(e, Err(Error::EmptyBatch));
    let mut tiny = vec![0.0; spec.forward_work_len(2, 1).unwrap() - 1];
    let e = model::forward(&spec, &params, Sequences::Tokens(&[1, 2]), 2, &mut tiny, &mut out);
    assert!(matches!(e, Err(Error::BufferLength { what: "work", .. })));
    let e = model::forward(&spec, &params, Sequences::Tokens(&[]), 2, &mut work, &mut out);
    assert!(matches!(e, Err(Error::BufferLength { .. })));

    // Training: label out of range, wrong target kind, short work buffer.
    let sm = Spec::channels(2).lstm(3).dense(3, Head::Softmax);
    let p = vec![0.0; sm.param_count()];
    let mut g = vec![0.0; sm.param_count()];
    let x = [0.0f32; 2 * 2 * 2];
    let mut w = vec![0.0; sm.train_work_len(2, 2, Bptt::FULL).unwrap()];
    let opts = TrainOptions::default();
    let bad_label =
        Batch { inputs: Sequences::Values(&x), targets: Targets::Classes(&[0, 3]), batch: 2 };
    assert_eq!(
        loss_and_grad(&sm, &p, &bad_label, &opts, TrainBuffers::new(&mut w, &mut g)),
        Err(Error::LabelOutOfRange { index: 1, label: 3, outputs: 3 })
    );
    let wrong_kind =
        Batch { inputs: Sequences::Values(&x), targets: Targets::Values(&[0.0; 6]), batch: 2 };
    assert_eq!(
        loss_and_grad(&sm, &p, &wrong_kind, &opts, TrainBuffers::new(&mut w, &mut g)),
        Err(Error::TargetKind)
    );
    let ok = Batch { inputs: Sequences::Values(&x), targets: Targets::Classes(&[0, 2]), batch: 2 };
    let short = w.len() - 1;
    assert!(matches!(
        loss_and_grad(&sm, &p, &ok, &opts, TrainBuffers::new(&mut w[..short], &mut g)),
        Err(Error::BufferLength { what: "work", .. })
    ));
    assert!(g.iter().all(|&v| v == 0.0), "failed calls must not touch the gradients");
    let invalid = Spec::channels(2).lstm(0).dense(3, Head::Softmax);
    assert!(matches!(
        model::forward(&invalid, &p, Sequences::Values(&x), 2, &mut w, &mut [0.0; 6]),
        Err(Error::Spec(_))
    ));
}
