//! Single-task baselines and Δm, the average relative gain of a multi-task
//! model over them (Maninis et al., CVPR 2019; as LibMTL reports it):
//!
//! Δm = 100% x (1/T) sum_t (-1)^{l_t} (M_multi,t - M_single,t) / M_single,t
//!
//! with l_t = 1 where lower is better. Each single-task baseline is tuned
//! like an arm: per seed, its configuration is chosen on validation of its
//! own task. Δm is paired by seed where the arm and every task's baseline
//! share seeds (one Δm per seed, then mean ± std and a t interval), and
//! computed from the means over seeds otherwise.

use serde::Serialize;

use crate::stats::{mean_ci, summarize, DiffCi, Summary};

use super::select::Pick;

/// Δm in percent; `None` when the lists differ in length, are empty or a
/// baseline value is 0.
pub fn delta_m(multi: &[f64], single: &[f64], higher_is_better: &[bool]) -> Option<f64> {
    let t = multi.len();
    if t == 0 || single.len() != t || higher_is_better.len() != t || single.contains(&0.0) {
        return None;
    }
    let sum: f64 = (0..t)
        .map(|i| {
            let gain = (multi[i] - single[i]) / single[i];
            if higher_is_better[i] {
                gain
            } else {
                -gain
            }
        })
        .sum();
    Some(100.0 * sum / t as f64)
}

/// One task's single-task baseline, selected per seed on validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SingleTaskBaseline {
    pub task: String,
    /// Its configurations (distinct config hashes).
    pub configurations: usize,
    pub picks: Vec<Pick>,
    /// Its test AUC over seeds.
    pub test: Option<Summary>,
}

/// An arm's Δm against the single-task baselines, in percent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeltaM {
    pub estimate: f64,
    /// Per-seed Δm values summarised, when paired.
    pub per_seed: Option<Summary>,
    pub ci: Option<DiffCi>,
    pub paired: bool,
    /// The seeds paired (empty when computed from means).
    pub seeds: Vec<i64>,
}

/// Test AUC of task `t` (index into the leaderboard's tasks) of a seed's pick.
fn at_seed(picks: &[Pick], seed: i64, t: usize) -> Option<f64> {
    picks.iter().find(|p| p.seed == seed).and_then(|p| p.tasks.get(t).copied().flatten())
}

fn mean_of(picks: &[Pick], t: usize) -> Option<f64> {
    summarize(&picks.iter().filter_map(|p| p.tasks.get(t).copied().flatten()).collect::<Vec<_>>()).map(|s| s.mean)
}

/// Δm of an arm's picks over the baselines (one per task, in task order),
/// on test ROC-AUC (higher is better).
pub fn arm_delta_m(picks: &[Pick], baselines: &[&SingleTaskBaseline], level: f64) -> Option<DeltaM> {
    let n = baselines.len();
    if n == 0 {
        return None;
    }
    let higher = vec![true; n];
    let mut seeds = Vec::new();
    let mut values = Vec::new();
    for p in picks {
        let multi: Option<Vec<f64>> = (0..n).map(|t| p.tasks.get(t).copied().flatten()).collect();
        let single: Option<Vec<f64>> = baselines.iter().enumerate().map(|(t, b)| at_seed(&b.picks, p.seed, t)).collect();
        if let Some(d) = multi.zip(single).and_then(|(m, s)| delta_m(&m, &s, &higher)) {
            seeds.push(p.seed);
            values.push(d);
        }
    }
    if let Some(s) = summarize(&values) {
        return Some(DeltaM { estimate: s.mean, per_seed: Some(s), ci: mean_ci(&values, level).ok(), paired: true, seeds });
    }
    let multi: Option<Vec<f64>> = (0..n).map(|t| mean_of(picks, t)).collect();
    let single: Option<Vec<f64>> = baselines.iter().enumerate().map(|(t, b)| mean_of(&b.picks, t)).collect();
    let estimate = delta_m(&multi?, &single?, &higher)?;
    Some(DeltaM { estimate, per_seed: None, ci: None, paired: false, seeds: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_m_by_hand() {
        // (0.84 - 0.80) / 0.80 = +5%, (0.57 - 0.60) / 0.60 = -5%: mean 0.
        assert!(delta_m(&[0.84, 0.57], &[0.80, 0.60], &[true, true]).unwrap().abs() < 1e-12);
        // +5% and (0.66 - 0.60) / 0.60 = +10%: 7.5%.
        assert!((delta_m(&[0.84, 0.66], &[0.80, 0.60], &[true, true]).unwrap() - 7.5).abs() < 1e-12);
        // A lower-is-better loss that rises 10% counts -10%.
        assert!((delta_m(&[0.22], &[0.20], &[false]).unwrap() + 10.0).abs() < 1e-12);
        assert_eq!(delta_m(&[0.5], &[0.0], &[true]), None);
        assert_eq!(delta_m(&[], &[], &[]), None);
        assert_eq!(delta_m(&[0.5, 0.6], &[0.5], &[true, true]), None);
    }
}
