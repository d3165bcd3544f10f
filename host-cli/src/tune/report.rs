//! The report of a finished search (or shard): `results.json`, `results.csv`, `best.json`,
//! `best.toml`, `best_model.tlm` and the pictures — and `tinylstm tune merge`, which builds the
//! same report from the folders of the shards.

use super::folder::{canonical, read_search_json, SearchJson, Shard, SEARCH_FORMAT};
use super::plan::Search;
use super::results::{
    best_record, best_toml, read_records, results_csv, BestTrial, Results, TrialRecord,
    TrialStatus, RESULTS_FORMAT,
};
use crate::files::write_atomic;
use crate::model_file::ModelBundle;
use crate::training::{DataCache, RunOptions, TrainSession};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the best model and its test metrics come from.
#[derive(Debug)]
pub enum BestSource<'a> {
    /// This machine has the data: take `best_model.tlm` of `dir` if it is the best trial's,
    /// else train the trial again (training is deterministic), and evaluate it on the test split.
    Train {
        /// Shared prepared data.
        cache: &'a DataCache,
        /// The search folder.
        dir: &'a Path,
    },
    /// Merging: the shard folder whose best trial is the overall best has its model and test
    /// metrics.
    Shards(&'a [PathBuf]),
}

fn read_best_json(dir: &Path) -> Option<BestTrial> {
    let bytes = std::fs::read(dir.join("best.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn sidecar_trial(dir: &Path) -> Option<usize> {
    let bytes = std::fs::read(dir.join("best_model.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("trial")?.as_u64().map(|t| t as usize)
}

/// Model bytes and test report of the best trial.
fn best_model(
    best: &TrialRecord,
    src: &BestSource<'_>,
) -> Result<(Vec<u8>, Option<serde_json::Value>)> {
    match src {
        BestSource::Train { cache, dir } => {
            let opts = RunOptions { quiet: true, cache: Some(cache), ..RunOptions::default() };
            let mut session = TrainSession::new(&best.config, &opts)?;
            let path = dir.join("best_model.tlm");
            let stored = if sidecar_trial(dir) == Some(best.trial) {
                ModelBundle::load(&path).ok().filter(|m| m.spec == session.spec)
            } else {
                None
            };
            let model = match stored {
                Some(m) => m,
                None => {
                    session
                        .fit_to(best.epochs, |_| Ok(()))
                        .with_context(|| format!("training the best trial {} again", best.trial))?;
                    session.model()
                }
            };
            let test = if session.data.test.len > 0 {
                let r = session.evaluate_params(&model.params, &session.data.test)?;
                // Through JSON text, as a merge reads it from a shard's best.json: the same
                // numbers to the last digit either way.
                Some(canonical(&r)?)
            } else {
                None
            };
            Ok((model.to_bytes()?, test))
        }
        BestSource::Shards(dirs) => {
            for d in dirs.iter() {
                if let Some(b) = read_best_json(d) {
                    if b.trial == best.trial {
                        let path = d.join("best_model.tlm");
                        let bytes = std::fs::read(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        return Ok((bytes, b.test));
                    }
                }
            }
            bail!(
                "no shard folder has the model of the best trial {} (was its shard's run \
                 finished? run that shard again: it resumes and writes its report)",
                best.trial
            )
        }
    }
}

/// Writes the report into `out` and returns it with the files written.
pub fn write_report(
    out: &Path,
    search: &Search,
    mut records: Vec<TrialRecord>,
    src: BestSource<'_>,
) -> Result<(Results, Vec<PathBuf>)> {
    std::fs::create_dir_all(out)?;
    records.sort_by_key(|r| r.trial);
    let objective = search.settings.objective;
    let mut written = Vec::new();
    let best = best_record(&objective, &records).cloned();
    let best_info = match &best {
        None => None,
        Some(b) => {
            let (model, test) = best_model(b, &src)?;
            write_atomic(&out.join("best_model.tlm"), &model)?;
            write_atomic(
                &out.join("best_model.json"),
                &serde_json::to_vec(&serde_json::json!({ "trial": b.trial }))?,
            )?;
            let info = BestTrial {
                trial: b.trial,
                metric: objective.metric.name().to_string(),
                objective: b.objective.unwrap_or(f64::NAN),
                params: b.params.clone(),
                valid: b.metrics.clone(),
                test,
                baseline_objective: records
                    .iter()
                    .find(|r| r.baseline && r.status == TrialStatus::Ok)
                    .and_then(|r| r.objective),
                config: b.config.clone(),
            };
            write_atomic(&out.join("best.json"), &serde_json::to_vec_pretty(&info)?)?;
            write_atomic(&out.join("best.toml"), best_toml(b, &objective).as_bytes())?;
            written.extend([
                out.join("best.toml"),
                out.join("best_model.tlm"),
                out.join("best.json"),
            ]);
            Some(info)
        }
    };
    let mut counts = BTreeMap::new();
    for r in &records {
        *counts.entry(r.status.name().to_string()).or_insert(0) += 1;
    }
    let plots = super::plots::write_search_plots(
        &out.join("plots"),
        search,
        &records,
        best.as_ref().map(|b| b.trial),
    )?;
    let csv = results_csv(search, &records)?;
    let results = Results {
        format: RESULTS_FORMAT.into(),
        search: search.clone(),
        trials: records,
        counts,
        best: best_info,
    };
    write_atomic(&out.join("results.json"), &serde_json::to_vec_pretty(&results)?)?;
    write_atomic(&out.join("results.csv"), &csv)?;
    written.extend([out.join("results.json"), out.join("results.csv")]);
    written.extend(plots);
    Ok((results, written))
}

/// Combines the folders of the shards of one search into one report in `out` (the same files
/// an unsharded run writes). Every folder must hold the same search; every trial must be
/// finished in one of them unless `partial`.
pub fn merge(dirs: &[PathBuf], out: &Path, partial: bool) -> Result<Results> {
    if dirs.is_empty() {
        bail!("tune merge: give the output folders of the shards");
    }
    let mut search: Option<Search> = None;
    let mut shards: Vec<Option<Shard>> = Vec::new();
    let mut records: BTreeMap<usize, TrialRecord> = BTreeMap::new();
    for d in dirs {
        let sj = read_search_json(d)?;
        match &search {
            None => search = Some(sj.search.clone()),
            Some(s) => {
                if canonical(s)? != canonical(&sj.search)? {
                    bail!(
                        "{} holds a different search than {}: only shards of one search merge",
                        d.display(),
                        dirs[0].display()
                    );
                }
            }
        }
        shards.push(sj.shard);
        for (id, r) in read_records(d)? {
            if !r.status.is_final() {
                continue;
            }
            if let Some(old) = records.get(&id) {
                if canonical(&old.config)? != canonical(&r.config)? {
                    bail!("trial {id} differs between shard folders");
                }
                continue;
            }
            records.insert(id, r);
        }
    }
    let search = search.ok_or_else(|| anyhow!("no search"))?;
    let plan = search.plan()?;
    let missing: Vec<usize> =
        plan.trials.iter().map(|t| t.id).filter(|id| !records.contains_key(id)).collect();
    if !missing.is_empty() && !partial {
        let count = shards.iter().flatten().map(|s| s.count).next();
        let absent: Vec<String> = match count {
            Some(n) => (0..n)
                .filter(|i| !shards.iter().flatten().any(|s| s.index == *i))
                .map(|i| format!("{i}/{n}"))
                .collect(),
            None => Vec::new(),
        };
        bail!(
            "{} of {} trials have no results (first: {:?}){}; run the missing shards (they resume), \
             or merge with --partial",
            missing.len(),
            plan.trials.len(),
            &missing[..missing.len().min(8)],
            if absent.is_empty() {
                String::new()
            } else {
                format!("; shards not given: {}", absent.join(", "))
            }
        );
    }
    let records: Vec<TrialRecord> =
        records.into_values().filter(|r| r.status != TrialStatus::Paused).collect();
    std::fs::create_dir_all(out)?;
    let merged = SearchJson { format: SEARCH_FORMAT.into(), search: search.clone(), shard: None };
    let search_path = out.join("search.json");
    if !search_path.exists() {
        write_atomic(&search_path, &serde_json::to_vec_pretty(&merged)?)?;
    }
    // The merged folder also holds the trial files, so it can be merged again or resumed.
    for r in &records {
        if !super::results::trial_path(out, r.trial).exists() {
            super::results::write_record(out, r)?;
        }
    }
    let (results, _) = write_report(out, &search, records, BestSource::Shards(dirs))?;
    Ok(results)
}
