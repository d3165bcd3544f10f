//! Data loaded, split and preprocessed as the settings say ([`prepare_data`]), and the
//! [`DataCache`] through which runs whose data settings agree (file, split, maxlen, num_words, …)
//! share one copy.

use crate::data::split::{stratified_holdout, stratified_split, Split, SplitFractions};
use crate::data::synthetic::{self, SyntheticConfig};
use crate::data::{
    parse_sequence_csv, parse_text_csv, Column, DataError, Dataset, DatasetKind, LabelKind,
    SequenceCsvOptions, TextCsvOptions,
};
use crate::model_file::{ModelMeta, Task};
use crate::preprocess::normalize::Normalizer;
use crate::preprocess::tokenizer::{Tokenizer, TokenizerConfig};
use crate::preprocess::{Prepared, Preprocessor};
use crate::settings::{SettingsKey, SpecInput, TrainArgs};
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tinylstm::Mask;

fn column(s: &Option<String>, default: usize) -> Column {
    match s {
        None => Column::Index(default),
        Some(v) => v.parse().map(Column::Index).unwrap_or_else(|_| Column::Name(v.clone())),
    }
}

fn is_number(text: &str) -> bool {
    text.trim().parse::<f64>().is_ok()
}

/// A file read as text whose rows are all numbers is a sequence CSV given without
/// `--channels`: refuse it rather than train on numbers as words. Before loading (`data`
/// `None`): the first line that is not blank, when it has 3 or more fields, all numbers; after:
/// every text a number.
fn refuse_numbers_as_text(path: &Path, bytes: &[u8], data: Option<&Dataset>) -> Result<()> {
    let numeric = match data {
        Some(ds) => ds.texts().all(is_number),
        None => {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 16)]);
            let first = text.trim_start_matches('\u{feff}').lines().find(|l| !l.trim().is_empty());
            first.is_some_and(|l| {
                let fields: Vec<&str> = l.split(',').collect();
                fields.len() >= 3 && fields.iter().all(|f| is_number(f))
            })
        }
    };
    if numeric {
        bail!(
            "{}: every field is a number, so this is not a text file (label,text): for \
             sequences give --channels C (values per time step; a row is the label, then T×C \
             values)",
            path.display()
        );
    }
    Ok(())
}

/// Loads a data file as the args say (text unless `--channels`; class labels as integers or
/// names, or real numbers).
pub fn load(path: &Path, args: &TrainArgs, real_labels: bool) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound { path: path.to_owned() },
        _ => DataError::Io { path: path.to_owned(), source: e },
    })?;
    let labels = if real_labels { LabelKind::Real } else { LabelKind::Named };
    load_bytes(path, &bytes, args, labels)
}

/// Parses CSV bytes as the args say; `path` names them in errors (`<stdin>` for standard
/// input).
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    args: &TrainArgs,
    labels: LabelKind,
) -> Result<Dataset> {
    if let Some(c) = args.data.channels {
        refuse_unused(
            &format!("sequence data (--channels {c})"),
            &[
                ("--label-column", args.data.label_column.is_some()),
                ("--text-column", args.data.text_column.is_some()),
            ],
        )
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    }
    let ds = match args.data.channels {
        Some(0) => bail!("--channels must be at least 1"),
        Some(c) => parse_sequence_csv(
            path,
            bytes,
            &SequenceCsvOptions {
                channels: c,
                has_header: args.data.header.or(Some(false)),
                labels,
                num_classes: args.data.classes,
            },
        )?,
        None => {
            refuse_numbers_as_text(path, bytes, None)?;
            let options = TextCsvOptions {
                label_column: column(&args.data.label_column, 0),
                text_column: column(&args.data.text_column, 1),
                has_header: args.data.header,
                labels,
                num_classes: args.data.classes,
            };
            let ds = parse_text_csv(path, bytes, &options)?;
            refuse_numbers_as_text(path, bytes, Some(&ds))?;
            ds
        }
    };
    if ds.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(ds)
}

/// Loaded data and its split (what does not depend on the preprocessing settings).
#[derive(Debug)]
struct Loaded {
    data: Dataset,
    test: Option<Dataset>,
    split: Split,
    class_names: Vec<String>,
    classes: Option<u32>,
    name: String,
}

/// Refuses flags that do nothing in the chosen mode: `given` lists (flag, set?).
fn refuse_unused(mode: &str, given: &[(&str, bool)]) -> Result<()> {
    let set: Vec<&str> = given.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    if !set.is_empty() {
        let does = if set.len() == 1 { "does" } else { "do" };
        bail!(
            "{} {does} nothing for {mode}; remove {}",
            set.join(", "),
            if set.len() == 1 { "it" } else { "them" }
        );
    }
    Ok(())
}

fn load_all(args: &TrainArgs) -> Result<Loaded> {
    if args.data.channels.is_some() || args.data.file.is_none() {
        let mode = if args.data.file.is_none() { "the synthetic task" } else { "sequence data" };
        refuse_unused(
            mode,
            &[
                ("--label-column", args.data.label_column.is_some()),
                ("--text-column", args.data.text_column.is_some()),
                ("--num-words", args.preprocessing.num_words.is_some()),
                ("--oov-token", args.preprocessing.oov_token.is_some()),
                ("--char-level", args.preprocessing.char_level.is_some()),
                ("--lower", args.preprocessing.lower.is_some()),
                ("--filters", args.preprocessing.filters.is_some()),
                ("--embedding-dim", args.model.embedding_dim.is_some()),
            ],
        )?;
    } else {
        refuse_unused(
            "text data (no --channels)",
            &[("--standardize", args.preprocessing.standardize.is_some())],
        )?;
    }
    let real = args.real_labels();
    let seed = args.split_seed();
    let (data, test, name) = match &args.data.file {
        None => {
            if args.data.test.is_some() {
                bail!("--test needs --data");
            }
            let cfg = SyntheticConfig {
                samples: args.data.synthetic_samples.unwrap_or(2000),
                ..SyntheticConfig::default()
            };
            if cfg.samples < 4 * synthetic::CLASSES {
                bail!("--synthetic-samples must be at least {}", 4 * synthetic::CLASSES);
            }
            // Each sample: its values as loaded and as prepared (3 channels).
            crate::limits::Machine::detect()?.check_memory(
                "generating the synthetic samples",
                &format!("--synthetic-samples {}", cfg.samples),
                (cfg.samples as u64).checked_mul(cfg.steps as u64 * 3 * 4 * 2),
            )?;
            (synthetic::generate(&cfg), None, "synthetic".to_string())
        }
        Some(path) => {
            let data = load(path, args, real)?;
            let test = match &args.data.test {
                Some(t) => {
                    let mut test = load(t, args, real)?;
                    let names = data.class_names.clone().unwrap_or_else(|| {
                        let k = data.samples.iter().filter_map(|s| s.label.class()).max();
                        (0..k.map_or(0, |m| m + 1)).map(|i| i.to_string()).collect()
                    });
                    if data.class_names.is_some() || test.class_names.is_some() {
                        test.map_to_classes(&names)?;
                    }
                    Some(test)
                }
                None => None,
            };
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            (data, test, name.unwrap_or_else(|| "model".into()))
        }
    };
    let classes = if real {
        None
    } else {
        let k = match args.data.classes {
            Some(k) => k,
            None => {
                // The classes are the training data's; a label beyond them is blamed on the
                // file and line that hold it.
                let top =
                    data.samples.iter().filter_map(|s| s.label.class().map(|c| (c, s.line))).max();
                let (max, max_line) = top.unwrap_or((0, 0));
                if let Some(t) = &test {
                    let beyond = t
                        .samples
                        .iter()
                        .find_map(|s| s.label.class().filter(|&c| c > max).map(|c| (c, s.line)));
                    if let Some((c, line)) = beyond {
                        bail!(
                            "{}: line {line}: label {c} is a class the training data {} does not \
                             have (its labels go up to {max}); give --classes K if the training \
                             data lacks classes on purpose",
                            t.source.display(),
                            data.source.display()
                        );
                    }
                }
                // The smallest class without samples (distinct labels only: no flag per class
                // of a huge label).
                let labels: std::collections::BTreeSet<u32> =
                    data.samples.iter().filter_map(|s| s.label.class()).collect();
                let gap =
                    (0u32..).zip(labels.iter()).find(|(want, have)| want != *have).map(|(g, _)| g);
                if let Some(gap) = gap {
                    bail!(
                        "{}: line {max_line}: label {max} makes {} classes, but class {gap} has no \
                         samples; labels must be 0..K−1 with every class present (give --classes \
                         K to declare them)",
                        data.source.display(),
                        max + 1
                    );
                }
                max + 1
            }
        };
        if k < 2 {
            bail!(
                "{}: all labels are 0; a classifier needs at least 2 classes (or --head linear)",
                data.source.display()
            );
        }
        data.check_classes(k, true)?;
        if let Some(t) = &test {
            t.check_classes(k, false)?;
        }
        Some(k)
    };
    // The seed protocol ignores the classes: one permutation of all samples.
    let by_class = args.data.split.unwrap_or_default() == crate::settings::SplitKind::Stratified;
    let labels: Vec<u32> = data
        .samples
        .iter()
        .map(|s| if by_class { s.label.class().unwrap_or(0) } else { 0 })
        .collect();
    let split = if test.is_some() {
        stratified_holdout(
            &labels,
            args.data.valid_split.unwrap_or(crate::data::split::DEFAULT_HOLDOUT),
            seed,
        )?
    } else {
        let valid = args.data.valid_split.unwrap_or(0.1);
        let test_frac = args.data.test_split.unwrap_or(0.1);
        stratified_split(&labels, SplitFractions { train: 1.0 - valid - test_frac, valid }, seed)?
    };
    if split.train.is_empty() {
        bail!("the training split is empty ({} samples)", data.len());
    }
    let class_names = match (&args.data.file, classes) {
        (None, _) => synthetic::CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        (_, Some(k)) => match &data.class_names {
            Some(names) => names.clone(),
            None => (0..k).map(|i| i.to_string()).collect(),
        },
        (_, None) => Vec::new(),
    };
    Ok(Loaded { data, test, split, class_names, classes, name })
}

/// Fits the tokenizer or the normaliser on the training split and builds the metadata.
/// `spec` masked as `mask` says, checked.
pub fn with_mask(spec: tinylstm::Spec, mask: Mask) -> Result<tinylstm::Spec> {
    let spec = match mask {
        Mask::Off => spec,
        Mask::Zero => spec.mask_zero(),
        Mask::Value(v) => spec.masking(v),
    };
    spec.validate().map_err(|e| anyhow!("model settings: {e}"))?;
    Ok(spec)
}

type Preprocessing = (ModelMeta, Option<Tokenizer>, Option<Normalizer>, SpecInput, Mask);

fn preprocessing(args: &TrainArgs, l: &Loaded) -> Result<Preprocessing> {
    let padding = args.preprocessing.padding.unwrap_or_default();
    let truncating = args.preprocessing.truncating.unwrap_or_default();
    match l.data.kind {
        DatasetKind::Text => {
            let cfg = TokenizerConfig {
                num_words: Some(args.preprocessing.num_words.unwrap_or(10000)),
                oov_token: args.preprocessing.oov_token.clone(),
                char_level: args.preprocessing.char_level.unwrap_or(false),
                lower: args.preprocessing.lower.unwrap_or(true),
                filters: args
                    .preprocessing
                    .filters
                    .clone()
                    .unwrap_or_else(|| crate::preprocess::tokenizer::DEFAULT_FILTERS.into()),
                ..TokenizerConfig::default()
            };
            let mut tok = Tokenizer::new(cfg)?;
            tok.fit_on_texts(
                l.split.train.iter().map(|&i| l.data.samples[i].text().unwrap_or("")),
            )?;
            let maxlen = args.preprocessing.maxlen.unwrap_or(60);
            if maxlen == 0 {
                bail!("--maxlen must be at least 1");
            }
            // Keras-sized: min(num_words, len(word_index) + 1) rows (at least 2).
            let vocab = tok.vocab_size().max(2);
            let mut meta = ModelMeta::new(Task::Text, maxlen, padding, truncating);
            meta.class_names = l.class_names.clone();
            meta.vocabulary = Some(tok.vocabulary_len());
            if args.preprocessing.mask_value.is_some() {
                bail!("--mask-value is for sequences; text masks padding with --mask-zero");
            }
            let mask =
                if args.preprocessing.mask_zero == Some(true) { Mask::Zero } else { Mask::Off };
            Ok((meta, Some(tok), None, SpecInput::Tokens { vocab }, mask))
        }
        DatasetKind::Sequence { channels } => {
            if args.preprocessing.mask_zero == Some(true) {
                bail!("--mask-zero is for text; sequences mask with --mask-value");
            }
            // The longest row of every file (lengths are not labels): a test row is then never
            // cut, and the model records the longest row it accepts.
            let all = l.data.samples.iter().chain(l.test.iter().flat_map(|t| t.samples.iter()));
            let (lo, longest) = all
                .filter_map(|s| s.steps())
                .fold((usize::MAX, 1), |(lo, hi), t| (lo.min(t), hi.max(t)));
            let steps = args.preprocessing.maxlen.unwrap_or(longest);
            // Rows of different lengths are masked as Keras's Masking layer does (value 0 by
            // default, as Keras); --mask-value masks equal-length rows too.
            let mask = match args.preprocessing.mask_value {
                Some(v) => Mask::Value(v),
                None if lo < longest => Mask::Value(0.0),
                None => Mask::Off,
            };
            if steps == 0 {
                bail!("--maxlen must be at least 1");
            }
            let norm = if args.preprocessing.standardize.unwrap_or(true) {
                Some(Normalizer::fit_dataset(&l.data, &l.split.train)?)
            } else {
                None
            };
            let mut meta = ModelMeta::new(Task::Sequence, steps, padding, truncating);
            meta.class_names = l.class_names.clone();
            Ok((meta, None, norm, SpecInput::Channels(channels), mask))
        }
    }
}

/// Data loaded, split and preprocessed for one set of data settings: what every run with those
/// settings shares.
#[derive(Debug)]
pub struct PreparedData {
    /// Name of the data (file stem, or `synthetic`).
    pub name: String,
    /// Model metadata without the training settings (task, steps, padding, class names).
    pub meta: ModelMeta,
    /// Tokenizer fitted on the training split (text).
    pub tokenizer: Option<Tokenizer>,
    /// Standardisation fitted on the training split (sequences).
    pub normalizer: Option<Normalizer>,
    /// Input side of the model spec (vocabulary size or channels).
    pub input: SpecInput,
    /// Number of classes (`None`: real-valued labels).
    pub classes: Option<u32>,
    /// Training split.
    pub train: Prepared,
    /// Validation split (may be empty).
    pub valid: Prepared,
    /// Test split: the `--test` file, or the held-out part of the data (may be empty).
    pub test: Prepared,
    /// The series and its windows (`--task forecast`).
    pub forecast: Option<crate::forecast::ForecastData>,
    /// Which steps the model skips (padding of rows of different lengths, `--mask-zero`).
    pub mask: Mask,
    /// What was inferred from the data, in one line (task, input kind, shape), printed first
    /// by every training run.
    pub description: String,
}

/// One line saying what a training run infers: the task, the input kind and its shape.
fn describe(l: &Loaded, meta: &ModelMeta, tok: Option<&Tokenizer>, mask: Mask) -> String {
    let task = match (l.classes, &l.class_names) {
        (None, _) => "regression (one real-valued target)".to_string(),
        (Some(k), names) => {
            let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
            let more = if names.len() > 8 { ", …" } else { "" };
            format!("classification into {k} classes ({}{more})", shown.join(", "))
        }
    };
    let input = match (l.data.kind, tok) {
        (DatasetKind::Text, Some(t)) => format!(
            "text, {} level, {} tokens per sample ({} {} in the training split)",
            if t.config().char_level { "character" } else { "word" },
            meta.steps,
            t.vocabulary_len(),
            if t.config().char_level { "distinct characters" } else { "distinct words" },
        ),
        (DatasetKind::Text, None) => "text".to_string(),
        (DatasetKind::Sequence { channels }, _) => {
            let ranges = [l.data.steps_range(), l.test.as_ref().and_then(Dataset::steps_range)];
            let (lo, hi) = ranges
                .into_iter()
                .flatten()
                .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
                .unwrap_or((meta.steps, meta.steps));
            let rows = if lo == hi {
                format!("every row {hi} steps")
            } else {
                format!("rows of {lo} to {hi} steps, {}-padded", meta.padding)
            };
            format!("sequences of {channels} channels × {} steps ({rows})", meta.steps)
        }
    };
    let mask = match mask {
        Mask::Off => String::new(),
        Mask::Zero => ", token 0 masked".to_string(),
        Mask::Value(v) => format!(", steps of all {v} masked"),
    };
    format!("Task: {task}; input: {input}{mask}; from {}", l.data.source.display())
}

type CacheSlot<T> = Arc<OnceLock<std::result::Result<Arc<T>, String>>>;

/// Loaded and prepared data shared between runs (hyperparameter trials), keyed by the settings
/// that decide them: data files, columns, split fractions and split seed for loading; on top of
/// those maxlen, num_words, tokenizer and padding settings and standardisation for preparing.
/// Runs that differ only in model or optimizer settings share one copy. Safe to share between
/// threads; concurrent requests for the same key compute it once.
#[derive(Debug, Default)]
pub struct DataCache {
    loaded: Mutex<HashMap<SettingsKey, CacheSlot<Loaded>>>,
    prepared: Mutex<HashMap<SettingsKey, CacheSlot<PreparedData>>>,
}

impl DataCache {
    /// An empty cache.
    pub fn new() -> DataCache {
        DataCache::default()
    }

    /// Number of distinct prepared datasets held.
    pub fn prepared_len(&self) -> usize {
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn get<K: std::hash::Hash + Eq, T>(
        map: &Mutex<HashMap<K, CacheSlot<T>>>,
        key: K,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<T>> {
        let slot =
            map.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().clone();
        slot.get_or_init(|| make().map(Arc::new).map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow!(e))
    }
}

/// Loads, splits and preprocesses the data as `args` say, through `cache` when given.
pub fn prepare_data(args: &TrainArgs, cache: Option<&DataCache>) -> Result<Arc<PreparedData>> {
    let prepare = |loaded: &Loaded| -> Result<PreparedData> {
        let (meta, tokenizer, normalizer, input, mask) = preprocessing(args, loaded)?;
        let channels = match input {
            SpecInput::Tokens { .. } => 1,
            SpecInput::Channels(c) => c,
        };
        let pre = Preprocessor {
            task: meta.task,
            steps: meta.steps,
            padding: meta.padding,
            truncating: meta.truncating,
            tokenizer: tokenizer.as_ref(),
            normalizer: normalizer.as_ref(),
            channels,
            pad_value: match mask {
                Mask::Value(v) => v,
                _ => 0.0,
            },
            // A --maxlen shorter than the longest row cuts rows, as asked.
            strict: args.preprocessing.maxlen.is_none(),
        };
        let description = describe(loaded, &meta, tokenizer.as_ref(), mask);
        let train = pre.prepare_indices(&loaded.data, &loaded.split.train)?;
        let valid = pre.prepare_indices(&loaded.data, &loaded.split.valid)?;
        let test = match &loaded.test {
            Some(t) => pre.prepare_indices(t, &(0..t.len()).collect::<Vec<_>>())?,
            None => pre.prepare_indices(&loaded.data, &loaded.split.test)?,
        };
        Ok(PreparedData {
            name: loaded.name.clone(),
            meta,
            tokenizer,
            normalizer,
            input,
            classes: loaded.classes,
            train,
            valid,
            test,
            description,
            mask,
            forecast: None,
        })
    };
    match cache {
        None => Ok(Arc::new(prepare(&load_all(args)?)?)),
        Some(c) => {
            let load_key = args.data_key();
            let prep_key = args.preprocessing_key();
            DataCache::get(&c.prepared, prep_key, || {
                let loaded = DataCache::get(&c.loaded, load_key, || load_all(args))?;
                prepare(&loaded)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::split::random_split;
    use crate::settings::SplitKind;

    /// 30 samples of class 0 then 10 of class 1, 2 channels × 2 steps.
    fn file(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("d.csv");
        let rows: String = (0..40).map(|i| format!("{},{i},1,2,3\n", u8::from(i >= 30))).collect();
        std::fs::write(&path, rows).unwrap();
        path
    }

    #[test]
    fn split_protocols_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = TrainArgs::default();
        args.data.file = Some(file(dir.path()));
        args.data.channels = Some(2);
        // Stratified (default): every split keeps the 3:1 class balance exactly.
        let l = load_all(&args).unwrap();
        let stratified = l.split.clone();
        let ones = |idx: &[usize]| idx.iter().filter(|&&i| i >= 30).count();
        assert_eq!((l.split.test.len(), ones(&l.split.test)), (4, 1));
        assert_eq!((l.split.valid.len(), ones(&l.split.valid)), (4, 1));
        // Seed: one permutation of all 40 samples, whatever their class (the permutation of
        // `random_split`, pinned in the split module's tests).
        let mut seed = args;
        seed.data.split = Some(SplitKind::Seed);
        let l = load_all(&seed).unwrap();
        let want = random_split(40, SplitFractions::default(), 42).unwrap();
        assert_eq!(l.split, want);
        assert_ne!(want, stratified, "the two protocols must differ on this data");
    }
}
