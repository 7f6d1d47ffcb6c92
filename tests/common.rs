//! Helpers shared by the integration tests: run `bench` in a temp dir,
//! start workers on a database, read what they recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mtlbench::store::{DbLocation, OpenMode, RunStatus, Store};

/// Path of the built `bench` binary.
pub fn bench_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bench"))
}

/// Runs `bench` with `args` in `dir`, using `dir/db.sqlite` unless args set --db.
pub fn bench(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bench_bin());
    cmd.current_dir(dir).env("MTLBENCH_DB", dir.join("db.sqlite")).env("MTLBENCH_CACHE", dir.join("cache"));
    cmd.args(args).output().expect("running bench")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tiny grid that trains in about a second.
pub const TINY_GRID: &str = r#"
name = "tiny"
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
[grid]
models = ["shared-bottom"]
strategies = ["equal"]
seeds = [1, 2]
"#;

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writing a test file");
    p
}

/// What a database holds, for before/after comparisons: SQLite's integrity
/// check, the sweeps, and each run with its status and its number of metric
/// rows.
#[derive(Debug, PartialEq)]
pub struct Recorded {
    pub integrity: String,
    pub sweeps: usize,
    pub runs: Vec<(String, String, usize)>,
}

pub fn recorded(db: &Path) -> Recorded {
    let store = mtlbench::store::Store::open(db).expect("opening the database");
    let runs = store.list_runs().expect("listing runs");
    Recorded {
        integrity: store.integrity_check().expect("integrity check"),
        sweeps: store.list_sweeps().expect("listing sweeps").len(),
        runs: runs.iter().map(|r| (r.id.clone(), r.status.to_string(), store.metrics(&r.id).expect("metrics").len())).collect(),
    }
}

/// No cause of an error message is printed twice (`a: b: b`).
pub fn assert_each_cause_once(err: &str) {
    for line in err.lines() {
        let parts: Vec<&str> = line.split(": ").map(str::trim).filter(|p| p.len() > 8).collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "`{p}` is printed twice in: {line}");
        }
    }
}

/// Test metrics by cell name: (task, metric, value), sorted.
pub type CellMetrics = BTreeMap<String, Vec<(String, String, f64)>>;

/// Test metrics of each cell's finished run, by cell name; asserts every
/// cell is finished exactly once and nothing is left running.
pub fn finished_metrics(db: impl Into<DbLocation>, cells: usize) -> CellMetrics {
    let store = Store::open_at(&db.into(), OpenMode::ReadExisting).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let runs = store.list_runs().unwrap();
    assert!(runs.iter().all(|r| r.status != RunStatus::Running), "a run is left running: {runs:#?}");
    let mut out = BTreeMap::new();
    for r in runs.iter().filter(|r| r.status == RunStatus::Finished) {
        let mut m: Vec<(String, String, f64)> =
            store.metrics(&r.id).unwrap().into_iter().filter(|m| m.split == "test").map(|m| (m.task, m.metric, m.value)).collect();
        m.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert!(!m.is_empty(), "run {} has no test metrics", r.id);
        assert!(out.insert(r.name.clone(), m).is_none(), "cell {} finished twice: {runs:#?}", r.name);
    }
    assert_eq!(out.len(), cells, "runs: {runs:#?}");
    out
}

/// A `bench worker` in `dir` (its machine: its own data cache) on database `db`.
pub fn spawn_worker_on(dir: &Path, db: &str, host: &str) -> Child {
    Command::new(bench_bin())
        .current_dir(dir)
        .env("MTLBENCH_DB", db)
        .env("MTLBENCH_CACHE", dir.join("cache"))
        .env("MTLBENCH_STALE_SECONDS", "30")
        .env("MTLBENCH_HOST", host)
        .args(["worker", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bench worker")
}

/// Waits until a run of `host` is training (and has recorded an epoch).
pub fn wait_for_running(db: impl Into<DbLocation>, host: &str) -> String {
    let db = db.into();
    let t0 = Instant::now();
    let mut seen: Vec<(Option<String>, RunStatus)> = vec![];
    let mut last_error = String::new();
    loop {
        // The runs last seen tell a grid that finished between two looks
        // (its cells too short) from one that never started.
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "no run of {host} was seen training; runs last seen: {seen:?}; last error: {last_error}"
        );
        std::thread::sleep(Duration::from_millis(50));
        let runs = Store::open_at(&db, OpenMode::ReadExisting).and_then(|store| Ok((store.list_runs()?, store)));
        let (runs, store) = match runs {
            Ok(found) => {
                last_error.clear();
                found
            }
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        seen = runs.iter().map(|r| (r.host.clone(), r.status)).collect();
        let mine = runs.iter().find(|r| r.status == RunStatus::Running && r.host.as_deref() == Some(host));
        if let Some(r) = mine {
            if store.epochs(&r.id).map(|e| !e.is_empty()).unwrap_or(false) {
                return r.id.clone();
            }
        }
    }
}

/// Three workers drain the six slow cells enqueued on `db`, each started by
/// `spawn(i, host)` (i = 0, 1, 2 on hosts `host-a`, `host-b`, `host-c`);
/// `host-a`'s worker is killed with SIGKILL in the middle of a cell. The
/// other two finish, its cell is trained again only after its lease (30 s
/// without a heartbeat; the killed process cannot be checked from another
/// machine) and by another host, and every cell's test metrics equal
/// `expected`. Returns the store, opened read-only.
pub fn three_workers_one_killed(db: &DbLocation, spawn: impl Fn(usize, &str) -> Child, expected: &CellMetrics) -> Store {
    let mut doomed = spawn(0, "host-a");
    let others = [spawn(1, "host-b"), spawn(2, "host-c")];
    let lost = wait_for_running(db.clone(), "host-a");
    doomed.kill().unwrap(); // SIGKILL in the middle of a cell
    doomed.wait().unwrap();
    let killed_at = Instant::now();
    for w in others {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(killed_at.elapsed() >= Duration::from_secs(25), "the cell was taken over before its lease expired");
    assert_eq!(&finished_metrics(db.clone(), 6), expected, "metrics differ from one process's `bench run` on SQLite");
    let store = Store::open_at(db, OpenMode::ReadExisting).unwrap();
    let old = store.find_run(&lost).unwrap();
    assert_eq!(old.status, RunStatus::Killed, "{old:?}");
    assert!(old.error.as_deref().unwrap_or("").contains("no heartbeat"), "{old:?}");
    let runs = store.list_runs().unwrap();
    let again = runs.iter().find(|r| r.cell_key == old.cell_key && r.status == RunStatus::Finished).unwrap();
    assert_ne!(again.host.as_deref(), Some("host-a"));
    store
}
