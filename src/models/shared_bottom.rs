//! SharedBottom (Caruana, "Multitask Learning", Machine Learning 1997,
//! <https://link.springer.com/article/10.1023/A:1007379606734>): one shared
//! MLP over the input vector, then one tower per task. With a single task it
//! is the single-task baseline. This file holds its settings and the shared
//! bottom network; the model itself is [`super::multi_tower::MultiTower`] on
//! this backbone (funnel models can use it as their backbone too).

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::{Mlp, ModelError};

fn d_bottom() -> Vec<i64> {
    vec![512]
}

/// `[models.shared-bottom]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedBottomConfig {
    /// Widths of the shared bottom MLP (Dense(ReLU) layers, no dropout or
    /// batch norm). Default [512], the width of one MMOE expert in the seed.
    #[serde(default = "d_bottom")]
    pub bottom: Vec<i64>,
}

impl Default for SharedBottomConfig {
    fn default() -> Self {
        SharedBottomConfig { bottom: d_bottom() }
    }
}

impl SharedBottomConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        super::check_widths("models.shared-bottom.bottom", &self.bottom)
    }
}

/// The shared bottom: `shared.bottom.l{i}`.
#[derive(Debug)]
pub struct SharedBottomNet {
    mlp: Mlp,
    layers: usize,
}

impl SharedBottomNet {
    /// `shared` is the `shared` path of the model's VarStore.
    pub fn new(shared: &nn::Path, in_dim: i64, cfg: &SharedBottomConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        let mlp = Mlp::block(&(shared / "bottom"), in_dim, &cfg.bottom);
        Ok(SharedBottomNet { mlp, layers: cfg.bottom.len() })
    }

    pub fn out_dim(&self) -> i64 {
        self.mlp.out_dim()
    }

    /// The last bottom layer: GradNorm's W, PCGrad's narrow scope.
    pub fn last_shared(&self) -> Vec<String> {
        vec![format!("shared.bottom.l{}.", self.layers - 1)]
    }

    /// [B, in] -> [B, out], the same representation for every head.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.mlp.forward_t(x, train)
    }
}
