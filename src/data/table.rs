//! Any tabular file as a multi-task dataset (`[data] kind = "table"`): a CSV
//! (optionally gzipped) or Parquet file whose columns the grid names as
//! categorical, numeric (with a transform), multi-valued (separated ids) or
//! label columns, split by a column's values or a seeded random fraction.
//! Vocabularies, standardisation statistics and the bin edges of encoded
//! numeric columns ([`super::numeric`]) come from the train split only, so
//! nothing about validation or test rows leaks into the features. The
//! configuration and the checks made when the grid is read are in
//! [`super::table_config`]; this module reads the file and builds the dataset.

use std::collections::HashMap;

use super::numeric;
use super::ragged::{self, Ragged};
use super::schema::{CategoricalField, Dataset, FeatureSchema, MultiField, SplitData};
pub(crate) use super::table_config::validate;
pub use super::table_config::{
    check_numeric_columns, numeric_requests, ColumnSplit, LabelColumn, MultiColumn, NumericColumn, RandomSplit, TableConfig,
    TableFormat, TableSplit, Transform,
};
use super::table_read::{read_rows, Cell};
use super::{cache, DataError};

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

/// The columns `read_raw` asks for, in the order `RawRows::push` reads
/// their cells: categorical, numeric, multi-valued, labels, then the user
/// and the split column where the grid names them.
fn requested_columns(cfg: &TableConfig) -> Vec<String> {
    let mut columns: Vec<String> = cfg.categorical.clone();
    columns.extend(cfg.numeric.iter().map(|n| n.column.clone()));
    columns.extend(cfg.multi.iter().map(|m| m.column.clone()));
    columns.extend(cfg.labels.iter().map(|l| l.column.clone()));
    columns.extend(cfg.user.iter().cloned());
    if let TableSplit::Column(c) = &cfg.split {
        columns.push(c.column.clone());
    }
    columns
}

fn read_raw(cfg: &TableConfig) -> Result<Raw, DataError> {
    let path = &cfg.path;
    let columns = requested_columns(cfg);
    let mut rows = RawRows::new(cfg);
    read_rows(path, cfg.format, cfg.delimiter.as_bytes()[0], &columns, |line, cells| {
        rows.push(cells).map_err(|(k, message)| DataError::Value { path: path.clone(), line, column: columns[k].clone(), message })
    })?;
    Ok(rows.raw)
}

/// The rows read so far and the interners of their provisional ids.
struct RawRows<'c> {
    cfg: &'c TableConfig,
    raw: Raw,
    cat_ix: Vec<Interner>,
    multi_ix: Vec<Interner>,
    user_ix: Interner,
}

/// A bad cell: the index of its column among the requested ones, and what
/// was wrong with it.
type CellError = (usize, String);

impl<'c> RawRows<'c> {
    fn new(cfg: &'c TableConfig) -> Self {
        let (nc, nm) = (cfg.categorical.len(), cfg.multi.len());
        let raw = Raw {
            cat: vec![Vec::new(); nc],
            num: vec![Vec::new(); cfg.numeric.len()],
            multi: vec![(vec![0], Vec::new()); nm],
            labels: vec![Vec::new(); cfg.labels.len()],
            ..Default::default()
        };
        let interners = |n: usize| (0..n).map(|_| Interner::default()).collect();
        RawRows { cfg, raw, cat_ix: interners(nc), multi_ix: interners(nm), user_ix: Interner::default() }
    }

    fn is_na(&self, c: &Cell) -> bool {
        match c {
            Cell::Null => true,
            Cell::Text(t) => self.cfg.na_values.iter().any(|v| v == t.trim()),
            _ => false,
        }
    }

    /// Reads one row's cells (in [`requested_columns`]' order).
    fn push(&mut self, cells: &[Cell]) -> Result<(), CellError> {
        let cfg = self.cfg;
        let (nc, nn, nm, nl) = (cfg.categorical.len(), cfg.numeric.len(), cfg.multi.len(), cfg.labels.len());
        let split = split_of(cfg, self.raw.split.len() as u64, cells)?;
        self.raw.split.push(split);
        for i in 0..nc {
            let c = &cells[i];
            let id = if self.is_na(c) { MISSING } else { self.cat_ix[i].get(&c.key().unwrap_or_default()) };
            self.raw.cat[i].push(id);
        }
        for (i, col) in cfg.numeric.iter().enumerate() {
            let c = &cells[nc + i];
            let x = numeric_value(col, c, self.is_na(c)).map_err(|m| (nc + i, m))?;
            self.raw.num[i].push(x);
        }
        for i in 0..nm {
            let c = &cells[nc + nn + i];
            let items = if self.is_na(c) { Vec::new() } else { c.items(&cfg.multi[i].separator) };
            let (offsets, values) = &mut self.raw.multi[i];
            values.extend(items.iter().map(|s| self.multi_ix[i].get(s)));
            offsets.push(values.len());
        }
        for (i, label) in cfg.labels.iter().enumerate() {
            let k = nc + nn + nm + i;
            let c = &cells[k];
            if self.is_na(c) {
                return Err((k, "missing label".into()));
            }
            self.raw.labels[i].push(label_value(label, c).map_err(|m| (k, m))?);
        }
        if cfg.user.is_some() {
            let c = &cells[nc + nn + nm + nl];
            let id = if self.is_na(c) { MISSING } else { self.user_ix.get(&c.key().unwrap_or_default()) };
            self.raw.user.push(id);
        }
        Ok(())
    }
}

/// The split (0 train, 1 valid, 2 test) of the `row`-th row: a seeded hash
/// of its index, or its split column's value (the last cell).
fn split_of(cfg: &TableConfig, row: u64, cells: &[Cell]) -> Result<u8, CellError> {
    match &cfg.split {
        TableSplit::Random(r) => {
            let u = unit_hash(r.seed, row);
            Ok(if u < r.test {
                2
            } else if u < r.test + r.valid {
                1
            } else {
                0
            })
        }
        TableSplit::Column(c) => {
            let k = cells.len() - 1;
            let v = cells[k].key().unwrap_or_default();
            if c.train.contains(&v) {
                Ok(0)
            } else if c.valid.contains(&v) {
                Ok(1)
            } else if c.test.contains(&v) {
                Ok(2)
            } else {
                Err((k, format!("value `{v}` is in none of data.split.train / valid / test")))
            }
        }
    }
}

/// A numeric cell after its column's transform; a missing one is NaN where
/// the transform encodes missing values and an error elsewhere.
fn numeric_value(col: &NumericColumn, c: &Cell, na: bool) -> Result<f64, String> {
    if na {
        return match col.transform.encoding() {
            Some(_) => Ok(f64::NAN),
            None => Err("missing value in a numeric column (the quantile, piecewise-linear and periodic transforms accept them)".into()),
        };
    }
    let x = c.number().ok_or_else(|| format!("expected a number, found `{}`", c.key().unwrap_or_default()))?;
    match col.transform {
        Transform::Log1p if x <= -1.0 => Err(format!("log1p needs values > -1, found {x}")),
        Transform::Log1p => Ok(x.ln_1p()),
        _ => Ok(x),
    }
}

/// A label cell as 0/1: equal to the column's `equals` value, or a number
/// that is 0 or 1.
fn label_value(label: &LabelColumn, c: &Cell) -> Result<f32, String> {
    match &label.equals {
        Some(v) => Ok((c.key().unwrap_or_default() == *v) as u8 as f32),
        None => match c.number() {
            Some(x) if x == 0.0 || x == 1.0 => Ok(x as f32),
            _ => Err(format!("expected a 0/1 label, found `{}` (or set `equals` in data.labels)", c.key().unwrap_or_default())),
        },
    }
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
