//! The reference feature ETL of the WeChat Channels data (docs/reference.md
//! section 2, the seed's DataGenerator.py), reproduced exactly:
//!
//! - vocabularies in first-appearance order with index 0 reserved for
//!   out-of-vocabulary / missing: userid and device from the actions of the
//!   target days; feedid, authorid, bgm_song_id, bgm_singer_id and the manual
//!   tag ids from feed_info;
//! - for each target day d (8..=last day) the window [d-7, d-1]: per-user and
//!   per-feed sums of the seven actions, the user x author read_comment sum,
//!   and the user's last 50 read_comment feeds of the window in file order;
//! - 16 dense features `ln(1 + x)`: videoplayseconds and the 15 sums.
//!
//! The output keeps every action of the target days, in file order, with all
//! seven labels, so tasks and splits are chosen at load time from one cache.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub use crate::data::ragged::ListColumn;
use crate::data::ragged::Ragged;

use super::raw::{RawActions, RawFeeds};
use super::ACTIONS;

/// Days of history aggregated before each target day.
pub const WINDOW: u8 = 7;
/// Longest history sequence kept (the most recent read_comment feeds).
pub const HISTORY_LEN: usize = 50;

/// Categorical fields, in the reference's order.
pub const CATEGORICAL: [&str; 6] = ["userid", "feedid", "device", "authorid", "bgm_song_id", "bgm_singer_id"];

/// Dense feature names, in the reference's order.
pub fn dense_names() -> Vec<String> {
    let mut v = vec!["videoplayseconds".to_string()];
    v.extend(ACTIONS.iter().map(|a| format!("u_{a}_7d_sum")));
    v.extend(ACTIONS.iter().map(|a| format!("i_{a}_7d_sum")));
    v.push("c_user_author_read_comment_7d_sum".into());
    v
}

/// A vocabulary: raw ids in index order; the raw id at position i has index i + 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vocab {
    pub ids: Vec<i64>,
    index: HashMap<i64, i32, FastHash>,
}

impl Vocab {
    pub fn from_ids(ids: Vec<i64>) -> Self {
        let index = ids.iter().enumerate().map(|(i, &v)| (v, i as i32 + 1)).collect();
        Vocab { ids, index }
    }
    /// Adds `id` if new (first-appearance order).
    pub fn add(&mut self, id: i64) {
        if !self.index.contains_key(&id) {
            self.ids.push(id);
            self.index.insert(id, self.ids.len() as i32);
        }
    }
    /// The index of `id`, 0 when unknown.
    pub fn get(&self, id: i64) -> i32 {
        self.index.get(&id).copied().unwrap_or(0)
    }
    /// Size including the OOV index 0.
    pub fn size(&self) -> usize {
        self.ids.len() + 1
    }
}

/// The processed features of every action of the target days.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WechatFeatures {
    pub day: Vec<i32>,
    /// One column per [`CATEGORICAL`] field, vocabulary indices.
    pub categorical: Vec<Vec<i32>>,
    /// One column per [`dense_names`] entry, already `ln(1 + x)`.
    pub dense: Vec<Vec<f32>>,
    /// One 0/1 column per action of [`ACTIONS`].
    pub actions: Vec<Vec<i32>>,
    /// `his_read_comment_7d_seq`: feedid vocabulary indices, one list per
    /// (user, target day).
    pub history: Ragged,
    /// `manual_tag_list`: manual tag vocabulary indices, list 0 empty, then
    /// one list per feed_info row.
    pub tags: Ragged,
    /// Vocabularies of the categorical fields (same order) and the tags.
    pub vocabs: Vec<Vocab>,
    pub tag_vocab: Vocab,
}

impl WechatFeatures {
    pub fn rows(&self) -> usize {
        self.day.len()
    }
}

/// A small multiplicative hasher for integer keys (SipHash is needlessly slow here).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);
impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64)
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
}
pub type FastHash = BuildHasherDefault<FastHasher>;

/// Dense internal index of every distinct raw id, in first-appearance order.
fn intern(ids: &[i64], table: &mut HashMap<i64, u32, FastHash>) -> Vec<u32> {
    ids.iter()
        .map(|&id| {
            let n = table.len() as u32;
            *table.entry(id).or_insert(n)
        })
        .collect()
}

/// Per-key prefix sums over days of the seven action counts:
/// `cum[(day * keys + key) * 7 + a]` counts actions on days <= day.
struct DayCounts {
    keys: usize,
    cum: Vec<u32>,
}

impl DayCounts {
    fn new(keys: &[u32], n_keys: usize, days: &[u8], actions: &[u8], max_day: usize) -> Self {
        let na = ACTIONS.len();
        let mut cum = vec![0u32; (max_day + 1) * n_keys * na];
        for ((&k, &d), &bits) in keys.iter().zip(days).zip(actions) {
            let base = (d as usize * n_keys + k as usize) * na;
            for a in 0..na {
                cum[base + a] += (bits >> a & 1) as u32;
            }
        }
        let stride = n_keys * na;
        for d in 1..=max_day {
            let (before, after) = cum.split_at_mut(d * stride);
            let prev = &before[(d - 1) * stride..];
            for (x, p) in after[..stride].iter_mut().zip(prev) {
                *x += *p;
            }
        }
        DayCounts { keys: n_keys, cum }
    }

    /// Sum of action `a` for `key` over days [lo, hi] (lo >= 1).
    fn window(&self, key: u32, a: usize, lo: usize, hi: usize) -> u32 {
        let na = ACTIONS.len();
        let at = |d: usize| self.cum[(d * self.keys + key as usize) * na + a];
        at(hi) - at(lo - 1)
    }
}

/// The ETL's output does not fit its integer types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the features do not fit: {0}")]
pub struct EtlError(pub crate::data::ragged::TooLarge);

/// The tag lists: list 0 empty (a feed without feed_info), list k + 1 the
/// tags of feed_info row k.
fn tag_lists(feeds: &RawFeeds, tag_vocab: &Vocab) -> Ragged {
    let mut lists = Ragged::new();
    lists.lists.push(&[]);
    for f in 0..feeds.feedid.len() {
        let tags: Vec<i32> = feeds.tags[feeds.tag_offsets[f]..feeds.tag_offsets[f + 1]].iter().map(|&t| tag_vocab.get(t)).collect();
        lists.lists.push(&tags);
    }
    lists
}

/// Runs the ETL.
pub fn build(actions: &RawActions, feeds: &RawFeeds) -> Result<WechatFeatures, EtlError> {
    let n = actions.rows();
    let first_target = WINDOW as usize + 1;
    let max_day = actions.day.iter().copied().max().unwrap_or(0) as usize;

    // Vocabularies (index 0 = OOV / missing).
    let mut user_vocab = Vocab::default();
    let mut device_vocab = Vocab::default();
    for r in 0..n {
        if actions.day[r] as usize >= first_target {
            user_vocab.add(actions.userid[r]);
            device_vocab.add(actions.device[r]);
        }
    }
    let feed_vocab = Vocab::from_ids(feeds.feedid.clone());
    let mut author_vocab = Vocab::default();
    let mut song_vocab = Vocab::default();
    let mut singer_vocab = Vocab::default();
    let mut tag_vocab = Vocab::default();
    for f in 0..feeds.feedid.len() {
        if let Some(a) = feeds.authorid[f] {
            author_vocab.add(a);
        }
        if let Some(s) = feeds.bgm_song_id[f] {
            song_vocab.add(s);
        }
        if let Some(s) = feeds.bgm_singer_id[f] {
            singer_vocab.add(s);
        }
        for &t in &feeds.tags[feeds.tag_offsets[f]..feeds.tag_offsets[f + 1]] {
            tag_vocab.add(t);
        }
    }

    // Internal keys for aggregation: every user and feed of the log.
    let mut user_ix: HashMap<i64, u32, FastHash> = HashMap::default();
    let users = intern(&actions.userid, &mut user_ix);
    let mut feed_ix: HashMap<i64, u32, FastHash> = HashMap::default();
    // feed_info feeds first, so that internal feed k < feeds.len() is feed_info row k.
    intern(&feeds.feedid, &mut feed_ix);
    let feed_rows = feeds.feedid.len();
    let feeds_of_rows = intern(&actions.feedid, &mut feed_ix);
    let author_of_feed: Vec<i32> = feeds.authorid.iter().map(|a| a.map_or(0, |a| author_vocab.get(a))).collect();
    let author_of = |f: u32| if (f as usize) < feed_rows { author_of_feed[f as usize] } else { 0 };

    let user_counts = DayCounts::new(&users, user_ix.len(), &actions.day, &actions.actions, max_day);
    let feed_counts = DayCounts::new(&feeds_of_rows, feed_ix.len(), &actions.day, &actions.actions, max_day);

    // user x author read_comment counts per day, and each user's read_comment
    // feeds in file order.
    let stride = max_day + 1;
    let mut cross_slot: HashMap<u64, usize, FastHash> = HashMap::default();
    let mut cross_days: Vec<u32> = Vec::new();
    let mut user_reads: Vec<Vec<(u8, i32)>> = vec![Vec::new(); user_ix.len()];
    for r in 0..n {
        if !actions.has(r, 0) {
            continue;
        }
        let (u, f, d) = (users[r], feeds_of_rows[r], actions.day[r]);
        let a = author_of(f);
        if a > 0 {
            let key = (u as u64) << 32 | a as u64;
            let next = cross_slot.len();
            let slot = *cross_slot.entry(key).or_insert(next);
            if slot == next {
                cross_days.resize(cross_days.len() + stride, 0);
            }
            cross_days[slot * stride + d as usize] += 1;
        }
        user_reads[u as usize].push((d, feed_vocab.get(actions.feedid[r])));
    }

    let mut out = WechatFeatures {
        categorical: vec![Vec::new(); CATEGORICAL.len()],
        dense: vec![Vec::new(); dense_names().len()],
        actions: vec![Vec::new(); ACTIONS.len()],
        history: Ragged::new(),
        tags: tag_lists(feeds, &tag_vocab),
        ..Default::default()
    };
    let mut history_memo: HashMap<u64, u32, FastHash> = HashMap::default();
    let ln1p = |x: f64| x.ln_1p() as f32;
    for r in 0..n {
        let d = actions.day[r] as usize;
        if d < first_target {
            continue;
        }
        let (u, f) = (users[r], feeds_of_rows[r]);
        let (lo, hi) = (d - WINDOW as usize, d - 1);
        let info = (f as usize) < feed_rows;
        let fi = f as usize;
        out.day.push(d as i32);
        let author = author_of(f);
        let cats = [
            user_vocab.get(actions.userid[r]),
            feed_vocab.get(actions.feedid[r]),
            device_vocab.get(actions.device[r]),
            author,
            if info { feeds.bgm_song_id[fi].map_or(0, |s| song_vocab.get(s)) } else { 0 },
            if info { feeds.bgm_singer_id[fi].map_or(0, |s| singer_vocab.get(s)) } else { 0 },
        ];
        for (col, v) in out.categorical.iter_mut().zip(cats) {
            col.push(v);
        }
        out.dense[0].push(ln1p(if info { feeds.videoplayseconds[fi] } else { 0.0 }));
        for a in 0..ACTIONS.len() {
            out.dense[1 + a].push(ln1p(user_counts.window(u, a, lo, hi) as f64));
            out.dense[1 + ACTIONS.len() + a].push(ln1p(feed_counts.window(f, a, lo, hi) as f64));
            out.actions[a].push(actions.has(r, a) as i32);
        }
        let cross = if author > 0 {
            let key = (u as u64) << 32 | author as u64;
            cross_slot.get(&key).map_or(0, |&s| cross_days[s * stride + lo..=s * stride + hi].iter().sum::<u32>())
        } else {
            0
        };
        out.dense[1 + 2 * ACTIONS.len()].push(ln1p(cross as f64));
        let key = (u as u64) << 8 | d as u64;
        let list = match history_memo.get(&key) {
            Some(&k) => k,
            None => {
                let window: Vec<i32> =
                    user_reads[u as usize].iter().filter(|(day, _)| (lo..=hi).contains(&(*day as usize))).map(|&(_, f)| f).collect();
                let k = out.history.push_list(&window[window.len().saturating_sub(HISTORY_LEN)..]).map_err(EtlError)?;
                history_memo.insert(key, k);
                k
            }
        };
        out.history.push_row(list);
        out.tags.push_row(if info { fi as u32 + 1 } else { 0 });
    }
    out.vocabs = vec![user_vocab, feed_vocab, device_vocab, author_vocab, song_vocab, singer_vocab];
    out.tag_vocab = tag_vocab;
    Ok(out)
}
