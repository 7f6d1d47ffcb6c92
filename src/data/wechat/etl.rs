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

pub use crate::data::ragged::ListColumn;
use crate::data::ragged::Ragged;

pub use super::keys::{FastHash, FastHasher};
use super::keys::{first_appearance, Interner};
use super::raw::{RawActions, RawFeeds};
use super::window::{Ln1p, Targets, WindowSums};
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

/// The feed_info side: the vocabularies of feedid, authorid, bgm_song_id,
/// bgm_singer_id (in that order) and of the tags, each feed_info row's
/// author, song and singer index, and its `ln(1 + videoplayseconds)`.
struct FeedSide {
    vocabs: [Vocab; 4],
    tag_vocab: Vocab,
    author: Vec<i32>,
    song: Vec<i32>,
    singer: Vec<i32>,
    seconds: Vec<f32>,
}

fn feed_side(feeds: &RawFeeds) -> FeedSide {
    let mut vocabs = [Vocab::from_ids(feeds.feedid.clone()), Vocab::default(), Vocab::default(), Vocab::default()];
    let mut tag_vocab = Vocab::default();
    let mut of_feed = [Vec::new(), Vec::new(), Vec::new()];
    let n = feeds.feedid.len();
    for f in 0..n {
        for (k, id) in [feeds.authorid[f], feeds.bgm_song_id[f], feeds.bgm_singer_id[f]].into_iter().enumerate() {
            let index = id.map_or(0, |id| {
                vocabs[1 + k].add(id);
                vocabs[1 + k].get(id)
            });
            of_feed[k].push(index);
        }
        for &t in &feeds.tags[feeds.tag_offsets[f]..feeds.tag_offsets[f + 1]] {
            tag_vocab.add(t);
        }
    }
    let [author, song, singer] = of_feed;
    let seconds = feeds.videoplayseconds.iter().map(|&v| v.ln_1p() as f32).collect();
    FeedSide { vocabs, tag_vocab, author, song, singer, seconds }
}

/// The action log keyed: the internal user, feed and device key of every
/// row (feed_info row k is internal feed k), the target-day rows in file
/// order, and the user and device vocabularies (first appearance on the
/// target days) as each key's index.
struct LogKeys {
    users: Vec<u32>,
    feeds: Vec<u32>,
    devices: Vec<u32>,
    n_users: usize,
    n_feeds: usize,
    rows: Vec<u32>,
    user_index: Vec<i32>,
    user_ids: Vec<i64>,
    device_index: Vec<i32>,
    device_ids: Vec<i64>,
}

fn log_keys(actions: &RawActions, feeds: &RawFeeds, first_target: usize) -> LogKeys {
    let keyed = |ids: &[i64]| {
        let mut it = Interner::for_ids(&[ids]);
        let keys = it.keys(ids);
        (keys, it.len())
    };
    let ((users, n_users), (devices, n_devices), (feed_keys, n_feeds)) = std::thread::scope(|sc| {
        let feed_keys = sc.spawn(|| {
            let mut it = Interner::for_ids(&[&feeds.feedid, &actions.feedid]);
            // feed_info first (its ids are unique), so that internal feed k is feed_info row k.
            it.keys(&feeds.feedid);
            let keys = it.keys(&actions.feedid);
            (keys, it.len())
        });
        let devices = sc.spawn(|| keyed(&actions.device));
        let users = keyed(&actions.userid);
        let join = |h: std::thread::ScopedJoinHandle<'_, (Vec<u32>, usize)>| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (users, join(devices), join(feed_keys))
    });
    let rows: Vec<u32> = (0..actions.rows()).filter(|&r| actions.day[r] as usize >= first_target).map(|r| r as u32).collect();
    let (user_index, user_ids) = first_appearance(&users, &actions.userid, n_users, &rows);
    let (device_index, device_ids) = first_appearance(&devices, &actions.device, n_devices, &rows);
    LogKeys { users, feeds: feed_keys, devices, n_users, n_feeds, rows, user_index, user_ids, device_index, device_ids }
}

/// Each user's read_comment actions, grouped by user key (user u's are
/// `start[u]..start[u + 1]`): in file order as (day, feed index) for the
/// histories, and as (author index, day) sorted for the user x author sums.
struct Reads {
    start: Vec<usize>,
    in_order: Vec<(u8, i32)>,
    by_author: Vec<(i32, u8)>,
}

fn reads(actions: &RawActions, keys: &LogKeys, side: &FeedSide) -> Reads {
    let read = |r: usize| actions.actions[r] & 1 == 1;
    let mut start = vec![0usize; keys.n_users + 1];
    for r in (0..actions.rows()).filter(|&r| read(r)) {
        start[keys.users[r] as usize + 1] += 1;
    }
    for u in 0..keys.n_users {
        start[u + 1] += start[u];
    }
    let total = start[keys.n_users];
    let (mut in_order, mut by_author) = (vec![(0u8, 0i32); total], vec![(0i32, 0u8); total]);
    let mut next = start.clone();
    let feed_rows = side.author.len();
    for r in (0..actions.rows()).filter(|&r| read(r)) {
        let (u, f, d) = (keys.users[r] as usize, keys.feeds[r] as usize, actions.day[r]);
        let (feed, author) = if f < feed_rows { (f as i32 + 1, side.author[f]) } else { (0, 0) };
        in_order[next[u]] = (d, feed);
        by_author[next[u]] = (author, d);
        next[u] += 1;
    }
    for u in 0..keys.n_users {
        by_author[start[u]..start[u + 1]].sort_unstable();
    }
    Reads { start, in_order, by_author }
}

impl Reads {
    /// User `u`'s read_comment actions on feeds of `author` (> 0) on days lo..=hi.
    fn of_author(&self, u: u32, author: i32, lo: usize, hi: usize) -> u32 {
        let mine = &self.by_author[self.start[u as usize]..self.start[u as usize + 1]];
        let from = mine.partition_point(|&(a, _)| a < author);
        mine[from..].iter().take_while(|&&(a, _)| a == author).filter(|&&(_, d)| (lo..=hi).contains(&(d as usize))).count() as u32
    }

    /// User `u`'s read feeds (feed vocabulary indices) on days lo..=hi, in file order.
    fn feeds_in(&self, u: u32, lo: usize, hi: usize) -> impl Iterator<Item = i32> + '_ {
        self.in_order[self.start[u as usize]..self.start[u as usize + 1]]
            .iter()
            .filter(move |(d, _)| (lo..=hi).contains(&(*d as usize)))
            .map(|&(_, f)| f)
    }
}

/// What each output row's features are read from.
struct Sources<'a> {
    actions: &'a RawActions,
    keys: LogKeys,
    side: FeedSide,
    reads: Reads,
    user_sums: WindowSums,
    feed_sums: WindowSums,
    ln1p: Ln1p,
    /// Days 0..=the last day of the log.
    days: usize,
}

fn sources<'a>(actions: &'a RawActions, feeds: &RawFeeds, first_target: usize) -> Sources<'a> {
    let side = feed_side(feeds);
    let keys = log_keys(actions, feeds, first_target);
    let max_day = actions.day.iter().copied().max().unwrap_or(0) as usize;
    let targets = Targets { first: first_target, count: (max_day + 1).saturating_sub(first_target) };
    let ln1p = Ln1p::new();
    let (days, bits, w) = (&actions.day, &actions.actions, WINDOW as usize);
    let (user_sums, feed_sums, reads) = std::thread::scope(|sc| {
        let (keys, ln1p) = (&keys, &ln1p);
        let feed_sums = sc.spawn(move || WindowSums::new(&keys.feeds, keys.n_feeds, days, bits, targets, w, ln1p));
        let user_sums = WindowSums::new(&keys.users, keys.n_users, days, bits, targets, w, ln1p);
        let reads = reads(actions, keys, &side);
        (user_sums, feed_sums.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), reads)
    });
    Sources { actions, keys, side, reads, user_sums, feed_sums, ln1p, days: max_day + 1 }
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
    let (actions, k, side) = (s.actions, &s.keys, &s.side);
    let feed_rows = side.author.len();
    let na = ACTIONS.len();
    let Piece { day, mut categorical, mut dense, actions: mut labels, tag_list } = p;
    for (i, &r) in rows.iter().enumerate() {
        let r = r as usize;
        let d = actions.day[r] as usize;
        let (u, f) = (k.users[r], k.feeds[r]);
        let fi = f as usize;
        let info = fi < feed_rows;
        day[i] = d as i32;
        let author = if info { side.author[fi] } else { 0 };
        let cats = [
            k.user_index[u as usize],
            if info { fi as i32 + 1 } else { 0 },
            k.device_index[k.devices[r] as usize],
            author,
            if info { side.song[fi] } else { 0 },
            if info { side.singer[fi] } else { 0 },
        ];
        for (col, c) in categorical.iter_mut().zip(cats) {
            col[i] = c;
        }
        dense[0][i] = if info { side.seconds[fi] } else { 0.0 };
        let (user, feed) = (s.user_sums.of(u, d), s.feed_sums.of(f, d));
        let bits = actions.actions[r];
        for a in 0..na {
            dense[1 + a][i] = user[a];
            dense[1 + na + a][i] = feed[a];
            labels[a][i] = (bits >> a & 1) as i32;
        }
        let cross = if author > 0 { s.reads.of_author(u, author, d - WINDOW as usize, d - 1) } else { 0 };
        dense[1 + 2 * na][i] = s.ln1p.of(cross);
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
fn histories(s: &Sources<'_>) -> Result<Ragged, EtlError> {
    let mut out = Ragged::new();
    let stride = s.days;
    let mut list_of = vec![u32::MAX; s.keys.n_users * stride];
    let mut window = Vec::new();
    for &r in &s.keys.rows {
        let r = r as usize;
        let (u, d) = (s.keys.users[r], s.actions.day[r] as usize);
        let slot = &mut list_of[u as usize * stride + d];
        if *slot == u32::MAX {
            window.clear();
            window.extend(s.reads.feeds_in(u, d - WINDOW as usize, d - 1));
            *slot = out.push_list(&window[window.len().saturating_sub(HISTORY_LEN)..]).map_err(EtlError)?;
        }
        out.push_row(*slot);
    }
    Ok(out)
}

/// Runs the ETL. The keys of users, feeds and devices, the windowed sums
/// of users and of feeds, and the per-row features (in row pieces, one
/// thread per core, beside the history lists) are computed at once; every
/// order (rows, vocabularies, lists) is the file order, whatever the
/// number of threads.
pub fn build(actions: &RawActions, feeds: &RawFeeds) -> Result<WechatFeatures, EtlError> {
    let first_target = WINDOW as usize + 1;
    let s = sources(actions, feeds, first_target);
    let n = s.keys.rows.len();
    let mut out = WechatFeatures {
        day: vec![0; n],
        categorical: vec![vec![0; n]; CATEGORICAL.len()],
        dense: vec![vec![0.0; n]; dense_names().len()],
        actions: vec![vec![0; n]; ACTIONS.len()],
        tags: tag_lists(feeds, &s.side.tag_vocab),
        ..Default::default()
    };
    let mut tag_list = vec![0u32; n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 8);
    let chunk = n.div_ceil(threads).max(1);
    let history = std::thread::scope(|sc| {
        let s = &s;
        let history = sc.spawn(move || histories(s));
        let mut day = out.day.chunks_mut(chunk);
        let mut cat: Vec<_> = out.categorical.iter_mut().map(|c| c.chunks_mut(chunk)).collect();
        let mut dense: Vec<_> = out.dense.iter_mut().map(|c| c.chunks_mut(chunk)).collect();
        let mut labels: Vec<_> = out.actions.iter_mut().map(|c| c.chunks_mut(chunk)).collect();
        let mut tags = tag_list.chunks_mut(chunk);
        for rs in s.keys.rows.chunks(chunk) {
            let (Some(day), Some(tag_list)) = (day.next(), tags.next()) else { break };
            let piece = Piece { day, categorical: next_pieces(&mut cat), dense: next_pieces(&mut dense), actions: next_pieces(&mut labels), tag_list };
            sc.spawn(move || fill(s, rs, piece));
        }
        history.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    out.history = history?;
    out.tags.row_list = tag_list;
    let Sources { keys, side, .. } = s;
    let [feed_vocab, author_vocab, song_vocab, singer_vocab] = side.vocabs;
    out.vocabs = vec![Vocab::from_ids(keys.user_ids), feed_vocab, Vocab::from_ids(keys.device_ids), author_vocab, song_vocab, singer_vocab];
    out.tag_vocab = side.tag_vocab;
    Ok(out)
}
