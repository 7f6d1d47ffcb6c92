//! The feed side of the synthetic WeChat generator: authors (about half
//! with a single feed, the rest Zipf-like), feed popularity and release days,
//! persistent latent factors, manual tags that reflect those factors, and
//! `feed_info.csv` with all 15 columns (text, keyword and machine-tag ids
//! included) so the file is schema-identical to the real one.

use std::io::Write;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use super::ACTIONS;
use crate::data::DataError;

/// Latent dimensions of users, feeds, authors and tags.
pub const K: usize = 8;
/// Manual tag vocabulary (the real data has about 350 manual tags).
const TAGS: usize = 350;
/// Authors per feed in the real data (18,789 / 106,444).
const AUTHORS_PER_FEED: f64 = 0.1765;

pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Everything about the feeds that the action log depends on.
pub struct FeedWorld {
    pub raw_id: Vec<i64>,
    pub author: Vec<u32>,
    pub author_raw: Vec<i64>,
    /// Per author: an extra propensity for avatar clicks and follows.
    pub author_effect: Vec<f32>,
    /// n x K.
    pub factor: Vec<f32>,
    /// n x 7 per-action quality.
    pub quality: Vec<f32>,
    /// First day the feed can be shown (<= 0: older than the log).
    pub birth: Vec<i32>,
    pub popularity: Vec<f64>,
    pub seconds: Vec<u32>,
    /// Manual tags (raw tag ids) per feed.
    pub tags: Vec<Vec<u32>>,
    song: Vec<Option<u32>>,
    singer_of_song: Vec<u32>,
}

impl FeedWorld {
    pub fn len(&self) -> usize {
        self.raw_id.len()
    }

    pub fn generate(rng: &mut ChaCha8Rng, n: usize, days: u8, relatedness: f64) -> Self {
        let n = n.max(1);
        let n_authors = ((n as f64 * AUTHORS_PER_FEED).round() as usize).clamp(1, n);
        // Half of the authors publish one feed; the others share the rest with
        // Zipf-like weights (each at least one).
        let singles = n_authors / 2;
        let multi = n_authors - singles;
        let mut author: Vec<u32> = (0..n_authors as u32).collect();
        if n > n_authors {
            // Zipf-Mandelbrot weights: a heavy tail without one author owning everything.
            let weights: Vec<f64> = (0..multi).map(|j| 1.0 / (j as f64 + 11.0)).collect();
            let alias = Alias::new(&weights);
            for _ in n_authors..n {
                author.push((singles + alias.sample(rng)) as u32);
            }
        }
        author.shuffle(rng);
        let mut author_raw: Vec<i64> = (0..n_authors as i64).collect();
        author_raw.shuffle(rng);
        let author_vec: Vec<f64> = (0..n_authors * K).map(|_| normal(rng)).collect();
        let author_effect: Vec<f32> = (0..n_authors).map(|_| (0.8 * normal(rng)) as f32).collect();
        let mut author_rank: Vec<usize> = (0..n_authors).collect();
        author_rank.shuffle(rng);
        let author_pop: Vec<f64> = author_rank.iter().map(|&r| (r as f64 + 1.0).powf(-0.9)).collect();

        let mut raw_id: Vec<i64> = (0..n as i64).collect();
        raw_id.shuffle(rng);
        let mut feed_rank: Vec<usize> = (0..n).collect();
        feed_rank.shuffle(rng);
        let (rs, ro) = (relatedness.sqrt(), (1.0 - relatedness).sqrt());
        let mut factor = Vec::with_capacity(n * K);
        let mut quality = Vec::with_capacity(n * ACTIONS.len());
        let mut birth = Vec::with_capacity(n);
        let mut popularity = Vec::with_capacity(n);
        let mut seconds = Vec::with_capacity(n);
        for f in 0..n {
            let a = author[f] as usize;
            for k in 0..K {
                factor.push((0.75 * author_vec[a * K + k] + 0.66 * normal(rng)) as f32);
            }
            let shared = normal(rng);
            for _ in 0..ACTIONS.len() {
                quality.push((0.7 * (rs * shared + ro * normal(rng))) as f32);
            }
            // 40% of the feeds predate the log; the others appear day by day.
            birth.push(if rng.gen::<f64>() < 0.4 { rng.gen_range(-20..=0) } else { rng.gen_range(1..=days as i32) });
            let own: f64 = (0.5 * normal(rng)).exp();
            popularity.push(author_pop[a].powf(0.5) * (feed_rank[f] as f64 + 1.0).powf(-0.5) * own);
            let secs = if rng.gen::<f64>() < 0.03 {
                rng.gen_range(61..=300)
            } else {
                ((22.0f64.ln() + 0.6 * normal(rng)).exp().round() as u32).clamp(3, 60)
            };
            seconds.push(secs);
        }
        let tag_vec: Vec<f64> = (0..TAGS * K).map(|_| normal(rng)).collect();
        let count = Poisson::new(2.0).ok();
        let mut tags = Vec::with_capacity(n);
        let mut scores: Vec<(f64, u32)> = Vec::with_capacity(TAGS);
        for f in 0..n {
            let c = if rng.gen::<f64>() < 0.02 { 0 } else { 1 + count.map_or(2.0f64, |p| p.sample(rng)).min(10.0) as usize };
            scores.clear();
            for t in 0..TAGS {
                let dot: f64 = (0..K).map(|k| factor[f * K + k] as f64 * tag_vec[t * K + k]).sum();
                let u: f64 = rng.gen_range(1e-12..1.0);
                scores.push((dot / (K as f64).sqrt() * 2.0 - (-u.ln()).ln(), t as u32));
            }
            scores.select_nth_unstable_by(c.min(TAGS - 1), |a, b| b.0.total_cmp(&a.0));
            let mut chosen: Vec<u32> = scores[..c].iter().map(|s| s.1).collect();
            chosen.sort_unstable_by(|a, b| b.cmp(a));
            tags.push(chosen);
        }
        let songs = ((n as f64 * 0.24).round() as usize).max(1);
        let singers = ((n as f64 * 0.16).round() as usize).max(1);
        let singer_of_song: Vec<u32> = (0..songs).map(|_| zipf_index(rng, singers)).collect();
        let song = (0..n).map(|_| if rng.gen::<f64>() < 0.3 { None } else { Some(zipf_index(rng, songs)) }).collect();
        FeedWorld { raw_id, author, author_raw, author_effect, factor, quality, birth, popularity, seconds, tags, song, singer_of_song }
    }

    /// Exposure weights of day `d`: popularity decaying with age.
    pub fn day_weights(&self, d: i32) -> Vec<f64> {
        self.popularity.iter().zip(&self.birth).map(|(&p, &b)| if b > d { 0.0 } else { p * 0.85f64.powi(d - b) }).collect()
    }

    /// Writes feed_info.csv (15 columns, the real header order).
    pub fn write_csv(&self, rng: &mut ChaCha8Rng, w: &mut dyn Write, path: &std::path::Path) -> Result<(), DataError> {
        let io = |source| DataError::Io { path: path.to_path_buf(), cause: source };
        w.write_all(
            b"feedid,authorid,videoplayseconds,description,ocr,asr,bgm_song_id,bgm_singer_id,manual_keyword_list,\
machine_keyword_list,manual_tag_list,machine_tag_list,description_char,ocr_char,asr_char\n",
        )
        .map_err(io)?;
        let mut line = Vec::with_capacity(4096);
        for f in 0..self.len() {
            line.clear();
            push_int(&mut line, self.raw_id[f]);
            line.push(b',');
            push_int(&mut line, self.author_raw[self.author[f] as usize]);
            line.push(b',');
            push_int(&mut line, self.seconds[f] as i64);
            line.push(b',');
            let lens = [
                rng.gen_range(0..40usize),
                if rng.gen::<f64>() < 0.3 { 0 } else { rng.gen_range(1..60) },
                if rng.gen::<f64>() < 0.4 { 0 } else { rng.gen_range(1..80) },
            ];
            for &len in &lens {
                push_ids(&mut line, rng, len, 150_000, b' ');
                line.push(b',');
            }
            if let Some(s) = self.song[f] {
                push_int(&mut line, s as i64);
                line.push(b',');
                push_int(&mut line, self.singer_of_song[s as usize] as i64);
            } else {
                line.push(b',');
            }
            line.push(b',');
            let k1 = if rng.gen::<f64>() < 0.2 { 0 } else { rng.gen_range(1..5) };
            push_ids(&mut line, rng, k1, 27_000, b';');
            line.push(b',');
            let k2 = if rng.gen::<f64>() < 0.1 { 0 } else { rng.gen_range(1..6) };
            push_ids(&mut line, rng, k2, 27_000, b';');
            line.push(b',');
            for (i, t) in self.tags[f].iter().enumerate() {
                if i > 0 {
                    line.push(b';');
                }
                push_int(&mut line, *t as i64);
            }
            line.push(b',');
            // Machine tags: the manual ones with high confidence, plus a few guesses.
            let mut machine: Vec<(u32, f64)> = self.tags[f].iter().map(|&t| (t, rng.gen_range(0.5..1.0))).collect();
            for _ in 0..rng.gen_range(0..3) {
                machine.push((rng.gen_range(0..TAGS as u32), rng.gen_range(0.0..0.5)));
            }
            machine.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (i, (t, p)) in machine.iter().enumerate() {
                if i > 0 {
                    line.push(b';');
                }
                let _ = write!(line, "{t} {p:.6}");
            }
            line.push(b',');
            for (i, &len) in lens.iter().enumerate() {
                push_ids(&mut line, rng, len + len / 2, 20_000, b' ');
                line.push(if i < 2 { b',' } else { b'\n' });
            }
            w.write_all(&line).map_err(io)?;
        }
        Ok(())
    }
}

/// A Zipf-like index in 0..n (small indices far more likely).
fn zipf_index(rng: &mut ChaCha8Rng, n: usize) -> u32 {
    let u: f64 = rng.gen();
    ((n as f64 * u.powi(3)) as usize).min(n - 1) as u32
}

fn push_ids(line: &mut Vec<u8>, rng: &mut ChaCha8Rng, len: usize, vocab: usize, sep: u8) {
    for i in 0..len {
        if i > 0 {
            line.push(sep);
        }
        push_int(line, zipf_index(rng, vocab) as i64);
    }
}

/// Appends a decimal integer.
pub fn push_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    let mut x = v.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Walker/Vose alias table: O(1) sampling from a discrete distribution.
pub struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    pub fn new(weights: &[f64]) -> Self {
        let n = weights.len().max(1);
        let total: f64 = weights.iter().sum();
        let mut prob: Vec<f64> = if total > 0.0 { weights.iter().map(|w| w * n as f64 / total).collect() } else { vec![1.0; n] };
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            prob[l] -= 1.0 - prob[s];
            if prob[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        for i in large.into_iter().chain(small) {
            prob[i] = 1.0;
        }
        Alias { prob, alias }
    }

    pub fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let i = rng.gen_range(0..self.prob.len());
        if rng.gen::<f64>() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn alias_table_matches_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a = Alias::new(&[1.0, 3.0, 0.0, 6.0]);
        let mut counts = [0usize; 4];
        for _ in 0..100_000 {
            counts[a.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[2], 0);
        for (c, w) in counts.iter().zip([0.1, 0.3, 0.0, 0.6]) {
            assert!((*c as f64 / 100_000.0 - w).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn push_int_formats_like_display() {
        for v in [0i64, 7, -3, 1234567890, i64::MIN + 1] {
            let mut b = Vec::new();
            push_int(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }

    #[test]
    fn about_half_of_the_authors_have_one_feed() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let w = FeedWorld::generate(&mut rng, 20_000, 14, 0.5);
        let mut per_author = vec![0usize; w.author_raw.len()];
        for &a in &w.author {
            per_author[a as usize] += 1;
        }
        let singles = per_author.iter().filter(|&&c| c == 1).count() as f64 / per_author.len() as f64;
        assert!((0.45..0.65).contains(&singles), "share of single-feed authors {singles}");
        assert!(per_author.iter().all(|&c| c >= 1));
        assert!(*per_author.iter().max().unwrap() > 50, "no prolific author");
    }
}
