//! Any tabular file as a multi-task dataset (`[data] kind = "table"`): a CSV
//! (optionally gzipped) or Parquet file whose columns the grid names as
//! categorical, numeric (with a transform), multi-valued (separated ids) or
//! label columns, split by a column's values or a seeded random fraction.
//! Vocabularies, standardisation statistics and the bin edges of encoded
//! numeric columns ([`super::numeric`]) come from the train split only, so
//! nothing about validation or test rows leaks into the features.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::numeric::{self, Activation, EncodingKind, Request, SettingError, Settings};
use super::ragged::{self, Ragged};
use super::schema::{CategoricalField, Dataset, FeatureSchema, MultiField, SplitData};
pub use super::table_read::TableFormat;
use super::table_read::{read_rows, Cell};
use super::{cache, DataError};

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

/// Interns raw values in first-appearance order; `u32::MAX` = missing.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn get(&mut self, key: &str) -> u32 {
        let n = self.ids.len() as u32;
        *self.ids.entry(key.to_string()).or_insert(n)
    }
}

const MISSING: u32 = u32::MAX;

/// Everything read from the file before vocabularies and statistics.
#[derive(Default)]
struct Raw {
    split: Vec<u8>,
    cat: Vec<Vec<u32>>,
    num: Vec<Vec<f64>>,
    multi: Vec<(Vec<usize>, Vec<u32>)>,
    labels: Vec<Vec<f32>>,
    user: Vec<u32>,
}

/// A splitmix64 hash of (seed, row) as a uniform number in [0, 1).
fn unit_hash(seed: u64, row: u64) -> f64 {
    let mut z = seed.wrapping_add(row.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn read_raw(cfg: &TableConfig) -> Result<Raw, DataError> {
    let path = &cfg.path;
    let mut columns: Vec<String> = cfg.categorical.clone();
    columns.extend(cfg.numeric.iter().map(|n| n.column.clone()));
    columns.extend(cfg.multi.iter().map(|m| m.column.clone()));
    columns.extend(cfg.labels.iter().map(|l| l.column.clone()));
    let (nc, nn, nm, nl) = (cfg.categorical.len(), cfg.numeric.len(), cfg.multi.len(), cfg.labels.len());
    if let Some(u) = &cfg.user {
        columns.push(u.clone());
    }
    if let TableSplit::Column(c) = &cfg.split {
        columns.push(c.column.clone());
    }
    let mut raw = Raw {
        cat: vec![Vec::new(); nc],
        num: vec![Vec::new(); nn],
        multi: vec![(vec![0], Vec::new()); nm],
        labels: vec![Vec::new(); nl],
        ..Default::default()
    };
    let mut cat_ix: Vec<Interner> = (0..nc).map(|_| Interner::default()).collect();
    let mut multi_ix: Vec<Interner> = (0..nm).map(|_| Interner::default()).collect();
    let mut user_ix = Interner::default();
    let na = &cfg.na_values;
    let is_na = |c: &Cell| match c {
        Cell::Null => true,
        Cell::Text(t) => na.iter().any(|v| v == t.trim()),
        _ => false,
    };
    let mut row: u64 = 0;
    read_rows(path, cfg.format, cfg.delimiter.as_bytes()[0], &columns, |line, cells| {
        let bad = |k: usize, message: String| DataError::Value { path: path.clone(), line, column: columns[k].clone(), message };
        let split = match &cfg.split {
            TableSplit::Random(r) => {
                let u = unit_hash(r.seed, row);
                if u < r.test {
                    2
                } else if u < r.test + r.valid {
                    1
                } else {
                    0
                }
            }
            TableSplit::Column(c) => {
                let k = cells.len() - 1;
                let v = cells[k].key().unwrap_or_default();
                if c.train.contains(&v) {
                    0
                } else if c.valid.contains(&v) {
                    1
                } else if c.test.contains(&v) {
                    2
                } else {
                    return Err(bad(k, format!("value `{v}` is in none of data.split.train / valid / test")));
                }
            }
        };
        row += 1;
        raw.split.push(split);
        for i in 0..nc {
            let c = &cells[i];
            raw.cat[i].push(if is_na(c) { MISSING } else { cat_ix[i].get(&c.key().unwrap_or_default()) });
        }
        for i in 0..nn {
            let k = nc + i;
            let c = &cells[k];
            if is_na(c) {
                if cfg.numeric[i].transform.encoding().is_none() {
                    let m = "missing value in a numeric column (the quantile, piecewise-linear and periodic transforms accept them)";
                    return Err(bad(k, m.into()));
                }
                raw.num[i].push(f64::NAN);
                continue;
            }
            let x = c.number().ok_or_else(|| bad(k, format!("expected a number, found `{}`", c.key().unwrap_or_default())))?;
            let x = match cfg.numeric[i].transform {
                Transform::Log1p if x <= -1.0 => return Err(bad(k, format!("log1p needs values > -1, found {x}"))),
                Transform::Log1p => x.ln_1p(),
                _ => x,
            };
            raw.num[i].push(x);
        }
        for i in 0..nm {
            let c = &cells[nc + nn + i];
            let items = if is_na(c) { Vec::new() } else { c.items(&cfg.multi[i].separator) };
            let (offsets, values) = &mut raw.multi[i];
            values.extend(items.iter().map(|s| multi_ix[i].get(s)));
            offsets.push(values.len());
        }
        for i in 0..nl {
            let k = nc + nn + nm + i;
            let c = &cells[k];
            if is_na(c) {
                return Err(bad(k, "missing label".into()));
            }
            let y = match &cfg.labels[i].equals {
                Some(v) => (c.key().unwrap_or_default() == *v) as u8 as f32,
                None => match c.number() {
                    Some(x) if x == 0.0 || x == 1.0 => x as f32,
                    _ => {
                        return Err(bad(
                            k,
                            format!("expected a 0/1 label, found `{}` (or set `equals` in data.labels)", c.key().unwrap_or_default()),
                        ))
                    }
                },
            };
            raw.labels[i].push(y);
        }
        if cfg.user.is_some() {
            let c = &cells[nc + nn + nm + nl];
            raw.user.push(if is_na(c) { MISSING } else { user_ix.get(&c.key().unwrap_or_default()) });
        }
        Ok(())
    })?;
    Ok(raw)
}

/// Maps provisional ids to train-split vocabulary indices (first appearance
/// in train = index 1; unseen or missing = 0). Returns the map's size + 1.
fn train_vocab(ids: &[u32], split: &[u8], rows_of: impl Fn(usize) -> std::ops::Range<usize>) -> (HashMap<u32, i64>, i64) {
    let mut map = HashMap::new();
    for (r, &s) in split.iter().enumerate() {
        if s != 0 {
            continue;
        }
        for &v in &ids[rows_of(r)] {
            if v != MISSING {
                let n = map.len() as i64 + 1;
                map.entry(v).or_insert(n);
            }
        }
    }
    let size = map.len() as i64 + 1;
    (map, size)
}

/// Loads `[data] kind = "table"`.
pub fn load(cfg: &TableConfig) -> Result<Dataset, DataError> {
    validate(cfg)?;
    let digest_in = cache::file_digest(&cfg.path)?;
    let raw = read_raw(cfg)?;
    let rows = raw.split.len();
    let names = ["train", "validation", "test"];
    for (k, name) in names.iter().enumerate() {
        if !raw.split.contains(&(k as u8)) {
            return Err(DataError::EmptySplit {
                split: (*name).into(),
                message: format!("{} ({} rows) has none for it (key data.split)", cfg.path.display(), rows),
            });
        }
    }
    let mut schema = FeatureSchema { categorical: vec![], multi: vec![], dense: vec![], tasks: vec![], numeric: vec![] };
    let mut cat_maps = Vec::new();
    for (i, name) in cfg.categorical.iter().enumerate() {
        let (map, size) = train_vocab(&raw.cat[i], &raw.split, |r| r..r + 1);
        schema.categorical.push(CategoricalField { name: name.clone(), vocab_size: size, emb_dim: cfg.emb_dim });
        cat_maps.push(map);
    }
    let mut multi_maps = Vec::new();
    for (i, m) in cfg.multi.iter().enumerate() {
        let (offsets, values) = &raw.multi[i];
        let (map, size) = train_vocab(values, &raw.split, |r| offsets[r]..offsets[r + 1]);
        let longest = (0..rows).filter(|&r| raw.split[r] == 0).map(|r| offsets[r + 1] - offsets[r]).max().unwrap_or(0);
        let max_len = m.max_len.unwrap_or(longest).max(1);
        ragged::id_i32(size).map_err(|e| DataError::Config { key: format!("data.multi ({})", m.column), message: e.to_string() })?;
        schema.multi.push(MultiField { name: m.column.clone(), vocab_size: size, emb_dim: cfg.emb_dim, max_len, shares_table_with: None });
        multi_maps.push(map);
    }
    let mut scale = Vec::new();
    for (i, n) in cfg.numeric.iter().enumerate() {
        schema.dense.push(n.column.clone());
        scale.push(match n.transform {
            Transform::Standardize => {
                let train: Vec<f64> = (0..rows).filter(|&r| raw.split[r] == 0).map(|r| raw.num[i][r]).collect();
                let mean = train.iter().sum::<f64>() / train.len() as f64;
                let var = train.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / train.len() as f64;
                let sd = var.sqrt();
                (mean, if sd > 0.0 { sd } else { 1.0 })
            }
            _ => (0.0, 1.0),
        });
    }
    schema.tasks = cfg.labels.iter().map(|l| l.task().to_string()).collect();
    let empty = || SplitData { multi: vec![Ragged::new(); cfg.multi.len()], ..Default::default() };
    let mut splits = [empty(), empty(), empty()];
    for r in 0..rows {
        let s = &mut splits[raw.split[r] as usize];
        s.rows += 1;
        for (i, map) in cat_maps.iter().enumerate() {
            s.categorical.push(map.get(&raw.cat[i][r]).copied().unwrap_or(0));
        }
        for (i, map) in multi_maps.iter().enumerate() {
            let (offsets, values) = &raw.multi[i];
            let max_len = schema.multi[i].max_len;
            let items = &values[offsets[r]..offsets[r + 1]];
            let items = &items[..items.len().min(max_len)];
            // Ids fit i32: the vocabulary size was checked above.
            let ids: Vec<i32> = items.iter().map(|v| map.get(v).map_or(0, |&id| id as i32)).collect();
            s.multi[i].push_own(&ids).map_err(|e| DataError::Config { key: "data.multi".into(), message: e.to_string() })?;
        }
        for (i, &(mean, sd)) in scale.iter().enumerate() {
            s.dense.push(((raw.num[i][r] - mean) / sd) as f32);
        }
        for l in &raw.labels {
            s.labels.push(l[r]);
        }
        s.users.push(raw.user.get(r).map_or(0, |&u| if u == MISSING { 0 } else { u as i64 + 1 }));
    }
    let requests = numeric_requests(cfg)?;
    let [mut train, mut valid, mut test] = splits;
    numeric::apply(&mut schema, [&mut train, &mut valid, &mut test], &requests);
    let cfg_json = serde_json::to_string(cfg).unwrap_or_default();
    let digest = cache::key_of(&["table-v1", &digest_in, &cfg_json])[..16].to_string();
    let digest = numeric::digest_with(digest, &schema.numeric);
    let name = format!("table ({})", cfg.path.display());
    Ok(Dataset { name, schema, train, valid, test, digest })
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
