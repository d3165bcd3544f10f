//! Training: `loss_and_grad` (forward + full BPTT) over a batch, and one Adam step.

use super::{config, tokens, train_flops, values, BATCH, MCU, SEED, STEPS};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use tinylstm::optim::{Optimizer, OptimizerConfig};
use tinylstm::train::{loss_and_grad, Batch, Bptt, TrainBuffers, TrainOptions};
use tinylstm::{init, InputKind, Sequences, Targets};

fn bptt(c: &mut Criterion) {
    let mut g = c.benchmark_group("loss_and_grad full BPTT (elements = FLOP)");
    for (label, spec, b) in [
        ("seed", SEED, BATCH),
        ("seed", SEED, BATCH / 2),
        ("mcu", MCU, BATCH),
        ("mcu", MCU, BATCH / 2),
    ] {
        let mut params = vec![0.0f32; spec.param_count()];
        init::init_params(&spec, 7, &mut params).expect("valid spec");
        let (ids, vals) = match spec.input {
            InputKind::Tokens { vocab, .. } => (tokens(b * STEPS, vocab, 11), Vec::new()),
            InputKind::Channels(ch) => (Vec::new(), values(b * STEPS * ch, 11)),
        };
        let inputs =
            if ids.is_empty() { Sequences::Values(&vals) } else { Sequences::Tokens(&ids) };
        let classes: Vec<u32> = (0..b).map(|i| (i % spec.outputs) as u32).collect();
        let reals: Vec<f32> = (0..b).map(|i| (i % 2) as f32).collect();
        let targets =
            if spec.outputs > 1 { Targets::Classes(&classes) } else { Targets::Values(&reals) };
        let batch = Batch { inputs, targets, batch: b };
        let opts = TrainOptions { bptt: Bptt::FULL, norm: 0 };
        let mut work = vec![0.0f32; spec.train_work_len(b, STEPS, opts.bptt).unwrap()];
        let mut grads = vec![0.0f32; spec.param_count()];
        g.throughput(Throughput::Elements(train_flops(&spec, b, STEPS)));
        g.bench_with_input(BenchmarkId::new(label, format!("B{b} T{STEPS}")), &(), |bch, _| {
            bch.iter(|| {
                loss_and_grad(
                    &spec,
                    &params,
                    black_box(&batch),
                    &opts,
                    TrainBuffers::new(&mut work, &mut grads),
                )
                .expect("sizes match")
            })
        });
    }
    g.finish();
}

fn adam(c: &mut Criterion) {
    let mut g = c.benchmark_group("adam step (elements = parameters)");
    for (label, spec) in [("seed", SEED), ("mcu", MCU)] {
        let cfg = OptimizerConfig::new(Optimizer::adam());
        let n = spec.param_count();
        let mut params = values(n, 1);
        let mut grads: Vec<f32> = values(n, 2).iter().map(|v| v * 1e-2).collect();
        let mut state = vec![0.0f32; cfg.state_len(n)];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new(label, format!("{n} params")), &(), |bch, _| {
            bch.iter(|| {
                cfg.apply(&spec, 0..n, 3, &mut params, black_box(&mut grads), &mut state)
                    .expect("finite gradients")
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bptt, adam
}
