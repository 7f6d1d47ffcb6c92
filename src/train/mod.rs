//! The training loop: epochs of seeded shuffled batches, a strategy that
//! turns loss terms into gradients, an optimiser step, validation each epoch
//! with early stopping, the best epoch restored, then the test split.
//!
//! The loop emits records through [`Observer`]; it never writes SQL or HTML.
//! The test split is evaluated once, after selection, and never selects.

pub mod config;
pub mod device;
pub mod early_stop;
pub mod evaluate;
pub mod optim;

use std::collections::HashMap;
use std::time::Instant;

use tch::{nn, Tensor};
use thiserror::Error;

pub use config::{OptimizerKind, SelectMetric, TrainConfig};
pub use evaluate::{NamedMetric, Predictions, TaskMetrics};

use crate::data::{Dataset, SplitTensors};
use crate::models::{self, ModelKind, ModelsConfig};
use crate::strategies::{self, GradDiagnostics, StrategiesConfig, StrategyKind};
use early_stop::{Decision, EarlyStopping};

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("diverged at epoch {epoch}, step {step}: loss term `{term}` is {value}")]
    Diverged { epoch: usize, step: usize, term: String, value: f64 },
    #[error("{0}")]
    Device(String),
    #[error("model: {0}")]
    Model(#[from] models::ModelError),
    #[error("strategy: {0}")]
    Strategy(#[from] strategies::StrategyError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("validation: {0}")]
    Validation(String),
    #[error("interrupted")]
    Interrupted,
    #[error("recording: {0}")]
    Observer(String),
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

/// Receives what the loop produces (the runner stores it).
pub trait Observer {
    fn on_epoch(&mut self, rec: &EpochRecord) -> Result<(), String>;
    fn on_trace(&mut self, rec: &TraceRecord) -> Result<(), String>;
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
            TrainError::Validation("no task has both classes in the validation split, so AUC cannot select an epoch".into())
        }),
        SelectMetric::MeanLogloss => {
            evaluate::mean_logloss(valid).ok_or_else(|| TrainError::Validation("the validation split is empty".into()))
        }
    }
}

/// Trains one cell on a dataset and evaluates it.
pub fn train(spec: &RunSpec, data: &Dataset, obs: &mut dyn Observer) -> Result<TrainResult, TrainError> {
    let cfg = spec.train;
    let device = device::resolve(&cfg.device).map_err(TrainError::Device)?;
    if let Some(n) = cfg.threads {
        tch::set_num_threads(n as i32);
    }
    tch::manual_seed(spec.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = models::build(spec.model, &vs, &data.schema, spec.models)?;
    let n_params = models::param_count(&vs);
    let term_names = model.loss_names();
    let ctx = strategies::BuildContext { n_terms: term_names.len(), train: cfg, seed: spec.seed, device };
    let mut strategy = strategies::build(spec.strategy, spec.strategies, ctx)?;
    let mut opt = optim::Optimizer::new(&vs, cfg)?;

    let train_t = SplitTensors::new(&data.train, &data.schema, device);
    let valid_t = SplitTensors::new(&data.valid, &data.schema, device);

    let higher = matches!(cfg.select_metric, SelectMetric::MeanAuc);
    let mut stopper = EarlyStopping::new(cfg.patience, higher);
    let mut best: Option<(HashMap<String, Tensor>, Vec<TaskMetrics>)> = None;
    let mut step = 0usize;
    let mut epochs_run = 0;
    let mut total_train = 0.0;
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let mut sums = vec![0.0f64; term_names.len()];
        let mut steps = 0usize;
        let mut samples = 0usize;
        for batch in train_t.shuffled(cfg.batch_size, spec.seed, epoch) {
            if cfg.max_steps_per_epoch.is_some_and(|m| steps >= m) {
                break;
            }
            if step % 20 == 0 && !obs.keep_going() {
                return Err(TrainError::Interrupted);
            }
            opt.zero_grad();
            let out = model.forward_t(&batch, true);
            let losses = model.loss_terms(&out, &batch);
            let values: Vec<f64> = losses.iter().map(|l| l.double_value(&[])).collect();
            if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(TrainError::Diverged { epoch, step, term: term_names[i].clone(), value: *v });
            }
            // Measured before the strategy acts, on the same layer for every strategy.
            let diag = if step % cfg.trace_every == 0 {
                Some(strategies::diagnostics(&losses, &model.param_groups().last_shared)?)
            } else {
                None
            };
            let report = strategy.backward(&losses, model.param_groups())?;
            if let Some(c) = cfg.grad_clip {
                opt.clip_grad_norm(c);
            }
            opt.step();
            if let Some(diagnostics) = diag {
                obs.on_trace(&TraceRecord {
                    step,
                    epoch,
                    terms: term_names.clone(),
                    weights: report.weights.clone(),
                    losses: values.clone(),
                    diagnostics,
                })
                .map_err(TrainError::Observer)?;
            }
            for (s, v) in sums.iter_mut().zip(&values) {
                *s += v;
            }
            steps += 1;
            step += 1;
            samples += batch.size() as usize;
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        total_train += train_seconds;
        let t1 = Instant::now();
        let pred = evaluate::predict(model.as_ref(), &valid_t, &data.schema, cfg.eval_batch_size)?;
        let valid = evaluate::task_metrics(&pred, &data.valid);
        let value = select_value(cfg, &valid)?;
        let rec = EpochRecord {
            epoch,
            steps,
            train_loss: term_names.iter().cloned().zip(sums.iter().map(|s| s / steps.max(1) as f64)).collect(),
            valid: valid.clone(),
            select_value: value,
            train_seconds,
            eval_seconds: t1.elapsed().as_secs_f64(),
            samples_per_second: samples as f64 / train_seconds.max(1e-9),
        };
        obs.on_epoch(&rec).map_err(TrainError::Observer)?;
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
    let t2 = Instant::now();
    let test_t = SplitTensors::new(&data.test, &data.schema, device);
    let test_predictions = evaluate::predict(model.as_ref(), &test_t, &data.schema, cfg.eval_batch_size)?;
    let test = evaluate::task_metrics(&test_predictions, &data.test);
    let mut test_extra = evaluate::split_metrics(&test);
    if let Some(f) = model.funnel() {
        test_extra.extend(evaluate::funnel_metrics(f, &test_predictions, &data.test).map_err(TrainError::Validation)?);
    }
    Ok(TrainResult {
        best_epoch,
        epochs_run,
        n_params,
        valid_extra: evaluate::split_metrics(&valid),
        test_extra,
        valid,
        test,
        test_predictions,
        total_train_seconds: total_train,
        test_seconds: t2.elapsed().as_secs_f64(),
    })
}
