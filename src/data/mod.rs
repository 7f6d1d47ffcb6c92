//! Dataset sources and the batch iterator. Every source (`toy`, the WeChat
//! ETL `wechat`, the WeChat-shaped generator `synthetic-wechat`, and any
//! CSV/Parquet `table`) produces the same [`Dataset`]: a [`FeatureSchema`]
//! and three splits of in-memory columns. Downstream stages never read raw
//! files; processed WeChat features are cached as Parquet ([`cache`]),
//! multi-valued fields are held once per distinct list ([`ragged`]),
//! numeric columns can be encoded from train-split quantiles ([`numeric`]),
//! and [`inspect`] describes a dataset before training.

pub mod batch;
pub mod cache;
pub mod inspect;
pub mod numeric;
pub mod parquet_io;
pub mod ragged;
mod restrict;
pub mod schema;
pub mod table;
mod table_config;
mod table_read;
pub mod toy;
pub mod wechat;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use batch::{Batch, MultiBatch, SplitTensors};
pub use ragged::Ragged;
pub use restrict::only_task;
pub use schema::{CategoricalField, Dataset, FeatureSchema, MultiField, NumericField, SplitData};

/// Errors of the data stage; each names the file, line, column or key at
/// fault. A message shows its cause itself (none is a `source` as well, so
/// an error chain prints each cause once).
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{path}, line {line}, column `{column}`: {message}")]
    Value { path: PathBuf, line: usize, column: String, message: String },
    #[error("{path}, row {row}, column `{column}`: {message}")]
    Row { path: PathBuf, row: usize, column: String, message: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("data config key `{key}`: {message}")]
    Config { key: String, message: String },
    #[error("split `{split}` is empty: {message}")]
    EmptySplit { split: String, message: String },
}

/// The `[data]` section of a grid file: which source, and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DataConfig {
    /// Small latent-factor synthetic data for smoke runs and tests.
    Toy(toy::ToyConfig),
    /// The WeChat Channels 2021 files through the reference ETL.
    Wechat(wechat::WechatConfig),
    /// WeChat-shaped synthetic files, generated into the cache, then the ETL.
    SyntheticWechat(wechat::synth::SyntheticWechatConfig),
    /// Any CSV (optionally gzipped) or Parquet table.
    Table(table::TableConfig),
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Toy(toy::ToyConfig::default())
    }
}

impl DataConfig {
    /// Checks what can be checked before loading: the numeric encoding
    /// settings, and that a table column given an encoding holds numbers
    /// (its first rows). Errors name the key, e.g. `data.numeric[2].bins`.
    pub fn check_encodings(&self) -> Result<(), DataError> {
        match self {
            DataConfig::Table(c) => {
                table::numeric_requests(c)?;
                table::check_numeric_columns(c)
            }
            DataConfig::Wechat(wechat::WechatConfig { dense: Some(d), .. })
            | DataConfig::SyntheticWechat(wechat::synth::SyntheticWechatConfig { dense: Some(d), .. }) => {
                d.request().map(|_| ()).map_err(|(key, message)| DataError::Config { key: format!("data.dense.{key}"), message })
            }
            _ => Ok(()),
        }
    }

    /// The checks of each source's settings that read no file (tasks,
    /// ranges, split days and fractions); the grid runs them when it is
    /// read, and each source again before it loads.
    pub fn validate(&self) -> Result<(), DataError> {
        match self {
            DataConfig::Toy(c) => c.validate(),
            DataConfig::Wechat(c) => wechat::validate(&c.tasks, &c.split),
            DataConfig::SyntheticWechat(c) => {
                wechat::validate(&c.tasks, &c.split)?;
                c.params().validate("data.")
            }
            DataConfig::Table(c) => table::validate(c),
        }
    }

    /// The task names the source is configured to produce, in order.
    pub fn task_names(&self) -> Vec<String> {
        match self {
            DataConfig::Toy(c) => c.tasks.clone(),
            DataConfig::Wechat(c) => c.tasks.clone(),
            DataConfig::SyntheticWechat(c) => c.tasks.clone(),
            DataConfig::Table(c) => c.labels.iter().map(|l| l.task().to_string()).collect(),
        }
    }
}

/// A task whose label is the same on every row of a split: its AUC is
/// undefined there (and a mean AUC over tasks with it).
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantLabel {
    pub split: &'static str,
    pub task: String,
    pub value: f32,
}

impl std::fmt::Display for ConstantLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task `{}` has label {} on every row of the {} split: its AUC is undefined there", self.task, self.value, self.split)
    }
}

/// Every (split, task) of a dataset whose label is constant, in split and task order.
pub fn constant_labels(ds: &Dataset) -> Vec<ConstantLabel> {
    let nt = ds.schema.tasks.len();
    let mut out = Vec::new();
    for (split, s) in [("train", &ds.train), ("validation", &ds.valid), ("test", &ds.test)] {
        for (t, task) in ds.schema.tasks.iter().enumerate() {
            let mut labels = (0..s.rows).map(|r| s.labels[r * nt + t]);
            let Some(first) = labels.next() else { continue };
            if labels.all(|y| y == first) {
                out.push(ConstantLabel { split, task: task.clone(), value: first });
            }
        }
    }
    out
}

/// Where sources may cache processed features.
pub fn default_cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("MTLBENCH_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|_| PathBuf::from(".cache"));
    base.join("mtlbench")
}

/// Loads (or generates) the dataset a config describes.
pub fn load(cfg: &DataConfig, cache_dir: &Path) -> Result<Dataset, DataError> {
    let ds = match cfg {
        DataConfig::Toy(c) => {
            c.validate()?;
            toy::generate(c)
        }
        DataConfig::Wechat(c) => wechat::load(c, cache_dir)?,
        DataConfig::SyntheticWechat(c) => wechat::synth::load(c, cache_dir)?,
        DataConfig::Table(c) => table::load(c)?,
    };
    for (name, split) in [("train", &ds.train), ("validation", &ds.valid), ("test", &ds.test)] {
        if split.rows == 0 {
            return Err(DataError::EmptySplit { split: name.into(), message: format!("dataset `{}` has no rows there", ds.name) });
        }
        split
            .check(&ds.schema)
            .map_err(|m| DataError::File { path: PathBuf::from(&ds.name), message: format!("{name} split: {m}") })?;
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_labels_by_split_and_task() {
        // Two tasks; rows (a, b): train (1,0) (0,0); validation (1,1); test (0,1) (1,1).
        let split = |rows: usize, labels: Vec<f32>| SplitData { rows, labels, ..Default::default() };
        let schema = FeatureSchema { categorical: vec![], multi: vec![], dense: vec![], tasks: vec!["a".into(), "b".into()], numeric: vec![] };
        let ds = Dataset {
            name: "hand".into(),
            schema,
            train: split(2, vec![1., 0., 0., 0.]),
            valid: split(1, vec![1., 1.]),
            test: split(2, vec![0., 1., 1., 1.]),
            digest: String::new(),
        };
        let found = constant_labels(&ds);
        let got: Vec<(&str, &str, f32)> = found.iter().map(|c| (c.split, c.task.as_str(), c.value)).collect();
        assert_eq!(got, [("train", "b", 0.0), ("validation", "a", 1.0), ("validation", "b", 1.0), ("test", "b", 1.0)]);
        let text = found[0].to_string();
        assert_eq!(text, "task `b` has label 0 on every row of the train split: its AUC is undefined there");
    }
}
