//! Data loaded, split and preprocessed as the settings say ([`prepare_data`]), and the
//! [`DataCache`] through which runs whose data settings agree (file, split, maxlen, num_words, …)
//! share one copy.

use crate::data::split::{stratified_holdout, stratified_split, Split, SplitFractions};
use crate::data::synthetic::{self, SyntheticConfig};
use crate::data::{
    load_sequence_csv, load_text_csv, Column, Dataset, DatasetKind, LabelKind, SequenceCsvOptions,
    TextCsvOptions,
};
use crate::model_file::{ModelMeta, Task};
use crate::preprocess::normalize::Normalizer;
use crate::preprocess::tokenizer::{Tokenizer, TokenizerConfig};
use crate::preprocess::{Prepared, Preprocessor};
use crate::settings::{DataSettings, PreprocessingSettings, SpecInput, TrainArgs};
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

fn column(s: &Option<String>, default: usize) -> Column {
    match s {
        None => Column::Index(default),
        Some(v) => v.parse().map(Column::Index).unwrap_or_else(|_| Column::Name(v.clone())),
    }
}

/// Loads a data file as the args say (text unless `--channels`).
pub fn load(path: &Path, args: &TrainArgs, real_labels: bool) -> Result<Dataset> {
    if let Some(c) = args.channels {
        refuse_unused(
            &format!("sequence data (--channels {c})"),
            &[
                ("--label-column", args.label_column.is_some()),
                ("--text-column", args.text_column.is_some()),
            ],
        )
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    }
    let labels = if real_labels { LabelKind::Real } else { LabelKind::Class };
    let ds = match args.channels {
        Some(0) => bail!("--channels must be at least 1"),
        Some(c) => load_sequence_csv(
            path,
            &SequenceCsvOptions {
                channels: c,
                has_header: args.header.or(Some(false)),
                labels,
                num_classes: args.classes,
            },
        )?,
        None => load_text_csv(
            path,
            &TextCsvOptions {
                label_column: column(&args.label_column, 0),
                text_column: column(&args.text_column, 1),
                has_header: args.header,
                labels,
                num_classes: args.classes,
            },
        )?,
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
    if args.channels.is_some() || args.data.is_none() {
        let mode = if args.data.is_none() { "the synthetic task" } else { "sequence data" };
        refuse_unused(
            mode,
            &[
                ("--label-column", args.label_column.is_some()),
                ("--text-column", args.text_column.is_some()),
                ("--num-words", args.num_words.is_some()),
                ("--oov-token", args.oov_token.is_some()),
                ("--char-level", args.char_level.is_some()),
                ("--lower", args.lower.is_some()),
                ("--filters", args.filters.is_some()),
                ("--embedding-dim", args.embedding_dim.is_some()),
            ],
        )?;
    } else {
        refuse_unused(
            "text data (no --channels)",
            &[("--standardize", args.standardize.is_some())],
        )?;
    }
    let real = args.head == Some(crate::settings::HeadKind::Linear);
    let seed = args.split_seed();
    let (data, test, name) = match &args.data {
        None => {
            if args.test.is_some() {
                bail!("--test needs --data");
            }
            let cfg = SyntheticConfig {
                samples: args.synthetic_samples.unwrap_or(2000),
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
            let test = match &args.test {
                Some(t) => Some(load(t, args, real)?),
                None => None,
            };
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            (data, test, name.unwrap_or_else(|| "model".into()))
        }
    };
    let classes = if real {
        None
    } else {
        let k = match args.classes {
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
    let labels: Vec<u32> = data.samples.iter().map(|s| s.label.class().unwrap_or(0)).collect();
    let split = if test.is_some() {
        stratified_holdout(
            &labels,
            args.valid_split.unwrap_or(crate::data::split::DEFAULT_HOLDOUT),
            seed,
        )?
    } else {
        let valid = args.valid_split.unwrap_or(0.1);
        let test_frac = args.test_split.unwrap_or(0.1);
        stratified_split(&labels, SplitFractions { train: 1.0 - valid - test_frac, valid }, seed)?
    };
    if split.train.is_empty() {
        bail!("the training split is empty ({} samples)", data.len());
    }
    let class_names = match (&args.data, classes) {
        (None, _) => synthetic::CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        (_, Some(k)) => (0..k).map(|i| i.to_string()).collect(),
        (_, None) => Vec::new(),
    };
    Ok(Loaded { data, test, split, class_names, classes, name })
}

/// Fits the tokenizer or the normaliser on the training split and builds the metadata.
fn preprocessing(
    args: &TrainArgs,
    l: &Loaded,
) -> Result<(ModelMeta, Option<Tokenizer>, Option<Normalizer>, SpecInput)> {
    let padding = args.padding.unwrap_or_default();
    let truncating = args.truncating.unwrap_or_default();
    match l.data.kind {
        DatasetKind::Text => {
            let cfg = TokenizerConfig {
                num_words: Some(args.num_words.unwrap_or(10000)),
                oov_token: args.oov_token.clone(),
                char_level: args.char_level.unwrap_or(false),
                lower: args.lower.unwrap_or(true),
                filters: args
                    .filters
                    .clone()
                    .unwrap_or_else(|| crate::preprocess::tokenizer::DEFAULT_FILTERS.into()),
                ..TokenizerConfig::default()
            };
            let mut tok = Tokenizer::new(cfg)?;
            tok.fit_on_texts(
                l.split.train.iter().map(|&i| l.data.samples[i].text().unwrap_or("")),
            )?;
            let maxlen = args.maxlen.unwrap_or(60);
            if maxlen == 0 {
                bail!("--maxlen must be at least 1");
            }
            let vocab = tok.vocab_size().max(2);
            let mut meta = ModelMeta::new(Task::Text, maxlen, padding, truncating);
            meta.class_names = l.class_names.clone();
            Ok((meta, Some(tok), None, SpecInput::Tokens { vocab }))
        }
        DatasetKind::Sequence { channels } => {
            let longest =
                l.split.train.iter().filter_map(|&i| l.data.samples[i].steps()).max().unwrap_or(1);
            let steps = args.maxlen.unwrap_or(longest);
            if steps == 0 {
                bail!("--maxlen must be at least 1");
            }
            let norm = if args.standardize.unwrap_or(true) {
                Some(Normalizer::fit_dataset(&l.data, &l.split.train)?)
            } else {
                None
            };
            let mut meta = ModelMeta::new(Task::Sequence, steps, padding, truncating);
            meta.class_names = l.class_names.clone();
            Ok((meta, None, norm, SpecInput::Channels(channels)))
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
}

type CacheSlot<T> = Arc<OnceLock<std::result::Result<Arc<T>, String>>>;

/// Loaded and prepared data shared between runs (hyperparameter trials), keyed by the settings
/// that decide them: data files, columns, split fractions and split seed for loading; on top of
/// those maxlen, num_words, tokenizer and padding settings and standardisation for preparing.
/// Runs that differ only in model or optimizer settings share one copy. Safe to share between
/// threads; concurrent requests for the same key compute it once.
#[derive(Debug, Default)]
pub struct DataCache {
    loaded: Mutex<HashMap<DataSettings, CacheSlot<Loaded>>>,
    prepared: Mutex<HashMap<(DataSettings, PreprocessingSettings), CacheSlot<PreparedData>>>,
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
        let (meta, tokenizer, normalizer, input) = preprocessing(args, loaded)?;
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
        };
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
        })
    };
    match cache {
        None => Ok(Arc::new(prepare(&load_all(args)?)?)),
        Some(c) => {
            let load_key = args.data_settings();
            let prep_key = (load_key.clone(), args.preprocessing_settings());
            DataCache::get(&c.prepared, prep_key, || {
                let loaded = DataCache::get(&c.loaded, load_key, || load_all(args))?;
                prepare(&loaded)
            })
        }
    }
}
