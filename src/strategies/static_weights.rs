//! Static weights (`static`): the fixed-weight objective L = sum_t w_t L_t
//! at one point of a weight sweep. The grid expands the points of the sweep
//! as an axis of this arm (`strategies.static.point` = 0..sweep), so the arm
//! traces the scalarisation front that adaptive strategies are plotted
//! against (Xin et al., NeurIPS 2022). It is not the equal-weighting
//! baseline (all weights 1), which is tuned like every other arm.
//!
//! The vector is computed here, when the number of loss terms is known (a
//! CTnoCVR model has one term more than its dataset has tasks):
//! - one term: (1);
//! - two terms: w_1 from 0.1 to 0.9 in `sweep` even steps (0.5 for one
//!   step), w_2 = 1 - w_1;
//! - T >= 3 terms: seeded draws d from the flat Dirichlet on the simplex,
//!   shrunk towards its centre like the two-term range: w = 0.2 / T + 0.8 d.
//!
//! Every vector is then scaled to sum to T, the sum of the equal weights.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::equal::{Equal, EqualConfig};
use super::{StepInput, StepReport, Strategy, StrategyError};

/// Most points a weight sweep may have.
pub const MAX_POINTS: usize = 64;

/// Share of a vector that varies: 0.8 gives the two-term range 0.1..0.9.
const SPREAD: f64 = 0.8;

fn d_sweep() -> usize {
    5
}

/// `[strategies.static]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Number of weight vectors in the sweep (1..=64).
    #[serde(default = "d_sweep")]
    pub sweep: usize,
    /// Seed of the draws for three or more loss terms.
    #[serde(default)]
    pub seed: u64,
    /// Which vector of the sweep a run uses; the grid expansion sets it for
    /// each configuration of the arm.
    #[serde(default)]
    pub point: usize,
}

impl Default for StaticConfig {
    fn default() -> Self {
        StaticConfig { sweep: d_sweep(), seed: 0, point: 0 }
    }
}

impl StaticConfig {
    pub fn is_default(&self) -> bool {
        *self == StaticConfig::default()
    }

    /// Range checks; the error names the key (without `strategies.static.`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.sweep == 0 || self.sweep > MAX_POINTS {
            return Err(("sweep", format!("must be between 1 and {MAX_POINTS} weight vectors, got {}", self.sweep)));
        }
        if self.point >= self.sweep {
            return Err(("point", format!("must be below sweep = {}, got {}", self.sweep, self.point)));
        }
        Ok(())
    }
}

/// The weight vector of point `point` of a sweep of `sweep` points over
/// `n_terms` loss terms; it sums to `n_terms`.
pub fn weight_vector(n_terms: usize, sweep: usize, seed: u64, point: usize) -> Vec<f64> {
    let shares: Vec<f64> = match n_terms {
        0 => return vec![],
        1 => vec![1.0],
        2 => {
            let w1 = if sweep <= 1 { 0.5 } else { 0.5 - SPREAD / 2.0 + SPREAD * point as f64 / (sweep - 1) as f64 };
            vec![w1, 1.0 - w1]
        }
        t => {
            // Each point draws from its own stream: a point's vector does not
            // depend on how many points the sweep has.
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(point as u64);
            let e: Vec<f64> = (0..t).map(|_| -(1.0 - rng.gen::<f64>()).ln()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|x| (1.0 - SPREAD) / t as f64 + SPREAD * x / sum).collect()
        }
    };
    let total: f64 = shares.iter().sum();
    shares.iter().map(|s| s * n_terms as f64 / total).collect()
}

/// [`StaticConfig::validate`] as a strategy error naming the full key.
pub fn validate(cfg: &StaticConfig) -> Result<(), StrategyError> {
    cfg.validate().map_err(|(k, m)| StrategyError::Config { key: format!("strategies.static.{k}"), message: m })
}

/// Equal weighting's objective with the point's weights.
#[derive(Debug)]
pub struct Static {
    inner: Equal,
}

impl Static {
    pub fn new(cfg: &StaticConfig, n_terms: usize) -> Result<Self, StrategyError> {
        validate(cfg)?;
        let weights = weight_vector(n_terms, cfg.sweep, cfg.seed, cfg.point);
        Ok(Static { inner: Equal::new(&EqualConfig { weights }, n_terms)? })
    }
}

impl Strategy for Static {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        self.inner.backward(input)
    }

    fn plain_weights(&self) -> Option<Vec<f64>> {
        self.inner.plain_weights()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn two_terms_step_from_one_tenth_to_nine_tenths_and_sum_to_two() {
        // Shares 0.1, 0.3, 0.5, 0.7, 0.9 of the first term, scaled to sum 2.
        let want = [[0.2, 1.8], [0.6, 1.4], [1.0, 1.0], [1.4, 0.6], [1.8, 0.2]];
        for (p, w) in want.iter().enumerate() {
            assert!(close(&weight_vector(2, 5, 0, p), w), "point {p}: {:?}", weight_vector(2, 5, 0, p));
        }
        assert!(close(&weight_vector(2, 1, 0, 0), &[1.0, 1.0]));
        assert!(close(&weight_vector(1, 5, 0, 3), &[1.0]));
    }

    #[test]
    fn many_terms_are_seeded_inside_the_shrunk_simplex() {
        for p in 0..8 {
            let w = weight_vector(4, 8, 3, p);
            assert_eq!(w, weight_vector(4, 8, 3, p), "same seed, same vector");
            assert_eq!(w, weight_vector(4, 20, 3, p), "a point does not depend on the sweep size");
            assert!((w.iter().sum::<f64>() - 4.0).abs() < 1e-12);
            // Shares lie in [0.2/4, 0.2/4 + 0.8]: weights in [0.2, 3.4].
            assert!(w.iter().all(|x| (0.2..=3.4).contains(x)), "{w:?}");
        }
        assert_ne!(weight_vector(4, 8, 3, 0), weight_vector(4, 8, 3, 1));
        assert_ne!(weight_vector(4, 8, 3, 0), weight_vector(4, 8, 4, 0));
    }

    #[test]
    fn validation_names_the_key() {
        let bad = StaticConfig { sweep: 0, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().0, "sweep");
        let bad = StaticConfig { sweep: 3, point: 3, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().0, "point");
        assert!(Static::new(&StaticConfig { sweep: MAX_POINTS + 1, ..Default::default() }, 2).is_err());
    }
}
