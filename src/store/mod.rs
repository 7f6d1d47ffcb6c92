//! The experiment store: SQLite through sqlx, the only module that speaks
//! SQL. Migrations are embedded from `migrations/`; the database runs in WAL
//! mode with foreign keys on. Queries are runtime `query`/`query_as` with
//! `FromRow` rows, one function per query. The API is synchronous (each call
//! blocks on a private single-thread runtime) because the callers are a CLI
//! and a training loop.

pub mod artifacts;
pub mod fixture;
pub mod fixture_runs;
mod gates;
mod read;
mod rows;
mod verdict_rows;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use thiserror::Error;

pub use rows::{CurveRow, EpochRow, MetricRow, ParamRow, RunRow, SweepRow, TraceRow};
pub use gates::GateRow;
pub use read::TraceStepRow;
pub use verdict_rows::VerdictRows;

use crate::train::{EpochRecord, TaskMetrics, TraceRecord, TrainResult};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("database {path}: migration failed: {source}")]
    Migrate { path: PathBuf, source: sqlx::migrate::MigrateError },
    #[error("database query `{what}`: {source}")]
    Query { what: &'static str, source: sqlx::Error },
    #[error("no run matches `{0}` (see `bench list`)")]
    NoSuchRun(String),
    #[error("`{prefix}` is ambiguous: it matches runs {matches}")]
    Ambiguous { prefix: String, matches: String },
    #[error("{0}")]
    Runtime(std::io::Error),
    #[error("predictions file {path}: {message}")]
    Artifact { path: PathBuf, message: String },
}

type Result<T> = std::result::Result<T, StoreError>;

fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// Current time, RFC 3339 UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new run's identity and configuration.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub id: &'a str,
    pub sweep_id: &'a str,
    pub name: &'a str,
    pub model: &'a str,
    pub strategy: &'a str,
    pub seed: u64,
    pub config_hash: &'a str,
    pub cell_key: &'a str,
    pub dataset_name: &'a str,
    pub dataset_digest: &'a str,
    pub config_json: &'a str,
    pub env_json: &'a str,
    pub params: &'a [(String, String)],
    pub pid: u32,
    pub host: &'a str,
    pub data_seconds: f64,
}

/// Resource figures recorded when a run finishes.
#[derive(Debug, Clone, Copy, Default)]
pub struct FinishInfo {
    pub peak_rss_mib: Option<f64>,
    pub samples_per_second: Option<f64>,
}

pub struct Store {
    pool: SqlitePool,
    rt: tokio::runtime::Runtime,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database and applies migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(StoreError::Runtime)?;
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(StoreError::Runtime)?;
            }
        }
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = rt
            .block_on(SqlitePoolOptions::new().max_connections(2).connect_with(opts))
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        rt.block_on(sqlx::migrate!("./migrations").run(&pool))
            .map_err(|source| StoreError::Migrate { path: path.to_path_buf(), source })?;
        Ok(Store { pool, rt, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folder for artifacts (predictions) next to the database.
    pub fn artifact_dir(&self) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join("predictions")
    }

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
                sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE cell_key = ? AND status = 'finished'")
                    .bind(cell_key)
                    .fetch_optional(&self.pool),
            )
            .map_err(q("finished run for cell"))
    }

    /// Claims a cell: inserts a run in status `running`, with its params, in
    /// one transaction. Returns false (and changes nothing) when another run
    /// of the cell is already running or finished.
    pub fn start_run(&self, r: &NewRun) -> Result<bool> {
        let t = now();
        let res = self
            .rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO runs (id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name,
                        dataset_digest, config_json, status, created_at, started_at, heartbeat_at, env_json,
                        pid, host, data_seconds)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
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
                .bind(&t)
                .bind(&t)
                .bind(&t)
                .bind(r.env_json)
                .bind(r.pid as i64)
                .bind(r.host)
                .bind(r.data_seconds)
                .execute(&mut *tx)
                .await?;
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

    /// The run of a cell currently marked running, if any.
    pub fn running_run_for_cell(&self, cell_key: &str) -> Result<Option<RunRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE cell_key = ? AND status = 'running'")
                    .bind(cell_key)
                    .fetch_optional(&self.pool),
            )
            .map_err(q("running run for cell"))
    }

    /// Marks a still-running run as alive now.
    pub fn heartbeat(&self, run_id: &str) -> Result<()> {
        self.rt
            .block_on(
                sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'")
                    .bind(now())
                    .bind(run_id)
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
                sqlx::query("UPDATE runs SET status = 'killed', error = ?, finished_at = ? WHERE id = ? AND status = 'running'")
                    .bind(reason)
                    .bind(now())
                    .bind(run_id)
                    .execute(&self.pool),
            )
            .map_err(q("mark stale"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Records an epoch: curves (train loss, validation metrics) and timings.
    pub fn record_epoch(&self, run_id: &str, e: &EpochRecord) -> Result<()> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                let ep = e.epoch as i64;
                let put = |split: &'static str, task: String, metric: &'static str, value: f64| {
                    (split, task, metric, value)
                };
                let mut rows = Vec::new();
                for (term, loss) in &e.train_loss {
                    rows.push(put("train", term.clone(), "loss", *loss));
                }
                for m in &e.valid {
                    rows.extend(metric_rows(m).into_iter().map(|(metric, v)| put("valid", m.task.clone(), metric, v)));
                }
                for (split, task, metric, value) in rows {
                    sqlx::query("INSERT OR REPLACE INTO curves (run_id, epoch, split, task, metric, value) VALUES (?, ?, ?, ?, ?, ?)")
                        .bind(run_id)
                        .bind(ep)
                        .bind(split)
                        .bind(task)
                        .bind(metric)
                        .bind(value)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT OR REPLACE INTO epochs (run_id, epoch, steps, train_seconds, eval_seconds, samples_per_second, select_value)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(run_id)
                .bind(ep)
                .bind(e.steps as i64)
                .bind(e.train_seconds)
                .bind(e.eval_seconds)
                .bind(e.samples_per_second)
                .bind(e.select_value)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ?").bind(now()).bind(run_id).execute(&mut *tx).await?;
                tx.commit().await
            })
            .map_err(q("record epoch"))
    }

    /// Records one strategy trace point.
    pub fn record_trace(&self, run_id: &str, t: &TraceRecord) -> Result<()> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                let step = t.step as i64;
                for (i, term) in t.terms.iter().enumerate() {
                    sqlx::query(
                        "INSERT OR REPLACE INTO traces (run_id, step, epoch, term, weight, loss, grad_norm) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(run_id)
                    .bind(step)
                    .bind(t.epoch as i64)
                    .bind(term)
                    .bind(t.weights.get(i).copied().unwrap_or(f64::NAN))
                    .bind(t.losses.get(i).copied().unwrap_or(f64::NAN))
                    .bind(t.diagnostics.norms.get(i).copied().unwrap_or(f64::NAN))
                    .execute(&mut *tx)
                    .await?;
                }
                let mut k = 0;
                for a in 0..t.terms.len() {
                    for b in a + 1..t.terms.len() {
                        if let Some(c) = t.diagnostics.cosines.get(k) {
                            sqlx::query("INSERT OR REPLACE INTO trace_pairs (run_id, step, term_a, term_b, cosine) VALUES (?, ?, ?, ?, ?)")
                                .bind(run_id)
                                .bind(step)
                                .bind(&t.terms[a])
                                .bind(&t.terms[b])
                                .bind(*c)
                                .execute(&mut *tx)
                                .await?;
                        }
                        k += 1;
                    }
                }
                sqlx::query("INSERT OR REPLACE INTO trace_steps (run_id, step, conflict_rate) VALUES (?, ?, ?)")
                    .bind(run_id)
                    .bind(step)
                    .bind(t.diagnostics.conflict_rate)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ?").bind(now()).bind(run_id).execute(&mut *tx).await?;
                tx.commit().await
            })
            .map_err(q("record trace"))
    }

    /// Marks a run finished with its final metrics, in one transaction.
    pub fn finish_run(&self, run_id: &str, r: &TrainResult, predictions_path: Option<&str>, info: FinishInfo) -> Result<()> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                for (split, ms) in [("valid", &r.valid), ("test", &r.test)] {
                    for m in ms {
                        for (metric, v) in metric_rows(m) {
                            sqlx::query("INSERT OR REPLACE INTO metrics (run_id, split, task, metric, value) VALUES (?, ?, ?, ?, ?)")
                                .bind(run_id)
                                .bind(split)
                                .bind(&m.task)
                                .bind(metric)
                                .bind(v)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                }
                gates::insert(&mut tx, run_id, "test", &r.test_predictions.gates).await?;
                for (split, ms) in [("valid", &r.valid_extra), ("test", &r.test_extra)] {
                    for m in ms {
                        sqlx::query("INSERT OR REPLACE INTO metrics (run_id, split, task, metric, value) VALUES (?, ?, ?, ?, ?)")
                            .bind(run_id)
                            .bind(split)
                            .bind(&m.task)
                            .bind(&m.metric)
                            .bind(m.value)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                sqlx::query(
                    "UPDATE runs SET status = 'finished', finished_at = ?, heartbeat_at = ?, n_params = ?, best_epoch = ?,
                        epochs_run = ?, train_seconds = ?, test_seconds = ?, predictions_path = ?, error = NULL,
                        peak_rss_mib = ?, samples_per_second = ? WHERE id = ?",
                )
                .bind(now())
                .bind(now())
                .bind(r.n_params)
                .bind(r.best_epoch as i64)
                .bind(r.epochs_run as i64)
                .bind(r.total_train_seconds)
                .bind(r.test_seconds)
                .bind(predictions_path)
                .bind(info.peak_rss_mib)
                .bind(info.samples_per_second)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            })
            .map_err(q("finish run"))
    }

    /// Marks a run failed (or killed) with the reason.
    pub fn fail_run(&self, run_id: &str, status: &str, error: &str) -> Result<()> {
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

    pub fn list_runs(&self) -> Result<Vec<RunRow>> {
        self.rt
            .block_on(sqlx::query_as::<_, RunRow>("SELECT * FROM runs ORDER BY created_at, id").fetch_all(&self.pool))
            .map_err(q("list runs"))
    }

    /// The run whose id starts with `prefix` (like git); an error when none or several match.
    pub fn find_run(&self, prefix: &str) -> Result<RunRow> {
        let pattern = format!("{}%", prefix.replace('%', "").replace('_', ""));
        let rows = self
            .rt
            .block_on(sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE id LIKE ? LIMIT 5").bind(pattern).fetch_all(&self.pool))
            .map_err(q("find run"))?;
        match rows.len() {
            0 => Err(StoreError::NoSuchRun(prefix.to_string())),
            1 => Ok(rows.into_iter().next().ok_or_else(|| StoreError::NoSuchRun(prefix.to_string()))?),
            _ => Err(StoreError::Ambiguous {
                prefix: prefix.to_string(),
                matches: rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    pub fn list_sweeps(&self) -> Result<Vec<SweepRow>> {
        self.rt
            .block_on(sqlx::query_as::<_, SweepRow>("SELECT * FROM sweeps ORDER BY updated_at DESC").fetch_all(&self.pool))
            .map_err(q("list sweeps"))
    }

    /// The latest run of every cell of a sweep (finished preferred), in cell order.
    pub fn sweep_runs(&self, sweep_id: &str) -> Result<Vec<RunRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, RunRow>(
                    "SELECT r.* FROM sweep_cells c JOIN runs r ON r.cell_key = c.cell_key
                     WHERE c.sweep_id = ?
                       AND r.id = (SELECT r2.id FROM runs r2 WHERE r2.cell_key = c.cell_key
                                   ORDER BY (r2.status = 'finished') DESC, r2.created_at DESC LIMIT 1)
                     ORDER BY c.position",
                )
                .bind(sweep_id)
                .fetch_all(&self.pool),
            )
            .map_err(q("sweep runs"))
    }

    pub fn params(&self, run_id: &str) -> Result<Vec<ParamRow>> {
        self.rt
            .block_on(sqlx::query_as::<_, ParamRow>("SELECT * FROM params WHERE run_id = ? ORDER BY key").bind(run_id).fetch_all(&self.pool))
            .map_err(q("params"))
    }

    pub fn metrics(&self, run_id: &str) -> Result<Vec<MetricRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, MetricRow>("SELECT * FROM metrics WHERE run_id = ? ORDER BY split, task, metric")
                    .bind(run_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("metrics"))
    }

    pub fn curves(&self, run_id: &str) -> Result<Vec<CurveRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, CurveRow>("SELECT * FROM curves WHERE run_id = ? ORDER BY split, task, metric, epoch")
                    .bind(run_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("curves"))
    }

    pub fn epochs(&self, run_id: &str) -> Result<Vec<EpochRow>> {
        self.rt
            .block_on(sqlx::query_as::<_, EpochRow>("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch").bind(run_id).fetch_all(&self.pool))
            .map_err(q("epochs"))
    }

    pub fn traces(&self, run_id: &str) -> Result<Vec<TraceRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, TraceRow>("SELECT * FROM traces WHERE run_id = ? ORDER BY step, term").bind(run_id).fetch_all(&self.pool),
            )
            .map_err(q("traces"))
    }

    /// `PRAGMA integrity_check` result ("ok" when healthy).
    pub fn integrity_check(&self) -> Result<String> {
        let row: (String,) = self
            .rt
            .block_on(sqlx::query_as("PRAGMA integrity_check").fetch_one(&self.pool))
            .map_err(q("integrity check"))?;
        Ok(row.0)
    }
}

/// The defined metrics of a task as (name, value) rows.
fn metric_rows(m: &TaskMetrics) -> Vec<(&'static str, f64)> {
    let mut v = Vec::new();
    if let Some(x) = m.auc {
        v.push(("auc", x));
    }
    if let Some(x) = m.logloss {
        v.push(("logloss", x));
    }
    if let Some(x) = m.uauc {
        v.push(("uauc", x));
        v.push(("uauc_users", m.uauc_users as f64));
    }
    v.push(("positive_rate", m.positive_rate));
    v
}
