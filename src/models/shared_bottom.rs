//! SharedBottom (Caruana, "Multitask Learning", Machine Learning 1997,
//! <https://link.springer.com/article/10.1023/A:1007379606734>): one shared
//! MLP over the input vector, then one tower per task. With a single task it
//! is the single-task baseline.

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::{bce_terms, probs_of, InputLayer, Mlp, ModelError, ModelOutput, ModelsConfig, MultiTaskModel, ParamGroups};
use crate::data::{Batch, FeatureSchema};

fn d_bottom() -> Vec<i64> {
    vec![512]
}

/// `[models.shared-bottom]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedBottomConfig {
    /// Widths of the shared bottom MLP (ReLU layers).
    #[serde(default = "d_bottom")]
    pub bottom: Vec<i64>,
}

impl Default for SharedBottomConfig {
    fn default() -> Self {
        SharedBottomConfig { bottom: d_bottom() }
    }
}

#[derive(Debug)]
pub struct SharedBottom {
    input: InputLayer,
    bottom: Mlp,
    towers: Vec<Mlp>,
    tasks: Vec<String>,
    groups: ParamGroups,
}

impl SharedBottom {
    pub fn new(vs: &nn::VarStore, schema: &FeatureSchema, cfg: &ModelsConfig) -> Result<Self, ModelError> {
        let c = &cfg.shared_bottom;
        if c.bottom.is_empty() || c.bottom.iter().any(|&w| w <= 0) {
            return Err(ModelError::Config {
                key: "models.shared-bottom.bottom".into(),
                message: format!("needs at least one positive width, got {:?}", c.bottom),
            });
        }
        let root = vs.root();
        let shared = &root / "shared";
        let input = InputLayer::new(&(&shared / "input"), schema, &cfg.input)?;
        let bottom = Mlp::block(&(&shared / "bottom"), input.out_dim(), &c.bottom, 0.0, false);
        let towers = schema
            .tasks
            .iter()
            .enumerate()
            .map(|(i, _)| Mlp::tower(&(&root / "task" / i), bottom.out_dim(), &cfg.tower))
            .collect();
        let last = vec![format!("shared.bottom.l{}.", c.bottom.len() - 1)];
        let groups = ParamGroups::from_varstore(vs, &last);
        Ok(SharedBottom { input, bottom, towers, tasks: schema.tasks.clone(), groups })
    }
}

impl MultiTaskModel for SharedBottom {
    fn forward_t(&self, batch: &Batch, train: bool) -> ModelOutput {
        let x = self.input.forward(batch);
        let h = self.bottom.forward_t(&x, train);
        let logits = Tensor::stack(&self.towers.iter().map(|t| t.forward_t(&h, train)).collect::<Vec<_>>(), 1);
        ModelOutput { probs: probs_of(&logits), logits, extra: vec![] }
    }

    fn loss_names(&self) -> Vec<String> {
        self.tasks.clone()
    }

    fn loss_terms(&self, out: &ModelOutput, batch: &Batch) -> Vec<Tensor> {
        bce_terms(&out.logits, &batch.labels)
    }

    fn param_groups(&self) -> &ParamGroups {
        &self.groups
    }
}
