//! The feature schema every data source yields, and the in-memory columns of
//! one split. Models are built from the schema alone, so any source (WeChat
//! ETL, synthetic, CSV table) plugs into every model.

use serde::{Deserialize, Serialize};

pub use super::numeric::NumericField;
use super::ragged::Ragged;

/// A single-valued categorical field. Index 0 is reserved for out-of-vocabulary
/// or missing values, so `vocab_size` counts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalField {
    pub name: String,
    pub vocab_size: i64,
    /// Suggested embedding width (the model config may override it).
    pub emb_dim: i64,
}

/// A multi-valued categorical field (tag list, history sequence), at most
/// `max_len` ids per row, stored once per distinct list ([`Ragged`]).
/// Index 0 is out-of-vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiField {
    pub name: String,
    pub vocab_size: i64,
    pub emb_dim: i64,
    pub max_len: usize,
    /// When set, the field is pooled through this categorical field's
    /// embedding table (the history sequence shares the feedid table).
    pub shares_table_with: Option<String>,
}

/// What a dataset offers the model: its fields and its binary tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub categorical: Vec<CategoricalField>,
    pub multi: Vec<MultiField>,
    pub dense: Vec<String>,
    pub tasks: Vec<String>,
    /// Encoded numeric columns (quantile, piecewise-linear, periodic) with
    /// their train-split edges; embedded by the input layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numeric: Vec<NumericField>,
}

impl FeatureSchema {
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t == name)
    }
    pub fn categorical_index(&self, name: &str) -> Option<usize> {
        self.categorical.iter().position(|f| f.name == name)
    }
}

/// Column-major in-memory data of one split, laid out row-major per block so
/// that each block becomes one tensor without copying row by row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitData {
    pub rows: usize,
    /// rows x n_categorical, row-major.
    pub categorical: Vec<i64>,
    /// One per multi-valued field: its distinct lists and each row's list.
    pub multi: Vec<Ragged>,
    /// rows x n_dense, row-major.
    pub dense: Vec<f32>,
    /// rows x n_tasks, row-major, 0.0 or 1.0.
    pub labels: Vec<f32>,
    /// The user of each row, for uAUC (0 when the source has no users).
    pub users: Vec<i64>,
    /// rows x n_numeric, row-major: the bin id of each encoded numeric
    /// column (0 = missing); see [`super::numeric::NumericField::encode`].
    pub numeric_ids: Vec<i64>,
    /// rows x n_numeric, row-major: the position inside the bin, or the
    /// standardized value (periodic).
    pub numeric_values: Vec<f32>,
}

impl SplitData {
    /// Labels of one task as a vector.
    pub fn task_labels(&self, task: usize, n_tasks: usize) -> Vec<f32> {
        (0..self.rows).map(|r| self.labels[r * n_tasks + task]).collect()
    }

    /// Checks that every block has the length the schema implies.
    pub fn check(&self, schema: &FeatureSchema) -> Result<(), String> {
        let n = self.rows;
        let want = |what: &str, got: usize, exp: usize| {
            if got == exp {
                Ok(())
            } else {
                Err(format!("{what}: {got} values, expected {exp}"))
            }
        };
        want("categorical", self.categorical.len(), n * schema.categorical.len())?;
        want("dense", self.dense.len(), n * schema.dense.len())?;
        want("labels", self.labels.len(), n * schema.tasks.len())?;
        want("users", self.users.len(), n)?;
        want("encoded numeric ids", self.numeric_ids.len(), n * schema.numeric.len())?;
        want("encoded numeric values", self.numeric_values.len(), n * schema.numeric.len())?;
        want("multi-valued fields", self.multi.len(), schema.multi.len())?;
        for (f, m) in schema.multi.iter().zip(&self.multi) {
            m.check(n, f.max_len).map_err(|e| format!("{}: {e}", f.name))?;
        }
        Ok(())
    }
}

/// A dataset ready for training: schema, the three splits and a digest that
/// identifies its content (part of every cell key).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub schema: FeatureSchema,
    pub train: SplitData,
    pub valid: SplitData,
    pub test: SplitData,
    pub digest: String,
}
