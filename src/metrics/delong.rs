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
    Ok(DelongTest { auc_a: a.auc, auc_b: b.auc, var_a, var_b, cov_ab, diff, se, z, p_value, positives: pos.len(), negatives: neg.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::auc;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Worked by hand from the 1988 definitions (psi = 1, 1/2, 0):
    /// A: positives 0.9, 0.6, 0.4, negatives 0.6, 0.3, 0.2 -> V10 = 1, 5/6, 2/3,
    /// V01 = 1/2, 1, 1, AUC 5/6, S10 = 1/36, S01 = 1/12, var = 1/27.
    /// B: positives 0.5, 0.8, 0.1, negatives 0.7, 0.2, 0.3 -> V10 = 2/3, 1, 0,
    /// V01 = 1/3, 2/3, 2/3, AUC 5/9, var = 7/81 + 1/81 = 8/81; cov = 1/27;
    /// var(A - B) = 5/81, z = (5/18) / (√5 / 9) = √5 / 2.
    #[test]
    fn hand_worked_example() {
        let labels = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let a = [0.9, 0.6, 0.6, 0.3, 0.4, 0.2];
        let b = [0.5, 0.7, 0.8, 0.2, 0.1, 0.3];
        let t = delong_test(&labels, &a, &b).unwrap();
        assert!(close(t.auc_a, 5.0 / 6.0, 1e-12) && close(t.auc_b, 5.0 / 9.0, 1e-12));
        assert!(close(t.var_a, 1.0 / 27.0, 1e-12));
        assert!(close(t.var_b, 8.0 / 81.0, 1e-12));
        assert!(close(t.cov_ab, 1.0 / 27.0, 1e-12));
        assert!(close(t.se, 5f64.sqrt() / 9.0, 1e-12));
        assert!(close(t.z.unwrap(), 5f64.sqrt() / 2.0, 1e-12));
        // 2 (1 - Φ(1.1180)) (R: 2 * pnorm(-sqrt(5) / 2)).
        assert!(close(t.p_value, 0.263_552_477_282_972_6, 1e-12));
        assert_eq!((t.positives, t.negatives), (3, 3));
        let v = auc_variance(&labels, &a).unwrap();
        assert!(close(v.auc, 5.0 / 6.0, 1e-12) && close(v.variance, 1.0 / 27.0, 1e-12));
        // Swapping A and B flips the sign, not the p-value.
        let s = delong_test(&labels, &b, &a).unwrap();
        assert!(close(s.z.unwrap(), -t.z.unwrap(), 1e-12) && close(s.p_value, t.p_value, 1e-15));
        let ci = t.ci(0.95).unwrap();
        assert!(close(ci.high - ci.low, 2.0 * 1.959_963_984_540_054 * t.se, 1e-12));
    }

    #[test]
    fn identical_models_and_bad_input() {
        let labels = [1.0, 0.0, 1.0, 0.0, 1.0];
        let a = [0.9, 0.1, 0.4, 0.5, 0.7];
        let t = delong_test(&labels, &a, &a).unwrap();
        assert_eq!((t.diff, t.se, t.z, t.p_value), (0.0, 0.0, None, 1.0));
        assert!(matches!(delong_test(&[1.0, 0.0, 0.0], &[0.1, 0.2, 0.3], &[0.1, 0.2, 0.3]), Err(DelongError::TooFew { positives: 1, .. })));
        assert!(matches!(delong_test(&labels, &a, &a[..4]), Err(DelongError::Length { .. })));
        let mut bad = a;
        bad[2] = f32::NAN;
        assert!(matches!(delong_test(&labels, &a, &bad), Err(DelongError::NotFinite { row: 2, .. })));
    }

    /// Correlated synthetic scores: a shared latent term plus model noise,
    /// quantized so that ties occur within and across classes.
    fn synthetic(rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut y, mut a, mut b) = (vec![], vec![], vec![]);
        for _ in 0..rows {
            let label = rng.gen_bool(0.3);
            let shared: f64 = StandardNormal.sample(&mut rng);
            let (ea, eb): (f64, f64) = (StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng));
            let l = label as u8 as f64;
            y.push(l as f32);
            a.push((((1.0 * l + shared + 0.8 * ea) * 8.0).round() / 8.0) as f32);
            b.push((((0.7 * l + shared + 0.8 * eb) * 8.0).round() / 8.0) as f32);
        }
        (y, a, b)
    }

    #[test]
    fn placement_auc_equals_exact_auc() {
        let (y, a, _) = synthetic(500, 3);
        let v = auc_variance(&y, &a).unwrap();
        assert!(close(v.auc, auc(&y, &a).unwrap(), 1e-12));
    }

    /// (b) DeLong's standard errors against a stratified bootstrap (positives
    /// and negatives resampled separately, as DeLong conditions on m and n).
    #[test]
    fn standard_errors_match_bootstrap() {
        let (y, a, b) = synthetic(1500, 11);
        let t = delong_test(&y, &a, &b).unwrap();
        assert!(t.cov_ab > 0.0, "the synthetic scores are meant to be correlated");
        let pos: Vec<usize> = (0..y.len()).filter(|&i| y[i] > 0.5).collect();
        let neg: Vec<usize> = (0..y.len()).filter(|&i| y[i] < 0.5).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let (mut diffs, mut aucs_a) = (vec![], vec![]);
        for _ in 0..1000 {
            let mut rows: Vec<usize> = pos.iter().map(|_| pos[rng.gen_range(0..pos.len())]).collect();
            rows.extend(neg.iter().map(|_| neg[rng.gen_range(0..neg.len())]));
            let yy: Vec<f32> = rows.iter().map(|&i| y[i]).collect();
            let aa: Vec<f32> = rows.iter().map(|&i| a[i]).collect();
            let bb: Vec<f32> = rows.iter().map(|&i| b[i]).collect();
            let (xa, xb) = (auc(&yy, &aa).unwrap(), auc(&yy, &bb).unwrap());
            diffs.push(xa - xb);
            aucs_a.push(xa);
        }
        let sd = |v: &[f64]| crate::stats::summarize(v).unwrap().std;
        let (boot_diff, boot_a) = (sd(&diffs), sd(&aucs_a));
        let r_diff = t.se / boot_diff;
        let r_a = t.var_a.sqrt() / boot_a;
        eprintln!("se(diff) DeLong {:.5} bootstrap {boot_diff:.5}; se(AUC_A) DeLong {:.5} bootstrap {boot_a:.5}", t.se, t.var_a.sqrt());
        assert!((r_diff - 1.0).abs() < 0.15, "se(diff): DeLong {} vs bootstrap {boot_diff}", t.se);
        assert!((r_a - 1.0).abs() < 0.15, "se(AUC_A): DeLong {} vs bootstrap {boot_a}", t.var_a.sqrt());
        // Correlation matters: the paired se is well below the unpaired one.
        assert!(t.se < 0.9 * (t.var_a + t.var_b).sqrt());
    }

    /// (a) Against the direct O(m n) formulas of the 1988 paper in an
    /// independent pure-Python script (scripts/delong_reference.py).
    #[test]
    fn matches_python_reference() {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/delong_reference.py");
        let python = std::process::Command::new("python3").arg("--version").output();
        if !python.is_ok_and(|o| o.status.success()) {
            eprintln!("note: python3 not found; skipping the Python cross-check of DeLong's test");
            return;
        }
        for (rows, seed) in [(6usize, 0u64), (120, 5), (400, 8)] {
            let (y, a, b) = if rows == 6 {
                (vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0], vec![0.9, 0.6, 0.6, 0.3, 0.4, 0.2], vec![0.5, 0.7, 0.8, 0.2, 0.1, 0.3])
            } else {
                synthetic(rows, seed)
            };
            // f32 -> f64 is exact, so Python sees the very same scores and ties.
            let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let input = serde_json::json!({ "labels": f(&y), "a": f(&a), "b": f(&b) }).to_string();
            let mut child = std::process::Command::new("python3")
                .arg(&script)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "python reference failed");
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let t = delong_test(&y, &a, &b).unwrap();
            for (name, ours) in [
                ("auc_a", t.auc_a),
                ("auc_b", t.auc_b),
                ("var_a", t.var_a),
                ("var_b", t.var_b),
                ("cov_ab", t.cov_ab),
                ("z", t.z.unwrap()),
                ("p_value", t.p_value),
            ] {
                let theirs = r[name].as_f64().unwrap();
                assert!(close(ours, theirs, 1e-10 * theirs.abs().max(1.0)), "rows {rows}: {name} {ours} vs python {theirs}");
            }
        }
    }
}
