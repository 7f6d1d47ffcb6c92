//! Report rendering speed: a database of 1,000 finished runs (with curves,
//! traces and gates) rendered to HTML + SVG. Target: <= 5 s on a 2-core
//! machine.

use criterion::{criterion_group, criterion_main, Criterion};
use mtlbench::store::fixture::FixtureSpec;
use mtlbench::store::Store;

fn render_1000_runs(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("db.sqlite")).expect("database");
    // 10 sweeps x 5 models x 4 strategies x 5 seeds = 1,000 runs.
    let spec = FixtureSpec {
        sweeps: 10,
        models: ["shared-bottom", "mmoe", "ple", "esmm", "ctnocvr"].map(String::from).to_vec(),
        strategies: ["equal", "uncertainty", "gradnorm", "pcgrad"].map(String::from).to_vec(),
        seeds: 5,
        ..Default::default()
    };
    let ids = store.write_fixture(&spec, 1).expect("fixture");
    assert_eq!(ids.len(), 1000);
    let out = dir.path().join("reports");
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.bench_function("render_1000_runs", |b| b.iter(|| mtlbench::report::render(&store, &out).expect("render")));
    group.finish();
}

criterion_group!(benches, render_1000_runs);
criterion_main!(benches);
