//! FAMO (Liu, Liang, Stone and Liu, "FAMO: Fast Adaptive Multitask
//! Optimization", NeurIPS 2023, <https://arxiv.org/abs/2306.03792>;
//! reference code <https://github.com/Cranial-XIX/FAMO>, `famo.py`).
//!
//! Task logits xi (init 0), z = softmax(xi). With D_t = L_t - m_t + 1e-8
//! (m_t = 0, the minimum of a cross-entropy) the model steps on
//!
//!   sum_t z_t log D_t / c,   c = sum_t z_t / D_t  (held constant),
//!
//! i.e. on sum_t w_t L_t with w_t = z_t / (c D_t); the weights sum to 1, as
//! in the reference (Adam is blind to that scale). After the optimiser step
//! the loss terms are recomputed on the same batch without gradient (the
//! one extra forward, through [`Strategy::after_step`]), and with
//! delta_t = log D_t(before) - log D_t(after) the logits step with
//!
//!   d xi = J_softmax(xi)^T delta = z * (delta - <z, delta>)
//!
//! by their own Adam (lr 0.025, L2 weight decay 1e-3: the reference's and
//! LibMTL's defaults). The reference recomputes the losses with the model
//! in training mode; so does this (batch statistics, the same dropout
//! stream), so that delta compares like with like.

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::equal::weighted_sum;
use super::{BuildContext, Reforward, StepInput, StepReport, Strategy, StrategyError};
use crate::optim::{OptimSettings, Optimizer, OptimizerKind};

/// Added to every loss before the logarithm, as in the reference.
pub const EPS: f64 = 1e-8;

fn d_lr() -> f64 {
    0.025
}
fn d_weight_decay() -> f64 {
    1e-3
}

/// `[strategies.famo]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamoConfig {
    /// Adam learning rate of the task logits (reference: 0.025).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// L2 weight decay of the logits, gamma in the paper (default 1e-3).
    #[serde(default = "d_weight_decay")]
    pub weight_decay: f64,
}

impl Default for FamoConfig {
    fn default() -> Self {
        FamoConfig { lr: d_lr(), weight_decay: d_weight_decay() }
    }
}

impl FamoConfig {
    /// Range checks; the error names the key (without `strategies.famo.`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(("lr", format!("must be a positive number, got {}", self.lr)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(("weight_decay", format!("must be a finite number >= 0, got {}", self.weight_decay)));
        }
        Ok(())
    }
}

/// w_t = z_t / (c D_t), c = sum_t z_t / D_t: the gradient of
/// sum_t z_t log D_t / c with respect to each L_t.
pub fn loss_weights(z: &[f64], losses: &[f64]) -> Vec<f64> {
    let d: Vec<f64> = losses.iter().map(|l| l + EPS).collect();
    let c: f64 = z.iter().zip(&d).map(|(z, d)| z / d).sum();
    z.iter().zip(&d).map(|(z, d)| z / (c * d)).collect()
}

/// The logits' gradient z * (delta - <z, delta>), delta_t = log D_t(before) - log D_t(after).
pub fn logit_gradient(z: &[f64], before: &[f64], after: &[f64]) -> Vec<f64> {
    let delta: Vec<f64> = before.iter().zip(after).map(|(b, a)| (b + EPS).ln() - (a + EPS).ln()).collect();
    let mean: f64 = z.iter().zip(&delta).map(|(z, d)| z * d).sum();
    z.iter().zip(&delta).map(|(z, d)| z * (d - mean)).collect()
}

pub struct Famo {
    /// Owns `logits`; kept alive for the optimizer.
    _vs: nn::VarStore,
    logits: Tensor,
    opt: Optimizer,
    /// The losses of the step whose optimiser step is pending.
    before: Option<Vec<f64>>,
}

impl Famo {
    pub fn new(cfg: &FamoConfig, ctx: BuildContext) -> Result<Self, StrategyError> {
        cfg.validate().map_err(|(k, m)| StrategyError::config("famo", k, m))?;
        let vs = nn::VarStore::new(ctx.device);
        let logits = vs.root().zeros("logits", &[ctx.n_terms as i64]);
        // Adam whatever the run's optimiser, as in the reference.
        let settings =
            OptimSettings { kind: OptimizerKind::Adam, lr: cfg.lr, weight_decay: cfg.weight_decay, ..OptimSettings::DEFAULT };
        let opt = Optimizer::new(&vs, &settings)?;
        Ok(Famo { _vs: vs, logits, opt, before: None })
    }

    /// z = softmax(logits).
    pub fn task_weights(&self) -> Vec<f64> {
        super::to_f64s(&self.logits.softmax(0, Kind::Double))
    }

    /// The current logits.
    pub fn logits(&self) -> Vec<f64> {
        super::to_f64s(&self.logits)
    }

    /// One logit step from the losses after the model's step.
    fn update(&mut self, before: &[f64], after: &[f64]) -> Result<(), StrategyError> {
        if let Some((t, v)) = after.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(StrategyError::Step {
                strategy: "famo",
                message: format!("loss term {t} is {v} when recomputed after the optimiser step"),
            });
        }
        let d = logit_gradient(&self.task_weights(), before, after);
        self.opt.zero_grad();
        // d/dxi sum(xi * d) = d: defines and fills the logits' `.grad`.
        let d = Tensor::from_slice(&d).to_kind(self.logits.kind()).to_device(self.logits.device());
        (&self.logits * d).sum(self.logits.kind()).f_backward()?;
        self.opt.step();
        Ok(())
    }
}

impl Strategy for Famo {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        let n = self.logits.size()[0] as usize;
        super::check_terms("famo", input.losses.len(), n)?;
        let values = input.losses.iter().map(|l| l.f_double_value(&[])).collect::<Result<Vec<f64>, _>>()?;
        let weights = loss_weights(&self.task_weights(), &values);
        weighted_sum(input.losses, &weights).f_backward()?;
        self.before = Some(values);
        Ok(StepReport { weights })
    }

    fn after_step(&mut self, reforward: &mut Reforward) -> Result<(), StrategyError> {
        let Some(before) = self.before.take() else { return Ok(()) };
        let after = reforward()?;
        super::check_terms("famo", after.len(), before.len())?;
        self.update(&before, &after)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn build(cfg: &FamoConfig, n: usize) -> Famo {
        Famo::new(cfg, BuildContext { n_terms: n, optim: OptimSettings::default(), seed: 1, device: tch::Device::Cpu }).unwrap()
    }

    #[test]
    fn the_model_gradient_is_that_of_the_reference_objective() {
        // Reference objective with z = (0.5, 0.5): sum_t z_t log D_t / c, c detached.
        // L = (0.5, 0.2): c = 0.5/0.5 + 0.5/0.2 = 3.5, w = (0.5/1.75, 0.5/0.7) = (2/7, 5/7).
        assert_close(&loss_weights(&[0.5, 0.5], &[0.5, 0.2]), &[2.0 / 7.0, 5.0 / 7.0], 1e-7);
        let x = param(&[0.5, 0.2]);
        let losses = [lin(&[1.0, 0.0], &x), lin(&[0.0, 1.0], &x)];
        let g = groups(&[&x], &[&x], &[]);
        let mut f = build(&FamoConfig::default(), 2);
        let r = f.backward(&StepInput::new(&losses, &g)).unwrap();
        assert_close(&r.weights, &[2.0 / 7.0, 5.0 / 7.0], 1e-7);
        let got = grad_vec(&x);
        // The same gradient from the reference's expression, by autograd.
        let y = param(&[0.5, 0.2]);
        let l = Tensor::stack(&[lin(&[1.0, 0.0], &y), lin(&[0.0, 1.0], &y)], 0);
        let z = Tensor::from_slice(&[0.5f32, 0.5]);
        let d = &l + EPS;
        let c = (&z / &d).sum(Kind::Float).detach();
        (d.log() * &z / c).sum(Kind::Float).backward();
        assert_close(&got, &grad_vec(&y), 1e-6);
    }

    #[test]
    fn one_logit_step_by_hand() {
        // Before (0.5, 0.2), after (0.4, 0.19): delta = (ln 1.25, ln(20/19)) up to EPS,
        // z = (0.5, 0.5), <z, delta> = (delta_1 + delta_2) / 2,
        // grad = z * (delta - <z, delta>) = ((delta_1 - delta_2) / 4) * (1, -1).
        let (d1, d2) = ((0.5f64 + EPS).ln() - (0.4f64 + EPS).ln(), (0.2f64 + EPS).ln() - (0.19f64 + EPS).ln());
        let q = (d1 - d2) / 4.0;
        assert_close(&logit_gradient(&[0.5, 0.5], &[0.5, 0.2], &[0.4, 0.19]), &[q, -q], 1e-15);
        // Adam's first step moves each logit by lr * g / (|g| + 1e-8) (bias corrections
        // cancel): xi = (-0.025, 0.025) up to 1e-8 / |g|; decay adds 1e-3 * xi = 0 here.
        let x = param(&[0.5, 0.2]);
        let losses = [lin(&[1.0, 0.0], &x), lin(&[0.0, 1.0], &x)];
        let g = groups(&[&x], &[&x], &[]);
        let mut f = build(&FamoConfig::default(), 2);
        f.backward(&StepInput::new(&losses, &g)).unwrap();
        let mut calls = 0;
        f.after_step(&mut || {
            calls += 1;
            Ok(vec![0.4, 0.19])
        })
        .unwrap();
        assert_eq!(calls, 1);
        // The logits are f32 and so is the optimiser's arithmetic (its bias
        // corrections carry f32 rounding of beta2, ~1e-5 relative): 1e-6 absolute.
        let step = 0.025 * q / (q + 1e-8);
        assert_close(&f.logits(), &[-step, step], 1e-6);
        // The next weights: z = softmax(-0.025, 0.025) = (1, e^0.05) / (1 + e^0.05).
        let z1 = 1.0 / (1.0 + 0.05f64.exp());
        assert_close(&f.task_weights(), &[z1, 1.0 - z1], 1e-6);
        // No pending step: the hook does not recompute anything.
        f.after_step(&mut || panic!("no forward expected")).unwrap();
    }

    /// Two logit steps written out (torch's Adam with L2 decay added to the
    /// gradient), the losses always falling from (0.5, 0.2) to (0.4, 0.19).
    fn two_steps_by_hand(lr: f64, wd: f64) -> [f64; 2] {
        let (mut xi, mut m, mut v) = ([0.0f64; 2], [0.0f64; 2], [0.0f64; 2]);
        for step in 1..=2 {
            let z1 = 1.0 / (1.0 + (xi[1] - xi[0]).exp());
            let grad = logit_gradient(&[z1, 1.0 - z1], &[0.5, 0.2], &[0.4, 0.19]);
            for k in 0..2 {
                let gk = grad[k] + wd * xi[k];
                m[k] = 0.9 * m[k] + 0.1 * gk;
                v[k] = 0.999 * v[k] + 0.001 * gk * gk;
                let (mh, vh) = (m[k] / (1.0 - 0.9f64.powi(step)), v[k] / (1.0 - 0.999f64.powi(step)));
                xi[k] -= lr * mh / (vh.sqrt() + 1e-8);
            }
        }
        xi
    }

    #[test]
    fn weight_decay_enters_the_second_step() {
        let cfg = FamoConfig { lr: 0.1, weight_decay: 0.5 };
        let mut f = build(&cfg, 2);
        let x = param(&[0.5, 0.2]);
        let g = groups(&[&x], &[&x], &[]);
        for _ in 0..2 {
            let losses = [lin(&[1.0, 0.0], &x), lin(&[0.0, 1.0], &x)];
            f.backward(&StepInput::new(&losses, &g)).unwrap();
            f.after_step(&mut || Ok(vec![0.4, 0.19])).unwrap();
        }
        let want = two_steps_by_hand(0.1, 0.5);
        assert_close(&f.logits(), &want, 1e-6);
        let without = two_steps_by_hand(0.1, 0.0);
        assert!((want[0] - without[0]).abs() > 1e-3, "decay must change the second step: {want:?} vs {without:?}");
    }

    #[test]
    fn bad_settings_and_non_finite_losses_are_refused() {
        let ctx = BuildContext { n_terms: 2, optim: OptimSettings::default(), seed: 1, device: tch::Device::Cpu };
        for (cfg, key) in [
            (FamoConfig { lr: -0.1, ..Default::default() }, "strategies.famo.lr"),
            (FamoConfig { lr: 0.0, ..Default::default() }, "strategies.famo.lr"),
            (FamoConfig { weight_decay: -1e-3, ..Default::default() }, "strategies.famo.weight_decay"),
        ] {
            let e = Famo::new(&cfg, ctx).err().unwrap().to_string();
            assert!(e.contains(key), "{e}");
        }
        let x = param(&[0.5, 0.2]);
        let g = groups(&[&x], &[&x], &[]);
        let mut f = build(&FamoConfig::default(), 2);
        f.backward(&StepInput::new(&[lin(&[1.0, 0.0], &x), lin(&[0.0, 1.0], &x)], &g)).unwrap();
        let e = f.after_step(&mut || Ok(vec![0.4, f64::NAN])).unwrap_err().to_string();
        assert!(e.contains("famo") && e.contains("term 1"), "{e}");
    }
}
