//! DB-MTL (Lin, Jiang, Ye, Zhang, Chen, Chen, Kwok and Zhang, "Dual-Balancing
//! for Multi-Task Learning", 2023, <https://arxiv.org/abs/2308.12029>;
//! reference code LibMTL, `weighting/DB_MTL.py`).
//!
//! Loss-scale balancing: the per-task objectives are the log losses
//! log(L_t + 1e-8), so every task's gradient is its loss gradient divided by
//! its loss. Gradient-magnitude balancing: an EMA of each task's gradient of
//! the shared parameters,
//!
//!   b_t <- g_t + (beta / k^sigma) (b_t - g_t)   (b_t = 0 before step 1; k = the step)
//!
//! (beta = 0.9, sigma = 0), then every buffered gradient is scaled to the
//! largest norm: the shared gradient is sum_t (max_j ||b_j|| / (||b_t|| + 1e-8)) b_t.
//! The traces record those scale factors. Task-specific parameters get the
//! gradient of sum_t log(L_t + 1e-8), as in the reference.
//!
//! Unlike the Gramian methods this needs the gradients themselves (the EMA
//! runs over steps), so it keeps one T x n buffer of the in-scope
//! gradients and hands the engine a direction; the scope is therefore a
//! parameter scope (all shared parameters by default, the reference's),
//! not the representation.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::gramian::{Aggregate, Gram, GramContext, GramMethod, GramScope, GramianStrategy};
use super::{StepInput, StepReport, Strategy, StrategyError};

/// Added to every loss before the logarithm, and to the norms, as in the reference.
pub const EPS: f64 = 1e-8;

fn d_beta() -> f64 {
    0.9
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.db-mtl]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbMtlConfig {
    /// EMA decay of the buffered gradients (reference: 0.9).
    #[serde(default = "d_beta")]
    pub beta: f64,
    /// Decay of beta over steps, beta / k^sigma (reference: 0).
    #[serde(default)]
    pub beta_sigma: f64,
    /// `"all-shared"` (default) or `"last-shared"`.
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for DbMtlConfig {
    fn default() -> Self {
        DbMtlConfig { beta: d_beta(), beta_sigma: 0.0, scope: d_scope() }
    }
}

impl DbMtlConfig {
    /// Range checks; the error names the key (without `strategies.db-mtl.`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.beta.is_finite() && (0.0..1.0).contains(&self.beta)) {
            return Err(("beta", format!("must lie in [0, 1), got {}", self.beta)));
        }
        if !(self.beta_sigma.is_finite() && self.beta_sigma >= 0.0) {
            return Err(("beta_sigma", format!("must be a finite number >= 0, got {}", self.beta_sigma)));
        }
        if self.scope == GramScope::Representation {
            return Err(("scope", "DB-MTL buffers parameter gradients: \"all-shared\" or \"last-shared\"".into()));
        }
        Ok(())
    }
}

/// The log losses log(L_t + 1e-8), DB-MTL's per-task objectives.
pub fn log_losses(losses: &[Tensor]) -> Vec<Tensor> {
    losses.iter().map(|l| (l + EPS).log()).collect()
}

/// The gradient buffer across steps.
pub struct DbMtlState {
    beta: f64,
    beta_sigma: f64,
    step: usize,
    buffer: Option<Tensor>,
}

impl DbMtlState {
    pub fn new(cfg: &DbMtlConfig) -> Self {
        DbMtlState { beta: cfg.beta, beta_sigma: cfg.beta_sigma, step: 0, buffer: None }
    }

    /// One step on the flat per-task gradients `grads` ([T, n]): updates the
    /// buffer and returns the combined gradient ([n]) and the scale factors.
    pub fn step(&mut self, grads: &Tensor) -> Result<(Tensor, Vec<f64>), tch::TchError> {
        self.step += 1;
        let rate = self.beta / (self.step as f64).powf(self.beta_sigma);
        let grads = grads.detach();
        let buffer = match self.buffer.take() {
            Some(b) => &grads + (b - &grads) * rate,
            None => &grads * (1.0 - rate),
        };
        let norms = buffer.to_kind(Kind::Double).f_norm_scalaropt_dim(2, [1i64].as_slice(), false)?;
        let max = norms.max();
        let alpha = (max / (norms + EPS)).to_kind(buffer.kind());
        let combined = alpha.unsqueeze(0).matmul(&buffer).squeeze_dim(0);
        let scales = super::to_f64s(&alpha);
        self.buffer = Some(buffer);
        Ok((combined, scales))
    }
}

/// The buffer as an engine method: it returns the combined direction.
struct Buffered(DbMtlState);

impl GramMethod for Buffered {
    fn weights(&mut self, _gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Err(StrategyError::Step { strategy: "db-mtl", message: "DB-MTL needs the gradients, not only their Gramian".into() })
    }

    fn aggregate(&mut self, rows: &[Tensor], _gram: &Gram, _ctx: &GramContext) -> Result<Aggregate, StrategyError> {
        let (direction, weights) = self.0.step(&Tensor::f_stack(rows, 0)?)?;
        Ok(Aggregate::Direction { direction, weights })
    }
}

/// DB-MTL: the engine on the log losses with the buffered direction.
pub struct DbMtl {
    engine: GramianStrategy,
}

impl DbMtl {
    pub fn new(cfg: &DbMtlConfig, n_terms: usize) -> Result<Self, StrategyError> {
        cfg.validate().map_err(|(k, m)| StrategyError::config("db-mtl", k, m))?;
        Ok(DbMtl { engine: GramianStrategy::new("db-mtl", cfg.scope, n_terms, Box::new(Buffered(DbMtlState::new(cfg)))) })
    }
}

impl Strategy for DbMtl {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        let logs = log_losses(input.losses);
        self.engine.backward(&StepInput { losses: &logs, ..*input })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_close;
    use super::*;

    fn rows(v: &[[f64; 2]]) -> Tensor {
        Tensor::from_slice(&v.iter().flatten().copied().collect::<Vec<f64>>()).view([v.len() as i64, 2])
    }

    fn vec_of(t: &Tensor) -> Vec<f64> {
        super::super::to_f64s(t)
    }

    #[test]
    fn two_steps_by_hand() {
        // beta = 0.9. Step 1: b = 0.1 g: g1 = (3, 4), g2 = (0, 1) -> b1 = (0.3, 0.4) (norm 0.5),
        // b2 = (0, 0.1) (norm 0.1); alpha = (0.5 / (0.5 + 1e-8), 0.5 / (0.1 + 1e-8)) ~ (1, 5);
        // combined = (0.3, 0.4) + 5 (0, 0.1) = (0.3, 0.9).
        let mut s = DbMtlState::new(&DbMtlConfig::default());
        let (c, a) = s.step(&rows(&[[3.0, 4.0], [0.0, 1.0]])).unwrap();
        assert_close(&a, &[0.5 / (0.5 + EPS), 0.5 / (0.1 + EPS)], 1e-12);
        assert_close(&vec_of(&c), &[0.3 * a[0], 0.4 * a[0] + 0.1 * a[1]], 1e-12);
        // Step 2: g1 = (0, 0), g2 = (1, 0): b1 = 0.9 (0.3, 0.4) = (0.27, 0.36) (norm 0.45),
        // b2 = 0.1 (1, 0) + 0.9 (0, 0.1) = (0.1, 0.09) (norm sqrt(0.0181)).
        let (c, a) = s.step(&rows(&[[0.0, 0.0], [1.0, 0.0]])).unwrap();
        let n2 = 0.0181f64.sqrt();
        assert_close(&a, &[0.45 / (0.45 + EPS), 0.45 / (n2 + EPS)], 1e-12);
        assert_close(&vec_of(&c), &[0.27 * a[0] + 0.1 * a[1], 0.36 * a[0] + 0.09 * a[1]], 1e-12);
        // The scaled buffers all have the largest norm.
        assert!(((0.1 * a[1]).hypot(0.09 * a[1]) - 0.45).abs() < 1e-7);
    }

    #[test]
    fn beta_zero_is_the_current_gradient_and_sigma_decays_the_rate() {
        let mut s = DbMtlState::new(&DbMtlConfig { beta: 0.0, ..Default::default() });
        let (c, _) = s.step(&rows(&[[1.0, 0.0], [0.0, 2.0]])).unwrap();
        assert_close(&vec_of(&c), &[2.0 / (1.0 + EPS), 2.0 * 2.0 / (2.0 + EPS)], 1e-12);
        // sigma = 1: step 2 uses rate beta / 2 = 0.25.
        let mut s = DbMtlState::new(&DbMtlConfig { beta: 0.5, beta_sigma: 1.0, ..Default::default() });
        let _ = s.step(&rows(&[[1.0, 0.0], [1.0, 0.0]])).unwrap(); // b = 0.5 g = (0.5, 0) for both
        let (c, _) = s.step(&rows(&[[0.0, 1.0], [0.0, 1.0]])).unwrap(); // b = 0.75 (0, 1) + 0.25 (0.5, 0) for both
        assert_close(&vec_of(&c), &[0.25, 1.5], 1e-7);
        assert!(DbMtlConfig { beta: 1.0, ..Default::default() }.validate().is_err());
        assert!(DbMtlConfig { beta_sigma: -1.0, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn log_losses_divide_the_gradient_by_the_loss() {
        let x = Tensor::from_slice(&[2.0f64]).set_requires_grad(true);
        let l = log_losses(&[&x * 0.25]);
        l[0].backward();
        // d/dx log(0.25 x + 1e-8) = 0.25 / (0.5 + 1e-8).
        assert_close(&vec_of(&x.grad()), &[0.25 / (0.5 + EPS)], 1e-12);
    }

    #[test]
    fn one_step_through_the_engine_by_hand() {
        use super::super::testing::*;
        // Shared x = (1, 1), heads h1 = h2 = 0. L1 = <(3,4), x> + 2 h1 = 7, L2 = <(0,1), x> + 5 h2 = 1.
        // Log-loss gradients on x: (3,4)/7 and (0,1); buffers 0.1 g: norms 0.5/7 and 0.1;
        // scales (0.1 / (0.5/7 + 1e-8), 0.1 / (0.1 + 1e-8)) ~ (1.4, 1);
        // x.grad = 1.4 (0.3, 0.4)/7 + (0, 0.1) = (0.06, 0.18). Heads: 2/7 and 5/1.
        let x = param(&[1.0, 1.0]);
        let (h1, h2) = (param(&[0.0]), param(&[0.0]));
        let losses = [lin(&[3.0, 4.0], &x) + lin(&[2.0], &h1), lin(&[0.0, 1.0], &x) + lin(&[5.0], &h2)];
        let g = groups(&[&x], &[&x], &[&h1, &h2]);
        let mut d = DbMtl::new(&DbMtlConfig::default(), 2).unwrap();
        let r = d.backward(&StepInput::new(&losses, &g)).unwrap();
        assert_close(&r.weights, &[1.4, 1.0], 1e-6);
        assert_close(&grad_vec(&x), &[0.06, 0.18], 1e-6);
        assert_close(&grad_vec(&h1), &[2.0 / 7.0], 1e-6);
        assert_close(&grad_vec(&h2), &[5.0], 1e-6);
        let e = DbMtl::new(&DbMtlConfig { scope: GramScope::Representation, ..Default::default() }, 2).err().unwrap();
        assert!(e.to_string().contains("strategies.db-mtl.scope"), "{e}");
    }
}
