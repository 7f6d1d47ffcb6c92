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
}

impl Default for TowerConfig {
    fn default() -> Self {
        TowerConfig { hidden: d_hidden(), dropout: d_dropout(), batch_norm: true, dropout_masks: DropoutMasks::Hashed }
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
        Ok(())
    }
}

/// A stack of Dense(ReLU) -> Dropout -> BatchNorm layers, optionally ending in
/// a one-unit logit.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<(nn::Linear, Option<nn::BatchNorm>)>,
    dropout: f64,
    masks: DropoutMasks,
    logit: Option<nn::Linear>,
    out_dim: i64,
}

impl Mlp {
    /// A tower: hidden layers then a logit ([B, 1] -> squeezed to [B]).
    pub fn tower(vs: &nn::Path, in_dim: i64, cfg: &TowerConfig) -> Mlp {
        let mut m = Mlp::block(vs, in_dim, &cfg.hidden, cfg.dropout, cfg.batch_norm);
        m.masks = cfg.dropout_masks;
        m.logit = Some(nn::linear(vs / "logit", m.out_dim, 1, Default::default()));
        m.out_dim = 1;
        m
    }

    /// Hidden layers only (bottoms, experts).
    pub fn block(vs: &nn::Path, in_dim: i64, hidden: &[i64], dropout: f64, batch_norm: bool) -> Mlp {
        let mut layers = Vec::new();
        let mut d = in_dim;
        for (i, &h) in hidden.iter().enumerate() {
            let lin = nn::linear(vs / format!("l{i}"), d, h, Default::default());
            let bn = batch_norm.then(|| nn::batch_norm1d(vs / format!("bn{i}"), h, Default::default()));
            layers.push((lin, bn));
            d = h;
        }
        Mlp { layers, dropout, masks: DropoutMasks::default(), logit: None, out_dim: d }
    }

    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    /// [B, in] -> [B, out] (or [B] for a tower).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (lin, bn) in &self.layers {
            h = lin.forward(&h).relu();
            if self.dropout > 0.0 {
                h = super::dropout::dropout(&h, self.dropout, train, self.masks);
            }
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
