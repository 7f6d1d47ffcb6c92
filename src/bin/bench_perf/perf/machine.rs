//! What a throughput number needs next to it: the machine (CPU model,
//! cores, load average), its measured dense sgemm throughput with libtorch
//! at the thread count of the comparison, and the FLOP count of one
//! training step computed from a model's architecture.

use std::time::Instant;

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
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let _ = a.matmul_out(&c, &b);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let flop = 2.0 * (n as f64).powi(3);
    Sgemm { n, threads: tch::get_num_threads(), median_flops: flop / times[times.len() / 2], best_flops: flop / times[0] }
}

/// FLOPs of one training step (forward + backward) at batch `b`, from the
/// dense layers of a model: every 2-D or 3-D weight outside the embedding
/// tables (`shared.input.`) is a (batched) matmul applied once per row, costing
/// 2 x elements per row forward and twice that backward (input and weight
/// gradients), so 6 x b x (sum of their elements). Embedding lookups,
/// element-wise ops, batch norm and the optimizer are left out: they are
/// memory-bound, and counting them would flatter the achieved FLOP/s.
pub fn train_step_flops(vs: &nn::VarStore, batch: usize) -> f64 {
    6.0 * batch as f64 * dense_weight_elements(vs) as f64
}

/// Elements of the dense (matmul) weights of a VarStore, embeddings excluded.
pub fn dense_weight_elements(vs: &nn::VarStore) -> i64 {
    vs.variables()
        .iter()
        .filter(|(name, t)| t.requires_grad() && !name.starts_with("shared.input.") && name.ends_with("weight") && t.dim() >= 2)
        .map(|(_, t)| t.numel() as i64)
        .sum()
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
        assert_eq!(dense_weight_elements(&vs), want);
        assert_eq!(train_step_flops(&vs, 10), 60.0 * want as f64);
    }

    #[test]
    fn sgemm_reports_a_positive_rate() {
        let s = sgemm(128, 3);
        assert!(s.best_flops >= s.median_flops && s.median_flops > 1e6, "{s:?}");
    }
}
