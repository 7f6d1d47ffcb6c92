//! Data-stage benchmark at WeChat scale: synthetic generation
//! (target <= 60 s), raw files -> cached features (<= 60 s, <= 4 GB peak
//! RSS), cached reload (<= 5 s), and the training-ready dataset built from
//! the cache, then its train split as tensors and 500 shuffled batches of
//! 1024 rows (the multi-valued fields ragged: one copy per distinct list;
//! the epoch's permutation drawn before the timing). One-shot
//! phases of seconds each, so plain timing, not
//! criterion. Sizes: MTLBENCH_BENCH_USERS (default 20000) and
//! MTLBENCH_BENCH_FEEDS (default 106444); files go to a temporary folder
//! (or MTLBENCH_BENCH_DIR). MTLBENCH_BENCH_RAW names a folder of raw files
//! to use instead of generating them (the real WeChat files, or a folder
//! generated before); MTLBENCH_BENCH_ETL_ONLY=1 stops after the raw ->
//! cache phases and the reload. The `content` line is a digest of every feature value,
//! list and vocabulary, so two builds of the ETL can be checked to give the
//! same features. For peak memory per phase, run the CLI steps under
//! /usr/bin/time -v (README).

use std::time::Instant;

use mtlbench::data::wechat::{self, synth, DaySplit, WechatConfig};
use mtlbench::data::SplitTensors;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn usage() -> libc::rusage {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u
}

fn peak_rss_mb() -> f64 {
    usage().ru_maxrss as f64 / 1024.0
}

/// User + system CPU seconds so far (all threads).
fn cpu_s() -> f64 {
    let u = usage();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Wall and CPU seconds since `(t, c)`.
fn since(t: Instant, c: f64) -> String {
    format!("{:>6.1} s wall {:>6.1} s CPU", t.elapsed().as_secs_f64(), cpu_s() - c)
}

/// blake3 of every value of the features, in order (16 hex digits): two
/// builds of the ETL agree on the features when their digests agree.
fn content_digest(f: &wechat::etl::WechatFeatures) -> String {
    let mut h = blake3::Hasher::new();
    let mut put = |bytes: Vec<u8>| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    };
    let i32s = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    put(i32s(&f.day));
    for c in f.categorical.iter().chain(&f.actions) {
        put(i32s(c));
    }
    for c in &f.dense {
        put(c.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect());
    }
    for r in [&f.history, &f.tags] {
        put(r.lists.offsets.iter().flat_map(|&o| (o as u64).to_le_bytes()).collect());
        put(i32s(&r.lists.values));
        put(r.row_list.iter().flat_map(|x| x.to_le_bytes()).collect());
    }
    for v in f.vocabs.iter().chain([&f.tag_vocab]) {
        put(v.ids.iter().flat_map(|x| x.to_le_bytes()).collect());
    }
    h.finalize().to_hex()[..16].to_string()
}

/// The phases of raw -> cache one by one (digests, parse, ETL, Parquet).
fn phases(raw: &std::path::Path) {
    let (t, c) = (Instant::now(), cpu_s());
    for name in [wechat::ACTION_FILE, wechat::FEED_FILE] {
        mtlbench::data::cache::file_digest(&raw.join(name)).expect("digest");
    }
    println!("  digests  {}", since(t, c));
    let (t, c) = (Instant::now(), cpu_s());
    let actions = wechat::raw::read_actions(&raw.join(wechat::ACTION_FILE)).expect("actions");
    println!("  actions  {}  parse {} rows", since(t, c), actions.rows());
    let (t, c) = (Instant::now(), cpu_s());
    let feeds = wechat::raw::read_feeds(&raw.join(wechat::FEED_FILE)).expect("feeds");
    println!("  feeds    {}  parse {} rows", since(t, c), feeds.feedid.len());
    let (t, c) = (Instant::now(), cpu_s());
    let f = wechat::etl::build(&actions, &feeds).expect("ETL");
    println!("  etl      {}", since(t, c));
    println!("  content  {}  (digest of the features)", content_digest(&f));
    drop((actions, feeds));
    let out = tempfile::tempdir().expect("temp dir");
    let (t, c) = (Instant::now(), cpu_s());
    wechat::store::write(out.path(), &f, wechat::ETL_VERSION, &[]).expect("write");
    println!("  write    {}  Parquet", since(t, c));
}

fn main() {
    let users = env_or("MTLBENCH_BENCH_USERS", 20_000);
    let feeds = env_or("MTLBENCH_BENCH_FEEDS", 106_444);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = std::env::var("MTLBENCH_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| tmp.path().to_path_buf());
    let raw = root.join("raw");
    let cache = root.join("cache");
    let _ = std::fs::remove_dir_all(&cache);

    let p = synth::SynthParams { users, feeds, seed: 1, days: 14, relatedness: 0.5 };
    let (t, c) = (Instant::now(), cpu_s());
    let raw = match std::env::var("MTLBENCH_BENCH_RAW") {
        Ok(dir) => std::path::PathBuf::from(dir),
        Err(_) => {
            let r = synth::write_dir(&p, &raw).expect("generation");
            println!("generate   {}  {} actions ({} users, {} feeds)  peak RSS {:.0} MB", since(t, c), r.rows, users, feeds, peak_rss_mb());
            raw
        }
    };

    let (t, c) = (Instant::now(), cpu_s());
    let (f, _) = wechat::features(&raw, &cache).expect("ETL");
    println!("raw->cache {}  {} feature rows  peak RSS {:.0} MB", since(t, c), f.rows(), peak_rss_mb());
    drop(f);
    phases(&raw);

    let (t, c) = (Instant::now(), cpu_s());
    let (f, _) = wechat::features(&raw, &cache).expect("cached features");
    println!("reload     {}  {} feature rows (digest inputs + read Parquet)", since(t, c), f.rows());
    println!("  content  {}  (digest of the features read back)", content_digest(&f));
    drop(f);
    if std::env::var("MTLBENCH_BENCH_ETL_ONLY").is_ok_and(|v| v == "1") {
        return;
    }

    let cfg = WechatConfig {
        path: raw.clone(),
        tasks: vec!["read_comment".into(), "like".into(), "click_avatar".into()],
        split: DaySplit::default(),
        dense: None,
    };
    let (t, c) = (Instant::now(), cpu_s());
    let ds = wechat::load(&cfg, &cache).expect("dataset");
    println!(
        "dataset    {}  train/valid/test {}/{}/{} rows from the cache, ready for training  peak RSS {:.0} MB",
        since(t, c),
        ds.train.rows,
        ds.valid.rows,
        ds.test.rows,
        peak_rss_mb()
    );
    let lists: Vec<String> = ds
        .schema
        .multi
        .iter()
        .zip(&ds.train.multi)
        .map(|(f, m)| format!("{} {} lists / {} values", f.name, m.lists.len(), m.lists.values.len()))
        .collect();
    println!("           multi-valued (train): {}", lists.join(", "));

    let (t, c) = (Instant::now(), cpu_s());
    let tensors = SplitTensors::new(&ds.train, &ds.schema, tch::Device::Cpu);
    println!("tensors    {}  train split on the CPU  peak RSS {:.0} MB", since(t, c), peak_rss_mb());
    // The epoch's permutation (tens of milliseconds) is drawn outside the timing.
    let mut batches = tensors.shuffled(1024, 1, 0);
    let (t, c) = (Instant::now(), cpu_s());
    let n = batches.by_ref().take(500).count();
    let (wall, cpu) = (t.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64, (cpu_s() - c) * 1e3 / n.max(1) as f64);
    println!(
        "batches    {}  {n} shuffled batches of 1024 rows, {wall:.2} ms wall {cpu:.2} ms CPU each  peak RSS {:.0} MB",
        since(t, c),
        peak_rss_mb()
    );
}
