//! Claiming a cell: a finished cell is skipped (unless forced), a cell
//! another live process is training is left to it, and a run left `running`
//! by a dead process is marked killed and the cell trained again (a dead
//! forced rerun of a finished cell is marked killed, and the cell skipped). The claim
//! itself is one INSERT that the store lets only one process win; it
//! returns the claim token every later write of the run is fenced by.
//!
//! `--force` claims beside the cell's finished run, which stays the cell's
//! result until the rerun finishes (the store supersedes it then, in the
//! same transaction); a killed rerun leaves the old result in place.
//!
//! Liveness: a training run heartbeats every [`HEARTBEAT_SECONDS`]; a run
//! is stale when its process on this host is gone (or its pid now belongs
//! to another program: the process start time differs from the one recorded
//! at the claim), or when its heartbeat is older than the stale timeout,
//! which must be at least [`MIN_STALE_SECONDS`].

use thiserror::Error;

use crate::config::{Cell, Plan};
use crate::data::Dataset;
use crate::env;
use crate::interrupt;
use crate::store::{ClaimToken, IfFinished, NewRun, RunRow, Store, StoreError};

/// Seconds between heartbeats of a training run.
pub const HEARTBEAT_SECONDS: f64 = 5.0;
/// The shortest stale timeout accepted: six heartbeats, so that a live run
/// whose writes are slowed down (a loaded machine, a busy database) is not
/// taken for dead.
pub const MIN_STALE_SECONDS: f64 = 6.0 * HEARTBEAT_SECONDS;
/// The stale timeout unless one is given.
pub const DEFAULT_STALE_SECONDS: f64 = 600.0;
/// The environment variable that sets the stale timeout.
pub const STALE_SECONDS_VAR: &str = "MTLBENCH_STALE_SECONDS";

/// A stale timeout that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{source_name}={value:?}: {why}")]
pub struct StaleTimeoutError {
    /// Where the value came from (the variable's name).
    pub source_name: String,
    pub value: String,
    pub why: String,
}

/// Checks a stale timeout in seconds: finite and at least [`MIN_STALE_SECONDS`].
pub fn check_stale_seconds(seconds: f64, source_name: &str, value: &str) -> Result<f64, StaleTimeoutError> {
    let err = |why: String| StaleTimeoutError { source_name: source_name.into(), value: value.into(), why };
    if !seconds.is_finite() {
        return Err(err("expected a number of seconds".into()));
    }
    if seconds < MIN_STALE_SECONDS {
        return Err(err(format!(
            "the stale timeout must be at least {MIN_STALE_SECONDS:.0} seconds (six heartbeats of {HEARTBEAT_SECONDS:.0} s), \
             or live runs would be taken over"
        )));
    }
    Ok(seconds)
}

/// Parses a stale timeout given as text (the variable [`STALE_SECONDS_VAR`]).
pub fn parse_stale_seconds(source_name: &str, value: &str) -> Result<f64, StaleTimeoutError> {
    let seconds: f64 = value.trim().parse().map_err(|_| StaleTimeoutError {
        source_name: source_name.into(),
        value: value.into(),
        why: format!("expected a number of seconds, at least {MIN_STALE_SECONDS:.0}"),
    })?;
    check_stale_seconds(seconds, source_name, value)
}

/// The result of trying to claim a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The cell is this process's to train under `claim`. `recovered`: a
    /// run that was left running (its id and why it is taken as dead).
    Claimed { claim: ClaimToken, recovered: Option<(String, String)> },
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
    let finished = if policy.force { None } else { store.finished_run_for_cell(c.cell_key)? };
    let mut recovered = None;
    if let Some(running) = store.running_run_for_cell(c.cell_key)? {
        let reason = stale_reason(&running, policy.host, policy.stale_after_seconds);
        // Marked only if it is still the attempt read above: one that beat since is alive.
        match reason {
            Some(reason) if store.mark_stale(&running, &reason)? => recovered = Some((running.id, reason)),
            // A live forced rerun of a finished cell: the cell is still finished.
            _ if finished.is_some() => {}
            _ => {
                let host = running.host.unwrap_or_else(|| "?".into());
                return Ok(Claim::Busy { run_id: running.id, pid: running.pid.unwrap_or(0), host });
            }
        }
    }
    // A dead forced rerun of a finished cell is marked above; the cell stays done.
    if let Some(done) = finished {
        return Ok(Claim::AlreadyFinished { run_id: done.id });
    }
    let if_finished = if policy.force { IfFinished::Rerun } else { IfFinished::Refuse };
    let run_id = new_run_id(c.cell_key);
    if let Some(claim) = start(store, c, &run_id, policy.host, if_finished)? {
        return Ok(Claim::Claimed { claim, recovered });
    }
    Ok(match store.finished_run_for_cell(c.cell_key)? {
        Some(done) if !policy.force => Claim::AlreadyFinished { run_id: done.id },
        _ => Claim::LostRace,
    })
}

/// Inserts the run; `None` when another process won the cell.
fn start(store: &Store, c: &CellToClaim, run_id: &str, host: &str, if_finished: IfFinished) -> Result<Option<ClaimToken>, StoreError> {
    let cell = c.cell;
    let env_json = serde_json::to_string(&env::capture(&cell.config.train.device)).unwrap_or_default();
    let config_json = serde_json::to_string(&cell.canonical).unwrap_or_default();
    let name = cell.name();
    let pid = std::process::id();
    let run = NewRun {
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
        pid,
        pid_start: interrupt::process_start(pid as i64),
        host,
        data_seconds: c.data_seconds,
    };
    store.start_run(&run, if_finished)
}

/// Why a `running` run of a cell is considered dead, if it is.
pub fn stale_reason(run: &RunRow, host: &str, stale_after: f64) -> Option<String> {
    if run.host.as_deref() == Some(host) {
        if let Some(pid) = run.pid {
            if !interrupt::process_alive(pid) {
                return Some(format!("stale: process {pid} on {host} is gone"));
            }
            let started = interrupt::process_start(pid).map(|s| s as i64);
            if let (Some(claimed), Some(now)) = (run.pid_start, started) {
                if claimed != now {
                    return Some(format!("stale: process {pid} on {host} is now another program (it started after the claim)"));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_timeouts_below_six_heartbeats_or_not_numbers_are_refused() {
        assert_eq!(parse_stale_seconds(STALE_SECONDS_VAR, "30"), Ok(30.0));
        assert_eq!(parse_stale_seconds(STALE_SECONDS_VAR, " 600 "), Ok(600.0));
        for bad in ["0", "-5", "1", "29.9", "abc", "", "NaN", "inf", "-inf"] {
            let e = parse_stale_seconds(STALE_SECONDS_VAR, bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("MTLBENCH_STALE_SECONDS={bad:?}: ")), "{e}");
            assert!(e.contains("seconds"), "{e}");
        }
        assert!(parse_stale_seconds(STALE_SECONDS_VAR, "1").unwrap_err().why.contains("at least 30 seconds"));
        assert_eq!(MIN_STALE_SECONDS, 30.0);
    }
}
