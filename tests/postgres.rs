//! The store on PostgreSQL, driven through `bench` as a team would: three
//! workers on three "machines" (folders that share nothing but the
//! database URL) drain one grid, one of them killed with SIGKILL in the
//! middle of a cell; a fourth machine reads the results with every verb.
//! Each test gets a database of its own (`store::pg_testing`); without a
//! server the tests are skipped unless MTLBENCH_REQUIRE_POSTGRES is set.

use std::path::Path;
use std::process::{Command, Output};

use mtlbench::store::pg_testing::TestDatabase;
use mtlbench::store::{OpenMode, RunStatus, Store};

use crate::common::*;
use crate::workers::{slow_grid6, slow_reference};

/// Runs `bench` in `dir` on database `db`.
pub fn bench_on(dir: &Path, db: &str, args: &[&str]) -> Output {
    Command::new(bench_bin())
        .current_dir(dir)
        .env("MTLBENCH_DB", db)
        .env("MTLBENCH_CACHE", dir.join("cache"))
        .args(args)
        .output()
        .expect("running bench")
}

fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn three_workers_on_three_machines_drain_a_postgres_grid_and_a_killed_workers_cell_is_trained_again() {
    let Some(pg) = TestDatabase::create("three_workers") else { return };
    let url = pg.url();
    let expected = slow_reference();
    let machines: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let m = |i: usize| machines[i].path();
    write(m(0), "g.toml", &slow_grid6());
    let out = ok(bench_on(m(0), &url, &["run", "g.toml", "--enqueue"]), "enqueue");
    assert!(out.contains("6 cells registered, 0 already finished"), "{out}");
    assert!(!m(0).join("results").exists(), "nothing is written beside the grid");
    let store = three_workers_one_killed(&pg.location, |i, host| spawn_worker_on(m(i + 1), &url, host), expected);
    let runs = store.list_runs().unwrap();
    // Every finished run's predictions are in the database, none on a worker's disk.
    for r in runs.iter().filter(|r| r.status == RunStatus::Finished) {
        let name = r.predictions_path.as_deref().unwrap();
        assert_eq!(store.load_predictions(name).unwrap().rows, store.load_predictions(name).unwrap().users.len());
    }
    for i in 1..4 {
        assert!(!m(i).join("results").exists() && !m(i).join("predictions").exists(), "machine {i} kept files");
    }
    drop(store);
    let ids: Vec<String> = runs.iter().filter(|r| r.status == RunStatus::Finished).map(|r| r.id.clone()).collect();
    readers_work_on_another_machine(&url, &ids);
}

/// list, show, compare (with DeLong, which reads predictions), report,
/// fuse and leaderboard, from a folder that has nothing but the URL.
fn readers_work_on_another_machine(url: &str, ids: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let list = ok(bench_on(d, url, &["list"]), "list");
    assert_eq!(list.lines().filter(|l| l.contains(" finished ")).count(), 6, "{list}");
    let show = ok(bench_on(d, url, &["show", &ids[0]]), "show");
    assert!(show.contains(&ids[0]), "{show}");
    let cmp = ok(bench_on(d, url, &["compare", &ids[0], &ids[1], "--format", "json"]), "compare");
    assert!(cmp.contains("\"delong\""), "{cmp}");
    ok(bench_on(d, url, &["report", "--out", "site"]), "report");
    let page = std::fs::read_to_string(d.join("site/index.html")).unwrap();
    assert!(page.contains("tiny"), "the report shows the grid");
    assert!(!page.contains("s3cret"));
    let fused = ok(bench_on(d, url, &["fuse", &ids[0], &ids[1]]), "fuse");
    assert!(fused.contains("fusion"), "{fused}");
    let board = ok(bench_on(d, url, &["leaderboard", "--format", "json"]), "leaderboard");
    let v: serde_json::Value = serde_json::from_str(&board).unwrap();
    assert!(v.to_string().contains("tiny"), "{board}");
    // The fused run is recorded, with its predictions, in the database.
    let after = ok(bench_on(d, url, &["list"]), "list after fuse");
    assert_eq!(after.lines().filter(|l| l.contains(" finished ")).count(), 7, "{after}");
    assert!(std::fs::read_dir(d).unwrap().all(|e| e.unwrap().file_name() != "predictions"));
}

#[test]
fn an_unreachable_postgres_url_is_named_with_its_password_masked() {
    let dir = tempfile::tempdir().unwrap();
    let o = bench_on(dir.path(), "postgres://bench:s3cret@127.0.0.1:1/nowhere", &["list"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("database postgres://bench:***@127.0.0.1:1/nowhere"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert_each_cause_once(&err);
}

/// The runs of a database as (name, status), sorted.
fn names(db: &str) -> Vec<(String, RunStatus)> {
    let store = Store::open_at(&mtlbench::store::DbLocation::parse(db), OpenMode::ReadExisting).unwrap();
    let mut v: Vec<(String, RunStatus)> = store.list_runs().unwrap().into_iter().map(|r| (r.name, r.status)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn sync_moves_finished_runs_into_postgres_and_back_without_duplicating_a_cell() {
    let Some(pg) = TestDatabase::create("sync") else { return };
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "g.toml", TINY_GRID);
    ok(bench(d, &["run", "g.toml", "--quiet"]), "run on the laptop");
    let laptop = d.join("db.sqlite").display().to_string();
    let expected = finished_metrics(d.join("db.sqlite"), 2);

    // Into the team database, twice: the second time copies nothing.
    let out = ok(bench_on(d, &url, &["sync", "--from", &laptop, "--to", &url]), "sync up");
    assert!(out.contains("2 runs copied, 0 skipped"), "{out}");
    assert!(!out.contains("secret") && out.contains(&pg.location.to_string()), "{out}");
    let out = ok(bench_on(d, &url, &["sync", "--from", &laptop, "--to", &url]), "sync up again");
    assert!(out.contains("0 runs copied, 2 skipped"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("skipped ") && l.contains("already finished")).count(), 2, "{out}");
    assert_eq!(finished_metrics(pg.location.clone(), 2), expected);
    assert_eq!(names(&url), names(&laptop));

    // A second laptop trained four cells, two of them the same cells: only the other two are copied.
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "g.toml", &crate::workers::grid4());
    ok(bench(other.path(), &["run", "g.toml", "--quiet"]), "run on the second laptop");
    let second = other.path().join("db.sqlite").display().to_string();
    let out = ok(bench_on(d, &url, &["sync", "--from", &second, "--to", &url]), "sync the second laptop");
    assert!(out.contains("2 runs copied, 2 skipped"), "{out}");
    let store = Store::open_at(&pg.location, OpenMode::ReadExisting).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 4, "one finished run per cell: {runs:#?}");
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    drop(store);

    // Back into a new SQLite file elsewhere: predictions become files, DeLong reads them.
    let home = tempfile::tempdir().unwrap();
    let back = home.path().join("team.sqlite").display().to_string();
    let out = ok(bench_on(home.path(), &back, &["sync", "--from", &url, "--to", &back]), "sync down");
    assert!(out.contains("4 runs copied, 0 skipped"), "{out}");
    assert_eq!(names(&back), names(&url));
    assert!(home.path().join("predictions").join(format!("{}.bin", ids[0])).exists());
    let cmp = ok(bench_on(home.path(), &back, &["compare", &ids[0], &ids[1], "--format", "json"]), "compare after sync down");
    assert!(cmp.contains("\"delong\""), "{cmp}");
    let cmp = ok(bench_on(home.path(), &url, &["compare", &ids[0], &ids[1], "--format", "json"]), "compare on the team database");
    assert!(cmp.contains("\"delong\""), "{cmp}");
    let out = ok(bench_on(home.path(), &back, &["sync", "--from", &url, "--to", &back]), "sync down again");
    assert!(out.contains("0 runs copied, 4 skipped"), "{out}");
    let o = bench_on(home.path(), &back, &["sync", "--from", &back, "--to", &back]);
    assert!(!o.status.success() && stderr(&o).contains("the same database"), "{}", stderr(&o));
}
