//! PLE (Tang et al., "Progressive Layered Extraction (PLE): A Novel
//! Multi-Task Learning (MTL) Model for Personalized Recommendations", RecSys
//! 2020, <https://dl.acm.org/doi/10.1145/3383313.3412236>) in the paper's
//! form: `levels` stacked CGC layers with separate task and shared streams.
//! At each level, task `t`'s gate mixes [task t's experts; shared experts]
//! into task t's stream, and a shared gate mixes all experts into the shared
//! stream; the last level has no shared gate. With `levels = 1` it is a
//! single CGC layer. (The seed summed every gate output into one stream;
//! that is not PLE and is not done here.)
//!
//! Variable names follow what each parameter reaches: experts of every
//! level but the last, the shared gates, and task gates whose output still
//! feeds a shared gate live under `shared.ple.l{l}`; the last level's task
//! experts and the task gates of the last two levels reach one task only and
//! live under `task.{k}.ple.l{l}`; the last level's shared experts are the
//! last shared layer.

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::experts::{labels, mix_gates, ExpertSet, Gate, GateWeights};
use super::{Head, ModelError};

fn d_levels() -> usize {
    2
}
fn d_task_experts() -> i64 {
    5
}
fn d_shared_experts() -> i64 {
    10
}
fn d_expert_hidden() -> Vec<i64> {
    vec![256]
}

/// `[models.ple]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PleConfig {
    /// Number of CGC layers including the final one (default 2: the seed's
    /// one extraction level plus the final CGC). 1 = a single CGC.
    #[serde(default = "d_levels")]
    pub levels: usize,
    /// Experts per task at every level (seed default 5).
    #[serde(default = "d_task_experts")]
    pub task_experts: i64,
    /// Shared experts at every level (seed default 10).
    #[serde(default = "d_shared_experts")]
    pub shared_experts: i64,
    /// Widths of each expert's Dense(ReLU) layers (seed default [256]).
    #[serde(default = "d_expert_hidden")]
    pub expert_hidden: Vec<i64>,
}

impl Default for PleConfig {
    fn default() -> Self {
        PleConfig {
            levels: d_levels(),
            task_experts: d_task_experts(),
            shared_experts: d_shared_experts(),
            expert_hidden: d_expert_hidden(),
        }
    }
}

impl PleConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        let err = |key: &str, message: String| Err(ModelError::Config { key: format!("models.ple.{key}"), message });
        if self.levels < 1 {
            return err("levels", "needs at least 1 CGC layer".into());
        }
        if self.task_experts < 1 {
            return err("task_experts", format!("needs at least 1 expert per task, got {}", self.task_experts));
        }
        if self.shared_experts < 1 {
            return err("shared_experts", format!("needs at least 1 shared expert, got {}", self.shared_experts));
        }
        super::check_widths("models.ple.expert_hidden", &self.expert_hidden)
    }
}

/// One CGC layer.
#[derive(Debug)]
struct Cgc {
    task_experts: Vec<ExpertSet>,
    shared_experts: ExpertSet,
    task_gates: Vec<Gate>,
    /// Absent at the last level.
    shared_gate: Option<Gate>,
}

/// The stacked CGC layers.
#[derive(Debug)]
pub struct PleNet {
    levels: Vec<Cgc>,
    out_dim: i64,
}

impl PleNet {
    /// `root` is the model's VarStore root; `levels` overrides `cfg.levels`
    /// when given (the funnel models' `cgc` backbone is `Some(1)`).
    pub fn new(root: &nn::Path, in_dim: i64, heads: &[Head], cfg: &PleConfig, levels: Option<usize>) -> Result<Self, ModelError> {
        cfg.validate()?;
        let n_levels = levels.unwrap_or(cfg.levels).max(1);
        let (mt, ms) = (cfg.task_experts, cfg.shared_experts);
        let hid = &cfg.expert_hidden;
        let mut out = Vec::with_capacity(n_levels);
        let mut d = in_dim;
        for l in 1..=n_levels {
            let last = l == n_levels;
            let lvl = format!("l{l}");
            let shared = root / "shared" / "ple" / lvl.as_str();
            // Where a per-head part lives: shared while its output can still reach a shared gate.
            let per_head = |h: usize, reaches_all: bool| {
                if reaches_all {
                    &shared / format!("task{h}")
                } else {
                    root / "task" / heads[h].key.as_str() / "ple" / lvl.as_str()
                }
            };
            let task_experts = (0..heads.len()).map(|h| ExpertSet::new(&(per_head(h, !last) / "experts"), mt, d, hid)).collect();
            let shared_experts = ExpertSet::new(&(&shared / "shared" / "experts"), ms, d, hid);
            // A task gate at level l feeds task experts of level l + 1, which reach every
            // task only if level l + 1 still has a shared gate (l + 1 < n_levels).
            let gate_shared = l + 1 < n_levels;
            let task_gates = heads
                .iter()
                .enumerate()
                .map(|(h, head)| {
                    let mut lab = labels("own.", mt);
                    lab.extend(labels("shared.", ms));
                    Gate::new(&(per_head(h, gate_shared) / "gate"), d, format!("ple.{lvl}/{}", head.name), lab)
                })
                .collect();
            let shared_gate = (!last).then(|| {
                let mut lab = Vec::new();
                for head in heads {
                    lab.extend(labels(&format!("{}.", head.name), mt));
                }
                lab.extend(labels("shared.", ms));
                Gate::new(&(&shared / "shared" / "gate"), d, format!("ple.{lvl}/shared"), lab)
            });
            out.push(Cgc { task_experts, shared_experts, task_gates, shared_gate });
            d = *hid.last().unwrap_or(&d);
        }
        Ok(PleNet { levels: out, out_dim: d })
    }

    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    pub fn n_levels(&self) -> usize {
        self.levels.len()
    }

    /// The last level's shared experts, last layer.
    pub fn last_shared(&self) -> Vec<String> {
        let l = self.levels.len();
        let last_layer = self.levels.last().map(|c| c.shared_experts.last_layer()).unwrap_or(0);
        vec![format!("shared.ple.l{l}.shared.experts.l{last_layer}.")]
    }

    /// [B, in] -> one [B, out] per head (the task streams of the last
    /// level), and every gate's weights.
    pub fn forward(&self, x: &Tensor) -> (Vec<Tensor>, Vec<GateWeights>, Tensor) {
        let n_heads = self.levels.first().map_or(0, |c| c.task_gates.len());
        let mut task_in: Vec<Tensor> = (0..n_heads).map(|_| x.shallow_clone()).collect();
        let mut shared_in = x.shallow_clone();
        let mut gates = Vec::new();
        let mut last_shared = x.shallow_clone();
        for cgc in &self.levels {
            let own: Vec<Tensor> = cgc.task_experts.iter().zip(&task_in).map(|(e, xi)| e.forward(xi)).collect();
            let shared = cgc.shared_experts.forward(&shared_in);
            last_shared = shared.shallow_clone();
            let tw: Vec<Tensor> = cgc.task_gates.iter().zip(&task_in).map(|(g, xi)| g.forward(xi)).collect();
            let sw = cgc.shared_gate.as_ref().map(|g| g.forward(&shared_in));
            let (mt, ms) = (own.first().map_or(0, |o| o.size()[1]), shared.size()[1]);
            // Each expert set is read once for all the gates that mix it:
            // the shared experts by every task gate and the shared gate,
            // task h's experts by gate h and the shared gate.
            let mut parts: Vec<Tensor> = tw.iter().map(|w| w.narrow(1, mt, ms)).collect();
            if let Some(s) = &sw {
                parts.push(s.narrow(1, n_heads as i64 * mt, ms));
            }
            let from_shared = mix_gates(&parts, &shared).unbind(1);
            let mut task_out = Vec::with_capacity(n_heads);
            let mut next_shared: Option<Tensor> = None;
            for (h, o) in own.iter().enumerate() {
                let mut parts = vec![tw[h].narrow(1, 0, mt)];
                if let Some(s) = &sw {
                    parts.push(s.narrow(1, h as i64 * mt, mt));
                }
                let from_own = mix_gates(&parts, o).unbind(1);
                task_out.push(&from_own[0] + &from_shared[h]);
                if let Some(part) = from_own.get(1) {
                    let part = part.shallow_clone();
                    next_shared = Some(match next_shared {
                        None => part,
                        Some(acc) => acc + part,
                    });
                }
            }
            for (g, w) in cgc.task_gates.iter().zip(tw) {
                gates.push(GateWeights { name: g.name.clone(), labels: g.labels.clone(), weights: w });
            }
            if let (Some(g), Some(w)) = (&cgc.shared_gate, sw) {
                let from_all = &from_shared[n_heads];
                shared_in = next_shared.map_or_else(|| from_all.shallow_clone(), |acc| acc + from_all);
                gates.push(GateWeights { name: g.name.clone(), labels: g.labels.clone(), weights: w });
            }
            task_in = task_out;
        }
        (task_in, gates, last_shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::experts::mix;
    use tch::{Device, Kind};

    fn heads(n: usize) -> Vec<Head> {
        (0..n).map(|i| Head { key: i.to_string(), name: format!("t{i}") }).collect()
    }

    fn cfg() -> PleConfig {
        PleConfig { levels: 1, task_experts: 2, shared_experts: 3, expert_hidden: vec![6] }
    }

    #[test]
    fn one_level_is_a_cgc() {
        tch::manual_seed(11);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = PleNet::new(&vs.root(), 5, &heads(2), &cfg(), None).unwrap();
        assert_eq!(net.n_levels(), 1);
        let names: Vec<String> = vs.variables().into_keys().collect();
        // No shared gate, task experts and gates are task-specific, shared experts are shared.
        assert!(!names.iter().any(|n| n.contains("shared.gate")), "{names:?}");
        assert!(names.iter().any(|n| n == "task.0.ple.l1.experts.l0.weight"), "{names:?}");
        assert!(names.iter().any(|n| n == "task.1.ple.l1.gate.weight"), "{names:?}");
        assert!(names.iter().any(|n| n == "shared.ple.l1.shared.experts.l0.weight"), "{names:?}");
        let x = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
        let (out, gates, _) = net.forward(&x);
        assert_eq!(out.len(), 2);
        assert_eq!(gates.len(), 2, "one gate per task, no shared gate");
        // CGC by hand: head t = sum_k softmax(W_t x)_k [E_t(x); E_s(x)]_k.
        let cgc = &net.levels[0];
        let es = cgc.shared_experts.forward(&x);
        for (t, (experts, gate)) in cgc.task_experts.iter().zip(&cgc.task_gates).enumerate() {
            let et = experts.forward(&x);
            let w = gate.forward(&x);
            assert_eq!(w.size(), [4, 5]);
            let all = Tensor::cat(&[&et, &es], 1);
            let want = (0..5).map(|k| all.select(1, k) * w.select(1, k).unsqueeze(-1)).reduce(|a, b| a + b).unwrap();
            let diff = (&out[t] - want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "head {t} differs from the CGC formula by {diff}");
        }
    }

    #[test]
    fn two_levels_have_separate_streams_and_one_shared_gate() {
        tch::manual_seed(12);
        let vs = nn::VarStore::new(Device::Cpu);
        let c = PleConfig { levels: 2, ..cfg() };
        let net = PleNet::new(&vs.root(), 5, &heads(2), &c, None).unwrap();
        let names: Vec<String> = vs.variables().into_keys().collect();
        let shared_gates: Vec<&String> = names.iter().filter(|n| n.ends_with("shared.gate.weight")).collect();
        assert_eq!(shared_gates, ["shared.ple.l1.shared.gate.weight"]);
        // Level 1's task experts reach every task (through the shared gate); its
        // task gates feed level 2's task experts, which reach one task only.
        assert!(names.iter().any(|n| n == "shared.ple.l1.task0.experts.l0.weight"));
        assert!(names.iter().any(|n| n == "task.0.ple.l1.gate.weight"));
        assert!(names.iter().any(|n| n == "task.1.ple.l2.experts.l0.weight"));
        let x = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
        let (out, gates, _) = net.forward(&x);
        // Gates: level 1 (2 task + 1 shared), level 2 (2 task).
        let gate_names: Vec<&str> = gates.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(gate_names, ["ple.l1/t0", "ple.l1/t1", "ple.l1/shared", "ple.l2/t0", "ple.l2/t1"]);
        assert_eq!(gates[2].weights.size(), [4, 2 * 2 + 3]);
        // Separate streams: level 2's task experts see task stream t, not a sum of all gates.
        let l1 = &net.levels[0];
        let es = l1.shared_experts.forward(&x);
        let own0 = l1.task_experts[0].forward(&x);
        let s0 = mix(&l1.task_gates[0].forward(&x), &Tensor::cat(&[&own0, &es], 1));
        let l2 = &net.levels[1];
        let own1 = l1.task_experts[1].forward(&x);
        let sh = mix(&l1.shared_gate.as_ref().unwrap().forward(&x), &Tensor::cat(&[&own0, &own1, &es], 1));
        let w = l2.task_gates[0].forward(&s0);
        let want = mix(&w, &Tensor::cat(&[l2.task_experts[0].forward(&s0), l2.shared_experts.forward(&sh)], 1));
        assert!((&out[0] - want).abs().max().double_value(&[]) < 1e-5);
        assert_eq!(net.last_shared(), ["shared.ple.l2.shared.experts.l0."]);
    }
}
