//! `tinylstm train`: load and split data, fit the preprocessing on the training split, train,
//! checkpoint, evaluate on the test split, and write the model, history, pictures and firmware
//! exports into the output folder. The work is [`crate::training::train_model`].

use crate::model_file::ModelBundle;
use crate::report::print_report;
use crate::settings::TrainArgs;
use crate::training::{train_model, RunOptions};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// `tinylstm train` options.
// The field docs are the terminal help, where `[default: …]` and `<data folder>` are literal
// text, not links or HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  tinylstm train                                   # built-in synthetic gestures → out/synthetic/
  tinylstm train --data sms.csv --maxlen 60 --epochs 10 --patience 2
  tinylstm train --data train.csv --test test.csv --channels 6 --units 64 --lr 1e-2 --batch-size 16
  tinylstm train --config train.toml --lr 3e-4     # flags override the file
  tinylstm train --out runs/a --resume             # continue an interrupted run")]
pub struct TrainCmd {
    /// Every training setting.
    #[command(flatten)]
    pub args: TrainArgs,
    /// TOML file with the same settings as the flags (flags win).
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Output folder [default: out/<data folder>-<data file stem> (…/BasicMotions/train.csv →
    /// out/BasicMotions-train), or out/synthetic].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run whose checkpoint is in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// No progress bars or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `tinylstm train`.
pub fn run(cmd: &TrainCmd) -> Result<()> {
    let file_args = match &cmd.config {
        Some(p) => TrainArgs::from_toml_file(p)?,
        None => TrainArgs::default(),
    };
    let mut args = file_args.overlaid(&cmd.args);
    let out_dir = cmd.out.clone().unwrap_or_else(|| PathBuf::from("out").join(args.run_name()));
    let checkpoint_path = out_dir.join("checkpoint.tlm");
    let inputs: Vec<(&str, &std::path::Path)> = [
        ("--data", args.data.file.as_deref()),
        ("--test", args.data.test.as_deref()),
        ("--config", cmd.config.as_deref()),
    ]
    .into_iter()
    .filter_map(|(f, p)| Some((f, p?)))
    .collect();
    crate::files::refuse_inputs_in_folder(
        "--out",
        &out_dir,
        crate::training::run::RUN_FILES,
        &inputs,
    )?;
    let resume = if cmd.resume {
        let ck = ModelBundle::load(&checkpoint_path)
            .with_context(|| format!("--resume: no usable checkpoint in {}", out_dir.display()))?;
        let stored = ck.meta.config.clone().ok_or_else(|| {
            anyhow!("{}: checkpoint has no training settings", checkpoint_path.display())
        })?;
        let was = stored.optimizer.kind.unwrap_or(crate::settings::OptimizerKind::Adam);
        if let Some(now) = cmd.args.optimizer.kind.filter(|n| *n != was) {
            anyhow::bail!(
                "--resume continues the checkpoint's optimizer {was}; --optimizer {now} would \
                 start another one without its state (train into a new --out instead)"
            );
        }
        args = stored.overlaid(&cmd.args);
        Some((checkpoint_path, ck))
    } else {
        None
    };
    // The settings as assembled (defaults < config file < flags, or the checkpoint's <
    // flags), checked once; the config file's own values were checked, naming file and line,
    // when it was read.
    args.validate().map_err(|e| e.as_flag_error())?;
    crate::interrupt::install()?;
    let outcome = train_model(
        &args,
        RunOptions {
            out_dir: Some(out_dir.clone()),
            quiet: cmd.quiet,
            resume,
            ..RunOptions::default()
        },
    )
    .map_err(|e| interrupted_with_resume(e, &out_dir))?;
    if let Some(r) = &outcome.test_report {
        crate::outln!("Test metrics ({} samples):", outcome.sizes.2);
        print_report(r);
    }
    let history = &outcome.state.history;
    let total: f64 = history.iter().map(|h| h.seconds).sum();
    let samples: f64 = history.iter().map(|h| h.samples_per_sec * h.seconds).sum();
    if total > 0.0 {
        crate::outln!(
            "Training throughput: {:.0} samples/s over {} epochs ({:.1} s)",
            samples / total,
            history.len(),
            total
        );
    }
    crate::outln!("Wrote:");
    for p in &outcome.written {
        crate::outln!("  {}", p.display());
    }
    Ok(())
}

/// A run stopped by Ctrl-C becomes an [`Interrupted`](crate::interrupt::Interrupted) that says
/// where its checkpoint is and the exact command that continues it (the checkpoint holds the
/// settings, so `--out` and `--resume` are all it needs); other errors pass unchanged.
fn interrupted_with_resume(e: anyhow::Error, out_dir: &std::path::Path) -> anyhow::Error {
    if !crate::interrupt::is_interrupted(&e) {
        return e;
    }
    let program = std::env::args().next().unwrap_or_else(|| "tinylstm".into());
    let out = out_dir.to_string_lossy();
    let command =
        crate::interrupt::shell_command(&[program.as_str(), "train", "--out", &out, "--resume"]);
    crate::interrupt::Interrupted {
        resume: format!(
            "the work done so far is in {}; continue with:\n  {command}",
            out_dir.join("checkpoint.tlm").display()
        ),
    }
    .into()
}
