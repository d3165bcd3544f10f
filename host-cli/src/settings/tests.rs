//! Unit tests of the settings: flags, config files, merging and checks.

use super::*;
use std::path::PathBuf;

/// `base` changed by `set`.
fn with(base: TrainArgs, set: impl FnOnce(&mut TrainArgs)) -> TrainArgs {
    let mut t = base;
    set(&mut t);
    t
}

#[test]
fn flags_override_file_values() {
    let file = with(TrainArgs::default(), |t| {
        t.run.epochs = Some(3);
        t.optimizer.lr = Some(0.01);
    });
    let flags = with(TrainArgs::default(), |t| {
        t.optimizer.lr = Some(0.5);
    });
    let m = file.overlaid(&flags);
    assert_eq!(m.run.epochs, Some(3));
    assert_eq!(m.optimizer.lr, Some(0.5));
}

#[test]
fn toml_round_trip_and_unknown_keys() {
    let a = with(TrainArgs::default(), |t| {
        t.model.units = Some(vec![32, 16]);
        t.optimizer.kind = Some(OptimizerKind::Nesterov);
        t.run.monitor = Some(Monitor::ValAccuracy);
    });
    let text = a.to_toml();
    let b: TrainArgs = toml::from_str(&text).unwrap();
    assert_eq!(a, b);
    let err = toml::from_str::<TrainArgs>("epochz = 3").unwrap_err().to_string();
    assert!(err.contains("epochz"), "{err}");
}

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    args: TrainArgs,
}

fn parse_flags(args: &[&str]) -> Result<TrainArgs, String> {
    use clap::Parser;
    Flags::try_parse_from(std::iter::once("tinylstm").chain(args.iter().copied()))
        .map(|f| f.args)
        .map_err(|e| e.to_string())
}

/// Values every float setting refuses, and those its rule refuses too.
fn refused(rule: FloatRule, f32_setting: bool) -> Vec<&'static str> {
    let mut v = vec!["nan", "NaN", "inf", "-inf", "+infinity"];
    if f32_setting {
        v.push("1e39"); // beyond f32: reads as infinity
    }
    match rule {
        FloatRule::Finite => {}
        FloatRule::NonNegative => v.push("-1"),
        FloatRule::Fraction => v.extend(["-0.5", "1.5"]),
        FloatRule::Positive => v.extend(["0", "-1"]),
    }
    v
}

#[test]
fn float_flags_refuse_non_finite_and_out_of_range_values() {
    for (key, _, rule, f32_setting) in TrainArgs::default().floats() {
        let flag = format!("--{}", key.replace('_', "-"));
        let good = parse_flags(&[&flag, "0.5"]).unwrap_or_else(|e| panic!("{flag} 0.5: {e}"));
        let set = good.floats().into_iter().find(|f| f.0 == key).unwrap().1;
        assert_eq!(set, Some(0.5), "{flag}");
        for v in refused(rule, f32_setting) {
            let e = parse_flags(&[&flag, v]).expect_err(&format!("{flag} {v} accepted"));
            assert!(e.contains(&format!("invalid value '{v}' for '{flag} <")), "{e}");
            let problem = rule.problem(f64::NAN, f32_setting).unwrap();
            assert!(e.contains(problem), "{flag} {v}: {e}");
        }
    }
    // A value starting with `-` is read as the value, so the message is about it.
    let e = parse_flags(&["--min-delta", "-1"]).unwrap_err();
    assert!(e.contains("'--min-delta <MIN_DELTA>': must be a finite number ≥ 0"), "{e}");
    let e = parse_flags(&["--lr", "-1"]).unwrap_err();
    assert!(e.contains("'--lr <LR>': must be a finite number > 0"), "{e}");
    assert!(parse_flags(&["--lr", "0"]).is_err());
    assert_eq!(parse_flags(&["--learning-rate", "2e-3"]).unwrap().optimizer.lr, Some(2e-3));
}

/// Every flag that takes a number with a fraction (it accepts `0.5`, refuses `abc`) is one of
/// the checked float settings: a new float flag cannot skip the checks.
#[test]
fn every_float_flag_is_checked() {
    use clap::CommandFactory;
    let keys: Vec<&str> = TrainArgs::default().floats().iter().map(|f| f.0).collect();
    let mut floats = 0;
    for arg in Flags::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let flag = format!("--{long}");
        if parse_flags(&[&flag, "0.5"]).is_ok() && parse_flags(&[&flag, "abc"]).is_err() {
            assert!(keys.contains(&long.replace('-', "_").as_str()), "{flag} is not checked");
            floats += 1;
        }
    }
    assert_eq!(floats, keys.len());
}

#[test]
fn config_file_floats_are_checked_naming_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("tinylstm-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (key, _, rule, f32_setting) in TrainArgs::default().floats() {
        for v in refused(rule, f32_setting) {
            let path = dir.join(format!("{key}.toml"));
            // TOML spells the non-finite floats nan, +nan, inf, +inf, -inf.
            let toml_v = match v {
                "NaN" => "+nan",
                "+infinity" => "+inf",
                other => other,
            };
            std::fs::write(&path, format!("epochs = 2\n{key} = {toml_v}\n")).unwrap();
            let e = TrainArgs::from_toml_file(&path).expect_err(&format!("{key} = {v}"));
            let msg = format!("{e:#}");
            let want = format!("{}, line 2: `{key}` = ", path.display());
            assert!(msg.contains(&want), "{key} = {toml_v}: {msg}");
            let problem = rule.problem(f64::NAN, f32_setting).unwrap();
            assert!(msg.contains(problem), "{key} = {toml_v}: {msg}");
        }
        let path = dir.join("good.toml");
        std::fs::write(&path, format!("{key} = 0.5\n")).unwrap();
        assert!(TrainArgs::from_toml_file(&path).unwrap().invalid_float().is_none());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One check of a set of settings, `validate`, names the setting: as a config key
/// (`` `min_delta` = -0.5: … ``) or as a flag (`--min-delta must be …, got -0.5`).
#[test]
fn settings_built_in_code_are_checked_naming_the_flag() {
    let a = with(TrainArgs::default(), |t| {
        t.run.min_delta = Some(-0.5);
    });
    let e = a.validate().unwrap_err();
    assert_eq!(e.to_string(), "`min_delta` = -0.5: must be a finite number ≥ 0");
    assert_eq!(e.as_flag_error().to_string(), "--min-delta must be a finite number ≥ 0, got -0.5");
    let a = with(TrainArgs::default(), |t| {
        t.optimizer.clipnorm = Some(f32::INFINITY);
    });
    assert!(a
        .validate()
        .unwrap_err()
        .as_flag_error()
        .to_string()
        .starts_with("--clipnorm must be"));
    assert!(TrainArgs::default().validate().is_ok());
    assert_eq!(key_line("a = 1\n  lr=2\nlrx = 3", "lr"), Some(2));
    assert_eq!(key_line("lrx = 3", "lr"), None);
}

/// Every rule `validate` adds to the float rules, each naming its key: counts of at least 1,
/// the layer list, one clipping bound, and the core's ranges for the optimizer and schedule.
#[test]
fn validate_names_the_key_of_every_rule() {
    /// A change to the defaults, the key `validate` must name, the start of the value shown.
    type Case = (fn(&mut TrainArgs), &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (|t| t.optimizer.lr = Some(0.0), "lr", "0"),
        (|t| t.optimizer.l1 = Some(-0.1), "l1", "-0.1"),
        (|t| t.run.batch_size = Some(0), "batch_size", "0"),
        (|t| t.run.epochs = Some(0), "epochs", "0"),
        (|t| t.preprocessing.maxlen = Some(0), "maxlen", "0"),
        (|t| t.preprocessing.num_words = Some(0), "num_words", "0"),
        (|t| t.model.embedding_dim = Some(0), "embedding_dim", "0"),
        (|t| t.run.threads = Some(0), "threads", "0"),
        (|t| t.data.horizon = Some(0), "horizon", "0"),
        (|t| t.data.lookback = Some(0), "lookback", "0"),
        (|t| t.run.bptt_window = Some(0), "bptt_window", "0"),
        (|t| t.data.channels = Some(0), "channels", "0"),
        (|t| t.model.units = Some(vec![]), "units", "[]"),
        (|t| t.model.units = Some(vec![4, 0]), "units", "[4, 0]"),
        (|t| t.model.units = Some(vec![4; tinylstm::MAX_LAYERS + 1]), "units", "[4"),
        (
            |t| (t.optimizer.global_clipnorm, t.optimizer.clipvalue) = (Some(1.0), Some(0.5)),
            "global_clipnorm",
            "1",
        ),
        (|t| t.optimizer.clipvalue = Some(0.0), "clipvalue", "0"),
        (|t| t.optimizer.beta_1 = Some(1.0), "beta_1", "1"),
        (|t| t.optimizer.beta_2 = Some(-0.1), "beta_2", "-0.1"),
        (|t| t.optimizer.epsilon = Some(0.0), "epsilon", "0"),
        (|t| t.optimizer.weight_decay = Some(-1.0), "weight_decay", "-1"),
        (
            |t| {
                (t.optimizer.kind, t.optimizer.momentum) =
                    (Some(OptimizerKind::Momentum), Some(2.0))
            },
            "momentum",
            "2",
        ),
        (
            |t| {
                (t.optimizer.schedule, t.optimizer.decay_rate) =
                    (Some(ScheduleKind::Exponential), Some(0.0))
            },
            "decay_rate",
            "0",
        ),
        (
            |t| {
                (t.optimizer.schedule, t.optimizer.decay_steps) =
                    (Some(ScheduleKind::Cosine), Some(0))
            },
            "decay_steps",
            "0",
        ),
        (
            |t| (t.optimizer.schedule, t.optimizer.alpha) = (Some(ScheduleKind::Cosine), Some(1.5)),
            "alpha",
            "1.5",
        ),
        (
            |t| (t.optimizer.schedule, t.optimizer.step_size) = (Some(ScheduleKind::Step), Some(0)),
            "step_size",
            "0",
        ),
        (
            |t| (t.optimizer.schedule, t.optimizer.gamma) = (Some(ScheduleKind::Step), Some(0.0)),
            "gamma",
            "0",
        ),
    ];
    for (set, key, value) in cases {
        let mut a = TrainArgs::default();
        set(&mut a);
        let e = a.validate().expect_err(key);
        assert_eq!(e.key, key, "{e}");
        assert!(e.value.starts_with(value), "{key}: {e}");
        assert!(!e.problem.is_empty());
        assert!(e
            .as_flag_error()
            .to_string()
            .starts_with(&format!("--{} ", key.replace('_', "-"))));
    }
    // Values at the edge of each rule pass.
    let edge = with(TrainArgs::default(), |t| {
        t.optimizer.l1 = Some(0.0);
        t.optimizer.beta_1 = Some(0.0);
        t.optimizer.clipnorm = Some(1.0);
        t.run.bptt_window = Some(1);
        t.model.units = Some(vec![1; tinylstm::MAX_LAYERS]);
    });
    assert_eq!(edge.validate(), Ok(()));
}

#[test]
fn run_names_keep_data_sets_apart() {
    let name = |p: Option<&str>| {
        with(TrainArgs::default(), |t| {
            t.data.file = p.map(PathBuf::from);
        })
        .run_name()
    };
    assert_eq!(name(None), "synthetic");
    assert_eq!(name(Some("sms.csv")), "sms");
    assert_eq!(name(Some("./sms.csv")), "sms");
    assert_eq!(name(Some("../data/uea/BasicMotions/train.csv")), "BasicMotions-train");
    assert_ne!(name(Some("a/Epilepsy/train.csv")), name(Some("a/BasicMotions/train.csv")));
}

#[test]
fn closed_sets_are_enums_in_files_and_flags() {
    let e = toml::from_str::<TrainArgs>("padding = \"psot\"").unwrap_err().to_string();
    assert!(e.contains("psot") && e.contains("pre") && e.contains("post"), "{e}");
    assert!(parse_flags(&["--padding", "psot"]).is_err());
    let a = parse_flags(&["--padding", "post", "--monitor", "val_loss"]).unwrap();
    assert_eq!(
        (a.preprocessing.padding, a.run.monitor),
        (Some(Side::Post), Some(Monitor::ValLoss))
    );
    let file: TrainArgs = toml::from_str("monitor = \"val_loss\"").unwrap();
    assert_eq!(file.run.monitor, Some(Monitor::ValLoss));
    // sgd+momentum is one name in flags, files and tuning results (`momentum` also read).
    let a = parse_flags(&["--optimizer", "sgd+momentum"]).unwrap();
    assert_eq!(a.optimizer.kind, Some(OptimizerKind::Momentum));
    assert_eq!(parse_flags(&["--optimizer", "momentum"]).unwrap().optimizer.kind, a.optimizer.kind);
    assert!(a.to_toml().contains("optimizer = \"sgd+momentum\""), "{}", a.to_toml());
    let old: TrainArgs = toml::from_str("optimizer = \"momentum\"").unwrap();
    assert_eq!(old.optimizer.kind, Some(OptimizerKind::Momentum));
    // Messages use these names, not the Rust ones.
    assert_eq!(Monitor::ValLoss.to_string(), "val_loss");
    assert_eq!(OptimizerKind::Momentum.to_string(), "sgd+momentum");
    assert_eq!(Side::Pre.to_string(), "pre");
}

#[test]
fn data_settings_key_the_cache() {
    let a = with(TrainArgs::default(), |t| {
        t.optimizer.lr = Some(0.1);
        t.preprocessing.maxlen = Some(5);
    });
    let b = with(TrainArgs::default(), |t| {
        t.optimizer.lr = Some(0.2);
        t.preprocessing.maxlen = Some(5);
    });
    assert_eq!(a.data_key(), b.data_key());
    assert_eq!(a.preprocessing_key(), b.preprocessing_key());
    let c = with(a.clone(), |t| {
        t.preprocessing.maxlen = Some(6);
    });
    assert_ne!(a.preprocessing_key(), c.preprocessing_key());
    let d = with(a.clone(), |t| {
        t.data.split_seed = Some(1);
    });
    assert_ne!(a.data_key(), d.data_key());
    // Every data setting keys the loaded data, and the seed too when it seeds the split.
    let e = with(a.clone(), |t| t.data.season = Some(12));
    assert_ne!(a.data_key(), e.data_key());
    let f = with(a.clone(), |t| t.run.seed = Some(7));
    assert_ne!(a.data_key(), f.data_key());
    let g = with(f.clone(), |t| t.data.split_seed = Some(42));
    assert_eq!(a.data_key(), g.data_key(), "an explicit split seed equal to the default");
    let h = with(a.clone(), |t| t.model.head = Some(HeadKind::Linear));
    assert_ne!(a.data_key(), h.data_key(), "real-valued labels load differently");
    // Model, optimizer and run settings share the prepared data.
    let i = with(a.clone(), |t| {
        t.model.units = Some(vec![3]);
        t.optimizer.kind = Some(OptimizerKind::Sgd);
        t.run.epochs = Some(1);
    });
    assert_eq!(a.preprocessing_key(), i.preprocessing_key());
    let j = with(a.clone(), |t| t.preprocessing.padding = Some(Side::Post));
    assert_ne!(a.preprocessing_key(), j.preprocessing_key());
}

#[test]
fn invalid_values_name_the_flag() {
    let bad = with(TrainArgs::default(), |t| {
        t.optimizer.lr = Some(-1.0);
    });
    assert!(bad.validate().unwrap_err().as_flag_error().to_string().contains("--lr"));
    let two = with(TrainArgs::default(), |t| {
        t.optimizer.clipnorm = Some(1.0);
        t.optimizer.clipvalue = Some(1.0);
    });
    assert_eq!(
        two.validate().unwrap_err().as_flag_error().to_string(),
        "--clipnorm cannot be combined with clipvalue (--clipvalue): Keras takes one of \
         clipnorm, global_clipnorm, clipvalue, got 1"
    );
    let units = with(TrainArgs::default(), |t| {
        t.model.units = Some(vec![]);
    });
    assert!(units.spec(SpecInput::Channels(3), Some(4)).is_err());
}

/// The groups are flattened: the config keys and flags are one flat set, each owned by one
/// group, and a value outside a closed set names the key and the accepted values.
#[test]
fn groups_flatten_into_one_set_of_keys() {
    let text = "data = \"d.csv\"\nmaxlen = 5\nunits = [4]\nlr = 0.5\nepochs = 2\n";
    let a: TrainArgs = toml::from_str(text).unwrap();
    assert_eq!(a.data.file, Some(PathBuf::from("d.csv")));
    assert_eq!(a.preprocessing.maxlen, Some(5));
    assert_eq!(a.model.units, Some(vec![4]));
    assert_eq!(a.optimizer.lr, Some(0.5));
    assert_eq!(a.run.epochs, Some(2));
    let back = a.to_toml();
    assert!(!back.lines().any(|l| l.starts_with('[')), "flat keys, no tables: {back}");
    assert_eq!(toml::from_str::<TrainArgs>(&back).unwrap(), a);
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["optimizer"], serde_json::Value::Null, "the group is not a key");
    assert_eq!(json["lr"], serde_json::json!(0.5));
    let flags = parse_flags(&["--data", "d.csv", "--maxlen", "5", "--units", "4"]).unwrap();
    let flags = with(flags, |t| {
        t.optimizer.lr = Some(0.5);
        t.run.epochs = Some(2);
    });
    assert_eq!(flags, a);
    // One key in two groups would be read by the first only: every key is owned once.
    use clap::CommandFactory;
    let longs: Vec<String> =
        Flags::command().get_arguments().filter_map(|a| a.get_long().map(String::from)).collect();
    let mut sorted = longs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), longs.len());
    // Every flag is a config key (the file accepts what the flags accept).
    for long in &longs {
        let key = long.replace('-', "_");
        let probe: toml::Table = toml::from_str(&format!("{key} = 1")).unwrap();
        if let Err(e) = TrainArgs::from_table(probe) {
            assert!(!e.to_string().contains("unknown field"), "--{long}: {e}");
        }
    }
    let table: toml::Table = toml::from_str("padding = \"psot\"").unwrap();
    let e = TrainArgs::from_table(table).unwrap_err().to_string();
    assert!(e.starts_with("`padding` = \"psot\": unknown variant `psot`"), "{e}");
    assert!(e.contains("`pre`") && e.contains("`post`"), "{e}");
    let table: toml::Table = toml::from_str("optimizer = \"adamm\"").unwrap();
    let e = TrainArgs::from_table(table).unwrap_err().to_string();
    assert!(e.contains("`optimizer`") && e.contains("sgd+momentum"), "{e}");
    let table: toml::Table = toml::from_str("epochz = 1").unwrap();
    let e = TrainArgs::from_table(table).unwrap_err().to_string();
    assert!(e.contains("unknown field `epochz`"), "{e}");
}
