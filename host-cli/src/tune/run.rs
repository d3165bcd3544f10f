//! Running a search: trials in parallel (each trial's training on its own thread count, so a
//! trial's result does not depend on how many run at once), successive-halving rungs, live
//! table, resume from the trial files of an interrupted run, and the final report.

use super::folder::{canonical, read_search_json, SearchJson, Shard, SEARCH_FORMAT};
use super::plan::{Metric, Plan, Search};
use super::report::{write_report, BestSource};
use super::results::{
    best_record, checkpoint_path, read_records, table_header, table_line, write_record, RungValue,
    TrialRecord, TrialStatus, ValMetrics,
};
use crate::files::write_atomic;
use crate::model_file::ModelBundle;
use crate::training::{prepare_data, DataCache, RunOptions, TrainSession};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Instant;

/// How a search runs (nothing here changes its results).
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// Output folder: trial files, checkpoints, reports. An existing folder of the same search
    /// is resumed.
    pub out_dir: PathBuf,
    /// Trials trained at once [default: cores / threads per trial].
    pub jobs: Option<usize>,
    /// Run one share of the trials.
    pub shard: Option<Shard>,
    /// No table or messages.
    pub quiet: bool,
    /// Stop (as if interrupted) once this many trials have finished in this run: for tests of
    /// resuming.
    pub stop_after: Option<usize>,
}

impl TuneOptions {
    /// Options writing into `out_dir`, everything else default.
    pub fn new(out_dir: impl Into<PathBuf>) -> TuneOptions {
        TuneOptions {
            out_dir: out_dir.into(),
            jobs: None,
            shard: None,
            quiet: true,
            stop_after: None,
        }
    }
}

/// What a run of [`run_search`] did.
#[derive(Debug)]
pub struct TuneSummary {
    /// Output folder.
    pub out_dir: PathBuf,
    /// The report (when the search, or this shard of it, is complete).
    pub results: Option<super::results::Results>,
    /// Trials that finished in this run.
    pub ran: usize,
    /// Trials found finished in the folder at the start (resume).
    pub resumed: usize,
    /// Trials of this run's share.
    pub total: usize,
    /// All trials of the share are finished and the report is written.
    pub complete: bool,
    /// Parallel trials.
    pub jobs: usize,
    /// Wall time of this run, seconds.
    pub wall_seconds: f64,
    /// Report files written.
    pub written: Vec<PathBuf>,
}

const CANCELLED: &str = "search interrupted";

struct Job {
    trial: usize,
    epochs: usize,
    args: crate::settings::TrainArgs,
    session: Option<TrainSession>,
    checkpoint: PathBuf,
}

struct Done {
    trial: usize,
    session: Option<TrainSession>,
    result: std::result::Result<ValMetrics, String>,
    cancelled: bool,
    seconds: f64,
}

fn new_session(job: &Job, cache: &DataCache) -> Result<TrainSession> {
    let opts = RunOptions { quiet: true, cache: Some(cache), ..RunOptions::default() };
    if job.checkpoint.exists() {
        if let Ok(ck) = ModelBundle::load(&job.checkpoint) {
            let done = ck.meta.train_state.as_ref().map_or(0, |s| s.epochs_done);
            if done <= job.epochs {
                let with = RunOptions {
                    resume: Some((job.checkpoint.clone(), ck)),
                    ..RunOptions::default()
                };
                let with = RunOptions { quiet: true, cache: Some(cache), ..with };
                if let Ok(s) = TrainSession::new(&job.args, &with) {
                    return Ok(s);
                }
            }
        }
    }
    TrainSession::new(&job.args, &opts)
}

fn run_job(mut job: Job, cache: &DataCache, cancel: &AtomicBool) -> Done {
    let start = Instant::now();
    let trial = job.trial;
    let mut session = match job.session.take() {
        Some(s) => s,
        None => match new_session(&job, cache) {
            Ok(s) => s,
            Err(e) => {
                return Done {
                    trial,
                    session: None,
                    result: Err(format!("{e:#}")),
                    cancelled: false,
                    seconds: start.elapsed().as_secs_f64(),
                }
            }
        },
    };
    let r = session.fit_to(job.epochs, |_| {
        if cancel.load(Ordering::Relaxed) {
            Err(anyhow!(CANCELLED))
        } else {
            Ok(())
        }
    });
    let mut cancelled = cancel.load(Ordering::Relaxed);
    if let Err(e) = &r {
        if crate::interrupt::is_interrupted(e) {
            // Ctrl-C: keep the work done so far (to a batch boundary) for the next run.
            cancelled = true;
            if let Err(e) = session.checkpoint().save(&job.checkpoint) {
                eprintln!("trial {trial}: {e:#}");
            }
        }
    }
    let result = match r {
        Err(e) => Err(format!("{e:#}")),
        Ok(()) => session
            .evaluate(&session.data.valid)
            .map(|r| ValMetrics::from_report(&r))
            .map_err(|e| format!("{e:#}")),
    };
    Done {
        trial,
        session: Some(session),
        result,
        cancelled,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Where a trial stands at a rung, from its record.
enum AtRung {
    /// Must train to this rung.
    Run,
    /// Has a value at this rung and can be ranked.
    Ranked(f64),
    /// Finished (failed, or completed by early stopping): out of the ranking.
    Out,
}

fn at_rung(rec: Option<&TrialRecord>, rung: usize) -> AtRung {
    let Some(r) = rec else { return AtRung::Run };
    let reached = r.rungs.len();
    if reached > rung {
        // A trial that completed at this rung (early stopping, or the last rung) is not
        // ranked; one that went on (even to fail later) was ranked here.
        if r.status == TrialStatus::Ok && reached == rung + 1 {
            AtRung::Out
        } else {
            AtRung::Ranked(r.rungs[rung].value)
        }
    } else if r.status == TrialStatus::Paused {
        AtRung::Run
    } else {
        AtRung::Out
    }
}

struct BracketRun {
    id: usize,
    rungs: Vec<usize>,
    rung: usize,
    alive: Vec<usize>,
    running: BTreeSet<usize>,
    done: bool,
}

struct Runner<'a> {
    search: &'a Search,
    plan: &'a Plan,
    dir: &'a Path,
    quiet: bool,
    records: BTreeMap<usize, TrialRecord>,
    sessions: HashMap<usize, TrainSession>,
    best: Option<(f64, usize)>,
    finished_now: usize,
}

impl Runner<'_> {
    fn metric(&self) -> Metric {
        self.search.settings.objective.metric
    }

    fn print(&self, r: &TrialRecord) {
        if !self.quiet {
            crate::outln!("{}", table_line(&self.search.settings.objective, r));
        }
    }

    fn base_record(&self, trial: usize) -> TrialRecord {
        let t = &self.plan.trials[trial];
        self.records.get(&trial).cloned().unwrap_or_else(|| TrialRecord {
            trial,
            bracket: t.bracket,
            seed: t.seed,
            baseline: t.baseline,
            params: t.params.clone(),
            status: TrialStatus::Paused,
            reason: None,
            objective: None,
            epochs: 0,
            best_epoch: None,
            rungs: Vec::new(),
            metrics: None,
            seconds: 0.0,
            history: Vec::new(),
            config: t.args.clone(),
        })
    }

    fn save(&mut self, r: TrialRecord) -> Result<()> {
        write_record(self.dir, &r)?;
        if r.status.is_final() {
            self.finished_now += 1;
            self.print(&r);
            let ck = checkpoint_path(self.dir, r.trial);
            if ck.exists() {
                let _ = std::fs::remove_file(ck);
            }
        }
        self.records.insert(r.trial, r);
        Ok(())
    }

    /// Takes a finished job into the records; returns the bracket to advance.
    fn take(&mut self, done: Done, rung_index: usize, last_rung: bool) -> Result<()> {
        let mut rec = self.base_record(done.trial);
        rec.seconds += done.seconds;
        if let Some(s) = &done.session {
            rec.history = s.state.history.clone();
            rec.epochs = s.state.epochs_done;
            rec.best_epoch = s.state.best.map(|b| b.1);
        }
        let metric = self.metric();
        let value = done.result.and_then(|m| match m.get(metric) {
            Some(v) if v.is_finite() => Ok((m, v)),
            Some(v) => Err(format!("the objective {} is {v}", metric.name())),
            None => Err(format!("the objective {} is not reported for this task", metric.name())),
        });
        match value {
            Err(reason) => {
                rec.status = TrialStatus::Failed;
                rec.reason = Some(reason);
                self.save(rec)
            }
            Ok((m, v)) => {
                debug_assert_eq!(rec.rungs.len(), rung_index);
                rec.rungs.push(RungValue { epochs: rec.epochs, value: v });
                rec.objective = Some(v);
                rec.metrics = Some(m);
                rec.reason = None;
                let session = done.session.ok_or_else(|| anyhow!("internal: no session"))?;
                if last_rung || session.stopped_early() {
                    rec.status = TrialStatus::Ok;
                    let better = match self.best {
                        None => true,
                        Some(b) => {
                            self.search.settings.objective.cmp((v, rec.trial), b)
                                == std::cmp::Ordering::Less
                        }
                    };
                    if better {
                        session.model().save(&self.dir.join("best_model.tlm"))?;
                        write_atomic(
                            &self.dir.join("best_model.json"),
                            &serde_json::to_vec(&serde_json::json!({ "trial": rec.trial }))?,
                        )?;
                        self.best = Some((v, rec.trial));
                    }
                    self.save(rec)
                } else {
                    session.checkpoint().save(&checkpoint_path(self.dir, rec.trial))?;
                    rec.status = TrialStatus::Paused;
                    self.sessions.insert(rec.trial, session);
                    self.save(rec)
                }
            }
        }
    }

    /// Moves a bracket as far as the records allow; returns the trials to train next.
    fn advance(&mut self, b: &mut BracketRun) -> Result<Vec<(usize, usize)>> {
        loop {
            if b.done {
                return Ok(Vec::new());
            }
            let rung = b.rung;
            let mut ranked: Vec<(f64, usize)> = Vec::new();
            let mut to_run = Vec::new();
            for &t in &b.alive {
                match at_rung(self.records.get(&t), rung) {
                    AtRung::Run => {
                        if !b.running.contains(&t) {
                            to_run.push(t);
                        }
                    }
                    AtRung::Ranked(v) => ranked.push((v, t)),
                    AtRung::Out => {}
                }
            }
            if !to_run.is_empty() || !b.running.is_empty() {
                let epochs = b.rungs[rung];
                for &t in &to_run {
                    b.running.insert(t);
                }
                return Ok(to_run.into_iter().map(|t| (t, epochs)).collect());
            }
            let last = rung + 1 == b.rungs.len();
            if last {
                b.done = true;
                continue;
            }
            let objective = self.search.settings.objective;
            ranked.sort_by(|a, c| objective.cmp(*a, *c));
            let keep = (b.alive.len() / self.search.settings.eta).max(1);
            let kept: Vec<usize> = ranked.iter().take(keep).map(|r| r.1).collect();
            for &(_, t) in ranked.iter().skip(keep) {
                self.sessions.remove(&t);
                if let Some(r) = self.records.get(&t) {
                    if r.status != TrialStatus::Pruned {
                        let mut r = r.clone();
                        r.status = TrialStatus::Pruned;
                        self.save(r)?;
                    }
                }
            }
            if !self.quiet && !kept.is_empty() {
                crate::outln!(
                    "        bracket {}: rung {} ({} epochs) done, {} of {} trials continue to {} epochs: {:?}",
                    b.id,
                    rung + 1,
                    b.rungs[rung],
                    kept.len(),
                    b.alive.len(),
                    b.rungs[rung + 1],
                    kept
                );
            }
            b.alive = kept;
            b.rung += 1;
            if b.alive.is_empty() {
                b.done = true;
            }
        }
    }
}

fn check_objective(search: &Search, classes: Option<u32>) -> Result<()> {
    let m = search.settings.objective.metric;
    let ok = match m {
        Metric::Loss => true,
        Metric::Accuracy | Metric::MacroF1 | Metric::MacroPrecision | Metric::MacroRecall => {
            classes.is_some() && search.base.model.head != Some(crate::settings::HeadKind::Linear)
        }
        Metric::RocAuc => classes == Some(2),
        Metric::Mae => {
            classes.is_none() || search.base.model.head == Some(crate::settings::HeadKind::Linear)
        }
    };
    if !ok {
        bail!(
            "objective {}: not reported for this task ({}); try val_loss",
            m.name(),
            match classes {
                None => "regression".to_string(),
                Some(k) => format!("{k} classes"),
            }
        );
    }
    Ok(())
}

/// Runs a search (or one shard of it) into `opts.out_dir`, resuming what an interrupted run
/// left there, and writes the report when every trial of the share is finished.
pub fn run_search(search: &Search, opts: &TuneOptions) -> Result<TuneSummary> {
    let start = Instant::now();
    let plan = search.plan()?;
    let dir = opts.out_dir.as_path();
    let shard = opts.shard;
    let mine: Vec<usize> = plan
        .brackets
        .iter()
        .filter(|b| shard.is_none_or(|s| s.has(b.id)))
        .flat_map(|b| b.trials.iter().copied())
        .collect();

    // Data first: a missing file or an impossible objective fails before any trial.
    let cache = DataCache::new();
    let probe = plan.trials.first().map_or_else(|| search.base.clone(), |t| t.args.clone());
    if probe.data.task == Some(crate::settings::TaskKind::Forecast) {
        bail!("tune searches classification and regression settings; --task forecast is not searched yet");
    }
    let data = prepare_data(&probe, Some(&cache))?;
    if data.valid.len == 0 {
        bail!("tuning needs a validation split: set --valid-split above 0");
    }
    check_objective(search, data.classes)?;
    drop(data);

    std::fs::create_dir_all(dir.join("trials"))
        .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    let _lock = crate::lock::FolderLock::acquire(dir, "--out")?;
    let search_path = dir.join("search.json");
    let this = SearchJson { format: SEARCH_FORMAT.into(), search: search.clone(), shard };
    if search_path.exists() {
        let old = read_search_json(dir)?;
        if canonical(&old.search)? != canonical(search)? || old.shard != shard {
            bail!(
                "{} holds the results of a different search{}; use another --out, or delete the \
                 folder to start over",
                dir.display(),
                if old.shard != shard { " shard" } else { "" }
            );
        }
    } else {
        write_atomic(&search_path, &serde_json::to_vec_pretty(&this)?)?;
    }

    // Trial records of an earlier run: settings must be the planned ones.
    let mut records = read_records(dir)?;
    let planned = canonical(&plan.trials.iter().map(|t| &t.args).collect::<Vec<_>>())?;
    records.retain(|id, _| mine.contains(id));
    for (id, r) in &records {
        if canonical(&r.config)? != planned[*id] {
            bail!(
                "{}: trial {id} was run with other settings than this search plans; use another --out",
                dir.display()
            );
        }
    }
    let resumed = records.values().filter(|r| r.status.is_final()).count();
    let objective = search.settings.objective;
    let best =
        best_record(&objective, records.values()).and_then(|r| r.objective.map(|v| (v, r.trial)));

    let trial_threads = search.base.run.threads.unwrap_or(1).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = opts.jobs.unwrap_or((cores / trial_threads).max(1)).max(1);
    crate::limits::Machine::detect()?.check_threads("--jobs", jobs)?;
    if !opts.quiet {
        let s = &search.settings;
        crate::outln!(
            "Tuning {}: {} search, {} trials{}, objective {} ({}), {} parallel trials × {} thread{}; output {}",
            probe_name(search),
            s.strategy,
            plan.trials.len(),
            match shard {
                Some(sh) => format!(" (shard {sh}: {})", mine.len()),
                None => String::new(),
            },
            objective.metric.name(),
            objective.direction,
            jobs,
            trial_threads,
            if trial_threads == 1 { "" } else { "s" },
            dir.display()
        );
        if mine.is_empty() {
            crate::outln!(
                "Shard {} has no trials: the search has {} bracket(s) and a bracket is never split \
                 (successive halving is one bracket: shard random, grid or hyperband searches)",
                shard.map(|s| s.to_string()).unwrap_or_default(),
                plan.brackets.len()
            );
        }
        if resumed > 0 {
            crate::outln!("Resuming: {resumed} of {} trials already finished", mine.len());
        }
        crate::outln!("{}", table_header(&objective));
    }

    let mut runner = Runner {
        search,
        plan: &plan,
        dir,
        quiet: opts.quiet,
        records,
        sessions: HashMap::new(),
        best,
        finished_now: 0,
    };
    let mut brackets: Vec<BracketRun> = plan
        .brackets
        .iter()
        .filter(|b| shard.is_none_or(|s| s.has(b.id)))
        .map(|b| BracketRun {
            id: b.id,
            rungs: b.rungs.clone(),
            rung: 0,
            alive: b.trials.clone(),
            running: BTreeSet::new(),
            done: false,
        })
        .collect();
    let bracket_of: HashMap<usize, usize> = brackets
        .iter()
        .enumerate()
        .flat_map(|(i, b)| b.alive.iter().map(move |&t| (t, i)))
        .collect();

    let mut queue: VecDeque<(usize, usize)> = VecDeque::new();
    for b in &mut brackets {
        queue.extend(runner.advance(b)?);
    }
    let cancel = AtomicBool::new(false);
    let mut interrupted = false;
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Done)>();
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..jobs {
            let (job_rx, done_tx, cache, cancel) = (&job_rx, done_tx.clone(), &cache, &cancel);
            scope.spawn(move || loop {
                let job = job_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                let Ok(job) = job else { break };
                let trial = job.trial;
                let epochs = job.epochs;
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_job(job, cache, cancel)
                }))
                .unwrap_or_else(|p| Done {
                    trial,
                    session: None,
                    result: Err(format!(
                        "the trial panicked: {}",
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    )),
                    cancelled: false,
                    seconds: 0.0,
                });
                if done_tx.send((epochs, done)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let mut in_flight = 0usize;
        let result = (|| -> Result<()> {
            loop {
                while in_flight < jobs && !interrupted {
                    let Some((trial, epochs)) = queue.pop_front() else { break };
                    let job = Job {
                        trial,
                        epochs,
                        args: plan.trials[trial].args.clone(),
                        session: runner.sessions.remove(&trial),
                        checkpoint: checkpoint_path(dir, trial),
                    };
                    job_tx.send(job).map_err(|_| anyhow!("internal: trial workers stopped"))?;
                    in_flight += 1;
                }
                if in_flight == 0 {
                    return Ok(());
                }
                let (_epochs, done) =
                    done_rx.recv().map_err(|_| anyhow!("internal: trial workers stopped"))?;
                in_flight -= 1;
                if crate::interrupt::requested() && !interrupted {
                    interrupted = true;
                    cancel.store(true, Ordering::Relaxed);
                }
                if interrupted || done.cancelled {
                    continue;
                }
                let bi = bracket_of[&done.trial];
                let b = &mut brackets[bi];
                b.running.remove(&done.trial);
                let last = b.rung + 1 == b.rungs.len();
                let rung = b.rung;
                runner.take(done, rung, last)?;
                let next = runner.advance(&mut brackets[bi])?;
                queue.extend(next);
                if opts.stop_after.is_some_and(|n| runner.finished_now >= n) {
                    interrupted = true;
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        })();
        if result.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        drop(job_tx);
        // Wait for trials in flight (cancelled: they stop at their next epoch).
        while in_flight > 0 && done_rx.recv().is_ok() {
            in_flight -= 1;
        }
        result
    })?;

    let ran = runner.finished_now;
    let complete = !interrupted && brackets.iter().all(|b| b.done);
    if !complete && crate::interrupt::requested() {
        return Err(crate::interrupt::Interrupted {
            resume: format!(
                "{ran} trials finished in this run; the trials in progress were checkpointed in {}",
                dir.join("trials").display()
            ),
        }
        .into());
    }
    let mut summary = TuneSummary {
        out_dir: dir.to_path_buf(),
        results: None,
        ran,
        resumed,
        total: mine.len(),
        complete,
        jobs,
        wall_seconds: 0.0,
        written: Vec::new(),
    };
    if complete {
        let records: Vec<TrialRecord> =
            read_records(dir)?.into_values().filter(|r| mine.contains(&r.trial)).collect();
        let (results, written) =
            write_report(dir, search, records, BestSource::Train { cache: &cache, dir })?;
        summary.results = Some(results);
        summary.written = written;
    }
    summary.wall_seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn probe_name(search: &Search) -> String {
    search
        .base
        .data
        .file
        .as_ref()
        .and_then(|p| p.file_stem())
        .map_or_else(|| "synthetic".to_string(), |s| s.to_string_lossy().into_owned())
}
