//! The data section on its own (`bench data inspect FILE`): the `[data]`
//! table of a grid file, whatever else the file holds, or a file that is
//! only a data config (`kind = ...` at the top level). Parsed with the same
//! deserializer and the same file/key/line errors as grid files.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{line_of, read_text, spans, ConfigError, LineInfo};
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
/// and, where the parser knows it, the line. An unknown key is reported at
/// its own line, also inside `[data]` (where serde knows only the table).
pub(super) fn deserialize<T: DeserializeOwned>(text: &str, file: &Path, prefix: &str) -> Result<T, ConfigError> {
    let invalid = |key: String, line: Option<usize>, message: String| ConfigError::Invalid { file: file.to_path_buf(), key, line: LineInfo(line), message };
    if let Some((line, column, c)) = spans::control_character(text) {
        let message = format!("control character U+{:04X} at column {column}: TOML allows none but tab, in comments and strings too", c as u32);
        return Err(invalid(join(prefix, "."), Some(line), message));
    }
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut message = inner.message().trim().to_string();
        if message.is_empty() {
            message = "not valid TOML".into();
        }
        let unknown = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next());
        if let Some((below, line)) = unknown.and_then(|name| spans::find_key(text, &path, name)) {
            let key = if path == "." { below } else { format!("{path}.{below}") };
            return invalid(join(prefix, &key), Some(line), message);
        }
        invalid(join(prefix, &path), inner.span().map(|s| line_of(text, s.start)), message)
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
    parse_data_config(&read_text(path)?, path)
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
        // Inside the internally tagged [data] table serde only knows the
        // table; the unknown key is found by name.
        assert!(e.starts_with("g.toml: key `data.rowz` (line 3)") && e.contains("unknown field `rowz`"), "{e}");
        let nested = "[data]\nkind = \"wechat\"\n\nsplit = { train = [8], valid = [9], test = [10], bogus = 1 }\n";
        let e = parse_data_config(nested, Path::new("g.toml")).unwrap_err().to_string();
        assert!(e.starts_with("g.toml: key `data.split.bogus` (line 4)") && e.contains("unknown field `bogus`"), "{e}");
        let e = parse_data_config("kind = \"toy\"\n\nrowz = 5\n", Path::new("d.toml")).unwrap_err().to_string();
        assert!(e.starts_with("d.toml: key `data.rowz` (line 3)"), "{e}");
        let e = parse_data_config("kind = \"toy\" # a\u{0}b\n", Path::new("d.toml")).unwrap_err().to_string();
        assert!(e.starts_with("d.toml: key `.` (line 1)") && e.contains("control character U+0000 at column 17"), "{e}");
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
