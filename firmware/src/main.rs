//! tinylstm firmware: verifies the embedded model, classifies (or regresses) the embedded
//! samples with the weights read in place from flash, streams one sequence step by step,
//! fine-tunes on the field set (head only, then every parameter with truncated BPTT) inside
//! transactions that roll back on NaN/Inf or a worse validation loss, and reports instruction
//! counts, RAM and the stack high-water mark.
//!
//! The model's spec, sequence length, head, classes and standardisation come from the model
//! file (build.rs generates them): any model `tinylstm train` writes builds without an edit. A
//! text model built with sentences tokenizes them at boot with its own tokenizer (the core's
//! `tinylstm::text`) and logs each sentence's ids, class and probabilities.
//! Every buffer is a static sized by the core's `const fn`s; there is no heap.
#![no_std]
#![no_main]

use core::fmt::Write as _;

use cortex_m_rt::entry;
use defmt::{error, info, warn};
use heapless::{String, Vec};
use static_cell::ConstStaticCell;
use tinylstm::format::ModelFile;
use tinylstm::{model, Head};
use tinylstm_device::data::{values, Dataset, View};
#[cfg(any(feature = "head-finetune", feature = "full-finetune"))]
use tinylstm_device::data::{Glitch, Poison};
#[cfg(feature = "head-finetune")]
use tinylstm_device::model::head_logits;
use tinylstm_device::model::{argmax, params_in_place, predict, stream_step, Model, Weights};
use tinylstm_device::text::{tokenize_set, Sentence};
use tinylstm_device::tune::*;
use tinylstm_firmware::embedded::*;
use tinylstm_firmware::platform::{self, measure, TICK};

// ---------------------------------------------------------------------------------------------
// Static buffers (sized by the core's const fns; the sums are the device library's `ram`)
// ---------------------------------------------------------------------------------------------

static FORWARD_BUF: ConstStaticCell<[f32; FORWARD_WORK]> =
    ConstStaticCell::new([0.0; FORWARD_WORK]);
static STATE_BUF: ConstStaticCell<[f32; STATE]> = ConstStaticCell::new([0.0; STATE]);
static STEP_BUF: ConstStaticCell<[f32; STEP_WORK]> = ConstStaticCell::new([0.0; STEP_WORK]);
static X_BUF: ConstStaticCell<[u32; SEQ_WORDS]> = ConstStaticCell::new([0; SEQ_WORDS]);
static HIDDEN_BUF: ConstStaticCell<[f32; TOP_UNITS]> = ConstStaticCell::new([0.0; TOP_UNITS]);
const LOGITS_LEN: usize = MAX_N * OUTPUTS;
static LOGITS_BUF: ConstStaticCell<[f32; LOGITS_LEN]> = ConstStaticCell::new([0.0; LOGITS_LEN]);
static DLOGITS_BUF: ConstStaticCell<[f32; LOGITS_LEN]> = ConstStaticCell::new([0.0; LOGITS_LEN]);
const TARGETS_LEN: usize = MAX_N * TARGET_WORDS;
static TARGETS_BUF: ConstStaticCell<[u32; TARGETS_LEN]> = ConstStaticCell::new([0; TARGETS_LEN]);
const _: () = assert!(
    4 * (FORWARD_WORK + STATE + STEP_WORK + SEQ_WORDS + TOP_UNITS + 2 * LOGITS_LEN + TARGETS_LEN)
        == RAM_INFERENCE
);

/// The data sets tokenized at boot from the embedded sentences (empty without sentences).
static TEXT_SAMPLES_BUF: ConstStaticCell<[u8; TEXT_SAMPLES_LEN]> =
    ConstStaticCell::new([0; TEXT_SAMPLES_LEN]);
static TEXT_TRAIN_BUF: ConstStaticCell<[u8; TEXT_TRAIN_LEN]> =
    ConstStaticCell::new([0; TEXT_TRAIN_LEN]);
static TEXT_VALID_BUF: ConstStaticCell<[u8; TEXT_VALID_LEN]> =
    ConstStaticCell::new([0; TEXT_VALID_LEN]);

#[cfg(feature = "head-finetune")]
mod head_bufs {
    use super::*;
    pub const FEATS_TRAIN: usize = FIELD_TRAIN_N * TOP_UNITS;
    pub const FEATS_VALID: usize = FIELD_VALID_N * TOP_UNITS;
    pub static FEATS_TRAIN_BUF: ConstStaticCell<[f32; FEATS_TRAIN]> =
        ConstStaticCell::new([0.0; FEATS_TRAIN]);
    pub static FEATS_VALID_BUF: ConstStaticCell<[f32; FEATS_VALID]> =
        ConstStaticCell::new([0.0; FEATS_VALID]);
    /// The live head once an update commits (until then the head in flash).
    pub static LIVE_HEAD_BUF: ConstStaticCell<[f32; HEAD_LEN]> =
        ConstStaticCell::new([0.0; HEAD_LEN]);
    /// The candidate head.
    pub static HEAD_BUF: ConstStaticCell<[f32; HEAD_LEN]> = ConstStaticCell::new([0.0; HEAD_LEN]);
    pub static HEAD_GRAD_BUF: ConstStaticCell<[f32; HEAD_LEN]> =
        ConstStaticCell::new([0.0; HEAD_LEN]);
    pub static HEAD_ADAM_BUF: ConstStaticCell<[f32; HEAD_STATE]> =
        ConstStaticCell::new([0.0; HEAD_STATE]);
    const _: () = assert!(4 * (FEATS_TRAIN + FEATS_VALID + 3 * HEAD_LEN + HEAD_STATE) == RAM_HEAD);
}

/// The live parameters once an update commits or a flash slot is loaded (until then the ones
/// in flash). Counted in [`RAM_FULL`] with full fine-tuning; persisting head-only updates
/// (`persist` without `full-finetune`) needs it alone (build.rs counts it).
#[cfg(any(feature = "full-finetune", feature = "persist"))]
static LIVE_BUF: ConstStaticCell<[f32; PARAMS]> = ConstStaticCell::new([0.0; PARAMS]);

#[cfg(feature = "full-finetune")]
mod full_bufs {
    use super::*;
    /// The candidate parameters.
    pub static CANDIDATE_BUF: ConstStaticCell<[f32; PARAMS]> = ConstStaticCell::new([0.0; PARAMS]);
    pub static GRAD_BUF: ConstStaticCell<[f32; PARAMS]> = ConstStaticCell::new([0.0; PARAMS]);
    pub static ADAM_BUF: ConstStaticCell<[f32; FULL_STATE]> =
        ConstStaticCell::new([0.0; FULL_STATE]);
    pub static TRAIN_BUF: ConstStaticCell<[f32; TRAIN_WORK]> =
        ConstStaticCell::new([0.0; TRAIN_WORK]);
    pub static Y_BUF: ConstStaticCell<[u32; TARGET_WORDS]> =
        ConstStaticCell::new([0; TARGET_WORDS]);
    const _: () = assert!(4 * (3 * PARAMS + FULL_STATE + TRAIN_WORK + TARGET_WORDS) == RAM_FULL);
}

/// Scratch buffers shared by every phase.
struct Bufs {
    forward: &'static mut [f32; FORWARD_WORK],
    state: &'static mut [f32; STATE],
    step: &'static mut [f32; STEP_WORK],
    x: &'static mut [u32; SEQ_WORDS],
    hidden: &'static mut [f32; TOP_UNITS],
    logits: &'static mut [f32; LOGITS_LEN],
    dlogits: &'static mut [f32; LOGITS_LEN],
    targets: &'static mut [u32; TARGETS_LEN],
}

/// The live weights: in flash until an update commits, then (the head, or everything) in RAM.
struct Live {
    flash: &'static [f32],
    /// The int8 Embedding table in flash (a version-3 model file), read in place.
    embedding: Option<tinylstm::quant::Int8Embedding<'static>>,
    #[cfg(feature = "head-finetune")]
    head: &'static mut [f32; HEAD_LEN],
    head_in_ram: bool,
    #[cfg(any(feature = "full-finetune", feature = "persist"))]
    all: &'static mut [f32; PARAMS],
    all_in_ram: bool,
    /// The flash slots committed updates go to (none when the flash cannot be opened).
    #[cfg(feature = "persist")]
    store: Option<Store>,
}

impl Live {
    fn weights(&self) -> Weights<'_> {
        #[cfg(any(feature = "full-finetune", feature = "persist"))]
        let all: &[f32] = if self.all_in_ram { &self.all[..] } else { self.flash };
        #[cfg(not(any(feature = "full-finetune", feature = "persist")))]
        let all: &[f32] = self.flash;
        #[cfg(feature = "head-finetune")]
        let head = if self.head_in_ram { Some(&self.head[..]) } else { None };
        #[cfg(not(feature = "head-finetune"))]
        let head = None;
        let _ = (self.head_in_ram, self.all_in_ram);
        Weights { all, head, embedding: self.embedding }
    }

    /// Every parameter in use (a committed head merged in) in the RAM copy, which becomes live.
    #[cfg(feature = "persist")]
    fn materialize(&mut self) {
        if !self.all_in_ram {
            self.all.copy_from_slice(self.flash);
            self.all_in_ram = true;
        }
        #[cfg(feature = "head-finetune")]
        if self.head_in_ram {
            self.all[SPEC.head_range()].copy_from_slice(&self.head[..]);
            self.head_in_ram = false;
        }
    }

    /// CRC-32 of the parameters in use (the head in use in place of the flat buffer's).
    fn crc(&self) -> u32 {
        let w = self.weights();
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
        let mut d = crc.digest();
        for v in w.values(&SPEC) {
            d.update(&v.to_le_bytes());
        }
        d.finalize()
    }
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

/// The bit patterns of `v` in hex, comma-separated (formatted by hand: `core::fmt`'s float
/// and integer formatting would add kilobytes of code).
fn bits_list(v: &[f32]) -> String<512> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::new();
    for (i, x) in v.iter().enumerate() {
        let b = x.to_bits();
        let ok = (i == 0 || s.push(',').is_ok())
            && (0..8).rev().all(|k| s.push(HEX[(b >> (4 * k)) as usize & 15] as char).is_ok());
        if !ok {
            let _ = s.push_str("...");
            break;
        }
    }
    s
}

fn log_score(mode: &str, data: &str, set: &str, when: &str, s: &Score) {
    match s.correct {
        Some(c) => info!(
            "score mode={=str} data={=str} set={=str} when={=str} loss={=f32} bits={=u32:08x} correct={=usize} count={=usize}",
            mode, data, set, when, s.loss, s.loss.to_bits(), c, s.count
        ),
        None => info!(
            "score mode={=str} data={=str} set={=str} when={=str} loss={=f32} bits={=u32:08x} count={=usize}",
            mode, data, set, when, s.loss, s.loss.to_bits(), s.count
        ),
    }
}

fn log_outputs(what: &str, i: usize, p: &[f32]) {
    let word = if CLASSIFIES { "p" } else { "value" };
    info!("{=str} sample={=usize} {=str}={} bits={=str}", what, i, word, p, bits_list(p).as_str());
}

/// The class a classifier's outputs pick (softmax: the largest; sigmoid: above 0.5).
fn class_of(p: &[f32]) -> usize {
    match SPEC.head {
        Head::Sigmoid if p.len() == 1 => usize::from(p[0] > 0.5),
        _ => argmax(p),
    }
}

fn class_name(c: usize) -> &'static str {
    CLASS_NAMES.get(c).copied().unwrap_or("?")
}

/// Scores the live model (or `w`) on `view`.
fn score_full(m: &Model<'_>, b: &mut Bufs, w: Weights<'_>, view: &View<'_>) -> Score {
    let n = view.len();
    let (x, fw, hid) = (&mut b.x[..], &mut b.forward[..], &mut b.hidden[..]);
    check("evaluation", logits_set(m, w, view, x, fw, hid, &mut b.logits[..n * OUTPUTS]));
    view.all_targets(&mut b.targets[..]);
    check("evaluation", score(&SPEC, &b.logits[..], &b.targets[..], n, &mut b.dlogits[..]))
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

/// Opens the flash slots and, when one holds valid weights for this model, makes them live;
/// logs which weights the device runs with.
#[cfg(feature = "persist")]
fn load_slot(live: &mut Live) {
    use tinylstm_device::slots::spec_hash;
    use tinylstm_firmware::persist::slot_flash::{self, SECTOR, SLOT_BYTES};
    let flash = match slot_flash::open() {
        Ok(f) => f,
        Err(e) => {
            warn!("persist: no flash ({}): running on the flashed weights, updates stay in RAM", e);
            return;
        }
    };
    let store = Store::open(flash, 0, SLOT_BYTES as u32, spec_hash(&SPEC), PARAMS);
    let mut store = match store {
        Ok(s) => s,
        Err(e) => fail("persist", &e),
    };
    info!(
        "persist: 2 slots of {=usize} bytes ({=usize} sectors of {=usize}), spec hash {=u32:08x}",
        SLOT_BYTES,
        SLOT_BYTES / SECTOR,
        SECTOR,
        spec_hash(&SPEC)
    );
    match store.read_active(&mut live.all[..]) {
        Ok(Some(a)) => {
            live.all_in_ram = true;
            live.head_in_ram = false;
            info!(
                "weights active=slot slot={=str} seq={=u32} weights_crc={=u32:08x} params_crc={=u32:08x}",
                slot_name(a.slot),
                a.seq,
                a.crc,
                live.crc()
            );
        }
        Ok(None) => {
            info!("weights active=flashed (no valid slot) params_crc={=u32:08x}", live.crc())
        }
        Err(e) => warn!("weights active=flashed: the slot failed to read back ({})", e),
    }
    live.store = Some(store);
}

/// The weight slots on the board's flash (feature `persist`).
#[cfg(feature = "persist")]
type Store = tinylstm_device::slots::SlotStore<tinylstm_firmware::persist::slot_flash::Flash>;

/// Writes the live weights to the next flash slot after a committed update; a failing flash is
/// logged and the device keeps running on the weights in RAM.
#[cfg(feature = "persist")]
fn persist(live: &mut Live) {
    if live.store.is_none() {
        return;
    }
    live.materialize();
    let Some(store) = live.store.as_mut() else { return };
    let (r, n) = measure(|| store.commit(&live.all[..]));
    match r {
        Ok(a) => info!(
            "persist slot={=str} seq={=u32} weights_crc={=u32:08x} params_crc={=u32:08x} ({=u64} {=str})",
            slot_name(a.slot), a.seq, a.crc, live.crc(), n, TICK.1
        ),
        Err(e) => warn!("persist failed, running on the weights in RAM: {}", e),
    }
}

#[cfg(feature = "persist")]
fn slot_name(slot: usize) -> &'static str {
    if slot == 0 {
        "A"
    } else {
        "B"
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
/// infinite value (as the model would see it) are refused before any training step.
#[cfg(any(feature = "head-finetune", feature = "full-finetune"))]
fn check_intake(
    mode: &str,
    data: &str,
    train: &View<'_>,
    valid: &View<'_>,
    x: &mut [u32],
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
                e.value / STEP_WIDTH,
                e.value % STEP_WIDTH
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

/// Head-only fine-tuning: cache the top layer's last hidden state of every field sequence,
/// train a candidate head on the cache, and make it the live head only if it passes [`accept`].
#[cfg(feature = "head-finetune")]
fn head_transaction(
    m: &Model<'_>,
    live: &mut Live,
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
        "finetune mode=head data={=str}: lr={=f32}, {=u32} full-batch steps on {=usize} cached feature vectors; RAM for this mode {=usize} bytes",
        data, HEAD_CFG.lr, HEAD_CFG.steps, nt, RAM_HEAD
    );
    let crc_before = live.crc();
    if let Err(reason) = check_intake("head", data, train, valid, &mut b.x[..]) {
        log_result("head", data, Err(reason), crc_before, live.crc());
        return false;
    }
    let w = live.weights();
    let (r, n) = measure(|| features(m, w, train, b.x, b.forward, h.feats_train));
    check("feature extraction", r);
    check("feature extraction", features(m, w, valid, b.x, b.forward, h.feats_valid));
    if clean {
        note(summary, "features per sequence", n / nt as u64);
    }

    h.head.copy_from_slice(w.head(&SPEC));
    h.adam.fill(0.0);
    let head_score = |head: &[f32], feats: &[f32], view: &View<'_>, b: &mut Bufs| {
        let n = view.len();
        check("evaluation", head_logits(&SPEC, head, feats, n, &mut b.logits[..]));
        view.all_targets(&mut b.targets[..]);
        check("evaluation", score(&SPEC, &b.logits[..], &b.targets[..], n, &mut b.dlogits[..]))
    };
    let train_before = head_score(&h.head[..], &h.feats_train[..], train, b);
    let valid_before = head_score(&h.head[..], &h.feats_valid[..], valid, b);
    log_score("head", data, "train", "before", &train_before);
    log_score("head", data, "valid", "before", &valid_before);

    train.all_targets(&mut b.targets[..]);
    let mut outcome = Ok(());
    let mut step_insns = 0;
    for it in 0..HEAD_CFG.steps {
        let mut hb = HeadBufs {
            head: &mut h.head[..],
            grads: &mut h.grads[..],
            state: &mut h.adam[..],
            logits: &mut b.logits[..],
            dlogits: &mut b.dlogits[..],
        };
        let feats = &h.feats_train[..nt * TOP_UNITS];
        let (r, n) =
            measure(|| head_step(&SPEC, &HEAD_CFG, &mut hb, feats, &b.targets[..], nt, it));
        step_insns = n;
        match r {
            Ok(loss) if it % 20 == 0 || it + 1 == HEAD_CFG.steps => {
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
        let train_after = head_score(&h.head[..], &h.feats_train[..], train, b);
        let (valid_after, n) = measure(|| head_score(&h.head[..], &h.feats_valid[..], valid, b));
        if clean {
            note(summary, "head validation (cached features)", n);
        }
        log_score("head", data, "train", "after", &train_after);
        log_score("head", data, "valid", "after", &valid_after);
        outcome = accept(&h.head[..], &valid_before, &valid_after);
    }
    let _ = nv;
    if outcome.is_ok() {
        live.head.copy_from_slice(&h.head[..]);
        live.head_in_ram = true;
    }
    log_result("head", data, outcome, crc_before, live.crc());
    #[cfg(feature = "persist")]
    if outcome.is_ok() {
        persist(live);
    }
    outcome.is_ok()
}

#[cfg(feature = "full-finetune")]
struct FullState {
    candidate: &'static mut [f32; PARAMS],
    grads: &'static mut [f32; PARAMS],
    adam: &'static mut [f32; FULL_STATE],
    work: &'static mut [f32; TRAIN_WORK],
    y: &'static mut [u32; TARGET_WORDS],
}

/// Full fine-tuning: truncated BPTT on a candidate copy of every parameter, made the live
/// parameters only if it passes [`accept`].
#[cfg(feature = "full-finetune")]
fn full_transaction(
    m: &Model<'_>,
    live: &mut Live,
    b: &mut Bufs,
    f: &mut FullState,
    train: &View<'_>,
    valid: &View<'_>,
    summary: &mut Summary,
) -> bool {
    let data = data_name(train.poison);
    let clean = train.poison == Poison::None;
    info!(
        "finetune mode=full data={=str}: truncated BPTT window={=usize}, lr={=f32} clip-norm=1, minibatch {=usize}, {=usize} epochs; RAM for this mode {=usize} bytes",
        data,
        FULL_CFG.bptt.window,
        FULL_CFG.optimizer.schedule.lr(0),
        FULL_CFG.minibatch,
        FULL_CFG.epochs,
        RAM_FULL
    );
    let crc_before = live.crc();
    if let Err(reason) = check_intake("full", data, train, valid, &mut b.x[..]) {
        log_result("full", data, Err(reason), crc_before, live.crc());
        return false;
    }
    let train_before = score_full(m, b, live.weights(), train);
    let (valid_before, n) = measure(|| score_full(m, b, live.weights(), valid));
    if clean {
        note(summary, "validation (full forward)", n);
    }
    log_score("full", data, "train", "before", &train_before);
    log_score("full", data, "valid", "before", &valid_before);

    let w = live.weights();
    f.candidate.copy_from_slice(w.all);
    f.candidate[SPEC.head_range()].copy_from_slice(w.head(&SPEC));
    f.adam.fill(0.0);
    let mut fb = FullBufs {
        params: &mut f.candidate[..],
        grads: &mut f.grads[..],
        state: &mut f.adam[..],
        work: &mut f.work[..],
        x: &mut b.x[..],
        y: &mut f.y[..],
    };
    let mut outcome = Ok(());
    let mut it = 0u32;
    let mut step_insns = 0;
    'epochs: for epoch in 0..FULL_CFG.epochs {
        for mb in FULL_CFG.minibatches(train.len()) {
            let (r, n) = measure(|| full_step(m, &FULL_CFG, &mut fb, train, mb, it));
            step_insns = n;
            match r {
                Ok(loss) => info!(
                    "finetune mode=full data={=str} epoch={=usize} step={=u32} loss={=f32} insns={=u64}",
                    data, epoch, it, loss, n
                ),
                Err(e) => {
                    warn!("finetune mode=full data={=str} step={=u32} stopped: {}", data, it, e);
                    outcome = Err(Reject::NonFinite);
                    break 'epochs;
                }
            }
            it += 1;
        }
    }
    if outcome.is_ok() {
        if clean {
            note(summary, "full step (one minibatch)", step_insns);
        }
        let cand = Weights::flat(&f.candidate[..]);
        let train_after = score_full(m, b, cand, train);
        let valid_after = score_full(m, b, cand, valid);
        log_score("full", data, "train", "after", &train_after);
        log_score("full", data, "valid", "after", &valid_after);
        outcome = accept(&f.candidate[..], &valid_before, &valid_after);
    }
    if outcome.is_ok() {
        live.all.copy_from_slice(&f.candidate[..]);
        live.all_in_ram = true;
        live.head_in_ram = false;
    }
    log_result("full", data, outcome, crc_before, live.crc());
    #[cfg(feature = "persist")]
    if outcome.is_ok() {
        persist(live);
    }
    outcome.is_ok()
}

// ---------------------------------------------------------------------------------------------
// Sentences
// ---------------------------------------------------------------------------------------------

/// The data sets: the embedded `TLSEQ002` sets, or (a text model built with sentences) the
/// sentences tokenized now by the model's own tokenizer, each sample's ids and instruction
/// count logged.
fn data_sets(file: &ModelFile<'_>, b: &mut Bufs, summary: &mut Summary) -> [&'static [u8]; 3] {
    if !TEXT_SETS {
        return [SAMPLES, FIELD_TRAIN, FIELD_VALID];
    }
    let (tok, n) = measure(|| tinylstm::text::Tokenizer::from_model(file));
    let tok = match tok {
        Ok(t) => t,
        Err(e) => fail("tokenizer rejected", &e),
    };
    info!(
        "tokenizer: level={=str} lower={=bool} words={=u32} num_words={=u32} oov={=u32} lookup={=str} maxlen={=usize} padding={=str} truncating={=str} ({=u64} {=str} to check)",
        if tok.char_level() { "char" } else { "word" },
        tok.lower(),
        tok.word_count(),
        tok.num_words(),
        tok.oov_index().unwrap_or(0),
        if tok.has_index() { "binary-search" } else { "scan" },
        PAD.maxlen,
        side_name(PAD.padding),
        side_name(PAD.truncating),
        n,
        TICK.1
    );
    // Each sample on its own, to count the tokenizer's instructions per sentence.
    let mut total = 0;
    for (i, s) in TEXT_SAMPLES.iter().enumerate() {
        let (r, n) = measure(|| tok.encode(s.text, &PAD, &mut b.x[..]));
        let count = match r {
            Ok(c) => c,
            Err(e) => fail("tokenizing", &e),
        };
        total += n;
        info!(
            "text sample={=usize} tokens={=usize} bytes={=usize} insns={=u64} ids={=[?]} text={=str}",
            i,
            count,
            s.text.len(),
            n,
            &b.x[..],
            s.text
        );
    }
    note(summary, "tokenize (one sentence)", total / TEXT_SAMPLES.len().max(1) as u64);
    let mut set = |buf: &'static mut [u8], sentences: &[Sentence<'_>]| -> &'static [u8] {
        if sentences.is_empty() {
            return &[];
        }
        match tokenize_set(&tok, &PAD, &SHAPE, sentences, &mut b.x[..], buf, |_, _, _| {}) {
            Ok(n) => {
                let done: &'static [u8] = buf;
                &done[..n]
            }
            Err(e) => fail("sentences", &e),
        }
    };
    let samples = set(TEXT_SAMPLES_BUF.take(), TEXT_SAMPLES);
    let train = set(TEXT_TRAIN_BUF.take(), TEXT_TRAIN);
    let valid = set(TEXT_VALID_BUF.take(), TEXT_VALID);
    info!(
        "sentences tokenized: {=usize} samples, {=usize} field training, {=usize} field validation; ram mode=text bytes={=usize}",
        TEXT_SAMPLES.len(),
        TEXT_TRAIN.len(),
        TEXT_VALID.len(),
        RAM_TEXT
    );
    [samples, train, valid]
}

fn side_name(s: tinylstm::text::Side) -> &'static str {
    match s {
        tinylstm::text::Side::Pre => "pre",
        tinylstm::text::Side::Post => "post",
    }
}

// ---------------------------------------------------------------------------------------------
// Boot sequence
// ---------------------------------------------------------------------------------------------

#[entry]
fn main() -> ! {
    let cp = defmt::unwrap!(cortex_m::Peripherals::take());
    platform::init(cp.SYST);
    #[cfg(feature = "runtime-model")]
    tinylstm_firmware::runtime::init_heap();
    let head = match SPEC.head {
        Head::Softmax => "softmax",
        Head::Sigmoid => "sigmoid",
        Head::Linear => "linear",
    };
    info!(
        "tinylstm firmware on {=str}: {=usize} LSTM layer(s), top {=usize} units -> Dense {=usize} {=str} on {=usize} input words per step, T={=usize}, {=usize} parameters; counts in {=str}",
        platform::BOARD,
        SPEC.layers,
        TOP_UNITS,
        OUTPUTS,
        head,
        STEP_WIDTH,
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
    let b = &mut Bufs {
        forward: FORWARD_BUF.take(),
        state: STATE_BUF.take(),
        step: STEP_BUF.take(),
        x: X_BUF.take(),
        hidden: HIDDEN_BUF.take(),
        logits: LOGITS_BUF.take(),
        dlogits: DLOGITS_BUF.take(),
        targets: TARGETS_BUF.take(),
    };

    // (a) Verify the model: magic, version, CRC-32, spec, the compiled standardisation; its
    // parameters are then read in place from flash.
    let bytes = model_bytes();
    info!("model: {=usize} bytes embedded from {=str}", bytes.len(), MODEL_PATH);
    let (file, n) = measure(|| ModelFile::parse(bytes));
    let file = match file {
        Ok(f) => f,
        Err(e) => fail("model rejected", &e),
    };
    if let Err(e) = file.check_spec(&SPEC) {
        fail("model rejected", &e);
    }
    let flash = match params_in_place(&file) {
        Ok(p) => p,
        Err(e) => fail("model rejected", &e),
    };
    let norm = standardization();
    let section_ok = match (&norm, file.normalization()) {
        (Some(s), Some(sec)) => s.matches_section(sec),
        (None, None) => true,
        (None, Some(_)) => !matches!(SPEC.input, tinylstm::InputKind::Channels(_)),
        (Some(_), None) => false,
    };
    if !section_ok {
        error!("model rejected: its NORMALIZATION section differs from the compiled statistics");
        platform::exit(false);
    }
    let mut live = Live {
        flash,
        embedding: file.embedding_int8(),
        #[cfg(feature = "head-finetune")]
        head: head_bufs::LIVE_HEAD_BUF.take(),
        head_in_ram: false,
        #[cfg(any(feature = "full-finetune", feature = "persist"))]
        all: LIVE_BUF.take(),
        all_in_ram: false,
        #[cfg(feature = "persist")]
        store: None,
    };
    info!(
        "model verified: crc={=u32:08x} params={=usize} params_crc={=u32:08x} ({=u64} {=str} to check); weights read in place from flash",
        file.crc(),
        file.param_count(),
        live.crc(),
        n,
        TICK.1
    );
    if let Some(t) = live.embedding {
        info!(
            "embedding int8: {=usize} x {=usize} ({=usize} bytes in flash; frozen)",
            t.vocab(),
            t.embed(),
            t.vocab() * (t.embed() + 4)
        );
    }
    #[cfg(feature = "persist")]
    load_slot(&mut live);
    if let Some(meta) = file.metadata() {
        info!("model metadata: {=str}", core::str::from_utf8(meta).unwrap_or("<not UTF-8>"));
    }
    match &norm {
        Some(s) => info!(
            "input standardisation (NORMALIZATION section): x' = (x - mean) / std, mean={} std={}",
            s.means(),
            s.stds()
        ),
        None => {
            warn!("the model has no NORMALIZATION section: raw inputs go to the model as they are")
        }
    }
    let m = Model { spec: SPEC, steps: STEPS, norm };
    if DATA_SOURCE == "probe" {
        info!("data sets from probe: generated input in the model's range; its labels are placeholders");
    } else {
        info!("data sets from {=str}", DATA_SOURCE);
    }

    let [samples_set, train_set, valid_set] = data_sets(&file, b, &mut summary);

    // (b) Inference on the sample sequences (raw input, standardised on reading).
    let samples = match Dataset::parse(samples_set, SHAPE) {
        Ok(d) => View::clean(d, norm),
        Err(e) => fail("samples", &e),
    };
    let mut out = [0.0f32; OUTPUTS];
    let mut y = [0u32; TARGET_WORDS];
    let (mut correct, mut total, mut lo, mut hi) = (0, 0u64, u64::MAX, 0u64);
    for i in 0..SAMPLES_N {
        samples.read(i, &mut b.x[..]);
        samples.targets(i, &mut y);
        let w = live.weights();
        let (r, n) =
            measure(|| predict(&m, w, &b.x[..], &mut b.forward[..], &mut b.hidden[..], &mut out));
        check("inference", r);
        (total, lo, hi) = (total + n, lo.min(n), hi.max(n));
        if CLASSIFIES {
            let label = match SPEC.head {
                Head::Softmax => y[0] as usize,
                _ => usize::from(values(&y)[0] > 0.5),
            };
            let pred = class_of(&out);
            correct += usize::from(pred == label);
            info!(
                "infer sample={=usize} label={=usize} ({=str}) pred={=usize} ({=str}) insns={=u64}",
                i,
                label,
                class_name(label),
                pred,
                class_name(pred),
                n
            );
            log_outputs("probs", i, &out);
        } else {
            info!("infer sample={=usize} target={} insns={=u64}", i, values(&y), n);
            log_outputs("values", i, &out);
        }
    }
    let per_inference = total / SAMPLES_N as u64;
    if CLASSIFIES {
        info!(
            "inference: {=usize}/{=usize} correct; {=u64} {=str} per inference (min {=u64}, max {=u64})",
            correct, SAMPLES_N, per_inference, TICK.1, lo, hi
        );
    } else {
        info!(
            "inference: {=usize} sequences; {=u64} {=str} per inference (min {=u64}, max {=u64})",
            SAMPLES_N, per_inference, TICK.1, lo, hi
        );
    }
    note(&mut summary, "inference (one sequence)", per_inference);

    // (c) Streaming: the first sample one step at a time, each raw step standardised as it
    // arrives, equals the full-sequence forward.
    samples.read(0, &mut b.x[..]);
    let mut full = [0.0f32; OUTPUTS];
    let w = live.weights();
    check("inference", predict(&m, w, &b.x[..], &mut b.forward[..], &mut b.hidden[..], &mut full));
    samples.data.read(0, &mut b.x[..]); // raw input: the "sensor"
    model::reset_state(&mut b.state[..]);
    let mut step_total = 0;
    for t in 0..STEPS {
        let mut xt = [0u32; STEP_WIDTH];
        xt.copy_from_slice(&b.x[t * STEP_WIDTH..(t + 1) * STEP_WIDTH]);
        let last = t + 1 == STEPS;
        let (r, n) = measure(|| {
            let o = if last || (t + 1) % 10 == 0 { Some(&mut out[..]) } else { None };
            stream_step(&m, w, &mut xt, &mut b.state[..], &mut b.step[..], o)
        });
        check("streaming", r);
        step_total += n;
    }
    log_outputs("streamed", 0, &out);
    let equal = out.iter().zip(&full).all(|(a, b)| a.to_bits() == b.to_bits());
    let per_step = step_total / STEPS as u64;
    info!(
        "stream sample=0 equal_to_full_forward={=bool} ({=u64} {=str} per step, {=u64} per sequence)",
        equal, per_step, TICK.1, step_total
    );
    if !equal {
        error!("streaming result differs from the full-sequence forward");
        platform::exit(false);
    }
    note(&mut summary, "streaming step", per_step);
    info!(
        "ram mode=inference bytes={=usize} (forward work {=usize}, streaming state+work {=usize}; weights in flash)",
        RAM_INFERENCE,
        4 * FORWARD_WORK,
        4 * (STATE + STEP_WORK)
    );

    // (d, e) Fine-tuning on the field set, transactional.
    if FIELD_TRAIN_N == 0 {
        warn!(
            "no field set for this model: fine-tuning skipped (write one with `tinylstm device-data` and build with TINYLSTM_DATA)"
        );
    } else {
        finetune(&m, &mut live, b, &mut summary, train_set, valid_set);
    }
    info!("params_crc final={=u32:08x}", live.crc());

    // (g) A model loaded at run time replaces this one only when it passes every check.
    #[cfg(feature = "runtime-model")]
    runtime_model(&m, &live, b, &samples, file.tokenizer(), &mut summary);

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

/// (g) A model offered at run time (feature `runtime-model`; under QEMU the host file
/// `tinylstm-model.tlm`): loaded into the heap and checked; then the samples are served with
/// the model that is active — the new one when it was accepted, else the built-in one (its
/// live weights) — each logged as `serve model=runtime|built-in sample=i outputs=… bits=…`.
#[cfg(feature = "runtime-model")]
fn runtime_model(
    m: &Model<'_>,
    live: &Live,
    b: &mut Bufs,
    samples: &View<'_>,
    tokenizer: Option<&[u8]>,
    summary: &mut Summary,
) {
    use tinylstm_device::data::values_mut;
    use tinylstm_device::norm::standardize;
    use tinylstm_firmware::runtime::{self, HostModelFile, ModelSource, RuntimeModel, HEAP_BYTES};
    info!(
        "runtime model: heap {=usize} bytes ({=usize} free); offered on {=str}",
        HEAP_BYTES,
        runtime::heap_free(),
        "semihosting file tinylstm-model.tlm"
    );
    let mut active: Option<RuntimeModel> = None;
    match HostModelFile::open() {
        None => info!("runtime model: none offered; serving with the built-in model"),
        Some(mut src) => {
            let len = src.len();
            info!("runtime model: {=usize} bytes offered", len);
            let (r, n) = measure(|| runtime::load(&mut src, &SHAPE, tokenizer));
            match r {
                Ok(rm) => {
                    let s = rm.slot();
                    info!(
                        "runtime model accepted: crc={=u32:08x} params={=usize} layers={=usize} top_units={=usize} outputs={=usize} steps={=usize} standardizes={=bool} needed={=usize} heap={=usize} used={=usize} ({=u64} {=str} to load and check)",
                        s.crc,
                        s.spec.param_count(),
                        s.spec.layers,
                        s.spec.top_units(),
                        s.spec.outputs,
                        s.steps,
                        s.standardizes,
                        s.layout.bytes(),
                        HEAP_BYTES,
                        runtime::heap_used(),
                        n,
                        TICK.1
                    );
                    note(summary, "runtime model load", n);
                    active = Some(rm);
                }
                Err(e) => {
                    let mut text: String<384> = String::new();
                    if write!(text, "{e}").is_err() {
                        text.clear();
                        let _ = text.push_str("(message longer than 384 bytes)");
                    }
                    warn!(
                        "runtime model refused reason={=str}: {=str}; serving with the built-in model (heap used {=usize})",
                        e.reason(),
                        text.as_str(),
                        runtime::heap_used()
                    );
                }
            }
        }
    }
    let which = if active.is_some() { "runtime" } else { "built-in" };
    for i in 0..samples.len() {
        let (r, out) = match active.as_mut() {
            Some(rm) => {
                let p = rm.parts();
                samples.data.read(i, &mut b.x[..]); // raw input, standardised by the new model
                if !p.model.shape().tokens() {
                    standardize(&p.model.norm, values_mut(&mut b.x[..p.model.seq_words()]));
                }
                let w = Weights::flat(p.params);
                let r = predict(&p.model, w, &b.x[..], p.forward, p.hidden, p.out);
                (r, &p.out[..])
            }
            None => {
                samples.read(i, &mut b.x[..]);
                let out = &mut b.logits[..OUTPUTS];
                let r = predict(
                    m,
                    live.weights(),
                    &b.x[..],
                    &mut b.forward[..],
                    &mut b.hidden[..],
                    out,
                );
                (r, &b.logits[..OUTPUTS])
            }
        };
        check("serving", r);
        info!(
            "serve model={=str} sample={=usize} outputs={} bits={=str}",
            which,
            i,
            out,
            bits_list(out).as_str()
        );
    }
}

fn finetune(
    m: &Model<'_>,
    live: &mut Live,
    b: &mut Bufs,
    summary: &mut Summary,
    train_set: &[u8],
    valid_set: &[u8],
) {
    let (ft, fv) = match (Dataset::parse(train_set, SHAPE), Dataset::parse(valid_set, SHAPE)) {
        (Ok(t), Ok(v)) => (t, v),
        (Err(e), _) | (_, Err(e)) => fail("field set", &e),
    };
    info!(
        "field set: {=usize} training and {=usize} validation sequences",
        FIELD_TRAIN_N, FIELD_VALID_N
    );
    let (train, valid) = (View::clean(ft, m.norm), View::clean(fv, m.norm));
    let deployed_train = score_full(m, b, live.weights(), &train);
    let deployed_valid = score_full(m, b, live.weights(), &valid);
    log_score("deployed", "clean", "train", "initial", &deployed_train);
    log_score("deployed", "clean", "valid", "initial", &deployed_valid);

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
        info!("ram mode=head bytes={=usize}", RAM_HEAD);
        head_transaction(m, live, b, &mut head_state, &train, &valid, summary);
    }

    #[cfg(feature = "full-finetune")]
    {
        let mut full_state = FullState {
            candidate: full_bufs::CANDIDATE_BUF.take(),
            grads: full_bufs::GRAD_BUF.take(),
            adam: full_bufs::ADAM_BUF.take(),
            work: full_bufs::TRAIN_BUF.take(),
            y: full_bufs::Y_BUF.take(),
        };
        info!("ram mode=full bytes={=usize}", RAM_FULL);
        full_transaction(m, live, b, &mut full_state, &train, &valid, summary);
        if !SHAPE.tokens() {
            // A NaN in the last sequence's last value (inside the truncated-BPTT window), and a
            // -Inf in the first value of the last sequence (before the window): refused at
            // intake, rolled back.
            let last = SEQ_WORDS - 1;
            let nan = Poison::NonFinite {
                sample: 1 % FIELD_TRAIN_N.max(1),
                value: last,
                glitch: Glitch::Nan,
            };
            full_transaction(m, live, b, &mut full_state, &train.poisoned(nan), &valid, summary);
            let neg = Poison::NonFinite {
                sample: FIELD_TRAIN_N.saturating_sub(1),
                value: 0,
                glitch: Glitch::NegInf,
            };
            full_transaction(m, live, b, &mut full_state, &train.poisoned(neg), &valid, summary);
        }
    }
    #[cfg(feature = "head-finetune")]
    {
        if !SHAPE.tokens() {
            // A +Inf reading saturates the gates, so the cached features stay finite: refused
            // at intake, rolled back.
            let inf = Poison::NonFinite { sample: 0, value: 5 % SEQ_WORDS, glitch: Glitch::PosInf };
            head_transaction(m, live, b, &mut head_state, &train.poisoned(inf), &valid, summary);
        }
        // Wrong targets: training succeeds but the validation loss gets worse: roll back.
        let wrong = train.poisoned(Poison::Mislabel);
        head_transaction(m, live, b, &mut head_state, &wrong, &valid, summary);
    }
    #[cfg(not(feature = "head-finetune"))]
    let _ = &summary;

    let final_train = score_full(m, b, live.weights(), &train);
    let final_valid = score_full(m, b, live.weights(), &valid);
    log_score("deployed", "clean", "train", "final", &final_train);
    log_score("deployed", "clean", "valid", "final", &final_valid);
}
