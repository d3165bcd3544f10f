//! [`train_model`]: the whole of `tinylstm train` minus the console report — settings in,
//! [`TrainOutcome`] (model, history, validation and test reports, files written) out.

use super::session::{RunOptions, TrainOutcome, TrainSession};
use crate::history::{write_history, write_history_plots};
use crate::model_file::{ModelBundle, ModelMeta};
use crate::settings::TrainArgs;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Files a run writes into its output folder (besides pictures, `.svg` and `.png`).
pub const RUN_FILES: &[&str] = &[
    "model.tlm",
    "checkpoint.tlm",
    "history.json",
    "history.csv",
    "metrics.json",
    "model.rs",
    "model.h",
    "model.json",
    crate::manifest::MANIFEST,
];

/// Runs a whole training as `tinylstm train` does, without its console report: prepares the
/// data, trains (resuming from `opts.resume`), and evaluates on the validation and test splits.
/// With `opts.out_dir`, writes what `train` writes there: `checkpoint.tlm` after every epoch
/// (and at a Ctrl-C, see [`crate::interrupt`]), and the run's set: `model.tlm`,
/// `history.json`/`.csv`, loss/metric curves, `metrics.json` and the confusion matrix (test
/// split), and firmware exports. Every file is written atomically.
///
/// The folder is locked for the run ([`crate::lock`]). The set is written into a staging
/// folder inside it (`model.tlm` whenever the monitored value improves, history after every
/// epoch, the rest at the end) and published together at the end, manifest `run.json` last
/// ([`crate::manifest`]): until then the previous run's set stays complete and untouched, and a
/// run that fails or is interrupted leaves it so (the checkpoint holds its own progress).
///
/// Folders the run creates (the output folder and any missing parents) are removed again if
/// the run fails before writing anything into them;
/// an existing folder with files in it is reused (its files are replaced), and the run says so.
pub fn train_model(args: &TrainArgs, opts: RunOptions<'_>) -> Result<TrainOutcome> {
    let mut reused = false;
    let created = match &opts.out_dir {
        Some(dir) if !dir.exists() => {
            // The folders this run creates, deepest first (`out/` as well as `out/sms` when
            // neither exists), so that a failed run removes every one it left empty.
            let created: Vec<PathBuf> = dir
                .ancestors()
                .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
                .map(PathBuf::from)
                .collect();
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create output folder {}", dir.display()))?;
            created
        }
        Some(dir) => {
            let used = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read output folder {}", dir.display()))?
                .next()
                .is_some();
            reused = used && opts.resume.is_none();
            Vec::new()
        }
        None => Vec::new(),
    };
    let lock = match &opts.out_dir {
        Some(dir) => crate::lock::FolderLock::acquire(dir, "--out").map(Some),
        None => Ok(None),
    };
    let dir = opts.out_dir.clone();
    let result = lock.and_then(|lock| {
        let staging = match &dir {
            Some(d) => Some(crate::manifest::begin(d)?),
            None => None,
        };
        let r = train_in(args, opts, reused, staging.as_deref());
        let r = match (r, &dir, &staging) {
            (Ok(mut outcome), Some(d), Some(st)) => {
                let id = crate::manifest::run_id();
                crate::manifest::publish(d, st, &id, &outcome.written).map(|written| {
                    outcome.written = written;
                    outcome
                })
            }
            (r, _, st) => {
                if let Some(st) = st {
                    crate::manifest::abandon(st);
                }
                r
            }
        };
        drop(lock);
        r
    });
    if result.is_err() {
        // Only empty folders are removed (deepest first, stopping at the first that is not
        // empty): a failed run keeps its last good checkpoint.
        for dir in &created {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
    result
}

/// The run; the set goes into `staging` (a folder inside `opts.out_dir`), the checkpoint into
/// `opts.out_dir` itself.
fn train_in(
    args: &TrainArgs,
    opts: RunOptions<'_>,
    reused: bool,
    staging: Option<&std::path::Path>,
) -> Result<TrainOutcome> {
    let mut session = TrainSession::new(args, &opts)?;
    let RunOptions { out_dir, quiet, resume, mut on_epoch, .. } = opts;
    let data = session.data.clone();
    let (train, valid, test) = (&data.train, &data.valid, &data.test);
    if !quiet {
        eprintln!("{}", data.description);
        if let (true, Some(dir)) = (reused, &out_dir) {
            eprintln!(
                "Reusing output folder {} (files of an earlier run there are replaced)",
                dir.display()
            );
        }
        match (&resume, &session.state.partial) {
            (Some(_), Some(p)) => eprintln!(
                "Resuming within epoch {}, after its batch {} (step {})",
                p.epoch, p.batches, session.state.iteration
            ),
            (Some(_), None) => eprintln!(
                "Resuming after epoch {} (step {})",
                session.state.epochs_done, session.state.iteration
            ),
            (None, _) => {}
        }
        eprintln!(
            "Training {} on {} samples ({} validation, {} test), {} steps each, {} parameters, {} threads",
            data.name,
            train.len,
            valid.len,
            test.len,
            train.steps,
            session.spec.param_count(),
            session.threads()
        );
        eprint!("{}", crate::summary::summary(&session.spec, Some(train.steps)));
        eprintln!(
            "(* after an epoch: {} improved{})",
            session.monitor(),
            if out_dir.is_some() { "; the best model so far is kept" } else { "" }
        );
    }
    let model_path = staging.map(|d| d.join("model.tlm"));
    let checkpoint_path = out_dir.as_ref().map(|d| d.join("checkpoint.tlm"));
    let bundle_for = {
        let spec = session.spec;
        let tokenizer = data.tokenizer.clone();
        let normalizer = data.normalizer.clone();
        move |params: &[f32], meta: &ModelMeta| ModelBundle {
            spec,
            params: params.to_vec(),
            tokenizer: tokenizer.clone(),
            normalizer: normalizer.clone(),
            meta: meta.clone(),
            optimizer_state: None,
            best_params: None,
        }
    };
    let meta = session.meta.clone();
    let planned = session.planned_epochs();
    let fitted = session.fit_to(planned, |ev| {
        if let (Some(dir), Some(ck_path), Some(model_path)) =
            (staging, &checkpoint_path, &model_path)
        {
            let mut ck_meta = meta.clone();
            ck_meta.train_state = Some(ev.state.clone());
            let mut ck = bundle_for(ev.params, &ck_meta);
            ck.optimizer_state = Some(ev.optimizer_state.to_vec());
            ck.best_params = Some(ev.best_params.to_vec());
            ck.save(ck_path)?;
            if ev.improved {
                bundle_for(ev.best_params, &meta).save(model_path)?;
            }
            write_history(dir, &ev.state.history)?;
        }
        match on_epoch.as_mut() {
            Some(f) => f(ev),
            None => Ok(()),
        }
    });
    if let (Err(e), Some(ck_path)) = (&fitted, &checkpoint_path) {
        if crate::interrupt::is_interrupted(e) {
            // Stopped between two batches (or epochs): the work done so far, resumable.
            session.checkpoint().save(ck_path)?;
        }
    }
    fitted?;

    if let (false, Some(epoch)) = (quiet, session.restored_epoch()) {
        let value = session.state.best.map_or(f64::NAN, |b| b.0);
        eprintln!(
            "Restored the best weights, from epoch {epoch} ({} {}); --restore-best false keeps the last epoch's",
            session.monitor(),
            crate::history::format_loss(value)
        );
    }
    let model = session.model();
    let valid_report = if valid.len > 0 { Some(session.evaluate(valid)?) } else { None };
    let mut test_report = if test.len > 0 { Some(session.evaluate(test)?) } else { None };
    let mut forecast_plot = None;
    if let (Some(f), Some(r), Some(norm)) = (&data.forecast, test_report.as_mut(), &data.normalizer)
    {
        let pred = super::forecast::unstandardize(&session.outputs(test)?, norm);
        r.forecast = Some(crate::forecast::report(&f.series, &f.test, &f.meta, &pred));
        forecast_plot = Some(pred);
    }
    let mut written = Vec::new();
    if let (Some(dir), Some(model_path)) = (staging, &model_path) {
        model.save(model_path)?;
        write_history(dir, &session.state.history)?;
        written.extend([model_path.clone(), dir.join("history.json"), dir.join("history.csv")]);
        written.extend(write_history_plots(
            dir,
            &session.state.history,
            session.state.best.map(|b| b.1),
        )?);
        if let Some(r) = &test_report {
            crate::files::write_atomic(&dir.join("metrics.json"), &serde_json::to_vec_pretty(r)?)?;
            written.push(dir.join("metrics.json"));
            written.extend(r.write_plots(dir, &format!("{} — test split", data.name))?);
            if let (Some(f), Some(pred)) = (&data.forecast, &forecast_plot) {
                let title = format!("{} — forecast on the test span", data.name);
                written
                    .extend(crate::forecast::plot(dir, &title, &f.series, &f.test, &f.meta, pred)?);
            }
        }
        written.extend(crate::export::firmware_exports(&model, dir)?);
    }
    let threads = session.threads();
    Ok(TrainOutcome {
        model,
        state: session.state,
        valid_report,
        test_report,
        sizes: (train.len, valid.len, test.len),
        name: data.name.clone(),
        threads,
        written,
    })
}
