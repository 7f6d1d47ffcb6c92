//! Recording a run: what the training loop (or fusion) produced, converted
//! into the store's own types, and the one function that finishes a run
//! (its prediction file, then its final metrics and status, fenced by the
//! run's claim). The runner and `bench fuse` both finish runs through
//! [`finish`]; a run whose claim was lost keeps its outcome as a superseded
//! attempt ([`supersede`]).

use crate::data::SplitData;
use crate::store::artifacts::PredictionFile;
use crate::store::{ClaimToken, GateWeights, MetricValue, NewEpoch, NewTrace, RunOutcome, RunStatus, Split, Store, StoreError};
use crate::train::evaluate::{NamedMetric, Predictions, TaskMetrics};
use crate::train::{EpochRecord, TraceRecord, TrainResult};

/// The defined metrics of a task as store values (an undefined metric, e.g.
/// AUC with one class, has no value).
pub fn task_values(split: Split, ms: &[TaskMetrics]) -> Vec<MetricValue> {
    let mut out = Vec::new();
    for m in ms {
        let mut put = |metric: &str, value: f64| out.push(MetricValue { split, task: m.task.clone(), metric: metric.into(), value });
        if let Some(x) = m.auc {
            put("auc", x);
        }
        if let Some(x) = m.logloss {
            put("logloss", x);
        }
        if let Some(x) = m.uauc {
            put("uauc", x);
            put("uauc_users", m.uauc_users as f64);
        }
        put("positive_rate", m.positive_rate);
    }
    out
}

/// Split-level metrics (e.g. the WeChat score, funnel metrics) as store values.
pub fn named_values(split: Split, ms: &[NamedMetric]) -> Vec<MetricValue> {
    ms.iter().map(|m| MetricValue { split, task: m.task.clone(), metric: m.metric.clone(), value: m.value }).collect()
}

/// An epoch as the store records it: the mean training loss of each loss
/// term and the validation metrics as curve points, and the timings.
pub fn epoch_entry(e: &EpochRecord) -> NewEpoch {
    let mut curves: Vec<MetricValue> = e
        .train_loss
        .iter()
        .map(|(term, loss)| MetricValue { split: Split::Train, task: term.clone(), metric: "loss".into(), value: *loss })
        .collect();
    curves.extend(task_values(Split::Valid, &e.valid));
    NewEpoch {
        epoch: e.epoch,
        steps: e.steps,
        curves,
        train_seconds: e.train_seconds,
        eval_seconds: e.eval_seconds,
        samples_per_second: e.samples_per_second,
        select_value: e.select_value,
    }
}

/// A strategy trace point as the store records it.
pub fn trace_entry(t: &TraceRecord) -> NewTrace {
    NewTrace {
        step: t.step,
        epoch: t.epoch,
        terms: t.terms.clone(),
        weights: t.weights.clone(),
        losses: t.losses.clone(),
        grad_norms: t.diagnostics.norms.clone(),
        cosines: t.diagnostics.cosines.clone(),
        conflict_rate: t.diagnostics.conflict_rate,
    }
}

/// Resource figures of a training, measured by the runner.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    pub peak_rss_mib: Option<f64>,
    pub samples_per_second: Option<f64>,
}

/// What a finished training leaves in the store: validation and test
/// metrics of the selected epoch, split-level metrics, the test gate
/// weights, sizes and timings.
pub fn outcome(r: &TrainResult, resources: Resources) -> RunOutcome {
    let mut metrics = task_values(Split::Valid, &r.valid);
    metrics.extend(task_values(Split::Test, &r.test));
    metrics.extend(named_values(Split::Valid, &r.valid_extra));
    metrics.extend(named_values(Split::Test, &r.test_extra));
    let gates = r
        .test_predictions
        .gates
        .iter()
        .map(|g| GateWeights { split: Split::Test, gate: g.gate.clone(), labels: g.labels.clone(), weights: g.weights.clone() })
        .collect();
    RunOutcome {
        metrics,
        gates,
        n_params: r.n_params,
        best_epoch: r.best_epoch,
        epochs_run: r.epochs_run,
        train_seconds: r.total_train_seconds,
        test_seconds: r.test_seconds,
        peak_rss_mib: resources.peak_rss_mib,
        samples_per_second: resources.samples_per_second,
    }
}

/// The prediction file of a test split: one column per task, then the
/// model's extra columns, with the rows' users and labels.
pub fn predictions_file(p: &Predictions, test: &SplitData) -> PredictionFile {
    let mut columns: Vec<(String, Vec<f32>)> = p.tasks.iter().enumerate().map(|(t, n)| (n.clone(), p.task_column(t))).collect();
    columns.extend(p.extra.iter().cloned());
    PredictionFile { rows: p.rows, tasks: p.tasks.clone(), users: test.users.clone(), labels: test.labels.clone(), columns }
}

/// How finishing a claimed run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// The run is the cell's finished run.
    Recorded,
    /// The claim was lost before the end: the outcome is kept as a
    /// superseded attempt (when the run was still this claim's); `reason`
    /// says what became of the claim.
    Superseded { reason: String },
}

/// Finishes a claimed run: writes its test predictions next to the
/// database, then its outcome and status `finished` in one transaction. A
/// prediction file that cannot be written fails the run (and is returned
/// as the error): a finished run always has its predictions.
pub fn finish(store: &Store, claim: &ClaimToken, outcome: &RunOutcome, predictions: &PredictionFile) -> Result<Finished, StoreError> {
    let file = format!("{}.bin", claim.run_id);
    if let Err(e) = predictions.write(&store.artifact_dir().join(&file)) {
        return match store.fail_run(claim, RunStatus::Failed, &e.to_string()) {
            Ok(()) | Err(StoreError::ClaimLost { .. }) => Err(e),
            Err(other) => Err(other),
        };
    }
    match store.finish_run(claim, outcome, Some(&file)) {
        Ok(()) => Ok(Finished::Recorded),
        Err(lost @ StoreError::ClaimLost { .. }) => {
            supersede(store, claim, Some((outcome, &file)), &lost).map(|reason| Finished::Superseded { reason })
        }
        Err(e) => Err(e),
    }
}

/// Keeps the attempt of a run whose claim was `lost` as superseded, with
/// its outcome and prediction file when it has them; returns the reason.
pub fn supersede(store: &Store, claim: &ClaimToken, result: Option<(&RunOutcome, &str)>, lost: &StoreError) -> Result<String, StoreError> {
    let reason = lost.to_string();
    store.supersede_attempt(claim, result.map(|r| r.0), result.map(|r| r.1), &format!("superseded: {reason}"))?;
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::GradDiagnostics;
    use crate::train::evaluate::GateMean;

    fn tm(task: &str, auc: Option<f64>, uauc: Option<f64>) -> TaskMetrics {
        TaskMetrics { task: task.into(), auc, logloss: Some(0.3), uauc, uauc_users: 12, positive_rate: 0.25 }
    }

    fn names(v: &[MetricValue]) -> Vec<String> {
        v.iter().map(|m| format!("{}/{}/{}={}", m.split.as_str(), m.task, m.metric, m.value)).collect()
    }

    #[test]
    fn undefined_metrics_have_no_value_and_uauc_brings_its_user_count() {
        let v = task_values(Split::Test, &[tm("click", Some(0.7), Some(0.6)), tm("like", None, None)]);
        assert_eq!(
            names(&v),
            vec![
                "test/click/auc=0.7",
                "test/click/logloss=0.3",
                "test/click/uauc=0.6",
                "test/click/uauc_users=12",
                "test/click/positive_rate=0.25",
                "test/like/logloss=0.3",
                "test/like/positive_rate=0.25",
            ]
        );
    }

    #[test]
    fn an_epoch_is_losses_then_validation_and_a_trace_keeps_its_diagnostics() {
        let e = EpochRecord {
            epoch: 2,
            steps: 5,
            train_loss: vec![("click".into(), 0.4)],
            valid: vec![tm("click", Some(0.65), None)],
            select_value: 0.65,
            train_seconds: 1.0,
            eval_seconds: 0.2,
            samples_per_second: 100.0,
        };
        let n = epoch_entry(&e);
        assert_eq!(names(&n.curves)[..2], ["train/click/loss=0.4".to_string(), "valid/click/auc=0.65".to_string()]);
        assert_eq!((n.epoch, n.steps, n.select_value), (2, 5, 0.65));
        let d = GradDiagnostics { norms: vec![1.0, 2.0], cosines: vec![-0.5], conflict_rate: 1.0 };
        let t = TraceRecord { step: 4, epoch: 1, terms: vec!["a".into(), "b".into()], weights: vec![1.0, 1.0], losses: vec![0.2, 0.3], diagnostics: d };
        let n = trace_entry(&t);
        assert_eq!((n.grad_norms, n.cosines, n.conflict_rate), (vec![1.0, 2.0], vec![-0.5], 1.0));
    }

    #[test]
    fn the_outcome_orders_task_metrics_before_split_metrics_and_keeps_test_gates() {
        let pred = Predictions {
            rows: 2,
            tasks: vec!["click".into()],
            probs: vec![0.1, 0.9],
            extra: vec![("ctcvr".into(), vec![0.05, 0.5])],
            gates: vec![GateMean { gate: "g".into(), labels: vec!["e0".into()], weights: vec![1.0] }],
        };
        let r = TrainResult {
            best_epoch: 3,
            epochs_run: 4,
            n_params: 10,
            valid: vec![tm("click", Some(0.6), None)],
            test: vec![tm("click", Some(0.7), None)],
            valid_extra: vec![NamedMetric { task: "all".into(), metric: "score".into(), value: 0.5 }],
            test_extra: vec![NamedMetric { task: "all".into(), metric: "score".into(), value: 0.55 }],
            test_predictions: pred.clone(),
            total_train_seconds: 9.0,
            test_seconds: 0.5,
        };
        let o = outcome(&r, Resources { peak_rss_mib: Some(5.0), samples_per_second: Some(7.0) });
        let all = names(&o.metrics);
        let pos = |s: &str| all.iter().position(|x| x == s).unwrap();
        assert!(pos("valid/click/auc=0.6") < pos("test/click/auc=0.7"));
        assert!(pos("test/click/auc=0.7") < pos("valid/all/score=0.5"));
        assert!(pos("valid/all/score=0.5") < pos("test/all/score=0.55"));
        assert_eq!(o.gates, vec![GateWeights { split: Split::Test, gate: "g".into(), labels: vec!["e0".into()], weights: vec![1.0] }]);
        assert_eq!((o.best_epoch, o.epochs_run, o.train_seconds, o.samples_per_second), (3, 4, 9.0, Some(7.0)));
        let test = SplitData { rows: 2, labels: vec![0.0, 1.0], users: vec![7, 8], ..Default::default() };
        let f = predictions_file(&pred, &test);
        assert_eq!(f.columns, vec![("click".to_string(), vec![0.1, 0.9]), ("ctcvr".to_string(), vec![0.05, 0.5])]);
        assert_eq!(f.users, vec![7, 8]);
    }
}
