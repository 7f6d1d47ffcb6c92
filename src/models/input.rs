//! The input layer shared by every model: one embedding table per
//! categorical field, mean-pooled multi-valued fields (the tag list, and the
//! history sequence pooled through the feedid table), the embeddings of
//! encoded numeric columns ([`super::numeric_embed`]), and the dense
//! features, concatenated into one vector per row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::numeric_embed::NumericEmbedding;
use super::ModelError;
use crate::data::{Batch, FeatureSchema};

/// `[models.input]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Embedding width per field name; fields not listed use the dataset's
    /// default (docs/reference.md: userid 16, feedid 16, device 2, authorid 4,
    /// bgm_song_id 4, bgm_singer_id 4, manual_tag 4; an encoded numeric
    /// column: the data's `emb_dim`).
    #[serde(default)]
    pub emb_dims: BTreeMap<String, i64>,
}

/// Embeddings + pooling + dense features -> [B, out_dim].
#[derive(Debug)]
pub struct InputLayer {
    tables: Vec<nn::Embedding>,
    /// For each multi-valued field: index into `tables`.
    multi_table: Vec<usize>,
    /// One per encoded numeric column, in schema order.
    numeric: Vec<NumericEmbedding>,
    out_dim: i64,
}

impl InputConfig {
    /// What can be checked without the dataset: every width is positive.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self.emb_dims.iter().find(|(_, &d)| d <= 0) {
            Some((name, d)) => Err(ModelError::Config {
                key: format!("models.input.emb_dims.{name}"),
                message: format!("must be a positive width, got {d}"),
            }),
            None => Ok(()),
        }
    }
}

impl InputLayer {
    pub fn new(vs: &nn::Path, schema: &FeatureSchema, cfg: &InputConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        for name in cfg.emb_dims.keys() {
            let key = || format!("models.input.emb_dims.{name}");
            let multi = schema.multi.iter().find(|f| &f.name == name);
            let known = schema.categorical.iter().any(|f| &f.name == name)
                || multi.is_some()
                || schema.numeric.iter().any(|f| &f.name == name);
            if !known {
                let mut valid: Vec<&str> = schema.categorical.iter().map(|f| f.name.as_str()).collect();
                valid.extend(schema.multi.iter().filter(|f| f.shares_table_with.is_none()).map(|f| f.name.as_str()));
                valid.extend(schema.numeric.iter().map(|f| f.name.as_str()));
                return Err(ModelError::Config {
                    key: key(),
                    message: format!("no such field in the dataset; fields: {}", valid.join(", ")),
                });
            }
            if let Some(other) = multi.and_then(|f| f.shares_table_with.as_ref()) {
                return Err(ModelError::Config {
                    key: key(),
                    message: format!("`{name}` is pooled through the `{other}` table; set emb_dims.{other} instead"),
                });
            }
        }
        let dim = |name: &str, default: i64| cfg.emb_dims.get(name).copied().unwrap_or(default);
        let mut tables = Vec::new();
        let mut out_dim = schema.dense.len() as i64;
        let emb_cfg = nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.05 }, ..Default::default() };
        for f in &schema.categorical {
            let d = dim(&f.name, f.emb_dim);
            tables.push(nn::embedding(vs / "emb" / f.name.as_str(), f.vocab_size, d, emb_cfg));
            out_dim += d;
        }
        let mut multi_table = Vec::new();
        for f in &schema.multi {
            match &f.shares_table_with {
                Some(other) => {
                    let i = schema.categorical_index(other).ok_or_else(|| ModelError::Config {
                        key: format!("data.{}", f.name),
                        message: format!("shares the table of `{other}`, which is not a categorical field"),
                    })?;
                    let table_vocab = schema.categorical[i].vocab_size;
                    if f.vocab_size > table_vocab {
                        return Err(ModelError::Config {
                            key: format!("data.{}", f.name),
                            message: format!(
                                "vocabulary of {} ids does not fit the `{other}` table it shares ({table_vocab} ids)",
                                f.vocab_size
                            ),
                        });
                    }
                    multi_table.push(i);
                    out_dim += dim(other, schema.categorical[i].emb_dim);
                }
                None => {
                    let d = dim(&f.name, f.emb_dim);
                    tables.push(nn::embedding(vs / "emb" / f.name.as_str(), f.vocab_size, d, emb_cfg));
                    multi_table.push(tables.len() - 1);
                    out_dim += d;
                }
            }
        }
        let mut numeric = Vec::new();
        for f in &schema.numeric {
            let d = dim(&f.name, f.emb_dim);
            numeric.push(NumericEmbedding::new(&(vs / "num" / f.name.as_str()), f, d));
            out_dim += d;
        }
        Ok(InputLayer { tables, multi_table, numeric, out_dim })
    }

    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    pub fn forward(&self, batch: &Batch) -> Tensor {
        let mut parts = Vec::with_capacity(self.tables.len() + self.numeric.len() + 2);
        parts.push(batch.dense.shallow_clone());
        let n_cat = batch.categorical.size()[1];
        for i in 0..n_cat {
            let ids = batch.categorical.select(1, i);
            parts.push(ids.apply(&self.tables[i as usize]));
        }
        for (j, &t) in self.multi_table.iter().enumerate() {
            let ids = &batch.multi_ids[j];
            let mask = &batch.multi_mask[j];
            let emb = ids.apply(&self.tables[t]); // [B, L, d]
            let summed = (emb * mask.unsqueeze(-1)).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
            let count = mask.sum_dim_intlist([1i64].as_slice(), true, Kind::Float).clamp_min(1.0);
            parts.push(summed / count);
        }
        for (emb, block) in self.numeric.iter().zip(&batch.numeric) {
            parts.push(emb.forward(block));
        }
        Tensor::cat(&parts, 1)
    }
}
