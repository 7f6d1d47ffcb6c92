//! The plain multi-task model: input layer -> backbone -> one tower per task,
//! one BCE loss term per task. SharedBottom, MMOE and PLE are this model on
//! their backbones (see shared_bottom.rs, mmoe.rs and ple.rs for the papers
//! and settings), so the three share every line that is not their own.

use tch::{nn, Tensor};

use super::backbone::{Backbone, BackboneKind};
use super::experts::GateWeights;
use super::funnel::FunnelSpec;
use super::fused::FusedMmoe;
use super::{bce_terms, probs_of, Head, InputLayer, Mlp, ModelError, ModelOutput, ModelsConfig, MultiTaskModel, ParamGroups};
use crate::data::{Batch, FeatureSchema};

/// Input layer -> backbone -> one tower per head: the front end every model
/// shares. Head `i < T` is task `i` (`task.{i}`); models may add heads.
#[derive(Debug)]
pub struct TowerStack {
    input: InputLayer,
    backbone: Backbone,
    towers: Vec<Mlp>,
}

impl TowerStack {
    /// Builds the input under `shared.input`, the backbone, and head `k`'s
    /// tower under `task.{key}.tower`, for the dataset's tasks followed by `extra_heads`.
    pub fn new(
        root: &nn::Path,
        schema: &FeatureSchema,
        cfg: &ModelsConfig,
        kind: BackboneKind,
        extra_heads: &[Head],
    ) -> Result<Self, ModelError> {
        cfg.tower.validate()?;
        let input = InputLayer::new(&(root / "shared" / "input"), schema, &cfg.input)?;
        let mut heads: Vec<Head> =
            schema.tasks.iter().enumerate().map(|(i, t)| Head { key: i.to_string(), name: t.clone() }).collect();
        heads.extend(extra_heads.iter().cloned());
        let backbone = Backbone::new(root, kind, input.out_dim(), &heads, cfg)?;
        let towers = heads
            .iter()
            .map(|h| Mlp::tower(&(root / "task" / h.key.as_str() / "tower"), backbone.out_dim(), &cfg.tower))
            .collect();
        Ok(TowerStack { input, backbone, towers })
    }

    pub(crate) fn input(&self) -> &InputLayer {
        &self.input
    }

    pub(crate) fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    pub(crate) fn towers(&self) -> &[Mlp] {
        &self.towers
    }

    /// The backbone's last shared layer (variable-name prefixes).
    pub fn last_shared(&self) -> Vec<String> {
        self.backbone.last_shared()
    }

    /// One logit [B] per head, the backbone's gate weights and its shared representation.
    pub fn forward_t(&self, batch: &Batch, train: bool) -> (Vec<Tensor>, Vec<GateWeights>, Tensor) {
        let x = self.input.forward(batch);
        let b = self.backbone.forward_t(&x, train);
        let logits = self.towers.iter().zip(&b.heads).map(|(t, h)| t.forward_t(h, train)).collect();
        (logits, b.gates, b.representation)
    }
}

/// Input -> backbone -> per-task towers, one BCE term per task.
#[derive(Debug)]
pub struct MultiTower {
    stack: TowerStack,
    tasks: Vec<String>,
    groups: ParamGroups,
    funnel: Option<FunnelSpec>,
    fused: Option<FusedMmoe>,
}

impl MultiTower {
    /// Builds the model under `vs.root()` on the backbone `kind`.
    pub fn new(vs: &nn::VarStore, schema: &FeatureSchema, cfg: &ModelsConfig, kind: BackboneKind) -> Result<Self, ModelError> {
        let funnel = cfg.funnel.as_ref().map(|f| f.resolve(&schema.tasks, None, None)).transpose()?;
        let stack = TowerStack::new(&vs.root(), schema, cfg, kind, &[])?;
        let groups = ParamGroups::from_varstore(vs, &stack.last_shared());
        let fused = FusedMmoe::new(&stack, vs);
        Ok(MultiTower { stack, tasks: schema.tasks.clone(), groups, funnel, fused })
    }
}

impl MultiTaskModel for MultiTower {
    fn forward_t(&self, batch: &Batch, train: bool) -> ModelOutput {
        let (cols, gates, rep) = self.stack.forward_t(batch, train);
        ModelOutput { probs: probs_of(&Tensor::stack(&cols, 1)), heads: cols, extra: vec![], gates, representation: Some(rep) }
    }

    fn loss_names(&self) -> Vec<String> {
        self.tasks.clone()
    }

    fn loss_terms(&self, out: &ModelOutput, batch: &Batch) -> Vec<Tensor> {
        bce_terms(&out.heads, &batch.labels)
    }

    fn param_groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn funnel(&self) -> Option<&FunnelSpec> {
        self.funnel.as_ref()
    }

    fn fused(&self) -> Option<&FusedMmoe> {
        self.fused.as_ref()
    }
}
