//! MGDA (Désidéri, "Multiple-gradient descent algorithm (MGDA) for
//! multiobjective optimization", 2012; as used for multi-task learning by
//! Sener and Koltun, "Multi-Task Learning as Multi-Objective Optimization",
//! NeurIPS 2018, <https://arxiv.org/abs/1810.04650>) and MGDA-UB, the
//! paper's upper-bound variant on the gradients of the shared representation.
//!
//! w = argmin over the simplex of ||sum_t w_t d_t g_t||², the min-norm point
//! of the convex hull of the (normalised) gradients, with d_t per
//! `normalization`: none (1), l2 (1 / ||g_t||), loss (1 / L_t), loss+
//! (1 / (L_t ||g_t||)). As in the paper's reference code, the weights then
//! multiply the unnormalised gradients (LibMTL applies them to the
//! normalised ones instead). Solver: `exact` (closed form for T = 2, support
//! enumeration up to T = 12) or `frank-wolfe` (the paper's Algorithm 2, the
//! same iteration and defaults as torchjd's MGDA: ε = 1e-3, 100 steps).

use serde::{Deserialize, Serialize};

use super::solve::{frank_wolfe, min_norm_exact, MIN_NORM_EXACT_MAX_T};
use super::{check_min, config_err, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

/// How each gradient is scaled before the min-norm problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalization {
    None,
    L2,
    Loss,
    #[serde(rename = "loss+")]
    LossPlus,
}

/// How the min-norm point is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MinNormSolver {
    Exact,
    FrankWolfe,
}

fn d_norm() -> Normalization {
    Normalization::None
}
fn d_solver() -> MinNormSolver {
    MinNormSolver::Exact
}
fn d_eps() -> f64 {
    1e-3
}
fn d_iters() -> usize {
    100
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.mgda]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MgdaConfig {
    /// `"none"` (default), `"l2"`, `"loss"` or `"loss+"`.
    #[serde(default = "d_norm")]
    pub normalization: Normalization,
    /// `"exact"` (default) or `"frank-wolfe"`.
    #[serde(default = "d_solver")]
    pub solver: MinNormSolver,
    /// Frank–Wolfe stops when its step falls below this (default 1e-3).
    #[serde(default = "d_eps")]
    pub epsilon: f64,
    /// Frank–Wolfe's step limit (default 100).
    #[serde(default = "d_iters")]
    pub max_iters: usize,
    /// `"all-shared"` (default), `"last-shared"` or `"representation"`.
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for MgdaConfig {
    fn default() -> Self {
        MgdaConfig { normalization: d_norm(), solver: d_solver(), epsilon: d_eps(), max_iters: d_iters(), scope: d_scope() }
    }
}

/// `[strategies.mgda-ub]`: MGDA on the shared representation's gradients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MgdaUbConfig {
    #[serde(default = "d_norm")]
    pub normalization: Normalization,
    #[serde(default = "d_solver")]
    pub solver: MinNormSolver,
    #[serde(default = "d_eps")]
    pub epsilon: f64,
    #[serde(default = "d_iters")]
    pub max_iters: usize,
}

impl Default for MgdaUbConfig {
    fn default() -> Self {
        MgdaUbConfig { normalization: d_norm(), solver: d_solver(), epsilon: d_eps(), max_iters: d_iters() }
    }
}

impl MgdaUbConfig {
    /// The same settings as `[strategies.mgda]` on the representation.
    pub fn as_mgda(&self) -> MgdaConfig {
        MgdaConfig {
            normalization: self.normalization,
            solver: self.solver,
            epsilon: self.epsilon,
            max_iters: self.max_iters,
            scope: GramScope::Representation,
        }
    }
}

impl MgdaConfig {
    /// Settings that are wrong whatever the model (checked when the grid is read).
    pub fn validate(&self, section: &str) -> Result<(), StrategyError> {
        check_min(section, "epsilon", self.epsilon, 0.0, true)?;
        if self.max_iters == 0 {
            return Err(config_err(section, "max_iters", "must be at least 1".into()));
        }
        Ok(())
    }
}

pub struct Mgda {
    cfg: MgdaConfig,
}

impl Mgda {
    pub fn new(cfg: &MgdaConfig, section: &str, n_terms: usize) -> Result<Self, StrategyError> {
        cfg.validate(section)?;
        if cfg.solver == MinNormSolver::Exact && n_terms > MIN_NORM_EXACT_MAX_T {
            return Err(config_err(
                section,
                "solver",
                format!("`exact` handles at most {MIN_NORM_EXACT_MAX_T} loss terms, the model has {n_terms}; use \"frank-wolfe\""),
            ));
        }
        Ok(Mgda { cfg: cfg.clone() })
    }
}

/// The scale d_t of each gradient under `norm` (1 where it would divide by 0).
pub fn normalizers(norm: Normalization, gram: &Gram, losses: &[f64]) -> Vec<f64> {
    let inv = |x: f64| if x > 0.0 && x.is_finite() { 1.0 / x } else { 1.0 };
    let norms = gram.norms();
    (0..gram.dim())
        .map(|t| match norm {
            Normalization::None => 1.0,
            Normalization::L2 => inv(norms[t]),
            Normalization::Loss => inv(losses[t]),
            Normalization::LossPlus => inv(losses[t] * norms[t]),
        })
        .collect()
}

/// MGDA's weights (applied to the unnormalised gradients).
pub fn mgda_weights(gram: &Gram, losses: &[f64], cfg: &MgdaConfig) -> Vec<f64> {
    let g = gram.congruent(&normalizers(cfg.normalization, gram, losses));
    match cfg.solver {
        MinNormSolver::Exact => min_norm_exact(&g),
        MinNormSolver::FrankWolfe => frank_wolfe(&g, cfg.epsilon, cfg.max_iters),
    }
}

impl GramMethod for Mgda {
    fn weights(&mut self, gram: &Gram, ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(mgda_weights(gram, ctx.losses, &self.cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisations_by_hand() {
        // g1 = (3, 0), g2 = (0, 1), losses (2, 0.5).
        let g = Gram::from_rows(&[vec![3.0, 0.0], vec![0.0, 1.0]]);
        let l = [2.0, 0.5];
        assert_eq!(normalizers(Normalization::L2, &g, &l), vec![1.0 / 3.0, 1.0]);
        assert_eq!(normalizers(Normalization::Loss, &g, &l), vec![0.5, 2.0]);
        assert_eq!(normalizers(Normalization::LossPlus, &g, &l), vec![1.0 / 6.0, 2.0]);
        // none: min over γ of 9γ² + (1-γ)²: γ = 1/10.
        let w = mgda_weights(&g, &l, &MgdaConfig::default());
        assert!((w[0] - 0.1).abs() < 1e-15 && (w[1] - 0.9).abs() < 1e-15, "{w:?}");
        // l2: unit gradients, γ = 1/2.
        let w = mgda_weights(&g, &l, &MgdaConfig { normalization: Normalization::L2, ..Default::default() });
        assert!((w[0] - 0.5).abs() < 1e-15, "{w:?}");
        // loss: (1.5, 0) and (0, 2): γ = 4 / 6.25 = 0.64.
        let w = mgda_weights(&g, &l, &MgdaConfig { normalization: Normalization::Loss, ..Default::default() });
        assert!((w[0] - 0.64).abs() < 1e-15, "{w:?}");
    }

    #[test]
    fn refuses_bad_settings() {
        let e = MgdaConfig { epsilon: 0.0, ..Default::default() }.validate("mgda").err().unwrap().to_string();
        assert!(e.contains("strategies.mgda.epsilon"), "{e}");
        let e = Mgda::new(&MgdaConfig::default(), "mgda", 13).err().unwrap().to_string();
        assert!(e.contains("strategies.mgda.solver") && e.contains("frank-wolfe"), "{e}");
        let toml_err = toml::from_str::<MgdaConfig>("normalization = \"l1\"").err().unwrap().to_string();
        assert!(toml_err.contains("l1"), "{toml_err}");
        assert_eq!(toml::from_str::<MgdaConfig>("normalization = \"loss+\"").unwrap().normalization, Normalization::LossPlus);
    }
}
