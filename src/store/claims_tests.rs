//! Tests of claims and fenced writes: a claim is one INSERT, every later
//! write checks the claim, a lost claim writes nothing and may be kept as a
//! superseded attempt, a forced rerun leaves the old result in place until
//! it finishes; run ids are found by exact hex prefix; read-only opens
//! create nothing; the table rebuild of migration 4 keeps every row.

use std::path::Path;

use super::*;

pub(super) fn new_run<'a>(id: &'a str, cell_key: &'a str) -> NewRun<'a> {
    NewRun {
        id,
        sweep_id: "s",
        name: "n",
        model: "mmoe",
        strategy: "equal",
        seed: 1,
        config_hash: "c",
        cell_key,
        dataset_name: "d",
        dataset_digest: "dd",
        config_json: "{}",
        env_json: "{}",
        params: &[],
        pid: 1,
        pid_start: Some(7),
        host: "h",
        data_seconds: 0.5,
    }
}

/// Claims cell `k` as run `id`; a second claim of the cell loses.
pub(super) fn claimed(store: &Store, id: &str) -> ClaimToken {
    store.upsert_sweep("s", "s", "g.toml", "").unwrap();
    let params = [("train.lr".to_string(), "0.01".to_string())];
    let claim = store.start_run(&NewRun { params: &params, ..new_run(id, "k") }, IfFinished::Refuse).unwrap().unwrap();
    assert_eq!((claim.run_id.as_str(), claim.token.len()), (id, 32));
    // The cell is taken: a second claim of it loses, also as a rerun.
    assert_eq!(store.start_run(&new_run("0ther", "k"), IfFinished::Refuse).unwrap(), None);
    assert_eq!(store.start_run(&new_run("0ther", "k"), IfFinished::Rerun).unwrap(), None);
    claim
}

fn open(dir: &Path) -> Store {
    Store::open(&dir.join("db.sqlite")).unwrap()
}

fn outcome(auc: f64) -> RunOutcome {
    let metrics = vec![MetricValue { split: Split::Test, task: "click".into(), metric: "auc".into(), value: auc }];
    RunOutcome { metrics, n_params: 3, best_epoch: 1, epochs_run: 1, ..Default::default() }
}

fn epoch(n: usize) -> NewEpoch {
    NewEpoch { epoch: n, steps: 1, curves: vec![], train_seconds: 1.0, eval_seconds: 0.0, samples_per_second: 1.0, select_value: 0.5 }
}

fn row(store: &Store, id: &str) -> RunRow {
    store.find_run(id).unwrap()
}

fn is_lost(r: Result<()>) -> bool {
    matches!(r, Err(StoreError::ClaimLost { .. }))
}

#[test]
fn a_stale_run_is_marked_once_and_its_holder_can_no_longer_end_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let claim = claimed(&store, "a1");
    let running = store.running_run_for_cell("k").unwrap().unwrap();
    assert_eq!((running.status, running.pid_start), (RunStatus::Running, Some(7)));
    assert!(store.mark_stale(&running, "stale: gone").unwrap());
    assert!(!store.mark_stale(&running, "again").unwrap(), "only a running run is marked stale");
    let e = store.fail_run(&claim, RunStatus::Failed, "diverged").unwrap_err();
    assert_eq!(e.to_string(), "run a1 no longer holds its claim on the cell (the run is now killed: stale: gone)");
    let run = row(&store, "a1");
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Killed, Some("stale: gone")));
}

#[test]
fn a_run_that_beat_after_it_was_read_is_not_marked_stale() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let claim = claimed(&store, "a1");
    let read = store.running_run_for_cell("k").unwrap().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    store.heartbeat(&claim).unwrap();
    assert!(!store.mark_stale(&read, "stale: no heartbeat for 700s").unwrap());
    assert_eq!(row(&store, "a1").status, RunStatus::Running);
}

#[test]
fn a_lost_claim_writes_nothing_and_is_kept_as_a_superseded_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = claimed(&store, "a1");
    store.record_epoch(&a, &epoch(1)).unwrap();
    // Another process takes the cell over.
    assert!(store.mark_stale(&store.running_run_for_cell("k").unwrap().unwrap(), "stale: no heartbeat for 40s").unwrap());
    let b = store.start_run(&new_run("b2", "k"), IfFinished::Refuse).unwrap().unwrap();
    // Every write of the first holder is refused and changes nothing.
    assert!(is_lost(store.heartbeat(&a)));
    assert!(is_lost(store.record_epoch(&a, &epoch(2))));
    let trace = NewTrace { step: 1, epoch: 1, terms: vec!["t".into()], weights: vec![1.0], losses: vec![0.1], grad_norms: vec![1.0], cosines: vec![], conflict_rate: 0.0 };
    assert!(is_lost(store.record_trace(&a, &trace)));
    assert!(is_lost(store.finish_run(&a, &outcome(0.9), Some("a1.bin"))));
    assert_eq!(store.epochs("a1").unwrap().len(), 1);
    assert!(store.traces("a1").unwrap().is_empty() && store.metrics("a1").unwrap().is_empty());
    assert_eq!(row(&store, "a1").status, RunStatus::Killed);
    // A forged token of the new holder's run is refused too.
    let forged = ClaimToken { run_id: "b2".into(), token: a.token.clone() };
    assert!(is_lost(store.heartbeat(&forged)));
    store.finish_run(&b, &outcome(0.7), Some("b2.bin")).unwrap();
    // The first holder keeps its result, visibly, as a superseded attempt.
    assert!(store.supersede_attempt(&a, Some(&outcome(0.9)), Some("a1.bin"), "superseded: lost").unwrap());
    assert!(!store.supersede_attempt(&a, None, None, "again").unwrap(), "only once");
    let old = row(&store, "a1");
    assert_eq!((old.status, old.superseded_by.as_deref(), old.error.as_deref()), (RunStatus::Superseded, Some("b2"), Some("superseded: lost")));
    assert_eq!(store.metrics("a1").unwrap()[0].value, 0.9);
    assert_eq!(store.finished_run_for_cell("k").unwrap().map(|r| r.id), Some("b2".into()));
    assert_eq!(store.metrics("b2").unwrap()[0].value, 0.7);
}

#[test]
fn a_forced_rerun_leaves_the_finished_run_the_result_until_it_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = claimed(&store, "a1");
    store.finish_run(&a, &outcome(0.6), Some("a1.bin")).unwrap();
    assert_eq!(store.start_run(&new_run("b2", "k"), IfFinished::Refuse).unwrap(), None, "a finished cell is not claimed");
    let b = store.start_run(&new_run("b2", "k"), IfFinished::Rerun).unwrap().unwrap();
    assert_eq!(store.start_run(&new_run("c3", "k"), IfFinished::Rerun).unwrap(), None, "one rerun at a time");
    // While the rerun trains (or after it died), the old run is the cell's result.
    assert_eq!(store.finished_run_for_cell("k").unwrap().map(|r| r.id), Some("a1".into()));
    assert_eq!(store.running_run_for_cell("k").unwrap().map(|r| r.id), Some("b2".into()));
    store.finish_run(&b, &outcome(0.65), Some("b2.bin")).unwrap();
    let old = row(&store, "a1");
    assert_eq!((old.status, old.superseded_by.as_deref()), (RunStatus::Superseded, Some("b2")));
    assert_eq!(old.error.as_deref(), Some("superseded by run b2, a forced rerun"));
    assert_eq!(store.metrics("a1").unwrap()[0].value, 0.6, "the old run keeps its metrics");
    assert_eq!(store.finished_run_for_cell("k").unwrap().map(|r| r.id), Some("b2".into()));
}

#[test]
fn run_ids_are_found_by_exact_hex_prefix_never_by_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.upsert_sweep("s", "s", "g.toml", "").unwrap();
    for (id, cell) in [("abc123", "k1"), ("abd456", "k2"), ("d075a0", "k3")] {
        store.start_run(&new_run(id, cell), IfFinished::Refuse).unwrap().unwrap();
    }
    for bad in ["", "%", "_", "d%75a", "ab_", "a%", "g", "abc 1", "0x1"] {
        let e = store.find_run(bad).unwrap_err();
        assert!(matches!(e, StoreError::BadRunId(_)), "{bad:?}: {e}");
        assert!(e.to_string().contains("hex digits"), "{e}");
    }
    assert_eq!(row(&store, "abc").id, "abc123");
    assert_eq!(row(&store, "ABC1").id, "abc123", "hex in upper case is hex");
    assert_eq!(row(&store, "d075a0").id, "d075a0");
    assert!(matches!(store.find_run("abe"), Err(StoreError::NoSuchRun(_))));
    assert!(matches!(store.find_run("abc1234"), Err(StoreError::NoSuchRun(_))));
    let e = store.find_run("ab").unwrap_err().to_string();
    assert!(e.contains("abc123 (n, running)") && e.contains("abd456 (n, running)") && !e.contains("d075a0"), "{e}");
}

#[test]
fn reading_opens_only_an_existing_file_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/x.sqlite");
    let e = Store::open_with(&missing, OpenMode::ReadExisting).err().unwrap();
    assert!(matches!(e, StoreError::Missing(_)), "{e}");
    assert!(e.to_string().contains("no/such/dir/x.sqlite does not exist"), "{e}");
    assert!(!dir.path().join("no").exists(), "no folder is created");
    let e = Store::open_with(dir.path(), OpenMode::ReadExisting).err().unwrap();
    assert_eq!(e.to_string(), format!("database {} is a directory, not a SQLite file", dir.path().display()));
    assert!(matches!(Store::open_with(dir.path(), OpenMode::CreateIfMissing), Err(StoreError::IsDirectory(_))));
    drop(Store::open_with(&missing, OpenMode::CreateIfMissing).unwrap());
    let store = Store::open_with(&missing, OpenMode::ReadExisting).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

/// A database at schema 3 (migrations 1-3 only), with a run of each kind
/// and rows that reference them.
fn schema3_db(path: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let old = tempfile::tempdir().unwrap();
    for f in ["0001_init.sql", "0002_tracking.sql", "0003_model_outputs.sql"] {
        std::fs::copy(src.join(f), old.path().join(f)).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Executor};
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path).create_if_missing(true).foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::migrate::Migrator::new(old.path()).await.unwrap().run(&mut conn).await.unwrap();
        conn.execute(
            "INSERT INTO sweeps VALUES ('s', 's', 'g.toml', '', 't', 't');
             INSERT INTO runs (id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name, dataset_digest,
                 config_json, status, error, created_at) VALUES
               ('a1', 's', 'n', 'm', 'e', 1, 'c', 'k', 'd', 'dd', '{}', 'killed', 'superseded by a forced rerun', 't1'),
               ('b2', 's', 'n', 'm', 'e', 1, 'c', 'k', 'd', 'dd', '{}', 'finished', NULL, 't2'),
               ('c3', 's', 'n', 'm', 'e', 2, 'c', 'k2', 'd', 'dd', '{}', 'killed', 'interrupted', 't3');
             INSERT INTO params VALUES ('a1', 'x', '1'), ('b2', 'x', '1');
             INSERT INTO metrics VALUES ('a1', 'test', 'click', 'auc', 0.5), ('b2', 'test', 'click', 'auc', 0.6);
             INSERT INTO epochs VALUES ('b2', 1, 3, 1.0, 0.1, 10.0, 0.6);",
        )
        .await
        .unwrap();
        conn.close().await.unwrap();
    });
}

#[test]
fn migrating_to_schema_4_keeps_every_row_and_names_the_superseded_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    schema3_db(&path);
    let store = Store::open_with(&path, OpenMode::ReadExisting).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let status: Vec<(String, RunStatus)> = store.list_runs().unwrap().into_iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(status, vec![("a1".into(), RunStatus::Superseded), ("b2".into(), RunStatus::Finished), ("c3".into(), RunStatus::Killed)]);
    // Dropping the old table did not cascade to the rows that reference it.
    assert_eq!((store.params("a1").unwrap().len(), store.params("b2").unwrap().len()), (1, 1));
    assert_eq!((store.metrics("a1").unwrap().len(), store.metrics("b2").unwrap().len()), (1, 1));
    assert_eq!(store.epochs("b2").unwrap().len(), 1);
    // And the new schema's rules hold: a forced rerun claims beside the finished run.
    assert!(store.start_run(&new_run("d4", "k"), IfFinished::Refuse).unwrap().is_none());
    assert!(store.start_run(&new_run("d4", "k"), IfFinished::Rerun).unwrap().is_some());
}
