//! The page of one run: configuration, environment, timings, final
//! metrics, epochs, and its charts (validation AUC per task per epoch,
//! training loss per term, strategy weights, gates).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::charts::{self, LinePanel, Series, YAxes};
use super::{fmt, sweep_page_name, write_chart, ChartRef, ReportError};
use crate::store::{CurveRow, EpochRow, RunRow, Store, SweepRow, TraceRow};

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

/// Validation AUC per task (a panel per task, each axis fitted to its
/// task) and training loss per term, per epoch.
fn curve_charts(r: &RunRow, curves: &[CurveRow], out: &Path, written: &mut Vec<PathBuf>) -> Result<Vec<ChartRef>, ReportError> {
    let mut refs = Vec::new();
    let series = |split: &str, metric: &str, name: &str, k: usize| Series {
        name: name.to_string(),
        style: charts::style(k),
        points: curves.iter().filter(|c| c.split == split && c.metric == metric && c.task == name).map(|c| (c.epoch as f64, c.value)).collect(),
    };
    let mut tasks: Vec<&str> = Vec::new();
    for c in curves.iter().filter(|c| c.split == "valid" && c.metric == "auc") {
        if !tasks.contains(&c.task.as_str()) {
            tasks.push(&c.task);
        }
    }
    let panels: Vec<LinePanel> =
        tasks.iter().enumerate().map(|(k, t)| LinePanel { title: t.to_string(), series: vec![series("valid", "auc", t, k)] }).collect();
    if !panels.is_empty() {
        let svg = charts::line_panels(&format!("{}: validation ROC-AUC per task", r.name), "epoch", "validation ROC-AUC", &panels, YAxes::PerPanel)?;
        let note = format!("Selected epoch: {}. Each task has its own axis.", r.best_epoch.map_or("–".into(), |e| e.to_string()));
        refs.push(write_chart(out, format!("run-{}-valid.svg", r.id), "Validation ROC-AUC per epoch", &note, svg, written)?);
    }
    let terms: BTreeSet<&str> = curves.iter().filter(|c| c.split == "train" && c.metric == "loss").map(|c| c.task.as_str()).collect();
    let train: Vec<Series> = terms.iter().enumerate().map(|(k, t)| series("train", "loss", t, k)).collect();
    if !train.is_empty() {
        let svg = charts::lines(&format!("{}: training loss per term", r.name), "epoch", "mean training loss", &train)?;
        let note = "Mean over the epoch's steps, before strategy weighting.";
        refs.push(write_chart(out, format!("run-{}-loss.svg", r.id), "Training loss per loss term", note, svg, written)?);
    }
    Ok(refs)
}

/// Strategy weights (when they move) and gradient norms per term over the traced steps.
fn trace_charts(r: &RunRow, traces: &[TraceRow], out: &Path, written: &mut Vec<PathBuf>) -> Result<Vec<ChartRef>, ReportError> {
    let mut refs = Vec::new();
    if traces.is_empty() {
        return Ok(refs);
    }
    let names: BTreeSet<&str> = traces.iter().map(|t| t.term.as_str()).collect();
    let per_term = |value: fn(&TraceRow) -> f64| -> Vec<Series> {
        names
            .iter()
            .enumerate()
            .map(|(k, term)| Series {
                name: term.to_string(),
                style: charts::style(k),
                points: traces.iter().filter(|t| t.term == *term).map(|t| (t.step as f64, value(t))).collect(),
            })
            .collect()
    };
    let weights = per_term(|t| t.weight);
    // Fixed weights (equal) make a flat, uninformative chart.
    if weights.iter().any(|s| s.points.iter().any(|p| (p.1 - s.points[0].1).abs() > 1e-9)) {
        let svg = charts::lines(&format!("{}: loss weight per term", r.name), "training step", "weight", &weights)?;
        refs.push(write_chart(out, format!("run-{}-weights.svg", r.id), "Strategy weights", "", svg, written)?);
    }
    let title = format!("{}: gradient norm per term on the last shared layer", r.name);
    let svg = charts::lines(&title, "training step", "‖∇ L_t‖", &per_term(|t| t.grad_norm))?;
    refs.push(write_chart(out, format!("run-{}-gradnorms.svg", r.id), "Gradient norm per loss term", "", svg, written)?);
    Ok(refs)
}

/// The run's environment record as key-value pairs.
fn env_of(r: &RunRow) -> Vec<(String, String)> {
    r.env_json
        .as_deref()
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|o| o.into_iter().map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect())
        .unwrap_or_default()
}

fn epoch_lines(r: &RunRow, epochs: &[EpochRow]) -> Vec<EpochLine> {
    epochs
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
        .collect()
}

/// Builds a run's page context and writes its charts.
pub fn build(store: &Store, r: &RunRow, sweep: &SweepRow, out: &Path, written: &mut Vec<PathBuf>) -> Result<RunCtx, ReportError> {
    let mut chart_refs = curve_charts(r, &store.curves(&r.id)?, out, written)?;
    chart_refs.extend(trace_charts(r, &store.traces(&r.id)?, out, written)?);
    if let Some(svg) = charts::gate_heatmap(&store.gates(&r.id)?, &format!("{}: mean gate weights on test", r.name))? {
        let note = "Mean softmax weight each gate gives each expert over the test rows.";
        chart_refs.push(write_chart(out, format!("run-{}-gates.svg", r.id), "Gates", note, svg, written)?);
    }
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
        sweep_page: sweep_page_name(&sweep.id),
        metrics: store
            .metrics(&r.id)?
            .iter()
            .map(|m| MetricLine { split: m.split.clone(), task: m.task.clone(), metric: m.metric.clone(), value: format!("{:.6}", m.value) })
            .collect(),
        epochs: epoch_lines(r, &store.epochs(&r.id)?),
        params: store.params(&r.id)?.into_iter().map(|p| KeyValue { key: p.key, value: p.value }).collect(),
        env: env_of(r),
        charts: chart_refs,
    })
}
