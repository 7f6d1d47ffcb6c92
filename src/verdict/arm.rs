//! One (model, strategy) arm: its configurations (the distinct config
//! hashes of its runs; its tuning axes are the grid's overrides), the
//! configuration chosen on validation for each seed, and what that choice
//! scores on test over seeds.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::stats::{mean_ci, summarize, DiffCi, Summary};

use super::delta_m::DeltaM;
use super::facts::{Role, RunFacts};
use super::group::by_configuration;
use super::select::{per_seed, Criterion, Pick};
use super::standing::Standing;

/// The kind of an arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArmKind {
    /// A strategy tuned over the grid's override axes.
    Tuned,
    /// The static-weight sweep: its weight vectors are an axis of its own,
    /// each tuned over the override axes.
    StaticWeights,
}

/// One configuration of an arm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Configuration {
    pub config_hash: String,
    /// The values of the arm's tuning axes (the params that differ between
    /// its configurations), e.g. `lr=0.05`; `default` for a lone configuration.
    pub label: String,
    pub seeds: Vec<i64>,
    pub valid: Option<Summary>,
    pub test: Option<Summary>,
    /// How many seeds chose it.
    pub chosen: usize,
    /// The static-weight point it belongs to.
    pub point: Option<String>,
}

/// An arm at its configurations selected on validation, per seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arm {
    pub model: String,
    pub strategy: String,
    pub kind: ArmKind,
    pub configurations: Vec<Configuration>,
    /// Configurations the arm was tuned over (per weight vector for the static arm).
    pub budget: usize,
    /// Weight vectors of the static arm.
    pub weight_vectors: Option<usize>,
    pub picks: Vec<Pick>,
    /// The configuration most seeds chose, and how many did.
    pub selected: String,
    /// The headline test value over seeds.
    pub test: Option<Summary>,
    pub test_ci: Option<DiffCi>,
    /// Test AUC per task over seeds.
    pub tasks: Vec<Option<Summary>>,
    /// Paired by seed: this arm minus tuned equal weighting of the same model.
    pub vs_equal: Option<DiffCi>,
    pub paired_seeds: usize,
    pub standing: Standing,
    pub delta_m: Option<DeltaM>,
    pub seconds_per_step: Option<Summary>,
    /// Time per step over tuned equal weighting's (same model).
    pub step_time_vs_equal: Option<f64>,
}

impl Arm {
    pub fn name(&self) -> String {
        format!("{} × {}", self.model, self.strategy)
    }

    /// Headline test values by seed.
    pub fn by_seed(&self) -> BTreeMap<i64, f64> {
        self.picks.iter().filter_map(|p| p.test.map(|v| (p.seed, v))).collect()
    }
}

/// The short key of a param (`train.lr` -> `lr`) unless two differing keys share it.
fn axis_names(keys: &[String]) -> Vec<String> {
    let short = |k: &String| k.rsplit('.').next().unwrap_or(k).to_string();
    keys.iter().map(|k| if keys.iter().filter(|o| short(o) == short(k)).count() > 1 { k.clone() } else { short(k) }).collect()
}

/// Per configuration, the values of the params that differ between them.
pub fn axis_labels(configs: &[Vec<&RunFacts>]) -> Vec<String> {
    let keys: BTreeSet<&String> = configs.iter().flat_map(|c| c[0].params.keys()).filter(|k| k.as_str() != "seed").collect();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|k| configs.iter().any(|c| c[0].params.get(*k) != configs[0][0].params.get(*k)))
        .cloned()
        .collect();
    let names = axis_names(&differing);
    configs
        .iter()
        .map(|c| {
            let parts: Vec<String> =
                differing.iter().zip(&names).map(|(k, n)| format!("{n}={}", c[0].params.get(k).map_or("–", String::as_str))).collect();
            if parts.is_empty() {
                "default".into()
            } else {
                parts.join(", ")
            }
        })
        .collect()
}

fn values(picks: &[Pick], f: impl Fn(&Pick) -> Option<f64>) -> Vec<f64> {
    picks.iter().filter_map(f).collect()
}

/// The configuration most seeds chose: "lr=0.05 (3 of 3 seeds)".
fn selected_label(configs: &[Configuration], picks: &[Pick]) -> String {
    let Some(top) = configs.iter().enumerate().max_by_key(|(i, c)| (c.chosen, std::cmp::Reverse(*i))).map(|(_, c)| c) else {
        return "–".into();
    };
    if configs.len() == 1 {
        return top.label.clone();
    }
    format!("{} ({} of {} seeds)", top.label, top.chosen, picks.len())
}

/// Builds an arm from its runs; the comparison with equal weighting and
/// Δm are filled in by the caller.
pub fn build(model: &str, strategy: &str, runs: &[&RunFacts], criterion: &Criterion, tasks: &[String], level: f64) -> Arm {
    let groups = by_configuration(runs.iter().copied());
    let picks = per_seed(&groups, criterion, tasks);
    let labels = axis_labels(&groups);
    let configurations: Vec<Configuration> = groups
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (g, label))| Configuration {
            config_hash: g[0].config_hash.clone(),
            label,
            seeds: g.iter().map(|r| r.seed).collect(),
            valid: summarize(&g.iter().filter_map(|r| criterion.validation_value(&r.valid)).collect::<Vec<_>>()),
            test: summarize(&g.iter().filter_map(|r| criterion.headline(&r.test)).collect::<Vec<_>>()),
            chosen: picks.iter().filter(|p| p.configuration == i).count(),
            point: match &g[0].role {
                Role::StaticPoint(p) => Some(p.clone()),
                _ => None,
            },
        })
        .collect();
    let points: BTreeSet<&String> = configurations.iter().filter_map(|c| c.point.as_ref()).collect();
    let kind = if points.is_empty() { ArmKind::Tuned } else { ArmKind::StaticWeights };
    let weight_vectors = (kind == ArmKind::StaticWeights).then_some(points.len());
    let budget = match weight_vectors {
        Some(_) => points.iter().map(|p| configurations.iter().filter(|c| c.point.as_ref() == Some(*p)).count()).max().unwrap_or(0),
        None => configurations.len(),
    };
    let headline = values(&picks, |p| p.test);
    Arm {
        model: model.to_string(),
        strategy: strategy.to_string(),
        kind,
        selected: selected_label(&configurations, &picks),
        configurations,
        budget,
        weight_vectors,
        test: summarize(&headline),
        test_ci: mean_ci(&headline, level).ok(),
        tasks: (0..tasks.len()).map(|t| summarize(&values(&picks, |p| p.tasks[t]))).collect(),
        seconds_per_step: summarize(&values(&picks, |p| p.seconds_per_step)),
        picks,
        vs_equal: None,
        paired_seeds: 0,
        standing: Standing::NoBaseline,
        delta_m: None,
        step_time_vs_equal: None,
    }
}
