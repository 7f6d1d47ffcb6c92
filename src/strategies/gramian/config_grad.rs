//! ConFIG (Liu, Chen, Thuerey and others, "ConFIG: Towards Conflict-free
//! Training of Physics Informed Neural Networks", ICLR 2025,
//! <https://arxiv.org/abs/2408.11104>), as torchjd's ConFIG with its default
//! (sum) preference.
//!
//! With unit gradients u_t = g_t / ||g_t||, the direction is the least-norm
//! d with u_tᵀ d = 1 for every t (pinv(U) 1), normalised, and scaled by
//! sum_t g_tᵀ d̂. In terms of G: with D = diag(1 / ||g_t||) and
//! w = D (D G D)⁺ 1, the update is Jᵀ w (1ᵀ G w) / (wᵀ G w). The
//! pseudo-inverse drops eigenvalues below T ε_machine times the largest.

use serde::{Deserialize, Serialize};

use super::solve::pinv_sym;
use super::{Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.config]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigGradConfig {
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for ConfigGradConfig {
    fn default() -> Self {
        ConfigGradConfig { scope: d_scope() }
    }
}

/// ConFIG's weights.
pub fn config_weights(gram: &Gram) -> Vec<f64> {
    let n = gram.dim();
    let d: Vec<f64> = gram.norms().iter().map(|x| if *x > 0.0 { 1.0 / x } else { 0.0 }).collect();
    let inv = pinv_sym(&gram.congruent(&d), n as f64 * f64::EPSILON);
    let w: Vec<f64> = inv.mul_vec(&vec![1.0; n]).iter().zip(&d).map(|(v, di)| v * di).collect();
    let q = gram.quad(&w);
    if q <= 0.0 {
        return vec![0.0; n];
    }
    let length: f64 = gram.mul_vec(&w).iter().sum();
    w.iter().map(|v| v * length / q).collect()
}

pub struct ConfigGrad;

impl GramMethod for ConfigGrad {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(config_weights(gram))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_gradients_by_hand() {
        // g1 = (2, 0), g2 = (0, 1): d̂ = (1, 1)/√2, length (2 + 1)/√2, update (3/2, 3/2)
        // = (3/4) g1 + (3/2) g2.
        let w = config_weights(&Gram::from_rows(&[vec![2.0, 0.0], vec![0.0, 1.0]]));
        assert!((w[0] - 0.75).abs() < 1e-14 && (w[1] - 1.5).abs() < 1e-14, "{w:?}");
    }
}
