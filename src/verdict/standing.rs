//! How an arm stands against tuned equal weighting of the same model:
//! better / worse only where the 95% CI of the paired difference excludes
//! zero, within noise otherwise, and no verdict at all on fewer than
//! [`MIN_SEEDS`] paired seeds.

use serde::Serialize;

use crate::stats::DiffCi;

/// Fewest paired seeds an arm needs for a verdict.
pub const MIN_SEEDS: usize = 3;

/// Outcome of a difference against a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Better,
    Worse,
    WithinNoise,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::WithinNoise => "within noise",
        }
    }

    /// From a CI of `candidate - baseline`.
    pub fn from_ci(ci: &DiffCi, higher_is_better: bool) -> Verdict {
        if !ci.excludes_zero() {
            Verdict::WithinNoise
        } else if (ci.estimate > 0.0) == higher_is_better {
            Verdict::Better
        } else {
            Verdict::Worse
        }
    }
}

/// An arm's standing in the leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Standing {
    /// Tuned equal weighting itself: what the model's other arms are measured against.
    Baseline,
    Judged { verdict: Verdict },
    /// Fewer than [`MIN_SEEDS`] seeds pair with the baseline.
    TooFewSeeds { seeds: usize },
    /// The model has no equal-weighting arm.
    NoBaseline,
}

impl Standing {
    /// From the paired CI against the baseline and the number of paired seeds.
    pub fn judge(ci: Option<&DiffCi>, paired_seeds: usize, higher_is_better: bool) -> Standing {
        match ci {
            Some(ci) if paired_seeds >= MIN_SEEDS => Standing::Judged { verdict: Verdict::from_ci(ci, higher_is_better) },
            _ => Standing::TooFewSeeds { seeds: paired_seeds },
        }
    }

    pub fn label(&self) -> String {
        match self {
            Standing::Baseline => "baseline".into(),
            Standing::Judged { verdict } => verdict.label().into(),
            Standing::TooFewSeeds { seeds } => format!("too few seeds ({seeds} < {MIN_SEEDS})"),
            Standing::NoBaseline => "no equal-weighting arm".into(),
        }
    }
}
