//! The core's readable front (`Model`, `Stream`, `Trainer`) against the free functions it calls,
//! bit for bit, and every error variant of the core with the numbers it carries.
//!
//! Expected values are written here from the shapes (not computed by the code under test): a
//! spec's `param_count` is `4H(I + H + 1) + K(H + 1)`, its streaming state `2·ΣH·B`.

use tinylstm::init::{init_params, orthogonal_rows, Rng};
use tinylstm::loss;
use tinylstm::model::{self, Model, Stream};
use tinylstm::optim::{Clip, Optimizer, OptimizerConfig};
use tinylstm::penalty::{Penalties, Penalty};
use tinylstm::schedule::Schedule;
use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainBuffers, TrainOptions, Trainer};
use tinylstm::{Error, Head, Hyperparameter, Sequences, Spec, Targets};

/// 3 channels → LSTM(4) → Dense(2, softmax): 4·4·(3+4+1) + 2·(4+1) = 138 parameters.
const SPEC: Spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
const P: usize = 138;
const B: usize = 2;
const T: usize = 5;

fn params() -> Vec<f32> {
    assert_eq!(SPEC.param_count(), P);
    let mut p = vec![0.0f32; P];
    init_params(&SPEC, 3, &mut p).unwrap();
    p
}

fn inputs() -> Vec<f32> {
    (0..B * T * 3).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1).collect()
}

// -------------------------------------------------------------------------------------------
// Model and Stream = the free functions, bit for bit.

#[test]
fn model_forward_equals_free_forward() {
    let p = params();
    let x = inputs();
    let mut w1 = vec![0.0f32; SPEC.forward_work_len(B, 2).unwrap()];
    let mut w2 = w1.clone();
    let (mut a, mut b) = ([0.0f32; B * 2], [0.0f32; B * 2]);
    model::forward(&SPEC, &p, Sequences::Values(&x), B, &mut w1, &mut a).unwrap();
    Model::new(&SPEC, &p).forward(Sequences::Values(&x), &mut w2, &mut b).unwrap();
    assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
    // Logits and hidden states too.
    model::forward_logits(&SPEC, &p, Sequences::Values(&x), B, &mut w1, &mut a).unwrap();
    Model::new(&SPEC, &p).forward_logits(Sequences::Values(&x), &mut w2, &mut b).unwrap();
    assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
    let (mut h1, mut h2) = ([0.0f32; B * 4], [0.0f32; B * 4]);
    model::forward_hidden(&SPEC, &p, Sequences::Values(&x), B, &mut w1, &mut h1).unwrap();
    Model::new(&SPEC, &p).forward_hidden(Sequences::Values(&x), &mut w2, &mut h2).unwrap();
    assert_eq!(h1.map(f32::to_bits), h2.map(f32::to_bits));
}

#[test]
fn model_step_equals_free_step_and_the_full_pass() {
    let p = params();
    let x = inputs();
    let model = Model::new(&SPEC, &p);
    let mut full = [0.0f32; 2];
    let mut fw = vec![0.0f32; SPEC.forward_work_len(1, 1).unwrap()];
    model.forward(Sequences::Values(&x[..T * 3]), &mut fw, &mut full).unwrap();

    let (mut s1, mut s2) = (vec![0.0f32; 8], vec![0.0f32; 8]); // 2·H·B = 2·4·1
    let (mut w1, mut w2) = (vec![0.0f32; 64], vec![0.0f32; 64]);
    let mut stream = Stream { state: &mut s2, work: &mut w2 };
    let (mut o1, mut o2) = ([0.0f32; 2], [0.0f32; 2]);
    for xt in x[..T * 3].chunks_exact(3) {
        let xt = Sequences::Values(xt);
        model::step(&SPEC, &p, xt, 1, &mut s1, &mut w1, Some(&mut o1)).unwrap();
        model.step_outputs(&mut stream, xt, &mut o2).unwrap();
    }
    assert_eq!(o1.map(f32::to_bits), o2.map(f32::to_bits));
    assert_eq!(o2.map(f32::to_bits), full.map(f32::to_bits));
    // `step` without outputs moves the state the same way; `reset` zeroes it.
    model.step(&mut stream, Sequences::Values(&x[..3])).unwrap();
    assert!(stream.state.iter().any(|v| *v != 0.0));
    stream.reset();
    assert!(stream.state.iter().all(|v| *v == 0.0));
}

#[test]
fn model_reads_the_batch_from_its_row_buffers() {
    let p = params();
    let x = inputs();
    let model = Model::new(&SPEC, &p);
    let mut w = vec![0.0f32; SPEC.forward_work_len(B, 1).unwrap()];
    // 3 floats are not whole rows of K = 2 outputs: the nearest whole count is 2 (one row).
    let e = model.forward(Sequences::Values(&x), &mut w, &mut [0.0; 3]);
    assert_eq!(e, Err(Error::BufferLength { what: "output", expected: 2, actual: 3 }));
    assert_eq!(model.forward(Sequences::Values(&x), &mut w, &mut []), Err(Error::EmptyBatch));
    // Hidden rows are H = 4 wide.
    let e = model.forward_hidden(Sequences::Values(&x), &mut w, &mut [0.0; 6]);
    assert_eq!(e, Err(Error::BufferLength { what: "hidden state", expected: 4, actual: 6 }));
    // A streaming step of 4 values is not whole steps of C = 3.
    let (mut s, mut sw) = (vec![0.0f32; 8], vec![0.0f32; 64]);
    let mut stream = Stream { state: &mut s, work: &mut sw };
    let e = model.step(&mut stream, Sequences::Values(&[0.0; 4]));
    let what = "streaming input (one step per sequence)";
    assert_eq!(e, Err(Error::BufferLength { what, expected: 3, actual: 4 }));
    // Two sequences' step with a one-sequence state: the state names its length (2·4·2 = 16).
    let e = model.step(&mut stream, Sequences::Values(&[0.0; 6]));
    assert_eq!(e, Err(Error::BufferLength { what: "state", expected: 16, actual: 8 }));
}

// -------------------------------------------------------------------------------------------
// Trainer = loss_and_grad + penalties + OptimizerConfig::apply, bit for bit.

#[test]
fn trainer_step_equals_the_free_functions() {
    let x = inputs();
    let labels = [1u32, 0];
    let batch =
        Batch { inputs: Sequences::Values(&x), targets: Targets::Classes(&labels), batch: B };
    let options = TrainOptions { bptt: Bptt::truncated(3), norm: 0 };
    let optimizer = OptimizerConfig::new(Optimizer::adam())
        .with_schedule(Schedule::cosine_decay(1e-2, 10, 0.1))
        .with_clip(Clip::global_norm(1.0));
    let penalties = Penalties::kernels(&SPEC, Penalty { l1: 1e-3, l2: 1e-2 });
    let work_len = SPEC.train_work_len(B, T, options.bptt).unwrap();

    // By hand, three steps.
    let mut p1 = params();
    let mut st1 = vec![0.0f32; optimizer.state_len(P)];
    let mut w1 = vec![0.0f32; work_len];
    let mut losses1 = vec![];
    for it in 0..3 {
        let mut g = vec![0.0f32; P];
        let mut loss =
            loss_and_grad(&SPEC, &p1, &batch, &options, TrainBuffers::new(&mut w1, &mut g))
                .unwrap();
        loss += penalties.add_loss_and_grad(&SPEC, &p1, &mut g).unwrap();
        optimizer.apply(&SPEC, 0..P, it, &mut p1, &mut g, &mut st1).unwrap();
        losses1.push(loss);
    }

    // With a Trainer.
    let mut p2 = params();
    let mut st2 = vec![0.0f32; optimizer.state_len(P)];
    let (mut w2, mut g2) = (vec![0.0f32; work_len], vec![7.0f32; P]); // stale gradient: cleared
    let mut trainer = Trainer {
        spec: &SPEC,
        options,
        optimizer,
        penalties,
        iteration: 0,
        work: &mut w2,
        grads: &mut g2,
        optimizer_state: &mut st2,
    };
    let mut outputs = [0.0f32; B * 2];
    let mut losses2 = vec![trainer.step_outputs(&mut p2, &batch, &mut outputs).unwrap()];
    losses2.push(trainer.step(&mut p2, &batch).unwrap());
    losses2.push(trainer.step(&mut p2, &batch).unwrap());
    assert_eq!(trainer.iteration, 3);
    assert_eq!(losses1, losses2);
    assert_eq!(st1, st2);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&p1), bits(&p2));
    // The outputs of the first step are the model's outputs before the update: rows of a softmax.
    for row in outputs.chunks_exact(2) {
        assert!((row[0] + row[1] - 1.0).abs() < 1e-6, "{row:?}");
    }
}

#[test]
fn trainer_error_leaves_parameters_state_and_iteration_unchanged() {
    let x = inputs();
    let batch =
        Batch { inputs: Sequences::Values(&x), targets: Targets::Classes(&[1, 0]), batch: B };
    let optimizer = OptimizerConfig::new(Optimizer::adam()).with_lr(f32::NAN);
    let (mut w, mut g) =
        (vec![0.0f32; SPEC.train_work_len(B, T, Bptt::FULL).unwrap()], vec![0.0; P]);
    let mut st = vec![0.0f32; optimizer.state_len(P)];
    let mut trainer = Trainer {
        spec: &SPEC,
        options: TrainOptions::default(),
        optimizer,
        penalties: Penalties::NONE,
        iteration: 4,
        work: &mut w,
        grads: &mut g,
        optimizer_state: &mut st,
    };
    let mut p = params();
    let before = p.clone();
    let e = trainer.step(&mut p, &batch);
    assert_eq!(e, Err(Error::Hyperparameter(Hyperparameter::LearningRate)));
    assert_eq!(trainer.iteration, 4);
    assert_eq!(p, before);
    assert!(trainer.optimizer_state.iter().all(|v| *v == 0.0));
    // A gradient buffer of the wrong length is named with both lengths.
    let mut short = vec![0.0f32; P - 1];
    trainer.grads = &mut short;
    let e = trainer.step(&mut p, &batch);
    assert_eq!(e, Err(Error::BufferLength { what: "gradients", expected: P, actual: P - 1 }));
}

// -------------------------------------------------------------------------------------------
// Every error variant, with its numbers and its message in words.

#[test]
fn buffer_length_names_the_buffer_and_both_lengths() {
    let p = params();
    let x = inputs();
    let mut w = vec![0.0f32; SPEC.forward_work_len(B, 1).unwrap()];
    let mut out = [0.0f32; B * 2];
    let e = model::forward(&SPEC, &p[..P - 3], Sequences::Values(&x), B, &mut w, &mut out);
    assert_eq!(e, Err(Error::BufferLength { what: "parameters", expected: P, actual: P - 3 }));
    // The minimum work: state 2·4·2 = 16, one step of tape 2·3 + 2·16 + 2·2·2·4 = 70: 86.
    let need = 16 + (B * 3 + B * 16 + 2 * 2 * B * 4);
    assert_eq!(SPEC.forward_work_len(B, 1), Some(need));
    let e = model::forward(&SPEC, &p, Sequences::Values(&x), B, &mut w[..need - 1], &mut out);
    assert_eq!(e, Err(Error::BufferLength { what: "work", expected: need, actual: need - 1 }));
    let e = model::forward(&SPEC, &p, Sequences::Values(&x), B, &mut w, &mut out[..3]);
    let err = e.unwrap_err();
    assert_eq!(err, Error::BufferLength { what: "output", expected: 4, actual: 3 });
    assert_eq!(err.to_string(), "output buffer has length 3, expected 4");
}

#[test]
fn token_out_of_range_names_the_id_its_position_and_the_vocabulary() {
    let spec = Spec::tokens(10, 2).lstm(3).dense(1, Head::Sigmoid);
    let p = vec![0.0f32; spec.param_count()];
    let mut w = vec![0.0f32; spec.forward_work_len(1, 1).unwrap()];
    let e = Model::new(&spec, &p).forward(Sequences::Tokens(&[3, 12, 1]), &mut w, &mut [0.0]);
    let err = e.unwrap_err();
    assert_eq!(err, Error::TokenOutOfRange { index: 1, token: 12, vocab: 10 });
    assert_eq!(err.to_string(), "token id 12 at input position 1 is outside the vocabulary of 10");
}

#[test]
fn label_out_of_range_names_the_label_and_the_number_of_outputs() {
    let logits = [0.0f32; 6];
    let mut d = [0.0f32; 6];
    let e =
        loss::loss_and_grad(Head::Softmax, 3, 2, &logits, Targets::Classes(&[2, 5]), 2.0, &mut d);
    let err = e.unwrap_err();
    assert_eq!(err, Error::LabelOutOfRange { index: 1, label: 5, outputs: 3 });
    assert_eq!(err.to_string(), "label 5 of sample 1 is not below the number of outputs (3)");
}

#[test]
fn empty_batch_is_its_own_error() {
    let p = params();
    let mut w = vec![0.0f32; 256];
    let e = model::forward(&SPEC, &p, Sequences::Values(&[0.0; 3]), 0, &mut w, &mut []);
    assert_eq!(e, Err(Error::EmptyBatch));
    let batch = Batch { inputs: Sequences::Values(&[]), targets: Targets::Classes(&[]), batch: 0 };
    let mut g = vec![0.0f32; P];
    let e = loss_and_grad(
        &SPEC,
        &p,
        &batch,
        &TrainOptions::default(),
        TrainBuffers::new(&mut w, &mut g),
    );
    assert_eq!(e, Err(Error::EmptyBatch));
    assert_eq!(Error::EmptyBatch.to_string(), "invalid argument: batch size must be at least 1");
}

#[test]
fn hyperparameters_are_named_in_the_error_and_the_message() {
    let e = Optimizer::sgd().with_momentum(2.0).validate().unwrap_err();
    assert_eq!(e, Error::Hyperparameter(Hyperparameter::Momentum));
    assert_eq!(e.to_string(), "invalid argument: SGD momentum must be in [0, 1]");
    // The loss normaliser.
    let mut d = [0.0f32; 2];
    let e =
        loss::loss_and_grad(Head::Linear, 1, 2, &[0.0; 2], Targets::Values(&[0.0; 2]), 0.0, &mut d);
    assert_eq!(e, Err(Error::Hyperparameter(Hyperparameter::LossNorm)));
    // The rate of one optimizer step may be 0 but not negative.
    let mut w = [1.0f32];
    assert!(Optimizer::sgd().step(0.0, 0, &mut w, &[1.0], &mut []).is_ok());
    let e = Optimizer::sgd().step(-1.0, 0, &mut w, &[1.0], &mut []);
    assert_eq!(e, Err(Error::Hyperparameter(Hyperparameter::StepLearningRate)));
    assert_eq!(
        Error::Hyperparameter(Hyperparameter::CosineAlpha).to_string(),
        "invalid argument: cosine decay alpha must be in [0, 1]"
    );
}

#[test]
fn conflicting_clips_and_ranges_out_of_bounds() {
    let e = Clip { value: Some(1.0), norm: None, global_norm: Some(2.0) }.validate();
    assert_eq!(e, Err(Error::ConflictingClips));
    let cfg = OptimizerConfig::new(Optimizer::sgd());
    let (mut p, mut g) = (params(), vec![0.0f32; P]);
    let e = cfg.apply(&SPEC, 100..P + 5, 0, &mut p, &mut g, &mut []);
    let err = e.unwrap_err();
    assert_eq!(err, Error::RangeOutOfBounds { start: 100, end: P + 5, len: P });
    assert_eq!(
        err.to_string(),
        "invalid argument: parameter range 100..143 is outside the parameter buffer of 138"
    );
}

#[test]
fn non_finite_gradient_and_rate() {
    let cfg = OptimizerConfig::new(Optimizer::sgd());
    let (mut p, mut g) = (params(), vec![0.0f32; P]);
    g[7] = f32::NAN;
    assert_eq!(cfg.apply(&SPEC, 0..P, 0, &mut p, &mut g, &mut []), Err(Error::NonFiniteGradient));
    // 1e30 · 10^10 overflows f32 (max 3.4e38) at iteration 10.
    let growing = cfg.with_schedule(Schedule::exponential_decay(1e30, 1, 10.0, false));
    g[7] = 0.0;
    let err = growing.apply(&SPEC, 0..P, 10, &mut p, &mut g, &mut []).unwrap_err();
    assert_eq!(err, Error::NonFiniteRate { iteration: 10 });
    assert_eq!(
        err.to_string(),
        "invalid argument: learning-rate schedule gave a non-finite rate at step 10"
    );
}

#[test]
fn token_models_have_no_input_gradient() {
    let spec = Spec::tokens(5, 2).lstm(3).dense(1, Head::Sigmoid);
    let p = vec![0.0f32; spec.param_count()];
    let mut g = vec![0.0f32; spec.param_count()];
    let mut w = vec![0.0f32; spec.train_work_len(1, 2, Bptt::FULL).unwrap()];
    let batch =
        Batch { inputs: Sequences::Tokens(&[1, 2]), targets: Targets::Values(&[1.0]), batch: 1 };
    let mut ig = [0.0f32; 2];
    let e = loss_and_grad(
        &spec,
        &p,
        &batch,
        &TrainOptions::default(),
        TrainBuffers::new(&mut w, &mut g).with_input_grad(&mut ig),
    );
    assert_eq!(e, Err(Error::NoInputGradient));
}

#[test]
fn orthogonal_shape_names_rows_and_columns() {
    let mut w = [0.0f32; 6];
    let err = orthogonal_rows(3, 2, &mut Rng::new(1), &mut w).unwrap_err();
    assert_eq!(err, Error::OrthogonalShape { rows: 3, cols: 2 });
    assert_eq!(err.to_string(), "invalid argument: orthogonal rows need rows <= cols, got 3 x 2");
}

#[test]
fn size_overflow_and_spec_errors() {
    let p = params();
    let e = model::forward(&SPEC, &p, Sequences::Values(&[0.0; 3]), usize::MAX, &mut [], &mut []);
    assert_eq!(e, Err(Error::SizeOverflow { what: "input" }));
    let bad = Spec::channels(3).dense(2, Head::Softmax);
    let e = Model::new(&bad, &p).forward(Sequences::Values(&[0.0; 3]), &mut [], &mut [0.0; 2]);
    assert!(matches!(e, Err(Error::Spec(_))), "{e:?}");
    // The spec's error comes first also when the buffers would be wrong for it.
    let e = Model::new(&bad, &p).forward_hidden(Sequences::Values(&[0.0; 3]), &mut [], &mut []);
    assert!(matches!(e, Err(Error::Spec(_))), "{e:?}");
    let (mut s, mut w) = ([0.0f32; 4], [0.0f32; 4]);
    let mut stream = Stream { state: &mut s, work: &mut w };
    let e = Model::new(&bad, &p).step(&mut stream, Sequences::Values(&[0.0; 2]));
    assert!(matches!(e, Err(Error::Spec(_))), "{e:?}");
    // Messages are words, not Debug names.
    assert_eq!(Error::NonFiniteInput.to_string(), "invalid argument: non-finite input");
    assert_eq!(Error::NonFiniteGradient.to_string(), "invalid argument: non-finite gradient");
}

/// A model with an int8 Embedding runs on the table in place (`*_int8`) with exactly the bits
/// of the flat buffer holding the dequantised table (what the host reads from the file), for
/// the batched forward, the hidden state and streaming, masked or not.
#[test]
fn int8_embedding_forward_equals_the_dequantised_flat_model_bit_for_bit() {
    use tinylstm::format::{write_into_with, EmbeddingStorage, ModelFile};
    for spec in [
        Spec::tokens(11, 6).lstm(5).lstm(3).dense(2, Head::Softmax),
        Spec::tokens(9, 4).mask_zero().lstm(7).dense(1, Head::Sigmoid),
    ] {
        let mut params = vec![0.0f32; spec.param_count()];
        init_params(&spec, 5, &mut params).unwrap();
        let mut bytes = vec![0u8; 1 << 16];
        let n = write_into_with(&spec, &params, &[], EmbeddingStorage::Int8, &mut bytes).unwrap();
        let file = ModelFile::parse(&bytes[..n]).unwrap();
        let table = file.embedding_int8().unwrap();
        let rest: Vec<f32> = file.params().skip(spec.embedding_len()).collect();
        let mut flat = vec![0.0f32; spec.param_count()];
        file.read_params(&mut flat).unwrap();
        assert_ne!(flat[..spec.embedding_len()], params[..spec.embedding_len()], "quantised");
        let (b, t, k) = (3usize, 7usize, spec.outputs);
        let ids: Vec<u32> = (0..b * t).map(|i| ((i * 5 + 1) % 9) as u32).collect();
        let mut work = vec![0.0f32; spec.forward_work_len(b, 2).unwrap()];
        let (mut want, mut got) = (vec![0.0f32; b * k], vec![0.0f32; b * k]);
        model::forward_logits(&spec, &flat, Sequences::Tokens(&ids), b, &mut work, &mut want)
            .unwrap();
        model::forward_logits_int8(
            &spec,
            table,
            &rest,
            Sequences::Tokens(&ids),
            b,
            &mut work,
            &mut got,
        )
        .unwrap();
        assert_eq!(bits(&got), bits(&want), "{spec:?}");
        let h = spec.top_units();
        let (mut hw, mut hg) = (vec![0.0f32; b * h], vec![0.0f32; b * h]);
        model::forward_hidden(&spec, &flat, Sequences::Tokens(&ids), b, &mut work, &mut hw)
            .unwrap();
        model::forward_hidden_int8(
            &spec,
            table,
            &rest,
            Sequences::Tokens(&ids),
            b,
            &mut work,
            &mut hg,
        )
        .unwrap();
        assert_eq!(bits(&hg), bits(&hw));
        // Streaming one sequence step by step ends on the batched outputs of that sequence.
        let mut state = vec![0.0f32; spec.state_len(1).unwrap()];
        let mut sw = vec![0.0f32; spec.step_work_len(1).unwrap()];
        let mut o = vec![0.0f32; k];
        for &id in &ids[..t] {
            model::step_int8(
                &spec,
                table,
                &rest,
                Sequences::Tokens(&[id]),
                1,
                &mut state,
                &mut sw,
                Some(&mut o),
            )
            .unwrap();
        }
        let mut probs = want[..k].to_vec();
        model::activate(spec.head, k, &mut probs);
        assert_eq!(bits(&o), bits(&probs));
        // Wrong sizes are errors, not panics.
        assert!(model::forward_logits_int8(
            &spec,
            table,
            &rest[1..],
            Sequences::Tokens(&ids),
            b,
            &mut work,
            &mut got
        )
        .is_err());
        let other = Spec::tokens(12, 6).lstm(5).lstm(3).dense(2, Head::Softmax);
        assert!(model::forward_logits_int8(
            &other,
            table,
            &rest,
            Sequences::Tokens(&ids),
            b,
            &mut work,
            &mut got
        )
        .is_err());
    }
}

fn bits(xs: &[f32]) -> Vec<u32> {
    xs.iter().map(|x| x.to_bits()).collect()
}
