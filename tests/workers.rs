//! Beyond one process on one SQLite database: `bench run --jobs N`,
//! `--enqueue` drained by `bench worker` processes (one killed with
//! SIGKILL in the middle of a cell), and the manifest of a job array run
//! index by index. Each time every cell is finished exactly once and the
//! test metrics equal those of a single-process `bench run` (the grid
//! fixes train.threads).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mtlbench::store::{DbLocation, OpenMode, RunStatus, Store};

use crate::common::*;

/// Four cells of the tiny grid.
pub fn grid4() -> String {
    TINY_GRID.replace("seeds = [1, 2]", "seeds = [1, 2, 3, 4]")
}

/// Six cells of a few seconds each (about 3 s on the 2-core machine):
/// slow enough to see a cell training and kill its worker mid-cell. At 5
/// epochs a cell took 0.6 s there, and a whole `--jobs 2` grid could end
/// between two looks of [`wait_for_running`].
pub fn slow_grid6() -> String {
    TINY_GRID
        .replace("rows = 3000", "rows = 40000")
        .replace("epochs = 2", "epochs = 20")
        .replace("patience = 1", "patience = 20")
        .replace("seeds = [1, 2]", "seeds = [1, 2, 3, 4, 5, 6]")
}

/// A single-process `bench run` of `grid` in a fresh folder: the reference.
pub fn reference(grid: &str, cells: usize) -> CellMetrics {
    let dir = tempfile::tempdir().unwrap();
    let g = write(dir.path(), "g.toml", grid);
    let o = bench(dir.path(), &["run", g.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    finished_metrics(dir.path().join("db.sqlite"), cells)
}

fn spawn_worker(dir: &Path, host: &str) -> Child {
    spawn_worker_on(dir, &dir.join("db.sqlite").display().to_string(), host)
}

/// The single-process reference of [`slow_grid6`], computed once for the
/// tests that compare with it.
pub fn slow_reference() -> &'static CellMetrics {
    static REFERENCE: std::sync::OnceLock<CellMetrics> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| reference(&slow_grid6(), 6))
}

#[test]
fn jobs_2_and_jobs_1_give_the_metrics_of_one_process_and_reach_the_predictions() {
    let expected = reference(&grid4(), 4);
    for jobs in ["1", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let g = write(d, "g.toml", &grid4());
        let o = bench(d, &["run", g.to_str().unwrap(), "--jobs", jobs]);
        assert!(o.status.success(), "--jobs {jobs}: {}", stderr(&o));
        // Off a terminal: one line per finished cell, named by its worker.
        let err = stderr(&o);
        let done: Vec<&str> = err.lines().filter(|l| l.contains(": finished in ")).collect();
        assert_eq!(done.len(), 4, "{err}");
        assert!(done.iter().all(|l| l.starts_with("w1 [") || l.starts_with("w2 [")), "{done:?}");
        assert!(stdout(&o).contains("4 cells, 4 trained, 0 already finished"), "{}", stdout(&o));
        assert_eq!(finished_metrics(d.join("db.sqlite"), 4), expected, "--jobs {jobs}");
        // Another process reaches the predictions the workers wrote: DeLong reads them.
        let store = Store::open(&d.join("db.sqlite")).unwrap();
        let ids: Vec<String> = store.list_runs().unwrap().into_iter().map(|r| r.id).collect();
        drop(store);
        let o = bench(d, &["compare", &ids[0], &ids[1], "--format", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("\"delong\""), "{}", stdout(&o));
        // Again: nothing left to train.
        let o = bench(d, &["run", g.to_str().unwrap(), "--jobs", jobs]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("4 cells, 0 trained, 4 already finished"), "{}", stdout(&o));
    }
}

#[test]
fn three_workers_drain_a_grid_and_a_killed_workers_cell_is_trained_again_after_its_lease() {
    let expected = slow_reference();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = write(d, "g.toml", &slow_grid6());
    let o = bench(d, &["run", g.to_str().unwrap(), "--enqueue"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("6 cells registered, 0 already finished"), "{}", stdout(&o));
    let db = d.join("db.sqlite");
    assert!(Store::open(&db).unwrap().list_runs().unwrap().is_empty(), "--enqueue trains nothing");
    // Three "machines": the killed one's process cannot be checked by the
    // others, so its cell waits for its lease (30 s without a heartbeat).
    three_workers_one_killed(&DbLocation::from(db), |_, host| spawn_worker(d, host), expected);
}

#[test]
fn a_manifest_run_index_by_index_trains_each_cell_once_also_when_an_index_repeats() {
    let expected = reference(&grid4(), 4);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = write(d, "g.toml", &grid4());
    let o = bench(d, &["plan", "g.toml", "--manifest", "cells.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("cells.json")).unwrap()).unwrap();
    assert_eq!(m["cells"].as_array().unwrap().len(), 4);
    // What a job array does: one task per index; index 2 is retried.
    for (i, index) in ["0", "1", "2", "2", "3"].into_iter().enumerate() {
        let mut cmd = Command::new(bench_bin());
        cmd.current_dir(d).env("MTLBENCH_DB", d.join("db.sqlite")).env("MTLBENCH_CACHE", d.join("cache"));
        // The index from Slurm's variable, Kubernetes' variable, or --cell.
        match i % 3 {
            0 => cmd.env("SLURM_ARRAY_TASK_ID", index).args(["run", "--manifest", "cells.json"]),
            1 => cmd.env("JOB_COMPLETION_INDEX", index).args(["run", "--manifest", "cells.json"]),
            _ => cmd.args(["run", "--manifest", "cells.json", "--cell", index]),
        };
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "index {index}: {}", stderr(&o));
        let trained = if i == 3 { "0 trained, 1 already finished" } else { "1 trained, 0 already finished" };
        assert!(stdout(&o).contains(&format!("1 cells, {trained}")), "index {index}: {}", stdout(&o));
    }
    assert_eq!(finished_metrics(d.join("db.sqlite"), 4), expected);
    assert_eq!(Store::open(&d.join("db.sqlite")).unwrap().list_runs().unwrap().len(), 4, "a retried index trained again");
    // Out of range, and a grid edited after planning: refused, naming the manifest.
    let o = bench(d, &["run", "--manifest", "cells.json", "--cell", "4"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("manifest cells.json: cell 4 does not exist: the manifest has 4 cells, 0 to 3"), "{}", stderr(&o));
    std::fs::write(&g, grid4().replace("epochs = 2", "epochs = 3")).unwrap();
    let o = bench(d, &["run", "--manifest", "cells.json", "--cell", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("the grid g.toml changed since the manifest was made"), "{}", stderr(&o));
}

#[test]
fn ctrl_c_of_jobs_stops_every_worker_with_its_run_killed_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = write(d, "g.toml", &slow_grid6());
    let db = d.join("db.sqlite");
    let child = Command::new(bench_bin())
        .current_dir(d)
        .env("MTLBENCH_DB", &db)
        .env("MTLBENCH_CACHE", d.join("cache"))
        .args(["run", g.to_str().unwrap(), "--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let host = mtlbench::env::hostname();
    wait_for_running(db.as_path(), &host);
    // SAFETY: sending SIGINT to our own child process (the parent only: its workers have their own group).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let store = Store::open(&db).unwrap();
    let runs = store.list_runs().unwrap();
    assert!(runs.iter().all(|r| r.status != RunStatus::Running), "{runs:#?}");
    assert!(runs.iter().any(|r| r.status == RunStatus::Killed && r.error.as_deref() == Some("interrupted")), "{runs:#?}");
    drop(store);
    let o = bench(d, &["run", g.to_str().unwrap(), "--jobs", "2", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    finished_metrics(db.as_path(), 6);
}

#[test]
fn a_following_worker_waits_for_a_sweep_registered_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The database exists (another sweep), the followed one does not yet.
    let other = write(d, "other.toml", &TINY_GRID.replace("name = \"tiny\"", "name = \"other\""));
    let o = bench(d, &["run", other.to_str().unwrap(), "--enqueue"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut worker = Command::new(bench_bin())
        .current_dir(d)
        .env("MTLBENCH_DB", d.join("db.sqlite"))
        .env("MTLBENCH_CACHE", d.join("cache"))
        .args(["worker", "--quiet", "--sweep", "tiny", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bench worker");
    std::thread::sleep(Duration::from_secs(2));
    assert!(worker.try_wait().unwrap().is_none(), "the worker did not wait for sweep `tiny`");
    let g = write(d, "g.toml", TINY_GRID);
    let o = bench(d, &["run", g.to_str().unwrap(), "--enqueue"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t0 = Instant::now();
    let store = Store::open_at(&DbLocation::from(d.join("db.sqlite")), OpenMode::ReadExisting).unwrap();
    let tiny_finished = || {
        store.list_runs().unwrap().iter().filter(|r| r.status == RunStatus::Finished).count()
    };
    while tiny_finished() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(180), "the following worker did not train sweep `tiny`");
        assert!(worker.try_wait().unwrap().is_none(), "the worker exited early");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Only the followed sweep was trained; the other stays queued.
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let status = worker.wait().unwrap();
    assert!(matches!(status.code(), Some(0) | Some(130)), "a stopped worker exits with 0 or 130: {status:?}");
}
