//! Grid files: TOML -> typed configuration -> a plan of cells.
//!
//! A grid file has sections for the data, training, per-model and
//! per-strategy settings, and a `[grid]` section whose lists (models,
//! strategies, seeds and any dotted-key overrides) are crossed into cells.
//! Each cell carries a canonical config hash (seed excluded) so that the
//! store can recognise a cell it has already finished. Besides the
//! Cartesian overrides, `[grid.search]` draws random trials ([`search`]),
//! the `static` strategy sweeps weight vectors ([`weight_sweep`]) and
//! `[grid] single_task = true` adds single-task baselines.

mod data_file;
mod expand;
pub mod search;
mod spans;
#[cfg(test)]
mod tests;
pub mod weight_sweep;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::{DataConfig, DataError};
use crate::models::{ModelKind, ModelsConfig};
use crate::strategies::{StrategiesConfig, StrategyError, StrategyKind};
use crate::train::TrainConfig;

pub use data_file::{load_data_config, parse_data_config};
pub use expand::{expand, hash_hex, Cell, Plan, SINGLE_TASK_PARAM};
pub use search::{Distribution, SearchSpec};

/// A grid file that could not be read or does not describe a valid grid.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: key `{key}`{line}: {message}")]
    Invalid { file: PathBuf, key: String, line: LineInfo, message: String },
}

/// Optional ", line N" suffix of an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineInfo(pub Option<usize>);

impl std::fmt::Display for LineInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(l) => write!(f, " (line {l})"),
            None => Ok(()),
        }
    }
}

/// The whole grid file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFile {
    /// A short name for the sweep (defaults to the file stem).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainConfig,
    /// Per-model settings: `[models.mmoe]`, `[models.shared-bottom]`, ...
    #[serde(default)]
    pub models: ModelsConfig,
    /// Per-strategy settings: `[strategies.gradnorm]`, ...
    #[serde(default)]
    pub strategies: StrategiesConfig,
    pub grid: GridSpec,
}

/// The axes crossed into cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    pub models: Vec<ModelKind>,
    pub strategies: Vec<StrategyKind>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Further axes: a dotted key of this file (e.g. `"train.lr"`) and the
    /// values it takes.
    #[serde(default)]
    pub overrides: BTreeMap<String, Vec<toml::Value>>,
    /// Seeded random trials, the same for every arm (crossed with the overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSpec>,
    /// Adds, per seed and override configuration, one SharedBottom run per
    /// task on that task alone (equal weighting): the baselines of Δm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_task: bool,
}

fn default_seeds() -> Vec<u64> {
    vec![1]
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// Parses grid text; `file` is used in error messages only.
pub fn parse_grid(text: &str, file: &Path) -> Result<GridFile, ConfigError> {
    let grid: GridFile = data_file::deserialize(text, file, "")?;
    validate(&grid, file)?;
    grid.strategies.validate().map_err(|e| strategy_invalid(text, file, e))?;
    grid.data.check_encodings().map_err(|e| data_invalid(text, file, e))?;
    Ok(grid)
}

/// A refused strategy setting as a grid error, with the line of its key.
fn strategy_invalid(text: &str, file: &Path, e: StrategyError) -> ConfigError {
    match e {
        StrategyError::Config { key, message } => {
            let line = LineInfo(spans::line_of_key(text, &key));
            ConfigError::Invalid { file: file.to_path_buf(), key, line, message }
        }
        other => invalid(file, "strategies", other.to_string()),
    }
}

/// A data-stage refusal as a grid error, with the line of its key.
fn data_invalid(text: &str, file: &Path, e: DataError) -> ConfigError {
    match e {
        DataError::Config { key, message } => {
            let line = LineInfo(spans::line_of_key(text, &key));
            ConfigError::Invalid { file: file.to_path_buf(), key, line, message }
        }
        other => invalid(file, "data", other.to_string()),
    }
}

/// Reads and parses a grid file.
pub fn load_grid(path: &Path) -> Result<GridFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
    parse_grid(&text, path)
}

fn invalid(file: &Path, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { file: file.to_path_buf(), key: key.to_string(), line: LineInfo(None), message: message.into() }
}

fn validate(grid: &GridFile, file: &Path) -> Result<(), ConfigError> {
    let tasks = grid.data.task_names();
    if let Some((i, t)) = tasks.iter().enumerate().find(|(i, t)| tasks[..*i].contains(t)) {
        let key = if matches!(grid.data, DataConfig::Table(_)) { format!("data.labels[{i}]") } else { "data.tasks".to_string() };
        return Err(invalid(file, &key, format!("task `{t}` is named twice; every task needs its own name")));
    }
    if grid.grid.models.is_empty() {
        return Err(invalid(file, "grid.models", format!("empty list; valid choices: {}", ModelKind::names().join(", "))));
    }
    if grid.grid.strategies.is_empty() {
        return Err(invalid(
            file,
            "grid.strategies",
            format!("empty list; valid choices: {}", StrategyKind::names().join(", ")),
        ));
    }
    if grid.grid.seeds.is_empty() {
        return Err(invalid(file, "grid.seeds", "empty list; give at least one seed"));
    }
    for (key, values) in &grid.grid.overrides {
        if values.is_empty() {
            return Err(invalid(file, &format!("grid.overrides.{key}"), "empty list of values"));
        }
        if key.starts_with("grid.") || key == "grid" {
            return Err(invalid(file, &format!("grid.overrides.{key}"), "the grid section itself cannot be overridden"));
        }
    }
    if let Some(search) = &grid.grid.search {
        if let Some(k) = search.space.keys().find(|k| grid.grid.overrides.contains_key(*k)) {
            return Err(invalid(file, &format!("grid.search.{k}"), format!("`{k}` is also an axis of [grid.overrides]; give it in one of them")));
        }
    }
    if grid.grid.single_task && grid.data.task_names().len() < 2 {
        return Err(invalid(file, "grid.single_task", "the data has one task: its runs are single-task already"));
    }
    grid.train.validate().map_err(|(k, m)| invalid(file, &format!("train.{k}"), m))?;
    Ok(())
}
