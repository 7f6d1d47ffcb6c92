//! The experiment store: SQLite through sqlx, the only module that speaks
//! SQL. Migrations are embedded from `migrations/`; the database runs in WAL
//! mode with foreign keys on. Queries are runtime `query`/`query_as` with
//! `FromRow` rows, one function per query. The API is synchronous (each call
//! blocks on a private single-thread runtime) because the callers are a CLI
//! and a training loop. The store owns its types: what it is given to record
//! (`entries`), the rows it reads back (`rows`) and the run status; it
//! imports nothing from the stages that feed it.
//!
//! Every write of a run after its claim is fenced by the claim's token
//! (`claims.rs`): a process that lost its claim gets
//! [`StoreError::ClaimLost`] and changes nothing. Verbs that only read open
//! with [`OpenMode::ReadExisting`], so that a mistyped path creates nothing.

pub mod artifacts;
mod claims;
#[cfg(test)]
mod claims_tests;
mod entries;
pub mod fixture;
pub mod fixture_runs;
mod gates;
mod queue;
mod read;
mod record;
mod rows;
mod status;
mod verdict_rows;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use thiserror::Error;

pub use rows::{CurveRow, EpochRow, MetricRow, ParamRow, RunRow, SweepRow, TraceRow};
pub use gates::GateRow;
pub use read::TraceStepRow;
pub use claims::{ClaimToken, IfFinished};
pub use queue::SweepCellRow;
pub use entries::{GateWeights, MetricValue, NewEpoch, NewRun, NewTrace, RunOutcome, Split};
pub use status::{RunStatus, UnknownStatus};
pub use verdict_rows::VerdictRows;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("database {path}: migration failed: {source}")]
    Migrate { path: PathBuf, source: sqlx::migrate::MigrateError },
    #[error("database query `{what}`: {source}")]
    Query { what: &'static str, source: sqlx::Error },
    #[error("database {} does not exist (give an existing file with --db or MTLBENCH_DB, or record runs first with `bench run`)", .0.display())]
    Missing(PathBuf),
    #[error("database {} is a directory, not a SQLite file", .0.display())]
    IsDirectory(PathBuf),
    #[error("database {path}: foreign keys broken after migrating: {rows}")]
    ForeignKeys { path: PathBuf, rows: String },
    #[error("no run matches `{0}` (see `bench list`)")]
    NoSuchRun(String),
    #[error("no run matches `{0}`: a run id is hex digits (0-9, a-f), e.g. 3f2a9c1e (see `bench list`)")]
    BadRunId(String),
    #[error("run {run_id} no longer holds its claim on the cell (the run is now {now})")]
    ClaimLost { run_id: String, now: String },
    #[error("`{prefix}` is ambiguous: it matches runs {matches}; give more digits")]
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

/// How [`Store::open_with`] treats a missing database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file (and its folder) when missing: `bench run`, `bench fuse`'s target.
    CreateIfMissing,
    /// Open only an existing file (migrating it is fine): the verbs that read.
    ReadExisting,
}

/// A run id prefix as typed by a user: non-empty hex digits, lower case.
pub fn run_id_prefix(text: &str) -> Result<String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::BadRunId(text.to_string()));
    }
    Ok(text.to_ascii_lowercase())
}

pub struct Store {
    pool: SqlitePool,
    rt: tokio::runtime::Runtime,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database and applies migrations.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, OpenMode::CreateIfMissing)
    }

    /// Opens the database as `mode` says and applies migrations. The
    /// migrations run on a connection of their own with foreign keys off
    /// (a table rebuild must not cascade), then the keys are checked.
    pub fn open_with(path: &Path, mode: OpenMode) -> Result<Store> {
        if path.is_dir() {
            return Err(StoreError::IsDirectory(path.to_path_buf()));
        }
        match mode {
            OpenMode::ReadExisting if !path.exists() => return Err(StoreError::Missing(path.to_path_buf())),
            OpenMode::ReadExisting => {}
            OpenMode::CreateIfMissing => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(StoreError::Runtime)?;
                }
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(StoreError::Runtime)?;
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(mode == OpenMode::CreateIfMissing)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        rt.block_on(migrate(path, opts.clone().foreign_keys(false)))?;
        let pool = rt
            .block_on(SqlitePoolOptions::new().max_connections(2).connect_with(opts.foreign_keys(true)))
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        Ok(Store { pool, rt, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folder for artifacts (predictions) next to the database.
    pub fn artifact_dir(&self) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join("predictions")
    }

    pub fn list_runs(&self) -> Result<Vec<RunRow>> {
        self.rt
            .block_on(sqlx::query_as::<_, RunRow>("SELECT * FROM runs ORDER BY created_at, id").fetch_all(&self.pool))
            .map_err(q("list runs"))
    }

    /// The run whose id starts with `prefix` (like git): hex digits only,
    /// compared as text (never a pattern); an error when none or several match.
    pub fn find_run(&self, prefix: &str) -> Result<RunRow> {
        let hex = run_id_prefix(prefix)?;
        let rows = self
            .rt
            .block_on(
                sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 6")
                    .bind(&hex)
                    .fetch_all(&self.pool),
            )
            .map_err(q("find run"))?;
        match rows.len() {
            0 => Err(StoreError::NoSuchRun(prefix.to_string())),
            1 => Ok(rows.into_iter().next().ok_or_else(|| StoreError::NoSuchRun(prefix.to_string()))?),
            n => {
                let mut matches: Vec<String> = rows.iter().take(5).map(|r| format!("{} ({}, {})", r.id, r.name, r.status)).collect();
                if n > 5 {
                    matches.push("...".into());
                }
                Err(StoreError::Ambiguous { prefix: prefix.to_string(), matches: matches.join(", ") })
            }
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
                                   ORDER BY (r2.status = ?) DESC, r2.created_at DESC LIMIT 1)
                     ORDER BY c.position",
                )
                .bind(sweep_id)
                .bind(RunStatus::Finished)
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

/// Applies the embedded migrations on one connection (foreign keys off),
/// then checks that every foreign key still holds.
async fn migrate(path: &Path, opts: SqliteConnectOptions) -> Result<()> {
    use sqlx::Connection;
    let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.map_err(open_err)?;
    sqlx::migrate!("./migrations")
        .run(&mut conn)
        .await
        .map_err(|source| StoreError::Migrate { path: path.to_path_buf(), source })?;
    let broken: Vec<(String, i64, String)> = sqlx::query_as("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .map_err(q("foreign key check"))?;
    if !broken.is_empty() {
        let rows = broken.iter().take(5).map(|(t, id, p)| format!("{t} row {id} -> {p}")).collect::<Vec<_>>().join(", ");
        return Err(StoreError::ForeignKeys { path: path.to_path_buf(), rows });
    }
    conn.close().await.map_err(open_err)
}
