//! The `tinylstm` command line (see `tinylstm --help`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = tinylstm_cli::commands::Cli::parse();
    match tinylstm_cli::commands::run(cli) {
        Ok(()) => {
            tinylstm_cli::output::flush_stdout();
            ExitCode::SUCCESS
        }
        Err(e) if tinylstm_cli::interrupt::is_interrupted(&e) => {
            tinylstm_cli::output::flush_stdout();
            eprintln!("{e}");
            ExitCode::from(tinylstm_cli::interrupt::EXIT_CODE)
        }
        Err(e) => {
            tinylstm_cli::output::flush_stdout();
            eprintln!("error: {}", tinylstm_cli::output::error_text(&e));
            ExitCode::FAILURE
        }
    }
}
