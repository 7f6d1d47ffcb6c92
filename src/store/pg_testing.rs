//! PostgreSQL for the tests: each test gets a database of its own on one
//! server, so that tests run in parallel and leave nothing behind. The
//! server is the one `MTLBENCH_TEST_POSTGRES` names (an admin URL: CI
//! starts a throwaway cluster with `scripts/pg-throwaway.sh`), else a
//! throwaway cluster this test process starts with that script and that
//! stops when the process ends. Without either, PostgreSQL tests are
//! skipped, unless `MTLBENCH_REQUIRE_POSTGRES` is set: then a missing
//! server fails the test.

use std::sync::OnceLock;

use sqlx::{Connection, Executor};

use super::{DbLocation, Store};

/// The variable holding the admin URL of the test server.
pub const TEST_URL_VAR: &str = "MTLBENCH_TEST_POSTGRES";
/// Set (to anything but empty or `0`): a missing server fails the tests.
pub const REQUIRE_VAR: &str = "MTLBENCH_REQUIRE_POSTGRES";

fn required() -> bool {
    std::env::var(REQUIRE_VAR).map(|v| !v.is_empty() && v != "0").unwrap_or(false)
}

/// The admin URL of the test server, or why there is none.
fn server() -> &'static Result<String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var(TEST_URL_VAR) {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => start_throwaway(),
    })
}

/// Starts `scripts/pg-throwaway.sh`, watched by this process.
fn start_throwaway() -> Result<String, String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-throwaway.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args(["start", "--watch", &std::process::id().to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("export {TEST_URL_VAR}=")).map(str::to_string))
        .ok_or_else(|| format!("{} printed no URL: {text}", script.display()))
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A database of one test, dropped with it.
pub struct TestDatabase {
    admin: String,
    name: String,
    pub location: DbLocation,
}

impl TestDatabase {
    /// A fresh, empty database named after the test; `None` (the test is
    /// skipped, and says so) when no server is available and none is required.
    pub fn create(test: &str) -> Option<TestDatabase> {
        let admin = match server() {
            Ok(url) => url.clone(),
            Err(why) if required() => panic!("{REQUIRE_VAR} is set but no PostgreSQL server is available: {why}"),
            Err(why) => {
                eprintln!("skipping PostgreSQL for {test}: {why}");
                return None;
            }
        };
        let clean: String = test.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let name = format!("t_{}_{:08x}", &clean[clean.len().saturating_sub(40)..], rand::random::<u32>());
        admin_sql(&admin, &format!("CREATE DATABASE \"{name}\"")).unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let location = DbLocation::Postgres(with_database(&admin, &name));
        Some(TestDatabase { admin, name, location })
    }

    /// The database's URL, for `--db` or `MTLBENCH_DB`.
    pub fn url(&self) -> String {
        self.location.as_arg()
    }

    pub fn open(&self) -> Store {
        Store::open_at(&self.location, super::OpenMode::CreateIfMissing).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = admin_sql(&self.admin, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)) {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

fn admin_sql(admin: &str, sql: &str) -> Result<(), sqlx::Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(sqlx::Error::Io)?;
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        conn.execute(sql).await?;
        conn.close().await
    })
}

/// Runs `test` on a fresh SQLite file, then on a fresh PostgreSQL database
/// (when there is a server; see the module header).
pub fn on_each_database(name: &str, test: impl Fn(&Store)) {
    let dir = tempfile_dir();
    test(&Store::open(&dir.join("db.sqlite")).unwrap_or_else(|e| panic!("{e}")));
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(db) = TestDatabase::create(name) {
        test(&db.open());
    }
}

/// A fresh folder under the system's temporary folder.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlbench-store-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_database_replaces_only_the_database_of_the_admin_url() {
        assert_eq!(with_database("postgres://u@127.0.0.1:5432/postgres", "t_x"), "postgres://u@127.0.0.1:5432/t_x");
        assert_eq!(with_database("postgres://u:p@h/postgres?sslmode=disable", "t_x"), "postgres://u:p@h/t_x?sslmode=disable");
        assert_eq!(with_database("postgres://h", "t_x"), "postgres://h/t_x");
    }
}
