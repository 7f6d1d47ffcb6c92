//! Multi-task models on one input layer. A model is a plain struct built
//! from a VarStore path, the dataset's [`FeatureSchema`] and its config
//! section; it returns per-task probabilities, declares its loss terms and
//! its parameter groups (shared / last shared / task-specific) so that the
//! loss-weighting strategies can act on any model, funnel models included.
//!
//! Variable naming contract: parameters that every loss term can reach live
//! under `shared.`, everything that belongs to one head (tower, gate, task
//! experts) under `task.{head}.`; [`ParamGroups::from_varstore`] relies on
//! it. In the funnel models the click tower is also reached by the CTCVR /
//! CTnoCVR terms (by design: pCTCVR = pCTR x pCVR); it is still that head's.
//!
//! Files: the shared parts (input.rs, tables.rs, numeric_embed.rs, tower.rs,
//! experts.rs, backbone.rs, multi_tower.rs, funnel.rs) and one file per
//! model with its paper.

pub mod backbone;
pub mod ctnocvr;
pub mod dropout;
pub mod esmm;
pub mod experts;
pub mod funnel;
pub mod fused;
pub mod input;
pub mod mmoe;
pub mod multi_tower;
pub mod numeric_embed;
pub mod ple;
pub mod shared_bottom;
pub mod tables;
#[cfg(test)]
mod tests;
pub mod tower;

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Reduction, Tensor};
use thiserror::Error;

use crate::data::{Batch, FeatureSchema};
pub use backbone::BackboneKind;
pub use experts::GateWeights;
pub use funnel::{FunnelConfig, FunnelSpec};
pub use input::{InputConfig, InputLayer};
pub use tables::TableLayout;
pub use multi_tower::MultiTower;
pub use dropout::DropoutMasks;
pub use tower::{Mlp, TowerConfig};

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("config key `{key}`: {message}")]
    Config { key: String, message: String },
}

/// One tower a backbone feeds: `key` is its variable path segment
/// (`task.{key}`), `name` the display name used in gate names.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub key: String,
    pub name: String,
}

/// The model registry: every name a grid file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    SharedBottom,
    Mmoe,
    Ple,
    Esmm,
    Ctnocvr,
}

impl ModelKind {
    pub const ALL: &'static [ModelKind] =
        &[ModelKind::SharedBottom, ModelKind::Mmoe, ModelKind::Ple, ModelKind::Esmm, ModelKind::Ctnocvr];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::SharedBottom => "shared-bottom",
            ModelKind::Mmoe => "mmoe",
            ModelKind::Ple => "ple",
            ModelKind::Esmm => "esmm",
            ModelKind::Ctnocvr => "ctnocvr",
        }
    }

    /// Display name and paper, for reports and the README table.
    pub fn paper(self) -> (&'static str, &'static str) {
        match self {
            ModelKind::SharedBottom => ("SharedBottom", "https://link.springer.com/article/10.1023/A:1007379606734"),
            ModelKind::Mmoe => ("MMOE", "https://dl.acm.org/doi/10.1145/3219819.3220007"),
            ModelKind::Ple => ("PLE", "https://dl.acm.org/doi/10.1145/3383313.3412236"),
            ModelKind::Esmm => ("ESMM", "https://arxiv.org/abs/1804.07931"),
            ModelKind::Ctnocvr => ("CTnoCVR", "https://openreview.net/forum?id=57lEgcP51LG"),
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }

    /// The backbone its towers sit on (a funnel model's from its section).
    pub fn backbone(self, cfg: &ModelsConfig) -> BackboneKind {
        match self {
            ModelKind::SharedBottom => BackboneKind::SharedBottom,
            ModelKind::Mmoe => BackboneKind::Mmoe,
            ModelKind::Ple => BackboneKind::Ple,
            ModelKind::Esmm => cfg.esmm.backbone,
            ModelKind::Ctnocvr => cfg.ctnocvr.backbone,
        }
    }

    /// The `[models.*]` sections a model of this kind reads besides
    /// `input`, `tower` and `funnel` (its own and its backbone's).
    pub fn sections(self, cfg: &ModelsConfig) -> Vec<&'static str> {
        let backbone = |b: BackboneKind| match b {
            BackboneKind::Embeddings => None,
            BackboneKind::SharedBottom => Some("shared-bottom"),
            BackboneKind::Mmoe => Some("mmoe"),
            BackboneKind::Ple | BackboneKind::Cgc => Some("ple"),
        };
        let mut out = vec![self.name()];
        let extra = match self {
            ModelKind::Esmm => backbone(cfg.esmm.backbone),
            ModelKind::Ctnocvr => backbone(cfg.ctnocvr.backbone),
            _ => None,
        };
        out.extend(extra);
        out
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
    /// The funnel's click and conversion tasks (required by esmm and ctnocvr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnel: Option<FunnelConfig>,
    #[serde(default, rename = "shared-bottom")]
    pub shared_bottom: shared_bottom::SharedBottomConfig,
    #[serde(default)]
    pub mmoe: mmoe::MmoeConfig,
    #[serde(default)]
    pub ple: ple::PleConfig,
    #[serde(default)]
    pub esmm: esmm::EsmmConfig,
    #[serde(default)]
    pub ctnocvr: ctnocvr::CtnocvrConfig,
}

impl ModelsConfig {
    /// Everything under `[models]` that defines a model of `kind`, as JSON
    /// (for config hashes and the recorded params): its own section's keys
    /// at the top level, plus `input`, `tower`, `funnel` (when set) and the
    /// section of a funnel model's backbone under its name.
    pub fn canonical(&self, kind: ModelKind) -> Result<serde_json::Value, serde_json::Error> {
        let all = serde_json::to_value(self)?;
        let mut out = match all.get(kind.name()) {
            Some(serde_json::Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        for key in ["input", "tower", "funnel"] {
            if let Some(v) = all.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        for section in kind.sections(self).into_iter().skip(1) {
            if let Some(v) = all.get(section) {
                out.insert(section.into(), v.clone());
            }
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// What a forward pass yields.
#[derive(Debug)]
pub struct ModelOutput {
    /// Probability per dataset task, [B, T].
    pub probs: Tensor,
    /// Per-head logits [B] the loss terms are computed from. Kept apart, not
    /// stacked: a stacked tensor would make every term's backward pass run
    /// through every head (PCGrad and GradNorm take one pass per term).
    pub heads: Vec<Tensor>,
    /// Further named predictions [B] (e.g. a fusion score).
    pub extra: Vec<(String, Tensor)>,
    /// Gate weights of mixture-of-experts backbones, [B, n_experts] each.
    pub gates: Vec<GateWeights>,
    /// The shared representation every head reads (for representation-level
    /// strategies); `None` where the model does not expose one.
    pub representation: Option<Tensor>,
}

/// The parameters a strategy needs to tell apart.
#[derive(Debug)]
pub struct ParamGroups {
    /// Parameters every loss term can reach (named `shared.*`).
    pub shared: Vec<Tensor>,
    /// The last shared layer (GradNorm's W, PCGrad's narrow scope).
    pub last_shared: Vec<Tensor>,
    /// Everything that is not shared: the parts of one head (`task.*`).
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
    /// The funnel this model is scored on (`[models.funnel]`), if any.
    fn funnel(&self) -> Option<&FunnelSpec> {
        None
    }
    /// The model's fused training pass ([`fused`]), where it has one.
    fn fused(&self) -> Option<&fused::FusedMmoe> {
        None
    }
}

/// Mean binary cross-entropy of each logit column against the same label column.
pub fn bce_terms(heads: &[Tensor], labels: &Tensor) -> Vec<Tensor> {
    heads
        .iter()
        .enumerate()
        .map(|(i, h)| h.binary_cross_entropy_with_logits::<Tensor>(&labels.select(1, i as i64), None, None, Reduction::Mean))
        .collect()
}

/// Number of trainable scalars in a VarStore.
pub fn param_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

/// The names of the loss terms a model of `kind` declares on a dataset
/// with `tasks`, after the checks of its settings that need no data (the
/// ones its constructor makes): the grid runs this per cell when it is
/// read, and [`build`] before building. A funnel model's terms are its
/// funnel terms (ESMM: ctr, ctcvr; CTnoCVR: ctr, cvr, ctnocvr) and then
/// the other tasks.
pub fn loss_names(kind: ModelKind, tasks: &[String], cfg: &ModelsConfig) -> Result<Vec<String>, ModelError> {
    if tasks.is_empty() {
        return Err(ModelError::Config { key: "data.tasks".into(), message: "the dataset has no tasks".into() });
    }
    cfg.input.validate()?;
    cfg.tower.validate()?;
    match kind.backbone(cfg) {
        BackboneKind::Embeddings => {}
        BackboneKind::SharedBottom => cfg.shared_bottom.validate()?,
        BackboneKind::Mmoe => cfg.mmoe.validate()?,
        BackboneKind::Ple | BackboneKind::Cgc => cfg.ple.validate()?,
    }
    match kind {
        ModelKind::Esmm => esmm::Esmm::layout(tasks, cfg).map(|(_, names)| names),
        ModelKind::Ctnocvr => ctnocvr::Ctnocvr::layout(tasks, cfg).map(|(_, names)| names),
        ModelKind::SharedBottom | ModelKind::Mmoe | ModelKind::Ple => {
            if let Some(f) = &cfg.funnel {
                f.resolve(tasks, None, None)?;
            }
            Ok(tasks.to_vec())
        }
    }
}

/// Builds a model of `kind` under `vs.root()`.
pub fn build(
    kind: ModelKind,
    vs: &nn::VarStore,
    schema: &FeatureSchema,
    cfg: &ModelsConfig,
) -> Result<Box<dyn MultiTaskModel>, ModelError> {
    loss_names(kind, &schema.tasks, cfg)?;
    Ok(match kind {
        ModelKind::SharedBottom => Box::new(MultiTower::new(vs, schema, cfg, BackboneKind::SharedBottom)?),
        ModelKind::Mmoe => Box::new(MultiTower::new(vs, schema, cfg, BackboneKind::Mmoe)?),
        ModelKind::Ple => Box::new(MultiTower::new(vs, schema, cfg, BackboneKind::Ple)?),
        ModelKind::Esmm => Box::new(esmm::Esmm::new(vs, schema, cfg)?),
        ModelKind::Ctnocvr => Box::new(ctnocvr::Ctnocvr::new(vs, schema, cfg)?),
    })
}

/// Layer widths must be a non-empty list of positive numbers.
pub(crate) fn check_widths(key: &str, widths: &[i64]) -> Result<(), ModelError> {
    if widths.is_empty() || widths.iter().any(|&w| w <= 0) {
        return Err(ModelError::Config { key: key.into(), message: format!("needs at least one positive width, got {widths:?}") });
    }
    Ok(())
}

/// `sigmoid` of logits as probabilities, kept in f32.
pub fn probs_of(logits: &Tensor) -> Tensor {
    logits.sigmoid().to_kind(Kind::Float)
}
