//! `bench fuse`: the ensemble's stored metrics equal the metrics of the
//! averaged saved predictions; runs on different test rows, unknown ids and
//! a damaged prediction file are refused without recording anything.

use mtlbench::store::artifacts::PredictionFile;
use mtlbench::store::{RunStatus, Store};

use crate::common::*;

fn finished_ids(d: &std::path::Path) -> Vec<String> {
    let o = bench(d, &["list", "--status", "finished", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn fuse_records_an_ensemble_with_correct_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "tiny.toml", TINY_GRID);
    assert!(bench(d, &["run", grid.to_str().unwrap(), "-q"]).status.success());
    let ids = finished_ids(d);
    assert_eq!(ids.len(), 2);
    let o = bench(d, &["fuse", &ids[0], &ids[1], "--weights", "3,1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let fused_id = out.split("into run ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();

    // Independent recomputation from the members' prediction files.
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let files: Vec<PredictionFile> = ids
        .iter()
        .map(|i| {
            let r = store.find_run(i).unwrap();
            PredictionFile::read(&store.artifact_dir().join(r.predictions_path.unwrap())).unwrap()
        })
        .collect();
    let rows = files[0].rows;
    let nt = files[0].tasks.len();
    for t in 0..nt {
        let fused: Vec<f32> = (0..rows).map(|r| (3.0 * files[0].columns[t].1[r] + files[1].columns[t].1[r]) / 4.0).collect();
        let labels: Vec<f32> = (0..rows).map(|r| files[0].labels[r * nt + t]).collect();
        let want = mtlbench::metrics::auc(&labels, &fused).unwrap();
        let got = store.metrics(&fused_id).unwrap().into_iter().find(|m| m.split == "test" && m.metric == "auc" && m.task == files[0].tasks[t]).unwrap().value;
        assert!((want - got).abs() < 1e-6, "task {t}: {want} vs {got}");
    }
    let fused = store.find_run(&fused_id).unwrap();
    assert_eq!(fused.model, "fusion");
    assert_eq!(fused.status, RunStatus::Finished);
    // It shows in the sweep's listing.
    let o = bench(d, &["list", "--sweep", "tiny", "--format", "csv"]);
    assert!(stdout(&o).contains(&fused_id));
    // The same fusion twice is refused.
    let o = bench(d, &["fuse", &ids[0], &ids[1], "--weights", "3,1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already recorded"), "{}", stderr(&o));
}

#[test]
fn fuse_refuses_different_rows_bad_ids_and_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g1 = write(d, "a.toml", &TINY_GRID.replace("seeds = [1, 2]", "seeds = [1]"));
    let g2 = write(d, "b.toml", &TINY_GRID.replace("seeds = [1, 2]", "seeds = [1]").replace("rows = 3000", "rows = 3100"));
    assert!(bench(d, &["run", g1.to_str().unwrap(), "-q"]).status.success());
    assert!(bench(d, &["run", g2.to_str().unwrap(), "-q"]).status.success());
    let ids = finished_ids(d);
    assert_eq!(ids.len(), 2);
    let before = finished_ids(d).len();
    let o = bench(d, &["fuse", &ids[0], &ids[1]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("different test rows"), "{}", stderr(&o));
    let o = bench(d, &["fuse", &ids[0], "ffffffff"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no run matches `ffffffff`"), "{}", stderr(&o));
    // Truncate a prediction file: a clear error naming it.
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let r = store.find_run(&ids[0]).unwrap();
    let p = store.artifact_dir().join(r.predictions_path.unwrap());
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let o = bench(d, &["fuse", &ids[0], &ids[0]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(p.file_name().unwrap().to_str().unwrap()), "{}", stderr(&o));
    assert_eq!(finished_ids(d).len(), before, "nothing may be recorded");
}

#[test]
fn foreign_or_truncated_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("db.sqlite"), b"this is not a database at all, just text").unwrap();
    let o = bench(d, &["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("db.sqlite"), "{}", stderr(&o));
    assert_eq!(std::fs::read(d.join("db.sqlite")).unwrap(), b"this is not a database at all, just text");
}
