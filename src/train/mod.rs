//! The training loop: epochs of seeded shuffled batches, a strategy that
//! turns loss terms into gradients, an optimiser step, validation each epoch
//! with early stopping, the best epoch restored, then the test split.
//!
//! The loop emits records through [`Observer`]; it never writes SQL or HTML.
//! The test split is evaluated once, after selection, and never selects.

pub mod alloc;
pub mod config;
pub mod device;
pub mod early_stop;
pub mod evaluate;
#[cfg(test)]
mod model_tests;
pub mod step;

use std::collections::HashMap;
use std::time::Instant;

use tch::{nn, Tensor};
use thiserror::Error;

pub use config::{SelectMetric, StepPath, TrainConfig};
pub use device::DeviceSpec;
pub use evaluate::{NamedMetric, Predictions, TaskMetrics};
pub use step::{StepOutput, Stepper};

use crate::data::{Dataset, SplitTensors};
use crate::models::{self, ModelKind, ModelsConfig, MultiTaskModel};
use crate::strategies::{self, GradDiagnostics, StrategiesConfig, StrategyKind};
use early_stop::{Decision, EarlyStopping};

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("diverged at epoch {epoch}, step {step}: loss term `{term}` is {value}")]
    Diverged { epoch: usize, step: usize, term: String, value: f64 },
    #[error("{0}")]
    Device(String),
    #[error("model: {0}")]
    Model(models::ModelError),
    #[error("strategy: {0}")]
    Strategy(strategies::StrategyError),
    #[error("libtorch: {0}")]
    Torch(tch::TchError),
    #[error("{0}")]
    Fused(models::fused::FusedError),
    #[error("validation: {0}")]
    Validation(String),
    #[error("interrupted")]
    Interrupted,
    #[error("recording: {0}")]
    Observer(String),
}

// The messages show their causes; `From` without `#[from]` keeps them
// from being a `source` too (an error chain would print them twice).
impl From<models::ModelError> for TrainError {
    fn from(e: models::ModelError) -> Self {
        TrainError::Model(e)
    }
}

impl From<models::fused::FusedError> for TrainError {
    fn from(e: models::fused::FusedError) -> Self {
        TrainError::Fused(e)
    }
}

impl From<strategies::StrategyError> for TrainError {
    fn from(e: strategies::StrategyError) -> Self {
        TrainError::Strategy(e)
    }
}

impl From<tch::TchError> for TrainError {
    fn from(e: tch::TchError) -> Self {
        TrainError::Torch(e)
    }
}

/// One epoch's summary.
#[derive(Debug, Clone)]
pub struct EpochRecord {
    pub epoch: usize,
    pub steps: usize,
    /// Mean training loss per loss term.
    pub train_loss: Vec<(String, f64)>,
    pub valid: Vec<TaskMetrics>,
    /// The selection metric's value on validation.
    pub select_value: f64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub samples_per_second: f64,
}

/// A strategy trace point.
#[derive(Debug, Clone)]
pub struct TraceRecord {
    pub step: usize,
    pub epoch: usize,
    pub terms: Vec<String>,
    pub weights: Vec<f64>,
    pub losses: Vec<f64>,
    pub diagnostics: GradDiagnostics,
}

/// Where the loop is within a run, after a training step (for displays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepProgress {
    pub epoch: usize,
    pub epochs: usize,
    /// Steps done in this epoch, of the epoch's planned `steps`.
    pub step: usize,
    pub steps: usize,
    /// Rows trained on in this epoch so far.
    pub samples: usize,
}

/// Receives what the loop produces (the runner stores it).
pub trait Observer {
    fn on_epoch(&mut self, rec: &EpochRecord) -> Result<(), String>;
    fn on_trace(&mut self, rec: &TraceRecord) -> Result<(), String>;
    /// Called after every training step: keep it cheap (a display limits
    /// its own redraw rate).
    fn on_step(&mut self, _progress: &StepProgress) {}
    /// Called regularly while training; return false to interrupt.
    fn keep_going(&mut self) -> bool {
        true
    }
}

/// What a finished training yields.
#[derive(Debug, Clone)]
pub struct TrainResult {
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub n_params: i64,
    pub valid: Vec<TaskMetrics>,
    pub test: Vec<TaskMetrics>,
    /// Split-level metrics (e.g. the WeChat score) of the best epoch on validation.
    pub valid_extra: Vec<NamedMetric>,
    /// Split-level metrics on test.
    pub test_extra: Vec<NamedMetric>,
    pub test_predictions: Predictions,
    pub total_train_seconds: f64,
    pub test_seconds: f64,
}

/// Everything that defines one training run.
pub struct RunSpec<'a> {
    pub model: ModelKind,
    pub models: &'a ModelsConfig,
    pub strategy: StrategyKind,
    pub strategies: &'a StrategiesConfig,
    pub train: &'a TrainConfig,
    pub seed: u64,
}

fn snapshot(vs: &nn::VarStore) -> HashMap<String, Tensor> {
    tch::no_grad(|| vs.variables().into_iter().map(|(k, v)| (k, v.detach().copy())).collect())
}

fn restore(vs: &nn::VarStore, snap: &HashMap<String, Tensor>) {
    tch::no_grad(|| {
        for (k, mut v) in vs.variables() {
            if let Some(s) = snap.get(&k) {
                v.copy_(s);
            }
        }
    });
}

fn select_value(cfg: &TrainConfig, valid: &[TaskMetrics]) -> Result<f64, TrainError> {
    match cfg.select_metric {
        SelectMetric::MeanAuc => evaluate::mean_auc(valid).ok_or_else(|| {
            let constant: Vec<&str> = valid.iter().filter(|m| m.auc.is_none()).map(|m| m.task.as_str()).collect();
            TrainError::Validation(format!(
                "task(s) {} have one class only in the validation split: their AUC is undefined, so the mean AUC over \
                 every task cannot select an epoch; set train.select_metric = \"mean-logloss\" or give the split both classes",
                constant.join(", ")
            ))
        }),
        SelectMetric::MeanLogloss => {
            evaluate::mean_logloss(valid).ok_or_else(|| TrainError::Validation("the validation split is empty".into()))
        }
    }
}

/// Trains one cell on a dataset and evaluates it.
pub fn train(spec: &RunSpec, data: &Dataset, obs: &mut dyn Observer) -> Result<TrainResult, TrainError> {
    let cfg = spec.train;
    let device = device::resolve(cfg.device).map_err(TrainError::Device)?;
    if let Some(n) = cfg.threads {
        tch::set_num_threads(n as i32);
    }
    tch::manual_seed(spec.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = models::build(spec.model, &vs, &data.schema, spec.models)?;
    let n_params = models::param_count(&vs);
    let mut stepper = Stepper::new(model.as_ref(), &vs, spec.strategy, spec.strategies, cfg, spec.seed, device)?;
    let batches = crate::data::batch::n_batches(data.train.rows, cfg.batch_size);
    let plan = EpochPlan {
        cfg,
        seed: spec.seed,
        train_rows: data.train.rows,
        planned_steps: cfg.max_steps_per_epoch.map_or(batches, |m| batches.min(m)),
        term_names: stepper.terms().to_vec(),
    };

    let train_t = SplitTensors::new(&data.train, &data.schema, device);
    let valid_t = SplitTensors::new(&data.valid, &data.schema, device);
    // What the loading freed (the features once split) leaves the resident set.
    alloc::release_free_memory();

    let mut stopper = EarlyStopping::new(cfg.patience, matches!(cfg.select_metric, SelectMetric::MeanAuc));
    let mut best: Option<(HashMap<String, Tensor>, Vec<TaskMetrics>)> = None;
    let mut step = 0usize;
    let mut epochs_run = 0;
    let mut total_train = 0.0;
    for epoch in 1..=cfg.epochs {
        let trained = plan.train_epoch(&mut stepper, &train_t, epoch, &mut step, obs)?;
        total_train += trained.seconds;
        stepper.end_of_epoch(epoch, &trained.mean_losses)?;
        let t1 = Instant::now();
        let (valid, value) = validate(model.as_ref(), &valid_t, data, cfg)?;
        obs.on_epoch(&plan.record(epoch, trained, &valid, value, t1.elapsed().as_secs_f64()))
            .map_err(TrainError::Observer)?;
        epochs_run = epoch;
        match stopper.update(epoch, value) {
            Decision::Improved => best = Some((snapshot(&vs), valid)),
            Decision::Continue => {}
            Decision::Stop => break,
        }
    }
    let (best_epoch, _) = stopper.best().ok_or_else(|| TrainError::Validation("no epoch produced a finite validation metric".into()))?;
    let (snap, valid) = best.ok_or_else(|| TrainError::Validation("no best epoch recorded".into()))?;
    restore(&vs, &snap);
    drop(train_t);
    alloc::release_free_memory();
    let tested = evaluate_test(model.as_ref(), data, cfg, device)?;
    Ok(TrainResult {
        best_epoch,
        epochs_run,
        n_params,
        valid_extra: evaluate::split_metrics(&valid),
        test_extra: tested.extra,
        valid,
        test: tested.metrics,
        test_predictions: tested.predictions,
        total_train_seconds: total_train,
        test_seconds: tested.seconds,
    })
}

/// What one epoch's training steps leave: how many ran, on how many
/// samples, each loss term's mean over them and the seconds they took.
struct EpochSteps {
    steps: usize,
    samples: usize,
    mean_losses: Vec<f64>,
    seconds: f64,
}

/// What every epoch of one run shares: its settings, the number of training
/// rows, the steps an epoch is planned to take and the loss terms' names.
struct EpochPlan<'r> {
    cfg: &'r TrainConfig,
    seed: u64,
    train_rows: usize,
    planned_steps: usize,
    term_names: Vec<String>,
}

impl EpochPlan<'_> {
    /// One epoch of seeded shuffled batches through `stepper`, `step`
    /// counting the run's steps; traces and progress go to `obs`. An epoch
    /// that takes no step is an error: a model that did not train is never
    /// evaluated (nor finished).
    fn train_epoch(
        &self,
        stepper: &mut Stepper,
        train_t: &SplitTensors,
        epoch: usize,
        step: &mut usize,
        obs: &mut dyn Observer,
    ) -> Result<EpochSteps, TrainError> {
        let cfg = self.cfg;
        let t0 = Instant::now();
        let mut sums = vec![0.0f64; self.term_names.len()];
        let (mut steps, mut samples) = (0usize, 0usize);
        for batch in train_t.shuffled(cfg.batch_size, self.seed, epoch) {
            if cfg.max_steps_per_epoch.is_some_and(|m| steps >= m) {
                break;
            }
            // A last batch of one row is dropped: batch norm cannot train on it
            // (rows % batch_size == 1); at most one row per epoch is skipped.
            if batch.size() < 2 {
                continue;
            }
            if step.is_multiple_of(20) && !obs.keep_going() {
                return Err(TrainError::Interrupted);
            }
            let out = stepper.step(&batch, step.is_multiple_of(cfg.trace_every), epoch, *step)?;
            for (s, v) in sums.iter_mut().zip(&out.losses) {
                *s += v;
            }
            if let Some(diagnostics) = out.diagnostics {
                let terms = self.term_names.clone();
                obs.on_trace(&TraceRecord { step: *step, epoch, terms, weights: out.weights, losses: out.losses, diagnostics })
                    .map_err(TrainError::Observer)?;
            }
            steps += 1;
            *step += 1;
            samples += batch.size() as usize;
            obs.on_step(&StepProgress { epoch, epochs: cfg.epochs, step: steps, steps: self.planned_steps, samples });
        }
        if steps == 0 {
            return Err(TrainError::Validation(format!(
                "epoch {epoch} took no training step ({} training rows, batch_size {})",
                self.train_rows, cfg.batch_size
            )));
        }
        let mean_losses = sums.iter().map(|s| s / steps as f64).collect();
        Ok(EpochSteps { steps, samples, mean_losses, seconds: t0.elapsed().as_secs_f64() })
    }

    /// The epoch's record: its training and its validation.
    fn record(&self, epoch: usize, trained: EpochSteps, valid: &[TaskMetrics], value: f64, eval_seconds: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            steps: trained.steps,
            train_loss: self.term_names.iter().cloned().zip(trained.mean_losses).collect(),
            valid: valid.to_vec(),
            select_value: value,
            train_seconds: trained.seconds,
            eval_seconds,
            samples_per_second: trained.samples as f64 / trained.seconds.max(1e-9),
        }
    }
}

/// The validation split's metrics and the selection metric's value on them.
fn validate(
    model: &dyn MultiTaskModel,
    valid_t: &SplitTensors,
    data: &Dataset,
    cfg: &TrainConfig,
) -> Result<(Vec<TaskMetrics>, f64), TrainError> {
    let pred = evaluate::predict(model, valid_t, &data.schema, cfg.eval_batch_size)?;
    let valid = evaluate::task_metrics(&pred, &data.valid);
    drop(pred);
    alloc::release_free_memory();
    let value = select_value(cfg, &valid)?;
    Ok((valid, value))
}

/// The test split, evaluated once with the selected weights.
struct Tested {
    metrics: Vec<TaskMetrics>,
    extra: Vec<NamedMetric>,
    predictions: Predictions,
    seconds: f64,
}

fn evaluate_test(model: &dyn MultiTaskModel, data: &Dataset, cfg: &TrainConfig, device: tch::Device) -> Result<Tested, TrainError> {
    let t = Instant::now();
    let test_t = SplitTensors::new(&data.test, &data.schema, device);
    let predictions = evaluate::predict(model, &test_t, &data.schema, cfg.eval_batch_size)?;
    let metrics = evaluate::task_metrics(&predictions, &data.test);
    let mut extra = evaluate::split_metrics(&metrics);
    if let Some(f) = model.funnel() {
        extra.extend(evaluate::funnel_metrics(f, &predictions, &data.test).map_err(TrainError::Validation)?);
    }
    Ok(Tested { metrics, extra, predictions, seconds: t.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::toy::{generate, ToyConfig};
    use crate::models::shared_bottom::SharedBottomConfig;
    use crate::models::TowerConfig;
    use crate::optim::OptimizerKind;

    #[derive(Default)]
    struct Recorder {
        epochs: Vec<EpochRecord>,
        traces: Vec<TraceRecord>,
    }

    impl Observer for Recorder {
        fn on_epoch(&mut self, rec: &EpochRecord) -> Result<(), String> {
            self.epochs.push(rec.clone());
            Ok(())
        }
        fn on_trace(&mut self, rec: &TraceRecord) -> Result<(), String> {
            self.traces.push(rec.clone());
            Ok(())
        }
    }

    fn data(tasks: &[&str]) -> Dataset {
        generate(&ToyConfig {
            rows: 3000,
            users: 60,
            items: 90,
            tasks: tasks.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    fn models() -> ModelsConfig {
        ModelsConfig {
            tower: TowerConfig { hidden: vec![16], ..Default::default() },
            shared_bottom: SharedBottomConfig { bottom: vec![32] },
            ..Default::default()
        }
    }

    fn small_train() -> TrainConfig {
        TrainConfig { epochs: 2, batch_size: 256, patience: 5, trace_every: 3, ..Default::default() }
    }

    fn run(
        strategy: StrategyKind,
        train_cfg: &TrainConfig,
        data: &Dataset,
        seed: u64,
    ) -> (Result<TrainResult, TrainError>, Recorder) {
        run_with(strategy, &StrategiesConfig::default(), train_cfg, data, seed)
    }

    fn run_with(
        strategy: StrategyKind,
        s: &StrategiesConfig,
        train_cfg: &TrainConfig,
        data: &Dataset,
        seed: u64,
    ) -> (Result<TrainResult, TrainError>, Recorder) {
        let m = models();
        let spec = RunSpec {
            model: ModelKind::SharedBottom,
            models: &m,
            strategy,
            strategies: s,
            train: train_cfg,
            seed,
        };
        let mut rec = Recorder::default();
        let r = train(&spec, data, &mut rec);
        (r, rec)
    }

    #[test]
    fn a_last_batch_of_one_row_is_dropped_not_fatal() {
        let d = data(&["click", "like"]);
        // Batch norm cannot train on one row: make the epoch end with exactly one.
        let cfg = TrainConfig { epochs: 1, batch_size: d.train.rows - 1, ..small_train() };
        let (r, rec) = run(StrategyKind::Equal, &cfg, &d, 1);
        assert!(r.is_ok(), "{:?}", r.err());
        assert_eq!(rec.epochs[0].steps, 1);
    }

    #[test]
    fn huge_learning_rate_fails_as_diverged() {
        let d = data(&["click", "like"]);
        let cfg = TrainConfig { optimizer: OptimizerKind::Sgd, lr: 1e30, ..small_train() };
        let (r, _) = run(StrategyKind::Equal, &cfg, &d, 1);
        match r {
            Err(TrainError::Diverged { epoch, term, value, .. }) => {
                assert_eq!(epoch, 1);
                assert!(term == "click" || term == "like", "{term}");
                assert!(!value.is_finite());
            }
            other => panic!("expected divergence, got {:?}", other.map(|r| r.best_epoch)),
        }
    }

    #[test]
    fn every_strategy_traces_at_the_interval() {
        // Determinism (same seed, same metrics) needs a process of its own:
        // libtorch's generator is global and other tests use it in parallel.
        // The CLI tests check it (tests/strategies_grid.rs).
        let d = data(&["click", "like", "share"]);
        let cfg = small_train();
        for kind in StrategyKind::ALL.iter().copied() {
            let (a, rec) = run(kind, &cfg, &d, 11);
            let a = a.unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
            let steps: usize = rec.epochs.iter().map(|e| e.steps).sum();
            let want: Vec<usize> = (0..steps).filter(|s| s % 3 == 0).collect();
            assert_eq!(rec.traces.iter().map(|t| t.step).collect::<Vec<_>>(), want, "{}", kind.name());
            for t in &rec.traces {
                assert_eq!(t.terms, vec!["click", "like", "share"]);
                assert_eq!(t.weights.len(), 3);
                assert!(t.weights.iter().all(|w| w.is_finite()), "{}: {:?}", kind.name(), t.weights);
                // MGDA may put a term at weight 0, IMTL-G, Aligned-MTL, ConFIG and
                // CAGrad's weights may be of any sign; the others are positive.
                let signed = matches!(
                    kind,
                    StrategyKind::Mgda
                        | StrategyKind::MgdaUb
                        | StrategyKind::ImtlG
                        | StrategyKind::AlignedMtl
                        | StrategyKind::Config
                        | StrategyKind::CaGrad
                );
                assert!(signed || t.weights.iter().all(|w| *w > 0.0), "{}: {:?}", kind.name(), t.weights);
                if kind == StrategyKind::GradNorm {
                    assert!((t.weights.iter().sum::<f64>() - 3.0).abs() < 1e-4, "{:?}", t.weights);
                }
                assert_eq!(t.diagnostics.norms.len(), 3);
                assert!(t.diagnostics.norms.iter().all(|n| *n > 0.0 && n.is_finite()));
                assert_eq!(t.diagnostics.cosines.len(), 3);
                assert!(t.diagnostics.cosines.iter().all(|c| (-1.0 - 1e-6..=1.0 + 1e-6).contains(c)));
                let conflicts = t.diagnostics.cosines.iter().filter(|c| **c < 0.0).count();
                assert!((t.diagnostics.conflict_rate - conflicts as f64 / 3.0).abs() < 1e-12);
            }
            // The adaptive strategies move away from the equal weights.
            let last = &rec.traces[rec.traces.len() - 1].weights;
            match kind {
                // DWA keeps weights 1 for its first two epochs (this run's two).
                StrategyKind::Equal | StrategyKind::PcGrad | StrategyKind::Dwa => assert_eq!(last, &vec![1.0; 3]),
                _ => assert!(last.iter().any(|w| (w - 1.0).abs() > 1e-3), "{}: {last:?}", kind.name()),
            }
            assert_eq!(a.test.len(), 3);
        }
    }

    #[test]
    fn the_epoch_hook_receives_the_recorded_epoch_means() {
        // DWA's weights in epoch 3 and STCH's after a one-epoch warm-up are
        // functions of the epoch means the loop records: recompute them from the records.
        let d = data(&["click", "like"]);
        let cfg = TrainConfig { epochs: 3, trace_every: 4, ..small_train() };
        let means = |rec: &Recorder, e: usize| rec.epochs[e].train_loss.iter().map(|(_, v)| *v).collect::<Vec<f64>>();
        let (r, rec) = run(StrategyKind::Dwa, &cfg, &d, 3);
        r.unwrap();
        let want = strategies::dwa::weights(&means(&rec, 0), &means(&rec, 1), 2.0);
        for t in &rec.traces {
            let expected = if t.epoch < 3 { vec![1.0, 1.0] } else { want.clone() };
            assert_eq!(t.weights, expected, "epoch {}", t.epoch);
        }
        assert!(rec.traces.iter().any(|t| t.epoch == 3));
        let s = StrategiesConfig { stch: strategies::stch::StchConfig { mu: 0.5, warmup_epochs: 1 }, ..Default::default() };
        let (r, rec) = run_with(StrategyKind::Stch, &s, &cfg, &d, 3);
        r.unwrap();
        for t in rec.traces.iter().filter(|t| t.epoch > 1) {
            let want = strategies::stch::stch_weights(&t.losses, &means(&rec, 0), 0.5);
            for (g, w) in t.weights.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-6 * w.abs(), "{:?} vs {want:?}", t.weights);
            }
        }
    }

    #[test]
    fn the_after_step_hook_sees_the_losses_after_the_optimiser_step() {
        // FAMO's logits start at 0: the first step's weights are 1/L normalised;
        // they differ on the second step only if the hook moved the logits.
        let d = data(&["click", "like"]);
        let cfg = TrainConfig { epochs: 1, trace_every: 1, max_steps_per_epoch: Some(2), ..small_train() };
        let (r, rec) = run(StrategyKind::Famo, &cfg, &d, 5);
        r.unwrap();
        assert_eq!(rec.traces.len(), 2);
        for (i, t) in rec.traces.iter().enumerate() {
            let uniform = strategies::famo::loss_weights(&[0.5, 0.5], &t.losses);
            let same = t.weights.iter().zip(&uniform).all(|(a, b)| (a - b).abs() < 1e-9);
            assert_eq!(same, i == 0, "step {i}: {:?} vs {uniform:?}", t.weights);
            assert!((t.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn snapshot_restores_weights_and_batch_norm_statistics() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let bn = nn::batch_norm1d(vs.root() / "bn", 3, Default::default());
        let lin = nn::linear(vs.root() / "l", 3, 3, Default::default());
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, -1.0, 0.5, 4.0]).view([2, 3]);
        let _ = tch::nn::ModuleT::forward_t(&bn, &x, true);
        let snap = snapshot(&vs);
        let before: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(k, v)| (k, v.copy())).collect();
        assert!(before.len() >= 5, "weights, bias, running mean and var expected: {:?}", before.len());
        // Change everything: parameters and running statistics.
        tch::no_grad(|| {
            for (_, mut v) in vs.variables() {
                let _ = v.g_add_scalar_(1.0);
            }
        });
        let _ = tch::nn::ModuleT::forward_t(&bn, &(&x * 5.0), true);
        let _ = &lin;
        restore(&vs, &snap);
        let after = vs.variables();
        for (k, v) in before {
            assert!(after[&k].equal(&v), "{k} not restored");
        }
    }

    #[test]
    fn cuda_request_is_a_clear_error_or_a_device() {
        match device::resolve(DeviceSpec::Cuda(Some(99))) {
            Err(e) => assert!(e.starts_with("device \"cuda:99\"") && e.contains("CUDA"), "{e}"),
            Ok(d) => panic!("no machine has 100 GPUs, got {d:?}"),
        }
    }
}
