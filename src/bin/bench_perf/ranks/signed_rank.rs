//! The Hodges–Lehmann estimate of a paired shift — the median of the Walsh
//! averages `(d[i] + d[j]) / 2, i <= j` of the pair differences — with its
//! distribution-free interval from the Wilcoxon signed-rank distribution
//! (Hodges & Lehmann, Ann. Math. Statist. 34, 1963,
//! <https://doi.org/10.1214/aoms/1177704172>; the interval as in Hollander &
//! Wolfe, "Nonparametric Statistical Methods", section 3.3, and Bauer, JASA 67,
//! 1972, <https://doi.org/10.1080/01621459.1972.10481279>).
//!
//! Why a paired version: when both sides of a comparison share each round's
//! randomness (`bench-perf --masks libtorch` draws the same dropout masks on
//! both sides), the round is the unit and the two-sample shift of
//! [`super::shift`] throws that pairing away. Like the two-sample shift, one
//! round that went wrong cannot decide it. The interval holds for any
//! distribution of the differences symmetric about the shift; ties are not
//! corrected for.

use mtlbench::stats::{check_finite, check_level, normal_cdf, StatsError};

use super::{Result, ShiftCi};

/// Up to this many pairs the signed-rank distribution is exact (its DP costs
/// `n^3 / 2` additions); a normal approximation above.
pub const EXACT_MAX_N: usize = 200;

/// Null distribution of the signed-rank statistic `W+` for `n` pairs:
/// `pmf[w] = P(W+ = w)`, `w = 0..=n(n+1)/2`. Each rank `k` joins the positive
/// sum with probability 1/2: `P_k(w) = (P_{k-1}(w) + P_{k-1}(w - k)) / 2`.
fn exact_pmf(n: usize) -> Vec<f64> {
    let mut p = vec![0.0; n * (n + 1) / 2 + 1];
    p[0] = 1.0;
    for k in 1..=n {
        let top = k * (k + 1) / 2;
        for w in (0..=top).rev() {
            let with = if w >= k { p[w - k] } else { 0.0 };
            p[w] = 0.5 * (p[w] + with);
        }
    }
    p
}

fn normal_cdf_w(n: usize, w: usize) -> f64 {
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let sd = (nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0).sqrt();
    normal_cdf((w as f64 + 0.5 - mean) / sd)
}

/// `P(W+ <= w)` for `w = 0..half`, where `half = n(n+1)/4` (rounded down):
/// exact up to [`EXACT_MAX_N`] pairs, normal with continuity correction above.
fn lower_cdf(n: usize) -> Vec<f64> {
    let half = n * (n + 1) / 4;
    if n <= EXACT_MAX_N {
        exact_pmf(n)
            .iter()
            .scan(0.0, |acc, p| {
                *acc += p;
                Some(*acc)
            })
            .take(half)
            .collect()
    } else {
        (0..half).map(|w| normal_cdf_w(n, w)).collect()
    }
}

/// Hodges–Lehmann estimate of the paired shift `b - a` (positive when `b`
/// is higher) with the narrowest interval of the form `[A(k), A(M + 1 - k)]`
/// of the sorted Walsh averages `A` (`M = n(n+1)/2`) whose coverage is not
/// below `level`.
pub fn hodges_lehmann_paired(a: &[f64], b: &[f64], level: f64) -> Result<ShiftCi> {
    check_level(level)?;
    check_finite("Hodges–Lehmann paired sample", a)?;
    check_finite("Hodges–Lehmann paired sample", b)?;
    if a.len() != b.len() {
        return Err(StatsError::Unpaired { a: a.len(), b: b.len() });
    }
    let n = a.len();
    if n == 0 {
        return Err(StatsError::TooFew { what: "Hodges–Lehmann paired shift", need: 1, got: 0 });
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let mut walsh: Vec<f64> = Vec::with_capacity(n * (n + 1) / 2);
    for (i, x) in d.iter().enumerate() {
        walsh.extend(d[i..].iter().map(|y| (x + y) / 2.0));
    }
    walsh.sort_by(f64::total_cmp);
    let m = walsh.len();
    let estimate = if m % 2 == 1 { walsh[m / 2] } else { (walsh[m / 2 - 1] + walsh[m / 2]) / 2.0 };
    // k = 1 + the largest w with 2 P(W+ <= w) <= 1 - level.
    let cdf = lower_cdf(n);
    let k = cdf.iter().take_while(|&&c| 2.0 * c <= 1.0 - level + 1e-12).count();
    if k == 0 {
        return Err(StatsError::TooSmall { what: "Hodges–Lehmann paired interval", a: n, b: n, level });
    }
    Ok(ShiftCi { estimate, low: walsh[k - 1], high: walsh[m - k], level, coverage: 1.0 - 2.0 * cdf[k - 1], n_a: n, n_b: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `P(W+ <= w)` for `n` pairs under "no shift".
    fn signed_rank_cdf(n: usize, w: usize) -> f64 {
        let total = n * (n + 1) / 2;
        if w >= total {
            return 1.0;
        }
        if n <= EXACT_MAX_N {
            exact_pmf(n)[..=w].iter().sum::<f64>().min(1.0)
        } else {
            normal_cdf_w(n, w)
        }
    }

    /// P(W+ <= w) by enumerating all 2^n sign patterns.
    fn brute_cdf(n: usize, w: usize) -> f64 {
        let hits = (0u32..1 << n).filter(|mask| (1..=n).filter(|k| mask >> (k - 1) & 1 == 1).sum::<usize>() <= w).count();
        hits as f64 / (1u64 << n) as f64
    }

    #[test]
    fn distribution_matches_counts_and_enumeration() {
        // n = 3: subsets of {1, 2, 3} sum to 0, 1, 2, 3, 3, 4, 5, 6.
        let counts = [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0];
        let mut acc = 0.0;
        for (w, c) in counts.iter().enumerate() {
            acc += c;
            assert!((signed_rank_cdf(3, w) - acc / 8.0).abs() < 1e-12, "w = {w}");
        }
        for w in 0..=55 {
            assert!((signed_rank_cdf(10, w) - brute_cdf(10, w)).abs() < 1e-12, "n = 10, w = {w}");
        }
    }

    #[test]
    fn critical_values_match_the_printed_table() {
        // Two-sided 5% critical values of the signed-rank statistic (reject
        // when W <= c), as printed in the usual tables.
        for (n, c) in [(6, 0), (7, 2), (8, 3), (9, 5), (10, 8), (12, 13), (15, 25), (20, 52), (25, 89)] {
            let crit = (0..n * (n + 1) / 2).take_while(|&w| 2.0 * signed_rank_cdf(n, w) <= 0.05).last();
            assert_eq!(crit, Some(c), "n = {n}");
        }
    }

    #[test]
    fn estimate_and_interval_by_hand() {
        // d = 1..6: the 21 Walsh averages sorted are 1, 1.5, 2, 2, 2.5, 2.5,
        // 3, 3, 3, 3.5 x 3, 4 x 3, 4.5, 4.5, 5, 5, 5.5, 6; median 3.5.
        let a = [0.0; 6];
        let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let s = hodges_lehmann_paired(&a, &b, 0.95).expect("6 pairs");
        // 95%: 2 P(W+ <= 0) = 2/64 <= 0.05 < 2 P(W+ <= 1): the whole range.
        assert_eq!((s.estimate, s.low, s.high), (3.5, 1.0, 6.0));
        assert!((s.coverage - (1.0 - 2.0 / 64.0)).abs() < 1e-12);
        // 80%: P(W+ <= 3) = 5/64 <= 0.1 < P(W+ <= 4) = 7/64, so k = 4: [A(4), A(18)].
        let s = hodges_lehmann_paired(&a, &b, 0.80).expect("6 pairs");
        assert_eq!((s.low, s.high), (2.0, 5.0));
        assert!((s.coverage - (1.0 - 10.0 / 64.0)).abs() < 1e-12);
        // Shifting one side shifts everything; the sign is b - a.
        let t = hodges_lehmann_paired(&b, &a, 0.80).expect("6 pairs");
        assert_eq!((t.estimate, t.low, t.high), (-3.5, -5.0, -2.0));
        // One wild pair moves the estimate by one Walsh step, not by 94 / 6.
        let wild = [1.0, 2.0, 3.0, 4.0, 5.0, 100.0];
        let w = hodges_lehmann_paired(&a, &wild, 0.95).expect("6 pairs");
        assert_eq!(w.estimate, 3.5, "{w:?}");
    }

    #[test]
    fn too_few_pairs_and_bad_input_are_errors() {
        // Five pairs: 2 P(W+ = 0) = 2/32 > 0.05, no 95% interval.
        let five = [0.1, 0.2, 0.3, 0.4, 0.5];
        assert!(matches!(hodges_lehmann_paired(&[0.0; 5], &five, 0.95), Err(StatsError::TooSmall { .. })));
        assert!(matches!(hodges_lehmann_paired(&[0.0; 4], &five, 0.95), Err(StatsError::Unpaired { a: 4, b: 5 })));
        assert!(matches!(hodges_lehmann_paired(&[0.0; 6], &[f64::NAN; 6], 0.95), Err(StatsError::NotFinite { .. })));
    }

    #[test]
    fn normal_branch_agrees_with_the_exact_index() {
        // At n = 150 the exact and the normal critical values differ by at most one.
        let n = 150;
        let exact = lower_cdf(n).iter().take_while(|&&c| 2.0 * c <= 0.05).count();
        let normal = (0..n * (n + 1) / 4).take_while(|&w| 2.0 * normal_cdf_w(n, w) <= 0.05).count();
        assert!(exact.abs_diff(normal) <= 1 && exact > 3000, "exact {exact}, normal {normal}");
        // Above EXACT_MAX_N the normal branch is used and still gives an interval.
        let a = vec![0.0; 201];
        let b: Vec<f64> = (0..201).map(|i| i as f64).collect();
        let s = hodges_lehmann_paired(&a, &b, 0.95).expect("201 pairs");
        assert_eq!(s.estimate, 100.0);
        assert!(s.low < 100.0 && s.high > 100.0);
    }
}
