//! Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik and
//! Fetaya, "Multi-Task Learning as a Bargaining Game", ICML 2022,
//! <https://arxiv.org/abs/2202.01017>).
//!
//! The Nash bargaining solution d = Jᵀ α with G α = 1/α (elementwise),
//! α > 0: the minimiser of the convex potential ½ αᵀ G α - Σ log α_t, found
//! here by damped Newton steps (each the minimiser of the potential's local
//! convex model), warm-started from the previous step's α, to a relative
//! residual of 1e-10. The reference code approximates the same point by a
//! sequence of convex programs (20 per step); torchjd does the same with
//! ECOS. Then, as the reference code's gradient clipping (max_norm 1.0):
//! if ||Jᵀ α|| > max_norm, α is scaled to norm max_norm (0 turns it off).
//! Note ||Jᵀ α||² = αᵀ G α = T at the solution.

use serde::{Deserialize, Serialize};

use super::solve::power_fixed_point;
use super::{check_min, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

fn d_max_norm() -> f64 {
    1.0
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.nash-mtl]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NashMtlConfig {
    /// Clip ||Jᵀ α|| to this (default 1.0, the reference code's); 0 = off.
    #[serde(default = "d_max_norm")]
    pub max_norm: f64,
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for NashMtlConfig {
    fn default() -> Self {
        NashMtlConfig { max_norm: d_max_norm(), scope: d_scope() }
    }
}

impl NashMtlConfig {
    pub fn validate(&self) -> Result<(), StrategyError> {
        check_min("nash-mtl", "max_norm", self.max_norm, 0.0, false)
    }
}

/// Scales `w` so that ||Jᵀ w|| ≤ `max_norm` (no-op for max_norm = 0).
pub fn clip_norm(gram: &Gram, w: Vec<f64>, max_norm: f64) -> Vec<f64> {
    let norm = gram.quad(&w).max(0.0).sqrt();
    if max_norm > 0.0 && norm > max_norm {
        w.into_iter().map(|v| v * max_norm / norm).collect()
    } else {
        w
    }
}

/// The solution of G α = 1/α from `start`, before clipping.
pub fn nash_weights(gram: &Gram, start: &[f64]) -> Vec<f64> {
    power_fixed_point(gram, 1.0, start, 1e-10, 200)
}

pub struct NashMtl {
    max_norm: f64,
    prev: Vec<f64>,
}

impl NashMtl {
    pub fn new(cfg: &NashMtlConfig, n_terms: usize) -> Result<Self, StrategyError> {
        cfg.validate()?;
        Ok(NashMtl { max_norm: cfg.max_norm, prev: vec![1.0; n_terms] })
    }
}

impl GramMethod for NashMtl {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        let alpha = nash_weights(gram, &self.prev);
        if alpha.iter().all(|a| a.is_finite() && *a > 0.0) {
            self.prev = alpha.clone();
        }
        Ok(clip_norm(gram, alpha, self.max_norm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_gradients_by_hand() {
        // G = diag(4, 1): α_t² G_tt = 1 -> α = (1/2, 1); ||Jᵀ α||² = 2, clipped to 1.
        let g = Gram::new(2, vec![4.0, 0.0, 0.0, 1.0]).unwrap();
        let mut m = NashMtl::new(&NashMtlConfig::default(), 2).unwrap();
        let w = m.weights(&g, &GramContext { losses: &[1.0, 1.0] }).unwrap();
        let s = 0.5f64.sqrt();
        assert!((w[0] - 0.5 * s).abs() < 1e-12 && (w[1] - s).abs() < 1e-12, "{w:?}");
        let mut m = NashMtl::new(&NashMtlConfig { max_norm: 0.0, ..Default::default() }, 2).unwrap();
        let w = m.weights(&g, &GramContext { losses: &[1.0, 1.0] }).unwrap();
        assert!((w[0] - 0.5).abs() < 1e-12 && (w[1] - 1.0).abs() < 1e-12, "{w:?}");
        assert!(NashMtlConfig { max_norm: -1.0, ..Default::default() }.validate().is_err());
    }
}
