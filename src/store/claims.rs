//! The life of a run in the store: sweeps and their cells, claiming a cell,
//! heartbeats, stale runs and failures. Finishing a run with its results is
//! in `record.rs`.
//!
//! A claim is one INSERT of a `running` run under a random claim token; the
//! unique index on the running run of a cell lets one process win, and the
//! same statement refuses a cell that has a finished run (unless it is a
//! forced rerun). Every later write of the run is fenced: it checks `id`,
//! `claim_token` and `status = 'running'` in its own statement or
//! transaction, and a write that finds the claim gone changes nothing and
//! returns [`StoreError::ClaimLost`]. The token, not the run id, is what a
//! writer holds, so a run claimed again (a requeued cell) fences out its
//! earlier holder too.

use super::{now, q, NewRun, Result, RunRow, RunStatus, Store, StoreError};

/// A claim held on a run: the run's id and the token its writes are fenced by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    pub run_id: String,
    pub token: String,
}

/// What claiming a cell that has a finished run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfFinished {
    /// The finished run is the cell's result: no claim.
    Refuse,
    /// A forced rerun: claim beside the finished run, which stays the cell's
    /// result until the rerun finishes.
    Rerun,
}

impl Store {
    pub fn upsert_sweep(&self, id: &str, name: &str, grid_path: &str, grid_toml: &str) -> Result<()> {
        let t = now();
        self.rt
            .block_on(
                sqlx::query(
                    "INSERT INTO sweeps (id, name, grid_path, grid_toml, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at, grid_path = excluded.grid_path",
                )
                .bind(id)
                .bind(name)
                .bind(grid_path)
                .bind(grid_toml)
                .bind(&t)
                .bind(&t)
                .execute(&self.pool),
            )
            .map_err(q("upsert sweep"))?;
        Ok(())
    }

    pub fn add_sweep_cell(&self, sweep_id: &str, cell_key: &str, position: usize) -> Result<()> {
        self.rt
            .block_on(
                sqlx::query("INSERT OR IGNORE INTO sweep_cells (sweep_id, cell_key, position) VALUES (?, ?, ?)")
                    .bind(sweep_id)
                    .bind(cell_key)
                    .bind(position as i64)
                    .execute(&self.pool),
            )
            .map_err(q("add sweep cell"))?;
        Ok(())
    }

    /// The finished run of a cell, if any.
    pub fn finished_run_for_cell(&self, cell_key: &str) -> Result<Option<RunRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE cell_key = ? AND status = ?")
                    .bind(cell_key)
                    .bind(RunStatus::Finished)
                    .fetch_optional(&self.pool),
            )
            .map_err(q("finished run for cell"))
    }

    /// The run of a cell currently marked running, if any.
    pub fn running_run_for_cell(&self, cell_key: &str) -> Result<Option<RunRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE cell_key = ? AND status = ?")
                    .bind(cell_key)
                    .bind(RunStatus::Running)
                    .fetch_optional(&self.pool),
            )
            .map_err(q("running run for cell"))
    }

    /// Claims a cell: inserts a run in status `running` under a fresh claim
    /// token, with its params, in one transaction. Returns `None` (and
    /// changes nothing) when another run of the cell is running, or, unless
    /// `if_finished` is [`IfFinished::Rerun`], when the cell has a finished run.
    pub fn start_run(&self, r: &NewRun, if_finished: IfFinished) -> Result<Option<ClaimToken>> {
        let claim = ClaimToken { run_id: r.id.to_string(), token: format!("{:032x}", rand::random::<u128>()) };
        let res = self.rt.block_on(async {
            let mut tx = self.pool.begin().await?;
            if !insert_run(&mut tx, r, &claim.token, if_finished).await? {
                return Ok(false);
            }
            for (k, v) in r.params {
                sqlx::query("INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)")
                    .bind(r.id)
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await.map(|()| true)
        });
        match res {
            Ok(true) => Ok(Some(claim)),
            Ok(false) => Ok(None),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(StoreError::Query { what: "start run", source: e }),
        }
    }

    /// Marks a claimed run as alive now; [`StoreError::ClaimLost`] when the
    /// claim is no longer held.
    pub fn heartbeat(&self, claim: &ClaimToken) -> Result<()> {
        let held = self.rt.block_on(async {
            let mut conn = self.pool.acquire().await?;
            fence(&mut conn, claim).await
        });
        self.fenced(claim, "heartbeat", held)
    }

    /// Marks another process's run `killed` as stale, only if it is still
    /// the attempt `run` was read as (running, same claim, same heartbeat):
    /// a run that beat in between is alive. Returns whether it changed.
    pub fn mark_stale(&self, run: &RunRow, reason: &str) -> Result<bool> {
        let r = self
            .rt
            .block_on(
                sqlx::query(
                    "UPDATE runs SET status = ?, error = ?, finished_at = ?
                     WHERE id = ? AND status = ? AND claim_token IS ? AND heartbeat_at IS ?",
                )
                .bind(RunStatus::Killed)
                .bind(reason)
                .bind(now())
                .bind(&run.id)
                .bind(RunStatus::Running)
                .bind(&run.claim_token)
                .bind(&run.heartbeat_at)
                .execute(&self.pool),
            )
            .map_err(q("mark stale"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a claimed run as failed (or killed) with the reason;
    /// [`StoreError::ClaimLost`] (and no change) when the claim is not held.
    pub fn fail_run(&self, claim: &ClaimToken, status: RunStatus, error: &str) -> Result<()> {
        let held = self.rt.block_on(async {
            let r = sqlx::query("UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ? AND claim_token = ? AND status = ?")
                .bind(status)
                .bind(error)
                .bind(now())
                .bind(&claim.run_id)
                .bind(&claim.token)
                .bind(RunStatus::Running)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        });
        self.fenced(claim, "fail run", held)
    }

    /// `Ok` when a fenced write found its claim held; else the lost claim,
    /// described by what the run is now.
    pub(super) fn fenced(&self, claim: &ClaimToken, what: &'static str, held: sqlx::Result<bool>) -> Result<()> {
        if held.map_err(q(what))? {
            return Ok(());
        }
        let row = self.rt.block_on(sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE id = ?").bind(&claim.run_id).fetch_optional(&self.pool));
        let now = match row.map_err(q(what))? {
            None => "gone".to_string(),
            Some(r) if r.claim_token.as_deref() != Some(claim.token.as_str()) => format!("{}, claimed by another attempt", r.status),
            Some(r) => match r.error {
                Some(e) => format!("{}: {e}", r.status),
                None => r.status.to_string(),
            },
        };
        Err(StoreError::ClaimLost { run_id: claim.run_id.clone(), now })
    }
}

/// Refreshes the heartbeat of a run only while `claim` holds it: the fence
/// every write of a claimed run begins with, in the write's transaction.
pub(super) async fn fence(conn: &mut sqlx::SqliteConnection, claim: &ClaimToken) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND claim_token = ? AND status = ?")
        .bind(now())
        .bind(&claim.run_id)
        .bind(&claim.token)
        .bind(RunStatus::Running)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Inserts the claimed run; false when the cell is finished and
/// `if_finished` refuses (the check and the insert are one statement).
async fn insert_run(tx: &mut sqlx::SqliteConnection, r: &NewRun<'_>, token: &str, if_finished: IfFinished) -> sqlx::Result<bool> {
    let t = now();
    let res = sqlx::query(
        "INSERT INTO runs (id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name,
            dataset_digest, config_json, status, created_at, started_at, heartbeat_at, env_json,
            pid, host, data_seconds, claim_token, pid_start)
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
         WHERE ? OR NOT EXISTS (SELECT 1 FROM runs WHERE cell_key = ? AND status = ?)",
    )
    .bind(r.id)
    .bind(r.sweep_id)
    .bind(r.name)
    .bind(r.model)
    .bind(r.strategy)
    .bind(r.seed as i64)
    .bind(r.config_hash)
    .bind(r.cell_key)
    .bind(r.dataset_name)
    .bind(r.dataset_digest)
    .bind(r.config_json)
    .bind(RunStatus::Running)
    .bind(&t)
    .bind(&t)
    .bind(&t)
    .bind(r.env_json)
    .bind(r.pid as i64)
    .bind(r.host)
    .bind(r.data_seconds)
    .bind(token)
    .bind(r.pid_start.map(|s| s as i64))
    .bind(if_finished == IfFinished::Rerun)
    .bind(r.cell_key)
    .bind(RunStatus::Finished)
    .execute(&mut *tx)
    .await?;
    Ok(res.rows_affected() == 1)
}
