//! Helpers shared by the integration tests: run `bench` in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
