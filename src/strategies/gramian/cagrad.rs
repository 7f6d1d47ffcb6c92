//! CAGrad (Liu, Liu, Jin, Stone and Liu, "Conflict-Averse Gradient Descent
//! for Multi-task Learning", NeurIPS 2021, <https://arxiv.org/abs/2110.14048>).
//!
//! With G normalised to trace 1 (scale-free), g0 = Jᵀ 1/T and
//! φ = c² ||g0||²: w* = argmin over the simplex of wᵀ G 1/T + sqrt(φ) ||Jᵀ w||,
//! and the update is g0 + (sqrt(φ) / ||Jᵀ w*||) Jᵀ w*, i.e. the weights
//! 1/T + (sqrt(φ) / ||Jᵀ w*||) w*; all zero when ||Jᵀ w*|| < `norm_eps` (on
//! the normalised G: the gradients are nearly Pareto-stationary), as torchjd.
//! The reference code then divides by 1 + c² (`rescale = 1`, its default);
//! `rescale` picks that, 1 + c, or none (torchjd's form).
//! Solved by projected gradient with backtracking, to about 1e-12.

use serde::{Deserialize, Serialize};

use super::solve::cagrad_inner;
use super::{check_min, mean_weights, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

/// What the update is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rescale {
    None,
    OnePlusC,
    OnePlusCSquared,
}

fn d_c() -> f64 {
    0.5
}
fn d_rescale() -> Rescale {
    Rescale::OnePlusCSquared
}
fn d_norm_eps() -> f64 {
    1e-4
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.cagrad]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CagradConfig {
    /// Radius of the ball around g0, relative to ||g0|| (paper: 0.5).
    #[serde(default = "d_c")]
    pub c: f64,
    /// `"one-plus-c-squared"` (default, the reference code), `"one-plus-c"` or `"none"`.
    #[serde(default = "d_rescale")]
    pub rescale: Rescale,
    /// Below this ||Jᵀ w*|| (trace-normalised G) the update is zero (default 1e-4).
    #[serde(default = "d_norm_eps")]
    pub norm_eps: f64,
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for CagradConfig {
    fn default() -> Self {
        CagradConfig { c: d_c(), rescale: d_rescale(), norm_eps: d_norm_eps(), scope: d_scope() }
    }
}

impl CagradConfig {
    pub fn validate(&self) -> Result<(), StrategyError> {
        check_min("cagrad", "c", self.c, 0.0, false)?;
        check_min("cagrad", "norm_eps", self.norm_eps, 0.0, false)
    }
}

/// CAGrad's weights before rescaling (torchjd's `CAGradWeighting`).
pub fn cagrad_weights(gram: &Gram, c: f64, norm_eps: f64) -> Vec<f64> {
    let n = gram.dim();
    let g = gram.trace_normalized();
    let mean = mean_weights(n);
    let b = g.mul_vec(&mean);
    let sqrt_phi = c * g.quad(&mean).max(0.0).sqrt();
    let w = cagrad_inner(&g, &b, sqrt_phi);
    let gw = g.quad(&w).max(0.0).sqrt();
    if gw < norm_eps || gw == 0.0 {
        return vec![0.0; n];
    }
    mean.iter().zip(&w).map(|(m, wi)| m + sqrt_phi / gw * wi).collect()
}

pub struct Cagrad {
    cfg: CagradConfig,
}

impl Cagrad {
    pub fn new(cfg: &CagradConfig) -> Result<Self, StrategyError> {
        cfg.validate()?;
        Ok(Cagrad { cfg: cfg.clone() })
    }
}

impl GramMethod for Cagrad {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        let c = self.cfg.c;
        let div = match self.cfg.rescale {
            Rescale::None => 1.0,
            Rescale::OnePlusC => 1.0 + c,
            Rescale::OnePlusCSquared => 1.0 + c * c,
        };
        Ok(cagrad_weights(gram, c, self.cfg.norm_eps).into_iter().map(|w| w / div).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_zero_is_the_mean_and_orthogonal_case_by_hand() {
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![0.0, 2.0]]);
        assert_eq!(cagrad_weights(&g, 0.0, 1e-4), vec![0.5, 0.5]);
        // Orthogonal g1 = (1, 0), g2 = (0, 1): by symmetry w* = (1/2, 1/2),
        // ||g0|| = ||Jᵀ w*|| = 1/√2, so the weights are 1/2 + c/2 each.
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        let w = cagrad_weights(&g, 0.5, 1e-4);
        assert!(w.iter().all(|v| (v - 0.75).abs() < 1e-9), "{w:?}");
        let e = CagradConfig { c: -0.1, ..Default::default() }.validate().err().unwrap().to_string();
        assert!(e.contains("strategies.cagrad.c"), "{e}");
    }
}
