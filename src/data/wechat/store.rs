//! The cached form of the WeChat features: `features.parquet` (one row per
//! action of the target days: date_, the six categorical indices, the 16
//! dense features, the seven labels, and the two list columns) and
//! `meta.json` (ETL version, input digests, vocabularies: the raw id of
//! index i + 1 is `vocab[field][i]`). Any Parquet reader opens the table.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::etl::{dense_names, ListColumn, Vocab, WechatFeatures, CATEGORICAL, HISTORY_LEN, WINDOW};
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
    cols.push((HISTORY_COLUMN, ColumnRef::ListI32 { offsets: &f.history.offsets, values: &f.history.values }));
    cols.push((TAGS_COLUMN, ColumnRef::ListI32 { offsets: &f.tags.offsets, values: &f.tags.values }));
    write_table(&dir.join(FEATURES_FILE), &cols, 1 << 20)?;
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
        match take(name)? {
            Column::ListI32 { offsets, values } => *slot = ListColumn { offsets, values },
            _ => return Err(bad(name)),
        }
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
