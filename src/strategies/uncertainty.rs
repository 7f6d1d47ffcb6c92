//! Uncertainty weighting (Kendall, Gal and Cipolla, "Multi-Task Learning
//! Using Uncertainty to Weigh Losses for Scene Geometry and Semantics",
//! CVPR 2018, <https://arxiv.org/abs/1705.07115>).
//!
//! One learnable log-variance s_t = log sigma_t^2 per loss term, initialised
//! at 0. Classification form: L = sum_t exp(-s_t) L_t + s_t / 2; regression
//! form: L = sum_t 0.5 exp(-s_t) L_t + s_t / 2. Either way the stationary
//! point of s_t gives the effective weight 1 / (2 L_t), so small losses (rare
//! tasks) end up with large weights; the traces record the effective weight
//! (exp(-s_t) or 0.5 exp(-s_t)) so this is visible.
//!
//! The log-variances train with the model: the strategy owns them in a small
//! VarStore stepped, inside [`Strategy::backward`], by an optimizer of the
//! run's kind and learning rate but without weight decay (decay would pull
//! s_t towards 0, i.e. towards equal weighting, and is not in the paper).

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::{BuildContext, StepInput, StepReport, Strategy, StrategyError};
use crate::optim::Optimizer;

/// Which of the paper's likelihoods the loss terms are treated as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// exp(-s) L + s/2 (softmax / Bernoulli likelihood; our BCE terms).
    #[default]
    Classification,
    /// 0.5 exp(-s) L + s/2 (Gaussian likelihood; squared-error terms).
    Regression,
}

/// `[strategies.uncertainty]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UncertaintyConfig {
    /// `"classification"` (default) or `"regression"`.
    #[serde(default)]
    pub form: Form,
}

pub struct Uncertainty {
    /// Owns `log_var`; kept alive for the optimizer.
    _vs: nn::VarStore,
    log_var: Tensor,
    opt: Optimizer,
    scale: f64,
}

impl Uncertainty {
    pub fn new(cfg: &UncertaintyConfig, ctx: BuildContext) -> Result<Self, StrategyError> {
        let vs = nn::VarStore::new(ctx.device);
        let log_var = vs.root().zeros("log_var", &[ctx.n_terms as i64]);
        let opt = super::own_optimizer(&vs, ctx.optim, ctx.optim.lr)?;
        let scale = match cfg.form {
            Form::Classification => 1.0,
            Form::Regression => 0.5,
        };
        Ok(Uncertainty { _vs: vs, log_var, opt, scale })
    }

    /// The current log-variances s_t.
    pub fn log_variances(&self) -> Vec<f64> {
        super::to_f64s(&self.log_var)
    }
}

impl Strategy for Uncertainty {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        let losses = input.losses;
        let n = self.log_var.size()[0] as usize;
        if losses.len() != n {
            return Err(StrategyError::Step {
                strategy: "uncertainty",
                message: format!("{} loss terms given, {n} log-variances", losses.len()),
            });
        }
        self.opt.zero_grad();
        let l = Tensor::f_stack(losses, 0)?.to_kind(Kind::Float);
        let w = self.log_var.neg().exp() * self.scale;
        let total = (&w * &l).sum(Kind::Float) + self.log_var.sum(Kind::Float) * 0.5;
        total.f_backward()?;
        let weights = super::to_f64s(&w);
        self.opt.step();
        Ok(StepReport { weights })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::optim::{OptimSettings, OptimizerKind};

    fn ctx(optim: &OptimSettings, n: usize) -> BuildContext {
        BuildContext { n_terms: n, optim: *optim, seed: 1, device: tch::Device::Cpu }
    }

    #[test]
    fn effective_weight_tends_to_one_over_twice_the_loss() {
        // Fixed losses: only the log-variances move. Equilibrium: weight = 1/(2L).
        let optim = OptimSettings { lr: 0.05, ..Default::default() };
        let fixed = [0.4f32, 0.05, 2.0];
        for form in [Form::Classification, Form::Regression] {
            let mut u = Uncertainty::new(&UncertaintyConfig { form }, ctx(&optim, 3)).unwrap();
            let mut last = vec![];
            for _ in 0..3000 {
                let losses: Vec<Tensor> = fixed.iter().map(|&v| Tensor::from(v)).collect();
                last = u.backward(&StepInput::new(&losses, &groups(&[], &[], &[]))).unwrap().weights;
            }
            let want: Vec<f64> = fixed.iter().map(|&l| 1.0 / (2.0 * l as f64)).collect();
            for (g, w) in last.iter().zip(&want) {
                assert!((g / w - 1.0).abs() < 0.01, "{form:?}: weights {last:?}, want {want:?}");
            }
        }
    }

    #[test]
    fn first_step_gradients_by_hand() {
        // s = 0: classification weight 1, so the model gradient is the plain
        // sum; d/ds_t = -exp(-s_t) L_t + 1/2 = 0.5 - L_t. With SGD at lr 0.1
        // the new s_t = -0.1 (0.5 - L_t).
        // The run's weight decay (10 here) must not reach the log-variances.
        let optim = OptimSettings { lr: 0.1, kind: OptimizerKind::Sgd, weight_decay: 10.0, ..Default::default() };
        let mut u = Uncertainty::new(&UncertaintyConfig::default(), ctx(&optim, 2)).unwrap();
        let x = param(&[1.0, 2.0]);
        let losses = [lin(&[0.3, 0.0], &x), lin(&[0.0, 0.1], &x)]; // 0.3 and 0.2
        let r = u.backward(&StepInput::new(&losses, &groups(&[&x], &[&x], &[]))).unwrap();
        assert_close(&r.weights, &[1.0, 1.0], 1e-12);
        assert_close(&grad_vec(&x), &[0.3, 0.1], 1e-7);
        let s1 = [-0.1 * (0.5 - 0.3), -0.1 * (0.5 - 0.2)];
        assert_close(&u.log_variances(), &s1, 1e-7);
        // Second step: weights exp(-s1); s2 = s1 - 0.1 (0.5 - exp(-s1) L), no decay term.
        let losses = [lin(&[0.3, 0.0], &x), lin(&[0.0, 0.1], &x)];
        let r = u.backward(&StepInput::new(&losses, &groups(&[&x], &[&x], &[]))).unwrap();
        let w1: Vec<f64> = s1.iter().map(|s: &f64| (-s).exp()).collect();
        assert_close(&r.weights, &w1, 1e-6);
        let s2 = [s1[0] - 0.1 * (0.5 - w1[0] * 0.3), s1[1] - 0.1 * (0.5 - w1[1] * 0.2)];
        assert_close(&u.log_variances(), &s2, 1e-6);
        // Regression form halves the model gradient.
        let mut r = Uncertainty::new(&UncertaintyConfig { form: Form::Regression }, ctx(&optim, 2)).unwrap();
        let y = param(&[1.0, 2.0]);
        let losses = [lin(&[0.3, 0.0], &y), lin(&[0.0, 0.1], &y)];
        assert_close(&r.backward(&StepInput::new(&losses, &groups(&[&y], &[&y], &[]))).unwrap().weights, &[0.5, 0.5], 1e-12);
        assert_close(&grad_vec(&y), &[0.15, 0.05], 1e-7);
    }
}
