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
use crate::metrics;

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

/// Mean of a metric over the split's tasks (see [`metrics::TASK_METRICS`]);
/// `None` unless every task has it.
fn mean_over_tasks(m: &Metrics, metric: &str) -> Option<f64> {
    let mut tasks: Vec<&str> = m.keys().filter(|(_, k)| metrics::is_task_metric(k)).map(|(t, _)| t.as_str()).collect();
    tasks.dedup();
    metrics::mean_over_tasks(tasks.into_iter().map(|t| RunFacts::metric(m, t, metric)))
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

    /// The run's headline test value: the mean test AUC over its tasks
    /// (none where a task's is undefined), or the chosen task's test AUC.
    pub fn headline(&self, test: &Metrics) -> Option<f64> {
        match self {
            Criterion::TaskAuc { task } => RunFacts::metric(test, task, AUC),
            _ => mean_over_tasks(test, AUC),
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
            test: criterion.headline(&run.test),
            tasks: tasks.iter().map(|t| RunFacts::metric(&run.test, t, AUC)).collect(),
            seconds_per_step: run.seconds_per_step,
        });
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(rows: &[(&str, &str, f64)]) -> Metrics {
        rows.iter().map(|(t, m, v)| ((t.to_string(), m.to_string()), *v)).collect()
    }

    #[test]
    fn means_over_tasks_cover_every_task_or_are_undefined() {
        let full = metrics(&[("a", "auc", 0.6), ("a", "logloss", 0.3), ("b", "auc", 0.8), ("b", "logloss", 0.5), ("all", "wechat_score", 0.1)]);
        assert_eq!(Criterion::MeanAuc.validation_value(&full), Some(0.7));
        assert_eq!(Criterion::MeanLogloss.validation_value(&full), Some(0.4));
        assert_eq!(Criterion::MeanAuc.headline(&full), Some(0.7));
        // Task b's AUC is undefined (one class): no mean over task a alone.
        let partial = metrics(&[("a", "auc", 0.6), ("a", "logloss", 0.3), ("b", "logloss", 0.5), ("b", "positive_rate", 0.0)]);
        assert_eq!(Criterion::MeanAuc.validation_value(&partial), None);
        assert_eq!(Criterion::MeanAuc.headline(&partial), None);
        assert_eq!(Criterion::MeanLogloss.validation_value(&partial), Some(0.4));
        assert_eq!(Criterion::TaskAuc { task: "a".into() }.headline(&partial), Some(0.6));
    }
}
