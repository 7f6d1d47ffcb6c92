//! One optimisation step, shared by the training loop and the benchmarks so
//! that what is timed is what trains: forward, loss terms, the divergence
//! check, optional gradient diagnostics (measured before the strategy acts,
//! on the last shared layer, the same way for every strategy), the
//! strategy's backward, gradient clipping, the optimizer step and the
//! strategy's after-step hook.

use tch::{nn, Device};

use super::{TrainConfig, TrainError};
use crate::data::Batch;
use crate::models::MultiTaskModel;
use crate::optim::Optimizer;
use crate::strategies::{self, GradDiagnostics, StepInput, StrategiesConfig, Strategy, StrategyError, StrategyKind};

/// What one step produced.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The value of each loss term.
    pub losses: Vec<f64>,
    /// The weight the strategy applied to each loss term.
    pub weights: Vec<f64>,
    /// Gradient diagnostics, when asked for.
    pub diagnostics: Option<GradDiagnostics>,
}

/// A model with its strategy and optimizer.
pub struct Stepper<'a> {
    model: &'a dyn MultiTaskModel,
    strategy: Box<dyn Strategy>,
    opt: Optimizer,
    cfg: &'a TrainConfig,
    terms: Vec<String>,
}

impl<'a> Stepper<'a> {
    /// `vs` holds the model's variables; the strategy's own state lives on `device`.
    pub fn new(
        model: &'a dyn MultiTaskModel,
        vs: &nn::VarStore,
        strategy: StrategyKind,
        strategies_cfg: &StrategiesConfig,
        cfg: &'a TrainConfig,
        seed: u64,
        device: Device,
    ) -> Result<Self, TrainError> {
        let terms = model.loss_names();
        let ctx = strategies::BuildContext { n_terms: terms.len(), optim: cfg.optim(), seed, device };
        let strategy = strategies::build(strategy, strategies_cfg, ctx)?;
        let opt = Optimizer::new(vs, &cfg.optim())?;
        Ok(Stepper { model, strategy, opt, cfg, terms })
    }

    /// Tells the strategy that epoch `epoch` (from 1) ended, with each loss
    /// term's mean training loss over it.
    pub fn end_of_epoch(&mut self, epoch: usize, mean_losses: &[f64]) -> Result<(), TrainError> {
        Ok(self.strategy.end_of_epoch(epoch, mean_losses)?)
    }

    /// Names of the loss terms, in order.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// One step on `batch`; `(epoch, step)` only label a divergence error.
    pub fn step(&mut self, batch: &Batch, diagnose: bool, epoch: usize, step: usize) -> Result<StepOutput, TrainError> {
        self.opt.zero_grad();
        let out = self.model.forward_t(batch, true);
        let losses = self.model.loss_terms(&out, batch);
        let values: Vec<f64> = losses.iter().map(|l| l.double_value(&[])).collect();
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(TrainError::Diverged { epoch, step, term: self.terms[i].clone(), value: *v });
        }
        let diagnostics =
            if diagnose { Some(strategies::diagnostics(&losses, &self.model.param_groups().last_shared)?) } else { None };
        let input = StepInput::new(&losses, self.model.param_groups()).with_representation(out.representation.as_ref());
        let report = self.strategy.backward(&input)?;
        if let Some(c) = self.cfg.grad_clip {
            self.opt.clip_grad_norm(c);
        }
        self.opt.step();
        // The strategy's after-step hook: the loss terms on the same batch,
        // recomputed without gradient, only if it asks for them.
        let model = self.model;
        let mut reforward = || {
            tch::no_grad(|| {
                let out = model.forward_t(batch, true);
                model.loss_terms(&out, batch).iter().map(|l| l.f_double_value(&[]).map_err(StrategyError::from)).collect()
            })
        };
        self.strategy.after_step(&mut reforward)?;
        Ok(StepOutput { losses: values, weights: report.weights, diagnostics })
    }
}
