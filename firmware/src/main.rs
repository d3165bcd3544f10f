//! tinylstm firmware: verifies the embedded model, standardises raw sensor input with the
//! model's NORMALIZATION section, classifies sample gestures (whole sequences and streamed step
//! by step), fine-tunes on a small field set (head only, then every parameter with truncated
//! BPTT) inside transactions that roll back on NaN/Inf or a worse validation loss, and reports
//! instruction counts, RAM and the stack high-water mark.
//!
//! Every buffer is a static sized by the core's `const fn`s; there is no heap.
#![no_std]
#![no_main]

use core::fmt::Write as _;

use cortex_m_rt::entry;
use defmt::{error, info, warn};
use heapless::{String, Vec};
use static_cell::ConstStaticCell;
use tinylstm::format::ModelFile;
use tinylstm::{model, Sequences};
use tinylstm_firmware::embedded::{
    FIELD_MAX_N, FIELD_TRAIN, FIELD_TRAIN_N, FIELD_VALID, FIELD_VALID_N, MODEL, MODEL_PATH,
    SAMPLES, SAMPLES_N,
};
use tinylstm_firmware::engine::*;
use tinylstm_firmware::platform::{self, measure, TICK};

// ---------------------------------------------------------------------------------------------
// Static buffers (all sized by the core's const fns through engine.rs)
// ---------------------------------------------------------------------------------------------

/// The live parameters: replaced only by a committed update.
static PARAMS_BUF: ConstStaticCell<[f32; PARAMS]> = ConstStaticCell::new([0.0; PARAMS]);
static FORWARD_BUF: ConstStaticCell<[f32; FORWARD_WORK]> =
    ConstStaticCell::new([0.0; FORWARD_WORK]);
static STATE_BUF: ConstStaticCell<[f32; STATE]> = ConstStaticCell::new([0.0; STATE]);
static STEP_BUF: ConstStaticCell<[f32; STEP_WORK]> = ConstStaticCell::new([0.0; STEP_WORK]);
static X_BUF: ConstStaticCell<[f32; SEQ_LEN]> = ConstStaticCell::new([0.0; SEQ_LEN]);

const LOGITS_LEN: usize = FIELD_MAX_N * CLASSES;
static LOGITS_BUF: ConstStaticCell<[f32; LOGITS_LEN]> = ConstStaticCell::new([0.0; LOGITS_LEN]);
static DLOGITS_BUF: ConstStaticCell<[f32; LOGITS_LEN]> = ConstStaticCell::new([0.0; LOGITS_LEN]);

#[cfg(feature = "head-finetune")]
mod head_bufs {
    use super::*;
    pub const FEATS_TRAIN: usize = FIELD_TRAIN_N * UNITS;
    pub const FEATS_VALID: usize = FIELD_VALID_N * UNITS;
    pub static FEATS_TRAIN_BUF: ConstStaticCell<[f32; FEATS_TRAIN]> =
        ConstStaticCell::new([0.0; FEATS_TRAIN]);
    pub static FEATS_VALID_BUF: ConstStaticCell<[f32; FEATS_VALID]> =
        ConstStaticCell::new([0.0; FEATS_VALID]);
    /// The candidate head: the live head stays in PARAMS_BUF until the candidate is accepted.
    pub static HEAD_BUF: ConstStaticCell<[f32; HEAD_LEN]> = ConstStaticCell::new([0.0; HEAD_LEN]);
    pub static HEAD_GRAD_BUF: ConstStaticCell<[f32; HEAD_LEN]> =
        ConstStaticCell::new([0.0; HEAD_LEN]);
    pub static HEAD_ADAM_BUF: ConstStaticCell<[f32; HEAD_STATE]> =
        ConstStaticCell::new([0.0; HEAD_STATE]);
    /// RAM added by head-only fine-tuning (the logits buffers are shared with evaluation).
    pub const RAM: usize = 4 * (FEATS_TRAIN + FEATS_VALID + 2 * HEAD_LEN + HEAD_STATE);
}

#[cfg(feature = "full-finetune")]
mod full_bufs {
    use super::*;
    /// The candidate parameters: the live ones stay in PARAMS_BUF until this is accepted.
    pub static CANDIDATE_BUF: ConstStaticCell<[f32; PARAMS]> = ConstStaticCell::new([0.0; PARAMS]);
    pub static GRAD_BUF: ConstStaticCell<[f32; PARAMS]> = ConstStaticCell::new([0.0; PARAMS]);
    pub static ADAM_BUF: ConstStaticCell<[f32; FULL_STATE]> =
        ConstStaticCell::new([0.0; FULL_STATE]);
    pub static TRAIN_BUF: ConstStaticCell<[f32; TRAIN_WORK]> =
        ConstStaticCell::new([0.0; TRAIN_WORK]);
    /// RAM added by full fine-tuning.
    pub const RAM: usize = 4 * (2 * PARAMS + FULL_STATE + TRAIN_WORK);
}

/// RAM of inference and streaming: parameters, work buffers, state, one input sequence and
/// the logits used to score a data set.
const INFERENCE_RAM: usize =
    4 * (PARAMS + FORWARD_WORK + STATE + STEP_WORK + SEQ_LEN + 2 * LOGITS_LEN);

/// Scratch buffers shared by every phase.
struct Bufs {
    forward: &'static mut [f32; FORWARD_WORK],
    state: &'static mut [f32; STATE],
    step: &'static mut [f32; STEP_WORK],
    x: &'static mut [f32; SEQ_LEN],
    logits: &'static mut [f32; LOGITS_LEN],
    dlogits: &'static mut [f32; LOGITS_LEN],
}

// ---------------------------------------------------------------------------------------------
// Reporting helpers
// ---------------------------------------------------------------------------------------------

/// Instruction counts collected for the closing summary.
type Summary = Vec<(&'static str, u64), 16>;

fn note(summary: &mut Summary, what: &'static str, n: u64) {
    if summary.push((what, n)).is_err() {
        warn!("summary full, dropping {=str}", what);
    }
}

/// Logs `what: <error's Display text>` and exits with failure.
fn fail(what: &str, e: &dyn core::fmt::Display) -> ! {
    let mut text: String<384> = String::new();
    if write!(text, "{e}").is_err() {
        text.clear();
        let _ = text.push_str("(message longer than 384 bytes)");
    }
    error!("{=str}: {=str}", what, text.as_str());
    platform::exit(false)
}

fn check<T>(what: &str, r: Result<T, tinylstm::Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => fail(what, &e),
    }
}

fn params_crc(p: &[f32]) -> u32 {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut d = crc.digest();
    for v in p {
        d.update(&v.to_le_bytes());
    }
    d.finalize()
}

fn log_score(mode: &str, data: &str, set: &str, when: &str, s: &Score) {
    info!(
        "score mode={=str} data={=str} set={=str} when={=str} loss={=f32} bits={=u32:08x} correct={=usize} count={=usize}",
        mode, data, set, when, s.loss, s.loss.to_bits(), s.correct, s.count
    );
}

fn log_probs(what: &str, i: usize, p: &[f32]) {
    info!(
        "{=str} sample={=usize} p=[{=f32}, {=f32}, {=f32}, {=f32}] bits={=u32:08x},{=u32:08x},{=u32:08x},{=u32:08x}",
        what,
        i,
        p[0],
        p[1],
        p[2],
        p[3],
        p[0].to_bits(),
        p[1].to_bits(),
        p[2].to_bits(),
        p[3].to_bits()
    );
}

fn labels_of(view: &View<'_>) -> [u32; MAX_SET] {
    let mut l = [0u32; MAX_SET];
    view.labels(&mut l);
    l
}

/// Scores the full model `params` on `view` (one `forward_logits` per sequence).
fn score_full(b: &mut Bufs, params: &[f32], view: &View<'_>) -> Score {
    let n = view.len();
    check("evaluation", logits_full(params, view, b.x, b.forward, &mut b.logits[..n * CLASSES]));
    let labels = labels_of(view);
    check("evaluation", score(&b.logits[..n * CLASSES], &labels[..n], b.dlogits))
}

#[cfg(any(feature = "head-finetune", feature = "full-finetune"))]
fn log_result(mode: &str, data: &str, r: Result<(), Reject>, crc_before: u32, crc_after: u32) {
    match r {
        Ok(()) => info!(
            "result mode={=str} data={=str} decision=commit reason=validation-improved params_crc={=u32:08x}->{=u32:08x}",
            mode, data, crc_before, crc_after
        ),
        Err(reason) => warn!(
            "result mode={=str} data={=str} decision=rollback reason={=str} params_crc={=u32:08x}->{=u32:08x}",
            mode,
            data,
            reason.as_str(),
            crc_before,
            crc_after
        ),
    }
}

#[cfg(any(feature = "head-finetune", feature = "full-finetune"))]
fn data_name(p: Poison) -> &'static str {
    match p {
        Poison::None => "clean",
        Poison::NonFinite { glitch: Glitch::Nan, .. } => "poisoned-nan",
        Poison::NonFinite { glitch: Glitch::PosInf, .. } => "poisoned-inf",
        Poison::NonFinite { glitch: Glitch::NegInf, .. } => "poisoned-neg-inf",
        Poison::Mislabel => "poisoned-labels",
    }
}

/// The intake check of a fine-tuning transaction: training or validation data holding a NaN or
/// infinite value (as the model would see it) are refused before any training step, and where
/// is logged. (An infinite reading saturates the LSTM's gates, so its features and losses can
/// stay finite: without this check a head-only update, or a full update whose truncated-BPTT
/// window misses the reading, would train on it and could commit.)
#[cfg(any(feature = "head-finetune", feature = "full-finetune"))]
fn check_intake(
    mode: &str,
    data: &str,
    train: &View<'_>,
    valid: &View<'_>,
    x: &mut [f32],
) -> Result<(), Reject> {
    for (set, view) in [("train", train), ("valid", valid)] {
        if let Err(e) = view.check_finite(x) {
            warn!(
                "finetune mode={=str} data={=str} input rejected: set={=str} sequences={=usize}/{=usize} hold NaN/Inf, first sequence={=usize} value={=usize} (t{=usize} c{=usize}); no training step",
                mode,
                data,
                set,
                e.sequences,
                view.len(),
                e.first,
                e.value,
                e.value / CHANNELS,
                e.value % CHANNELS
            );
            return Err(Reject::NonFiniteInput);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fine-tuning transactions
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "head-finetune")]
struct HeadState {
    feats_train: &'static mut [f32; head_bufs::FEATS_TRAIN],
    feats_valid: &'static mut [f32; head_bufs::FEATS_VALID],
    head: &'static mut [f32; HEAD_LEN],
    grads: &'static mut [f32; HEAD_LEN],
    adam: &'static mut [f32; HEAD_STATE],
}

/// Head-only fine-tuning: cache the LSTM's last hidden state of every field sequence, train a
/// candidate head with full-batch Adam on the cache, and copy it into the live parameters only
/// if it passes [`accept`].
#[cfg(feature = "head-finetune")]
fn head_transaction(
    params: &mut [f32; PARAMS],
    b: &mut Bufs,
    h: &mut HeadState,
    train: &View<'_>,
    valid: &View<'_>,
    summary: &mut Summary,
) -> bool {
    let data = data_name(train.poison);
    let clean = train.poison == Poison::None;
    let (nt, nv) = (train.len(), valid.len());
    info!(
        "finetune mode=head data={=str}: Adam lr={=f32}, {=u32} full-batch steps on {=usize} cached feature vectors; RAM for this mode {=usize} bytes",
        data,
        HEAD_LR,
        HEAD_STEPS,
        nt,
        head_bufs::RAM
    );
    let crc_before = params_crc(params);
    if let Err(reason) = check_intake("head", data, train, valid, &mut b.x[..]) {
        log_result("head", data, Err(reason), crc_before, params_crc(params));
        return false;
    }
    let (r, n) = measure(|| features(params, train, b.x, b.state, b.step, h.feats_train));
    check("feature extraction", r);
    check("feature extraction", features(params, valid, b.x, b.state, b.step, h.feats_valid));
    if clean {
        note(summary, "features per sequence", n / nt as u64);
    }

    h.head.copy_from_slice(&params[HEAD]);
    h.adam.fill(0.0);
    let (lt, lv) = (labels_of(train), labels_of(valid));
    let head_score = |head: &[f32], feats: &[f32], labels: &[u32], b: &mut Bufs| {
        let n = labels.len();
        head_logits(head, feats, n, &mut b.logits[..]);
        check("evaluation", score(&b.logits[..n * CLASSES], labels, b.dlogits))
    };
    let train_before = head_score(&h.head[..], &h.feats_train[..], &lt[..nt], b);
    let valid_before = head_score(&h.head[..], &h.feats_valid[..], &lv[..nv], b);
    log_score("head", data, "train", "before", &train_before);
    log_score("head", data, "valid", "before", &valid_before);

    let mut outcome = Ok(());
    let mut step_insns = 0;
    for it in 0..HEAD_STEPS {
        let mut hb = HeadBufs {
            head: &mut h.head[..],
            grads: &mut h.grads[..],
            state: &mut h.adam[..],
            logits: &mut b.logits[..],
            dlogits: &mut b.dlogits[..],
        };
        let (r, n) = measure(|| head_step(&mut hb, &h.feats_train[..nt * UNITS], &lt[..nt], it));
        step_insns = n;
        match r {
            Ok(loss) if it % 20 == 0 || it + 1 == HEAD_STEPS => {
                info!("finetune mode=head data={=str} step={=u32} loss={=f32}", data, it, loss)
            }
            Ok(_) => {}
            Err(e) => {
                warn!("finetune mode=head data={=str} step={=u32} stopped: {}", data, it, e);
                outcome = Err(Reject::NonFinite);
                break;
            }
        }
    }
    if clean {
        note(summary, "head step (full batch)", step_insns);
    }

    if outcome.is_ok() {
        let train_after = head_score(&h.head[..], &h.feats_train[..], &lt[..nt], b);
        let (valid_after, n) =
            measure(|| head_score(&h.head[..], &h.feats_valid[..], &lv[..nv], b));
        if clean {
            note(summary, "head validation (cached features)", n);
        }
        log_score("head", data, "train", "after", &train_after);
        log_score("head", data, "valid", "after", &valid_after);
        outcome = accept(&h.head[..], &valid_before, &valid_after);
    }
    if outcome.is_ok() {
        params[HEAD].copy_from_slice(&h.head[..]);
    }
    log_result("head", data, outcome, crc_before, params_crc(params));
    outcome.is_ok()
}

#[cfg(feature = "full-finetune")]
struct FullState {
    candidate: &'static mut [f32; PARAMS],
    grads: &'static mut [f32; PARAMS],
    adam: &'static mut [f32; FULL_STATE],
    work: &'static mut [f32; TRAIN_WORK],
}

/// Full fine-tuning: truncated BPTT + Adam on a candidate copy of every parameter, copied into
/// the live parameters only if it passes [`accept`].
#[cfg(feature = "full-finetune")]
fn full_transaction(
    params: &mut [f32; PARAMS],
    b: &mut Bufs,
    f: &mut FullState,
    train: &View<'_>,
    valid: &View<'_>,
    summary: &mut Summary,
) -> bool {
    let data = data_name(train.poison);
    let clean = train.poison == Poison::None;
    info!(
        "finetune mode=full data={=str}: truncated BPTT window={=usize}, Adam lr={=f32} clip-norm=1, minibatch {=usize}, {=usize} epochs; RAM for this mode {=usize} bytes",
        data,
        BPTT.window,
        FULL_CFG.schedule.lr(0),
        MINIBATCH,
        FULL_EPOCHS,
        full_bufs::RAM
    );
    let crc_before = params_crc(params);
    if let Err(reason) = check_intake("full", data, train, valid, &mut b.x[..]) {
        log_result("full", data, Err(reason), crc_before, params_crc(params));
        return false;
    }
    let train_before = score_full(b, &params[..], train);
    let (valid_before, n) = measure(|| score_full(b, &params[..], valid));
    if clean {
        note(summary, "validation (full forward)", n);
    }
    log_score("full", data, "train", "before", &train_before);
    log_score("full", data, "valid", "before", &valid_before);

    f.candidate.copy_from_slice(&params[..]);
    f.adam.fill(0.0);
    let mut fb = FullBufs {
        params: &mut f.candidate[..],
        grads: &mut f.grads[..],
        state: &mut f.adam[..],
        work: &mut f.work[..],
        x: &mut b.x[..],
    };
    let mut outcome = Ok(());
    let mut it = 0u32;
    let mut step_insns = 0;
    'epochs: for epoch in 0..FULL_EPOCHS {
        for mb in minibatches(train.len()) {
            let (r, n) = measure(|| full_step(&mut fb, train, mb, it));
            step_insns = n;
            match r {
                Ok(loss) => info!(
                    "finetune mode=full data={=str} epoch={=usize} step={=u32} loss={=f32} insns={=u64}",
                    data, epoch, it, loss, n
                ),
                Err(e) => {
                    warn!(
                        "finetune mode=full data={=str} step={=u32} stopped: {}",
                        data, it, e
                    );
                    outcome = Err(Reject::NonFinite);
                    break 'epochs;
                }
            }
            it += 1;
        }
    }
    if outcome.is_ok() {
        if clean {
            note(summary, "full step (4 sequences)", step_insns);
        }
        let cand: &[f32] = &f.candidate[..];
        let train_after = score_full(b, cand, train);
        let valid_after = score_full(b, cand, valid);
        log_score("full", data, "train", "after", &train_after);
        log_score("full", data, "valid", "after", &valid_after);
        outcome = accept(cand, &valid_before, &valid_after);
    }
    if outcome.is_ok() {
        params.copy_from_slice(&f.candidate[..]);
    }
    log_result("full", data, outcome, crc_before, params_crc(params));
    outcome.is_ok()
}

// ---------------------------------------------------------------------------------------------
// Boot sequence
// ---------------------------------------------------------------------------------------------

#[entry]
fn main() -> ! {
    let cp = defmt::unwrap!(cortex_m::Peripherals::take());
    platform::init(cp.SYST);
    info!(
        "tinylstm firmware on {=str}: LSTM {=usize} -> Dense {=usize} softmax on {=usize} channels, T={=usize}, {=usize} parameters; counts in {=str}",
        platform::BOARD,
        UNITS,
        CLASSES,
        CHANNELS,
        STEPS,
        PARAMS,
        TICK.1
    );
    #[cfg(feature = "fault-test")]
    {
        warn!("fault-test: executing an undefined instruction");
        cortex_m::asm::udf();
    }
    run();
    platform::exit(true)
}

fn run() {
    let mut summary = Summary::new();
    let params = PARAMS_BUF.take();
    let b = &mut Bufs {
        forward: FORWARD_BUF.take(),
        state: STATE_BUF.take(),
        step: STEP_BUF.take(),
        x: X_BUF.take(),
        logits: LOGITS_BUF.take(),
        dlogits: DLOGITS_BUF.take(),
    };

    // (a) Verify the model: magic, version, CRC-32, spec, then load the parameters.
    info!("model: {=usize} bytes embedded from {=str}", MODEL.len(), MODEL_PATH);
    let (file, n) = measure(|| ModelFile::parse(MODEL));
    let file = match file {
        Ok(f) => f,
        Err(e) => fail("model rejected", &e),
    };
    if let Err(e) = file.check_spec(&SPEC) {
        fail("model rejected", &e);
    }
    if let Err(e) = file.read_params(&mut params[..]) {
        fail("model rejected", &e);
    }
    info!(
        "model verified: crc={=u32:08x} params={=usize} params_crc={=u32:08x} ({=u64} {=str} to check)",
        file.crc(),
        file.param_count(),
        params_crc(&params[..]),
        n,
        TICK.1
    );
    if let Some(meta) = file.metadata() {
        info!("model metadata: {=str}", core::str::from_utf8(meta).unwrap_or("<not UTF-8>"));
        if let Some(t) = metadata_steps(meta).filter(|&t| t != STEPS) {
            error!(
                "model rejected: it was trained on sequences of {=usize} steps, the firmware's are {=usize}",
                t, STEPS
            );
            platform::exit(false);
        }
    }
    // The model's input standardisation: every raw sensor sample is mapped through it.
    let norm = match Standardize::from_model(&file) {
        Ok(n) => n,
        Err(e) => fail("model rejected", &e),
    };
    match &norm {
        Some(n) => info!(
            "input standardisation (NORMALIZATION section): x' = (x - mean) / std, mean=[{=f32}, {=f32}, {=f32}] std=[{=f32}, {=f32}, {=f32}]",
            n.means[0], n.means[1], n.means[2], n.stds[0], n.stds[1], n.stds[2]
        ),
        None => warn!("the model has no NORMALIZATION section: raw inputs go to the model as they are"),
    }

    // (b) Inference on the sample sequences (raw sensor values, standardised on reading).
    let samples = match Dataset::parse(SAMPLES) {
        Ok(d) => View::clean(d, norm),
        Err(e) => fail("samples", &e.message()),
    };
    let mut probs = [0.0f32; CLASSES];
    let (mut correct, mut total, mut lo, mut hi) = (0, 0u64, u64::MAX, 0u64);
    for i in 0..SAMPLES_N {
        let label = samples.read(i, &mut b.x[..]);
        let (r, n) = measure(|| predict(&params[..], &b.x[..], &mut b.forward[..], &mut probs));
        check("inference", r);
        let pred = argmax(&probs);
        correct += usize::from(pred == label as usize);
        (total, lo, hi) = (total + n, lo.min(n), hi.max(n));
        info!(
            "infer sample={=usize} label={=u32} ({=str}) pred={=usize} ({=str}) insns={=u64}",
            i, label, CLASS_NAMES[label as usize], pred, CLASS_NAMES[pred], n
        );
        log_probs("probs", i, &probs);
    }
    let per_inference = total / SAMPLES_N as u64;
    info!(
        "inference: {=usize}/{=usize} correct; {=u64} {=str} per inference (min {=u64}, max {=u64})",
        correct, SAMPLES_N, per_inference, TICK.1, lo, hi
    );
    note(&mut summary, "inference (T=40)", per_inference);

    // (c) Streaming: the same sequence one step at a time, each raw sample standardised as it
    // arrives, equals the full-sequence forward.
    let label = samples.read(0, &mut b.x[..]);
    let mut full = [0.0f32; CLASSES];
    check("inference", predict(&params[..], &b.x[..], &mut b.forward[..], &mut full));
    samples.data.read(0, &mut b.x[..]); // raw values: the "sensor"
    model::reset_state(&mut b.state[..]);
    let mut step_total = 0;
    for t in 0..STEPS {
        let mut xt = [0.0f32; CHANNELS];
        xt.copy_from_slice(&b.x[t * CHANNELS..(t + 1) * CHANNELS]);
        let (r, n) = measure(|| {
            standardize(&norm, &mut xt);
            model::step(
                &SPEC,
                &params[..],
                Sequences::Values(&xt),
                1,
                &mut b.state[..],
                &mut b.step[..],
                Some(&mut probs),
            )
        });
        check("streaming", r);
        step_total += n;
        if (t + 1) % 10 == 0 {
            info!(
                "stream t={=usize} pred={=usize} p=[{=f32}, {=f32}, {=f32}, {=f32}]",
                t + 1,
                argmax(&probs),
                probs[0],
                probs[1],
                probs[2],
                probs[3]
            );
        }
    }
    log_probs("streamed", 0, &probs);
    let equal = probs.iter().zip(&full).all(|(a, b)| a.to_bits() == b.to_bits());
    let per_step = step_total / STEPS as u64;
    info!(
        "stream sample=0 label={=u32} equal_to_full_forward={=bool} ({=u64} {=str} per step, {=u64} per sequence)",
        label, equal, per_step, TICK.1, step_total
    );
    if !equal {
        error!("streaming result differs from the full-sequence forward");
        platform::exit(false);
    }
    note(&mut summary, "streaming step", per_step);

    // (d, e) Fine-tuning on the field set, transactional.
    let (ft, fv) = match (Dataset::parse(FIELD_TRAIN), Dataset::parse(FIELD_VALID)) {
        (Ok(t), Ok(v)) => (t, v),
        (Err(e), _) | (_, Err(e)) => fail("field set", &e.message()),
    };
    info!(
        "field set: {=usize} training and {=usize} validation sequences (mirrored, miscalibrated sensor)",
        FIELD_TRAIN_N, FIELD_VALID_N
    );
    let (train, valid) = (View::clean(ft, norm), View::clean(fv, norm));
    let deployed_train = score_full(b, &params[..], &train);
    let deployed_valid = score_full(b, &params[..], &valid);
    log_score("deployed", "clean", "train", "initial", &deployed_train);
    log_score("deployed", "clean", "valid", "initial", &deployed_valid);
    info!(
        "ram mode=inference bytes={=usize} (parameters {=usize}, forward work {=usize}, streaming state+work {=usize})",
        INFERENCE_RAM,
        4 * PARAMS,
        4 * FORWARD_WORK,
        4 * (STATE + STEP_WORK)
    );

    #[cfg(feature = "head-finetune")]
    let mut head_state = HeadState {
        feats_train: head_bufs::FEATS_TRAIN_BUF.take(),
        feats_valid: head_bufs::FEATS_VALID_BUF.take(),
        head: head_bufs::HEAD_BUF.take(),
        grads: head_bufs::HEAD_GRAD_BUF.take(),
        adam: head_bufs::HEAD_ADAM_BUF.take(),
    };
    #[cfg(feature = "head-finetune")]
    {
        info!("ram mode=head bytes={=usize}", head_bufs::RAM);
        head_transaction(params, b, &mut head_state, &train, &valid, &mut summary);
    }

    #[cfg(feature = "full-finetune")]
    let mut full_state = FullState {
        candidate: full_bufs::CANDIDATE_BUF.take(),
        grads: full_bufs::GRAD_BUF.take(),
        adam: full_bufs::ADAM_BUF.take(),
        work: full_bufs::TRAIN_BUF.take(),
    };
    #[cfg(feature = "full-finetune")]
    {
        info!("ram mode=full bytes={=usize}", full_bufs::RAM);
        full_transaction(params, b, &mut full_state, &train, &valid, &mut summary);
        // Poisoned data: a NaN in one sequence (inside the truncated-BPTT window), and a -Inf
        // before the window (its gradient would stay finite): refused at intake, rolled back.
        let glitch = Glitch::Nan;
        let nan = train.poisoned(Poison::NonFinite { sample: 1, value: 100, glitch });
        full_transaction(params, b, &mut full_state, &nan, &valid, &mut summary);
        let (sample, glitch) = (FIELD_TRAIN_N - 1, Glitch::NegInf);
        let neg_inf = train.poisoned(Poison::NonFinite { sample, value: 0, glitch });
        full_transaction(params, b, &mut full_state, &neg_inf, &valid, &mut summary);
    }
    #[cfg(feature = "head-finetune")]
    {
        // A +Inf reading saturates the gates, so the cached features stay finite: refused at
        // intake, rolled back.
        let glitch = Glitch::PosInf;
        let inf = train.poisoned(Poison::NonFinite { sample: 0, value: 5, glitch });
        head_transaction(params, b, &mut head_state, &inf, &valid, &mut summary);
        // Poisoned labels: training succeeds but the validation loss gets worse: roll back.
        let wrong = train.poisoned(Poison::Mislabel);
        head_transaction(params, b, &mut head_state, &wrong, &valid, &mut summary);
    }
    #[cfg(not(feature = "head-finetune"))]
    let _ = &summary;

    let final_train = score_full(b, &params[..], &train);
    let final_valid = score_full(b, &params[..], &valid);
    log_score("deployed", "clean", "train", "final", &final_train);
    log_score("deployed", "clean", "valid", "final", &final_valid);
    info!("params_crc final={=u32:08x}", params_crc(&params[..]));

    // (f) Measurements.
    for (what, n) in &summary {
        info!("count {=str}: {=u64} {=str}", what, n, TICK.1);
    }
    info!(
        "stack high-water={=usize} bytes (of {=usize} reserved); total {=u64} {=str}",
        platform::stack_high_water(),
        platform::stack_size(),
        platform::count(),
        TICK.1
    );
    info!("done");
}
