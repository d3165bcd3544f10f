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
#[command(name = "tinylstm", version, about, long_about = None, after_help = "Start with `tinylstm train`: it trains on a built-in synthetic task and writes a model, \
its training history, plots and firmware exports to out/synthetic/.")]
pub struct Cli {
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
    }
}
