//! Training-side costs at batch 1024 on WeChat-shaped features (the
//! `synthetic-wechat` source at the real data's size, 20,000 users and
//! 106,444 feeds; generated into the cache on first use, or
//! MTLBENCH_BENCH_USERS / MTLBENCH_BENCH_FEEDS):
//!
//! - `batch/shuffled_1024`: one batch of `SplitTensors::shuffled` (the
//!   epoch's permutation is made outside the timing);
//! - `step/{model}`: forward, loss terms, backward and Adam step of each
//!   model with equal weighting ([`Stepper::step`], exactly what trains:
//!   MMOE's through its fused pass, `mtlbench::models::fused`);
//!   `step/mmoe-autograd`: MMOE's step through autograd
//!   (`[train] step = "autograd"`), what the pass is measured against;
//! - `strategy/{strategy}`: the same step on MMOE with three tasks for each
//!   loss-weighting strategy (targets: GradNorm <= 1.3x and PCGrad <= 2.0x
//!   of equal).
//!
//! - `adam/{fused,libtorch}`: the optimizer step alone over MMOE's
//!   parameters (3.6M, most of them embedding rows) with gradients set:
//!   mtlbench's one-pass Adam against libtorch's `nn::Adam` (what the
//!   PyTorch eager reference runs).
//!
//! The side-by-side comparison with PyTorch is `bench-perf`, not here.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mtlbench::data::{Batch, Dataset, SplitTensors};
use mtlbench::models::{self, FunnelConfig, ModelKind, ModelsConfig};
use mtlbench::optim::fused_adam::{AdamConfig, FusedAdam};
use mtlbench::strategies::{StrategiesConfig, StrategyKind};
use mtlbench::train::{StepPath, Stepper, TrainConfig};
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Tensor};

const BATCH: usize = 1024;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn dataset(tasks: &[&str]) -> Dataset {
    let users = env_or("MTLBENCH_BENCH_USERS", 20_000);
    let feeds = env_or("MTLBENCH_BENCH_FEEDS", 106_444);
    mtlbench::data::wechat::synth::wechat_shaped(users, feeds, tasks, &mtlbench::data::default_cache_dir()).expect("WeChat-shaped data")
}

/// A few fixed batches to cycle through.
fn batches(data: &Dataset, n: usize) -> Vec<Batch> {
    let split = SplitTensors::new(&data.train, &data.schema, Device::Cpu);
    split.shuffled(BATCH, 1, 1).take(n).collect()
}

fn bench_steps(
    g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    name: &str,
    data: &Dataset,
    model: ModelKind,
    models_cfg: &ModelsConfig,
    strategy: StrategyKind,
    step: StepPath,
) {
    let train = TrainConfig { batch_size: BATCH, step, ..Default::default() };
    let strategies = StrategiesConfig::default();
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = models::build(model, &vs, &data.schema, models_cfg).expect("model");
    let mut stepper = Stepper::new(m.as_ref(), &vs, strategy, &strategies, &train, 1, Device::Cpu).expect("stepper");
    let bs = batches(data, 8);
    let mut i = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % bs.len();
            stepper.step(&bs[i], false, 1, i).expect("step")
        })
    });
}

fn train_step(c: &mut Criterion) {
    mtlbench::train::alloc::keep_freed_memory();
    let data = dataset(&["read_comment", "like", "click_avatar"]);

    let mut g = c.benchmark_group("batch");
    let split = SplitTensors::new(&data.train, &data.schema, Device::Cpu);
    g.bench_function("shuffled_1024", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut epoch = 0;
            let mut it = split.shuffled(BATCH, 1, epoch);
            for _ in 0..iters {
                let t = Instant::now();
                let next = it.next();
                total += t.elapsed();
                if next.is_none() {
                    epoch += 1;
                    it = split.shuffled(BATCH, 1, epoch);
                }
            }
            total
        })
    });
    g.finish();
    drop(split);

    let mut g = c.benchmark_group("step");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    let cfg = ModelsConfig::default();
    for kind in [ModelKind::SharedBottom, ModelKind::Mmoe, ModelKind::Ple] {
        bench_steps(&mut g, kind.name(), &data, kind, &cfg, StrategyKind::Equal, StepPath::Fused);
    }
    bench_steps(&mut g, "mmoe-autograd", &data, ModelKind::Mmoe, &cfg, StrategyKind::Equal, StepPath::Autograd);
    // The funnel models on WeChat's click_avatar -> follow funnel.
    let funnel = dataset(&["click_avatar", "follow"]);
    let fcfg = ModelsConfig {
        funnel: Some(FunnelConfig { click: "click_avatar".into(), conversion: "follow".into() }),
        ..Default::default()
    };
    for kind in [ModelKind::Esmm, ModelKind::Ctnocvr] {
        bench_steps(&mut g, kind.name(), &funnel, kind, &fcfg, StrategyKind::Equal, StepPath::Fused);
    }
    g.finish();
    drop(funnel);

    adam(c, &data, &cfg);

    let mut g = c.benchmark_group("strategy");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for &s in StrategyKind::ALL {
        bench_steps(&mut g, s.name(), &data, ModelKind::Mmoe, &cfg, s, StepPath::Fused);
    }
    g.finish();
}

/// Fused Adam against libtorch's on MMOE's parameters with fixed gradients.
fn adam(c: &mut Criterion, data: &Dataset, cfg: &ModelsConfig) {
    let t = TrainConfig::default();
    let with_grads = || {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = models::build(ModelKind::Mmoe, &vs, &data.schema, cfg).expect("model");
        for p in vs.trainable_variables() {
            let mut g = p.grad();
            if !g.defined() {
                // A gradient tensor for the parameter: one backward of a dummy sum.
                (&p * 1.0f64).sum(tch::Kind::Float).backward();
                g = p.grad();
            }
            tch::no_grad(|| g.copy_(&(Tensor::randn_like(&p) * 1e-3)));
        }
        vs
    };
    let mut g = c.benchmark_group("adam");
    g.sample_size(20);
    let vs = with_grads();
    let mut fused = FusedAdam::new(
        &vs,
        AdamConfig { lr: t.lr, beta1: t.beta1, beta2: t.beta2, eps: t.eps, weight_decay: t.weight_decay },
    )
    .expect("fused Adam");
    g.bench_function("fused", |b| b.iter(|| fused.step()));
    drop(fused);
    let vs = with_grads();
    let mut torch = nn::Adam { beta1: t.beta1, beta2: t.beta2, wd: t.weight_decay, eps: t.eps, amsgrad: false }
        .build(&vs, t.lr)
        .expect("libtorch Adam");
    g.bench_function("libtorch", |b| b.iter(|| torch.step()));
    g.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
