//! Per-step cost of every loss-weighting strategy relative to equal
//! weighting at T = 3, plus the cost of one trace measurement (the gradient
//! diagnostics the loop takes every `train.trace_every` steps) and of FAMO's
//! extra forward pass (part of its step, also reported on its own).
//! Targets: gradient methods <= 1.4x equal weighting, loss-only methods
//! (DWA, RLW, STCH) <= 1.05x.
//!
//! A step is exactly what the training loop runs ([`Stepper::step`]):
//! forward, loss terms, the strategy's backward, the optimizer step and the
//! strategy's after-step hook. The model is the demo's (experiments/demo.toml:
//! MMOE with 3 experts of 256 units, towers [128, 64]) on toy data with
//! three tasks, at the demo's batch of 1024, with every strategy's default
//! section (plus the other scope of GradNorm and PCGrad). `--seed-arch`
//! takes the seed's architecture instead (3 experts of 512, towers
//! [512, 256, 128]). Strategies are measured in interleaved rounds so that
//! machine noise hits them alike, after one untimed warm-up round; the
//! median per strategy is reported.
//!
//!
//! Equal and static weighting on MMOE train through its fused pass
//! (`mtlbench::models::fused`, the default `[train] step`), the other
//! strategies through autograd; `--step autograd` puts every strategy on
//! autograd, the baseline the tables up to 2026-12-02 were measured on.
//!
//!     cargo bench --bench strategy_step -- [--model mmoe] [--steps 10]
//!         [--rounds 3] [--threads N] [--batch 1024] [--seed-arch] [--only NAME,...]
//!         [--step fused|autograd]

use std::time::Instant;

use mtlbench::config::parse_grid;
use mtlbench::data::toy::{generate, ToyConfig};
use mtlbench::data::SplitTensors;
use mtlbench::models::{self, ModelKind, ModelsConfig};
use mtlbench::strategies::{self, Scope, StrategiesConfig, StrategyKind};
use mtlbench::train::{StepPath, Stepper, TrainConfig};
use tch::{nn, Device};

struct Args {
    model: ModelKind,
    steps: usize,
    rounds: usize,
    threads: Option<i32>,
    batch: usize,
    seed_arch: bool,
    step: StepPath,
    /// Only these case labels' strategies (and equal, the baseline).
    only: Vec<String>,
    filters: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: ModelKind::Mmoe,
        steps: 10,
        rounds: 3,
        threads: None,
        batch: 1024,
        seed_arch: false,
        step: StepPath::Fused,
        only: vec![],
        filters: vec![],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => {
                let v = value()?;
                a.model = serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| format!("--model {v}: expected one of {}", ModelKind::names().join(", ")))?;
            }
            "--steps" => a.steps = value()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--rounds" => a.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--threads" => a.threads = Some(value()?.parse().map_err(|e| format!("--threads: {e}"))?),
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--seed-arch" => a.seed_arch = true,
            "--step" => {
                let v = value()?;
                a.step = serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| format!("--step {v}: expected fused or autograd"))?;
            }
            "--only" => a.only = value()?.split(',').map(|s| s.trim().to_string()).collect(),
            // cargo bench passes --bench; ignore it and other harness flags.
            f if f.starts_with("--") => {}
            // A positional argument is a benchmark filter, as with criterion.
            filter => a.filters.push(filter.to_string()),
        }
    }
    Ok(a)
}

struct Case {
    label: &'static str,
    kind: StrategyKind,
    cfg: StrategiesConfig,
}

fn cases(only: &[String]) -> Vec<Case> {
    let mut v = vec![];
    let base = StrategiesConfig::default;
    for &kind in StrategyKind::ALL {
        v.push(Case { label: kind.name(), kind, cfg: base() });
        match kind {
            StrategyKind::GradNorm => {
                let mut c = base();
                c.gradnorm.scope = Scope::AllShared;
                v.push(Case { label: "gradnorm (all-shared)", kind, cfg: c });
            }
            StrategyKind::PcGrad => {
                let mut c = base();
                c.pcgrad.scope = Scope::LastShared;
                v.push(Case { label: "pcgrad (last-shared)", kind, cfg: c });
            }
            _ => {}
        }
    }
    v.retain(|c| c.kind == StrategyKind::Equal || only.is_empty() || only.iter().any(|o| o == c.kind.name()));
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    if !args.filters.is_empty() && !args.filters.iter().any(|f| "strategy_step".contains(f.as_str())) {
        return Ok(());
    }
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let tasks = vec!["read_comment".to_string(), "like".to_string(), "click_avatar".to_string()];
    let data = generate(&ToyConfig { rows: 60_000, users: 5_000, items: 20_000, tasks, ..Default::default() });
    let models_cfg = if args.seed_arch {
        ModelsConfig::default()
    } else {
        parse_grid(mtlbench::DEMO_GRID, std::path::Path::new("experiments/demo.toml")).map_err(|e| e.to_string())?.models
    };
    let train = TrainConfig { batch_size: args.batch, step: args.step, ..Default::default() };
    let split = SplitTensors::new(&data.train, &data.schema, Device::Cpu);
    let batches: Vec<_> = split.shuffled(args.batch, 1, 1).take(args.steps.max(1) + 2).collect();
    println!(
        "model {} ({}) | batch {} | {} tasks | {} torch threads | {} timed steps x {} rounds",
        args.model.name(),
        if args.seed_arch { "the seed's architecture" } else { "the demo's settings" },
        args.batch,
        data.schema.tasks.len(),
        tch::get_num_threads(),
        args.steps,
        args.rounds
    );
    let cases = cases(&args.only);
    let mut times: Vec<Vec<f64>> = vec![vec![]; cases.len()];
    let mut trace_times = vec![];
    let mut reforward_times = vec![];
    // Round 0 is an untimed warm-up of every case (thread pools, allocator,
    // first-use kernels), so that the first case measured is not penalised.
    for round in 0..=args.rounds {
        for (i, case) in cases.iter().enumerate() {
            tch::manual_seed(1);
            let vs = nn::VarStore::new(Device::Cpu);
            let model = models::build(args.model, &vs, &data.schema, &models_cfg).map_err(|e| e.to_string())?;
            let mut stepper = Stepper::new(model.as_ref(), &vs, case.kind, &case.cfg, &train, 1, Device::Cpu)
                .map_err(|e| e.to_string())?;
            // Two warm-up steps (allocator, first-step state).
            for b in &batches[..2] {
                stepper.step(b, false, 1, 0).map_err(|e| e.to_string())?;
            }
            let t0 = Instant::now();
            for b in batches.iter().skip(2).take(args.steps) {
                stepper.step(b, false, 1, 0).map_err(|e| e.to_string())?;
            }
            if round == 0 {
                continue;
            }
            times[i].push(t0.elapsed().as_secs_f64() / args.steps as f64);
            if i == 0 {
                // One trace measurement on its own: diagnostics on the last shared layer.
                let out = model.forward_t(&batches[0], true);
                let losses = model.loss_terms(&out, &batches[0]);
                let t1 = Instant::now();
                strategies::diagnostics(&losses, &model.param_groups().last_shared).map_err(|e| e.to_string())?;
                trace_times.push(t1.elapsed().as_secs_f64());
                // What FAMO's after-step hook adds: the loss terms again, without gradient.
                let t2 = Instant::now();
                tch::no_grad(|| {
                    let out = model.forward_t(&batches[0], true);
                    model.loss_terms(&out, &batches[0]).iter().map(|l| l.double_value(&[])).sum::<f64>()
                });
                reforward_times.push(t2.elapsed().as_secs_f64());
            }
        }
    }
    // Breakdown: forward; forward + one backward of the sum; forward + one
    // gradient pass per term to the last shared layer; the same to every parameter.
    {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = models::build(args.model, &vs, &data.schema, &models_cfg).map_err(|e| e.to_string())?;
        let all: Vec<tch::Tensor> = vs.trainable_variables();
        let b = &batches[0];
        let mut t = [vec![], vec![], vec![], vec![]];
        for _ in 0..args.rounds * 2 {
            let t0 = Instant::now();
            let out = model.forward_t(b, true);
            let losses = model.loss_terms(&out, b);
            let _ = losses[0].double_value(&[]);
            t[0].push(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            let sum = losses.iter().fold(tch::Tensor::from(0.0f32), |a, l| a + l);
            let _ = strategies::grads_of(&sum, &all).map_err(|e| e.to_string())?;
            t[1].push(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            for l in &losses {
                let _ = strategies::grads_of(l, &model.param_groups().last_shared).map_err(|e| e.to_string())?;
            }
            t[2].push(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            for l in &losses {
                let _ = strategies::grads_of(l, &all).map_err(|e| e.to_string())?;
            }
            t[3].push(t0.elapsed().as_secs_f64());
        }
        let m: Vec<f64> = t.iter().map(|v| median(v.clone()) * 1e3).collect();
        println!(
            "breakdown (ms): forward {:.1} | backward of the sum {:.1} | per-term passes to the last shared layer {:.1} | per-term passes to every parameter {:.1}",
            m[0], m[1], m[2], m[3]
        );
    }
    let base = median(times[0].clone());
    // Each round's ratio to that round's equal weighting: the spread says
    // how far machine noise moves a ratio.
    println!("{:<24} {:>10} {:>8} {:>16}", "strategy", "ms/step", "x equal", "rounds' range");
    for (case, t) in cases.iter().zip(&times) {
        let m = median(t.clone());
        let ratios: Vec<f64> = t.iter().zip(&times[0]).map(|(a, b)| a / b).collect();
        let (lo, hi) = ratios.iter().fold((f64::INFINITY, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        println!("{:<24} {:>10.2} {:>8.2} {:>7.2} - {:<6.2}", case.label, m * 1e3, m / base, lo, hi);
    }
    let rf = median(reforward_times);
    println!(
        "FAMO's extra forward (no gradient, inside its step above): {:.2} ms = {:.2} of an equal step",
        rf * 1e3,
        rf / base
    );
    let tr = median(trace_times);
    println!(
        "one trace measurement: {:.2} ms = {:.2} steps; at trace_every = 50 that adds {:.1}% per step",
        tr * 1e3,
        tr / base,
        100.0 * tr / base / 50.0
    );
    Ok(())
}
