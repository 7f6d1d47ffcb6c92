//! The input layer shared by every model: the categorical fields' embeddings
//! (tables laid out by [`super::tables`]: one per width by default),
//! mean-pooled multi-valued fields (the tag list, and the history sequence
//! pooled through the feedid rows; ragged ids summed by segment), the
//! embeddings of encoded numeric columns ([`super::numeric_embed`]), and the
//! dense features, concatenated into one vector per row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::numeric_embed::NumericEmbedding;
use super::tables::{EmbeddingTables, FieldRows, TableField, TableLayout};
use super::ModelError;
use crate::data::{Batch, FeatureSchema, MultiBatch};

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
    /// Embedding table layout: "fused" (default; one table per width) or
    /// "per-field". Same initial values and the same training up to float
    /// rounding; fused runs fewer operators per step.
    #[serde(default, skip_serializing_if = "TableLayout::is_default")]
    pub tables: TableLayout,
}

/// Embeddings + pooling + dense features -> [B, out_dim].
#[derive(Debug)]
pub struct InputLayer {
    tables: EmbeddingTables,
    /// For each multi-valued field: the table field whose rows it is pooled through.
    multi_table: Vec<usize>,
    /// The multi-valued fields' names, in batch order.
    multi_names: Vec<String>,
    /// One per encoded numeric column, in schema order.
    numeric: Vec<NumericEmbedding>,
    /// Number of dense columns (the first of the input vector).
    dense: usize,
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
        let plan = table_fields(schema, cfg)?;
        let n_cat = schema.categorical.len();
        let tables = EmbeddingTables::new(vs, plan.fields, n_cat, cfg.tables);
        let mut numeric = Vec::new();
        for f in &schema.numeric {
            let d = dim(cfg, &f.name, f.emb_dim);
            numeric.push(NumericEmbedding::new(&(vs / "num" / f.name.as_str()), f, d));
        }
        let multi_names = schema.multi.iter().map(|f| f.name.clone()).collect();
        Ok(InputLayer { tables, multi_table: plan.multi_table, multi_names, numeric, dense: schema.dense.len(), out_dim: plan.out_dim })
    }

    /// The rows of the table field `name` (a categorical field or a
    /// multi-valued field with its own table), [vocab, dim].
    pub fn field_weight(&self, name: &str) -> Option<Tensor> {
        self.tables.field_weight(name)
    }

    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    /// Number of dense columns, the first of the input vector.
    pub(crate) fn dense_width(&self) -> usize {
        self.dense
    }

    /// Whether the input has encoded numeric columns.
    pub(crate) fn has_numeric(&self) -> bool {
        !self.numeric.is_empty()
    }

    /// The tables and, per categorical field in column order, where its
    /// rows are ([`EmbeddingTables::categorical_rows`]).
    pub(crate) fn categorical_rows(&self) -> (Vec<Tensor>, Vec<FieldRows>) {
        self.tables.categorical_rows()
    }

    /// Per multi-valued field in batch order, its name and the rows it is
    /// pooled through (its own table field's, or those of the field it shares).
    pub(crate) fn pooled_rows(&self) -> Vec<(String, FieldRows)> {
        self.multi_names.iter().cloned().zip(self.multi_table.iter().map(|&t| self.tables.rows_at(t))).collect()
    }

    pub fn forward(&self, batch: &Batch) -> Tensor {
        let mut parts = Vec::with_capacity(self.multi_table.len() + self.numeric.len() + 8);
        parts.push(batch.dense.shallow_clone());
        parts.extend(self.tables.categorical(&batch.categorical));
        for (&t, m) in self.multi_table.iter().zip(&batch.multi) {
            parts.push(self.pool(t, m, batch.size()));
        }
        for (emb, block) in self.numeric.iter().zip(&batch.numeric) {
            parts.push(emb.forward(block));
        }
        Tensor::cat(&parts, 1)
    }
}

impl InputLayer {
    /// The mean of each row's embeddings of `m`'s ids through table field
    /// `t` ([rows, d]; 0 for a row without ids): a segment sum of the
    /// gathered rows over the rows of the ids, divided by the counts.
    fn pool(&self, t: usize, m: &MultiBatch, rows: i64) -> Tensor {
        let emb = self.tables.lookup(t, &m.ids); // [n, d]
        let d = self.tables.dim(t);
        let summed = Tensor::zeros([rows, d], (emb.kind(), emb.device())).index_add(0, &m.rows, &emb);
        summed / m.counts.clamp_min(1.0).unsqueeze(1)
    }
}

/// The embedding width of field `name`: its override or the schema's.
fn dim(cfg: &InputConfig, name: &str, default: i64) -> i64 {
    cfg.emb_dims.get(name).copied().unwrap_or(default)
}

/// The fields that own embedding rows and how the input vector is made of them.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The categorical fields (in schema order), then the multi-valued
    /// fields with their own table.
    pub fields: Vec<TableField>,
    /// For each multi-valued field: index into `fields` of the rows it pools.
    pub multi_table: Vec<usize>,
    /// Width of the input vector (numeric embeddings included).
    pub out_dim: i64,
}

/// The table fields of `schema` under `cfg` (no variables are made).
pub fn table_fields(schema: &FeatureSchema, cfg: &InputConfig) -> Result<TablePlan, ModelError> {
    let mut fields = Vec::new();
    let mut out_dim = schema.dense.len() as i64;
    for f in &schema.categorical {
        let d = dim(cfg, &f.name, f.emb_dim);
        fields.push(TableField { name: f.name.clone(), vocab: f.vocab_size, dim: d });
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
                out_dim += fields[i].dim;
            }
            None => {
                let d = dim(cfg, &f.name, f.emb_dim);
                fields.push(TableField { name: f.name.clone(), vocab: f.vocab_size, dim: d });
                multi_table.push(fields.len() - 1);
                out_dim += d;
            }
        }
    }
    out_dim += schema.numeric.iter().map(|f| dim(cfg, &f.name, f.emb_dim)).sum::<i64>();
    Ok(TablePlan { fields, multi_table, out_dim })
}

/// The variables of a model's VarStore as a per-field model names them
/// (`shared.input.emb.{field}.weight`; views into fused tables), for
/// exchanging weights with a model that has one table per field.
pub fn per_field_variables(
    vs: &nn::VarStore,
    schema: &FeatureSchema,
    cfg: &InputConfig,
) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let plan = table_fields(schema, cfg)?;
    Ok(super::tables::per_field_variables(vs, "shared.input.", &plan.fields, cfg.tables))
}
