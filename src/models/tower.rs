//! Multi-layer perceptrons: the per-task towers (Dense(ReLU) -> Dropout ->
//! BatchNorm per layer, then a logit) and plain ReLU blocks for bottoms and
//! experts.

use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, nn::ModuleT, Tensor};

use super::dropout::DropoutMasks;
use super::ModelError;

fn d_hidden() -> Vec<i64> {
    vec![512, 256, 128]
}
fn d_dropout() -> f64 {
    0.1
}
fn d_true() -> bool {
    true
}
// The seed's batch norm (TensorFlow 2.8): moving averages with decay 0.99,
// epsilon 1e-3, scale 1 and shift 0 at the start.
fn d_bn_momentum() -> f64 {
    0.01
}
fn d_bn_eps() -> f64 {
    1e-3
}

/// `[models.tower]`: the task towers of every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TowerConfig {
    /// Hidden layer widths (seed default [512, 256, 128]); empty = the
    /// logit sits directly on the backbone's output.
    #[serde(default = "d_hidden")]
    pub hidden: Vec<i64>,
    /// Dropout after each hidden layer's ReLU, active in training only (default 0.1).
    #[serde(default = "d_dropout")]
    pub dropout: f64,
    /// Batch norm after each hidden layer's dropout (default true); batch
    /// statistics in training, running statistics in evaluation.
    #[serde(default = "d_true")]
    pub batch_norm: bool,
    /// Where the dropout masks come from: "hashed" (default, a fused
    /// counter-based hash, the faster on CPU) or "libtorch" (libtorch's own
    /// dropout: the masks PyTorch would draw from the same seed).
    #[serde(default)]
    pub dropout_masks: DropoutMasks,
    /// Weight of each training batch in the batch norm's running statistics,
    /// in PyTorch's convention (running = (1 - m) running + m batch).
    /// Default 0.01: the seed's TensorFlow default (decay 0.99); PyTorch's
    /// is 0.1.
    #[serde(default = "d_bn_momentum")]
    pub batch_norm_momentum: f64,
    /// Added to the variance before the square root. Default 1e-3, the
    /// seed's TensorFlow default; PyTorch's is 1e-5. A unit that no training
    /// row activates ends with a running variance near 0, so a test row
    /// that does activate it is scaled by up to 1 / sqrt(eps): 32x here,
    /// 316x at 1e-5 (enough to wreck a task's test AUC in one run of five
    /// in `bench-perf`).
    #[serde(default = "d_bn_eps")]
    pub batch_norm_eps: f64,
}

impl Default for TowerConfig {
    fn default() -> Self {
        TowerConfig {
            hidden: d_hidden(),
            dropout: d_dropout(),
            batch_norm: true,
            dropout_masks: DropoutMasks::Hashed,
            batch_norm_momentum: d_bn_momentum(),
            batch_norm_eps: d_bn_eps(),
        }
    }
}

impl TowerConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.hidden.iter().any(|&w| w <= 0) {
            return Err(ModelError::Config {
                key: "models.tower.hidden".into(),
                message: format!("widths must be positive, got {:?}", self.hidden),
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Config {
                key: "models.tower.dropout".into(),
                message: format!("must be in [0, 1), got {}", self.dropout),
            });
        }
        if !(self.batch_norm_momentum > 0.0 && self.batch_norm_momentum <= 1.0) {
            return Err(ModelError::Config {
                key: "models.tower.batch_norm_momentum".into(),
                message: format!("must be in (0, 1], got {}", self.batch_norm_momentum),
            });
        }
        if !(self.batch_norm_eps > 0.0 && self.batch_norm_eps.is_finite()) {
            return Err(ModelError::Config {
                key: "models.tower.batch_norm_eps".into(),
                message: format!("must be positive, got {}", self.batch_norm_eps),
            });
        }
        Ok(())
    }
}

/// A stack of Dense(ReLU) -> Dropout -> BatchNorm layers, optionally ending in
/// a one-unit logit.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<(nn::Linear, Option<nn::BatchNorm>)>,
    /// The batch norms' momentum and epsilon (tch keeps its config private).
    norm_settings: (f64, f64),
    dropout: f64,
    masks: DropoutMasks,
    logit: Option<nn::Linear>,
    out_dim: i64,
}

impl Mlp {
    /// A tower: hidden layers then a logit ([B, 1] -> squeezed to [B]).
    pub fn tower(vs: &nn::Path, in_dim: i64, cfg: &TowerConfig) -> Mlp {
        let bn = cfg.batch_norm.then(|| nn::BatchNormConfig {
            momentum: cfg.batch_norm_momentum,
            eps: cfg.batch_norm_eps,
            // Scale 1, shift 0 at the start, as in PyTorch and TensorFlow
            // (tch's default draws the scale from U(0, 1)).
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        });
        let mut m = Mlp::layers(vs, in_dim, &cfg.hidden, (cfg.dropout, cfg.dropout_masks), bn);
        m.logit = Some(nn::linear(vs / "logit", m.out_dim, 1, Default::default()));
        m.out_dim = 1;
        m
    }

    /// Plain Dense(ReLU) layers (bottoms).
    pub fn block(vs: &nn::Path, in_dim: i64, hidden: &[i64]) -> Mlp {
        Mlp::layers(vs, in_dim, hidden, (0.0, DropoutMasks::default()), None)
    }

    fn layers(
        vs: &nn::Path,
        in_dim: i64,
        hidden: &[i64],
        (dropout, masks): (f64, DropoutMasks),
        batch_norm: Option<nn::BatchNormConfig>,
    ) -> Mlp {
        let mut layers = Vec::new();
        let mut d = in_dim;
        for (i, &h) in hidden.iter().enumerate() {
            let lin = nn::linear(vs / format!("l{i}"), d, h, Default::default());
            let bn = batch_norm.map(|c| nn::batch_norm1d(vs / format!("bn{i}"), h, c));
            layers.push((lin, bn));
            d = h;
        }
        let norm_settings = batch_norm.map_or((0.0, 0.0), |c| (c.momentum, c.eps));
        Mlp { layers, norm_settings, dropout, masks, logit: None, out_dim: d }
    }

    /// The variables and settings, for a pass that computes this stack
    /// by hand ([`super::fused`]).
    pub(crate) fn parts(&self) -> MlpParts<'_> {
        let (momentum, eps) = self.norm_settings;
        MlpParts {
            layers: self.layers.iter().map(|(l, bn)| (l, bn.as_ref().map(|bn| (bn, momentum, eps)))).collect(),
            dropout: self.dropout,
            masks: self.masks,
            logit: self.logit.as_ref(),
        }
    }

    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    /// [B, in] -> [B, out] (or [B] for a tower).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (lin, bn) in &self.layers {
            h = super::dropout::relu_dropout(&lin.forward(&h), self.dropout, train, self.masks);
            if let Some(bn) = bn {
                h = bn.forward_t(&h, train);
            }
        }
        match &self.logit {
            Some(l) => l.forward(&h).squeeze_dim(-1),
            None => h,
        }
    }
}

/// An [`Mlp`]'s layers (each with its batch norm, momentum and epsilon),
/// dropout and logit.
pub(crate) struct MlpParts<'a> {
    pub layers: Vec<(&'a nn::Linear, Option<(&'a nn::BatchNorm, f64, f64)>)>,
    pub dropout: f64,
    pub masks: DropoutMasks,
    pub logit: Option<&'a nn::Linear>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn close(a: &Tensor, b: &Tensor) -> bool {
        (a - b).abs().max().double_value(&[]) < 1e-5
    }

    #[test]
    fn batch_norm_settings_reach_the_layers() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg =
            TowerConfig { hidden: vec![3], dropout: 0.0, batch_norm_momentum: 0.25, batch_norm_eps: 0.5, ..Default::default() };
        let m = Mlp::tower(&vs.root(), 2, &cfg);
        let x = Tensor::from_slice(&[1.0f32, 2.0, -1.0, 0.5, 3.0, -2.0, 0.0, 1.0, 2.0, 2.0]).view([5, 2]);
        let (lin, bn) = &m.layers[0];
        let bn = bn.as_ref().expect("batch norm is on");
        let h = tch::no_grad(|| lin.forward(&x).relu());
        // Evaluation at the initial running statistics (mean 0, variance 1,
        // scale 1, shift 0): h / sqrt(1 + eps).
        let eval = tch::no_grad(|| bn.forward_t(&h, false));
        assert!(close(&eval, &(&h / 1.5f64.sqrt())), "{eval} vs {h}");
        assert!(close(bn.ws.as_ref().expect("affine"), &Tensor::ones([3], (Kind::Float, Device::Cpu))), "scale starts at 1");
        // One training batch moves the running statistics by the momentum,
        // towards the batch mean and the unbiased batch variance.
        let _ = tch::no_grad(|| bn.forward_t(&h, true));
        let mean = h.mean_dim([0i64].as_slice(), false, Kind::Float);
        let var = h.var_dim([0i64].as_slice(), true, false);
        let rm = &bn.running_mean;
        let rv = &bn.running_var;
        assert!(close(rm, &(&mean * 0.25)), "{rm} vs {mean}");
        assert!(close(rv, &(var * 0.25 + 0.75)), "{rv}");
    }
}
