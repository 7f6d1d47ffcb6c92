//! The checks of a grid beyond serde, all made when the grid is read so
//! that `--dry-run` and the first error name the file, the key and its
//! line, and no cell fails on a setting that could have been refused:
//! the grid's own lists (no duplicates, no empty axis), then, per cell of
//! the expanded plan, the checks its data source, model and strategy make
//! before they load or build anything (`DataConfig::validate`,
//! `models::loss_names`, `strategies::check`: the same functions, so each
//! rule lives in one place).

use std::collections::HashSet;
use std::fmt::Display;
use std::path::Path;

use super::{invalid, spans, Cell, ConfigError, GridFile, LineInfo, Plan};
use crate::data::{DataConfig, DataError};
use crate::models::{self, ModelError, ModelKind};
use crate::strategies::{self, StrategyError, StrategyKind};

/// An error at `key`, with the line of that key in `text` where it has one.
fn at_key(text: &str, file: &Path, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { file: file.to_path_buf(), key: key.to_string(), line: LineInfo(spans::line_of_key(text, key)), message: message.into() }
}

/// The first value of `values` that repeats an earlier one, as (index, value).
fn first_repeat<T: PartialEq>(values: &[T]) -> Option<(usize, &T)> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v))
}

/// A list of the grid that names the same value twice.
fn refuse_repeats<T: PartialEq + Display>(text: &str, file: &Path, key: &str, values: &[T], what: &str) -> Result<(), ConfigError> {
    match first_repeat(values) {
        Some((i, v)) => Err(at_key(text, file, &format!("{key}[{i}]"), format!("{what} `{v}` is listed twice; list each once"))),
        None => Ok(()),
    }
}

/// The checks of the grid as written, before expansion.
pub(super) fn check_grid(grid: &GridFile, text: &str, file: &Path) -> Result<(), ConfigError> {
    let tasks = grid.data.task_names();
    if let Some((i, t)) = first_repeat(&tasks) {
        let key = if matches!(grid.data, DataConfig::Table(_)) { format!("data.labels[{i}]") } else { "data.tasks".to_string() };
        return Err(at_key(text, file, &key, format!("task `{t}` is named twice; every task needs its own name")));
    }
    let g = &grid.grid;
    if g.models.is_empty() {
        return Err(at_key(text, file, "grid.models", format!("empty list; valid choices: {}", ModelKind::names().join(", "))));
    }
    if g.strategies.is_empty() {
        return Err(at_key(text, file, "grid.strategies", format!("empty list; valid choices: {}", StrategyKind::names().join(", "))));
    }
    if g.seeds.is_empty() {
        return Err(at_key(text, file, "grid.seeds", "empty list; give at least one seed"));
    }
    let names = |v: &[ModelKind]| v.iter().map(|m| m.name()).collect::<Vec<_>>();
    refuse_repeats(text, file, "grid.models", &names(&g.models), "model")?;
    refuse_repeats(text, file, "grid.strategies", &g.strategies.iter().map(|s| s.name()).collect::<Vec<_>>(), "strategy")?;
    refuse_repeats(text, file, "grid.seeds", &g.seeds, "seed")?;
    for (key, values) in &g.overrides {
        let with = |message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key: format!("grid.overrides.{key}"),
            line: LineInfo(spans::line_of_parts(text, &["grid", "overrides", key])),
            message,
        };
        if values.is_empty() {
            return Err(with("empty list of values".into()));
        }
        if key.starts_with("grid.") || key == "grid" {
            return Err(with("the grid section itself cannot be overridden".into()));
        }
        if let Some((_, v)) = first_repeat(values) {
            return Err(with(format!("value {v} is listed twice; list each once")));
        }
    }
    if let Some(search) = &g.search {
        if let Some(k) = search.space.keys().find(|k| g.overrides.contains_key(*k)) {
            return Err(invalid(file, &format!("grid.search.{k}"), format!("`{k}` is also an axis of [grid.overrides]; give it in one of them")));
        }
    }
    if g.single_task && tasks.len() < 2 {
        return Err(at_key(text, file, "grid.single_task", "the data has one task: its runs are single-task already"));
    }
    grid.train.validate().map_err(|(k, m)| at_key(text, file, &format!("train.{k}"), m))?;
    grid.strategies.static_weights.validate().map_err(|(k, m)| at_key(text, file, &format!("strategies.static.{k}"), m))?;
    Ok(())
}

/// A refusal as (dotted key, message).
type Refusal = (String, String);

fn data_refusal(e: DataError) -> Refusal {
    match e {
        DataError::Config { key, message } => (key, message),
        other => ("data".into(), other.to_string()),
    }
}

fn model_refusal(e: ModelError) -> Refusal {
    match e {
        ModelError::Config { key, message } => (key, message),
    }
}

fn strategy_refusal(e: StrategyError) -> Refusal {
    match e {
        StrategyError::Config { key, message } => (key, message),
        other => ("strategies".into(), other.to_string()),
    }
}

/// What the cell's data source, model and strategy would refuse, checked
/// without data: the strategy sees as many loss terms as the model declares
/// (a funnel model's funnel terms, not the dataset's tasks).
fn check_cell(cell: &Cell) -> Result<(), Refusal> {
    let cfg = &cell.config;
    cfg.train.validate().map_err(|(k, m)| (format!("train.{k}"), m))?;
    cfg.data.validate().map_err(data_refusal)?;
    let tasks = match &cell.single_task {
        Some(t) => vec![t.clone()],
        None => cfg.data.task_names(),
    };
    let terms = models::loss_names(cell.model, &tasks, &cfg.models).map_err(model_refusal)?;
    strategies::check(cell.strategy, &cfg.strategies, terms.len(), cfg.train.lr).map_err(|e| {
        let (key, message) = strategy_refusal(e);
        (key, format!("{message} ({} declares the loss terms {})", cell.model.name(), terms.join(", ")))
    })
}

/// The axis of the cell (an override or a search dimension) that set `key`
/// or a table around it.
fn axis_of<'a>(cell: &'a Cell, key: &str) -> Option<&'a (String, toml::Value)> {
    let within = |outer: &str, inner: &str| inner == outer || inner.strip_prefix(outer).is_some_and(|r| r.starts_with('.') || r.starts_with('['));
    cell.overrides.iter().find(|(k, _)| within(k, key) || within(key, k))
}

/// Checks every distinct configuration of the plan (seeds share one).
pub(super) fn check_cells(plan: &Plan, text: &str, file: &Path) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for cell in plan.cells.iter().filter(|c| seen.insert(c.config_hash.as_str())) {
        let Err((key, message)) = check_cell(cell) else { continue };
        let searched = |k: &str| plan.grid.grid.search.as_ref().is_some_and(|s| s.space.contains_key(k));
        return Err(match axis_of(cell, &key) {
            Some((k, v)) => {
                let section = if searched(k) { "search" } else { "overrides" };
                ConfigError::Invalid {
                    file: file.to_path_buf(),
                    key: format!("grid.{section}.{k}"),
                    line: LineInfo(spans::line_of_parts(text, &["grid", section, k])),
                    message: format!("cell {} (`{k}` = {v}): `{key}`: {message}", cell.name()),
                }
            }
            None => at_key(text, file, &key, message),
        });
    }
    Ok(())
}
