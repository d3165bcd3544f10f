//! `tinylstm tune` through its library API (and once through the command line, in process):
//! a small search on the built-in task beats the default settings and writes a ready config
//! that retrains the best model bit for bit; an interrupted search resumes without re-running
//! finished trials (random and successive halving); sharded runs merged equal the unsharded
//! run; invalid spaces are rejected before any trial, naming the field; a diverging trial is
//! recorded as failed and the search goes on.

use serde_json::Value;
use std::path::Path;
use tinylstm_cli::settings::TrainArgs;
use tinylstm_cli::training::{train_model, RunOptions};
use tinylstm_cli::tune::space::parse_flag;
use tinylstm_cli::tune::{
    merge, run_search, Metric, Search, SearchToml, Space, Strategy, TrialStatus, TuneOptions,
};

/// The built-in task, small: 300 samples (about 240 train, 30 validation, 30 test), 3 epochs.
fn base() -> TrainArgs {
    let mut args = TrainArgs::default();
    args.data.synthetic_samples = Some(300);
    args.run.epochs = Some(3);
    args.model.units = Some(vec![16]);
    args
}

/// The search of `--param` flags `params`; errors as their full message.
fn search(base: TrainArgs, params: &[&str], settings: SearchToml) -> Result<Search, String> {
    let mut entries = Vec::new();
    for p in params {
        entries.push(parse_flag(p).map_err(|e| format!("{e:#}"))?);
    }
    let space = Space::from_entries(entries).map_err(|e| format!("{e:#}"))?;
    Search::new(base, space, &settings).map_err(|e| format!("{e:#}"))
}

fn random(trials: usize) -> SearchToml {
    SearchToml { strategy: Some(Strategy::Random), trials: Some(trials), ..SearchToml::default() }
}

fn opts(dir: &Path, jobs: usize) -> TuneOptions {
    TuneOptions { jobs: Some(jobs), ..TuneOptions::new(dir) }
}

/// A JSON file without its timing fields (wall times, throughput).
fn untimed(path: &Path) -> Value {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "seconds" | "samples_per_sec"))
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            other => other,
        }
    }
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    strip(serde_json::from_slice(&bytes).unwrap())
}

/// A CSV file without its `seconds` column.
fn untimed_csv(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<Vec<String>> =
        text.lines().map(|l| l.split(',').map(str::to_string).collect()).collect();
    let col = rows[0].iter().position(|c| c == "seconds").unwrap();
    rows.into_iter()
        .map(|mut r| {
            r.remove(col);
            r
        })
        .collect()
}

/// Everything a search writes, without timing fields.
fn report_files(dir: &Path) -> (Value, Value, Vec<Vec<String>>, String, Vec<u8>) {
    (
        untimed(&dir.join("results.json")),
        untimed(&dir.join("best.json")),
        untimed_csv(&dir.join("results.csv")),
        std::fs::read_to_string(dir.join("best.toml")).unwrap(),
        std::fs::read(dir.join("best_model.tlm")).unwrap(),
    )
}

#[test]
fn small_search_beats_the_default_and_its_best_config_retrains_the_best_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tune");
    let s = search(base(), &["lr=log:3e-3:5e-2", "optimizer=adam,nesterov"], random(5)).unwrap();
    let summary = run_search(&s, &opts(&out, 2)).unwrap();
    assert!(summary.complete);
    assert_eq!((summary.ran, summary.resumed, summary.total), (6, 0, 6));
    let results = summary.results.unwrap();
    assert_eq!(results.trials.len(), 6);
    assert!(results.trials.iter().all(|t| t.status == TrialStatus::Ok));
    let best = results.best.clone().unwrap();

    // The default settings, trained as `tinylstm train` would (one thread, as trials run).
    let default =
        train_model(&base(), RunOptions { threads: Some(1), quiet: true, ..Default::default() })
            .unwrap();
    let default_loss = default.valid_report.as_ref().unwrap().loss;
    let baseline = &results.trials[0];
    assert!(baseline.baseline);
    // Trial 0 is exactly the default run.
    assert!((baseline.objective.unwrap() - default_loss).abs() <= 1e-12 * default_loss.abs());
    assert!(
        best.objective < default_loss,
        "best val_loss {} is not below the default's {default_loss}",
        best.objective
    );
    assert_ne!(best.trial, 0);

    for f in [
        "search.json",
        "results.json",
        "results.csv",
        "best.json",
        "best.toml",
        "best_model.tlm",
        "plots/best_so_far.svg",
        "plots/best_so_far.png",
        "plots/lr.svg",
        "plots/lr.png",
        "plots/optimizer.svg",
        "plots/optimizer.png",
        "trials/trial-00005.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(csv.lines().next().unwrap().contains("lr") && csv.contains("nesterov"));
    // Test metrics of the best model are reported.
    let test = best.test.as_ref().unwrap();
    let default_test = default.test_report.as_ref().unwrap();
    assert_eq!(test["samples"].as_u64(), Some(default_test.samples as u64));
    let acc = test["classification"]["accuracy"].as_f64().unwrap();
    let default_acc = default_test.classification.as_ref().unwrap().accuracy;
    println!("test accuracy: best {acc:.4}, default {default_acc:.4}");
    assert!(acc >= default_acc, "best test accuracy {acc} below the default's {default_acc}");

    // best.toml is a ready `train` config: it trains the best model again, bit for bit.
    let args = TrainArgs::from_toml_file(&out.join("best.toml")).unwrap();
    let again = train_model(&args, RunOptions { quiet: true, ..Default::default() }).unwrap();
    let stored = tinylstm_cli::model_file::ModelBundle::load(&out.join("best_model.tlm")).unwrap();
    let bits = |p: &[f32]| p.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&again.model.params), bits(&stored.params));
}

#[test]
fn an_interrupted_search_resumes_without_rerunning_finished_trials() {
    let dir = tempfile::tempdir().unwrap();
    for (name, settings) in [
        ("random", random(5)),
        (
            "halving",
            SearchToml {
                strategy: Some(Strategy::Halving),
                trials: Some(5),
                eta: Some(2),
                ..SearchToml::default()
            },
        ),
    ] {
        let mut b = base();
        b.run.epochs = Some(4);
        let s = search(b, &["lr=log:3e-3:5e-2", "units=8,16"], settings).unwrap();
        let out = dir.path().join(format!("{name}-interrupted"));
        let first = run_search(&s, &TuneOptions { stop_after: Some(3), ..opts(&out, 2) }).unwrap();
        assert!(!first.complete && first.results.is_none(), "{name}");
        assert_eq!(first.ran, 3, "{name}");
        let records = tinylstm_cli::tune::results::read_records(&out).unwrap();
        let finished: Vec<(usize, Vec<u8>)> = records
            .values()
            .filter(|r| r.status.is_final())
            .map(|r| {
                let p = tinylstm_cli::tune::results::trial_path(&out, r.trial);
                (r.trial, std::fs::read(p).unwrap())
            })
            .collect();
        assert_eq!(finished.len(), 3, "{name}");

        let second = run_search(&s, &opts(&out, 2)).unwrap();
        assert!(second.complete, "{name}");
        assert_eq!(second.resumed, 3, "{name}");
        assert_eq!(second.ran, second.total - 3, "{name}: finished trials ran again");
        for (trial, bytes) in &finished {
            let p = tinylstm_cli::tune::results::trial_path(&out, *trial);
            assert_eq!(&std::fs::read(p).unwrap(), bytes, "{name}: trial {trial} was rewritten");
        }

        // The same results as a run that was never interrupted.
        let whole = dir.path().join(format!("{name}-whole"));
        run_search(&s, &opts(&whole, 1)).unwrap();
        assert_eq!(report_files(&out), report_files(&whole), "{name}");
        if name == "halving" {
            let r = second.results.unwrap();
            assert!(r.trials.iter().any(|t| t.status == TrialStatus::Pruned));
            assert!(r.trials.iter().any(|t| t.epochs == 4 && t.status == TrialStatus::Ok));
        }
    }
}

#[test]
fn sharded_runs_merged_equal_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let s =
        search(base(), &["lr=log:3e-3:5e-2", "optimizer=adam,sgd+momentum"], random(5)).unwrap();
    let whole = dir.path().join("whole");
    run_search(&s, &opts(&whole, 2)).unwrap();
    let shards: Vec<std::path::PathBuf> =
        (0..3).map(|i| dir.path().join(format!("shard{i}"))).collect();
    for (i, d) in shards.iter().enumerate() {
        let shard = Some(format!("{i}/3").parse().unwrap());
        let sum = run_search(&s, &TuneOptions { shard, ..opts(d, 1) }).unwrap();
        // Trial k belongs to shard k mod 3.
        let ids: Vec<usize> = sum.results.unwrap().trials.iter().map(|t| t.trial).collect();
        assert_eq!(ids, (0..6).filter(|k| k % 3 == i).collect::<Vec<_>>());
    }
    // Merging two of three shards is refused, naming the missing one.
    let e = merge(&shards[..2], &dir.path().join("partial"), false).unwrap_err().to_string();
    assert!(e.contains("2/3"), "{e}");
    let merged = dir.path().join("merged");
    merge(&shards, &merged, false).unwrap();
    assert_eq!(report_files(&merged), report_files(&whole));
}

#[test]
fn invalid_spaces_are_rejected_before_any_trial_naming_the_field() {
    let cases: &[(&str, &str)] = &[
        ("lr=lin:0.1:0.01", "`lr`"),
        ("lr=log:0:1", "`lr`"),
        ("lr=-0.001", "--lr"),
        ("lr=[0.01, 0]", "`lr`"),
        ("optimizer=adam,adamm", "adamm"),
        ("optimizer=lin:1:2", "`optimizer`"),
        ("batch_size=[]", "`batch_size`"),
        ("batch_size=0,16", "--batch-size"),
        ("l2=-1", "`l2`"),
        ("units=[[16], [0]]", "`units`"),
        ("epochz=3", "`epochz`"),
        ("seed=1,2", "`seed`"),
        ("data=a.csv", "`data`"),
    ];
    for (flag, needle) in cases {
        let e = search(base(), &[flag], random(3)).map(|_| ()).unwrap_err();
        assert!(e.contains(needle), "{flag}: {e}");
    }
    // Grid search over a range without points, halving over epochs, a bad objective.
    let grid = SearchToml { strategy: Some(Strategy::Grid), ..SearchToml::default() };
    let e = search(base(), &["lr=log:1e-3:1e-1"], grid).unwrap_err();
    assert!(e.contains("`lr`") && e.contains("points"), "{e}");
    let halving = SearchToml { strategy: Some(Strategy::Halving), ..SearchToml::default() };
    let e = search(base(), &["epochs=2,4"], halving).unwrap_err();
    assert!(e.contains("`epochs`"), "{e}");
    let e = tinylstm_cli::tune::plan::parse_search_file(
        "[search]\nobjective = \"val_accurcy\"\n",
        Path::new("."),
    )
    .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("val_accurcy") && e.contains("val_accuracy, val_macro_f1"), "{e}");
    let aliases = tinylstm_cli::tune::plan::parse_search_file(
        "[search]\nobjective = \"AUC\"\n",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(aliases.search.objective, Some(Metric::RocAuc));
    // A search file with an unknown table or key.
    let e = tinylstm_cli::tune::plan::parse_search_file("[spaces]\nlr = [0.1]\n", Path::new("."))
        .unwrap_err();
    assert!(format!("{e:#}").contains("spaces"), "{e:#}");
    let e = tinylstm_cli::tune::plan::parse_search_file(
        "[search]\nstrategi = \"grid\"\n",
        Path::new("."),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("strategi"), "{e:#}");
    // An objective the task does not report fails before any trial runs or any file is written.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("auc");
    let auc = SearchToml { objective: Some(Metric::RocAuc), ..random(2) };
    let s = search(base(), &["lr=0.01,0.02"], auc).unwrap();
    let e = format!("{:#}", run_search(&s, &opts(&out, 1)).unwrap_err());
    assert!(e.contains("val_roc_auc") && e.contains("4 classes"), "{e}");
    assert!(!out.exists());
}

#[test]
fn a_diverging_trial_is_recorded_as_failed_and_the_search_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("div");
    let s = search(
        base(),
        &["optimizer=sgd", "lr=[1e37, 0.05]"],
        SearchToml { strategy: Some(Strategy::Grid), ..SearchToml::default() },
    )
    .unwrap();
    let r = run_search(&s, &opts(&out, 2)).unwrap().results.unwrap();
    assert_eq!(r.trials.len(), 3);
    let failed = &r.trials[1];
    assert_eq!(failed.status, TrialStatus::Failed);
    assert!(failed.reason.as_deref().unwrap().contains("diverged"), "{:?}", failed.reason);
    assert_eq!(r.trials[2].status, TrialStatus::Ok);
    assert_eq!(r.counts.get("failed"), Some(&1));
    assert!(r.best.is_some_and(|b| b.trial != 1));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.contains("failed") && csv.contains("diverged"), "{csv}");
}

#[test]
fn the_command_line_runs_a_search_and_merges_shards() {
    use tinylstm_cli::commands::tune::run_command_line;
    let dir = tempfile::tempdir().unwrap();
    let d = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    let space = dir.path().join("space.toml");
    std::fs::write(
        &space,
        "[base]\nsynthetic_samples = 200\nepochs = 2\nunits = [8]\n\n\
         [search]\nstrategy = \"grid\"\nobjective = \"val_accuracy\"\n\n\
         [space]\nlr = { low = 1e-3, high = 3e-2, scale = \"log\", points = 2 }\n",
    )
    .unwrap();
    let common = ["tinylstm", "tune", "--space", space.to_str().unwrap(), "--quiet"];
    for i in 0..2 {
        let shard = format!("{i}/2");
        let out = d(&format!("s{i}"));
        run_command_line([&common[..], &["--shard", &shard, "--out", &out]].concat()).unwrap();
    }
    run_command_line(["tinylstm", "tune", "merge", &d("s0"), &d("s1"), "--out", &d("all"), "-q"])
        .unwrap();
    let results = untimed(&dir.path().join("all/results.json"));
    assert_eq!(results["trials"].as_array().unwrap().len(), 3);
    assert_eq!(results["search"]["settings"]["objective"]["metric"], "val_accuracy");
    let toml = std::fs::read_to_string(dir.path().join("all/best.toml")).unwrap();
    assert!(toml.contains("synthetic_samples = 200"), "{toml}");
    // A flag error names the field.
    let x = d("x");
    let argv = [&common[..], &["--param", "lr=lin:1:0.5", "--out", &x]].concat();
    let e = format!("{:#}", run_command_line(argv).unwrap_err());
    assert!(e.contains("`lr`") && e.contains("empty range"), "{e}");
}
