//! Aligned-MTL (Senushkin, Patakin, Kuznetsov and Konushin, "Independent
//! Component Alignment for Multi-Task Learning", CVPR 2023,
//! <https://arxiv.org/abs/2305.19000>), Algorithm 1, as torchjd's AlignedMTL.
//!
//! G = V Λ Vᵀ (eigenvalues above λ_max T ε_machine: rank r); the balance
//! transformation B = sqrt(σ) V_r Λ_r^(-1/2) V_rᵀ makes the aligned
//! gradients J' = Bᵀ J orthogonal with equal norms sqrt(σ), where σ is the
//! smallest kept eigenvalue (`min`, the paper's), their median (`median`,
//! the lower middle one as torch.median) or mean (`rmse`). The weights are
//! B 1/T (the mean preference); B = I when G is zero.

use serde::{Deserialize, Serialize};

use super::solve::sym_eigen;
use super::{mean_weights, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::StrategyError;

/// Which eigenvalue sets the aligned gradients' norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleMode {
    Min,
    Median,
    Rmse,
}

fn d_mode() -> ScaleMode {
    ScaleMode::Min
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.aligned-mtl]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignedMtlConfig {
    /// `"min"` (default, the paper's), `"median"` or `"rmse"`.
    #[serde(default = "d_mode")]
    pub scale_mode: ScaleMode,
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for AlignedMtlConfig {
    fn default() -> Self {
        AlignedMtlConfig { scale_mode: d_mode(), scope: d_scope() }
    }
}

/// Aligned-MTL's weights B 1/T.
pub fn aligned_mtl_weights(gram: &Gram, mode: ScaleMode) -> Vec<f64> {
    let n = gram.dim();
    let mean = mean_weights(n);
    let (values, vectors) = sym_eigen(gram);
    let top = values.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
    let tol = top * n as f64 * f64::EPSILON;
    // Kept eigenpairs, largest first.
    let kept: Vec<(f64, &Vec<f64>)> = values.iter().zip(&vectors).rev().filter(|(l, _)| **l > tol).map(|(l, v)| (*l, v)).collect();
    if kept.is_empty() {
        return mean;
    }
    let r = kept.len();
    let scale = match mode {
        ScaleMode::Min => kept[r - 1].0,
        ScaleMode::Median => {
            let mut asc: Vec<f64> = kept.iter().map(|(l, _)| *l).collect();
            asc.sort_by(f64::total_cmp);
            asc[(r - 1) / 2]
        }
        ScaleMode::Rmse => kept.iter().map(|(l, _)| l).sum::<f64>() / r as f64,
    };
    let s = scale.sqrt();
    (0..n)
        .map(|i| kept.iter().map(|(l, v)| s * v[i] * (1.0 / l.sqrt()) * v.iter().zip(&mean).map(|(a, b)| a * b).sum::<f64>()).sum())
        .collect()
}

pub struct AlignedMtl {
    mode: ScaleMode,
}

impl AlignedMtl {
    pub fn new(cfg: &AlignedMtlConfig) -> Self {
        AlignedMtl { mode: cfg.scale_mode }
    }
}

impl GramMethod for AlignedMtl {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(aligned_mtl_weights(gram, self.mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_gradients_are_orthogonal_with_equal_norms() {
        // Diagonal G = diag(4, 1): B = sqrt(1) diag(1/2, 1): weights (1/4, 1/2);
        // the aligned gradients B_tt g_t both have norm 1.
        let g = Gram::new(2, vec![4.0, 0.0, 0.0, 1.0]).unwrap();
        let w = aligned_mtl_weights(&g, ScaleMode::Min);
        assert!((w[0] - 0.25).abs() < 1e-14 && (w[1] - 0.5).abs() < 1e-14, "{w:?}");
        // rmse: σ = 2.5 -> weights scaled by sqrt(2.5).
        let w = aligned_mtl_weights(&g, ScaleMode::Rmse);
        assert!((w[0] - 0.25 * 2.5f64.sqrt()).abs() < 1e-13, "{w:?}");
        // A general G: Bᵀ G B = σ I on the kept space.
        let g = Gram::from_rows(&[vec![1.0, 0.3, 0.0], vec![-0.5, 1.0, 0.2], vec![0.4, 0.4, 1.5]]);
        let (l, _) = sym_eigen(&g);
        let w = aligned_mtl_weights(&g, ScaleMode::Min);
        // 1/T Bᵀ G B 1/T = σ / T for orthogonal equal-norm aligned gradients.
        assert!((g.quad(&w) - l[0] / 3.0).abs() < 1e-12, "{} vs {}", g.quad(&w), l[0] / 3.0);
    }
}
