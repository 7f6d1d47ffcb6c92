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

/// Errors of the data stage; each names the file, line, column or key at fault.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
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
            if c.tasks.is_empty() {
                return Err(DataError::Config { key: "data.tasks".into(), message: "at least one task is needed".into() });
            }
            if c.funnel && c.tasks.len() < 2 {
                return Err(DataError::Config {
                    key: "data.funnel".into(),
                    message: format!("needs a click task and a conversion task, got tasks {:?}", c.tasks),
                });
            }
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
