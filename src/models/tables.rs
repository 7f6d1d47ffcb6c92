//! The input layer's embedding tables, in one of two layouts:
//!
//! - fused (the default): one table per embedding width, the fields of that
//!   width stacked row-wise at fixed offsets. A batch's categorical ids of
//!   one width become one lookup (ids + per-field offsets) and one dense
//!   gradient tensor, instead of one lookup, one gradient and one optimiser
//!   pass per field. On a small tabular model (32 fields of width 4) the
//!   per-field operators dominated the step (docs/performance.md).
//! - per field: one table per field, `emb.{field}.weight`, the layout of a
//!   PyTorch model with one `nn.Embedding` per field.
//!
//! Both draw the same initial values: each field's rows come from its own
//! N(0, 0.05²) draw, in field order, so a fused table holds exactly the
//! rows the per-field tables would hold, and the generator is left in the
//! same state for the layers built after. Gradients stay dense and the
//! optimiser is unchanged (no sparse or lazy updates): the same Adam
//! update of the same rows. [`per_field_variables`] names a fused table's
//! rows as the per-field layout would (the PyTorch reference reads them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};


/// `[models.input] tables`: how the embedding tables are laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableLayout {
    /// One table per embedding width, fields at row offsets.
    #[default]
    Fused,
    /// One table per field.
    PerField,
}

impl TableLayout {
    pub fn is_default(&self) -> bool {
        *self == TableLayout::default()
    }
}

/// The initialisation of every embedding row.
pub const EMB_INIT: nn::Init = nn::Init::Randn { mean: 0.0, stdev: 0.05 };

/// A field that owns embedding rows: its name, vocabulary and width.
#[derive(Debug, Clone, PartialEq)]
pub struct TableField {
    pub name: String,
    pub vocab: i64,
    pub dim: i64,
}

/// Where one field's rows live: table `table`, rows `offset..offset + vocab`.
#[derive(Debug, Clone, PartialEq)]
struct Placement {
    table: usize,
    offset: i64,
}

/// The categorical columns looked up together in one table.
#[derive(Debug)]
struct Group {
    table: usize,
    /// Column indices into the batch's categorical ids; `None` = all of them, in order.
    cols: Option<Tensor>,
    /// Row offset of each column's field in the table, [n] i64; `None` when all are 0.
    offsets: Option<Tensor>,
    n: i64,
    dim: i64,
}

/// The embedding tables of an input layer.
#[derive(Debug)]
pub struct EmbeddingTables {
    layout: TableLayout,
    weights: Vec<Tensor>,
    fields: Vec<TableField>,
    placement: Vec<Placement>,
    /// Fused layout: the categorical lookups, one per width.
    groups: Vec<Group>,
    /// Fused layout: column permutation back to field order when the
    /// groups' concatenation is not already in that order.
    perm: Option<Tensor>,
    /// The first `n_categorical` fields are the batch's categorical columns.
    n_categorical: usize,
}

/// The table each width gets, in order of first appearance, and each field's place.
fn place(fields: &[TableField], layout: TableLayout) -> (Vec<(i64, i64)>, Vec<Placement>) {
    let mut tables: Vec<(i64, i64)> = Vec::new(); // (dim, rows)
    let mut placement = Vec::with_capacity(fields.len());
    for f in fields {
        let found = match layout {
            TableLayout::Fused => tables.iter().position(|&(d, _)| d == f.dim),
            TableLayout::PerField => None,
        };
        let table = found.unwrap_or_else(|| {
            tables.push((f.dim, 0));
            tables.len() - 1
        });
        placement.push(Placement { table, offset: tables[table].1 });
        tables[table].1 += f.vocab;
    }
    (tables, placement)
}

/// The variable path of the table of width `dim` (per field: of `field`'s table).
fn table_path<'a>(vs: &nn::Path<'a>, layout: TableLayout, dim: i64, field: &str) -> nn::Path<'a> {
    match layout {
        TableLayout::Fused => vs / "tables" / format!("d{dim}"),
        TableLayout::PerField => vs / "emb" / field,
    }
}

/// Where one table field's rows are, for code that reads the tables
/// directly (the fused pass).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldRows {
    pub name: String,
    /// Index of its table, its first row there, its vocabulary and width.
    pub table: usize,
    pub offset: i64,
    pub vocab: i64,
    pub dim: i64,
}

impl EmbeddingTables {
    /// Tables under `vs` for `fields` (the first `n_categorical` are the
    /// batch's categorical columns, in order; the rest multi-valued fields
    /// with their own table).
    pub fn new(vs: &nn::Path, fields: Vec<TableField>, n_categorical: usize, layout: TableLayout) -> Self {
        let (tables, placement) = place(&fields, layout);
        // Each field's own draw, in field order, exactly as one table per field draws them.
        let mut parts: Vec<Vec<Tensor>> = tables.iter().map(|_| Vec::new()).collect();
        for (f, p) in fields.iter().zip(&placement) {
            parts[p.table].push(nn::init(EMB_INIT, &[f.vocab, f.dim], vs.device()));
        }
        let weights: Vec<Tensor> = tables
            .iter()
            .zip(parts)
            .enumerate()
            .map(|(t, (&(dim, _), rows))| {
                let owner = fields.iter().zip(&placement).find(|(_, p)| p.table == t).map(|(f, _)| f.name.as_str());
                let path = table_path(vs, layout, dim, owner.unwrap_or_default());
                path.var_copy("weight", &Tensor::cat(&rows, 0))
            })
            .collect();
        let (groups, perm) = match layout {
            TableLayout::Fused => groups(&fields[..n_categorical], &placement[..n_categorical], vs.device()),
            TableLayout::PerField => (vec![], None),
        };
        EmbeddingTables { layout, weights, fields, placement, groups, perm, n_categorical }
    }

    /// The rows of field `name` ([vocab, dim]; a view into a fused table).
    pub fn field_weight(&self, name: &str) -> Option<Tensor> {
        let i = self.fields.iter().position(|f| f.name == name)?;
        Some(self.rows_of(i))
    }

    fn rows_of(&self, i: usize) -> Tensor {
        let p = &self.placement[i];
        self.weights[p.table].narrow(0, p.offset, self.fields[i].vocab)
    }

    /// Categorical ids [B, F] -> the embeddings of every column, in column
    /// order, as parts to concatenate along dimension 1.
    pub fn categorical(&self, ids: &Tensor) -> Vec<Tensor> {
        if self.layout == TableLayout::PerField {
            return (0..self.n_categorical)
                .map(|i| Tensor::embedding(&self.weights[self.placement[i].table], &ids.select(1, i as i64), -1, false, false))
                .collect();
        }
        let parts: Vec<Tensor> = self
            .groups
            .iter()
            .map(|g| {
                let cols = match &g.cols {
                    Some(c) => ids.index_select(1, c),
                    None => ids.shallow_clone(),
                };
                let cols = match &g.offsets {
                    Some(o) => cols + o,
                    None => cols,
                };
                gather_rows(&self.weights[g.table], &cols).view([-1, g.n * g.dim])
            })
            .collect();
        match &self.perm {
            Some(p) => vec![Tensor::cat(&parts, 1).index_select(1, p)],
            None => parts,
        }
    }

    /// Embeddings of ids of field `field` (any shape -> shape + [dim]).
    pub fn lookup(&self, field: usize, ids: &Tensor) -> Tensor {
        let p = &self.placement[field];
        let ids = if p.offset == 0 { ids.shallow_clone() } else { ids + p.offset };
        match self.layout {
            TableLayout::Fused => gather_rows(&self.weights[p.table], &ids),
            TableLayout::PerField => Tensor::embedding(&self.weights[p.table], &ids, -1, false, false),
        }
    }

    /// The tables (shallow clones) and, per categorical field in column
    /// order, where its rows are ([`Self::rows_at`]).
    pub(crate) fn categorical_rows(&self) -> (Vec<Tensor>, Vec<FieldRows>) {
        let fields = (0..self.n_categorical).map(|i| self.rows_at(i)).collect();
        (self.weights.iter().map(Tensor::shallow_clone).collect(), fields)
    }

    /// Where field `field`'s rows are: its name, table index, first row,
    /// vocabulary and width.
    pub(crate) fn rows_at(&self, field: usize) -> FieldRows {
        let (f, p) = (&self.fields[field], &self.placement[field]);
        FieldRows { name: f.name.clone(), table: p.table, offset: p.offset, vocab: f.vocab, dim: f.dim }
    }

    /// The embedding width of field `field`.
    pub fn dim(&self, field: usize) -> i64 {
        self.fields[field].dim
    }

    /// Index of the field that owns `name`'s rows.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// Rows `ids` of `weight` (any shape -> shape + [dim]) by `index_select`
/// on the flattened ids: the values of `embedding`, but a backward pass
/// (`index_add` into a zero gradient) that accumulates in one pass, where
/// libtorch's CPU `embedding` backward dispatches one add kernel per id
/// (32k of them per step for 32 fields at batch 1024). Advanced indexing,
/// `weight[ids]`, gives the same values; its backward (`index_put` with
/// accumulation) took 1.8x as long on the small tabular model
/// (docs/performance.md).
fn gather_rows(weight: &Tensor, ids: &Tensor) -> Tensor {
    let mut shape = ids.size();
    shape.push(weight.size()[1]);
    weight.index_select(0, &ids.reshape([-1])).view(shape.as_slice())
}

/// The fused layout's lookups: one group per table, in order of first
/// appearance, and the permutation back to column order when needed.
fn groups(fields: &[TableField], placement: &[Placement], device: Device) -> (Vec<Group>, Option<Tensor>) {
    let n_tables = placement.iter().map(|p| p.table + 1).max().unwrap_or(0);
    let mut groups = Vec::new();
    // Output column of each embedding element, to find the permutation.
    let mut order: Vec<i64> = Vec::new();
    let starts: Vec<i64> = fields
        .iter()
        .scan(0i64, |s, f| {
            let start = *s;
            *s += f.dim;
            Some(start)
        })
        .collect();
    for t in 0..n_tables {
        let cols: Vec<i64> = (0..fields.len()).filter(|&i| placement[i].table == t).map(|i| i as i64).collect();
        if cols.is_empty() {
            continue;
        }
        let dim = fields[cols[0] as usize].dim;
        let offsets: Vec<i64> = cols.iter().map(|&c| placement[c as usize].offset).collect();
        for &c in &cols {
            order.extend(starts[c as usize]..starts[c as usize] + dim);
        }
        let all = cols.len() == fields.len();
        groups.push(Group {
            table: t,
            cols: (!all).then(|| Tensor::from_slice(&cols).to_device(device)),
            offsets: offsets.iter().any(|&o| o != 0).then(|| Tensor::from_slice(&offsets).to_device(device)),
            n: cols.len() as i64,
            dim,
        });
    }
    let sorted = order.windows(2).all(|w| w[0] < w[1]);
    let perm = (!sorted).then(|| {
        // perm[j] = position in `order` of output column j.
        let mut inv = vec![0i64; order.len()];
        for (pos, &col) in order.iter().enumerate() {
            inv[col as usize] = pos as i64;
        }
        Tensor::from_slice(&inv).to_device(device)
    });
    (groups, perm)
}

/// Where a per-field variable's rows live in the fused layout.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedRows {
    /// The per-field name, `{prefix}emb.{field}.weight`.
    pub field_var: String,
    /// The fused table's name, `{prefix}tables.d{dim}.weight`.
    pub table_var: String,
    pub offset: i64,
    pub rows: i64,
}

/// For each of `fields`, where its rows live when laid out fused under
/// `prefix` (the input layer's path with a trailing dot, `shared.input.`).
pub fn fused_rows(prefix: &str, fields: &[TableField]) -> Vec<FusedRows> {
    let (tables, placement) = place(fields, TableLayout::Fused);
    fields
        .iter()
        .zip(&placement)
        .map(|(f, p)| FusedRows {
            field_var: format!("{prefix}emb.{}.weight", f.name),
            table_var: format!("{prefix}tables.d{}.weight", tables[p.table].0),
            offset: p.offset,
            rows: f.vocab,
        })
        .collect()
}

/// The variables of `vs` with every fused table replaced by its fields'
/// rows under their per-field names (views into the table): the variables
/// a per-field model of the same weights has. `fields` are the input
/// layer's table fields ([`super::input::table_fields`]).
pub fn per_field_variables(
    vs: &nn::VarStore,
    prefix: &str,
    fields: &[TableField],
    layout: TableLayout,
) -> BTreeMap<String, Tensor> {
    let mut vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    if layout == TableLayout::PerField {
        return vars;
    }
    let rows = fused_rows(prefix, fields);
    let tables: BTreeMap<String, Tensor> = rows.iter().filter_map(|r| Some((r.table_var.clone(), vars.remove(&r.table_var)?))).collect();
    for r in rows {
        if let Some(w) = tables.get(&r.table_var) {
            vars.insert(r.field_var, w.narrow(0, r.offset, r.rows));
        }
    }
    vars
}

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;
