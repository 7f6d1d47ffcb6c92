//! The data section on its own (`bench data inspect FILE`): the `[data]`
//! table of a grid file, whatever else the file holds, or a file that is
//! only a data config (`kind = ...` at the top level). Parsed with the same
//! deserializer and the same file/key/line errors as grid files.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{line_of, ConfigError, LineInfo};
use crate::data::DataConfig;

/// Joins a key prefix and a serde path (`.` is the root).
fn join(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        ("", p) => p.to_string(),
        (pre, "." | "") => pre.to_string(),
        (pre, p) => format!("{pre}.{p}"),
    }
}

/// Deserializes TOML text; errors name the file, the key (under `prefix`)
/// and, where the parser knows it, the line.
pub(super) fn deserialize<T: DeserializeOwned>(text: &str, file: &Path, prefix: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let key = join(prefix, &e.path().to_string());
        let inner = e.into_inner();
        let line = LineInfo(inner.span().map(|s| line_of(text, s.start)));
        ConfigError::Invalid { file: file.to_path_buf(), key, line, message: inner.message().trim().to_string() }
    })
}

#[derive(Deserialize)]
struct DataSection {
    data: DataConfig,
}

/// The data config of a grid file's `[data]` table or of a bare data file.
pub fn parse_data_config(text: &str, file: &Path) -> Result<DataConfig, ConfigError> {
    let table: toml::Table = deserialize(text, file, "")?;
    if table.contains_key("data") {
        deserialize::<DataSection>(text, file, "").map(|s| s.data)
    } else {
        deserialize(text, file, "data")
    }
}

/// Reads a file and parses its data config (see [`parse_data_config`]).
pub fn load_data_config(path: &Path) -> Result<DataConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
    parse_data_config(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_data_section_of_a_grid_or_a_bare_data_file() {
        // The rest of a grid need not be valid to inspect its data.
        let grid = "name = \"g\"\n[data]\nkind = \"toy\"\nrows = 500\n[grid]\nmodels = []\n";
        match parse_data_config(grid, Path::new("g.toml")).unwrap() {
            DataConfig::Toy(t) => assert_eq!(t.rows, 500),
            other => panic!("{other:?}"),
        }
        let bare = "kind = \"synthetic-wechat\"\nusers = 10\nfeeds = 20\n";
        assert!(
            matches!(parse_data_config(bare, Path::new("d.toml")).unwrap(), DataConfig::SyntheticWechat(c) if c.users == 10 && c.days == 14)
        );
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_line() {
        let e = parse_data_config("[data]\nkind = \"toy\"\nrowz = 5\n", Path::new("g.toml")).unwrap_err().to_string();
        // Inside the internally tagged [data] table serde only knows the table.
        assert!(e.starts_with("g.toml: key `data`") && e.contains("unknown field `rowz`"), "{e}");
        let e = parse_data_config("kind = \"toy\"\nrows = \"many\"\n", Path::new("d.toml")).unwrap_err().to_string();
        assert!(e.starts_with("d.toml: key `data`") && e.contains("many"), "{e}");
        let e = parse_data_config("kind = \"toy\"\nrows = [\n", Path::new("d.toml")).unwrap_err().to_string();
        // A syntax error is at the top level, with the line the parser stopped at.
        assert!(e.starts_with("d.toml: key `.` (line 3): invalid array"), "{e}");
    }

    #[test]
    fn join_prefixes_paths() {
        assert_eq!(join("", "train.lr"), "train.lr");
        assert_eq!(join("data", "."), "data");
        assert_eq!(join("data", "rows"), "data.rows");
    }
}
