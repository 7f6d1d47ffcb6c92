//! Equal weighting (EW): L = sum_t w_t L_t with fixed weights (default 1).
//! The baseline every adaptive method is measured against.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{StepInput, StepReport, Strategy, StrategyError};

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

impl EqualConfig {
    /// The weights for `n_terms` loss terms (all 1 when none are given); the
    /// one check of `strategies.equal.weights`, at grid read and at build.
    pub fn weights_for(&self, n_terms: usize) -> Result<Vec<f64>, StrategyError> {
        check_weights("strategies.equal.weights", &self.weights, n_terms)?;
        Ok(if self.weights.is_empty() { vec![1.0; n_terms] } else { self.weights.clone() })
    }
}

/// A weight vector given for `n_terms` loss terms: empty (all 1), or one
/// finite non-negative weight per term.
pub fn check_weights(key: &str, weights: &[f64], n_terms: usize) -> Result<(), StrategyError> {
    if !weights.is_empty() && weights.len() != n_terms {
        return Err(StrategyError::Config {
            key: key.into(),
            message: format!("{} weights given for {n_terms} loss terms", weights.len()),
        });
    }
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return Err(StrategyError::Config { key: key.into(), message: format!("weights must be finite and non-negative, got {weights:?}") });
    }
    Ok(())
}

impl Equal {
    pub fn new(cfg: &EqualConfig, n_terms: usize) -> Result<Self, StrategyError> {
        Ok(Equal { weights: cfg.weights_for(n_terms)? })
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
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        let losses = input.losses;
        weighted_sum(losses, &self.weights).f_backward()?;
        Ok(StepReport::new(self.weights.clone()))
    }

    fn plain_weights(&self) -> Option<Vec<f64>> {
        Some(self.weights.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use tch::{nn, nn::Module, Kind};

    /// A small two-head model (shared linear, one linear head per task) with
    /// seeded initial values, and its two loss terms on a fixed batch.
    fn model(seed: i64) -> (nn::VarStore, Vec<Tensor>) {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let shared = nn::linear(&root / "shared", 3, 4, Default::default());
        let heads: Vec<nn::Linear> = (0..2).map(|i| nn::linear(&root / "task" / i, 4, 1, Default::default())).collect();
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 1.5, 0.0, -0.3]).view([2, 3]);
        let h = shared.forward(&x).relu();
        let losses = heads.iter().map(|l| l.forward(&h).square().mean(Kind::Float)).collect();
        (vs, losses)
    }

    fn all_grads(vs: &nn::VarStore) -> Vec<(String, Vec<f64>)> {
        let mut v: Vec<(String, Vec<f64>)> = vs.variables().into_iter().map(|(k, t)| (k, grad_vec(&t))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn weights_give_exactly_the_weighted_sum() {
        let p = crate::models::ParamGroups { shared: vec![], last_shared: vec![], task_specific: vec![] };
        for w in [[1.0, 1.0], [2.0, 0.5]] {
            let (vs_a, la) = model(3);
            (&la[0] * w[0] + &la[1] * w[1]).backward();
            let (vs_b, lb) = model(3);
            let r = Equal::new(&EqualConfig { weights: w.to_vec() }, 2).unwrap().backward(&StepInput::new(&lb, &p)).unwrap();
            assert_eq!(r.weights, w.to_vec());
            let (ga, gb) = (all_grads(&vs_a), all_grads(&vs_b));
            assert_eq!(ga.len(), 6);
            assert_eq!(ga, gb, "weights {w:?}");
        }
        // With unit weights the gradients are bit-for-bit those of L1 + L2.
        let (vs_a, la) = model(4);
        (&la[0] + &la[1]).backward();
        let (vs_b, lb) = model(4);
        Equal::new(&EqualConfig::default(), 2).unwrap().backward(&StepInput::new(&lb, &p)).unwrap();
        assert_eq!(all_grads(&vs_a), all_grads(&vs_b));
    }

    #[test]
    fn rejects_wrong_count_and_negative_weights() {
        let e = Equal::new(&EqualConfig { weights: vec![1.0] }, 2).err().unwrap().to_string();
        assert!(e.contains("strategies.equal.weights") && e.contains("1 weights given for 2"), "{e}");
        assert!(Equal::new(&EqualConfig { weights: vec![1.0, -1.0] }, 2).is_err());
    }
}
