//! DeLong's test for two correlated ROC-AUCs measured on the same rows, and
//! the DeLong variance of a single AUC.
//!
//! DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or
//! more correlated receiver operating characteristic curves: a nonparametric
//! approach", Biometrics 44(3); computed with the fast midrank algorithm of
//! Sun & Xu (2014), "Fast implementation of DeLong's algorithm for comparing
//! the areas under correlated receiver operating characteristic curves",
//! IEEE Signal Processing Letters 21(11), <https://doi.org/10.1109/LSP.2014.2337313>.
//!
//! With m positives and n negatives, each model k has placement values
//! V10_k(i) = (midrank of positive i among all rows - its midrank among the
//! positives) / n and V01_k(j) = 1 - (midrank of negative j among all rows -
//! its midrank among the negatives) / m; AUC_k is the mean of either. S10 and
//! S01 are the sample covariance matrices of the placements over positives
//! and negatives, S = S10/m + S01/n, and
//! z = (AUC_A - AUC_B) / sqrt(S_AA + S_BB - 2 S_AB) is standard normal under
//! "equal AUCs". O(N log N); ties count one half, as in the exact AUC.

use serde::Serialize;
use thiserror::Error;

use crate::stats::{normal_diff_ci, normal_two_sided_p, DiffCi, DiffMethod, StatsError};

#[derive(Debug, Clone, PartialEq, Error)]
pub enum DelongError {
    #[error("{what}: {got} values for {rows} labels")]
    Length { what: &'static str, rows: usize, got: usize },
    #[error("DeLong needs at least 2 positives and 2 negatives, got {positives} and {negatives}")]
    TooFew { positives: usize, negatives: usize },
    #[error("{what}: score at row {row} is not finite ({value})")]
    NotFinite { what: &'static str, row: usize, value: f32 },
    #[error(transparent)]
    Stats(#[from] StatsError),
}

type Result<T> = std::result::Result<T, DelongError>;

/// AUC of one model with its DeLong variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AucVariance {
    pub auc: f64,
    pub variance: f64,
    pub positives: usize,
    pub negatives: usize,
}

impl AucVariance {
    pub fn se(&self) -> f64 {
        self.variance.sqrt()
    }
}

/// DeLong's test of AUC_A = AUC_B on the same rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DelongTest {
    pub auc_a: f64,
    pub auc_b: f64,
    pub var_a: f64,
    pub var_b: f64,
    pub cov_ab: f64,
    /// AUC_A - AUC_B.
    pub diff: f64,
    /// sqrt(S_AA + S_BB - 2 S_AB), the standard error of `diff`.
    pub se: f64,
    /// `diff / se`; `None` when se = 0 (the placements of A and B differ by
    /// a constant), where the statistic does not exist.
    pub z: Option<f64>,
    /// Two-sided p-value: 2 (1 - Φ(|z|)); 1 when se = 0 and diff = 0, 0 when
    /// se = 0 and diff ≠ 0.
    pub p_value: f64,
    pub positives: usize,
    pub negatives: usize,
}

impl DelongTest {
    /// Normal CI of AUC_A - AUC_B at `level` (e.g. 0.95).
    pub fn ci(&self, level: f64) -> Result<DiffCi> {
        Ok(normal_diff_ci(self.diff, self.se, level, DiffMethod::Delong)?)
    }
}

/// 1-based midranks (ties share their average rank), in input order.
fn midranks(values: &[f32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_unstable_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j < idx.len() && values[idx[j]] == values[idx[i]] {
            j += 1;
        }
        // Positions i..j (0-based) hold ranks i+1 ..= j.
        let r = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

/// Placement values of one model: (AUC, V10 over positives, V01 over negatives).
struct Placements {
    auc: f64,
    v10: Vec<f64>,
    v01: Vec<f64>,
}

/// Row indices of positives and negatives, in row order.
fn split_classes(labels: &[f32]) -> Result<(Vec<usize>, Vec<usize>)> {
    let (pos, neg): (Vec<usize>, Vec<usize>) = (0..labels.len()).partition(|&i| labels[i] > 0.5);
    if pos.len() < 2 || neg.len() < 2 {
        return Err(DelongError::TooFew { positives: pos.len(), negatives: neg.len() });
    }
    Ok((pos, neg))
}

fn placements(what: &'static str, scores: &[f32], pos: &[usize], neg: &[usize]) -> Result<Placements> {
    if scores.len() != pos.len() + neg.len() {
        return Err(DelongError::Length { what, rows: pos.len() + neg.len(), got: scores.len() });
    }
    if let Some(row) = scores.iter().position(|s| !s.is_finite()) {
        return Err(DelongError::NotFinite { what, row, value: scores[row] });
    }
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let tz = midranks(scores);
    let x: Vec<f32> = pos.iter().map(|&i| scores[i]).collect();
    let y: Vec<f32> = neg.iter().map(|&i| scores[i]).collect();
    let (tx, ty) = (midranks(&x), midranks(&y));
    let v10: Vec<f64> = pos.iter().zip(&tx).map(|(&i, r)| (tz[i] - r) / n).collect();
    let v01: Vec<f64> = neg.iter().zip(&ty).map(|(&j, r)| 1.0 - (tz[j] - r) / m).collect();
    let auc = v10.iter().sum::<f64>() / m;
    Ok(Placements { auc, v10, v01 })
}

/// Sample covariance (n - 1) of two equally long series with known means.
fn cov(a: &[f64], mean_a: f64, b: &[f64], mean_b: f64) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - mean_a) * (y - mean_b)).sum::<f64>() / (a.len() - 1) as f64
}

/// S_kl = S10_kl / m + S01_kl / n.
fn s_entry(p: &Placements, q: &Placements) -> f64 {
    let (m, n) = (p.v10.len() as f64, p.v01.len() as f64);
    cov(&p.v10, p.auc, &q.v10, q.auc) / m + cov(&p.v01, p.auc, &q.v01, q.auc) / n
}

/// The AUC of `scores` and its DeLong variance S_AA.
pub fn auc_variance(labels: &[f32], scores: &[f32]) -> Result<AucVariance> {
    let (pos, neg) = split_classes(labels)?;
    let p = placements("scores", scores, &pos, &neg)?;
    Ok(AucVariance { auc: p.auc, variance: s_entry(&p, &p), positives: pos.len(), negatives: neg.len() })
}

/// DeLong's test of two models' AUCs on the same rows (`labels`).
pub fn delong_test(labels: &[f32], scores_a: &[f32], scores_b: &[f32]) -> Result<DelongTest> {
    let (pos, neg) = split_classes(labels)?;
    let a = placements("scores of A", scores_a, &pos, &neg)?;
    let b = placements("scores of B", scores_b, &pos, &neg)?;
    let (var_a, var_b, cov_ab) = (s_entry(&a, &a), s_entry(&b, &b), s_entry(&a, &b));
    let diff = a.auc - b.auc;
    // Rounding can leave a tiny negative for identical placements.
    let se = (var_a + var_b - 2.0 * cov_ab).max(0.0).sqrt();
    let (z, p_value) = if se > 0.0 {
        let z = diff / se;
        (Some(z), normal_two_sided_p(z))
    } else {
        (None, if diff == 0.0 { 1.0 } else { 0.0 })
    };
    Ok(DelongTest {
        auc_a: a.auc,
        auc_b: b.auc,
        var_a,
        var_b,
        cov_ab,
        diff,
        se,
        z,
        p_value,
        positives: pos.len(),
        negatives: neg.len(),
    })
}

#[cfg(test)]
#[path = "delong_tests.rs"]
mod tests;
