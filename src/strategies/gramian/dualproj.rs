//! DualProj (torchjd; Quinton and Rey, "Jacobian Descent for Multi-Objective
//! Optimization", 2024, <https://arxiv.org/abs/2406.16232>): the mean
//! gradient Jᵀ 1/T projected onto the dual cone of the gradients, i.e. the
//! weights v = argmin vᵀ G v subject to v ≥ 1/T, with UPGrad's normalised,
//! regularised G and exact QP (see `upgrad.rs`).

use serde::{Deserialize, Serialize};

use super::solve::dual_cone_weights;
use super::upgrad::{d_reg_eps, dual_cone_matrix};
use super::{check_min, mean_weights, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.dualproj]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DualProjConfig {
    /// Added to the trace-normalised G's diagonal (default 1e-4, torchjd's).
    #[serde(default = "d_reg_eps")]
    pub reg_eps: f64,
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for DualProjConfig {
    fn default() -> Self {
        DualProjConfig { reg_eps: d_reg_eps(), scope: d_scope() }
    }
}

impl DualProjConfig {
    pub fn validate(&self) -> Result<(), StrategyError> {
        check_min("dualproj", "reg_eps", self.reg_eps, 0.0, true)
    }
}

/// DualProj's weights.
pub fn dualproj_weights(gram: &Gram, reg_eps: f64) -> Vec<f64> {
    dual_cone_weights(&dual_cone_matrix(gram, reg_eps), &mean_weights(gram.dim()))
}

pub struct DualProj {
    reg_eps: f64,
}

impl DualProj {
    pub fn new(cfg: &DualProjConfig) -> Result<Self, StrategyError> {
        cfg.validate()?;
        Ok(DualProj { reg_eps: cfg.reg_eps })
    }
}

impl GramMethod for DualProj {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(dualproj_weights(gram, self.reg_eps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_of_the_mean_by_hand() {
        // g1 = (1, 0), g2 = (-3, 1): mean (-1, 1/2) violates g1ᵀx ≥ 0; its
        // projection (0, 1/2) = (3/2) g1 + (1/2) g2 satisfies g2ᵀx = 1/2 ≥ 0.
        let w = dualproj_weights(&Gram::from_rows(&[vec![1.0, 0.0], vec![-3.0, 1.0]]), 1e-12);
        assert!((w[0] - 1.5).abs() < 1e-9 && (w[1] - 0.5).abs() < 1e-9, "{w:?}");
    }
}
