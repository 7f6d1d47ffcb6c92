//! Opening a database: checks of the location, the embedded migrations of
//! its dialect, then the pool the store's queries run on (sqlx's Any
//! driver). The migrations run on a native connection of the database's
//! own driver, so that SQLite keeps its typed options and its foreign-key
//! check after a table rebuild, and PostgreSQL its migration lock (two
//! workers opening a fresh database at once migrate it once).
//!
//! SQLite: the file in WAL mode (a persistent property of the file, set by
//! the migrating connection), and on every pooled connection foreign keys
//! on, `synchronous = NORMAL` and a 30 s busy timeout. The Any driver opens
//! SQLite from a URL, which carries no pragmas, so the pool sets them after
//! connecting, from the same [`SqlitePragmas`] the typed options use.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Executor};

use super::{q, DbLocation, OpenMode, Result, StoreError};

/// Connections per store: a CLI verb or a training loop writes from one
/// thread; the second serves a read between writes.
const POOL_CONNECTIONS: u32 = 2;

/// The per-connection settings of a SQLite database.
struct SqlitePragmas;

impl SqlitePragmas {
    const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

    /// The typed options of the migrating connection.
    fn options(path: &Path, mode: OpenMode) -> std::result::Result<SqliteConnectOptions, sqlx::Error> {
        Ok(SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(mode == OpenMode::CreateIfMissing)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Self::BUSY_TIMEOUT))
    }

    /// The same settings as statements, for a pooled connection.
    fn statements() -> String {
        format!("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = {};", Self::BUSY_TIMEOUT.as_millis())
    }
}

/// Opens a SQLite file: checks the path, migrates, returns the pool.
pub(super) fn sqlite(rt: &tokio::runtime::Runtime, path: &Path, mode: OpenMode) -> Result<AnyPool> {
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
    let db = DbLocation::Sqlite(path.to_path_buf());
    let open_err = |source| StoreError::Open { db: db.clone(), source };
    let opts = SqlitePragmas::options(path, mode).map_err(open_err)?;
    rt.block_on(migrate_sqlite(&db, opts.clone().foreign_keys(false)))?;
    // The file exists now: the pool opens it read-write, never creates it.
    let any = AnyConnectOptions::from_url(&opts.create_if_missing(false).to_url_lossy()).map_err(open_err)?;
    sqlx::any::install_default_drivers();
    let pragmas = SqlitePragmas::statements();
    rt.block_on(
        AnyPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .after_connect(move |conn, _| {
                let pragmas = pragmas.clone();
                Box::pin(async move { conn.execute(pragmas.as_str()).await.map(|_| ()) })
            })
            .connect_with(any),
    )
    .map_err(open_err)
}

/// Applies the embedded SQLite migrations on one connection (foreign keys
/// off: a table rebuild must not cascade), then checks that every foreign
/// key still holds.
async fn migrate_sqlite(db: &DbLocation, opts: SqliteConnectOptions) -> Result<()> {
    let open_err = |source| StoreError::Open { db: db.clone(), source };
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.map_err(open_err)?;
    sqlx::migrate!("./migrations").run(&mut conn).await.map_err(|source| StoreError::Migrate { db: db.clone(), source })?;
    let broken: Vec<(String, i64, String)> = sqlx::query_as("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .map_err(q("foreign key check"))?;
    if !broken.is_empty() {
        let rows = broken.iter().take(5).map(|(t, id, p)| format!("{t} row {id} -> {p}")).collect::<Vec<_>>().join(", ");
        return Err(StoreError::ForeignKeys { db: db.clone(), rows });
    }
    conn.close().await.map_err(open_err)
}

/// Opens a PostgreSQL database (which must exist: the store creates
/// tables, never databases), migrates, returns the pool.
pub(super) fn postgres(rt: &tokio::runtime::Runtime, db: &DbLocation, url: &str) -> Result<AnyPool> {
    let open_err = |source| StoreError::Open { db: db.clone(), source };
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(open_err)?;
        sqlx::migrate!("./migrations/postgres").run(&mut conn).await.map_err(|source| StoreError::Migrate { db: db.clone(), source })?;
        conn.close().await.map_err(open_err)
    })?;
    sqlx::any::install_default_drivers();
    let any = AnyConnectOptions::from_str(url).map_err(open_err)?;
    rt.block_on(AnyPoolOptions::new().max_connections(POOL_CONNECTIONS).acquire_timeout(Duration::from_secs(60)).connect_with(any)).map_err(open_err)
}
