//! The small tabular dataset of the torch-rechub comparison: 32 categorical
//! fields of width-4 embeddings (vocabularies 8 to 200, as
//! `benches/small_step.rs` has them), 7 numeric columns and binary tasks,
//! generated deterministically from a seed. Why generated: both sides must
//! read the same bytes, and a table of this shape (the size of Adult or
//! Criteo samples) is what a user of a small-model library trains; the
//! labels follow a known logistic model, so that a side that learns shows
//! it in its test AUC.
//!
//! Each row: field values drawn with a skew towards low ids (u² of the
//! vocabulary), numeric columns N(0, 1); task t's logit is a bias plus one
//! effect per (field, value) of standard deviation 0.25 plus a linear term in the numeric
//! columns, of which a part is shared by all tasks (correlated tasks, as
//! in real click / like data); the label is Bernoulli(sigmoid(logit)).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use mtlbench::data::{CategoricalField, FeatureSchema, SplitData};

/// Shape of the generated table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableShape {
    pub fields: usize,
    pub numeric: usize,
    pub tasks: usize,
    pub emb_dim: i64,
}

impl Default for TableShape {
    fn default() -> Self {
        TableShape { fields: 32, numeric: 7, tasks: 2, emb_dim: 4 }
    }
}

/// The generated schema, the train and the test split.
#[derive(Debug, Clone)]
pub struct TableData {
    pub schema: FeatureSchema,
    pub train: SplitData,
    pub test: SplitData,
}

/// Vocabulary of field `i`: 8 to 200.
fn vocab(i: usize) -> i64 {
    8 + (i as i64 * 37) % 193
}

/// The schema of a table of this shape.
pub fn schema(shape: &TableShape) -> FeatureSchema {
    FeatureSchema {
        categorical: (0..shape.fields)
            .map(|i| CategoricalField { name: format!("c{i}"), vocab_size: vocab(i), emb_dim: shape.emb_dim })
            .collect(),
        multi: vec![],
        dense: (0..shape.numeric).map(|i| format!("n{i}")).collect(),
        tasks: (0..shape.tasks).map(|t| format!("t{t}")).collect(),
        numeric: vec![],
    }
}

/// The hidden logistic model the labels follow.
struct Truth {
    /// [field][value][task] effect.
    effects: Vec<Vec<Vec<f64>>>,
    /// [numeric][task] slope.
    slopes: Vec<Vec<f64>>,
    bias: f64,
}

impl Truth {
    fn draw(schema: &FeatureSchema, rng: &mut ChaCha8Rng) -> Truth {
        let tasks = schema.tasks.len();
        let mut correlated = |scale: f64| -> Vec<f64> {
            let shared: f64 = rng.sample(StandardNormal);
            (0..tasks).map(|_| scale * (0.5 * shared + 0.5 * rng.sample::<f64, _>(StandardNormal))).collect()
        };
        let effects = schema
            .categorical
            .iter()
            .map(|f| (0..f.vocab_size).map(|_| correlated(0.35)).collect())
            .collect();
        let slopes = (0..schema.dense.len()).map(|_| correlated(0.4)).collect();
        Truth { effects, slopes, bias: -1.2 }
    }
}

/// `rows` rows of the table from `rng` under `truth`.
fn split(schema: &FeatureSchema, truth: &Truth, rows: usize, rng: &mut ChaCha8Rng) -> SplitData {
    let (nf, nd, nt) = (schema.categorical.len(), schema.dense.len(), schema.tasks.len());
    let mut s = SplitData {
        rows,
        categorical: Vec::with_capacity(rows * nf),
        dense: Vec::with_capacity(rows * nd),
        labels: Vec::with_capacity(rows * nt),
        users: vec![0; rows],
        ..Default::default()
    };
    let mut logit = vec![0.0f64; nt];
    for _ in 0..rows {
        logit.iter_mut().for_each(|l| *l = truth.bias);
        for (f, field) in schema.categorical.iter().enumerate() {
            let u: f64 = rng.gen();
            let v = ((u * u * field.vocab_size as f64) as i64).min(field.vocab_size - 1);
            s.categorical.push(v);
            for (l, e) in logit.iter_mut().zip(&truth.effects[f][v as usize]) {
                *l += e;
            }
        }
        for slopes in &truth.slopes {
            let x: f64 = rng.sample(StandardNormal);
            s.dense.push(x as f32);
            for (l, a) in logit.iter_mut().zip(slopes) {
                *l += a * x;
            }
        }
        for l in &logit {
            let p = 1.0 / (1.0 + (-l).exp());
            s.labels.push((rng.gen::<f64>() < p) as u8 as f32);
        }
    }
    s
}

/// The table: the same `seed` gives the same bytes.
pub fn generate(shape: &TableShape, train_rows: usize, test_rows: usize, seed: u64) -> TableData {
    let schema = schema(shape);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7AB1E);
    let truth = Truth::draw(&schema, &mut rng);
    let train = split(&schema, &truth, train_rows, &mut rng);
    let test = split(&schema, &truth, test_rows, &mut rng);
    TableData { schema, train, test }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_the_schema_fits() {
        let shape = TableShape::default();
        let a = generate(&shape, 500, 100, 3);
        let b = generate(&shape, 500, 100, 3);
        let c = generate(&shape, 500, 100, 4);
        assert_eq!((a.train.categorical.clone(), a.train.labels.clone()), (b.train.categorical, b.train.labels));
        assert_ne!(a.train.categorical, c.train.categorical);
        a.train.check(&a.schema).unwrap();
        a.test.check(&a.schema).unwrap();
        assert_eq!(a.schema.categorical.len(), 32);
        assert_eq!(a.schema.dense.len(), 7);
        assert_eq!(a.schema.categorical[0].vocab_size, 8);
        assert_eq!(a.schema.categorical[5].vocab_size, 8 + 185);
        for (i, f) in a.schema.categorical.iter().enumerate() {
            assert!(a.train.categorical.iter().skip(i).step_by(32).all(|&v| (0..f.vocab_size).contains(&v)));
        }
    }

    #[test]
    fn labels_carry_the_signal_of_the_hidden_model() {
        // The true logit ranks the labels far better than chance: a learner
        // has something to find. Rebuild the truth as `generate` draws it.
        let shape = TableShape::default();
        let schema = schema(&shape);
        let mut rng = ChaCha8Rng::seed_from_u64(1 ^ 0x7AB1E);
        let truth = Truth::draw(&schema, &mut rng);
        let s = split(&schema, &truth, 20_000, &mut rng);
        for t in 0..shape.tasks {
            let scores: Vec<f32> = (0..s.rows)
                .map(|r| {
                    let row = &s.categorical[r * 32..(r + 1) * 32];
                    let cat: f64 = row.iter().enumerate().map(|(f, &v)| truth.effects[f][v as usize][t]).sum();
                    let num: f64 = (0..7).map(|d| truth.slopes[d][t] * s.dense[r * 7 + d] as f64).sum();
                    (cat + num) as f32
                })
                .collect();
            let labels = s.task_labels(t, shape.tasks);
            let rate = labels.iter().sum::<f32>() / s.rows as f32;
            assert!((0.15..0.5).contains(&rate), "task {t}: positive rate {rate}");
            let auc = mtlbench::metrics::auc(&labels, &scores).unwrap();
            assert!(auc > 0.7, "task {t}: AUC of the true logit {auc}");
        }
    }
}
