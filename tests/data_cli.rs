//! `bench data synth`, `bench data inspect`, and grids on the WeChat-shaped
//! synthetic source and on a CSV table (UCI Adult), end to end.

use crate::common::{bench, stderr, stdout, write};

#[test]
fn synth_is_deterministic_and_inspect_describes_it() {
    let dir = tempfile::tempdir().unwrap();
    for out in ["a", "b"] {
        let o = bench(dir.path(), &["data", "synth", "--out", out, "--users", "120", "--feeds", "400", "--seed", "4"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("read_comment"), "{}", stdout(&o));
    }
    for f in ["user_action.csv", "feed_info.csv"] {
        let a = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(f)).unwrap();
        assert!(a == b, "{f} differs for the same seed");
    }
    write(dir.path(), "data.toml", "kind = \"wechat\"\npath = \"a\"\ntasks = [\"read_comment\", \"comment\"]\n");
    let o = bench(dir.path(), &["data", "inspect", "data.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "train",
        "validation",
        "test",
        "userid",
        "his_read_comment_7d_seq",
        "comment       within read_comment",
        "follow        within click_avatar",
    ] {
        assert!(out.contains(want), "inspect output lacks `{want}`:\n{out}");
    }
}

#[test]
fn inspect_names_the_bad_key_or_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "typo.toml", "kind = \"wechat\"\npath = \"nowhere\"\ntaks = [\"like\"]\n");
    let o = bench(dir.path(), &["data", "inspect", "typo.toml"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("typo.toml") && stderr(&o).contains("taks"), "{}", stderr(&o));
    write(dir.path(), "missing.toml", "[data]\nkind = \"wechat\"\npath = \"nowhere\"\n[grid]\nmodels = []\n");
    let o = bench(dir.path(), &["data", "inspect", "missing.toml"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nowhere/user_action.csv") && stderr(&o).contains("not found"), "{}", stderr(&o));
}

#[test]
fn synthetic_wechat_grid_trains_through_every_feature() {
    let dir = tempfile::tempdir().unwrap();
    let grid = r#"
name = "synwx"
[data]
kind = "synthetic-wechat"
users = 150
feeds = 500
seed = 2
tasks = ["read_comment", "like"]
[train]
epochs = 1
batch_size = 512
threads = 1
[models.tower]
hidden = [16]
[models.shared-bottom]
bottom = [32]
[grid]
models = ["shared-bottom"]
strategies = ["equal"]
seeds = [1]
"#;
    write(dir.path(), "grid.toml", grid);
    let o = bench(dir.path(), &["run", "grid.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("synthetic-wechat (150 users, 500 feeds, seed 2)"), "{}", stderr(&o));
    // The generated raw files and the Parquet features sit in the cache.
    let cache = dir.path().join("cache");
    assert_eq!(std::fs::read_dir(cache.join("synthetic-wechat")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(cache.join("wechat")).unwrap().count(), 1);
    // Its rows have users: a uAUC per task on test.
    let uauc = test_metric_tasks(dir.path(), "uauc");
    assert_eq!(uauc, vec!["like".to_string(), "read_comment".to_string()]);
}

/// The tasks of the one run in `dir`'s database with a test `metric` row, sorted.
fn test_metric_tasks(dir: &std::path::Path, metric: &str) -> Vec<String> {
    let store = mtlbench::store::Store::open(&dir.join("db.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 1);
    let mut tasks: Vec<String> =
        store.metrics(&runs[0].id).unwrap().into_iter().filter(|m| m.split == "test" && m.metric == metric).map(|m| m.task).collect();
    tasks.sort();
    tasks
}

#[test]
fn adult_table_grid_trains_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let adult = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/adult/adult.csv.gz");
    // experiments/adult.toml with one seed and one epoch.
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/adult.toml")).unwrap();
    let text = text
        .replace("data/adult/adult.csv.gz", &adult.display().to_string())
        .replace("seeds = [1, 2, 3]", "seeds = [1]")
        .replace("epochs = 6", "epochs = 1");
    write(dir.path(), "adult.toml", &text);
    let o = bench(dir.path(), &["run", "adult.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err.lines().find(|l| l.contains("finished in")).unwrap_or_else(|| panic!("{err}"));
    let auc: f64 = line
        .split("test AUC income ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(auc > 0.8, "income test AUC {auc} after one epoch: {line}");
    // No user column: AUC per task, and no uAUC (it would repeat the AUC).
    assert_eq!(test_metric_tasks(dir.path(), "auc"), vec!["income".to_string(), "never_married".to_string()]);
    assert!(test_metric_tasks(dir.path(), "uauc").is_empty());
}

#[test]
fn encoded_adult_shows_its_bins_and_trains() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("experiments/adult-piecewise-linear.toml")).unwrap();
    let text = text
        .replace("data/adult/adult.csv.gz", &root.join("data/adult/adult.csv.gz").display().to_string())
        .replace("seeds = [1, 2, 3]", "seeds = [1]")
        .replace("epochs = 20", "epochs = 1");
    write(dir.path(), "ple.toml", &text);
    let o = bench(dir.path(), &["data", "inspect", "ple.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "numeric encodings (6), edges from the train split:",
        "age                          piecewise-linear, 46 bins + missing, linear to 16 (relu); edges 17 | 18 | 19 |",
        "capital-gain                 piecewise-linear, 29 bins + missing",
        "dense (0):",
    ] {
        assert!(out.contains(want), "inspect output lacks `{want}`:\n{out}");
    }
    let o = bench(dir.path(), &["run", "ple.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err.lines().find(|l| l.contains("finished in")).unwrap_or_else(|| panic!("{err}"));
    let auc: f64 = line.split("test AUC income ").nth(1).and_then(|s| s.split(',').next()).and_then(|s| s.trim().parse().ok()).unwrap();
    assert!(auc > 0.8, "income test AUC {auc} after one epoch: {line}");
}
