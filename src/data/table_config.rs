//! The table source's configuration (`[data] kind = "table"`): which
//! columns are categorical, numeric (with a transform or an encoding),
//! multi-valued or labels, how the rows are split, and the checks made when
//! the grid is read (before any training), each naming its `data.` key.
//! Kept apart from the loading ([`super::table`]), which trusts what
//! passes here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::numeric::{self, Activation, EncodingKind, Request, SettingError, Settings};
pub use super::table_read::TableFormat;
use super::table_read::{read_rows, Cell};
use super::DataError;

/// How a numeric column is transformed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// As is (default).
    #[default]
    None,
    /// ln(1 + x); values <= -1 are an error.
    Log1p,
    /// (x - mean) / std with the train split's mean and population std
    /// (a constant column becomes 0).
    Standardize,
    /// Train-quantile bins, each an embedding ([`numeric`]).
    Quantile,
    /// Piecewise-linear encoding on train-quantile edges, then a linear map.
    PiecewiseLinear,
    /// Periodic features of the standardized value, then a linear map.
    Periodic,
}

impl Transform {
    /// The encoding this transform asks for; None for the scalar transforms.
    pub fn encoding(self) -> Option<EncodingKind> {
        match self {
            Transform::None | Transform::Log1p | Transform::Standardize => None,
            Transform::Quantile => Some(EncodingKind::Quantile),
            Transform::PiecewiseLinear => Some(EncodingKind::PiecewiseLinear),
            Transform::Periodic => Some(EncodingKind::Periodic),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::Log1p => "log1p",
            Transform::Standardize => "standardize",
            Transform::Quantile => "quantile",
            Transform::PiecewiseLinear => "piecewise-linear",
            Transform::Periodic => "periodic",
        }
    }
}

/// One numeric column. The encoding settings (`bins`, `activation`,
/// `sigma`, `frequencies`, `keep_dense`) apply to the encoded transforms only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericColumn {
    pub column: String,
    #[serde(default)]
    pub transform: Transform,
    /// Quantile bins (quantile, piecewise-linear; default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
    /// After the linear map (piecewise-linear, periodic; default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// Standard deviation of the initial frequencies (periodic; default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// Frequencies (periodic; default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequencies: Option<usize>,
    /// Keep the standardized scalar beside the embedding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_dense: bool,
}

impl NumericColumn {
    pub fn settings(&self) -> Settings {
        Settings {
            bins: self.bins,
            activation: self.activation,
            sigma: self.sigma,
            frequencies: self.frequencies,
            keep_dense: self.keep_dense,
        }
    }

    /// The encoding request of this column (None for a scalar transform),
    /// or the setting that is refused.
    pub fn request(&self, emb_dim: i64) -> Result<Option<Request>, SettingError> {
        let s = self.settings();
        match self.transform.encoding() {
            None => numeric::refuse_on_scalar(self.transform.name(), &s).map(|()| None),
            Some(kind) => {
                let encoding = numeric::resolve(kind, &s)?;
                Ok(Some(Request { encoding, emb_dim, keep_dense: self.keep_dense }))
            }
        }
    }
}

fn default_separator() -> String {
    "|".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiColumn {
    pub column: String,
    /// Separator inside a CSV cell (default "|"); Parquet list columns need none.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Ids kept per row (the first ones); default: the longest train row.
    #[serde(default)]
    pub max_len: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelColumn {
    pub column: String,
    /// Positive when the cell equals this text; without it the cell must be 0 or 1.
    #[serde(default)]
    pub equals: Option<String>,
    /// Task name (default: the column name).
    #[serde(default)]
    pub name: Option<String>,
}

impl LabelColumn {
    pub fn task(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.column)
    }
}

fn default_fraction() -> f64 {
    0.1
}
fn default_split_seed() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSplit {
    #[serde(default = "default_fraction")]
    pub valid: f64,
    #[serde(default = "default_fraction")]
    pub test: f64,
    #[serde(default = "default_split_seed")]
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSplit {
    pub column: String,
    pub train: Vec<String>,
    pub valid: Vec<String>,
    pub test: Vec<String>,
}

/// How rows are split. Default: random, 10% validation, 10% test, seed 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum TableSplit {
    /// Each row independently, by a seeded hash of its position.
    Random(RandomSplit),
    /// By the value of a column; every value must be listed.
    Column(ColumnSplit),
}

impl Default for TableSplit {
    fn default() -> Self {
        TableSplit::Random(RandomSplit { valid: 0.1, test: 0.1, seed: 1 })
    }
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_na() -> Vec<String> {
    vec!["".into(), "NA".into(), "NaN".into(), "null".into()]
}
fn default_emb() -> i64 {
    8
}

/// `[data] kind = "table"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// A .csv, .csv.gz, .tsv or .parquet file (relative to the working directory).
    pub path: PathBuf,
    /// Default: from the file name.
    #[serde(default)]
    pub format: Option<TableFormat>,
    /// CSV field delimiter, one character (default ",").
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    #[serde(default)]
    pub categorical: Vec<String>,
    #[serde(default)]
    pub numeric: Vec<NumericColumn>,
    #[serde(default)]
    pub multi: Vec<MultiColumn>,
    pub labels: Vec<LabelColumn>,
    /// Column identifying the user, for uAUC (optional).
    #[serde(default)]
    pub user: Option<String>,
    /// Cells read as missing (default "", NA, NaN, null): categorical -> the
    /// OOV index 0, numeric or label -> an error.
    #[serde(default = "default_na")]
    pub na_values: Vec<String>,
    #[serde(default)]
    pub split: TableSplit,
    /// Embedding width suggested for every categorical field (default 8).
    #[serde(default = "default_emb")]
    pub emb_dim: i64,
}

fn config_err(key: &str, message: impl Into<String>) -> DataError {
    DataError::Config { key: format!("data.{key}"), message: message.into() }
}

/// The encoding requests of the numeric columns, or the first refused
/// setting as `data.numeric[i].key`.
pub fn numeric_requests(cfg: &TableConfig) -> Result<Vec<Option<Request>>, DataError> {
    cfg.numeric
        .iter()
        .enumerate()
        .map(|(i, n)| n.request(cfg.emb_dim).map_err(|(key, m)| config_err(&format!("numeric[{i}].{key}"), m)))
        .collect()
}

/// Rows read by [`check_numeric_columns`].
const SNIFF_ROWS: usize = 1000;

/// Checks the first rows of the file: a column given an encoding must hold
/// numbers (or missing values). A file that cannot be read is left to the
/// loading, which names it.
pub fn check_numeric_columns(cfg: &TableConfig) -> Result<(), DataError> {
    let encoded: Vec<(usize, &NumericColumn)> = cfg.numeric.iter().enumerate().filter(|(_, n)| n.transform.encoding().is_some()).collect();
    if encoded.is_empty() || cfg.delimiter.len() != 1 || !cfg.path.is_file() {
        return Ok(());
    }
    let columns: Vec<String> = encoded.iter().map(|(_, n)| n.column.clone()).collect();
    let name = cfg.path.to_string_lossy().to_lowercase();
    let parquet = cfg.format == Some(TableFormat::Parquet) || name.ends_with(".parquet") || name.ends_with(".pq");
    let unit = if parquet { "row" } else { "line" };
    let mut seen = 0usize;
    let mut found: Option<DataError> = None;
    // Reading stops at the first bad cell or after SNIFF_ROWS rows; other
    // read errors are the loading's to report.
    let _ = read_rows(&cfg.path, cfg.format, cfg.delimiter.as_bytes()[0], &columns, |line, cells| {
        if seen == SNIFF_ROWS {
            return Err(DataError::File { path: cfg.path.clone(), message: "enough rows read".into() });
        }
        seen += 1;
        for (k, c) in cells.iter().enumerate() {
            let na = matches!(c, Cell::Null) || cfg.na_values.iter().any(|v| Some(v.trim().to_string()) == c.key());
            if !na && c.number().is_none() {
                let (i, n) = encoded[k];
                let message = format!(
                    "`transform = \"{}\"` needs a numeric column, but `{}` of {} holds `{}` ({unit} {line})",
                    n.transform.name(),
                    n.column,
                    cfg.path.display(),
                    c.key().unwrap_or_default()
                );
                found = Some(config_err(&format!("numeric[{i}].column"), message));
                return Err(DataError::File { path: cfg.path.clone(), message: "not numeric".into() });
            }
        }
        Ok(())
    });
    found.map_or(Ok(()), Err)
}

pub(crate) fn validate(cfg: &TableConfig) -> Result<(), DataError> {
    numeric_requests(cfg)?;
    if cfg.labels.is_empty() {
        return Err(config_err("labels", "at least one label column is needed"));
    }
    let mut used: Vec<(&str, &str)> = Vec::new();
    let features = cfg
        .categorical
        .iter()
        .map(|c| (c.as_str(), "categorical"))
        .chain(cfg.numeric.iter().map(|n| (n.column.as_str(), "numeric")))
        .chain(cfg.multi.iter().map(|m| (m.column.as_str(), "multi")));
    for (col, key) in features {
        if let Some((_, other)) = used.iter().find(|(c, _)| *c == col) {
            return Err(config_err(key, format!("column `{col}` is also listed in data.{other}")));
        }
        used.push((col, key));
    }
    let mut tasks: Vec<&str> = Vec::new();
    for l in &cfg.labels {
        if let Some((_, key)) = used.iter().find(|(c, _)| *c == l.column) {
            return Err(config_err("labels", format!("column `{}` is a label and a feature (data.{key}): that leaks the label", l.column)));
        }
        if tasks.contains(&l.task()) {
            return Err(config_err("labels", format!("task name `{}` is used twice", l.task())));
        }
        tasks.push(l.task());
    }
    if cfg.delimiter.len() != 1 {
        return Err(config_err("delimiter", "must be exactly one ASCII character"));
    }
    if let Some(m) = cfg.multi.iter().find(|m| m.separator.is_empty()) {
        return Err(config_err("multi", format!("column `{}`: empty separator", m.column)));
    }
    match &cfg.split {
        TableSplit::Random(r) => {
            if !(0.0..1.0).contains(&r.valid) || !(0.0..1.0).contains(&r.test) || r.valid + r.test >= 1.0 {
                return Err(config_err("split", "valid and test must be fractions in [0, 1) that leave rows for training"));
            }
        }
        TableSplit::Column(c) => {
            for v in &c.train {
                if c.valid.contains(v) || c.test.contains(v) {
                    return Err(config_err("split", format!("value `{v}` is in more than one split")));
                }
            }
            if c.valid.iter().any(|v| c.test.contains(v)) {
                return Err(config_err("split", "valid and test share a value"));
            }
        }
    }
    Ok(())
}
