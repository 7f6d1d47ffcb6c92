//! The strategy registry: every name a grid file may use ([`StrategyKind`]),
//! the `[strategies.*]` sections ([`StrategiesConfig`]: checked when the grid
//! is read, each taken in full into its cells' keys) and [`build`], the one
//! place that turns a name and its section into a [`Strategy`]. Kept apart
//! from the trait and the shared gradient helpers in `mod.rs` so that adding
//! a method touches this list, not them.

use serde::{Deserialize, Serialize};

use super::gramian::{self, GramianStrategy};
use super::{
    dbmtl, dwa, equal, famo, gradcraft, gradnorm, gradvac, pcgrad, rlw, static_weights, stch, uncertainty, BuildContext,
    Strategy, StrategyError,
};

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
