//! Which files of an output folder belong together: `run.json`, the run's manifest.
//!
//! A run's files are each written atomically, but not all at once: a failure between two of
//! them (a full disk while exporting) must not leave the new `model.tlm` beside the previous
//! run's `model.h`. So a run writes its set into a staging folder inside the output folder
//! (`.run-<pid>.tmp`, made by [`begin`], which also removes what killed runs left: their
//! staging folders and temporary files), and [`publish`]es it at the end: it checks every
//! destination can take its file, removes the old manifest, renames the staged files into
//! place (a rename on the same file system needs no space and is atomic), removes the files of
//! the previous set that the new one does not have, and writes the new manifest last, listing
//! every file with its size and FNV-1a-64 hash. A run that fails or is interrupted before
//! publishing leaves the previous set as it was, manifest included ([`abandon`]).
//!
//! While there is no manifest, the folder holds no complete set (only during the renames, or
//! after a crash among them); [`verify`] tells a reader which files form the published set,
//! and that none was replaced since.

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

/// Starts a run in `dir`: removes the staging folders (`.run-*.tmp`) and temporary files
/// (`.<name>.<random>.tmp`) killed runs left, and makes this run's staging folder, which it
/// returns. The published set (and its manifest) stays as it is. Call with the folder locked
/// ([`crate::lock::FolderLock`]): no other live run can own a staging folder then.
pub fn begin(dir: &Path) -> Result<PathBuf> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with('.') && name.ends_with(".tmp")) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() && name.starts_with(".run-") {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if kind.is_file() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let staging = dir.join(format!(".run-{}.tmp", std::process::id()));
    std::fs::create_dir(&staging)
        .with_context(|| format!("cannot create the staging folder {}", staging.display()))?;
    Ok(staging)
}

/// Removes a staging folder of [`begin`] (a run that failed or was interrupted): the
/// published set stays as it was.
pub fn abandon(staging: &Path) {
    let _ = std::fs::remove_dir_all(staging);
}

/// Publishes `files` (paths inside `staging`, this run's staging folder in `dir`) as the set of
/// run `run`, as the module describes; returns their paths in `dir`. Before anything changes,
/// every destination must be free or a regular file (not a folder), or nothing is published
/// and the previous set stays. The staging folder is removed either way.
pub fn publish(dir: &Path, staging: &Path, run: &str, files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let r = publish_in(dir, staging, run, files);
    abandon(staging);
    r
}

fn publish_in(dir: &Path, staging: &Path, run: &str, files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut moves = Vec::new();
    let mut entries = Vec::new();
    for f in files {
        let rel = f.strip_prefix(staging).map_err(|_| {
            anyhow!("internal: {} is not in the staging folder {}", f.display(), staging.display())
        })?;
        let dest = dir.join(rel);
        if let Ok(m) = std::fs::symlink_metadata(&dest) {
            if !m.is_file() {
                bail!(
                    "cannot publish the run's files: {} is in the way (not a regular file); \
                     the previous set in {} is unchanged",
                    dest.display(),
                    dir.display()
                );
            }
        }
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        entries.push(Entry {
            file: rel.to_string_lossy().into_owned(),
            bytes: bytes.len() as u64,
            fnv1a64: fnv1a64(&bytes),
        });
        moves.push((f.clone(), dest));
    }
    // The previous set's files, to remove those the new set does not replace.
    let old: Vec<String> = std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_slice::<Manifest>(&t).ok())
        .map(|m| m.files.into_iter().map(|e| e.file).collect())
        .unwrap_or_default();
    match std::fs::remove_file(dir.join(MANIFEST)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot remove {}", dir.join(MANIFEST).display()))
        }
    }
    for (from, to) in &moves {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::rename(from, to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    }
    for f in old {
        let stale = Path::new(&f);
        let ours = entries.iter().any(|e| Path::new(&e.file) == stale);
        // Only plain relative names of the old manifest, inside `dir`.
        let plain = stale.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !ours && plain {
            let _ = std::fs::remove_file(dir.join(stale));
        }
    }
    let m = Manifest { run: run.to_string(), files: entries };
    crate::files::write_atomic(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&m)?)
        .with_context(|| format!("cannot write {}", dir.join(MANIFEST).display()))?;
    Ok(moves.into_iter().map(|(_, to)| to).collect())
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
        let d = dir.path();
        std::fs::write(d.join(".a.txt.x1.tmp"), "stale").unwrap();
        std::fs::create_dir(d.join(".run-1.tmp")).unwrap();
        std::fs::write(d.join(".run-1.tmp/a.txt"), "a killed run's").unwrap();
        let st = begin(d).unwrap();
        assert!(!d.join(".a.txt.x1.tmp").exists() && !d.join(".run-1.tmp").exists());
        std::fs::write(st.join("a.txt"), "one").unwrap();
        std::fs::write(st.join("b.txt"), "one").unwrap();
        let files = [st.join("a.txt"), st.join("b.txt")];
        assert_eq!(publish(d, &st, "r1", &files).unwrap(), [d.join("a.txt"), d.join("b.txt")]);
        assert!(!st.exists());
        assert_eq!(verify(d).unwrap().files[0].file, "a.txt");
        // A second set without b.txt: the old b.txt goes; a failed publish keeps the set.
        let st = begin(d).unwrap();
        std::fs::write(st.join("a.txt"), "two").unwrap();
        std::fs::create_dir(d.join("c.txt")).unwrap();
        std::fs::write(st.join("c.txt"), "two").unwrap();
        let e = publish(d, &st, "r2", &[st.join("a.txt"), st.join("c.txt")]).unwrap_err();
        assert!(e.to_string().contains("c.txt is in the way"), "{e}");
        assert_eq!(verify(d).unwrap().run, "r1");
        assert_eq!(std::fs::read_to_string(d.join("a.txt")).unwrap(), "one");
        let st = begin(d).unwrap();
        std::fs::write(st.join("a.txt"), "two").unwrap();
        publish(d, &st, "r2", &[st.join("a.txt")]).unwrap();
        assert_eq!(verify(d).unwrap().run, "r2");
        assert!(!d.join("b.txt").exists());
        std::fs::write(d.join("a.txt"), "three").unwrap();
        assert!(verify(d).unwrap_err().to_string().contains("changed since"));
    }
}
