//! The life of a run in the store: sweeps and their cells, claiming a cell
//! (one INSERT guarded by the unique index on running-or-finished runs of a
//! cell), heartbeats, stale runs and failures. Finishing a run with its
//! results is in `record.rs`.

use super::{now, q, NewRun, Result, RunRow, RunStatus, Store, StoreError};

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

    /// Claims a cell: inserts a run in status `running`, with its params, in
    /// one transaction. Returns false (and changes nothing) when another run
    /// of the cell is already running or finished.
    pub fn start_run(&self, r: &NewRun) -> Result<bool> {
        let res = self.rt.block_on(async {
            let mut tx = self.pool.begin().await?;
            insert_run(&mut tx, r).await?;
            for (k, v) in r.params {
                sqlx::query("INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)")
                    .bind(r.id)
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        });
        match res {
            Ok(()) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(StoreError::Query { what: "start run", source: e }),
        }
    }

    /// Marks a still-running run as alive now.
    pub fn heartbeat(&self, run_id: &str) -> Result<()> {
        self.rt
            .block_on(
                sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = ?")
                    .bind(now())
                    .bind(run_id)
                    .bind(RunStatus::Running)
                    .execute(&self.pool),
            )
            .map_err(q("heartbeat"))?;
        Ok(())
    }

    /// Marks a run `killed` only if it is still `running` (a stale run whose
    /// process died); returns whether it changed.
    pub fn mark_stale(&self, run_id: &str, reason: &str) -> Result<bool> {
        let r = self
            .rt
            .block_on(
                sqlx::query("UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status = ?")
                    .bind(RunStatus::Killed)
                    .bind(reason)
                    .bind(now())
                    .bind(run_id)
                    .bind(RunStatus::Running)
                    .execute(&self.pool),
            )
            .map_err(q("mark stale"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Marks a run failed (or killed) with the reason.
    pub fn fail_run(&self, run_id: &str, status: RunStatus, error: &str) -> Result<()> {
        self.rt
            .block_on(
                sqlx::query("UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?")
                    .bind(status)
                    .bind(error)
                    .bind(now())
                    .bind(run_id)
                    .execute(&self.pool),
            )
            .map_err(q("fail run"))?;
        Ok(())
    }
}

async fn insert_run(tx: &mut sqlx::SqliteConnection, r: &NewRun<'_>) -> sqlx::Result<()> {
    let t = now();
    sqlx::query(
        "INSERT INTO runs (id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name,
            dataset_digest, config_json, status, created_at, started_at, heartbeat_at, env_json,
            pid, host, data_seconds)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .execute(&mut *tx)
    .await?;
    Ok(())
}
