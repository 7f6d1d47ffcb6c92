//! Grid expansion: the product models x strategies x seeds x override
//! values, each cell with its resolved configuration, a canonical config
//! hash (seed excluded) and, once the dataset is known, a cell key.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value as Json;

use super::{invalid, weight_sweep, ConfigError, GridFile};
use crate::models::ModelKind;
use crate::strategies::{StrategyError, StrategyKind};

/// One cell of the grid: what to train, fully resolved.
#[derive(Debug, Clone)]
pub struct Cell {
    pub model: ModelKind,
    pub strategy: StrategyKind,
    pub seed: u64,
    /// The override values of this cell, in key order.
    pub overrides: Vec<(String, toml::Value)>,
    /// The grid file with this cell's overrides applied.
    pub config: GridFile,
    /// Canonical JSON of everything that defines the cell except the seed.
    pub canonical: Json,
    /// blake3 of the canonical JSON, 16 hex digits.
    pub config_hash: String,
    /// A single-task baseline: the one task its data keeps.
    pub single_task: Option<String>,
}

/// The canonical key (and recorded parameter) of a single-task baseline: its task.
pub const SINGLE_TASK_PARAM: &str = "single_task";

impl Cell {
    /// A readable name: model-strategy-seed (single-task-TASK-seed for a
    /// single-task baseline), with override values appended.
    pub fn name(&self) -> String {
        let mut s = match &self.single_task {
            Some(t) => format!("single-task-{t}-s{}", self.seed),
            None => format!("{}-{}-s{}", self.model.name(), self.strategy.name(), self.seed),
        };
        for (k, v) in &self.overrides {
            let short = k.rsplit('.').next().unwrap_or(k);
            let _ = write!(s, "-{short}={}", toml_scalar(v));
        }
        s
    }

    /// The identity of a finished result: config hash + seed + dataset digest.
    pub fn cell_key(&self, dataset_digest: &str) -> String {
        hash_hex(format!("{}|{}|{}", self.config_hash, self.seed, dataset_digest).as_bytes())
    }

    /// Flattened `section.key = value` parameters (seed included).
    pub fn params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        flatten("", &self.canonical, &mut out);
        out.push(("seed".into(), self.seed.to_string()));
        out.sort();
        out
    }
}

/// The cells of a grid, in a stable order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub grid: GridFile,
    /// Hash of the grid's canonical form: identifies the sweep.
    pub grid_hash: String,
    pub cells: Vec<Cell>,
}

/// 16 hex digits of blake3.
pub fn hash_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..16].to_string()
}

fn toml_scalar(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes JSON with object keys sorted, whatever map type serde_json uses.
fn canonical_string(v: &Json, out: &mut String) {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String((*k).clone()).to_string());
                out.push(':');
                canonical_string(&m[*k], out);
            }
            out.push('}');
        }
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_string(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn flatten(prefix: &str, v: &Json, out: &mut Vec<(String, String)>) {
    match v {
        Json::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, x, out);
            }
        }
        Json::String(s) => out.push((prefix.to_string(), s.clone())),
        Json::Null => out.push((prefix.to_string(), "null".into())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Sets `key` (dotted) in a TOML document, creating tables on the way.
fn set_dotted(doc: &mut toml::Value, key: &str, value: toml::Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = doc;
    for (i, part) in parts.iter().enumerate() {
        let table = cur.as_table_mut().ok_or_else(|| format!("`{}` is not a table", parts[..i].join(".")))?;
        if i + 1 == parts.len() {
            table.insert((*part).to_string(), value);
            return Ok(());
        }
        cur = table.entry((*part).to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(())
}

fn apply_overrides(base: &GridFile, overrides: &[(String, toml::Value)], file: &Path) -> Result<GridFile, ConfigError> {
    if overrides.is_empty() {
        return Ok(base.clone());
    }
    let mut doc = toml::Value::try_from(base).map_err(|e| invalid(file, "grid", e.to_string()))?;
    for (k, v) in overrides {
        set_dotted(&mut doc, k, v.clone()).map_err(|m| invalid(file, &format!("grid.overrides.{k}"), m))?;
    }
    let keys: Vec<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
    serde_path_to_error::deserialize::<_, GridFile>(doc).map_err(|e| {
        let path = e.path().to_string();
        let key = keys.iter().find(|k| path.starts_with(*k) || k.starts_with(&path)).copied().unwrap_or(&path);
        invalid(file, &format!("grid.overrides.{key}"), format!("at `{path}`: {}", e.into_inner()))
    })
}

fn canonical(cfg: &GridFile, model: ModelKind, strategy: StrategyKind, file: &Path) -> Result<Json, ConfigError> {
    let to_json = |key: &str, r: Result<Json, serde_json::Error>| r.map_err(|e| invalid(file, key, e.to_string()));
    let data = to_json("data", serde_json::to_value(&cfg.data))?;
    let train = to_json("train", serde_json::to_value(&cfg.train))?;
    // The model's own section plus the shared input/tower/funnel settings and its backbone's section.
    let mut m = to_json("models", cfg.models.canonical(model))?;
    if let Json::Object(o) = &mut m {
        o.insert("kind".into(), Json::String(model.name().into()));
    }
    // The strategy's own section in full (the static arm's point names its weight vector).
    let mut s = to_json(&format!("strategies.{}", strategy.name()), cfg.strategies.section(strategy))?;
    if let Json::Object(o) = &mut s {
        o.insert("kind".into(), Json::String(strategy.name().into()));
    }
    Ok(serde_json::json!({ "data": data, "train": train, "model": m, "strategy": s }))
}

/// The override combinations: the Cartesian product of `[grid.overrides]`
/// (BTreeMap: stable key order), each crossed with the `[grid.search]` trials.
fn combos(grid: &GridFile) -> Vec<Vec<(String, toml::Value)>> {
    let mut combos: Vec<Vec<(String, toml::Value)>> = vec![vec![]];
    for (k, values) in &grid.grid.overrides {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((k.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    if let Some(search) = &grid.grid.search {
        let trials = search.trials();
        combos = combos.into_iter().flat_map(|c| trials.iter().map(move |t| c.iter().chain(t).cloned().collect())).collect();
    }
    combos
}

/// A cell without its seed.
struct Configuration {
    model: ModelKind,
    strategy: StrategyKind,
    overrides: Vec<(String, toml::Value)>,
    config: GridFile,
    canonical: Json,
    single_task: Option<String>,
}

/// Cells being collected: a (config hash, seed) pair is a cell once, however
/// many override combinations lead to it (an axis on one strategy's or
/// model's section leaves every other arm's configuration unchanged).
#[derive(Default)]
struct Cells {
    cells: Vec<Cell>,
    seen: HashSet<(String, u64)>,
}

impl Cells {
    fn push_seeds(&mut self, seeds: &[u64], c: Configuration) {
        let mut text = String::new();
        canonical_string(&c.canonical, &mut text);
        let config_hash = hash_hex(text.as_bytes());
        for &seed in seeds {
            if !self.seen.insert((config_hash.clone(), seed)) {
                continue;
            }
            self.cells.push(Cell {
                model: c.model,
                strategy: c.strategy,
                seed,
                overrides: c.overrides.clone(),
                config: c.config.clone(),
                canonical: c.canonical.clone(),
                config_hash: config_hash.clone(),
                single_task: c.single_task.clone(),
            });
        }
    }
}

/// The single-task baselines of one override combination: SharedBottom with
/// equal weighting on each task alone (the same input, bottom and towers;
/// no funnel, which needs two tasks).
fn single_task_cells(out: &mut Cells, grid: &GridFile, cfg: &GridFile, combo: &[(String, toml::Value)], file: &Path) -> Result<(), ConfigError> {
    let mut base = cfg.clone();
    base.strategies = Default::default();
    base.models.funnel = None;
    for task in cfg.data.task_names() {
        let mut canon = canonical(&base, ModelKind::SharedBottom, StrategyKind::Equal, file)?;
        if let Json::Object(o) = &mut canon {
            o.insert(SINGLE_TASK_PARAM.into(), Json::String(task.clone()));
        }
        out.push_seeds(
            &grid.grid.seeds,
            Configuration {
                model: ModelKind::SharedBottom,
                strategy: StrategyKind::Equal,
                overrides: combo.to_vec(),
                config: base.clone(),
                canonical: canon,
                single_task: Some(task),
            },
        );
    }
    Ok(())
}

/// Expands a parsed grid into its cells.
pub fn expand(grid: &GridFile, file: &Path) -> Result<Plan, ConfigError> {
    let mut out = Cells::default();
    for combo in &combos(grid) {
        let cfg = apply_overrides(grid, combo, file)?;
        // An axis value is checked like a value of the file.
        cfg.strategies.validate().map_err(|e| match e {
            StrategyError::Config { key, message } => {
                let how = if grid.grid.overrides.contains_key(&key) { "[grid.overrides]" } else { "[grid.search]" };
                invalid(file, &key, format!("{message} (a value of {how})"))
            }
            other => invalid(file, "strategies", other.to_string()),
        })?;
        for &model in &grid.grid.models {
            for &strategy in &grid.grid.strategies {
                for arm in weight_sweep::arm_configs(&cfg, strategy) {
                    let canonical = canonical(&arm.config, model, strategy, file)?;
                    let overrides = combo.iter().cloned().chain(arm.axis).collect();
                    out.push_seeds(&grid.grid.seeds, Configuration { model, strategy, overrides, config: arm.config, canonical, single_task: None });
                }
            }
        }
        if grid.grid.single_task {
            single_task_cells(&mut out, grid, &cfg, combo, file)?;
        }
    }
    let name = grid
        .name
        .clone()
        .or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "grid".into());
    let grid_json = serde_json::to_value(grid).map_err(|e| invalid(file, "grid", e.to_string()))?;
    let mut text = String::new();
    canonical_string(&grid_json, &mut text);
    Ok(Plan { name, grid: grid.clone(), grid_hash: hash_hex(text.as_bytes()), cells: out.cells })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_string_sorts_keys() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, 2], "c": "x"}});
        let mut s = String::new();
        canonical_string(&v, &mut s);
        assert_eq!(s, r#"{"a":{"c":"x","d":[1,2]},"b":1}"#);
    }

    #[test]
    fn set_dotted_creates_tables() {
        let mut doc = toml::Value::Table(Default::default());
        set_dotted(&mut doc, "models.mmoe.experts", toml::Value::Integer(4)).unwrap();
        assert_eq!(doc["models"]["mmoe"]["experts"].as_integer(), Some(4));
    }
}
