//! One optimisation step, shared by the training loop and the benchmarks so
//! that what is timed is what trains: forward, loss terms, the divergence
//! check, optional gradient diagnostics (on the last shared layer, the same
//! way for every strategy: measured before the strategy acts, or read off
//! the Gramian a strategy computed there on the same gradients), the
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
    strategy_name: &'static str,
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
        let built = strategies::build(strategy, strategies_cfg, ctx)?;
        let opt = Optimizer::new(vs, &cfg.optim())?;
        Ok(Stepper { model, strategy: built, opt, cfg, terms, strategy_name: strategy.name() })
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
        self.opt.reset_grads(self.strategy.grads_on_entry())?;
        let out = self.model.forward_t(batch, true);
        let losses = self.model.loss_terms(&out, batch);
        let values: Vec<f64> = losses.iter().map(|l| l.double_value(&[])).collect();
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(TrainError::Diverged { epoch, step, term: self.terms[i].clone(), value: *v });
        }
        // A strategy that computes the Gramian on the last shared layer anyway
        // hands it over; for the others the diagnostics take their own passes.
        let reused = self.strategy.reports_last_shared_gram();
        let own = if diagnose && !reused {
            Some(strategies::diagnostics(&losses, &self.model.param_groups().last_shared)?)
        } else {
            None
        };
        let input = StepInput::new(&losses, self.model.param_groups())
            .with_representation(out.representation.as_ref())
            .with_values(&values);
        let report = self.strategy.backward(&input)?;
        let diagnostics = match (diagnose, own, &report.last_shared_gram) {
            (false, ..) => None,
            (true, Some(d), _) => Some(d),
            (true, None, Some(g)) => Some(g.diagnostics()),
            (true, None, None) => {
                return Err(StrategyError::Step {
                    strategy: self.strategy_name,
                    message: "reported no Gramian on the last shared layer for the trace".into(),
                }
                .into())
            }
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::toy::{generate, ToyConfig};
    use crate::data::SplitTensors;
    use crate::models::{self, ModelKind, ModelsConfig};
    use crate::strategies::gramian::GramScope;

    /// The diagnostics of the first step on one batch, from `strategy`, of
    /// an MMOE whose weights are copied from `seed_weights` (built with
    /// `None`) and without dropout: nothing here reads libtorch's global
    /// generator after the copy, so tests running at the same time cannot
    /// change the result.
    fn first_diagnostics(strategy: StrategyKind, cfg: &StrategiesConfig, seed_weights: Option<&nn::VarStore>) -> (GradDiagnostics, nn::VarStore) {
        let tasks = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let data = generate(&ToyConfig { rows: 2_000, users: 50, items: 80, tasks, ..Default::default() });
        let mut mc = ModelsConfig::default();
        mc.tower.hidden = vec![16];
        mc.tower.dropout = 0.0;
        mc.mmoe.expert_hidden = vec![32];
        let split = SplitTensors::new(&data.train, &data.schema, Device::Cpu);
        let batch = split.shuffled(256, 1, 1).next().expect("a batch");
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = models::build(ModelKind::Mmoe, &vs, &data.schema, &mc).expect("model");
        if let Some(w) = seed_weights {
            vs.copy(w).expect("same variables");
        }
        let train = TrainConfig::default();
        let mut s = Stepper::new(model.as_ref(), &vs, strategy, cfg, &train, 1, Device::Cpu).expect("stepper");
        let d = s.step(&batch, true, 1, 1).expect("step").diagnostics.expect("diagnostics");
        drop(s);
        drop(model);
        (d, vs)
    }

    #[test]
    fn a_gramian_strategys_trace_is_the_one_measured_on_its_own() {
        let weights = first_diagnostics(StrategyKind::Equal, &StrategiesConfig::default(), None).1;
        let own = first_diagnostics(StrategyKind::Equal, &StrategiesConfig::default(), Some(&weights)).0;
        assert_eq!(own.norms.len(), 3);
        assert!(own.norms.iter().all(|n| *n > 0.0), "{own:?}");
        for scope in [GramScope::AllShared, GramScope::LastShared] {
            let mut cfg = StrategiesConfig::default();
            cfg.mgda.scope = scope;
            let reused = first_diagnostics(StrategyKind::Mgda, &cfg, Some(&weights)).0;
            let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + y.abs()));
            assert!(close(&reused.norms, &own.norms) && close(&reused.cosines, &own.cosines), "{scope:?}: {reused:?} vs {own:?}");
            assert_eq!(reused.conflict_rate, own.conflict_rate);
        }
    }
}
