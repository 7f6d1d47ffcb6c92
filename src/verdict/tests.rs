//! The verdict against numbers worked out by hand, on fixture databases
//! whose every run the test states (`store::fixture_runs`).

use super::*;
use crate::stats::t_quantile;
use crate::store::fixture_runs::FixtureRun;
use crate::store::Store;

const TASKS: [&str; 2] = ["a", "b"];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn pairs(v: [f64; 2]) -> Vec<(String, f64)> {
    TASKS.iter().map(|t| t.to_string()).zip(v).collect()
}

/// A two-task run; `config` names its configuration and becomes the `train.lr` param.
fn run(model: &str, strategy: &str, seed: i64, config: &str, valid: [f64; 2], test: [f64; 2]) -> FixtureRun {
    FixtureRun {
        model: model.into(),
        strategy: strategy.into(),
        seed,
        config_hash: format!("{model}-{strategy}-{config}"),
        params: vec![("data.tasks".into(), r#"["a","b"]"#.into()), ("train.lr".into(), config.into())],
        valid_auc: pairs(valid),
        test_auc: pairs(test),
        steps: 100,
        train_seconds: 10.0,
        ..Default::default()
    }
}

/// A single-task baseline run of `task`.
fn single(task: &str, seed: i64, config: &str, valid: f64, test: f64) -> FixtureRun {
    FixtureRun {
        model: "shared-bottom".into(),
        strategy: "equal".into(),
        seed,
        config_hash: format!("single-{task}-{config}"),
        name: Some(format!("single-task-{task}-s{seed}")),
        params: vec![("single_task".into(), task.into()), ("train.lr".into(), config.into())],
        valid_auc: vec![(task.into(), valid)],
        test_auc: vec![(task.into(), test)],
        steps: 100,
        train_seconds: 5.0,
        ..Default::default()
    }
}

fn rows_of(runs: &[FixtureRun]) -> VerdictRows {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let id = store.write_fixture_runs("hand", runs).unwrap();
    let sweeps: Vec<_> = store.list_sweeps().unwrap().into_iter().filter(|s| s.id == id).collect();
    store.verdict_rows(&sweeps).unwrap()
}

fn board(runs: &[FixtureRun]) -> Leaderboard {
    build(&rows_of(runs), &Options::default()).unwrap()
}

fn arm<'a>(b: &'a Leaderboard, model: &str, strategy: &str) -> &'a Arm {
    b.arms.iter().find(|a| a.model == model && a.strategy == strategy).unwrap()
}

/// mmoe x equal over two learning rates: validation prefers lr 0.1 on seeds
/// 1 and 3, lr 0.01 on seed 2; the test values of the runs not chosen are
/// 0.99, so any look at test would pick them.
fn two_lr_equal() -> Vec<FixtureRun> {
    vec![
        run("mmoe", "equal", 1, "0.1", [0.70, 0.70], [0.80, 0.70]),
        run("mmoe", "equal", 2, "0.1", [0.60, 0.60], [0.99, 0.99]),
        run("mmoe", "equal", 3, "0.1", [0.71, 0.69], [0.78, 0.74]),
        run("mmoe", "equal", 1, "0.01", [0.60, 0.60], [0.99, 0.99]),
        run("mmoe", "equal", 2, "0.01", [0.65, 0.65], [0.74, 0.72]),
        run("mmoe", "equal", 3, "0.01", [0.69, 0.69], [0.99, 0.99]),
    ]
}

#[test]
fn per_seed_selection_by_hand() {
    let b = board(&two_lr_equal());
    let a = arm(&b, "mmoe", "equal");
    assert_eq!(a.configurations.len(), 2, "two learning rates are two configurations, never pooled");
    assert_eq!(a.budget, 2);
    let labels: Vec<&str> = a.configurations.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["lr=0.1", "lr=0.01"]);
    let chosen: Vec<(i64, usize)> = a.picks.iter().map(|p| (p.seed, p.configuration)).collect();
    assert_eq!(chosen, [(1, 0), (2, 1), (3, 0)]);
    assert_eq!(a.configurations.iter().map(|c| c.chosen).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(a.selected, "lr=0.1 (2 of 3 seeds)");
    // Seed means of the chosen runs: 0.75, 0.73, 0.76.
    let v = [0.75, 0.73, 0.76];
    let mean = v.iter().sum::<f64>() / 3.0;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let s = a.test.unwrap();
    assert!(close(s.mean, mean) && close(s.std, sd) && s.n == 3, "{s:?}");
    let half = t_quantile(0.975, 2.0).unwrap() * sd / 3f64.sqrt();
    assert!((4.302_653 - t_quantile(0.975, 2.0).unwrap()).abs() < 1e-6, "the printed t table");
    let ci = a.test_ci.unwrap();
    assert!(close(ci.low, mean - half) && close(ci.high, mean + half), "{ci:?}");
    // Per task: a over seeds 0.80, 0.74, 0.78.
    assert!(close(a.tasks[0].unwrap().mean, (0.80 + 0.74 + 0.78) / 3.0));
    assert_eq!(a.standing, Standing::Baseline);
    assert!(b.selection.contains("validation") && b.headline.contains("test"));
}

/// Flipping every test label turns each test AUC into 1 - AUC.
fn flip_test(rows: &mut VerdictRows) {
    for m in rows.metrics.iter_mut().filter(|m| m.split == "test") {
        m.value = 1.0 - m.value;
    }
}

fn choices(b: &Leaderboard) -> Vec<(String, String, i64, String)> {
    let mut out: Vec<(String, String, i64, String)> =
        b.arms.iter().flat_map(|a| a.picks.iter().map(|p| (a.model.clone(), a.strategy.clone(), p.seed, p.run_id.clone()))).collect();
    out.extend(b.single_task.iter().flat_map(|s| s.picks.iter().map(|p| (s.task.clone(), String::new(), p.seed, p.run_id.clone()))));
    out.sort();
    out
}

#[test]
fn flipping_every_test_label_changes_no_selection() {
    let mut runs = two_lr_equal();
    for (seed, vg) in [(1, 0.69), (2, 0.66), (3, 0.70)] {
        runs.push(run("mmoe", "gradnorm", seed, "0.1", [vg, vg], [0.76, 0.72]));
        runs.push(run("mmoe", "gradnorm", seed, "0.01", [0.68, 0.68], [0.70, 0.70]));
        runs.push(single("a", seed, "0.1", 0.7, 0.8));
        runs.push(single("a", seed, "0.01", 0.6, 0.9));
        runs.push(single("b", seed, "0.1", 0.6, 0.6));
        runs.push(single("b", seed, "0.01", 0.7, 0.5));
    }
    let mut rows = rows_of(&runs);
    let before = build(&rows, &Options::default()).unwrap();
    flip_test(&mut rows);
    let after = build(&rows, &Options::default()).unwrap();
    assert_eq!(choices(&before).len(), 3 * 2 + 3 * 2);
    assert_eq!(choices(&before), choices(&after));
    for task in ["a", "b"] {
        let opts = Options { task: Some(task.into()) };
        let mut rows = rows_of(&runs);
        let before = build(&rows, &opts).unwrap();
        flip_test(&mut rows);
        assert_eq!(choices(&before), choices(&build(&rows, &opts).unwrap()), "--task {task}");
    }
    // The test numbers themselves did flip.
    let (x, y) = (arm(&before, "mmoe", "equal").test.unwrap().mean, arm(&after, "mmoe", "equal").test.unwrap().mean);
    assert!(close(x + y, 1.0), "{x} {y}");
}

#[test]
fn delta_m_by_hand_on_a_fixture_database() {
    let mut runs = Vec::new();
    for (seed, test) in [(1, [0.84, 0.66]), (2, [0.82, 0.63]), (3, [0.80, 0.60])] {
        runs.push(run("mmoe", "equal", seed, "0.1", [0.7, 0.7], test));
        // Each baseline has a second configuration that is worse on
        // validation and better on test: it must not be chosen.
        runs.push(single("a", seed, "0.1", 0.70, 0.80));
        runs.push(single("a", seed, "0.01", 0.65, 0.95));
        runs.push(single("b", seed, "0.1", 0.70, 0.60));
        runs.push(single("b", seed, "0.01", 0.65, 0.95));
    }
    let b = board(&runs);
    assert_eq!(b.single_task.len(), 2);
    assert_eq!(b.single_task[0].configurations, 2);
    assert!(close(b.single_task[0].test.unwrap().mean, 0.80) && close(b.single_task[1].test.unwrap().mean, 0.60));
    let d = arm(&b, "mmoe", "equal").delta_m.clone().unwrap();
    // Seed 1: (0.04/0.80 + 0.06/0.60)/2 = (5% + 10%)/2 = 7.5%; seed 2:
    // (2.5% + 5%)/2 = 3.75%; seed 3: 0%. Mean 3.75%, sd 3.75%.
    assert!(d.paired && d.seeds == [1, 2, 3]);
    assert!(close(d.estimate, 3.75), "{d:?}");
    assert!(close(d.per_seed.unwrap().std, 3.75));
    let half = t_quantile(0.975, 2.0).unwrap() * 3.75 / 3f64.sqrt();
    let ci = d.ci.unwrap();
    assert!(close(ci.low, 3.75 - half) && close(ci.high, 3.75 + half));
    // The single-task runs are baselines, not an arm of shared-bottom x equal.
    assert_eq!(b.arms.len(), 1);
}

#[test]
fn delta_m_from_means_when_no_seed_pairs() {
    let mut runs = vec![run("mmoe", "equal", 1, "x", [0.7, 0.7], [0.84, 0.66]), run("mmoe", "equal", 2, "x", [0.7, 0.7], [0.80, 0.60])];
    runs.push(single("a", 7, "x", 0.7, 0.80));
    runs.push(single("b", 7, "x", 0.7, 0.60));
    let d = arm(&board(&runs), "mmoe", "equal").delta_m.clone().unwrap();
    // Means 0.82 and 0.63: (2.5% + 5%)/2.
    assert!(!d.paired && d.ci.is_none() && close(d.estimate, 3.75), "{d:?}");
}

#[test]
fn verdicts_against_tuned_equal_and_step_time() {
    let mut runs = two_lr_equal();
    // gradnorm: picks differ from equal's by 0.02, 0.021, 0.019 per seed.
    for (seed, t) in [(1, 0.77), (2, 0.751), (3, 0.779)] {
        let mut r = run("mmoe", "gradnorm", seed, "0.1", [0.7, 0.7], [t, t]);
        r.train_seconds = 25.0;
        runs.push(r);
        runs.push(run("mmoe", "gradnorm", seed, "0.01", [0.6, 0.6], [0.5, 0.5]));
    }
    // pcgrad on two seeds only.
    for seed in [1, 2] {
        runs.push(run("mmoe", "pcgrad", seed, "0.1", [0.7, 0.7], [0.9, 0.9]));
        runs.push(run("mmoe", "pcgrad", seed, "0.01", [0.6, 0.6], [0.9, 0.9]));
    }
    let b = board(&runs);
    let g = arm(&b, "mmoe", "gradnorm");
    let ci = g.vs_equal.unwrap();
    // Paired differences 0.02, 0.021, 0.019: mean 0.02, sd 0.001.
    let half = t_quantile(0.975, 2.0).unwrap() * 0.001 / 3f64.sqrt();
    assert!(close(ci.estimate, 0.02) && close(ci.low, 0.02 - half) && close(ci.high, 0.02 + half), "{ci:?}");
    assert_eq!(g.standing, Standing::Judged { verdict: Verdict::Better });
    assert_eq!(g.paired_seeds, 3);
    // 25 s / 100 steps against equal's 10 s / 100 steps.
    assert!(close(g.step_time_vs_equal.unwrap(), 2.5));
    assert!(close(arm(&b, "mmoe", "equal").step_time_vs_equal.unwrap(), 1.0));
    let p = arm(&b, "mmoe", "pcgrad");
    assert_eq!(p.standing, Standing::TooFewSeeds { seeds: 2 });
    assert_eq!(p.standing.label(), "too few seeds (2 < 3)");
    // Sorted by the headline: pcgrad 0.9, gradnorm, equal.
    let order: Vec<&str> = b.arms.iter().map(|a| a.strategy.as_str()).collect();
    assert_eq!(order, ["pcgrad", "gradnorm", "equal"]);
    // pcgrad lacks seed 3 in both configurations.
    assert!(b.warnings.iter().any(|w| matches!(w, Warning::MissingSeeds { arm, .. } if arm == "mmoe × pcgrad")), "{:?}", b.warnings);
}

#[test]
fn unequal_budgets_warn_and_static_vectors_do_not_count() {
    let mut runs = two_lr_equal();
    for seed in 1..=3 {
        for (k, cfg) in ["0.1-a1", "0.1-a2", "0.01-a1", "0.01-a2"].iter().enumerate() {
            runs.push(run("mmoe", "gradnorm", seed, cfg, [0.6 + 0.01 * k as f64; 2], [0.7; 2]));
        }
        for point in 0..3 {
            for lr in ["0.1", "0.01"] {
                let mut r = run("mmoe", "static", seed, &format!("{lr}-w{point}"), [0.6; 2], [0.7; 2]);
                r.params.push(("strategy.point".into(), point.to_string()));
                runs.push(r);
            }
        }
    }
    let b = board(&runs);
    let s = arm(&b, "mmoe", "static");
    assert_eq!((s.kind, s.weight_vectors, s.budget, s.configurations.len()), (ArmKind::StaticWeights, Some(3), 2, 6));
    assert!(!b.equal_budgets());
    let w = b.warnings.iter().find_map(|w| match w {
        Warning::UnequalBudgets { budgets } => Some(budgets.clone()),
        _ => None,
    });
    let mut w = w.expect("unequal budgets warn");
    w.sort();
    let want = [("mmoe × equal", 2), ("mmoe × gradnorm", 4), ("mmoe × static (per weight vector)", 2)];
    assert_eq!(w, want.iter().map(|(a, n)| (a.to_string(), *n)).collect::<Vec<_>>());
    assert!(b.warnings.iter().any(|w| w.to_string().contains("mmoe × gradnorm 4")));

    // Equal budgets: no warning.
    let mut runs = two_lr_equal();
    for seed in 1..=3 {
        runs.push(run("mmoe", "gradnorm", seed, "0.1", [0.6; 2], [0.7; 2]));
        runs.push(run("mmoe", "gradnorm", seed, "0.01", [0.6; 2], [0.7; 2]));
    }
    assert!(board(&runs).equal_budgets());
}

#[test]
fn pareto_panel_of_the_static_sweep() {
    let mut runs = Vec::new();
    // Three weight vectors trading a against b, one dominated; equal in between.
    let points = [[0.80, 0.60], [0.70, 0.70], [0.65, 0.65], [0.60, 0.80]];
    for seed in 1..=3 {
        for (p, t) in points.iter().enumerate() {
            let mut r = run("mmoe", "static", seed, &format!("w{p}"), [0.7; 2], *t);
            r.params.push(("strategy.point".into(), p.to_string()));
            runs.push(r);
        }
        runs.push(run("mmoe", "equal", seed, "x", [0.7; 2], [0.72, 0.68]));
        runs.push(run("mmoe", "gradnorm", seed, "x", [0.7; 2], [0.69, 0.73]));
    }
    let b = board(&runs);
    assert_eq!(b.pareto.len(), 1);
    let p = &b.pareto[0];
    assert_eq!((p.model.as_str(), p.x_task.as_str(), p.y_task.as_str()), ("mmoe", "a", "b"));
    assert_eq!(p.static_points.len(), 4);
    assert_eq!(p.static_points.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["w0", "w1", "w2", "w3"]);
    // Front by increasing x: w3 (0.60), w1 (0.70), w0 (0.80); w2 is dominated by w1.
    assert_eq!(p.front, [3, 1, 0]);
    let arms: Vec<(&str, f64, f64)> = p.arms.iter().map(|a| (a.label.as_str(), a.x.mean, a.y.mean)).collect();
    assert_eq!(arms.len(), 2);
    assert!(arms.iter().any(|a| a.0 == "equal" && close(a.1, 0.72) && close(a.2, 0.68)));
}

#[test]
fn refusals_and_left_out_runs() {
    let mut runs = two_lr_equal();
    runs[0].dataset_digest = Some("other".into());
    let e = build(&rows_of(&runs), &Options::default()).unwrap_err().to_string();
    assert!(e.contains("different datasets") && e.contains("other"), "{e}");

    let runs = two_lr_equal();
    let e = build(&rows_of(&runs), &Options { task: Some("c".into()) }).unwrap_err().to_string();
    assert!(e.contains("--task c") && e.contains("a, b"), "{e}");

    let mut runs = two_lr_equal();
    runs[1].params.push(("train.select_metric".into(), "mean-logloss".into()));
    assert!(matches!(build(&rows_of(&runs), &Options::default()), Err(VerdictError::MixedSelection(_))));

    let mut runs = two_lr_equal();
    let mut fused = run("fusion", "mean", 0, "f", [0.7; 2], [0.9; 2]);
    fused.params = vec![("fusion.mode".into(), "mean".into())];
    runs.push(fused);
    let b = board(&runs);
    assert_eq!(b.arms.len(), 1);
    assert!(b.warnings.contains(&Warning::LeftOut { unfinished: 0, fusions: 1 }));
}

#[test]
fn select_metric_names_match_the_training_config() {
    for (m, c) in [(crate::train::SelectMetric::MeanAuc, Criterion::MeanAuc), (crate::train::SelectMetric::MeanLogloss, Criterion::MeanLogloss)] {
        let name = serde_json::to_value(m).unwrap();
        assert_eq!(Criterion::from_select_metric(name.as_str().unwrap()), Some(c));
    }
}
