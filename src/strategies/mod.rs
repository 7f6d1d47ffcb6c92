//! Loss-weighting strategies. A strategy receives the loss terms a model
//! declares and the model's parameter groups, and leaves gradients ready for
//! the optimizer step; it reports the weights it used. Gradient diagnostics
//! (per-task norms, pairwise cosines, conflict rate) are measured here the
//! same way for every strategy so that conflict can be compared across them.
//!
//! Strategies act on loss terms, not on dataset tasks, so a funnel model
//! (whose terms are e.g. CTR and CTCVR) is weighted like any other model.
//! Formulas: `docs/reference.md` section 5.

pub mod combine;
pub mod dbmtl;
pub mod dwa;
pub mod equal;
pub mod famo;
pub mod gradcraft;
pub mod gradnorm;
pub mod gradvac;
pub mod gramian;
pub mod pcgrad;
pub mod rlw;
pub mod static_weights;
pub mod stch;
pub mod uncertainty;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};
use thiserror::Error;

pub use gramian::GradDiagnostics;
use gramian::{gram_of, GramianStrategy};
use crate::models::ParamGroups;
use crate::optim::{OptimSettings, Optimizer};

#[derive(Debug, Error)]
pub enum StrategyError {
    #[error("config key `{key}`: {message}")]
    Config { key: String, message: String },
    /// The strategy cannot act on what the model or the step handed it.
    #[error("{strategy}: {message}")]
    Step { strategy: &'static str, message: String },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl StrategyError {
    /// A refused setting of `[strategies.<strategy>]`.
    pub(crate) fn config(strategy: &str, key: &str, message: String) -> Self {
        StrategyError::Config { key: format!("strategies.{strategy}.{key}"), message }
    }
}

/// The strategy registry: every name a grid file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    Equal,
    Uncertainty,
    #[serde(rename = "gradnorm")]
    GradNorm,
    #[serde(rename = "pcgrad")]
    PcGrad,
    /// Fixed weights at one point of a weight sweep (the scalarisation front).
    Static,
    Dwa,
    Rlw,
    Famo,
    Stch,
    Mgda,
    MgdaUb,
    #[serde(rename = "cagrad")]
    CaGrad,
    NashMtl,
    ImtlG,
    AlignedMtl,
    #[serde(rename = "upgrad")]
    UpGrad,
    #[serde(rename = "dualproj")]
    DualProj,
    /// ConFIG.
    Config,
    #[serde(rename = "fairgrad")]
    FairGrad,
    #[serde(rename = "db-mtl")]
    DbMtl,
    #[serde(rename = "gradvac")]
    GradVac,
    #[serde(rename = "gradcraft")]
    GradCraft,
}

impl StrategyKind {
    pub const ALL: &'static [StrategyKind] = &[
        StrategyKind::Equal,
        StrategyKind::Uncertainty,
        StrategyKind::GradNorm,
        StrategyKind::PcGrad,
        StrategyKind::Static,
        StrategyKind::Dwa,
        StrategyKind::Rlw,
        StrategyKind::Famo,
        StrategyKind::Stch,
        StrategyKind::Mgda,
        StrategyKind::MgdaUb,
        StrategyKind::CaGrad,
        StrategyKind::NashMtl,
        StrategyKind::ImtlG,
        StrategyKind::AlignedMtl,
        StrategyKind::UpGrad,
        StrategyKind::DualProj,
        StrategyKind::Config,
        StrategyKind::FairGrad,
        StrategyKind::DbMtl,
        StrategyKind::GradVac,
        StrategyKind::GradCraft,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Equal => "equal",
            StrategyKind::Uncertainty => "uncertainty",
            StrategyKind::GradNorm => "gradnorm",
            StrategyKind::PcGrad => "pcgrad",
            StrategyKind::Static => "static",
            StrategyKind::Dwa => "dwa",
            StrategyKind::Rlw => "rlw",
            StrategyKind::Famo => "famo",
            StrategyKind::Stch => "stch",
            StrategyKind::Mgda => "mgda",
            StrategyKind::MgdaUb => "mgda-ub",
            StrategyKind::CaGrad => "cagrad",
            StrategyKind::NashMtl => "nash-mtl",
            StrategyKind::ImtlG => "imtl-g",
            StrategyKind::AlignedMtl => "aligned-mtl",
            StrategyKind::UpGrad => "upgrad",
            StrategyKind::DualProj => "dualproj",
            StrategyKind::Config => "config",
            StrategyKind::FairGrad => "fairgrad",
            StrategyKind::DbMtl => "db-mtl",
            StrategyKind::GradVac => "gradvac",
            StrategyKind::GradCraft => "gradcraft",
        }
    }

    /// Display name and paper, for reports and the README table.
    pub fn paper(self) -> (&'static str, &'static str) {
        match self {
            StrategyKind::Equal => ("Equal weighting", "https://arxiv.org/abs/1706.05098"),
            StrategyKind::Uncertainty => ("Uncertainty weighting", "https://arxiv.org/abs/1705.07115"),
            StrategyKind::GradNorm => ("GradNorm", "https://arxiv.org/abs/1711.02257"),
            StrategyKind::PcGrad => ("PCGrad", "https://arxiv.org/abs/2001.06782"),
            StrategyKind::Static => ("Static weights (sweep)", "https://arxiv.org/abs/2209.11379"),
            StrategyKind::Dwa => ("Dynamic Weight Average", "https://arxiv.org/abs/1803.10704"),
            StrategyKind::Rlw => ("Random Loss Weighting", "https://arxiv.org/abs/2111.10603"),
            StrategyKind::Famo => ("FAMO", "https://arxiv.org/abs/2306.03792"),
            StrategyKind::Stch => ("Smooth Tchebycheff", "https://arxiv.org/abs/2402.19078"),
            StrategyKind::Mgda => ("MGDA", "https://arxiv.org/abs/1810.04650"),
            StrategyKind::MgdaUb => ("MGDA-UB", "https://arxiv.org/abs/1810.04650"),
            StrategyKind::CaGrad => ("CAGrad", "https://arxiv.org/abs/2110.14048"),
            StrategyKind::NashMtl => ("Nash-MTL", "https://arxiv.org/abs/2202.01017"),
            StrategyKind::ImtlG => ("IMTL-G", "https://openreview.net/forum?id=IMPnRXEWpvr"),
            StrategyKind::AlignedMtl => ("Aligned-MTL", "https://arxiv.org/abs/2305.19000"),
            StrategyKind::UpGrad => ("UPGrad", "https://arxiv.org/abs/2406.16232"),
            StrategyKind::DualProj => ("DualProj", "https://arxiv.org/abs/2406.16232"),
            StrategyKind::Config => ("ConFIG", "https://arxiv.org/abs/2408.11104"),
            StrategyKind::FairGrad => ("FairGrad", "https://arxiv.org/abs/2402.15638"),
            StrategyKind::DbMtl => ("DB-MTL", "https://arxiv.org/abs/2308.12029"),
            StrategyKind::GradVac => ("GradVac", "https://arxiv.org/abs/2010.05874"),
            StrategyKind::GradCraft => ("GradCraft", "https://arxiv.org/abs/2407.19682"),
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }
}

/// `[strategies.*]`: one section per strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategiesConfig {
    #[serde(default)]
    pub equal: equal::EqualConfig,
    #[serde(default)]
    pub uncertainty: uncertainty::UncertaintyConfig,
    #[serde(default)]
    pub gradnorm: gradnorm::GradNormConfig,
    #[serde(default)]
    pub pcgrad: pcgrad::PcGradConfig,
    /// `[strategies.static]`: left out of the serialized grid while default,
    /// so that grids without it keep their hash.
    #[serde(default, rename = "static", skip_serializing_if = "static_weights::StaticConfig::is_default")]
    pub static_weights: static_weights::StaticConfig,
    // The sections below are left out of the serialized grid while default,
    // so that grids without them keep their hash; a cell's key takes its
    // strategy's section in full ([`StrategiesConfig::section`]).
    #[serde(default, skip_serializing_if = "is_default")]
    pub dwa: dwa::DwaConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub rlw: rlw::RlwConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub famo: famo::FamoConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub stch: stch::StchConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mgda: gramian::mgda::MgdaConfig,
    #[serde(default, rename = "mgda-ub", skip_serializing_if = "is_default")]
    pub mgda_ub: gramian::mgda::MgdaUbConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cagrad: gramian::cagrad::CagradConfig,
    #[serde(default, rename = "nash-mtl", skip_serializing_if = "is_default")]
    pub nash_mtl: gramian::nash_mtl::NashMtlConfig,
    #[serde(default, rename = "imtl-g", skip_serializing_if = "is_default")]
    pub imtl_g: gramian::imtl_g::ImtlGConfig,
    #[serde(default, rename = "aligned-mtl", skip_serializing_if = "is_default")]
    pub aligned_mtl: gramian::aligned_mtl::AlignedMtlConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub upgrad: gramian::upgrad::UpgradConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub dualproj: gramian::dualproj::DualProjConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub config: gramian::config_grad::ConfigGradConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub fairgrad: gramian::fairgrad::FairGradConfig,
    #[serde(default, rename = "db-mtl", skip_serializing_if = "is_default")]
    pub db_mtl: dbmtl::DbMtlConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub gradvac: gradvac::GradVacConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub gradcraft: gradcraft::GradCraftConfig,
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

impl StrategiesConfig {
    /// Settings that are wrong whatever the model (temperature 0, negative
    /// c, tau outside [0, 1], ...): checked when the grid is read, before any
    /// training. The error is a [`StrategyError::Config`] naming the full key.
    pub fn validate(&self) -> Result<(), StrategyError> {
        fn key(section: &'static str) -> impl Fn((&'static str, String)) -> StrategyError {
            move |(k, m)| StrategyError::config(section, k, m)
        }
        self.static_weights.validate().map_err(key("static"))?;
        self.dwa.validate().map_err(key("dwa"))?;
        self.famo.validate().map_err(key("famo"))?;
        self.stch.validate().map_err(key("stch"))?;
        self.db_mtl.validate().map_err(key("db-mtl"))?;
        self.gradvac.validate().map_err(key("gradvac"))?;
        self.gradcraft.validate().map_err(key("gradcraft"))?;
        self.mgda.validate("mgda")?;
        self.mgda_ub.as_mgda().validate("mgda-ub")?;
        self.cagrad.validate()?;
        self.nash_mtl.validate()?;
        self.upgrad.validate()?;
        self.dualproj.validate()?;
        self.fairgrad.validate()
    }

    /// The section of `kind` in full (defaults included), for its cells' keys.
    pub fn section(&self, kind: StrategyKind) -> Result<serde_json::Value, serde_json::Error> {
        use serde_json::to_value;
        match kind {
            StrategyKind::Equal => to_value(&self.equal),
            StrategyKind::Uncertainty => to_value(&self.uncertainty),
            StrategyKind::GradNorm => to_value(&self.gradnorm),
            StrategyKind::PcGrad => to_value(&self.pcgrad),
            StrategyKind::Static => to_value(&self.static_weights),
            StrategyKind::Dwa => to_value(&self.dwa),
            StrategyKind::Rlw => to_value(&self.rlw),
            StrategyKind::Famo => to_value(&self.famo),
            StrategyKind::Stch => to_value(&self.stch),
            StrategyKind::Mgda => to_value(&self.mgda),
            StrategyKind::MgdaUb => to_value(&self.mgda_ub),
            StrategyKind::CaGrad => to_value(&self.cagrad),
            StrategyKind::NashMtl => to_value(&self.nash_mtl),
            StrategyKind::ImtlG => to_value(&self.imtl_g),
            StrategyKind::AlignedMtl => to_value(&self.aligned_mtl),
            StrategyKind::UpGrad => to_value(&self.upgrad),
            StrategyKind::DualProj => to_value(&self.dualproj),
            StrategyKind::Config => to_value(&self.config),
            StrategyKind::FairGrad => to_value(&self.fairgrad),
            StrategyKind::DbMtl => to_value(&self.db_mtl),
            StrategyKind::GradVac => to_value(&self.gradvac),
            StrategyKind::GradCraft => to_value(&self.gradcraft),
        }
    }
}

/// Which shared parameters a gradient-based strategy acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The model's last shared layer ([`ParamGroups::last_shared`]).
    LastShared,
    /// Every shared parameter ([`ParamGroups::shared`]), embeddings included.
    AllShared,
}

impl Scope {
    /// The parameters this scope selects.
    pub fn params(self, groups: &ParamGroups) -> &[Tensor] {
        match self {
            Scope::LastShared => &groups.last_shared,
            Scope::AllShared => &groups.shared,
        }
    }
}

/// What a strategy did in one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepReport {
    /// The weight applied to each loss term.
    pub weights: Vec<f64>,
}

/// What one step hands a strategy.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    /// The loss terms the model declares, in order, each a scalar.
    pub losses: &'a [Tensor],
    /// The model's parameter groups.
    pub params: &'a ParamGroups,
    /// The shared representation of this forward pass (the tensor every
    /// head reads), for representation-level variants; `None` where the
    /// model does not expose one.
    pub representation: Option<&'a Tensor>,
}

impl<'a> StepInput<'a> {
    /// Losses and parameters, no representation.
    pub fn new(losses: &'a [Tensor], params: &'a ParamGroups) -> Self {
        StepInput { losses, params, representation: None }
    }

    /// The same with the forward pass's shared representation.
    pub fn with_representation(self, representation: Option<&'a Tensor>) -> Self {
        StepInput { representation, ..self }
    }
}

/// The contract every strategy fulfils.
pub trait Strategy {
    /// Computes gradients of the weighted objective into the parameters'
    /// `.grad` (they are zero or undefined on entry) and reports the weights
    /// used. A strategy with state of its own (learned weights) updates it here.
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError>;

    /// Called once the optimiser has stepped on this step's gradients, with
    /// `reforward`: it recomputes the loss terms on the same batch, without
    /// gradient, after the step. It costs a forward pass only when called
    /// (FAMO does). The default does nothing.
    fn after_step(&mut self, _reforward: &mut Reforward) -> Result<(), StrategyError> {
        Ok(())
    }

    /// Called at the end of every training epoch (`epoch` from 1) with each
    /// loss term's mean training loss over the epoch's steps (DWA's loss
    /// ratios, STCH's nadir point). The default does nothing.
    fn end_of_epoch(&mut self, _epoch: usize, _mean_losses: &[f64]) -> Result<(), StrategyError> {
        Ok(())
    }
}

/// Recomputes the step's loss terms after the optimiser step (see
/// [`Strategy::after_step`]).
pub type Reforward<'a> = dyn FnMut() -> Result<Vec<f64>, StrategyError> + 'a;

/// Refuses a step or epoch whose number of loss terms is not the strategy's.
pub(crate) fn check_terms(strategy: &'static str, given: usize, expected: usize) -> Result<(), StrategyError> {
    if given != expected {
        return Err(StrategyError::Step { strategy, message: format!("{given} loss terms given, {expected} expected") });
    }
    Ok(())
}

/// scale * softmax(x), computed stably (DWA, RLW and STCH weights).
pub fn scaled_softmax(x: &[f64], scale: f64) -> Vec<f64> {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| scale * v / s).collect()
}

/// What a strategy may need from the run besides its own section.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext {
    /// Number of loss terms the model declares.
    pub n_terms: usize,
    /// The run's optimiser settings (kind and rate for learned weights).
    pub optim: OptimSettings,
    /// The run's seed (PCGrad's task order).
    pub seed: u64,
    /// Where the strategy's own tensors live.
    pub device: Device,
}

/// What a strategy of `kind` refuses in its configuration for a model with
/// `n_terms` loss terms and a run learning rate `run_lr`: the checks its
/// constructor makes, without building it (the grid runs them per cell
/// when it is read).
pub fn check(kind: StrategyKind, cfg: &StrategiesConfig, n_terms: usize, run_lr: f64) -> Result<(), StrategyError> {
    if n_terms == 0 {
        return Err(StrategyError::Config { key: "strategies".into(), message: "the model declares no loss terms".into() });
    }
    match kind {
        StrategyKind::Equal => cfg.equal.weights_for(n_terms).map(|_| ()),
        StrategyKind::GradNorm => cfg.gradnorm.validate(run_lr).map(|_| ()),
        StrategyKind::Static => static_weights::validate(&cfg.static_weights),
        // The other sections are checked whole when the grid is read
        // (`StrategiesConfig::validate`); none depends on the term count.
        _ => Ok(()),
    }
}

/// Builds the strategy of `kind`.
pub fn build(kind: StrategyKind, cfg: &StrategiesConfig, ctx: BuildContext) -> Result<Box<dyn Strategy>, StrategyError> {
    check(kind, cfg, ctx.n_terms, ctx.optim.lr)?;
    Ok(match kind {
        StrategyKind::Equal => Box::new(equal::Equal::new(&cfg.equal, ctx.n_terms)?),
        StrategyKind::Uncertainty => Box::new(uncertainty::Uncertainty::new(&cfg.uncertainty, ctx)?),
        StrategyKind::GradNorm => Box::new(gradnorm::GradNorm::new(&cfg.gradnorm, ctx)?),
        StrategyKind::PcGrad => Box::new(pcgrad::PcGrad::new(&cfg.pcgrad, ctx)?),
        StrategyKind::Static => Box::new(static_weights::Static::new(&cfg.static_weights, ctx.n_terms)?),
        StrategyKind::Dwa => Box::new(dwa::Dwa::new(&cfg.dwa, ctx.n_terms)?),
        StrategyKind::Rlw => Box::new(rlw::Rlw::new(&cfg.rlw, ctx)?),
        StrategyKind::Famo => Box::new(famo::Famo::new(&cfg.famo, ctx)?),
        StrategyKind::Stch => Box::new(stch::Stch::new(&cfg.stch, ctx.n_terms)?),
        StrategyKind::DbMtl => Box::new(dbmtl::DbMtl::new(&cfg.db_mtl, ctx.n_terms)?),
        _ => Box::new(build_gramian(kind, cfg, ctx)?),
    })
}

/// The Gramian-engine strategies: each method on its scope.
fn build_gramian(kind: StrategyKind, cfg: &StrategiesConfig, ctx: BuildContext) -> Result<GramianStrategy, StrategyError> {
    use gramian::*;
    let n = ctx.n_terms;
    let (scope, method): (GramScope, Box<dyn GramMethod>) = match kind {
        StrategyKind::Mgda => (cfg.mgda.scope, Box::new(mgda::Mgda::new(&cfg.mgda, "mgda", n)?)),
        StrategyKind::MgdaUb => (GramScope::Representation, Box::new(mgda::Mgda::new(&cfg.mgda_ub.as_mgda(), "mgda-ub", n)?)),
        StrategyKind::CaGrad => (cfg.cagrad.scope, Box::new(cagrad::Cagrad::new(&cfg.cagrad)?)),
        StrategyKind::NashMtl => (cfg.nash_mtl.scope, Box::new(nash_mtl::NashMtl::new(&cfg.nash_mtl, n)?)),
        StrategyKind::ImtlG => (cfg.imtl_g.scope, Box::new(imtl_g::ImtlG)),
        StrategyKind::AlignedMtl => (cfg.aligned_mtl.scope, Box::new(aligned_mtl::AlignedMtl::new(&cfg.aligned_mtl))),
        StrategyKind::UpGrad => (cfg.upgrad.scope, Box::new(upgrad::Upgrad::new(&cfg.upgrad)?)),
        StrategyKind::DualProj => (cfg.dualproj.scope, Box::new(dualproj::DualProj::new(&cfg.dualproj)?)),
        StrategyKind::Config => (cfg.config.scope, Box::new(config_grad::ConfigGrad)),
        StrategyKind::FairGrad => (cfg.fairgrad.scope, Box::new(fairgrad::FairGrad::new(&cfg.fairgrad)?)),
        StrategyKind::GradVac => (cfg.gradvac.scope, Box::new(gradvac::GradVac::new(&cfg.gradvac, n, ctx.seed))),
        StrategyKind::GradCraft => (cfg.gradcraft.scope, Box::new(gradcraft::GradCraft::new(&cfg.gradcraft))),
        StrategyKind::Equal
        | StrategyKind::Uncertainty
        | StrategyKind::GradNorm
        | StrategyKind::PcGrad
        | StrategyKind::Static
        | StrategyKind::Dwa
        | StrategyKind::Rlw
        | StrategyKind::Famo
        | StrategyKind::Stch
        | StrategyKind::DbMtl => {
            return Err(StrategyError::Config { key: "strategies".into(), message: format!("{} is not a Gramian method", kind.name()) })
        }
    };
    Ok(GramianStrategy::new(kind.name(), scope, n, method))
}

/// Gradients of `loss` with respect to `inputs` (zeros where unused), keeping
/// the graph. `.grad` is not touched.
pub fn grads_of(loss: &Tensor, inputs: &[Tensor]) -> Result<Vec<Tensor>, tch::TchError> {
    if inputs.is_empty() {
        return Ok(vec![]);
    }
    let g = Tensor::f_run_backward(&[loss], inputs, true, false)?;
    Ok(g.into_iter().zip(inputs).map(|(g, x)| if g.defined() { g } else { x.zeros_like() }).collect())
}

/// Every parameter of `groups`, those of `scope` first: returns the list and
/// how many of its leading entries are in scope. Each parameter appears once.
pub fn scope_first(groups: &ParamGroups, scope: Scope) -> (Vec<Tensor>, usize) {
    let first: Vec<Tensor> = scope.params(groups).iter().map(|t| t.shallow_clone()).collect();
    let n = first.len();
    let seen: std::collections::HashSet<usize> = first.iter().map(|t| t.data_ptr() as usize).collect();
    let rest = groups.shared.iter().chain(&groups.task_specific).filter(|t| !seen.contains(&(t.data_ptr() as usize)));
    (first.into_iter().chain(rest.map(|t| t.shallow_clone())).collect(), n)
}

/// One gradient pass per loss term over `params` (graph kept, `.grad` untouched).
///
/// Each pass only traverses what its term reaches (its own head and the
/// shared part), so T passes over every parameter cost about one backward
/// pass of the sum plus (T - 1) passes over the shared part, provided the
/// model computes each term from its own head's output (not from a tensor
/// that stacks all heads: the backward of a stack sends zeros into every
/// head, and each pass then costs a full backward).
pub fn per_term_grads(losses: &[Tensor], params: &[Tensor]) -> Result<Vec<Vec<Tensor>>, tch::TchError> {
    losses.iter().map(|l| grads_of(l, params)).collect()
}

/// The gradients as one flat vector.
pub fn flatten(grads: &[Tensor]) -> Tensor {
    Tensor::cat(&grads.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(), 0)
}

/// Splits a flat vector back into tensors shaped like `like`.
pub fn unflatten(flat: &Tensor, like: &[Tensor]) -> Vec<Tensor> {
    let mut out = Vec::with_capacity(like.len());
    let mut start = 0i64;
    for p in like {
        let n = p.numel() as i64;
        out.push(flat.narrow(0, start, n).view(p.size().as_slice()));
        start += n;
    }
    out
}

/// Adds `grads` to the parameters' `.grad`, defining it where libtorch has
/// not yet (the first step).
pub fn accumulate_grads(params: &[Tensor], grads: &[Tensor]) -> Result<(), tch::TchError> {
    let mut undefined = Vec::new();
    tch::no_grad(|| -> Result<(), tch::TchError> {
        for (p, g) in params.iter().zip(grads) {
            let mut pg = p.grad();
            if pg.defined() {
                let _ = pg.f_add_(g)?;
            } else {
                undefined.push((p, g));
            }
        }
        Ok(())
    })?;
    if !undefined.is_empty() {
        // d/dp sum(p * g) = g: one tiny backward defines and fills `.grad`.
        let surrogate = undefined
            .iter()
            .map(|(p, g)| (*p * g.detach()).sum(p.kind()))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::from(0.0f32));
        surrogate.f_backward()?;
    }
    Ok(())
}

/// An optimizer for a strategy's own learned weights: the run's optimizer
/// kind with rate `lr` and no weight decay.
pub(crate) fn own_optimizer(vs: &nn::VarStore, run: OptimSettings, lr: f64) -> Result<Optimizer, tch::TchError> {
    Optimizer::new(vs, &OptimSettings { lr, weight_decay: 0.0, ..run })
}

/// A small tensor's values as f64 (on the CPU).
pub(crate) fn to_f64s(t: &Tensor) -> Vec<f64> {
    let flat = t.detach().to_device(Device::Cpu).to_kind(tch::Kind::Double).reshape([-1]);
    (0..flat.size()[0]).map(|i| flat.double_value(&[i])).collect()
}

/// Measures per-task gradient norms and pairwise cosines on `params`
/// without touching `.grad` (the graph is kept): the Gramian of the per-term
/// gradients, read off by [`gramian::Gram::diagnostics`].
pub fn diagnostics(losses: &[Tensor], params: &[Tensor]) -> Result<GradDiagnostics, tch::TchError> {
    if params.is_empty() {
        return Ok(GradDiagnostics::default());
    }
    let rows = losses.iter().map(|l| Ok(flatten(&grads_of(l, params)?))).collect::<Result<Vec<Tensor>, tch::TchError>>()?;
    Ok(gram_of(&rows)?.diagnostics())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Tiny hand-checkable problems for the strategy tests.
    use tch::{Kind, Tensor};

    use crate::models::ParamGroups;

    /// A leaf parameter with the given values.
    pub fn param(v: &[f32]) -> Tensor {
        Tensor::from_slice(v).set_requires_grad(true)
    }

    /// A [n] f32 constant.
    pub fn vec_t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    /// <a, x> as a scalar loss.
    pub fn lin(a: &[f32], x: &Tensor) -> Tensor {
        (vec_t(a) * x).sum(Kind::Float)
    }

    pub fn groups(shared: &[&Tensor], last: &[&Tensor], task: &[&Tensor]) -> ParamGroups {
        let c = |v: &[&Tensor]| v.iter().map(|t| t.shallow_clone()).collect();
        ParamGroups { shared: c(shared), last_shared: c(last), task_specific: c(task) }
    }

    pub fn grad_vec(p: &Tensor) -> Vec<f64> {
        let g = p.grad();
        assert!(g.defined(), "no gradient");
        Vec::<f64>::try_from(g.to_kind(Kind::Double).reshape([-1])).expect("gradient to vec")
    }

    pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "got {got:?}, want {want:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn diagnostics_by_hand() {
        // L1 = <(1,0), x> + <(2,0), y>, L2 = <(-1,1), x>, L3 = <(0,1), x>.
        let x = param(&[0.3, -0.2]);
        let y = param(&[1.0, 1.0]);
        let losses = [lin(&[1.0, 0.0], &x) + lin(&[2.0, 0.0], &y), lin(&[-1.0, 1.0], &x), lin(&[0.0, 1.0], &x)];
        let d = diagnostics(&losses, &[x.shallow_clone()]).unwrap();
        assert_close(&d.norms, &[1.0, 2f64.sqrt(), 1.0], 1e-9);
        // cos(1,2) = -1/sqrt2, cos(1,3) = 0, cos(2,3) = 1/sqrt2.
        assert_close(&d.cosines, &[-(0.5f64.sqrt()), 0.0, 0.5f64.sqrt()], 1e-7);
        assert!((d.conflict_rate - 1.0 / 3.0).abs() < 1e-12);
        // On (x, y) the first gradient is (1, 0, 2, 0): norm sqrt5; y unused by L2, L3 -> zeros.
        let d = diagnostics(&losses, &[x.shallow_clone(), y.shallow_clone()]).unwrap();
        assert_close(&d.norms, &[5f64.sqrt(), 2f64.sqrt(), 1.0], 1e-9);
        assert!(!x.grad().defined(), "diagnostics must not touch .grad");
    }

    #[test]
    fn accumulate_defines_then_adds() {
        let p = param(&[1.0, 2.0, 3.0, 4.0]).view([2, 2]).detach().set_requires_grad(true);
        let g = Tensor::from_slice(&[0.5f32, -1.0, 0.0, 2.0]).view([2, 2]);
        accumulate_grads(&[p.shallow_clone()], &[g.shallow_clone()]).unwrap();
        assert_close(&grad_vec(&p), &[0.5, -1.0, 0.0, 2.0], 0.0);
        accumulate_grads(&[p.shallow_clone()], &[g]).unwrap();
        assert_close(&grad_vec(&p), &[1.0, -2.0, 0.0, 4.0], 0.0);
    }

    #[test]
    fn scope_first_orders_without_duplicates() {
        let (a, b, c, h) = (param(&[1.0]), param(&[2.0]), param(&[3.0]), param(&[4.0]));
        let g = groups(&[&a, &b, &c], &[&c], &[&h]);
        let (all, n) = scope_first(&g, Scope::LastShared);
        let vals: Vec<f64> = all.iter().map(|t| t.double_value(&[0])).collect();
        assert_eq!((vals, n), (vec![3.0, 1.0, 2.0, 4.0], 1));
        let (all, n) = scope_first(&g, Scope::AllShared);
        let vals: Vec<f64> = all.iter().map(|t| t.double_value(&[0])).collect();
        assert_eq!((vals, n), (vec![1.0, 2.0, 3.0, 4.0], 3));
    }

    #[test]
    fn flatten_round_trip() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]);
        let b = Tensor::from_slice(&[7.0f32]);
        let flat = flatten(&[a.shallow_clone(), b.shallow_clone()]);
        assert_eq!(flat.size(), vec![7]);
        let back = unflatten(&flat, &[a.shallow_clone(), b.shallow_clone()]);
        assert!(back[0].equal(&a) && back[1].equal(&b));
    }

    #[test]
    fn names_parse_from_toml() {
        #[derive(Deserialize)]
        struct G {
            s: Vec<StrategyKind>,
        }
        let all = [
            "equal", "uncertainty", "gradnorm", "pcgrad", "static", "dwa", "rlw", "famo", "stch", "mgda", "mgda-ub", "cagrad",
            "nash-mtl", "imtl-g", "aligned-mtl", "upgrad", "dualproj", "config", "fairgrad", "db-mtl", "gradvac", "gradcraft",
        ];
        let g: G = toml::from_str(&format!("s = {all:?}")).unwrap();
        assert_eq!(g.s, StrategyKind::ALL);
        assert_eq!(StrategyKind::names(), all.to_vec());
        assert!(toml::from_str::<G>(r#"s = ["grad-norm"]"#).is_err());
    }
}
