//! One run owns its output folder: [`FolderLock`] is a lock file, `.tinylstm.lock`, created
//! in the folder for the run and removed when the run ends.
//!
//! The file holds the owner's process id, its start time (`/proc/<pid>/stat`, so a reused
//! process id is not mistaken for the owner) and the wall-clock time it took the lock. A second
//! run into the same folder fails with a message naming that process; a lock whose process is
//! gone (a run killed with SIGKILL, or one that exited without unwinding) is stale and is taken
//! over. Where `/proc` does not exist, a lock is taken as held while its file exists.
//!
//! (`File::try_lock`, an OS advisory lock, needs Rust 1.89; the CLI builds with 1.85.)

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file in a locked folder.
pub const LOCK_FILE: &str = ".tinylstm.lock";

/// A held lock on a folder; dropping it removes the lock file.
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that wrote a lock (`pid`, and `start` ticks when recorded) still runs.
fn alive(pid: u32, start: Option<u64>) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    match (start_ticks(pid), start) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(str::trim)
}

impl FolderLock {
    /// Takes the lock on `dir` (which must exist) for this process; `flag` names the folder's
    /// option in errors (`--out`).
    pub fn acquire(dir: &Path, flag: &str) -> Result<FolderLock> {
        let path = dir.join(LOCK_FILE);
        let pid = std::process::id();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut body = format!("pid={pid}\n");
        if let Some(t) = start_ticks(pid) {
            body.push_str(&format!("start={t}\n"));
        }
        body.push_str(&format!("since={now}\n"));
        // Two attempts: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(body.as_bytes()).and_then(|()| f.sync_all()).with_context(
                        || format!("cannot write the lock file {}", path.display()),
                    )?;
                    return Ok(FolderLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let owner = field(&text, "pid").and_then(|p| p.parse::<u32>().ok());
                    let start = field(&text, "start").and_then(|p| p.parse::<u64>().ok());
                    match owner {
                        Some(p) if p != pid && alive(p, start) => {
                            let since = field(&text, "since").unwrap_or("?");
                            bail!(
                                "{flag} {}: another run (process {p}, holding the folder since \
                                 {since} seconds after 1970-01-01 UTC) writes there; wait for it \
                                 to end or use another {flag} (the lock is {})",
                                dir.display(),
                                path.display()
                            );
                        }
                        // Stale (owner gone), our own, or unreadable: take it over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create the lock file {}", path.display()))
                }
            }
        }
        bail!("{flag} {}: cannot take the lock {}", dir.display(), path.display())
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_stale_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let lock = FolderLock::acquire(dir.path(), "--out").unwrap();
        assert!(dir.path().join(LOCK_FILE).exists());
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // A lock of a process that does not exist is stale.
        std::fs::write(dir.path().join(LOCK_FILE), "pid=4294967290\nsince=1\n").unwrap();
        let lock = FolderLock::acquire(dir.path(), "--out").unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(text.contains(&format!("pid={}", std::process::id())), "{text}");
        drop(lock);
    }
}
