//! `tinylstm bench`: measures training and inference throughput ([`crate::bench`]).

use crate::bench::{
    bench_workload, describe, table, target_features, BenchReport, Workload, MCU, SEED,
};
use anyhow::Result;
use clap::Args;
use tinylstm_fast::KernelPath;

/// `tinylstm bench` options.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  tinylstm bench                          # both workloads, all cores, a table
  tinylstm bench --workload mcu --threads 1 --seconds 2
  tinylstm bench --json > bench.json
  tinylstm bench --exact                  # the exact kernel path (the device's arithmetic)
The fast path picks this CPU's instruction set at run time (AVX-512, AVX2+FMA, NEON).")]
pub struct BenchCmd {
    /// Worker threads for training and batch-256 inference [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Measurements per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Workloads to run.
    #[arg(long, value_enum, default_value_t = Workload::All)]
    pub workload: Workload,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measure the exact kernel path instead of the fast one.
    #[arg(long)]
    pub exact: bool,
}

/// Runs `tinylstm bench`.
pub fn run(cmd: &BenchCmd) -> Result<()> {
    let threads =
        cmd.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    if !(cmd.seconds > 0.0 && cmd.seconds.is_finite()) {
        anyhow::bail!("--seconds must be a positive number");
    }
    let repeats = cmd.repeats.max(1);
    let kernels = KernelPath::choose(!cmd.exact);
    let mut workloads = Vec::new();
    for (name, spec, on) in [
        ("seed", SEED, cmd.workload != Workload::Mcu),
        ("mcu", MCU, cmd.workload != Workload::Seed),
    ] {
        if !on {
            continue;
        }
        if !cmd.json {
            eprintln!("benchmarking {name}: {} ...", describe(&spec));
        }
        workloads.push(bench_workload(kernels, name, &spec, threads, cmd.seconds, repeats)?);
    }
    let report = BenchReport {
        threads,
        seconds: cmd.seconds,
        repeats,
        target_features: target_features(),
        kernels: kernels.describe(),
        workloads,
    };
    if cmd.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::out!("{}", table(&report));
    }
    Ok(())
}
