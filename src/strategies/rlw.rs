//! Random Loss Weighting (Lin, Ye, Xu, Shi and Zhang, "Reasonable
//! Effectiveness of Random Weighting: A Litmus Test for Multi-Task
//! Learning", TMLR 2022, <https://arxiv.org/abs/2111.10603>; reference code
//! LibMTL, `weighting/RLW.py`).
//!
//! Every step draws z ~ N(0, I_T) and weights the loss terms by
//! w = T softmax(z). The paper's weights sum to 1; here they are scaled by T
//! so that E[w_t] = 1, the scale of equal weighting (with Adam the factor
//! barely matters; with SGD it keeps the learning rate comparable).
//!
//! The draws come from a ChaCha8 stream seeded by the run's seed (its own
//! stream id, independent of PCGrad's order), so a run is reproducible.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::equal::weighted_sum;
use super::{BuildContext, StepInput, StepReport, Strategy, StrategyError};

/// `[strategies.rlw]`: the method has no settings (standard normal draws).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlwConfig {}

/// Stream id of RLW's generator.
const WEIGHT_STREAM: u64 = 0x524C_57; // "RLW"

pub struct Rlw {
    n_terms: usize,
    rng: ChaCha8Rng,
}

impl Rlw {
    pub fn new(_cfg: &RlwConfig, ctx: BuildContext) -> Result<Self, StrategyError> {
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        rng.set_stream(WEIGHT_STREAM);
        Ok(Rlw { n_terms: ctx.n_terms, rng })
    }

    /// The next step's weights: T softmax(z), z standard normal.
    pub fn draw(&mut self) -> Vec<f64> {
        let z: Vec<f64> = (0..self.n_terms).map(|_| StandardNormal.sample(&mut self.rng)).collect();
        super::scaled_softmax(&z, self.n_terms as f64)
    }
}

impl Strategy for Rlw {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        super::check_terms("rlw", input.losses.len(), self.n_terms)?;
        let weights = self.draw();
        weighted_sum(input.losses, &weights).f_backward()?;
        Ok(StepReport { weights })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::optim::OptimSettings;

    fn build(n: usize, seed: u64) -> Rlw {
        Rlw::new(&RlwConfig {}, BuildContext { n_terms: n, optim: OptimSettings::default(), seed, device: tch::Device::Cpu })
            .unwrap()
    }

    /// E[f(z)] for z ~ N(0, I_d) by the trapezoid rule on [-10, 10]^d.
    fn gauss_expectation(d: usize, points: usize, f: &dyn Fn(&[f64]) -> f64) -> f64 {
        let h = 20.0 / (points - 1) as f64;
        let x: Vec<f64> = (0..points).map(|i| -10.0 + h * i as f64).collect();
        let phi: Vec<f64> = x.iter().map(|v| (-v * v / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt() * h).collect();
        let mut idx = vec![0usize; d];
        let mut total = 0.0;
        loop {
            let z: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
            total += idx.iter().map(|&i| phi[i]).product::<f64>() * f(&z);
            let mut k = 0;
            while k < d {
                idx[k] += 1;
                if idx[k] < points {
                    break;
                }
                idx[k] = 0;
                k += 1;
            }
            if k == d {
                return total;
            }
        }
    }

    #[test]
    fn draws_have_the_distribution_of_t_softmax_of_normals() {
        // Independent truth: E[w_1] = 1 by symmetry and E[w_1^2] by quadrature of
        // w_1 = T exp(z_1) / sum_j exp(z_j) over the standard normal density.
        for t in [2usize, 3] {
            let points = if t == 2 { 801 } else { 121 };
            let second = gauss_expectation(t, points, &|z| {
                let s: f64 = z.iter().map(|v| v.exp()).sum();
                (t as f64 * z[0].exp() / s).powi(2)
            });
            let var_truth = second - 1.0;
            let mut r = build(t, 7);
            let n = 200_000;
            let (mut sum, mut sq) = (vec![0.0; t], vec![0.0; t]);
            for _ in 0..n {
                let w = r.draw();
                assert!((w.iter().sum::<f64>() - t as f64).abs() < 1e-12);
                assert!(w.iter().all(|v| *v > 0.0));
                for k in 0..t {
                    sum[k] += w[k];
                    sq[k] += w[k] * w[k];
                }
            }
            for k in 0..t {
                let mean = sum[k] / n as f64;
                let var = sq[k] / n as f64 - mean * mean;
                // sd of the mean is sqrt(var / n) < 0.0015 here: 0.006 is 4 sd.
                assert!((mean - 1.0).abs() < 0.006, "T = {t}, term {k}: mean {mean}");
                assert!((var / var_truth - 1.0).abs() < 0.02, "T = {t}, term {k}: variance {var} vs {var_truth}");
            }
        }
    }

    #[test]
    fn the_variance_quadrature_matches_a_closed_form() {
        // For T = 2, w_1 = 2 sigmoid(z_1 - z_2) and z_1 - z_2 ~ N(0, 2): check the
        // quadrature helper against the one-dimensional integral of that form.
        let two_d = gauss_expectation(2, 801, &|z| (2.0 / (1.0 + (z[1] - z[0]).exp())).powi(2));
        let one_d = gauss_expectation(1, 4001, &|u| (2.0 / (1.0 + (-(2f64.sqrt()) * u[0]).exp())).powi(2));
        assert!((two_d - one_d).abs() < 1e-9, "{two_d} vs {one_d}");
        assert!(two_d > 1.0 && two_d < 2.0);
    }

    #[test]
    fn reproducible_from_the_seed_and_new_every_step() {
        let (mut a, mut b, mut c) = (build(3, 5), build(3, 5), build(3, 6));
        let sa: Vec<Vec<f64>> = (0..10).map(|_| a.draw()).collect();
        assert_eq!(sa, (0..10).map(|_| b.draw()).collect::<Vec<_>>());
        assert_ne!(sa, (0..10).map(|_| c.draw()).collect::<Vec<_>>());
        assert_ne!(sa[0], sa[1]);
    }

    #[test]
    fn the_step_is_the_weighted_sum_of_the_draw() {
        let x = param(&[0.5, 2.0]);
        let losses = [lin(&[1.0, 0.0], &x), lin(&[0.0, 1.0], &x)];
        let g = groups(&[&x], &[&x], &[]);
        let want = build(2, 9).draw();
        let r = build(2, 9).backward(&StepInput::new(&losses, &g)).unwrap();
        assert_eq!(r.weights, want);
        assert_close(&grad_vec(&x), &want, 1e-6);
    }
}
