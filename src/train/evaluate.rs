//! Evaluation of a model on one split: predictions in row order, then the
//! per-task metrics (AUC, log loss, uAUC) and the WeChat score.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::data::batch::to_vec_f32;
use crate::data::{FeatureSchema, SplitData, SplitTensors};
use crate::metrics;
use crate::models::MultiTaskModel;

/// Metrics of one task on one split. `None` = undefined (e.g. one class only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    pub task: String,
    pub auc: Option<f64>,
    pub logloss: Option<f64>,
    pub uauc: Option<f64>,
    /// Users with both classes that entered the uAUC.
    pub uauc_users: usize,
    pub positive_rate: f64,
}

/// Predictions of a split in row order: probs row-major [rows, tasks], plus
/// extra named prediction columns.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    pub rows: usize,
    pub tasks: Vec<String>,
    pub probs: Vec<f32>,
    pub extra: Vec<(String, Vec<f32>)>,
}

impl Predictions {
    pub fn task_column(&self, t: usize) -> Vec<f32> {
        let nt = self.tasks.len();
        (0..self.rows).map(|r| self.probs[r * nt + t]).collect()
    }
}

/// Runs the model in eval mode over a split, in row order.
pub fn predict(
    model: &dyn MultiTaskModel,
    split: &SplitTensors,
    schema: &FeatureSchema,
    batch_size: usize,
) -> Result<Predictions, tch::TchError> {
    tch::no_grad(|| {
        let mut probs = Vec::new();
        let mut extra: Vec<(String, Vec<Tensor>)> = Vec::new();
        let mut chunks = Vec::new();
        for b in split.in_order(batch_size) {
            let out = model.forward_t(&b, false);
            chunks.push(out.probs);
            for (i, (name, t)) in out.extra.into_iter().enumerate() {
                if extra.len() <= i {
                    extra.push((name, vec![]));
                }
                extra[i].1.push(t);
            }
        }
        if !chunks.is_empty() {
            probs = to_vec_f32(&Tensor::cat(&chunks, 0))?;
        }
        let extra = extra
            .into_iter()
            .map(|(n, ts)| Ok((n, to_vec_f32(&Tensor::cat(&ts, 0))?)))
            .collect::<Result<Vec<_>, tch::TchError>>()?;
        Ok(Predictions { rows: split.rows, tasks: schema.tasks.clone(), probs, extra })
    })
}

/// Per-task metrics of predictions against a split's labels.
pub fn task_metrics(pred: &Predictions, split: &SplitData) -> Vec<TaskMetrics> {
    let nt = pred.tasks.len();
    pred.tasks
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let labels = split.task_labels(t, nt);
            let scores = pred.task_column(t);
            let pos = labels.iter().filter(|&&y| y > 0.5).count();
            let u = metrics::uauc(&split.users, &labels, &scores);
            TaskMetrics {
                task: name.clone(),
                auc: metrics::auc(&labels, &scores),
                logloss: metrics::logloss(&labels, &scores),
                uauc: u.map(|x| x.0),
                uauc_users: u.map(|x| x.1).unwrap_or(0),
                positive_rate: if labels.is_empty() { 0.0 } else { pos as f64 / labels.len() as f64 },
            }
        })
        .collect()
}

/// Mean of the defined AUCs; `None` if no task has one.
pub fn mean_auc(m: &[TaskMetrics]) -> Option<f64> {
    let v: Vec<f64> = m.iter().filter_map(|x| x.auc).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Mean of the defined log losses.
pub fn mean_logloss(m: &[TaskMetrics]) -> Option<f64> {
    let v: Vec<f64> = m.iter().filter_map(|x| x.logloss).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}
