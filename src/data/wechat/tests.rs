//! Tests of the WeChat source: the ETL on a hand-made pair of files whose
//! features are worked out by hand below, the cache, and bad input.

use std::path::Path;

use super::raw::RawActions;
use super::*;
use crate::data::schema::SplitData;

const FEEDS: &str = "\
feedid,authorid,videoplayseconds,description,ocr,asr,bgm_song_id,bgm_singer_id,manual_keyword_list,machine_keyword_list,manual_tag_list,machine_tag_list,description_char,ocr_char,asr_char
100,7,10,1 2,,,55,66,,,3;4,3 0.9,,,
200,8,20,,,,,,,,4,,,,
300,7,30,,,,56.0,66,,,,,,,
";

// Rows (line = row + 1): userid,feedid,date_,device,read_comment,comment,like,play,stay,click_avatar,forward,follow,favorite
const ACTIONS_CSV: &str = "\
userid,feedid,date_,device,read_comment,comment,like,play,stay,click_avatar,forward,follow,favorite
1,100,1,1,1,0,1,500,900,0,0,0,0
1,200,2,1,1,0,0,500,900,0,0,0,0
1,300,7,1,0,0,0,500,900,1,0,0,0
2,100,5,2,1,0,0,500,900,0,1,0,0
1,100,8,1,1,1,0,500,900,0,0,0,0
2,999,8,2,0,0,1,500,900,0,0,0,0
1,300,9,2,0,0,0,500,900,0,0,1,0
3,200,9,1,0,0,0,500,900,0,0,0,1
1,200,14,1,1,0,0,500,900,0,0,0,0
2,300,3,2,1,0,0,500,900,0,0,0,0
";

fn write_pair(dir: &Path, actions: &str, feeds: &str) {
    std::fs::write(dir.join(ACTION_FILE), actions).unwrap();
    std::fs::write(dir.join(FEED_FILE), feeds).unwrap();
}

fn cfg(dir: &Path, tasks: &[&str], split: DaySplit) -> WechatConfig {
    WechatConfig { path: dir.to_path_buf(), tasks: tasks.iter().map(|s| s.to_string()).collect(), split, dense: None }
}

fn small_split() -> DaySplit {
    DaySplit { train: vec![8], valid: vec![9], test: vec![14] }
}

fn ln1p(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| x.ln_1p() as f32).collect()
}

fn row<T: Copy>(block: &[T], width: usize, r: usize) -> Vec<T> {
    block[r * width..(r + 1) * width].to_vec()
}

fn entries(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("wechat")).map_or(0, |d| d.count())
}

#[test]
fn etl_matches_features_worked_out_by_hand() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_pair(data.path(), ACTIONS_CSV, FEEDS);
    let ds = load(&cfg(data.path(), &["read_comment", "comment", "favorite"], small_split()), cache.path()).unwrap();
    let s = &ds.schema;
    // Vocabularies: userid/device from target-day actions in file order
    // (u1, u2, u3; devices 1, 2), feeds/authors/bgm/tags from feed_info.
    let sizes: Vec<i64> = s.categorical.iter().map(|c| c.vocab_size).collect();
    assert_eq!(sizes, vec![4, 4, 3, 3, 3, 2]);
    assert_eq!((s.multi[0].name.as_str(), s.multi[0].vocab_size, s.multi[0].max_len), ("manual_tag_list", 3, 2));
    assert_eq!((s.multi[1].name.as_str(), s.multi[1].max_len), ("his_read_comment_7d_seq", 2));
    assert_eq!(s.multi[1].shares_table_with.as_deref(), Some("feedid"));
    assert_eq!(s.dense.len(), 16);
    assert_eq!((ds.train.rows, ds.valid.rows, ds.test.rows), (2, 2, 1));

    // Train = day 8: action lines 6 and 7 (window days 1..7).
    let t = &ds.train;
    // line 6: u1 saw feed 100 (author 7, song 55, singer 66).
    assert_eq!(row(&t.categorical, 6, 0), vec![1, 1, 1, 1, 1, 1]);
    // u1 in days 1..7: rc 2, like 1, click_avatar 1; feed 100: rc 2 (u1 d1,
    // u2 d5), like 1, forward 1; u1 x author 7 read_comment: 1 (day 1).
    assert_eq!(row(&t.dense, 16, 0), ln1p(&[10., 2., 1., 1., 0., 0., 0., 0., 2., 1., 0., 1., 0., 0., 0., 1.]));
    assert_eq!(row(&t.labels, 3, 0), vec![1.0, 1.0, 0.0]);
    // History: feeds 100, 200 in file order; tags of feed 100: 3, 4.
    assert_eq!(row(&t.multi[1].to_padded(2).0, 2, 0), vec![1, 2]);
    assert_eq!(row(&t.multi[0].to_padded(2).0, 2, 0), vec![1, 2]);
    assert_eq!(row(&t.multi[0].to_padded(2).1, 2, 0), vec![1.0, 1.0]);
    // line 7: u2 saw feed 999, unknown to feed_info: OOV ids, no tags, 0 s.
    assert_eq!(row(&t.categorical, 6, 1), vec![2, 0, 2, 0, 0, 0]);
    assert_eq!(row(&t.dense, 16, 1), ln1p(&[0., 2., 0., 0., 1., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0.]));
    // u2 read feed 100 on day 5 (line 5) and feed 300 on day 3 (line 11):
    // file order, not day order.
    assert_eq!(row(&t.multi[1].to_padded(2).0, 2, 1), vec![1, 3]);
    assert_eq!(row(&t.multi[0].to_padded(2).1, 2, 1), vec![0.0, 0.0]);
    assert_eq!(t.users, vec![1, 2]);

    // Validation = day 9 (window 2..8): lines 8 and 9.
    let v = &ds.valid;
    assert_eq!(row(&v.categorical, 6, 0), vec![1, 3, 2, 1, 2, 1]);
    // u1 days 2..8: rc 2 (d2, d8), click_avatar 1, comment 1; feed 300: rc 1
    // (u2 d3), click_avatar 1 (u1 d7); u1 x author 7 rc: 1 (feed 100 on d8).
    assert_eq!(row(&v.dense, 16, 0), ln1p(&[30., 2., 0., 1., 0., 1., 0., 0., 1., 0., 1., 0., 0., 0., 0., 1.]));
    assert_eq!(row(&v.multi[1].to_padded(2).0, 2, 0), vec![2, 1]);
    assert_eq!(row(&v.labels, 3, 0), vec![0.0, 0.0, 0.0]);
    // u3 is new: nothing in the window; feed 200 was read on day 2.
    assert_eq!(row(&v.categorical, 6, 1), vec![3, 2, 1, 2, 0, 0]);
    assert_eq!(row(&v.dense, 16, 1), ln1p(&[20., 0., 0., 0., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0., 0., 0.]));
    assert_eq!(row(&v.multi[1].to_padded(2).1, 2, 1), vec![0.0, 0.0]);
    assert_eq!(row(&v.labels, 3, 1), vec![0.0, 0.0, 1.0]);

    // Test = day 14 (window 7..13): u1 has click_avatar d7, rc + comment d8,
    // follow d9; feed 200 has favorite d9; no u1 x author 8 read.
    let te = &ds.test;
    assert_eq!(row(&te.categorical, 6, 0), vec![1, 2, 1, 2, 0, 0]);
    assert_eq!(row(&te.dense, 16, 0), ln1p(&[20., 1., 0., 1., 0., 1., 1., 0., 0., 0., 0., 0., 0., 0., 1., 0.]));
    assert_eq!(row(&te.multi[1].to_padded(2).0, 2, 0), vec![1, 0]);
    assert_eq!(row(&te.multi[1].to_padded(2).1, 2, 0), vec![1.0, 0.0]);
    assert_eq!(row(&te.multi[0].to_padded(2).0, 2, 0), vec![2, 0]);
    assert_eq!(row(&te.labels, 3, 0), vec![1.0, 0.0, 0.0]);
    for split in [&ds.train, &ds.valid, &ds.test] {
        split.check(&ds.schema).unwrap();
    }
}

#[test]
fn history_keeps_the_last_50_reads_of_the_window() {
    let mut a = RawActions::default();
    // 60 reads on days 1..=7 (feeds 1..=60), one read on day 8 outside the
    // window of day 8, then the target row.
    for i in 0..60 {
        a.userid.push(5);
        a.feedid.push(i + 1);
        a.day.push(1 + (i % 7) as u8);
        a.device.push(1);
        a.actions.push(1);
    }
    for (feed, day) in [(61, 8), (1, 8)] {
        a.userid.push(5);
        a.feedid.push(feed);
        a.day.push(day);
        a.device.push(1);
        a.actions.push(if feed == 61 { 1 } else { 0 });
    }
    let feeds = raw::RawFeeds {
        feedid: (1..=61).collect(),
        authorid: vec![Some(1); 61],
        videoplayseconds: vec![5.0; 61],
        bgm_song_id: vec![None; 61],
        bgm_singer_id: vec![None; 61],
        tag_offsets: vec![0; 62],
        tags: vec![],
    };
    let f = etl::build(&a, &feeds).unwrap();
    assert_eq!(f.rows(), 2);
    let want: Vec<i32> = (11..=60).collect();
    for r in 0..2 {
        assert_eq!(f.history.row(r), want.as_slice(), "row {r}");
    }
    // Both rows are user 5 on day 8: one history list, held once.
    assert_eq!((f.history.lists.len(), f.history.row_list.clone()), (1, vec![0, 0]));
    // Tags: list 0 empty, then one list per feed_info row (feeds 61 and 1).
    assert_eq!((f.tags.lists.len(), f.tags.row_list.clone()), (62, vec![61, 1]));
    // The user read 60 feeds of author 1 in days 1..7.
    assert_eq!(f.dense[15][1], 60f64.ln_1p() as f32);
}

#[test]
fn a_log_without_target_days_gives_no_rows() {
    let a = RawActions { userid: vec![5, 6], feedid: vec![1, 2], day: vec![3, 7], device: vec![1, 1], actions: vec![1, 0] };
    let feeds = raw::RawFeeds { feedid: vec![1], authorid: vec![Some(1)], videoplayseconds: vec![5.0], tag_offsets: vec![0, 0], ..Default::default() };
    let feeds = raw::RawFeeds { bgm_song_id: vec![None], bgm_singer_id: vec![None], ..feeds };
    let f = etl::build(&a, &feeds).unwrap();
    assert_eq!((f.rows(), f.vocabs[0].size(), f.history.rows()), (0, 1, 0));
}

#[test]
fn cache_is_reused_and_invalidated_when_an_input_changes() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_pair(data.path(), ACTIONS_CSV, FEEDS);
    let c = cfg(data.path(), &["read_comment"], small_split());
    let first = load(&c, cache.path()).unwrap();
    assert_eq!(entries(cache.path()), 1);
    let entry = std::fs::read_dir(cache.path().join("wechat")).unwrap().next().unwrap().unwrap().path();
    let written = std::fs::metadata(entry.join(store::FEATURES_FILE)).unwrap().modified().unwrap();
    let again = load(&c, cache.path()).unwrap();
    assert_eq!(again.digest, first.digest);
    assert_eq!(again.train, first.train);
    assert_eq!(std::fs::metadata(entry.join(store::FEATURES_FILE)).unwrap().modified().unwrap(), written, "cache rewritten");
    // The cached table is ordinary Parquet with the reference's column names.
    let cols = crate::data::parquet_io::read_table(&entry.join(store::FEATURES_FILE)).unwrap();
    assert!(cols.iter().any(|(n, _)| n == "c_user_author_read_comment_7d_sum"));

    // Feed 100 becomes 11 s long: new digest, new entry, new feature value.
    write_pair(data.path(), ACTIONS_CSV, &FEEDS.replace("100,7,10,", "100,7,11,"));
    let changed = load(&c, cache.path()).unwrap();
    assert_ne!(changed.digest, first.digest);
    assert_eq!(entries(cache.path()), 2);
    assert_eq!(changed.train.dense[0], 11f64.ln_1p() as f32);
    // Other tasks or splits reuse the same features but are other datasets.
    let other = load(&cfg(data.path(), &["like"], small_split()), cache.path()).unwrap();
    assert_eq!(entries(cache.path()), 2);
    assert_ne!(other.digest, changed.digest);
}

#[test]
fn dense_features_can_be_encoded_with_edges_from_the_train_days() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_pair(data.path(), ACTIONS_CSV, FEEDS);
    let plain = load(&cfg(data.path(), &["read_comment"], small_split()), cache.path()).unwrap();
    let enc = |transform, keep_dense| crate::data::numeric::DenseEncoding {
        transform,
        bins: Some(4),
        activation: None,
        sigma: None,
        frequencies: None,
        keep_dense,
        emb_dim: 3,
    };
    let mut c = cfg(data.path(), &["read_comment"], small_split());
    c.dense = Some(enc(crate::data::numeric::EncodingKind::Quantile, false));
    let ds = load(&c, cache.path()).unwrap();
    assert_ne!(ds.digest, plain.digest);
    assert_eq!(ds.schema.numeric.len(), plain.schema.dense.len());
    assert!(ds.schema.dense.is_empty() && ds.train.dense.is_empty());
    // Day 8 (train) plays feeds 100 (10 s) and 999 (unknown: 0 s); days 9 and 14 play 20 s and 30 s.
    // Two train values, four bins: numpy's interpolated quantiles 0, a/4, a/2, 3a/4, a (a = ln 11).
    let play = &ds.schema.numeric[0];
    let a = 10f64.ln_1p() as f32 as f64;
    assert_eq!((play.name.as_str(), play.edges.clone()), ("videoplayseconds", vec![0.0, a * 0.25, a * 0.5, a * 0.75, a]));
    assert_eq!((play.bins(), play.emb_dim), (4, 3));
    let nf = ds.schema.numeric.len();
    let mut train_bins = vec![ds.train.numeric_ids[0], ds.train.numeric_ids[nf]];
    train_bins.sort();
    assert_eq!(train_bins, vec![1, 4], "0 s in the first bin, 10 s at the last edge");
    for r in 0..ds.valid.rows {
        assert_eq!(ds.valid.numeric_ids[r * nf], 4, "20 s and 30 s lie beyond the train edges: the open last bin");
        assert!(ds.valid.numeric_values[r * nf] > 1.0);
    }
    for s in [&ds.train, &ds.valid, &ds.test] {
        assert_eq!(s.check(&ds.schema), Ok(()));
    }
    // keep_dense keeps the 16 scalars, standardized with the train days' statistics.
    c.dense = Some(enc(crate::data::numeric::EncodingKind::PiecewiseLinear, true));
    let kept = load(&c, cache.path()).unwrap();
    assert_eq!(kept.schema.dense, plain.schema.dense);
    let mut z = [kept.train.dense[0], kept.train.dense[16]];
    z.sort_by(f32::total_cmp);
    assert!((z[0] + 1.0).abs() < 1e-6 && (z[1] - 1.0).abs() < 1e-6, "0 s and 10 s: -1 and +1, got {z:?}");
    // A bad setting is refused, naming the key.
    c.dense = Some(crate::data::numeric::DenseEncoding { bins: Some(1), ..enc(crate::data::numeric::EncodingKind::Quantile, false) });
    let e = load(&c, cache.path()).unwrap_err().to_string();
    assert!(e.contains("data.dense.bins") && e.contains("at least 2 bins"), "{e}");
}

fn load_err(actions: &str, feeds: &str, split: DaySplit) -> (String, usize) {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_pair(data.path(), actions, feeds);
    let e = load(&cfg(data.path(), &["read_comment"], split), cache.path()).unwrap_err();
    (e.to_string(), entries(cache.path()))
}

#[test]
fn bad_input_names_file_line_and_column_and_leaves_no_cache() {
    let cases: [(String, String, &str); 5] = [
        (ACTIONS_CSV.replace("date_", "day"), FEEDS.into(), "user_action.csv: line 1: missing column `date_`"),
        (
            ACTIONS_CSV.replace("3,200,9,1", "x3,200,9,1"),
            FEEDS.into(),
            "user_action.csv, line 9, column `userid`: expected an integer, found `x3`",
        ),
        (ACTIONS_CSV.replace("2,999,8,2,0,0,1", "2,999,8,2,0,0,2"), FEEDS.into(), "line 7, column `like`: expected a 0/1 label, found `2`"),
        (ACTIONS_CSV.into(), FEEDS.replace("200,8,20", "200,8,twenty"), "feed_info.csv, line 3, column `videoplayseconds`"),
        (
            ACTIONS_CSV.into(),
            FEEDS.replace("300,7,30", "100,7,30"),
            "feed_info.csv, line 4, column `feedid`: feedid 100 appears twice (first on line 2)",
        ),
    ];
    for (actions, feeds, want) in cases {
        let (msg, left) = load_err(&actions, &feeds, small_split());
        assert!(msg.contains(want), "`{msg}` lacks `{want}`");
        assert_eq!(left, 0, "a cache entry was left after: {msg}");
    }
    let (msg, _) = load_err(ACTIONS_CSV, FEEDS, DaySplit { train: vec![8], valid: vec![10], test: vec![14] });
    assert!(msg.contains("split `validation` is empty") && msg.contains("[10]"), "{msg}");
    let (msg, _) = load_err(ACTIONS_CSV, FEEDS, DaySplit { train: vec![5], valid: vec![9], test: vec![14] });
    assert!(msg.contains("data.split.train") && msg.contains("day 5"), "{msg}");

    let empty = tempfile::tempdir().unwrap();
    let e = load(&cfg(empty.path(), &["like"], small_split()), empty.path()).unwrap_err().to_string();
    assert!(e.contains("user_action.csv") && e.contains("not found"), "{e}");
    let e = load(&cfg(empty.path(), &["likes"], small_split()), empty.path()).unwrap_err().to_string();
    assert!(e.contains("data.tasks") && e.contains("unknown action `likes`"), "{e}");
}

/// Row-level helper for the synthetic tests: (labels of `task`, a dense column).
pub(super) fn column_pair(s: &SplitData, n_tasks: usize, task: usize, dense: usize) -> (Vec<f32>, Vec<f32>) {
    let labels = s.task_labels(task, n_tasks);
    let x = (0..s.rows).map(|r| s.dense[r * 16 + dense]).collect();
    (labels, x)
}

mod synthetic {
    use super::super::synth::{write_dir, SynthParams, TARGET_RATES};
    use super::*;
    use crate::metrics::auc;

    fn params(users: usize, feeds: usize, seed: u64, relatedness: f64) -> SynthParams {
        SynthParams { users, feeds, seed, days: 14, relatedness }
    }

    #[test]
    fn same_seed_gives_byte_identical_files() {
        let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_dir(&params(300, 900, 11, 0.5), a.path()).unwrap();
        write_dir(&params(300, 900, 11, 0.5), b.path()).unwrap();
        write_dir(&params(300, 900, 12, 0.5), c.path()).unwrap();
        for f in [ACTION_FILE, FEED_FILE] {
            let (x, y, z) = (
                std::fs::read(a.path().join(f)).unwrap(),
                std::fs::read(b.path().join(f)).unwrap(),
                std::fs::read(c.path().join(f)).unwrap(),
            );
            assert!(x == y, "{f} differs between two runs with the same seed");
            assert!(x != z, "{f} is the same for another seed");
        }
        let header = std::fs::read_to_string(a.path().join(ACTION_FILE)).unwrap();
        let header = header.lines().next().unwrap();
        assert_eq!(header.split(',').count(), 13);
        let feeds = std::fs::read_to_string(a.path().join(FEED_FILE)).unwrap();
        for line in feeds.lines() {
            assert_eq!(line.split(',').count(), 15, "{line}");
        }
    }

    /// Positive rates within 10% of docs/reference.md (plus three binomial standard
    /// errors for the rarest actions at this modest size), funnels contained,
    /// and the ids and 7-day sums predictive of the next day's actions.
    #[test]
    fn rates_funnels_and_signal_look_like_the_real_data() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let r = write_dir(&params(1500, 4000, 3, 0.5), dir.path()).unwrap();
        let expected_rows = 1500.0 * 14.0 * synth::ACTIONS_PER_USER_DAY;
        assert!((r.rows as f64 / expected_rows - 1.0).abs() < 0.15, "{} rows", r.rows);
        for (a, &target) in ACTIONS.iter().zip(&TARGET_RATES) {
            let rate = r.positives[ACTIONS.iter().position(|x| x == a).unwrap()] as f64 / r.rows as f64;
            let se = (target * (1.0 - target) / r.rows as f64).sqrt();
            let tol = 0.10 * target + 3.0 * se;
            assert!((rate - target).abs() <= tol, "{a}: rate {rate:.5} vs {target:.5} (tolerance {tol:.5})");
        }
        let tasks = ["read_comment", "like", "click_avatar", "comment", "follow"];
        let ds = load(&cfg(dir.path(), &tasks, DaySplit::default()), cache.path()).unwrap();
        let (f, _) = features(dir.path(), cache.path()).unwrap();
        for &(child, parent) in &synth::FUNNELS {
            let pos = f.actions[child].iter().filter(|&&y| y == 1).count();
            let both = f.actions[child].iter().zip(&f.actions[parent]).filter(|(&c, &p)| c == 1 && p == 1).count();
            let share = both as f64 / pos as f64;
            assert!(share > 0.7, "{} within {}: {share}", ACTIONS[child], ACTIONS[parent]);
        }
        // 7-day user and feed read_comment sums rank next-day reads.
        let (y, u_sum) = column_pair(&ds.test, tasks.len(), 0, 1);
        let (_, i_sum) = column_pair(&ds.test, tasks.len(), 0, 8);
        let (au, ai) = (auc(&y, &u_sum).unwrap(), auc(&y, &i_sum).unwrap());
        assert!(au > 0.6, "u_read_comment_7d_sum AUC {au}");
        assert!(ai > 0.55, "i_read_comment_7d_sum AUC {ai}");
        // The user id alone: each user's train read rate scores the test day.
        let mut per_user = std::collections::HashMap::<i64, (f32, f32)>::new();
        for (i, &u) in ds.train.users.iter().enumerate() {
            let e = per_user.entry(u).or_default();
            e.0 += ds.train.labels[i * tasks.len()];
            e.1 += 1.0;
        }
        let score: Vec<f32> = ds.test.users.iter().map(|u| per_user.get(u).map_or(0.0, |(p, n)| p / n)).collect();
        let a_user = auc(&y, &score).unwrap();
        assert!(a_user > 0.6, "userid AUC {a_user}");
    }

    /// Lift of like among read_comment rows: P(like | rc) / P(like).
    fn like_lift(relatedness: f64) -> f64 {
        let dir = tempfile::tempdir().unwrap();
        write_dir(&params(500, 1500, 5, relatedness), dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(ACTION_FILE)).unwrap();
        let (mut n, mut rc, mut like, mut both) = (0f64, 0f64, 0f64, 0f64);
        for line in text.lines().skip(1) {
            let v: Vec<&str> = line.split(',').collect();
            let (r, l) = (v[4] == "1", v[6] == "1");
            n += 1.0;
            rc += r as u8 as f64;
            like += l as u8 as f64;
            both += (r && l) as u8 as f64;
        }
        (both / rc) / (like / n)
    }

    #[test]
    fn relatedness_couples_the_tasks() {
        let (low, high) = (like_lift(0.0), like_lift(1.0));
        assert!(high > 1.5 * low, "lift of like given read_comment: {low:.2} at relatedness 0, {high:.2} at 1");
    }
}
