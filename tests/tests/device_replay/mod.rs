//! Host replay of the firmware's computations with the device library (`tinylstm-device`), the
//! same code the firmware runs: scores, head-only and full fine-tuning transactions. Used by
//! the QEMU harness (`qemu.rs`) to check a device's log bit for bit, and by the reliability
//! tests.
#![allow(dead_code)]

use std::path::Path;

use tinylstm::format::ModelFile;
use tinylstm::Spec;
use tinylstm_device::data::{Shape, View};
use tinylstm_device::model::{head_logits, Model, Weights};
use tinylstm_device::norm::{decode_section, metadata_steps, Standardize};
use tinylstm_device::tune::*;

/// A model file as the firmware's build script reads it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its spec.
    pub spec: Spec,
    /// Its sequence length (METADATA `steps`).
    pub steps: usize,
    /// Its parameters.
    pub params: Vec<f32>,
    /// Standardisation means (empty without).
    pub means: Vec<f32>,
    /// Standardisation standard deviations.
    pub stds: Vec<f32>,
    /// The file.
    pub bytes: Vec<u8>,
}

impl Loaded {
    /// Reads and checks a `.tlm` file.
    pub fn load(path: &Path) -> Loaded {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = ModelFile::parse(&bytes).expect("model parses");
        let spec = file.spec();
        let mut params = vec![0.0f32; spec.param_count()];
        file.read_params(&mut params).unwrap();
        let steps = file.metadata().and_then(metadata_steps).expect("METADATA steps");
        let (mut means, mut stds) = (Vec::new(), Vec::new());
        if let (Some(sec), tinylstm::InputKind::Channels(c)) = (file.normalization(), spec.input) {
            means = vec![0.0; c];
            stds = vec![0.0; c];
            decode_section(sec, c, &mut means, &mut stds).expect("usable normalization");
        }
        Loaded { spec, steps, params, means, stds, bytes }
    }

    /// Its standardisation.
    pub fn norm(&self) -> Option<Standardize<'_>> {
        (!self.means.is_empty()).then(|| Standardize::new(&self.means, &self.stds).unwrap())
    }

    /// Its device description.
    pub fn model(&self) -> Model<'_> {
        Model { spec: self.spec, steps: self.steps, norm: self.norm() }
    }

    /// Its data shape.
    pub fn shape(&self) -> Shape {
        Shape::of(&self.spec, self.steps)
    }

    /// The file's CRC.
    pub fn crc(&self) -> u32 {
        ModelFile::parse(&self.bytes).unwrap().crc()
    }
}

/// Target words of every sequence of `view`.
pub fn all_targets(view: &View<'_>) -> Vec<u32> {
    let mut y = vec![0u32; view.len() * view.shape().target_words()];
    view.all_targets(&mut y);
    y
}

/// The firmware's score of `w` on `view`.
pub fn score_full(m: &Model<'_>, w: Weights<'_>, view: &View<'_>) -> Score {
    let n = view.len();
    let k = m.spec.outputs;
    let mut x = vec![0u32; m.seq_words()];
    let mut work = vec![0.0; m.spec.forward_work_len(1, 1).unwrap()];
    let mut hidden = vec![0.0; m.spec.top_units()];
    let (mut logits, mut d) = (vec![0.0; n * k], vec![0.0; n * k]);
    logits_set(m, w, view, &mut x, &mut work, &mut hidden, &mut logits).unwrap();
    score(&m.spec, &logits, &all_targets(view), n, &mut d).unwrap()
}

/// Cached features of every sequence of `view`, or the refusal.
pub fn try_feats(m: &Model<'_>, all: &[f32], view: &View<'_>) -> Result<Vec<f32>, tinylstm::Error> {
    let mut x = vec![0u32; m.seq_words()];
    let mut work = vec![0.0; m.spec.forward_work_len(1, 1).unwrap()];
    let mut f = vec![0.0; view.len() * m.spec.top_units()];
    features(m, Weights::flat(all), view, &mut x, &mut work, &mut f)?;
    Ok(f)
}

/// The head's score on cached features.
pub fn head_score(spec: &Spec, head: &[f32], feats: &[f32], view: &View<'_>) -> Score {
    let n = view.len();
    let k = spec.outputs;
    let (mut logits, mut d) = (vec![0.0; n * k], vec![0.0; n * k]);
    head_logits(spec, head, feats, n, &mut logits).unwrap();
    score(spec, &logits, &all_targets(view), n, &mut d).unwrap()
}

/// The firmware's head-only transaction (no intake check): (train before, valid before, train
/// after, valid after) and the decision; `params`' head is replaced on commit. A failing step
/// gives `Err(NonFinite)` with the scores before.
pub fn replay_head(
    m: &Model<'_>,
    params: &mut [f32],
    train: &View<'_>,
    valid: &View<'_>,
) -> ([Score; 4], Result<(), Reject>) {
    let spec = &m.spec;
    let (ft, fv) = (try_feats(m, params, train).unwrap(), try_feats(m, params, valid).unwrap());
    let mut head = params[spec.head_range()].to_vec();
    let before = [head_score(spec, &head, &ft, train), head_score(spec, &head, &fv, valid)];
    let cfg = HeadConfig::DEFAULT;
    let (mut g, mut s) = (vec![0.0; head.len()], vec![0.0; cfg.state_len(spec)]);
    let k = spec.outputs;
    let (mut lg, mut dl) = (vec![0.0; train.len() * k], vec![0.0; train.len() * k]);
    let yt = all_targets(train);
    let mut b = HeadBufs {
        head: &mut head,
        grads: &mut g,
        state: &mut s,
        logits: &mut lg,
        dlogits: &mut dl,
    };
    for it in 0..cfg.steps {
        if head_step(spec, &cfg, &mut b, &ft, &yt, train.len(), it).is_err() {
            return ([before[0], before[1], before[0], before[1]], Err(Reject::NonFinite));
        }
    }
    let after = [head_score(spec, &head, &ft, train), head_score(spec, &head, &fv, valid)];
    let decision = accept(&head, &before[1], &after[1]);
    if decision.is_ok() {
        params[spec.head_range()].copy_from_slice(&head);
    }
    ([before[0], before[1], after[0], after[1]], decision)
}

/// The firmware's full transaction (no intake check); `params` replaced on commit. A failing
/// step gives `Err(NonFinite)` (and the candidate is checked to be unchanged by it).
pub fn replay_full(
    m: &Model<'_>,
    params: &mut [f32],
    train: &View<'_>,
    valid: &View<'_>,
) -> ([Score; 4], Result<(), Reject>) {
    let spec = &m.spec;
    let before =
        [score_full(m, Weights::flat(params), train), score_full(m, Weights::flat(params), valid)];
    let cfg = FullConfig::DEFAULT;
    let mut cand = params.to_vec();
    let (mut grads, mut state) = (vec![0.0; cand.len()], vec![0.0; cfg.state_len(spec)]);
    let mut work = vec![0.0; cfg.work_len(spec, m.steps)];
    let (mut x, mut y) = (vec![0u32; m.seq_words()], vec![0u32; m.shape().target_words()]);
    let mut it = 0;
    for _ in 0..cfg.epochs {
        for mb in cfg.minibatches(train.len()) {
            let (p0, s0) = (cand.clone(), state.clone());
            let mut b = FullBufs {
                params: &mut cand,
                grads: &mut grads,
                state: &mut state,
                work: &mut work,
                x: &mut x,
                y: &mut y,
            };
            if full_step(m, &cfg, &mut b, train, mb, it).is_err() {
                let same =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same(&cand, &p0) && same(&state, &s0),
                    "a failing step changed the candidate"
                );
                return ([before[0], before[1], before[0], before[1]], Err(Reject::NonFinite));
            }
            assert!(cand.iter().all(|v| v.is_finite()), "a step wrote a non-finite value");
            it += 1;
        }
    }
    let after =
        [score_full(m, Weights::flat(&cand), train), score_full(m, Weights::flat(&cand), valid)];
    let decision = accept(&cand, &before[1], &after[1]);
    if decision.is_ok() {
        params.copy_from_slice(&cand);
    }
    ([before[0], before[1], after[0], after[1]], decision)
}

/// CRC-32 of parameters as the firmware logs it (`params_crc`).
pub fn params_crc(p: &[f32]) -> u32 {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut d = crc.digest();
    for v in p {
        d.update(&v.to_le_bytes());
    }
    d.finalize()
}
