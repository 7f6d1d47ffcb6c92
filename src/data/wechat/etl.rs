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
//! The per-row features are filled in row pieces at once (the counts are
//! read-only by then); vocabularies, keys and the history lists are made in
//! file order, so the output does not depend on the number of threads.

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

/// The vocabularies of the categorical fields (in [`CATEGORICAL`] order) and of the tags.
fn vocabularies(actions: &RawActions, feeds: &RawFeeds, first_target: usize) -> (Vec<Vocab>, Vocab) {
    let mut user_vocab = Vocab::default();
    let mut device_vocab = Vocab::default();
    for r in 0..actions.rows() {
        if actions.day[r] as usize >= first_target {
            user_vocab.add(actions.userid[r]);
            device_vocab.add(actions.device[r]);
        }
    }
    let feed_vocab = Vocab::from_ids(feeds.feedid.clone());
    let (mut author_vocab, mut song_vocab, mut singer_vocab, mut tag_vocab): (Vocab, Vocab, Vocab, Vocab) = Default::default();
    for f in 0..feeds.feedid.len() {
        for (vocab, id) in [(&mut author_vocab, feeds.authorid[f]), (&mut song_vocab, feeds.bgm_song_id[f]), (&mut singer_vocab, feeds.bgm_singer_id[f])] {
            if let Some(id) = id {
                Vocab::add(vocab, id);
            }
        }
        for &t in &feeds.tags[feeds.tag_offsets[f]..feeds.tag_offsets[f + 1]] {
            tag_vocab.add(t);
        }
    }
    (vec![user_vocab, feed_vocab, device_vocab, author_vocab, song_vocab, singer_vocab], tag_vocab)
}

/// What each output row's features are read from: the inputs, internal
/// keys, vocabularies and the windowed sums.
struct Sources<'a> {
    actions: &'a RawActions,
    feeds: &'a RawFeeds,
    vocabs: &'a [Vocab],
    /// Internal user and feed key of each action row.
    users: Vec<u32>,
    feeds_of_rows: Vec<u32>,
    /// Vocabulary index of each internal user (0 where the user has no target-day action).
    user_index: Vec<i32>,
    /// Author, song and singer vocabulary indices of each feed_info row.
    author_of_feed: Vec<i32>,
    song_of_feed: Vec<i32>,
    singer_of_feed: Vec<i32>,
    user_counts: DayCounts,
    feed_counts: DayCounts,
    /// user x author read_comment counts per day: slot of a (user, author)
    /// key, then `cross_days[slot * stride + day]`.
    cross_slot: HashMap<u64, usize, FastHash>,
    cross_days: Vec<u32>,
    stride: usize,
    /// Each internal user's read_comment feeds (day, feed index) in file order.
    user_reads: Vec<Vec<(u8, i32)>>,
    /// Number of internal users.
    n_users: usize,
}

impl Sources<'_> {
    fn author_of(&self, f: u32) -> i32 {
        self.author_of_feed.get(f as usize).copied().unwrap_or(0)
    }
    /// The feed vocabulary index of internal feed `f`: feed_info row k is
    /// internal feed k and index k + 1 (feed ids are unique there); a feed
    /// outside feed_info is 0.
    fn feed_index(&self, f: u32) -> i32 {
        if (f as usize) < self.feeds.feedid.len() {
            f as i32 + 1
        } else {
            0
        }
    }
}

fn sources<'a>(actions: &'a RawActions, feeds: &'a RawFeeds, vocabs: &'a [Vocab]) -> Sources<'a> {
    let max_day = actions.day.iter().copied().max().unwrap_or(0) as usize;
    // Internal keys for aggregation: every user and feed of the log.
    let mut user_ix: HashMap<i64, u32, FastHash> = HashMap::default();
    let users = intern(&actions.userid, &mut user_ix);
    let mut feed_ix: HashMap<i64, u32, FastHash> = HashMap::default();
    // feed_info feeds first, so that internal feed k < feeds.len() is feed_info row k.
    intern(&feeds.feedid, &mut feed_ix);
    let feeds_of_rows = intern(&actions.feedid, &mut feed_ix);
    let of_feed = |ids: &[Option<i64>], v: &Vocab| -> Vec<i32> { ids.iter().map(|a| a.map_or(0, |a| v.get(a))).collect() };
    let mut user_index = vec![0; user_ix.len()];
    for (&id, &k) in &user_ix {
        user_index[k as usize] = vocabs[0].get(id);
    }
    let (user_counts, feed_counts) = std::thread::scope(|sc| {
        let feed = sc.spawn(|| DayCounts::new(&feeds_of_rows, feed_ix.len(), &actions.day, &actions.actions, max_day));
        let user = DayCounts::new(&users, user_ix.len(), &actions.day, &actions.actions, max_day);
        (user, feed.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    let mut s = Sources {
        actions,
        feeds,
        vocabs,
        users,
        feeds_of_rows,
        user_index,
        author_of_feed: of_feed(&feeds.authorid, &vocabs[3]),
        song_of_feed: of_feed(&feeds.bgm_song_id, &vocabs[4]),
        singer_of_feed: of_feed(&feeds.bgm_singer_id, &vocabs[5]),
        user_counts,
        feed_counts,
        cross_slot: HashMap::default(),
        cross_days: Vec::new(),
        stride: max_day + 1,
        user_reads: vec![Vec::new(); user_ix.len()],
        n_users: user_ix.len(),
    };
    for r in 0..actions.rows() {
        if !actions.has(r, 0) {
            continue;
        }
        let (u, f, d) = (s.users[r], s.feeds_of_rows[r], actions.day[r]);
        let a = s.author_of(f);
        if a > 0 {
            let key = (u as u64) << 32 | a as u64;
            let next = s.cross_slot.len();
            let slot = *s.cross_slot.entry(key).or_insert(next);
            if slot == next {
                s.cross_days.resize(s.cross_days.len() + s.stride, 0);
            }
            s.cross_days[slot * s.stride + d as usize] += 1;
        }
        let feed = s.feed_index(f);
        s.user_reads[u as usize].push((d, feed));
    }
    s
}

/// The single-valued outputs of a run of rows: disjoint pieces of the output columns.
struct Piece<'a> {
    day: &'a mut [i32],
    categorical: Vec<&'a mut [i32]>,
    dense: Vec<&'a mut [f32]>,
    actions: Vec<&'a mut [i32]>,
    tag_list: &'a mut [u32],
}

/// Fills `p` with the features of the action rows `rows` (target days only).
fn fill(s: &Sources<'_>, rows: &[u32], p: Piece<'_>) {
    let (actions, feeds, v) = (s.actions, s.feeds, s.vocabs);
    // Vocabulary indices by array, not by hash: every id but the device's has an internal key.
    let feed_rows = feeds.feedid.len();
    let ln1p = |x: f64| x.ln_1p() as f32;
    let na = ACTIONS.len();
    let Piece { day, mut categorical, mut dense, actions: mut labels, tag_list } = p;
    for (i, &r) in rows.iter().enumerate() {
        let r = r as usize;
        let d = actions.day[r] as usize;
        let (u, f) = (s.users[r], s.feeds_of_rows[r]);
        let (lo, hi) = (d - WINDOW as usize, d - 1);
        let fi = f as usize;
        let info = fi < feed_rows;
        day[i] = d as i32;
        let author = s.author_of(f);
        let cats = [
            s.user_index[u as usize],
            s.feed_index(f),
            v[2].get(actions.device[r]),
            author,
            if info { s.song_of_feed[fi] } else { 0 },
            if info { s.singer_of_feed[fi] } else { 0 },
        ];
        for (col, c) in categorical.iter_mut().zip(cats) {
            col[i] = c;
        }
        dense[0][i] = ln1p(if info { feeds.videoplayseconds[fi] } else { 0.0 });
        for a in 0..na {
            dense[1 + a][i] = ln1p(s.user_counts.window(u, a, lo, hi) as f64);
            dense[1 + na + a][i] = ln1p(s.feed_counts.window(f, a, lo, hi) as f64);
            labels[a][i] = actions.has(r, a) as i32;
        }
        let cross = if author > 0 {
            let key = (u as u64) << 32 | author as u64;
            s.cross_slot.get(&key).map_or(0, |&k| s.cross_days[k * s.stride + lo..=k * s.stride + hi].iter().sum::<u32>())
        } else {
            0
        };
        dense[1 + 2 * na][i] = ln1p(cross as f64);
        tag_list[i] = if info { fi as u32 + 1 } else { 0 };
    }
}

/// The next piece of every column in `cols`.
fn next_pieces<'a, T>(cols: &mut [std::slice::ChunksMut<'a, T>]) -> Vec<&'a mut [T]> {
    cols.iter_mut().filter_map(|c| c.next()).collect()
}

/// The history of each output row: one list per (user, target day), in
/// order of first appearance, the user's last [`HISTORY_LEN`] read_comment
/// feeds of the window in file order.
fn histories(s: &Sources<'_>, rows: &[u32]) -> Result<Ragged, EtlError> {
    let mut out = Ragged::new();
    let mut list_of = vec![u32::MAX; s.n_users * s.stride];
    for &r in rows {
        let r = r as usize;
        let (u, d) = (s.users[r] as usize, s.actions.day[r] as usize);
        let slot = &mut list_of[u * s.stride + d];
        if *slot == u32::MAX {
            let (lo, hi) = (d - WINDOW as usize, d - 1);
            let window: Vec<i32> = s.user_reads[u].iter().filter(|(day, _)| (lo..=hi).contains(&(*day as usize))).map(|&(_, f)| f).collect();
            *slot = out.push_list(&window[window.len().saturating_sub(HISTORY_LEN)..]).map_err(EtlError)?;
        }
        out.push_row(*slot);
    }
    Ok(out)
}

/// Runs the ETL. The per-row features are computed in row pieces at once
/// (one thread per core); every order (rows, vocabularies, lists) is the
/// file order, whatever the number of threads.
pub fn build(actions: &RawActions, feeds: &RawFeeds) -> Result<WechatFeatures, EtlError> {
    let first_target = WINDOW as usize + 1;
    let (vocabs, tag_vocab) = vocabularies(actions, feeds, first_target);
    let s = sources(actions, feeds, &vocabs);
    let rows: Vec<u32> = (0..actions.rows()).filter(|&r| actions.day[r] as usize >= first_target).map(|r| r as u32).collect();
    let n = rows.len();
    let mut out = WechatFeatures {
        day: vec![0; n],
        categorical: vec![vec![0; n]; CATEGORICAL.len()],
        dense: vec![vec![0.0; n]; dense_names().len()],
        actions: vec![vec![0; n]; ACTIONS.len()],
        tags: tag_lists(feeds, &tag_vocab),
        ..Default::default()
    };
    let mut tag_list = vec![0u32; n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 8);
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|sc| {
        let mut day = out.day.chunks_mut(chunk);
        let mut cat: Vec<_> = out.categorical.iter_mut().map(|c| c.chunks_mut(chunk)).collect();
        let mut dense: Vec<_> = out.dense.iter_mut().map(|c| c.chunks_mut(chunk)).collect();
        let mut labels: Vec<_> = out.actions.iter_mut().map(|c| c.chunks_mut(chunk)).collect();
        let mut tags = tag_list.chunks_mut(chunk);
        for rs in rows.chunks(chunk) {
            let (Some(day), Some(tag_list)) = (day.next(), tags.next()) else { break };
            let piece = Piece { day, categorical: next_pieces(&mut cat), dense: next_pieces(&mut dense), actions: next_pieces(&mut labels), tag_list };
            let s = &s;
            sc.spawn(move || fill(s, rs, piece));
        }
    });
    out.history = histories(&s, &rows)?;
    out.tags.row_list = tag_list;
    drop(s);
    out.vocabs = vocabs;
    out.tag_vocab = tag_vocab;
    Ok(out)
}
