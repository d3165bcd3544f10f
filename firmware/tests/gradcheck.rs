//! On-target checks of the core's backward pass, run under QEMU by defmt-test
//! (`cargo test --release` in `firmware/`; the QEMU harness `tests/tests/qemu.rs` runs it too):
//!
//! * the Keras reference case `lstm_layer` (tests/fixtures/keras/lstm_layer.json, embedded as
//!   `keras_lstm_layer.rs`): forward states and every gradient within `1e-5 + 1e-4·|b|`;
//! * BPTT gradients of whole models against central differences computed on the device, for
//!   every head, stacked layers, token input, T = 1 and truncated windows with recomputation;
//! * recomputing BPTT gives the tape-keeping mode's bits;
//! * the head-only gradient on cached features (`tune::features`, then the core's
//!   `train::dense_loss_and_grad`) gives the bits of the core's `train::loss_and_grad` on the
//!   embedded model.
#![no_std]
#![no_main]

mod keras_lstm_layer;

use tinylstm::lstm::{self, Dims, Grads, Tape, Weights};
use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainBuffers, TrainOptions};
use tinylstm::{model, Head, InputKind, Sequences, Spec, Targets};

/// Keras parity bound: `|a − b| ≤ 1e-5 + 1e-4·|b|`.
fn keras_close(what: &str, got: &[f32], want: &[f32]) {
    defmt::assert_eq!(got.len(), want.len(), "{=str}: lengths", what);
    let mut worst = 0.0f32;
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let bound = 1e-5 + 1e-4 * b.abs();
        let err = (a - b).abs();
        if err.is_nan() || err > bound {
            defmt::panic!(
                "{=str}[{=usize}]: got {=f32}, Keras {=f32}, |diff| {=f32}",
                what,
                i,
                a,
                b,
                err
            );
        }
        worst = worst.max(err / bound);
    }
    defmt::info!(
        "keras {=str}: {=usize} values, worst |diff|/bound {=f32}",
        what,
        got.len(),
        worst
    );
}

/// `[B][T][X]` → `[T][B][X]`.
fn time_major(src: &[f32], b: usize, t: usize, x: usize, dst: &mut [f32]) {
    for r in 0..b {
        for s in 0..t {
            dst[(s * b + r) * x..(s * b + r + 1) * x]
                .copy_from_slice(&src[(r * t + s) * x..(r * t + s + 1) * x]);
        }
    }
}

/// `[T][B][X]` → `[B][T][X]`.
fn batch_major(src: &[f32], b: usize, t: usize, x: usize, dst: &mut [f32]) {
    for r in 0..b {
        for s in 0..t {
            dst[(r * t + s) * x..(r * t + s + 1) * x]
                .copy_from_slice(&src[(s * b + r) * x..(s * b + r + 1) * x]);
        }
    }
}

/// A small deterministic generator for test data.
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

const MAX_P: usize = 512;
const MAX_X: usize = 64;
const MAX_W: usize = 2048;
const EPS: f32 = 4e-3;

struct Case {
    name: &'static str,
    spec: Spec,
    batch: usize,
    steps: usize,
    bptt: Bptt,
    seed: u64,
}

struct Data {
    values: [f32; MAX_X],
    tokens: [u32; MAX_X],
    classes: [u32; 4],
    targets: [f32; 16],
}

impl Data {
    fn new(c: &Case) -> Self {
        let mut r = Lcg(c.seed);
        let mut d =
            Data { values: [0.0; MAX_X], tokens: [0; MAX_X], classes: [0; 4], targets: [0.0; 16] };
        let n = c.batch * c.steps;
        match c.spec.input {
            InputKind::Tokens { vocab, .. } => {
                d.tokens[..n].iter_mut().for_each(|v| *v = r.below(vocab) as u32)
            }
            InputKind::Channels(ch) => d.values[..n * ch].iter_mut().for_each(|v| *v = r.next()),
        }
        let k = c.spec.outputs;
        match c.spec.head {
            Head::Softmax => d.classes[..c.batch].iter_mut().for_each(|v| *v = r.below(k) as u32),
            Head::Sigmoid => {
                d.targets[..c.batch * k].iter_mut().for_each(|v| *v = r.below(2) as f32)
            }
            Head::Linear => d.targets[..c.batch * k].iter_mut().for_each(|v| *v = r.next()),
        }
        d
    }

    fn inputs(&self, c: &Case) -> Sequences<'_> {
        let n = c.batch * c.steps;
        match c.spec.input {
            InputKind::Tokens { .. } => Sequences::Tokens(&self.tokens[..n]),
            InputKind::Channels(ch) => Sequences::Values(&self.values[..n * ch]),
        }
    }

    fn targets(&self, c: &Case) -> Targets<'_> {
        match c.spec.head {
            Head::Softmax => Targets::Classes(&self.classes[..c.batch]),
            _ => Targets::Values(&self.targets[..c.batch * c.spec.outputs]),
        }
    }
}

/// The loss by streaming (`model::step`, another code path than the training pass), summed in
/// f64 from the head's outputs: the steps before the BPTT window run with `base`, the window with
/// `params`, so the window's starting state is a constant as truncated BPTT assumes.
fn stream_loss(c: &Case, d: &Data, base: &[f32], params: &[f32], values: &[f32]) -> f64 {
    let spec = &c.spec;
    let (w, _) = c.bptt.resolve(c.steps);
    let k = spec.outputs;
    let width = spec.step_width();
    let mut state = [0.0f32; 64];
    let mut work = [0.0f32; 256];
    let state = &mut state[..spec.state_len(1).unwrap()];
    let work = &mut work[..spec.step_work_len(1).unwrap()];
    let mut total = 0.0f64;
    for r in 0..c.batch {
        model::reset_state(state);
        let mut out = [0.0f32; 8];
        for s in 0..c.steps {
            let p = if s < c.steps - w { base } else { params };
            let at = r * c.steps + s;
            let x = match spec.input {
                InputKind::Tokens { .. } => Sequences::Tokens(&d.tokens[at..at + 1]),
                InputKind::Channels(_) => Sequences::Values(&values[at * width..(at + 1) * width]),
            };
            defmt::unwrap!(model::step(spec, p, x, 1, state, work, Some(&mut out[..k])));
        }
        let o = &out[..k];
        total += match spec.head {
            Head::Softmax => -libm::log(o[d.classes[r] as usize] as f64),
            Head::Sigmoid => {
                let mut s = 0.0;
                for (&p, &y) in o.iter().zip(&d.targets[r * k..(r + 1) * k]) {
                    let (p, y) = (p as f64, y as f64);
                    s -= y * libm::log(p) + (1.0 - y) * libm::log(1.0 - p);
                }
                s / k as f64
            }
            Head::Linear => {
                let mut s = 0.0;
                for (&p, &y) in o.iter().zip(&d.targets[r * k..(r + 1) * k]) {
                    let e = p as f64 - y as f64;
                    s += e * e;
                }
                s / k as f64
            }
        };
    }
    total / c.batch as f64
}

fn close(what: &str, case: &str, i: usize, analytic: f32, numeric: f64) -> f64 {
    let err = (numeric - analytic as f64).abs();
    let bound = 2e-3 + 2e-2 * (analytic as f64).abs();
    if err.is_nan() || err > bound {
        defmt::panic!(
            "{=str}: {=str}[{=usize}]: BPTT {=f32}, central difference {=f64}, |diff| {=f64} > {=f64}",
            case, what, i, analytic, numeric, err, bound
        );
    }
    err / bound
}

/// Every parameter's (and every in-window input's) BPTT gradient against central differences.
fn gradcheck(c: &Case) {
    let spec = &c.spec;
    let n = spec.param_count();
    defmt::assert!(n <= MAX_P);
    let mut params = [0.0f32; MAX_P];
    defmt::unwrap!(tinylstm::init::init_params(spec, c.seed, &mut params[..n]));
    // Perturb the biases and the head so the forget-gate ones and zeros are not special.
    let mut r = Lcg(c.seed ^ 0xabcd);
    for p in params[..n].iter_mut() {
        *p += 0.1 * r.next();
    }
    let d = Data::new(c);
    let opts = TrainOptions { bptt: c.bptt, norm: 0 };
    let wl = spec.train_work_len(c.batch, c.steps, c.bptt).unwrap();
    defmt::assert!(wl <= MAX_W);
    let mut work = [0.0f32; MAX_W];
    let mut grads = [0.0f32; MAX_P];
    let mut dx = [0.0f32; MAX_X];
    let nx = d.inputs(c).len();
    let batch = Batch { inputs: d.inputs(c), targets: d.targets(c), batch: c.batch };
    let is_values = matches!(spec.input, InputKind::Channels(_));
    let loss = defmt::unwrap!(loss_and_grad(
        spec,
        &params[..n],
        &batch,
        &opts,
        TrainBuffers {
            work: &mut work[..wl],
            grads: &mut grads[..n],
            input_grad: if is_values { Some(&mut dx[..nx]) } else { None },
            outputs: None
        }
    ));
    let values = d.values;
    let streamed = stream_loss(c, &d, &params[..n], &params[..n], &values[..nx]);
    let rel = libm::fabs(streamed - loss as f64) / libm::fabs(streamed).max(1e-3);
    defmt::assert!(rel < 1e-5, "{=str}: loss {=f32} vs streamed {=f64}", c.name, loss, streamed);

    let mut worst = 0.0f64;
    let base = params;
    for i in 0..n {
        let mut p = base;
        p[i] = base[i] + EPS;
        let up = stream_loss(c, &d, &base[..n], &p[..n], &values[..nx]);
        p[i] = base[i] - EPS;
        let down = stream_loss(c, &d, &base[..n], &p[..n], &values[..nx]);
        worst = worst.max(close("param", c.name, i, grads[i], (up - down) / (2.0 * EPS as f64)));
    }
    if is_values {
        let (w, _) = c.bptt.resolve(c.steps);
        let width = spec.step_width();
        for i in 0..nx {
            if (i / width) % c.steps < c.steps - w {
                defmt::assert_eq!(dx[i], 0.0, "{=str}: input gradient outside the window", c.name);
                continue;
            }
            let mut v = values;
            v[i] += EPS;
            let up = stream_loss(c, &d, &base[..n], &base[..n], &v[..nx]);
            v[i] -= 2.0 * EPS;
            let down = stream_loss(c, &d, &base[..n], &base[..n], &v[..nx]);
            worst = worst.max(close("input", c.name, i, dx[i], (up - down) / (2.0 * EPS as f64)));
        }
    }
    defmt::info!(
        "gradcheck {=str}: {=usize} parameters, worst |diff|/bound {=f64}",
        c.name,
        n,
        worst
    );

    // Recomputation gives the tape-keeping mode's bits.
    if c.bptt.segment != 0 {
        let tape = Bptt { segment: 0, ..c.bptt };
        let wl2 = spec.train_work_len(c.batch, c.steps, tape).unwrap();
        defmt::assert!(wl2 <= MAX_W);
        let mut g2 = [0.0f32; MAX_P];
        let l2 = defmt::unwrap!(loss_and_grad(
            spec,
            &params[..n],
            &batch,
            &TrainOptions { bptt: tape, norm: 0 },
            TrainBuffers::new(&mut work[..wl2], &mut g2[..n])
        ));
        defmt::assert_eq!(l2.to_bits(), loss.to_bits());
        for i in 0..n {
            defmt::assert_eq!(
                g2[i].to_bits(),
                grads[i].to_bits(),
                "{=str}: recompute bits differ at {=usize}",
                c.name,
                i
            );
        }
        defmt::info!("gradcheck {=str}: recompute == tape, bit for bit", c.name);
    }
}

#[defmt_test::tests]
mod tests {
    use super::*;
    use crate::keras_lstm_layer as k;

    #[init]
    fn init() {
        // Links the firmware's platform layer: logger, exit codes, panic and fault handlers.
        defmt::info!("on-target tests on {=str}", tinylstm_firmware::platform::BOARD);
    }

    #[test]
    fn keras_lstm_layer_forward_and_backward() {
        let d = Dims { input: k::I, units: k::H, batch: k::B, steps: k::T };
        let w = Weights { kernel: &k::KERNEL, recurrent: &k::RECURRENT_KERNEL, bias: &k::BIAS };
        let mut x = [0.0f32; k::B * k::T * k::I];
        time_major(&k::X, k::B, k::T, k::I, &mut x);
        let mut gates = [0.0f32; k::T * k::B * 4 * k::H];
        let mut hs = [0.0f32; (k::T + 1) * k::B * k::H];
        let mut cs = [0.0f32; (k::T + 1) * k::B * k::H];
        let mut tape = Tape { gates: &mut gates, h: &mut hs, c: &mut cs };
        defmt::unwrap!(lstm::forward(&d, &w, &x, &mut tape));
        let bh = k::B * k::H;
        let mut h_seq = [0.0f32; k::B * k::T * k::H];
        batch_major(&tape.h[bh..], k::B, k::T, k::H, &mut h_seq);
        keras_close("h_seq", &h_seq, &k::H_SEQ);
        keras_close("h_last", &tape.h[k::T * bh..], &k::H_LAST);
        keras_close("c_last", &tape.c[k::T * bh..], &k::C_LAST);

        let mut cot = [0.0f32; k::B * k::T * k::H];
        time_major(&k::COTANGENT, k::B, k::T, k::H, &mut cot);
        let (mut dh, mut dc) = ([0.0f32; k::B * k::H], [0.0f32; k::B * k::H]);
        let mut gk = [0.0f32; k::I * 4 * k::H];
        let mut gr = [0.0f32; k::H * 4 * k::H];
        let mut gb = [0.0f32; 4 * k::H];
        let mut grads = Grads { kernel: &mut gk, recurrent: &mut gr, bias: &mut gb };
        let mut dx = [0.0f32; k::B * k::T * k::I];
        defmt::unwrap!(lstm::backward(
            &d,
            &w,
            &x,
            &mut tape,
            Some(&cot),
            &mut dh,
            &mut dc,
            &mut grads,
            Some(&mut dx)
        ));
        keras_close("grad_kernel", &gk, &k::GRAD_KERNEL);
        keras_close("grad_recurrent_kernel", &gr, &k::GRAD_RECURRENT_KERNEL);
        keras_close("grad_bias", &gb, &k::GRAD_BIAS);
        let mut gx = [0.0f32; k::B * k::T * k::I];
        batch_major(&dx, k::B, k::T, k::I, &mut gx);
        keras_close("grad_x", &gx, &k::GRAD_X);
    }

    #[test]
    fn bptt_softmax_full() {
        gradcheck(&Case {
            name: "softmax, full BPTT",
            spec: Spec::channels(3).lstm(5).dense(3, Head::Softmax),
            batch: 2,
            steps: 6,
            bptt: Bptt::FULL,
            seed: 1,
        });
    }

    #[test]
    fn bptt_sigmoid_two_layers() {
        gradcheck(&Case {
            name: "sigmoid, 2 layers",
            spec: Spec::channels(2).lstm(4).lstm(3).dense(2, Head::Sigmoid),
            batch: 2,
            steps: 5,
            bptt: Bptt::FULL,
            seed: 2,
        });
    }

    #[test]
    fn bptt_linear_single_step() {
        gradcheck(&Case {
            name: "linear, T=1",
            spec: Spec::channels(2).lstm(3).dense(2, Head::Linear),
            batch: 1,
            steps: 1,
            bptt: Bptt::FULL,
            seed: 3,
        });
    }

    #[test]
    fn bptt_tokens_truncated() {
        gradcheck(&Case {
            name: "tokens, truncated window 3",
            spec: Spec::tokens(7, 3).lstm(4).dense(3, Head::Softmax),
            batch: 2,
            steps: 5,
            bptt: Bptt::truncated(3),
            seed: 4,
        });
    }

    #[test]
    fn bptt_truncated_recompute() {
        gradcheck(&Case {
            name: "softmax, window 5, recompute 2",
            spec: Spec::channels(3).lstm(5).dense(3, Head::Softmax),
            batch: 2,
            steps: 7,
            bptt: Bptt::truncated(5).recompute(2),
            seed: 5,
        });
    }

    #[test]
    fn head_gradient_matches_core() {
        use tinylstm::train::{dense_loss_and_grad, HeadBatch, HeadBuffers};
        use tinylstm_device::data::{Dataset, View};
        use tinylstm_device::model::{params_in_place, Model};
        use tinylstm_device::tune::{features, targets};
        use tinylstm_firmware::embedded::*;
        const N: usize = if SAMPLES_N < 4 { SAMPLES_N } else { 4 };
        let file = defmt::unwrap!(tinylstm::format::ModelFile::parse(model_bytes()).ok());
        let params = defmt::unwrap!(params_in_place(&file).ok());
        let m = Model { spec: SPEC, steps: STEPS, norm: standardization() };
        let data = defmt::unwrap!(Dataset::parse(SAMPLES, SHAPE).ok());
        let view = View::clean(data, m.norm);
        let mut xs = [0u32; N * SEQ_WORDS];
        let mut ys = [0u32; N * TARGET_WORDS];
        for i in 0..N {
            view.read(i, &mut xs[i * SEQ_WORDS..(i + 1) * SEQ_WORDS]);
            view.targets(i, &mut ys[i * TARGET_WORDS..(i + 1) * TARGET_WORDS]);
        }
        // The core's full pass: a batch of N with a one-step window (only the head's gradient
        // is compared).
        let bptt = Bptt::truncated(1);
        let mut work = [0.0f32; SPEC.train_work_len(N, STEPS, Bptt::truncated(1)).unwrap()];
        let mut grads = [0.0f32; PARAMS];
        let batch = Batch { inputs: m.inputs(&xs), targets: targets(&SPEC, &ys, N), batch: N };
        let opts = TrainOptions { bptt, norm: 0 };
        let loss = defmt::unwrap!(loss_and_grad(
            &SPEC,
            params,
            &batch,
            &opts,
            TrainBuffers::new(&mut work, &mut grads)
        ));
        // The device: cached features (`tune::features`, forward without the head), then the
        // core's head-only loss and gradient.
        let mut all = [0.0f32; SAMPLES_N * TOP_UNITS];
        let (mut x, mut fw) = ([0u32; SEQ_WORDS], [0.0f32; FORWARD_WORK]);
        defmt::unwrap!(features(
            &m,
            tinylstm_device::model::Weights::flat(params),
            &view,
            &mut x,
            &mut fw,
            &mut all
        ));
        let feats = &all[..N * TOP_UNITS];
        let (mut lg, mut dl, mut hg) =
            ([0.0f32; N * OUTPUTS], [0.0f32; N * OUTPUTS], [0.0f32; HEAD_LEN]);
        let cached = HeadBatch { features: feats, targets: targets(&SPEC, &ys, N), batch: N };
        let buffers = HeadBuffers { logits: &mut lg, dlogits: &mut dl, grads: &mut hg };
        let head = &params[SPEC.head_range()];
        let hl = defmt::unwrap!(dense_loss_and_grad(&SPEC, head, &cached, &opts, buffers));
        defmt::assert_eq!(hl.to_bits(), loss.to_bits(), "head loss bits");
        for (i, (a, b)) in hg.iter().zip(&grads[SPEC.head_range()]).enumerate() {
            defmt::assert_eq!(a.to_bits(), b.to_bits(), "head gradient bits differ at {=usize}", i);
        }
        defmt::info!(
            "head gradient on cached features == core loss_and_grad, bit for bit ({=usize} values)",
            HEAD_LEN
        );
    }
}
