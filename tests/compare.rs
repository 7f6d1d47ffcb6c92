//! `bench compare` end to end: two runs (params diff, metric deltas,
//! DeLong), a sweep of two configurations over three seeds (mean ± std,
//! paired CIs recomputed here by hand), runs grouped over seeds (Welch), and
//! the refusals: different test rows, a prediction file that is not the
//! run's, an unknown id, a single run.

use std::collections::BTreeMap;

use mtlbench::store::Store;
use serde_json::Value;

use crate::common::*;

/// TINY_GRID with two learning rates and three seeds: 6 cells.
fn grid() -> String {
    format!("{}\n[grid.overrides]\n\"train.lr\" = [0.005, 0.05]\n", TINY_GRID.replace("seeds = [1, 2]", "seeds = [1, 2, 3]"))
}

/// Stored test metrics of a run: (task, metric) -> value.
fn stored(store: &Store, id: &str) -> BTreeMap<(String, String), f64> {
    store.metrics(id).unwrap().into_iter().filter(|m| m.split == "test").map(|m| ((m.task, m.metric), m.value)).collect()
}

fn json(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "bench failed: {}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

fn metric<'a>(c: &'a Value, task: &str, metric: &str) -> &'a Value {
    let t = c["tasks"].as_array().unwrap().iter().find(|t| t["task"] == task).unwrap();
    t["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == metric).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(1.0)
}

#[test]
fn compare_runs_sweep_and_seed_groups() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = write(d, "tiny.toml", &grid());
    let o = bench(d, &["run", g.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 6);
    let find = |lr: &str, seed: i64| runs.iter().find(|r| r.name.contains(&format!("lr={lr}")) && r.seed == seed).unwrap().id.clone();
    let (a, b) = (find("0.005", 1), find("0.05", 1));
    let (sa, sb) = (stored(&store, &a), stored(&store, &b));
    let tasks = ["click", "like"];

    // Two runs: only the differing param, deltas and DeLong on the same rows.
    let c = json(&bench(d, &["compare", &a[..6], &b[..6], "--format", "json"]));
    assert_eq!(c["mode"], "runs");
    let keys: Vec<&str> = c["params"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["train.lr"]);
    assert_eq!(c["columns"][0]["runs"][0]["id"], a.as_str());
    let run_a = store.find_run(&a).unwrap();
    let pred = mtlbench::store::artifacts::PredictionFile::read(&store.artifact_dir().join(run_a.predictions_path.unwrap())).unwrap();
    assert_eq!(c["rows"]["count"], pred.rows);
    assert_eq!(c["rows"]["digest"], pred.rows_digest());
    for task in tasks {
        for m in ["auc", "logloss", "uauc"] {
            let k = (task.to_string(), m.to_string());
            let x = metric(&c, task, m);
            assert!(close(x["stats"][0]["mean"].as_f64().unwrap(), sa[&k]), "{task} {m}");
            assert!(close(x["stats"][1]["mean"].as_f64().unwrap(), sb[&k]), "{task} {m}");
            assert!(close(x["deltas"][1]["estimate"].as_f64().unwrap(), sb[&k] - sa[&k]), "{task} {m}");
            assert!(x["deltas"][0].is_null());
        }
        let auc = &metric(&c, task, "auc")["deltas"][1];
        assert_eq!(auc["ci"]["method"], "delong");
        let k = (task.to_string(), "auc".to_string());
        // DeLong's AUCs come from the prediction files: they equal the stored ones.
        assert!(close(auc["delong"]["auc_a"].as_f64().unwrap(), sb[&k]) && close(auc["delong"]["auc_b"].as_f64().unwrap(), sa[&k]));
        let p = auc["ci"]["p_value"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0);
        let (lo, hi) = (auc["ci"]["low"].as_f64().unwrap(), auc["ci"]["high"].as_f64().unwrap());
        let expected = if lo > 0.0 {
            "better"
        } else if hi < 0.0 {
            "worse"
        } else {
            "within-noise"
        };
        assert_eq!(auc["verdict"], expected);
        assert_eq!((p < 0.05), expected != "within-noise", "p {p} vs CI [{lo}, {hi}]");
    }
    let text = stdout(&bench(d, &["compare", &a, &b]));
    let k = ("click".to_string(), "auc".to_string());
    assert!(text.contains(&format!("{:.4}", sa[&k])) && text.contains(&format!("{:+.4}", sb[&k] - sa[&k])), "{text}");
    assert!(text.contains("DeLong") && text.contains("train.lr") && text.contains("B vs A (test AUC): click "), "{text}");

    // The sweep: two configurations over seeds 1..3, paired by seed.
    let html = d.join("cmp.html");
    let c = json(&bench(d, &["compare", "tiny", "--format", "json", "--html", html.to_str().unwrap()]));
    assert_eq!(c["mode"], "seeds");
    assert_eq!(c["columns"].as_array().unwrap().len(), 2);
    assert_eq!(c["columns"][1]["seeds"], serde_json::json!([1, 2, 3]));
    let keys: Vec<&str> = c["params"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["train.lr"]);
    let t975_df2 = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt(); // closed form of t_{0.975, 2}
    for task in tasks {
        let k = (task.to_string(), "auc".to_string());
        let vals = |lr: &str| (1..=3).map(|s| stored(&store, &find(lr, s))[&k]).collect::<Vec<f64>>();
        let (va, vb) = (vals("0.005"), vals("0.05"));
        let x = metric(&c, task, "auc");
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let sd = |v: &[f64]| (v.iter().map(|y| (y - mean(v)).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
        assert_eq!(x["stats"][0]["n"], 3);
        assert!(close(x["stats"][0]["mean"].as_f64().unwrap(), mean(&va)) && close(x["stats"][1]["mean"].as_f64().unwrap(), mean(&vb)));
        assert!(close(x["stats"][1]["std"].as_f64().unwrap(), sd(&vb)));
        let ci = &x["deltas"][1]["ci"];
        assert_eq!(ci["method"], "paired-t");
        assert_eq!(ci["df"], 2.0);
        let diffs: Vec<f64> = va.iter().zip(&vb).map(|(p, q)| q - p).collect();
        let half = t975_df2 * sd(&diffs) / 3f64.sqrt();
        assert!((ci["low"].as_f64().unwrap() - (mean(&diffs) - half)).abs() < 1e-9, "{task}: {ci}");
        assert!((ci["high"].as_f64().unwrap() - (mean(&diffs) + half)).abs() < 1e-9, "{task}: {ci}");
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("paired t") && page.contains("train.lr"));
    assert!(!page.contains("src=\"http") && !page.contains("<link"), "the page must be self-contained");
    let md = stdout(&bench(d, &["compare", "tiny", "--format", "md"]));
    assert!(md.starts_with("**Compare**") && md.contains("| click | auc | B |"), "{md}");

    // Runs grouped over seeds without a sweep; different seeds -> Welch.
    let ids = [find("0.005", 1), find("0.005", 2), find("0.05", 2), find("0.05", 3)];
    let args: Vec<&str> = ["compare"].into_iter().chain(ids.iter().map(|s| s.as_str())).chain(["--format", "json"]).collect();
    let c = json(&bench(d, &args));
    assert_eq!(c["mode"], "seeds");
    let ci = &metric(&c, "click", "auc")["deltas"][1]["ci"];
    assert_eq!(ci["method"], "welch-t");
    assert!(ci["df"].as_f64().unwrap() > 0.0);
}

#[test]
fn compare_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g1 = write(d, "tiny.toml", TINY_GRID);
    let g2 = write(
        d,
        "other.toml",
        &TINY_GRID
            .replace("rows = 3000", "rows = 2000")
            .replace("name = \"tiny\"", "name = \"other\"")
            .replace("seeds = [1, 2]", "seeds = [1]"),
    );
    for g in [&g1, &g2] {
        let o = bench(d, &["run", g.to_str().unwrap(), "-q"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    let tiny: Vec<_> = runs.iter().filter(|r| r.dataset_digest == runs[0].dataset_digest).collect();
    let other = runs.iter().find(|r| r.dataset_digest != runs[0].dataset_digest).unwrap();
    assert_eq!(tiny.len(), 2);

    // Different test rows: DeLong is refused, the metrics alone are not.
    let o = bench(d, &["compare", &tiny[0].id, &other.id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("different test rows") && stderr(&o).contains("--no-delong"), "{}", stderr(&o));
    let o = bench(d, &["compare", &tiny[0].id, &other.id, "--no-delong"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("DeLong's test not run"), "{}", stdout(&o));

    let o = bench(d, &["compare", "zzzz", &tiny[0].id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("`zzzz` matches no run and no sweep"), "{}", stderr(&o));

    let o = bench(d, &["compare", &tiny[0].id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing to compare"), "{}", stderr(&o));

    // A prediction file swapped for another run's is caught, nothing written.
    let path = |r: &mtlbench::store::RunRow| store.artifact_dir().join(r.predictions_path.as_ref().unwrap());
    std::fs::copy(path(tiny[1]), path(tiny[0])).unwrap();
    let o = bench(d, &["compare", &tiny[0].id, &tiny[1].id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not match the run"), "{}", stderr(&o));
    assert_eq!(store.list_runs().unwrap().len(), runs.len());
}
