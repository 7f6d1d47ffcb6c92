//! Where the store lives, as a user gives it with `--db` or `MTLBENCH_DB`:
//! a `postgres://` or `postgresql://` URL is a PostgreSQL database, anything
//! else is the path of a SQLite file (the default, `results/bench.sqlite`).
//! The choice is made here once, by the text's scheme; every message that
//! names a database shows it through [`DbLocation`]'s `Display`, which masks
//! a URL's password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The URL schemes that select PostgreSQL.
pub const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// A database to open: a SQLite file or a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DbLocation {
    Sqlite(PathBuf),
    /// The URL as given (with its password, if any).
    Postgres(String),
}

impl DbLocation {
    /// Chooses the database by the text's scheme (see the module header).
    pub fn parse(text: &str) -> DbLocation {
        let lower = text.to_ascii_lowercase();
        if POSTGRES_SCHEMES.iter().any(|s| lower.starts_with(s)) {
            DbLocation::Postgres(text.to_string())
        } else {
            DbLocation::Sqlite(PathBuf::from(text))
        }
    }

    /// The SQLite file, for a SQLite database.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            DbLocation::Sqlite(p) => Some(p),
            DbLocation::Postgres(_) => None,
        }
    }

    /// The text to hand another process (`--db` of a worker): the path, or
    /// the URL with its password.
    pub fn as_arg(&self) -> String {
        match self {
            DbLocation::Sqlite(p) => p.display().to_string(),
            DbLocation::Postgres(url) => url.clone(),
        }
    }
}

impl FromStr for DbLocation {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DbLocation::parse(s))
    }
}

impl From<&Path> for DbLocation {
    fn from(p: &Path) -> Self {
        DbLocation::Sqlite(p.to_path_buf())
    }
}

impl From<PathBuf> for DbLocation {
    fn from(p: PathBuf) -> Self {
        DbLocation::Sqlite(p)
    }
}

impl fmt::Display for DbLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbLocation::Sqlite(p) => write!(f, "{}", p.display()),
            DbLocation::Postgres(url) => f.write_str(&mask_password(url)),
        }
    }
}

/// Debug shows what Display shows: no password in logs or panics.
impl fmt::Debug for DbLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbLocation::Sqlite(p) => write!(f, "Sqlite({p:?})"),
            DbLocation::Postgres(_) => write!(f, "Postgres({self})"),
        }
    }
}

/// `scheme://user:secret@host/db` -> `scheme://user:***@host/db`; a
/// `password=` query parameter is masked the same way. Text without a
/// password is returned unchanged.
pub fn mask_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let end = out[start..].find(['/', '?']).map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@').map(|i| start + i) {
            if let Some(colon) = out[start..at].find(':').map(|i| start + i) {
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let masked: Vec<String> = out[q + 1..]
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.replace_range(q + 1.., &masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_chooses_the_database() {
        assert_eq!(DbLocation::parse("results/bench.sqlite"), DbLocation::Sqlite("results/bench.sqlite".into()));
        assert_eq!(DbLocation::parse("postgres://u@h/db"), DbLocation::Postgres("postgres://u@h/db".into()));
        assert_eq!(DbLocation::parse("PostgreSQL://h/db"), DbLocation::Postgres("PostgreSQL://h/db".into()));
        // A file whose name only contains the word stays a SQLite path.
        assert_eq!(DbLocation::parse("postgres.sqlite"), DbLocation::Sqlite("postgres.sqlite".into()));
        assert_eq!(DbLocation::parse("mysql://h/db").sqlite_path(), Some(Path::new("mysql://h/db")));
    }

    #[test]
    fn passwords_are_masked_wherever_the_url_is_shown() {
        assert_eq!(mask_password("postgres://bench:s3cret@db.lan:5432/mtl"), "postgres://bench:***@db.lan:5432/mtl");
        assert_eq!(mask_password("postgres://bench@db.lan/mtl"), "postgres://bench@db.lan/mtl");
        assert_eq!(mask_password("postgres://db.lan/mtl?user=u&password=pw&sslmode=require"), "postgres://db.lan/mtl?user=u&password=***&sslmode=require");
        // A password holding '@' and ':' is masked whole.
        assert_eq!(mask_password("postgres://u:p@:ss@h/db"), "postgres://u:***@h/db");
        let loc = DbLocation::parse("postgres://bench:s3cret@h/db");
        assert_eq!(loc.to_string(), "postgres://bench:***@h/db");
        assert!(!format!("{loc:?}").contains("s3cret"));
        assert!(loc.as_arg().contains("s3cret"), "a worker is handed the real URL");
    }
}
