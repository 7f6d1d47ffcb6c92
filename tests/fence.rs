//! Claims, fencing and what a hostile user types: stale timeouts that would
//! take over live runs are refused, a pid reused by another program does
//! not block its cell, a finished forced rerun supersedes the old result,
//! read-only verbs create no database, run ids are hex and never patterns.
//! Each test checks that nothing recorded before the command is lost or
//! changed (row counts, statuses and SQLite's integrity check).

use std::path::Path;

use mtlbench::store::fixture::FixtureSpec;
use mtlbench::store::{RunStatus, Store};

use crate::common::*;

/// What a database holds: rows per table, each run's id and status, and
/// the integrity check.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub counts: Vec<(&'static str, i64)>,
    pub runs: Vec<(String, RunStatus)>,
    pub integrity: String,
}

const TABLES: [&str; 10] = ["sweeps", "sweep_cells", "runs", "params", "metrics", "curves", "epochs", "traces", "trace_steps", "gates"];

/// Runs SQL statements on `db` outside the store (what another program
/// would do); returns the rows changed. Gives up after `busy_ms` when the
/// database is locked.
pub fn sql(db: &Path, statements: &str, busy_ms: u64) -> Result<u64, sqlx::Error> {
    use sqlx::{Connection, Executor};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db).busy_timeout(std::time::Duration::from_millis(busy_ms));
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await?;
        let n = conn.execute(statements).await?.rows_affected();
        conn.close().await?;
        Ok(n)
    })
}

pub fn snapshot(db: &Path) -> Snapshot {
    let store = Store::open(db).unwrap();
    let runs = store.list_runs().unwrap().into_iter().map(|r| (r.id, r.status)).collect();
    let integrity = store.integrity_check().unwrap();
    drop(store);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let counts = rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(db)).await.unwrap();
        let mut counts = Vec::new();
        for t in TABLES {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {t}")).fetch_one(&mut conn).await.unwrap();
            counts.push((t, n));
        }
        counts
    });
    Snapshot { counts, runs, integrity }
}

/// A database of `n` recorded runs (no training), in `dir/db.sqlite`.
fn fixture_db(dir: &Path, seeds: usize) -> Vec<String> {
    let store = Store::open(&dir.join("db.sqlite")).unwrap();
    let spec = FixtureSpec { models: vec!["mmoe".into()], strategies: vec!["equal".into()], seeds, ..Default::default() };
    store.write_fixture(&spec, 7).unwrap()
}

#[test]
fn stale_timeouts_that_would_take_over_live_runs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture_db(d, 2);
    let before = snapshot(&d.join("db.sqlite"));
    let grid = write(d, "tiny.toml", TINY_GRID);
    for bad in ["0", "-5", "1", "29", "abc", "nan"] {
        let o = std::process::Command::new(bench_bin())
            .current_dir(d)
            .env("MTLBENCH_DB", d.join("db.sqlite"))
            .env("MTLBENCH_CACHE", d.join("cache"))
            .env("MTLBENCH_STALE_SECONDS", bad)
            .args(["run", grid.to_str().unwrap(), "--quiet"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stdout(&o));
        let e = stderr(&o);
        assert!(e.contains(&format!("MTLBENCH_STALE_SECONDS={bad:?}")) && e.contains("seconds"), "{bad}: {e}");
        if bad != "abc" && bad != "nan" {
            assert!(e.contains("at least 30 seconds"), "{e}");
        }
    }
    assert_eq!(snapshot(&d.join("db.sqlite")), before, "nothing trained or changed");
}

#[test]
fn read_only_verbs_create_no_database_and_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ids = fixture_db(d, 2);
    let before = snapshot(&d.join("db.sqlite"));
    let missing = "no/such/dir/x.sqlite";
    let readme = write(d, "R.md", "<!-- bench:results:begin -->\n<!-- bench:results:end -->\n");
    let verbs: Vec<Vec<&str>> = vec![
        vec!["list"],
        vec!["show", &ids[0]],
        vec!["compare", &ids[0], &ids[1]],
        vec!["report", "--out", "r"],
        vec!["leaderboard"],
        vec!["readme", "--readme", readme.to_str().unwrap()],
        vec!["fuse", &ids[0], &ids[1]],
    ];
    for verb in &verbs {
        let args: Vec<&str> = ["--db", missing].iter().copied().chain(verb.iter().copied()).collect();
        let o = bench(d, &args);
        assert_eq!(o.status.code(), Some(1), "{verb:?}: {}", stdout(&o));
        assert!(stderr(&o).contains(&format!("database {missing} does not exist")), "{verb:?}: {}", stderr(&o));
        assert!(!d.join("no").exists(), "{verb:?} created a folder");
        // --db on a folder is named as such (`run` too).
        let args: Vec<&str> = ["--db", "."].iter().copied().chain(verb.iter().copied()).collect();
        let e = stderr(&bench(d, &args));
        assert!(e.contains("database . is a directory, not a SQLite file"), "{verb:?}: {e}");
    }
    let grid = write(d, "tiny.toml", TINY_GRID);
    let o = bench(d, &["--db", ".", "run", grid.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("database . is a directory"), "{}", stderr(&o));
    assert!(!d.join("r").exists() && !d.join("predictions").exists());
    assert_eq!(snapshot(&d.join("db.sqlite")), before);
    // The existing database still opens for reading.
    assert!(bench(d, &["list"]).status.success());
}

#[test]
fn run_ids_are_hex_and_never_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One run: a pattern that matched every run would show it.
    let id = fixture_db(d, 1).remove(0);
    let before = snapshot(&d.join("db.sqlite"));
    let spliced = format!("{}%{}", &id[..2], &id[2..5]);
    for bad in ["", "%", "_", "%%", spliced.as_str(), "zz"] {
        let o = bench(d, &["show", bad]);
        assert_eq!(o.status.code(), Some(1), "show {bad:?} showed: {}", stdout(&o));
        assert!(stderr(&o).contains("a run id is hex digits"), "{bad:?}: {}", stderr(&o));
        let o = bench(d, &["compare", bad, &id]);
        assert_eq!(o.status.code(), Some(1), "compare {bad:?}: {}", stdout(&o));
        assert!(stderr(&o).contains(&format!("`{bad}` matches no run and no sweep")), "{bad:?}: {}", stderr(&o));
        let o = bench(d, &["fuse", bad, &id]);
        assert_eq!(o.status.code(), Some(1), "fuse {bad:?}: {}", stdout(&o));
    }
    // An exact hex prefix (any case) still finds it.
    for good in [&id[..4], &id.to_uppercase()[..6], id.as_str()] {
        let o = bench(d, &["show", good]);
        assert!(o.status.success() && stdout(&o).contains(&id), "{good}: {}", stderr(&o));
    }
    assert_eq!(snapshot(&d.join("db.sqlite")), before);
}

#[test]
fn a_pid_reused_by_another_program_does_not_block_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db.sqlite");
    let grid = write(d, "tiny.toml", TINY_GRID);
    assert!(bench(d, &["run", grid.to_str().unwrap(), "-q"]).status.success());
    let before = snapshot(&db);
    // A run left "running" whose pid is alive (this test process) but
    // started at another time: the pid now belongs to another program.
    let victim = before.runs[0].0.clone();
    let host = mtlbench::env::hostname().replace('\'', "''");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let n = sql(
        &db,
        &format!(
            "UPDATE runs SET status = 'running', pid = {}, host = '{host}', heartbeat_at = '{now}', pid_start = 1, claim_token = 't'
             WHERE id = '{victim}'",
            std::process::id()
        ),
        5000,
    )
    .unwrap();
    assert_eq!(n, 1);
    let o = bench(d, &["run", grid.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 trained, 1 already finished, 0 busy elsewhere"), "{}", stdout(&o));
    assert!(stderr(&o).contains(&format!("run {victim} was left running (stale: process {} on", std::process::id())), "{}", stderr(&o));
    assert!(stderr(&o).contains("is now another program"), "{}", stderr(&o));
    let after = snapshot(&db);
    assert_eq!(after.integrity, "ok");
    let status = |id: &str| after.runs.iter().find(|r| r.0 == id).map(|r| r.1);
    assert_eq!(status(&victim), Some(RunStatus::Killed), "the stale run is kept, marked killed");
    assert_eq!(after.runs.iter().filter(|r| r.1 == RunStatus::Finished).count(), 2);
    // Nothing of it is lost: one more run, its params and metrics kept.
    let count = |s: &Snapshot, t: &str| s.counts.iter().find(|c| c.0 == t).unwrap().1;
    assert_eq!(count(&after, "runs"), count(&before, "runs") + 1);
    assert_eq!(count(&after, "metrics"), count(&before, "metrics") * 3 / 2);
}

#[test]
fn a_forced_rerun_supersedes_the_old_run_only_when_it_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db.sqlite");
    let grid = write(d, "tiny.toml", &TINY_GRID.replace("seeds = [1, 2]", "seeds = [1]"));
    assert!(bench(d, &["run", grid.to_str().unwrap(), "-q"]).status.success());
    let before = snapshot(&db);
    let old = before.runs[0].0.clone();
    let o = bench(d, &["run", grid.to_str().unwrap(), "-q", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 trained, 0 already finished"), "{}", stdout(&o));
    let store = Store::open(&db).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 2);
    let (was, new) = (&runs[0], &runs[1]);
    assert_eq!((was.id.as_str(), was.status, new.status), (old.as_str(), RunStatus::Superseded, RunStatus::Finished));
    assert_eq!(was.superseded_by.as_deref(), Some(new.id.as_str()));
    assert_eq!(store.finished_run_for_cell(&was.cell_key).unwrap().map(|r| r.id), Some(new.id.clone()));
    assert!(!store.metrics(&old).unwrap().is_empty(), "the old run keeps its metrics");
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let o = bench(d, &["list", "--status", "superseded", "--format", "json"]);
    assert!(stdout(&o).contains(&old), "{}", stdout(&o));
}
