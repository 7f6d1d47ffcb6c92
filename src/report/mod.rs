//! Reports from the store: static, self-contained HTML pages (index, one
//! per sweep with its leaderboard, one per run) with SVG charts, and the
//! README results table (from the leaderboard).
//! Reads the store only. Pages are filled from serializable context structs
//! into templates compiled into the binary (minijinja with HTML
//! auto-escaping, so user-supplied strings always render as text).

pub mod charts;
pub mod compare;
pub mod leaderboard;
mod leaderboard_charts;
mod leaderboard_page;
pub mod listing;
pub mod readme;
mod run_page;
pub mod show;
mod sweep_page;
pub mod table;

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
    Template(minijinja::Error),
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Verdict(#[from] crate::verdict::VerdictError),
}

// The message shows the template error; `From` without `#[from]` keeps it
// from being a `source` too (an error chain would print it twice).
impl From<minijinja::Error> for ReportError {
    fn from(e: minijinja::Error) -> Self {
        ReportError::Template(e)
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io { path: path.to_path_buf(), cause: source }
}

/// A chart on a page: its file (relative to the page) and a caption.
#[derive(Debug, Clone, Serialize)]
pub struct ChartRef {
    pub title: String,
    pub file: String,
    pub note: String,
}

/// Writes a chart file into the output folder and returns its reference.
pub(crate) fn write_chart(out: &Path, file: String, title: &str, note: &str, svg: String, written: &mut Vec<PathBuf>) -> Result<ChartRef, ReportError> {
    let path = out.join(&file);
    std::fs::write(&path, svg).map_err(io(&path))?;
    written.push(path);
    Ok(ChartRef { title: title.to_string(), file, note: note.to_string() })
}

/// The file name of a sweep's page.
pub(crate) fn sweep_page_name(sweep_id: &str) -> String {
    format!("sweep-{sweep_id}.html")
}

/// The file name of a run's page.
pub(crate) fn run_page_name(run_id: &str) -> String {
    format!("run-{run_id}.html")
}

/// Formats an optional number.
pub(crate) fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

/// Test AUC per task of a run, in `tasks` order.
pub fn test_aucs(store: &Store, run: &RunRow, tasks: &[String]) -> Result<Vec<Option<f64>>, StoreError> {
    let m = store.metrics(&run.id)?;
    Ok(tasks
        .iter()
        .map(|t| m.iter().find(|r| r.split == "test" && r.metric == "auc" && &r.task == t).map(|r| r.value))
        .collect())
}

/// Task names (per-task test AUCs) of these runs, in first-seen order.
pub fn tasks_of(store: &Store, runs: &[RunRow]) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let mut seen = Vec::new();
    for m in store.metrics_of(&ids)? {
        if m.split == "test" && crate::metrics::is_task_metric(&m.metric) && !seen.contains(&m.task) {
            seen.push(m.task);
        }
    }
    // Order as the dataset declares its tasks (the `data.tasks` parameter), where known.
    if let Some(first) = runs.first() {
        let declared: Vec<String> = store
            .params(&first.id)?
            .into_iter()
            .find(|p| p.key == "data.tasks")
            .and_then(|p| serde_json::from_str(&p.value).ok())
            .unwrap_or_default();
        seen.sort_by_key(|t| declared.iter().position(|d| d == t).unwrap_or(usize::MAX));
    }
    Ok(seen)
}

/// Context shared by every page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PageMeta {
    pub generated_at: String,
    pub db_path: String,
    pub version: &'static str,
}

pub(crate) fn templates() -> Result<minijinja::Environment<'static>, ReportError> {
    let mut env = minijinja::Environment::new();
    env.add_template("_base.html", include_str!("templates/_base.html"))?;
    env.add_template("index.html", include_str!("templates/index.html"))?;
    env.add_template("sweep.html", include_str!("templates/sweep.html"))?;
    env.add_template("run.html", include_str!("templates/run.html"))?;
    env.add_template("leaderboard.html", include_str!("templates/leaderboard.html"))?;
    Ok(env)
}

/// What `render` wrote.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub index: PathBuf,
    pub pages: Vec<PathBuf>,
    pub charts: Vec<PathBuf>,
}

#[derive(Debug, Serialize)]
struct IndexCtx<'a> {
    #[serde(flatten)]
    meta: &'a PageMeta,
    total_runs: usize,
    sweeps: Vec<sweep_page::SweepCtx>,
}

fn render_to(env: &minijinja::Environment, name: &str, ctx: impl Serialize, path: &Path) -> Result<(), ReportError> {
    let html = env.get_template(name)?.render(ctx)?;
    std::fs::write(path, html).map_err(io(path))
}

/// Renders `out_dir/index.html`, a page per sweep and per run, and their charts.
pub fn render(store: &Store, out_dir: &Path) -> Result<Rendered, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let env = templates()?;
    let meta = PageMeta { generated_at: crate::store::now(), db_path: store.path().display().to_string(), version: env!("CARGO_PKG_VERSION") };
    let mut charts = Vec::new();
    let mut pages = Vec::new();
    let mut sweeps = Vec::new();
    let mut total_runs = 0;
    for s in store.list_sweeps()? {
        let mut sweep = sweep_page::build(store, &s, out_dir, &mut charts)?;
        total_runs += sweep.runs.len();
        // A sweep without finished multi-task runs (or of fused runs only) has no leaderboard.
        let board = match leaderboard::of_sweeps(store, std::slice::from_ref(&s), &Default::default()) {
            Ok(b) => Some(b),
            Err(ReportError::Verdict(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(board) = board {
            let ctx = leaderboard_page::build(&board, &s.id, &s.name, out_dir, &mut charts)?;
            let page = out_dir.join(&ctx.page);
            render_to(&env, "leaderboard.html", minijinja::context! { l => &ctx, ..minijinja::Value::from_serialize(&meta) }, &page)?;
            pages.push(page);
            sweep.leaderboard = Some(ctx.page);
            if let Some(top) = board.arms.first() {
                let value = top.test.map_or("n/a".into(), |t| format!("{:.4}", t.mean));
                sweep.best = format!("{} {} at {} ({value})", top.model, top.strategy, top.selected);
            }
        }
        let page = out_dir.join(&sweep.page);
        render_to(&env, "sweep.html", minijinja::context! { s => &sweep, ..minijinja::Value::from_serialize(&meta) }, &page)?;
        pages.push(page);
        for r in store.sweep_runs(&s.id)? {
            let ctx = run_page::build(store, &r, &s, out_dir, &mut charts)?;
            let page = out_dir.join(run_page_name(&r.id));
            render_to(&env, "run.html", minijinja::context! { r => &ctx, ..minijinja::Value::from_serialize(&meta) }, &page)?;
            pages.push(page);
        }
        sweeps.push(sweep);
    }
    let index = out_dir.join("index.html");
    render_to(&env, "index.html", IndexCtx { meta: &meta, total_runs, sweeps }, &index)?;
    Ok(Rendered { index, pages, charts })
}
