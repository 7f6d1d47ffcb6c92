//! The text of a [`PerfReport`]: the machine and its load, one table row per
//! model and side, the ratios, the harness overhead, the exact-AUC race, and
//! each performance target marked met or missed, so a reader never has to do
//! the arithmetic.

use std::fmt;

use super::{PerfReport, SideResult};
use mtlbench::models::DropoutMasks;

/// Throughput target: mtlbench at least this many times the reference.
pub const TARGET_RATIO: f64 = 1.2;
/// Test AUCs equal within this (mean over tasks).
pub const TARGET_AUC_DELTA: f64 = 0.003;
/// Achieved FLOP/s of the step at least this share of the sgemm throughput.
pub const TARGET_SGEMM_SHARE: f64 = 0.5;
/// Throughput target against the torch.compile'd reference.
pub const TARGET_COMPILED_RATIO: f64 = 1.0;
/// Exact AUC of 10M scores within this many seconds ...
pub const TARGET_AUC_SECONDS: f64 = 1.0;
/// ... and this many times faster than scikit-learn.
pub const TARGET_AUC_SPEEDUP: f64 = 5.0;
/// Harness overhead per step at most this percentage of the step.
pub const TARGET_OVERHEAD_PERCENT: f64 = 3.0;

/// Mean of the defined AUCs.
pub fn mean_auc(r: &SideResult) -> Option<f64> {
    let v: Vec<f64> = r.test_auc.iter().filter_map(|(_, a)| *a).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Mean over runs of each run's mean AUC, with the sample standard deviation
/// across runs (`None` for a single run).
pub fn mean_auc_over(runs: &[SideResult]) -> Option<(f64, Option<f64>)> {
    let v: Vec<f64> = runs.iter().filter_map(mean_auc).collect();
    mtlbench::stats::summarize(&v).map(|s| (s.mean, (s.n > 1).then_some(s.std)))
}

/// Each round's mean test AUC of both sides, (mtlbench, pytorch), for the
/// rounds where both are defined: runs pair by round number.
pub fn round_pairs(c: &super::ModelComparison) -> Vec<(f64, f64)> {
    c.mtlbench_runs.iter().zip(&c.reference_runs).filter_map(|(a, b)| Some((mean_auc(a)?, mean_auc(b)?))).collect()
}

/// How closely the two sides' training losses follow each other (round 1).
#[derive(Debug, Clone, PartialEq)]
pub struct LossAgreement {
    /// |Δ loss| at the first step (same weights, same batch).
    pub first: f64,
    /// Largest |Δ loss| over the first ten steps.
    pub first10: f64,
    /// Steps in the tail means.
    pub tail: usize,
    pub tail_ours: f64,
    pub tail_theirs: f64,
}

/// Compares round 1's loss curves of both sides (`None` without both).
pub fn loss_agreement(c: &super::ModelComparison) -> Option<LossAgreement> {
    let a = &c.mtlbench_runs.first().unwrap_or(&c.mtlbench).losses;
    let b = &c.reference_runs.first().or(c.reference.as_ref())?.losses;
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let d = |i: usize| (a[i] - b[i]).abs();
    let tail = 50.min(n);
    let mean = |v: &[f64]| v[n - tail..n].iter().sum::<f64>() / tail as f64;
    Some(LossAgreement {
        first: d(0),
        first10: (0..n.min(10)).map(d).fold(0.0, f64::max),
        tail,
        tail_ours: mean(a),
        tail_theirs: mean(b),
    })
}

/// Rounds per side from which the AUC target is judged on the
/// Hodges–Lehmann shift (the fewest with a 95% interval: 2 P(U = 0) = 2/70).
pub const HL_MIN_ROUNDS: usize = 4;
/// Rounds from which same-mask rounds are judged on the paired shift (the
/// fewest with a 95% interval: 2 P(W+ = 0) = 2/64); with 4-5 such rounds the
/// two-sample shift is used.
pub const HL_PAIRED_MIN_ROUNDS: usize = 6;

/// The equal-test-AUC target of one model. Over [`HL_MIN_ROUNDS`] or more
/// rounds per side it is judged on the Hodges–Lehmann shift of the rounds'
/// mean AUCs (mtlbench - pytorch): a round where one task collapsed, which
/// happens to either implementation now and then, cannot decide it alone.
/// Rounds with the same masks on both sides are paired: from
/// [`HL_PAIRED_MIN_ROUNDS`] on, the shift is the paired (signed-rank) one.
/// The mean difference and its t interval (Welch, or paired by round with
/// the same masks) are shown beside it. Over 2-3 rounds the mean difference
/// decides; with one round, the median runs'.
fn auc_target(m: &super::ModelComparison, masks: DropoutMasks) -> Option<Target> {
    let r = m.reference.as_ref()?;
    let model = &m.model;
    let means = |runs: &[SideResult]| runs.iter().filter_map(mean_auc).collect::<Vec<f64>>();
    let (ours, theirs) = (means(&m.mtlbench_runs), means(&m.reference_runs));
    if ours.len() < 2 || theirs.len() < 2 {
        let d = mean_auc(&m.mtlbench)? - mean_auc(r)?;
        return Some(Target {
            what: format!("{model}: mean test AUC differs by {d:+.4} (within ±{TARGET_AUC_DELTA})"),
            met: d.abs() <= TARGET_AUC_DELTA,
        });
    }
    // Each round's (mtlbench, pytorch) means, for same-mask rounds.
    let (a, b): (Vec<f64>, Vec<f64>) = round_pairs(m).into_iter().unzip();
    // (b - a): mtlbench - pytorch, the sign of the estimate.
    let ci = if masks == DropoutMasks::Libtorch {
        mtlbench::stats::paired_diff_ci(&b, &a, 0.95).map(|c| (c, "paired by round: same masks"))
    } else {
        mtlbench::stats::welch_diff_ci(&theirs, &ours, 0.95).map(|c| (c, "Welch"))
    };
    let ci = ci.map(|(c, how)| format!(", 95% CI [{:+.4}, {:+.4}] ({how})", c.low, c.high)).unwrap_or_default();
    let mean_diff = ours.iter().sum::<f64>() / ours.len() as f64 - theirs.iter().sum::<f64>() / theirs.len() as f64;
    let rounds = match (ours.len(), theirs.len()) {
        (a, b) if a == b => format!("{a} rounds"),
        (a, b) => format!("{a} and {b} rounds"),
    };
    // The shift: paired by round with the same masks (from 6 rounds), else
    // two-sample (from 4 rounds per side).
    let shift = if masks == DropoutMasks::Libtorch && a.len() >= HL_PAIRED_MIN_ROUNDS {
        crate::ranks::hodges_lehmann_paired(&b, &a, 0.95).ok().map(|hl| (hl, format!(", paired by round over {rounds}: same masks;")))
    } else if ours.len() >= HL_MIN_ROUNDS && theirs.len() >= HL_MIN_ROUNDS {
        crate::ranks::hodges_lehmann_shift(&theirs, &ours, 0.95).ok().map(|hl| (hl, format!(" over {rounds},")))
    } else {
        None
    };
    if let Some((hl, how)) = shift {
        return Some(Target {
            what: format!(
                "{model}: test AUC shift {:+.4} (Hodges–Lehmann{how} 95% CI [{:+.4}, {:+.4}]; mean difference {mean_diff:+.4}{ci}) (within ±{TARGET_AUC_DELTA})",
                hl.estimate, hl.low, hl.high
            ),
            met: hl.estimate.abs() <= TARGET_AUC_DELTA,
        });
    }
    Some(Target {
        what: format!("{model}: mean test AUC differs by {mean_diff:+.4}, mean of {rounds}{ci} (within ±{TARGET_AUC_DELTA})"),
        met: mean_diff.abs() <= TARGET_AUC_DELTA,
    })
}

/// The lowest single-task test AUC over a side's rounds: (AUC, round from 1, task).
/// `first_round` is the report's: its runs are rounds `first_round + 1` on.
pub fn lowest_task_auc(runs: &[SideResult], first_round: usize) -> Option<(f64, usize, &str)> {
    runs.iter()
        .enumerate()
        .flat_map(|(i, r)| r.test_auc.iter().filter_map(move |(t, a)| a.map(|a| (a, first_round + i + 1, t.as_str()))))
        .min_by(|x, y| x.0.total_cmp(&y.0))
}

/// One target and whether it was met.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub what: String,
    pub met: bool,
}

impl PerfReport {
    /// Achieved FLOP/s of a side's training step.
    pub fn achieved_flops(step_flops: f64, side: &SideResult) -> f64 {
        step_flops * side.samples_per_second / side.batch_size.max(1) as f64
    }

    /// The targets that this report can judge.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        for m in &self.models {
            let share = Self::achieved_flops(m.step_flops, &m.mtlbench) / self.sgemm.median_flops;
            t.push(Target {
                what: format!("{}: step at {:.0}% of sgemm (>= {:.0}%)", m.model, share * 100.0, TARGET_SGEMM_SHARE * 100.0),
                met: share >= TARGET_SGEMM_SHARE,
            });
            if let Some(o) = &m.mtlbench.overhead {
                t.push(Target {
                    what: format!("{}: harness overhead {:.2}% of a step (<= {TARGET_OVERHEAD_PERCENT}%)", m.model, o.percent),
                    met: o.percent <= TARGET_OVERHEAD_PERCENT,
                });
            }
            if let Some(r) = &m.reference {
                let ratio = m.mtlbench.samples_per_second / r.samples_per_second;
                t.push(Target {
                    what: format!("{}: {ratio:.2}x the PyTorch eager throughput (>= {TARGET_RATIO}x)", m.model),
                    met: ratio >= TARGET_RATIO,
                });
                if let Some(target) = auc_target(m, self.masks) {
                    t.push(target);
                }
            }
            if let Some(r) = &m.compiled {
                let ratio = m.mtlbench.samples_per_second / r.samples_per_second;
                t.push(Target {
                    what: format!("{}: {ratio:.2}x the PyTorch torch.compile throughput (>= {TARGET_COMPILED_RATIO}x)", m.model),
                    met: ratio >= TARGET_COMPILED_RATIO,
                });
            }
        }
        if let Some(a) = &self.auc {
            t.push(Target {
                what: format!("exact AUC of {} scores in {:.3}s (<= {TARGET_AUC_SECONDS}s)", a.rows, a.mtlbench_seconds),
                met: a.mtlbench_seconds <= TARGET_AUC_SECONDS,
            });
            if let Some(s) = a.sklearn_seconds {
                let x = s / a.mtlbench_seconds;
                t.push(Target { what: format!("exact AUC {x:.1}x faster than scikit-learn (>= {TARGET_AUC_SPEEDUP}x)"), met: x >= TARGET_AUC_SPEEDUP });
            }
        }
        t
    }
}

fn aucs(r: &SideResult) -> String {
    let v: Vec<String> = r.test_auc.iter().map(|(_, a)| a.map_or("n/a".into(), |a| format!("{a:.4}"))).collect();
    format!("{} (mean {})", v.join(" / "), mean_auc(r).map_or("n/a".into(), |a| format!("{a:.4}")))
}

impl fmt::Display for PerfReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.machine;
        writeln!(f, "machine  {}, {} cores, {} GiB; libtorch {}; {} threads per side", m.cpu_model, m.cores, m.memory_gib, m.libtorch, self.threads)?;
        let load = |l: Option<f64>| l.map_or("?".into(), |l| format!("{l:.2}"));
        writeln!(f, "load     1-min load average {} before, {} after", load(self.load_before), load(self.load_after))?;
        writeln!(
            f,
            "data     {}: {} train rows ({} steps x batch {}, first {} untimed), {} test rows; --seed {}",
            self.dataset, self.train_rows, self.steps, self.batch_size, self.warmup, self.test_rows, self.seed
        )?;
        let each: Vec<String> = self.sgemm_runs.iter().map(|s| format!("{:.1}", s.median_flops / 1e9)).collect();
        let measured = match each.len() {
            2 => format!("measured {} before and {} after, the higher used", each[0], each[1]),
            _ => format!("measured {} (before and after each pooled run), the highest used", each.join(", ")),
        };
        writeln!(
            f,
            "sgemm    libtorch {n}x{n}x{n} f32 matmul: {:.1} GFLOP/s (median; best {:.1}); {measured}",
            self.sgemm.median_flops / 1e9,
            self.sgemm.best_flops / 1e9,
            n = self.sgemm.n
        )?;
        writeln!(f)?;
        let tasks = self.models.first().map(|m| m.mtlbench.test_auc.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(" / "));
        writeln!(
            f,
            "{:<6} {:<9} {:>10} {:>8} {:>8} {:>8} {:>7} {:>9}  test AUC {}",
            "model",
            "side",
            "samples/s",
            "step ms",
            "CPU ms",
            "GFLOP/s",
            "%sgemm",
            "peak RSS",
            tasks.unwrap_or_default()
        )?;
        for c in &self.models {
            let sides = std::iter::once(&c.mtlbench).chain(c.reference.as_ref()).chain(c.compiled.as_ref());
            for s in sides {
                let fl = Self::achieved_flops(c.step_flops, s);
                writeln!(
                    f,
                    "{:<6} {:<9} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>6.0}% {:>7.0}MB  {}",
                    c.model,
                    s.side,
                    s.samples_per_second,
                    1e3 * s.batch_size as f64 / s.samples_per_second,
                    1e3 * s.timed_cpu_seconds / s.timed_steps.max(1) as f64,
                    fl / 1e9,
                    100.0 * fl / self.sgemm.median_flops,
                    s.peak_rss_mib.unwrap_or(0.0),
                    aucs(s)
                )?;
            }
            let mut line = format!("       step = {:.2} GFLOP (6 x batch x dense weights)", c.step_flops / 1e9);
            if let Some(r) = &c.reference {
                line += &format!("; mtlbench / pytorch = {:.2}x", c.mtlbench.samples_per_second / r.samples_per_second);
                if let Some(d) = r.check_max_abs_diff {
                    line += &format!("; same initial function: max |dp| {d:.1e}");
                }
            }
            writeln!(f, "{line}")?;
            if let Some(r) = &c.compiled {
                let each: Vec<String> = c.compiled_runs.iter().map(|r| format!("{:.0}", r.samples_per_second)).collect();
                let compile: Vec<String> =
                    c.compiled_runs.iter().filter_map(|r| r.compile_seconds).map(|s| format!("{s:.1}")).collect();
                writeln!(
                    f,
                    "       torch.compile (inductor): mtlbench / compiled = {:.2}x; {} run(s), samples/s {}; compile time s {}",
                    c.mtlbench.samples_per_second / r.samples_per_second,
                    c.compiled_runs.len(),
                    each.join(", "),
                    compile.join(", ")
                )?;
            }
            if c.mtlbench_runs.len() > 1 {
                let each: Vec<String> = c
                    .mtlbench_runs
                    .iter()
                    .enumerate()
                    .map(|(i, a)| match c.reference_runs.get(i) {
                        Some(b) => format!("{:.0}/{:.0} ({:.2}x)", a.samples_per_second, b.samples_per_second, a.samples_per_second / b.samples_per_second),
                        None => format!("{:.0}", a.samples_per_second),
                    })
                    .collect();
                writeln!(f, "       rounds, samples/s mtlbench/pytorch (median run shown above): {}", each.join(", "))?;
                let spread = |runs: &[SideResult]| {
                    let each: Vec<String> = runs.iter().map(|r| mean_auc(r).map_or("n/a".into(), |a| format!("{a:.4}"))).collect();
                    match mean_auc_over(runs) {
                        Some((m, Some(sd))) => format!("{} -> {m:.4} ± {sd:.4}", each.join(", ")),
                        Some((m, None)) => format!("{} -> {m:.4}", each.join(", ")),
                        None => "n/a".into(),
                    }
                };
                writeln!(f, "       mean test AUC per round (dropout seed + round): mtlbench {}", spread(&c.mtlbench_runs))?;
                if !c.reference_runs.is_empty() {
                    writeln!(f, "       mean test AUC per round (dropout seed + round): pytorch  {}", spread(&c.reference_runs))?;
                    let diffs: Vec<String> = round_pairs(c).iter().map(|(a, b)| format!("{:+.4}", a - b)).collect();
                    writeln!(f, "       mtlbench - pytorch per round: {}", diffs.join(", "))?;
                }
                let per_task = |runs: &[SideResult]| {
                    let tasks = runs.first().map_or(0, |r| r.test_auc.len());
                    (0..tasks)
                        .map(|t| {
                            let v: Vec<f64> = runs.iter().filter_map(|r| r.test_auc.get(t).and_then(|x| x.1)).collect();
                            match mtlbench::stats::summarize(&v) {
                                Some(s) if s.n > 1 => format!("{:.4} ± {:.4}", s.mean, s.std),
                                Some(s) => format!("{:.4}", s.mean),
                                None => "n/a".into(),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" / ")
                };
                write!(f, "       test AUC per task over rounds: mtlbench {}", per_task(&c.mtlbench_runs))?;
                if !c.reference_runs.is_empty() {
                    write!(f, "; pytorch {}", per_task(&c.reference_runs))?;
                }
                writeln!(f)?;
                let lowest = |runs: &[SideResult]| {
                    lowest_task_auc(runs, self.first_round).map_or("n/a".into(), |(a, round, task)| format!("{a:.4} ({task}, round {round})"))
                };
                write!(f, "       lowest single-task test AUC: mtlbench {}", lowest(&c.mtlbench_runs))?;
                if !c.reference_runs.is_empty() {
                    write!(f, ", pytorch {}", lowest(&c.reference_runs))?;
                }
                writeln!(f)?;
            }
            if let Some(l) = loss_agreement(c) {
                writeln!(
                    f,
                    "       training loss, round {} (same weights and batches{}): |mtlbench - pytorch| step 1 {:.1e}, max over steps 1-10 {:.1e}; mean of the last {} steps {:.4} vs {:.4}",
                    self.first_round + 1,
                    match (self.dropout == 0.0, self.masks) {
                        (true, _) => ", no dropout",
                        (false, DropoutMasks::Libtorch) => ", same libtorch dropout masks",
                        (false, DropoutMasks::Hashed) => ", own dropout masks",
                    },
                    l.first,
                    l.first10,
                    l.tail,
                    l.tail_ours,
                    l.tail_theirs
                )?;
            }
            if let Some(o) = &c.mtlbench.overhead {
                writeln!(
                    f,
                    "       mtlbench harness per step: batch {:.2} ms, trace {:.2} ms, SQLite {:.2} ms = {:.2}% of a {:.1} ms step",
                    o.batch_ms, o.trace_ms, o.db_ms, o.percent, o.step_ms
                )?;
            }
        }
        if let Some(a) = &self.auc {
            writeln!(f)?;
            let v = |x: Option<f64>| x.map_or("n/a".into(), |x| format!("{x:.12}"));
            write!(f, "exact AUC of {} scores: mtlbench {:.3}s (AUC {})", a.rows, a.mtlbench_seconds, v(a.mtlbench_auc))?;
            match a.sklearn_seconds {
                Some(s) => writeln!(f, ", scikit-learn {s:.3}s (AUC {}): {:.1}x", v(a.sklearn_auc), s / a.mtlbench_seconds)?,
                None => writeln!(f)?,
            }
        }
        writeln!(f)?;
        writeln!(f, "targets:")?;
        for t in self.targets() {
            writeln!(f, "  [{}] {}", if t.met { "met" } else { "MISSED" }, t.what)?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(in crate::perf) mod tests {
    use super::super::worker::Overhead;
    use super::super::{AucComparison, Machine, ModelComparison, Sgemm};
    use super::*;

    pub(in crate::perf) fn side(name: &str, samples_per_second: f64, aucs: [f64; 3]) -> SideResult {
        SideResult {
            side: name.into(),
            model: "mmoe".into(),
            threads: 2,
            batch_size: 1000,
            steps: 110,
            timed_steps: 100,
            timed_seconds: 100.0 * 1000.0 / samples_per_second,
            timed_cpu_seconds: 1.0,
            samples_per_second,
            median_step_ms: 1.0,
            test_auc: ["a", "b", "c"].iter().zip(aucs).map(|(t, a)| (t.to_string(), Some(a))).collect(),
            check_max_abs_diff: Some(0.0),
            overhead: None,
            peak_rss_mib: Some(100.0),
            losses: vec![],
            compile_seconds: None,
        }
    }

    pub(in crate::perf) fn report(ours: f64, theirs: f64, their_auc: f64, overhead: f64) -> PerfReport {
        let mut m = side("mtlbench", ours, [0.7, 0.7, 0.7]);
        m.overhead = Some(Overhead { step_ms: 100.0, batch_ms: overhead, trace_ms: 0.0, db_ms: 0.0, percent: overhead });
        PerfReport {
            machine: Machine { cpu_model: "cpu".into(), cores: 2, memory_gib: 8.0, libtorch: "2.11.0".into() },
            threads: 2,
            load_before: Some(0.1),
            load_after: Some(0.2),
            dataset: "d".into(),
            train_rows: 110_000,
            test_rows: 10,
            steps: 110,
            warmup: 10,
            batch_size: 1000,
            rounds: 1,
            seed: 1,
            dropout: 0.1,
            masks: DropoutMasks::Hashed,
            first_round: 0,
            // 1e11 FLOP/s of sgemm; a step of 1e9 FLOP at 1000 rows.
            sgemm: Sgemm { n: 2048, threads: 2, median_flops: 1e11, best_flops: 1e11 },
            sgemm_runs: vec![Sgemm { n: 2048, threads: 2, median_flops: 1e11, best_flops: 1e11 }; 2],
            models: vec![ModelComparison {
                model: "mmoe".into(),
                step_flops: 1e9,
                mtlbench: m,
                reference: Some(side("pytorch", theirs, [their_auc; 3])),
                mtlbench_runs: vec![],
                reference_runs: vec![],
                compiled: None,
                compiled_runs: vec![],
            }],
            auc: Some(AucComparison {
                rows: 10_000_000,
                mtlbench_seconds: 0.2,
                mtlbench_auc: Some(0.8),
                sklearn_seconds: Some(2.0),
                sklearn_auc: Some(0.8),
            }),
            notes: vec![],
        }
    }

    #[test]
    fn targets_follow_the_numbers() {
        // 60,000 samples/s = 60 steps/s x 1e9 FLOP = 6e10 FLOP/s = 60% of sgemm.
        let met = report(60_000.0, 48_000.0, 0.701, 2.0).targets();
        assert!(met.iter().all(|t| t.met), "{met:?}");
        assert!(met.iter().any(|t| t.what.contains("60% of sgemm")));
        assert!(met.iter().any(|t| t.what.contains("1.25x the PyTorch")));
        assert!(met.iter().any(|t| t.what.contains("10.0x faster than scikit-learn")));
        // 45,000 samples/s: 45% of sgemm and 1.12x; AUC off by 0.004; overhead 3.5%.
        let missed: Vec<String> =
            report(45_000.0, 40_000.0, 0.704, 3.5).targets().into_iter().filter(|t| !t.met).map(|t| t.what).collect();
        assert_eq!(missed.len(), 4, "{missed:?}");
        assert!(missed[0].contains("45% of sgemm") && missed[1].contains("3.50%"), "{missed:?}");
        assert!(missed[2].contains("1.12x") && missed[3].contains("-0.0040"), "{missed:?}");
    }

    #[test]
    fn text_shows_both_sides_and_the_machine() {
        let text = report(60_000.0, 48_000.0, 0.701, 2.0).to_string();
        assert!(text.contains("machine  cpu, 2 cores"), "{text}");
        assert!(text.contains("mtlbench / pytorch = 1.25x"), "{text}");
        assert!(text.contains("scikit-learn 2.000s"), "{text}");
        assert!(text.contains("[met]") && !text.contains("MISSED"), "{text}");
    }

    #[test]
    fn auc_target_averages_the_rounds() {
        // The median runs differ by 0.005, but over three rounds the sides
        // average 0.700 and 0.701: within ±0.003.
        let mut r = report(60_000.0, 48_000.0, 0.705, 2.0);
        let m = &mut r.models[0];
        m.mtlbench_runs = [0.700, 0.702, 0.698].iter().map(|&a| side("mtlbench", 60_000.0, [a; 3])).collect();
        m.reference_runs = [0.705, 0.699, 0.699].iter().map(|&a| side("pytorch", 48_000.0, [a; 3])).collect();
        let t = r.targets();
        let auc = t.iter().find(|t| t.what.contains("test AUC")).expect("an AUC target");
        assert!(auc.met && auc.what.contains("-0.0010, mean of 3 rounds, 95% CI ["), "{auc:?}");
        // The interval is around the estimate (mtlbench - pytorch), Welch or paired.
        let ci = |what: &str| -> (f64, f64) {
            let inner = &what[what.find("CI [").expect("a CI") + 4..];
            let inner = &inner[..inner.find(']').expect("closed")];
            let (lo, hi) = inner.split_once(", ").expect("two ends");
            (lo.parse().expect("number"), hi.parse().expect("number"))
        };
        let (lo, hi) = ci(&auc.what);
        assert!(lo < -0.001 && hi > -0.001 && auc.what.contains("Welch"), "{auc:?}");
        r.masks = DropoutMasks::Libtorch;
        let paired = r.targets().into_iter().find(|t| t.what.contains("test AUC")).expect("an AUC target");
        let (lo, hi) = ci(&paired.what);
        // Differences -0.005, +0.003, -0.001: mean -0.001, sd 0.004, t(2) 4.303 x 0.004 / sqrt(3).
        let half = 4.302_652_7 * 0.004 / 3f64.sqrt();
        assert!((lo - (-0.001 - half)).abs() < 1e-4 && (hi - (-0.001 + half)).abs() < 1e-4, "{paired:?}");
        assert!(paired.what.contains("paired by round"), "{paired:?}");
        r.masks = DropoutMasks::Hashed;
        let (mean, sd) = mean_auc_over(&r.models[0].mtlbench_runs).expect("defined");
        assert!((mean - 0.700).abs() < 1e-12 && (sd.expect("3 runs") - 0.002).abs() < 1e-12);
        let text = r.to_string();
        assert!(text.contains("0.7000, 0.7020, 0.6980 -> 0.7000 ± 0.0020"), "{text}");
        // One round: the median runs decide, and 0.005 misses.
        let one = report(60_000.0, 48_000.0, 0.705, 2.0).targets();
        assert!(one.iter().any(|t| t.what.contains("-0.0050") && !t.met), "{one:?}");
    }

    #[test]
    fn auc_target_over_five_rounds_is_the_hodges_lehmann_shift() {
        // PyTorch's round 4 lost one task (0.58): its mean AUC 0.66 drags the
        // mean difference to +0.0076, a miss; the median of the 25 pairwise
        // differences is 0.0000, and the 95% interval D(3)..D(23) of them
        // (U's two-sided 5% critical value at 5 x 5 is 2) is [-0.0030, +0.0400].
        let mut r = report(60_000.0, 48_000.0, 0.70, 2.0);
        let m = &mut r.models[0];
        m.mtlbench_runs = [0.701, 0.699, 0.702, 0.700, 0.698].iter().map(|&a| side("mtlbench", 60_000.0, [a; 3])).collect();
        m.reference_runs = [0.700, 0.701, 0.699, 0.700, 0.702].iter().map(|&a| side("pytorch", 48_000.0, [a; 3])).collect();
        m.reference_runs[3] = side("pytorch", 48_000.0, [0.70, 0.70, 0.58]);
        let t = r.targets();
        let auc = t.iter().find(|t| t.what.contains("test AUC")).expect("an AUC target");
        assert!(auc.met, "{auc:?}");
        assert!(auc.what.contains("Hodges–Lehmann over 5 rounds, 95% CI [-0.0030, +0.0400]"), "{auc:?}");
        assert!(auc.what.contains("mean difference +0.0076, 95% CI ["), "{auc:?}");
        let text = r.to_string();
        assert!(text.contains("lowest single-task test AUC: mtlbench 0.6980 (a, round 5), pytorch 0.5800 (c, round 4)"), "{text}");
        // The same rounds judged on the mean (three rounds, collapse kept) miss.
        let m = &mut r.models[0];
        m.mtlbench_runs.truncate(3);
        m.reference_runs.remove(0);
        m.reference_runs.truncate(3);
        let auc = r.targets().into_iter().find(|t| t.what.contains("test AUC")).expect("an AUC target");
        assert!(!auc.met && auc.what.contains("mean of 3 rounds"), "{auc:?}");
    }

    #[test]
    fn same_mask_rounds_from_six_on_are_judged_paired() {
        // mtlbench - pytorch per round: +0.001, -0.001, +0.002, 0, +0.040
        // (PyTorch's round 5 lost a task), -0.002. The median of the 21
        // Walsh averages is +0.0005; with 6 pairs the 95% interval is their
        // whole range, [-0.002, +0.040] (2 P(W+ = 0) = 2/64).
        let mut r = report(60_000.0, 48_000.0, 0.70, 2.0);
        r.masks = DropoutMasks::Libtorch;
        let theirs = [0.700, 0.702, 0.698, 0.700, 0.660, 0.703];
        let diff = [0.001, -0.001, 0.002, 0.0, 0.040, -0.002];
        let m = &mut r.models[0];
        m.reference_runs = theirs.iter().map(|&a| side("pytorch", 48_000.0, [a; 3])).collect();
        m.mtlbench_runs = theirs.iter().zip(diff).map(|(&a, d)| side("mtlbench", 60_000.0, [a + d; 3])).collect();
        let auc = r.targets().into_iter().find(|t| t.what.contains("test AUC")).expect("an AUC target");
        assert!(auc.met, "{auc:?}");
        assert!(auc.what.contains("shift +0.0005 (Hodges–Lehmann, paired by round over 6 rounds: same masks; 95% CI [-0.0020, +0.0400]"), "{auc:?}");
        // Each side's own masks: the same numbers are two independent samples.
        r.masks = DropoutMasks::Hashed;
        let auc = r.targets().into_iter().find(|t| t.what.contains("test AUC")).expect("an AUC target");
        assert!(auc.what.contains("(Hodges–Lehmann over 6 rounds, 95% CI"), "{auc:?}");
    }
}
