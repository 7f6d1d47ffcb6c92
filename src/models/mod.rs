//! Multi-task models on one input layer. A model is a plain struct built
//! from a VarStore path, the dataset's [`FeatureSchema`] and its config
//! section; it returns per-task probabilities, declares its loss terms and
//! its parameter groups (shared / last shared / task-specific) so that the
//! loss-weighting strategies can act on any model, funnel models included.
//!
//! Variable naming contract: shared parameters live under `shared.`, task
//! towers under `task.`; [`ParamGroups::from_varstore`] relies on it.

pub mod input;
pub mod shared_bottom;
pub mod tower;

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Reduction, Tensor};
use thiserror::Error;

use crate::data::{Batch, FeatureSchema};
pub use input::{InputConfig, InputLayer};
pub use tower::{Mlp, TowerConfig};

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("config key `{key}`: {message}")]
    Config { key: String, message: String },
}

/// The model registry: every name a grid file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    SharedBottom,
}

impl ModelKind {
    pub const ALL: &'static [ModelKind] = &[ModelKind::SharedBottom];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::SharedBottom => "shared-bottom",
        }
    }

    /// Display name and paper, for reports and the README table.
    pub fn paper(self) -> (&'static str, &'static str) {
        match self {
            ModelKind::SharedBottom => ("SharedBottom", "https://link.springer.com/article/10.1023/A:1007379606734"),
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }
}

/// `[models.*]`: the shared input and tower settings and one section per model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    #[serde(default)]
    pub input: InputConfig,
    #[serde(default)]
    pub tower: TowerConfig,
    #[serde(default, rename = "shared-bottom")]
    pub shared_bottom: shared_bottom::SharedBottomConfig,
}

/// What a forward pass yields.
#[derive(Debug)]
pub struct ModelOutput {
    /// Probability per dataset task, [B, T].
    pub probs: Tensor,
    /// Per-head logits the loss terms are computed from, [B, H].
    pub logits: Tensor,
    /// Further named predictions [B] (e.g. a fusion score).
    pub extra: Vec<(String, Tensor)>,
}

/// The parameters a strategy needs to tell apart.
#[derive(Debug)]
pub struct ParamGroups {
    /// Parameters every task's loss reaches.
    pub shared: Vec<Tensor>,
    /// The last shared layer (GradNorm's W, PCGrad's narrow scope).
    pub last_shared: Vec<Tensor>,
    /// Everything that is not shared.
    pub task_specific: Vec<Tensor>,
}

impl ParamGroups {
    /// Partitions a VarStore by the naming contract, in name order.
    pub fn from_varstore(vs: &nn::VarStore, last_shared_prefixes: &[String]) -> ParamGroups {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut g = ParamGroups { shared: vec![], last_shared: vec![], task_specific: vec![] };
        for (name, t) in vars {
            if name.starts_with("shared.") {
                if last_shared_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                    g.last_shared.push(t.shallow_clone());
                }
                g.shared.push(t);
            } else {
                g.task_specific.push(t);
            }
        }
        g
    }
}

/// The contract every model fulfils.
pub trait MultiTaskModel {
    fn forward_t(&self, batch: &Batch, train: bool) -> ModelOutput;
    /// Names of the loss terms, in the order [`MultiTaskModel::loss_terms`] returns them.
    fn loss_names(&self) -> Vec<String>;
    /// The loss terms of a batch, each a scalar.
    fn loss_terms(&self, out: &ModelOutput, batch: &Batch) -> Vec<Tensor>;
    fn param_groups(&self) -> &ParamGroups;
}

/// Mean binary cross-entropy of each logit column against the same label column.
pub fn bce_terms(logits: &Tensor, labels: &Tensor) -> Vec<Tensor> {
    let t = logits.size()[1];
    (0..t)
        .map(|i| logits.select(1, i).binary_cross_entropy_with_logits::<Tensor>(&labels.select(1, i), None, None, Reduction::Mean))
        .collect()
}

/// Number of trainable scalars in a VarStore.
pub fn param_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

/// Builds a model of `kind` under `vs.root()`.
pub fn build(
    kind: ModelKind,
    vs: &nn::VarStore,
    schema: &FeatureSchema,
    cfg: &ModelsConfig,
) -> Result<Box<dyn MultiTaskModel>, ModelError> {
    if schema.tasks.is_empty() {
        return Err(ModelError::Config { key: "data.tasks".into(), message: "the dataset has no tasks".into() });
    }
    Ok(match kind {
        ModelKind::SharedBottom => Box::new(shared_bottom::SharedBottom::new(vs, schema, cfg)?),
    })
}

/// `sigmoid` of logits as probabilities, kept in f32.
pub fn probs_of(logits: &Tensor) -> Tensor {
    logits.sigmoid().to_kind(Kind::Float)
}
