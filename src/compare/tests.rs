//! Unit tests of the pure part of `compare`: grouping, the params diff, the
//! choice of paired / Welch CIs and the numbers of a built comparison,
//! checked against values worked by hand. The store and CLI side is tested
//! end to end in tests/compare.rs.

use super::*;
use crate::stats::DiffMethod;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn run(id: &str, config: &str, seed: i64, params: &[(&str, &str)], test: &[(&str, &str, f64)]) -> RunData {
    let mut p: BTreeMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    p.insert("seed".into(), seed.to_string());
    RunData {
        id: id.into(),
        name: format!("shared-bottom-equal-s{seed}-lr={config}"),
        model: "shared-bottom".into(),
        strategy: "equal".into(),
        seed,
        config_hash: config.into(),
        sweep_id: "sw".into(),
        predictions_path: None,
        params: p,
        test: test.iter().map(|(t, m, v)| ((t.to_string(), m.to_string()), *v)).collect(),
    }
}

fn sv(seed: i64, value: f64) -> SeedValue {
    SeedValue { run_id: format!("r{seed}"), seed, value }
}

#[test]
fn grouping_picks_the_mode() {
    let a = run("a", "x", 1, &[], &[]);
    let b = run("b", "y", 1, &[], &[]);
    let c = run("c", "x", 2, &[], &[]);
    // Distinct configurations: one run per column, in argument order.
    let (m, g) = group(vec![a.clone(), b.clone()], false);
    assert_eq!(m, Mode::Runs);
    assert_eq!(g.iter().map(|g| g[0].id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    // A configuration repeated over seeds: grouped.
    let (m, g) = group(vec![a.clone(), b.clone(), c.clone()], false);
    assert_eq!(m, Mode::Seeds);
    assert_eq!(g.iter().map(|g| g.len()).collect::<Vec<_>>(), [2, 1]);
    // Two seeds of one configuration: still two runs to compare.
    let (m, g) = group(vec![c.clone(), a.clone()], false);
    assert_eq!((m, g.len(), g[0][0].id.as_str()), (Mode::Runs, 2, "c"));
    // A sweep always aggregates over seeds.
    let (m, g) = group(vec![a, c], true);
    assert_eq!((m, g.len()), (Mode::Seeds, 1));
}

#[test]
fn params_diff_shows_only_differences() {
    let a = run("a", "x", 1, &[("train.lr", "0.005"), ("train.epochs", "2"), ("only.a", "1")], &[]);
    let b = run("b", "y", 2, &[("train.lr", "0.01"), ("train.epochs", "2")], &[]);
    let d = params_diff(Mode::Runs, &[vec![a.clone()], vec![b.clone()]]);
    let keys: Vec<&str> = d.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["only.a", "seed", "train.lr"]);
    assert_eq!(d[0].values, [Some("1".to_string()), None]);
    assert_eq!(d[2].values, [Some("0.005".to_string()), Some("0.01".to_string())]);
    // Over seeds the seed is not a parameter of the configuration.
    let d = params_diff(Mode::Seeds, &[vec![a], vec![b]]);
    assert!(d.iter().all(|p| p.key != "seed"));
}

#[test]
fn seeds_ci_pairs_by_seed_or_falls_to_welch() {
    // Paired, in seed order whatever the input order: d = [0.02, 0.03, 0.01].
    let base = [sv(3, 0.71), sv(1, 0.70), sv(2, 0.72)];
    let other = [sv(1, 0.72), sv(2, 0.75), sv(3, 0.72)];
    let ci = seeds_ci(&base, &other).unwrap().unwrap();
    assert_eq!(ci.method, DiffMethod::PairedT);
    assert!(close(ci.estimate, 0.02, 1e-12) && close(ci.se, 0.01 / 3f64.sqrt(), 1e-12));
    // Different seeds: Welch (a: mean 2, var 1; b: mean 5, var 20/3; df 216/53).
    let a = [sv(1, 1.0), sv(2, 2.0), sv(3, 3.0)];
    let b = [sv(1, 2.0), sv(2, 4.0), sv(3, 6.0), sv(4, 8.0)];
    let ci = seeds_ci(&a, &b).unwrap().unwrap();
    assert_eq!(ci.method, DiffMethod::WelchT);
    assert!(close(ci.df.unwrap(), 216.0 / 53.0, 1e-12));
    // A repeated seed cannot be paired.
    let dup = [sv(1, 1.0), sv(1, 2.0), sv(3, 3.0)];
    assert_eq!(seeds_ci(&dup, &[sv(1, 1.5), sv(1, 2.5), sv(3, 3.5)]).unwrap().unwrap().method, DiffMethod::WelchT);
    // One value on a side: no interval.
    assert_eq!(seeds_ci(&a[..1], &b[..1]).unwrap(), None);
    assert_eq!(seeds_ci(&a, &b[..1]).unwrap(), None);
}

#[test]
fn verdict_follows_direction() {
    let ci = |low: f64, high: f64| DiffCi {
        estimate: (low + high) / 2.0,
        se: 1.0,
        df: None,
        level: 0.95,
        low,
        high,
        p_value: None,
        method: DiffMethod::Delong,
    };
    assert_eq!(Verdict::from_ci(&ci(0.01, 0.03), true), Verdict::Better);
    assert_eq!(Verdict::from_ci(&ci(0.01, 0.03), false), Verdict::Worse);
    assert_eq!(Verdict::from_ci(&ci(-0.03, -0.01), false), Verdict::Better);
    assert_eq!(Verdict::from_ci(&ci(-0.01, 0.03), true), Verdict::WithinNoise);
}

#[test]
fn seeds_comparison_numbers_by_hand() {
    let a: Vec<RunData> = [(1, 0.70, 0.50), (2, 0.72, 0.51), (3, 0.71, 0.49)]
        .iter()
        .map(|&(s, auc, ll)| run(&format!("a{s}"), "x", s, &[("train.lr", "0.005")], &[("click", "auc", auc), ("click", "logloss", ll)]))
        .collect();
    let b: Vec<RunData> = [(1, 0.72, 0.40), (2, 0.75, 0.41), (3, 0.72, 0.39)]
        .iter()
        .map(|&(s, auc, ll)| run(&format!("b{s}"), "y", s, &[("train.lr", "0.01")], &[("click", "auc", auc), ("click", "logloss", ll)]))
        .collect();
    let c = build(Mode::Seeds, &[a, b], &BTreeMap::new()).unwrap();
    assert_eq!(c.columns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["A", "B"]);
    assert_eq!(c.columns[0].label, "shared-bottom-equal-lr=x");
    assert_eq!(c.columns[1].seeds, [1, 2, 3]);
    assert_eq!(c.params.len(), 1);
    assert_eq!(c.params[0].key, "train.lr");
    let t = &c.tasks[0];
    assert_eq!(t.task, "click");
    let auc = &t.metrics[0];
    assert_eq!(auc.metric, "auc");
    let s = auc.stats[0].unwrap();
    assert_eq!(s.n, 3);
    assert!(close(s.mean, 0.71, 1e-12) && close(s.std, 0.01, 1e-12));
    let d = auc.deltas[1].as_ref().unwrap();
    assert!(close(d.estimate, 0.02, 1e-12));
    let ci = d.ci.unwrap();
    assert!(close(ci.low, -0.004_841, 1e-6) && close(ci.high, 0.044_841, 1e-6));
    assert_eq!(d.verdict, Some(Verdict::WithinNoise));
    assert_eq!(t.verdicts, [None, Some(Verdict::WithinNoise)]);
    // Log loss: every seed lower by 0.10 ± 0.01 -> a CI below 0, and lower is better.
    let ll = &t.metrics[1];
    assert_eq!((ll.metric.as_str(), ll.higher_is_better), ("logloss", false));
    let d = ll.deltas[1].as_ref().unwrap();
    assert!(d.ci.unwrap().high < 0.0);
    assert_eq!(d.verdict, Some(Verdict::Better));
    assert_eq!(ll.values[1].iter().map(|v| v.value).collect::<Vec<_>>(), [0.40, 0.41, 0.39]);
}

#[test]
fn runs_comparison_uses_delong_for_auc_only() {
    let a = run("a", "x", 1, &[("train.lr", "0.005")], &[("click", "auc", 0.70), ("click", "logloss", 0.5)]);
    let b = run("b", "y", 1, &[("train.lr", "0.01")], &[("click", "auc", 0.74), ("click", "logloss", 0.45)]);
    let t = DelongTest {
        auc_a: 0.74,
        auc_b: 0.70,
        var_a: 1e-4,
        var_b: 1e-4,
        cov_ab: 0.5e-4,
        diff: 0.04,
        se: 0.01,
        z: Some(4.0),
        p_value: crate::stats::normal_two_sided_p(4.0),
        positives: 100,
        negatives: 400,
    };
    let tests: BTreeMap<(usize, String), DelongTest> = [((1, "click".to_string()), t)].into();
    let c = build(Mode::Runs, &[vec![a], vec![b]], &tests).unwrap();
    assert_eq!(c.params.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["train.lr"]);
    let auc = &c.tasks[0].metrics[0];
    let d = auc.deltas[1].as_ref().unwrap();
    assert!(close(d.estimate, 0.04, 1e-12));
    let ci = d.ci.unwrap();
    assert_eq!(ci.method, DiffMethod::Delong);
    assert!(close(ci.low, 0.04 - 1.959_963_984_540_054 * 0.01, 1e-12));
    assert!(close(ci.p_value.unwrap(), 6.334e-5, 1e-7));
    assert_eq!(c.tasks[0].verdicts[1], Some(Verdict::Better));
    // Log loss has no test on a single pair of runs: a delta, no verdict.
    let ll = c.tasks[0].metrics[1].deltas[1].as_ref().unwrap();
    assert!(close(ll.estimate, -0.05, 1e-12));
    assert_eq!((ll.ci, ll.verdict), (None, None));
}
