//! Exact ROC-AUC with average ranks for ties, and uAUC (the WeChat
//! challenge's mean per-user AUC). AUC is undefined when a class is absent;
//! that is reported as `None`, never as 0.5.

/// Exact AUC: (sum of positive ranks - P(P+1)/2) / (P N), ties averaged.
/// `None` when there is no positive or no negative.
pub fn auc(labels: &[f32], scores: &[f32]) -> Option<f64> {
    assert_eq!(labels.len(), scores.len(), "labels and scores differ in length");
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));
    auc_sorted(labels, scores, &idx)
}

/// AUC from indices already sorted by score (ascending).
fn auc_sorted(labels: &[f32], scores: &[f32], idx: &[u32]) -> Option<f64> {
    let n = idx.len();
    let mut pos = 0u64;
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < n {
        let s = scores[idx[i] as usize];
        let mut j = i;
        let mut pos_in_group = 0u64;
        while j < n && scores[idx[j] as usize] == s {
            if labels[idx[j] as usize] > 0.5 {
                pos_in_group += 1;
            }
            j += 1;
        }
        // Ranks i+1 ..= j share the average (i + 1 + j) / 2.
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * pos_in_group as f64;
        pos += pos_in_group;
        i = j;
    }
    let neg = n as u64 - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let p = pos as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * neg as f64))
}

/// uAUC: unweighted mean of per-user AUCs over users with both classes.
/// Returns the mean and the number of users that counted; `None` if none did.
pub fn uauc(users: &[i64], labels: &[f32], scores: &[f32]) -> Option<(f64, usize)> {
    assert_eq!(users.len(), labels.len());
    assert_eq!(users.len(), scores.len());
    // Group rows by user, then sort each group by score.
    let mut idx: Vec<u32> = (0..users.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| {
        users[a as usize].cmp(&users[b as usize]).then(scores[a as usize].total_cmp(&scores[b as usize]))
    });
    let mut sum = 0.0;
    let mut count = 0usize;
    let mut i = 0;
    while i < idx.len() {
        let u = users[idx[i] as usize];
        let mut j = i;
        while j < idx.len() && users[idx[j] as usize] == u {
            j += 1;
        }
        if let Some(a) = auc_sorted(labels, scores, &idx[i..j]) {
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
    fn uauc_averages_users_with_both_classes() {
        // user 1: perfect (1.0); user 2: inverted (0.0); user 3: only negatives (skipped).
        let users = [1, 1, 2, 2, 3, 3];
        let labels = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let scores = [0.9, 0.1, 0.1, 0.9, 0.5, 0.4];
        assert_eq!(uauc(&users, &labels, &scores), Some((0.5, 2)));
        assert_eq!(uauc(&[3, 3], &[0.0, 0.0], &[0.1, 0.2]), None);
    }
}
