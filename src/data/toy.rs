//! A small, fast synthetic multi-task dataset (`kind = "toy"`): users and
//! items with latent factors, tasks that share part of their signal. It
//! exists so that the whole pipeline can be exercised in seconds; the
//! realistic WeChat-shaped generator is `synthetic-wechat`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::schema::{CategoricalField, Dataset, FeatureSchema, SplitData};
use super::DataError;

/// Fewest rows a toy dataset may have: rows go to train, validation and
/// test with chances 0.8, 0.1 and 0.1, so with fewer a split is too likely
/// to be empty (at 100 rows the chance that one is: about 5e-5).
pub const MIN_ROWS: usize = 100;

fn default_rows() -> usize {
    20_000
}
fn default_users() -> usize {
    500
}
fn default_items() -> usize {
    800
}
fn default_tasks() -> Vec<String> {
    vec!["click".into(), "like".into()]
}
fn default_seed() -> u64 {
    7
}
fn default_relatedness() -> f64 {
    0.7
}

/// `[data] kind = "toy"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToyConfig {
    /// Total rows over the three splits (80/10/10).
    #[serde(default = "default_rows")]
    pub rows: usize,
    #[serde(default = "default_users")]
    pub users: usize,
    #[serde(default = "default_items")]
    pub items: usize,
    /// Task names; each gets its own label column.
    #[serde(default = "default_tasks")]
    pub tasks: Vec<String>,
    /// Seed of the data itself (independent of the run seed).
    #[serde(default = "default_seed")]
    pub data_seed: u64,
    /// 0 = unrelated tasks, 1 = the same latent signal for every task.
    #[serde(default = "default_relatedness")]
    pub relatedness: f64,
    /// Funnel mode (default off): the second task is a conversion step of
    /// the first, as purchase after click: its label is 1 only where the
    /// first task's label is 1, so ESMM and CTnoCVR see a consistent funnel.
    #[serde(default)]
    pub funnel: bool,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig {
            rows: default_rows(),
            users: default_users(),
            items: default_items(),
            tasks: default_tasks(),
            data_seed: default_seed(),
            relatedness: default_relatedness(),
            funnel: false,
        }
    }
}

impl ToyConfig {
    /// Range checks, before anything is generated; errors name the key.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |key: &str, message: String| Err(DataError::Config { key: format!("data.{key}"), message });
        if self.tasks.is_empty() {
            return bad("tasks", "at least one task is needed".into());
        }
        if self.funnel && self.tasks.len() < 2 {
            return bad("funnel", format!("needs a click task and a conversion task, got tasks {:?}", self.tasks));
        }
        if self.rows < MIN_ROWS {
            return bad("rows", format!("must be at least {MIN_ROWS} (rows are split 80/10/10 into train, validation and test), got {}", self.rows));
        }
        if self.users < 2 || self.items < 2 {
            let (key, n) = if self.users < 2 { ("users", self.users) } else { ("items", self.items) };
            return bad(key, format!("must be at least 2, got {n}"));
        }
        if !(0.0..=1.0).contains(&self.relatedness) {
            return bad("relatedness", format!("must lie in [0, 1] (0: unrelated tasks, 1: one shared signal), got {}", self.relatedness));
        }
        Ok(())
    }
}

const K: usize = 4;
const CATEGORIES: usize = 16;

fn normal_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// Generates the dataset; same config, same bytes.
pub fn generate(cfg: &ToyConfig) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.data_seed);
    let users = cfg.users.max(2);
    let items = cfg.items.max(2);
    let n_tasks = cfg.tasks.len();
    let u_f: Vec<Vec<f64>> = (0..users).map(|_| normal_vec(&mut rng, K)).collect();
    let i_f: Vec<Vec<f64>> = (0..items).map(|_| normal_vec(&mut rng, K)).collect();
    let item_cat: Vec<usize> = (0..items).map(|_| rng.gen_range(0..CATEGORIES)).collect();
    let cat_bias: Vec<f64> = normal_vec(&mut rng, CATEGORIES);
    let item_pop: Vec<f64> = (0..items).map(|_| rng.gen::<f64>().powi(3)).collect();
    // Per task: a mix of a shared direction and its own.
    let shared = normal_vec(&mut rng, K);
    let r = cfg.relatedness.clamp(0.0, 1.0);
    let task_w: Vec<Vec<f64>> = (0..n_tasks)
        .map(|_| {
            let own = normal_vec(&mut rng, K);
            (0..K).map(|k| r.sqrt() * shared[k] + (1.0 - r).sqrt() * own[k]).collect()
        })
        .collect();
    let task_base: Vec<f64> = (0..n_tasks).map(|t| -1.2 - 0.6 * t as f64).collect();

    let mut splits = [SplitData::default(), SplitData::default(), SplitData::default()];
    for _ in 0..cfg.rows {
        let u = rng.gen_range(0..users);
        // Popular items are shown more often.
        let it = loop {
            let cand = rng.gen_range(0..items);
            if rng.gen::<f64>() < 0.2 + 0.8 * item_pop[cand] {
                break cand;
            }
        };
        let which = match rng.gen::<f64>() {
            x if x < 0.8 => 0,
            x if x < 0.9 => 1,
            _ => 2,
        };
        let s = &mut splits[which];
        s.rows += 1;
        s.categorical.extend([u as i64 + 1, it as i64 + 1, item_cat[it] as i64 + 1]);
        let noise: f64 = StandardNormal.sample(&mut rng);
        s.dense.extend([(1.0 + 100.0 * item_pop[it]).ln() as f32, noise as f32]);
        for t in 0..n_tasks {
            let dot: f64 = (0..K).map(|k| u_f[u][k] * i_f[it][k] * task_w[t][k]).sum();
            let logit = task_base[t] + dot + 0.5 * cat_bias[item_cat[it]] + 1.5 * item_pop[it];
            let p = 1.0 / (1.0 + (-logit).exp());
            let mut y = if rng.gen::<f64>() < p { 1.0 } else { 0.0 };
            if cfg.funnel && t == 1 {
                // Converted only if clicked: label = click * conversion.
                y *= s.labels[s.labels.len() - 1];
            }
            s.labels.push(y);
        }
        s.users.push(u as i64 + 1);
    }
    let schema = FeatureSchema {
        categorical: vec![
            CategoricalField { name: "userid".into(), vocab_size: users as i64 + 1, emb_dim: 8 },
            CategoricalField { name: "itemid".into(), vocab_size: items as i64 + 1, emb_dim: 8 },
            CategoricalField { name: "category".into(), vocab_size: CATEGORIES as i64 + 1, emb_dim: 4 },
        ],
        multi: vec![],
        dense: vec!["log_popularity".into(), "noise".into()],
        tasks: cfg.tasks.clone(),
        numeric: vec![],
    };
    let [train, valid, test] = splits;
    let digest = {
        let mut h = blake3::Hasher::new();
        h.update(b"toy-v1");
        h.update(format!("{cfg:?}").as_bytes());
        h.finalize().to_hex()[..16].to_string()
    };
    Dataset { name: "toy (synthetic)".into(), schema, train, valid, test, digest }
}
