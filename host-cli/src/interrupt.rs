//! Ctrl-C (SIGINT) and SIGTERM during `train` and `tune`: the first one asks the run to stop
//! at its next batch boundary, write a checkpoint of the work done so far and exit 130; a
//! second one exits 130 at once.
//!
//! [`install`] sets the handler (once per process; commands that train call it). The training
//! loop calls [`poll`] between batches and returns an [`Interrupted`] error, which the
//! caller turns into a checkpoint and a message saying how to resume; `main` exits 130 (128 +
//! SIGINT, as shells report a process ended by Ctrl-C) on it.
//!
//! Stopping at once on the second signal leaves no half-written file under a real name: every
//! output is written to a temporary file and renamed into place ([`crate::files::write_atomic`]),
//! so a file is either the old one or the new one; the temporaries left behind are removed by
//! the next run in that folder.
//!
//! In a library use without [`install`] (tests, an embedding program) nothing ever requests a
//! stop, unless the program calls [`request_after`] itself: a stop after a given number of batch
//! boundaries, which puts the stop exactly where a test wants it. The request is process-wide.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Exit status of a run stopped by a signal (128 + SIGINT).
pub const EXIT_CODE: u8 = 130;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static COUNTDOWN: AtomicU64 = AtomicU64::new(0);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the SIGINT/SIGTERM handler (idempotent). The first signal prints that the run
/// stops after the current batch and sets [`requested`]; the second exits the process with
/// [`EXIT_CODE`] without writing anything more. Errors when the handler cannot be set (another
/// one is installed).
pub fn install() -> anyhow::Result<()> {
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
                    eprintln!(
                        "\nInterrupted: stopping after the current batch and writing a checkpoint \
                         (interrupt again to stop at once, without one)"
                    );
                } else {
                    eprintln!("\nInterrupted again: stopping at once, no checkpoint written");
                    std::process::exit(EXIT_CODE.into());
                }
            })
            .map_err(|e| format!("cannot set the Ctrl-C handler: {e}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Whether a stop was requested (a signal arrived, or a [`request_after`] count ran out).
pub fn requested() -> bool {
    SIGNALS.load(Ordering::Relaxed) > 0
}

/// A batch (or epoch) boundary of a training loop: counts down a [`request_after`] and returns
/// whether the run must stop here.
pub fn poll() -> bool {
    let left = COUNTDOWN.load(Ordering::SeqCst);
    if left > 0 && COUNTDOWN.fetch_sub(1, Ordering::SeqCst) == 1 {
        SIGNALS.fetch_add(1, Ordering::SeqCst);
    }
    requested()
}

/// Requests a stop, as a first signal does, at the `boundaries`-th [`poll`] from now (1: the
/// next one). The training loop polls before every batch and after every epoch but the last.
pub fn request_after(boundaries: u64) {
    COUNTDOWN.store(boundaries, Ordering::SeqCst);
}

/// Forgets a stop request (a program that saved the interrupted run and goes on to continue
/// it in the same process).
pub fn clear() {
    COUNTDOWN.store(0, Ordering::SeqCst);
    SIGNALS.store(0, Ordering::SeqCst);
}

/// The error of a run stopped by [`requested`]: the work done so far is saved, and `resume`
/// says how to continue. `main` prints it and exits with [`EXIT_CODE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// What was saved where, and the command that continues the run (filled in by the command
    /// that knows its flags; empty inside the training loop).
    pub resume: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.resume.is_empty() {
            write!(f, "interrupted")
        } else {
            write!(f, "interrupted: {}", self.resume)
        }
    }
}

impl std::error::Error for Interrupted {}

/// Whether `e` (or an error it wraps) is an [`Interrupted`].
pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Interrupted>().is_some())
}

/// `args` as a command a POSIX shell runs unchanged: words of safe characters as they are,
/// others in single quotes.
pub fn shell_command<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            let safe = !a.is_empty()
                && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if safe {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_command(&["tinylstm", "train", "--out", "runs/a"]),
            "tinylstm train --out runs/a"
        );
        assert_eq!(shell_command(&["a b", "it's", ""]), r"'a b' 'it'\''s' ''");
    }

    #[test]
    fn interrupted_is_found_through_context() {
        let e = anyhow::Error::new(Interrupted { resume: String::new() }).context("training");
        assert!(is_interrupted(&e));
        assert!(!is_interrupted(&anyhow::anyhow!("other")));
    }
}
