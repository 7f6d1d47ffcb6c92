//! Smooth Tchebycheff scalarisation (Lin, Zhang, Yang, Liu, Wang and Zhang,
//! "Smooth Tchebycheff Scalarization for Multi-Objective Optimization",
//! ICML 2024, <https://arxiv.org/abs/2402.19078>; reference code
//! <https://github.com/Xi-L/STCH>, `STCH_MTL/LibMTL/weighting/STCH.py`).
//!
//! The Tchebycheff scalarisation max_t (f_t - z*_t) made smooth:
//! mu log sum_t exp((f_t - z*_t) / mu), which tends to the max as mu -> 0.
//! As in the reference's multi-task code, the objectives are the log losses
//! normalised by a nadir point n (so the ideal point is log 0 = -inf is
//! avoided and z* = 0 on the log scale):
//!
//!   l_t = log(L_t / n_t + 1e-20),   L = T mu log sum_t exp(l_t / mu)
//!
//! whose gradient is sum_t w_t grad L_t with w_t = T p_t / (n_t (L_t / n_t + 1e-20)),
//! p = softmax(l / mu). The traces record these w_t.
//!
//! Warm-up (the reference's): for the first `warmup_epochs` epochs the model
//! trains on sum_t log(L_t + 1e-20) (w_t = 1 / (L_t + 1e-20)), and the
//! nadir point is the last warm-up epoch's mean training loss of each term
//! (from [`Strategy::end_of_epoch`]). The reference's `STCH_warmup_epoch = 4`
//! counts epochs from 0, so its five warm-up epochs are `warmup_epochs = 5`
//! here. A run shorter than the warm-up trains on the log losses throughout.

use serde::{Deserialize, Serialize};

use super::equal::weighted_sum;
use super::{StepInput, StepReport, Strategy, StrategyError};

/// Inside every logarithm, as in the reference.
pub const EPS: f64 = 1e-20;

fn d_mu() -> f64 {
    1.0
}
fn d_warmup_epochs() -> usize {
    5
}

/// `[strategies.stch]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StchConfig {
    /// Smoothing mu > 0 (reference: 1); smaller is closer to the max.
    #[serde(default = "d_mu")]
    pub mu: f64,
    /// Epochs on the summed log losses before STCH; the last one's mean
    /// training losses are the nadir point (reference: 5, counted from 1).
    #[serde(default = "d_warmup_epochs")]
    pub warmup_epochs: usize,
}

impl Default for StchConfig {
    fn default() -> Self {
        StchConfig { mu: d_mu(), warmup_epochs: d_warmup_epochs() }
    }
}

impl StchConfig {
    /// Range checks; the error names the key (without `strategies.stch.`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.mu.is_finite() && self.mu > 0.0) {
            return Err(("mu", format!("must be a positive number, got {}", self.mu)));
        }
        if self.warmup_epochs == 0 {
            return Err(("warmup_epochs", "must be at least 1: the nadir point is a warm-up epoch's mean loss".into()));
        }
        Ok(())
    }
}

/// The warm-up weights: the gradient of sum_t log(L_t + 1e-20).
pub fn log_weights(losses: &[f64]) -> Vec<f64> {
    losses.iter().map(|l| 1.0 / (l + EPS)).collect()
}

/// STCH's weights: the gradient of T mu logsumexp(l / mu) with respect to
/// each L_t, l_t = log(L_t / n_t + 1e-20).
pub fn stch_weights(losses: &[f64], nadir: &[f64], mu: f64) -> Vec<f64> {
    let l: Vec<f64> = losses.iter().zip(nadir).map(|(x, n)| (x / n + EPS).ln() / mu).collect();
    let p = super::scaled_softmax(&l, losses.len() as f64);
    p.iter().zip(losses.iter().zip(nadir)).map(|(p, (x, n))| p / (n * (x / n + EPS))).collect()
}

/// The STCH objective's value, T mu log sum_t exp(l_t / mu) (for tests and displays).
pub fn stch_value(losses: &[f64], nadir: &[f64], mu: f64) -> f64 {
    let l: Vec<f64> = losses.iter().zip(nadir).map(|(x, n)| (x / n + EPS).ln()).collect();
    let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    losses.len() as f64 * (m + mu * l.iter().map(|v| ((v - m) / mu).exp()).sum::<f64>().ln())
}

pub struct Stch {
    mu: f64,
    warmup_epochs: usize,
    n_terms: usize,
    nadir: Option<Vec<f64>>,
}

impl Stch {
    pub fn new(cfg: &StchConfig, n_terms: usize) -> Result<Self, StrategyError> {
        cfg.validate().map_err(|(k, m)| StrategyError::config("stch", k, m))?;
        Ok(Stch { mu: cfg.mu, warmup_epochs: cfg.warmup_epochs, n_terms, nadir: None })
    }

    /// The nadir point, once the warm-up has ended.
    pub fn nadir(&self) -> Option<&[f64]> {
        self.nadir.as_deref()
    }
}

impl Strategy for Stch {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        super::check_terms("stch", input.losses.len(), self.n_terms)?;
        let values = input.losses.iter().map(|l| l.f_double_value(&[])).collect::<Result<Vec<f64>, _>>()?;
        let weights = match &self.nadir {
            None => log_weights(&values),
            Some(n) => stch_weights(&values, n, self.mu),
        };
        weighted_sum(input.losses, &weights).f_backward()?;
        Ok(StepReport { weights })
    }

    fn end_of_epoch(&mut self, epoch: usize, mean_losses: &[f64]) -> Result<(), StrategyError> {
        super::check_terms("stch", mean_losses.len(), self.n_terms)?;
        if epoch != self.warmup_epochs {
            return Ok(());
        }
        if let Some((t, v)) = mean_losses.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
            return Err(StrategyError::Step {
                strategy: "stch",
                message: format!("epoch {epoch}: loss term {t} has mean training loss {v}; the nadir point must be positive"),
            });
        }
        self.nadir = Some(mean_losses.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn weights_by_hand() {
        // Nadir (0.5, 0.25), losses (0.5, 0.5), mu = 1: l = (log 1, log 2) = (0, ln 2),
        // p = softmax(l) = (1/3, 2/3); w = 2 p / L = (4/3, 8/3).
        assert_close(&stch_weights(&[0.5, 0.5], &[0.5, 0.25], 1.0), &[4.0 / 3.0, 8.0 / 3.0], 1e-12);
        // Value: 2 log(1 + 2) = 2 ln 3.
        assert!((stch_value(&[0.5, 0.5], &[0.5, 0.25], 1.0) - 2.0 * 3f64.ln()).abs() < 1e-12);
        // mu -> 0: all weight on the worst normalised term (T / L_t there).
        assert_close(&stch_weights(&[0.5, 0.5], &[0.5, 0.25], 1e-3), &[0.0, 4.0], 1e-9);
        // Warm-up: 1 / L.
        assert_close(&log_weights(&[0.5, 0.25]), &[2.0, 4.0], 1e-12);
    }

    #[test]
    fn the_gradient_is_that_of_the_reference_objective() {
        // The reference's expression by autograd: mu * log(sum(exp((l - max) / mu))) * T.
        let nadir = [0.6, 0.3, 0.9];
        let (a, b) = ([0.7f32, 0.2, 0.4], [0.1f32, 0.5, 0.3]);
        let x = param(&[1.0, 0.5, 0.25]);
        let losses: Vec<Tensor> = (0..3).map(|t| lin(&[a[t]], &x.narrow(0, t as i64, 1)) + b[t] as f64).collect();
        let g = groups(&[&x], &[&x], &[]);
        let mut s = Stch::new(&StchConfig { mu: 0.5, warmup_epochs: 1 }, 3).unwrap();
        s.end_of_epoch(1, &nadir).unwrap();
        s.backward(&StepInput::new(&losses, &g)).unwrap();
        let got = grad_vec(&x);
        let y = param(&[1.0, 0.5, 0.25]);
        let l = Tensor::stack(&(0..3).map(|t| lin(&[a[t]], &y.narrow(0, t as i64, 1)) + b[t] as f64).collect::<Vec<_>>(), 0);
        let n = Tensor::from_slice(&nadir.map(|v| v as f32));
        let ll = (l / n + EPS).log();
        let reg = &ll - ll.max().detach();
        ((reg / 0.5).exp().sum(Kind::Float).log() * 0.5 * 3.0).backward();
        assert_close(&got, &grad_vec(&y), 1e-5);
    }

    #[test]
    fn warm_up_then_the_nadir_of_the_last_warm_up_epoch() {
        let x = param(&[0.5, 0.25]);
        let g = groups(&[&x], &[&x], &[]);
        let step = |s: &mut Stch| s.backward(&StepInput::new(&[lin(&[1.0, 0.0], &x), lin(&[0.0, 1.0], &x)], &g)).unwrap().weights;
        let mut s = Stch::new(&StchConfig { mu: 1.0, warmup_epochs: 2 }, 2).unwrap();
        assert_close(&step(&mut s), &[2.0, 4.0], 1e-6);
        s.end_of_epoch(1, &[0.9, 0.9]).unwrap();
        assert!(s.nadir().is_none());
        assert_close(&step(&mut s), &[2.0, 4.0], 1e-6);
        s.end_of_epoch(2, &[0.25, 0.25]).unwrap();
        assert_eq!(s.nadir(), Some(&[0.25, 0.25][..]));
        // Losses (0.5, 0.25), nadir (0.25, 0.25): l = (ln 2, 0), p = (2/3, 1/3),
        // w = 2 p / L = (8/3, 8/3).
        assert_close(&step(&mut s), &[8.0 / 3.0, 8.0 / 3.0], 1e-6);
        // Later epochs leave the nadir alone.
        s.end_of_epoch(3, &[0.1, 0.1]).unwrap();
        assert_eq!(s.nadir(), Some(&[0.25, 0.25][..]));
    }

    #[test]
    fn bad_settings_are_refused() {
        for (cfg, key) in [
            (StchConfig { mu: 0.0, ..Default::default() }, "strategies.stch.mu"),
            (StchConfig { mu: -1.0, ..Default::default() }, "strategies.stch.mu"),
            (StchConfig { warmup_epochs: 0, ..Default::default() }, "strategies.stch.warmup_epochs"),
        ] {
            let e = Stch::new(&cfg, 2).err().unwrap().to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
