//! `bench leaderboard` end to end: a grid with two learning rates gives two
//! configurations everywhere (leaderboard, README table, sweep page,
//! compare), the numbers are those of the runs chosen on validation
//! (recomputed here from the store), the README caption names validation
//! selection; a protocol grid (static-weight sweep, single-task baselines,
//! an axis of one strategy) gives Δm, a Pareto panel and the budget warning.

use std::collections::BTreeMap;

use mtlbench::store::Store;
use serde_json::Value;

use crate::common::*;

/// TINY_GRID, equal and gradnorm, lr 0.00001 and 0.05, three seeds: 12 cells.
fn lr_grid() -> String {
    format!(
        "{}\n[grid.overrides]\n\"train.lr\" = [0.00001, 0.05]\n",
        TINY_GRID.replace("seeds = [1, 2]", "seeds = [1, 2, 3]").replace(r#"strategies = ["equal"]"#, r#"strategies = ["equal", "gradnorm"]"#)
    )
}

fn json(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "bench failed: {}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Mean AUC over tasks of a run's split, from the store.
fn mean_auc(store: &Store, id: &str, split: &str) -> f64 {
    mean(&store.metrics(id).unwrap().into_iter().filter(|m| m.split == split && m.metric == "auc").map(|m| m.value).collect::<Vec<_>>())
}

fn arm<'a>(board: &'a Value, strategy: &str) -> &'a Value {
    board["arms"].as_array().unwrap().iter().find(|a| a["strategy"] == strategy).unwrap()
}

#[test]
fn two_learning_rates_are_two_configurations_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = write(d, "tiny.toml", &lr_grid());
    let o = bench(d, &["run", g.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 12);

    let board = json(&bench(d, &["leaderboard", "--format", "json"]));
    assert_eq!(board["arms"].as_array().unwrap().len(), 2);
    assert_eq!(board["seeds"], serde_json::json!([1, 2, 3]));
    for strategy in ["equal", "gradnorm"] {
        let a = arm(&board, strategy);
        let configs = a["configurations"].as_array().unwrap();
        assert_eq!(configs.len(), 2, "{strategy}: two configurations, never pooled");
        assert_eq!(a["budget"], 2);
        let labels: Vec<&str> = configs.iter().map(|c| c["label"].as_str().unwrap()).collect();
        assert_eq!(labels, ["lr=0.00001", "lr=0.05"]);
        // By hand from the store: per seed, the configuration with the
        // higher mean validation AUC, and that run's mean test AUC.
        let mut chosen = Vec::new();
        for seed in 1..=3 {
            let cands: Vec<_> = runs.iter().filter(|r| r.strategy == strategy && r.seed == seed).collect();
            assert_eq!(cands.len(), 2);
            let best = cands.iter().max_by(|a, b| mean_auc(&store, &a.id, "valid").total_cmp(&mean_auc(&store, &b.id, "valid"))).unwrap();
            chosen.push(mean_auc(&store, &best.id, "test"));
            let pick = a["picks"].as_array().unwrap().iter().find(|p| p["seed"] == seed).unwrap();
            assert_eq!(pick["run_id"], best.id.as_str());
        }
        assert!((a["test"]["mean"].as_f64().unwrap() - mean(&chosen)).abs() < 1e-12, "{strategy}: {}", a["test"]);
        assert_eq!(a["test"]["n"], 3);
    }
    assert_eq!(arm(&board, "equal")["standing"]["kind"], "baseline");
    let g = arm(&board, "gradnorm");
    assert!(g["vs_equal"]["method"] == "paired-t" && g["paired_seeds"] == 3, "{g}");
    assert!(g["step_time_vs_equal"].as_f64().unwrap() > 0.0);

    // The terminal table and the other formats.
    let text = stdout(&bench(d, &["leaderboard"]));
    assert!(text.contains("selected per seed on the validation split") && text.contains("selected configuration"), "{text}");
    assert!(text.contains("shared-bottom  equal") && text.contains("baseline"), "{text}");
    let csv = stdout(&bench(d, &["leaderboard", "tiny", "--format", "csv"]));
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let md = stdout(&bench(d, &["leaderboard", "--format", "md"]));
    assert!(md.contains("| rank | model |"), "{md}");
    let by_task = json(&bench(d, &["leaderboard", "--task", "like", "--format", "json"]));
    assert_eq!(by_task["criterion"]["task"], "like");
    let o = bench(d, &["leaderboard", "nope"]);
    assert!(!o.status.success() && stderr(&o).contains("nope"), "{}", stderr(&o));
    let o = bench(d, &["leaderboard", "--task", "buy"]);
    assert!(!o.status.success() && stderr(&o).contains("buy") && stderr(&o).contains("click"), "{}", stderr(&o));

    // README: one row per arm, the caption names validation selection.
    let readme = write(d, "README.md", "# r\n<!-- bench:results:begin -->\n<!-- bench:results:end -->\n");
    let o = bench(d, &["readme", "--readme", readme.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(text.contains("selected per seed on the validation split") && text.contains("never on test"), "{text}");
    assert!(text.contains("seeds 1, 2, 3") && text.contains("toy (synthetic)") && text.contains("2 configuration(s) per arm"), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| SharedBottom")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows.iter().any(|r| r.contains("| Equal weighting |")) && rows.iter().any(|r| r.contains("| GradNorm |")));
    let equal_mean = format!("{:.4}", arm(&board, "equal")["test"]["mean"].as_f64().unwrap());
    assert!(rows.iter().any(|r| r.contains("Equal weighting") && r.contains(&equal_mean)), "{text}");

    report_and_compare_show_four_configurations(d, &board);
}

/// Sweep page: one matrix row per configuration, and the leaderboard page
/// linked; compare: one column per configuration.
fn report_and_compare_show_four_configurations(d: &std::path::Path, board: &Value) {
    let o = bench(d, &["report", "--out", "rep"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sweep = board["sweeps"][0]["id"].as_str().unwrap();
    let page = std::fs::read_to_string(d.join("rep").join(format!("sweep-{sweep}.html"))).unwrap();
    for label in ["shared-bottom-equal-lr=0.00001", "shared-bottom-equal-lr=0.05", "shared-bottom-gradnorm-lr=0.00001", "shared-bottom-gradnorm-lr=0.05"] {
        assert!(page.contains(&format!("<td>{label}</td>")), "{label} missing from the sweep page");
    }
    assert!(page.contains(&format!("href=\"leaderboard-{sweep}.html\"")));
    let lb_page = std::fs::read_to_string(d.join("rep").join(format!("leaderboard-{sweep}.html"))).unwrap();
    assert!(lb_page.contains("lr=0.00001") && lb_page.contains("Pareto"), "the leaderboard page lists configurations and Pareto panels");

    // Compare: four configurations as four columns.
    let c = json(&bench(d, &["compare", "tiny", "--format", "json"]));
    assert_eq!(c["columns"].as_array().unwrap().len(), 4);
}

/// Toy data with two tasks: equal, gradnorm over its own alpha axis, a
/// three-point static-weight sweep and single-task baselines, lr axis, 3 seeds.
const PROTOCOL_GRID: &str = r#"
name = "protocol"
[data]
kind = "toy"
rows = 3000
users = 50
items = 80
tasks = ["click", "like"]
[train]
epochs = 2
batch_size = 256
patience = 1
threads = 1
[models.tower]
hidden = [16]
[models.shared-bottom]
bottom = [32]
[strategies.static]
sweep = 3
[grid]
models = ["shared-bottom"]
strategies = ["equal", "gradnorm", "static"]
seeds = [1, 2, 3]
single_task = true
[grid.overrides]
"train.lr" = [0.005, 0.05]
"strategies.gradnorm.alpha" = [0.5, 1.5]
"#;

#[test]
fn protocol_grid_gives_delta_m_pareto_and_the_budget_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = write(d, "protocol.toml", PROTOCOL_GRID);
    let o = bench(d, &["run", g.to_str().unwrap(), "--dry-run"]);
    // equal 2, gradnorm 4, static 3 x 2, single-task 2 x 2 configurations, each over 3 seeds.
    assert!(stdout(&o).contains(": 48 cells"), "{}", stdout(&o));
    let o = bench(d, &["run", g.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 48);
    // Single-task baselines: one label column, a dataset digest of their own.
    let multi = runs.iter().find(|r| r.strategy == "equal" && !r.name.starts_with("single-task")).unwrap();
    let single: Vec<_> = runs.iter().filter(|r| r.name.starts_with("single-task-like")).collect();
    assert_eq!(single.len(), 6);
    for r in &single {
        assert_eq!((r.model.as_str(), r.strategy.as_str()), ("shared-bottom", "equal"));
        assert_ne!(r.dataset_digest, multi.dataset_digest);
        let tasks: Vec<String> = store.metrics(&r.id).unwrap().into_iter().filter(|m| m.split == "test" && m.metric == "auc").map(|m| m.task).collect();
        assert_eq!(tasks, ["like"]);
    }

    let board = json(&bench(d, &["leaderboard", "--format", "json"]));
    let arms = board["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 3, "single-task runs are baselines, not an arm");
    let st: Vec<&str> = board["single_task"].as_array().unwrap().iter().map(|b| b["task"].as_str().unwrap()).collect();
    assert_eq!(st, ["click", "like"]);
    let static_arm = arm(&board, "static");
    assert_eq!((static_arm["kind"].as_str(), static_arm["weight_vectors"].as_u64(), static_arm["budget"].as_u64()), (Some("static-weights"), Some(3), Some(2)));
    assert_eq!(arm(&board, "gradnorm")["budget"], 4);
    // Δm by hand from the leaderboard's own per-seed picks.
    let base: BTreeMap<(usize, i64), f64> = board["single_task"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .flat_map(|(t, b)| b["picks"].as_array().unwrap().iter().map(move |p| ((t, p["seed"].as_i64().unwrap()), p["tasks"][t].as_f64().unwrap())))
        .collect();
    for a in arms {
        let per_seed: Vec<f64> = a["picks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let s = p["seed"].as_i64().unwrap();
                100.0 * mean(&(0..2).map(|t| (p["tasks"][t].as_f64().unwrap() - base[&(t, s)]) / base[&(t, s)]).collect::<Vec<_>>())
            })
            .collect();
        let dm = &a["delta_m"];
        assert!(dm["paired"].as_bool().unwrap());
        assert!((dm["estimate"].as_f64().unwrap() - mean(&per_seed)).abs() < 1e-9, "{}: {dm}", a["strategy"]);
    }
    let panels = board["pareto"].as_array().unwrap();
    assert_eq!(panels.len(), 1);
    assert_eq!(panels[0]["static_points"].as_array().unwrap().len(), 3);
    assert!(!panels[0]["front"].as_array().unwrap().is_empty());
    assert_eq!(panels[0]["arms"].as_array().unwrap().len(), 2);

    let text = stdout(&bench(d, &["leaderboard"]));
    assert!(text.contains("warning: unequal tuning budgets") && text.contains("shared-bottom × gradnorm 4"), "{text}");
    assert!(text.contains("single-task baselines"), "{text}");
}
