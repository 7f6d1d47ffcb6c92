//! What the verdict knows of one finished run, gathered from the store's
//! rows: identity, its role in the protocol (an arm's run, a point of the
//! static-weight sweep, a single-task baseline, a fusion), its parameters,
//! final validation and test metrics, and its time per training step.

use std::collections::BTreeMap;

use crate::config::weight_sweep::POINT_PARAM;
use crate::config::SINGLE_TASK_PARAM;
use crate::store::{RunRow, VerdictRows};
use crate::strategies::StrategyKind;

/// The parameter holding a run's selection metric (`train.select_metric`).
pub const SELECT_METRIC_PARAM: &str = "train.select_metric";

/// The parameter listing the data's tasks in order (JSON).
pub const DATA_TASKS_PARAM: &str = "data.tasks";

/// A fused run's mode parameter (`bench fuse`).
const FUSION_PARAM: &str = "fusion.mode";

/// The status of a run with final metrics.

/// What a run is in the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A run of a (model, strategy) arm at one of its configurations.
    Arm,
    /// A run of the static-weight arm: the point of the weight sweep.
    StaticPoint(String),
    /// A single-task baseline of this task.
    SingleTask(String),
    /// An ensemble recorded by `bench fuse`: not an arm.
    Fusion,
}

/// Metrics of a split by (task, metric).
pub type Metrics = BTreeMap<(String, String), f64>;

/// One finished run as the verdict sees it.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub id: String,
    pub name: String,
    pub model: String,
    pub strategy: String,
    pub seed: i64,
    pub config_hash: String,
    pub dataset_name: String,
    pub dataset_digest: String,
    pub finished_at: Option<String>,
    pub role: Role,
    pub params: BTreeMap<String, String>,
    pub valid: Metrics,
    pub test: Metrics,
    /// Training seconds over training steps, all epochs.
    pub seconds_per_step: Option<f64>,
}

impl RunFacts {
    /// A final metric of a split (`valid` or `test`).
    pub fn metric(m: &Metrics, task: &str, metric: &str) -> Option<f64> {
        m.get(&(task.to_string(), metric.to_string())).copied()
    }
}

/// The runs of the rows, split into the finished ones (as facts) and how
/// many were left out because they have not finished.
pub fn gather(rows: &VerdictRows) -> (Vec<RunFacts>, usize) {
    let mut params: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for p in &rows.params {
        params.entry(p.run_id.as_str()).or_default().insert(p.key.clone(), p.value.clone());
    }
    let mut valid: BTreeMap<&str, Metrics> = BTreeMap::new();
    let mut test: BTreeMap<&str, Metrics> = BTreeMap::new();
    for m in &rows.metrics {
        let split = match m.split.as_str() {
            "valid" => &mut valid,
            "test" => &mut test,
            _ => continue,
        };
        split.entry(m.run_id.as_str()).or_default().insert((m.task.clone(), m.metric.clone()), m.value);
    }
    let mut time: BTreeMap<&str, (f64, i64)> = BTreeMap::new();
    for e in &rows.epochs {
        let t = time.entry(e.run_id.as_str()).or_default();
        t.0 += e.train_seconds;
        t.1 += e.steps;
    }
    let finished: Vec<&RunRow> = rows.runs.iter().filter(|r| r.status == crate::store::RunStatus::Finished).collect();
    let left_out = rows.runs.len() - finished.len();
    let facts = finished
        .into_iter()
        .map(|r| {
            let params = params.remove(r.id.as_str()).unwrap_or_default();
            RunFacts {
                id: r.id.clone(),
                name: r.name.clone(),
                model: r.model.clone(),
                strategy: r.strategy.clone(),
                seed: r.seed,
                config_hash: r.config_hash.clone(),
                dataset_name: r.dataset_name.clone(),
                dataset_digest: r.dataset_digest.clone(),
                finished_at: r.finished_at.clone(),
                role: role_of(&params),
                valid: valid.remove(r.id.as_str()).unwrap_or_default(),
                test: test.remove(r.id.as_str()).unwrap_or_default(),
                seconds_per_step: time.get(r.id.as_str()).filter(|t| t.1 > 0).map(|t| t.0 / t.1 as f64),
                params,
            }
        })
        .collect();
    (facts, left_out)
}

fn role_of(params: &BTreeMap<String, String>) -> Role {
    if params.contains_key(FUSION_PARAM) {
        Role::Fusion
    } else if let Some(t) = params.get(SINGLE_TASK_PARAM) {
        Role::SingleTask(t.clone())
    } else if params.get("strategy.kind").map(String::as_str) == Some(StrategyKind::Static.name()) {
        Role::StaticPoint(params.get(POINT_PARAM).cloned().unwrap_or_default())
    } else {
        Role::Arm
    }
}
