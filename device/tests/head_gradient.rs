//! Head-only training on cached features gets the bits of a full training pass: the features
//! from `model::forward_hidden` and the head's loss and gradient from
//! `train::dense_loss_and_grad` equal the loss and the head part of `train::loss_and_grad`'s
//! gradient, for every head kind and stacked layers.

use tinylstm::model::forward_hidden;
use tinylstm::train::{
    dense_loss_and_grad, loss_and_grad, Batch, Bptt, HeadBatch, HeadBuffers, TrainBuffers,
    TrainOptions,
};
use tinylstm::{Head, Sequences, Spec, Targets};

fn check(spec: Spec, seed: u64) {
    const B: usize = 3;
    const T: usize = 6;
    let mut params = vec![0.0f32; spec.param_count()];
    tinylstm::init::init_params(&spec, seed, &mut params).unwrap();
    params.iter_mut().enumerate().for_each(|(i, p)| *p += 0.01 * ((i * 7 % 13) as f32 - 6.0));
    let w = spec.step_width();
    let x: Vec<f32> = (0..B * T * w).map(|i| ((i * 37 % 23) as f32 - 11.0) / 9.0).collect();
    let k = spec.outputs;
    let classes = [0u32, 1, (k - 1) as u32];
    let values: Vec<f32> = (0..B * k).map(|i| (i % 2) as f32).collect();
    let targets = match spec.head {
        Head::Softmax => Targets::Classes(&classes),
        _ => Targets::Values(&values),
    };
    // The full pass (a one-step window: only the head's gradient is compared).
    let bptt = Bptt::truncated(1);
    let mut work = vec![0.0f32; spec.train_work_len(B, T, bptt).unwrap()];
    let mut grads = vec![0.0f32; spec.param_count()];
    let batch = Batch { inputs: Sequences::Values(&x), targets, batch: B };
    let opts = TrainOptions { bptt, norm: 0 };
    let loss =
        loss_and_grad(&spec, &params, &batch, &opts, TrainBuffers::new(&mut work, &mut grads))
            .unwrap();
    // Cached features, one sequence at a time, then the head alone.
    let h = spec.top_units();
    let mut feats = vec![0.0f32; B * h];
    let mut fw = vec![0.0f32; spec.forward_work_len(1, 1).unwrap()];
    for b in 0..B {
        let xb = Sequences::Values(&x[b * T * w..(b + 1) * T * w]);
        forward_hidden(&spec, &params, xb, 1, &mut fw, &mut feats[b * h..(b + 1) * h]).unwrap();
    }
    let (mut lg, mut dl) = (vec![0.0f32; B * k], vec![0.0f32; B * k]);
    let mut hg = vec![0.0f32; spec.head_range().len()];
    let head = &params[spec.head_range()];
    let cached = HeadBatch { features: &feats, targets, batch: B };
    let buffers = HeadBuffers { logits: &mut lg, dlogits: &mut dl, grads: &mut hg };
    let hl = dense_loss_and_grad(&spec, head, &cached, &opts, buffers).unwrap();
    assert_eq!(hl.to_bits(), loss.to_bits(), "{spec:?}: loss");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&hg), bits(&grads[spec.head_range()]), "{spec:?}: head gradient");
    assert!(hg.iter().any(|g| *g != 0.0));
}

#[test]
fn head_gradient_on_features_equals_the_full_pass() {
    check(Spec::channels(3).lstm(5).dense(4, Head::Softmax), 1);
    check(Spec::channels(2).lstm(4).lstm(3).dense(2, Head::Sigmoid), 2);
    check(Spec::channels(1).lstm(6).dense(1, Head::Linear), 3);
}
