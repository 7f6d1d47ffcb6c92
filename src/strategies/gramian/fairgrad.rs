//! FairGrad (Ban and Ji, "Fair Resource Allocation in Multi-Task Learning",
//! ICML 2024, <https://arxiv.org/abs/2402.15638>).
//!
//! α-fair utility over the tasks' rates g_tᵀ d, d = Jᵀ w: the weights solve
//! G w = w^(-1/α), w > 0 (α = 1 is Nash-MTL's equation, α → 0 the mean).
//! Solved by damped Newton steps on the convex potential whose gradient is
//! G w - w^(-1/α) (torchjd: scipy's bounded least squares from 1/T).
//! Default α = 2, as the reference code's scripts.

use serde::{Deserialize, Serialize};

use super::solve::power_fixed_point;
use super::{check_min, mean_weights, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

fn d_alpha() -> f64 {
    2.0
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.fairgrad]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairGradConfig {
    /// Fairness α ≥ 0 (default 2.0; 0 gives the mean).
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for FairGradConfig {
    fn default() -> Self {
        FairGradConfig { alpha: d_alpha(), scope: d_scope() }
    }
}

impl FairGradConfig {
    pub fn validate(&self) -> Result<(), StrategyError> {
        check_min("fairgrad", "alpha", self.alpha, 0.0, false)
    }
}

/// FairGrad's weights.
pub fn fairgrad_weights(gram: &Gram, alpha: f64) -> Vec<f64> {
    let n = gram.dim();
    if alpha == 0.0 {
        return mean_weights(n);
    }
    power_fixed_point(gram, 1.0 / alpha, &mean_weights(n), 1e-12, 200)
}

pub struct FairGrad {
    alpha: f64,
}

impl FairGrad {
    pub fn new(cfg: &FairGradConfig) -> Result<Self, StrategyError> {
        cfg.validate()?;
        Ok(FairGrad { alpha: cfg.alpha })
    }
}

impl GramMethod for FairGrad {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(fairgrad_weights(gram, self.alpha))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_case_by_hand() {
        // G = diag(4, 1), α = 2: 4 w1 = w1^(-1/2) -> w1 = 4^(-2/3); w2 = 1.
        let g = Gram::new(2, vec![4.0, 0.0, 0.0, 1.0]).unwrap();
        let w = fairgrad_weights(&g, 2.0);
        assert!((w[0] - 4f64.powf(-2.0 / 3.0)).abs() < 1e-12 && (w[1] - 1.0).abs() < 1e-12, "{w:?}");
        assert_eq!(fairgrad_weights(&g, 0.0), vec![0.5, 0.5]);
        assert!(FairGradConfig { alpha: -1.0, ..Default::default() }.validate().is_err());
    }
}
