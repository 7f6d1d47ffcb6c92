//! The page of one run: configuration, environment, timings, final
//! metrics, epochs, and its charts (validation AUC per task per epoch,
//! training loss per term, strategy weights, gates).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::charts::{self, Series};
use super::{fmt, write_chart, ChartRef, ReportError};
use crate::store::{RunRow, Store, SweepRow};

#[derive(Debug, Serialize)]
pub struct MetricLine {
    pub split: String,
    pub task: String,
    pub metric: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct EpochLine {
    pub epoch: i64,
    pub best: bool,
    pub steps: i64,
    pub select: String,
    pub train: String,
    pub eval: String,
    pub sps: String,
}

#[derive(Debug, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct RunCtx {
    pub id: String,
    pub name: String,
    pub status: String,
    pub error: String,
    pub model: String,
    pub strategy: String,
    pub seed: i64,
    pub dataset: String,
    pub config_hash: String,
    pub cell_key: String,
    pub created_at: String,
    pub finished_at: String,
    pub n_params: String,
    pub timings: String,
    pub sweep_name: String,
    pub sweep_page: String,
    pub metrics: Vec<MetricLine>,
    pub epochs: Vec<EpochLine>,
    pub params: Vec<KeyValue>,
    pub env: Vec<(String, String)>,
    pub charts: Vec<ChartRef>,
}

pub fn page_name(run_id: &str) -> String {
    format!("run-{run_id}.html")
}

/// The mean gate weights of a run on test as a heatmap, if it has gates.
pub fn gate_heatmap(store: &Store, run: &RunRow, title: &str) -> Result<Option<String>, ReportError> {
    let gates: Vec<_> = store.gates(&run.id)?.into_iter().filter(|g| g.split == "test").collect();
    if gates.is_empty() {
        return Ok(None);
    }
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for g in &gates {
        if !rows.contains(&g.gate) {
            rows.push(g.gate.clone());
        }
        if !cols.contains(&g.label) {
            cols.push(g.label.clone());
        }
    }
    let mut values = vec![vec![f64::NAN; cols.len()]; rows.len()];
    for g in &gates {
        let r = rows.iter().position(|x| x == &g.gate).unwrap_or(0);
        let c = cols.iter().position(|x| x == &g.label).unwrap_or(0);
        values[r][c] = g.weight;
    }
    Ok(Some(charts::heatmap(title, &rows, &cols, &values)?))
}

/// Builds a run's page context and writes its charts.
pub fn build(store: &Store, r: &RunRow, sweep: &SweepRow, out: &Path, written: &mut Vec<PathBuf>) -> Result<RunCtx, ReportError> {
    let metrics = store.metrics(&r.id)?;
    let epochs = store.epochs(&r.id)?;
    let curves = store.curves(&r.id)?;
    let mut chart_refs = Vec::new();
    // Validation AUC per task, per epoch.
    let tasks: Vec<String> = {
        let mut t: Vec<String> = Vec::new();
        for c in curves.iter().filter(|c| c.split == "valid" && c.metric == "auc") {
            if !t.contains(&c.task) {
                t.push(c.task.clone());
            }
        }
        t
    };
    let per_task = |split: &str, metric: &str, names: &[String]| -> Vec<Series> {
        names
            .iter()
            .enumerate()
            .map(|(i, t)| Series {
                name: t.clone(),
                color: charts::task_color(i),
                points: curves.iter().filter(|c| c.split == split && c.metric == metric && &c.task == t).map(|c| (c.epoch as f64, c.value)).collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let valid = per_task("valid", "auc", &tasks);
    if !valid.is_empty() {
        let svg = charts::lines(&format!("{}: validation ROC-AUC per task", r.name), "epoch", "validation ROC-AUC", &valid)?;
        chart_refs.push(write_chart(out, format!("run-{}-valid.svg", r.id), "Validation ROC-AUC per epoch", &format!("Selected epoch: {}.", r.best_epoch.map_or("–".into(), |e| e.to_string())), svg, written)?);
    }
    let terms: Vec<String> = {
        let set: BTreeSet<String> = curves.iter().filter(|c| c.split == "train" && c.metric == "loss").map(|c| c.task.clone()).collect();
        set.into_iter().collect()
    };
    let train = per_task("train", "loss", &terms);
    if !train.is_empty() {
        let svg = charts::lines(&format!("{}: training loss per term", r.name), "epoch", "mean training loss", &train)?;
        chart_refs.push(write_chart(out, format!("run-{}-loss.svg", r.id), "Training loss per loss term", "Mean over the epoch's steps, before strategy weighting.", svg, written)?);
    }
    let traces = store.traces(&r.id)?;
    if !traces.is_empty() {
        let names: BTreeSet<&str> = traces.iter().map(|t| t.term.as_str()).collect();
        let series: Vec<Series> = names
            .iter()
            .enumerate()
            .map(|(k, term)| Series {
                name: term.to_string(),
                color: charts::task_color(k),
                points: traces.iter().filter(|t| t.term == *term).map(|t| (t.step as f64, t.weight)).collect(),
            })
            .collect();
        // Fixed weights (equal) make a flat, uninformative chart.
        let varies = series.iter().any(|s| s.points.iter().any(|p| (p.1 - s.points[0].1).abs() > 1e-9));
        if varies {
            let svg = charts::lines(&format!("{}: loss weight per term", r.name), "training step", "weight", &series)?;
            chart_refs.push(write_chart(out, format!("run-{}-weights.svg", r.id), "Strategy weights", "", svg, written)?);
        }
        let norms: Vec<Series> = names
            .iter()
            .enumerate()
            .map(|(k, term)| Series {
                name: term.to_string(),
                color: charts::task_color(k),
                points: traces.iter().filter(|t| t.term == *term).map(|t| (t.step as f64, t.grad_norm)).collect(),
            })
            .collect();
        let svg = charts::lines(&format!("{}: gradient norm per term on the last shared layer", r.name), "training step", "‖∇ L_t‖", &norms)?;
        chart_refs.push(write_chart(out, format!("run-{}-gradnorms.svg", r.id), "Gradient norm per loss term", "", svg, written)?);
    }
    if let Some(svg) = gate_heatmap(store, r, &format!("{}: mean gate weights on test", r.name))? {
        chart_refs.push(write_chart(out, format!("run-{}-gates.svg", r.id), "Gates", "Mean softmax weight each gate gives each expert over the test rows.", svg, written)?);
    }
    let env: Vec<(String, String)> = r
        .env_json
        .as_deref()
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|o| o.into_iter().map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect())
        .unwrap_or_default();
    let timings = format!(
        "data {} s, training {} s, test {} s, {} samples/s, peak RSS {} MiB",
        fmt(r.data_seconds, 1),
        fmt(r.train_seconds, 1),
        fmt(r.test_seconds, 2),
        fmt(r.samples_per_second, 0),
        fmt(r.peak_rss_mib, 0)
    );
    Ok(RunCtx {
        id: r.id.clone(),
        name: r.name.clone(),
        status: r.status.to_string(),
        error: r.error.clone().unwrap_or_default(),
        model: r.model.clone(),
        strategy: r.strategy.clone(),
        seed: r.seed,
        dataset: format!("{} (digest {})", r.dataset_name, r.dataset_digest),
        config_hash: r.config_hash.clone(),
        cell_key: r.cell_key.clone(),
        created_at: r.created_at.clone(),
        finished_at: r.finished_at.clone().unwrap_or_else(|| "–".into()),
        n_params: r.n_params.map_or("–".into(), |n| n.to_string()),
        timings,
        sweep_name: sweep.name.clone(),
        sweep_page: super::sweep_page::page_name(&sweep.id),
        metrics: metrics
            .iter()
            .map(|m| MetricLine { split: m.split.clone(), task: m.task.clone(), metric: m.metric.clone(), value: format!("{:.6}", m.value) })
            .collect(),
        epochs: epochs
            .iter()
            .map(|e| EpochLine {
                epoch: e.epoch,
                best: Some(e.epoch) == r.best_epoch,
                steps: e.steps,
                select: format!("{:.4}", e.select_value),
                train: format!("{:.2}", e.train_seconds),
                eval: format!("{:.2}", e.eval_seconds),
                sps: format!("{:.0}", e.samples_per_second),
            })
            .collect(),
        params: store.params(&r.id)?.into_iter().map(|p| KeyValue { key: p.key, value: p.value }).collect(),
        env,
        charts: chart_refs,
    })
}
