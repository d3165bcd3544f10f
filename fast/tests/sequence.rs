//! `OneSequence` (batch 1 on one or two cores) against the fast path's own forward pass at
//! batch 1 (bit for bit where that pass has no scalar column tail: every pre-activation is the
//! same start value and the same fused multiply-adds in the same order, and the cell step is
//! element-wise), against the exact path within the fast path's stated tolerance, and one
//! worker against two bit for bit — over token and channel models, masks, odd sizes and
//! sequence lengths that change from call to call.

use tinylstm::{init, model, Error, Head, Mask, Sequences, Spec};
use tinylstm_fast::sequence::{Batch1, OneSequence};
use tinylstm_fast::{Fast, Isa, KernelPath};

fn paths() -> Vec<Fast> {
    Isa::ALL.into_iter().filter_map(Fast::with_isa).collect()
}

fn params(spec: &Spec, seed: u64) -> Vec<f32> {
    let mut p = vec![0.0f32; spec.param_count()];
    init::init_params(spec, seed, &mut p).expect("init");
    // Non-zero biases, so that a bias in the wrong column shows.
    for l in 0..spec.layers {
        let at = spec.bias_offset(l);
        for (j, b) in p[at..at + 4 * spec.units[l]].iter_mut().enumerate() {
            *b += ((j * 37 % 11) as f32 - 5.0) * 0.03;
        }
    }
    p
}

/// `n` token ids below `vocab`, every 5th one 0 when `zeros`.
fn tokens(n: usize, vocab: usize, seed: usize, zeros: bool) -> Vec<u32> {
    (0..n)
        .map(|i| if zeros && i % 5 == 3 { 0 } else { ((i * 7919 + seed * 31) % vocab) as u32 })
        .collect()
}

/// `n` values in [-1, 1], every 4th step all equal to `mask` when given.
fn values(steps: usize, c: usize, seed: usize, mask: Option<f32>) -> Vec<f32> {
    (0..steps * c)
        .map(|i| match mask {
            Some(m) if (i / c) % 4 == 2 => m,
            _ => (((i * 13 + seed * 7) % 29) as f32 - 14.0) / 14.0,
        })
        .collect()
}

/// The fast path's forward pass at batch 1 (from the projection table for a token model).
fn plain(kern: KernelPath, spec: &Spec, p: &[f32], input: Sequences<'_>) -> Vec<f32> {
    let steps = input.len() / spec.step_width();
    let mut work = vec![0.0f32; spec.forward_work_len(1, steps).expect("work")];
    let mut out = vec![0.0f32; spec.outputs];
    match input {
        Sequences::Tokens(_) => {
            let mut table = vec![0.0f32; model::projection_table_len(spec).expect("table")];
            model::projection_rows_with(kern, spec, p, 0, &mut table).expect("table");
            model::forward_projected_with(kern, spec, p, &table, input, 1, &mut work, &mut out)
        }
        Sequences::Values(_) => model::forward_with(kern, spec, p, input, 1, &mut work, &mut out),
    }
    .expect("forward");
    out
}

fn one(one: &mut OneSequence, spec: &Spec, input: Sequences<'_>) -> Vec<f32> {
    let mut out = vec![0.0f32; spec.outputs];
    one.forward(input, &mut out).expect("forward");
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Token and channel models whose units are multiples of 4 (no scalar column tail on any
/// set), with and without masks; two workers where the widest layer has ≥ 64 units.
fn models() -> Vec<Spec> {
    vec![
        Spec::tokens(300, 16).lstm(64).lstm(20).dense(3, Head::Softmax),
        Spec::tokens(120, 8).lstm(96).dense(1, Head::Sigmoid).mask_zero(),
        Spec::channels(5).lstm(68).lstm(64).lstm(8).dense(2, Head::Linear),
        Spec::channels(3).lstm(64).dense(4, Head::Softmax).masking(0.5),
        Spec::channels(6).lstm(32).dense(4, Head::Softmax),
    ]
}

fn input_of<'a>(spec: &Spec, ids: &'a [u32], vals: &'a [f32]) -> Sequences<'a> {
    match spec.input {
        tinylstm::InputKind::Tokens { .. } => Sequences::Tokens(ids),
        tinylstm::InputKind::Channels(_) => Sequences::Values(vals),
    }
}

#[test]
fn same_bits_as_the_fast_forward_on_every_set() {
    for fast in paths() {
        for (m, spec) in models().iter().enumerate() {
            let p = params(spec, 3 + m as u64);
            let mut engines = engines(fast, spec, &p);
            let widest = spec.units[..spec.layers].iter().max().copied().unwrap_or(0);
            assert_eq!(engines[1].workers(), if widest >= 64 { 2 } else { 1 });
            let (vocab, width) = match spec.input {
                tinylstm::InputKind::Tokens { vocab, .. } => (vocab, 1),
                tinylstm::InputKind::Channels(c) => (1, c),
            };
            let masked = spec.mask != Mask::Off;
            // Lengths change from call to call, on the same prepared model.
            for (call, steps) in [1usize, 7, 40, 3, 100].into_iter().enumerate() {
                let ids = tokens(steps, vocab, call, masked);
                let vals = values(steps, width, call, masked.then_some(0.5));
                let input = input_of(spec, &ids, &vals);
                let want = plain(KernelPath::Fast(fast), spec, &p, input);
                for e in engines.iter_mut() {
                    let got = one(e, spec, input_of(spec, &ids, &vals));
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{:?} model {m}, T = {steps}, {} worker(s), {:?} calls: {got:?} vs {want:?}",
                        fast.isa(),
                        e.workers(),
                        e.calls()
                    );
                }
            }
            check_ways(&engines, spec);
        }
    }
}

/// One worker; two pinned to two workers; two pinned to the calling thread; two choosing by
/// time.
fn engines(fast: Fast, spec: &Spec, p: &[f32]) -> Vec<OneSequence> {
    let mut e: Vec<OneSequence> =
        [1, 2, 2, 2].map(|t| OneSequence::new(fast, spec, p, t).expect("prepare")).into();
    e[1].pin(Some(true));
    e[2].pin(Some(false));
    e
}

/// The pinned engines ran their way (when the model has two workers at all).
fn check_ways(engines: &[OneSequence], spec: &Spec) {
    let n = engines[0].calls().0 + engines[0].calls().1;
    assert_eq!(engines[0].calls(), (0, n), "one worker: every call alone");
    if engines[1].workers() == 2 {
        assert_eq!(engines[1].calls(), (n, 0), "{spec:?}: pinned to two workers");
        assert_eq!(engines[2].calls(), (0, n), "{spec:?}: pinned to one");
    } else {
        assert_eq!(engines[1].calls(), (0, n), "{spec:?}: one worker only");
    }
}

/// Odd sizes (scalar column tails on the plain fast path, uneven splits here): one worker and
/// two give the same bits, and both follow the exact path within the tolerance the crate
/// states for the fast path (relative 1e-4 of values of magnitude ≤ a few units: the outputs
/// here are logits of that size or probabilities).
#[test]
fn odd_sizes_follow_the_exact_path_and_do_not_depend_on_the_split() {
    let specs = [
        Spec::tokens(50, 7).lstm(67).lstm(5).dense(3, Head::Linear),
        Spec::channels(3).lstm(65).lstm(71).dense(2, Head::Sigmoid),
        Spec::channels(2).lstm(1).dense(1, Head::Linear),
        Spec::tokens(9, 3).lstm(130).dense(5, Head::Softmax).mask_zero(),
    ];
    for fast in paths() {
        for (m, spec) in specs.iter().enumerate() {
            let p = params(spec, 11 + m as u64);
            let mut engines = engines(fast, spec, &p);
            let (vocab, width) = match spec.input {
                tinylstm::InputKind::Tokens { vocab, .. } => (vocab, 1),
                tinylstm::InputKind::Channels(c) => (1, c),
            };
            for steps in [1usize, 13, 60] {
                let ids = tokens(steps, vocab, m, spec.mask != Mask::Off);
                let vals = values(steps, width, m, None);
                let want = plain(KernelPath::Exact, spec, &p, input_of(spec, &ids, &vals));
                let a = one(&mut engines[0], spec, input_of(spec, &ids, &vals));
                for e in engines[1..].iter_mut() {
                    let b = one(e, spec, input_of(spec, &ids, &vals));
                    assert_eq!(bits(&a), bits(&b), "{:?} model {m}, T = {steps}", fast.isa());
                }
                for (g, w) in a.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{:?} model {m}, T = {steps}: {a:?} vs exact {want:?}",
                        fast.isa()
                    );
                }
            }
            check_ways(&engines, spec);
        }
    }
}

#[test]
fn repeated_calls_give_the_same_bits() {
    let spec = Spec::tokens(200, 12).lstm(128).lstm(64).dense(1, Head::Sigmoid);
    let p = params(&spec, 5);
    let ids = tokens(100, 200, 1, false);
    let mut first = None;
    // Pinned to two workers, to one, and choosing by time (which switches between them).
    for pin in [Some(true), Some(false), None] {
        let mut e = OneSequence::new(Fast::new(), &spec, &p, 2).expect("prepare");
        e.pin(pin);
        let want =
            first.get_or_insert_with(|| bits(&one(&mut e, &spec, Sequences::Tokens(&ids)))).clone();
        for _ in 0..100 {
            assert_eq!(bits(&one(&mut e, &spec, Sequences::Tokens(&ids))), want, "{pin:?}");
        }
        if pin.is_none() {
            let (two, alone) = e.calls();
            assert!(alone >= 32 && two >= 1 && two + alone == 100, "{:?}", e.calls());
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let spec = Spec::tokens(10, 4).lstm(64).dense(2, Head::Softmax);
    let p = params(&spec, 1);
    for pin in [None, Some(true), Some(false)] {
        let mut e = OneSequence::new(Fast::new(), &spec, &p, 2).expect("prepare");
        e.pin(pin);
        let mut out = [0.0f32; 2];
        let err = e.forward(Sequences::Tokens(&[1, 10, 2]), &mut out).unwrap_err();
        assert!(matches!(err, Error::TokenOutOfRange { index: 1, token: 10, vocab: 10 }));
        let err = e.forward(Sequences::Values(&[0.5; 4]), &mut out).unwrap_err();
        assert!(matches!(err, Error::InputKind));
        let err = e.forward(Sequences::Tokens(&[]), &mut out).unwrap_err();
        assert!(matches!(err, Error::BufferLength { .. }));
        let err = e.forward(Sequences::Tokens(&[1, 2]), &mut [0.0; 3]).unwrap_err();
        assert!(matches!(err, Error::BufferLength { .. }));
        // Still usable after the errors.
        e.forward(Sequences::Tokens(&[1, 2, 3]), &mut out).expect("forward");
        assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let values = Spec::channels(3).lstm(64).dense(1, Head::Linear);
    let pv = params(&values, 2);
    let mut e = OneSequence::new(Fast::new(), &values, &pv, 2).expect("prepare");
    let err = e.forward(Sequences::Values(&[0.5; 7]), &mut [0.0]).unwrap_err();
    assert!(matches!(err, Error::BufferLength { .. }));
    let err = OneSequence::new(Fast::new(), &values, &pv[1..], 2).unwrap_err();
    assert!(matches!(err, Error::BufferLength { .. }));
}

#[test]
fn the_batch1_setting_parses() {
    assert_eq!(Batch1::parse(None), Ok(Batch1::OneSequence));
    assert_eq!(Batch1::parse(Some("one-sequence")), Ok(Batch1::OneSequence));
    assert_eq!(Batch1::parse(Some(" plain ")), Ok(Batch1::Plain));
    assert!(Batch1::parse(Some("fast")).unwrap_err().contains("TINYLSTM_FAST_BATCH1"));
}
