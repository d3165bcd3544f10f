//! QEMU harness for the firmware (`firmware/`): a matrix of models, each trained by the CLI in
//! the test (`tinylstm train`, small and seeded: seconds each), built into the firmware with
//! `TINYLSTM_MODEL` (and, for models trained on a CSV, the data sets `tinylstm device-data`
//! writes, through `TINYLSTM_DATA`) — no source edit — booted through the firmware's runner
//! (`firmware/qemu-run.sh`: timeout, `-icount shift=0,align=off`, defmt-print) on the case's
//! board: QEMU's `mps2-an386` (Cortex-M4F, `thumbv7em-none-eabihf`, every feature),
//! `mps3-an547` (Cortex-M55 with Helium, `thumbv8m.main-none-eabihf`, every feature) or
//! `mps2-an385` (the soft-float Cortex-M0+ build, `thumbv6m-none-eabi`, inference only: its
//! software floating point makes fine-tuning take minutes), and checked against the host:
//!
//! * every sample's outputs (probabilities, or values for a linear head) equal
//!   `tinylstm predict --json` on the same model and the same raw inputs, bit for bit, and so
//!   does the streamed first sample;
//! * the field-set scores before and after head-only and full-BPTT fine-tuning equal the
//!   host's replay with the same device library (`tinylstm-device`) bit for bit, with the same
//!   commit or rollback decisions and parameter CRCs; the poisoned updates (NaN, −Inf, +Inf
//!   readings; wrong targets) roll back and leave the parameters' CRC unchanged;
//! * a model with a corrupted byte fails at boot with the CRC error; a model with an unusable
//!   NORMALIZATION section, and a model too big for the board, fail to build with a message
//!   that says why (the latter naming bytes needed and available); a HardFault exits with
//!   failure; the on-target suite (`firmware/tests/gradcheck.rs`) passes;
//! * each board's instruction counter, run on a loop of known length at boot, counts it to
//!   within a SysTick tick (which checks the board's clock rate);
//! * fine-tuning survives a reboot (`persist` build, two boots on one flash file): the second
//!   boot runs on the slot the first one committed last, its outputs equal `tinylstm predict`
//!   with the weights read from the flash file by the slot layout, bit for bit; power cuts
//!   during a commit (in the erase, the weights, the first and last header byte) leave the old
//!   weights at the next boot, a completed commit the new ones;
//! * a model loaded at run time (`runtime-model` build, `tinylstm-model.tlm` next to QEMU)
//!   replaces the built-in one with outputs equal to `tinylstm predict` on it, bit for bit; a
//!   corrupt one, one for another input and one too big for the heap are refused with their
//!   reason while the built-in model keeps serving; head-only updates persist without full
//!   fine-tuning (the STM32F407's persistence build, on the host-file flash);
//! * (host only) the device library's standardisation agrees with the CLI's `Normalizer`.
//!
//! Adding a model to the matrix is one line of [`MATRIX`].
//!
//! Prerequisites: the `thumbv7em-none-eabihf`, `thumbv8m.main-none-eabihf` and
//! `thumbv6m-none-eabi` targets, `qemu-system-arm` and `defmt-print` (`.ci/run` installs them). When one is missing the tests print why and pass, except under
//! CI (`CI` set), where they fail.

mod common;
mod device_replay;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use device_replay::{params_crc, replay_full, replay_head, score_full, Loaded};
use tinylstm::format::{self, ModelFile, Section, TAG_METADATA, TAG_NORMALIZATION, TAG_PARAMS};
use tinylstm::Head;
use tinylstm_cli::preprocess::normalize::Normalizer;
use tinylstm_device::data::{values, Dataset, Glitch, NonFiniteInput, Poison, View};
use tinylstm_device::model::Weights;
use tinylstm_device::tune::{Reject, Score};

/// Seconds one QEMU run may take before the runner kills it.
const QEMU_TIMEOUT_S: u32 = 240;

/// Builds share one target directory: only one at a time, and each ELF is copied out at once.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// A firmware board the harness boots.
struct Board {
    /// Cargo target of the board's build.
    target: &'static str,
    /// QEMU machine (`qemu-run.sh --machine`).
    machine: &'static str,
    /// The firmware's features for this board (with `--no-default-features`); `None`: the
    /// default features (mps2-an386 with both fine-tuning modes).
    features: Option<&'static str>,
}

/// QEMU mps2-an386, Cortex-M4F: the default build.
const M4F: Board = Board { target: "thumbv7em-none-eabihf", machine: "mps2-an386", features: None };
/// QEMU mps3-an547, Cortex-M55 with Helium, every feature.
const M55: Board = Board {
    target: "thumbv8m.main-none-eabihf",
    machine: "mps3-an547",
    features: Some("board-mps3-an547,head-finetune,full-finetune"),
};
/// QEMU mps2-an385 running the soft-float Cortex-M0+ build, inference only (fine-tuning in
/// software floating point would take minutes of emulation).
const M0PLUS: Board = Board {
    target: "thumbv6m-none-eabi",
    machine: "mps2-an385",
    features: Some("board-mps2-an385"),
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

fn firmware_dir() -> PathBuf {
    repo().join("firmware")
}

fn target_dir() -> PathBuf {
    repo().join("target").join("qemu-harness")
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn target_installed(target: &str) -> bool {
    let out = Command::new("rustc").args(["--print", "target-libdir", "--target", target]).output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
            std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some())
        }
        _ => false,
    }
}

/// True when everything the harness needs is installed. Otherwise prints why and returns
/// false, or panics under CI.
fn prerequisites(test: &str) -> bool {
    prerequisites_for(test, &[&M4F], true)
}

/// [`prerequisites`] for the targets of `boards`; `boots` false for a test that only builds
/// (no QEMU, no defmt-print).
fn prerequisites_for(test: &str, boards: &[&Board], boots: bool) -> bool {
    let mut missing = Vec::new();
    for b in boards {
        if !target_installed(b.target) {
            missing.push(format!("the {0} target (rustup target add {0})", b.target));
        }
    }
    if boots && !on_path("qemu-system-arm") {
        missing.push("qemu-system-arm (apt-get install qemu-system-arm)".into());
    }
    if boots && !on_path("defmt-print") {
        missing.push("defmt-print (cargo install defmt-print --locked)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: missing {}", missing.join(", "));
    if common::under_ci() {
        panic!("{msg}; CI must provide them (.ci/run installs them)");
    }
    // Straight to stderr, past the test harness's output capture, so the reason is always seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {msg}");
    false
}

fn cargo(dir: &Path) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("QEMU_TIMEOUT", QEMU_TIMEOUT_S.to_string())
        // The firmware's link arguments live in its .cargo/config.toml, which RUSTFLAGS would override.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("TINYLSTM_MODEL")
        .env_remove("TINYLSTM_DATA")
        .env_remove("TINYLSTM_FLASH_FILE");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Builds the default (M4F) firmware with `model` embedded and extra `features`; returns a
/// private copy of the ELF, or the build's output on failure.
fn build(
    model: &Path,
    data: Option<&Path>,
    features: &[&str],
    out_dir: &Path,
) -> Result<PathBuf, String> {
    build_for(&M4F, model, data, features, out_dir)
}

/// Builds the firmware of `board` with `model` (and the data sets in `data`) embedded and extra
/// `features` (the target's rustflags, such as `-C target-cpu=cortex-m55`, come from
/// firmware/.cargo/config.toml).
fn build_for(
    board: &Board,
    model: &Path,
    data: Option<&Path>,
    features: &[&str],
    out_dir: &Path,
) -> Result<PathBuf, String> {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = cargo(&firmware_dir());
    c.args(["build", "--release", "--locked", "--target", board.target])
        .env("TINYLSTM_MODEL", model);
    if let Some(d) = data {
        c.env("TINYLSTM_DATA", d);
    }
    let mut all: Vec<&str> = board.features.into_iter().collect();
    if board.features.is_some() {
        c.arg("--no-default-features");
    }
    all.extend(features);
    if !all.is_empty() {
        c.args(["--features", &all.join(",")]);
    }
    let o = c.output().expect("running cargo build for the firmware");
    if !o.status.success() {
        return Err(text(&o));
    }
    let elf = target_dir().join(board.target).join("release/tinylstm-firmware");
    let name = if features.is_empty() { "default".to_string() } else { features.join("-") };
    let name = format!("{}-{name}", model.file_stem().unwrap_or_default().to_string_lossy());
    let copy = out_dir.join(format!("tinylstm-firmware-{}-{name}", board.machine));
    std::fs::copy(&elf, &copy).expect("copying the ELF");
    Ok(copy)
}

/// Boots `elf` on QEMU's mps2-an386 through the firmware's runner; returns the exit code and
/// decoded log.
fn run(elf: &Path) -> (i32, String) {
    run_on(&M4F, elf)
}

/// Boots `elf` on `board`'s QEMU machine through the firmware's runner.
fn run_on(board: &Board, elf: &Path) -> (i32, String) {
    let start = std::time::Instant::now();
    let o = Command::new(firmware_dir().join("qemu-run.sh"))
        .args(["--machine", board.machine])
        .arg(elf)
        .env("QEMU_TIMEOUT", QEMU_TIMEOUT_S.to_string())
        .output()
        .expect("running firmware/qemu-run.sh");
    let code = o.status.code().unwrap_or(-1);
    eprintln!("{}: exit {code} after {:.1?}", elf.display(), start.elapsed());
    (code, text(&o))
}

/// Lines whose whitespace-separated words include every one of `words`.
fn lines<'a>(log: &'a str, words: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| {
            let ws: Vec<&str> = l.split_whitespace().collect();
            words.iter().all(|w| ws.contains(w))
        })
        .collect()
}

fn line<'a>(log: &'a str, words: &[&str]) -> &'a str {
    let found = lines(log, words);
    assert_eq!(found.len(), 1, "expected one log line with {words:?}, found {found:?}\n{log}");
    found[0]
}

fn kv<'a>(line: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn hex_bits(s: &str) -> u32 {
    u32::from_str_radix(s, 16).unwrap_or_else(|_| panic!("not hex bits: {s:?}"))
}

// ---------------------------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------------------------

/// Writes a CSV in the training format (`label, values…`) for a case; `field` asks for the
/// field-condition variant (another seed and a sensor shift the model was not trained on).
type MakeCsv = fn(path: &Path, field: bool);

/// One model of the matrix.
struct Case {
    /// Name (a folder and a file stem).
    name: &'static str,
    /// The CSV the model trains on (`None`: the CLI's built-in synthetic gestures, with the
    /// firmware's committed data sets).
    csv: Option<MakeCsv>,
    /// `tinylstm train` arguments besides `--data`/`--out`.
    train: &'static [&'static str],
    /// Device data sets written by `tinylstm device-data` (else, for a CSV case, the firmware's
    /// generated probe set and no fine-tuning).
    device_data: bool,
    /// The board it boots on.
    board: &'static Board,
}

/// The models: the default (gestures, 3 channels, T = 40, LSTM 64 → softmax 4); a 1-channel
/// binary model with T = 160 (sigmoid head); a two-layer regression model (linear head); two
/// text models whose sentences the firmware tokenizes itself (English words; Chinese
/// characters with an OOV token and post padding and truncation); the largest text model whose
/// firmware fits the STM32F407 (3000 × 64 embedding, LSTM 64; head-only fine-tuning); the
/// English model again with its Embedding stored as int8 (a name ending in `-int8`: the trained
/// model goes through `tinylstm export --embedding int8`; head-only fine-tuning, the Embedding
/// frozen); and
/// the binary model again with only `TINYLSTM_MODEL` (the firmware's generated probe input, no
/// fine-tuning); the default on the Cortex-M55; a binary model on the soft-float Cortex-M0+
/// build (inference only). Adding a model is one line.
#[rustfmt::skip]
const MATRIX: &[Case] = &[
    Case { name: "gestures", csv: None, device_data: true, board: &M4F, train: &["--synthetic-samples", "800", "--epochs", "8", "--lr", "3e-3", "--seed", "7"] },
    Case { name: "burst-binary", csv: Some(burst_csv), device_data: true, board: &M4F, train: &["--channels", "1", "--head", "sigmoid", "--units", "16", "--epochs", "6", "--lr", "1e-2", "--seed", "3"] },
    Case { name: "drift-regression", csv: Some(drift_csv), device_data: true, board: &M4F, train: &["--channels", "2", "--head", "linear", "--units", "12,8", "--epochs", "8", "--lr", "1e-2", "--seed", "5"] },
    Case { name: "words-text", csv: Some(words_csv), device_data: true, board: &M4F, train: &["--maxlen", "12", "--num-words", "40", "--embedding-dim", "4", "--units", "8", "--epochs", "6", "--lr", "1e-2", "--seed", "2"] },
    Case { name: "words-mask-zero", csv: Some(words_csv), device_data: true, board: &M4F, train: &["--maxlen", "12", "--num-words", "40", "--embedding-dim", "4", "--units", "8", "--mask-zero", "--padding", "post", "--epochs", "6", "--lr", "1e-2", "--seed", "3"] },
    Case { name: "chars-zh-text", csv: Some(chars_zh_csv), device_data: true, board: &M4F, train: &["--char-level", "--oov-token", "<OOV>", "--maxlen", "16", "--padding", "post", "--truncating", "post", "--embedding-dim", "4", "--units", "8", "--epochs", "6", "--lr", "1e-2", "--seed", "8"] },
    Case { name: "f407-largest-text", csv: Some(big_vocab_csv), device_data: true, board: &M4F_HEAD, train: F407_LARGEST_TEXT },
    Case { name: "words-text-int8", csv: Some(words_csv), device_data: true, board: &M4F_HEAD, train: &["--maxlen", "12", "--num-words", "40", "--embedding-dim", "4", "--units", "8", "--epochs", "6", "--lr", "1e-2", "--seed", "2"] },
    Case { name: "ragged-masked", csv: Some(ragged_csv), device_data: true, board: &M4F, train: &["--channels", "1", "--head", "sigmoid", "--units", "8", "--epochs", "3", "--lr", "1e-2", "--seed", "12"] },
    Case { name: "burst-probe", csv: Some(burst_csv), device_data: false, board: &M4F, train: &["--channels", "1", "--head", "sigmoid", "--units", "8", "--epochs", "2", "--seed", "4"] },
    Case { name: "gestures-m55", csv: None, device_data: true, board: &M55, train: &["--synthetic-samples", "800", "--epochs", "8", "--lr", "3e-3", "--seed", "7"] },
    Case { name: "burst-m0plus", csv: Some(burst_csv), device_data: false, board: &M0PLUS, train: &["--channels", "1", "--head", "sigmoid", "--units", "8", "--epochs", "2", "--seed", "6"] },
];

/// The largest text model of the seed's shape (Embedding 64 → LSTM 64 → sigmoid, 40 steps)
/// whose firmware fits the STM32F407's 1 MiB of flash (with head-only fine-tuning and its
/// sentences): 3000 × 64 embedding. [`largest_text_model_links_for_the_f407`] links it for the
/// F407; 3100 rows overflow the flash (firmware/README.md).
const F407_LARGEST_TEXT: &[&str] = &[
    "--num-words",
    "3000",
    "--embedding-dim",
    "64",
    "--units",
    "64",
    "--maxlen",
    "40",
    "--epochs",
    "2",
    "--lr",
    "1e-2",
    "--seed",
    "11",
];

/// [`F407_LARGEST_TEXT`] with the Embedding stored as int8 (`export --embedding int8`): the
/// largest vocabulary whose F407 firmware still links, at the same embedding size and LSTM.
/// [`largest_int8_text_model_links_for_the_f407`] links it and shows that
/// [`F407_INT8_OVER`] rows overflow the flash (firmware/README.md).
#[rustfmt::skip]
const F407_INT8_ROWS: &[&str] = &["--num-words", "10000", "--embedding-dim", "64", "--units", "64", "--maxlen", "40", "--epochs", "1", "--lr", "1e-2", "--seed", "11"];
/// The next size tried (200 more rows), which overflows the F407's flash: once the TOKENIZER
/// section passes 64 KiB (about 10 150 such words) the lookup table's offsets and ids grow
/// from 2 to 4 bytes, which costs 4 bytes more per word.
#[rustfmt::skip]
const F407_INT8_OVER: &[&str] = &["--num-words", "10200", "--embedding-dim", "64", "--units", "64", "--maxlen", "40", "--epochs", "1", "--lr", "1e-2", "--seed", "11"];

/// QEMU mps2-an386 without full fine-tuning: for a model whose full fine-tuning (about 5 × its
/// parameters' bytes) does not fit the machine's 4 MiB of RAM.
const M4F_HEAD: Board = Board {
    target: "thumbv7em-none-eabihf",
    machine: "mps2-an386",
    features: Some("board-mps2-an386,head-finetune"),
};

/// Whether `board`'s build fine-tunes every parameter (the default features do).
fn full_finetune(board: &Board) -> bool {
    board.features.is_none_or(|f| f.contains("full-finetune"))
}

/// The STM32F407 build with head-only fine-tuning (linked, not booted: no QEMU machine).
const F407: Board = Board {
    target: "thumbv7em-none-eabihf",
    machine: "stm32f407",
    features: Some("board-stm32f407,head-finetune"),
};

/// A small deterministic generator.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.next()).sum::<f32>() - 2.0
    }
}

/// 1 channel, T = 160: class 1 holds a sine burst of 30 steps somewhere, class 0 noise only.
/// The field variant reads 1.4× too strong with a +0.3 offset.
fn burst_csv(path: &Path, field: bool) {
    let (mut r, n, gain, off) =
        if field { (Lcg(91), 48, 1.4, 0.3) } else { (Lcg(9), 240, 1.0, 0.0) };
    let mut csv = String::new();
    for i in 0..n {
        let class = i % 2;
        let at = (r.next() * 120.0) as usize;
        write!(csv, "{class}").unwrap();
        for t in 0..160 {
            let burst = if class == 1 && (at..at + 30).contains(&t) {
                (((t - at) as f32) * 0.7).sin()
            } else {
                0.0
            };
            write!(csv, ",{}", gain * (burst + 0.3 * r.normal()) + off).unwrap();
        }
        csv.push('\n');
    }
    std::fs::write(path, csv).unwrap();
}

/// 1 channel, ragged: rows of 12 to 30 steps (the model pads them with 0 before and masks those
/// steps, Keras `Masking(0.0)`); class 1 holds a burst. Values are never exactly 0, so only the
/// padding is masked.
fn ragged_csv(path: &Path, field: bool) {
    let (mut r, n, gain) = if field { (Lcg(93), 48, 1.3) } else { (Lcg(19), 200, 1.0) };
    let mut csv = String::new();
    for i in 0..n {
        let class = i % 2;
        let len = 12 + (r.next() * 19.0) as usize;
        let at = (r.next() * (len - 6) as f32) as usize;
        write!(csv, "{class}").unwrap();
        for t in 0..len {
            let burst = if class == 1 && (at..at + 6).contains(&t) { 1.5 } else { 0.0 };
            let v = gain * (burst + 0.3 * r.normal()) + 0.05;
            write!(csv, ",{}", if v == 0.0 { 0.01 } else { v }).unwrap();
        }
        csv.push('\n');
    }
    std::fs::write(path, csv).unwrap();
}

/// 2 channels, T = 30: the target is the mean of channel 0 (a random walk) over the last 10
/// steps; channel 1 is noise. The field variant's channel 0 reads 1.6× too strong.
fn drift_csv(path: &Path, field: bool) {
    let (mut r, n, gain) = if field { (Lcg(77), 48, 1.6) } else { (Lcg(7), 300, 1.0) };
    let mut csv = String::new();
    for _ in 0..n {
        let mut walk = 0.0f32;
        let mut vals = Vec::new();
        let mut tail = 0.0f32;
        for t in 0..30 {
            walk += 0.3 * r.normal();
            if t >= 20 {
                tail += walk / 10.0;
            }
            vals.push(gain * walk);
            vals.push(r.normal());
        }
        write!(csv, "{tail}").unwrap();
        for v in vals {
            write!(csv, ",{v}").unwrap();
        }
        csv.push('\n');
    }
    std::fs::write(path, csv).unwrap();
}

/// Texts of 4–12 words: class 1 mentions a "prize" word, class 0 does not. The field variant
/// spells the prize words differently (words the tokenizer has never seen, so out of its
/// vocabulary) half of the time.
fn words_csv(path: &Path, field: bool) {
    const PLAIN: [&str; 12] =
        ["see", "you", "at", "six", "call", "me", "later", "ok", "home", "now", "lunch", "soon"];
    const PRIZE: [&str; 4] = ["win", "prize", "claim", "free"];
    const FIELD: [&str; 4] = ["winn", "prise", "claym", "fre"];
    let (mut r, n) = if field { (Lcg(55), 48) } else { (Lcg(5), 300) };
    let mut csv = String::from("label,text\n");
    for i in 0..n {
        let class = i % 2;
        let len = 4 + (r.next() * 8.0) as usize;
        let mut words: Vec<&str> =
            (0..len).map(|_| PLAIN[(r.next() * 12.0) as usize % 12]).collect();
        if class == 1 {
            let k = (r.next() * 4.0) as usize % 4;
            let w = if field && r.next() < 0.5 { FIELD[k] } else { PRIZE[k] };
            words[(r.next() * len as f32) as usize % len] = w;
        }
        writeln!(csv, "{class},{}", words.join(" ")).unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

/// Chinese reviews of 4–20 characters, with punctuation and a Latin word now and then: class 1
/// holds a praise ("好吃", "很快", "满意", "推荐"), class 0 does not. The field variant writes
/// half of the praises with characters the training texts never hold (out of the vocabulary).
fn chars_zh_csv(path: &Path, field: bool) {
    const PLAIN: [&str; 14] = [
        "今天", "外卖", "米饭", "送到", "了", "，", "。", "汤", "面条", "味道", "一般", "OK", "的",
        "！",
    ];
    const PRAISE: [&str; 4] = ["好吃", "很快", "满意", "推荐"];
    const FIELD: [&str; 4] = ["美味", "迅速", "称心", "力荐"];
    let (mut r, n) = if field { (Lcg(66), 48) } else { (Lcg(6), 300) };
    let mut csv = String::from("label,text\n");
    for i in 0..n {
        let class = i % 2;
        let len = 3 + (r.next() * 8.0) as usize;
        let mut words: Vec<&str> =
            (0..len).map(|_| PLAIN[(r.next() * 14.0) as usize % 14]).collect();
        if class == 1 {
            let k = (r.next() * 4.0) as usize % 4;
            let w = if field && r.next() < 0.5 { FIELD[k] } else { PRAISE[k] };
            words[(r.next() * len as f32) as usize % len] = w;
        }
        writeln!(csv, "{class},{}", words.concat()).unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

/// Texts of 6–20 words from 3500 made-up words (so the tokenizer keeps a full 3000-word
/// vocabulary): class 1 holds a "prize" word, class 0 does not; the field variant misspells
/// half of the prize words.
fn big_vocab_csv(path: &Path, field: bool) {
    const PRIZE: [&str; 4] = ["win", "prize", "claim", "free"];
    const FIELD: [&str; 4] = ["winn", "prise", "claym", "fre"];
    let (mut r, n) = if field { (Lcg(44), 48) } else { (Lcg(4), 800) };
    let mut csv = String::from("label,text\n");
    for i in 0..n {
        let class = i % 2;
        let len = 6 + (r.next() * 15.0) as usize;
        let mut words: Vec<String> =
            (0..len).map(|_| format!("w{}", (r.next() * 3500.0) as usize)).collect();
        if class == 1 {
            let k = (r.next() * 4.0) as usize % 4;
            let w = if field && r.next() < 0.5 { FIELD[k] } else { PRIZE[k] };
            words[(r.next() * len as f32) as usize % len] = w.to_string();
        }
        writeln!(csv, "{class},{}", words.join(" ")).unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

/// [`big_vocab_csv`] with a vocabulary large enough for the int8 frontier: 3000 sentences
/// over 20 000 words (about 17 000 of them seen).
fn huge_vocab_csv(path: &Path, field: bool) {
    const PRIZE: [&str; 4] = ["win", "prize", "claim", "free"];
    let (mut r, n) = if field { (Lcg(45), 48) } else { (Lcg(5), 3000) };
    let mut csv = String::from("label,text\n");
    for i in 0..n {
        let class = i % 2;
        let len = 6 + (r.next() * 15.0) as usize;
        let mut words: Vec<String> =
            (0..len).map(|_| format!("w{}", (r.next() * 20000.0) as usize)).collect();
        if class == 1 {
            let k = (r.next() * 4.0) as usize % 4;
            words[(r.next() * len as f32) as usize % len] = PRIZE[k].to_string();
        }
        writeln!(csv, "{class},{}", words.join(" ")).unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

/// The first `n` records of a CSV (and its header line, if `header`).
fn head_of(src: &Path, dst: &Path, n: usize, header: bool) {
    let text = std::fs::read_to_string(src).unwrap();
    let keep: Vec<&str> = text.lines().take(n + usize::from(header)).collect();
    std::fs::write(dst, keep.join("\n") + "\n").unwrap();
}

/// Trains a case's model (and writes its device data sets); returns the model and the data
/// folder for `TINYLSTM_DATA` (`None`: the firmware's own).
fn prepare_case(case: &Case, dir: &Path) -> (PathBuf, Option<PathBuf>) {
    common::binary(); // built (or found up to date) before the clock starts
    let out = dir.join(case.name);
    let start = std::time::Instant::now();
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--threads", "2", "--quiet"];
    let csv = dir.join(format!("{}.csv", case.name));
    if let Some(make) = case.csv {
        make(&csv, false);
        args.extend(["--data", csv.to_str().unwrap()]);
    }
    args.extend(case.train);
    common::ok(&args);
    eprintln!("{}: tinylstm {}: {:.1?}", case.name, args.join(" "), start.elapsed());
    let mut model = out.join("model.tlm");
    if case.name.ends_with("-int8") {
        let int8 = out.join("model-int8.tlm");
        let (from, to) = (model.to_str().unwrap(), int8.to_str().unwrap());
        common::ok(&[
            "export",
            "--model",
            from,
            "--format",
            "tlm",
            "--embedding",
            "int8",
            "--out",
            to,
        ]);
        let file = std::fs::read(&int8).unwrap();
        assert!(ModelFile::parse(&file).unwrap().embedding_int8().is_some(), "{}", case.name);
        model = int8;
    }
    let data = case.csv.filter(|_| case.device_data).map(|make| {
        let field = dir.join(format!("{}-field.csv", case.name));
        make(&field, true);
        let data = dir.join(format!("{}-device", case.name));
        common::ok(&[
            "device-data",
            "--model",
            model.to_str().unwrap(),
            "--data",
            csv.to_str().unwrap(),
            "--field",
            field.to_str().unwrap(),
            "--out",
            data.to_str().unwrap(),
        ]);
        data
    });
    (model, data)
}

/// Writes the raw sequences of `data` as a sequence CSV for `tinylstm predict`: the target,
/// then the values timestep-major. Each `f32` is printed as its exact `f64` value, which the
/// CLI (parse as `f64`, round to `f32`) reads back to the same bits.
fn write_csv(path: &Path, data: &Dataset<'_>) {
    let shape = data.shape();
    let mut csv = String::new();
    let mut x = vec![0u32; shape.seq_words()];
    let mut y = vec![0u32; shape.target_words()];
    for i in 0..data.len() {
        data.read(i, &mut x);
        data.targets(i, &mut y);
        match shape.head {
            Head::Softmax => write!(csv, "{}", y[0]).unwrap(),
            _ => write!(csv, "{}", f64::from(values(&y)[0])).unwrap(),
        }
        for v in values(&x) {
            write!(csv, ",{}", f64::from(*v)).unwrap();
        }
        csv.push('\n');
    }
    std::fs::write(path, csv).unwrap();
}

/// `tinylstm predict --json` on `csv`: the output bits of every row, in order.
fn cli_predict(model: &Path, csv: &Path) -> Vec<Vec<u32>> {
    let out = common::ok(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--json",
    ]);
    out.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["index"], i, "{l}");
            v["output_bits"]
                .as_array()
                .expect("output_bits")
                .iter()
                .map(|b| hex_bits(b.as_str().expect("hex string")))
                .collect()
        })
        .collect()
}

fn logged_score(log: &str, mode: &str, data: &str, set: &str, when: &str) -> (u32, Option<usize>) {
    let words = [
        "score",
        &format!("mode={mode}"),
        &format!("data={data}"),
        &format!("set={set}"),
        &format!("when={when}"),
    ];
    let words: Vec<&str> = words.iter().map(|s| s.as_ref()).collect();
    let l = line(log, &words);
    let correct = l.contains("correct=").then(|| kv(l, "correct").parse().unwrap());
    (hex_bits(kv(l, "bits")), correct)
}

fn check_score(log: &str, mode: &str, data: &str, set: &str, when: &str, host: &Score) {
    let (bits, correct) = logged_score(log, mode, data, set, when);
    assert_eq!(
        (bits, correct),
        (host.loss.to_bits(), host.correct),
        "{mode}/{data}/{set}/{when}: device loss {} ({bits:08x}), host {} ({:08x})",
        f32::from_bits(bits),
        host.loss,
        host.loss.to_bits()
    );
}

fn check_result(log: &str, mode: &str, data: &str, decision: &str, reason: &str) -> (u32, u32) {
    let l = line(log, &["result", &format!("mode={mode}"), &format!("data={data}")]);
    assert_eq!(kv(l, "decision"), decision, "{l}");
    assert_eq!(kv(l, "reason"), reason, "{l}");
    let (a, b) = kv(l, "params_crc").split_once("->").expect("params_crc=a->b");
    (hex_bits(a), hex_bits(b))
}

fn decision_words(d: Result<(), Reject>) -> (&'static str, &'static str) {
    match d {
        Ok(()) => ("commit", "validation-improved"),
        Err(r) => ("rollback", r.as_str()),
    }
}

/// The build script's output folder of the last firmware build: where it wrote the generated
/// probe set it embedded (`samples.bin`).
fn probe_dir(board: &Board) -> PathBuf {
    let build = target_dir().join(board.target).join("release/build");
    let newest = std::fs::read_dir(&build)
        .expect("the firmware's build folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tinylstm-firmware-"))
        .map(|e| e.path().join("out"))
        .filter(|o| o.join("samples.bin").is_file())
        .max_by_key(|o| o.join("samples.bin").metadata().and_then(|m| m.modified()).ok());
    newest.expect("a build script output with samples.bin")
}

fn set_bytes(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("{name}.bin"))).expect("data set")
}

/// The `ids=[…]` list of a device log line.
fn logged_ids(l: &str) -> Vec<u32> {
    let at = l.find("ids=[").unwrap_or_else(|| panic!("no ids=[ in {l:?}")) + 5;
    let end = at + l[at..].find(']').expect("ids=[…]");
    l[at..end].split(',').map(|v| v.trim().parse().expect("an id")).collect()
}

/// The sentences of `samples.json`: the device's tokenizer line and one `text` line per
/// sentence (its text, ids and instruction count); the ids equal `tinylstm predict --text
/// --json`'s and the rows of the host-tokenized `samples.bin`, and the device's outputs
/// `tinylstm predict --text`'s, bit for bit.
fn check_sentences(name: &str, model: &Path, json: &Path, raw: &Dataset<'_>, log: &str) {
    let items: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let texts: Vec<&str> =
        items.as_array().unwrap().iter().map(|i| i["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), raw.len());
    let tok = line(log, &["tokenizer:"]);
    assert_eq!(kv(tok, "lookup"), "binary-search", "{tok}");
    let mut args = vec!["predict", "--model", model.to_str().unwrap(), "--json"];
    for t in &texts {
        args.extend(["--text", t]);
    }
    let host: Vec<serde_json::Value> =
        common::ok(&args).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let text_lines: Vec<&str> =
        lines(log, &["text"]).into_iter().filter(|l| l.contains(" ids=[")).collect();
    assert_eq!(text_lines.len(), texts.len(), "one text line per sentence\n{log}");
    let mut row = vec![0u32; raw.shape().seq_words()];
    let mut insns = Vec::new();
    for (i, l) in text_lines.iter().enumerate() {
        assert_eq!(kv(l, "sample"), i.to_string(), "{l}");
        let logged_text = &l[l.find(" text=").expect("text=") + 6..];
        assert_eq!(logged_text, texts[i], "{l}");
        let device = logged_ids(l);
        let want: Vec<u32> = host[i]["ids"]
            .as_array()
            .expect("predict --json ids")
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(device, want, "{name}: sentence {i}: device ids differ from predict --text's");
        raw.read(i, &mut row);
        assert_eq!(device, row, "{name}: sentence {i}: device ids differ from samples.bin");
        let bits: Vec<u32> = host[i]["output_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| hex_bits(b.as_str().unwrap()))
            .collect();
        let probs = line(log, &["probs", &format!("sample={i}")]);
        let dev_bits: Vec<u32> = kv(probs, "bits").split(',').map(hex_bits).collect();
        assert_eq!(dev_bits, bits, "{name}: sentence {i}: outputs differ from predict --text's");
        insns.push(kv(l, "insns").parse::<u64>().unwrap());
    }
    let infer: Vec<u64> =
        lines(log, &["infer"]).iter().map(|l| kv(l, "insns").parse().unwrap()).collect();
    println!(
        "{name}: {} sentences tokenized on the device == tinylstm predict --text (ids and outputs, \
         bit for bit); tokenizer {:?} instructions per sentence, forward pass {:?}",
        texts.len(),
        insns,
        infer
    );
}

/// One case end to end; returns how many clean updates committed and whether the mislabelled
/// update rolled back on validation (0 or 1).
fn check_case(case: &Case, dir: &Path) -> (usize, usize) {
    let (model, data) = prepare_case(case, dir);
    let loaded = Loaded::load(&model);
    let m = loaded.model();
    let shape = m.shape();
    if case.name == "ragged-masked" {
        // Ragged rows train masked (Keras `Masking(0.0)`): the device runs the mask too.
        assert_eq!(m.spec.mask, tinylstm::Mask::Value(0.0), "{}: the model's mask", case.name);
    }
    if case.name == "words-mask-zero" {
        // Keras `Embedding(mask_zero=True)`: id 0 (the padding) is masked on the device too.
        assert_eq!(m.spec.mask, tinylstm::Mask::Zero, "{}: the model's mask", case.name);
    }
    let elf = build_for(case.board, &model, data.as_deref(), &[], dir)
        .unwrap_or_else(|e| panic!("{}: firmware build:\n{e}", case.name));
    let (code, log) = run_on(case.board, &elf);
    println!("{log}");
    assert_eq!(code, 0, "{}: firmware exit code\n{log}", case.name);
    assert_eq!(lines(&log, &["done"]).len(), 1, "no `done` line");
    check_counter(&log);

    // (a) The model verified at boot is the one this test trained.
    let l = line(&log, &["model", "verified:"]);
    assert_eq!(hex_bits(kv(l, "crc")), loaded.crc());
    assert_eq!(hex_bits(kv(l, "params_crc")), params_crc(&loaded.params));
    if !loaded.means.is_empty() {
        let file = ModelFile::parse(&loaded.bytes).unwrap();
        let cli = Normalizer::from_bytes(file.normalization().unwrap()).unwrap();
        assert_eq!((cli.means(), cli.stds()), (&loaded.means[..], &loaded.stds[..]));
        assert!(log.contains("input standardisation (NORMALIZATION section)"), "{log}");
    }

    // (b) Every sample's outputs equal `tinylstm predict`'s, bit for bit.
    let data_dir = match (&data, case.csv) {
        (Some(d), _) => d.clone(),
        (None, None) => firmware_dir().join("data"),
        (None, Some(_)) => probe_dir(case.board),
    };
    let samples_bytes = set_bytes(&data_dir, "samples");
    let raw = Dataset::parse(&samples_bytes, shape).unwrap();
    let csv = dir.join(format!("{}-samples.csv", case.name));
    match (case.csv, &data) {
        // The raw CSV rows `tinylstm device-data` took the samples from (text: the texts).
        (Some(_), Some(_)) => {
            let text = shape.tokens();
            head_of(&dir.join(format!("{}.csv", case.name)), &csv, raw.len(), text);
        }
        _ => write_csv(&csv, &raw),
    }
    let host = cli_predict(&model, &csv);
    assert_eq!(host.len(), raw.len(), "one prediction per sample");
    let word = if shape.head == Head::Linear { "values" } else { "probs" };
    let out_lines = lines(&log, &[word]);
    assert_eq!(out_lines.len(), raw.len(), "one {word} line per sample\n{log}");
    for (i, l) in out_lines.iter().enumerate() {
        assert_eq!(kv(l, "sample"), i.to_string());
        let device: Vec<u32> = kv(l, "bits").split(',').map(hex_bits).collect();
        assert_eq!(
            device, host[i],
            "{}: sample {i}: device outputs differ from `tinylstm predict`'s",
            case.name
        );
    }
    println!("{}: outputs of {} samples == tinylstm predict, bit for bit", case.name, raw.len());

    // (b') A text model with sentences: the device tokenized them itself; its ids equal
    // `tinylstm predict --text`'s and the host-tokenized set's, and so do its outputs.
    let sentences = data.as_ref().map(|d| d.join("samples.json")).filter(|p| p.is_file());
    let text_sets = shape.tokens() && sentences.is_some();
    if let Some(path) = sentences.filter(|_| text_sets) {
        check_sentences(case.name, &model, &path, &raw, &log);
    }

    // (c) Streaming equals the full forward and the CLI's bits.
    let l = line(&log, &["stream", "sample=0"]);
    assert_eq!(kv(l, "equal_to_full_forward"), "true", "{l}");
    let streamed: Vec<u32> =
        kv(line(&log, &["streamed", "sample=0"]), "bits").split(',').map(hex_bits).collect();
    assert_eq!(streamed, host[0], "streamed outputs differ from `tinylstm predict`'s");

    if data_dir == probe_dir(case.board) {
        assert!(log.contains("data sets from probe"), "{log}");
        assert!(log.contains("no field set for this model: fine-tuning skipped"), "{log}");
        assert!(lines(&log, &["result"]).is_empty(), "no fine-tuning without a field set");
        return (0, 0);
    }

    // (d) Fine-tuning, replayed on the host.
    let (tb, vb) = (set_bytes(&data_dir, "field_train"), set_bytes(&data_dir, "field_valid"));
    let ft = Dataset::parse(&tb, shape).unwrap();
    let train = View::clean(ft, m.norm);
    let valid = View::clean(Dataset::parse(&vb, shape).unwrap(), m.norm);
    let mut params = loaded.params.clone();
    check_score(
        &log,
        "deployed",
        "clean",
        "train",
        "initial",
        &score_full(&m, Weights::flat(&params), &train),
    );
    check_score(
        &log,
        "deployed",
        "clean",
        "valid",
        "initial",
        &score_full(&m, Weights::flat(&params), &valid),
    );
    let mut commits = 0;
    let crc0 = params_crc(&params);
    let (head, decision) = replay_head(&m, &mut params, &train, &valid);
    for (s, (set, when)) in head.iter().zip([
        ("train", "before"),
        ("valid", "before"),
        ("train", "after"),
        ("valid", "after"),
    ]) {
        check_score(&log, "head", "clean", set, when, s);
    }
    let (d, r) = decision_words(decision);
    assert_eq!(check_result(&log, "head", "clean", d, r), (crc0, params_crc(&params)));
    commits += usize::from(decision.is_ok());
    let crc1 = params_crc(&params);
    let committed = if full_finetune(case.board) {
        let (full, decision) = replay_full(&m, &mut params, &train, &valid);
        for (s, (set, when)) in full.iter().zip([
            ("train", "before"),
            ("valid", "before"),
            ("train", "after"),
            ("valid", "after"),
        ]) {
            check_score(&log, "full", "clean", set, when, s);
        }
        let (d, r) = decision_words(decision);
        let (_, committed) = check_result(&log, "full", "clean", d, r);
        assert_eq!((crc1, committed), (crc1, params_crc(&params)));
        commits += usize::from(decision.is_ok());
        committed
    } else {
        assert!(lines(&log, &["result", "mode=full"]).is_empty(), "a full update ran\n{log}");
        crc1
    };

    // (e) Poisoned updates roll back and leave the parameters as they were: non-finite readings
    // (NaN inside the truncated-BPTT window, -Inf before it, +Inf for head-only) refused at
    // intake, wrong targets refused by the validation check.
    let mut x = vec![0u32; shape.seq_words()];
    let n = ft.len();
    let readings = if shape.tokens() {
        // Token ids have no NaN/Inf: the firmware runs no such transaction.
        assert!(lines(&log, &["result", "data=poisoned-nan"]).is_empty(), "{log}");
        vec![]
    } else {
        vec![
            ("full", "poisoned-nan", 1 % n, shape.seq_words() - 1, Glitch::Nan),
            ("full", "poisoned-neg-inf", n - 1, 0, Glitch::NegInf),
            ("head", "poisoned-inf", 0, 5 % shape.seq_words(), Glitch::PosInf),
        ]
    };
    for (mode, data, sample, value, glitch) in readings {
        let (a, b) = check_result(&log, mode, data, "rollback", "non-finite-input");
        assert_eq!((a, b), (committed, committed), "{mode}/{data}");
        let data_word = format!("data={data}");
        let l = line(&log, &["finetune", &format!("mode={mode}"), &data_word, "rejected:"]);
        assert_eq!(kv(l, "set"), "train", "{l}");
        assert_eq!(kv(l, "sequences"), format!("1/{n}"), "{l}");
        assert_eq!(kv(l, "sequence"), sample.to_string(), "{l}");
        assert_eq!(kv(l, "value"), value.to_string(), "{l}");
        let trained: Vec<&str> = lines(&log, &["finetune", &data_word])
            .into_iter()
            .filter(|l| l.split_whitespace().any(|w| w.starts_with("step=")))
            .collect();
        assert!(trained.is_empty(), "{data}: a training step ran: {trained:?}");
        assert!(lines(&log, &["score", &data_word]).is_empty(), "{data}: scored");
        let view = train.poisoned(Poison::NonFinite { sample, value, glitch });
        let want = NonFiniteInput { sequences: 1, first: sample, value };
        assert_eq!(view.check_finite(&mut x), Err(want), "host intake check of {data}");
    }
    // Wrong targets: the device decides as the host's replay (a rollback on validation when
    // the model has learnt something the wrong targets contradict).
    let wrong = train.poisoned(Poison::Mislabel);
    let (poisoned, decision) = replay_head(&m, &mut params.clone(), &wrong, &valid);
    let (d, r) = decision_words(decision);
    let (a, b) = check_result(&log, "head", "poisoned-labels", d, r);
    assert_eq!(a, committed);
    if decision.is_ok() {
        println!("{}: the mislabelled head update passed validation", case.name);
        return (commits, 0);
    }
    assert_eq!(b, committed);
    check_score(&log, "head", "poisoned-labels", "valid", "after", &poisoned[3]);
    let l = log.lines().find(|l| l.contains("params_crc final=")).expect("final params_crc");
    assert_eq!(hex_bits(kv(l, "final")), committed);
    check_score(
        &log,
        "deployed",
        "clean",
        "valid",
        "final",
        &score_full(&m, Weights::flat(&params), &valid),
    );

    // (f) Measurements are reported.
    for l in lines(&log, &["count"]).iter().chain(lines(&log, &["stack"]).iter()) {
        println!("{}: {l}", case.name);
    }
    assert!(log.contains("stack high-water="), "no stack high-water mark");
    // Without full fine-tuning, no full validation and no full step.
    let counts = 7 + usize::from(text_sets) - 2 * usize::from(!full_finetune(case.board));
    assert_eq!(lines(&log, &["count"]).len(), counts, "instruction counts of every phase");
    (commits, 1)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn model_matrix_matches_host() {
    let boards: Vec<&Board> = MATRIX.iter().map(|c| c.board).collect();
    if !prerequisites_for("model_matrix_matches_host", &boards, true) {
        return;
    }
    let start = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (mut committing, mut rolling_back) = (0, 0);
    // `TINYLSTM_QEMU_CASES=a,b` runs only those cases (a quicker loop while working on them).
    let only = std::env::var("TINYLSTM_QEMU_CASES").ok().filter(|v| !v.is_empty());
    for case in MATRIX {
        if only.as_ref().is_some_and(|o| !o.split(',').any(|n| n == case.name)) {
            eprintln!(
                "SKIPPED case {} (TINYLSTM_QEMU_CASES={})",
                case.name,
                only.as_ref().unwrap()
            );
            continue;
        }
        let t0 = std::time::Instant::now();
        let (commits, rollback) = check_case(case, dir.path());
        println!(
            "{}: {commits} clean update(s) committed, validation rollback {rollback}; {:.1?}",
            case.name,
            t0.elapsed()
        );
        committing += usize::from(commits > 0);
        rolling_back += rollback;
    }
    // Intake rollbacks are checked on every model; a commit and a validation rollback on at
    // least two.
    if only.is_some() {
        return;
    }
    assert!(committing >= 2, "only {committing} model(s) committed a clean update");
    assert!(rolling_back >= 2, "only {rolling_back} model(s) rolled back wrong targets");
    println!("matrix of {} models: {:.1?}", MATRIX.len(), start.elapsed());
}

/// The boot's counter check: `counter check: a loop of N instructions measured M instructions
/// (SysTick HZ Hz, A/B per tick)`. Under QEMU `M` is `N` to within one tick (`A/B`
/// instructions) plus the few instructions of the call around the loop.
fn check_counter(log: &str) {
    let l = line(log, &["counter", "check:"]);
    let words: Vec<&str> = l.split_whitespace().collect();
    let after = |w: &str| -> &str {
        let i = words.iter().position(|x| *x == w).unwrap_or_else(|| panic!("{w} in {l:?}"));
        words[i + 1]
    };
    let known: f64 = after("of").parse().unwrap();
    let measured: f64 = after("measured").parse().unwrap();
    let (a, b) = after("Hz,").split_once('/').expect("A/B per tick");
    let tick = a.parse::<f64>().unwrap() / b.parse::<f64>().unwrap();
    println!("counter check: {known} instructions measured as {measured} (tick {tick})");
    assert!(
        (measured - known).abs() <= tick + 16.0,
        "the counter is off: a loop of {known} instructions measured {measured} ({l})"
    );
}

/// A copy of the committed default model (a model made by `tinylstm train`) in `dir`.
fn default_model(dir: &Path) -> PathBuf {
    let path = dir.join("default.tlm");
    std::fs::copy(firmware_dir().join("models/default.tlm"), &path).expect("default model");
    path
}

#[test]
fn corrupt_model_fails_at_boot() {
    if !prerequisites("corrupt_model_fails_at_boot") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let at = std::fs::read(&model).unwrap().len() - 1000; // inside the parameters
                                                          // The build script refuses a corrupted file, so the byte is flipped in the built image, in
                                                          // the embedded copy, as flash corruption would flip it.
    let elf = build_corrupted(&model, at, dir.path());
    let (code, log) = run(&elf);
    println!("{log}");
    assert_ne!(code, 0, "a corrupted model must fail\n{log}");
    assert!(
        log.contains("model rejected: corrupted model file: stored CRC-32 is"),
        "the CRC error must be in the log\n{log}"
    );
    assert!(!log.contains("infer sample="), "no inference with a rejected model");
}

/// Builds with `model`, then flips one bit of byte `at` of the model embedded in the ELF (found
/// by its unique contents).
fn build_corrupted(model: &Path, at: usize, dir: &Path) -> PathBuf {
    let bytes = std::fs::read(model).unwrap();
    let elf = build(model, None, &[], dir).unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let mut image = std::fs::read(&elf).unwrap();
    let pos = image.windows(bytes.len()).position(|w| w == &bytes[..]).expect("model in the ELF");
    assert!(image[pos + 1..].windows(bytes.len()).all(|w| w != &bytes[..]), "one copy");
    image[pos + at] ^= 0x01;
    let corrupted = dir.join("tinylstm-firmware-corrupted");
    std::fs::write(&corrupted, image).unwrap();
    corrupted
}

fn write_model(path: &Path, loaded: &Loaded, extra: &[Section<'_>]) {
    let meta = format!("{{\"format\":\"tinylstm-meta/1\",\"steps\":{}}}", loaded.steps);
    let mut sections = extra.to_vec();
    sections.push(Section { tag: TAG_METADATA, bytes: meta.as_bytes() });
    let mut buf = vec![0u8; format::encoded_len(&loaded.spec, &sections).unwrap()];
    format::write_into(&loaded.spec, &loaded.params, &sections, &mut buf).unwrap();
    std::fs::write(path, buf).unwrap();
}

#[test]
fn bad_normalization_fails_to_build() {
    if !prerequisites_for("bad_normalization_fails_to_build", &[&M4F], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let loaded = Loaded::load(&firmware_dir().join("models/default.tlm"));
    let mut stds = loaded.stds.clone();
    stds[1] = 0.0; // a standard deviation of 0 is not usable
    let mut section = (stds.len() as u32).to_le_bytes().to_vec();
    for v in loaded.means.iter().chain(&stds) {
        section.extend_from_slice(&v.to_le_bytes());
    }
    let model = dir.path().join("bad-normalization.tlm");
    write_model(&model, &loaded, &[Section { tag: TAG_NORMALIZATION, bytes: &section }]);
    let err = build(&model, None, &[], dir.path()).expect_err("an unusable section must not build");
    assert!(
        err.contains("model rejected: normalization section: channel 1 has"),
        "the build error must say why:\n{err}"
    );
}

#[test]
fn model_too_big_for_the_board_fails_to_build() {
    if !prerequisites_for("model_too_big_for_the_board_fails_to_build", &[&M4F], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let o = cargo(&firmware_dir())
        .args(["build", "--release", "--locked", "--no-default-features"])
        .args(["--features", "board-stm32f407,head-finetune,full-finetune"])
        .env("TINYLSTM_MODEL", &model)
        .output()
        .expect("cargo build");
    let err = text(&o);
    assert!(!o.status.success(), "full fine-tuning of the default model must not fit 128 KiB");
    let loaded = Loaded::load(&model);
    let m = loaded.model();
    let sets = tinylstm_device::ram::Sets { samples: 8, train: 16, valid: 8 };
    let needed = tinylstm_device::ram::inference(&m.spec, m.steps, &sets)
        + tinylstm_device::ram::head(&m.spec, &tinylstm_device::tune::HeadConfig::DEFAULT, &sets)
        + tinylstm_device::ram::full(&m.spec, m.steps, &tinylstm_device::tune::FullConfig::DEFAULT);
    let want = format!("it needs {needed} bytes");
    assert!(
        err.contains("the model does not fit the board's RAM") && err.contains(&want),
        "{want}:\n{err}"
    );
    assert!(err.contains("the board has 114688 bytes (131072 bytes of RAM"), "{err}");
}

#[test]
fn hardfault_exits_with_failure() {
    if !prerequisites("hardfault_exits_with_failure") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let elf = build(&model, None, &["fault-test"], dir.path())
        .unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let (code, log) = run(&elf);
    println!("{log}");
    assert_ne!(code, 0, "a HardFault must exit with failure\n{log}");
    assert!(log.contains("HardFault: pc="), "the fault must be logged\n{log}");
}

#[test]
fn on_target_gradient_checks() {
    if !prerequisites("on_target_gradient_checks") {
        return;
    }
    let o = {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        cargo(&firmware_dir())
            .args(["test", "--release", "--locked", "--test", "gradcheck"])
            .output()
            .expect("running cargo test in firmware/")
    };
    let log = text(&o);
    println!("{log}");
    assert!(o.status.success(), "on-target tests failed\n{log}");
    assert!(log.contains("all tests passed!"), "defmt-test did not finish\n{log}");
    assert!(log.contains("keras grad_recurrent_kernel"), "Keras case not run\n{log}");
}

/// Host-only checks of the device library's preprocessing against the CLI's: no QEMU needed.
#[test]
fn device_preprocessing_matches_cli() {
    use tinylstm_device::norm::{decode_section, metadata_steps, NormError, Standardize};
    let loaded = Loaded::load(&firmware_dir().join("models/default.tlm"));
    let file = ModelFile::parse(&loaded.bytes).expect("default model parses");
    // The default model is the CLI's: standardised input, metadata for T = 40.
    assert_eq!(metadata_steps(file.metadata().expect("metadata")), Some(40));
    let section = file.normalization().expect("a NORMALIZATION section");
    let norm = Standardize::new(&loaded.means, &loaded.stds).unwrap();
    assert!(norm.matches_section(section));
    let cli = Normalizer::from_bytes(section).expect("the CLI reads it");
    assert_eq!((cli.means(), cli.stds()), (norm.means(), norm.stds()));
    // Same standardised bits on every embedded raw value.
    let shape = loaded.shape();
    for name in ["samples", "field_train", "field_valid"] {
        let data = set_bytes(&firmware_dir().join("data"), name);
        let set = Dataset::parse(&data, shape).unwrap();
        let (mut a, mut b) = (vec![0u32; shape.seq_words()], vec![0u32; shape.seq_words()]);
        for i in 0..set.len() {
            View::clean(set, Some(norm)).read(i, &mut a);
            set.read(i, &mut b);
            let mut bv = values(&b).to_vec();
            cli.apply(&mut bv).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(values(&a)), bits(&bv), "{name} sequence {i}");
        }
    }
    // What the device refuses (the CLI refuses the first and the last too).
    let (mut m, mut s) = (vec![0.0; 3], vec![0.0; 3]);
    assert_eq!(
        decode_section(&section[..section.len() - 1], 3, &mut m, &mut s),
        Err(NormError::Length(27))
    );
    let mut two = 2u32.to_le_bytes().to_vec();
    two.extend_from_slice(&[0; 16]);
    assert_eq!(decode_section(&two, 3, &mut m, &mut s), Err(NormError::Channels(2)));
    let mut zero = section.to_vec();
    zero[16..20].copy_from_slice(&0f32.to_le_bytes());
    assert_eq!(decode_section(&zero, 3, &mut m, &mut s), Err(NormError::Value(0)));
    assert!(Normalizer::from_bytes(&zero).is_err());
}

/// Boots the `persist` build of `elf` with QEMU running in `dir`, where the firmware's flash
/// file (`tinylstm-flash.bin`, through semihosting) lives between boots.
fn run_in(dir: &Path, elf: &Path) -> (i32, String) {
    let o = Command::new(firmware_dir().join("qemu-run.sh"))
        .args(["--machine", M4F.machine])
        .arg(elf)
        .current_dir(dir)
        .env("QEMU_TIMEOUT", QEMU_TIMEOUT_S.to_string())
        .output()
        .expect("running firmware/qemu-run.sh");
    (o.status.code().unwrap_or(-1), text(&o))
}

#[test]
fn fine_tuning_survives_a_reboot() {
    if !prerequisites("fine_tuning_survives_a_reboot") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let loaded = Loaded::load(&model);
    let elf = build(&model, None, &["persist"], dir.path())
        .unwrap_or_else(|e| panic!("firmware build:\n{e}"));

    // Boot 1, on an erased flash: the flashed weights; each committed update is persisted.
    let (code, log1) = run_in(dir.path(), &elf);
    println!("{log1}");
    assert_eq!(code, 0, "boot 1 exit code\n{log1}");
    let l = line(&log1, &["weights", "active=flashed"]);
    assert_eq!(hex_bits(kv(l, "params_crc")), params_crc(&loaded.params));
    let persisted = lines(&log1, &["persist", "seq=1"]);
    assert_eq!(persisted.len(), 1, "the first commit goes to sequence 1\n{log1}");
    let last = *lines(&log1, &["persist"]).iter().rfind(|l| l.contains(" slot=")).unwrap();
    let final_crc = kv(line(&log1, &["params_crc"]), "final").to_string();
    assert_eq!(kv(last, "params_crc"), final_crc, "the last commit is what was persisted");
    let (slot, seq) = (kv(last, "slot").to_string(), kv(last, "seq").to_string());

    // The slot in the flash file, read by its documented layout (header: magic TLWS, version 1,
    // spec hash, sequence, parameter count, weights CRC, header CRC; then the weights).
    let flash = std::fs::read(dir.path().join("tinylstm-flash.bin")).expect("the flash file");
    let n = loaded.params.len();
    let slot_len = (32 + 4 * n).div_ceil(16384) * 16384;
    assert_eq!(flash.len(), 2 * slot_len, "two slots of whole 16 KiB sectors");
    let at = if slot == "A" { 0 } else { slot_len };
    let h = &flash[at..at + 32];
    let word = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
    assert_eq!(&h[..4], b"TLWS");
    assert_eq!(word(12).to_string(), seq);
    assert_eq!(word(16) as usize, n);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    assert_eq!(word(28), crc.checksum(&h[..28]), "header CRC");
    let weights: Vec<f32> = flash[at + 32..at + 32 + 4 * n]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(word(20), crc.checksum(&flash[at + 32..at + 32 + 4 * n]), "weights CRC");
    assert_eq!(format!("{:08x}", params_crc(&weights)), final_crc);
    assert_ne!(weights, loaded.params, "fine-tuning changed the weights");

    // The host's prediction with the committed weights: the default model with them in place.
    let file = ModelFile::parse(&loaded.bytes).unwrap();
    let sections: Vec<Section<'_>> = file.sections().filter(|s| s.tag != TAG_PARAMS).collect();
    let mut buf = vec![0u8; format::encoded_len(&loaded.spec, &sections).unwrap()];
    format::write_into(&loaded.spec, &weights, &sections, &mut buf).unwrap();
    let tuned = dir.path().join("tuned.tlm");
    std::fs::write(&tuned, buf).unwrap();
    let samples_bytes = set_bytes(&firmware_dir().join("data"), "samples");
    let raw = Dataset::parse(&samples_bytes, loaded.model().shape()).unwrap();
    let csv = dir.path().join("samples.csv");
    write_csv(&csv, &raw);
    let host = cli_predict(&tuned, &csv);

    // Boot 2, same flash: the slot's weights, and outputs equal to the host's for them.
    let (code, log2) = run_in(dir.path(), &elf);
    println!("{log2}");
    assert_eq!(code, 0, "boot 2 exit code\n{log2}");
    let l = line(&log2, &["weights", "active=slot"]);
    assert_eq!((kv(l, "slot"), kv(l, "seq")), (slot.as_str(), seq.as_str()), "{l}");
    assert_eq!(kv(l, "params_crc"), final_crc, "{l}");
    let out_lines = lines(&log2, &["probs"]);
    assert_eq!(out_lines.len(), raw.len(), "one probs line per sample\n{log2}");
    for (i, l) in out_lines.iter().enumerate() {
        let device: Vec<u32> = kv(l, "bits").split(',').map(hex_bits).collect();
        assert_eq!(device, host[i], "sample {i}: boot 2 differs from the committed weights");
    }
    assert_ne!(
        lines(&log1, &["probs", "sample=0"]),
        lines(&log2, &["probs", "sample=0"]),
        "boot 2 runs on other weights than boot 1"
    );
    // The field-set scores boot 2 starts from are those boot 1 ended with, bit for bit.
    for set in ["train", "valid"] {
        assert_eq!(
            logged_score(&log2, "deployed", "clean", set, "initial"),
            logged_score(&log1, "deployed", "clean", set, "final"),
            "{set}"
        );
    }
    // Boot 2's commits continue the sequence in the other slot.
    let next = (seq.parse::<u32>().unwrap() + 1).to_string();
    let l = line(&log2, &["persist", format!("seq={next}").as_str()]);
    assert_ne!(kv(l, "slot"), slot, "slots alternate");
}

#[test]
fn power_cuts_during_a_commit_leave_the_old_or_the_new_weights() {
    if !prerequisites("power_cuts_during_a_commit_leave_the_old_or_the_new_weights") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let n = Loaded::load(&model).params.len();
    let elf = build(&model, None, &["persist"], dir.path())
        .unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    // One commit: erase the slot's sectors, program the weights, then the 32-byte header.
    let erase = (32 + 4 * n).div_ceil(16384) * 16384;
    let total = erase + 4 * n + 32;
    let header = total - 32;
    // Cuts at every sector boundary of the write (the erase's, and where the weights cross
    // into the next sector), the header's first and last byte, a completed commit, and a seeded
    // sample of other offsets. device/tests/slots.rs sweeps every byte on a simulated flash;
    // each QEMU boot costs about a second and a half, so here a sample.
    let mut cuts: Vec<usize> = (0..=erase).step_by(16384).collect();
    cuts.extend((1..erase / 16384).map(|k| erase + 16384 * k - 32));
    cuts.extend([header, total - 1, total]);
    let mut x = 0x9E37_79B9_u32;
    for _ in 0..6 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        cuts.push(x as usize % total);
    }
    let (code, log) = run_in(dir.path(), &elf);
    assert_eq!(code, 0, "first boot\n{log}");
    let mut live = kv(line(&log, &["params_crc"]), "final").to_string();
    for cut in cuts {
        std::fs::write(dir.path().join("tinylstm-flash-cut"), cut.to_string()).unwrap();
        let (code, log) = run_in(dir.path(), &elf);
        assert_eq!(code, 0, "boot with a cut after {cut} bytes\n{log}");
        let l = line(&log, &["weights", "active=slot"]);
        assert_eq!(kv(l, "params_crc"), live, "boot runs on what survived\n{l}");
        // The first commit of this boot: its parameters before and after.
        let l = line(&log, &["result", "mode=head", "data=clean", "decision=commit"]);
        let (old, new) = kv(l, "params_crc").split_once("->").unwrap();
        assert_eq!(old, live);
        let cut_line = lines(&log, &["power", "cut"]);
        assert_eq!(cut_line.len(), 1, "one power cut per boot\n{log}");
        // Before the header's last byte the old weights stay; a completed commit is the new.
        live = if cut < total { old } else { new }.to_string();
        println!("cut after {cut} of {total} bytes: next boot expects params_crc={live}");
    }
    let (code, log) = run_in(dir.path(), &elf);
    assert_eq!(code, 0, "last boot\n{log}");
    let l = line(&log, &["weights", "active=slot"]);
    assert_eq!(kv(l, "params_crc"), live, "{l}");
    assert_eq!(lines(&log, &["done"]).len(), 1, "the device runs to the end\n{log}");
}

#[test]
fn largest_text_model_links_for_the_f407() {
    if !prerequisites_for("largest_text_model_links_for_the_f407", &[&F407], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = Case {
        name: "f407-largest-text",
        csv: Some(big_vocab_csv),
        train: F407_LARGEST_TEXT,
        device_data: true,
        board: &F407,
    };
    let (model, data) = prepare_case(&case, dir.path());
    let spec = ModelFile::parse(&std::fs::read(&model).unwrap()).unwrap().spec();
    assert_eq!(spec.input, tinylstm::InputKind::Tokens { vocab: 3000, embed: 64 });
    // The linker refuses an image larger than the board's flash (memory.x: 1024K) or RAM.
    let elf = build_for(&F407, &model, data.as_deref(), &[], dir.path())
        .unwrap_or_else(|e| panic!("the F407 firmware with a 3000 x 64 text model:\n{e}"));
    println!("linked for the STM32F407: {}", elf.display());
}

#[test]
fn largest_int8_text_model_links_for_the_f407() {
    if !prerequisites_for("largest_int8_text_model_links_for_the_f407", &[&F407], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (train, name) in [(F407_INT8_ROWS, "f407-fits-int8"), (F407_INT8_OVER, "f407-over-int8")] {
        let rows: usize = train[1].parse().unwrap();
        let case = Case { name, csv: Some(huge_vocab_csv), train, device_data: true, board: &F407 };
        let (model, data) = prepare_case(&case, dir.path());
        let file = std::fs::read(&model).unwrap();
        let file = ModelFile::parse(&file).unwrap();
        assert_eq!(file.spec().input, tinylstm::InputKind::Tokens { vocab: rows, embed: 64 });
        assert!(file.embedding_int8().is_some());
        let built = build_for(&F407, &model, data.as_deref(), &[], dir.path());
        if train == F407_INT8_ROWS {
            let elf = built.unwrap_or_else(|e| panic!("the F407 firmware, {rows} x 64 int8:\n{e}"));
            println!("linked for the STM32F407 ({rows} x 64 int8): {}", elf.display());
        } else {
            // The linker refuses an image larger than the board's flash (memory.x: 1024K).
            let e = built.expect_err("the next size must overflow the F407's flash");
            assert!(e.contains("FLASH") && e.contains("overflow"), "{e}");
        }
    }
}

#[test]
fn a_failing_flash_keeps_the_device_running_on_the_last_good_weights() {
    if !prerequisites("a_failing_flash_keeps_the_device_running_on_the_last_good_weights") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let elf = build(&model, None, &["persist"], dir.path())
        .unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let (code, log1) = run_in(dir.path(), &elf);
    assert_eq!(code, 0, "first boot\n{log1}");
    let good = kv(line(&log1, &["params_crc"]), "final").to_string();
    let flash_before = std::fs::read(dir.path().join("tinylstm-flash.bin")).unwrap();
    // Boot 2: every erase and program fails (src/persist.rs, `tinylstm-flash-fail`).
    std::fs::write(dir.path().join("tinylstm-flash-fail"), b"").unwrap();
    let (code, log2) = run_in(dir.path(), &elf);
    println!("{log2}");
    assert_eq!(code, 0, "the device keeps running with a failing flash\n{log2}");
    let l = line(&log2, &["weights", "active=slot"]);
    assert_eq!(kv(l, "params_crc"), good, "{l}");
    // The commit's error (`SlotError::Flash(Other)`), logged, and no commit succeeded.
    let failed = lines(&log2, &["persist", "failed,", "running"]);
    assert!(!failed.is_empty(), "a commit reports the flash error\n{log2}");
    assert!(failed.iter().all(|l| l.contains("Flash(Other)")), "{failed:?}");
    let committed = lines(&log2, &["persist"]);
    assert!(committed.iter().all(|l| !l.contains(" slot=")), "no commit succeeded\n{log2}");
    assert_eq!(lines(&log2, &["done"]).len(), 1, "the device runs to the end\n{log2}");
    assert_eq!(
        std::fs::read(dir.path().join("tinylstm-flash.bin")).unwrap(),
        flash_before,
        "a failing flash is left as it was"
    );
    // Boot 3, the flash working again: the last good weights, those of boot 1.
    let (code, log3) = run_in(dir.path(), &elf);
    assert_eq!(code, 0, "third boot\n{log3}");
    let l = line(&log3, &["weights", "active=slot"]);
    assert_eq!(kv(l, "params_crc"), good, "{l}");
}

// ---------------------------------------------------------------------------------------------
// A model loaded at run time (feature `runtime-model`)
// ---------------------------------------------------------------------------------------------

/// The inference-only M4F build with the runtime model slot (an `embedded-alloc` heap of
/// 256 KiB).
const M4F_RUNTIME: Board = Board {
    target: "thumbv7em-none-eabihf",
    machine: "mps2-an386",
    features: Some("board-mps2-an386,runtime-model"),
};

/// The heap of the QEMU boards' `runtime-model` build (firmware/build.rs, `HEAPS`).
const RUNTIME_HEAP: usize = 256 * 1024;

/// Builds the `runtime-model` firmware with the default model built in; returns the ELF, the
/// built-in model and the samples as a CSV for `tinylstm predict`.
fn runtime_firmware(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let model = default_model(dir);
    let elf = build_for(&M4F_RUNTIME, &model, None, &[], dir)
        .unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let loaded = Loaded::load(&model);
    let samples = set_bytes(&firmware_dir().join("data"), "samples");
    let raw = Dataset::parse(&samples, loaded.model().shape()).unwrap();
    let csv = dir.join("samples.csv");
    write_csv(&csv, &raw);
    (elf, model, csv)
}

/// The `serve model=<which>` lines' output bits, one entry per sample.
fn served(log: &str, which: &str) -> Vec<Vec<u32>> {
    let found = lines(log, &["serve", &format!("model={which}")]);
    found.iter().map(|l| kv(l, "bits").split(',').map(hex_bits).collect()).collect()
}

/// Boots with `file` offered as the runtime model (none: no file) in a fresh folder.
fn boot_offering(elf: &Path, file: Option<&[u8]>, name: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(bytes) = file {
        std::fs::write(dir.path().join("tinylstm-model.tlm"), bytes).unwrap();
    }
    let (code, log) = run_in(dir.path(), elf);
    println!("--- {name}\n{log}");
    assert_eq!(code, 0, "{name}: the device keeps running\n{log}");
    (code, log)
}

#[test]
fn a_model_loaded_at_run_time_replaces_the_built_in_one() {
    if !prerequisites("a_model_loaded_at_run_time_replaces_the_built_in_one") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (elf, model, csv) = runtime_firmware(dir.path());
    let built_in = cli_predict(&model, &csv);

    // No model offered: the built-in one serves.
    let (_, log) = boot_offering(&elf, None, "nothing offered");
    assert_eq!(lines(&log, &["none", "offered;"]).len(), 1, "{log}");
    assert_eq!(served(&log, "built-in"), built_in);

    // Another model for the same input (3 channels, T = 40), trained by the CLI: 24 units.
    common::binary();
    let out = dir.path().join("runtime");
    common::ok(&[
        "train",
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "2",
        "--quiet",
        "--synthetic-samples",
        "200",
        "--epochs",
        "2",
        "--units",
        "24",
        "--seed",
        "13",
    ]);
    let new_model = out.join("model.tlm");
    let bytes = std::fs::read(&new_model).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    assert_eq!(file.spec().top_units(), 24);
    let host = cli_predict(&new_model, &csv);
    assert_ne!(host, built_in, "the two models give other outputs");

    let (_, log) = boot_offering(&elf, Some(&bytes), "good model");
    let l = line(&log, &["runtime", "model", "accepted:"]);
    assert_eq!(hex_bits(kv(l, "crc")), file.crc(), "{l}");
    assert_eq!(kv(l, "params"), file.param_count().to_string(), "{l}");
    assert_eq!(kv(l, "steps"), "40", "{l}");
    // The block it took from the heap: the file (rounded up to a word, one more word to align
    // its parameters), the forward work, hidden state, outputs and 3 means and 3 deviations,
    // each from the core's size functions.
    let spec = file.spec();
    let words = bytes.len().div_ceil(4)
        + 1
        + spec.forward_work_len(1, 1).unwrap()
        + spec.top_units()
        + spec.outputs
        + 2 * 3;
    assert_eq!(kv(l, "needed"), (4 * words).to_string(), "{l}");
    assert!(served(&log, "built-in").is_empty(), "{log}");
    assert_eq!(served(&log, "runtime"), host, "the new model's outputs equal tinylstm predict's");
}

#[test]
fn a_corrupt_or_mismatched_model_is_refused_and_the_old_one_serves() {
    if !prerequisites("a_corrupt_or_mismatched_model_is_refused_and_the_old_one_serves") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (elf, model, csv) = runtime_firmware(dir.path());
    let built_in = cli_predict(&model, &csv);
    let good = std::fs::read(&model).unwrap();

    let mut crc = good.clone();
    let at = crc.len() - 1000; // inside the parameters
    crc[at] ^= 0x01;
    let mut magic = good.clone();
    magic[0] = b'X';
    // A model for 2 channels (the device reads 3).
    let loaded = Loaded::load(&model);
    let other = tinylstm::Spec::channels(2).lstm(8).dense(4, Head::Softmax);
    let two = Loaded { spec: other, params: vec![0.01; other.param_count()], ..loaded };
    let shape_file = dir.path().join("two-channels.tlm");
    write_model(&shape_file, &two, &[]);
    let shape = std::fs::read(&shape_file).unwrap();

    for (name, bytes, reason, says) in [
        ("flipped bit", &crc, "format", "corrupted model file: stored CRC-32 is"),
        ("bad magic", &magic, "format", "does not start with \"TINYLSTM\""),
        (
            "two channels",
            &shape,
            "shape",
            "the device's input is 40 steps of 3 words (vocabulary 0), the model's 40 steps of 2 words",
        ),
    ] {
        let (_, log) = boot_offering(&elf, Some(bytes), name);
        let l = line(&log, &["runtime", "model", "refused"]);
        assert_eq!(kv(l, "reason").trim_end_matches(':'), reason, "{name}: {l}");
        assert!(l.contains(says), "{name}: the reason must say {says:?}\n{l}");
        assert!(l.contains("serving with the built-in model (heap used 0)"), "{name}: {l}");
        assert!(lines(&log, &["accepted:"]).is_empty(), "{name}");
        assert_eq!(served(&log, "built-in"), built_in, "{name}: the old model serves");
    }
}

#[test]
fn a_model_too_big_for_the_heap_is_refused_with_the_bytes_needed() {
    if !prerequisites("a_model_too_big_for_the_heap_is_refused_with_the_bytes_needed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (elf, model, csv) = runtime_firmware(dir.path());
    let built_in = cli_predict(&model, &csv);
    // The built-in model's input (3 channels, T = 40) with 256 units: about 1 MiB of weights.
    let loaded = Loaded::load(&model);
    let spec = tinylstm::Spec::channels(3).lstm(256).dense(4, Head::Softmax);
    let big = Loaded { spec, params: vec![0.01; spec.param_count()], ..loaded };
    let path = dir.path().join("big.tlm");
    let norm = {
        let mut s = 3u32.to_le_bytes().to_vec();
        for v in big.means.iter().chain(&big.stds) {
            s.extend_from_slice(&v.to_le_bytes());
        }
        s
    };
    write_model(&path, &big, &[Section { tag: TAG_NORMALIZATION, bytes: &norm }]);
    let bytes = std::fs::read(&path).unwrap();
    // The block the device must ask for, from the core's size functions (as above).
    let needed = 4
        * (bytes.len().div_ceil(4)
            + 1
            + spec.forward_work_len(1, 1).unwrap()
            + spec.top_units()
            + spec.outputs
            + 2 * 3);
    assert!(needed > RUNTIME_HEAP);

    let (_, log) = boot_offering(&elf, Some(&bytes), "too big");
    let heap = line(&log, &["runtime", "model:", "heap"]);
    assert!(heap.contains(&format!("heap {RUNTIME_HEAP} bytes")), "{heap}");
    // The free heap: the heap less the bytes lost to aligning its start.
    let free: usize =
        heap.split('(').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(free <= RUNTIME_HEAP && free + 8 > RUNTIME_HEAP, "{heap}");
    let l = line(&log, &["runtime", "model", "refused"]);
    assert_eq!(kv(l, "reason").trim_end_matches(':'), "too-big", "{l}");
    let want = format!("the model needs {needed} bytes of heap and the heap has {free}");
    assert!(l.contains(&want), "{want}\n{l}");
    assert_eq!(served(&log, "built-in"), built_in, "the old model serves");
}

/// QEMU mps2-an386 with head-only fine-tuning persisted (no full fine-tuning): the build the
/// STM32F407 uses with its own flash (`flash-slots`), here on the host-file flash.
const M4F_HEAD_PERSIST: Board = Board {
    target: "thumbv7em-none-eabihf",
    machine: "mps2-an386",
    features: Some("board-mps2-an386,head-finetune,persist"),
};

#[test]
fn head_only_updates_persist_without_full_fine_tuning() {
    if !prerequisites("head_only_updates_persist_without_full_fine_tuning") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model(dir.path());
    let loaded = Loaded::load(&model);
    let elf = build_for(&M4F_HEAD_PERSIST, &model, None, &[], dir.path())
        .unwrap_or_else(|e| panic!("firmware build:\n{e}"));
    let (code, log1) = run_in(dir.path(), &elf);
    println!("{log1}");
    assert_eq!(code, 0, "boot 1\n{log1}");
    assert!(lines(&log1, &["mode=full"]).is_empty(), "no full fine-tuning in this build");
    let l = line(&log1, &["weights", "active=flashed"]);
    assert_eq!(hex_bits(kv(l, "params_crc")), params_crc(&loaded.params));
    // The committed head, merged into the parameters, goes to slot A.
    let (_, after) = check_result(&log1, "head", "clean", "commit", "validation-improved");
    let l = line(&log1, &["persist", "seq=1"]);
    assert_eq!((kv(l, "slot"), hex_bits(kv(l, "params_crc"))), ("A", after), "{l}");
    let (code, log2) = run_in(dir.path(), &elf);
    println!("{log2}");
    assert_eq!(code, 0, "boot 2\n{log2}");
    let l = line(&log2, &["weights", "active=slot"]);
    assert_eq!((kv(l, "slot"), hex_bits(kv(l, "params_crc"))), ("A", after), "{l}");
    for set in ["train", "valid"] {
        assert_eq!(
            logged_score(&log2, "deployed", "clean", set, "initial"),
            logged_score(&log1, "deployed", "clean", set, "final"),
            "{set}"
        );
    }
}
