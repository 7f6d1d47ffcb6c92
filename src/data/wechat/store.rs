//! The cached form of the WeChat features: `features.parquet` (one row per
//! action of the target days: date_, the six categorical indices, the 16
//! dense features, the seven labels, and for each list column its list
//! index `{column}_list`), one Parquet file per list column,
//! `{column}.parquet`, holding each distinct list once (row k = list k; a
//! history is shared by a user's actions of one day, tags by a feed's), and
//! `meta.json` (ETL version, input digests, vocabularies: the raw id of
//! index i + 1 is `vocab[field][i]`). Any Parquet reader opens the tables;
//! a row's list is row `{column}_list` of `{column}.parquet`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::etl::{dense_names, ListColumn, Vocab, WechatFeatures, CATEGORICAL, HISTORY_LEN, WINDOW};
use crate::data::ragged::Ragged;
use super::ACTIONS;
use crate::data::parquet_io::{read_table, write_table, Column, ColumnRef};
use crate::data::DataError;

pub const FEATURES_FILE: &str = "features.parquet";
pub const META_FILE: &str = "meta.json";
pub const HISTORY_COLUMN: &str = "his_read_comment_7d_seq";
pub const TAGS_COLUMN: &str = "manual_tag_list";

/// `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub etl_version: String,
    /// Content digests of the inputs, by file name.
    pub inputs: Vec<(String, String)>,
    pub rows: usize,
    pub window_days: u8,
    pub history_len: usize,
    /// Vocabularies by field name (`manual_tag_id` for the tags).
    pub vocab: Vec<(String, Vec<i64>)>,
}

/// The features.parquet column with each row's list of `column`.
pub fn list_index_column(column: &str) -> String {
    format!("{column}_list")
}

/// The file holding the distinct lists of `column`.
pub fn lists_file(column: &str) -> String {
    format!("{column}.parquet")
}

/// Each row's list index of `r` as i32 (the Parquet column's type).
fn list_index(path: &Path, column: &str, r: &Ragged) -> Result<Vec<i32>, DataError> {
    r.row_list
        .iter()
        .map(|&k| i32::try_from(k))
        .collect::<Result<_, _>>()
        .map_err(|_| DataError::File { path: path.to_path_buf(), message: format!("`{column}` has more than 2^31 distinct lists") })
}

/// The lists of `column` and the rows' indices into them, checked.
fn read_lists(dir: &Path, column: &str, rows: Vec<i32>) -> Result<Ragged, DataError> {
    let path = dir.join(lists_file(column));
    let bad = |message: String| DataError::File { path: path.clone(), message };
    let lists = match read_table(&path)?.into_iter().find(|(n, _)| n == column) {
        Some((_, Column::ListI32 { offsets, values })) => ListColumn { offsets, values },
        Some(_) => return Err(bad(format!("column `{column}` is not a list of i32"))),
        None => return Err(bad(format!("no column `{column}`"))),
    };
    lists.check().map_err(&bad)?;
    let n = lists.len();
    let row_list = rows
        .iter()
        .enumerate()
        .map(|(r, &k)| {
            u32::try_from(k).ok().filter(|&k| (k as usize) < n).ok_or_else(|| {
                bad(format!("row {r} of {FEATURES_FILE} names list {k} of `{column}`; there are {n}"))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Ragged { lists, row_list })
}

/// Writes the features into `dir`.
pub fn write(dir: &Path, f: &WechatFeatures, etl_version: &str, inputs: &[(String, String)]) -> Result<(), DataError> {
    let names = dense_names();
    let mut cols: Vec<(&str, ColumnRef<'_>)> = vec![("date_", ColumnRef::I32(&f.day))];
    for (name, c) in CATEGORICAL.iter().zip(&f.categorical) {
        cols.push((name, ColumnRef::I32(c)));
    }
    for (name, c) in names.iter().zip(&f.dense) {
        cols.push((name, ColumnRef::F32(c)));
    }
    for (name, c) in ACTIONS.iter().zip(&f.actions) {
        cols.push((name, ColumnRef::I32(c)));
    }
    let path = dir.join(FEATURES_FILE);
    let index: Vec<(String, Vec<i32>)> = [(HISTORY_COLUMN, &f.history), (TAGS_COLUMN, &f.tags)]
        .into_iter()
        .map(|(name, r)| Ok((list_index_column(name), list_index(&path, name, r)?)))
        .collect::<Result<_, DataError>>()?;
    for (name, v) in &index {
        cols.push((name, ColumnRef::I32(v)));
    }
    write_table(&path, &cols, 1 << 20)?;
    for (name, r) in [(HISTORY_COLUMN, &f.history), (TAGS_COLUMN, &f.tags)] {
        let lists = ColumnRef::ListI32 { offsets: &r.lists.offsets, values: &r.lists.values };
        write_table(&dir.join(lists_file(name)), &[(name, lists)], 1 << 20)?;
    }
    let mut vocab: Vec<(String, Vec<i64>)> = CATEGORICAL.iter().zip(&f.vocabs).map(|(n, v)| (n.to_string(), v.ids.clone())).collect();
    vocab.push(("manual_tag_id".into(), f.tag_vocab.ids.clone()));
    let meta = Meta {
        etl_version: etl_version.into(),
        inputs: inputs.to_vec(),
        rows: f.rows(),
        window_days: WINDOW,
        history_len: HISTORY_LEN,
        vocab,
    };
    let path = dir.join(META_FILE);
    let text = serde_json::to_string(&meta).map_err(|e| DataError::File { path: path.clone(), message: e.to_string() })?;
    std::fs::write(&path, text).map_err(|source| DataError::Io { path, cause: source })
}

/// Reads features written by [`write`].
pub fn read(dir: &Path) -> Result<(WechatFeatures, Meta), DataError> {
    let meta_path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).map_err(|source| DataError::Io { path: meta_path.clone(), cause: source })?;
    let meta: Meta = serde_json::from_str(&text).map_err(|e| DataError::File { path: meta_path.clone(), message: e.to_string() })?;
    let path = dir.join(FEATURES_FILE);
    let mut cols: std::collections::HashMap<String, Column> = read_table(&path)?.into_iter().collect();
    let mut take = |name: &str| {
        cols.remove(name).ok_or_else(|| DataError::File { path: path.clone(), message: format!("cached features lack column `{name}`") })
    };
    let bad = |name: &str| DataError::File { path: path.clone(), message: format!("cached column `{name}` has the wrong type") };
    let int = |c: Column, name: &str| if let Column::I32(v) = c { Ok(v) } else { Err(bad(name)) };
    let mut f = WechatFeatures { day: int(take("date_")?, "date_")?, ..Default::default() };
    for name in CATEGORICAL {
        f.categorical.push(int(take(name)?, name)?);
    }
    for name in dense_names() {
        match take(&name)? {
            Column::F32(v) => f.dense.push(v),
            _ => return Err(bad(&name)),
        }
    }
    for name in ACTIONS {
        f.actions.push(int(take(name)?, name)?);
    }
    for (name, slot) in [(HISTORY_COLUMN, &mut f.history), (TAGS_COLUMN, &mut f.tags)] {
        let index = list_index_column(name);
        let rows = int(take(&index)?, &index)?;
        *slot = read_lists(dir, name, rows)?;
    }
    let vocab_of = |name: &str| {
        meta.vocab
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ids)| Vocab::from_ids(ids.clone()))
            .ok_or_else(|| DataError::File { path: meta_path.clone(), message: format!("no vocabulary for `{name}`") })
    };
    for name in CATEGORICAL {
        f.vocabs.push(vocab_of(name)?);
    }
    f.tag_vocab = vocab_of("manual_tag_id")?;
    if f.rows() != meta.rows {
        return Err(DataError::File { path, message: format!("{} rows, meta.json says {}", f.rows(), meta.rows) });
    }
    Ok((f, meta))
}
