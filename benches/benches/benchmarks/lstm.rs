//! LSTM forward: one streaming step, one layer over a sequence, and whole-model inference.

use super::{
    config, lstm_forward_flops, model_forward_flops, tokens, values, BATCH, MCU, SEED, STEPS,
};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use tinylstm::lstm::{self, Dims, Tape, Weights};
use tinylstm::{init, model, Model, Sequences, Spec, Stream};

fn params(spec: &Spec) -> Vec<f32> {
    let mut p = vec![0.0f32; spec.param_count()];
    init::init_params(spec, 7, &mut p).expect("valid spec");
    p
}

fn input(spec: &Spec, batch: usize, steps: usize) -> (Vec<u32>, Vec<f32>) {
    match spec.input {
        tinylstm::InputKind::Tokens { vocab, .. } => (tokens(batch * steps, vocab, 9), Vec::new()),
        tinylstm::InputKind::Channels(c) => (Vec::new(), values(batch * steps * c, 9)),
    }
}

fn seqs<'a>(t: &'a [u32], v: &'a [f32]) -> Sequences<'a> {
    if t.is_empty() {
        Sequences::Values(v)
    } else {
        Sequences::Tokens(t)
    }
}

/// One layer over a whole sequence (`lstm::forward`): input projection GEMM + T recurrent steps.
fn layer_forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("lstm layer forward (elements = FLOP)");
    for (label, i, h, b, s) in [
        ("seed l1", 64, 128, BATCH, STEPS),
        ("seed l2", 128, 64, BATCH, STEPS),
        ("mcu", 6, 32, BATCH, STEPS),
        ("seed l1 one step", 64, 128, BATCH, 1),
        ("seed l1 one step batch 1", 64, 128, 1, 1),
        ("mcu one step batch 1", 6, 32, 1, 1),
        ("firmware 3→64 one step batch 1", 3, 64, 1, 1),
    ] {
        let d = Dims { input: i, units: h, batch: b, steps: s };
        let kernel = values(i * 4 * h, 1);
        let recurrent: Vec<f32> = values(h * 4 * h, 2).iter().map(|v| v * 0.2).collect();
        let bias = values(4 * h, 3);
        let w = Weights { kernel: &kernel, recurrent: &recurrent, bias: &bias };
        let x = values(d.input_len().unwrap(), 4);
        let mut gates = vec![0.0f32; d.gates_len().unwrap()];
        let mut hs = vec![0.0f32; d.states_len().unwrap()];
        let mut cs = vec![0.0f32; d.states_len().unwrap()];
        g.throughput(Throughput::Elements(lstm_forward_flops(i, h, b, s)));
        g.bench_with_input(
            BenchmarkId::new(label, format!("I{i} H{h} B{b} T{s}")),
            &(),
            |bch, _| {
                bch.iter(|| {
                    let mut tape = Tape { gates: &mut gates, h: &mut hs, c: &mut cs };
                    lstm::forward(&d, &w, black_box(&x), &mut tape).expect("sizes match")
                })
            },
        );
    }
    g.finish();
}

/// Whole-model inference (`model::forward`) and one streaming step (`Model::step_outputs`).
fn model_forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("model forward (elements = FLOP)");
    for (label, spec) in [("seed", SEED), ("mcu", MCU)] {
        let p = params(&spec);
        for b in [1usize, BATCH, 256] {
            let (t, v) = input(&spec, b, STEPS);
            let mut work = vec![0.0f32; spec.forward_work_len(b, STEPS).unwrap()];
            let mut out = vec![0.0f32; b * spec.outputs];
            g.throughput(Throughput::Elements(model_forward_flops(&spec, b, STEPS)));
            g.bench_with_input(BenchmarkId::new(label, format!("B{b} T{STEPS}")), &(), |bch, _| {
                bch.iter(|| {
                    model::forward(&spec, &p, black_box(seqs(&t, &v)), b, &mut work, &mut out)
                        .expect("sizes match")
                })
            });
        }
        let (t, v) = input(&spec, 1, 1);
        let mut state = vec![0.0f32; spec.state_len(1).unwrap()];
        let mut work = vec![0.0f32; spec.step_work_len(1).unwrap()];
        let mut out = vec![0.0f32; spec.outputs];
        let (model, mut stream) =
            (Model::new(&spec, &p), Stream { state: &mut state, work: &mut work });
        g.throughput(Throughput::Elements(model_forward_flops(&spec, 1, 1)));
        g.bench_with_input(BenchmarkId::new(label, "streaming step B1"), &(), |bch, _| {
            bch.iter(|| {
                model
                    .step_outputs(&mut stream, black_box(seqs(&t, &v)), &mut out)
                    .expect("sizes match")
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = layer_forward, model_forward
}
