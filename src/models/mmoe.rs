//! MMOE (Ma et al., "Modeling Task Relationships in Multi-task Learning with
//! Multi-gate Mixture-of-Experts", KDD 2018,
//! <https://dl.acm.org/doi/10.1145/3219819.3220007>): shared experts, and
//! one softmax gate per task (no bias) that mixes them into that task's
//! tower input. This file holds its settings and the expert/gate network;
//! the model is [`super::multi_tower::MultiTower`] on this backbone.
//!
//! Variables: experts under `shared.mmoe.experts` (every task reaches them),
//! the gate of head `k` under `task.{k}.gate` (only that head reaches it).

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::experts::{labels, mix_stacked, ExpertSet, Gate, GateWeights};
use super::{Head, ModelError};

fn d_experts() -> i64 {
    3
}
fn d_expert_hidden() -> Vec<i64> {
    vec![512]
}

/// `[models.mmoe]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmoeConfig {
    /// Number of shared experts (seed default 3).
    #[serde(default = "d_experts")]
    pub experts: i64,
    /// Widths of each expert's Dense(ReLU) layers (seed default [512]).
    #[serde(default = "d_expert_hidden")]
    pub expert_hidden: Vec<i64>,
}

impl Default for MmoeConfig {
    fn default() -> Self {
        MmoeConfig { experts: d_experts(), expert_hidden: d_expert_hidden() }
    }
}

impl MmoeConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.experts < 1 {
            return Err(ModelError::Config {
                key: "models.mmoe.experts".into(),
                message: format!("needs at least 1 expert, got {}", self.experts),
            });
        }
        super::check_widths("models.mmoe.expert_hidden", &self.expert_hidden)
    }
}

/// Shared experts and one gate per head.
#[derive(Debug)]
pub struct MmoeNet {
    experts: ExpertSet,
    gates: Vec<Gate>,
}

impl MmoeNet {
    /// `root` is the model's VarStore root; one gate per head.
    pub fn new(root: &nn::Path, in_dim: i64, heads: &[Head], cfg: &MmoeConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        let experts = ExpertSet::new(&(root / "shared" / "mmoe" / "experts"), cfg.experts, in_dim, &cfg.expert_hidden);
        let gates = heads
            .iter()
            .map(|h| {
                Gate::new(&(root / "task" / h.key.as_str() / "gate"), in_dim, format!("mmoe/{}", h.name), labels("", cfg.experts))
            })
            .collect();
        Ok(MmoeNet { experts, gates })
    }

    pub fn out_dim(&self) -> i64 {
        self.experts.out_dim()
    }

    /// The experts' last layers.
    pub fn last_shared(&self) -> Vec<String> {
        vec![format!("shared.mmoe.experts.l{}.", self.experts.last_layer())]
    }

    /// [B, in] -> one [B, out] per head, the gate weights, and the stacked
    /// expert outputs [B, experts, out] (the shared representation).
    pub fn forward(&self, x: &Tensor) -> (Vec<Tensor>, Vec<GateWeights>, Tensor) {
        let e = self.experts.forward(x);
        // Every gate in one product and one softmax, [B, heads, n], and
        // every gate's mix in one product: [B, heads, out].
        let w = Gate::forward_all(&self.gates, x);
        let heads = mix_stacked(&w, &e).unbind(1);
        let gates = self
            .gates
            .iter()
            .zip(w.unbind(1))
            .map(|(g, w)| GateWeights { name: g.name.clone(), labels: g.labels.clone(), weights: w })
            .collect();
        (heads, gates, e)
    }
}
