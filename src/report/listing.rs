//! `bench list`: selecting runs by sweep, model, strategy and status, and
//! the one-line-per-run table.

use super::table::Table;
use super::ReportError;
use crate::metrics::{is_task_metric, mean_over_tasks};
use crate::store::{RunRow, RunStatus, Store};

/// Filters of `bench list`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Sweep id prefix or name.
    pub sweep: Option<String>,
    pub model: Option<String>,
    pub strategy: Option<String>,
    pub status: Option<RunStatus>,
}

/// The runs that pass the filter, oldest first (in cell order for a sweep).
pub fn select_runs(store: &Store, f: &RunFilter) -> Result<Vec<RunRow>, ReportError> {
    let runs = match &f.sweep {
        Some(w) => {
            let sweeps = store.list_sweeps()?;
            let matching: Vec<_> = sweeps.iter().filter(|s| s.id.starts_with(w.as_str()) || &s.name == w).collect();
            match matching.as_slice() {
                [] => return Err(ReportError::Invalid(format!("no sweep matches `{w}` (see `bench list`)"))),
                [one] => store.sweep_runs(&one.id)?,
                many => {
                    return Err(ReportError::Invalid(format!(
                        "`{w}` matches several sweeps: {}",
                        many.iter().map(|s| format!("{} ({})", s.id, s.name)).collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
        None => store.list_runs()?,
    };
    let keep = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    Ok(runs.into_iter().filter(|r| keep(&f.model, &r.model) && keep(&f.strategy, &r.strategy) && f.status.is_none_or(|s| s == r.status)).collect())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

/// One line per run: id, name, status, mean test AUC over every task
/// (`n/a` where a task's is undefined), timings.
pub fn runs_table(store: &Store, runs: &[RunRow]) -> Result<Table, ReportError> {
    let mut t = Table::new(&["run", "name", "model", "strategy", "seed", "status", "mean test AUC", "train s", "samples/s", "finished"]);
    for r in runs {
        let m = store.metrics(&r.id)?;
        let test = |task: &str, metric: &str| m.iter().find(|x| x.split == "test" && x.task == task && x.metric == metric).map(|x| x.value);
        let mut tasks: Vec<&str> = m.iter().filter(|x| x.split == "test" && is_task_metric(&x.metric)).map(|x| x.task.as_str()).collect();
        tasks.sort_unstable();
        tasks.dedup();
        let mean = match mean_over_tasks(tasks.iter().map(|t| test(t, "auc"))) {
            Some(v) => opt(Some(v), 4),
            // A task's AUC is undefined (one class in the test split): no mean over fewer tasks.
            None if !tasks.is_empty() => "n/a".into(),
            None => opt(None, 4),
        };
        t.push(vec![
            r.id.clone(),
            r.name.clone(),
            r.model.clone(),
            r.strategy.clone(),
            r.seed.to_string(),
            r.status.to_string(),
            mean,
            opt(r.train_seconds, 1),
            opt(r.samples_per_second, 0),
            r.finished_at.clone().unwrap_or_else(|| "–".into()),
        ]);
    }
    Ok(t)
}
