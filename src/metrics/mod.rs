//! Evaluation metrics: exact AUC, uAUC, log loss, the weighted WeChat
//! score and DeLong's test of two correlated AUCs. Pure functions on slices,
//! independent of torch, so they can be checked against brute force and
//! external references.

pub mod auc;
pub mod delong;
pub mod funnel;
pub mod radix;

pub use auc::{auc, uauc};

/// The metrics recorded per task (split-level rows such as the WeChat
/// score or the funnel metrics have other names): the tasks a run's metric
/// rows cover are those with any of them, also a task whose AUC is
/// undefined (it has a log loss and a positive rate).
pub const TASK_METRICS: &[&str] = &["auc", "logloss", "positive_rate"];

/// Whether a metric row of this name belongs to one task.
pub fn is_task_metric(metric: &str) -> bool {
    TASK_METRICS.contains(&metric)
}

/// The mean over tasks of one metric, defined only when every task has a
/// value (and there is a task): a mean over the tasks that happen to have
/// one, e.g. AUC where a label is constant, would not compare across runs.
pub fn mean_over_tasks(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v?;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// Probabilities are clipped to [EPS, 1 - EPS] in the log loss.
pub const LOGLOSS_EPS: f64 = 1e-7;

/// Mean binary cross-entropy with clipped probabilities; `None` on no rows.
pub fn logloss(labels: &[f32], probs: &[f32]) -> Option<f64> {
    assert_eq!(labels.len(), probs.len());
    if labels.is_empty() {
        return None;
    }
    let s: f64 = labels
        .iter()
        .zip(probs)
        .map(|(&y, &p)| {
            let p = (p as f64).clamp(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS);
            if y > 0.5 {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Some(s / labels.len() as f64)
}

/// The WeChat challenge weights of the scored actions.
pub const WECHAT_WEIGHTS: &[(&str, f64)] = &[("read_comment", 4.0), ("like", 3.0), ("click_avatar", 2.0), ("forward", 1.0)];

/// Weighted mean of uAUCs over the scored actions present in `uaucs`
/// (task name, uAUC); `None` if none of them is present.
pub fn wechat_score(uaucs: &[(String, f64)]) -> Option<f64> {
    let (mut num, mut den) = (0.0, 0.0);
    for (task, w) in WECHAT_WEIGHTS {
        if let Some((_, u)) = uaucs.iter().find(|(t, _)| t == task) {
            num += w * u;
            den += w;
        }
    }
    (den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logloss_by_hand() {
        let l = logloss(&[1.0, 0.0], &[0.8, 0.4]).unwrap();
        let want = -(0.8f64.ln() + 0.6f64.ln()) / 2.0;
        assert!((l - want).abs() < 1e-6);
        // Clipping keeps certain mistakes finite.
        let c = logloss(&[1.0], &[0.0]).unwrap();
        assert!((c - (-(1e-7f64).ln())).abs() < 1e-6);
    }

    #[test]
    fn wechat_score_weights() {
        let u = vec![("read_comment".to_string(), 0.6), ("like".to_string(), 0.7)];
        assert!((wechat_score(&u).unwrap() - (4.0 * 0.6 + 3.0 * 0.7) / 7.0).abs() < 1e-12);
        assert_eq!(wechat_score(&[("click".to_string(), 0.5)]), None);
    }

    #[test]
    fn a_mean_over_tasks_needs_every_task() {
        assert_eq!(mean_over_tasks([Some(0.6), Some(0.8)]), Some(0.7));
        assert_eq!(mean_over_tasks([Some(0.6), None, Some(0.8)]), None);
        assert_eq!(mean_over_tasks([None]), None);
        assert_eq!(mean_over_tasks(std::iter::empty()), None);
        assert!(is_task_metric("logloss") && !is_task_metric("wechat_score") && !is_task_metric("ctr_auc"));
    }
}
