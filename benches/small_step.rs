//! A small tabular multi-task model, where per-operator overhead rather
//! than arithmetic bounds the step: 32 categorical fields of width 4
//! (vocabularies 8 to 200), 7 dense columns, two tasks; MMOE with 8
//! experts of [16], towers [8], batch 1024 (about 22k parameters).
//!
//! - `small/step/{fused,per-field}`: one training step through autograd
//!   ([`Stepper::step`] with `[train] step = "autograd"`, equal weighting,
//!   Adam) with the embedding tables fused per width (the default) and one
//!   table per field;
//! - `small/step/fused-pass`: the same step through the model's fused
//!   pass (`mtlbench::models::fused`, the default `[train] step`), which
//!   the profile also times against the autograd step;
//! - `small/forward/{..}` and `small/forward_backward/{..}`: the parts of
//!   the step, to see where the time goes (the rest is the optimiser);
//! - `small/eval/{..}`: an evaluation forward (no gradient).
//!
//! Before the criterion group, a plain-timing profile in interleaved rounds
//! (each round times both layouts, so a change in the machine's load hits
//! both): the median per step of zero_grad + forward + loss terms,
//! backward, and the Adam step, and the ratio per-field / fused of the
//! whole step. One libtorch thread (MTLBENCH_BENCH_THREADS to change it):
//! on shared cores the ratio is then stable where two threads are not.
//!
//! Then the operators that dominated the step, each next to the
//! libtorch operator it replaced (forward + backward at the model's
//! shapes, interleaved rounds, medians): the embedding gather, the gates'
//! softmax, the gate-weighted mix of the experts, the experts' first layer,
//! and MMOE's backbone with the mix in its batch-first and batch-last layouts.
//!
//! Targets: the fused-table step >= 1.5x the per-field step, and the
//! fused pass as fast as it takes to reach 5x torch-rechub's trainer in
//! `bench-perf rechub` (docs/performance.md has the measured ratios and
//! how to reproduce them).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mtlbench::data::{Batch, CategoricalField, FeatureSchema};
use mtlbench::models::experts::{self, labels, ExpertSet, Gate};
use mtlbench::models::{self, ModelKind, ModelsConfig, MultiTaskModel, TableLayout};
use mtlbench::optim::Optimizer;
use mtlbench::strategies::{StrategiesConfig, StrategyKind};
use mtlbench::train::{StepPath, Stepper, TrainConfig};
use tch::{nn, nn::Module, Device, Kind, Tensor};

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
                multi: vec![],
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

/// Milliseconds per step of (forward + loss, backward, optimiser) over `steps` steps.
fn time_parts(m: &dyn MultiTaskModel, opt: &mut Optimizer, bs: &[Batch], steps: usize) -> [f64; 3] {
    let mut t = [0.0; 3];
    for k in 0..steps {
        let b = &bs[k % bs.len()];
        let t0 = Instant::now();
        opt.zero_grad();
        let out = m.forward_t(b, true);
        let loss = m.loss_terms(&out, b).into_iter().reduce(|a, b| a + b).expect("two terms");
        let _ = loss.double_value(&[]);
        let t1 = Instant::now();
        loss.backward();
        let t2 = Instant::now();
        opt.step();
        let t3 = Instant::now();
        for (acc, (a, b)) in t.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
            *acc += (b - a).as_secs_f64() * 1e3 / steps as f64;
        }
    }
    t
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The interleaved profile: rounds of 20 steps per layout, medians printed.
fn profile(schema: &FeatureSchema, bs: &[Batch]) {
    let train = TrainConfig::default();
    let layouts = [TableLayout::Fused, TableLayout::PerField];
    let mut built: Vec<_> = layouts
        .iter()
        .map(|&l| {
            let (vs, m) = model(schema, l);
            let opt = Optimizer::new(&vs, &train.optim()).expect("Adam");
            (vs, m, opt)
        })
        .collect();
    let mut parts: Vec<Vec<[f64; 3]>> = vec![vec![], vec![]];
    for round in 0..16 {
        for (k, (_, m, opt)) in built.iter_mut().enumerate() {
            let t = time_parts(m.as_ref(), opt, bs, 20);
            if round > 0 {
                parts[k].push(t);
            }
        }
    }
    let mut steps = Vec::new();
    for (k, l) in layouts.iter().enumerate() {
        let col = |i: usize| median(parts[k].iter().map(|t| t[i]).collect());
        let step = median(parts[k].iter().map(|t| t.iter().sum()).collect());
        println!(
            "profile {:<9}  step {:>6.2} ms  (forward + loss {:.2}, backward {:.2}, Adam {:.2})  {:.0} samples/s",
            name(*l),
            step,
            col(0),
            col(1),
            col(2),
            BATCH as f64 / step * 1e3
        );
        steps.push(step);
    }
    println!("profile per-field / fused step time: {:.2}x", steps[1] / steps[0]);
    fused_pass_profile(schema, bs);
}

/// Rounds of 20 whole steps ([`Stepper::step`]) through autograd and
/// through the fused pass, interleaved; the medians per step.
fn fused_pass_profile(schema: &FeatureSchema, bs: &[Batch]) {
    let strategies = StrategiesConfig::default();
    let paths = [StepPath::Autograd, StepPath::Fused];
    let built: Vec<_> = paths.iter().map(|_| model(schema, TableLayout::Fused)).collect();
    let cfgs: Vec<TrainConfig> = paths.iter().map(|&step| TrainConfig { batch_size: BATCH as usize, step, ..Default::default() }).collect();
    let mut steppers: Vec<Stepper> = built
        .iter()
        .zip(&cfgs)
        .map(|((vs, m), cfg)| Stepper::new(m.as_ref(), vs, StrategyKind::Equal, &strategies, cfg, 1, Device::Cpu).expect("stepper"))
        .collect();
    assert!(!steppers[0].takes_fused() && steppers[1].takes_fused(), "the second stepper takes the fused pass");
    let mut times: Vec<Vec<f64>> = vec![vec![], vec![]];
    for round in 0..16 {
        for (k, s) in steppers.iter_mut().enumerate() {
            let t0 = Instant::now();
            for i in 0..20 {
                s.step(&bs[i % bs.len()], false, 1, i).expect("step");
            }
            if round > 0 {
                times[k].push(t0.elapsed().as_secs_f64() * 1e3 / 20.0);
            }
        }
    }
    let (a, f) = (median(times[0].clone()), median(times[1].clone()));
    println!("profile step through autograd {a:>6.2} ms, through the fused pass {f:>6.2} ms: {:.2}x", a / f);
}

/// Forward + backward of `f` on `inputs` (gradients of the inputs) from
/// the sum of its output: the closure the operator table times.
fn fwd_bwd<'a>(inputs: &'a [Tensor], f: impl Fn(&[Tensor]) -> Tensor + 'a) -> impl FnMut() + 'a {
    move || {
        for x in inputs {
            let mut g = x.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        f(inputs).sum(Kind::Float).backward();
    }
}

fn leaf(size: &[i64]) -> Tensor {
    Tensor::randn(size, (Kind::Float, Device::Cpu)).set_requires_grad(true)
}

/// One row of the operator table: the replaced operator and its replacement.
type OpPair<'a> = (&'static str, Box<dyn FnMut() + 'a>, Box<dyn FnMut() + 'a>);

/// The operators of the small step that dominated it, before and after.
fn operators(schema: &FeatureSchema) {
    tch::manual_seed(3);
    let offsets: Vec<i64> = schema.categorical.iter().scan(0, |s, f| Some(std::mem::replace(s, *s + f.vocab_size))).collect();
    let rows: i64 = schema.categorical.iter().map(|f| f.vocab_size).sum();
    let ids = batches(schema, 1)[0].categorical.shallow_clone() + Tensor::from_slice(&offsets);
    let table = [leaf(&[rows, 4])];
    let gates = [leaf(&[BATCH, 2, 8])];
    let mix = [Tensor::rand([BATCH, 2, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true), leaf(&[BATCH, 8, 16])];
    let experts = [leaf(&[BATCH, FIELDS * 4 + DENSE]), leaf(&[8, FIELDS * 4 + DENSE, 16]), leaf(&[8, 16])];
    let flat = ids.reshape([-1]);
    // MMOE's backbone and the towers' first layers on the same weights, in
    // both layouts of the mix (models::mmoe picks the batch-last one here).
    let vs = nn::VarStore::new(Device::Cpu);
    let input = [leaf(&[BATCH, FIELDS * 4 + DENSE])];
    let set = ExpertSet::new(&(vs.root() / "experts"), 8, FIELDS * 4 + DENSE, &[16]);
    let gate_set: Vec<Gate> = (0..2).map(|k| Gate::new(&(vs.root() / format!("g{k}")), FIELDS * 4 + DENSE, format!("g{k}"), labels("", 8))).collect();
    let towers: Vec<nn::Linear> = (0..2).map(|k| nn::linear(vs.root() / format!("t{k}"), 16, 8, Default::default())).collect();
    let first_layers = |heads: Vec<Tensor>| heads.iter().zip(&towers).map(|(h, t)| t.forward(h).sum(Kind::Float)).sum::<Tensor>();
    let mut pairs: Vec<OpPair> = vec![
        (
            "embedding gather, 32 fields: weight[ids] -> index_select",
            Box::new(fwd_bwd(&table, |t| t[0].index(&[Some(&ids)]))),
            Box::new(fwd_bwd(&table, |t| t[0].index_select(0, &flat))),
        ),
        (
            "gates' softmax [B, 2, 8]: libtorch -> element-wise",
            Box::new(fwd_bwd(&gates, |t| t[0].softmax(-1, Kind::Float))),
            Box::new(fwd_bwd(&gates, |t| experts::softmax_over(&t[0], -1))),
        ),
        (
            "mix of 8 experts [16] by 2 gates: bmm -> broadcast sum",
            Box::new(fwd_bwd(&mix, |t| t[0].bmm(&t[1]))),
            Box::new(fwd_bwd(&mix, |t| experts::mix_stacked(&t[0], &t[1]))),
        ),
        (
            "experts' first layer, 8 x [135 -> 16]: einsum -> addmm",
            Box::new(fwd_bwd(&experts, |t| (Tensor::einsum("bi,nio->bno", &[&t[0], &t[1]], None::<i64>) + t[2].unsqueeze(0)).relu())),
            Box::new(fwd_bwd(&experts, |t| {
                t[2].reshape([-1]).addmm(&t[0], &t[1].permute([1, 0, 2]).reshape([FIELDS * 4 + DENSE, 128])).view([-1, 8, 16]).relu()
            })),
        ),
        (
            "experts + gates + mix + towers' first layers: batch first -> last",
            Box::new(fwd_bwd(&input, |t| {
                let mixed = experts::mix_stacked(&Gate::forward_all(&gate_set, &t[0]), &set.forward(&t[0]));
                first_layers(mixed.unbind(1))
            })),
            Box::new(fwd_bwd(&input, |t| {
                let mixed = experts::mix_batch_last(&Gate::forward_all_batch_last(&gate_set, &t[0]), &set.forward_batch_last(&t[0]));
                first_layers(mixed.unbind(0).iter().map(Tensor::tr).collect())
            })),
        ),
    ];
    let mut times: Vec<[Vec<f64>; 2]> = pairs.iter().map(|_| [vec![], vec![]]).collect();
    for round in 0..12 {
        for (k, (_, old, new)) in pairs.iter_mut().enumerate() {
            for (side, f) in [old, new].into_iter().enumerate() {
                let t0 = Instant::now();
                for _ in 0..50 {
                    f();
                }
                if round > 1 {
                    times[k][side].push(t0.elapsed().as_secs_f64() * 1e3 / 50.0);
                }
            }
        }
    }
    for ((name, ..), [old, new]) in pairs.iter().zip(times) {
        let (o, n) = (median(old), median(new));
        println!("operator {name:<58} {o:>6.3} -> {n:>6.3} ms forward + backward ({:.2}x)", o / n);
    }
}

fn small(c: &mut Criterion) {
    mtlbench::train::alloc::keep_freed_memory();
    let threads = std::env::var("MTLBENCH_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    tch::set_num_threads(threads);
    let schema = schema();
    let bs = batches(&schema, 8);
    println!("{threads} libtorch thread(s)");
    profile(&schema, &bs);
    operators(&schema);
    let train = TrainConfig { batch_size: BATCH as usize, step: StepPath::Autograd, ..Default::default() };
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
                for mut p in vs.trainable_variables() {
                    p.zero_grad();
                }
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
    let (vs, m) = model(&schema, TableLayout::Fused);
    let fused = TrainConfig { step: StepPath::Fused, ..train };
    let mut stepper = Stepper::new(m.as_ref(), &vs, StrategyKind::Equal, &strategies, &fused, 1, Device::Cpu).expect("stepper");
    assert!(stepper.takes_fused());
    let mut i = 0;
    g.bench_function("step/fused-pass", |b| {
        b.iter(|| {
            i = (i + 1) % bs.len();
            stepper.step(&bs[i], false, 1, i).expect("step")
        })
    });
    g.finish();
}

criterion_group!(benches, small);
criterion_main!(benches);
