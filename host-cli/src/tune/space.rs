//! The search space: per training setting a fixed value, a list of values, or a numeric range
//! (linear or log scale), parsed from TOML or `--param KEY=SPEC` flags, validated as a whole
//! before any trial runs, and sampled (random) or enumerated (grid).
//!
//! Keys are [`TrainArgs`] keys (`lr`, `optimizer`, `batch_size`, `l2`, `units`, `schedule`,
//! `decay_steps`, `embedding_dim`, `maxlen`, `epochs`, …; `-` and `_` are interchangeable).
//!
//! ```toml
//! [space]
//! lr = { low = 1e-4, high = 3e-2, scale = "log" }       # range: random uniform in log space
//! batch_size = [16, 32, 64]                             # list: grid axis / random choice
//! optimizer = ["adam", "sgd+momentum", "nesterov"]
//! l2 = { low = 1e-6, high = 1e-3, scale = "log", points = 4 }   # a range a grid can enumerate
//! units = [[32], [64], [64, 32]]                        # choices of layer sizes
//! # units = { layers = [{ low = 16, high = 128, scale = "log" }, [16, 32]] }  # per layer
//! schedule = "cosine"                                   # fixed value
//! ```

use crate::settings::{HeadKind, SpecInput, TrainArgs};
use anyhow::{anyhow, bail, Context, Result};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Spacing of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Uniform in the value.
    Linear,
    /// Uniform in the logarithm of the value (learning rates, penalties).
    Log,
}

/// How one setting varies between trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dist {
    /// The same value in every trial.
    Fixed(Value),
    /// One of these values (a grid axis; a uniform choice for random sampling).
    Choice(Vec<Value>),
    /// A numeric range `[low, high]`.
    Range {
        /// Lower end (included).
        low: f64,
        /// Upper end (included).
        high: f64,
        /// Linear or log spacing.
        scale: Scale,
        /// The setting is an integer: samples are rounded.
        integer: bool,
        /// Evenly spaced points (in the scale) a grid search enumerates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        points: Option<usize>,
    },
    /// `units` only: one distribution per LSTM layer.
    Layers(Vec<Dist>),
}

/// One searched setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The [`TrainArgs`] key (`lr`, `batch_size`, …).
    pub key: String,
    /// How it varies.
    pub dist: Dist,
}

/// The searched settings, sorted by key (sampling and enumeration go in this order).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// Parameters, sorted by key, each key once.
    pub params: Vec<Param>,
}

/// Settings that must be the same in every trial (the data and its split define what the
/// validation metric means; seeds and threads are set per trial by the search).
const NOT_SEARCHABLE: &[(&str, &str)] = &[
    ("data", "the data"),
    ("test", "the data"),
    ("synthetic_samples", "the data"),
    ("channels", "the data"),
    ("label_column", "the data"),
    ("text_column", "the data"),
    ("header", "the data"),
    ("classes", "the data"),
    ("task", "the data"),
    ("lookback", "the data"),
    ("horizon", "the data"),
    ("season", "the data"),
    ("valid_split", "the validation split"),
    ("test_split", "the validation split"),
    ("split_seed", "the validation split"),
    ("split", "the validation split"),
    ("seed", "the trial seeds (derived from the search seed and the trial number)"),
    ("threads", "the thread count (set --threads for every trial)"),
];

/// A key as [`TrainArgs`] spells it: `-` → `_`, `learning_rate` → `lr`.
pub fn normalize_key(key: &str) -> String {
    let k = key.trim().replace('-', "_");
    if k == "learning_rate" {
        "lr".into()
    } else {
        k
    }
}

/// A value as the setting takes it: a single number for `units` is one layer; optimizer
/// aliases (`sgd+momentum`) are the CLI's names.
fn normalize_value(key: &str, v: Value) -> Value {
    match (key, v) {
        ("units", Value::Number(n)) => Value::Array(vec![Value::Number(n)]),
        ("optimizer", Value::String(s)) => {
            let l = s.trim().to_ascii_lowercase();
            let name = match l.as_str() {
                "sgd+momentum" | "sgd_momentum" | "sgd-momentum" | "momentum" => "sgd+momentum",
                "sgd+nesterov" | "sgd_nesterov" | "sgd-nesterov" => "nesterov",
                "gd" | "gradient_descent" => "sgd",
                _ => l.as_str(),
            };
            Value::String(name.to_string())
        }
        (_, v) => v,
    }
}

/// A TOML value of parameter `key` as JSON. JSON has no NaN or infinity (they would become
/// `null`, that is "not given": the default), so a non-finite float anywhere in it is an error.
fn toml_to_json(key: &str, v: &toml::Value) -> Result<Value> {
    fn first_non_finite(v: &toml::Value) -> Option<f64> {
        match v {
            toml::Value::Float(f) if !f.is_finite() => Some(*f),
            toml::Value::Array(a) => a.iter().find_map(first_non_finite),
            toml::Value::Table(t) => t.values().find_map(first_non_finite),
            _ => None,
        }
    }
    if let Some(f) = first_non_finite(v) {
        bail!("`{key}`: {f} is not a finite number");
    }
    serde_json::to_value(v).with_context(|| format!("`{key}`: {v}"))
}

/// `base` with `key` set to `value` (the error names the key and value).
pub fn with_value(base: &TrainArgs, key: &str, value: &Value) -> Result<TrainArgs> {
    with_values(base, std::iter::once((key, value)))
}

/// `base` with every `(key, value)` set ([`TrainArgs::with_values`]).
pub fn with_values<'a>(
    base: &TrainArgs,
    values: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Result<TrainArgs> {
    base.with_values(values)
}

/// The value of `key` in `args` as it serialises (`null` when unset).
/// Numbers are the shortest decimals of the setting's own type (`lr = 0.003` rather than the
/// f32's exact binary value widened to f64).
pub fn value_of(args: &TrainArgs, key: &str) -> Value {
    serde_json::to_string(args)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v.get(key).cloned())
        .unwrap_or(Value::Null)
}

/// Kind of value a setting takes, found by trying values on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Float,
    Integer,
    Other,
}

fn kind_of(key: &str) -> Kind {
    let ok = |v: Value| with_value(&TrainArgs::default(), key, &normalize_value(key, v)).is_ok();
    if ok(serde_json::json!(1.5)) {
        Kind::Float
    } else if ok(serde_json::json!(2)) {
        Kind::Integer
    } else {
        Kind::Other
    }
}

/// Checks settings assembled for a search (the merged base, each value of the space on the
/// base, each trial): [`TrainArgs::validate`], then the model's shape as far as it is known
/// without data. Errors name the flag.
pub fn check_args(args: &TrainArgs) -> Result<()> {
    args.validate().map_err(|e| e.as_flag_error())?;
    let classes = if args.model.head == Some(HeadKind::Linear) { None } else { Some(2) };
    let input = match args.data.channels {
        Some(c) => SpecInput::Channels(c.max(1)),
        None if args.data.file.is_none() => SpecInput::Channels(crate::data::synthetic::CHANNELS),
        None => SpecInput::Tokens { vocab: 2 },
    };
    args.spec(input, classes)?;
    Ok(())
}

fn parse_dist(key: &str, v: &toml::Value, allow_layers: bool) -> Result<Dist> {
    match v {
        toml::Value::Array(items) => {
            if items.is_empty() {
                bail!("`{key}`: the list of values is empty");
            }
            let values = items.iter().map(|i| Ok(normalize_value(key, toml_to_json(key, i)?)));
            Ok(Dist::Choice(values.collect::<Result<_>>()?))
        }
        toml::Value::Table(t) => {
            let known = ["value", "values", "low", "high", "scale", "points", "layers"];
            if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
                bail!(
                    "`{key}`: unknown entry `{k}` (a parameter is a value, a list, \
                     {{ values = [..] }}, {{ low, high, scale = \"linear\"|\"log\", points }}, \
                     or for units {{ layers = [..] }})"
                );
            }
            if let Some(layers) = t.get("layers") {
                if !allow_layers || key != "units" {
                    bail!("`{key}`: `layers` is only for `units`");
                }
                let list = layers
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| anyhow!("`units`: `layers` must be a non-empty list"))?;
                let mut out = Vec::new();
                for (i, l) in list.iter().enumerate() {
                    let d = parse_dist(&format!("units.layers[{i}]"), l, false)?;
                    out.push(d);
                }
                return Ok(Dist::Layers(out));
            }
            if let Some(v) = t.get("value") {
                return Ok(Dist::Fixed(normalize_value(key, toml_to_json(key, v)?)));
            }
            if let Some(v) = t.get("values") {
                return parse_dist(key, v, false);
            }
            let num = |name: &str| -> Result<f64> {
                match t.get(name) {
                    Some(toml::Value::Integer(i)) => Ok(*i as f64),
                    Some(toml::Value::Float(f)) => Ok(*f),
                    Some(other) => bail!("`{key}`: `{name}` must be a number, got {other}"),
                    None => bail!("`{key}`: a range needs both `low` and `high`"),
                }
            };
            let (low, high) = (num("low")?, num("high")?);
            let scale = match t.get("scale").map(|s| s.as_str()) {
                None => Scale::Linear,
                Some(Some("linear" | "lin")) => Scale::Linear,
                Some(Some("log")) => Scale::Log,
                Some(other) => bail!(
                    "`{key}`: scale must be \"linear\" or \"log\", got {}",
                    other.map_or_else(|| "a non-string".to_string(), |s| format!("{s:?}"))
                ),
            };
            let points = match t.get("points") {
                None => None,
                Some(toml::Value::Integer(n)) if *n >= 1 => Some(*n as usize),
                Some(other) => bail!("`{key}`: points must be a positive integer, got {other}"),
            };
            Ok(Dist::Range { low, high, scale, integer: false, points })
        }
        other => Ok(Dist::Fixed(normalize_value(key, toml_to_json(key, other)?))),
    }
}

/// Parses one `--param KEY=SPEC` flag. SPEC is a TOML value (`[16, 32]`,
/// `{ low = 1e-4, high = 1e-1, scale = "log" }`, `"cosine"`, `0.01`), or a shorthand:
/// `log:LOW:HIGH[:POINTS]`, `lin:LOW:HIGH[:POINTS]`, or a comma-separated list
/// (`adam,sgd,nesterov`, `16,32,64`; one item is a fixed value).
pub fn parse_flag(flag: &str) -> Result<(String, toml::Value)> {
    let (k, spec) = flag
        .split_once('=')
        .ok_or_else(|| anyhow!("--param {flag:?}: expected KEY=SPEC, e.g. lr=log:1e-4:1e-1"))?;
    let key = normalize_key(k);
    let spec = spec.trim();
    if let Ok(t) = toml::from_str::<toml::Table>(&format!("v = {spec}")) {
        if let Some(v) = t.get("v") {
            return Ok((key, v.clone()));
        }
    }
    let scalar = |s: &str| -> toml::Value {
        toml::from_str::<toml::Table>(&format!("v = {s}"))
            .ok()
            .and_then(|t| t.get("v").cloned())
            .unwrap_or_else(|| toml::Value::String(s.to_string()))
    };
    for (prefix, scale) in [("log:", "log"), ("lin:", "linear"), ("linear:", "linear")] {
        if let Some(rest) = spec.strip_prefix(prefix) {
            let parts: Vec<&str> = rest.split(':').collect();
            if !(2..=3).contains(&parts.len()) {
                bail!("--param {key}: expected {prefix}LOW:HIGH[:POINTS], got {spec:?}");
            }
            let mut t = toml::Table::new();
            t.insert("low".into(), scalar(parts[0]));
            t.insert("high".into(), scalar(parts[1]));
            t.insert("scale".into(), toml::Value::String(scale.into()));
            if let Some(p) = parts.get(2) {
                t.insert("points".into(), scalar(p));
            }
            return Ok((key, toml::Value::Table(t)));
        }
    }
    let items: Vec<toml::Value> =
        spec.split(',').map(str::trim).filter(|s| !s.is_empty()).map(scalar).collect();
    match items.len() {
        0 => bail!("--param {key}: no value given"),
        1 => Ok((key, items.into_iter().next().unwrap_or(toml::Value::Boolean(false)))),
        _ => Ok((key, toml::Value::Array(items))),
    }
}

impl Space {
    /// Builds a space from `(key, TOML value)` entries (a `[space]` table, then flags: a later
    /// entry for the same key replaces an earlier one). Checks the form of every entry; the
    /// values are checked by [`Space::validate`].
    pub fn from_entries(entries: impl IntoIterator<Item = (String, toml::Value)>) -> Result<Space> {
        let mut map: BTreeMap<String, toml::Value> = BTreeMap::new();
        for (k, v) in entries {
            map.insert(normalize_key(&k), v);
        }
        let mut params = Vec::new();
        for (key, v) in map {
            let dist = parse_dist(&key, &v, true).context("search space")?;
            params.push(Param { key, dist });
        }
        Ok(Space { params })
    }

    /// Parses a `[space]` table.
    pub fn from_toml(table: &toml::Table) -> Result<Space> {
        Space::from_entries(table.iter().map(|(k, v)| (k.clone(), v.clone())))
    }

    /// The parameter for `key`.
    pub fn get(&self, key: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.key == key)
    }

    /// Keys whose value varies between trials (not fixed).
    pub fn varying_keys(&self) -> Vec<&str> {
        self.params
            .iter()
            .filter(|p| !matches!(p.dist, Dist::Fixed(_)))
            .map(|p| p.key.as_str())
            .collect()
    }

    /// The space has only fixed values and lists (a grid search can enumerate it without
    /// `points`).
    pub fn is_discrete(&self) -> bool {
        self.params.iter().all(|p| p.dist.is_discrete())
    }

    /// Checks every parameter before any trial runs: the key is a training setting that may
    /// vary, every listed value and both ends of every range are valid values of the setting
    /// on top of `base` (positive learning rate, known optimizer, non-negative penalties, …),
    /// ranges are not empty, log ranges are positive, ranges are on numeric settings. Marks
    /// integer ranges. Errors name the parameter.
    pub fn validate(&mut self, base: &TrainArgs) -> Result<()> {
        for p in &mut self.params {
            let key = p.key.clone();
            let fail = |e: anyhow::Error| anyhow!("search space, parameter `{key}`: {e:#}");
            if let Some((_, what)) = NOT_SEARCHABLE.iter().find(|(k, _)| *k == key) {
                return Err(fail(anyhow!(
                    "cannot be searched: it fixes {what}; set it for all trials instead"
                )));
            }
            let kind = kind_of(&key);
            validate_dist(&key, &mut p.dist, kind, base, true).map_err(fail)?;
        }
        Ok(())
    }

    /// Every combination of the parameters' grid values, in key order (the last key varies
    /// fastest). Ranges need `points`.
    pub fn grid(&self) -> Result<Vec<BTreeMap<String, Value>>> {
        let mut axes = Vec::new();
        for p in &self.params {
            let values = p.dist.grid_values(&p.key)?;
            axes.push((p.key.clone(), values));
        }
        let mut out = vec![BTreeMap::new()];
        for (key, values) in &axes {
            let mut next = Vec::with_capacity(out.len() * values.len());
            for combo in &out {
                for v in values {
                    let mut c = combo.clone();
                    c.insert(key.clone(), v.clone());
                    next.push(c);
                }
            }
            out = next;
        }
        Ok(out)
    }

    /// Number of grid combinations (without building them), saturating.
    pub fn grid_size(&self) -> Result<usize> {
        let mut n = 1usize;
        for p in &self.params {
            n = n.saturating_mul(p.dist.grid_values(&p.key)?.len());
        }
        Ok(n)
    }

    /// One random draw of every parameter, in key order, from `seed`.
    pub fn sample(&self, seed: u64) -> BTreeMap<String, Value> {
        let mut rng = Pcg64::seed_from_u64(seed);
        self.params.iter().map(|p| (p.key.clone(), p.dist.sample(&p.key, &mut rng))).collect()
    }
}

fn validate_dist(
    key: &str,
    dist: &mut Dist,
    kind: Kind,
    base: &TrainArgs,
    top: bool,
) -> Result<()> {
    let check = |v: &Value| -> Result<()> {
        let v = if top { v.clone() } else { Value::Array(vec![v.clone()]) };
        let args = with_value(base, key.split('.').next().unwrap_or(key), &v)?;
        check_args(&args).with_context(|| format!("value {v}"))
    };
    match dist {
        Dist::Fixed(v) => check(v),
        Dist::Choice(values) => {
            for v in values.iter() {
                check(v)?;
            }
            Ok(())
        }
        Dist::Layers(layers) => {
            if layers.len() > tinylstm::MAX_LAYERS {
                bail!("{} layers; at most {} are supported", layers.len(), tinylstm::MAX_LAYERS);
            }
            for (i, l) in layers.iter_mut().enumerate() {
                validate_dist(key, l, Kind::Integer, base, false)
                    .with_context(|| format!("layer {}", i + 1))?;
            }
            Ok(())
        }
        Dist::Range { low, high, scale, integer, points } => {
            if kind == Kind::Other {
                bail!("a range needs a numeric setting; give a list of values instead");
            }
            if !(low.is_finite() && high.is_finite()) {
                bail!("range ends must be finite numbers, got {low}..{high}");
            }
            if low >= high {
                bail!("empty range: low {low} is not below high {high}");
            }
            if *scale == Scale::Log && *low <= 0.0 {
                bail!("a log-scale range needs low > 0, got {low}");
            }
            *integer = kind == Kind::Integer || key == "units";
            if *integer && low.ceil() > high.floor() {
                bail!("no integer between {low} and {high}");
            }
            if let Some(p) = points {
                if *p < 2 {
                    bail!("points must be at least 2 (a single value is a fixed value)");
                }
            }
            let ends = if *integer {
                [Value::from(low.ceil() as i64), Value::from(high.floor() as i64)]
            } else {
                [Value::from(*low), Value::from(*high)]
            };
            for v in &ends {
                check(v)?;
            }
            Ok(())
        }
    }
}

impl Dist {
    fn is_discrete(&self) -> bool {
        match self {
            Dist::Fixed(_) | Dist::Choice(_) => true,
            Dist::Range { points, .. } => points.is_some(),
            Dist::Layers(l) => l.iter().all(Dist::is_discrete),
        }
    }

    fn grid_values(&self, key: &str) -> Result<Vec<Value>> {
        Ok(match self {
            Dist::Fixed(v) => vec![v.clone()],
            Dist::Choice(v) => v.clone(),
            Dist::Range { low, high, scale, integer, points } => {
                let n = points.ok_or_else(|| {
                    anyhow!(
                        "search space, parameter `{key}`: a grid search needs a list of values, \
                         or `points = N` on the range"
                    )
                })?;
                let mut out: Vec<Value> = Vec::new();
                for i in 0..n {
                    let t = i as f64 / (n - 1) as f64;
                    let x = match scale {
                        Scale::Linear => low + t * (high - low),
                        Scale::Log => (low.ln() + t * (high.ln() - low.ln())).exp(),
                    };
                    let v = number(x, *integer, *low, *high);
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
                out.into_iter().map(|v| normalize_value(key, v)).collect()
            }
            Dist::Layers(layers) => {
                let mut out: Vec<Vec<Value>> = vec![Vec::new()];
                for l in layers {
                    let vals = l.grid_values(key)?;
                    let mut next = Vec::new();
                    for prefix in &out {
                        for v in &vals {
                            let mut p = prefix.clone();
                            p.push(match v {
                                Value::Array(a) if a.len() == 1 => a[0].clone(),
                                other => other.clone(),
                            });
                            next.push(p);
                        }
                    }
                    out = next;
                }
                out.into_iter().map(Value::Array).collect()
            }
        })
    }

    fn sample(&self, key: &str, rng: &mut Pcg64) -> Value {
        match self {
            Dist::Fixed(v) => v.clone(),
            Dist::Choice(v) => v[rng.random_range(0..v.len())].clone(),
            Dist::Range { low, high, scale, integer, .. } => {
                let x = match (scale, integer) {
                    (Scale::Linear, true) => {
                        rng.random_range(low.ceil() as i64..=high.floor() as i64) as f64
                    }
                    (Scale::Linear, false) => low + rng.random::<f64>() * (high - low),
                    (Scale::Log, _) => {
                        (low.ln() + rng.random::<f64>() * (high.ln() - low.ln())).exp()
                    }
                };
                normalize_value(key, number(x, *integer, *low, *high))
            }
            Dist::Layers(layers) => Value::Array(
                layers
                    .iter()
                    .map(|l| match l.sample(key, rng) {
                        Value::Array(a) if a.len() == 1 => a[0].clone(),
                        other => other,
                    })
                    .collect(),
            ),
        }
    }
}

/// `x` as a JSON number: rounded into `[low, high]` for integers, else clamped (log-space
/// arithmetic can step a hair outside).
fn number(x: f64, integer: bool, low: f64, high: f64) -> Value {
    if integer {
        Value::from(x.round().clamp(low.ceil(), high.floor()) as i64)
    } else {
        Value::from(x.clamp(low, high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space(flags: &[&str]) -> Space {
        let mut s = Space::from_entries(flags.iter().map(|f| parse_flag(f).unwrap())).unwrap();
        s.validate(&TrainArgs::default()).unwrap();
        s
    }

    #[test]
    fn flags_parse_to_lists_ranges_and_values() {
        let s = space(&[
            "lr=log:1e-4:1e-1",
            "optimizer=adam,sgd+momentum",
            "batch-size=[16, 32]",
            "units=32,64",
            "schedule=cosine",
            "l2=lin:0:1e-3:3",
            "epochs=lin:2:4",
        ]);
        let get = |k: &str| s.get(k).unwrap().dist.clone();
        assert!(matches!(get("lr"), Dist::Range { scale: Scale::Log, integer: false, .. }));
        assert_eq!(get("optimizer"), Dist::Choice(vec![json!("adam"), json!("sgd+momentum")]));
        assert_eq!(get("batch_size"), Dist::Choice(vec![json!(16), json!(32)]));
        assert_eq!(get("units"), Dist::Choice(vec![json!([32]), json!([64])]));
        assert_eq!(get("schedule"), Dist::Fixed(json!("cosine")));
        assert!(matches!(get("epochs"), Dist::Range { integer: true, .. }));
        assert_eq!(s.varying_keys().len(), 6);
    }

    /// NaN and infinity (which JSON would turn into "not given") and out-of-range floats are
    /// refused, naming the parameter, in every form a space can take them.
    #[test]
    fn non_finite_and_out_of_range_floats_are_refused() {
        let err = |flags: &[&str]| -> String {
            let entries: Result<Vec<_>> = flags.iter().map(|f| parse_flag(f)).collect();
            let r = entries.and_then(Space::from_entries).and_then(|mut s| {
                s.validate(&TrainArgs::default())?;
                Ok(s)
            });
            format!("{:#}", r.expect_err(&format!("{flags:?} accepted")))
        };
        for (flag, want) in [
            ("lr=inf", "`lr`: inf is not a finite number"),
            ("lr=nan", "`lr`: NaN is not a finite number"),
            ("lr=[1e-3, -inf]", "`lr`: -inf is not a finite number"),
            ("l2={ values = [0.0, nan] }", "`l2`: NaN is not a finite number"),
            ("momentum={ value = inf }", "`momentum`: inf is not a finite number"),
            (
                "lr=log:1e-4:inf",
                "parameter `lr`: range ends must be finite numbers, got 0.0001..inf",
            ),
            ("lr=[1e39]", "parameter `lr`: value 1e+39: --lr must be a finite number > 0 (an f32"),
            ("min_delta=[0.0, -0.5]", "--min-delta must be a finite number ≥ 0, got -0.5"),
        ] {
            let e = err(&[flag]);
            assert!(e.contains(want), "{flag}: {e}");
        }
        let e = format!(
            "{:#}",
            super::super::plan::parse_search_file("[base]\nlr = inf\n", std::path::Path::new("."))
                .unwrap_err()
        );
        assert_eq!(e, "[base] `lr` = inf: must be a finite number > 0 (an f32: at most 3.4e38)");
    }

    #[test]
    fn grid_and_samples() {
        let s = space(&["l2=lin:0:1e-3:3", "units={ layers = [[8, 16], 4] }"]);
        let g = s.grid().unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g[0]["l2"], json!(0.0));
        assert_eq!(g[1]["units"], json!([16, 4]));
        let s = space(&[
            "lr=log:1e-4:1e-1",
            "batch_size=lin:8:64",
            "units={ layers = [{ low = 8, high = 64, scale = \"log\" }] }",
        ]);
        assert!(s.grid().is_err());
        for seed in 0..50 {
            let v = s.sample(seed);
            assert_eq!(v, s.sample(seed));
            let lr = v["lr"].as_f64().unwrap();
            assert!((1e-4..=1e-1).contains(&lr), "{lr}");
            let b = v["batch_size"].as_i64().unwrap();
            assert!((8..=64).contains(&b));
            let u = v["units"][0].as_i64().unwrap();
            assert!((8..=64).contains(&u));
        }
    }
}
