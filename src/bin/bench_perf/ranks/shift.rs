//! The Hodges–Lehmann estimate of a shift between two independent samples
//! and its distribution-free confidence interval from the Mann–Whitney
//! distribution (Hodges & Lehmann, "Estimates of location based on rank
//! tests", Ann. Math. Statist. 34, 1963,
//! <https://doi.org/10.1214/aoms/1177704172>; the interval as in Bauer,
//! JASA 67, 1972, <https://doi.org/10.1080/01621459.1972.10481279>).
//!
//! Why: a comparison of training runs over seeds can be decided by one run
//! that went wrong (a task whose AUC collapsed), which drags a mean and
//! widens a t interval however many good runs there are. The shift estimate
//! is the median of all differences `b[j] - a[i]`; its interval is two order
//! statistics of those differences, chosen from the exact null distribution
//! of the Mann–Whitney U (a normal approximation above
//! [`EXACT_MAX_PAIRS`] pairs), so its coverage holds for any continuous
//! distribution of the runs, outliers included. Ties are not corrected for.

use serde::Serialize;

use mtlbench::stats::{check_finite, check_level, normal_cdf, StatsError};

use super::Result;

/// Up to this many pairs (`a.len() * b.len()`) the U distribution is exact.
pub const EXACT_MAX_PAIRS: usize = 10_000;

/// A shift `b - a` with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShiftCi {
    /// Median of the pairwise differences `b[j] - a[i]`.
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// The level asked for.
    pub level: f64,
    /// The interval's actual coverage (at least `level`: U is discrete).
    pub coverage: f64,
    pub n_a: usize,
    pub n_b: usize,
}

/// Null distribution of the Mann–Whitney U for samples of `m` and `n`:
/// `pmf[u] = P(U = u)`, `u = 0..=m*n`. Recurrence on which sample holds the
/// largest value: `P_{i,j}(u) = j/(i+j) P_{i,j-1}(u - i) + i/(i+j) P_{i-1,j}(u)`.
fn exact_pmf(m: usize, n: usize) -> Vec<f64> {
    // prev[j] = distribution for (i - 1, j); cur[j] for (i, j).
    let mut prev: Vec<Vec<f64>> = vec![vec![1.0]; n + 1];
    for i in 1..=m {
        let mut cur: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
        cur.push(vec![1.0]);
        for j in 1..=n {
            let (fi, fj) = (i as f64, j as f64);
            let mut p = vec![0.0; i * j + 1];
            for (u, &q) in prev[j].iter().enumerate() {
                p[u] += fi / (fi + fj) * q;
            }
            for (u, &q) in cur[j - 1].iter().enumerate() {
                p[u + i] += fj / (fi + fj) * q;
            }
            cur.push(p);
        }
        prev = cur;
    }
    prev.swap_remove(n)
}

fn normal_cdf_u(m: usize, n: usize, u: usize) -> f64 {
    let (mf, nf) = (m as f64, n as f64);
    let sd = (mf * nf * (mf + nf + 1.0) / 12.0).sqrt();
    normal_cdf((u as f64 + 0.5 - mf * nf / 2.0) / sd)
}

/// Hodges–Lehmann shift of `b` against `a` (positive when `b` is higher)
/// with the narrowest interval whose coverage is not below `level`,
/// `[D(k), D(mn + 1 - k)]` of the sorted pairwise differences `D`.
pub fn hodges_lehmann_shift(a: &[f64], b: &[f64], level: f64) -> Result<ShiftCi> {
    check_level(level)?;
    check_finite("Hodges–Lehmann sample", a)?;
    check_finite("Hodges–Lehmann sample", b)?;
    let (m, n) = (a.len(), b.len());
    if m == 0 || n == 0 {
        return Err(StatsError::TooFew { what: "Hodges–Lehmann shift, each sample", need: 1, got: m.min(n) });
    }
    let mut d: Vec<f64> = b.iter().flat_map(|y| a.iter().map(move |x| y - x)).collect();
    d.sort_by(f64::total_cmp);
    let pairs = d.len();
    let estimate = if pairs % 2 == 1 { d[pairs / 2] } else { (d[pairs / 2 - 1] + d[pairs / 2]) / 2.0 };
    // k = 1 + the largest u with 2 P(U <= u) <= 1 - level.
    let alpha = 1.0 - level;
    let cdf: Vec<f64> = if pairs <= EXACT_MAX_PAIRS {
        exact_pmf(m, n)
            .iter()
            .scan(0.0, |acc, p| {
                *acc += p;
                Some(*acc)
            })
            .take(pairs / 2)
            .collect()
    } else {
        (0..pairs / 2).map(|u| normal_cdf_u(m, n, u)).collect()
    };
    let k = cdf.iter().take_while(|&&c| 2.0 * c <= alpha + 1e-12).count();
    if k == 0 {
        return Err(StatsError::TooSmall { what: "Hodges–Lehmann interval", a: m, b: n, level });
    }
    Ok(ShiftCi { estimate, low: d[k - 1], high: d[pairs - k], level, coverage: 1.0 - 2.0 * cdf[k - 1], n_a: m, n_b: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(U <= u) for samples of `m` and `n` values under "no shift": exact up to
    /// [`EXACT_MAX_PAIRS`] pairs, normal with continuity correction above.
    fn mann_whitney_cdf(m: usize, n: usize, u: usize) -> f64 {
        let pairs = m * n;
        if u >= pairs {
            return 1.0;
        }
        if pairs <= EXACT_MAX_PAIRS {
            exact_pmf(m, n)[..=u].iter().sum::<f64>().min(1.0)
        } else {
            normal_cdf_u(m, n, u)
        }
    }

    #[test]
    fn u_distribution_matches_counts_by_hand() {
        // m = n = 3: the 20 orderings give U = 0..9 with counts 1,1,2,3,3,3,3,2,1,1.
        let counts = [1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 2.0, 1.0, 1.0];
        let mut acc = 0.0;
        for (u, c) in counts.iter().enumerate() {
            acc += c;
            assert!((mann_whitney_cdf(3, 3, u) - acc / 20.0).abs() < 1e-12, "u = {u}");
        }
        // Unequal sizes are symmetric in m and n.
        for u in 0..=12 {
            assert!((mann_whitney_cdf(3, 4, u) - mann_whitney_cdf(4, 3, u)).abs() < 1e-12);
        }
    }

    #[test]
    fn critical_values_match_the_printed_table() {
        // Two-sided 5% critical values of U for equal samples (the largest
        // u with P(U <= u) <= 0.025), as printed in Mann–Whitney tables.
        for (n, crit) in [(5, 2), (10, 23), (15, 64), (20, 127)] {
            assert!(mann_whitney_cdf(n, n, crit) <= 0.025, "n = {n}");
            assert!(mann_whitney_cdf(n, n, crit + 1) > 0.025, "n = {n}");
        }
        // Exact values from scipy.stats.mannwhitneyu(method="exact"), one-sided.
        assert!((mann_whitney_cdf(15, 15, 64) - 0.022_666_949_548_961_327).abs() < 1e-12);
        assert!((mann_whitney_cdf(15, 15, 65) - 0.025_111_186_666_728_55).abs() < 1e-12);
        // The normal approximation is close to the exact distribution at 30 x 30.
        for u in [300, 345, 400, 450] {
            assert!((normal_cdf_u(30, 30, u) - mann_whitney_cdf(30, 30, u)).abs() < 0.003, "u = {u}");
        }
    }

    #[test]
    fn shift_and_interval_by_hand() {
        // b - a over all pairs: -1, 0, 1, 1, 2, 3, 4, 5, 6: median 2. At 80%,
        // 2 P(U <= 1) = 0.2 allows k = 2: [D(2), D(8)] = [0, 5], coverage 0.8.
        let s = hodges_lehmann_shift(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0], 0.80).unwrap();
        assert_eq!((s.estimate, s.low, s.high), (2.0, 0.0, 5.0));
        assert!((s.coverage - 0.8).abs() < 1e-12);
        // 95% needs more than three values a side: 2 P(U = 0) = 0.1.
        assert!(matches!(hodges_lehmann_shift(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0], 0.95), Err(StatsError::TooSmall { .. })));
        assert!(hodges_lehmann_shift(&[], &[1.0], 0.95).is_err());
        assert!(hodges_lehmann_shift(&[f64::NAN], &[1.0], 0.95).is_err());
    }

    #[test]
    fn one_collapsed_run_barely_moves_the_shift() {
        // Fifteen runs a side, b higher by 0.001 throughout; then one run of
        // a collapses by 0.04. The mean difference moves by 0.04 / 15 = 0.0027,
        // the Hodges–Lehmann shift by one step of the runs' grid, 0.0004: the
        // collapsed run's 15 differences all rank at the top, 8 of them from
        // at or below the median.
        let a: Vec<f64> = (0..15).map(|i| 0.700 + 0.0004 * i as f64).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.001).collect();
        let clean = hodges_lehmann_shift(&a, &b, 0.95).unwrap();
        assert!((clean.estimate - 0.001).abs() < 1e-12 && clean.low < 0.001 && clean.high > 0.001, "{clean:?}");
        let mut hit = a.clone();
        hit[7] -= 0.04;
        let s = hodges_lehmann_shift(&hit, &b, 0.95).unwrap();
        assert!((s.estimate - 0.0014).abs() < 1e-9, "{s:?}");
        assert!(s.coverage >= 0.95 && s.coverage < 0.96, "{s:?}");
    }

    #[test]
    fn large_samples_take_the_normal_approximation_at_the_exact_index() {
        // 101 x 101 = 10,201 pairs: above EXACT_MAX_PAIRS, so the interval's
        // index comes from the normal approximation; it must land within one
        // place of the exact distribution's index, at about 95% coverage.
        let (m, n) = (101, 101);
        assert!(m * n > EXACT_MAX_PAIRS);
        let a: Vec<f64> = (0..m).map(|i| (i as f64 * 0.754_877_666_2).fract()).collect();
        let b: Vec<f64> = (0..n).map(|j| (j as f64 * 0.569_840_290_9).fract() + 0.1).collect();
        let s = hodges_lehmann_shift(&a, &b, 0.95).unwrap();
        let mut d: Vec<f64> = b.iter().flat_map(|y| a.iter().map(move |x| y - x)).collect();
        d.sort_by(f64::total_cmp);
        let mut acc = 0.0;
        let k_exact = exact_pmf(m, n)
            .iter()
            .take_while(|&&p| {
                acc += p;
                2.0 * acc <= 0.05
            })
            .count();
        let at = d.iter().position(|&x| x == s.low).unwrap() + 1;
        assert!(at.abs_diff(k_exact) <= 1, "normal k {at}, exact k {k_exact}");
        assert_eq!(s.high, d[d.len() - at]);
        assert!((s.coverage - 0.95).abs() < 0.002, "{s:?}");
        assert!(s.low < s.estimate && s.estimate < s.high);
    }
}
