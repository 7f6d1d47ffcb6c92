//! One optimisation step, shared by the training loop and the benchmarks so
//! that what is timed is what trains: forward, loss terms, the divergence
//! check, optional gradient diagnostics (on the last shared layer, the same
//! way for every strategy: measured before the strategy acts, or read off
//! the Gramian a strategy computed there on the same gradients), the
//! strategy's backward, gradient clipping, the optimizer step and the
//! strategy's after-step hook.

use tch::{nn, Device};

use super::config::StepPath;
use super::{TrainConfig, TrainError};
use crate::data::Batch;
use crate::models::fused::FusedMmoe;
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
    /// Through the model's fused pass where [`Self::takes_fused`] says so,
    /// else through autograd and the strategy's backward.
    pub fn step(&mut self, batch: &Batch, diagnose: bool, epoch: usize, step: usize) -> Result<StepOutput, TrainError> {
        match self.fused().filter(|_| !diagnose) {
            Some((fused, weights)) => self.fused_step(fused, weights, batch, (epoch, step)),
            None => self.autograd_step(batch, diagnose, (epoch, step)),
        }
    }

    /// Whether the steps that take no gradient diagnostics go through the
    /// model's fused pass ([`crate::models::fused`]).
    pub fn takes_fused(&self) -> bool {
        self.fused().is_some()
    }

    /// The model's fused pass and the strategy's weights, where the model
    /// has one, `[train] step` asks for it and the strategy's objective is
    /// a plain weighted sum.
    fn fused(&self) -> Option<(&'a FusedMmoe, Vec<f64>)> {
        let model: &'a dyn MultiTaskModel = self.model;
        let fused = model.fused().filter(|_| self.cfg.step == StepPath::Fused)?;
        Some((fused, self.strategy.plain_weights()?))
    }

    /// The step through the fused pass: its forward, the divergence check,
    /// its backward with the strategy's weights, clipping, the optimiser.
    fn fused_step(&mut self, fused: &FusedMmoe, weights: Vec<f64>, batch: &Batch, (epoch, step): (usize, usize)) -> Result<StepOutput, TrainError> {
        let pass = fused.forward(batch)?;
        let values = pass.losses().to_vec();
        self.check_finite(&values, epoch, step)?;
        pass.backward(&weights)?;
        if let Some(c) = self.cfg.grad_clip {
            self.opt.clip_grad_norm(c);
        }
        self.opt.step();
        Ok(StepOutput { losses: values, weights, diagnostics: None })
    }

    /// A divergence error for the first loss term that is not finite.
    fn check_finite(&self, values: &[f64], epoch: usize, step: usize) -> Result<(), TrainError> {
        match values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            Some((i, v)) => Err(TrainError::Diverged { epoch, step, term: self.terms[i].clone(), value: *v }),
            None => Ok(()),
        }
    }

    fn autograd_step(&mut self, batch: &Batch, diagnose: bool, (epoch, step): (usize, usize)) -> Result<StepOutput, TrainError> {
        self.opt.reset_grads(self.strategy.grads_on_entry())?;
        let out = self.model.forward_t(batch, true);
        let losses = self.model.loss_terms(&out, batch);
        let values: Vec<f64> = losses.iter().map(|l| l.double_value(&[])).collect();
        self.check_finite(&values, epoch, step)?;
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
    use std::collections::HashMap;

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

    /// A small MMOE on the toy data (no multi-valued fields), its
    /// variables, and its training batches.
    fn small_mmoe(seed: i64) -> (nn::VarStore, Box<dyn MultiTaskModel>, Vec<Batch>) {
        let tasks = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let data = generate(&ToyConfig { rows: 3_000, users: 60, items: 90, tasks, ..Default::default() });
        let mut mc = ModelsConfig::default();
        mc.mmoe.experts = 4;
        mc.mmoe.expert_hidden = vec![16];
        mc.tower.hidden = vec![8];
        mc.tower.dropout = 0.2;
        mc.tower.batch_norm = true;
        let split = SplitTensors::new(&data.train, &data.schema, Device::Cpu);
        let batches = split.shuffled(256, 1, 1).take(6).collect();
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = models::build(ModelKind::Mmoe, &vs, &data.schema, &mc).expect("model");
        (vs, model, batches)
    }

    /// Six steps of `strategy` along `path` from the weights of seed 5:
    /// whether the steps took the fused pass, each step's losses, and the
    /// variables after the last.
    fn six_steps(strategy: StrategyKind, path: StepPath, clip: Option<f64>) -> (bool, Vec<Vec<f64>>, nn::VarStore) {
        let (vs, model, batches) = small_mmoe(5);
        let train = TrainConfig { step: path, grad_clip: clip, ..TrainConfig::default() };
        let mut s = Stepper::new(model.as_ref(), &vs, strategy, &StrategiesConfig::default(), &train, 1, Device::Cpu).expect("stepper");
        tch::manual_seed(9);
        let losses = batches.iter().enumerate().map(|(i, b)| s.step(b, false, 1, i + 1).expect("step").losses).collect();
        let fused = s.takes_fused();
        drop(s);
        drop(model);
        (fused, losses, vs)
    }

    #[test]
    fn steps_through_the_fused_pass_train_as_steps_through_autograd() {
        for clip in [None, Some(0.5)] {
            let (fused, lf, vf) = six_steps(StrategyKind::Equal, StepPath::Fused, clip);
            let (autograd, la, va) = six_steps(StrategyKind::Equal, StepPath::Autograd, clip);
            assert!(fused && !autograd, "equal weights take the fused pass unless asked not to");
            for (f, a) in lf.iter().flatten().zip(la.iter().flatten()) {
                assert!((f - a).abs() <= 1e-5 * (1.0 + a.abs()), "clip {clip:?}: losses {lf:?} vs {la:?}");
            }
            let (vf, va): (HashMap<_, _>, HashMap<_, _>) = (vf.variables().into_iter().collect(), va.variables().into_iter().collect());
            assert_eq!(vf.len(), va.len());
            for (name, a) in &va {
                let d = (&vf[name] - a).abs().max().double_value(&[]);
                assert!(d <= 1e-5, "clip {clip:?}: `{name}` differs by {d} after six steps");
            }
            // The steps changed the variables: the comparison is not of two untouched copies.
            let (vs0, _, _) = small_mmoe(5);
            let moved = vs0.variables().iter().any(|(k, v)| (&va[k] - v).abs().max().double_value(&[]) > 1e-4);
            assert!(moved);
        }
    }

    #[test]
    fn only_plain_weighted_sums_take_the_fused_pass() {
        for (strategy, fused) in [(StrategyKind::Equal, true), (StrategyKind::Uncertainty, false), (StrategyKind::PcGrad, false)] {
            assert_eq!(six_steps(strategy, StepPath::Fused, None).0, fused, "{strategy:?}");
        }
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
