//! What a throughput number needs next to it: the machine (CPU model,
//! cores, load average), its measured dense sgemm throughput with libtorch
//! at the thread count of the comparison, the FLOP count of one training
//! step computed from a model's architecture, and the step's floor: its
//! matrix products timed alone and one dense Adam pass, which bound the
//! ratio the same arithmetic can reach against another implementation.

use std::time::Instant;

use mtlbench::optim::{OptimSettings, Optimizer};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub libtorch: String,
}

impl Machine {
    pub fn capture() -> Machine {
        let e = mtlbench::env::capture("cpu");
        Machine { cpu_model: e.cpu_model, cores: e.cores, memory_gib: e.memory_gib, libtorch: e.libtorch }
    }
}

/// The 1-minute load average (other processes competing for the cores).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Dense f32 matmul throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sgemm {
    pub n: i64,
    pub threads: i32,
    /// Median over the timed repetitions, FLOP/s.
    pub median_flops: f64,
    /// Best repetition, FLOP/s.
    pub best_flops: f64,
}

/// Times `[n, n] x [n, n]` f32 matmuls with libtorch (2 n^3 FLOPs each) at
/// the current thread count: one warm-up, then `reps` timed.
pub fn sgemm(n: i64, reps: usize) -> Sgemm {
    let a = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let c = a.matmul(&b);
    let (median, best) = time_reps(reps, || {
        let _ = a.matmul_out(&c, &b);
    });
    let flop = 2.0 * (n as f64).powi(3);
    Sgemm { n, threads: tch::get_num_threads(), median_flops: flop / median, best_flops: flop / best }
}

/// FLOPs of one training step (forward + backward) at batch `batch`, from
/// the dense layers of a model ([`step_products`]): every 2-D or 3-D weight
/// outside the embedding tables (`shared.input.`) is a (batched) matmul
/// applied once per row, costing 2 x elements per row forward and twice
/// that backward (input and weight gradients), so 6 x batch x (sum of their
/// elements). Embedding lookups, element-wise ops, batch norm and the
/// optimizer are left out: they are memory-bound, and counting them would
/// flatter the achieved FLOP/s.
pub fn products_flops(products: &[(i64, i64)], batch: usize) -> f64 {
    6.0 * batch as f64 * products.iter().map(|&(i, o)| (i * o) as f64).sum::<f64>()
}

/// The dense (matmul) weights of a VarStore, embeddings excluded, by name
/// in name order: every trainable 2-D or 3-D `*weight` outside `shared.input.`.
fn dense_weights(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, t)| {
            t.requires_grad() && !name.starts_with("shared.input.") && name.ends_with("weight") && (2..=3).contains(&t.dim())
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// The matrix products of a step's dense layers, as `(in, out)`, as
/// mtlbench runs them: a linear layer's `[out, in]` weight one product
/// (which side is the input does not change the step's three products,
/// only which of them is transposed); an expert set's `[n, in, out]`
/// first layer (`l0`) one product with the experts side by side, `[in,
/// n * out]`, as they share their input; a deeper expert layer `n`
/// products, one per expert.
pub fn step_products(vs: &nn::VarStore) -> Vec<(i64, i64)> {
    dense_weights(vs)
        .iter()
        .flat_map(|(name, t)| match t.size().as_slice() {
            [n, d, h] if name.ends_with(".l0.weight") => vec![(*d, n * h)],
            [n, d, h] => vec![(*d, *h); *n as usize],
            [out, inp] => vec![(*inp, *out)],
            _ => vec![],
        })
        .collect()
}

/// The median and the fastest of some timings, in seconds.
fn median_and_best(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

/// Times `f` `reps` times (at least once): (median, fastest) seconds.
fn time_reps(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    median_and_best(
        (0..reps.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// What a training step must do besides its small operators: the matrix
/// products of its dense layers and one dense Adam pass over every variable.
#[derive(Debug, Clone, PartialEq)]
pub struct StepWork {
    /// `(in, out)` of each product ([`step_products`]).
    pub products: Vec<(i64, i64)>,
    /// Median seconds of one Adam step over all trainable variables.
    pub adam_seconds: f64,
}

/// The [`StepWork`] of the model in `vs`. The Adam pass is mtlbench's own
/// ([`mtlbench::optim::Optimizer`], one fused pass per element on the
/// CPU) on gradients of ones, timed `reps` times after one untimed step;
/// it changes the variables of `vs`.
pub fn step_work(vs: &nn::VarStore, reps: usize) -> Result<StepWork, tch::TchError> {
    let params = vs.trainable_variables();
    let ones: Tensor = params.iter().map(|p| p.sum(Kind::Float)).sum();
    ones.backward();
    let mut opt = Optimizer::new(vs, &OptimSettings::DEFAULT)?;
    opt.step();
    let (adam_seconds, _) = time_reps(reps, || opt.step());
    Ok(StepWork { products: step_products(vs), adam_seconds })
}

/// A training step's matrix products timed on their own: for each
/// `(in, out)` of [`step_products`] at batch `b`, the forward `[b, in] x
/// [in, out]`, the input gradient `[b, out] x [out, in]` and the weight
/// gradient `[in, b] x [b, out]`, each a call of libtorch's `mm` in the
/// fastest of its eight layouts (either operand stored transposed, or the
/// transposed product). An implementation that runs these products through
/// libtorch with this BLAS spends about this long in them (less only by
/// merging products, e.g. gates and experts that share an input, or with
/// the products' fastest rather than median runs), so another side's step
/// time over this and the Adam pass is about the most that doing the same
/// arithmetic faster can reach against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmFloor {
    /// Sum over the products of the median seconds of the fastest layout.
    pub median_seconds: f64,
    /// The same sum of those layouts' fastest repetitions.
    pub best_seconds: f64,
    /// Their FLOPs ([`products_flops`]).
    pub flops: f64,
    /// The dense Adam pass of [`StepWork`] (reports written before it was
    /// measured have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adam_seconds: Option<f64>,
    pub threads: i32,
}

impl GemmFloor {
    /// The products and the Adam pass: about the least a step that trains
    /// these weights with dense Adam through this BLAS takes.
    pub fn with_adam_seconds(&self) -> f64 {
        self.median_seconds + self.adam_seconds.unwrap_or(0.0)
    }
}

/// Times [`GemmFloor`]: each layout of each product two times untimed,
/// then `reps` times.
pub fn gemm_floor(work: &StepWork, batch: usize, reps: usize) -> GemmFloor {
    let b = batch as i64;
    let (mut median_seconds, mut best_seconds) = (0.0, 0.0);
    for &(i, o) in &work.products {
        for (m, k, n) in [(b, i, o), (b, o, i), (i, b, o)] {
            let (median, best) = fastest_layout(m, k, n, reps);
            median_seconds += median;
            best_seconds += best;
        }
    }
    GemmFloor {
        median_seconds,
        best_seconds,
        flops: products_flops(&work.products, batch),
        adam_seconds: Some(work.adam_seconds),
        threads: tch::get_num_threads(),
    }
}

/// (median, best) seconds of `[m, k] x [k, n]` in the layout with the
/// lowest median.
fn fastest_layout(m: i64, k: i64, n: i64, reps: usize) -> (f64, f64) {
    let f = (Kind::Float, Device::Cpu);
    let stored = |rows: i64, cols: i64, transposed: bool| {
        if transposed {
            Tensor::randn([cols, rows], f).tr()
        } else {
            Tensor::randn([rows, cols], f)
        }
    };
    let mut fastest = (f64::INFINITY, f64::INFINITY);
    // The product, or its transpose [n, k] x [k, m].
    for (m, n) in [(m, n), (n, m)] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let (a, bm, c) = (stored(m, k, ta), stored(k, n, tb), Tensor::empty([m, n], f));
            let product = || {
                let _ = a.mm_out(&c, &bm);
            };
            product();
            product();
            let timed = time_reps(reps, product);
            if timed.0 < fastest.0 {
                fastest = timed;
            }
        }
    }
    fastest
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtlbench::data::toy::{generate, ToyConfig};
    use mtlbench::models::{self, ModelKind, ModelsConfig};

    #[test]
    fn step_flops_of_mmoe_by_hand() {
        let data = generate(&ToyConfig { rows: 100, tasks: vec!["a".into(), "b".into()], ..Default::default() });
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ModelsConfig::default();
        let _m = models::build(ModelKind::Mmoe, &vs, &data.schema, &cfg).unwrap();
        let input = vs.variables()["shared.mmoe.experts.l0.weight"].size()[1];
        // Experts 3 x in x 512, two gates in x 3, two towers 512-512-256-128-1.
        let tower = 512 * 512 + 512 * 256 + 256 * 128 + 128;
        let want = 3 * input * 512 + 2 * input * 3 + 2 * tower;
        assert_eq!(step_products(&vs).iter().map(|(i, o)| i * o).sum::<i64>(), want);
        assert_eq!(products_flops(&step_products(&vs), 10), 60.0 * want as f64);
    }

    #[test]
    fn the_floor_times_the_products_of_the_dense_weights() {
        let data = generate(&ToyConfig { rows: 100, tasks: vec!["a".into(), "b".into()], ..Default::default() });
        let vs = nn::VarStore::new(Device::Cpu);
        let mut cfg = ModelsConfig::default();
        cfg.mmoe.expert_hidden = vec![16, 8];
        cfg.tower.hidden = vec![8];
        let _m = models::build(ModelKind::Mmoe, &vs, &data.schema, &cfg).unwrap();
        let input = vs.variables()["shared.mmoe.experts.l0.weight"].size()[1];
        let before = vs.variables()["shared.mmoe.experts.l0.weight"].copy();
        let mut work = step_work(&vs, 3).unwrap();
        assert!(work.adam_seconds > 0.0);
        // Adam stepped the weights (by lr against gradients of ones).
        let after = &vs.variables()["shared.mmoe.experts.l0.weight"];
        assert!((before - after).abs().min().double_value(&[]) > 1e-3);
        work.products.sort();
        let p = work.products.clone();
        // The experts' first layer side by side, their second one expert
        // at a time, two gates, two towers 8-8-1.
        let mut want = vec![(input, 3 * 16), (16, 8), (16, 8), (16, 8), (input, 3), (input, 3), (8, 8), (8, 8), (8, 1), (8, 1)];
        want.sort();
        assert_eq!(p, want);
        let floor = gemm_floor(&work, 10, 3);
        assert_eq!(floor.flops, products_flops(&p, 10));
        assert!(floor.best_seconds > 0.0 && floor.best_seconds <= floor.median_seconds, "{floor:?}");
        assert_eq!(floor.with_adam_seconds(), floor.median_seconds + work.adam_seconds);
    }

    #[test]
    fn sgemm_reports_a_positive_rate() {
        let s = sgemm(128, 3);
        assert!(s.best_flops >= s.median_flops && s.median_flops > 1e6, "{s:?}");
    }
}
