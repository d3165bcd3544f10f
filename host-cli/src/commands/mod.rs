//! The subcommands of the `tinylstm` binary.

pub mod bench;
pub mod device_data;
pub mod eval;
pub mod export;
pub mod train;
pub mod tune;

use clap::{Parser, Subcommand};

/// Train LSTM sequence models on a host and deploy them to Cortex-M microcontrollers.
#[derive(Parser, Debug)]
#[command(name = "tinylstm", version, about, long_about = None, disable_version_flag = true, after_help = "Start with `tinylstm train`: it trains on a built-in synthetic task and writes a model, \
its training history, plots and firmware exports to out/synthetic/.")]
pub struct Cli {
    /// Print the version (also -V).
    #[arg(short = 'v', short_alias = 'V', long, action = clap::ArgAction::Version)]
    pub version: Option<bool>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (on a CSV, or the built-in synthetic task) and export it.
    Train(Box<train::TrainCmd>),
    /// Evaluate a model on labelled data.
    Eval(eval::EvalCmd),
    /// Predict classes/probabilities for a CSV or for texts.
    Predict(eval::PredictCmd),
    /// Show a model's architecture, sizes and preprocessing.
    Info(eval::InfoCmd),
    /// Export a model to firmware sources, JSON or Keras weights.
    Export(export::ExportCmd),
    /// Build a model file from Keras weights (numpy.savez of get_weights()).
    Import(export::ImportCmd),
    /// Measure training and inference throughput on the reference workloads (BENCHMARKS.md).
    Bench(bench::BenchCmd),
    /// Write the firmware's data sets (samples, field training, validation) from a CSV.
    DeviceData(device_data::DeviceDataCmd),
    /// Search training settings (grid, random, successive halving, Hyperband); `tune merge`.
    Tune(Box<tune::TuneCmd>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:
  tinylstm completions bash > ~/.local/share/bash-completion/completions/tinylstm
  tinylstm completions zsh > ~/.zfunc/_tinylstm")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(c) => train::run(&c),
        Command::Eval(c) => eval::run_eval(&c),
        Command::Predict(c) => eval::run_predict(&c),
        Command::Info(c) => eval::run_info(&c),
        Command::Export(c) => export::run_export(&c),
        Command::Import(c) => export::run_import(&c),
        Command::Bench(c) => bench::run(&c),
        Command::Tune(c) => tune::run(&c),
        Command::DeviceData(c) => device_data::run(&c),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "tinylstm", &mut script);
            crate::out!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The words of an example command line: `"…"` quoting kept together, a `#` comment or a
    /// `>` redirection ends it.
    fn words(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let (mut quoted, mut any) = (false, false);
        for c in line.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    any = true;
                }
                '#' | '>' if !quoted => break,
                c if c.is_whitespace() && !quoted => {
                    if any {
                        out.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                c => {
                    cur.push(c);
                    any = true;
                }
            }
        }
        if any {
            out.push(cur);
        }
        out
    }

    /// Every `tinylstm …` line of every help text parses: the examples name real flags and
    /// values.
    #[test]
    fn help_examples_parse() {
        let root = Cli::command();
        let mut helps: Vec<String> = Vec::new();
        let mut stack = vec![root];
        while let Some(c) = stack.pop() {
            if let Some(h) = c.get_after_help() {
                helps.push(h.to_string());
            }
            stack.extend(c.get_subcommands().cloned());
        }
        let mut examples = 0;
        for line in helps.iter().flat_map(|h| h.lines()) {
            let line = line.trim_start();
            if !line.starts_with("tinylstm ") {
                continue;
            }
            let argv = words(line);
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("help example does not parse: {line}\n{e}");
            }
            examples += 1;
        }
        assert!(examples >= 15, "only {examples} examples found");
        assert_eq!(words("tinylstm a \"b c\" d # e"), ["tinylstm", "a", "b c", "d"]);
    }

    /// The help of every command and subcommand speaks of the tool, not of the project's issue
    /// tracker, and names closed sets by their flag values (`val_loss`, `sgd+momentum`), never
    /// by their Rust names.
    #[test]
    fn help_texts_use_flag_values_and_no_tracker_words() {
        let mut stack = vec![Cli::command()];
        let mut seen = 0;
        while let Some(mut c) = stack.pop() {
            stack.extend(c.get_subcommands().cloned());
            let help = c.render_long_help().to_string().to_lowercase();
            for word in ["issue", "ticket", "valloss", "valaccuracy"] {
                assert!(!help.contains(word), "{}: help says {word:?}:\n{help}", c.get_name());
            }
            seen += 1;
        }
        assert!(seen >= 10, "{seen} commands");
        let train = Cli::command()
            .find_subcommand_mut("train")
            .map(|c| c.render_help().to_string())
            .unwrap();
        for values in ["val_loss, val_accuracy, loss", "sgd, sgd+momentum, nesterov"] {
            assert!(train.contains(values), "train --help lacks {values:?}");
        }
    }

    #[test]
    fn version_and_completions() {
        for flag in ["-v", "-V", "--version"] {
            let e = Cli::try_parse_from(["tinylstm", flag]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion, "{flag}");
        }
        let cli = Cli::try_parse_from(["tinylstm", "completions", "bash"]).unwrap();
        assert!(matches!(cli.command, Command::Completions { .. }));
        Cli::command().debug_assert();
    }
}
