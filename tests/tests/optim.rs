//! Optimizers, clipping and learning-rate schedules: against independent f64 re-implementations
//! of the Keras formulas, against the Keras `lr_schedules` fixture, against the first step of
//! every `optimizers` fixture variant (which only needs the fixture's gradients), and for error
//! handling (wrong lengths, non-finite gradients) that must never panic or modify anything.

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::Value;
use tinylstm::init::Rng;
use tinylstm::optim::{
    all_finite, clip_by_global_norm, clip_by_norm, clip_by_value, l2_norm, Clip, Method, Optimizer,
    OptimizerConfig, StateParts,
};
use tinylstm::schedule::{Decay, Schedule};
use tinylstm::{Error, Head, Hyperparameter as Hp, Spec};

// ---------------------------------------------------------------------------------------------
// helpers

fn fixture(name: &str) -> Value {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fixtures", "keras", name].iter().collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

/// Appends the numbers of a nested JSON array in row-major order.
fn flatten_into(v: &Value, out: &mut Vec<f32>) {
    match v {
        Value::Array(xs) => xs.iter().for_each(|x| flatten_into(x, out)),
        Value::Number(n) => out.push(n.as_f64().expect("number") as f32),
        other => panic!("unexpected JSON value {other}"),
    }
}

/// A list of tensors (Keras `get_weights()` order) as one flat buffer.
fn flat(v: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    flatten_into(v, &mut out);
    out
}

/// `|a − b| ≤ abs + rel·|b|` elementwise, naming the first offender.
fn assert_close(what: &str, actual: &[f32], expected: &[f64], abs: f64, rel: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (&a, &b)) in actual.iter().zip(expected).enumerate() {
        let err = (f64::from(a) - b).abs();
        let bound = abs + rel * b.abs();
        assert!(err <= bound, "{what}[{i}]: got {a:e}, expected {b:e}, |diff| {err:e} > {bound:e}");
    }
}

fn widen(xs: &[f32]) -> Vec<f64> {
    xs.iter().map(|&x| f64::from(x)).collect()
}

fn random_vec(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

// ---------------------------------------------------------------------------------------------
// schedules

/// Keras `lr_schedules` fixture. Learning rates are ~1e-3, so an absolute bound would be
/// meaningless; the bound is relative, 1e-5: our values are the same f32 formulas in TF's
/// operation order, so they differ from TF only by the last-ulp differences of `powf`/`cosf`
/// (~1e-7 relative); a semantic error (off-by-one step, missing floor, wrong alpha) is ≥ 4e-4.
#[test]
fn keras_lr_schedules_fixture() {
    let f = fixture("lr_schedules.json");
    assert_eq!(f["case"], "lr_schedules");
    let steps: Vec<u32> =
        f["steps"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap() as u32).collect();
    let cases = [
        ("exponential_decay", Schedule::exponential_decay(1e-3, 100, 0.96, false)),
        ("exponential_decay_staircase", Schedule::exponential_decay(1e-3, 100, 0.96, true)),
        ("cosine_decay", Schedule::cosine_decay(1e-3, 1000, 0.1)),
    ];
    for (name, schedule) in cases {
        schedule.validate().unwrap();
        let expected: Vec<f64> =
            f[name]["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(expected.len(), steps.len());
        let got: Vec<f32> = steps.iter().map(|&s| schedule.lr(s)).collect();
        assert_close(name, &got, &expected, 0.0, 1e-5);
    }
}

#[test]
fn schedule_constant_and_step() {
    let c = Schedule::constant(0.01);
    assert_eq!(
        c,
        Schedule { initial: 0.01, decay: Decay::Constant, warmup_steps: 0, warmup_start: 0.0 }
    );
    for s in [0, 1, 1000, u32::MAX] {
        assert_eq!(c.lr(s), 0.01);
    }
    let s = Schedule::step_decay(0.1, 10, 0.5);
    s.validate().unwrap();
    assert_eq!(s.lr(0), 0.1);
    assert_eq!(s.lr(9), 0.1);
    assert_eq!(s.lr(10), 0.05);
    assert_eq!(s.lr(29), 0.025);
    assert_eq!(s.lr(30), 0.0125);
    assert_eq!(Schedule::default().lr(7), 1e-3);
}

#[test]
fn schedule_warmup_matches_keras_cosine_warmup() {
    // Keras CosineDecay(initial_learning_rate=start, decay_steps=d, alpha=a,
    //                   warmup_target=peak, warmup_steps=w), re-implemented in f64.
    let (start, peak, d, a, w) = (1e-4f32, 2e-3f32, 50u32, 0.2f32, 20u32);
    let s = Schedule::cosine_decay(peak, d, a).with_warmup(w, start);
    s.validate().unwrap();
    for step in 0..120u32 {
        let st = f64::from(step);
        let (wf, df) = (f64::from(w), f64::from(d));
        let expected = if st < wf {
            (f64::from(peak) - f64::from(start)) * (st / wf) + f64::from(start)
        } else {
            let done = st.min(df + wf) - wf;
            let cosine = 0.5 * (1.0 + (std::f64::consts::PI * done / df).cos());
            f64::from(peak) * ((1.0 - f64::from(a)) * cosine + f64::from(a))
        };
        assert_close(&format!("step {step}"), &[s.lr(step)], &[expected], 0.0, 1e-5);
    }
    assert_eq!(s.lr(0), start);
    assert_eq!(s.lr(w), peak);

    // Warm-up followed by exponential decay runs the decay on step − w.
    let e = Schedule::exponential_decay(1e-2, 10, 0.5, false).with_warmup(5, 0.0);
    assert_eq!(e.lr(0), 0.0);
    assert!((e.lr(4) - 0.8e-2).abs() < 1e-9);
    assert_eq!(e.lr(5), 1e-2);
    assert!((e.lr(15) - 0.5e-2).abs() < 1e-9);
    // Without warm-up, warmup_start is ignored.
    assert_eq!(Schedule::constant(0.5).with_warmup(0, 123.0).lr(0), 0.5);
}

#[test]
fn schedule_validation_errors() {
    let bad = [
        (Schedule::constant(0.0), Hp::LearningRate),
        (Schedule::constant(-1.0), Hp::LearningRate),
        (Schedule::constant(f32::NAN), Hp::LearningRate),
        (Schedule::constant(f32::INFINITY), Hp::LearningRate),
        (Schedule::exponential_decay(1e-3, 0, 0.9, false), Hp::ExponentialDecaySteps),
        (Schedule::exponential_decay(1e-3, 10, 0.0, false), Hp::ExponentialDecayRate),
        (Schedule::exponential_decay(1e-3, 10, f32::NAN, true), Hp::ExponentialDecayRate),
        (Schedule::cosine_decay(1e-3, 0, 0.1), Hp::CosineDecaySteps),
        (Schedule::cosine_decay(1e-3, 10, 1.5), Hp::CosineAlpha),
        (Schedule::cosine_decay(1e-3, 10, -0.1), Hp::CosineAlpha),
        (Schedule::step_decay(1e-3, 0, 0.5), Hp::StepDecaySize),
        (Schedule::step_decay(1e-3, 10, -0.5), Hp::StepDecayGamma),
        (Schedule::constant(1e-3).with_warmup(10, -1.0), Hp::WarmupStart),
        (Schedule::constant(1e-3).with_warmup(10, f32::NAN), Hp::WarmupStart),
    ];
    for (s, which) in bad {
        assert_eq!(s.validate(), Err(Error::Hyperparameter(which)), "{s:?}");
        // Invalid schedules may give meaningless rates but must not panic.
        for step in [0, 1, 10, u32::MAX] {
            let _ = s.lr(step);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// optimizers against f64 re-implementations

/// The Keras update rules in f64, one scalar at a time, written from the formulas in
/// tests/fixtures/keras/README.md (not from the implementation under test).
#[derive(Clone, Debug)]
struct Reference {
    w: Vec<f64>,
    vel: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    v_hat: Vec<f64>,
}

impl Reference {
    fn new(w: &[f32]) -> Self {
        let n = w.len();
        Reference {
            w: widen(w),
            vel: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            v_hat: vec![0.0; n],
        }
    }

    fn step(&mut self, opt: &Optimizer, lr: f64, iteration: u32, g: &[f32]) {
        let wd = f64::from(opt.weight_decay);
        for w in &mut self.w {
            *w -= *w * wd * lr;
        }
        match opt.method {
            Method::Sgd { momentum, nesterov } => {
                let mu = f64::from(momentum);
                for i in 0..g.len() {
                    let g = f64::from(g[i]);
                    self.vel[i] = mu * self.vel[i] - lr * g;
                    self.w[i] += if nesterov { mu * self.vel[i] - lr * g } else { self.vel[i] };
                }
            }
            Method::Adam { beta_1, beta_2, epsilon, amsgrad } => {
                // Keras raises the f32-cast β to the power t (`tf.pow(tf.cast(beta, f32), t)`),
                // while `1 − β` below uses the double β.
                let t = f64::from(iteration) + 1.0;
                let (b1_32, b2_32) = (f64::from(beta_1 as f32), f64::from(beta_2 as f32));
                let alpha = lr * (1.0 - b2_32.powf(t)).sqrt() / (1.0 - b1_32.powf(t));
                for i in 0..g.len() {
                    let g = f64::from(g[i]);
                    self.m[i] = beta_1 * self.m[i] + (1.0 - beta_1) * g;
                    self.v[i] = beta_2 * self.v[i] + (1.0 - beta_2) * g * g;
                    self.v_hat[i] = self.v_hat[i].max(self.v[i]);
                    let v = if amsgrad { self.v_hat[i] } else { self.v[i] };
                    self.w[i] -= alpha * self.m[i] / (v.sqrt() + f64::from(epsilon));
                }
            }
        }
    }
}

/// Every optimizer variant over several steps with fresh random gradients each step.
///
/// Tolerance `|a − b| ≤ 1e-6 + 1e-5·|b|`: the f32 implementation rounds each of the ~10
/// operations per update (relative 6e-8 each) and stores w in f32 (|w| ~ 1, so ~6e-8). The
/// largest f32 effect is Adam's `1 − β₂ᵗ`: the f32 `powf` result's half-ulp (3e-8) is divided by
/// `1 − β₂ᵗ ≈ 0.001·t`, a relative error up to 1.5e-5/t in the step size α; at lr = 0.01 that
/// is ≤ 1.5e-7/t per step, ≤ 3e-7 over the 6 steps here. The bound leaves several times that,
/// while any formula error (bias correction, momentum form, decay order, `1 − β`) moves w by
/// ≥ 1e-4.
#[test]
fn optimizers_match_f64_reference() {
    let variants = [
        ("sgd", Optimizer::sgd()),
        ("sgd_momentum", Optimizer::sgd().with_momentum(0.9)),
        ("sgd_nesterov", Optimizer::sgd().with_momentum(0.9).with_nesterov(true)),
        ("sgd_weight_decay", Optimizer::sgd().with_momentum(0.5).with_weight_decay(0.1)),
        ("adam", Optimizer::adam()),
        ("adam_custom", Optimizer::adam().with_beta_1(0.8).with_beta_2(0.99).with_epsilon(1e-4)),
        ("adam_amsgrad", Optimizer::adam().with_amsgrad(true)),
        ("adamw", Optimizer::adamw().with_weight_decay(0.05)),
        ("adamw_amsgrad", Optimizer::adamw().with_amsgrad(true)),
    ];
    let n = 37; // odd, not a multiple of any vector width
    let lr = 0.01f32;
    for (name, opt) in variants {
        opt.validate().unwrap();
        let mut rng = Rng::new(7);
        let mut w = random_vec(&mut rng, n, 1.0);
        let mut state = vec![0.0f32; opt.state_len(n)];
        let mut reference = Reference::new(&w);
        for it in 0..6u32 {
            // Growing gradient scale makes AMSGrad's max(v̂, v) matter.
            let g = random_vec(&mut rng, n, 1.0 + it as f32);
            opt.step(lr, it, &mut w, &g, &mut state).unwrap();
            reference.step(&opt, f64::from(lr), it, &g);
            assert_close(&format!("{name} step {it}"), &w, &reference.w, 1e-6, 1e-5);
        }
    }
}

/// Stepping the parameters in parts ([`Optimizer::step_part`] over [`StateParts::split_at`],
/// as the host's threads do) gives the bits of one whole [`Optimizer::step`], for every method,
/// wherever the cuts fall; and `OptimizerConfig::prepare` then the parts give the bits of
/// `OptimizerConfig::apply` with clipping and a schedule.
#[test]
fn stepping_in_parts_gives_the_bits_of_one_step() {
    let variants = [
        Optimizer::sgd(),
        Optimizer::sgd().with_momentum(0.9),
        Optimizer::sgd().with_momentum(0.9).with_nesterov(true),
        Optimizer::sgd().with_momentum(0.5).with_weight_decay(0.1),
        Optimizer::adam(),
        Optimizer::adam().with_amsgrad(true),
        Optimizer::adamw().with_weight_decay(0.05),
    ];
    let n = 53;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for opt in variants {
        for cuts in [vec![], vec![1], vec![16, 17], vec![5, 20, 52]] {
            let mut rng = Rng::new(3);
            let mut whole = random_vec(&mut rng, n, 1.0);
            let mut parts = whole.clone();
            let mut s_whole = vec![0.0f32; opt.state_len(n)];
            let mut s_parts = s_whole.clone();
            for it in 0..4u32 {
                let g = random_vec(&mut rng, n, 1.0 + it as f32);
                opt.step(0.01, it, &mut whole, &g, &mut s_whole).unwrap();
                let mut rest = opt.state_parts(&mut s_parts, n).unwrap();
                let (mut w, mut gr, mut at) = (&mut parts[..], &g[..], 0);
                for &cut in cuts.iter().chain([&n]) {
                    let (w0, w1) = w.split_at_mut(cut - at);
                    let (g0, g1) = gr.split_at(cut - at);
                    let (m0, m1) = rest.split_at(cut - at);
                    opt.step_part(0.01, it, w0, g0, m0).unwrap();
                    (w, gr, rest, at) = (w1, g1, m1, cut);
                }
                assert_eq!(bits(&parts), bits(&whole), "{opt:?} cut at {cuts:?}, step {it}");
                assert_eq!(bits(&s_parts), bits(&s_whole), "{opt:?} state, cut at {cuts:?}");
            }
        }
    }
    // The config's two halves against `apply`, with global clipping and a decaying rate.
    let spec = Spec::channels(2).lstm(3).dense(2, Head::Softmax);
    let p = spec.param_count();
    let cfg = OptimizerConfig::new(Optimizer::adam())
        .with_schedule(Schedule::exponential_decay(0.1, 2, 0.5, false))
        .with_clip(Clip { global_norm: Some(0.5), ..Clip::none() });
    let mut rng = Rng::new(9);
    let (mut a, mut b) = (random_vec(&mut rng, p, 1.0), vec![0.0f32; p]);
    b.copy_from_slice(&a);
    let (mut sa, mut sb) = (vec![0.0f32; cfg.state_len(p)], vec![0.0f32; cfg.state_len(p)]);
    for it in 0..3u32 {
        let g = random_vec(&mut rng, p, 3.0);
        let (mut ga, mut gb) = (g.clone(), g);
        cfg.apply(&spec, 0..p, it, &mut a, &mut ga, &mut sa).unwrap();
        let lr = cfg.prepare(&spec, 0..p, it, &mut gb).unwrap();
        let parts = cfg.optimizer.state_parts(&mut sb, p).unwrap();
        let (m0, m1) = parts.split_at(40);
        let (b0, b1) = b.split_at_mut(40);
        cfg.optimizer.step_part(lr, it, b1, &gb[40..], m1).unwrap();
        cfg.optimizer.step_part(lr, it, b0, &gb[..40], m0).unwrap();
        assert_eq!(bits(&a), bits(&b), "apply against prepare + parts, step {it}");
        assert_eq!(bits(&ga), bits(&gb), "clipped gradients, step {it}");
    }
    // Parts of the wrong length are errors that change nothing.
    let opt = Optimizer::adam();
    let mut state = vec![0.0f32; opt.state_len(8)];
    let mut w = [1.0f32; 8];
    let parts = opt.state_parts(&mut state, 8).unwrap();
    let (short, _) = parts.split_at(7);
    assert!(matches!(
        opt.step_part(0.01, 0, &mut w, &[0.5; 8], short),
        Err(Error::BufferLength { .. })
    ));
    assert_eq!(w, [1.0; 8]);
    assert!(opt.state_parts(&mut state[..15], 8).is_err());
    let empty = StateParts { first: &mut [], second: &mut [], max_second: &mut [] };
    assert!(opt.step_part(0.01, 0, &mut w, &[0.5; 8], empty).is_err());
}

#[test]
fn state_lengths() {
    let n = 10;
    assert_eq!(Optimizer::sgd().state_len(n), 0);
    assert_eq!(Optimizer::sgd().with_nesterov(true).state_len(n), 0);
    assert_eq!(Optimizer::sgd().with_momentum(0.9).state_len(n), n);
    assert_eq!(Optimizer::adam().state_len(n), 2 * n);
    assert_eq!(Optimizer::adamw().state_len(n), 2 * n);
    assert_eq!(Optimizer::adam().with_amsgrad(true).state_len(n), 3 * n);
    assert_eq!(Optimizer::adam().with_amsgrad(true).state_len(usize::MAX), usize::MAX);
    const _: () = assert!(Optimizer::adam().state_len(4) == 8); // usable in constants
}

#[test]
fn keras_defaults_and_builders() {
    assert_eq!(
        Optimizer::adam().method,
        Method::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }
    );
    assert_eq!(Optimizer::adam().weight_decay, 0.0);
    assert_eq!(Optimizer::adamw().weight_decay, 0.004);
    assert_eq!(Optimizer::default(), Optimizer::adam());
    assert_eq!(Optimizer::sgd().method, Method::Sgd { momentum: 0.0, nesterov: false });
    // Builders of the other method are no-ops.
    assert_eq!(Optimizer::adam().with_momentum(0.9).with_nesterov(true), Optimizer::adam());
    assert_eq!(Optimizer::sgd().with_beta_1(0.5).with_amsgrad(true), Optimizer::sgd());
    let c = OptimizerConfig::default();
    assert_eq!(c.optimizer, Optimizer::adam());
    assert_eq!(c.schedule, Schedule::constant(1e-3));
    assert!(c.clip.is_none());
}

#[test]
fn optimizer_validation_errors() {
    let bad = [
        (Optimizer::sgd().with_momentum(-0.1), Hp::Momentum),
        (Optimizer::sgd().with_momentum(1.5), Hp::Momentum),
        (Optimizer::sgd().with_momentum(f32::NAN), Hp::Momentum),
        (Optimizer::adam().with_beta_1(1.0), Hp::Beta1),
        (Optimizer::adam().with_beta_2(-0.1), Hp::Beta2),
        (Optimizer::adam().with_beta_2(f64::NAN), Hp::Beta2),
        (Optimizer::adam().with_epsilon(0.0), Hp::Epsilon),
        (Optimizer::adam().with_epsilon(f32::INFINITY), Hp::Epsilon),
        (Optimizer::adam().with_weight_decay(-1.0), Hp::WeightDecay),
        (Optimizer::sgd().with_weight_decay(f32::NAN), Hp::WeightDecay),
    ];
    for (opt, which) in bad {
        assert_eq!(opt.validate(), Err(Error::Hyperparameter(which)), "{opt:?}");
        let mut w = vec![1.0f32; 4];
        let mut st = vec![0.0f32; opt.state_len(4)];
        assert!(opt.step(0.1, 0, &mut w, &[1.0; 4], &mut st).is_err());
        assert_eq!(w, vec![1.0; 4]);
    }
    // Bad learning rates.
    let opt = Optimizer::sgd();
    let mut w = vec![1.0f32; 3];
    for lr in [f32::NAN, f32::INFINITY, -0.1] {
        assert!(matches!(
            opt.step(lr, 0, &mut w, &[1.0; 3], &mut []),
            Err(Error::Hyperparameter(Hp::StepLearningRate))
        ));
    }
    assert_eq!(w, vec![1.0; 3]);
}

#[test]
fn step_length_errors_are_returned_not_panics() {
    let opt = Optimizer::adam();
    let mut w = vec![0.5f32; 8];
    let g = vec![0.1f32; 8];
    let mut short = vec![0.0f32; 15];
    assert_eq!(
        opt.step(0.1, 0, &mut w, &g, &mut short),
        Err(Error::BufferLength { what: "optimizer state", expected: 16, actual: 15 })
    );
    let mut long = vec![0.0f32; 24];
    assert!(matches!(opt.step(0.1, 0, &mut w, &g, &mut long), Err(Error::BufferLength { .. })));
    let mut st = vec![0.0f32; 16];
    assert!(matches!(opt.step(0.1, 0, &mut w, &g[..7], &mut st), Err(Error::BufferLength { .. })));
    assert_eq!(w, vec![0.5; 8]);
    assert_eq!(st, vec![0.0; 16]);
    // Empty buffers are fine.
    opt.step(0.1, 0, &mut [], &[], &mut []).unwrap();
}

// ---------------------------------------------------------------------------------------------
// clipping

const SPEC: Spec = Spec::tokens(6, 3).lstm(4).lstm(3).dense(2, Head::Softmax);

fn f64_norm(xs: &[f32]) -> f64 {
    xs.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt()
}

#[test]
fn l2_norm_and_all_finite() {
    assert_eq!(l2_norm(&[]), 0.0);
    assert_eq!(l2_norm(&[3.0, 4.0]), 5.0);
    // Long input: blocked summation keeps a few-ulp accuracy.
    let mut rng = Rng::new(1);
    for n in [1, 7, 8, 9, 255, 256, 257, 1000, 100_003] {
        let x = random_vec(&mut rng, n, 1.0);
        let exact = f64_norm(&x);
        let got = f64::from(l2_norm(&x));
        assert!((got - exact).abs() <= 1e-6 * exact, "n={n}: {got} vs {exact}");
    }
    assert!(all_finite(&[]));
    assert!(all_finite(&[0.0, -1.0, f32::MAX, f32::MIN_POSITIVE, 1e-45]));
    let mut x = vec![1.0f32; 3000];
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for pos in [0, 1023, 1024, 2999] {
            x[pos] = bad;
            assert!(!all_finite(&x));
            x[pos] = 1.0;
        }
    }
}

#[test]
fn clip_functions_match_tf_formulas() {
    let mut rng = Rng::new(2);
    let g = random_vec(&mut rng, 50, 1.0);

    let mut v = g.clone();
    clip_by_value(&mut v, 0.3);
    let expected: Vec<f64> = g.iter().map(|&x| f64::from(x).clamp(-0.3, 0.3)).collect();
    assert_close("clip_by_value", &v, &expected, 1e-7, 0.0);

    for c in [0.5f32, 100.0] {
        let mut v = g.clone();
        let norm = clip_by_norm(&mut v, c);
        let exact = f64_norm(&g);
        assert!((f64::from(norm) - exact).abs() <= 1e-6 * exact);
        let scale = f64::from(c) / exact.max(f64::from(c));
        let expected: Vec<f64> = g.iter().map(|&x| f64::from(x) * scale).collect();
        assert_close("clip_by_norm", &v, &expected, 1e-7, 1e-6);
        assert!(f64_norm(&v) <= f64::from(c) * (1.0 + 1e-6));

        let mut v = g.clone();
        clip_by_global_norm(&mut v, c);
        let scale = f64::from(c) * (1.0 / exact).min(1.0 / f64::from(c));
        let expected: Vec<f64> = g.iter().map(|&x| f64::from(x) * scale).collect();
        assert_close("clip_by_global_norm", &v, &expected, 1e-7, 1e-6);
    }
    // All-zero gradient: TF gives zeros (not NaN) for both norm clips.
    let mut z = vec![0.0f32; 5];
    clip_by_norm(&mut z, 1.0);
    clip_by_global_norm(&mut z, 1.0);
    assert_eq!(z, vec![0.0; 5]);
}

#[test]
fn clip_per_tensor_norm_respects_tensors_and_range() {
    let n = SPEC.param_count();
    let mut rng = Rng::new(3);
    let g = random_vec(&mut rng, n, 1.0);
    let c = 0.7f32;

    // Whole buffer: every tensor clipped on its own.
    let mut clipped = g.clone();
    Clip::norm(c).apply(&SPEC, 0..n, &mut clipped).unwrap();
    for t in SPEC.tensors() {
        let r = t.range();
        let exact = f64_norm(&g[r.clone()]);
        let scale = f64::from(c) / exact.max(f64::from(c));
        let expected: Vec<f64> = g[r.clone()].iter().map(|&x| f64::from(x) * scale).collect();
        assert_close(&format!("{:?}", t.kind), &clipped[r], &expected, 1e-7, 1e-6);
    }

    // A range that cuts through tensors: each intersection is clipped as its own tensor, and
    // nothing outside the range changes.
    let t1 = SPEC.tensor(1).unwrap().range();
    let t3 = SPEC.tensor(3).unwrap().range();
    let range = (t1.start + 5)..(t3.start + 2);
    let mut clipped = g.clone();
    Clip::norm(c).apply(&SPEC, range.clone(), &mut clipped).unwrap();
    assert_eq!(&clipped[..range.start], &g[..range.start]);
    assert_eq!(&clipped[range.end..], &g[range.end..]);
    let pieces = [range.start..t1.end, SPEC.tensor(2).unwrap().range(), t3.start..range.end];
    let mut covered = 0;
    for p in pieces {
        covered += p.len();
        let exact = f64_norm(&g[p.clone()]);
        let scale = f64::from(c) / exact.max(f64::from(c));
        let expected: Vec<f64> = g[p.clone()].iter().map(|&x| f64::from(x) * scale).collect();
        assert_close("piece", &clipped[p], &expected, 1e-7, 1e-6);
    }
    assert_eq!(covered, range.len());
}

#[test]
fn clip_global_and_value_only_touch_the_range() {
    let n = SPEC.param_count();
    let mut rng = Rng::new(4);
    let g = random_vec(&mut rng, n, 1.0);
    let range = SPEC.head_range();
    let c = 0.25f32;

    let mut clipped = g.clone();
    Clip::global_norm(c).apply(&SPEC, range.clone(), &mut clipped).unwrap();
    let exact = f64_norm(&g[range.clone()]);
    assert!(exact > f64::from(c));
    let expected: Vec<f64> =
        g[range.clone()].iter().map(|&x| f64::from(x) * f64::from(c) / exact).collect();
    assert_close("global", &clipped[range.clone()], &expected, 1e-7, 1e-6);
    assert_eq!(&clipped[..range.start], &g[..range.start]);

    let mut clipped = g.clone();
    Clip::value(c).apply(&SPEC, range.clone(), &mut clipped).unwrap();
    assert!(clipped[range.clone()].iter().all(|x| x.abs() <= c));
    assert_eq!(&clipped[..range.start], &g[..range.start]);

    let mut same = g.clone();
    Clip::none().apply(&SPEC, 0..n, &mut same).unwrap();
    assert_eq!(same, g);
}

#[test]
fn clip_validation_errors() {
    let clips = Error::ConflictingClips;
    let bound = Error::Hyperparameter(Hp::ClipBound);
    let bad = [
        (Clip { value: Some(1.0), norm: Some(1.0), global_norm: None }, clips),
        (Clip { value: None, norm: Some(1.0), global_norm: Some(1.0) }, clips),
        (Clip { value: Some(1.0), norm: None, global_norm: Some(1.0) }, clips),
        (Clip::value(0.0), bound),
        (Clip::norm(-1.0), bound),
        (Clip::global_norm(f32::NAN), bound),
        (Clip::value(f32::INFINITY), bound),
    ];
    let n = SPEC.param_count();
    for (c, e) in bad {
        assert_eq!(c.validate(), Err(e), "{c:?}");
        let mut g = vec![1.0f32; n];
        assert!(c.apply(&SPEC, 0..n, &mut g).is_err());
        assert_eq!(g, vec![1.0; n]);
    }
    let mut g = vec![1.0f32; n];
    assert!(matches!(
        Clip::norm(1.0).apply(&SPEC, 0..n, &mut g[1..]),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        Clip::norm(1.0).apply(&SPEC, 0..n + 1, &mut g),
        Err(Error::RangeOutOfBounds { start: 0, end, len }) if end == n + 1 && len == n
    ));
}

// ---------------------------------------------------------------------------------------------
// OptimizerConfig::apply

#[test]
fn apply_restricted_to_range_leaves_the_rest_untouched() {
    let n = SPEC.param_count();
    let cfg = OptimizerConfig::new(Optimizer::adam().with_amsgrad(true))
        .with_lr(0.01)
        .with_clip(Clip::norm(0.5));
    let mut rng = Rng::new(5);
    let p0 = random_vec(&mut rng, n, 1.0);
    let g0 = random_vec(&mut rng, n, 1.0);
    for range in [SPEC.head_range(), 3..17, 0..n, 5..5] {
        let mut p = p0.clone();
        let mut g = g0.clone();
        let mut st = vec![0.0f32; cfg.state_len(range.len())];
        for it in 0..3 {
            cfg.apply(&SPEC, range.clone(), it, &mut p, &mut g, &mut st).unwrap();
        }
        assert_eq!(&p[..range.start], &p0[..range.start]);
        assert_eq!(&p[range.end..], &p0[range.end..]);
        assert_eq!(&g[..range.start], &g0[..range.start]);
        assert_eq!(&g[range.end..], &g0[range.end..]);
        assert!(p[range.clone()].iter().zip(&p0[range.clone()]).all(|(a, b)| a != b));
    }

    // apply == clip + schedule + step, done by hand.
    let range = SPEC.head_range();
    let sched = Schedule::exponential_decay(0.02, 2, 0.5, false);
    let cfg = OptimizerConfig::new(Optimizer::sgd().with_momentum(0.9))
        .with_schedule(sched)
        .with_clip(Clip::global_norm(0.1));
    let (mut p1, mut g1) = (p0.clone(), g0.clone());
    let (mut p2, mut g2) = (p0.clone(), g0.clone());
    let mut s1 = vec![0.0f32; cfg.state_len(range.len())];
    let mut s2 = s1.clone();
    for it in 0..4 {
        g1.copy_from_slice(&g0);
        g2.copy_from_slice(&g0);
        cfg.apply(&SPEC, range.clone(), it, &mut p1, &mut g1, &mut s1).unwrap();
        cfg.clip.apply(&SPEC, range.clone(), &mut g2).unwrap();
        cfg.optimizer
            .step(sched.lr(it), it, &mut p2[range.clone()], &g2[range.clone()], &mut s2)
            .unwrap();
    }
    assert_eq!(p1, p2);
    assert_eq!(s1, s2);
}

#[test]
fn apply_errors_are_returned_not_panics() {
    let n = SPEC.param_count();
    let cfg = OptimizerConfig::new(Optimizer::adam());
    let mut p = vec![0.5f32; n];
    let mut g = vec![0.1f32; n];
    let head = SPEC.head_range();
    let mut st = vec![0.0f32; cfg.state_len(head.len())];

    let mut wrong_state = vec![0.0f32; st.len() - 1];
    assert_eq!(
        cfg.apply(&SPEC, head.clone(), 0, &mut p, &mut g, &mut wrong_state),
        Err(Error::BufferLength {
            what: "optimizer state",
            expected: st.len(),
            actual: st.len() - 1
        })
    );
    assert!(matches!(
        cfg.apply(&SPEC, head.clone(), 0, &mut p[1..], &mut g, &mut st),
        Err(Error::BufferLength { what: "parameter", .. })
    ));
    assert!(matches!(
        cfg.apply(&SPEC, head.clone(), 0, &mut p, &mut g[..n - 1], &mut st),
        Err(Error::BufferLength { what: "gradient", .. })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 9..3;
    for range in [0..n + 1, reversed, n + 1..n + 2] {
        assert_eq!(
            cfg.apply(&SPEC, range.clone(), 0, &mut p, &mut g, &mut st),
            Err(Error::RangeOutOfBounds { start: range.start, end: range.end, len: n })
        );
    }
    let bad_spec = Spec::channels(0).lstm(4).dense(1, Head::Sigmoid);
    assert!(matches!(cfg.apply(&bad_spec, 0..0, 0, &mut p, &mut g, &mut st), Err(Error::Spec(_))));
    let bad_cfg = cfg.with_clip(Clip { value: Some(1.0), norm: Some(1.0), global_norm: None });
    assert!(bad_cfg.apply(&SPEC, head.clone(), 0, &mut p, &mut g, &mut st).is_err());
    let bad_lr = cfg.with_lr(f32::NAN);
    assert!(bad_lr.apply(&SPEC, head.clone(), 0, &mut p, &mut g, &mut st).is_err());
    // A growing schedule that overflows to infinity is refused too.
    let growing = cfg.with_schedule(Schedule::exponential_decay(1.0, 1, 1e10, false));
    growing.validate().unwrap();
    assert!(matches!(
        growing.apply(&SPEC, head.clone(), 10, &mut p, &mut g, &mut st),
        Err(Error::NonFiniteRate { iteration: 10 })
    ));
    assert_eq!(p, vec![0.5; n]);
    assert_eq!(g, vec![0.1; n]);
    assert_eq!(st, vec![0.0; st.len()]);
}

#[test]
fn non_finite_gradient_is_refused_with_everything_untouched() {
    let n = SPEC.param_count();
    let cfg = OptimizerConfig::new(Optimizer::adam()).with_clip(Clip::global_norm(1.0));
    let range = 2..40;
    let mut rng = Rng::new(6);
    let p0 = random_vec(&mut rng, n, 1.0);
    let g0 = random_vec(&mut rng, n, 1.0);
    // Take one good step so the state is non-zero.
    let mut p = p0.clone();
    let mut g = g0.clone();
    let mut st = vec![0.0f32; cfg.state_len(range.len())];
    cfg.apply(&SPEC, range.clone(), 0, &mut p, &mut g, &mut st).unwrap();
    let (p1, s1) = (p.clone(), st.clone());
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for pos in [range.start, 17, range.end - 1] {
            let mut g = g0.clone();
            g[pos] = bad;
            let g_bad = g.clone();
            assert_eq!(
                cfg.apply(&SPEC, range.clone(), 1, &mut p, &mut g, &mut st),
                Err(Error::NonFiniteGradient)
            );
            assert_eq!(p, p1);
            assert_eq!(st, s1);
            assert_eq!(
                g.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                g_bad.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }
    // A non-finite gradient outside the range is not read.
    let mut g = g0.clone();
    g[range.end] = f32::NAN;
    cfg.apply(&SPEC, range.clone(), 1, &mut p, &mut g, &mut st).unwrap();
    assert!(all_finite(&p));
}

// ---------------------------------------------------------------------------------------------
// Keras `optimizers` fixture, first step (the only one that needs no LSTM gradients)

/// From the fixture's initial weights and `grads_at_start`, one step of each variant must give
/// the fixture's weights after step 1, within the project's Keras bound `1e-5 + 1e-4·|b|`.
/// (Steps 2 and 3 need the model's gradients at the new weights; the full-model test runs them.)
#[test]
fn keras_optimizers_fixture_first_step() {
    let f = fixture("optimizers.json");
    assert_eq!(f["case"], "optimizers");
    let (c, h, k) = (
        f["C"].as_u64().unwrap() as usize,
        f["H"].as_u64().unwrap() as usize,
        f["K"].as_u64().unwrap() as usize,
    );
    let spec = Spec::channels(c).lstm(h).dense(k, Head::Softmax);
    let w0 = flat(&f["weights"]);
    let g0 = flat(&f["grads_at_start"]);
    let n = spec.param_count();
    assert_eq!(w0.len(), n);
    assert_eq!(g0.len(), n);
    let mut seen = 0;
    for run in f["runs"].as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        let cfg = match name {
            "sgd_nesterov" => {
                OptimizerConfig::new(Optimizer::sgd().with_momentum(0.9).with_nesterov(true))
                    .with_lr(0.1)
            }
            "sgd_plain" => OptimizerConfig::new(Optimizer::sgd()).with_lr(0.1),
            "adamw" => {
                OptimizerConfig::new(Optimizer::adamw().with_weight_decay(0.05)).with_lr(0.01)
            }
            "adam_clipnorm" => {
                OptimizerConfig::new(Optimizer::adam()).with_lr(0.01).with_clip(Clip::norm(0.05))
            }
            "adam_global_clipnorm" => OptimizerConfig::new(Optimizer::adam())
                .with_lr(0.01)
                .with_clip(Clip::global_norm(0.1)),
            "sgd_clipvalue" => OptimizerConfig::new(Optimizer::sgd().with_momentum(0.5))
                .with_lr(0.1)
                .with_clip(Clip::value(0.02)),
            "adam_amsgrad" => {
                OptimizerConfig::new(Optimizer::adam().with_amsgrad(true)).with_lr(0.01)
            }
            other => panic!("unknown optimizers run {other}"),
        };
        let mut w = w0.clone();
        let mut g = g0.clone();
        let mut st = vec![0.0f32; cfg.state_len(n)];
        cfg.apply(&spec, 0..n, 0, &mut w, &mut g, &mut st).unwrap();
        let expected = widen(&flat(&run["steps"][0]["weights_after"]));
        assert_close(name, &w, &expected, 1e-5, 1e-4);
        // The weights bound alone would accept a wrong step for small updates, so check the
        // update w₁ − w₀ itself: within 1e-3 of its size (+ 1e-7 for the rounding of w₁).
        // (Currently the first step is bit-exact for all seven variants.)
        let delta: Vec<f32> = w.iter().zip(&w0).map(|(a, b)| a - b).collect();
        let expected_delta: Vec<f64> =
            expected.iter().zip(&w0).map(|(a, &b)| a - f64::from(b)).collect();
        assert_close(&format!("{name} update"), &delta, &expected_delta, 1e-7, 1e-3);
        assert!(
            expected_delta.iter().any(|d| d.abs() > 1e-4),
            "{name}: the step is too small to test"
        );
        seen += 1;
    }
    assert_eq!(seen, 7);
}

// ---------------------------------------------------------------------------------------------
// properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Clipping never increases a norm beyond its bound and never produces non-finite values.
    #[test]
    fn clipped_norms_are_bounded(
        g in proptest::collection::vec(-1e3f32..1e3, 0..300),
        c in 1e-3f32..10.0,
    ) {
        let mut a = g.clone();
        clip_by_norm(&mut a, c);
        prop_assert!(all_finite(&a));
        prop_assert!(f64_norm(&a) <= f64::from(c) * (1.0 + 1e-5));
        let mut b = g.clone();
        clip_by_global_norm(&mut b, c);
        prop_assert!(all_finite(&b));
        prop_assert!(f64_norm(&b) <= f64::from(c) * (1.0 + 1e-5));
        let mut v = g.clone();
        clip_by_value(&mut v, c);
        prop_assert!(v.iter().all(|x| x.abs() <= c));
    }

    /// Adam's step size is bounded by about lr per element whatever the gradient scale
    /// (|m̂/√v̂| ≤ 1 at t = 1), and stays finite.
    #[test]
    fn adam_first_step_is_bounded(
        g in proptest::collection::vec(-1e6f32..1e6, 1..64),
        lr in 1e-5f32..1.0,
    ) {
        let opt = Optimizer::adam();
        let mut w = vec![0.0f32; g.len()];
        let mut st = vec![0.0f32; opt.state_len(g.len())];
        opt.step(lr, 0, &mut w, &g, &mut st).unwrap();
        prop_assert!(all_finite(&w));
        prop_assert!(w.iter().all(|x| x.abs() <= lr * 1.0001));
    }
}
