//! Pure statistics over seeds: mean, sample standard deviation, the normal
//! and Student t distributions, and 95% confidence intervals of a difference
//! (paired by seed, or Welch's for independent samples). No I/O and no torch,
//! so every number can be checked by hand or against a printed table.
//!
//! The special functions come from crates: Student's t from `statrs`
//! (`StudentsT`, real degrees of freedom, as Welch–Satterthwaite gives), the
//! normal quantile from its `Normal`, and the normal tails from `libm`'s
//! `erfc` (a port of the C library's, accurate to an ulp: statrs 0.19's own
//! erf is good to ~1e-10 only). Two things are kept here on purpose, both
//! checked by the tests against printed tables: the conventions (two-sided
//! p-values, quantiles that refuse probabilities outside (0, 1) instead of
//! panicking), and the t quantile, found by bisection on statrs's upper tail
//! because statrs's `StudentsT::inverse_cdf` goes wrong above ~1e4 degrees of
//! freedom (1.83 instead of 1.96 at 1e7) and does not return at 1e8.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use thiserror::Error;

/// Summary of a sample of values (e.g. one metric over seeds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator); 0 for n = 1.
    pub std: f64,
}

/// Mean and sample std; `None` for an empty sample.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    Some(Summary { n, mean, std })
}

impl Summary {
    /// "0.7312 ± 0.0021" (or just the mean for one value).
    pub fn display(&self, digits: usize) -> String {
        if self.n > 1 {
            format!("{:.*} ± {:.*}", digits, self.mean, digits, self.std)
        } else {
            format!("{:.*}", digits, self.mean)
        }
    }
}

/// Why a statistic could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    #[error("{what}: need at least {need} values, got {got}")]
    TooFew { what: &'static str, need: usize, got: usize },
    #[error("paired samples differ in length ({a} vs {b})")]
    Unpaired { a: usize, b: usize },
    #[error("{what} must lie in {range}, got {value}")]
    OutOfRange { what: &'static str, range: &'static str, value: f64 },
    #[error("{what}: a value is not finite")]
    NotFinite { what: &'static str },
    #[error("{what}: samples of {a} and {b} values are too small for a {level} interval")]
    TooSmall { what: &'static str, a: usize, b: usize, level: f64 },
}

type Result<T> = std::result::Result<T, StatsError>;

// ---------------------------------------------------------------------------
// Distributions.

/// Standard normal CDF Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Two-sided p-value of a standard normal statistic: 2 (1 - Φ(|z|)).
pub fn normal_two_sided_p(z: f64) -> f64 {
    libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Student's t with `df` > 0 (real) degrees of freedom.
fn students_t(df: f64) -> Result<StudentsT> {
    StudentsT::new(0.0, 1.0, df).map_err(|_| StatsError::OutOfRange { what: "degrees of freedom", range: "(0, inf)", value: df })
}

/// Student t CDF with `df` > 0 (real) degrees of freedom (NaN for other `df`).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    students_t(df).map_or(f64::NAN, |d| d.cdf(t))
}

/// Two-sided p-value of a t statistic: 2 P(T > |t|) (NaN for `df` <= 0).
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    students_t(df).map_or(f64::NAN, |d| (2.0 * d.sf(t.abs())).min(1.0))
}

/// Solves `tail(x) = q` for x >= 0 with `tail` decreasing from 1/2 at 0,
/// by bisection to the last representable bit.
fn invert_upper_tail(q: f64, tail: impl Fn(f64) -> f64) -> f64 {
    let mut hi = 1.0;
    while tail(hi) > q && hi < 1e300 {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..2000 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if tail(mid) > q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn check_prob(p: f64) -> Result<()> {
    if p > 0.0 && p < 1.0 {
        Ok(())
    } else {
        Err(StatsError::OutOfRange { what: "probability", range: "(0, 1)", value: p })
    }
}

/// Quantile of Student's t: the t with `t_cdf(t, df) = p`.
pub fn t_quantile(p: f64, df: f64) -> Result<f64> {
    check_prob(p)?;
    let d = students_t(df)?;
    let upper = p.max(1.0 - p);
    let t = if upper == 0.5 { 0.0 } else { invert_upper_tail(1.0 - upper, |x| d.sf(x)) };
    Ok(if p < 0.5 { -t } else { t })
}

/// Quantile of the standard normal: the z with `normal_cdf(z) = p`.
pub fn normal_quantile(p: f64) -> Result<f64> {
    check_prob(p)?;
    Ok(Normal::standard().inverse_cdf(p))
}

// ---------------------------------------------------------------------------
// Confidence intervals of a difference.

/// How a difference was tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffMethod {
    /// Paired t on per-seed differences (n - 1 df).
    PairedT,
    /// Welch's t with Welch–Satterthwaite df.
    WelchT,
    /// DeLong's test for two correlated AUCs (normal).
    Delong,
    /// One-sample t on the values themselves (n - 1 df): the CI of a mean.
    OneSampleT,
}

impl DiffMethod {
    pub fn label(self) -> &'static str {
        match self {
            DiffMethod::PairedT => "paired t",
            DiffMethod::WelchT => "Welch t",
            DiffMethod::Delong => "DeLong",
            DiffMethod::OneSampleT => "t",
        }
    }
}

/// A difference `b - a` with its standard error and confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DiffCi {
    pub estimate: f64,
    pub se: f64,
    /// Degrees of freedom of the t reference (`None` for a normal one).
    pub df: Option<f64>,
    pub level: f64,
    pub low: f64,
    pub high: f64,
    /// Two-sided p-value of "no difference"; `None` when the standard error
    /// is 0 (every paired difference equal), where no test statistic exists.
    pub p_value: Option<f64>,
    pub method: DiffMethod,
}

impl DiffCi {
    /// Whether the interval excludes 0.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// A confidence level must lie in (0, 1).
pub fn check_level(level: f64) -> Result<()> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(StatsError::OutOfRange { what: "confidence level", range: "(0, 1)", value: level })
    }
}

/// Every value of a sample must be finite; `what` names the sample.
pub fn check_finite(what: &'static str, v: &[f64]) -> Result<()> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(StatsError::NotFinite { what })
    }
}

fn t_interval(estimate: f64, se: f64, df: f64, level: f64, method: DiffMethod) -> Result<DiffCi> {
    let half = t_quantile(0.5 + level / 2.0, df)? * se;
    let p_value = (se > 0.0).then(|| t_two_sided_p(estimate / se, df));
    Ok(DiffCi { estimate, se, df: Some(df), level, low: estimate - half, high: estimate + half, p_value, method })
}

/// CI of the mean of `b[i] - a[i]` (pairs share a seed), t with n - 1 df.
pub fn paired_diff_ci(a: &[f64], b: &[f64], level: f64) -> Result<DiffCi> {
    check_level(level)?;
    if a.len() != b.len() {
        return Err(StatsError::Unpaired { a: a.len(), b: b.len() });
    }
    check_finite("paired samples", a)?;
    check_finite("paired samples", b)?;
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let s = summarize(&d).filter(|s| s.n >= 2).ok_or(StatsError::TooFew { what: "paired CI", need: 2, got: d.len() })?;
    t_interval(s.mean, s.std / (s.n as f64).sqrt(), (s.n - 1) as f64, level, DiffMethod::PairedT)
}

/// CI of the mean of one sample (e.g. a metric over seeds), t with n - 1
/// df: the interval of a mean's difference from 0.
pub fn mean_ci(values: &[f64], level: f64) -> Result<DiffCi> {
    check_level(level)?;
    check_finite("sample", values)?;
    let s = summarize(values).filter(|s| s.n >= 2).ok_or(StatsError::TooFew { what: "CI of a mean", need: 2, got: values.len() })?;
    t_interval(s.mean, s.std / (s.n as f64).sqrt(), (s.n - 1) as f64, level, DiffMethod::OneSampleT)
}

/// Welch CI of mean(b) - mean(a) for independent samples, with the
/// Welch–Satterthwaite degrees of freedom.
pub fn welch_diff_ci(a: &[f64], b: &[f64], level: f64) -> Result<DiffCi> {
    check_level(level)?;
    check_finite("Welch sample", a)?;
    check_finite("Welch sample", b)?;
    let sa = summarize(a).filter(|s| s.n >= 2).ok_or(StatsError::TooFew { what: "Welch CI, first sample", need: 2, got: a.len() })?;
    let sb = summarize(b).filter(|s| s.n >= 2).ok_or(StatsError::TooFew { what: "Welch CI, second sample", need: 2, got: b.len() })?;
    let (va, vb) = (sa.std * sa.std / sa.n as f64, sb.std * sb.std / sb.n as f64);
    let se = (va + vb).sqrt();
    let estimate = sb.mean - sa.mean;
    if se == 0.0 {
        // Both samples constant: the df formula is 0/0; the interval is the point.
        let df = (sa.n + sb.n - 2) as f64;
        return Ok(DiffCi { estimate, se, df: Some(df), level, low: estimate, high: estimate, p_value: None, method: DiffMethod::WelchT });
    }
    let df = (va + vb).powi(2) / (va * va / (sa.n - 1) as f64 + vb * vb / (sb.n - 1) as f64);
    t_interval(estimate, se, df, level, DiffMethod::WelchT)
}

/// Normal-theory CI of a difference with a known standard error (DeLong).
pub fn normal_diff_ci(estimate: f64, se: f64, level: f64, method: DiffMethod) -> Result<DiffCi> {
    check_level(level)?;
    if !(estimate.is_finite() && se.is_finite() && se >= 0.0) {
        return Err(StatsError::NotFinite { what: "normal CI" });
    }
    let half = normal_quantile(0.5 + level / 2.0)? * se;
    let p_value = (se > 0.0).then(|| normal_two_sided_p(estimate / se));
    Ok(DiffCi { estimate, se, df: None, level, low: estimate - half, high: estimate + half, p_value, method })
}

#[cfg(test)]
mod tests {
    use super::*;
    // The special functions under the distributions, checked against closed forms.
    use libm::erfc;
    use statrs::function::{beta::beta_reg as inc_beta, gamma::ln_gamma};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn mean_and_sample_std_by_hand() {
        let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        // Sum of squares 32, / 7.
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(summarize(&[3.0]).unwrap().std, 0.0);
        assert!(summarize(&[]).is_none());
        assert_eq!(summarize(&[1.0, 3.0]).unwrap().display(2), "2.00 ± 1.41");
    }

    #[test]
    fn special_functions_against_closed_forms() {
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-13));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-13));
        assert!(close(ln_gamma(1.0), 0.0, 1e-14));
        // I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1 - x)^b.
        for x in [0.01, 0.3, 0.5, 0.77, 0.999] {
            assert!(close(inc_beta(1.0, 1.0, x), x, 1e-13));
            assert!(close(inc_beta(3.5, 1.0, x), x.powf(3.5), 1e-13));
            assert!(close(inc_beta(1.0, 4.0, x), 1.0 - (1.0 - x).powi(4), 1e-13));
        }
        // Published values of erfc and Φ.
        assert!(close(erfc(0.5), 0.479_500_122_186_953_5, 1e-14));
        assert!(close(erfc(3.0), 2.209_049_699_858_544e-5, 1e-18));
        assert!(close(normal_cdf(1.0), 0.841_344_746_068_542_9, 1e-14));
        assert!(close(normal_cdf(-3.0), 0.001_349_898_031_630_094_6, 1e-16));
        assert!(close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-14));
        assert!(close(normal_two_sided_p(1.959_963_984_540_054), 0.05, 1e-14));
        assert!(close(normal_quantile(0.975).unwrap(), 1.959_963_984_540_054, 1e-12));
        assert!(close(normal_quantile(0.001).unwrap(), -3.090_232_306_167_813_5, 1e-11));
    }

    #[test]
    fn t_cdf_matches_closed_forms() {
        for t in [-7.0, -1.3, 0.0, 0.4, 2.0, 25.0] {
            // df = 1 (Cauchy): 1/2 + atan(t)/π; df = 2: 1/2 + t / (2 sqrt(2 + t²)).
            assert!(close(t_cdf(t, 1.0), 0.5 + f64::atan(t) / std::f64::consts::PI, 1e-13), "df 1, t {t}");
            assert!(close(t_cdf(t, 2.0), 0.5 + t / (2.0 * (2.0 + t * t).sqrt()), 1e-13), "df 2, t {t}");
        }
        // Large df tends to the normal.
        assert!(close(t_cdf(1.96, 1e6), normal_cdf(1.96), 1e-6));
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Closed forms: df 1, tan(π (p - 1/2)); df 2, (2p - 1) / sqrt(2 p (1 - p)).
        let q = |p: f64, df: f64| t_quantile(p, df).unwrap();
        assert!(close(q(0.975, 1.0), (std::f64::consts::PI * 0.475).tan(), 1e-9));
        assert!(close(q(0.975, 2.0), 0.95 / (2.0f64 * 0.975 * 0.025).sqrt(), 1e-11));
        // Printed t tables (3 decimals) and R's qt (more).
        assert!(close(q(0.975, 1.0), 12.706, 5e-4));
        assert!(close(q(0.975, 4.0), 2.776_445_105, 1e-8));
        assert!(close(q(0.975, 10.0), 2.228_138_852, 1e-8));
        assert!(close(q(0.975, 30.0), 2.042_272_456, 1e-8));
        assert!(close(q(0.995, 5.0), 4.032_142_984, 1e-8));
        assert!(close(q(0.95, 3.0), 2.353_363_435, 1e-8));
        assert!(close(q(0.025, 4.0), -2.776_445_105, 1e-8));
        assert_eq!(q(0.5, 7.0), 0.0);
        assert!(close(q(0.975, 1e7), 1.959_963_984_540_054, 1e-6));
        // Round trip at a non-integer df (Welch).
        let t = q(0.9, 4.3);
        assert!(close(t_cdf(t, 4.3), 0.9, 1e-12));
        assert!(t_quantile(1.0, 3.0).is_err() && t_quantile(0.5, 0.0).is_err());
    }

    #[test]
    fn t_quantiles_at_huge_df_tend_to_the_normal() {
        // Where statrs's own StudentsT::inverse_cdf is off (1e6, 1e7) or does
        // not return (1e8), the bisection gives the normal limit plus the
        // first Cornish–Fisher term (z³ + z) / (4 df).
        let z = 1.959_963_984_540_054;
        for df in [1e5, 1e6, 1e7, 1e8] {
            let want = z + (z * z * z + z) / (4.0 * df);
            assert!(close(t_quantile(0.975, df).unwrap(), want, 1e-8), "df {df}");
        }
    }

    #[test]
    fn paired_ci_by_hand() {
        // d = [0.02, 0.03, 0.01]: mean 0.02, sd 0.01, se 0.01/√3, df 2.
        let a = [0.70, 0.72, 0.71];
        let b = [0.72, 0.75, 0.72];
        let ci = paired_diff_ci(&a, &b, 0.95).unwrap();
        let se = 0.01 / 3f64.sqrt();
        let t975 = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt(); // df 2 closed form, 4.3027
        assert!(close(ci.estimate, 0.02, 1e-12));
        assert!(close(ci.se, se, 1e-12));
        assert_eq!(ci.df, Some(2.0));
        assert!(close(ci.low, 0.02 - t975 * se, 1e-10) && close(ci.high, 0.02 + t975 * se, 1e-10));
        assert!(close(ci.low, -0.004_841, 1e-6));
        // t = 2√3; df 2: p = 1 - t / sqrt(2 + t²) = 1 - sqrt(12/14).
        assert!(close(ci.p_value.unwrap(), 1.0 - (12.0f64 / 14.0).sqrt(), 1e-12));
        assert!(!ci.excludes_zero());
        assert_eq!(ci.method, DiffMethod::PairedT);
        assert!(matches!(paired_diff_ci(&a, &b[..2], 0.95), Err(StatsError::Unpaired { .. })));
        assert!(matches!(paired_diff_ci(&a[..1], &b[..1], 0.95), Err(StatsError::TooFew { .. })));
        // Identical per-seed differences: a point interval and no p-value.
        let c = paired_diff_ci(&[1.0, 2.0], &[1.5, 2.5], 0.95).unwrap();
        assert_eq!((c.low, c.high, c.p_value), (0.5, 0.5, None));
        assert!(c.excludes_zero());
    }

    #[test]
    fn mean_ci_by_hand() {
        // [1, 2, 3, 4, 5]: mean 3, sd √2.5, se √0.5, df 4, t 2.776445 (printed table).
        let ci = mean_ci(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95).unwrap();
        assert!(close(ci.estimate, 3.0, 1e-12) && close(ci.se, 0.5f64.sqrt(), 1e-12));
        assert_eq!((ci.df, ci.method), (Some(4.0), DiffMethod::OneSampleT));
        assert!(close(ci.high - 3.0, 2.776_445 * 0.5f64.sqrt(), 1e-6), "{ci:?}");
        assert!(close(ci.low, 3.0 - (ci.high - 3.0), 1e-12));
        assert!(matches!(mean_ci(&[1.0], 0.95), Err(StatsError::TooFew { .. })));
    }

    #[test]
    fn welch_ci_by_hand() {
        // a: mean 2, var 1, n 3; b: mean 5, var 20/3, n 4.
        // se² = 1/3 + 5/3 = 2; df = 4 / ((1/3)²/2 + (5/3)²/3) = 216/53.
        let ci = welch_diff_ci(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0, 8.0], 0.95).unwrap();
        assert!(close(ci.estimate, 3.0, 1e-12));
        assert!(close(ci.se, 2f64.sqrt(), 1e-12));
        assert!(close(ci.df.unwrap(), 216.0 / 53.0, 1e-12));
        let half = ci.high - ci.estimate;
        // Between the table values at 5 and 4 df, times se.
        assert!(half > 2.570_582 * 2f64.sqrt() && half < 2.776_445 * 2f64.sqrt(), "{half}");
        assert!(close(t_cdf(half / 2f64.sqrt(), 216.0 / 53.0), 0.975, 1e-12));
        assert!(close(ci.estimate - ci.low, half, 1e-12));
        assert_eq!(ci.method, DiffMethod::WelchT);
        assert!(ci.excludes_zero() == (ci.low > 0.0));
        assert!(matches!(welch_diff_ci(&[1.0], &[1.0, 2.0], 0.95), Err(StatsError::TooFew { .. })));
        assert!(matches!(welch_diff_ci(&[1.0, f64::NAN], &[1.0, 2.0], 0.95), Err(StatsError::NotFinite { .. })));
    }

    #[test]
    fn normal_ci_by_hand() {
        let ci = normal_diff_ci(0.03, 0.01, 0.95, DiffMethod::Delong).unwrap();
        assert!(close(ci.low, 0.03 - 0.019_599_639_845_400_54, 1e-12));
        assert!(close(ci.p_value.unwrap(), normal_two_sided_p(3.0), 1e-15));
        assert!(close(ci.p_value.unwrap(), 0.002_699_796_063_260_2, 1e-13));
        assert!(ci.excludes_zero());
        assert_eq!(ci.df, None);
    }
}
