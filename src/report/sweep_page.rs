//! The page of one sweep: the results matrix (configurations x tasks, mean
//! ± std over seeds, best per column marked) and its charts — test AUC bars
//! with error bars, validation curves, strategy weights and gradient
//! conflict over steps, throughput and time per cell, MMOE/PLE gates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::charts::{self, BarGroup, BarPanel, LinePanel, Series, YAxes};
use super::{fmt, run_page_name, sweep_page_name, tasks_of, write_chart, ChartRef, ReportError};
use crate::stats::summarize;
use crate::store::{MetricRow, RunRow, RunStatus, Store, SweepRow};
use crate::verdict::{by_configuration, configuration_label};

#[derive(Debug, Serialize)]
pub struct Cell {
    pub text: String,
    pub best: bool,
}

#[derive(Debug, Serialize)]
pub struct MatrixRow {
    pub model: String,
    pub strategy: String,
    pub label: String,
    pub n: usize,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Serialize)]
pub struct RunLine {
    pub id: String,
    pub page: String,
    pub name: String,
    pub seed: i64,
    pub status: String,
    pub error: String,
    pub aucs: Vec<String>,
    pub best_epoch: String,
    pub train_seconds: String,
    pub samples_per_second: String,
}

#[derive(Debug, Serialize)]
pub struct SweepCtx {
    pub id: String,
    pub name: String,
    pub page: String,
    pub grid_path: String,
    pub updated_at: String,
    pub datasets: String,
    pub machine: String,
    pub tasks: Vec<String>,
    pub finished: usize,
    pub failed: usize,
    pub other: usize,
    pub best: String,
    pub auc_chart: Option<String>,
    pub charts: Vec<ChartRef>,
    pub matrix: Vec<MatrixRow>,
    pub runs: Vec<RunLine>,
    /// The sweep's leaderboard page, when it has one.
    pub leaderboard: Option<String>,
}

/// A configuration: the runs of one config hash (seeds of one cell).
struct Config<'a> {
    label: String,
    model: String,
    strategy: String,
    runs: Vec<&'a RunRow>,
}

/// Mean, sample std and count over seeds; `None` where no run has a value.
type Stat = Option<(f64, f64, usize)>;

/// What the tables and charts of a sweep page are computed from.
struct Sweep<'a> {
    store: &'a Store,
    row: &'a SweepRow,
    tasks: Vec<String>,
    metrics: Vec<MetricRow>,
    /// Finished runs by configuration, in first-seen order. Configuration
    /// `i` has `charts::style(i)` in every chart of the page.
    configs: Vec<Config<'a>>,
}

impl Sweep<'_> {
    fn test_auc(&self, run: &str, task: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.run_id == run && m.split == "test" && m.metric == "auc" && m.task == task).map(|m| m.value)
    }

    fn run_ids(&self) -> Vec<String> {
        self.configs.iter().flat_map(|c| c.runs.iter().map(|r| r.id.clone())).collect()
    }

    fn groups(&self) -> Vec<BarGroup> {
        self.configs.iter().enumerate().map(|(i, c)| BarGroup { label: c.label.clone(), color: charts::style(i).color }).collect()
    }
}

/// The chart files of a sweep page, written as they are made.
struct Charts<'a> {
    out: &'a Path,
    sweep_id: &'a str,
    written: &'a mut Vec<PathBuf>,
    refs: Vec<ChartRef>,
}

impl Charts<'_> {
    /// Writes `sweep-{id}-{suffix}.svg`; returns its file name.
    fn add(&mut self, suffix: &str, title: &str, note: &str, svg: String) -> Result<String, ReportError> {
        let c = write_chart(self.out, format!("sweep-{}-{suffix}.svg", self.sweep_id), title, note, svg, self.written)?;
        let file = c.file.clone();
        self.refs.push(c);
        Ok(file)
    }
}

/// Finished runs grouped by configuration (the verdict's one grouping), in first-seen order.
fn configurations<'a>(finished: &[&'a RunRow]) -> Vec<Config<'a>> {
    by_configuration(finished.iter().copied())
        .into_iter()
        .map(|runs| Config { label: configuration_label(&runs[0].name, runs[0].seed), model: runs[0].model.clone(), strategy: runs[0].strategy.clone(), runs })
        .collect()
}

fn machine_of(runs: &[RunRow]) -> String {
    let Some(env) = runs.iter().find_map(|r| r.env_json.as_deref()) else { return String::new() };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(env) else { return String::new() };
    let s = |k: &str| v.get(k).map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).unwrap_or_default();
    format!("{} ({}, {} cores, {} GiB, libtorch {}, device {})", s("hostname"), s("cpu_model"), s("cores"), s("memory_gib"), s("libtorch"), s("device"))
}

/// Moving average over `w` points (smooths 0/1 conflict indicators).
fn smooth(points: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            let lo = i.saturating_sub(w / 2);
            let hi = (i + w / 2 + 1).min(points.len());
            let m = points[lo..hi].iter().map(|p| p.1).sum::<f64>() / (hi - lo) as f64;
            (points[i].0, m)
        })
        .collect()
}

fn stat(values: &[f64]) -> Stat {
    summarize(values).map(|x| (x.mean, x.std, x.n))
}

/// Per configuration: the test AUC of each task over seeds, then the mean
/// over tasks (per run, then over seeds).
fn summaries(sw: &Sweep) -> Vec<Vec<Stat>> {
    sw.configs
        .iter()
        .map(|c| {
            let mut row: Vec<Stat> =
                sw.tasks.iter().map(|t| stat(&c.runs.iter().filter_map(|r| sw.test_auc(&r.id, t)).collect::<Vec<_>>())).collect();
            let per_run_mean: Vec<f64> = c
                .runs
                .iter()
                .filter_map(|r| {
                    let v: Vec<f64> = sw.tasks.iter().filter_map(|t| sw.test_auc(&r.id, t)).collect();
                    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect();
            row.push(stat(&per_run_mean));
            row
        })
        .collect()
}

/// The configuration with the highest mean in each column.
fn best_per_column(columns: &[Vec<Stat>], n_cols: usize) -> Vec<Option<usize>> {
    (0..n_cols)
        .map(|j| {
            (0..columns.len()).filter_map(|i| columns[i][j].map(|v| (i, v.0))).max_by(|a, b| a.1.total_cmp(&b.1)).map(|(i, _)| i)
        })
        .collect()
}

/// The results matrix: mean ± std per task and the mean over tasks; best per column marked.
fn matrix(configs: &[Config], columns: &[Vec<Stat>], best: &[Option<usize>]) -> Vec<MatrixRow> {
    configs
        .iter()
        .zip(columns)
        .enumerate()
        .map(|(i, (c, row))| MatrixRow {
            model: c.model.clone(),
            strategy: c.strategy.clone(),
            label: c.label.clone(),
            n: c.runs.len(),
            cells: row
                .iter()
                .zip(best)
                .map(|(v, b)| Cell {
                    text: v.map_or("n/a".into(), |(m, sd, n)| if n > 1 { format!("{m:.4} ± {sd:.4}") } else { format!("{m:.4}") }),
                    best: *b == Some(i) && configs.len() > 1,
                })
                .collect(),
        })
        .collect()
}

/// Test AUC per task: one panel per task, each axis fitted to that task.
fn auc_panels(sw: &Sweep, columns: &[Vec<Stat>], charts: &mut Charts) -> Result<String, ReportError> {
    let panels: Vec<BarPanel> = sw
        .tasks
        .iter()
        .enumerate()
        .map(|(t, name)| BarPanel { title: name.clone(), values: columns.iter().map(|row| row[t].map(|(m, sd, _)| (m, sd))).collect() })
        .collect();
    let title = format!("{}: test ROC-AUC per task (mean ± std over seeds)", sw.row.name);
    let svg = charts::hbars(&title, "test ROC-AUC", &sw.groups(), &panels, false)?;
    let note = "Bars: mean over seeds; whiskers: ± one sample standard deviation. Each task has its own axis, fitted to its values.";
    charts.add("auc", "Test ROC-AUC per task", note, svg)
}

/// Mean validation AUC over tasks per epoch, one line per run, one legend entry per configuration.
fn curves_chart(sw: &Sweep, charts: &mut Charts) -> Result<(), ReportError> {
    let curves = sw.store.curves_of(&sw.run_ids())?;
    let mut series = Vec::new();
    for (i, c) in sw.configs.iter().enumerate() {
        for r in &c.runs {
            // Per epoch: the tasks, and the AUCs defined; a mean over every task or no point.
            let mut by_epoch: BTreeMap<i64, (BTreeSet<&str>, Vec<f64>)> = BTreeMap::new();
            for cv in curves.iter().filter(|cv| cv.run_id == r.id && cv.split == "valid" && crate::metrics::is_task_metric(&cv.metric)) {
                let (tasks, aucs) = by_epoch.entry(cv.epoch).or_default();
                tasks.insert(cv.task.as_str());
                if cv.metric == "auc" {
                    aucs.push(cv.value);
                }
            }
            let mean = |(tasks, aucs): &(BTreeSet<&str>, Vec<f64>)| crate::metrics::mean_over_tasks((0..tasks.len()).map(|i| aucs.get(i).copied()));
            let points: Vec<(f64, f64)> = by_epoch.iter().filter_map(|(e, v)| mean(v).map(|m| (*e as f64, m))).collect();
            if !points.is_empty() {
                series.push(Series { name: c.label.clone(), style: charts::style(i), points });
            }
        }
    }
    if series.is_empty() {
        return Ok(());
    }
    let svg = charts::lines(&format!("{}: validation curves", sw.row.name), "epoch", "mean validation ROC-AUC over tasks", &series)?;
    let note = "Mean validation AUC over tasks after each epoch, one line per seed; the selected epoch is the best one.";
    charts.add("curves", "Validation curves", note, svg).map(|_| ())
}

/// Strategy weights (where they move) and gradient conflict over steps, first seed of each configuration.
fn strategy_charts(sw: &Sweep, charts: &mut Charts) -> Result<(), ReportError> {
    let mut conflict = Vec::new();
    for (ci, c) in sw.configs.iter().enumerate() {
        let r = c.runs[0];
        let traces = sw.store.traces(&r.id)?;
        let terms: BTreeSet<&str> = traces.iter().map(|t| t.term.as_str()).collect();
        let series: Vec<Series> = terms
            .iter()
            .enumerate()
            .map(|(k, term)| Series {
                name: term.to_string(),
                style: charts::style(k),
                points: traces.iter().filter(|t| t.term == *term).map(|t| (t.step as f64, t.weight)).collect(),
            })
            .collect();
        if series.iter().any(|s| s.points.iter().any(|p| (p.1 - s.points[0].1).abs() > 1e-9)) {
            let svg = charts::lines(&format!("{} (seed {}): loss weight per term", c.label, r.seed), "training step", "weight", &series)?;
            let note = "Weight the strategy applied to each loss term at the traced steps.";
            charts.add(&format!("weights-{ci}"), &format!("Strategy weights: {}", c.label), note, svg)?;
        }
        let steps = sw.store.trace_steps(&r.id)?;
        if !steps.is_empty() {
            let pts: Vec<(f64, f64)> = steps.iter().map(|t| (t.step as f64, t.conflict_rate)).collect();
            conflict.push((ci, Series { name: c.label.clone(), style: charts::style(ci), points: smooth(&pts, 9) }));
        }
    }
    if conflict.is_empty() {
        return Ok(());
    }
    let title = format!("{}: gradient conflict", sw.row.name);
    let svg = charts::line_panels(&title, "training step", "share of task pairs with cos < 0", &by_model(sw, conflict), YAxes::Shared)?;
    let note = "Share of task pairs whose gradients on the last shared layer point apart (cosine < 0), measured for every strategy; \
                moving average over 9 traced steps, first seed of each configuration.";
    charts.add("conflict", "Gradient conflict rate", note, svg).map(|_| ())
}

/// Configurations beyond this many get a panel per model in line charts.
const ONE_PANEL_MAX: usize = 6;

/// Series of configurations (by index) in one panel, or a panel per model
/// when there are many configurations of several models.
fn by_model(sw: &Sweep, series: Vec<(usize, Series)>) -> Vec<LinePanel> {
    let mut models: Vec<&str> = Vec::new();
    for c in &sw.configs {
        if !models.contains(&c.model.as_str()) {
            models.push(&c.model);
        }
    }
    if sw.configs.len() <= ONE_PANEL_MAX || models.len() < 2 {
        return vec![LinePanel { title: String::new(), series: series.into_iter().map(|(_, s)| s).collect() }];
    }
    let mut panels: Vec<LinePanel> = models.iter().map(|m| LinePanel { title: m.to_string(), series: Vec::new() }).collect();
    for (ci, s) in series {
        if let Some(p) = models.iter().position(|m| *m == sw.configs[ci].model) {
            panels[p].series.push(s);
        }
    }
    panels
}

/// Throughput and training time per configuration (mean ± std over seeds).
fn cost_charts(sw: &Sweep, charts: &mut Charts) -> Result<(), ReportError> {
    let over_seeds = |f: fn(&RunRow) -> Option<f64>| -> Vec<Option<(f64, f64)>> {
        sw.configs.iter().map(|c| summarize(&c.runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>()).map(|x| (x.mean, x.std))).collect()
    };
    let sps = over_seeds(|r| r.samples_per_second);
    let secs = over_seeds(|r| r.train_seconds);
    let name = &sw.row.name;
    if sps.iter().any(Option::is_some) {
        let panel = BarPanel { title: String::new(), values: sps };
        let svg = charts::hbars(&format!("{name}: training throughput"), "samples / second", &sw.groups(), &[panel], true)?;
        charts.add("throughput", "Training throughput", "Training samples per second (mean ± std over seeds).", svg)?;
    }
    if secs.iter().any(Option::is_some) {
        let panel = BarPanel { title: String::new(), values: secs };
        let svg = charts::hbars(&format!("{name}: training time per cell"), "seconds", &sw.groups(), &[panel], true)?;
        let note = "Wall-clock training seconds of a run, all epochs (mean ± std over seeds).";
        charts.add("time", "Training time per cell", note, svg)?;
    }
    Ok(())
}

/// Gates of mixture-of-experts models (first seed of each configuration).
fn gate_charts(sw: &Sweep, charts: &mut Charts) -> Result<(), ReportError> {
    for (ci, c) in sw.configs.iter().enumerate() {
        let r = c.runs[0];
        let title = format!("{} (seed {}): mean gate weights on test", c.label, r.seed);
        if let Some(svg) = charts::gate_heatmap(&sw.store.gates(&r.id)?, &title)? {
            let note = "Mean softmax weight each gate gives each expert over the test rows.";
            charts.add(&format!("gates-{ci}"), &format!("Gates: {}", c.label), note, svg)?;
        }
    }
    Ok(())
}

fn run_lines(sw: &Sweep, runs: &[RunRow]) -> Vec<RunLine> {
    runs.iter()
        .map(|r| RunLine {
            id: r.id.clone(),
            page: run_page_name(&r.id),
            name: r.name.clone(),
            seed: r.seed,
            status: r.status.to_string(),
            error: r.error.clone().unwrap_or_default(),
            aucs: sw.tasks.iter().map(|t| fmt(sw.test_auc(&r.id, t), 4)).collect(),
            best_epoch: r.best_epoch.map_or("–".into(), |e| e.to_string()),
            train_seconds: fmt(r.train_seconds, 1),
            samples_per_second: fmt(r.samples_per_second, 0),
        })
        .collect()
}

/// Builds the sweep's context and writes its charts.
pub fn build(store: &Store, s: &SweepRow, out: &Path, written: &mut Vec<PathBuf>) -> Result<SweepCtx, ReportError> {
    let runs = store.sweep_runs(&s.id)?;
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let finished: Vec<&RunRow> = runs.iter().filter(|r| r.status == RunStatus::Finished).collect();
    let sw = Sweep { store, row: s, tasks: tasks_of(store, &runs)?, metrics: store.metrics_of(&ids)?, configs: configurations(&finished) };
    let columns = summaries(&sw);
    let n_cols = sw.tasks.len() + 1;
    let best_per_col = best_per_column(&columns, n_cols);
    let mut charts = Charts { out, sweep_id: &s.id, written, refs: Vec::new() };
    let mut auc_chart = None;
    if !sw.configs.is_empty() && !sw.tasks.is_empty() {
        auc_chart = Some(auc_panels(&sw, &columns, &mut charts)?);
        curves_chart(&sw, &mut charts)?;
        strategy_charts(&sw, &mut charts)?;
        cost_charts(&sw, &mut charts)?;
        gate_charts(&sw, &mut charts)?;
    }
    let datasets: BTreeSet<String> = runs.iter().map(|r| r.dataset_name.clone()).collect();
    Ok(SweepCtx {
        id: s.id.clone(),
        name: s.name.clone(),
        page: sweep_page_name(&s.id),
        grid_path: s.grid_path.clone(),
        updated_at: s.updated_at.clone(),
        datasets: datasets.into_iter().collect::<Vec<_>>().join(", "),
        machine: machine_of(&runs),
        finished: finished.len(),
        failed: runs.iter().filter(|r| r.status == RunStatus::Failed).count(),
        other: runs.iter().filter(|r| r.status != RunStatus::Failed && r.status != RunStatus::Finished).count(),
        // Filled from the leaderboard (selected on validation) by the caller.
        best: "–".into(),
        auc_chart,
        charts: charts.refs,
        matrix: matrix(&sw.configs, &columns, &best_per_col),
        runs: run_lines(&sw, &runs),
        tasks: sw.tasks,
        leaderboard: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_and_labels() {
        let s = smooth(&[(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, 1.0)], 3);
        assert_eq!(s[0], (0.0, 0.5));
        assert!((s[1].1 - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s[3], (3.0, 0.5));
    }
}
