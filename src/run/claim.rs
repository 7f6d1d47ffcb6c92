//! Claiming a cell: a finished cell is skipped, a cell another live process
//! is training is left to it, a run left `running` by a dead process is
//! marked killed and the cell trained again, and `--force` turns the
//! finished run into history. The claim itself is one INSERT that the
//! store's unique index lets only one process win; the new run's id is the
//! token its later writes are made under.

use crate::config::{Cell, Plan};
use crate::data::Dataset;
use crate::env;
use crate::store::{NewRun, RunRow, RunStatus, Store, StoreError};

/// The result of trying to claim a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The cell is this process's to train, as run `run_id`. `recovered`:
    /// a run that was left running (its id and why it is taken as dead).
    Claimed { run_id: String, recovered: Option<(String, String)> },
    /// The cell has a finished run.
    AlreadyFinished { run_id: String },
    /// Another live process is training the cell.
    Busy { run_id: String, pid: i64, host: String },
    /// Another process claimed the cell between the checks and the INSERT.
    LostRace,
}

/// A cell about to be claimed, with the data it trains on.
pub struct CellToClaim<'a> {
    pub plan: &'a Plan,
    pub cell: &'a Cell,
    pub data: &'a Dataset,
    pub cell_key: &'a str,
    pub data_seconds: f64,
}

/// How to claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimPolicy<'a> {
    pub force: bool,
    /// A `running` run without a heartbeat for this long is taken as dead.
    pub stale_after_seconds: f64,
    pub host: &'a str,
}

/// Claims a cell (see the module header for the rules).
pub fn claim(store: &Store, c: &CellToClaim, policy: ClaimPolicy) -> Result<Claim, StoreError> {
    if !policy.force {
        if let Some(done) = store.finished_run_for_cell(c.cell_key)? {
            return Ok(Claim::AlreadyFinished { run_id: done.id });
        }
    }
    let mut recovered = None;
    if let Some(running) = store.running_run_for_cell(c.cell_key)? {
        match stale_reason(&running, policy.host, policy.stale_after_seconds) {
            Some(reason) => {
                store.mark_stale(&running.id, &reason)?;
                recovered = Some((running.id, reason));
            }
            None => {
                let host = running.host.unwrap_or_else(|| "?".into());
                return Ok(Claim::Busy { run_id: running.id, pid: running.pid.unwrap_or(0), host });
            }
        }
    }
    if policy.force {
        // Keep the unique "one finished run per cell" invariant: the old run becomes history.
        if let Some(done) = store.finished_run_for_cell(c.cell_key)? {
            store.fail_run(&done.id, RunStatus::Killed, "superseded by a forced rerun")?;
        }
    }
    let run_id = new_run_id(c.cell_key);
    Ok(if start(store, c, &run_id, policy.host)? { Claim::Claimed { run_id, recovered } } else { Claim::LostRace })
}

/// Inserts the run; false when another process won the cell.
fn start(store: &Store, c: &CellToClaim, run_id: &str, host: &str) -> Result<bool, StoreError> {
    let cell = c.cell;
    let env_json = serde_json::to_string(&env::capture(&cell.config.train.device)).unwrap_or_default();
    let config_json = serde_json::to_string(&cell.canonical).unwrap_or_default();
    let name = cell.name();
    store.start_run(&NewRun {
        id: run_id,
        sweep_id: &c.plan.grid_hash,
        name: &name,
        model: cell.model.name(),
        strategy: cell.strategy.name(),
        seed: cell.seed,
        config_hash: &cell.config_hash,
        cell_key: c.cell_key,
        dataset_name: &c.data.name,
        dataset_digest: &c.data.digest,
        config_json: &config_json,
        env_json: &env_json,
        params: &cell.params(),
        pid: std::process::id(),
        host,
        data_seconds: c.data_seconds,
    })
}

/// Why a `running` run of a cell is considered dead, if it is.
pub fn stale_reason(run: &RunRow, host: &str, stale_after: f64) -> Option<String> {
    if run.host.as_deref() == Some(host) {
        if let Some(pid) = run.pid {
            if !crate::interrupt::process_alive(pid) {
                return Some(format!("stale: process {pid} on {host} is gone"));
            }
            if pid == std::process::id() as i64 {
                return Some("stale: left running by this process".into());
            }
        }
    }
    let beat = run.heartbeat_at.as_deref().or(run.started_at.as_deref())?;
    let age = chrono::DateTime::parse_from_rfc3339(beat)
        .ok()
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)?;
    (age > stale_after).then(|| format!("stale: no heartbeat for {age:.0}s"))
}

/// A short, unique run id (12 hex digits), addressable by prefix.
pub fn new_run_id(cell_key: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    crate::config::hash_hex(format!("{cell_key}|{nanos}|{}", std::process::id()).as_bytes())[..12].to_string()
}
