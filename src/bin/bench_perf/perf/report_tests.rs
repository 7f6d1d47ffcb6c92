//! Tests of the perf report text and its targets; [`report`] and [`side`]
//! build a report by hand for other modules' tests too.

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
        fused_pass: None,
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
            gemm_floor: None,
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
    let met = report(60_000.0, 40_000.0, 0.701, 2.0).targets();
    assert!(met.iter().all(|t| t.met), "{met:?}");
    assert!(met.iter().any(|t| t.what.contains("60% of sgemm")));
    assert!(met.iter().any(|t| t.what.contains("1.50x the PyTorch")));
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
    let text = report(60_000.0, 40_000.0, 0.701, 2.0).to_string();
    assert!(text.contains("machine  cpu, 2 cores"), "{text}");
    assert!(text.contains("mtlbench / pytorch = 1.50x"), "{text}");
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
