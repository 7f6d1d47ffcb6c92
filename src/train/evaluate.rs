//! Evaluation of a model on one split: predictions in row order, then the
//! per-task metrics (AUC, log loss, uAUC) and the split-level metrics (the
//! weighted WeChat score) that the store keeps as named rows. uAUC exists
//! only where the source names the user of its rows.

use serde::{Deserialize, Serialize};

use crate::data::batch::to_vec_f32;
use crate::data::{FeatureSchema, SplitData, SplitTensors};
use crate::metrics;
use crate::models::{FunnelSpec, MultiTaskModel};

/// Metrics of one task on one split. `None` = undefined (e.g. one class only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    pub task: String,
    pub auc: Option<f64>,
    pub logloss: Option<f64>,
    /// `None` also where the source has no users (then there is no uAUC).
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
    /// Mean gate weights over the rows (mixture-of-experts models only).
    pub gates: Vec<GateMean>,
}

/// The mean weight a gate gives each of its experts over a split's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateMean {
    pub gate: String,
    pub labels: Vec<String>,
    pub weights: Vec<f64>,
}

impl Predictions {
    pub fn task_column(&self, t: usize) -> Vec<f32> {
        let nt = self.tasks.len();
        (0..self.rows).map(|r| self.probs[r * nt + t]).collect()
    }
}

/// Runs the model in eval mode over a split, in row order. Each batch's
/// outputs are copied out as they come, so no batch's tensors outlive it.
pub fn predict(
    model: &dyn MultiTaskModel,
    split: &SplitTensors,
    schema: &FeatureSchema,
    batch_size: usize,
) -> Result<Predictions, tch::TchError> {
    tch::no_grad(|| {
        let mut probs = Vec::with_capacity(split.rows * schema.tasks.len());
        let mut extra: Vec<(String, Vec<f32>)> = Vec::new();
        let mut gate_sums: Vec<(String, Vec<String>, Vec<f64>)> = Vec::new();
        for b in split.in_order(batch_size) {
            let out = model.forward_t(&b, false);
            probs.extend(to_vec_f32(&out.probs)?);
            for (i, g) in out.gates.into_iter().enumerate() {
                let s = g.weights.to_kind(tch::Kind::Double).sum_dim_intlist([0i64].as_slice(), false, tch::Kind::Double);
                let s = Vec::<f64>::try_from(&s.to_device(tch::Device::Cpu))?;
                match gate_sums.get_mut(i) {
                    Some(acc) => acc.2.iter_mut().zip(s).for_each(|(a, x)| *a += x),
                    None => gate_sums.push((g.name, g.labels.to_vec(), s)),
                }
            }
            for (i, (name, t)) in out.extra.into_iter().enumerate() {
                if extra.len() <= i {
                    extra.push((name, Vec::with_capacity(split.rows)));
                }
                extra[i].1.extend(to_vec_f32(&t)?);
            }
        }
        let rows = split.rows.max(1) as f64;
        let gates = gate_sums
            .into_iter()
            .map(|(gate, labels, sum)| GateMean { gate, labels, weights: sum.into_iter().map(|w| w / rows).collect() })
            .collect();
        Ok(Predictions { rows: split.rows, tasks: schema.tasks.clone(), probs, extra, gates })
    })
}

/// Whether a split's rows name their users. A source without users (a
/// table without a user column) gives every row user 0; a uAUC over that
/// one pseudo-user would only repeat the AUC.
fn has_users(split: &SplitData) -> bool {
    split.users.iter().any(|&u| u != 0)
}

/// Per-task metrics of predictions against a split's labels.
pub fn task_metrics(pred: &Predictions, split: &SplitData) -> Vec<TaskMetrics> {
    let nt = pred.tasks.len();
    let users = has_users(split);
    pred.tasks
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let labels = split.task_labels(t, nt);
            let scores = pred.task_column(t);
            let pos = labels.iter().filter(|&&y| y > 0.5).count();
            let u = if users { metrics::uauc(&split.users, &labels, &scores) } else { None };
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

/// A split-level metric that is not one task's AUC / log loss / uAUC,
/// stored as a metric row under `task` (e.g. task "all", metric "wechat_score").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedMetric {
    pub task: String,
    pub metric: String,
    pub value: f64,
}

/// Split-level metrics from the per-task ones.
///
/// The weighted WeChat score (docs/reference.md section 1) is computed when at
/// least two of its scored actions (read_comment, like, click_avatar,
/// forward) are tasks with a defined uAUC; the weights of the actions present
/// are renormalised, and `wechat_score_coverage` = (sum of the weights
/// present) / 10 says how much of the official score that is (0.9 for the
/// seed's three tasks, 1 for the full score).
pub fn split_metrics(tasks: &[TaskMetrics]) -> Vec<NamedMetric> {
    let mut out = Vec::new();
    let uaucs: Vec<(String, f64)> = tasks.iter().filter_map(|m| m.uauc.map(|u| (m.task.clone(), u))).collect();
    let present: Vec<f64> =
        metrics::WECHAT_WEIGHTS.iter().filter(|(a, _)| uaucs.iter().any(|(t, _)| t == a)).map(|(_, w)| *w).collect();
    if present.len() >= 2 {
        if let Some(score) = metrics::wechat_score(&uaucs) {
            let total: f64 = metrics::WECHAT_WEIGHTS.iter().map(|(_, w)| w).sum();
            let all = |metric: &str, value: f64| NamedMetric { task: "all".into(), metric: metric.into(), value };
            out.push(all("wechat_score", score));
            out.push(all("wechat_score_coverage", present.iter().sum::<f64>() / total));
        }
    }
    out
}

/// The funnel metrics (docs/reference.md section 4) of predictions, as metric rows
/// with task "funnel": `ctr_auc` (click column, all rows), `cvr_auc` (the
/// model's pCVR column, or its conversion column, on clicked rows),
/// `ctcvr_auc` (conversion column against click x conversion, all rows),
/// `cvr_auc_fusion` when the model has a fusion score, and the row counts.
pub fn funnel_metrics(spec: &FunnelSpec, pred: &Predictions, split: &SplitData) -> Result<Vec<NamedMetric>, String> {
    let nt = pred.tasks.len();
    let column = |name: &str| {
        pred.extra
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| format!("the model declares a funnel column `{name}` but produced none"))
    };
    let (y, z) = (split.task_labels(spec.click, nt), split.task_labels(spec.conversion, nt));
    let (p_ctr, p_ctcvr) = (pred.task_column(spec.click), pred.task_column(spec.conversion));
    let p_cvr = match spec.cvr_column {
        Some(c) => column(c)?.to_vec(),
        None => p_ctcvr.clone(),
    };
    let m = metrics::funnel::funnel_metrics(&y, &z, &p_ctr, &p_cvr, &p_ctcvr);
    let row = |metric: &str, value: f64| NamedMetric { task: "funnel".into(), metric: metric.into(), value };
    let mut out: Vec<NamedMetric> = m.rows().into_iter().map(|(k, v)| row(k, v)).collect();
    if let Some(c) = spec.fusion_column {
        if let Some(a) = metrics::funnel::auc_on_clicked(&y, &z, column(c)?) {
            out.push(row("cvr_auc_fusion", a));
        }
    }
    Ok(out)
}

/// Mean AUC over the tasks; `None` unless every task has one.
pub fn mean_auc(m: &[TaskMetrics]) -> Option<f64> {
    metrics::mean_over_tasks(m.iter().map(|x| x.auc))
}

/// Mean log loss over the tasks; `None` unless every task has one.
pub fn mean_logloss(m: &[TaskMetrics]) -> Option<f64> {
    metrics::mean_over_tasks(m.iter().map(|x| x.logloss))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(task: &str, uauc: Option<f64>) -> TaskMetrics {
        TaskMetrics { task: task.into(), auc: Some(0.7), logloss: Some(0.3), uauc, uauc_users: 5, positive_rate: 0.1 }
    }

    /// Two tasks over four rows of users (1, 1, 2, 2), or of no users (all 0).
    fn split(users: Vec<i64>) -> (Predictions, SplitData) {
        let labels = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        let probs = vec![0.9, 0.2, 0.4, 0.6, 0.3, 0.1, 0.5, 0.8];
        let pred = Predictions { rows: 4, tasks: vec!["a".into(), "b".into()], probs, ..Default::default() };
        (pred, SplitData { rows: 4, labels, users, ..Default::default() })
    }

    #[test]
    fn uauc_only_where_rows_have_users() {
        // Task a: labels (1, 0, 1, 0), scores (0.9, 0.4, 0.3, 0.5). Overall AUC:
        // pairs (0.9 > 0.4, 0.9 > 0.5, 0.3 < 0.4, 0.3 < 0.5) = 2/4. User 1
        // ranks its pair right (0.9 > 0.4), user 2 wrong (0.3 < 0.5): uAUC 1/2,
        // over 2 users. Task b: labels (0, 1, 1, 0), scores (0.2, 0.6, 0.1, 0.8):
        // AUC 1/4; user 1 right, user 2 wrong.
        let (pred, with) = split(vec![1, 1, 2, 2]);
        let m = task_metrics(&pred, &with);
        assert_eq!((m[0].auc, m[0].uauc, m[0].uauc_users), (Some(0.5), Some(0.5), 2));
        assert_eq!((m[1].auc, m[1].uauc, m[1].uauc_users), (Some(0.25), Some(0.5), 2));
        // A source without users: no uAUC at all (it would repeat the AUC).
        let (pred, without) = split(vec![0; 4]);
        let m = task_metrics(&pred, &without);
        assert_eq!((m[0].auc, m[0].uauc, m[0].uauc_users), (Some(0.5), None, 0));
        assert_eq!((m[1].auc, m[1].uauc, m[1].uauc_users), (Some(0.25), None, 0));
        assert!(split_metrics(&m).is_empty());
    }

    #[test]
    fn wechat_score_needs_two_scored_actions() {
        // The seed's three tasks: (4 * 0.6 + 3 * 0.7 + 2 * 0.5) / 9, coverage 9 / 10.
        let m = [tm("read_comment", Some(0.6)), tm("like", Some(0.7)), tm("click_avatar", Some(0.5)), tm("comment", Some(0.9))];
        let s = split_metrics(&m);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].task.as_str(), s[0].metric.as_str()), ("all", "wechat_score"));
        assert!((s[0].value - (4.0 * 0.6 + 3.0 * 0.7 + 2.0 * 0.5) / 9.0).abs() < 1e-12);
        assert_eq!(s[1].metric, "wechat_score_coverage");
        assert!((s[1].value - 0.9).abs() < 1e-12);
        // One scored action (toy data: click, like) or an undefined uAUC: no score.
        assert!(split_metrics(&[tm("click", Some(0.6)), tm("like", Some(0.7))]).is_empty());
        assert!(split_metrics(&[tm("read_comment", None), tm("like", Some(0.7))]).is_empty());
    }
}
