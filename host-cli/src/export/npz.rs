//! Keras weights as `numpy.savez` writes them: the npz writer and reader.

use super::npy_header::{parse_npy_dict, Py};
use super::{check, keras_shape, keras_weight_name, tuple_shape, ExportError};
use crate::files::write_atomic_with;
use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use tinylstm::spec::{Spec, Tensor};
/// Longest `.npy` header accepted by [`read_keras_npz`], in bytes (NumPy writes about 128).
pub const MAX_NPY_HEADER: usize = 65_536;

/// Bytes read from an `.npy` member at a time.
const CHUNK: usize = 1 << 16;

/// NumPy pads the header so that the first dimension can grow to this many digits in place.
const NPY_GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// The first bytes of every `.npy` file.
const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

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
/// shapes must be the Keras shapes. See the module docs for the rules and the bounds on
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
}
