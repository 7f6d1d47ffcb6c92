//! Selection on validation, repeated per seed (as DomainBed does): for seed
//! s, each configuration's seed-s run is scored on its final validation
//! metrics only, the best configuration is chosen, and seed s's test result
//! of that run is what the seed contributes. The choice of configuration
//! thus varies with the seed, and that selection noise ends up in the error
//! bars instead of being hidden by one choice made on averages.
//!
//! [`best`] sees nothing but (candidate, validation value) pairs: test
//! metrics cannot influence a selection.

use serde::Serialize;

use super::facts::{Metrics, RunFacts};

/// The metric names of the store's rows.
pub const AUC: &str = "auc";
const LOGLOSS: &str = "logloss";

/// What selects a configuration: the runs' `train.select_metric`, or one
/// task's validation AUC (`--task`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Criterion {
    /// Mean over tasks of the validation ROC-AUC (higher is better).
    MeanAuc,
    /// Mean over tasks of the validation log loss (lower is better).
    MeanLogloss,
    /// One task's validation ROC-AUC; the headline is that task's test AUC.
    TaskAuc { task: String },
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Mean of a metric over the tasks that have it.
fn mean_over_tasks(m: &Metrics, metric: &str) -> Option<f64> {
    mean(&m.iter().filter(|((_, k), _)| k == metric).map(|(_, v)| *v).collect::<Vec<_>>())
}

impl Criterion {
    /// From a recorded `train.select_metric` value (the names of
    /// `train::SelectMetric`).
    pub fn from_select_metric(value: &str) -> Option<Criterion> {
        match value {
            "mean-auc" => Some(Criterion::MeanAuc),
            "mean-logloss" => Some(Criterion::MeanLogloss),
            _ => None,
        }
    }

    pub fn higher_is_better(&self) -> bool {
        !matches!(self, Criterion::MeanLogloss)
    }

    /// How the selection is described in tables and captions.
    pub fn label(&self) -> String {
        match self {
            Criterion::MeanAuc => "mean validation ROC-AUC over tasks".into(),
            Criterion::MeanLogloss => "mean validation log loss over tasks (lower is better)".into(),
            Criterion::TaskAuc { task } => format!("validation ROC-AUC of {task}"),
        }
    }

    /// What the leaderboard reports on test.
    pub fn headline_label(&self) -> String {
        match self {
            Criterion::TaskAuc { task } => format!("test ROC-AUC of {task}"),
            _ => "mean test ROC-AUC over tasks".into(),
        }
    }

    /// The criterion of a single-task baseline of `task`: its own task's
    /// AUC, or its log loss when the runs select on log loss.
    pub fn for_single_task(&self, task: &str) -> Criterion {
        match self {
            Criterion::MeanLogloss => Criterion::MeanLogloss,
            _ => Criterion::TaskAuc { task: task.to_string() },
        }
    }

    /// The value a run is selected by, from its validation metrics alone.
    pub fn validation_value(&self, valid: &Metrics) -> Option<f64> {
        match self {
            Criterion::MeanAuc => mean_over_tasks(valid, AUC),
            Criterion::MeanLogloss => mean_over_tasks(valid, LOGLOSS),
            Criterion::TaskAuc { task } => RunFacts::metric(valid, task, AUC),
        }
    }

    /// The run's headline test value: the mean test AUC over `tasks` (the
    /// ones it has), or the chosen task's test AUC.
    pub fn headline(&self, test: &Metrics, tasks: &[String]) -> Option<f64> {
        match self {
            Criterion::TaskAuc { task } => RunFacts::metric(test, task, AUC),
            _ => mean(&tasks.iter().filter_map(|t| RunFacts::metric(test, t, AUC)).collect::<Vec<_>>()),
        }
    }
}

/// The candidate with the best validation value (ties: the first).
pub fn best(candidates: &[(usize, f64)], higher_is_better: bool) -> Option<usize> {
    let mut out: Option<(usize, f64)> = None;
    for &(i, v) in candidates {
        let better = match out {
            None => true,
            Some((_, b)) => (higher_is_better && v > b) || (!higher_is_better && v < b),
        };
        if better {
            out = Some((i, v));
        }
    }
    out.map(|(i, _)| i)
}

/// What one seed contributes: the configuration chosen on its validation
/// run and that run's test results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    pub seed: i64,
    /// Index of the chosen configuration in the arm's list.
    pub configuration: usize,
    pub run_id: String,
    /// The chosen run's validation value (the criterion's).
    pub valid: f64,
    /// The chosen run's headline test value.
    pub test: Option<f64>,
    /// Its test AUC per task of the leaderboard.
    pub tasks: Vec<Option<f64>>,
    pub seconds_per_step: Option<f64>,
}

/// Per seed (ascending), the chosen configuration of `configurations`
/// (each a list of runs of one config hash). A seed none of whose runs has a
/// validation value contributes nothing.
pub fn per_seed(configurations: &[Vec<&RunFacts>], criterion: &Criterion, tasks: &[String]) -> Vec<Pick> {
    let mut seeds: Vec<i64> = configurations.iter().flatten().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut picks = Vec::new();
    for seed in seeds {
        let runs: Vec<Option<&RunFacts>> = configurations.iter().map(|c| c.iter().copied().find(|r| r.seed == seed)).collect();
        let candidates: Vec<(usize, f64)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.and_then(|r| criterion.validation_value(&r.valid)).map(|v| (i, v)))
            .collect();
        let Some(i) = best(&candidates, criterion.higher_is_better()) else { continue };
        let Some(run) = runs[i] else { continue };
        let valid = candidates.iter().find(|c| c.0 == i).map_or(f64::NAN, |c| c.1);
        picks.push(Pick {
            seed,
            configuration: i,
            run_id: run.id.clone(),
            valid,
            test: criterion.headline(&run.test, tasks),
            tasks: tasks.iter().map(|t| RunFacts::metric(&run.test, t, AUC)).collect(),
            seconds_per_step: run.seconds_per_step,
        });
    }
    picks
}
