//! `tinylstm tune`: hyperparameter search over training settings, and `tinylstm tune merge`.
//! The search itself is [`crate::tune`].

use crate::settings::TrainArgs;
use crate::tune::plan::{read_search_file, Metric, SearchToml};
use crate::tune::{self, Direction, Search, Shard, Space, Strategy, TuneOptions};
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `tinylstm tune` options.
#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  tinylstm tune --param lr=log:1e-4:3e-2 --param optimizer=adam,nesterov --trials 20
  tinylstm tune --data train.csv --test test.csv --channels 6 --epochs 30 --space space.toml
  tinylstm tune --space space.toml --strategy hyperband --objective val_accuracy
  tinylstm tune --space space.toml --shard 0/4 --out runs/s0     # one of 4 shares
  tinylstm tune merge runs/s0 runs/s1 runs/s2 runs/s3 --out runs/all

A search file has [base] (train settings), [search] (strategy, trials, seed, objective,
direction, eta, min_epochs, rounds, baseline) and [space]:
  [space]
  lr = { low = 1e-4, high = 3e-2, scale = \"log\" }
  optimizer = [\"adam\", \"sgd+momentum\", \"nesterov\"]
  batch_size = [16, 32, 64]
  units = [[32], [64], [64, 32]]

Training flags set the base settings of every trial, except --threads: the threads of each
trial [default 1], while --jobs trials run at once. Run the same command again to resume an
interrupted search: finished trials are kept."
)]
pub struct TuneCmd {
    /// `merge`, or nothing to run a search.
    #[command(subcommand)]
    pub action: Option<TuneAction>,
    /// Search options.
    #[command(flatten)]
    pub run: TuneRunArgs,
}

/// `tinylstm tune` subcommands.
#[derive(Subcommand, Debug)]
pub enum TuneAction {
    /// Combine the output folders of shards (`--shard i/n`) into one report.
    Merge(MergeCmd),
}

/// `tinylstm tune merge`.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  tinylstm tune merge runs/s0 runs/s1 --out runs/all")]
pub struct MergeCmd {
    /// Output folders of the shards.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Folder for the merged report.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Report on the trials present even if some are missing.
    #[arg(long)]
    pub partial: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options of a search run.
// The field docs are the terminal help, where `[base]`, `[default: …]` and `<data folder>`
// are literal text, not links or HTML.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
#[derive(Args, Debug, Default)]
pub struct TuneRunArgs {
    /// Base training settings (the same flags as `train`; --threads is per trial [default 1]).
    #[command(flatten)]
    pub args: TrainArgs,
    /// Base training settings from a `train` TOML config (flags win).
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Search file: [base], [search] and [space] tables.
    #[arg(long, value_name = "TOML")]
    pub space: Option<PathBuf>,
    /// A searched setting: KEY=SPEC with SPEC a list (adam,sgd), a range (log:1e-4:1e-1,
    /// lin:0:1e-3, with :POINTS for grids) or a TOML value ([[32],[64,32]]). Repeatable.
    #[arg(long = "param", value_name = "KEY=SPEC")]
    pub params: Vec<String>,
    /// Strategy [default: grid for a space of lists, else random].
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// Trials to draw (random, halving), or a random subset of a grid.
    #[arg(long)]
    pub trials: Option<usize>,
    /// Seed of sampling and trial seeds [default: --seed].
    #[arg(long)]
    pub search_seed: Option<u64>,
    /// Validation metric to optimise [default: val_loss].
    #[arg(long, value_enum, ignore_case = true)]
    pub objective: Option<Metric>,
    /// minimize or maximize [default: minimize loss/mae, maximize the rest].
    #[arg(long, value_enum)]
    pub direction: Option<Direction>,
    /// Halving rate: each rung keeps the best 1/η [default: 3].
    #[arg(long)]
    pub eta: Option<usize>,
    /// Epochs of the first halving rung [default: 1].
    #[arg(long)]
    pub min_epochs: Option<usize>,
    /// Hyperband rounds [default: 1].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Do not add the base settings as trial 0.
    #[arg(long)]
    pub no_baseline: bool,
    /// Trials trained at once [default: cores / threads per trial].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run share I of N (0 ≤ I < N) of the trials, for array jobs; merge with `tune merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Output folder; an existing folder of the same search is resumed
    /// [default: out/tune-<data folder>-<data file stem>, or out/tune-synthetic; with --shard, …-shard-I-of-N].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No table, only the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

impl TuneRunArgs {
    /// The search these options describe (validated).
    pub fn search(&self) -> Result<Search> {
        let config = match &self.config {
            Some(p) => TrainArgs::from_toml_file(p)?,
            None => TrainArgs::default(),
        };
        let file = match &self.space {
            Some(p) => Some(read_search_file(p)?),
            None => None,
        };
        let base = match &file {
            Some(f) => config.overlaid(&f.base).overlaid(&self.args),
            None => config.overlaid(&self.args),
        };
        let flags = SearchToml {
            strategy: self.strategy,
            trials: self.trials,
            seed: self.search_seed,
            objective: self.objective,
            direction: self.direction,
            eta: self.eta,
            min_epochs: self.min_epochs,
            rounds: self.rounds,
            baseline: if self.no_baseline { Some(false) } else { None },
        };
        let settings = match &file {
            Some(f) => f.search.overlaid(&flags),
            None => flags,
        };
        let mut entries: Vec<(String, toml::Value)> = file
            .as_ref()
            .map(|f| f.space.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for p in &self.params {
            entries.push(tune::space::parse_flag(p)?);
        }
        let space = Space::from_entries(entries)?;
        Search::new(base, space, &settings)
    }

    fn out_dir(&self, search: &Search) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let stem = search.base.run_name();
            let name = match self.shard {
                Some(s) => format!("tune-{stem}-shard-{}-of-{}", s.index, s.count),
                None => format!("tune-{stem}"),
            };
            PathBuf::from("out").join(name)
        })
    }
}

fn print_summary(results: &tune::Results) {
    let o = results.search.settings.objective;
    let counts: Vec<String> = results.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    crate::outln!("Trials: {} ({})", results.trials.len(), counts.join(", "));
    let Some(b) = &results.best else {
        crate::outln!("No trial finished: there is no best configuration.");
        return;
    };
    crate::outln!(
        "Best: trial {} with {} = {:.6}{}",
        b.trial,
        o.metric.name(),
        b.objective,
        match b.baseline_objective {
            Some(v) => format!(" (baseline trial 0: {v:.6})"),
            None => String::new(),
        }
    );
    if let Some(r) = results.trials.iter().find(|r| r.trial == b.trial) {
        crate::outln!("  {}", tune::results::describe(r));
    }
    if let Some(test) = &b.test {
        let f = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_f64);
        let mut parts = Vec::new();
        if let Some(l) = f(test.get("loss")) {
            parts.push(format!("loss {l:.4}"));
        }
        if let Some(c) = test.get("classification") {
            if let Some(a) = f(c.get("accuracy")) {
                parts.push(format!("accuracy {a:.4}"));
            }
            if let Some(m) = f(c.get("macro_f1")) {
                parts.push(format!("macro F1 {m:.4}"));
            }
        }
        if let Some(a) = f(test.get("roc_auc")) {
            parts.push(format!("ROC AUC {a:.4}"));
        }
        if let Some(m) = f(test.get("mae")) {
            parts.push(format!("MAE {m:.4}"));
        }
        let n = test.get("samples").and_then(serde_json::Value::as_u64).unwrap_or(0);
        crate::outln!("  test split ({n} samples): {}", parts.join(", "));
    }
}

/// Runs `tinylstm tune`.
pub fn run(cmd: &TuneCmd) -> Result<()> {
    if let Some(TuneAction::Merge(m)) = &cmd.action {
        let results = tune::merge(&m.dirs, &m.out, m.partial)?;
        print_summary(&results);
        if !m.quiet {
            crate::outln!("Wrote the merged report to {}", m.out.display());
        }
        return Ok(());
    }
    let r = &cmd.run;
    let search = r.search()?;
    let out = r.out_dir(&search);
    let opts = TuneOptions {
        out_dir: out.clone(),
        jobs: r.jobs,
        shard: r.shard,
        quiet: r.quiet,
        stop_after: None,
    };
    if opts.jobs == Some(0) {
        return Err(anyhow!("--jobs must be at least 1"));
    }
    crate::interrupt::install()?;
    let summary = tune::run_search(&search, &opts).map_err(|e| {
        match e.chain().find_map(|c| c.downcast_ref::<crate::interrupt::Interrupted>()) {
            // The same command line resumes the search from its folder.
            Some(i) => {
                let argv: Vec<String> = std::env::args().collect();
                crate::interrupt::Interrupted {
                    resume: format!(
                        "{}; continue with:\n  {}",
                        i.resume,
                        crate::interrupt::shell_command(&argv)
                    ),
                }
                .into()
            }
            None => e,
        }
    })?;
    crate::outln!(
        "Finished {} trials in {:.1} s ({} were already done){}",
        summary.ran,
        summary.wall_seconds,
        summary.resumed,
        match r.shard {
            Some(s) => format!("; shard {s}"),
            None => String::new(),
        }
    );
    if let Some(results) = &summary.results {
        print_summary(results);
        crate::outln!("Wrote:");
        for p in &summary.written {
            crate::outln!("  {}", p.display());
        }
    }
    Ok(())
}

/// Parses a complete `tinylstm …` command line as `main` does (returning clap's error rather
/// than exiting) and runs it: for tools and tests that drive the CLI in process.
pub fn run_command_line<I, T>(argv: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = <super::Cli as clap::Parser>::try_parse_from(argv)?;
    super::run(cli)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::super::Cli::command().debug_assert();
    }

    #[test]
    fn flags_and_merge_parse() {
        let cli = <super::super::Cli as clap::Parser>::try_parse_from([
            "tinylstm",
            "tune",
            "--param",
            "lr=log:1e-4:1e-1",
            "--shard",
            "1/4",
            "--lr",
            "0.01",
        ])
        .unwrap();
        let super::super::Command::Tune(t) = cli.command else { panic!("not tune") };
        assert_eq!(t.run.shard, Some(Shard { index: 1, count: 4 }));
        assert_eq!(t.run.args.optimizer.lr, Some(0.01));
        let cli = <super::super::Cli as clap::Parser>::try_parse_from([
            "tinylstm", "tune", "merge", "a", "b", "--out", "c",
        ])
        .unwrap();
        let super::super::Command::Tune(t) = cli.command else { panic!("not tune") };
        assert!(matches!(t.action, Some(TuneAction::Merge(ref m)) if m.dirs.len() == 2));
        assert!(<super::super::Cli as clap::Parser>::try_parse_from([
            "tinylstm", "tune", "--shard", "4/4"
        ])
        .is_err());
    }
}
