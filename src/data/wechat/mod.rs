//! The WeChat Channels 2021 source (`[data] kind = "wechat"`): a folder
//! with `user_action.csv` and `feed_info.csv` goes through the reference ETL
//! ([`etl`]) once; the features are cached as Parquet under the cache
//! directory, keyed by the inputs' content digests and the ETL version, so
//! later runs (any tasks, any day split) load them in seconds. The
//! synthetic generator ([`synth`]) writes files of the same schema. The
//! dense features can be encoded (`dense = { transform = "quantile" }`,
//! [`super::numeric`]) with edges from the train days.

pub mod etl;
mod keys;
mod plain;
pub mod raw;
pub mod store;
pub mod synth;
mod synth_feeds;
mod window;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache;
use super::numeric::{self, DenseEncoding};
use super::schema::{CategoricalField, Dataset, FeatureSchema, MultiField, SplitData};
use super::DataError;
use etl::{WechatFeatures, CATEGORICAL};

/// The seven actions, in the reference ETL's order.
pub const ACTIONS: [&str; 7] = ["read_comment", "like", "click_avatar", "forward", "comment", "follow", "favorite"];
/// Bump when the ETL's output changes: old cache entries are then ignored.
pub const ETL_VERSION: &str = "wechat-etl-v2";
pub const ACTION_FILE: &str = "user_action.csv";
pub const FEED_FILE: &str = "feed_info.csv";

fn default_tasks() -> Vec<String> {
    vec!["read_comment".into(), "like".into(), "click_avatar".into()]
}
fn default_train() -> Vec<u8> {
    vec![8, 9, 10, 11, 12]
}
fn default_valid() -> Vec<u8> {
    vec![13]
}
fn default_test() -> Vec<u8> {
    vec![14]
}

/// Which days form each split. Default: train 8-12, validation 13, test 14
/// (the seed trains on 8-13 and selects on 14; we never select on test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaySplit {
    #[serde(default = "default_train")]
    pub train: Vec<u8>,
    #[serde(default = "default_valid")]
    pub valid: Vec<u8>,
    #[serde(default = "default_test")]
    pub test: Vec<u8>,
}

impl Default for DaySplit {
    fn default() -> Self {
        DaySplit { train: default_train(), valid: default_valid(), test: default_test() }
    }
}

/// `[data] kind = "wechat"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfig {
    /// Folder holding user_action.csv and feed_info.csv (relative paths are
    /// relative to the working directory).
    pub path: PathBuf,
    /// Any of the seven actions; default read_comment, like, click_avatar.
    #[serde(default = "default_tasks")]
    pub tasks: Vec<String>,
    #[serde(default)]
    pub split: DaySplit,
    /// An encoding of every dense feature (default: the ln(1 + x) scalars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense: Option<DenseEncoding>,
}

/// Checks tasks and split days before any file is read.
pub fn validate(tasks: &[String], split: &DaySplit) -> Result<(), DataError> {
    let cfg = |key: &str, message: String| DataError::Config { key: format!("data.{key}"), message };
    if tasks.is_empty() {
        return Err(cfg("tasks", format!("at least one task is needed; the actions are {}", ACTIONS.join(", "))));
    }
    for (i, t) in tasks.iter().enumerate() {
        if !ACTIONS.contains(&t.as_str()) {
            return Err(cfg("tasks", format!("unknown action `{t}`; the actions are {}", ACTIONS.join(", "))));
        }
        if tasks[..i].contains(t) {
            return Err(cfg("tasks", format!("`{t}` is listed twice")));
        }
    }
    let first = etl::WINDOW + 1;
    let mut seen: Vec<(u8, &str)> = Vec::new();
    for (name, days) in [("train", &split.train), ("valid", &split.valid), ("test", &split.test)] {
        if days.is_empty() {
            return Err(cfg(&format!("split.{name}"), "no days given".into()));
        }
        for &d in days {
            if d < first {
                return Err(cfg(
                    &format!("split.{name}"),
                    format!("day {d} has no complete {}-day window; use days >= {first}", etl::WINDOW),
                ));
            }
            if let Some((_, other)) = seen.iter().find(|(x, _)| *x == d) {
                return Err(cfg(&format!("split.{name}"), format!("day {d} is also in split.{other}")));
            }
            seen.push((d, name));
        }
    }
    Ok(())
}

/// Features of a raw folder, from the cache or computed (and cached).
/// Returns the features and the cache key (a digest of the inputs' content
/// and the ETL version).
pub fn features(dir: &Path, cache_dir: &Path) -> Result<(WechatFeatures, String), DataError> {
    for name in [ACTION_FILE, FEED_FILE] {
        let p = dir.join(name);
        if !p.is_file() {
            return Err(DataError::File {
                path: p,
                message: format!("not found: a WeChat data folder needs {ACTION_FILE} and {FEED_FILE}"),
            });
        }
    }
    // The two digests at once (each reads a file of hundreds of MB at full scale).
    let (actions_digest, feeds_digest) = std::thread::scope(|sc| {
        let feeds = sc.spawn(|| cache::file_digest(&dir.join(FEED_FILE)));
        let actions = cache::file_digest(&dir.join(ACTION_FILE));
        (actions, feeds.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    let inputs = vec![(ACTION_FILE.to_string(), actions_digest?), (FEED_FILE.to_string(), feeds_digest?)];
    let key = cache::key_of(&[ETL_VERSION, &inputs[0].1, &inputs[1].1]);
    let entry = cache_dir.join("wechat").join(&key);
    if entry.join(store::META_FILE).is_file() {
        let (f, _) = store::read(&entry)?;
        return Ok((f, key));
    }
    let actions = raw::read_actions(&dir.join(ACTION_FILE))?;
    let feeds = raw::read_feeds(&dir.join(FEED_FILE))?;
    let f = etl::build(&actions, &feeds).map_err(|e| DataError::File { path: dir.to_path_buf(), message: e.to_string() })?;
    drop(actions);
    cache::build_atomically(&entry, |tmp| store::write(tmp, &f, ETL_VERSION, &inputs))?;
    Ok((f, key))
}

/// The schema of WeChat features (same fields whatever the tasks).
pub fn schema(f: &WechatFeatures, tasks: &[String]) -> FeatureSchema {
    let emb = [16, 16, 2, 4, 4, 4];
    let categorical = CATEGORICAL
        .iter()
        .zip(&f.vocabs)
        .zip(emb)
        .map(|((name, v), emb_dim)| CategoricalField { name: name.to_string(), vocab_size: v.size() as i64, emb_dim })
        .collect();
    let multi = vec![
        MultiField {
            name: store::TAGS_COLUMN.into(),
            vocab_size: f.tag_vocab.size() as i64,
            emb_dim: 4,
            max_len: f.tags.max_len().max(1),
            shares_table_with: None,
        },
        MultiField {
            name: store::HISTORY_COLUMN.into(),
            vocab_size: f.vocabs[1].size() as i64,
            emb_dim: 16,
            max_len: f.history.max_len().max(1),
            shares_table_with: Some("feedid".into()),
        },
    ];
    FeatureSchema { categorical, multi, dense: etl::dense_names(), tasks: tasks.to_vec(), numeric: vec![] }
}

/// Row indices of each split (train, valid, test), in file order.
pub fn split_rows(f: &WechatFeatures, split: &DaySplit) -> [Vec<usize>; 3] {
    let mut out = [Vec::new(), Vec::new(), Vec::new()];
    for (r, &d) in f.day.iter().enumerate() {
        let d = d as u8;
        for (k, days) in [&split.train, &split.valid, &split.test].into_iter().enumerate() {
            if days.contains(&d) {
                out[k].push(r);
            }
        }
    }
    out
}

fn action_index(task: &str) -> usize {
    ACTIONS.iter().position(|a| *a == task).unwrap_or(0)
}

/// Output blocks of one chunk of rows (disjoint slices of the split's blocks).
struct Part<'a> {
    categorical: &'a mut [i64],
    dense: &'a mut [f32],
    labels: &'a mut [f32],
    users: &'a mut [i64],
}

fn fill(f: &WechatFeatures, rows: &[usize], tasks: &[usize], p: Part<'_>) {
    let (nc, nd, nt) = (f.categorical.len(), f.dense.len(), tasks.len());
    let Part { categorical, dense, labels, users } = p;
    for (i, &r) in rows.iter().enumerate() {
        for (j, col) in f.categorical.iter().enumerate() {
            categorical[i * nc + j] = col[r] as i64;
        }
        for (j, col) in f.dense.iter().enumerate() {
            dense[i * nd + j] = col[r];
        }
        for (j, &a) in tasks.iter().enumerate() {
            labels[i * nt + j] = f.actions[a][r] as f32;
        }
        users[i] = f.categorical[0][r] as i64;
    }
}

/// The blocks of one split, row chunks filled in parallel; the list
/// columns keep their distinct lists (in [`schema`]'s order: tags, history).
fn split_data(f: &WechatFeatures, schema: &FeatureSchema, rows: &[usize]) -> SplitData {
    let n = rows.len();
    let tasks: Vec<usize> = schema.tasks.iter().map(|t| action_index(t)).collect();
    let (nc, nd, nt) = (f.categorical.len(), f.dense.len(), tasks.len().max(1));
    let mut s = SplitData {
        rows: n,
        categorical: vec![0; n * nc],
        dense: vec![0.0; n * nd],
        labels: vec![0.0; n * tasks.len()],
        users: vec![0; n],
        multi: vec![f.tags.take_rows(rows), f.history.take_rows(rows)],
        ..Default::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 8);
    let chunk = n.div_ceil(threads).max(1);
    let tasks = &tasks;
    std::thread::scope(|sc| {
        let mut cat = s.categorical.chunks_mut(chunk * nc);
        let mut dense = s.dense.chunks_mut(chunk * nd);
        let mut labels = s.labels.chunks_mut(chunk * nt);
        let mut users = s.users.chunks_mut(chunk);
        for rs in rows.chunks(chunk) {
            let (Some(categorical), Some(dense), Some(labels), Some(users)) = (cat.next(), dense.next(), labels.next(), users.next())
            else {
                break;
            };
            let part = Part { categorical, dense, labels, users };
            sc.spawn(move || fill(f, rs, tasks, part));
        }
    });
    s
}

/// The dataset digest: the features' cache key (input contents + ETL
/// version) with the tasks and the day split.
pub fn dataset_digest(key: &str, tasks: &[String], split: &DaySplit) -> String {
    cache::key_of(&[key, &tasks.join(","), &format!("{split:?}")])[..16].to_string()
}

/// Turns features into a dataset for the given tasks, split and dense encoding.
pub fn to_dataset(
    f: &WechatFeatures,
    key: &str,
    name: String,
    tasks: &[String],
    split: &DaySplit,
    dense: Option<&DenseEncoding>,
) -> Result<Dataset, DataError> {
    let mut schema = schema(f, tasks);
    let [train, valid, test] = split_rows(f, split);
    for (rows, label, days) in [(&train, "train", &split.train), (&valid, "validation", &split.valid), (&test, "test", &split.test)] {
        if rows.is_empty() {
            let have: std::collections::BTreeSet<i32> = f.day.iter().copied().collect();
            return Err(DataError::EmptySplit {
                split: label.into(),
                message: format!("no actions on days {days:?} (key data.split; the data has target days {have:?})"),
            });
        }
    }
    let (mut train, mut valid, mut test) = (split_data(f, &schema, &train), split_data(f, &schema, &valid), split_data(f, &schema, &test));
    if let Some(d) = dense {
        let req = d.request().map_err(|(key, message)| DataError::Config { key: format!("data.dense.{key}"), message })?;
        let requests = vec![Some(req); schema.dense.len()];
        numeric::apply(&mut schema, [&mut train, &mut valid, &mut test], &requests);
    }
    let digest = numeric::digest_with(dataset_digest(key, tasks, split), &schema.numeric);
    Ok(Dataset { name, train, valid, test, schema, digest })
}

/// Loads `[data] kind = "wechat"`.
pub fn load(cfg: &WechatConfig, cache_dir: &Path) -> Result<Dataset, DataError> {
    validate(&cfg.tasks, &cfg.split)?;
    let (f, key) = features(&cfg.path, cache_dir)?;
    to_dataset(&f, &key, format!("wechat ({})", cfg.path.display()), &cfg.tasks, &cfg.split, cfg.dense.as_ref())
}
