//! What a search is (base settings, space, strategy, objective) and the trials it runs: every
//! trial's settings and seed, grouped into brackets of successive-halving rungs, derived
//! deterministically from the search alone — so shards, resumed runs and merged results agree
//! on what trial `k` is.

use super::space::{check_args, with_values, Space};
use crate::settings::TrainArgs;
use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// How trials are chosen and scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every combination of the listed values (ranges need `points`).
    Grid,
    /// `trials` seeded random draws from the space.
    Random,
    /// Successive halving: `trials` random draws train a few epochs, the best 1/η continue
    /// for η times more epochs, and so on up to `--epochs`.
    Halving,
    /// Hyperband: several successive-halving brackets, from many short trials to few full ones.
    Hyperband,
}

impl std::fmt::Display for Strategy {
    /// The name `--strategy` takes (`hyperband`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => Ok(()),
        }
    }
}

impl std::fmt::Display for Direction {
    /// `minimize` or `maximize`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => Ok(()),
        }
    }
}

/// Whether lower or higher objective values are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Lower is better (losses, errors).
    #[value(alias = "min")]
    #[serde(alias = "min")]
    Minimize,
    /// Higher is better (accuracy, F1, AUC).
    #[value(alias = "max")]
    #[serde(alias = "max")]
    Maximize,
}

/// Validation metrics a search can optimise (what `eval` reports, on the validation split).
/// On the command line and in a search file each is named as results name it (`val_loss`,
/// `val_accuracy`, …), or without `val_` and by the short names of the aliases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    /// Loss with penalties (`val_loss`).
    #[value(name = "val_loss", alias = "loss")]
    Loss,
    /// Accuracy.
    #[value(name = "val_accuracy", aliases = ["accuracy", "acc", "val_acc"])]
    Accuracy,
    /// Macro-averaged F1.
    #[value(name = "val_macro_f1", aliases = ["macro_f1", "f1", "val_f1"])]
    MacroF1,
    /// Macro-averaged precision.
    #[value(name = "val_macro_precision", aliases = ["macro_precision", "precision", "val_precision"])]
    MacroPrecision,
    /// Macro-averaged recall.
    #[value(name = "val_macro_recall", aliases = ["macro_recall", "recall", "val_recall"])]
    MacroRecall,
    /// ROC AUC (binary tasks).
    #[value(name = "val_roc_auc", aliases = ["roc_auc", "auc", "val_auc"])]
    RocAuc,
    /// Mean absolute error (regression).
    #[value(name = "val_mae", alias = "mae")]
    Mae,
}

impl Metric {
    /// Every metric, for messages.
    pub const ALL: [Metric; 7] = [
        Metric::Loss,
        Metric::Accuracy,
        Metric::MacroF1,
        Metric::MacroPrecision,
        Metric::MacroRecall,
        Metric::RocAuc,
        Metric::Mae,
    ];

    /// Parses a metric name as the command line does (the names and aliases of [`Metric`],
    /// any case, `-` for `_`).
    pub fn parse(name: &str) -> Result<Metric> {
        let n = name.trim().replace('-', "_");
        match <Metric as ValueEnum>::from_str(&n, true) {
            Ok(m) => Ok(m),
            Err(_) => bail!(
                "objective: unknown metric {name:?}; one of {}",
                Metric::ALL.map(Metric::name).join(", ")
            ),
        }
    }

    /// The name results use (`val_loss`, `val_accuracy`, …).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "val_loss",
            Metric::Accuracy => "val_accuracy",
            Metric::MacroF1 => "val_macro_f1",
            Metric::MacroPrecision => "val_macro_precision",
            Metric::MacroRecall => "val_macro_recall",
            Metric::RocAuc => "val_roc_auc",
            Metric::Mae => "val_mae",
        }
    }

    /// Minimise losses and errors, maximise the rest.
    pub fn default_direction(self) -> Direction {
        match self {
            Metric::Loss | Metric::Mae => Direction::Minimize,
            _ => Direction::Maximize,
        }
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let s = String::deserialize(d)?;
        Metric::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What the search optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objective {
    /// The validation metric.
    pub metric: Metric,
    /// Minimise or maximise it.
    pub direction: Direction,
}

impl Objective {
    /// Orders `(value, trial)` pairs best first: by value in the objective's direction, ties
    /// broken by the lower trial number (so the best trial does not depend on finishing order).
    pub fn cmp(&self, a: (f64, usize), b: (f64, usize)) -> std::cmp::Ordering {
        let by_value = match self.direction {
            Direction::Minimize => a.0.total_cmp(&b.0),
            Direction::Maximize => b.0.total_cmp(&a.0),
        };
        by_value.then(a.1.cmp(&b.1))
    }
}

/// The `[search]` table of a search file (and the matching flags); `None` means "default".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchToml {
    /// grid, random, halving or hyperband [default: grid for a space of lists, else random].
    pub strategy: Option<Strategy>,
    /// Trials to draw (random, halving); a subset size for grid [default: 20 random,
    /// η^(rungs−1) halving, every combination for grid].
    pub trials: Option<usize>,
    /// Seed of sampling and of the trial seeds [default: the training seed].
    pub seed: Option<u64>,
    /// Validation metric to optimise [default: val_loss].
    pub objective: Option<Metric>,
    /// minimize or maximize [default: minimize losses/errors, maximize the rest].
    pub direction: Option<Direction>,
    /// Halving rate η: each rung keeps the best 1/η [default: 3].
    pub eta: Option<usize>,
    /// Epochs of the first rung (halving, hyperband) [default: 1].
    pub min_epochs: Option<usize>,
    /// Hyperband rounds (each runs every bracket with fresh draws) [default: 1].
    pub rounds: Option<usize>,
    /// Add the base settings unchanged as trial 0, for comparison [default: true].
    pub baseline: Option<bool>,
}

impl SearchToml {
    /// `self` with every setting `over` gives replaced.
    pub fn overlaid(&self, over: &SearchToml) -> SearchToml {
        SearchToml {
            strategy: over.strategy.or(self.strategy),
            trials: over.trials.or(self.trials),
            seed: over.seed.or(self.seed),
            objective: over.objective.or(self.objective),
            direction: over.direction.or(self.direction),
            eta: over.eta.or(self.eta),
            min_epochs: over.min_epochs.or(self.min_epochs),
            rounds: over.rounds.or(self.rounds),
            baseline: over.baseline.or(self.baseline),
        }
    }
}

/// Resolved search settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Strategy.
    pub strategy: Strategy,
    /// Trials asked for (see [`SearchToml::trials`]).
    pub trials: Option<usize>,
    /// Search seed.
    pub seed: u64,
    /// Objective.
    pub objective: Objective,
    /// Halving rate.
    pub eta: usize,
    /// First-rung epochs.
    pub min_epochs: usize,
    /// Hyperband rounds.
    pub rounds: usize,
    /// Trial 0 is the base settings.
    pub baseline: bool,
}

/// A whole search: everything that decides its trials and their results (not how many run in
/// parallel or on which machine).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// Settings every trial starts from.
    pub base: TrainArgs,
    /// What varies.
    pub space: Space,
    /// Strategy, objective, seeds.
    pub settings: Settings,
}

/// The contents of a search file: `[base]` (training settings), `[search]`, `[space]`.
#[derive(Clone, Debug, Default)]
pub struct SearchFile {
    /// `[base]`, with data paths made relative to the file's folder.
    pub base: TrainArgs,
    /// `[search]`.
    pub search: SearchToml,
    /// `[space]`.
    pub space: toml::Table,
}

/// Reads a search file (unknown tables or keys are errors naming them).
pub fn read_search_file(path: &Path) -> Result<SearchFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read search file {}", path.display()))?;
    parse_search_file(&text, path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("search file {}", path.display()))
}

/// Parses search-file text; relative data paths in `[base]` are taken relative to `dir`.
pub fn parse_search_file(text: &str, dir: &Path) -> Result<SearchFile> {
    let mut table: toml::Table = toml::from_str(text)?;
    let mut out = SearchFile::default();
    if let Some(b) = table.remove("base") {
        let mut base = match b {
            toml::Value::Table(t) => TrainArgs::from_table(t).map_err(|e| anyhow!("[base] {e}"))?,
            _ => bail!("[base] must be a table"),
        };
        if let Err(bad) = base.validate() {
            bail!("[base] {bad}");
        }
        for p in [&mut base.data.file, &mut base.data.test].into_iter().flatten() {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        out.base = base;
    }
    if let Some(s) = table.remove("search") {
        out.search = s.try_into().context("[search]")?;
    }
    if let Some(s) = table.remove("space") {
        out.space = match s {
            toml::Value::Table(t) => t,
            _ => bail!("[space] must be a table"),
        };
    }
    if let Some(k) = table.keys().next() {
        bail!("unknown entry `{k}` (a search file has [base], [search] and [space])");
    }
    Ok(out)
}

/// One trial.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// Trial number (0-based; 0 is the baseline when there is one).
    pub id: usize,
    /// Its bracket (the unit of sharding and of successive halving).
    pub bracket: usize,
    /// Training seed (initialisation and shuffling).
    pub seed: u64,
    /// The base settings unchanged.
    pub baseline: bool,
    /// The drawn values of the space's parameters.
    pub params: BTreeMap<String, Value>,
    /// Complete training settings.
    pub args: TrainArgs,
}

/// A group of trials trained through the same rungs.
#[derive(Clone, Debug, PartialEq)]
pub struct Bracket {
    /// Bracket number.
    pub id: usize,
    /// Its trials.
    pub trials: Vec<usize>,
    /// Epochs at each rung (one rung: train to the end, no halving).
    pub rungs: Vec<usize>,
}

/// Every trial of a search, in brackets.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Trials by number.
    pub trials: Vec<Trial>,
    /// Brackets by number.
    pub brackets: Vec<Bracket>,
}

/// Mixes two numbers into a well-spread seed (SplitMix64 finaliser).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The training seed of trial `id` of a search seeded `seed` (32 bits: friendly in configs).
pub fn trial_seed(seed: u64, id: usize) -> u64 {
    mix(seed ^ 0x7715_1A15_EED5, id as u64) & 0xFFFF_FFFF
}

fn sample_seed(seed: u64, id: usize) -> u64 {
    mix(seed ^ 0x5A3D_1E5E_A3C4, id as u64)
}

/// Epochs at each rung of a successive-halving schedule from `min` to `max` epochs: `max/η^s`,
/// …, `max/η`, `max` (rounded, increasing).
pub fn rung_epochs(max: usize, min: usize, eta: usize) -> Vec<usize> {
    let mut s = 0u32;
    while (min as u128) * (eta as u128).pow(s + 1) <= max as u128 {
        s += 1;
    }
    let mut out: Vec<usize> = Vec::new();
    for i in 0..=s {
        let r = (max as f64 / (eta as f64).powi((s - i) as i32)).round() as usize;
        let r = r.max(min).max(out.last().map_or(1, |l| l + 1)).min(max);
        if out.last() != Some(&r) {
            out.push(r);
        }
    }
    if out.last() != Some(&max) {
        out.push(max);
    }
    out
}

/// Largest grid enumerated.
const MAX_GRID: usize = 1_000_000;

impl Search {
    /// Resolves the settings and validates the space against `base` (before any trial runs:
    /// errors name the parameter or setting).
    pub fn new(base: TrainArgs, mut space: Space, toml: &SearchToml) -> Result<Search> {
        space.validate(&base)?;
        check_args(&base).context("base settings")?;
        let metric = toml.objective.unwrap_or(Metric::Loss);
        let objective =
            Objective { metric, direction: toml.direction.unwrap_or(metric.default_direction()) };
        let strategy =
            toml.strategy.unwrap_or(if space.is_discrete() && !space.params.is_empty() {
                Strategy::Grid
            } else {
                Strategy::Random
            });
        let eta = toml.eta.unwrap_or(3);
        if eta < 2 {
            bail!("search setting `eta` must be at least 2, got {eta}");
        }
        let min_epochs = toml.min_epochs.unwrap_or(1);
        if min_epochs == 0 {
            bail!("search setting `min_epochs` must be at least 1");
        }
        let rounds = toml.rounds.unwrap_or(1);
        if rounds == 0 {
            bail!("search setting `rounds` must be at least 1");
        }
        if toml.trials == Some(0) {
            bail!("search setting `trials` must be at least 1");
        }
        if let Some(t) = toml.trials {
            // A planned trial holds its settings (well under 4 KiB).
            crate::limits::Machine::detect()?.check_memory(
                "planning the trials (4 KiB each)",
                &format!("search setting `trials` = {t}"),
                (t as u64).checked_mul(4096),
            )?;
        }
        crate::limits::check_count("search setting `rounds`", rounds)?;
        crate::limits::check_count("search setting `eta`", eta)?;
        crate::limits::check_count("search setting `min_epochs`", min_epochs)?;
        if matches!(strategy, Strategy::Halving | Strategy::Hyperband)
            && space.get("epochs").is_some()
        {
            bail!(
                "search space, parameter `epochs`: {strategy} sets the epochs of every rung; give \
                 the largest with --epochs (or `epochs` in the base settings)"
            );
        }
        if strategy == Strategy::Grid {
            space.grid_size()?;
        }
        let settings = Settings {
            strategy,
            trials: toml.trials,
            seed: toml.seed.unwrap_or_else(|| base.seed()),
            objective,
            eta,
            min_epochs,
            rounds,
            baseline: toml.baseline.unwrap_or(true),
        };
        let search = Search { base, space, settings };
        search.plan()?;
        Ok(search)
    }

    /// Epochs of a full trial (`--epochs`, or its default).
    pub fn max_epochs(&self) -> usize {
        self.base.run.epochs.unwrap_or(if self.base.data.file.is_none() { 25 } else { 10 })
    }

    fn trial(
        &self,
        id: usize,
        bracket: usize,
        params: Option<BTreeMap<String, Value>>,
    ) -> Result<Trial> {
        let baseline = params.is_none();
        let params = params.unwrap_or_default();
        let mut args = with_values(&self.base, params.iter().map(|(k, v)| (k.as_str(), v)))
            .map_err(|e| anyhow!("trial {id}: {e:#}"))?;
        let seed = if baseline { self.base.seed() } else { trial_seed(self.settings.seed, id) };
        args.run.seed = Some(seed);
        args.data.split_seed = Some(self.base.split_seed());
        args.run.threads = Some(self.base.run.threads.unwrap_or(1));
        args.run.epochs = Some(match self.settings.strategy {
            Strategy::Halving | Strategy::Hyperband => self.max_epochs(),
            _ => args.run.epochs.unwrap_or_else(|| self.max_epochs()),
        });
        // Recorded values are the ones the settings hold (f32 learning rates, …).
        let params = params
            .keys()
            .map(|k| (k.clone(), super::space::value_of(&args, k)))
            .collect::<BTreeMap<_, _>>();
        check_args(&args).map_err(|e| {
            let desc: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            anyhow!("trial {id} ({}): {e:#}", desc.join(" "))
        })?;
        Ok(Trial { id, bracket, seed, baseline, params, args })
    }

    /// Every trial and bracket. Deterministic: the same search always gives the same plan.
    pub fn plan(&self) -> Result<Plan> {
        let s = &self.settings;
        let max = self.max_epochs();
        if max == 0 {
            bail!("--epochs must be at least 1");
        }
        if s.min_epochs > max {
            bail!("search setting `min_epochs` ({}) exceeds --epochs ({max})", s.min_epochs);
        }
        let mut trials: Vec<Trial> = Vec::new();
        let mut brackets: Vec<Bracket> = Vec::new();
        let first = usize::from(s.baseline);
        // Grid combinations (grid, and halving over a discrete space without `trials`).
        let grid = |limit: Option<usize>| -> Result<Vec<BTreeMap<String, Value>>> {
            let n = self.space.grid_size()?;
            if n > MAX_GRID {
                bail!(
                    "the grid has {n} combinations; give `trials` to draw a subset (or use random)"
                );
            }
            let all = self.space.grid()?;
            Ok(match limit {
                Some(k) if k < all.len() => {
                    let mut idx: Vec<usize> = (0..all.len()).collect();
                    idx.shuffle(&mut Pcg64::seed_from_u64(mix(s.seed, 0x6121D)));
                    let mut pick: Vec<usize> = idx.into_iter().take(k).collect();
                    pick.sort_unstable();
                    pick.into_iter().map(|i| all[i].clone()).collect()
                }
                _ => all,
            })
        };
        match s.strategy {
            Strategy::Grid | Strategy::Random => {
                let draws: Vec<Option<BTreeMap<String, Value>>> = if s.strategy == Strategy::Grid {
                    grid(s.trials)?.into_iter().map(Some).collect()
                } else {
                    (0..s.trials.unwrap_or(20))
                        .map(|i| Some(self.space.sample(sample_seed(s.seed, first + i))))
                        .collect()
                };
                let all = (if s.baseline { vec![None] } else { vec![] }).into_iter().chain(draws);
                for (id, params) in all.enumerate() {
                    let t = self.trial(id, id, params)?;
                    brackets.push(Bracket {
                        id,
                        trials: vec![id],
                        rungs: vec![t.args.run.epochs.unwrap_or(max)],
                    });
                    trials.push(t);
                }
            }
            Strategy::Halving => {
                let rungs = rung_epochs(max, s.min_epochs, s.eta);
                let default_n = s.eta.pow(rungs.len() as u32 - 1);
                let draws: Vec<BTreeMap<String, Value>> =
                    if self.space.is_discrete() && s.trials.is_none() {
                        grid(None)?
                    } else {
                        (0..s.trials.unwrap_or(default_n))
                            .map(|i| self.space.sample(sample_seed(s.seed, first + i)))
                            .collect()
                    };
                let all = (if s.baseline { vec![None] } else { vec![] })
                    .into_iter()
                    .chain(draws.into_iter().map(Some));
                for (id, params) in all.enumerate() {
                    trials.push(self.trial(id, 0, params)?);
                }
                brackets.push(Bracket { id: 0, trials: (0..trials.len()).collect(), rungs });
            }
            Strategy::Hyperband => {
                let full = rung_epochs(max, s.min_epochs, s.eta);
                let s_max = full.len() - 1;
                for _round in 0..s.rounds {
                    for sb in (0..=s_max).rev() {
                        let bracket = brackets.len();
                        let n = ((s_max + 1) as f64 * (s.eta as f64).powi(sb as i32)
                            / (sb + 1) as f64)
                            .ceil() as usize;
                        let mut ids = Vec::new();
                        if bracket == 0 && s.baseline {
                            trials.push(self.trial(0, 0, None)?);
                            ids.push(0);
                        }
                        for _ in 0..n {
                            let id = trials.len();
                            let params = self.space.sample(sample_seed(s.seed, id));
                            trials.push(self.trial(id, bracket, Some(params))?);
                            ids.push(id);
                        }
                        brackets.push(Bracket {
                            id: bracket,
                            trials: ids,
                            rungs: full[s_max - sb..].to_vec(),
                        });
                    }
                }
            }
        }
        Ok(Plan { trials, brackets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs() {
        assert_eq!(rung_epochs(27, 1, 3), vec![1, 3, 9, 27]);
        assert_eq!(rung_epochs(10, 1, 3), vec![1, 3, 10]);
        assert_eq!(rung_epochs(2, 1, 3), vec![2]);
        assert_eq!(rung_epochs(4, 2, 2), vec![2, 4]);
    }

    #[test]
    fn trial_seeds_are_stable_and_spread() {
        assert_eq!(trial_seed(42, 3), trial_seed(42, 3));
        assert_ne!(trial_seed(42, 3), trial_seed(42, 4));
        assert_ne!(trial_seed(42, 3), trial_seed(43, 3));
    }
}
