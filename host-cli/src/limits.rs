//! Bounds on every size that comes from a file, a flag or a config, decided from the machine
//! and checked before anything is allocated or spawned.
//!
//! * Memory: the bytes a step needs (padded inputs, training work buffers, per-thread slots)
//!   must fit in the memory limit — `TINYLSTM_MEMORY_LIMIT` (bytes) when set, else
//!   `MemAvailable` from `/proc/meminfo`, else [`FALLBACK_MEMORY`].
//! * Threads (`--threads`, `tune --jobs`): at most [`threads_limit`] (4 per core, at least 64).
//! * Counts that only cost time and bookkeeping (epochs, trials, rounds): at most
//!   [`MAX_COUNT`].
//!
//! Every error names the flag or field, its value, the limit and (for memory) the bytes needed.

use anyhow::{bail, Result};

/// Memory limit assumed where neither `TINYLSTM_MEMORY_LIMIT` nor `/proc/meminfo` tells one.
pub const FALLBACK_MEMORY: u64 = 4 << 30;

/// Largest count of epochs, trials, rounds and similar loops (a count beyond it is a typo).
pub const MAX_COUNT: usize = 1_000_000_000;

/// The machine's resources, as the limits see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Bytes that one run may allocate.
    pub memory: u64,
    /// Where [`Machine::memory`] came from (for messages).
    pub memory_source: String,
    /// Cores available to this process.
    pub cores: usize,
}

impl Machine {
    /// Reads the limits: `TINYLSTM_MEMORY_LIMIT`, `/proc/meminfo` and the available cores.
    pub fn detect() -> Result<Machine> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(v) = std::env::var_os("TINYLSTM_MEMORY_LIMIT") {
            let text = v.to_string_lossy();
            let Ok(memory) = text.trim().parse::<u64>() else {
                bail!("TINYLSTM_MEMORY_LIMIT={text}: not a number of bytes");
            };
            return Ok(Machine { memory, memory_source: "TINYLSTM_MEMORY_LIMIT".into(), cores });
        }
        let from_proc = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
            t.lines().find_map(|l| {
                let rest = l.strip_prefix("MemAvailable:")?;
                let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                kib.checked_mul(1024)
            })
        });
        Ok(match from_proc {
            Some(memory) => {
                Machine { memory, memory_source: "MemAvailable in /proc/meminfo".into(), cores }
            }
            None => Machine {
                memory: FALLBACK_MEMORY,
                memory_source: "the default when the available memory is unknown".into(),
                cores,
            },
        })
    }

    /// Checks that `bytes` (`None`: beyond `u64`) fit in memory; `what` says what needs them
    /// and `cause` names the flag or field with its value.
    pub fn check_memory(&self, what: &str, cause: &str, bytes: Option<u64>) -> Result<()> {
        match bytes {
            Some(b) if b <= self.memory => Ok(()),
            _ => bail!(
                "{cause}: {what} needs {}, more than the memory limit of {} ({}; set \
                 TINYLSTM_MEMORY_LIMIT=<bytes> to change it)",
                bytes.map_or("more than 2^64 bytes".to_string(), describe_bytes),
                describe_bytes(self.memory),
                self.memory_source
            ),
        }
    }

    /// Checks a thread count (`flag` names it: `--threads`, `--jobs`).
    pub fn check_threads(&self, flag: &str, n: usize) -> Result<()> {
        let limit = threads_limit(self.cores);
        if n == 0 {
            bail!("{flag} must be at least 1");
        }
        if n > limit {
            bail!(
                "{flag} {n}: at most {limit} threads on this machine ({} cores; the limit is 4 \
                 per core and at least 64)",
                self.cores
            );
        }
        Ok(())
    }

    /// Checks that `samples` padded sequences of `steps` steps of `width` values each (4-byte
    /// ids or floats) fit in memory; the error names `steps` as the model's or `--maxlen`.
    pub fn check_inputs(&self, samples: usize, steps: usize, width: usize) -> Result<()> {
        let bytes = (samples as u64)
            .checked_mul(steps as u64)
            .and_then(|b| b.checked_mul(width.max(1) as u64))
            .and_then(|b| b.checked_mul(4));
        self.check_memory(
            &format!("padding {samples} samples to {steps} steps of {width} values"),
            &format!("{steps} steps per sequence (--maxlen, or the model file's `steps`)"),
            bytes,
        )
    }
}

/// Largest thread count allowed with `cores` cores: 4 per core, at least 64.
pub fn threads_limit(cores: usize) -> usize {
    cores.saturating_mul(4).max(64)
}

/// Checks a count of loop iterations (`flag` names it) against [`MAX_COUNT`].
pub fn check_count(flag: &str, n: usize) -> Result<()> {
    if n > MAX_COUNT {
        bail!("{flag} {n}: at most {MAX_COUNT}");
    }
    Ok(())
}

/// `bytes` in bytes and a binary unit (`34359738368 bytes (32.0 GiB)`).
pub fn describe_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = None;
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = Some(u);
    }
    match unit {
        Some(u) => format!("{bytes} bytes ({v:.1} {u})"),
        None => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(memory: u64, cores: usize) -> Machine {
        Machine { memory, memory_source: "test".into(), cores }
    }

    #[test]
    fn memory_errors_name_cause_bytes_and_limit() {
        let m = machine(1000, 2);
        assert!(m.check_memory("x", "--flag 3", Some(1000)).is_ok());
        let e = m.check_memory("x", "--flag 3", Some(1001)).unwrap_err().to_string();
        assert!(
            e.contains("--flag 3") && e.contains("1001 bytes") && e.contains("1000 bytes"),
            "{e}"
        );
        let e = m.check_memory("x", "--flag 3", None).unwrap_err().to_string();
        assert!(e.contains("more than 2^64 bytes"), "{e}");
        let e = m.check_inputs(usize::MAX, usize::MAX, 3).unwrap_err().to_string();
        assert!(e.contains("steps per sequence"), "{e}");
    }

    #[test]
    fn thread_limit_follows_the_cores() {
        assert_eq!(threads_limit(2), 64);
        assert_eq!(threads_limit(64), 256);
        let m = machine(1 << 30, 2);
        assert!(m.check_threads("--threads", 64).is_ok());
        let e = m.check_threads("--threads", 100_000).unwrap_err().to_string();
        assert!(e.contains("--threads 100000") && e.contains("at most 64"), "{e}");
        assert!(m.check_threads("--jobs", 0).is_err());
    }

    #[test]
    fn bytes_are_described_exactly_and_in_units() {
        assert_eq!(describe_bytes(12), "12 bytes");
        assert_eq!(describe_bytes(3 << 30), "3221225472 bytes (3.0 GiB)");
    }
}
