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

mod check;
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
    #[error("{file}: cannot read: {cause}")]
    Read { file: PathBuf, cause: std::io::Error },
    #[error("{file}: not UTF-8 text: invalid byte at line {line}, column {column} (byte offset {offset})")]
    NotUtf8 { file: PathBuf, line: usize, column: usize, offset: usize },
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
    check::check_grid(&grid, text, file)?;
    grid.strategies.validate().map_err(|e| strategy_invalid(text, file, e))?;
    grid.data.check_encodings().map_err(|e| data_invalid(text, file, e))?;
    Ok(grid)
}

/// Parses a grid, expands it and checks every cell of the plan: the plan
/// `bench run` trains, refused here when any cell's data source, model or
/// strategy would refuse its settings.
pub fn plan_grid(text: &str, file: &Path) -> Result<Plan, ConfigError> {
    let plan = expand(&parse_grid(text, file)?, file)?;
    check::check_cells(&plan, text, file)?;
    Ok(plan)
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
    parse_grid(&read_text(path)?, path)
}

/// Reads a grid or data file as text; bytes that are not UTF-8 are named
/// by line, column and offset.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|cause| ConfigError::Read { file: path.to_path_buf(), cause })?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..offset];
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigError::NotUtf8 { file: path.to_path_buf(), line, column, offset }
    })
}

fn invalid(file: &Path, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { file: file.to_path_buf(), key: key.to_string(), line: LineInfo(None), message: message.into() }
}
