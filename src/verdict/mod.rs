//! The verdict: which model x loss-weighting strategy wins on the data, by
//! how much, whether it is real, and at what cost. Pure over store rows (no
//! SQL, no libtorch): every number of the leaderboard, the README table and
//! the leaderboard page is computed once, here, from [`VerdictRows`].
//!
//! The protocol (docs/protocol.md): runs are grouped into configurations by
//! config hash ([`group`], the one grouping of the crate); each (model,
//! strategy) arm's configuration is chosen per seed on validation only
//! ([`select`]); test results of the chosen runs are summarised over seeds
//! with a 95% t interval; each arm is compared with *tuned* equal weighting
//! of the same model, paired by seed ([`standing`]); Δm against single-task
//! baselines ([`delta_m`]); step time relative to equal weighting; Pareto
//! panels of the static-weight sweep ([`pareto`]); and the caveats
//! ([`warnings`]), unequal tuning budgets first.

pub mod arm;
pub mod delta_m;
pub mod facts;
pub mod group;
pub mod pareto;
pub mod select;
pub mod standing;
pub mod warnings;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::Serialize;
use thiserror::Error;

use crate::stats::{paired_diff_ci, Summary};
use crate::store::VerdictRows;
use crate::strategies::StrategyKind;

pub use arm::{Arm, ArmKind, Configuration};
pub use delta_m::{delta_m, DeltaM, SingleTaskBaseline};
pub use facts::{Role, RunFacts};
pub use group::{by_configuration, configuration_label, Configured};
pub use pareto::{pareto_front, ParetoPanel, ParetoPoint};
pub use select::{Criterion, Pick};
pub use standing::{Standing, Verdict, MIN_SEEDS};
pub use warnings::Warning;

/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;

#[derive(Debug, Error)]
pub enum VerdictError {
    #[error("no finished multi-task runs in sweep(s) {0}: nothing to rank")]
    NoRuns(String),
    #[error("the runs select on different validation metrics ({0}); rank them with --task NAME, or run one selection metric")]
    MixedSelection(String),
    #[error("run {run}: unknown train.select_metric `{value}` (expected mean-auc or mean-logloss)")]
    UnknownSelectMetric { run: String, value: String },
    #[error("the runs were evaluated on different datasets ({0}); a leaderboard ranks arms on one dataset (a sweep whose data changed, e.g. features rebuilt by a newer version, keeps its older runs: record it into a new database with --db)")]
    MixedDatasets(String),
    #[error("--task {task}: no such task; the tasks are {tasks}")]
    UnknownTask { task: String, tasks: String },
}

/// How to build a leaderboard.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Select on this task's validation AUC and report its test AUC.
    pub task: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRef {
    pub id: String,
    pub name: String,
}

/// The ranked arms of one or more sweeps on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    pub sweeps: Vec<SweepRef>,
    pub datasets: Vec<String>,
    pub tasks: Vec<String>,
    pub criterion: Criterion,
    /// What selects (validation) and what is reported (test), in words.
    pub selection: String,
    pub headline: String,
    pub level: f64,
    pub seeds: Vec<i64>,
    /// By decreasing headline test value.
    pub arms: Vec<Arm>,
    /// One per task when the sweeps ran single-task baselines.
    pub single_task: Vec<SingleTaskBaseline>,
    pub pareto: Vec<ParetoPanel>,
    pub warnings: Vec<Warning>,
    pub last_finished: Option<String>,
}

impl Leaderboard {
    /// Whether every arm was tuned over the same number of configurations.
    pub fn equal_budgets(&self) -> bool {
        !self.warnings.iter().any(|w| matches!(w, Warning::UnequalBudgets { .. }))
    }
}

/// The tasks of these runs' test metrics (also those whose AUC is
/// undefined), ordered as their data declares them.
fn tasks_of(runs: &[&RunFacts]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in runs {
        for (task, metric) in r.test.keys() {
            if crate::metrics::is_task_metric(metric) && !seen.contains(task) {
                seen.push(task.clone());
            }
        }
    }
    let declared: Vec<String> = runs.first().and_then(|r| r.params.get(facts::DATA_TASKS_PARAM)).and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default();
    seen.sort_by_key(|t| declared.iter().position(|d| d == t).unwrap_or(usize::MAX));
    seen
}

fn criterion_of(runs: &[&RunFacts], opts: &Options, tasks: &[String]) -> Result<Criterion, VerdictError> {
    if let Some(task) = &opts.task {
        if !tasks.contains(task) {
            return Err(VerdictError::UnknownTask { task: task.clone(), tasks: tasks.join(", ") });
        }
        return Ok(Criterion::TaskAuc { task: task.clone() });
    }
    let mut found: Vec<(Criterion, String)> = Vec::new();
    for r in runs {
        let value = r.params.get(facts::SELECT_METRIC_PARAM).map_or("mean-auc", String::as_str);
        let c = Criterion::from_select_metric(value).ok_or_else(|| VerdictError::UnknownSelectMetric { run: r.id.clone(), value: value.into() })?;
        if !found.iter().any(|f| f.0 == c) {
            found.push((c, format!("{value} in run {}", r.id)));
        }
    }
    match found.len() {
        0 | 1 => Ok(found.pop().map_or(Criterion::MeanAuc, |f| f.0)),
        _ => Err(VerdictError::MixedSelection(found.into_iter().map(|f| f.1).collect::<Vec<_>>().join(", "))),
    }
}

fn check_one_dataset(runs: &[&RunFacts]) -> Result<(), VerdictError> {
    let sets: BTreeSet<(&str, &str)> = runs.iter().map(|r| (r.dataset_name.as_str(), r.dataset_digest.as_str())).collect();
    if sets.len() > 1 {
        return Err(VerdictError::MixedDatasets(sets.iter().map(|(n, d)| format!("{n} (digest {d})")).collect::<Vec<_>>().join(", ")));
    }
    Ok(())
}

/// The per-task baselines, in task order; empty unless every task has one.
fn single_task_baselines(facts: &[RunFacts], criterion: &Criterion, tasks: &[String], warnings: &mut Vec<Warning>) -> Vec<SingleTaskBaseline> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        let runs: Vec<&RunFacts> = facts.iter().filter(|f| f.role == Role::SingleTask(task.clone())).collect();
        if runs.is_empty() {
            missing.push(task.clone());
            continue;
        }
        let groups = by_configuration(runs);
        let picks = select::per_seed(&groups, &criterion.for_single_task(task), tasks);
        let test = crate::stats::summarize(&picks.iter().filter_map(|p| p.tasks[t]).collect::<Vec<_>>());
        out.push(SingleTaskBaseline { task: task.clone(), configurations: groups.len(), picks, test });
    }
    if !out.is_empty() && !missing.is_empty() {
        warnings.push(Warning::IncompleteSingleTask { missing });
        return vec![];
    }
    out
}

/// Fills in each arm's paired difference to tuned equal weighting of its
/// model, its standing and its step time relative to equal weighting.
fn compare_with_equal(arms: &mut [Arm], warnings: &mut Vec<Warning>) {
    let equal = StrategyKind::Equal.name();
    let models: Vec<String> = arms.iter().map(|a| a.model.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    for model in models {
        let base = arms.iter().find(|a| a.model == model && a.strategy == equal && a.kind == ArmKind::Tuned).cloned();
        let Some(base) = base else {
            warnings.push(Warning::NoBaseline { model });
            continue;
        };
        let base_seeds = base.by_seed();
        for a in arms.iter_mut().filter(|a| a.model == model) {
            a.step_time_vs_equal = a.seconds_per_step.zip(base.seconds_per_step).map(|(x, b)| x.mean / b.mean);
            if a.strategy == equal && a.kind == ArmKind::Tuned {
                a.standing = Standing::Baseline;
                continue;
            }
            let pairs: Vec<(f64, f64)> = a.by_seed().iter().filter_map(|(s, v)| base_seeds.get(s).map(|b| (*b, *v))).collect();
            let (b, v): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
            a.vs_equal = paired_diff_ci(&b, &v, LEVEL).ok();
            a.paired_seeds = pairs.len();
            a.standing = Standing::judge(a.vs_equal.as_ref(), pairs.len(), true);
        }
    }
}

/// The static arm's weight vectors of a model, each at its configurations
/// chosen per seed on validation: (label, per-task test AUC over seeds).
fn static_points(facts: &[&RunFacts], criterion: &Criterion, tasks: &[String]) -> Vec<(String, Vec<Option<Summary>>)> {
    let mut points: Vec<&String> = Vec::new();
    for f in facts {
        if let Role::StaticPoint(p) = &f.role {
            if !points.contains(&p) {
                points.push(p);
            }
        }
    }
    points
        .into_iter()
        .map(|p| {
            let runs = facts.iter().copied().filter(|f| f.role == Role::StaticPoint(p.clone()));
            let picks = select::per_seed(&by_configuration(runs), criterion, tasks);
            let per_task = (0..tasks.len()).map(|t| crate::stats::summarize(&picks.iter().filter_map(|x| x.tasks[t]).collect::<Vec<_>>())).collect();
            (format!("w{p}"), per_task)
        })
        .collect()
}

/// One panel per model and pair of tasks.
fn pareto_panels(multi: &[&RunFacts], arms: &[Arm], criterion: &Criterion, tasks: &[String]) -> Vec<ParetoPanel> {
    let mut panels = Vec::new();
    let models: Vec<&String> = arms.iter().map(|a| &a.model).collect::<BTreeSet<_>>().into_iter().collect();
    for model in models {
        let runs: Vec<&RunFacts> = multi.iter().copied().filter(|f| &f.model == model).collect();
        let statics = static_points(&runs, criterion, tasks);
        let others: Vec<&Arm> = arms.iter().filter(|a| &a.model == model && a.kind == ArmKind::Tuned).collect();
        for i in 0..tasks.len() {
            for j in i + 1..tasks.len() {
                let point = |label: &str, strategy: &str, per_task: &[Option<Summary>]| {
                    per_task[i].zip(per_task[j]).map(|(x, y)| ParetoPoint { label: label.into(), strategy: strategy.into(), x, y })
                };
                let static_points: Vec<ParetoPoint> = statics.iter().filter_map(|(l, s)| point(l, StrategyKind::Static.name(), s)).collect();
                let arms: Vec<ParetoPoint> = others.iter().filter_map(|a| point(&a.strategy, &a.strategy, &a.tasks)).collect();
                if static_points.is_empty() && arms.is_empty() {
                    continue;
                }
                let front = pareto::panel_front(&static_points);
                panels.push(ParetoPanel { model: model.clone(), x_task: tasks[i].clone(), y_task: tasks[j].clone(), static_points, front, arms });
            }
        }
    }
    panels
}

/// Builds the leaderboard of the rows' sweeps.
pub fn build(rows: &VerdictRows, opts: &Options) -> Result<Leaderboard, VerdictError> {
    let (facts, unfinished) = facts::gather(rows);
    let multi: Vec<&RunFacts> = facts.iter().filter(|f| matches!(f.role, Role::Arm | Role::StaticPoint(_))).collect();
    let sweeps: Vec<SweepRef> = rows.sweeps.iter().map(|s| SweepRef { id: s.id.clone(), name: s.name.clone() }).collect();
    if multi.is_empty() {
        return Err(VerdictError::NoRuns(sweeps.iter().map(|s| format!("{} ({})", s.name, s.id)).collect::<Vec<_>>().join(", ")));
    }
    check_one_dataset(&multi)?;
    let tasks = tasks_of(&multi);
    let selecting: Vec<&RunFacts> = facts.iter().filter(|f| f.role != Role::Fusion).collect();
    let criterion = criterion_of(&selecting, opts, &tasks)?;
    let mut warnings = Vec::new();
    let fusions = facts.iter().filter(|f| f.role == Role::Fusion).count();
    if unfinished + fusions > 0 {
        warnings.push(Warning::LeftOut { unfinished, fusions });
    }
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for f in &multi {
        if !keys.contains(&(f.model.as_str(), f.strategy.as_str())) {
            keys.push((f.model.as_str(), f.strategy.as_str()));
        }
    }
    let mut arms: Vec<Arm> = keys
        .iter()
        .map(|(m, s)| {
            let runs: Vec<&RunFacts> = multi.iter().copied().filter(|f| f.model == *m && f.strategy == *s).collect();
            arm::build(m, s, &runs, &criterion, &tasks, LEVEL)
        })
        .collect();
    compare_with_equal(&mut arms, &mut warnings);
    let single_task = single_task_baselines(&facts, &criterion, &tasks, &mut warnings);
    let refs: Vec<&SingleTaskBaseline> = single_task.iter().collect();
    for a in &mut arms {
        a.delta_m = delta_m::arm_delta_m(&a.picks, &refs, LEVEL);
    }
    let seeds: Vec<i64> = multi.iter().map(|f| f.seed).collect::<BTreeSet<_>>().into_iter().collect();
    warnings.extend(warnings::unequal_budgets(&arms));
    warnings.extend(arms.iter().filter_map(|a| warnings::missing_seeds(a, &seeds)));
    let pareto = pareto_panels(&multi, &arms, &criterion, &tasks);
    arms.sort_by(|a, b| b.test.map(|s| s.mean).unwrap_or(f64::NEG_INFINITY).total_cmp(&a.test.map(|s| s.mean).unwrap_or(f64::NEG_INFINITY)));
    Ok(Leaderboard {
        sweeps,
        datasets: multi.iter().map(|f| f.dataset_name.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
        selection: criterion.label(),
        headline: criterion.headline_label(),
        criterion,
        level: LEVEL,
        tasks,
        seeds,
        arms,
        single_task,
        pareto,
        warnings,
        last_finished: multi.iter().filter_map(|f| f.finished_at.clone()).max(),
    })
}
