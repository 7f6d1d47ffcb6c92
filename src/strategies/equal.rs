//! Equal weighting (EW): L = sum_t w_t L_t with fixed weights (default 1).
//! The baseline every adaptive method is measured against.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{StepReport, Strategy, StrategyError};
use crate::models::ParamGroups;

/// `[strategies.equal]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EqualConfig {
    /// One weight per loss term; all 1 when empty.
    #[serde(default)]
    pub weights: Vec<f64>,
}

#[derive(Debug)]
pub struct Equal {
    weights: Vec<f64>,
}

impl Equal {
    pub fn new(cfg: &EqualConfig, n_terms: usize) -> Result<Self, StrategyError> {
        let weights = if cfg.weights.is_empty() { vec![1.0; n_terms] } else { cfg.weights.clone() };
        if weights.len() != n_terms {
            return Err(StrategyError::Config {
                key: "strategies.equal.weights".into(),
                message: format!("{} weights given for {n_terms} loss terms", weights.len()),
            });
        }
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(StrategyError::Config {
                key: "strategies.equal.weights".into(),
                message: format!("weights must be finite and non-negative, got {weights:?}"),
            });
        }
        Ok(Equal { weights })
    }
}

/// sum_t w_t L_t as one scalar.
pub fn weighted_sum(losses: &[Tensor], weights: &[f64]) -> Tensor {
    losses
        .iter()
        .zip(weights)
        .map(|(l, &w)| l * w)
        .reduce(|a, b| a + b)
        .unwrap_or_else(|| Tensor::from(0.0f32))
}

impl Strategy for Equal {
    fn backward(&mut self, losses: &[Tensor], _params: &ParamGroups) -> Result<StepReport, StrategyError> {
        weighted_sum(losses, &self.weights).f_backward()?;
        Ok(StepReport { weights: self.weights.clone() })
    }
}
