//! CTnoCVR (Zhang et al., "CTnoCVR: A Novelty Auxiliary Task Making the
//! Lower-CTR-Higher-CVR Upper", SIGIR 2022,
//! <https://openreview.net/forum?id=57lEgcP51LG>): CTR over all rows, CVR on
//! clicked rows, and the auxiliary click-and-not-convert task with label
//! c = y (1 - z) over all rows. Loss = BCE(y, pCTR) + l1 BCE_clicked(z, pCVR) +
//! l2 BCE(c, pCTnoCVR). In the product form pCTnoCVR = pCTR (1 - pCVR); in
//! the own-tower variant (also in the authors' code) pCTnoCVR has its own
//! tower. The fusion score (pCVR + w (1 - pCTnoCVR)) / (1 + w) ranks
//! conversions and is recorded as the extra prediction `fusion`. Published on
//! ESMM-style, MMOE and CGC backbones: `backbone` selects.
//!
//! Outputs: the click column is pCTR, the conversion column pCTR x pCVR (the
//! entire-space conversion probability), extras `pcvr`, `pctnocvr`, `fusion`.
//! The loss terms returned are already scaled by l1 and l2.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::backbone::BackboneKind;
use super::funnel::{bce_masked, logit_of_product, other_tasks, required, term_names, FunnelSpec};
use super::multi_tower::TowerStack;
use super::{probs_of, Head, ModelError, ModelOutput, ModelsConfig, MultiTaskModel, ParamGroups};
use crate::data::{Batch, FeatureSchema};

/// How pCTnoCVR is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CtnocvrForm {
    /// pCTnoCVR = pCTR x (1 - pCVR).
    Product,
    /// pCTnoCVR from its own tower (`task.ctnocvr`).
    OwnTower,
}

fn d_backbone() -> BackboneKind {
    BackboneKind::Mmoe
}
fn d_form() -> CtnocvrForm {
    CtnocvrForm::Product
}
fn d_one() -> f64 {
    1.0
}
fn d_fusion() -> f64 {
    0.02
}

/// `[models.ctnocvr]` (the tasks come from `[models.funnel]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtnocvrConfig {
    /// What the towers sit on (default "mmoe"; "embeddings" is the
    /// ESMM-style base, "cgc" a single PLE layer, or "shared-bottom", "ple").
    #[serde(default = "d_backbone")]
    pub backbone: BackboneKind,
    /// "product" (default) or "own-tower".
    #[serde(default = "d_form")]
    pub form: CtnocvrForm,
    /// Weight of the CVR term on clicked rows (default 1).
    #[serde(default = "d_one")]
    pub l1: f64,
    /// Weight of the CTnoCVR term (default 1).
    #[serde(default = "d_one")]
    pub l2: f64,
    /// w of the fusion score (pCVR + w (1 - pCTnoCVR)) / (1 + w); the
    /// authors use about 0.01-0.04 (default 0.02).
    #[serde(default = "d_fusion")]
    pub fusion_weight: f64,
}

impl Default for CtnocvrConfig {
    fn default() -> Self {
        CtnocvrConfig { backbone: d_backbone(), form: d_form(), l1: 1.0, l2: 1.0, fusion_weight: d_fusion() }
    }
}

impl CtnocvrConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        for (key, v) in [("l1", self.l1), ("l2", self.l2), ("fusion_weight", self.fusion_weight)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ModelError::Config {
                    key: format!("models.ctnocvr.{key}"),
                    message: format!("must be a finite number >= 0, got {v}"),
                });
            }
        }
        Ok(())
    }
}

/// The click-and-not-convert label c = y (1 - z).
pub fn ctnocvr_label(y: &Tensor, z: &Tensor) -> Tensor {
    y * (1.0 - z)
}

/// The fusion score (pCVR + w (1 - pCTnoCVR)) / (1 + w).
pub fn fusion_score(pcvr: &Tensor, pctnocvr: &Tensor, w: f64) -> Tensor {
    (pcvr + (1.0 - pctnocvr) * w) / (1.0 + w)
}

#[derive(Debug)]
pub struct Ctnocvr {
    stack: TowerStack,
    cfg: CtnocvrConfig,
    funnel: FunnelSpec,
    others: Vec<usize>,
    n_tasks: usize,
    names: Vec<String>,
    groups: ParamGroups,
}

impl Ctnocvr {
    pub fn new(vs: &tch::nn::VarStore, schema: &FeatureSchema, cfg: &ModelsConfig) -> Result<Self, ModelError> {
        let c = cfg.ctnocvr.clone();
        let (funnel, names) = Ctnocvr::layout(&schema.tasks, cfg)?;
        let others = other_tasks(&schema.tasks, &funnel);
        let extra = match c.form {
            CtnocvrForm::Product => vec![],
            CtnocvrForm::OwnTower => vec![Head { key: "ctnocvr".into(), name: "ctnocvr".into() }],
        };
        let stack = TowerStack::new(&vs.root(), schema, cfg, c.backbone, &extra)?;
        let groups = ParamGroups::from_varstore(vs, &stack.last_shared());
        Ok(Ctnocvr { stack, cfg: c, funnel, others, n_tasks: schema.tasks.len(), names, groups })
    }

    /// The settings' checks, the funnel on `tasks` and the loss-term names
    /// [ctr, cvr, ctnocvr, other tasks...].
    pub fn layout(tasks: &[String], cfg: &ModelsConfig) -> Result<(FunnelSpec, Vec<String>), ModelError> {
        cfg.ctnocvr.validate()?;
        let funnel = required(&cfg.funnel, tasks, "ctnocvr", Some("pcvr"), Some("fusion"))?;
        let names = term_names("ctnocvr", &["ctr", "cvr", "ctnocvr"], tasks, &funnel)?;
        Ok((funnel, names))
    }

    /// Targets of the loss heads [ctr: y, cvr: z, ctnocvr: y (1 - z), others...],
    /// and the row mask of the CVR head (clicked rows).
    pub fn targets(&self, labels: &Tensor) -> (Vec<Tensor>, Tensor) {
        let y = labels.select(1, self.funnel.click as i64);
        let z = labels.select(1, self.funnel.conversion as i64);
        let c = ctnocvr_label(&y, &z);
        let mut t = vec![y.shallow_clone(), z, c];
        t.extend(self.others.iter().map(|&i| labels.select(1, i as i64)));
        (t, y)
    }
}

impl MultiTaskModel for Ctnocvr {
    fn forward_t(&self, batch: &Batch, train: bool) -> ModelOutput {
        let (raw, gates, rep) = self.stack.forward_t(batch, train);
        let (a, b) = (&raw[self.funnel.click], &raw[self.funnel.conversion]);
        let ctnocvr = match self.cfg.form {
            CtnocvrForm::Product => logit_of_product(a, &(-b)),
            CtnocvrForm::OwnTower => raw[self.n_tasks].shallow_clone(),
        };
        let ctcvr = logit_of_product(a, b);
        let task_logits: Vec<Tensor> = (0..self.n_tasks)
            .map(|i| if i == self.funnel.conversion { ctcvr.shallow_clone() } else { raw[i].shallow_clone() })
            .collect();
        let pcvr = probs_of(b);
        let pctnocvr = probs_of(&ctnocvr);
        let fusion = fusion_score(&pcvr, &pctnocvr, self.cfg.fusion_weight);
        let mut heads = vec![a.shallow_clone(), b.shallow_clone(), ctnocvr];
        heads.extend(self.others.iter().map(|&i| raw[i].shallow_clone()));
        ModelOutput {
            probs: probs_of(&Tensor::stack(&task_logits, 1)),
            heads,
            extra: vec![("pcvr".into(), pcvr), ("pctnocvr".into(), pctnocvr), ("fusion".into(), fusion)],
            gates,
            representation: Some(rep),
        }
    }

    fn loss_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// BCE(y, pCTR), l1 BCE(z, pCVR) on clicked rows, l2 BCE(y (1 - z), pCTnoCVR),
    /// then one BCE per other task.
    fn loss_terms(&self, out: &ModelOutput, batch: &Batch) -> Vec<Tensor> {
        let (targets, clicked) = self.targets(&batch.labels);
        targets
            .iter()
            .enumerate()
            .map(|(h, t)| {
                let logit = &out.heads[h];
                match h {
                    1 => bce_masked(logit, t, Some(&clicked)) * self.cfg.l1,
                    2 => bce_masked(logit, t, None) * self.cfg.l2,
                    _ => bce_masked(logit, t, None),
                }
            })
            .collect()
    }

    fn param_groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn funnel(&self) -> Option<&FunnelSpec> {
        Some(&self.funnel)
    }
}
