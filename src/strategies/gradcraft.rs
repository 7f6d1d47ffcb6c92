//! GradCraft (Bai, Zhang, Feng, Lu, Zang, Lei and Song, "GradCraft:
//! Elevating Multi-task Recommendations through Holistic Gradient
//! Crafting", KDD 2024, <https://arxiv.org/abs/2407.19682>; reference code
//! <https://github.com/baiyimeng/GradCraft>,
//! `solvers/global_pc_grad_magnitude_positive.py`).
//!
//! Two stages on the per-task gradients g_t of the shared parameters:
//!
//! 1. Magnitude alignment: with m = max_t ||g_t||,
//!    g~_t = (tau m / ||g_t|| + 1 - tau) g_t, tau in [0, 1] (tau = 1 gives
//!    every task the largest norm, tau = 0 leaves them as they are).
//! 2. Global direction de-confliction: for each task i, N_i = {j : g~_i . g~_j < 0}
//!    (all its conflicts at once, not one by one as PCGrad); g'_i = g~_i + G_N^T w
//!    with w solving (G_N G_N^T) w = -G_N g~_i + eps ||g~_i|| (||g~_j||)_{j in N},
//!    so that afterwards g'_i . g~_j = eps ||g~_i|| ||g~_j|| >= 0 for every j in N.
//!
//! The shared gradient is sum_i g'_i (the reference averages; the sum keeps
//! the scale of every other strategy here). Defaults are those of the
//! reference's own run: tau = 0.1, eps = 1e-10, no averaging of the
//! magnitudes over steps (its `b = 0`). Task-specific parameters keep their
//! own terms' gradients (the reference scales a task's tower by its
//! alignment factor too).
//!
//! Everything is a combination of the original gradients, so it is computed
//! from the Gramian G: the result is the weight vector on the g_t.

use serde::{Deserialize, Serialize};

use super::gramian::solve::solve_linear;
use super::gramian::{Gram, GramContext, GramMethod, GramScope};
use super::StrategyError;

fn d_tau() -> f64 {
    0.1
}
fn d_eps() -> f64 {
    1e-10
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.gradcraft]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradCraftConfig {
    /// Magnitude alignment strength in [0, 1] (reference run: 0.1).
    #[serde(default = "d_tau")]
    pub tau: f64,
    /// Residual positive alignment of de-conflicted pairs, in [0, 1) (reference run: 1e-10).
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// The gradients crafted: `"all-shared"` (default), `"last-shared"` or `"representation"`.
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for GradCraftConfig {
    fn default() -> Self {
        GradCraftConfig { tau: d_tau(), eps: d_eps(), scope: d_scope() }
    }
}

impl GradCraftConfig {
    /// Range checks; the error names the key (without `strategies.gradcraft.`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.tau.is_finite() && (0.0..=1.0).contains(&self.tau)) {
            return Err(("tau", format!("must lie in [0, 1], got {}", self.tau)));
        }
        if !(self.eps.is_finite() && (0.0..1.0).contains(&self.eps)) {
            return Err(("eps", format!("must lie in [0, 1), got {}", self.eps)));
        }
        Ok(())
    }
}

/// The magnitude alignment factors s_t = tau m / ||g_t|| + 1 - tau (1 for a zero gradient).
pub fn alignment(g: &[f64], n: usize, tau: f64) -> Vec<f64> {
    let norms: Vec<f64> = (0..n).map(|t| g[t * n + t].max(0.0).sqrt()).collect();
    let m = norms.iter().copied().fold(0.0, f64::max);
    norms.iter().map(|&x| if x > 0.0 { tau * m / x + 1.0 - tau } else { 1.0 }).collect()
}

/// GradCraft's weights on the original gradients, from their Gramian `g`
/// (row-major n x n).
pub fn weights(g: &[f64], n: usize, cfg: &GradCraftConfig) -> Vec<f64> {
    let s = alignment(g, n, cfg.tau);
    // The aligned Gramian S G S.
    let ga = |i: usize, j: usize| s[i] * s[j] * g[i * n + j];
    let mut total = vec![0.0; n];
    for i in 0..n {
        total[i] += s[i];
        let conflicts: Vec<usize> = (0..n).filter(|&j| ga(i, j) < 0.0).collect();
        let k = conflicts.len();
        if k == 0 {
            continue;
        }
        let a: Vec<f64> = conflicts.iter().flat_map(|&p| conflicts.iter().map(move |&q| (p, q))).map(|(p, q)| ga(p, q)).collect();
        let norm_i = ga(i, i).max(0.0).sqrt();
        let rhs: Vec<f64> = conflicts.iter().map(|&j| -ga(j, i) + cfg.eps * norm_i * ga(j, j).max(0.0).sqrt()).collect();
        // Conflicting gradients that are linearly dependent: a ridge of 1e-10 of the
        // largest diagonal entry makes the system solvable (the least-norm answer in the limit).
        let w = solve_linear(&a, &rhs).or_else(|| {
            let ridge = 1e-10 * (0..k).map(|p| a[p * k + p]).fold(0.0, f64::max);
            let mut r = a;
            for p in 0..k {
                r[p * k + p] += ridge;
            }
            solve_linear(&r, &rhs)
        });
        for (&j, wj) in conflicts.iter().zip(w.unwrap_or_else(|| vec![0.0; k])) {
            total[j] += wj * s[j];
        }
    }
    total
}

/// GradCraft on the Gramian engine.
pub struct GradCraft {
    cfg: GradCraftConfig,
}

impl GradCraft {
    pub fn new(cfg: &GradCraftConfig) -> Self {
        GradCraft { cfg: cfg.clone() }
    }
}

impl GramMethod for GradCraft {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(weights(gram.data(), gram.dim(), &self.cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_close;
    use super::*;

    fn gram(rows: &[Vec<f64>]) -> Vec<f64> {
        let n = rows.len();
        (0..n * n).map(|e| rows[e / n].iter().zip(&rows[e % n]).map(|(a, b)| a * b).sum()).collect()
    }

    fn combine(w: &[f64], rows: &[Vec<f64>]) -> Vec<f64> {
        (0..rows[0].len()).map(|k| w.iter().zip(rows).map(|(w, r)| w * r[k]).sum()).collect()
    }

    #[test]
    fn two_tasks_by_hand() {
        // g1 = (2, 0), g2 = (-1, 1), tau = 0.5: m = 2, s = (0.5*2/2 + 0.5, 0.5*2/sqrt2 + 0.5)
        //   = (1, 1/sqrt2 + 1/2). With eps = 0 the two-task case is PCGrad on the aligned
        // gradients: g~1 = (2, 0), g~2 = s2 (-1, 1); g1' = g~1 - (g~1.g~2 / |g~2|^2) g~2 = (1, 1),
        // g2' = g~2 - (g~2.g~1 / |g~1|^2) g~1 = s2 (0, 1). Sum (1, 1 + s2).
        let rows = vec![vec![2.0, 0.0], vec![-1.0, 1.0]];
        let cfg = GradCraftConfig { tau: 0.5, eps: 0.0, ..Default::default() };
        let s2 = 0.5f64.sqrt() + 0.5;
        assert_close(&alignment(&gram(&rows), 2, 0.5), &[1.0, s2], 1e-12);
        let w = weights(&gram(&rows), 2, &cfg);
        assert_close(&combine(&w, &rows), &[1.0, 1.0 + s2], 1e-12);
        // tau = 0 and tau = 1: no alignment / full alignment (both norms 2).
        assert_close(&alignment(&gram(&rows), 2, 0.0), &[1.0, 1.0], 0.0);
        assert_close(&alignment(&gram(&rows), 2, 1.0), &[1.0, 2f64.sqrt()], 1e-12);
    }

    #[test]
    fn every_conflict_is_removed_at_once_with_the_eps_margin() {
        // g1 conflicts with both g2 and g3; after crafting g1' . g~j = eps |g~1| |g~j| for both.
        let rows = vec![vec![1.0, 0.0, 0.0], vec![-1.0, 1.0, 0.0], vec![-0.5, 0.0, 1.0]];
        let cfg = GradCraftConfig { tau: 0.0, eps: 0.01, ..Default::default() };
        let g = gram(&rows);
        let w = weights(&g, 3, &cfg);
        // Recompute g1' alone: weights of task 1's own crafting, by its defining equations.
        // G_N = (g2; g3), G_N G_N^T = [[2, 0.5], [0.5, 1.25]], rhs = -(-1, -0.5) + 0.01 (sqrt2, sqrt1.25).
        let rhs = [1.0 + 0.01 * 2f64.sqrt(), 0.5 + 0.01 * 1.25f64.sqrt()];
        let det = 2.0 * 1.25 - 0.25;
        let (a, b) = ((1.25 * rhs[0] - 0.5 * rhs[1]) / det, (2.0 * rhs[1] - 0.5 * rhs[0]) / det);
        let g1p: Vec<f64> = (0..3).map(|k| rows[0][k] + a * rows[1][k] + b * rows[2][k]).collect();
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
        assert!((dot(&g1p, &rows[1]) - 0.01 * 2f64.sqrt()).abs() < 1e-12);
        assert!((dot(&g1p, &rows[2]) - 0.01 * 1.25f64.sqrt()).abs() < 1e-12);
        // g2 and g3 conflict only with g1 (g2.g3 = 0.5 > 0): one projection each, plus the margin.
        let c2 = (1.0 + 0.01 * 2f64.sqrt()) / 1.0; // w = (-g2.g1 + eps |g2| |g1|) / |g1|^2
        let c3 = (0.5 + 0.01 * 1.25f64.sqrt()) / 1.0;
        let want: Vec<f64> = (0..3).map(|k| g1p[k] + rows[1][k] + c2 * rows[0][k] + rows[2][k] + c3 * rows[0][k]).collect();
        assert_close(&combine(&w, &rows), &want, 1e-12);
    }

    #[test]
    fn no_conflict_is_the_aligned_sum_and_dependent_conflicts_stay_finite() {
        let rows = vec![vec![1.0, 0.2], vec![0.3, 2.0]];
        let cfg = GradCraftConfig { tau: 1.0, eps: 0.0, ..Default::default() };
        let s = alignment(&gram(&rows), 2, 1.0);
        assert_close(&weights(&gram(&rows), 2, &cfg), &s, 0.0);
        // g2 and g3 identical, both against g1: G_N G_N^T is singular.
        let rows = vec![vec![1.0, 0.0], vec![-1.0, 1.0], vec![-1.0, 1.0]];
        let w = weights(&gram(&rows), 3, &GradCraftConfig { tau: 0.0, eps: 0.0, ..Default::default() });
        assert!(w.iter().all(|v| v.is_finite()), "{w:?}");
        let g1p = combine(&w, &rows);
        assert!(g1p.iter().all(|v| v.is_finite()));
        for (tau, eps, ok) in [(0.5, 0.0, true), (-0.1, 0.0, false), (1.1, 0.0, false), (0.5, -1e-3, false), (0.5, f64::NAN, false)] {
            assert_eq!(GradCraftConfig { tau, eps, ..Default::default() }.validate().is_ok(), ok, "tau {tau}, eps {eps}");
        }
    }

    #[test]
    fn through_the_engine_by_hand() {
        use super::super::gramian::GramianStrategy;
        use super::super::testing::*;
        use super::super::StepInput;
        use crate::strategies::Strategy;
        // The two-task hand case on a shared x: x.grad = (1, 1 + s2); heads keep theirs.
        let x = param(&[0.0, 0.0]);
        let (h1, h2) = (param(&[1.0]), param(&[1.0]));
        let losses = [lin(&[2.0, 0.0], &x) + lin(&[2.0], &h1), lin(&[-1.0, 1.0], &x) + lin(&[3.0], &h2)];
        let g = groups(&[&x], &[&x], &[&h1, &h2]);
        let cfg = GradCraftConfig { tau: 0.5, eps: 0.0, ..Default::default() };
        let mut s = GramianStrategy::new("gradcraft", cfg.scope, 2, Box::new(GradCraft::new(&cfg)));
        s.backward(&StepInput::new(&losses, &g)).unwrap();
        assert_close(&grad_vec(&x), &[1.0, 1.5 + 0.5f64.sqrt()], 1e-6);
        assert_close(&grad_vec(&h1), &[2.0], 0.0);
        assert_close(&grad_vec(&h2), &[3.0], 0.0);
    }
}
