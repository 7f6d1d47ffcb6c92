//! The page of one sweep: the results matrix (configurations x tasks, mean
//! ± std over seeds, best per column marked) and its charts — test AUC bars
//! with error bars, validation curves, strategy weights and gradient
//! conflict over steps, throughput and time per cell, MMOE/PLE gates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::charts::{self, BarSeries, Series};
use super::{fmt, run_page, tasks_of, write_chart, ChartRef, ReportError};
use crate::stats::summarize;
use crate::store::{RunRow, Store, SweepRow};
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

pub fn page_name(sweep_id: &str) -> String {
    format!("sweep-{sweep_id}.html")
}

/// Builds the sweep's context and writes its charts.
pub fn build(store: &Store, s: &SweepRow, out: &Path, written: &mut Vec<PathBuf>) -> Result<SweepCtx, ReportError> {
    let runs = store.sweep_runs(&s.id)?;
    let tasks = tasks_of(store, &runs)?;
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let metrics = store.metrics_of(&ids)?;
    let auc_of = |run: &str, task: &str| {
        metrics.iter().find(|m| m.run_id == run && m.split == "test" && m.metric == "auc" && m.task == task).map(|m| m.value)
    };
    let finished: Vec<&RunRow> = runs.iter().filter(|r| r.status == "finished").collect();
    // Configurations in first-seen order.
    let configs: Vec<Config> = by_configuration(finished.iter().copied())
        .into_iter()
        .map(|runs| Config { label: configuration_label(&runs[0].name, runs[0].seed), model: runs[0].model.clone(), strategy: runs[0].strategy.clone(), runs })
        .collect();
    // Results matrix: mean ± std per task and the mean over tasks; best per column.
    let mut columns: Vec<Vec<Option<(f64, f64, usize)>>> = Vec::new();
    for c in &configs {
        let mut row = Vec::new();
        let mut per_run_mean = Vec::new();
        for t in &tasks {
            let v: Vec<f64> = c.runs.iter().filter_map(|r| auc_of(&r.id, t)).collect();
            row.push(summarize(&v).map(|x| (x.mean, x.std, x.n)));
        }
        for r in &c.runs {
            let v: Vec<f64> = tasks.iter().filter_map(|t| auc_of(&r.id, t)).collect();
            if !v.is_empty() {
                per_run_mean.push(v.iter().sum::<f64>() / v.len() as f64);
            }
        }
        row.push(summarize(&per_run_mean).map(|x| (x.mean, x.std, x.n)));
        columns.push(row);
    }
    let n_cols = tasks.len() + 1;
    let best_per_col: Vec<Option<usize>> = (0..n_cols)
        .map(|j| {
            (0..configs.len())
                .filter_map(|i| columns[i][j].map(|v| (i, v.0)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
        })
        .collect();
    let matrix: Vec<MatrixRow> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| MatrixRow {
            model: c.model.clone(),
            strategy: c.strategy.clone(),
            label: c.label.clone(),
            n: c.runs.len(),
            cells: (0..n_cols)
                .map(|j| Cell {
                    text: columns[i][j].map_or("n/a".into(), |(m, sd, n)| if n > 1 { format!("{m:.4} ± {sd:.4}") } else { format!("{m:.4}") }),
                    best: best_per_col[j] == Some(i) && configs.len() > 1,
                })
                .collect(),
        })
        .collect();
    let best = best_per_col
        .last()
        .copied()
        .flatten()
        .map(|i| format!("{} ({})", configs[i].label, fmt(columns[i][n_cols - 1].map(|v| v.0), 4)))
        .unwrap_or_else(|| "–".into());

    let mut chart_refs = Vec::new();
    let mut auc_chart = None;
    let groups: Vec<String> = configs.iter().map(|c| c.label.clone()).collect();
    if !configs.is_empty() && !tasks.is_empty() {
        let series: Vec<BarSeries> = tasks
            .iter()
            .enumerate()
            .map(|(t, name)| BarSeries {
                name: name.clone(),
                color: charts::task_color(t),
                values: columns.iter().map(|row| row[t].map(|(m, sd, _)| (m, sd))).collect(),
            })
            .collect();
        let title = format!("{}: test ROC-AUC per task (mean ± std over seeds)", s.name);
        let svg = charts::hbars(&title, "test ROC-AUC", &groups, &series, false)?;
        let c = write_chart(out, format!("sweep-{}-auc.svg", s.id), "Test ROC-AUC per task", "Bars: mean over seeds; whiskers: ± one sample standard deviation.", svg, written)?;
        auc_chart = Some(c.file.clone());
        chart_refs.push(c);

        // Validation curves: mean validation AUC over tasks per epoch, one line per run.
        let curves = store.curves_of(&ids)?;
        let mut series = Vec::new();
        for c in &configs {
            for r in &c.runs {
                let mut by_epoch: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for cv in curves.iter().filter(|cv| cv.run_id == r.id && cv.split == "valid" && cv.metric == "auc") {
                    by_epoch.entry(cv.epoch).or_default().push(cv.value);
                }
                let points: Vec<(f64, f64)> = by_epoch.iter().map(|(e, v)| (*e as f64, v.iter().sum::<f64>() / v.len() as f64)).collect();
                if !points.is_empty() {
                    series.push(Series { name: format!("{} s{}", c.label, r.seed), color: charts::config_color(&c.model, &c.strategy), points });
                }
            }
        }
        if !series.is_empty() {
            let svg = charts::lines(&format!("{}: validation curves", s.name), "epoch", "mean validation ROC-AUC over tasks", &series)?;
            chart_refs.push(write_chart(out, format!("sweep-{}-curves.svg", s.id), "Validation curves", "Mean validation AUC over tasks after each epoch; the selected epoch is the best one.", svg, written)?);
        }

        // Strategy weights and gradient conflict over steps (first seed of each configuration).
        let mut conflict = Vec::new();
        for (ci, c) in configs.iter().enumerate() {
            let r = c.runs[0];
            let traces = store.traces(&r.id)?;
            let terms: BTreeSet<&str> = traces.iter().map(|t| t.term.as_str()).collect();
            let varies = terms.iter().any(|term| {
                let w: Vec<f64> = traces.iter().filter(|t| t.term == *term).map(|t| t.weight).collect();
                w.iter().any(|x| (x - w[0]).abs() > 1e-9)
            });
            if varies {
                let series: Vec<Series> = terms
                    .iter()
                    .enumerate()
                    .map(|(k, term)| Series {
                        name: term.to_string(),
                        color: charts::task_color(k),
                        points: traces.iter().filter(|t| t.term == *term).map(|t| (t.step as f64, t.weight)).collect(),
                    })
                    .collect();
                let title = format!("{} (seed {}): loss weight per term", c.label, r.seed);
                let svg = charts::lines(&title, "training step", "weight", &series)?;
                chart_refs.push(write_chart(out, format!("sweep-{}-weights-{ci}.svg", s.id), &format!("Strategy weights: {}", c.label), "Weight the strategy applied to each loss term at the traced steps.", svg, written)?);
            }
            let steps = store.trace_steps(&r.id)?;
            if !steps.is_empty() {
                let pts: Vec<(f64, f64)> = steps.iter().map(|t| (t.step as f64, t.conflict_rate)).collect();
                conflict.push(Series { name: c.label.clone(), color: charts::config_color(&c.model, &c.strategy), points: smooth(&pts, 9) });
            }
        }
        if !conflict.is_empty() {
            let svg = charts::lines(&format!("{}: gradient conflict", s.name), "training step", "share of task pairs with cos < 0", &conflict)?;
            chart_refs.push(write_chart(out, format!("sweep-{}-conflict.svg", s.id), "Gradient conflict rate", "Share of task pairs whose gradients on the last shared layer point apart (cosine < 0), measured for every strategy; moving average over 9 traced steps, first seed of each configuration.", svg, written)?);
        }

        // Throughput and time per cell.
        let sps: Vec<Option<(f64, f64)>> = configs
            .iter()
            .map(|c| summarize(&c.runs.iter().filter_map(|r| r.samples_per_second).collect::<Vec<_>>()).map(|x| (x.mean, x.std)))
            .collect();
        let secs: Vec<Option<(f64, f64)>> = configs
            .iter()
            .map(|c| summarize(&c.runs.iter().filter_map(|r| r.train_seconds).collect::<Vec<_>>()).map(|x| (x.mean, x.std)))
            .collect();
        if sps.iter().any(Option::is_some) {
            let svg = charts::hbars(&format!("{}: training throughput", s.name), "samples / second", &groups, &[BarSeries { name: "samples/s".into(), color: charts::PALETTE[0], values: sps }], true)?;
            chart_refs.push(write_chart(out, format!("sweep-{}-throughput.svg", s.id), "Training throughput", "Training samples per second (mean ± std over seeds).", svg, written)?);
        }
        if secs.iter().any(Option::is_some) {
            let svg = charts::hbars(&format!("{}: training time per cell", s.name), "seconds", &groups, &[BarSeries { name: "train seconds".into(), color: charts::PALETTE[1], values: secs }], true)?;
            chart_refs.push(write_chart(out, format!("sweep-{}-time.svg", s.id), "Training time per cell", "Wall-clock training seconds of a run, all epochs (mean ± std over seeds).", svg, written)?);
        }

        // Gates of mixture-of-experts models (first seed of each configuration).
        for (ci, c) in configs.iter().enumerate() {
            if let Some(svg) = run_page::gate_heatmap(store, c.runs[0], &format!("{} (seed {}): mean gate weights on test", c.label, c.runs[0].seed))? {
                chart_refs.push(write_chart(out, format!("sweep-{}-gates-{ci}.svg", s.id), &format!("Gates: {}", c.label), "Mean softmax weight each gate gives each expert over the test rows.", svg, written)?);
            }
        }
    }

    let run_lines = runs
        .iter()
        .map(|r| RunLine {
            id: r.id.clone(),
            page: run_page::page_name(&r.id),
            name: r.name.clone(),
            seed: r.seed,
            status: r.status.clone(),
            error: r.error.clone().unwrap_or_default(),
            aucs: tasks.iter().map(|t| fmt(auc_of(&r.id, t), 4)).collect(),
            best_epoch: r.best_epoch.map_or("–".into(), |e| e.to_string()),
            train_seconds: fmt(r.train_seconds, 1),
            samples_per_second: fmt(r.samples_per_second, 0),
        })
        .collect();
    let datasets: BTreeSet<String> = runs.iter().map(|r| r.dataset_name.clone()).collect();
    Ok(SweepCtx {
        id: s.id.clone(),
        name: s.name.clone(),
        page: page_name(&s.id),
        grid_path: s.grid_path.clone(),
        updated_at: s.updated_at.clone(),
        datasets: datasets.into_iter().collect::<Vec<_>>().join(", "),
        machine: machine_of(&runs),
        tasks,
        finished: finished.len(),
        failed: runs.iter().filter(|r| r.status == "failed").count(),
        other: runs.iter().filter(|r| r.status != "failed" && r.status != "finished").count(),
        best,
        auc_chart,
        charts: chart_refs,
        matrix,
        runs: run_lines,
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
