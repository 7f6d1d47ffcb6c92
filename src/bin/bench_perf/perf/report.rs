//! The text of a [`PerfReport`]: the machine and its load, one table row per
//! model and side, the ratios, the harness overhead, the exact-AUC race, and
//! each performance target marked met or missed, so a reader never has to do
//! the arithmetic.

use std::fmt;

use super::{GemmFloor, PerfReport, SideResult};
use mtlbench::models::DropoutMasks;

/// Throughput target: mtlbench at least this many times the reference.
pub const TARGET_RATIO: f64 = 1.5;
/// Test AUCs equal within this (mean over tasks).
pub const TARGET_AUC_DELTA: f64 = 0.003;
/// Achieved FLOP/s of the step at least this share of the sgemm throughput.
pub const TARGET_SGEMM_SHARE: f64 = 0.6;
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

/// Seconds per step of a side, from its wall-time throughput (the number
/// the ratios compare).
/// Which path mtlbench's untraced steps took in `runs`, where they say
/// ([`SideResult::fused_pass`]).
pub(crate) fn step_path<'a>(runs: impl IntoIterator<Item = &'a SideResult>) -> Option<&'static str> {
    let fused: Vec<bool> = runs.into_iter().filter_map(|r| r.fused_pass).collect();
    match (fused.iter().all(|&x| x), fused.iter().any(|&x| x)) {
        _ if fused.is_empty() => None,
        (true, _) => Some("the fused pass (models::fused)"),
        (false, false) => Some("autograd"),
        (false, true) => Some("the fused pass in some runs, autograd in others"),
    }
}

pub(crate) fn step_seconds(s: &SideResult) -> f64 {
    s.batch_size as f64 / s.samples_per_second.max(1e-12)
}

/// The line of a step's floor: its products' time and rate (and share of
/// `sgemm_flops` when given), the floor with the Adam pass, mtlbench's step
/// (`ours`, seconds) as a multiple of it and, for `other` (a name and its
/// step), the bound that multiple puts on the ratio against it.
pub(crate) fn floor_text(g: &GemmFloor, sgemm_flops: Option<f64>, ours: f64, other: Option<(&str, f64)>) -> String {
    let rate = g.flops / g.median_seconds;
    let share = sgemm_flops.map_or(String::new(), |s| format!(", {:.0}% of sgemm", 100.0 * rate / s));
    let least = g.with_adam_seconds();
    let mut line = format!(
        "matrix products alone: {:.2} ms per step ({:.1} GFLOP/s{share}); with the Adam pass ({:.2} ms) {:.2} ms; mtlbench's step {:.2}x that",
        1e3 * g.median_seconds,
        rate / 1e9,
        1e3 * g.adam_seconds.unwrap_or(0.0),
        1e3 * least,
        ours / least
    );
    if let Some((name, theirs)) = other {
        let bound = theirs / least;
        line += &format!(", {name}'s {bound:.2}x: with this arithmetic at most about {bound:.2}x {name}");
    }
    line
}

/// [`floor_text`] of a model of the WeChat-size comparison, against eager.
fn floor_line(c: &super::ModelComparison, sgemm_flops: f64) -> Option<String> {
    let g = c.gemm_floor.as_ref()?;
    let other = c.reference.as_ref().map(|r| ("eager", step_seconds(r)));
    Some(format!("       {}", floor_text(g, Some(sgemm_flops), step_seconds(&c.mtlbench), other)))
}

fn aucs(r: &SideResult) -> String {
    let v: Vec<String> = r.test_auc.iter().map(|(_, a)| a.map_or("n/a".into(), |a| format!("{a:.4}"))).collect();
    format!("{} (mean {})", v.join(" / "), mean_auc(r).map_or("n/a".into(), |a| format!("{a:.4}")))
}

impl fmt::Display for PerfReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_header(f)?;
        for c in &self.models {
            self.write_model(f, c)?;
        }
        self.write_auc_and_targets(f)
    }
}

impl PerfReport {
    /// The machine, load, data and sgemm lines, then the table's head.
    fn write_header(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        Ok(())
    }

    /// One model's rows (one per side) and the lines under them.
    fn write_model(&self, f: &mut fmt::Formatter<'_>, c: &super::ModelComparison) -> fmt::Result {
        let sides = std::iter::once(&c.mtlbench).chain(c.reference.as_ref()).chain(c.compiled.as_ref());
        for s in sides {
            let fl = Self::achieved_flops(c.step_flops, s);
            writeln!(
                f,
                "{:<6} {:<9} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>6.0}% {:>7.0}MB  {}",
                c.model,
                s.side,
                s.samples_per_second,
                1e3 * step_seconds(s),
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
        if let Some(line) = floor_line(c, self.sgemm.median_flops) {
            writeln!(f, "{line}")?;
        }
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
            self.write_rounds(f, c)?;
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
        if let Some(path) = step_path(&c.mtlbench_runs) {
            writeln!(f, "       mtlbench's untraced steps: {path}")?;
        }
        Ok(())
    }

    /// The rounds' throughputs and test AUCs, where there is more than one.
    fn write_rounds(&self, f: &mut fmt::Formatter<'_>, c: &super::ModelComparison) -> fmt::Result {
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
        Ok(())
    }

    /// The exact-AUC comparison, the targets and the notes.
    fn write_auc_and_targets(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
#[path = "report_tests.rs"]
pub(in crate::perf) mod tests;
