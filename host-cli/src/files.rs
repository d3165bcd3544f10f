//! File writing shared by every output of the CLI.
//!
//! Every file written by the CLI goes to a temporary file in the destination's directory, is flushed
//! and `fsync`ed, then renamed over the destination, so a crash leaves either the old file or
//! the complete new one, never a half-written file. The whole CLI uses these helpers.
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

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
///   error is returned as is (callers add the path to the message, as the export errors do).
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
    // tempfile adds the temporary name to its errors; report the OS error alone (the caller
    // names the destination).
    let mut tmp = builder.tempfile_in(dir).map_err(|e| {
        let text = e.to_string();
        match text.find(" at path \"") {
            Some(i) => io::Error::new(e.kind(), &text[..i]),
            None => e,
        }
    })?;
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
// Outputs that would overwrite inputs
// ---------------------------------------------------------------------------------------------

/// Whether `a` and `b` name the same existing file (same device and inode on Unix, same
/// canonical path elsewhere); `false` when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = (&ma, &mb);
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

/// Refuses inputs that lie in the output folder `dir` (given by `flag`) under a name the run
/// writes there (`names`, or a picture: `.svg`, `.png`); the error names flag, folder and input.
pub fn refuse_inputs_in_folder(
    flag: &str,
    dir: &Path,
    names: &[&str],
    inputs: &[(&str, &Path)],
) -> anyhow::Result<()> {
    for (iflag, input) in inputs {
        let (Some(name), Some(parent)) = (input.file_name(), input.parent()) else { continue };
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        let name = name.to_string_lossy();
        let written =
            names.contains(&name.as_ref()) || name.ends_with(".svg") || name.ends_with(".png");
        if written && input.exists() && same_file(parent, dir) {
            anyhow::bail!(
                "{flag} {} would overwrite the input {iflag} {} (the run writes {name} there); \
                 use another output folder",
                dir.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// Refuses to go on when an output would replace an input: each of `outputs` and `inputs` is
/// `(flag, path)`; the error names both flags and paths
/// (`--out m.tlm would overwrite the input --model m.tlm (the same file); write to another path`).
pub fn refuse_clobber(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> anyhow::Result<()> {
    for (oflag, out) in outputs {
        for (iflag, input) in inputs {
            if same_file(out, input) {
                anyhow::bail!(
                    "{oflag} {} would overwrite the input {iflag} {} (the same file); write to \
                     another path",
                    out.display(),
                    input.display()
                );
            }
        }
    }
    Ok(())
}
