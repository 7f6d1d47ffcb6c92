//! The experiment store: SQLite or PostgreSQL through sqlx, the only module
//! that speaks SQL. [`DbLocation`] chooses the database by the `--db`
//! text's scheme. Queries run on sqlx's Any driver: one SQL text serves
//! both databases (`$N` placeholders, `ON CONFLICT`, `IS NOT DISTINCT
//! FROM`), and the few that cannot be one text are chosen by [`Dialect`]
//! in the function that owns the query (docs/store.md says why). Each
//! database has its embedded migrations (`migrations/` for SQLite,
//! `migrations/postgres/` for PostgreSQL, the same schema); a SQLite file
//! runs in WAL mode with foreign keys on. Queries are runtime
//! `query`/`query_as` with `FromRow` rows, one function per query. The API
//! is synchronous (each call blocks on a private single-thread runtime)
//! because the callers are a CLI and a training loop. The store owns its
//! types: what it is given to record (`entries`), the rows it reads back
//! (`rows`) and the run status; it imports nothing from the stages that
//! feed it.
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
mod location;
mod open;
pub mod pg_testing;
mod predictions;
mod queue;
mod read;
mod record;
mod rows;
mod status;
mod sync;
mod verdict_rows;

use std::path::{Path, PathBuf};

use sqlx::AnyPool;
use thiserror::Error;

pub use rows::{CurveRow, EpochRow, MetricRow, ParamRow, RunRow, SweepRow, TraceRow};
pub use gates::GateRow;
pub use read::TraceStepRow;
pub use claims::{ClaimToken, IfFinished};
pub use queue::SweepCellRow;
pub use entries::{GateWeights, MetricValue, NewEpoch, NewRun, NewTrace, RunOutcome, Split};
pub use location::{mask_password, DbLocation};
pub use status::{RunStatus, UnknownStatus};
pub use sync::{SyncReport, TracePairRow};
pub use verdict_rows::VerdictRows;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {db}: {source}")]
    Open { db: DbLocation, source: sqlx::Error },
    #[error("database {db}: migration failed: {source}")]
    Migrate { db: DbLocation, source: sqlx::migrate::MigrateError },
    #[error("database query `{what}`: {source}")]
    Query { what: &'static str, source: sqlx::Error },
    #[error("database {} does not exist (give an existing file with --db or MTLBENCH_DB, or record runs first with `bench run`)", .0.display())]
    Missing(PathBuf),
    #[error("database {} is a directory, not a SQLite file", .0.display())]
    IsDirectory(PathBuf),
    #[error("database {db}: foreign keys broken after migrating: {rows}")]
    ForeignKeys { db: DbLocation, rows: String },
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
    #[error("predictions file {place}: {message}")]
    Artifact { place: String, message: String },
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

/// The SQL dialect of the database a store is open on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

pub struct Store {
    pool: AnyPool,
    rt: tokio::runtime::Runtime,
    location: DbLocation,
    dialect: Dialect,
}

impl Store {
    /// Opens (creating if needed) a SQLite database and applies migrations.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, OpenMode::CreateIfMissing)
    }

    /// Opens a SQLite database as `mode` says and applies migrations.
    pub fn open_with(path: &Path, mode: OpenMode) -> Result<Store> {
        Store::open_at(&DbLocation::Sqlite(path.to_path_buf()), mode)
    }

    /// Opens the database at `db` (SQLite or PostgreSQL) as `mode` says and
    /// applies its migrations (see `open.rs`).
    pub fn open_at(db: &DbLocation, mode: OpenMode) -> Result<Store> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(StoreError::Runtime)?;
        let (pool, dialect) = match db {
            DbLocation::Sqlite(path) => (open::sqlite(&rt, path, mode)?, Dialect::Sqlite),
            DbLocation::Postgres(url) => (open::postgres(&rt, db, url)?, Dialect::Postgres),
        };
        Ok(Store { pool, rt, location: db.clone(), dialect })
    }

    /// Where the database is (Display masks a URL's password).
    pub fn location(&self) -> &DbLocation {
        &self.location
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
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
                sqlx::query_as::<_, RunRow>("SELECT * FROM runs WHERE substr(id, 1, length($1)) = $1 ORDER BY id LIMIT 6")
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
                     WHERE c.sweep_id = $1
                       AND r.id = (SELECT r2.id FROM runs r2 WHERE r2.cell_key = c.cell_key
                                   ORDER BY (r2.status = $2) DESC, r2.created_at DESC LIMIT 1)
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
            .block_on(sqlx::query_as::<_, ParamRow>("SELECT * FROM params WHERE run_id = $1 ORDER BY key").bind(run_id).fetch_all(&self.pool))
            .map_err(q("params"))
    }

    pub fn metrics(&self, run_id: &str) -> Result<Vec<MetricRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, MetricRow>("SELECT * FROM metrics WHERE run_id = $1 ORDER BY split, task, metric")
                    .bind(run_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("metrics"))
    }

    pub fn curves(&self, run_id: &str) -> Result<Vec<CurveRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, CurveRow>("SELECT * FROM curves WHERE run_id = $1 ORDER BY split, task, metric, epoch")
                    .bind(run_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("curves"))
    }

    pub fn epochs(&self, run_id: &str) -> Result<Vec<EpochRow>> {
        self.rt
            .block_on(sqlx::query_as::<_, EpochRow>("SELECT * FROM epochs WHERE run_id = $1 ORDER BY epoch").bind(run_id).fetch_all(&self.pool))
            .map_err(q("epochs"))
    }

    pub fn traces(&self, run_id: &str) -> Result<Vec<TraceRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, TraceRow>("SELECT * FROM traces WHERE run_id = $1 ORDER BY step, term").bind(run_id).fetch_all(&self.pool),
            )
            .map_err(q("traces"))
    }

    /// The database's own consistency check: SQLite's `PRAGMA
    /// integrity_check` ("ok" when healthy); PostgreSQL checks its pages
    /// itself, so there "ok" says the server answers.
    pub fn integrity_check(&self) -> Result<String> {
        let sql = match self.dialect {
            Dialect::Sqlite => "PRAGMA integrity_check",
            Dialect::Postgres => "SELECT 'ok'",
        };
        let row: (String,) = self.rt.block_on(sqlx::query_as(sql).fetch_one(&self.pool)).map_err(q("integrity check"))?;
        Ok(row.0)
    }
}
