//! ESMM (Ma et al., "Entire Space Multi-Task Model: An Effective Approach
//! for Estimating Post-Click Conversion Rate", SIGIR 2018,
//! <https://arxiv.org/abs/1804.07931>): a CTR tower and a CVR tower on shared
//! embeddings, pCTCVR = pCTR x pCVR, and two loss terms over all rows,
//! BCE(y, pCTR) and BCE(y z, pCTCVR); pCVR is never supervised directly.
//! Other tasks of the dataset get their own towers and BCE terms.
//!
//! Outputs: the click column is pCTR, the conversion column pCTCVR (the
//! entire-space conversion probability, what the conversion label measures
//! over all rows), and the extra column `pcvr`.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::backbone::BackboneKind;
use super::funnel::{bce_masked, logit_of_product, other_tasks, required, term_names, FunnelSpec};
use super::multi_tower::TowerStack;
use super::{probs_of, ModelError, ModelOutput, ModelsConfig, MultiTaskModel, ParamGroups};
use crate::data::{Batch, FeatureSchema};

fn d_backbone() -> BackboneKind {
    BackboneKind::Embeddings
}

/// `[models.esmm]` (the tasks come from `[models.funnel]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsmmConfig {
    /// What the towers sit on. Default "embeddings", the paper's form;
    /// "shared-bottom", "mmoe", "ple" or "cgc" use those sections' settings.
    #[serde(default = "d_backbone")]
    pub backbone: BackboneKind,
}

impl Default for EsmmConfig {
    fn default() -> Self {
        EsmmConfig { backbone: d_backbone() }
    }
}

#[derive(Debug)]
pub struct Esmm {
    stack: TowerStack,
    funnel: FunnelSpec,
    others: Vec<usize>,
    n_tasks: usize,
    names: Vec<String>,
    groups: ParamGroups,
}

impl Esmm {
    pub fn new(vs: &tch::nn::VarStore, schema: &FeatureSchema, cfg: &ModelsConfig) -> Result<Self, ModelError> {
        let (funnel, names) = Esmm::layout(&schema.tasks, cfg)?;
        let others = other_tasks(&schema.tasks, &funnel);
        let stack = TowerStack::new(&vs.root(), schema, cfg, cfg.esmm.backbone, &[])?;
        let groups = ParamGroups::from_varstore(vs, &stack.last_shared());
        Ok(Esmm { stack, funnel, others, n_tasks: schema.tasks.len(), names, groups })
    }

    /// The funnel on `tasks` and the loss-term names [ctr, ctcvr, other tasks...].
    pub fn layout(tasks: &[String], cfg: &ModelsConfig) -> Result<(FunnelSpec, Vec<String>), ModelError> {
        let funnel = required(&cfg.funnel, tasks, "esmm", Some("pcvr"), None)?;
        let names = term_names("esmm", &["ctr", "ctcvr"], tasks, &funnel)?;
        Ok((funnel, names))
    }

    /// Targets of the loss heads [ctr, ctcvr, others...] from the labels [B, T].
    pub fn targets(&self, labels: &Tensor) -> Vec<Tensor> {
        let y = labels.select(1, self.funnel.click as i64);
        let z = labels.select(1, self.funnel.conversion as i64);
        let mut t = vec![y.shallow_clone(), &y * &z];
        t.extend(self.others.iter().map(|&i| labels.select(1, i as i64)));
        t
    }
}

impl MultiTaskModel for Esmm {
    fn forward_t(&self, batch: &Batch, train: bool) -> ModelOutput {
        let (raw, gates, rep) = self.stack.forward_t(batch, train);
        let (a, b) = (&raw[self.funnel.click], &raw[self.funnel.conversion]);
        let ctcvr = logit_of_product(a, b);
        // Per dataset task: pCTR, pCTCVR for the conversion task, own towers otherwise.
        let task_logits: Vec<Tensor> = (0..self.n_tasks)
            .map(|i| if i == self.funnel.conversion { ctcvr.shallow_clone() } else { raw[i].shallow_clone() })
            .collect();
        let mut heads = vec![a.shallow_clone(), ctcvr];
        heads.extend(self.others.iter().map(|&i| raw[i].shallow_clone()));
        ModelOutput {
            probs: probs_of(&Tensor::stack(&task_logits, 1)),
            heads,
            extra: vec![("pcvr".into(), probs_of(b))],
            gates,
            representation: Some(rep),
        }
    }

    fn loss_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// BCE(y, pCTR), BCE(y z, pCTCVR), then one BCE per other task; all over every row.
    fn loss_terms(&self, out: &ModelOutput, batch: &Batch) -> Vec<Tensor> {
        self.targets(&batch.labels)
            .iter()
            .enumerate()
            .map(|(h, t)| bce_masked(&out.heads[h], t, None))
            .collect()
    }

    fn param_groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn funnel(&self) -> Option<&FunnelSpec> {
        Some(&self.funnel)
    }
}
