//! Exact AUC on 1M and 10M scores and uAUC on 1M rows of 20k users
//! (target: 10M scores in <= 1 s, >= 5x scikit-learn's roc_auc_score, which
//! `bench-perf` measures side by side). Scores are probabilities of a noisy
//! logit, rounded to f32, so ties occur as they do in real predictions.

use criterion::{criterion_group, criterion_main, Criterion};
use mtlbench::metrics::{auc, uauc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn data(n: usize, users: i64, seed: u64) -> (Vec<i64>, Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut u = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    let mut s = Vec::with_capacity(n);
    for _ in 0..n {
        let label = (rng.gen::<f64>() < 0.035) as u8 as f32;
        let z: f64 = rng.sample::<f64, _>(rand_distr::StandardNormal) + 1.2 * label as f64 - 3.0;
        u.push(rng.gen_range(0..users));
        y.push(label);
        s.push((1.0 / (1.0 + (-z).exp())) as f32);
    }
    (u, y, s)
}

fn metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics");
    g.sample_size(10);
    let (_, y, s) = data(1_000_000, 1, 1);
    g.bench_function("auc_1m", |b| b.iter(|| auc(&y, &s)));
    let (u, _, _) = data(1_000_000, 20_000, 2);
    g.bench_function("uauc_1m_rows_20k_users", |b| b.iter(|| uauc(&u, &y, &s)));
    let (_, y, s) = data(10_000_000, 1, 3);
    g.bench_function("auc_10m", |b| b.iter(|| auc(&y, &s)));
    g.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
