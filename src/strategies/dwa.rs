//! Dynamic Weight Average (Liu, Johns and Davison, "End-to-End Multi-Task
//! Learning with Attention", CVPR 2019, <https://arxiv.org/abs/1803.10704>;
//! reference code <https://github.com/lorenmt/mtan>).
//!
//! The weights of epoch k come from how fast each term's loss fell over the
//! two epochs before it:
//!
//!   r_t = Lbar_t(k-1) / Lbar_t(k-2),   w_t(k) = T exp(r_t / temp) / sum_j exp(r_j / temp)
//!
//! with Lbar the epoch-mean training loss of each term (what the training
//! loop reports through [`Strategy::end_of_epoch`]) and temp the temperature
//! (paper: 2). The weights sum to T, and are 1 in the first two epochs,
//! before two epoch means exist. Within an epoch they are fixed, so a step
//! costs what equal weighting costs.

use serde::{Deserialize, Serialize};

use super::equal::weighted_sum;
use super::{StepInput, StepReport, Strategy, StrategyError};

fn d_temperature() -> f64 {
    2.0
}

/// `[strategies.dwa]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DwaConfig {
    /// Softmax temperature (paper: 2); larger is closer to equal weights.
    #[serde(default = "d_temperature")]
    pub temperature: f64,
}

impl Default for DwaConfig {
    fn default() -> Self {
        DwaConfig { temperature: d_temperature() }
    }
}

impl DwaConfig {
    /// Range checks; the error names the key (without `strategies.dwa.`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(("temperature", format!("must be a positive number, got {}", self.temperature)));
        }
        Ok(())
    }
}

/// DWA's weights from the epoch means of the two epochs before: `older`
/// (k-2) and `newer` (k-1). They sum to the number of terms.
pub fn weights(older: &[f64], newer: &[f64], temperature: f64) -> Vec<f64> {
    let r: Vec<f64> = newer.iter().zip(older).map(|(n, o)| n / o / temperature).collect();
    super::scaled_softmax(&r, r.len() as f64)
}

pub struct Dwa {
    temperature: f64,
    weights: Vec<f64>,
    /// The epoch means of the last epoch seen, once one has ended.
    last: Option<Vec<f64>>,
}

impl Dwa {
    pub fn new(cfg: &DwaConfig, n_terms: usize) -> Result<Self, StrategyError> {
        cfg.validate().map_err(|(k, m)| StrategyError::config("dwa", k, m))?;
        Ok(Dwa { temperature: cfg.temperature, weights: vec![1.0; n_terms], last: None })
    }

    /// The weights the next steps use.
    pub fn current(&self) -> &[f64] {
        &self.weights
    }
}

impl Strategy for Dwa {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        super::check_terms("dwa", input.losses.len(), self.weights.len())?;
        weighted_sum(input.losses, &self.weights).f_backward()?;
        Ok(StepReport { weights: self.weights.clone() })
    }

    fn end_of_epoch(&mut self, epoch: usize, mean_losses: &[f64]) -> Result<(), StrategyError> {
        super::check_terms("dwa", mean_losses.len(), self.weights.len())?;
        if let Some((t, v)) = mean_losses.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
            return Err(StrategyError::Step {
                strategy: "dwa",
                message: format!("epoch {epoch}: loss term {t} has mean training loss {v}; DWA needs positive epoch means"),
            });
        }
        if let Some(older) = self.last.replace(mean_losses.to_vec()) {
            self.weights = weights(&older, mean_losses, self.temperature);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn three_epochs_by_hand() {
        // Two terms, temperature 2. Epoch means (0.8, 0.6), (0.6, 0.5), (0.3, 0.45).
        // Epochs 1 and 2 train with weights 1.
        // Epoch 3: r = (0.6/0.8, 0.5/0.6) = (0.75, 5/6); w_1 = 2 / (1 + exp((5/6 - 0.75) / 2))
        //   = 2 / (1 + exp(1/24)) = 0.9791697..., w_2 = 2 - w_1.
        // Epoch 4: r = (0.5, 0.9); w_1 = 2 / (1 + exp(0.2)) = 0.9003320..., w_2 = 2 - w_1.
        let mut d = Dwa::new(&DwaConfig::default(), 2).unwrap();
        assert_eq!(d.current(), &[1.0, 1.0]);
        d.end_of_epoch(1, &[0.8, 0.6]).unwrap();
        assert_eq!(d.current(), &[1.0, 1.0], "epoch 2 still has weights 1");
        d.end_of_epoch(2, &[0.6, 0.5]).unwrap();
        assert_close(d.current(), &[0.979_169_680_225_270_7, 1.020_830_319_774_729_3], 1e-12);
        d.end_of_epoch(3, &[0.3, 0.45]).unwrap();
        assert_close(d.current(), &[0.900_332_005_375_044_3, 1.099_667_994_624_955_7], 1e-12);
    }

    #[test]
    fn three_terms_sum_to_three_and_favour_the_slow_term() {
        // r = (1, 0.5, 0.25) / 2: softmax of (0.5, 0.25, 0.125), times 3.
        let w = weights(&[1.0, 2.0, 4.0], &[1.0, 1.0, 1.0], 2.0);
        let e = [0.5f64.exp(), 0.25f64.exp(), 0.125f64.exp()];
        let s: f64 = e.iter().sum();
        assert_close(&w, &[3.0 * e[0] / s, 3.0 * e[1] / s, 3.0 * e[2] / s], 1e-12);
        assert!((w.iter().sum::<f64>() - 3.0).abs() < 1e-12);
        // A huge temperature tends to equal weights; a tiny one to all on the slowest term.
        assert_close(&weights(&[1.0, 2.0], &[1.0, 1.0], 1e9), &[1.0, 1.0], 1e-8);
        assert_close(&weights(&[1.0, 2.0], &[1.0, 1.0], 1e-3), &[2.0, 0.0], 1e-12);
    }

    #[test]
    fn the_step_is_the_weighted_sum() {
        let x = param(&[1.0, -1.0]);
        let mut d = Dwa::new(&DwaConfig::default(), 2).unwrap();
        d.end_of_epoch(1, &[1.0, 1.0]).unwrap();
        d.end_of_epoch(2, &[0.5, 1.0]).unwrap();
        let w = d.current().to_vec();
        let losses = [lin(&[1.0, 0.0], &x), lin(&[0.0, 3.0], &x)];
        let g = groups(&[&x], &[&x], &[]);
        let r = d.backward(&StepInput::new(&losses, &g)).unwrap();
        assert_eq!(r.weights, w);
        assert_close(&grad_vec(&x), &[w[0], 3.0 * w[1]], 1e-6);
    }

    #[test]
    fn bad_settings_and_epoch_means_are_refused() {
        for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Dwa::new(&DwaConfig { temperature: t }, 2).err().unwrap().to_string();
            assert!(e.contains("strategies.dwa.temperature") && e.contains("positive"), "{e}");
        }
        let mut d = Dwa::new(&DwaConfig::default(), 2).unwrap();
        assert!(d.end_of_epoch(1, &[1.0]).is_err());
        let e = d.end_of_epoch(1, &[1.0, 0.0]).unwrap_err().to_string();
        assert!(e.contains("epoch 1") && e.contains("term 1"), "{e}");
    }
}
