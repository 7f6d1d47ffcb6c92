//! UPGrad (Quinton and Rey, "Jacobian Descent for Multi-Objective
//! Optimization", 2024, <https://arxiv.org/abs/2406.16232>), as torchjd's UPGrad.
//!
//! Each gradient g_t is projected onto the dual cone of all of them
//! ({x : g_iᵀ x ≥ 0 for all i}), and the projections are averaged. By the
//! paper's Proposition 1 the projection of Jᵀ u is Jᵀ v with
//! v = argmin vᵀ G v subject to v ≥ u; UPGrad's weights are the sum of the v
//! for u = e_t / T. As torchjd, G is first normalised to trace 1 and
//! `reg_eps` I is added (default 1e-4) so that the QP is strictly convex;
//! torchjd also zeroes a G whose trace is below 1e-4, which would turn small
//! gradients into the mean: here only an all-zero G stays zero.
//! The QP is solved exactly by principal pivoting (torchjd: quadprog).

use serde::{Deserialize, Serialize};

use super::solve::dual_cone_weights;
use super::{check_min, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

pub(crate) fn d_reg_eps() -> f64 {
    1e-4
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.upgrad]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradConfig {
    /// Added to the trace-normalised G's diagonal (default 1e-4, torchjd's).
    #[serde(default = "d_reg_eps")]
    pub reg_eps: f64,
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for UpgradConfig {
    fn default() -> Self {
        UpgradConfig { reg_eps: d_reg_eps(), scope: d_scope() }
    }
}

impl UpgradConfig {
    pub fn validate(&self) -> Result<(), StrategyError> {
        check_min("upgrad", "reg_eps", self.reg_eps, 0.0, true)
    }
}

/// The matrix the dual-cone QPs use: G / trace G + reg_eps I.
pub fn dual_cone_matrix(gram: &Gram, reg_eps: f64) -> Gram {
    gram.trace_normalized().regularized(reg_eps)
}

/// UPGrad's weights.
pub fn upgrad_weights(gram: &Gram, reg_eps: f64) -> Vec<f64> {
    let n = gram.dim();
    let a = dual_cone_matrix(gram, reg_eps);
    let mut total = vec![0.0; n];
    for t in 0..n {
        let mut u = vec![0.0; n];
        u[t] = 1.0 / n as f64;
        for (s, v) in total.iter_mut().zip(dual_cone_weights(&a, &u)) {
            *s += v;
        }
    }
    total
}

pub struct Upgrad {
    reg_eps: f64,
}

impl Upgrad {
    pub fn new(cfg: &UpgradConfig) -> Result<Self, StrategyError> {
        cfg.validate()?;
        Ok(Upgrad { reg_eps: cfg.reg_eps })
    }
}

impl GramMethod for Upgrad {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(upgrad_weights(gram, self.reg_eps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_conflict_is_the_mean_and_a_conflict_by_hand() {
        // Non-conflicting gradients lie in their dual cone: the mean (up to reg).
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![1.0, 1.0]]);
        let w = upgrad_weights(&g, 1e-12);
        assert!(w.iter().all(|v| (v - 0.5).abs() < 1e-9), "{w:?}");
        // g1 = (1, 0), g2 = (-1, 1): π(g1) = (1/2, 1/2) = g1 + g2/2 and
        // π(g2) = (0, 1) = g1 + g2; their mean has weights (1, 3/4).
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![-1.0, 1.0]]);
        let w = upgrad_weights(&g, 1e-12);
        assert!((w[0] - 1.0).abs() < 1e-9 && (w[1] - 0.75).abs() < 1e-9, "{w:?}");
        assert!(UpgradConfig { reg_eps: 0.0, ..Default::default() }.validate().is_err());
    }
}
