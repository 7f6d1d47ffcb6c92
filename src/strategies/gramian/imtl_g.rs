//! IMTL-G (Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang, "Towards
//! Impartial Multi-task Learning", ICLR 2021,
//! <https://openreview.net/forum?id=IMPnRXEWpvr>), in torchjd's
//! generalisation to linearly dependent gradients.
//!
//! The update d = Jᵀ w has equal projections onto every unit gradient
//! (g_tᵀ d / ||g_t|| the same for all t) and sum_t w_t = 1:
//! w = G⁺ n / (1ᵀ G⁺ n) with n_t = ||g_t||; all zero when 1ᵀ G⁺ n vanishes.
//! G⁺ drops eigenvalues below T ε_machine times the largest (as torch's pinv).

use serde::{Deserialize, Serialize};

use super::solve::pinv_sym;
use super::{Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.imtl-g]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImtlGConfig {
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for ImtlGConfig {
    fn default() -> Self {
        ImtlGConfig { scope: d_scope() }
    }
}

/// IMTL-G's weights.
pub fn imtl_g_weights(gram: &Gram) -> Vec<f64> {
    let n = gram.dim();
    let v = pinv_sym(gram, n as f64 * f64::EPSILON).mul_vec(&gram.norms());
    let sum: f64 = v.iter().sum();
    if sum.abs() < 1e-12 {
        vec![0.0; n]
    } else {
        v.iter().map(|x| x / sum).collect()
    }
}

pub struct ImtlG;

impl GramMethod for ImtlG {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(imtl_g_weights(gram))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_projections_by_hand() {
        // g1 = (1, 0), g2 = (0, 2): d = (w1, 2 w2) with d1 = d2 / 1... equal
        // projections on (1,0) and (0,1): w1 = 2 w2, w1 + w2 = 1 -> (2/3, 1/3).
        let w = imtl_g_weights(&Gram::from_rows(&[vec![1.0, 0.0], vec![0.0, 2.0]]));
        assert!((w[0] - 2.0 / 3.0).abs() < 1e-14 && (w[1] - 1.0 / 3.0).abs() < 1e-14, "{w:?}");
    }
}
