//! Keras parity: every JSON file in `tests/fixtures/keras/` is one reference case computed by
//! tf_keras 2.21 (see that folder's README.md). The test dispatches on each file's `case` field,
//! so a new case is a dropped-in file, and checks every value within the Keras bound
//! `|a − b| ≤ 1e-5 + 1e-4·|b|` (`common::KERAS`).
//!
//! Every case runs on both kernel paths at that same tolerance: the exact one, and the fast
//! one on every instruction set this CPU supports (AVX-512, AVX2+FMA, portable, …).

mod common;

use common::{assert_close, flat, flat_all, int, to_batch_major, to_time_major, Worst, KERAS};
use serde_json::Value;
use std::path::PathBuf;
use tinylstm::lstm::{self, Dims, Grads, Tape, Weights};
use tinylstm::optim::{Clip, Optimizer, OptimizerConfig};
use tinylstm::penalty::{Penalties, Penalty};
use tinylstm::schedule::Schedule;
use tinylstm::train::{loss_and_grad_with, Batch, TrainBuffers, TrainOptions};
use tinylstm::{Head, Sequences, Spec, Targets};
use tinylstm_fast::{Fast, Isa, KernelPath};

fn fixtures() -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/keras");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read fixture");
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// One LSTM layer: forward (h_seq, h_last, c_last) and backward of
/// `sum(h_seq·cot) [+ sum(h_last·cot_h) + sum(c_last·cot_c)]`, from a zero or given state.
fn lstm_layer(v: &Value, kern: KernelPath) -> Worst {
    let (i, h, t, b) = (int(v, "I"), int(v, "H"), int(v, "T"), int(v, "B"));
    let kernel = flat(&v["kernel"]);
    let recurrent = flat(&v["recurrent_kernel"]);
    let bias = flat(&v["bias"]);
    let w = Weights { kernel: &kernel, recurrent: &recurrent, bias: &bias };
    let d = Dims { input: i, units: h, batch: b, steps: t };
    let x = to_time_major(&flat(&v["x"]), b, t, i);
    let (mut gates, mut hs, mut cs) = (
        vec![0.0; d.gates_len().unwrap()],
        vec![0.0; d.states_len().unwrap()],
        vec![0.0; d.states_len().unwrap()],
    );
    let with_state = v.get("h0").is_some();
    if with_state {
        hs[..b * h].copy_from_slice(&flat(&v["h0"]));
        cs[..b * h].copy_from_slice(&flat(&v["c0"]));
    }
    let mut tape = Tape { gates: &mut gates, h: &mut hs, c: &mut cs };
    lstm::forward_with(kern, &d, &w, &x, &mut tape).unwrap();
    let mut worst = Worst::default();
    let h_seq = to_batch_major(&tape.h[b * h..], b, t, h);
    worst.merge(assert_close("h_seq", &h_seq, &flat(&v["h_seq"]), KERAS));
    worst.merge(assert_close("h_last", &tape.h[t * b * h..], &flat(&v["h_last"]), KERAS));
    worst.merge(assert_close("c_last", &tape.c[t * b * h..], &flat(&v["c_last"]), KERAS));

    let cot = to_time_major(&flat(&v["cotangent"]), b, t, h);
    let (mut dh, mut dc) = if with_state {
        (flat(&v["cotangent_h"]), flat(&v["cotangent_c"]))
    } else {
        (vec![0.0; b * h], vec![0.0; b * h])
    };
    let (mut gk, mut gr, mut gb) =
        (vec![0.0; kernel.len()], vec![0.0; recurrent.len()], vec![0.0; bias.len()]);
    let mut grads = Grads { kernel: &mut gk, recurrent: &mut gr, bias: &mut gb };
    let mut dx = vec![0.0; x.len()];
    let dx_out = Some(&mut dx[..]);
    lstm::backward_with(
        kern,
        &d,
        &w,
        &x,
        &mut tape,
        Some(&cot),
        &mut dh,
        &mut dc,
        &mut grads,
        dx_out,
    )
    .unwrap();
    worst.merge(assert_close("grad_kernel", &gk, &flat(&v["grad_kernel"]), KERAS));
    worst.merge(assert_close(
        "grad_recurrent_kernel",
        &gr,
        &flat(&v["grad_recurrent_kernel"]),
        KERAS,
    ));
    worst.merge(assert_close("grad_bias", &gb, &flat(&v["grad_bias"]), KERAS));
    let dx = to_batch_major(&dx, b, t, i);
    worst.merge(assert_close("grad_x", &dx, &flat(&v["grad_x"]), KERAS));
    if with_state {
        worst.merge(assert_close("grad_h0", &dh, &flat(&v["grad_h0"]), KERAS));
        worst.merge(assert_close("grad_c0", &dc, &flat(&v["grad_c0"]), KERAS));
    }
    worst
}

/// A whole model case: the spec, its inputs and targets, the regularization.
struct ModelCase {
    spec: Spec,
    params: Vec<f32>,
    tokens: Vec<u32>,
    values: Vec<f32>,
    classes: Vec<u32>,
    targets: Vec<f32>,
    batch: usize,
    penalties: Penalties,
    kernels: KernelPath,
}

impl ModelCase {
    fn from_json(v: &Value) -> ModelCase {
        let case = v["case"].as_str().unwrap();
        let params = flat_all(&v["weights"]);
        let batch = int(v, "B");
        let mut mc = ModelCase {
            spec: Spec::channels(1).lstm(1),
            params,
            tokens: vec![],
            values: vec![],
            classes: vec![],
            targets: vec![],
            batch,
            penalties: Penalties::NONE,
            kernels: KernelPath::Exact,
        };
        if case.starts_with("seed_model") {
            mc.spec = Spec::tokens(int(v, "V"), int(v, "E"))
                .lstm(int(v, "H1"))
                .lstm(int(v, "H2"))
                .dense(1, Head::Sigmoid);
            mc.tokens = flat(&v["tokens"]).iter().map(|&x| x as u32).collect();
            mc.targets = flat(&v["labels"]);
            let reg = v["regularizer"].as_str().unwrap_or("");
            let coef = |prefix: &str| -> f32 {
                let rest = &reg[reg.find(prefix).unwrap() + prefix.len()..];
                rest[..rest.find(')').unwrap()].parse().unwrap()
            };
            if reg.starts_with("l1(") {
                mc.penalties = Penalties::kernels(&mc.spec, Penalty::l1(coef("l1(")));
            } else if reg.starts_with("l2(") {
                mc.penalties = Penalties::kernels(&mc.spec, Penalty::l2(coef("l2(")));
            } else {
                assert!(reg.is_empty(), "unknown regularizer {reg}");
            }
        } else if case == "embedding_mask_zero_model" {
            mc.spec = Spec::tokens(int(v, "V"), int(v, "E"))
                .mask_zero()
                .lstm(int(v, "H1"))
                .lstm(int(v, "H2"))
                .dense(1, Head::Sigmoid);
            mc.tokens = flat(&v["tokens"]).iter().map(|&x| x as u32).collect();
            mc.targets = flat(&v["labels"]);
        } else if case == "masked_sequence_model" {
            mc.spec = Spec::channels(int(v, "C"))
                .masking(0.0)
                .lstm(int(v, "H1"))
                .lstm(int(v, "H2"))
                .dense(int(v, "K"), Head::Softmax);
            mc.values = flat(&v["x"]);
            mc.classes = flat(&v["labels"]).iter().map(|&x| x as u32).collect();
        } else {
            let c = int(v, "C");
            let (head, k) = match case {
                "regression_mse" => (Head::Linear, 1),
                _ => (Head::Softmax, int(v, "K")),
            };
            mc.spec = Spec::channels(c).lstm(int(v, "H")).dense(k, head);
            mc.values = flat(&v["x"]);
            if head == Head::Softmax {
                mc.classes = flat(&v["labels"]).iter().map(|&x| x as u32).collect();
            } else {
                mc.targets = flat(&v["targets"]);
            }
        }
        assert_eq!(mc.params.len(), mc.spec.param_count(), "{case}: weights vs spec");
        mc
    }

    /// Loss (with penalties), outputs and gradient at `params`.
    fn loss_grad(&self, params: &[f32]) -> (f32, Vec<f32>, Vec<f32>) {
        let inputs = if self.tokens.is_empty() {
            Sequences::Values(&self.values)
        } else {
            Sequences::Tokens(&self.tokens)
        };
        let targets = if self.classes.is_empty() {
            Targets::Values(&self.targets)
        } else {
            Targets::Classes(&self.classes)
        };
        let batch = Batch { inputs, targets, batch: self.batch };
        let steps = inputs.len() / self.batch / self.spec.step_width();
        let opts = TrainOptions::default();
        let mut work = vec![0.0; self.spec.train_work_len(self.batch, steps, opts.bptt).unwrap()];
        let mut grads = vec![0.0; self.spec.param_count()];
        let mut out = vec![0.0; self.batch * self.spec.outputs];
        let loss = loss_and_grad_with(
            self.kernels,
            &self.spec,
            params,
            &batch,
            &opts,
            TrainBuffers::new(&mut work, &mut grads).with_outputs(&mut out),
        )
        .unwrap();
        let pen = self.penalties.add_loss_and_grad(&self.spec, params, &mut grads).unwrap();
        (loss + pen, out, grads)
    }
}

/// The optimizer a model case names, e.g. `Adam(learning_rate=0.01, …)` or
/// `SGD(learning_rate=0.05, momentum=0.9, nesterov=False)`; the doc of `multiclass_adam` says
/// `Adam(0.01, eps 1e-7)`.
fn optimizer_of(v: &Value) -> OptimizerConfig {
    let text =
        v.get("optimizer").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| {
            let doc = v["doc"].as_str().unwrap();
            doc[doc.find("Adam(").expect("optimizer in doc")..].to_string()
        });
    let number = |key: &str| -> Option<f32> {
        let at = text.find(key)? + key.len();
        let rest = &text[at..];
        let end = rest.find([',', ')', ' ']).unwrap_or(rest.len());
        Some(rest[..end].parse().unwrap())
    };
    let lr = number("learning_rate=").or_else(|| number("Adam(")).expect("learning rate");
    let opt = if text.starts_with("SGD") {
        Optimizer::sgd()
            .with_momentum(number("momentum=").unwrap_or(0.0))
            .with_nesterov(text.contains("nesterov=True"))
    } else {
        assert!(text.starts_with("Adam("), "unknown optimizer {text}");
        Optimizer::adam()
    };
    OptimizerConfig::new(opt).with_lr(lr)
}

/// Takes `steps` optimizer steps from `params`, recomputing the gradient before each, and
/// compares the weights after each step with `expected[k]`.
fn check_steps(what: &str, mc: &ModelCase, cfg: &OptimizerConfig, expected: &[Value]) -> Worst {
    let n = mc.spec.param_count();
    let mut w = mc.params.clone();
    let mut state = vec![0.0; cfg.state_len(n)];
    let mut worst = Worst::default();
    for (it, exp) in expected.iter().enumerate() {
        let (_, _, mut g) = mc.loss_grad(&w);
        cfg.apply(&mc.spec, 0..n, it as u32, &mut w, &mut g, &mut state).unwrap();
        worst.merge(assert_close(
            &format!("{what} weights after step {}", it + 1),
            &w,
            &flat_all(exp),
            KERAS,
        ));
    }
    worst
}

fn model_case(v: &Value, kern: KernelPath) -> Worst {
    let mut mc = ModelCase::from_json(v);
    mc.kernels = kern;
    let (loss, out, grads) = mc.loss_grad(&mc.params);
    let mut worst = Worst::default();
    let out_key = if v.get("probs").is_some() { "probs" } else { "outputs" };
    worst.merge(assert_close(out_key, &out, &flat(&v[out_key]), KERAS));
    worst.merge(assert_close("loss", &[loss], &[v["loss"].as_f64().unwrap() as f32], KERAS));
    worst.merge(assert_close("grads", &grads, &flat_all(&v["grads"]), KERAS));
    if let Some(steps) = v.get("weights_after_steps").and_then(Value::as_array) {
        worst.merge(check_steps("model", &mc, &optimizer_of(v), steps));
    }
    worst
}

/// The masking cases: everything [`model_case`] checks, plus the reference's keep flags
/// against the Keras rule (all of a step's values equal the mask value, or token id 0) and the
/// first layer's whole output sequence — at masked steps it repeats the last output, zeros
/// before the first kept step — from [`lstm::forward_masked`].
fn masked_model_case(v: &Value, kern: KernelPath) -> Worst {
    let mc = ModelCase::from_json(v);
    let (b, t, h1) = (mc.batch, int(v, "T"), int(v, "H1"));
    let sw = mc.spec.step_width();
    let want: Vec<bool> = v["mask"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|k| k.as_bool().unwrap()))
        .collect();
    let rule: Vec<bool> = (0..b * t)
        .map(|i| {
            if mc.tokens.is_empty() {
                mc.values[i * sw..(i + 1) * sw].iter().any(|&x| x != 0.0)
            } else {
                mc.tokens[i] != 0
            }
        })
        .collect();
    assert_eq!(rule, want, "keep flags: the Keras rule vs the reference's mask");
    assert!(want.contains(&false) && want.contains(&true), "the case masks some steps");

    // Layer 1 alone over the whole sequence, time-major.
    let i0 = mc.spec.input_width();
    let x: Vec<f32> = (0..t)
        .flat_map(|ti| (0..b).map(move |r| (ti, r)))
        .flat_map(|(ti, r)| {
            if mc.tokens.is_empty() {
                mc.values[(r * t + ti) * i0..(r * t + ti + 1) * i0].to_vec()
            } else {
                let id = mc.tokens[r * t + ti] as usize;
                mc.params[id * i0..(id + 1) * i0].to_vec()
            }
        })
        .collect();
    let keep: Vec<f32> = (0..t)
        .flat_map(|ti| (0..b).map(move |r| (ti, r)))
        .map(|(ti, r)| if want[r * t + ti] { 1.0 } else { 0.0 })
        .collect();
    let (k, r, bo) =
        (mc.spec.kernel_offset(0), mc.spec.recurrent_offset(0), mc.spec.bias_offset(0));
    let w = Weights {
        kernel: &mc.params[k..r],
        recurrent: &mc.params[r..bo],
        bias: &mc.params[bo..bo + 4 * h1],
    };
    let d = Dims { input: i0, units: h1, batch: b, steps: t };
    let (mut gates, mut hs, mut cs) = (
        vec![0.0; d.gates_len().unwrap()],
        vec![0.0; d.states_len().unwrap()],
        vec![0.0; d.states_len().unwrap()],
    );
    let mut tape = Tape { gates: &mut gates, h: &mut hs, c: &mut cs };
    lstm::forward_masked(&d, &w, &x, &keep, &mut tape).unwrap();
    let h_seq = to_batch_major(&tape.h[b * h1..], b, t, h1);
    let mut worst = Worst::default();
    worst.merge(assert_close("h_seq_layer1", &h_seq, &flat(&v["h_seq_layer1"]), KERAS));
    worst.merge(model_case(v, kern));
    worst
}

/// `optimizers`: seven optimizer variants, three steps each from the same weights.
fn optimizers_case(v: &Value, kern: KernelPath) -> Worst {
    let mut mc = ModelCase::from_json(&serde_json::json!({
        "case": "optimizers", "weights": v["weights"], "B": v["B"], "C": v["C"], "H": v["H"],
        "K": v["K"], "x": v["x"], "labels": v["labels"],
    }));
    mc.penalties = Penalties::NONE;
    mc.kernels = kern;
    let mut worst = Worst::default();
    let (_, _, g0) = mc.loss_grad(&mc.params);
    worst.merge(assert_close("grads_at_start", &g0, &flat_all(&v["grads_at_start"]), KERAS));
    let mut names = Vec::new();
    for run in v["runs"].as_array().unwrap() {
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
        let steps: Vec<Value> =
            run["steps"].as_array().unwrap().iter().map(|s| s["weights_after"].clone()).collect();
        // The loss before each step is the model's loss at the weights the step starts from.
        let mut w = mc.params.clone();
        let mut state = vec![0.0; cfg.state_len(w.len())];
        for (it, s) in run["steps"].as_array().unwrap().iter().enumerate() {
            let (loss, _, mut g) = mc.loss_grad(&w);
            let want = s["loss_before_step"].as_f64().unwrap() as f32;
            worst.merge(assert_close(
                &format!("{name} loss before step {}", it + 1),
                &[loss],
                &[want],
                KERAS,
            ));
            cfg.apply(&mc.spec, 0..w.len(), it as u32, &mut w, &mut g, &mut state).unwrap();
        }
        worst.merge(check_steps(name, &mc, &cfg, &steps));
        names.push(name);
    }
    assert_eq!(names.len(), 7, "{names:?}");
    worst
}

/// `lr_schedules`: schedule values at given steps. Learning rates are around 1e-3, where the
/// Keras bound's absolute 1e-5 would accept almost anything, so these are held to a relative
/// 1e-5 (a few f32 ulps of `pow`/`cos`).
fn schedules_case(v: &Value) -> Worst {
    let steps: Vec<u32> =
        v["steps"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap() as u32).collect();
    let mut worst = Worst::default();
    let scheds = [
        ("exponential_decay", Schedule::exponential_decay(1e-3, 100, 0.96, false)),
        ("exponential_decay_staircase", Schedule::exponential_decay(1e-3, 100, 0.96, true)),
        ("cosine_decay", Schedule::cosine_decay(1e-3, 1000, 0.1)),
    ];
    for (key, sched) in scheds {
        let got: Vec<f32> = steps.iter().map(|&s| sched.lr(s)).collect();
        let tol = common::Tolerance { abs: 0.0, rel: 1e-5 };
        worst.merge(assert_close(key, &got, &flat(&v[key]["values"]), tol));
    }
    worst
}

/// The exact path, then the fast path on every instruction set this CPU has.
fn kernel_paths() -> Vec<KernelPath> {
    let fast = Isa::ALL.into_iter().filter_map(Fast::with_isa).map(KernelPath::Fast);
    std::iter::once(KernelPath::Exact).chain(fast).collect()
}

#[test]
fn every_keras_case_matches() {
    for kern in kernel_paths() {
        println!("kernel path: {}", kern.describe());
        every_keras_case_matches_on(kern);
    }
}

fn every_keras_case_matches_on(kern: KernelPath) {
    let cases = fixtures();
    assert!(cases.len() >= 12, "expected the 12 reference files, found {}", cases.len());
    let mut checked = 0;
    for (path, v) in &cases {
        let name = path.file_name().unwrap().to_string_lossy();
        let case = v["case"].as_str().unwrap_or_else(|| panic!("{name}: no `case` field"));
        let worst = match case {
            "lstm_layer" | "lstm_layer_initial_state" => lstm_layer(v, kern),
            "seed_model_adam"
            | "seed_model_l2_adam"
            | "seed_model_l1_sgd_momentum"
            | "multiclass_adam"
            | "regression_mse" => model_case(v, kern),
            "masked_sequence_model" | "embedding_mask_zero_model" => masked_model_case(v, kern),
            "optimizers" => optimizers_case(v, kern),
            "lr_schedules" => schedules_case(v),
            "tokenizer" => {
                println!("{name}: case `tokenizer` is checked by tests/tokenizer_parity.rs");
                continue;
            }
            other => panic!("{name}: unknown case `{other}`: add a checker for it"),
        };
        checked += 1;
        println!(
            "{name} ({case}): worst |diff|/bound {:.3}, max rel err {:.2e}, max abs err {:.2e}",
            worst.bound_ratio, worst.rel, worst.abs
        );
    }
    assert!(checked >= 11, "only {checked} cases checked");
}
