//! End to end through the CLI as a user would: run a tiny grid, rerun it
//! (nothing retrains), list, show, report and README table.

use crate::common::*;

#[test]
fn run_rerun_list_show_report_readme() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "tiny.toml", TINY_GRID);
    let o = bench(d, &["run", grid.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    assert!(stdout(&o).contains("2 trained, 0 already finished, 0 busy elsewhere, 0 failed"), "{}", stdout(&o));

    let o = bench(d, &["run", grid.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("0 trained, 2 already finished"), "{}", stdout(&o));

    let o = bench(d, &["list", "--format", "json"]);
    assert!(o.status.success());
    let runs: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["status"] == "finished"));
    let id = runs[0]["id"].as_str().unwrap().to_string();

    // Show by a unique prefix.
    let o = bench(d, &["show", &id[..6]]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains(&id) && s.contains("test") && s.contains("auc"), "{s}");

    let o = bench(d, &["show", "zzzz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no run matches"), "{}", stderr(&o));

    let o = bench(d, &["report", "--out", "reports"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let index = std::fs::read_to_string(d.join("reports/index.html")).unwrap();
    assert!(index.contains("tiny"));
    let sweep_page = std::fs::read_dir(d.join("reports")).unwrap().flatten().map(|e| e.path()).find(|p| {
        let n = p.file_name().unwrap().to_str().unwrap();
        n.starts_with("sweep-") && n.ends_with(".html")
    }).unwrap();
    assert!(std::fs::read_to_string(&sweep_page).unwrap().contains(&id));
    assert!(d.join(format!("reports/run-{id}.html")).exists());
    let svgs: Vec<_> = std::fs::read_dir(d.join("reports")).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "svg")).collect();
    assert!(svgs.len() >= 3, "{} charts", svgs.len());
    for svg in svgs {
        let text = std::fs::read_to_string(svg.path()).unwrap();
        assert!(roxmltree::Document::parse(&text).is_ok(), "{} is not well-formed", svg.path().display());
    }

    let readme = write(d, "README.md", "# x\n<!-- bench:results:begin -->\nold\n<!-- bench:results:end -->\n");
    let o = bench(d, &["readme", "--readme", readme.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(!text.contains("old") && text.contains("| SharedBottom |") && text.contains("| Equal weighting | default | 2 |"), "{text}");
    // The table's numbers are the stored ones: mean of the two seeds' click AUC.
    let aucs: Vec<f64> = runs
        .iter()
        .map(|r| {
            let o = bench(d, &["show", r["id"].as_str().unwrap(), "--format", "json"]);
            let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            v["metrics"].as_array().unwrap().iter().find(|m| m["split"] == "test" && m["task"] == "click" && m["metric"] == "auc").unwrap()["value"].as_f64().unwrap()
        })
        .collect();
    let mean = (aucs[0] + aucs[1]) / 2.0;
    assert!(text.contains(&format!("{mean:.4} ±")), "mean {mean:.4} not in {text}");
    // Idempotent.
    let o = bench(d, &["readme", "--readme", readme.to_str().unwrap()]);
    assert!(stdout(&o).contains("already up to date"));
}

#[test]
fn same_seed_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "tiny.toml", &TINY_GRID.replace("seeds = [1, 2]", "seeds = [5]"));
    let metric = |db: &str| {
        let o = bench(d, &["--db", db, "run", grid.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = bench(d, &["--db", db, "list", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let id = v[0]["id"].as_str().unwrap().to_string();
        let o = bench(d, &["--db", db, "show", &id, "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["metrics"].to_string().replace(&id, "")
    };
    assert_eq!(metric("a.sqlite"), metric("b.sqlite"));
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("running git");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn progress_lines_by_verbosity_provenance_and_status_filter() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The user's own repository, which is not mtlbench's.
    let grid = write(d, "tiny.toml", &TINY_GRID.replace("seeds = [1, 2]", "seeds = [1]"));
    git(d, &["init", "-q"]);
    git(d, &["add", "tiny.toml"]);
    git(d, &["commit", "-q", "-m", "grid"]);
    let workdir_head = git(d, &["rev-parse", "HEAD"]);

    // Off a terminal: a line per cell, no epoch lines.
    let o = bench(d, &["run", grid.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("grid tiny: 1 cells, database ") && err.contains("data toy"), "{err}");
    assert!(err.contains("[1/1] shared-bottom-equal-s1: training as run "), "{err}");
    let finished = err.lines().find(|l| l.contains(": finished in ")).unwrap_or_else(|| panic!("{err}"));
    assert!(finished.contains(", best epoch ") && finished.contains("test AUC click 0."), "{finished}");
    assert!(!err.contains(" epoch 1/2: "), "epoch lines only with --verbose: {err}");

    // --verbose adds a line per epoch.
    let o = bench(d, &["run", grid.to_str().unwrap(), "--force", "-v"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for e in ["epoch 1/2: valid AUC click 0.", "epoch 2/2: valid AUC click 0."] {
        assert!(err.contains(e), "`{e}` missing: {err}");
    }
    // --quiet: nothing on stderr, the summary on stdout.
    let o = bench(d, &["run", grid.to_str().unwrap(), "-q"]);
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
    assert!(stdout(&o).contains("1 cells, 0 trained, 1 already finished"), "{}", stdout(&o));
    let o = bench(d, &["run", grid.to_str().unwrap(), "-q", "-v"]);
    assert_eq!(o.status.code(), Some(2), "--quiet and --verbose conflict");

    // The build's commit and the working directory's, recorded apart.
    let o = bench(d, &["--version"]);
    let version = stdout(&o);
    let build = mtlbench::env::BUILD_COMMIT;
    let short = if build == "unknown" { build } else { &build[..7] };
    assert!(version.starts_with(&format!("bench {} ({short}", env!("CARGO_PKG_VERSION"))), "{version}");
    let o = bench(d, &["list", "--status", "finished", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let env: serde_json::Value = serde_json::from_str(runs[0]["env_json"].as_str().unwrap()).unwrap();
    assert_eq!(env["mtlbench_commit"], build);
    assert_eq!(env["workdir_git_commit"], workdir_head.as_str());
    assert_eq!(env["workdir_git_dirty"], false);
    assert_ne!(env["workdir_git_commit"], env["mtlbench_commit"]);
    let o = bench(d, &["show", runs[0]["id"].as_str().unwrap()]);
    let show = stdout(&o);
    let line = show.lines().find(|l| l.trim_start().starts_with("provenance")).unwrap_or_else(|| panic!("{show}"));
    assert!(line.contains(&format!("working directory at commit {}", &workdir_head[..12])), "{line}");
    assert!(line.contains(&format!("(build {}", if build == "unknown" { build } else { &build[..12] })), "{line}");

    // The forced rerun left the first run as history, superseded by the
    // rerun once it finished, and statuses are checked.
    let o = bench(d, &["list", "--status", "superseded", "--format", "json"]);
    let superseded: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(superseded.as_array().unwrap().len(), 1);
    let rerun = runs[0]["id"].as_str().unwrap();
    assert_eq!(superseded[0]["error"], format!("superseded by run {rerun}, a forced rerun"));
    assert_eq!(superseded[0]["superseded_by"], rerun);
    let o = bench(d, &["list", "--status", "killed", "--format", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap().as_array().unwrap().len(), 0);
    let o = bench(d, &["list", "--status", "done"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown status `done`; valid: queued, running, finished, failed, killed, superseded"), "{}", stderr(&o));
}
