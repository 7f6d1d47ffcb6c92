//! A realistic synthetic stand-in for the WeChat Channels data, in exactly
//! its raw schema (`user_action.csv` with 13 columns, `feed_info.csv` with
//! 15), so it goes through the same ETL as the real files.
//!
//! The generative story: users with lognormal activity and persistent latent
//! factors see feeds drawn by Zipf-like, age-decaying popularity; each
//! action's logit combines user x feed interest (per-action directions that
//! mix a shared and an own direction, `relatedness` setting the mix), user
//! propensity, feed quality, an author effect and a per-row mood shared by
//! all actions. Intercepts are calibrated on a pilot sample so that positive
//! rates match docs/reference.md; comment mostly follows read_comment and follow
//! mostly follows click_avatar (share [`FUNNEL_CONTAINMENT`]). Each user has
//! its own random streams, so the bytes depend only on the parameters,
//! never on the thread count.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Serialize};

use super::synth_feeds::{normal, push_int, Alias, FeedWorld, K};
use super::{DaySplit, ACTIONS, ACTION_FILE, FEED_FILE};
use crate::data::schema::Dataset;
use crate::data::{cache, DataError};

/// Bump when the generator's output changes.
pub const SYNTH_VERSION: &str = "wechat-synth-v1";
/// Mean actions per user and day in the real data (7,317,882 / 20,000 / 14).
pub const ACTIONS_PER_USER_DAY: f64 = 26.14;
/// Positive rate of each action over all days (docs/reference.md), in [`ACTIONS`] order.
pub const TARGET_RATES: [f64; 7] = [0.03502, 0.02581, 0.00753, 0.00382, 0.000405, 0.000721, 0.00134];
/// (child, parent) funnels: comment after read_comment, follow after click_avatar.
pub const FUNNELS: [(usize, usize); 2] = [(4, 0), (5, 2)];
/// Share of a child action's positives that have the parent action too.
pub const FUNNEL_CONTAINMENT: f64 = 0.85;

fn default_seed() -> u64 {
    1
}
fn default_days() -> u8 {
    14
}
fn default_relatedness() -> f64 {
    0.5
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthParams {
    pub users: usize,
    pub feeds: usize,
    pub seed: u64,
    /// Days in the log (the real data has 14; the ETL needs at least 8).
    pub days: u8,
    /// 0 = the actions share no latent signal, 1 = one signal drives all.
    pub relatedness: f64,
}

impl SynthParams {
    pub fn validate(&self, prefix: &str) -> Result<(), DataError> {
        let bad = |key: &str, message: &str| Err(DataError::Config { key: format!("{prefix}{key}"), message: message.into() });
        if self.users == 0 {
            return bad("users", "must be at least 1");
        }
        if self.feeds == 0 {
            return bad("feeds", "must be at least 1");
        }
        if !(8..=60).contains(&self.days) {
            return bad("days", "must be in 8..=60 (the ETL needs 7 days of history before the first target day)");
        }
        if !(0.0..=1.0).contains(&self.relatedness) {
            return bad("relatedness", "must be in [0, 1]");
        }
        Ok(())
    }
}

/// `[data] kind = "synthetic-wechat"`: generated into the cache on first use,
/// then loaded through the WeChat source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticWechatConfig {
    pub users: usize,
    pub feeds: usize,
    /// Seed of the data (independent of the run seeds); default 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Default 14.
    #[serde(default = "default_days")]
    pub days: u8,
    /// Default 0.5.
    #[serde(default = "default_relatedness")]
    pub relatedness: f64,
    #[serde(default = "super::default_tasks")]
    pub tasks: Vec<String>,
    #[serde(default)]
    pub split: DaySplit,
    /// An encoding of every dense feature (default: the ln(1 + x) scalars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense: Option<crate::data::numeric::DenseEncoding>,
}

impl SyntheticWechatConfig {
    pub fn params(&self) -> SynthParams {
        SynthParams { users: self.users, feeds: self.feeds, seed: self.seed, days: self.days, relatedness: self.relatedness }
    }
}

/// What a generation wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthReport {
    pub rows: u64,
    pub positives: [u64; 7],
    pub seconds: f64,
}

struct Users {
    raw_id: Vec<i64>,
    factor: Vec<f32>,
    bias: Vec<f32>,
    activity: Vec<f64>,
    p_active: Vec<f64>,
    device: Vec<u8>,
}

/// Everything shared by all users' streams.
struct World {
    p: SynthParams,
    users: Users,
    feeds: FeedWorld,
    /// Per-action interest direction, 7 x K.
    direction: Vec<f64>,
    day_alias: Vec<Alias>,
    day_weight: Vec<f64>,
    /// Intercepts: per action, and the "parent absent" intercepts of funnel children.
    intercept: [f64; 7],
    intercept_out: [f64; 7],
}

#[derive(Clone, Copy)]
struct Exposure {
    day: u8,
    feed: u32,
    device: u8,
    mood: f32,
}

const INTEREST: f64 = 1.2;
const USER_BIAS: f64 = 1.0;
const MOOD: f64 = 0.8;
const SALT: u64 = 0x5EED_0F_3C4A7;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ SALT);
    r.set_stream(stream);
    r
}

impl World {
    fn new(p: &SynthParams) -> Self {
        let mut rng = rng_for(p.seed, 0);
        let r = p.relatedness;
        let (rs, ro) = (r.sqrt(), (1.0 - r).sqrt());
        let shared: Vec<f64> = (0..K).map(|_| normal(&mut rng)).collect();
        let mut direction = Vec::with_capacity(ACTIONS.len() * K);
        for _ in 0..ACTIONS.len() {
            for s in &shared {
                direction.push(rs * s + ro * normal(&mut rng));
            }
        }
        let n = p.users;
        let mut id = 0i64;
        let mut users = Users {
            raw_id: Vec::with_capacity(n),
            factor: Vec::with_capacity(n * K),
            bias: Vec::with_capacity(n * 7),
            activity: Vec::with_capacity(n),
            p_active: Vec::with_capacity(n),
            device: Vec::with_capacity(n),
        };
        for _ in 0..n {
            id += rng.gen_range(1..=24);
            users.raw_id.push(id);
            for _ in 0..K {
                users.factor.push(normal(&mut rng) as f32);
            }
            let g = normal(&mut rng);
            for _ in 0..ACTIONS.len() {
                users.bias.push((USER_BIAS * (rs * g + ro * normal(&mut rng))) as f32);
            }
            users.activity.push(normal(&mut rng).exp());
            users.device.push(if rng.gen::<f64>() < 0.7 { 2 } else { 1 });
        }
        let mean = users.activity.iter().sum::<f64>() / n as f64;
        for a in &mut users.activity {
            *a /= mean;
            users.p_active.push(0.55 + 0.45 * sigmoid(1.5 * a.ln()));
        }
        let mut feed_rng = rng_for(p.seed, 1);
        let feeds = FeedWorld::generate(&mut feed_rng, p.feeds, p.days, r);
        let day_alias = (1..=p.days as i32).map(|d| Alias::new(&feeds.day_weights(d))).collect();
        let span = (p.days as f64 - 1.0).max(1.0);
        let day_weight = (0..p.days).map(|d| 0.85 + 0.3 * d as f64 / span).collect();
        World { p: p.clone(), users, feeds, direction, day_alias, day_weight, intercept: [0.0; 7], intercept_out: [0.0; 7] }
    }

    /// The exposures of one user, in day order (its own random stream).
    fn exposures(&self, u: usize, out: &mut Vec<Exposure>) {
        out.clear();
        let mut rng = rng_for(self.p.seed, 2 + 2 * u as u64);
        let us = &self.users;
        for d in 0..self.p.days as usize {
            if rng.gen::<f64>() >= us.p_active[u] {
                continue;
            }
            let mean = ACTIONS_PER_USER_DAY * us.activity[u] * self.day_weight[d] / us.p_active[u];
            let n = Poisson::new(mean.max(1e-9)).map_or(0.0, |p| p.sample(&mut rng)) as usize;
            for _ in 0..n {
                let feed = self.day_alias[d].sample(&mut rng) as u32;
                let device = if rng.gen::<f64>() < 0.02 { 3 - us.device[u] } else { us.device[u] };
                out.push(Exposure { day: d as u8 + 1, feed, device, mood: normal(&mut rng) as f32 });
            }
        }
    }

    /// Logits of the seven actions without intercepts.
    fn logits(&self, u: usize, e: &Exposure) -> [f64; 7] {
        let f = e.feed as usize;
        let uf = &self.users.factor[u * K..(u + 1) * K];
        let ff = &self.feeds.factor[f * K..(f + 1) * K];
        let author = self.feeds.author_effect[self.feeds.author[f] as usize] as f64;
        let mood = MOOD * self.p.relatedness.sqrt() * e.mood as f64;
        let mut out = [0.0; 7];
        for (a, o) in out.iter_mut().enumerate() {
            let dir = &self.direction[a * K..(a + 1) * K];
            let interest: f64 = (0..K).map(|k| uf[k] as f64 * ff[k] as f64 * dir[k]).sum::<f64>() / (K as f64).sqrt();
            let author_w = if a == 2 || a == 5 { 1.0 } else { 0.3 };
            *o = INTEREST * interest + self.users.bias[u * 7 + a] as f64 + self.feeds.quality[f * 7 + a] as f64 + author_w * author + mood;
        }
        out
    }

    /// Sets the intercepts so that expected positive rates hit [`TARGET_RATES`]
    /// on a pilot sample: every user's exposures (activity is heavy-tailed, so
    /// a subset of users would bias the rare actions), every k-th row, at most
    /// ~400k rows.
    fn calibrate(&mut self) {
        let n = self.p.users;
        let mut logits: Vec<[f64; 7]> = Vec::new();
        let mut buf = Vec::new();
        let expected_rows = n as f64 * self.p.days as f64 * ACTIONS_PER_USER_DAY;
        let row_stride = ((expected_rows / 400_000.0).ceil() as usize).max(1);
        let mut k = 0usize;
        for u in 0..n {
            self.exposures(u, &mut buf);
            for e in &buf {
                if k % row_stride == 0 {
                    logits.push(self.logits(u, e));
                }
                k += 1;
            }
        }
        if logits.is_empty() {
            return;
        }
        let rows = logits.len() as f64;
        let solve = |target: f64, mass: &dyn Fn(f64) -> f64| {
            let (mut lo, mut hi) = (-30.0, 30.0);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if mass(mid) < target {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            0.5 * (lo + hi)
        };
        for a in 0..7 {
            if FUNNELS.iter().any(|(c, _)| *c == a) {
                continue;
            }
            self.intercept[a] = solve(TARGET_RATES[a] * rows, &|b| logits.iter().map(|l| sigmoid(l[a] + b)).sum());
        }
        for &(c, p) in &FUNNELS {
            let bp = self.intercept[p];
            let target = TARGET_RATES[c] * rows;
            self.intercept[c] =
                solve(FUNNEL_CONTAINMENT * target, &|b| logits.iter().map(|l| sigmoid(l[p] + bp) * sigmoid(l[c] + b)).sum());
            self.intercept_out[c] = solve((1.0 - FUNNEL_CONTAINMENT) * target, &|b| {
                logits.iter().map(|l| (1.0 - sigmoid(l[p] + bp)) * sigmoid(l[c] + b)).sum()
            });
        }
    }

    /// Appends the CSV rows of users `range` to `out`; returns rows and positives.
    fn write_users(&self, range: std::ops::Range<usize>, out: &mut Vec<u8>) -> (u64, [u64; 7]) {
        let mut buf = Vec::new();
        let mut rows = 0u64;
        let mut pos = [0u64; 7];
        for u in range {
            self.exposures(u, &mut buf);
            let mut rng = rng_for(self.p.seed, 3 + 2 * u as u64);
            for e in &buf {
                let l = self.logits(u, e);
                let mut y = [false; 7];
                for a in [0, 1, 2, 3, 6] {
                    y[a] = rng.gen::<f64>() < sigmoid(l[a] + self.intercept[a]);
                }
                for &(c, p) in &FUNNELS {
                    let b = if y[p] { self.intercept[c] } else { self.intercept_out[c] };
                    y[c] = rng.gen::<f64>() < sigmoid(l[c] + b);
                }
                for a in 0..7 {
                    pos[a] += y[a] as u64;
                }
                rows += 1;
                let f = e.feed as usize;
                let secs = self.feeds.seconds[f] as f64;
                let engaged = (y[0] || y[1] || y[3]) as u8 as f64;
                let watch = sigmoid(0.5 * l[1] + 0.6 * e.mood as f64 + 0.5 * normal(&mut rng) + 1.0 + engaged);
                let play = (1000.0 * secs * watch * (1.0 + 0.6 * engaged * rng.gen::<f64>())).round() as i64;
                let stay = play + (1000.0 * (0.3 + 4.0 * rng.gen::<f64>().powi(3))).round() as i64;
                let b = |v: bool| if v { b'1' } else { b'0' };
                push_int(out, self.users.raw_id[u]);
                out.push(b',');
                push_int(out, self.feeds.raw_id[f]);
                out.push(b',');
                push_int(out, e.day as i64);
                out.extend_from_slice(&[b',', b'0' + e.device, b',', b(y[0]), b',', b(y[4]), b',', b(y[1]), b',']);
                push_int(out, play);
                out.push(b',');
                push_int(out, stay);
                out.extend_from_slice(&[b',', b(y[2]), b',', b(y[3]), b',', b(y[5]), b',', b(y[6]), b'\n']);
            }
        }
        (rows, pos)
    }
}

/// Writes user_action.csv and feed_info.csv into `dir` (each file atomically).
pub fn write_dir(p: &SynthParams, dir: &Path) -> Result<SynthReport, DataError> {
    p.validate("")?;
    let t0 = Instant::now();
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io { path: dir.to_path_buf(), cause: source })?;
    let mut world = World::new(p);
    world.calibrate();
    let feed_path = dir.join(FEED_FILE);
    cache::write_file_atomically(&feed_path, |w| {
        let mut rng = rng_for(p.seed, 1 << 40);
        world.feeds.write_csv(&mut rng, w, &feed_path)
    })?;
    let action_path = dir.join(ACTION_FILE);
    let mut report = SynthReport { rows: 0, positives: [0; 7], seconds: 0.0 };
    cache::write_file_atomically(&action_path, |w| {
        let io = |source| DataError::Io { path: action_path.clone(), cause: source };
        w.write_all(b"userid,feedid,date_,device,read_comment,comment,like,play,stay,click_avatar,forward,follow,favorite\n")
            .map_err(io)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let block = 256;
        let blocks: Vec<std::ops::Range<usize>> = (0..p.users).step_by(block).map(|s| s..(s + block).min(p.users)).collect();
        let world = &world;
        for wave in blocks.chunks(threads) {
            let results: Vec<(Vec<u8>, u64, [u64; 7])> = std::thread::scope(|s| {
                let handles: Vec<_> = wave
                    .iter()
                    .map(|r| {
                        let r = r.clone();
                        s.spawn(move || {
                            let mut out = Vec::with_capacity(r.len() * 400 * 40);
                            let (rows, pos) = world.write_users(r, &mut out);
                            (out, rows, pos)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
            })
            .map_err(|_| DataError::File { path: action_path.clone(), message: "a generator thread panicked".into() })?;
            for (bytes, rows, pos) in results {
                w.write_all(&bytes).map_err(io)?;
                report.rows += rows;
                for a in 0..7 {
                    report.positives[a] += pos[a];
                }
            }
        }
        Ok(())
    })?;
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// Where the cache keeps the raw files of these parameters.
pub fn cache_entry(p: &SynthParams, cache_dir: &Path) -> PathBuf {
    let key = cache::key_of(&[SYNTH_VERSION, &serde_json::to_string(p).unwrap_or_default()]);
    cache_dir.join("synthetic-wechat").join(key)
}

/// The raw folder of these parameters, generated on first use.
pub fn ensure_generated(p: &SynthParams, cache_dir: &Path) -> Result<PathBuf, DataError> {
    p.validate("data.")?;
    let dir = cache_entry(p, cache_dir);
    if !dir.join(ACTION_FILE).is_file() {
        cache::build_atomically(&dir, |tmp| write_dir(p, tmp).map(|_| ()))?;
    }
    Ok(dir)
}

/// Loads `[data] kind = "synthetic-wechat"`.
pub fn load(cfg: &SyntheticWechatConfig, cache_dir: &Path) -> Result<Dataset, DataError> {
    super::validate(&cfg.tasks, &cfg.split)?;
    let p = cfg.params();
    let dir = ensure_generated(&p, cache_dir)?;
    let (f, key) = super::features(&dir, cache_dir)?;
    let name = format!("synthetic-wechat ({} users, {} feeds, seed {})", p.users, p.feeds, p.seed);
    super::to_dataset(&f, &key, name, &cfg.tasks, &cfg.split, cfg.dense.as_ref())
}

/// WeChat-shaped features for benchmarks and speed comparisons: this source
/// with `tasks`, the default data seed, days, relatedness and day split
/// (generated into `cache_dir` on first use). 20,000 users and 106,444 feeds
/// give the real data's vocabularies.
pub fn wechat_shaped(users: usize, feeds: usize, tasks: &[&str], cache_dir: &Path) -> Result<Dataset, DataError> {
    let cfg = SyntheticWechatConfig {
        users,
        feeds,
        seed: default_seed(),
        days: default_days(),
        relatedness: default_relatedness(),
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
        split: DaySplit::default(),
        dense: None,
    };
    crate::data::load(&crate::data::DataConfig::SyntheticWechat(cfg), cache_dir)
}
