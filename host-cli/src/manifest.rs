//! Which files of an output folder belong together: `run.json`, the run's manifest.
//!
//! A run's files are each written atomically, but not all at once: a failure between two of
//! them (a full disk while exporting) would leave the new `model.tlm` beside the previous run's
//! `model.h`. So a run [`begin`]s by removing the folder's manifest (and the temporary files a
//! killed run left), and [`publish`]es a new one only after its last file is written, listing
//! every file with its size and FNV-1a-64 hash. While there is no manifest, the folder holds no
//! complete set; [`verify`] tells a reader which files form the published set, and that none
//! was replaced since.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Name of the manifest in an output folder.
pub const MANIFEST: &str = "run.json";

/// One file of a published set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// File name in the folder (or a path relative to it).
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// FNV-1a-64 of the contents, 16 hex digits.
    pub fnv1a64: String,
}

/// The manifest: the run that wrote the set, and its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Identifies the run (process id and start time, seconds since 1970).
    pub run: String,
    /// The files, in the order written.
    pub files: Vec<Entry>,
}

fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Starts a run in `dir`: removes its manifest (the folder no longer holds a published set)
/// and the temporary files (`.<name>.<random>.tmp`) a killed run left. Call with the folder
/// locked ([`crate::lock::FolderLock`]).
pub fn begin(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(MANIFEST)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot remove {}", dir.join(MANIFEST).display()))
        }
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") && entry.path().is_file() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Publishes `files` (paths inside `dir`) as the set of run `run`: writes the manifest
/// atomically, after the files.
pub fn publish(dir: &Path, run: &str, files: &[PathBuf]) -> Result<()> {
    let mut entries = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        let rel = f.strip_prefix(dir).unwrap_or(f);
        entries.push(Entry {
            file: rel.to_string_lossy().into_owned(),
            bytes: bytes.len() as u64,
            fnv1a64: fnv1a64(&bytes),
        });
    }
    let m = Manifest { run: run.to_string(), files: entries };
    crate::files::write_atomic(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&m)?)
        .with_context(|| format!("cannot write {}", dir.join(MANIFEST).display()))
}

/// Reads `dir`'s manifest and checks every listed file is there as published; returns the
/// manifest. Errors when there is none (no complete set) or a file differs.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| {
        anyhow!("{}: {e} (the folder holds no complete set of a run's files)", path.display())
    })?;
    let m: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a manifest", path.display()))?;
    for e in &m.files {
        let f = dir.join(&e.file);
        let bytes = std::fs::read(&f)
            .with_context(|| format!("{}: listed in {}", f.display(), path.display()))?;
        if bytes.len() as u64 != e.bytes || fnv1a64(&bytes) != e.fnv1a64 {
            bail!("{}: not the file run {} published (changed since)", f.display(), m.run);
        }
    }
    Ok(m)
}

/// An identifier for this run: process id and start time.
pub fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("pid {} at {secs}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_values() {
        // FNV-1a 64 test vectors (Fowler, Noll, Vo).
        assert_eq!(fnv1a64(b""), "cbf29ce484222325");
        assert_eq!(fnv1a64(b"a"), "af63dc4c8601ec8c");
        assert_eq!(fnv1a64(b"foobar"), "85944171f73967e8");
    }

    #[test]
    fn publish_verify_begin() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, "one").unwrap();
        std::fs::write(dir.path().join(".a.txt.x1.tmp"), "stale").unwrap();
        publish(dir.path(), "r1", std::slice::from_ref(&a)).unwrap();
        assert_eq!(verify(dir.path()).unwrap().files[0].file, "a.txt");
        std::fs::write(&a, "two").unwrap();
        assert!(verify(dir.path()).unwrap_err().to_string().contains("changed since"));
        begin(dir.path()).unwrap();
        assert!(!dir.path().join(".a.txt.x1.tmp").exists());
        assert!(verify(dir.path()).is_err());
    }
}
