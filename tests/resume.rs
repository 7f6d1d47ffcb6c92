//! Crash safety: SIGKILL in the middle of a grid and of a forced rerun,
//! Ctrl-C, two `bench run` on one database (with the shortest stale timeout
//! allowed), and a run taken over while its process was stopped.
//! Afterwards every cell is finished exactly once, nothing finished before
//! is lost, and SQLite's integrity check passes.

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
    spawn_with(dir, grid, &[], &[])
}

/// `bench run GRID --quiet` with extra arguments and environment.
fn spawn_with(dir: &Path, grid: &Path, args: &[&str], envs: &[(&str, &str)]) -> Child {
    Command::new(bench_bin())
        .current_dir(dir)
        .env("MTLBENCH_DB", dir.join("db.sqlite"))
        .env("MTLBENCH_CACHE", dir.join("cache"))
        .envs(envs.iter().copied())
        .args(["run", grid.to_str().unwrap(), "--quiet"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bench")
}

/// Waits until the database shows `finished` >= n and one run `running`.
fn wait_mid_grid(db: &Path, n: usize) {
    wait_for(db, |runs| runs.iter().filter(|r| r.status == RunStatus::Finished).count() >= n && runs.iter().any(|r| r.status == RunStatus::Running));
}

/// Waits until the runs of the database satisfy `ok`.
fn wait_for(db: &Path, ok: impl Fn(&[mtlbench::store::RunRow]) -> bool) {
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(180), "grid never reached the middle");
        std::thread::sleep(Duration::from_millis(50));
        if !db.exists() {
            continue;
        }
        let Ok(store) = Store::open(db) else { continue };
        let Ok(runs) = store.list_runs() else { continue };
        if ok(&runs) {
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
    drop(store);

    // SIGKILL of a forced rerun: every old finished run is still there, and
    // still its cell's result, with its metrics.
    let db = d.join("db.sqlite");
    let finished = |store: &Store| -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = store
            .list_runs()
            .unwrap()
            .into_iter()
            .filter(|r| r.status == RunStatus::Finished)
            .map(|r| (r.id.clone(), store.metrics(&r.id).unwrap().len()))
            .collect();
        v.sort();
        v
    };
    let before = finished(&Store::open(&db).unwrap());
    let known = before.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    let mut child = spawn_with(d, &grid, &["--force"], &[]);
    wait_for(&db, |runs| runs.iter().any(|r| r.status == RunStatus::Running && !known.contains(&r.id)));
    child.kill().unwrap();
    child.wait().unwrap();
    let store = Store::open(&db).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert_eq!(finished(&store), before, "a killed forced rerun changes no cell's result");
    for r in store.list_runs().unwrap().iter().filter(|r| r.status == RunStatus::Finished) {
        assert_eq!(store.finished_run_for_cell(&r.cell_key).unwrap().map(|f| f.id), Some(r.id.clone()));
    }
    drop(store);
    let o = bench(d, &["run", grid.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("0 trained, 4 already finished"), "{}", stdout(&o));
    assert_each_cell_once(&db, 4);
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
    // The shortest stale timeout allowed: live runs are never taken over.
    let stale = [("MTLBENCH_STALE_SECONDS", "30")];
    let a = spawn_with(d, &grid, &[], &stale);
    let b = spawn_with(d, &grid, &[], &stale);
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

/// Sends `sig` to a child process.
fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn a_run_taken_over_while_its_process_was_stopped_is_kept_as_superseded_and_both_grids_finish() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db.sqlite");
    let grid = write(d, "g.toml", &slow_grid().replace("seeds = [1, 2, 3, 4]", "seeds = [1, 2]"));
    drop(Store::open(&db).unwrap());
    let stale = [("MTLBENCH_STALE_SECONDS", "30")];
    let a = spawn_with(d, &grid, &[], &stale);
    wait_mid_grid(&db, 0);
    // Stop A and make its run look silent for an hour (as a machine that
    // slept would); if A was stopped inside a write, let it finish first.
    let old_beat = "UPDATE runs SET heartbeat_at = '2000-01-01T00:00:00.000Z' WHERE status = 'running'";
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(60), "could not stop A with a run in training");
        signal(&a, libc::SIGSTOP);
        if matches!(crate::fence::sql(&db, old_beat, 500), Ok(1)) {
            break;
        }
        signal(&a, libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(30));
    }
    let taken = Store::open(&db).unwrap().list_runs().unwrap().into_iter().find(|r| r.status == RunStatus::Running).unwrap();
    // B takes the silent run's cell over and trains the whole grid.
    let ob = spawn_with(d, &grid, &[], &stale).wait_with_output().unwrap();
    assert!(ob.status.success(), "{}", String::from_utf8_lossy(&ob.stderr));
    let marked = Store::open(&db).unwrap().find_run(&taken.id).unwrap();
    assert_eq!(marked.status, RunStatus::Killed);
    assert!(marked.error.as_deref().unwrap_or("").starts_with("stale: no heartbeat for"), "{marked:?}");
    // A resumes: its claim is gone; it keeps its attempt and finishes its grid.
    signal(&a, libc::SIGCONT);
    let oa = a.wait_with_output().unwrap();
    let (ea, sa) = (String::from_utf8_lossy(&oa.stderr).to_string(), String::from_utf8_lossy(&oa.stdout).to_string());
    assert!(oa.status.success(), "{ea}");
    assert!(ea.contains(&format!("run {} is kept as a superseded attempt and the grid goes on", taken.id)), "{ea}");
    assert!(ea.contains(&format!("run {} no longer holds its claim on the cell (the run is now killed: stale: no heartbeat for", taken.id)), "{ea}");
    assert!(sa.contains("1 superseded"), "{sa}");
    assert_each_cell_once(&db, 2);
    let store = Store::open(&db).unwrap();
    let was = store.find_run(&taken.id).unwrap();
    assert_eq!(was.status, RunStatus::Superseded);
    let winner = store.finished_run_for_cell(&taken.cell_key).unwrap().unwrap();
    assert_eq!(was.superseded_by.as_deref(), Some(winner.id.as_str()));
}
