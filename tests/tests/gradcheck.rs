//! Central-difference gradient checks of the whole training pass on random specs.
//!
//! The loss is re-evaluated with the streaming forward pass (`model::step`, a different code
//! path from the training pass) and the loss formula written out here in f64, at `θ ± ε` for
//! every parameter. Truncated BPTT is checked against the function it differentiates: the
//! steps before the window run with the unperturbed parameters, so the window's starting
//! state is a constant.
//!
//! Tolerance: `|numeric − analytic| ≤ 2e-3 + 2e-2·|analytic|`. With ε = 4e-3 on a loss of order
//! 1 computed in f32, rounding contributes about 1e-7/ε ≈ 3e-5 to the numeric derivative and
//! the O(ε²) truncation term stays below 1e-4 for these small random models; a wrong term in a
//! gradient (a missing gate, a dropped recurrent path) shows up as an error of order the
//! gradient itself, far above the bound.
//!
//! Masked cases put masked steps inside sequences, at their start and end, and fill whole
//! sequences with them, under full and truncated BPTT. The input gradient of a masked step is
//! zero by definition (Keras's `Masking` multiplies the input by its mask), and a central
//! difference there would unmask the step, so those inputs are checked to be exactly zero.

mod common;

use tinylstm::init::init_params;
use tinylstm::model;
use tinylstm::penalty::{Penalties, Penalty};
use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainBuffers, TrainOptions};
use tinylstm::{Head, InputKind, Mask, Sequences, Spec, Targets, TensorKind};

const EPS: f32 = 4e-3;

struct Case {
    name: &'static str,
    spec: Spec,
    batch: usize,
    steps: usize,
    bptt: Bptt,
    penalties: Penalties,
    seed: u64,
    /// `(sequence, step)` pairs set to the mask value (or token id 0); needs a spec with a mask.
    masked: &'static [(usize, usize)],
}

struct Data {
    tokens: Vec<u32>,
    values: Vec<f32>,
    classes: Vec<u32>,
    targets: Vec<f32>,
}

/// A small deterministic generator for test data (independent of the core's PRNG).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (((self.next() + 1.0) * 0.5 * n as f32) as usize).min(n - 1)
    }
}

fn data(c: &Case) -> Data {
    let mut r = Lcg(c.seed);
    let (b, t, k) = (c.batch, c.steps, c.spec.outputs);
    let mut d = Data { tokens: vec![], values: vec![], classes: vec![], targets: vec![] };
    match c.spec.input {
        // With mask_zero only the chosen steps hold id 0.
        InputKind::Tokens { vocab, .. } if c.spec.mask == Mask::Zero => {
            d.tokens = (0..b * t).map(|_| 1 + r.below(vocab - 1) as u32).collect()
        }
        InputKind::Tokens { vocab, .. } => {
            d.tokens = (0..b * t).map(|_| r.below(vocab) as u32).collect()
        }
        InputKind::Channels(ch) => d.values = (0..b * t * ch).map(|_| r.next()).collect(),
    }
    let sw = c.spec.step_width();
    for &(row, step) in c.masked {
        match c.spec.mask {
            Mask::Zero => d.tokens[row * t + step] = 0,
            Mask::Value(m) => d.values[(row * t + step) * sw..(row * t + step + 1) * sw].fill(m),
            Mask::Off => panic!("{}: masked steps need a spec with a mask", c.name),
        }
    }
    match c.spec.head {
        Head::Softmax => d.classes = (0..b).map(|_| r.below(k) as u32).collect(),
        Head::Sigmoid => d.targets = (0..b * k).map(|_| r.below(2) as f32).collect(),
        Head::Linear => d.targets = (0..b * k).map(|_| r.next()).collect(),
    }
    d
}

fn inputs<'a>(d: &'a Data) -> Sequences<'a> {
    if d.tokens.is_empty() {
        Sequences::Values(&d.values)
    } else {
        Sequences::Tokens(&d.tokens)
    }
}

/// Loss by streaming: steps before the window use `base`, the window uses `params`.
/// Inputs may be overridden (for the input-gradient check).
fn streamed_loss(c: &Case, d: &Data, base: &[f32], params: &[f32], values: Option<&[f32]>) -> f64 {
    let spec = &c.spec;
    let (b, t, k) = (c.batch, c.steps, spec.outputs);
    let (w, _) = c.bptt.resolve(t);
    let sw = spec.step_width();
    let mut state = vec![0.0; spec.state_len(b).unwrap()];
    let mut work = vec![0.0; spec.step_work_len(b).unwrap()];
    let mut out = vec![0.0; b * k];
    for ti in 0..t {
        let p = if ti < t - w { base } else { params };
        let (mut ids, mut xs) = (Vec::new(), Vec::new());
        for r in 0..b {
            match spec.input {
                InputKind::Tokens { .. } => ids.push(d.tokens[r * t + ti]),
                InputKind::Channels(_) => {
                    let v = values.unwrap_or(&d.values);
                    xs.extend_from_slice(&v[(r * t + ti) * sw..(r * t + ti + 1) * sw]);
                }
            }
        }
        let x = if ids.is_empty() { Sequences::Values(&xs) } else { Sequences::Tokens(&ids) };
        model::step(spec, p, x, b, &mut state, &mut work, Some(&mut out)).unwrap();
    }
    let mut loss = 0.0f64;
    for r in 0..b {
        let o = &out[r * k..(r + 1) * k];
        loss += match spec.head {
            Head::Softmax => -(o[d.classes[r] as usize] as f64).ln(),
            Head::Sigmoid => {
                o.iter()
                    .zip(&d.targets[r * k..(r + 1) * k])
                    .map(|(&p, &y)| {
                        let p = p as f64;
                        -(y as f64 * p.ln() + (1.0 - y as f64) * (1.0 - p).ln())
                    })
                    .sum::<f64>()
                    / k as f64
            }
            Head::Linear => {
                o.iter()
                    .zip(&d.targets[r * k..(r + 1) * k])
                    .map(|(&p, &y)| (p as f64 - y as f64).powi(2))
                    .sum::<f64>()
                    / k as f64
            }
        };
    }
    loss /= b as f64;
    for (tensor, p) in spec.tensors().zip(c.penalties.per_tensor.iter()) {
        for &wv in &params[tensor.range()] {
            loss += p.l1 as f64 * (wv as f64).abs() + p.l2 as f64 * (wv as f64).powi(2);
        }
    }
    loss
}

fn analytic(c: &Case, d: &Data, params: &[f32]) -> (f32, Vec<f32>, Vec<f32>) {
    let spec = &c.spec;
    let targets = if d.classes.is_empty() {
        Targets::Values(&d.targets)
    } else {
        Targets::Classes(&d.classes)
    };
    let batch = Batch { inputs: inputs(d), targets, batch: c.batch };
    let opts = TrainOptions { bptt: c.bptt, norm: 0 };
    let mut work = vec![0.0; spec.train_work_len(c.batch, c.steps, c.bptt).unwrap()];
    let mut grads = vec![0.0; spec.param_count()];
    let mut ig = vec![0.0; d.values.len()];
    let ig_opt = if d.values.is_empty() { None } else { Some(&mut ig[..]) };
    let loss = loss_and_grad(
        spec,
        params,
        &batch,
        &opts,
        TrainBuffers { work: &mut work, grads: &mut grads, input_grad: ig_opt, outputs: None },
    )
    .unwrap();
    let pen = c.penalties.add_loss_and_grad(spec, params, &mut grads).unwrap();
    (loss + pen, grads, ig)
}

fn close(num: f64, ana: f32) -> bool {
    (num - ana as f64).abs() <= 2e-3 + 2e-2 * (ana as f64).abs()
}

fn check(c: &Case) {
    let spec = &c.spec;
    assert!(spec.is_valid(), "{}", c.name);
    let d = data(c);
    let mut params = vec![0.0; spec.param_count()];
    init_params(spec, c.seed, &mut params).unwrap();
    // Keras zero-initialises the Dense bias and sets forget biases to 1; perturb every tensor so
    // no gradient path is hidden by a special value.
    let mut r = Lcg(c.seed ^ 0x9e37);
    for p in params.iter_mut() {
        *p += 0.1 * r.next();
    }
    let (loss, grads, ig) = analytic(c, &d, &params);
    let base_loss = streamed_loss(c, &d, &params, &params, None);
    assert!(
        (base_loss - loss as f64).abs() <= 1e-5 * (1.0 + base_loss.abs()),
        "{}: training loss {loss} vs streamed loss {base_loss}",
        c.name
    );
    if spec.mask == Mask::Zero {
        // Keras: the padding row of a mask_zero embedding gets no gradient at all.
        let e = spec.tensor(0).unwrap();
        assert!(c.penalties.per_tensor[0].l1 == 0.0 && c.penalties.per_tensor[0].l2 == 0.0);
        assert!(grads[..e.cols].iter().all(|&g| g == 0.0), "{}: embedding row 0", c.name);
    }
    let l1_active = c.penalties.per_tensor.iter().any(|p| p.l1 != 0.0);
    let mut worst = 0.0f64;
    let mut checked = 0;
    for i in 0..params.len() {
        if l1_active && params[i].abs() < 2.0 * EPS {
            continue; // |w| has a kink at 0: a central difference across it is meaningless.
        }
        let mut p = params.clone();
        p[i] = params[i] + EPS;
        let up = streamed_loss(c, &d, &params, &p, None);
        p[i] = params[i] - EPS;
        let down = streamed_loss(c, &d, &params, &p, None);
        let num = (up - down) / (2.0 * EPS as f64);
        assert!(
            close(num, grads[i]),
            "{}: parameter {i} ({:?}): analytic {} numeric {num}",
            c.name,
            spec.tensors().find(|t| t.range().contains(&i)).map(|t| (t.kind, t.layer)),
            grads[i]
        );
        worst = worst.max((num - grads[i] as f64).abs() / (2e-3 + 2e-2 * (grads[i] as f64).abs()));
        checked += 1;
    }
    let (w, _) = c.bptt.resolve(c.steps);
    let sw = spec.step_width();
    for i in 0..d.values.len() {
        let (row, step) = (i / sw / c.steps, (i / sw) % c.steps);
        if c.masked.contains(&(row, step)) {
            assert_eq!(ig[i], 0.0, "{}: input {i} of a masked step", c.name);
            continue;
        }
        if step < c.steps - w {
            // Before the truncation window the input gradient is zero by definition.
            assert_eq!(ig[i], 0.0, "{}: input {i} before the window", c.name);
            continue;
        }
        let mut v = d.values.clone();
        v[i] += EPS;
        let up = streamed_loss(c, &d, &params, &params, Some(&v));
        v[i] -= 2.0 * EPS;
        let down = streamed_loss(c, &d, &params, &params, Some(&v));
        let num = (up - down) / (2.0 * EPS as f64);
        assert!(close(num, ig[i]), "{}: input {i}: analytic {} numeric {num}", c.name, ig[i]);
        worst = worst.max((num - ig[i] as f64).abs() / (2e-3 + 2e-2 * (ig[i] as f64).abs()));
    }
    println!(
        "{}: {checked} parameters and {} inputs checked, worst error / bound = {worst:.3}",
        c.name,
        d.values.len()
    );
}

fn cases() -> Vec<Case> {
    let sm = Spec::channels(3).lstm(5).dense(3, Head::Softmax);
    vec![
        Case {
            name: "channels softmax, H=5",
            spec: sm,
            batch: 2,
            steps: 6,
            bptt: Bptt::FULL,
            penalties: Penalties::NONE,
            seed: 1,
            masked: &[],
        },
        Case {
            name: "channels sigmoid K=2, T=1",
            spec: Spec::channels(4).lstm(3).dense(2, Head::Sigmoid),
            batch: 3,
            steps: 1,
            bptt: Bptt::FULL,
            penalties: Penalties::NONE,
            seed: 2,
            masked: &[],
        },
        Case {
            name: "channels linear, stacked 3 layers (H=4,7,5)",
            spec: Spec::channels(2).lstm(4).lstm(7).lstm(5).dense(2, Head::Linear),
            batch: 2,
            steps: 5,
            bptt: Bptt::FULL,
            penalties: Penalties::NONE,
            seed: 3,
            masked: &[],
        },
        Case {
            name: "tokens sigmoid, 2 layers, L2 on kernels",
            spec: Spec::tokens(7, 3).lstm(6).lstm(4).dense(1, Head::Sigmoid),
            batch: 3,
            steps: 5,
            bptt: Bptt::FULL,
            penalties: Penalties::kernels(
                &Spec::tokens(7, 3).lstm(6).lstm(4).dense(1, Head::Sigmoid),
                Penalty::l2(0.01),
            ),
            seed: 4,
            masked: &[],
        },
        Case {
            name: "tokens softmax, L1 on every tensor kind",
            spec: Spec::tokens(6, 4).lstm(5).dense(3, Head::Softmax),
            batch: 2,
            steps: 4,
            bptt: Bptt::FULL,
            penalties: {
                let s = Spec::tokens(6, 4).lstm(5).dense(3, Head::Softmax);
                Penalties::kernels(&s, Penalty::l1(0.003))
                    .with_kind(&s, TensorKind::RecurrentKernel, Penalty::l1_l2(0.002, 0.01))
                    .with_kind(&s, TensorKind::Embedding, Penalty::l2(0.02))
                    .with_kind(&s, TensorKind::Bias, Penalty::l1(0.001))
            },
            seed: 5,
            masked: &[],
        },
        Case {
            name: "channels softmax, truncated BPTT k=3 of T=8",
            spec: sm,
            batch: 2,
            steps: 8,
            bptt: Bptt::truncated(3),
            penalties: Penalties::NONE,
            seed: 6,
            masked: &[],
        },
        Case {
            name: "tokens linear, 2 layers, truncated k=4 of T=7 with recompute s=2",
            spec: Spec::tokens(9, 3).lstm(4).lstm(3).dense(1, Head::Linear),
            batch: 2,
            steps: 7,
            bptt: Bptt::truncated(4).recompute(2),
            penalties: Penalties::NONE,
            seed: 7,
            masked: &[],
        },
        Case {
            name: "channels sigmoid, 2 layers, full BPTT with recompute s=3 of T=7",
            spec: Spec::channels(3).lstm(9).lstm(2).dense(1, Head::Sigmoid),
            batch: 1,
            steps: 7,
            bptt: Bptt::FULL.recompute(3),
            penalties: Penalties::NONE,
            seed: 8,
            masked: &[],
        },
        Case {
            name: "masked channels softmax, 2 layers: inside, leading and trailing masked steps",
            spec: Spec::channels(3).masking(0.0).lstm(5).lstm(4).dense(3, Head::Softmax),
            batch: 3,
            steps: 7,
            bptt: Bptt::FULL,
            penalties: Penalties::NONE,
            seed: 9,
            masked: &[(0, 3), (1, 0), (1, 1), (1, 4), (2, 5), (2, 6)],
        },
        Case {
            name: "masked channels sigmoid K=2: one sequence entirely masked",
            spec: Spec::channels(2).masking(-1.0).lstm(4).dense(2, Head::Sigmoid),
            batch: 2,
            steps: 5,
            bptt: Bptt::FULL,
            penalties: Penalties::NONE,
            seed: 10,
            masked: &[(0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)],
        },
        Case {
            name: "masked channels linear, truncated k=4 of T=8, masks before, across and in the window",
            spec: Spec::channels(2).masking(0.5).lstm(6).lstm(3).dense(1, Head::Linear),
            batch: 2,
            steps: 8,
            bptt: Bptt::truncated(4),
            penalties: Penalties::NONE,
            seed: 11,
            masked: &[(0, 1), (0, 6), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)],
        },
        Case {
            name: "mask_zero tokens sigmoid, 2 layers: pre-, post- and inner padding, recompute s=2",
            spec: Spec::tokens(8, 3).mask_zero().lstm(5).lstm(3).dense(1, Head::Sigmoid),
            batch: 3,
            steps: 6,
            bptt: Bptt::FULL.recompute(2),
            penalties: Penalties::NONE,
            seed: 12,
            masked: &[(0, 0), (0, 1), (0, 2), (1, 4), (1, 5), (2, 2)],
        },
        Case {
            name: "mask_zero tokens softmax, truncated k=3 of T=7 with recompute s=2, L2",
            spec: Spec::tokens(6, 4).mask_zero().lstm(5).dense(3, Head::Softmax),
            batch: 2,
            steps: 7,
            bptt: Bptt::truncated(3).recompute(2),
            penalties: Penalties::kernels(
                &Spec::tokens(6, 4).mask_zero().lstm(5).dense(3, Head::Softmax),
                Penalty::l2(0.01),
            ),
            seed: 13,
            masked: &[(0, 0), (0, 5), (1, 3), (1, 4), (1, 6)],
        },
    ]
}

#[test]
fn gradients_match_central_differences() {
    for c in cases() {
        check(&c);
    }
}

/// Recomputation trades instructions for memory but must not change a single bit.
#[test]
fn recompute_is_bit_identical_to_full_tape() {
    for c in cases() {
        let d = data(&c);
        let mut params = vec![0.0; c.spec.param_count()];
        init_params(&c.spec, c.seed, &mut params).unwrap();
        let (loss_a, grads_a, ig_a) = analytic(&c, &d, &params);
        for seg in [1, 2, 3] {
            let c2 = Case { bptt: Bptt { segment: seg, ..c.bptt }, penalties: c.penalties, ..c };
            let (loss_b, grads_b, ig_b) = analytic(&c2, &d, &params);
            assert_eq!(loss_a.to_bits(), loss_b.to_bits(), "{} segment {seg}", c.name);
            assert!(grads_a.iter().zip(&grads_b).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(ig_a.iter().zip(&ig_b).all(|(a, b)| a.to_bits() == b.to_bits()));
            let reduced = c2.spec.tape_len(c.batch, c.steps, c2.bptt).unwrap();
            let full = c.spec.tape_len(c.batch, c.steps, Bptt { segment: 0, ..c.bptt }).unwrap();
            assert!(reduced <= full || seg >= c.steps, "{}: tape {reduced} > {full}", c.name);
        }
    }
}

/// Gradients accumulate: two half-batches with the full batch's normaliser sum to the full batch.
#[test]
fn gradients_accumulate_across_calls() {
    let spec = Spec::channels(3).lstm(5).dense(3, Head::Softmax);
    let c = Case {
        name: "accumulate",
        spec,
        batch: 4,
        steps: 5,
        bptt: Bptt::FULL,
        penalties: Penalties::NONE,
        seed: 11,
        masked: &[],
    };
    let d = data(&c);
    let mut params = vec![0.0; spec.param_count()];
    init_params(&spec, 11, &mut params).unwrap();
    let (loss, full, _) = analytic(&c, &d, &params);
    let mut grads = vec![0.0; spec.param_count()];
    let mut total = 0.0;
    for half in 0..2 {
        let x = &d.values[half * 2 * 5 * 3..(half + 1) * 2 * 5 * 3];
        let y = &d.classes[half * 2..(half + 1) * 2];
        let batch = Batch { inputs: Sequences::Values(x), targets: Targets::Classes(y), batch: 2 };
        let opts = TrainOptions { bptt: Bptt::FULL, norm: 4 };
        let mut work = vec![0.0; spec.train_work_len(2, 5, opts.bptt).unwrap()];
        total +=
            loss_and_grad(&spec, &params, &batch, &opts, TrainBuffers::new(&mut work, &mut grads))
                .unwrap();
    }
    common::assert_close("loss", &[total], &[loss], common::Tolerance { abs: 1e-6, rel: 1e-5 });
    common::assert_close("grads", &grads, &full, common::Tolerance { abs: 1e-6, rel: 1e-5 });
}
