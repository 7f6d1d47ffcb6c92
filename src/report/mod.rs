//! Reports from the store: static HTML pages with SVG charts and the README
//! results table. Reads the store only. Pages are filled from serializable
//! context structs into templates compiled into the binary (minijinja, with
//! HTML auto-escaping, so user-supplied strings render as text).

pub mod charts;
pub mod listing;
pub mod readme;
pub mod table;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::store::{RunRow, Store, StoreError};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("chart: {0}")]
    Chart(String),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug, Serialize)]
struct RunCtx {
    id: String,
    name: String,
    model: String,
    strategy: String,
    seed: i64,
    status: String,
    error: String,
    aucs: Vec<String>,
    best_epoch: String,
    train_seconds: String,
}

#[derive(Debug, Serialize)]
struct SweepCtx {
    id: String,
    name: String,
    grid_path: String,
    updated_at: String,
    datasets: String,
    tasks: Vec<String>,
    finished: usize,
    failed: usize,
    other: usize,
    chart: Option<String>,
    runs: Vec<RunCtx>,
}

#[derive(Debug, Serialize)]
struct IndexCtx {
    generated_at: String,
    db_path: String,
    total_runs: usize,
    sweeps: Vec<SweepCtx>,
}

/// Test AUC per task of a run, in `tasks` order.
pub fn test_aucs(store: &Store, run: &RunRow, tasks: &[String]) -> Result<Vec<Option<f64>>, StoreError> {
    let m = store.metrics(&run.id)?;
    Ok(tasks
        .iter()
        .map(|t| m.iter().find(|r| r.split == "test" && r.metric == "auc" && &r.task == t).map(|r| r.value))
        .collect())
}

/// Task names seen in the test metrics of these runs, in first-seen order.
pub fn tasks_of(store: &Store, runs: &[RunRow]) -> Result<Vec<String>, StoreError> {
    let mut seen = Vec::new();
    for r in runs {
        for m in store.metrics(&r.id)? {
            if m.split == "test" && !seen.contains(&m.task) {
                seen.push(m.task);
            }
        }
    }
    Ok(seen)
}

/// What `render` wrote.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub index: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// Renders `out_dir/index.html` and one chart per sweep.
pub fn render(store: &Store, out_dir: &Path) -> Result<Rendered, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let mut charts = Vec::new();
    let mut sweeps = Vec::new();
    let mut total_runs = 0;
    for s in store.list_sweeps()? {
        let runs = store.sweep_runs(&s.id)?;
        total_runs += runs.len();
        let tasks = tasks_of(store, &runs)?;
        let datasets: BTreeSet<String> = runs.iter().map(|r| r.dataset_name.clone()).collect();
        let finished: Vec<&RunRow> = runs.iter().filter(|r| r.status == "finished").collect();
        let mut chart = None;
        if !finished.is_empty() && !tasks.is_empty() {
            let names: Vec<String> = finished.iter().map(|r| r.name.clone()).collect();
            let values = finished.iter().map(|r| test_aucs(store, r, &tasks)).collect::<Result<Vec<_>, _>>()?;
            let svg = charts::auc_bars(&format!("{}: test ROC-AUC per task", s.name), &names, &tasks, &values)?;
            let file = format!("sweep-{}-auc.svg", s.id);
            let path = out_dir.join(&file);
            std::fs::write(&path, svg).map_err(io(&path))?;
            charts.push(path);
            chart = Some(file);
        }
        let mut run_ctx = Vec::new();
        for r in &runs {
            let aucs = test_aucs(store, r, &tasks)?;
            run_ctx.push(RunCtx {
                id: r.id.clone(),
                name: r.name.clone(),
                model: r.model.clone(),
                strategy: r.strategy.clone(),
                seed: r.seed,
                status: r.status.clone(),
                error: r.error.clone().unwrap_or_default(),
                aucs: aucs.iter().map(|a| a.map_or("–".into(), |v| format!("{v:.4}"))).collect(),
                best_epoch: r.best_epoch.map_or("–".into(), |e| e.to_string()),
                train_seconds: r.train_seconds.map_or("–".into(), |t| format!("{t:.1}")),
            });
        }
        sweeps.push(SweepCtx {
            id: s.id.clone(),
            name: s.name.clone(),
            grid_path: s.grid_path.clone(),
            updated_at: s.updated_at.clone(),
            datasets: datasets.into_iter().collect::<Vec<_>>().join(", "),
            tasks,
            finished: finished.len(),
            failed: runs.iter().filter(|r| r.status == "failed").count(),
            other: runs.iter().filter(|r| r.status != "failed" && r.status != "finished").count(),
            chart,
            runs: run_ctx,
        });
    }
    let ctx = IndexCtx { generated_at: crate::store::now(), db_path: store.path().display().to_string(), total_runs, sweeps };
    let mut env = minijinja::Environment::new();
    env.add_template("index.html", include_str!("templates/index.html"))?;
    let html = env.get_template("index.html")?.render(&ctx)?;
    let index = out_dir.join("index.html");
    std::fs::write(&index, html).map_err(io(&index))?;
    Ok(Rendered { index, charts })
}
