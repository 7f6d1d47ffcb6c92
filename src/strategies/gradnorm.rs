//! GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient
//! Normalization for Adaptive Loss Balancing in Deep Multitask Networks",
//! ICML 2018, <https://arxiv.org/abs/1711.02257>).
//!
//! Weights w_t start at 1. Each step, on W (the last shared layer by
//! default, or every shared parameter):
//!
//! - n_t = ||grad_W L_t||, G_t = w_t n_t, G_bar = mean_t G_t;
//! - loss ratios l_t = L_t / L_t(0), relative rates r_t = l_t / mean_j l_j;
//! - target_t = G_bar r_t^alpha, held constant (no gradient flows into it);
//! - L_grad = sum_t |G_t - target_t| is differentiated with respect to the
//!   weights only: d L_grad / d w_t = sign(G_t - target_t) n_t;
//! - the model steps on sum_t w_t L_t with w detached;
//! - the weights step with their own optimizer (the run's kind, their own
//!   learning rate, no weight decay), are floored at `min_weight` and then
//!   renormalised so that sum_t w_t = T.
//!
//! L_t(0) policy: the mean of each term's loss over the first `l0_steps`
//! steps (default 1, i.e. the first step's losses). The weights stay at 1
//! until L(0) is known; the first update happens on step `l0_steps`.
//!
//! Cost: one gradient pass per loss term over every parameter (each through
//! its own head and the shared part); the model's gradient is then
//! sum_t w_t g_t, so no further backward pass is needed.

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::{
    combine::accumulate_weighted, flatten, per_term_grads, scope_first, BuildContext, Scope, StepInput, StepReport, Strategy, StrategyError,
};
use crate::optim::{GradsOnEntry, Optimizer};

fn d_alpha() -> f64 {
    1.5
}
fn d_scope() -> Scope {
    Scope::LastShared
}
fn d_l0_steps() -> usize {
    1
}
fn d_min_weight() -> f64 {
    1e-3
}

/// `[strategies.gradnorm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradNormConfig {
    /// Restoring-force strength (paper: 1.5; 0 equalises gradient norms).
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// Learning rate of the weights; unset = the run's `train.lr`.
    #[serde(default)]
    pub lr: Option<f64>,
    /// W: `"last-shared"` (default, the paper's choice) or `"all-shared"`.
    #[serde(default = "d_scope")]
    pub scope: Scope,
    /// L(0) = mean loss per term over this many first steps (default 1).
    #[serde(default = "d_l0_steps")]
    pub l0_steps: usize,
    /// Floor applied before renormalising, so weights stay positive (default 1e-3).
    #[serde(default = "d_min_weight")]
    pub min_weight: f64,
}

impl Default for GradNormConfig {
    fn default() -> Self {
        GradNormConfig { alpha: d_alpha(), lr: None, scope: d_scope(), l0_steps: d_l0_steps(), min_weight: d_min_weight() }
    }
}

pub struct GradNorm {
    /// Owns `w`; kept alive for the optimizer.
    _vs: nn::VarStore,
    w: Tensor,
    opt: Optimizer,
    alpha: f64,
    scope: Scope,
    l0_steps: usize,
    min_weight: f64,
    /// Sum of the losses of the first steps, then (once complete) L(0).
    l0_sum: Option<Tensor>,
    seen: usize,
}

fn config_err(key: &str, message: String) -> StrategyError {
    StrategyError::Config { key: format!("strategies.gradnorm.{key}"), message }
}

impl GradNormConfig {
    /// Range checks (at grid read and at build); returns the weights'
    /// learning rate, `lr` or else the run's `run_lr`.
    pub fn validate(&self, run_lr: f64) -> Result<f64, StrategyError> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(config_err("alpha", format!("must be a finite number >= 0, got {}", self.alpha)));
        }
        let lr = self.lr.unwrap_or(run_lr);
        if !(lr.is_finite() && lr > 0.0) {
            return Err(config_err("lr", format!("must be a positive number, got {lr}")));
        }
        if self.l0_steps == 0 {
            return Err(config_err("l0_steps", "must be at least 1".into()));
        }
        if !(self.min_weight.is_finite() && self.min_weight > 0.0 && self.min_weight < 1.0) {
            return Err(config_err("min_weight", format!("must lie in (0, 1), got {}", self.min_weight)));
        }
        Ok(lr)
    }
}

impl GradNorm {
    pub fn new(cfg: &GradNormConfig, ctx: BuildContext) -> Result<Self, StrategyError> {
        let lr = cfg.validate(ctx.optim.lr)?;
        let t = ctx.n_terms as f64;
        let vs = nn::VarStore::new(ctx.device);
        let w = vs.root().ones("w", &[t as i64]);
        let opt = super::own_optimizer(&vs, ctx.optim, lr)?;
        Ok(GradNorm {
            _vs: vs,
            w,
            opt,
            alpha: cfg.alpha,
            scope: cfg.scope,
            l0_steps: cfg.l0_steps,
            min_weight: cfg.min_weight,
            l0_sum: None,
            seen: 0,
        })
    }

    /// The current weights.
    pub fn weights(&self) -> Vec<f64> {
        super::to_f64s(&self.w)
    }

    fn step_error(message: String) -> StrategyError {
        StrategyError::Step { strategy: "gradnorm", message }
    }

    /// One weight update from the detached losses `l` and norms `n`.
    fn update_weights(&mut self, l: &Tensor, n: &Tensor) -> Result<(), StrategyError> {
        let Some(l0_sum) = &self.l0_sum else { return Ok(()) };
        let l0 = l0_sum / self.l0_steps as f64;
        let g = self.w.detach() * n;
        let g_bar = g.mean(Kind::Float);
        let ratio = l / &l0;
        let r = &ratio / ratio.mean(Kind::Float);
        let target = g_bar * r.pow_tensor_scalar(self.alpha);
        let dw = (&g - &target).sign() * n;
        if !super::to_f64s(&dw).iter().all(|v| v.is_finite()) {
            return Err(Self::step_error(format!(
                "the weight gradient is not finite (L(0) = {:?}, losses = {:?}, norms = {:?})",
                super::to_f64s(&l0),
                super::to_f64s(l),
                super::to_f64s(n)
            )));
        }
        self.opt.zero_grad();
        // d/dw sum(w * dw) = dw: the paper's gradient of L_grad with respect to w.
        (&self.w * dw).sum(Kind::Float).f_backward()?;
        self.opt.step();
        let t = self.w.size()[0] as f64;
        tch::no_grad(|| -> Result<(), tch::TchError> {
            let floored = self.w.f_clamp_min(self.min_weight)?;
            let renorm = &floored * (t / floored.sum(Kind::Double).double_value(&[]));
            self.w.f_copy_(&renorm)?;
            Ok(())
        })?;
        Ok(())
    }
}

impl Strategy for GradNorm {
    /// The combined gradient is added into `.grad` (`accumulate_weighted`).
    fn grads_on_entry(&self) -> GradsOnEntry {
        GradsOnEntry::Zeroed
    }

    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        let losses = input.losses;
        let params = input.params;
        let t = self.w.size()[0] as usize;
        if losses.len() != t {
            return Err(Self::step_error(format!("{} loss terms given, {t} weights", losses.len())));
        }
        if self.scope.params(params).is_empty() {
            return Err(Self::step_error(format!(
                "the model declares no {} parameters to measure gradient norms on (strategies.gradnorm.scope)",
                match self.scope {
                    Scope::LastShared => "last-shared",
                    Scope::AllShared => "shared",
                }
            )));
        }
        let l = Tensor::f_stack(&losses.iter().map(|x| x.detach().to_kind(Kind::Float)).collect::<Vec<_>>(), 0)?;
        if self.seen < self.l0_steps {
            self.l0_sum = Some(match &self.l0_sum {
                Some(s) => s + &l,
                None => l.copy(),
            });
            self.seen += 1;
            if self.seen == self.l0_steps {
                let l0 = super::to_f64s(self.l0_sum.as_ref().unwrap_or(&l));
                if l0.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(Self::step_error(format!(
                        "L(0) must be positive and finite for every loss term, got {l0:?}"
                    )));
                }
            }
        }
        // One pass per term over every parameter: the in-scope part gives
        // n_t, and sum_t w_t g_t is the gradient of sum_t w_t L_t (w detached).
        let (all, n_scope) = scope_first(params, self.scope);
        let per_term = per_term_grads(losses, &all)?;
        let norms: Vec<Tensor> = per_term.iter().map(|g| flatten(&g[..n_scope]).norm()).collect();
        let n = Tensor::f_stack(&norms, 0)?.detach().to_kind(Kind::Float);
        let weights = self.weights();
        accumulate_weighted(&all, &per_term, &weights)?;
        if self.seen >= self.l0_steps {
            self.update_weights(&l, &n)?;
        }
        Ok(StepReport::new(weights))
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
    fn one_step_by_hand() {
        // W = x (2-D); L1 = <(3,0), x> = 3, L2 = <(0,1), x> = 1 at x = (1, 1).
        // n = (3, 1), w = (1, 1): G = (3, 1), G_bar = 2. First step: L(0) = L,
        // r = (1, 1), target = (2, 2); dw = (sign(1) 3, sign(-1) 1) = (3, -1).
        // SGD at lr 0.1: w = (0.7, 1.1), renormalised to sum 2: (0.7, 1.1) / 0.9.
        let optim = OptimSettings { lr: 0.1, kind: OptimizerKind::Sgd, weight_decay: 5.0, ..Default::default() };
        let mut g = GradNorm::new(&GradNormConfig::default(), ctx(&optim, 2)).unwrap();
        let x = param(&[1.0, 1.0]);
        let head = param(&[2.0]);
        let losses = [lin(&[3.0, 0.0], &x), lin(&[0.0, 1.0], &x) * &head.get(0) / 2.0];
        let r = g.backward(&StepInput::new(&losses, &groups(&[&x], &[&x], &[&head]))).unwrap();
        assert_close(&r.weights, &[1.0, 1.0], 0.0);
        assert_close(&grad_vec(&x), &[3.0, 1.0], 1e-6); // the plain sum with w = 1
        assert_close(&grad_vec(&head), &[0.5], 1e-6);
        assert_close(&g.weights(), &[0.7 / 0.9, 1.1 / 0.9], 1e-6);
    }

    #[test]
    fn slowest_task_gains_weight_and_weights_stay_normalised() {
        // Task 1's loss stays at its initial value, task 2's falls by 10% a
        // step (its gradient with it). Task 1 trains slowest, so its weight
        // must grow; after every step the weights are positive and sum to 2.
        let optim = OptimSettings { lr: 0.02, ..Default::default() };
        let mut g = GradNorm::new(&GradNormConfig::default(), ctx(&optim, 2)).unwrap();
        let x = param(&[1.0, 1.0]);
        let mut history = vec![];
        for step in 0..60 {
            let q = 0.9f32.powi(step);
            let losses = [lin(&[1.0, 0.0], &x), lin(&[0.0, q], &x)];
            g.backward(&StepInput::new(&losses, &groups(&[&x], &[&x], &[]))).unwrap();
            let w = g.weights();
            assert!(w.iter().all(|&v| v > 0.0), "step {step}: {w:?}");
            assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-5, "step {step}: {w:?}");
            history.push(w[0]);
        }
        assert!(history[59] > 1.2 && history[59] > history[9], "task 1 weight history {history:?}");
    }

    #[test]
    fn l0_is_the_mean_of_the_warm_up() {
        // Two warm-up steps with losses (2, 1) then (4, 1): L(0) = (3, 1); no
        // update before the second step. At that step l = (4, 1) / (3, 1),
        // r = (8/7, 6/7); equal norms n = (1, 1), G = (1, 1). With alpha = 0 the
        // target is G_bar = 1 -> dw = 0: weights unchanged. With alpha = 1.5, task 1's
        // target exceeds G (r > 1) -> w1 grows.
        let optim = OptimSettings { lr: 0.1, kind: OptimizerKind::Sgd, ..Default::default() };
        for (alpha, grows) in [(0.0, false), (1.5, true)] {
            let cfg = GradNormConfig { alpha, l0_steps: 2, ..Default::default() };
            let mut g = GradNorm::new(&cfg, ctx(&optim, 2)).unwrap();
            let x = param(&[1.0, 1.0]);
            let step1 = [lin(&[2.0, 0.0], &x), lin(&[0.0, 1.0], &x)];
            g.backward(&StepInput::new(&step1, &groups(&[&x], &[&x], &[]))).unwrap();
            assert_close(&g.weights(), &[1.0, 1.0], 0.0);
            // L1 = x1 + 3 = 4 with gradient norm 1 (x is not stepped here).
            let step2 = [lin(&[1.0, 0.0], &x) + 3.0, lin(&[0.0, 1.0], &x)];
            g.backward(&StepInput::new(&step2, &groups(&[&x], &[&x], &[]))).unwrap();
            let w = g.weights();
            if grows {
                assert!(w[0] > 1.0 && w[1] < 1.0, "{w:?}");
            } else {
                assert_close(&w, &[1.0, 1.0], 1e-7);
            }
        }
    }

    #[test]
    fn rejects_bad_config_and_missing_layer() {
        let optim = OptimSettings::default();
        let bad = GradNormConfig { alpha: -1.0, ..Default::default() };
        let e = GradNorm::new(&bad, ctx(&optim, 2)).err().unwrap().to_string();
        assert!(e.contains("strategies.gradnorm.alpha"), "{e}");
        let mut g = GradNorm::new(&GradNormConfig::default(), ctx(&optim, 2)).unwrap();
        let x = param(&[1.0]);
        let losses = [lin(&[1.0], &x), lin(&[2.0], &x)];
        let e = g.backward(&StepInput::new(&losses, &groups(&[&x], &[], &[]))).err().unwrap().to_string();
        assert!(e.contains("last-shared"), "{e}");
        // A zero initial loss makes the ratios undefined: an error, not NaN weights.
        let zero = [lin(&[0.0], &x), lin(&[2.0], &x)];
        let e = g.backward(&StepInput::new(&zero, &groups(&[&x], &[&x], &[]))).err().unwrap().to_string();
        assert!(e.contains("L(0)"), "{e}");
    }
}
