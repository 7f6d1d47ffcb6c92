//! Crash safety: SIGKILL in the middle of a grid, Ctrl-C, and two `bench
//! run` on one database. Afterwards every cell is finished exactly once and
//! SQLite's integrity check passes.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mtlbench::store::{RunStatus, Store};

use crate::common::*;

/// Four cells of a few seconds each (slow enough to be caught mid-run by
/// the 50 ms polling below, also in a release build).
fn slow_grid() -> String {
    TINY_GRID
        .replace("rows = 3000", "rows = 60000")
        .replace("epochs = 2", "epochs = 6")
        .replace("seeds = [1, 2]", "seeds = [1, 2, 3, 4]")
        .replace("patience = 1", "patience = 5")
}

fn spawn_run(dir: &Path, grid: &Path) -> Child {
    Command::new(bench_bin())
        .current_dir(dir)
        .env("MTLBENCH_DB", dir.join("db.sqlite"))
        .env("MTLBENCH_CACHE", dir.join("cache"))
        .args(["run", grid.to_str().unwrap(), "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bench")
}

/// Waits until the database shows `finished` >= n and one run `running`.
fn wait_mid_grid(db: &Path, n: usize) {
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(180), "grid never reached the middle");
        std::thread::sleep(Duration::from_millis(50));
        if !db.exists() {
            continue;
        }
        let Ok(store) = Store::open(db) else { continue };
        let Ok(runs) = store.list_runs() else { continue };
        let fin = runs.iter().filter(|r| r.status == RunStatus::Finished).count();
        let running = runs.iter().any(|r| r.status == RunStatus::Running);
        if fin >= n && running {
            return;
        }
    }
}

/// Every cell of the sweep has exactly one finished run.
fn assert_each_cell_once(db: &Path, cells: usize) {
    let store = Store::open(db).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let runs = store.list_runs().unwrap();
    let mut finished: HashMap<String, usize> = HashMap::new();
    for r in runs.iter().filter(|r| r.status == RunStatus::Finished) {
        *finished.entry(r.cell_key.clone()).or_default() += 1;
    }
    assert_eq!(finished.len(), cells, "runs: {runs:#?}");
    assert!(finished.values().all(|&n| n == 1), "a cell finished twice: {finished:?}");
    assert!(runs.iter().all(|r| r.status != RunStatus::Running), "a run is left running");
}

#[test]
fn sigkill_mid_grid_then_rerun_finishes_each_cell_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "g.toml", &slow_grid());
    let mut child = spawn_run(d, &grid);
    wait_mid_grid(&d.join("db.sqlite"), 1);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    {
        let store = Store::open(&d.join("db.sqlite")).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        assert!(store.list_runs().unwrap().iter().any(|r| r.status == RunStatus::Running), "the killed run should still look running");
    }
    let o = bench(d, &["run", grid.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_each_cell_once(&d.join("db.sqlite"), 4);
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let killed: Vec<_> = store.list_runs().unwrap().into_iter().filter(|r| r.status == RunStatus::Killed).collect();
    assert_eq!(killed.len(), 1);
    assert!(killed[0].error.as_deref().unwrap_or("").contains("stale"), "{killed:?}");
}

#[test]
fn ctrl_c_marks_the_run_killed_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "g.toml", &slow_grid());
    let child = spawn_run(d, &grid);
    wait_mid_grid(&d.join("db.sqlite"), 0);
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let runs = store.list_runs().unwrap();
    assert!(runs.iter().any(|r| r.status == RunStatus::Killed && r.error.as_deref() == Some("interrupted")), "{runs:#?}");
    assert!(runs.iter().all(|r| r.status != RunStatus::Running));
    drop(store);
    let o = bench(d, &["run", grid.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_each_cell_once(&d.join("db.sqlite"), 4);
}

#[test]
fn two_concurrent_runs_share_the_cells() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "g.toml", &slow_grid());
    // Create the database first so both processes see the migrated schema.
    drop(Store::open(&d.join("db.sqlite")).unwrap());
    let a = spawn_run(d, &grid);
    let b = spawn_run(d, &grid);
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(oa.status.success(), "{}", String::from_utf8_lossy(&oa.stderr));
    assert!(ob.status.success(), "{}", String::from_utf8_lossy(&ob.stderr));
    assert_each_cell_once(&d.join("db.sqlite"), 4);
    // Between them they trained each cell once.
    let trained = |o: &std::process::Output| {
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        s.split(" trained").next().and_then(|x| x.rsplit(' ').next()).and_then(|n| n.parse::<usize>().ok()).unwrap()
    };
    assert_eq!(trained(&oa) + trained(&ob), 4);
}
