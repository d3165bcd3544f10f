//! Standard output that never panics: every line the CLI prints to stdout goes through
//! [`outln!`](crate::outln) / [`out!`](crate::out), which write with [`write_stdout`].
//!
//! * A closed pipe (`tinylstm predict … | head -1`, `EPIPE`): the reader has what it wanted, so
//!   the process exits at once and quietly with status [`EXIT_BROKEN_PIPE`] (141 = 128 +
//!   SIGPIPE, what a shell reports for coreutils killed by SIGPIPE in the same place).
//! * Any other write error (`> /dev/full`, `ENOSPC`, `EIO`): `error: writing to standard output:
//!   <OS error>` on stderr and exit status 1.
//!
//! `println!` panics in both cases; the reliability tests check that no source file of the CLI
//! but this one prints to stdout directly.

use std::io::{self, Write};

/// Exit status after the reader of standard output went away (128 + SIGPIPE).
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// Writes formatted text to standard output; on failure exits the process as the module
/// documentation says (never returns an error, never panics).
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        fail(&e);
    }
}

/// Flushes standard output (buffered text without a final newline); exits as [`write_stdout`]
/// on failure.
pub fn flush_stdout() {
    if let Err(e) = io::stdout().lock().flush() {
        fail(&e);
    }
}

/// Ends the process after a failed write to standard output.
fn fail(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_BROKEN_PIPE);
    }
    let _ = writeln!(io::stderr(), "error: writing to standard output: {e}");
    std::process::exit(1);
}

/// The text of an error and its causes, joined by `: `, each cause once: a cause whose text
/// the message already holds (an OS error that a context repeats) is left out.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let t = cause.to_string();
        if t.is_empty() || text.contains(&t) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&t);
    }
    text
}

/// `println!` for the CLI: writes through [`write_stdout`](crate::output::write_stdout), so a
/// closed or full standard output ends the process cleanly instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI (see [`outln!`](crate::outln)).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}
