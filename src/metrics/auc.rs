//! Exact ROC-AUC with average ranks for ties, and uAUC (the WeChat
//! challenge's mean per-user AUC). AUC is undefined when a class is absent
//! or a score is NaN; that is reported as `None`, never as 0.5.
//!
//! Both count, for every positive, the negatives scored below it plus half
//! those tied with it (the Mann-Whitney U statistic, which equals the
//! average-rank formula AUC = (sum of positive ranks - P(P+1)/2) / (P N)),
//! in exact integer arithmetic. The sorting is a radix sort of packed
//! integer keys ([`super::radix`]): 10M scores take a few linear passes
//! rather than an index sort with a comparison closure.

use std::collections::HashMap;

use super::radix::{self, f32_key};

/// Exact AUC: (sum of positive ranks - P(P+1)/2) / (P N), ties averaged.
/// `None` when there is no positive or no negative, or a score is NaN.
pub fn auc(labels: &[f32], scores: &[f32]) -> Option<f64> {
    assert_eq!(labels.len(), scores.len(), "labels and scores differ in length");
    let mut pos: Vec<u32> = Vec::new();
    let mut neg: Vec<u32> = Vec::with_capacity(scores.len());
    for (&y, &s) in labels.iter().zip(scores) {
        if s.is_nan() {
            return None;
        }
        if y > 0.5 {
            pos.push(f32_key(s));
        } else {
            neg.push(f32_key(s));
        }
    }
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    radix::sort(&mut pos);
    radix::sort(&mut neg);
    // Walk both sorted lists: for each run of equal positive keys, count the
    // negatives strictly below and equal. 2U stays an exact integer.
    let (mut twice_u, mut below, mut i) = (0u128, 0u64, 0usize);
    while i < pos.len() {
        let k = pos[i];
        let mut j = i;
        while j < pos.len() && pos[j] == k {
            j += 1;
        }
        while (below as usize) < neg.len() && neg[below as usize] < k {
            below += 1;
        }
        let mut equal = 0u64;
        while ((below + equal) as usize) < neg.len() && neg[(below + equal) as usize] == k {
            equal += 1;
        }
        twice_u += (j - i) as u128 * (2 * below + equal) as u128;
        i = j;
    }
    Some(twice_u as f64 / 2.0 / (pos.len() as f64 * neg.len() as f64))
}

/// AUC of one group of keys sorted ascending, each `score_key << 1 | label`
/// (so within a tie the negatives come first); `None` without both classes.
fn auc_of_sorted_keys(keys: &[u64]) -> Option<f64> {
    let (mut twice_u, mut neg_below, mut pos_total) = (0u128, 0u64, 0u64);
    let mut i = 0;
    while i < keys.len() {
        let score = keys[i] >> 1;
        let (mut neg_eq, mut pos_eq) = (0u64, 0u64);
        while i < keys.len() && keys[i] >> 1 == score {
            if keys[i] & 1 == 1 {
                pos_eq += 1;
            } else {
                neg_eq += 1;
            }
            i += 1;
        }
        twice_u += pos_eq as u128 * (2 * neg_below + neg_eq) as u128;
        neg_below += neg_eq;
        pos_total += pos_eq;
    }
    (pos_total > 0 && neg_below > 0).then(|| twice_u as f64 / 2.0 / (pos_total as f64 * neg_below as f64))
}

/// uAUC: unweighted mean of per-user AUCs over users with both classes.
/// Returns the mean and the number of users that counted; `None` if none
/// did, or a score is NaN.
pub fn uauc(users: &[i64], labels: &[f32], scores: &[f32]) -> Option<(f64, usize)> {
    assert_eq!(users.len(), labels.len());
    assert_eq!(users.len(), scores.len());
    // Dense user numbers (in order of appearance) fit the 31 bits above a
    // 32-bit score key and the label bit: there are fewer users than rows.
    assert!(users.len() < 1 << 31, "uAUC supports fewer than 2^31 rows");
    let mut dense: HashMap<i64, u64> = HashMap::new();
    let mut keys: Vec<u64> = Vec::with_capacity(users.len());
    for ((&u, &y), &s) in users.iter().zip(labels).zip(scores) {
        if s.is_nan() {
            return None;
        }
        let next = dense.len() as u64;
        let d = *dense.entry(u).or_insert(next);
        keys.push(d << 33 | (f32_key(s) as u64) << 1 | (y > 0.5) as u64);
    }
    radix::sort(&mut keys);
    let mut sum = 0.0;
    let mut count = 0usize;
    let mut i = 0;
    while i < keys.len() {
        let u = keys[i] >> 33;
        let mut j = i;
        while j < keys.len() && keys[j] >> 33 == u {
            j += 1;
        }
        if let Some(a) = auc_of_sorted_keys(&keys[i..j]) {
            sum += a;
            count += 1;
        }
        i = j;
    }
    (count > 0).then(|| (sum / count as f64, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: P(score_pos > score_neg) + 0.5 P(tie) over all pairs.
    fn brute(labels: &[f32], scores: &[f32]) -> Option<f64> {
        let (mut num, mut pairs) = (0.0, 0.0);
        for i in 0..labels.len() {
            for j in 0..labels.len() {
                if labels[i] > 0.5 && labels[j] < 0.5 {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        num += 1.0;
                    } else if scores[i] == scores[j] {
                        num += 0.5;
                    }
                }
            }
        }
        (pairs > 0.0).then(|| num / pairs)
    }

    #[test]
    fn matches_brute_force_with_ties() {
        // Hand case: scores with ties across classes.
        let labels = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let scores = [0.9, 0.9, 0.5, 0.5, 0.2, 0.1, 0.5];
        // Pairs (pos vs neg): 0.9 vs {0.9 tie, .5 win, .1 win, .5 win} = 3.5;
        // 0.5 vs {0.9 loss, .5 tie, .1 win, .5 tie} = 2; 0.2 vs {loss, loss, win, loss} = 1.
        assert!((auc(&labels, &scores).unwrap() - 6.5 / 12.0).abs() < 1e-12);
        // Pseudo-random cases with many ties.
        let mut x = 12345u64;
        for n in [2usize, 5, 17, 100, 333] {
            let mut l = vec![];
            let mut s = vec![];
            for _ in 0..n {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                l.push(((x >> 33) % 3 == 0) as u8 as f32);
                s.push(((x >> 40) % 7) as f32 / 7.0);
            }
            let a = auc(&l, &s);
            let b = brute(&l, &s);
            match (a, b) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "n={n}: {a} vs {b}"),
                (None, None) => {}
                other => panic!("n={n}: {other:?}"),
            }
        }
    }

    #[test]
    fn undefined_without_both_classes() {
        assert_eq!(auc(&[1.0, 1.0], &[0.1, 0.2]), None);
        assert_eq!(auc(&[0.0, 0.0], &[0.1, 0.2]), None);
        assert_eq!(auc(&[], &[]), None);
    }

    #[test]
    fn nan_scores_make_it_undefined_and_signed_zeros_tie() {
        assert_eq!(auc(&[1.0, 0.0, 1.0], &[0.5, f32::NAN, 0.2]), None);
        assert_eq!(uauc(&[1, 1], &[1.0, 0.0], &[f32::NAN, 0.2]), None);
        // -0.0 == 0.0: one tie (0.5); infinities order like any score.
        assert_eq!(auc(&[1.0, 0.0], &[-0.0, 0.0]), Some(0.5));
        assert_eq!(auc(&[1.0, 0.0, 0.0], &[f32::INFINITY, f32::NEG_INFINITY, 1e30]), Some(1.0));
    }

    #[test]
    fn uauc_matches_per_user_brute_force() {
        let mut x = 99u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        let n = 2000;
        // Sparse, negative and huge user ids; scores with many ties.
        let ids = [-5i64, 7, 1 << 40, 3, i64::MIN, 12, 13, 14];
        let users: Vec<i64> = (0..n).map(|_| ids[(next() % ids.len() as u64) as usize]).collect();
        let labels: Vec<f32> = (0..n).map(|_| (next() % 4 == 0) as u8 as f32).collect();
        let scores: Vec<f32> = (0..n).map(|_| (next() % 11) as f32 / 10.0 - 0.5).collect();
        let (mut sum, mut count) = (0.0, 0);
        for u in ids {
            let rows: Vec<usize> = (0..n).filter(|&i| users[i] == u).collect();
            let l: Vec<f32> = rows.iter().map(|&i| labels[i]).collect();
            let s: Vec<f32> = rows.iter().map(|&i| scores[i]).collect();
            if let Some(a) = brute(&l, &s) {
                sum += a;
                count += 1;
            }
        }
        let (got, got_count) = uauc(&users, &labels, &scores).unwrap();
        assert_eq!(got_count, count);
        assert!((got - sum / count as f64).abs() < 1e-12, "{got} vs {}", sum / count as f64);
    }

    #[test]
    fn large_inputs_match_the_rank_formula() {
        // 200k rows, 3 distinct-ish score regimes: the radix passes all run.
        let mut x = 5u64;
        let n = 200_000;
        let mut labels = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n);
        for i in 0..n {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let y = ((x >> 35) % 10 < 3) as u8 as f32;
            let s = match i % 3 {
                0 => ((x >> 20) % 1000) as f32 / 1000.0 + 0.1 * y,
                1 => -(((x >> 24) % 50) as f32) * 1e3,
                _ => f32::from_bits((x >> 30) as u32 & 0x3f7f_ffff),
            };
            labels.push(y);
            scores.push(s);
        }
        // Independent truth: average ranks from a comparison sort.
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| scores[a].partial_cmp(&scores[b]).unwrap());
        let (mut rank_sum, mut p, mut i) = (0.0f64, 0.0f64, 0);
        while i < n {
            let mut j = i;
            while j < n && scores[idx[j]] == scores[idx[i]] {
                j += 1;
            }
            let pos = idx[i..j].iter().filter(|&&k| labels[k] > 0.5).count() as f64;
            rank_sum += pos * (i + 1 + j) as f64 / 2.0;
            p += pos;
            i = j;
        }
        let want = (rank_sum - p * (p + 1.0) / 2.0) / (p * (n as f64 - p));
        let got = auc(&labels, &scores).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn uauc_averages_users_with_both_classes() {
        // user 1: perfect (1.0); user 2: inverted (0.0); user 3: only negatives (skipped).
        let users = [1, 1, 2, 2, 3, 3];
        let labels = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let scores = [0.9, 0.1, 0.1, 0.9, 0.5, 0.4];
        assert_eq!(uauc(&users, &labels, &scores), Some((0.5, 2)));
        assert_eq!(uauc(&[3, 3], &[0.0, 0.0], &[0.1, 0.2]), None);
    }
}
