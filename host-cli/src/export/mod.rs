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
//! File writing is [`crate::files`] (every export is written atomically).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::files::write_atomic;
use crate::model_file::ModelBundle;
use anyhow::Context;
use tinylstm::spec::{InputKind, Spec, Tensor, TensorKind};
use tinylstm::SpecError;

mod c;
mod json;
mod npy_header;
mod npz;
mod preprocessing;
mod rust;

pub use crate::keras_names::{keras_shape, keras_weight_name, keras_weight_names};
pub use c::{c_header, c_hex_float};
pub use json::json;
pub use npz::{read_keras_npz, read_keras_npz_bytes, write_keras_npz, MAX_NPY_HEADER};
pub use preprocessing::{c_preprocessing, json_preprocessing, rust_preprocessing};
pub use rust::rust_source;

/// Longest export name accepted by [`rust_source`] and [`c_header`].
pub const MAX_NAME_LEN: usize = 64;

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

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The `.tlm` model file (a copy, re-encoded).
    Tlm,
    /// Rust source: `SPEC` and `PARAMS` consts for firmware.
    Rust,
    /// C header with the spec as #defines and the parameters as a const array.
    C,
    /// JSON with every tensor by its Keras name, for inspection.
    Json,
    /// `numpy.savez(path, *model.get_weights())` layout, to rebuild the model in Keras.
    KerasNpz,
}

/// Writes the firmware exports (`model.rs`, `model.h`, `model.json`) next to a trained model.
pub fn firmware_exports(bundle: &ModelBundle, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (format, file) in
        [(Format::Rust, "model.rs"), (Format::C, "model.h"), (Format::Json, "model.json")]
    {
        let path = dir.join(file);
        write_format(bundle, format, &path, "model")?;
        out.push(path);
    }
    Ok(out)
}

/// Writes `bundle` to `out` in `format`; `name` is the identifier in generated sources.
pub fn write_format(
    bundle: &ModelBundle,
    format: Format,
    out: &Path,
    name: &str,
) -> anyhow::Result<()> {
    let (spec, params) = (&bundle.spec, &bundle.params);
    let bytes = match format {
        Format::Tlm => bundle.to_bytes()?,
        Format::Rust => {
            (rust_source(spec, params, name)? + &rust_preprocessing(bundle)).into_bytes()
        }
        Format::C => {
            let h = c_header(spec, params, name)?;
            let end = h.rfind("#endif").unwrap_or(h.len());
            format!("{}{}\n{}", &h[..end], c_preprocessing(bundle, name), &h[end..]).into_bytes()
        }
        Format::Json => {
            let mut extra = serde_json::to_value(&bundle.meta)?;
            extra["preprocessing"] = json_preprocessing(bundle);
            serde_json::to_vec_pretty(&json(spec, params, Some(extra)))?
        }
        Format::KerasNpz => {
            write_keras_npz(out, spec, params)?;
            return Ok(());
        }
    };
    write_atomic(out, &bytes).with_context(|| format!("cannot write {}", out.display()))
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

pub(crate) fn check_name(name: &str) -> Result<(), ExportError> {
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
pub(crate) fn const_stem(t: &Tensor) -> String {
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
pub(crate) fn offset_fn(t: &Tensor) -> String {
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
pub(crate) fn tensor_role(t: &Tensor) -> String {
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
pub(crate) fn bracket_shape(shape: &[usize]) -> String {
    shape.iter().map(|d| format!("[{d}]")).collect()
}

/// A shape as a Python tuple: `()`, `(64,)`, `(8, 64)`.
pub(crate) fn tuple_shape<T: std::fmt::Display>(shape: &[T]) -> String {
    match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

pub(crate) use crate::summary::head_name;

/// One line describing a valid spec, ASCII only.
pub(crate) fn describe(spec: &Spec) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
