//! Moving finished runs between two stores (`bench sync`): a laptop's
//! SQLite file into the team's PostgreSQL database, or back. A run travels
//! whole: its row, params, metrics, curves, epochs, traces, gates and
//! predictions, with its sweeps and their cells. Cells are never
//! duplicated: a run whose cell is already finished at the destination is
//! skipped (and reported, with the run that holds the cell there), and so
//! is a run whose id is already there, so a repeated sync copies nothing.
//! The insert of each run is one transaction under the cell's lock
//! (`claims.rs`), guarded by the unique index on a cell's finished run.

use serde::Serialize;
use sqlx::AnyConnection;

use super::read::TraceStepRow;
use super::{q, CurveRow, EpochRow, GateRow, MetricRow, ParamRow, Result, RunRow, RunStatus, Store, StoreError};

/// One strategy trace cosine row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TracePairRow {
    pub run_id: String,
    pub step: i64,
    pub term_a: String,
    pub term_b: String,
    pub cosine: f64,
}

/// What one sync did, run by run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Runs copied: (id, name).
    pub copied: Vec<(String, String)>,
    /// Runs skipped: (id, name, the destination's run of the cell).
    pub skipped: Vec<(String, String, String)>,
}

/// Everything a finished run recorded.
struct RunBundle {
    run: RunRow,
    params: Vec<ParamRow>,
    metrics: Vec<MetricRow>,
    curves: Vec<CurveRow>,
    epochs: Vec<EpochRow>,
    traces: Vec<super::TraceRow>,
    pairs: Vec<TracePairRow>,
    steps: Vec<TraceStepRow>,
    gates: Vec<GateRow>,
}

impl Store {
    fn trace_pairs(&self, run_id: &str) -> Result<Vec<TracePairRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, TracePairRow>("SELECT * FROM trace_pairs WHERE run_id = $1 ORDER BY step, term_a, term_b")
                    .bind(run_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("trace pairs"))
    }

    fn run_with_id(&self, run_id: &str) -> Result<Option<RunRow>> {
        self.rt
            .block_on(sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE id = $1").bind(run_id).fetch_optional(&self.pool))
            .map_err(q("run by id"))
    }

    fn bundle(&self, run: RunRow) -> Result<RunBundle> {
        let id = run.id.clone();
        Ok(RunBundle {
            params: self.params(&id)?,
            metrics: self.metrics(&id)?,
            curves: self.curves(&id)?,
            epochs: self.epochs(&id)?,
            traces: self.traces(&id)?,
            pairs: self.trace_pairs(&id)?,
            steps: self.trace_steps(&id)?,
            gates: self.gates(&id)?,
            run,
        })
    }

    /// Copies every finished run of `from` (with its sweeps) into this
    /// store, skipping cells finished here (see the module header).
    pub fn sync_from(&self, from: &Store) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        for s in from.list_sweeps()? {
            self.rt
                .block_on(
                    sqlx::query(
                        "INSERT INTO sweeps (id, name, grid_path, grid_toml, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&s.id)
                    .bind(&s.name)
                    .bind(&s.grid_path)
                    .bind(&s.grid_toml)
                    .bind(&s.created_at)
                    .bind(&s.updated_at)
                    .execute(&self.pool),
                )
                .map_err(q("sync sweep"))?;
            for c in from.sweep_cells(&s.id)? {
                self.add_sweep_cell(&s.id, &c.cell_key, c.position as usize)?;
            }
        }
        for run in from.list_runs()?.into_iter().filter(|r| r.status == RunStatus::Finished) {
            let holder = match self.finished_run_for_cell(&run.cell_key)? {
                Some(there) => Some(there.id),
                None => self.run_with_id(&run.id)?.map(|r| format!("{} (the same run id, {})", r.id, r.status)),
            };
            if let Some(holder) = holder {
                report.skipped.push((run.id, run.name, holder));
                continue;
            }
            let predictions = match run.predictions_path.as_deref() {
                Some(name) => Some((name.to_string(), from.load_predictions(name)?)),
                None => None,
            };
            let (id, name, cell) = (run.id.clone(), run.name.clone(), run.cell_key.clone());
            if self.insert_bundle(&from.bundle(run)?)? {
                if let Some((file, p)) = predictions {
                    self.save_predictions_as(&id, &file, &p)?;
                }
                report.copied.push((id, name));
            } else {
                // Another process finished the cell here in the meantime.
                let holder = self.finished_run_for_cell(&cell)?.map_or_else(|| "another run".to_string(), |r| r.id);
                report.skipped.push((id, name, holder));
            }
        }
        Ok(report)
    }

    /// Inserts a run and its rows in one transaction; false (and nothing
    /// written) when its cell is finished here by now.
    fn insert_bundle(&self, b: &RunBundle) -> Result<bool> {
        let res = self.rt.block_on(async {
            let mut tx = self.begin_cell(&b.run.cell_key).await?;
            if !insert_run_row(&mut tx, &b.run).await? {
                return Ok(false);
            }
            insert_children(&mut tx, b).await?;
            tx.commit().await.map(|()| true)
        });
        match res {
            Ok(done) => Ok(done),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(StoreError::Query { what: "sync run", source: e }),
        }
    }
}

/// The run row as it is, unless the cell has a finished run here.
async fn insert_run_row(tx: &mut AnyConnection, r: &RunRow) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO runs (id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name, dataset_digest,
            config_json, status, error, created_at, started_at, finished_at, heartbeat_at, env_json, n_params, best_epoch,
            epochs_run, train_seconds, test_seconds, predictions_path, pid, host, data_seconds, peak_rss_mib,
            samples_per_second, claim_token, pid_start, superseded_by)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
            $24, $25, $26, $27, $28, $29, $30, $31, $32
         WHERE NOT EXISTS (SELECT 1 FROM runs WHERE cell_key = $8 AND status = $12)",
    )
    .bind(&r.id)
    .bind(&r.sweep_id)
    .bind(&r.name)
    .bind(&r.model)
    .bind(&r.strategy)
    .bind(r.seed)
    .bind(&r.config_hash)
    .bind(&r.cell_key)
    .bind(&r.dataset_name)
    .bind(&r.dataset_digest)
    .bind(&r.config_json)
    .bind(r.status)
    .bind(&r.error)
    .bind(&r.created_at)
    .bind(&r.started_at)
    .bind(&r.finished_at)
    .bind(&r.heartbeat_at)
    .bind(&r.env_json)
    .bind(r.n_params)
    .bind(r.best_epoch)
    .bind(r.epochs_run)
    .bind(r.train_seconds)
    .bind(r.test_seconds)
    .bind(&r.predictions_path)
    .bind(r.pid)
    .bind(&r.host)
    .bind(r.data_seconds)
    .bind(r.peak_rss_mib)
    .bind(r.samples_per_second)
    .bind(&r.claim_token)
    .bind(r.pid_start)
    .bind(&r.superseded_by)
    .execute(&mut *tx)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Params, metrics, curves, epochs, traces and gates of a copied run.
async fn insert_children(tx: &mut AnyConnection, b: &RunBundle) -> sqlx::Result<()> {
    let id = &b.run.id;
    for p in &b.params {
        sqlx::query("INSERT INTO params (run_id, key, value) VALUES ($1, $2, $3)").bind(id).bind(&p.key).bind(&p.value).execute(&mut *tx).await?;
    }
    for m in &b.metrics {
        sqlx::query("INSERT INTO metrics (run_id, split, task, metric, value) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(&m.split)
            .bind(&m.task)
            .bind(&m.metric)
            .bind(m.value)
            .execute(&mut *tx)
            .await?;
    }
    for c in &b.curves {
        sqlx::query("INSERT INTO curves (run_id, epoch, split, task, metric, value) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(c.epoch)
            .bind(&c.split)
            .bind(&c.task)
            .bind(&c.metric)
            .bind(c.value)
            .execute(&mut *tx)
            .await?;
    }
    for e in &b.epochs {
        sqlx::query(
            "INSERT INTO epochs (run_id, epoch, steps, train_seconds, eval_seconds, samples_per_second, select_value)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(e.epoch)
        .bind(e.steps)
        .bind(e.train_seconds)
        .bind(e.eval_seconds)
        .bind(e.samples_per_second)
        .bind(e.select_value)
        .execute(&mut *tx)
        .await?;
    }
    insert_trace_rows(tx, b).await?;
    for g in &b.gates {
        sqlx::query("INSERT INTO gates (run_id, split, gate, expert, label, weight) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(&g.split)
            .bind(&g.gate)
            .bind(g.expert)
            .bind(&g.label)
            .bind(g.weight)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn insert_trace_rows(tx: &mut AnyConnection, b: &RunBundle) -> sqlx::Result<()> {
    let id = &b.run.id;
    for t in &b.traces {
        sqlx::query("INSERT INTO traces (run_id, step, epoch, term, weight, loss, grad_norm) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(t.step)
            .bind(t.epoch)
            .bind(&t.term)
            .bind(t.weight)
            .bind(t.loss)
            .bind(t.grad_norm)
            .execute(&mut *tx)
            .await?;
    }
    for p in &b.pairs {
        sqlx::query("INSERT INTO trace_pairs (run_id, step, term_a, term_b, cosine) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(p.step)
            .bind(&p.term_a)
            .bind(&p.term_b)
            .bind(p.cosine)
            .execute(&mut *tx)
            .await?;
    }
    for s in &b.steps {
        sqlx::query("INSERT INTO trace_steps (run_id, step, conflict_rate) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(s.step)
            .bind(s.conflict_rate)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
