//! What a reader of the leaderboard must know before trusting it: unequal
//! tuning budgets, configurations missing seeds, models without a tuned
//! equal-weighting arm, incomplete single-task baselines, runs left out.
//!
//! Budgets are compared after expansion, as distinct configurations per
//! arm: an override axis on one strategy's section (e.g.
//! `strategies.gradnorm.alpha`) multiplies that arm's configurations only,
//! since the others' canonical configurations do not contain the key. The
//! static-weight arm is compared per weight vector.

use std::fmt;

use serde::Serialize;

use super::arm::{Arm, ArmKind};

/// A caveat of the leaderboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Warning {
    /// Arms were tuned over different numbers of configurations.
    UnequalBudgets { budgets: Vec<(String, usize)> },
    /// Configurations of an arm lack runs for some of the leaderboard's seeds.
    MissingSeeds { arm: String, configurations: Vec<(String, Vec<i64>)> },
    /// A model has no equal-weighting arm to measure its arms against.
    NoBaseline { model: String },
    /// Some tasks have single-task baselines, others none: no Δm.
    IncompleteSingleTask { missing: Vec<String> },
    /// Runs that are not part of the verdict.
    LeftOut { unfinished: usize, fusions: usize },
}

fn seeds(s: &[i64]) -> String {
    s.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnequalBudgets { budgets } => {
                let list: Vec<String> = budgets.iter().map(|(a, n)| format!("{a} {n}")).collect();
                write!(f, "unequal tuning budgets (configurations per arm): {}; an arm tuned more has more chances to win", list.join(", "))
            }
            Warning::MissingSeeds { arm, configurations } => {
                let list: Vec<String> = configurations.iter().map(|(c, s)| format!("{c} lacks seed(s) {}", seeds(s))).collect();
                write!(f, "{arm}: {}", list.join("; "))
            }
            Warning::NoBaseline { model } => write!(f, "{model} has no equal-weighting arm: its arms get no verdict"),
            Warning::IncompleteSingleTask { missing } => {
                write!(f, "no single-task baseline for task(s) {}: no Δm", missing.join(", "))
            }
            Warning::LeftOut { unfinished, fusions } => {
                write!(f, "left out: {unfinished} run(s) not finished, {fusions} fused run(s)")
            }
        }
    }
}

/// The budget of each arm, as compared: per weight vector for the static arm.
pub fn unequal_budgets(arms: &[Arm]) -> Option<Warning> {
    let budgets: Vec<(String, usize)> = arms
        .iter()
        .map(|a| {
            let name = match a.kind {
                ArmKind::Tuned => a.name(),
                ArmKind::StaticWeights => format!("{} (per weight vector)", a.name()),
            };
            (name, a.budget)
        })
        .collect();
    let first = budgets.first()?.1;
    budgets.iter().any(|b| b.1 != first).then_some(Warning::UnequalBudgets { budgets })
}

/// Configurations without a run for some of `all_seeds`.
pub fn missing_seeds(arm: &Arm, all_seeds: &[i64]) -> Option<Warning> {
    let configurations: Vec<(String, Vec<i64>)> = arm
        .configurations
        .iter()
        .filter_map(|c| {
            let missing: Vec<i64> = all_seeds.iter().copied().filter(|s| !c.seeds.contains(s)).collect();
            (!missing.is_empty()).then(|| (c.label.clone(), missing))
        })
        .collect();
    (!configurations.is_empty()).then(|| Warning::MissingSeeds { arm: arm.name(), configurations })
}
