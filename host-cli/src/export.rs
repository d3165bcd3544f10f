//! Firmware and inspection exports (Rust source, C header, JSON) and Keras weight import/export (npz).
//!
//! Every export takes a [`Spec`] and its flat parameter buffer (Keras `model.get_weights()`
//! order, see [`tinylstm::spec`]) and first checks both ([`check`]): an invalid spec or a buffer
//! of the wrong length is an [`ExportError`], never a panic.
//!
//! # Rust source ([`rust_source`])
//!
//! A file for firmware, usable with `include!("model.rs")` or as a module (`mod model;`), so it
//! has only `//` comments at the top (an inner `//!` doc comment would break `include!`). It
//! defines `SPEC` (built with the core's `const fn` builders, so it type-checks against the
//! `tinylstm` crate the firmware uses), `PARAM_COUNT`, one `*_OFFSET` constant per tensor
//! (`EMBEDDING_OFFSET`, `LSTM0_KERNEL_OFFSET`, `LSTM0_RECURRENT_KERNEL_OFFSET`,
//! `LSTM0_BIAS_OFFSET`, …, `DENSE_KERNEL_OFFSET`, `DENSE_BIAS_OFFSET`, documented with the
//! tensor's Keras name and shape) and `static PARAMS: [f32; PARAM_COUNT]`. Compile-time
//! assertions tie every constant to the core's `const fn`s (`SPEC.is_valid()`,
//! `SPEC.param_count() == PARAM_COUNT`, each offset), so a file generated for another core
//! version fails to build instead of running with a shifted layout.
//!
//! Values are written bit-exactly: a finite value as its shortest round-trip decimal (Rust's
//! `{:?}` for `f32`, which rustc parses back to the same bits, `-0.0` included); a NaN or an
//! infinity as `f32::from_bits(0x…)` (a `const fn`), keeping its exact bits.
//!
//! # C header ([`c_header`])
//!
//! Include guard `TINYLSTM_<NAME>_H`, `#include <stdint.h>`, `#define`s prefixed with the
//! upper-cased name: input kind and head (with the `.tlm` codes: input `0` tokens / `1`
//! channels, head `0` sigmoid / `1` softmax / `2` linear, each also as a named constant),
//! `VOCAB`, `EMBEDDING_DIM`, `CHANNELS`, `INPUT_WIDTH`, `LAYERS`, `UNITS_<l>`, `OUTPUTS`,
//! `PARAM_COUNT` and the same per-tensor `*_OFFSET`s as the Rust file; then
//! `static const uint32_t <name>_units[]` and `static const float <name>_params[]`.
//!
//! Every value is a C99 hexadecimal floating constant with an `f` suffix (`0x1.8p+1f`,
//! subnormals as `0x0.000002p-126f`, `-0x0p+0f` for −0), generated from the `f32` bits: the
//! constant is exactly representable, so every conforming compiler yields the same bits.
//! **NaN and infinity are rejected** ([`ExportError::NonFinite`], naming the tensor and index):
//! C has no constant expression for a NaN with a given payload, `NAN`/`INFINITY` would need
//! `<math.h>` and lose the payload, and a model with such weights is broken anyway (the Rust
//! and npz exports still keep them bit-exactly, for inspection).
//!
//! The array is `static const`, so each translation unit that includes the header gets its own
//! copy: include it from one `.c` file.
//!
//! # JSON ([`json`])
//!
//! For people and scripts: the spec's fields, the tensor table (Keras name, shape, offset) and
//! every tensor under its Keras weight name ([`keras_weight_names`]: `embedding/embeddings`,
//! `lstm/lstm_cell/kernel`, `lstm_1/lstm_cell/kernel`, …, `dense/kernel`, `dense/bias`, the names
//! a fresh Keras session gives) as nested arrays in Keras shapes. Numbers are the shortest
//! decimals that read back (as float32) to the same value; NaN and infinities, which JSON
//! cannot hold, are the strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
//!
//! # Keras npz ([`write_keras_npz`], [`read_keras_npz`])
//!
//! The file `numpy.savez(path, *model.get_weights())` writes, and Keras reads back with
//! `model.set_weights([f[k] for k in sorted(f.files, key=…)])`: a zip archive whose members
//! `arr_0.npy`, `arr_1.npy`, … are NumPy `.npy` files (format 1.0, dtype `<f4`, C order) in
//! `get_weights()` order, kernels and the embedding 2-D, biases 1-D. The writer stores its
//! members uncompressed, as `numpy.savez` does, and writes each `.npy` byte for byte as NumPy 2
//! does (same header text and padding).
//!
//! The reader accepts:
//!
//! * members stored (`numpy.savez`) or deflated (`numpy.savez_compressed`);
//! * dtypes `<f4` (as is), `>f4` (byte-swapped), `<f8` and `>f8` (rounded to the nearest
//!   float32, as `astype(np.float32)` does; a finite value beyond the float32 range is an
//!   error). Every other dtype is rejected;
//! * `fortran_order: True`: the data is column-major, and 2-D arrays are transposed back into
//!   Keras's row-major layout;
//! * `.npy` format versions 1.0, 2.0 and 3.0.
//!
//! **Member order.** Members are matched to the spec's tensors in *natural* order of their
//! names — runs of digits compare as numbers, so `arr_2.npy` comes before `arr_10.npy` — and the
//! `i`-th member in that order must be the `i`-th tensor of `get_weights()`. This is the order
//! of `numpy.savez(path, *weights)` (`arr_0` …), and it also accepts keyword names
//! (`numpy.savez(path, w00=…, w01=…)` or `w0 … w12`) when their sorted order is the weights'
//! order. When every member is named `arr_<N>.npy`, the names must be exactly `arr_0.npy` to
//! `arr_<n-1>.npy`. The number of members must equal the spec's tensor count.
//!
//! Each array's dtype, order and shape are checked against the tensor it stands for; every
//! error names the file, the member and what was expected and found, e.g.
//! `w.npz: arr_3.npy: shape (64,) but the spec needs (256,) for lstm/lstm_cell/bias`.
//!
//! **Hostile input.** Reading never panics, and every allocation is bounded both by the spec
//! (the model being loaded) and by the zip entry's declared size: a `.npy` header longer than
//! [`MAX_NPY_HEADER`] bytes (or than the entry) is rejected before it is read; an array's shape
//! must equal the spec's, and the entry's declared size must be exactly its header plus
//! `shape × item size`, before room for its values is reserved; the data is then read through
//! a 64 KiB buffer. A member whose data ends early, holds more than it declares, or fails its
//! CRC-32 check is an error. The zip crate itself bounds its central-directory allocation by
//! the file's size.
//!
//! The `.npy` header (a Python dict literal with the keys `descr`, `fortran_order` and
//! `shape`) is parsed here rather than with a crate such as `npyz`: only four dtypes and three
//! keys matter, the parser is about a hundred lines with a nesting limit, it keeps every size
//! check under this module's control (bounded by the spec), and the errors can name the Keras
//! tensor the member stands for. The zip container itself is read and written with the `zip`
//! crate (version 7.3, the newest whose minimum Rust version fits the workspace's 1.85).
//!
//! # Atomic writes ([`write_atomic`], [`write_atomic_with`])
//!
//! Every file written here goes to a temporary file in the destination's directory, is flushed
//! and `fsync`ed, then renamed over the destination, so a crash leaves either the old file or
//! the complete new one, never a half-written file. The whole CLI uses these helpers.
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tinylstm::spec::{Head, InputKind, Spec, Tensor, TensorKind};
use tinylstm::SpecError;

/// Longest `.npy` header accepted by [`read_keras_npz`], in bytes (NumPy writes about 128).
pub const MAX_NPY_HEADER: usize = 65_536;

/// Longest export name accepted by [`rust_source`] and [`c_header`].
pub const MAX_NAME_LEN: usize = 64;

/// Bytes read from an `.npy` member at a time.
const CHUNK: usize = 1 << 16;

/// Deepest nesting of tuples, lists and dicts accepted in a `.npy` header.
const MAX_HEADER_DEPTH: usize = 8;

/// NumPy pads the header so that the first dimension can grow to this many digits in place.
const NPY_GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// The first bytes of every `.npy` file.
const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An error from an export or from reading a Keras npz file.
///
/// Messages name the file, the npz member (`arr_3.npy`) and the Keras tensor involved, and say
/// what was expected and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The spec is invalid.
    #[error("invalid model spec: {0}")]
    Spec(#[from] SpecError),
    /// The parameter buffer's length is not the spec's parameter count.
    #[error("the parameter buffer has {actual} values but the spec needs {expected}")]
    ParamsLength {
        /// `spec.param_count()`.
        expected: usize,
        /// Length of the buffer given.
        actual: usize,
    },
    /// The export name cannot be used in identifiers.
    #[error("invalid export name {name:?}: {reason} (use `sanitize_name`)")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A NaN or infinite parameter, which a C header cannot hold exactly.
    #[error(
        "{tensor}[{index}] (parameter {flat}) is {value}: a C header cannot hold NaN or infinity \
         exactly (the model's weights are broken; the Rust and npz exports keep them bit-exactly)"
    )]
    NonFinite {
        /// Keras name of the tensor.
        tensor: String,
        /// Index inside the tensor (row-major).
        index: usize,
        /// Index in the flat parameter buffer.
        flat: usize,
        /// The value.
        value: f32,
    },
    /// An I/O error on a file (opening it for reading, or writing it).
    #[error("{}: cannot {op}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done: `"open"` (to read) or `"write"`.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a readable zip archive (not an npz, or cut short).
    #[error("{}: not a readable .npz (zip) file; not a zip, or cut short: {message}", path.display())]
    NotZip {
        /// The file.
        path: PathBuf,
        /// What the zip reader said.
        message: String,
    },
    /// The npz holds the wrong set of arrays (missing, extra, or misnamed `arr_N` members).
    #[error("{}: {found} arrays, but the spec needs {expected}: {detail}", path.display())]
    Arrays {
        /// The file.
        path: PathBuf,
        /// The spec's tensor count.
        expected: usize,
        /// Members in the file.
        found: usize,
        /// Which arrays are missing or unexpected.
        detail: String,
    },
    /// A member cannot be read from the zip (unsupported compression, encryption, bad CRC,
    /// corrupt deflate data, I/O error).
    #[error("{}: {member}: cannot be read: {message}", path.display())]
    Member {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// What went wrong.
        message: String,
    },
    /// A member is not a valid `.npy` array (magic, version, header).
    #[error("{}: {member}: not a valid .npy array: {message}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// What is wrong.
        message: String,
    },
    /// A member's dtype is not a float32/float64 one.
    #[error(
        "{}: {member}: dtype {found} is not supported for {tensor} (expected '<f4', float32; \
         '>f4', '<f8' and '>f8' are converted)",
        path.display()
    )]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// Keras name of the tensor the member stands for.
        tensor: String,
        /// The `descr` found, as written in the header.
        found: String,
    },
    /// A member's shape is not the tensor's Keras shape.
    #[error("{}: {member}: shape {found} but the spec needs {expected} for {tensor}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// Keras name of the tensor the member stands for.
        tensor: String,
        /// The shape found, as a Python tuple.
        found: String,
        /// The shape needed, as a Python tuple.
        expected: String,
    },
    /// A member's data is shorter than its shape needs.
    #[error("{}: {member}: truncated: {message}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// How much was needed and found.
        message: String,
    },
    /// A member has bytes after its array data.
    #[error("{}: {member}: {message}", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// How much more there is.
        message: String,
    },
    /// A float64 value that does not fit float32.
    #[error(
        "{}: {member}: value {value:e} at index {index} of {tensor} is beyond the float32 range",
        path.display()
    )]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// The member.
        member: String,
        /// Keras name of the tensor.
        tensor: String,
        /// Index inside the tensor, in the file's element order.
        index: usize,
        /// The value.
        value: f64,
    },
}

// ---------------------------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------------------------

/// Writes `bytes` to `path` atomically: readers see the old file or the complete new one,
/// never a partial file, even if the process or the machine crashes.
///
/// Same as [`write_atomic_with`] with a closure that writes `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes a file atomically through a closure: creates a temporary file
/// `.<file name>.<random>.tmp` in the destination's directory (the same file system, so the
/// final rename is atomic), lets `write` fill it (the `File` is `Write + Seek`; wrap it in a
/// `BufWriter` for many small writes), `fsync`s it, renames it over `path`, and on Unix
/// `fsync`s the directory so the rename itself survives a power loss (best effort: some file
/// systems refuse to sync a directory).
///
/// * If `write` or any step fails, the temporary file is removed and `path` is untouched; the
///   error is returned as is (callers add the path to the message, as [`ExportError::Io`] does).
/// * Permissions: an existing `path` keeps its permission bits (best effort); a new file gets
///   `0o666` minus the umask on Unix, as `File::create` would (a plain temporary file would be
///   `0o600`).
/// * A symbolic link at `path` is replaced by the new file; its target is not written.
/// * A `path` without a directory part is written in the current directory.
pub fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<T> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name to write to")
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Keep the temporary name well under NAME_MAX (255 bytes) for long destination names.
    let stem: String = file_name.to_string_lossy().chars().take(64).collect();
    let prefix = format!(".{stem}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_file() {
            // Best effort: failing to copy the mode must not fail the write.
            let _ = tmp.as_file().set_permissions(meta.permissions());
        }
    }
    let value = write(tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Names, shapes and checks shared by the exports
// ---------------------------------------------------------------------------------------------

/// Checks that `spec` is valid and that `params` has `spec.param_count()` values.
pub fn check(spec: &Spec, params: &[f32]) -> Result<(), ExportError> {
    spec.validate()?;
    if params.len() != spec.param_count() {
        return Err(ExportError::ParamsLength {
            expected: spec.param_count(),
            actual: params.len(),
        });
    }
    Ok(())
}

/// The Keras weight name of a tensor, as a fresh Keras session names the seed model's layers:
/// `embedding/embeddings`, `lstm/lstm_cell/kernel`, `lstm/lstm_cell/recurrent_kernel`,
/// `lstm/lstm_cell/bias`, `lstm_1/lstm_cell/kernel`, …, `dense/kernel`, `dense/bias`.
pub fn keras_weight_name(tensor: &Tensor) -> String {
    let lstm = |l: usize| if l == 0 { "lstm".to_string() } else { format!("lstm_{l}") };
    match tensor.kind {
        TensorKind::Embedding => "embedding/embeddings".to_string(),
        TensorKind::Kernel => format!("{}/lstm_cell/kernel", lstm(tensor.layer)),
        TensorKind::RecurrentKernel => format!("{}/lstm_cell/recurrent_kernel", lstm(tensor.layer)),
        TensorKind::Bias => format!("{}/lstm_cell/bias", lstm(tensor.layer)),
        TensorKind::DenseKernel => "dense/kernel".to_string(),
        TensorKind::DenseBias => "dense/bias".to_string(),
    }
}

/// The Keras weight names of a valid spec's tensors, in `get_weights()` order (empty for an
/// invalid spec).
pub fn keras_weight_names(spec: &Spec) -> Vec<String> {
    if !spec.is_valid() {
        return Vec::new();
    }
    spec.tensors().map(|t| keras_weight_name(&t)).collect()
}

/// The Keras shape of a tensor: `[rows, cols]` for the embedding and the kernels, `[len]` for
/// the biases.
pub fn keras_shape(tensor: &Tensor) -> Vec<usize> {
    match tensor.kind {
        TensorKind::Bias | TensorKind::DenseBias => vec![tensor.len()],
        _ => vec![tensor.rows, tensor.cols],
    }
}

/// Turns any text (a file stem, a model name) into a valid export name: ASCII letters, digits
/// and `_`, starting with a letter, at most [`MAX_NAME_LEN`] characters (`"gesture-v2.1"` →
/// `"gesture_v2_1"`, `"2024 model"` → `"model_2024_model"`, `""` → `"model"`).
pub fn sanitize_name(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    let s = s.trim_matches('_');
    let mut s = if s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.to_string()
    } else if s.is_empty() {
        "model".to_string()
    } else {
        format!("model_{s}")
    };
    s.truncate(MAX_NAME_LEN);
    s.trim_end_matches('_').to_string()
}

fn check_name(name: &str) -> Result<(), ExportError> {
    let bad = |reason| Err(ExportError::InvalidName { name: name.to_string(), reason });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return bad("it must start with an ASCII letter");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return bad("only ASCII letters, digits and '_' are allowed");
    }
    Ok(())
}

/// Constant-name stem of a tensor: `EMBEDDING`, `LSTM0_KERNEL`, `LSTM0_RECURRENT_KERNEL`,
/// `LSTM0_BIAS`, `DENSE_KERNEL`, `DENSE_BIAS`.
fn const_stem(t: &Tensor) -> String {
    match t.kind {
        TensorKind::Embedding => "EMBEDDING".to_string(),
        TensorKind::Kernel => format!("LSTM{}_KERNEL", t.layer),
        TensorKind::RecurrentKernel => format!("LSTM{}_RECURRENT_KERNEL", t.layer),
        TensorKind::Bias => format!("LSTM{}_BIAS", t.layer),
        TensorKind::DenseKernel => "DENSE_KERNEL".to_string(),
        TensorKind::DenseBias => "DENSE_BIAS".to_string(),
    }
}

/// The core `const fn` giving a tensor's offset, as Rust source (`SPEC.kernel_offset(0)`).
fn offset_fn(t: &Tensor) -> String {
    match t.kind {
        TensorKind::Embedding => "SPEC.embedding_offset()".to_string(),
        TensorKind::Kernel => format!("SPEC.kernel_offset({})", t.layer),
        TensorKind::RecurrentKernel => format!("SPEC.recurrent_offset({})", t.layer),
        TensorKind::Bias => format!("SPEC.bias_offset({})", t.layer),
        TensorKind::DenseKernel => "SPEC.dense_kernel_offset()".to_string(),
        TensorKind::DenseBias => "SPEC.dense_bias_offset()".to_string(),
    }
}

/// What a tensor is, in words, for doc comments.
fn tensor_role(t: &Tensor) -> String {
    match t.kind {
        TensorKind::Embedding => "Embedding, vocabulary x embedding size".to_string(),
        TensorKind::Kernel => {
            format!("LSTM layer {} input kernel, gates i, f, c, o", t.layer)
        }
        TensorKind::RecurrentKernel => {
            format!("LSTM layer {} recurrent kernel, gates i, f, c, o", t.layer)
        }
        TensorKind::Bias => format!("LSTM layer {} bias, gates i, f, c, o", t.layer),
        TensorKind::DenseKernel => "Dense head kernel".to_string(),
        TensorKind::DenseBias => "Dense head bias".to_string(),
    }
}

/// A shape as in Rust/C docs: `[8][64]`, `[64]`.
fn bracket_shape(shape: &[usize]) -> String {
    shape.iter().map(|d| format!("[{d}]")).collect()
}

/// A shape as a Python tuple: `()`, `(64,)`, `(8, 64)`.
fn tuple_shape<T: std::fmt::Display>(shape: &[T]) -> String {
    match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

fn head_name(head: Head) -> &'static str {
    match head {
        Head::Sigmoid => "sigmoid",
        Head::Softmax => "softmax",
        Head::Linear => "linear",
    }
}

/// One line describing a valid spec, ASCII only.
fn describe(spec: &Spec) -> String {
    let mut s = match spec.input {
        InputKind::Tokens { vocab, embed } => {
            format!("token ids (vocabulary {vocab}) -> Embedding({embed})")
        }
        InputKind::Channels(c) => format!("{c} channels"),
    };
    for l in 0..spec.layers {
        let seq = if l + 1 < spec.layers { ", return_sequences" } else { "" };
        let _ = write!(s, " -> LSTM({}{seq})", spec.units[l]);
    }
    let _ = write!(s, " -> Dense({}, {})", spec.outputs, head_name(spec.head));
    s
}

// ---------------------------------------------------------------------------------------------
// Rust source
// ---------------------------------------------------------------------------------------------

/// The `tinylstm::Spec` builder expression of a valid spec.
fn spec_expr(spec: &Spec) -> String {
    let mut s = match spec.input {
        InputKind::Tokens { vocab, embed } => format!("tinylstm::Spec::tokens({vocab}, {embed})"),
        InputKind::Channels(c) => format!("tinylstm::Spec::channels({c})"),
    };
    for l in 0..spec.layers {
        let _ = write!(s, ".lstm({})", spec.units[l]);
    }
    let head = match spec.head {
        Head::Sigmoid => "Sigmoid",
        Head::Softmax => "Softmax",
        Head::Linear => "Linear",
    };
    let _ = write!(s, ".dense({}, tinylstm::Head::{head})", spec.outputs);
    s
}

/// A Rust expression of type `f32` with exactly the bits of `x`.
fn rust_f32(x: f32) -> String {
    if x.is_finite() {
        // `{:?}` is the shortest decimal that parses back to the same f32 (always with a `.` or
        // an exponent, so it is a float literal; `-0.0` keeps its sign).
        format!("{x:?}")
    } else {
        format!("f32::from_bits(0x{:08x})", x.to_bits())
    }
}

/// A Rust source file for firmware: `SPEC`, `PARAM_COUNT`, per-tensor `*_OFFSET` constants and
/// `static PARAMS: [f32; PARAM_COUNT]`, every value bit-exact (see the [module docs](self)).
///
/// `name` (a model name for the header comment) must be an identifier: ASCII letters, digits
/// and `_`, starting with a letter, at most [`MAX_NAME_LEN`] characters ([`sanitize_name`]
/// makes one).
pub fn rust_source(spec: &Spec, params: &[f32], name: &str) -> Result<String, ExportError> {
    check(spec, params)?;
    check_name(name)?;
    let n = spec.param_count();
    let mut s = String::with_capacity(1024 + n * 14);
    let _ = writeln!(
        s,
        "// Model `{name}`: generated by tinylstm-cli (tinylstm_cli::export::rust_source). \
         Do not edit."
    );
    let _ = writeln!(s, "//");
    let _ = writeln!(s, "// {}", describe(spec));
    let _ = writeln!(
        s,
        "// {n} parameters, one flat buffer in Keras `model.get_weights()` order and layouts \
         (see `tinylstm::spec`)."
    );
    let _ = writeln!(
        s,
        "// Every value is bit-exact: shortest round-trip decimals, non-finite values as \
         `f32::from_bits`."
    );
    let _ = writeln!(s, "// Use with `include!(\"<this file>\");` or as a module.");
    let _ = writeln!(s);
    let _ = writeln!(s, "/// The model's architecture.");
    let _ = writeln!(s, "pub const SPEC: tinylstm::Spec = {};", spec_expr(spec));
    let _ = writeln!(s);
    let _ = writeln!(s, "/// Number of parameters, `SPEC.param_count()`.");
    let _ = writeln!(s, "pub const PARAM_COUNT: usize = {n};");
    let _ = writeln!(s);
    let _ = writeln!(s, "const _: () = assert!(SPEC.is_valid());");
    let _ = writeln!(s, "const _: () = assert!(SPEC.param_count() == PARAM_COUNT);");
    for t in spec.tensors() {
        let shape = keras_shape(&t);
        let stem = const_stem(&t);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "/// Offset in [`PARAMS`] of `{}`, shape `{}` ({}, {} values).",
            keras_weight_name(&t),
            bracket_shape(&shape),
            tensor_role(&t),
            t.len()
        );
        let _ = writeln!(s, "pub const {stem}_OFFSET: usize = {};", t.offset);
        let _ = writeln!(s, "const _: () = assert!({} == {stem}_OFFSET);", offset_fn(&t));
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "/// The parameters in Keras `get_weights()` order; tensor `X` starts at `X_OFFSET`."
    );
    let _ = writeln!(s, "#[rustfmt::skip]");
    let _ = writeln!(
        s,
        "#[allow(clippy::approx_constant, clippy::excessive_precision, clippy::unreadable_literal)]"
    );
    let _ = writeln!(s, "pub static PARAMS: [f32; PARAM_COUNT] = [");
    for t in spec.tensors() {
        let _ = writeln!(
            s,
            "    // {} {} at {}",
            keras_weight_name(&t),
            bracket_shape(&keras_shape(&t)),
            t.offset
        );
        for line in params[t.range()].chunks(8) {
            s.push_str("    ");
            for (i, &x) in line.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(&rust_f32(x));
                s.push(',');
            }
            s.push('\n');
        }
    }
    let _ = writeln!(s, "];");
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// C header
// ---------------------------------------------------------------------------------------------

/// The C99 hexadecimal floating constant (with `f` suffix) of a finite `f32`, exact by
/// construction; `None` for NaN and infinities.
///
/// Normal numbers are `±0x1.<23 bits>p±e`, subnormals `±0x0.<23 bits>p-126`, zeros `±0x0p+0`;
/// trailing zero hex digits are dropped.
pub fn c_hex_float(x: f32) -> Option<String> {
    if !x.is_finite() {
        return None;
    }
    let bits = x.to_bits();
    let sign = if bits >> 31 == 1 { "-" } else { "" };
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    let (lead, e) = match (exp, mant) {
        (0, 0) => return Some(format!("{sign}0x0p+0f")),
        (0, _) => (0, -126),
        _ => (1, exp - 127),
    };
    // 23 fraction bits, shifted to 24 = six hex digits.
    let digits = format!("{:06x}", mant << 1);
    let digits = digits.trim_end_matches('0');
    let frac = if digits.is_empty() { String::new() } else { format!(".{digits}") };
    Some(format!("{sign}0x{lead}{frac}p{e:+}f"))
}

/// A C header with the spec as `#define`s and `static const float <name>_params[]`, every value
/// an exact hexadecimal constant; NaN and infinities are rejected (see the
/// [module docs](self)).
///
/// `name` prefixes every identifier (`<name>_params`, `<NAME>_PARAM_COUNT`, …) and must be an
/// identifier: ASCII letters, digits and `_`, starting with a letter, at most [`MAX_NAME_LEN`]
/// characters ([`sanitize_name`] makes one).
pub fn c_header(spec: &Spec, params: &[f32], name: &str) -> Result<String, ExportError> {
    check(spec, params)?;
    check_name(name)?;
    // Reject non-finite values first, naming the tensor and index.
    for t in spec.tensors() {
        if let Some((index, &value)) =
            params[t.range()].iter().enumerate().find(|(_, x)| !x.is_finite())
        {
            return Err(ExportError::NonFinite {
                tensor: keras_weight_name(&t),
                index,
                flat: t.offset + index,
                value,
            });
        }
    }
    let up = name.to_ascii_uppercase();
    let n = spec.param_count();
    let mut s = String::with_capacity(2048 + n * 18);
    let _ = writeln!(
        s,
        "/* Model `{name}`: generated by tinylstm-cli (tinylstm_cli::export::c_header). Do not edit."
    );
    let _ = writeln!(s, " *");
    let _ = writeln!(s, " * {}", describe(spec));
    let _ = writeln!(
        s,
        " * {n} parameters, one flat float array in Keras model.get_weights() order and layouts"
    );
    let _ = writeln!(
        s,
        " * (row-major; LSTM gates i, f, c, o). Every value is an exact C99 hexadecimal constant,"
    );
    let _ = writeln!(
        s,
        " * so the compiled floats have exactly the exported bits. The arrays are static const:"
    );
    let _ = writeln!(s, " * include this header from one .c file only.");
    let _ = writeln!(s, " */");
    let _ = writeln!(s, "#ifndef TINYLSTM_{up}_H");
    let _ = writeln!(s, "#define TINYLSTM_{up}_H");
    let _ = writeln!(s);
    let _ = writeln!(s, "#include <stdint.h>");
    let _ = writeln!(s);
    let _ = writeln!(s, "/* Input kind (codes as in the .tlm file). */");
    let _ = writeln!(s, "#define {up}_INPUT_TOKENS 0");
    let _ = writeln!(s, "#define {up}_INPUT_CHANNELS 1");
    let (kind, vocab, embed, channels) = match spec.input {
        InputKind::Tokens { vocab, embed } => ("TOKENS", vocab, embed, 0),
        InputKind::Channels(c) => ("CHANNELS", 0, 0, c),
    };
    let _ = writeln!(s, "#define {up}_INPUT_KIND {up}_INPUT_{kind}");
    let _ = writeln!(s, "#define {up}_VOCAB {vocab} /* vocabulary size V (0 for channel input) */");
    let _ = writeln!(
        s,
        "#define {up}_EMBEDDING_DIM {embed} /* embedding size E (0 for channel input) */"
    );
    let _ =
        writeln!(s, "#define {up}_CHANNELS {channels} /* values per step C (0 for token input) */");
    let _ = writeln!(
        s,
        "#define {up}_INPUT_WIDTH {} /* input width of LSTM layer 0: E or C */",
        spec.input_width()
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "/* LSTM layers (all but the last return sequences). */");
    let _ = writeln!(s, "#define {up}_LAYERS {}", spec.layers);
    for l in 0..spec.layers {
        let _ = writeln!(s, "#define {up}_UNITS_{l} {}", spec.units[l]);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "/* Dense head (codes as in the .tlm file). */");
    let _ = writeln!(s, "#define {up}_HEAD_SIGMOID 0");
    let _ = writeln!(s, "#define {up}_HEAD_SOFTMAX 1");
    let _ = writeln!(s, "#define {up}_HEAD_LINEAR 2");
    let _ =
        writeln!(s, "#define {up}_HEAD {up}_HEAD_{}", head_name(spec.head).to_ascii_uppercase());
    let _ = writeln!(s, "#define {up}_OUTPUTS {}", spec.outputs);
    let _ = writeln!(s);
    let _ = writeln!(s, "/* Parameters and the offset of each tensor in {name}_params. */");
    let _ = writeln!(s, "#define {up}_PARAM_COUNT {n}");
    for t in spec.tensors() {
        let _ = writeln!(
            s,
            "#define {up}_{}_OFFSET {} /* {} {}, {} values */",
            const_stem(&t),
            t.offset,
            keras_weight_name(&t),
            bracket_shape(&keras_shape(&t)),
            t.len()
        );
    }
    let _ = writeln!(s);
    let units: Vec<String> = (0..spec.layers).map(|l| spec.units[l].to_string()).collect();
    let _ =
        writeln!(s, "static const uint32_t {name}_units[{up}_LAYERS] = {{{}}};", units.join(", "));
    let _ = writeln!(s);
    let _ = writeln!(s, "static const float {name}_params[{up}_PARAM_COUNT] = {{");
    for t in spec.tensors() {
        let _ = writeln!(
            s,
            "    /* {} {} at {} */",
            keras_weight_name(&t),
            bracket_shape(&keras_shape(&t)),
            t.offset
        );
        for line in params[t.range()].chunks(6) {
            s.push_str("    ");
            for (i, &x) in line.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                // Finite: checked above.
                s.push_str(&c_hex_float(x).unwrap_or_default());
                s.push(',');
            }
            s.push('\n');
        }
    }
    let _ = writeln!(s, "}};");
    let _ = writeln!(s);
    let _ = writeln!(s, "#endif /* TINYLSTM_{up}_H */");
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// A JSON value for an `f32`: the shortest decimal that reads back to it, or a string for
/// NaN and infinities.
fn json_f32(x: f32) -> Value {
    if x.is_finite() {
        let v = format!("{x:?}").parse::<f64>().unwrap_or(f64::from(x));
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    } else if x.is_nan() {
        Value::from("NaN")
    } else if x > 0.0 {
        Value::from("Infinity")
    } else {
        Value::from("-Infinity")
    }
}

fn spec_json(spec: &Spec) -> Value {
    let mut m = Map::new();
    match spec.input {
        InputKind::Tokens { vocab, embed } => {
            m.insert("input".into(), "tokens".into());
            m.insert("vocab".into(), vocab.into());
            m.insert("embedding_dim".into(), embed.into());
        }
        InputKind::Channels(c) => {
            m.insert("input".into(), "channels".into());
            m.insert("channels".into(), c.into());
        }
    }
    let units: Vec<Value> = spec.units.iter().take(spec.layers).map(|&u| u.into()).collect();
    m.insert("layers".into(), spec.layers.into());
    m.insert("units".into(), Value::Array(units));
    m.insert("outputs".into(), spec.outputs.into());
    m.insert("head".into(), head_name(spec.head).into());
    if spec.is_valid() {
        m.insert("param_count".into(), spec.param_count().into());
    }
    Value::Object(m)
}

/// A JSON document for inspection:
///
/// ```text
/// { "format": "tinylstm-weights", "version": 1,
///   "spec": { "input": "tokens", "vocab": 50, "embedding_dim": 8, "layers": 2,
///             "units": [16, 8], "outputs": 1, "head": "sigmoid", "param_count": 2977 },
///   "tensors": [ { "name": "embedding/embeddings", "shape": [50, 8], "offset": 0 }, … ],
///   "weights": { "embedding/embeddings": [[…], …], "lstm/lstm_cell/kernel": [[…]], … },
///   "extra": … }
/// ```
///
/// `tensors` lists the tensors in `get_weights()` order; `weights` holds each as nested arrays
/// in its Keras shape, under its Keras name; `extra` is `extra` when given (metrics, training
/// settings…). Numbers are shortest round-trip decimals, non-finite values the strings `"NaN"`,
/// `"Infinity"`, `"-Infinity"`.
///
/// This never fails: for an invalid spec or a buffer of the wrong length it returns the spec's
/// fields and an `"error"` message instead of `tensors` and `weights` ([`check`] tells the same
/// as an `Err`).
pub fn json(spec: &Spec, params: &[f32], extra: Option<Value>) -> Value {
    let mut root = Map::new();
    root.insert("format".into(), "tinylstm-weights".into());
    root.insert("version".into(), 1.into());
    root.insert("spec".into(), spec_json(spec));
    match check(spec, params) {
        Err(e) => {
            root.insert("error".into(), e.to_string().into());
        }
        Ok(()) => {
            let mut tensors = Vec::new();
            let mut weights = Map::new();
            for t in spec.tensors() {
                let name = keras_weight_name(&t);
                let shape = keras_shape(&t);
                let data = &params[t.range()];
                let value = if shape.len() == 1 {
                    Value::Array(data.iter().map(|&x| json_f32(x)).collect())
                } else {
                    Value::Array(
                        data.chunks(t.cols)
                            .map(|row| Value::Array(row.iter().map(|&x| json_f32(x)).collect()))
                            .collect(),
                    )
                };
                let mut entry = Map::new();
                entry.insert("name".into(), name.clone().into());
                entry.insert("shape".into(), shape.into());
                entry.insert("offset".into(), t.offset.into());
                tensors.push(Value::Object(entry));
                weights.insert(name, value);
            }
            root.insert("tensors".into(), Value::Array(tensors));
            root.insert("weights".into(), Value::Object(weights));
        }
    }
    if let Some(extra) = extra {
        root.insert("extra".into(), extra);
    }
    Value::Object(root)
}

// ---------------------------------------------------------------------------------------------
// Keras npz: writer
// ---------------------------------------------------------------------------------------------

/// The `.npy` 1.0 header of a C-order `<f4` array, byte for byte as NumPy 2 writes it: the dict
/// literal, spare spaces for the first dimension to grow, space padding to a multiple of 64
/// bytes and a newline.
fn npy_header(shape: &[usize]) -> Vec<u8> {
    let mut dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", tuple_shape(shape));
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(NPY_GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // magic (6) + version (2) + length (2) + dict + padding + '\n' ≡ 0 (mod 64)
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    dict.push_str(&" ".repeat(pad));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    // At most a few hundred bytes: fits the u16 of format 1.0.
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn zip_to_io(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// Writes the parameters as `numpy.savez(path, *model.get_weights())` would: a zip of
/// uncompressed members `arr_0.npy`, `arr_1.npy`, … in `get_weights()` order, each a `.npy` 1.0
/// file with dtype `<f4`, C order and the tensor's Keras shape. Written atomically
/// ([`write_atomic_with`]).
///
/// In Keras: `f = np.load(path); model.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])`.
pub fn write_keras_npz(path: &Path, spec: &Spec, params: &[f32]) -> Result<(), ExportError> {
    check(spec, params)?;
    let io_err = |source| ExportError::Io { path: path.to_path_buf(), op: "write", source };
    write_atomic_with(path, |file| {
        let mut zip = zip::ZipWriter::new(BufWriter::new(file));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut buf = Vec::with_capacity(CHUNK);
        for (i, t) in spec.tensors().enumerate() {
            zip.start_file(format!("arr_{i}.npy"), options).map_err(zip_to_io)?;
            zip.write_all(&npy_header(&keras_shape(&t)))?;
            for chunk in params[t.range()].chunks(CHUNK / 4) {
                buf.clear();
                for &x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                zip.write_all(&buf)?;
            }
        }
        let w = zip.finish().map_err(zip_to_io)?;
        w.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
    .map_err(io_err)
}

// ---------------------------------------------------------------------------------------------
// Keras npz: reader
// ---------------------------------------------------------------------------------------------

/// Compares names in natural order: runs of ASCII digits compare as numbers (`arr_2` <
/// `arr_10`), everything else bytewise; ties (`a01` vs `a1`) are broken bytewise.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        if x[i].is_ascii_digit() && y[j].is_ascii_digit() {
            let si = i;
            while i < x.len() && x[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < y.len() && y[j].is_ascii_digit() {
                j += 1;
            }
            let dx = trim_zeros(&x[si..i]);
            let dy = trim_zeros(&y[sj..j]);
            let o = dx.len().cmp(&dy.len()).then_with(|| dx.cmp(dy));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if x[i] != y[j] {
                return x[i].cmp(&y[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| a.cmp(b))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let k = d.iter().position(|&c| c != b'0').unwrap_or(d.len());
    &d[k..]
}

/// `N` when `name` is `arr_N.npy` with `N` in canonical form (no leading zeros).
fn arr_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("arr_")?.strip_suffix(".npy")?;
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// A value in a `.npy` header (a small subset of Python literals).
#[derive(Debug, Clone, PartialEq)]
enum Py {
    Str(String),
    Bool(bool),
    Int(u64),
    None,
    Tuple(Vec<Py>),
    List(Vec<Py>),
    Dict(Vec<(Py, Py)>),
}

impl std::fmt::Display for Py {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Py::Str(s) => write!(f, "'{s}'"),
            Py::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Py::Int(i) => write!(f, "{i}"),
            Py::None => f.write_str("None"),
            Py::Tuple(v) => f.write_str(&tuple_shape(v)),
            Py::List(v) => {
                let parts: Vec<String> = v.iter().map(|p| p.to_string()).collect();
                write!(f, "[{}]", parts.join(", "))
            }
            Py::Dict(v) => {
                let parts: Vec<String> = v.iter().map(|(k, x)| format!("{k}: {x}")).collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
        }
    }
}

/// Recursive-descent parser for the header literal, with a nesting limit.
struct PyParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl PyParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected '{}' at byte {} of the header, found '{}'",
                c as char,
                self.i,
                x.escape_ascii()
            )),
            None => Err(format!("expected '{}' but the header ends", c as char)),
        }
    }

    /// Items up to `close`, separated by commas, with an optional trailing comma. Returns the
    /// items and whether a comma was seen (to tell `(8)` from `(8,)`).
    fn items(&mut self, close: u8, depth: usize) -> Result<(Vec<Py>, bool), String> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok((items, comma));
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    comma = true;
                }
                _ => {
                    self.expect(close)?;
                    return Ok((items, comma));
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Py, String> {
        if depth > MAX_HEADER_DEPTH {
            return Err("the header is nested too deeply".to_string());
        }
        let Some(c) = self.peek() else {
            return Err("the header ends where a value was expected".to_string());
        };
        match c {
            b'{' => {
                self.i += 1;
                let mut pairs = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(Py::Dict(pairs));
                    }
                    let k = self.value(depth + 1)?;
                    self.expect(b':')?;
                    let v = self.value(depth + 1)?;
                    pairs.push((k, v));
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        _ => {
                            self.expect(b'}')?;
                            return Ok(Py::Dict(pairs));
                        }
                    }
                }
            }
            b'(' => {
                self.i += 1;
                let (mut items, comma) = self.items(b')', depth)?;
                if items.len() == 1 && !comma {
                    // `(x)` is just `x` in Python.
                    return Ok(items.remove(0));
                }
                Ok(Py::Tuple(items))
            }
            b'[' => {
                self.i += 1;
                Ok(Py::List(self.items(b']', depth)?.0))
            }
            b'\'' | b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err("unterminated string in the header".to_string()),
                        Some(&x) if x == c => {
                            self.i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let Some(&e) = self.s.get(self.i + 1) else {
                                return Err("unterminated string in the header".to_string());
                            };
                            out.push(e);
                            self.i += 2;
                        }
                        Some(&x) => {
                            out.push(x);
                            self.i += 1;
                        }
                    }
                }
                Ok(Py::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            b'0'..=b'9' => {
                let start = self.i;
                let mut v: u64 = 0;
                while let Some(&d) = self.s.get(self.i).filter(|d| d.is_ascii_digit()) {
                    v = v
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(d - b'0')))
                        .ok_or_else(|| {
                            let end = self.s[start..]
                                .iter()
                                .position(|x| !x.is_ascii_digit())
                                .map_or(self.s.len(), |p| start + p);
                            format!(
                                "the integer {} does not fit 64 bits",
                                String::from_utf8_lossy(&self.s[start..end])
                            )
                        })?;
                    self.i += 1;
                }
                // Python 2 long suffix, seen in old .npy files.
                if matches!(self.s.get(self.i), Some(b'L' | b'l')) {
                    self.i += 1;
                }
                Ok(Py::Int(v))
            }
            _ => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_') {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Py::Bool(true)),
                    b"False" => Ok(Py::Bool(false)),
                    b"None" => Ok(Py::None),
                    _ => {
                        let end = (start + 12).min(self.s.len());
                        Err(format!(
                            "unexpected '{}' at byte {start} of the header",
                            self.s[start..end].trim_ascii_end().escape_ascii()
                        ))
                    }
                }
            }
        }
    }
}

/// The parsed `.npy` header.
#[derive(Debug)]
struct NpyHeader {
    descr: Py,
    fortran_order: bool,
    shape: Vec<u64>,
}

fn parse_npy_dict(text: &[u8]) -> Result<NpyHeader, String> {
    let mut p = PyParser { s: text, i: 0 };
    let value = p.value(0)?;
    p.skip_ws();
    if p.i != text.len() {
        return Err(format!("unexpected bytes after the header dict at byte {}", p.i));
    }
    let Py::Dict(pairs) = value else {
        return Err(format!("the header is {value}, not a dict"));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in pairs {
        let slot = match &k {
            Py::Str(s) if s == "descr" => &mut descr,
            Py::Str(s) if s == "fortran_order" => &mut fortran,
            Py::Str(s) if s == "shape" => &mut shape,
            _ => {
                return Err(format!(
                    "unexpected key {k} in the header (only 'descr', 'fortran_order' and \
                     'shape' are allowed)"
                ))
            }
        };
        if slot.is_some() {
            return Err(format!("key {k} appears twice in the header"));
        }
        *slot = Some(v);
    }
    let descr = descr.ok_or("the header has no 'descr'")?;
    let fortran_order = match fortran.ok_or("the header has no 'fortran_order'")? {
        Py::Bool(b) => b,
        other => return Err(format!("'fortran_order' is {other}, not True or False")),
    };
    let shape = match shape.ok_or("the header has no 'shape'")? {
        Py::Tuple(items) | Py::List(items) => items
            .iter()
            .map(|d| match d {
                Py::Int(n) => Ok(*n),
                other => Err(format!("'shape' holds {other}, not an integer")),
            })
            .collect::<Result<Vec<u64>, String>>()?,
        other => return Err(format!("'shape' is {other}, not a tuple")),
    };
    Ok(NpyHeader { descr, fortran_order, shape })
}

/// The float dtypes the reader converts.
#[derive(Clone, Copy, Debug)]
enum Dtype {
    F4 { big: bool },
    F8 { big: bool },
}

impl Dtype {
    fn parse(descr: &Py) -> Option<Dtype> {
        match descr {
            Py::Str(s) => match s.as_str() {
                "<f4" => Some(Dtype::F4 { big: false }),
                ">f4" => Some(Dtype::F4 { big: true }),
                "<f8" => Some(Dtype::F8 { big: false }),
                ">f8" => Some(Dtype::F8 { big: true }),
                _ => None,
            },
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F4 { .. } => 4,
            Dtype::F8 { .. } => 8,
        }
    }
}

/// Context for the errors of one member.
struct MemberCtx<'a> {
    path: &'a Path,
    member: &'a str,
    tensor: &'a str,
}

impl MemberCtx<'_> {
    fn npy(&self, message: impl Into<String>) -> ExportError {
        ExportError::Npy {
            path: self.path.to_path_buf(),
            member: self.member.to_string(),
            message: message.into(),
        }
    }

    fn truncated(&self, message: impl Into<String>) -> ExportError {
        ExportError::Truncated {
            path: self.path.to_path_buf(),
            member: self.member.to_string(),
            message: message.into(),
        }
    }

    fn unreadable(&self, message: impl Into<String>) -> ExportError {
        ExportError::Member {
            path: self.path.to_path_buf(),
            member: self.member.to_string(),
            message: message.into(),
        }
    }

    /// A read error: an unexpected end is a truncation, anything else (CRC, deflate) is a
    /// damaged member.
    fn read_error(&self, e: io::Error, what: &str) -> ExportError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.truncated(format!("the member ends inside {what}"))
        } else {
            self.unreadable(format!("{e} (while reading {what})"))
        }
    }
}

/// Reads one `.npy` member holding tensor `t`, appending its values (row-major) to `out`.
fn read_member(
    reader: &mut impl Read,
    declared: u64,
    ctx: &MemberCtx<'_>,
    t: &Tensor,
    out: &mut Vec<f32>,
) -> Result<(), ExportError> {
    let mut pre = [0u8; 8];
    reader.read_exact(&mut pre).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ctx.npy("too short for a .npy header")
        } else {
            ctx.read_error(e, "the .npy header")
        }
    })?;
    if &pre[..6] != NPY_MAGIC {
        return Err(ctx.npy(format!(
            "bad magic '{}' (a .npy file starts with '\\x93NUMPY')",
            pre[..6].escape_ascii()
        )));
    }
    let (major, minor) = (pre[6], pre[7]);
    let header_len = match (major, minor) {
        (1, 0) => {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b).map_err(|e| ctx.read_error(e, "the .npy header"))?;
            usize::from(u16::from_le_bytes(b))
        }
        (2, 0) | (3, 0) => {
            let mut b = [0u8; 4];
            reader.read_exact(&mut b).map_err(|e| ctx.read_error(e, "the .npy header"))?;
            usize::try_from(u32::from_le_bytes(b)).unwrap_or(usize::MAX)
        }
        _ => {
            return Err(ctx.npy(format!(
                "unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are read)"
            )))
        }
    };
    let prefix_len = if major == 1 { 10 } else { 12 };
    if header_len > MAX_NPY_HEADER {
        return Err(ctx.npy(format!(
            "the header declares {header_len} bytes, more than the {MAX_NPY_HEADER} accepted"
        )));
    }
    if (prefix_len + header_len) as u64 > declared {
        return Err(ctx.truncated(format!(
            "the member is {declared} bytes but its .npy header alone needs {}",
            prefix_len + header_len
        )));
    }
    let mut header = vec![0u8; header_len];
    reader.read_exact(&mut header).map_err(|e| ctx.read_error(e, "the .npy header"))?;
    if major < 3 && !header.is_ascii() {
        return Err(ctx.npy("the header is not ASCII"));
    }
    let h = parse_npy_dict(&header).map_err(|m| ctx.npy(m))?;

    let dtype = Dtype::parse(&h.descr).ok_or_else(|| ExportError::Dtype {
        path: ctx.path.to_path_buf(),
        member: ctx.member.to_string(),
        tensor: ctx.tensor.to_string(),
        found: h.descr.to_string(),
    })?;
    let expected: Vec<u64> = keras_shape(t).iter().map(|&d| d as u64).collect();
    if h.shape != expected {
        return Err(ExportError::Shape {
            path: ctx.path.to_path_buf(),
            member: ctx.member.to_string(),
            tensor: ctx.tensor.to_string(),
            found: tuple_shape(&h.shape),
            expected: tuple_shape(&expected),
        });
    }
    // The shape equals the spec's, so these sizes are bounded by the (valid) spec.
    let count = t.len();
    let data_len = (count as u64) * dtype.size() as u64;
    let needed = (prefix_len + header_len) as u64 + data_len;
    match declared.cmp(&needed) {
        Ordering::Less => {
            return Err(ctx.truncated(format!(
                "the member is {declared} bytes but a {} {} array with its header needs {needed}",
                tuple_shape(&h.shape),
                h.descr
            )))
        }
        Ordering::Greater => {
            return Err(ExportError::TrailingData {
                path: ctx.path.to_path_buf(),
                member: ctx.member.to_string(),
                message: format!(
                    "the member is {declared} bytes, {} more than a {} {} array with its header \
                     takes ({needed})",
                    declared - needed,
                    tuple_shape(&h.shape),
                    h.descr
                ),
            })
        }
        Ordering::Equal => {}
    }

    // Fortran-order 2-D data is read into a scratch tensor and transposed.
    let transpose = h.fortran_order && expected.len() == 2;
    let mut scratch = Vec::new();
    let dest: &mut Vec<f32> = if transpose { &mut scratch } else { out };
    // Bounded twice: `count` is the spec's tensor size, and the entry declared at least this
    // much data (checked above).
    dest.reserve_exact(count);
    let mut buf = vec![0u8; CHUNK];
    let mut remaining = count * dtype.size();
    let mut index = 0usize;
    while remaining > 0 {
        let n = remaining.min(CHUNK);
        reader.read_exact(&mut buf[..n]).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ctx.truncated(format!(
                    "the data ends before the {data_len} bytes of the {} {} array",
                    tuple_shape(&h.shape),
                    h.descr
                ))
            } else {
                ctx.read_error(e, "the array data")
            }
        })?;
        match dtype {
            Dtype::F4 { big } => {
                for b in buf[..n].chunks_exact(4) {
                    let b = [b[0], b[1], b[2], b[3]];
                    dest.push(if big { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) });
                }
            }
            Dtype::F8 { big } => {
                for b in buf[..n].chunks_exact(8) {
                    let b = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                    let v = if big { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) };
                    let x = v as f32;
                    if v.is_finite() && !x.is_finite() {
                        return Err(ExportError::OutOfRange {
                            path: ctx.path.to_path_buf(),
                            member: ctx.member.to_string(),
                            tensor: ctx.tensor.to_string(),
                            index,
                            value: v,
                        });
                    }
                    dest.push(x);
                    index += 1;
                }
            }
        }
        remaining -= n;
    }
    // Read to the end: the zip reader checks the CRC there, and a deflated member could hold
    // more than it declared.
    let mut probe = [0u8; 1];
    match reader.read(&mut probe) {
        Ok(0) => {}
        Ok(_) => {
            return Err(ExportError::TrailingData {
                path: ctx.path.to_path_buf(),
                member: ctx.member.to_string(),
                message: format!(
                    "more bytes than declared after the data of the {} {} array",
                    tuple_shape(&h.shape),
                    h.descr
                ),
            })
        }
        Err(e) => return Err(ctx.read_error(e, "the end of the member")),
    }
    if transpose {
        // File: column-major [cols][rows]; Keras: row-major [rows][cols].
        let (rows, cols) = (t.rows, t.cols);
        out.reserve_exact(count);
        for r in 0..rows {
            for c in 0..cols {
                out.push(scratch[c * rows + r]);
            }
        }
    }
    Ok(())
}

/// Reads Keras weights saved with `numpy.savez(path, *model.get_weights())` (or
/// `numpy.savez_compressed`) into a flat parameter buffer for `spec`.
///
/// Members are taken in natural order of their names and matched to the spec's tensors in
/// `get_weights()` order; dtypes `<f4`, `>f4`, `<f8` and `>f8` and Fortran order are accepted;
/// shapes must be the Keras shapes. See the [module docs](self) for the rules and the bounds on
/// memory. Never panics; every error names the file, the member and what was expected.
pub fn read_keras_npz(path: &Path, spec: &Spec) -> Result<Vec<f32>, ExportError> {
    spec.validate()?;
    let file = File::open(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        op: "open",
        source,
    })?;
    read_keras_npz_from(BufReader::new(file), path, spec)
}

/// [`read_keras_npz`] on an npz held in memory; `path` only names it in errors. Same rules,
/// same errors, same bounds on memory (used by the fuzz target and by tests).
pub fn read_keras_npz_bytes(
    bytes: &[u8],
    path: &Path,
    spec: &Spec,
) -> Result<Vec<f32>, ExportError> {
    spec.validate()?;
    read_keras_npz_from(io::Cursor::new(bytes), path, spec)
}

fn read_keras_npz_from(
    reader: impl Read + io::Seek,
    path: &Path,
    spec: &Spec,
) -> Result<Vec<f32>, ExportError> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| ExportError::NotZip { path: path.to_path_buf(), message: e.to_string() })?;
    let mut members: Vec<(usize, String)> = (0..archive.len())
        .map(|i| (i, archive.name_for_index(i).unwrap_or_default().to_string()))
        .collect();
    members.sort_by(|a, b| natural_cmp(&a.1, &b.1));
    let tensors: Vec<Tensor> = spec.tensors().collect();
    check_members(path, &members, &tensors)?;

    let mut params = Vec::new();
    for ((index, member), t) in members.iter().zip(&tensors) {
        let tensor = keras_weight_name(t);
        let ctx = MemberCtx { path, member, tensor: &tensor };
        let mut entry = archive.by_index(*index).map_err(|e| ctx.unreadable(e.to_string()))?;
        if entry.is_dir() {
            return Err(ctx.npy("it is a directory"));
        }
        let declared = entry.size();
        read_member(&mut entry, declared, &ctx, t, &mut params)?;
    }
    if params.len() != spec.param_count() {
        // Unreachable: each member adds exactly its tensor's values.
        return Err(ExportError::ParamsLength {
            expected: spec.param_count(),
            actual: params.len(),
        });
    }
    Ok(params)
}

/// Checks the member count and, for `arr_N.npy` names, that they are `arr_0` … `arr_{n-1}`.
fn check_members(
    path: &Path,
    members: &[(usize, String)],
    tensors: &[Tensor],
) -> Result<(), ExportError> {
    let describe_tensor = |i: usize| {
        let t = &tensors[i];
        format!("{} {}", keras_weight_name(t), tuple_shape(&keras_shape(t)))
    };
    let err = |detail: String| ExportError::Arrays {
        path: path.to_path_buf(),
        expected: tensors.len(),
        found: members.len(),
        detail,
    };
    let arr: Option<Vec<usize>> = members.iter().map(|(_, n)| arr_index(n)).collect();
    if let Some(indices) = arr {
        // positional names: must be exactly arr_0 .. arr_{n-1}
        let missing: Vec<String> = (0..tensors.len())
            .filter(|i| !indices.contains(i))
            .map(|i| format!("arr_{i}.npy ({})", describe_tensor(i)))
            .collect();
        let extra: Vec<String> = indices
            .iter()
            .filter(|&&i| i >= tensors.len())
            .map(|i| format!("arr_{i}.npy"))
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("unexpected {}", extra.join(", ")));
        }
        if !parts.is_empty() {
            return Err(err(parts.join("; ")));
        }
        return Ok(());
    }
    match members.len().cmp(&tensors.len()) {
        Ordering::Equal => Ok(()),
        Ordering::Less => {
            let missing: Vec<String> =
                (members.len()..tensors.len()).map(describe_tensor).collect();
            let found: Vec<&str> = members.iter().map(|(_, n)| n.as_str()).collect();
            Err(err(format!(
                "missing {} (members, in order: {})",
                missing.join(", "),
                if found.is_empty() { "none".to_string() } else { found.join(", ") }
            )))
        }
        Ordering::Greater => {
            let extra: Vec<&str> =
                members[tensors.len()..].iter().map(|(_, n)| n.as_str()).collect();
            Err(err(format!("unexpected {}", extra.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_floats() {
        assert_eq!(c_hex_float(3.0).unwrap(), "0x1.8p+1f");
        assert_eq!(c_hex_float(1.0).unwrap(), "0x1p+0f");
        assert_eq!(c_hex_float(-0.0).unwrap(), "-0x0p+0f");
        assert_eq!(c_hex_float(0.0).unwrap(), "0x0p+0f");
        assert_eq!(c_hex_float(f32::from_bits(1)).unwrap(), "0x0.000002p-126f");
        assert_eq!(c_hex_float(f32::MAX).unwrap(), "0x1.fffffep+127f");
        assert_eq!(c_hex_float(f32::MIN_POSITIVE).unwrap(), "0x1p-126f");
        assert!(c_hex_float(f32::NAN).is_none());
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["arr_10.npy", "arr_2.npy", "arr_1.npy", "arr_0.npy"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["arr_0.npy", "arr_1.npy", "arr_2.npy", "arr_10.npy"]);
        assert_eq!(natural_cmp("w01", "w1"), Ordering::Less);
        assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
        assert_eq!(arr_index("arr_07.npy"), None);
        assert_eq!(arr_index("arr_7.npy"), Some(7));
    }

    #[test]
    fn npy_header_matches_numpy() {
        let h = npy_header(&[8, 64]);
        assert_eq!(h.len(), 128);
        assert_eq!(&h[8..10], &[0x76, 0]);
        assert!(h.ends_with(b"\n"));
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (8, 64), }"));
    }

    #[test]
    fn header_parser() {
        let h = parse_npy_dict(b"{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }  \n")
            .unwrap();
        assert_eq!(h.descr, Py::Str(">f8".into()));
        assert!(h.fortran_order);
        assert_eq!(h.shape, vec![2, 3]);
        assert!(parse_npy_dict(b"{'descr': '<f4', 'fortran_order': False, 'shape': (3L,)}").is_ok());
        for bad in [
            &b"{'descr': '<f4', 'fortran_order': False}"[..],
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (8)}",
            b"((((((((((((((((((((((((",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            b"",
            b"{'descr",
        ] {
            assert!(parse_npy_dict(bad).is_err(), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn names() {
        assert_eq!(sanitize_name("gesture-v2.1"), "gesture_v2_1");
        assert_eq!(sanitize_name("2024 model"), "model_2024_model");
        assert_eq!(sanitize_name(""), "model");
        assert_eq!(sanitize_name("__x__"), "x");
        assert!(check_name(&sanitize_name(&"é".repeat(100))).is_ok());
        assert!(check_name(&sanitize_name(&"a-".repeat(100))).is_ok());
        assert!(check_name("1a").is_err());
        assert!(check_name("a b").is_err());
    }
}
