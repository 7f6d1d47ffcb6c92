//! A small tabular multi-task model, where per-operator overhead rather
//! than arithmetic bounds the step: 32 categorical fields of width 4
//! (vocabularies 8 to 200), 7 dense columns, two tasks; MMOE with 8
//! experts of [16], towers [8], batch 1024 (about 22k parameters).
//!
//! - `small/step/{fused,per-field}`: one training step ([`Stepper::step`],
//!   equal weighting, Adam) with the embedding tables fused per width (the
//!   default) and one table per field;
//! - `small/forward/{..}` and `small/forward_backward/{..}`: the parts of
//!   the step, to see where the time goes (the rest is the optimiser);
//! - `small/eval/{..}`: an evaluation forward (no gradient).
//!
//! Target: the fused step >= 1.5x the per-field step on a quiet machine
//! (docs/performance.md has the measured ratios and how to reproduce them).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mtlbench::data::{Batch, CategoricalField, FeatureSchema};
use mtlbench::models::{self, ModelKind, ModelsConfig, MultiTaskModel, TableLayout};
use mtlbench::strategies::{StrategiesConfig, StrategyKind};
use mtlbench::train::{Stepper, TrainConfig};
use tch::{nn, Device, Kind, Tensor};

const BATCH: i64 = 1024;
const FIELDS: i64 = 32;
const DENSE: i64 = 7;

fn schema() -> FeatureSchema {
    FeatureSchema {
        categorical: (0..FIELDS)
            .map(|i| CategoricalField { name: format!("c{i}"), vocab_size: 8 + (i * 37) % 193, emb_dim: 4 })
            .collect(),
        multi: vec![],
        dense: (0..DENSE).map(|i| format!("d{i}")).collect(),
        tasks: vec!["t0".into(), "t1".into()],
        numeric: vec![],
    }
}

fn batches(schema: &FeatureSchema, n: usize) -> Vec<Batch> {
    tch::manual_seed(7);
    let opts = (Kind::Int64, Device::Cpu);
    (0..n)
        .map(|_| {
            let cols: Vec<Tensor> =
                schema.categorical.iter().map(|f| Tensor::randint_low(0, f.vocab_size, [BATCH], opts)).collect();
            Batch {
                categorical: Tensor::stack(&cols, 1),
                multi_ids: vec![],
                multi_mask: vec![],
                dense: Tensor::randn([BATCH, DENSE], (Kind::Float, Device::Cpu)),
                labels: Tensor::rand([BATCH, 2], (Kind::Float, Device::Cpu)).lt(0.3).to_kind(Kind::Float),
                users: Tensor::zeros([BATCH], opts),
                numeric: vec![],
            }
        })
        .collect()
}

fn config(layout: TableLayout) -> ModelsConfig {
    let mut cfg = ModelsConfig::default();
    cfg.input.tables = layout;
    cfg.mmoe.experts = 8;
    cfg.mmoe.expert_hidden = vec![16];
    cfg.tower.hidden = vec![8];
    cfg
}

fn name(layout: TableLayout) -> &'static str {
    match layout {
        TableLayout::Fused => "fused",
        TableLayout::PerField => "per-field",
    }
}

fn model(schema: &FeatureSchema, layout: TableLayout) -> (nn::VarStore, Box<dyn MultiTaskModel>) {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = models::build(ModelKind::Mmoe, &vs, schema, &config(layout)).expect("model");
    (vs, m)
}

fn small(c: &mut Criterion) {
    mtlbench::train::alloc::keep_freed_memory();
    let schema = schema();
    let bs = batches(&schema, 8);
    let train = TrainConfig { batch_size: BATCH as usize, ..Default::default() };
    let strategies = StrategiesConfig::default();
    let mut g = c.benchmark_group("small");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    for layout in [TableLayout::Fused, TableLayout::PerField] {
        let (vs, m) = model(&schema, layout);
        let mut i = 0;
        g.bench_function(format!("forward/{}", name(layout)), |b| {
            b.iter(|| {
                i = (i + 1) % bs.len();
                m.forward_t(&bs[i], true).probs
            })
        });
        g.bench_function(format!("forward_backward/{}", name(layout)), |b| {
            b.iter(|| {
                i = (i + 1) % bs.len();
                let out = m.forward_t(&bs[i], true);
                let loss = m.loss_terms(&out, &bs[i]).into_iter().reduce(|a, b| a + b).expect("two terms");
                loss.backward();
            })
        });
        g.bench_function(format!("eval/{}", name(layout)), |b| {
            b.iter(|| {
                i = (i + 1) % bs.len();
                tch::no_grad(|| m.forward_t(&bs[i], false).probs)
            })
        });
        let mut stepper =
            Stepper::new(m.as_ref(), &vs, StrategyKind::Equal, &strategies, &train, 1, Device::Cpu).expect("stepper");
        g.bench_function(format!("step/{}", name(layout)), |b| {
            b.iter(|| {
                i = (i + 1) % bs.len();
                stepper.step(&bs[i], false, 1, i).expect("step")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, small);
criterion_main!(benches);
