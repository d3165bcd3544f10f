//! The `tinylstm` command line (see `tinylstm --help`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = tinylstm_cli::commands::Cli::parse();
    match tinylstm_cli::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
