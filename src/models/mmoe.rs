//! MMOE (Ma et al., "Modeling Task Relationships in Multi-task Learning with
//! Multi-gate Mixture-of-Experts", KDD 2018,
//! <https://dl.acm.org/doi/10.1145/3219819.3220007>): shared experts, and
//! one softmax gate per task (no bias) that mixes them into that task's
//! tower input. This file holds its settings and the expert/gate network;
//! the model is [`super::multi_tower::MultiTower`] on this backbone.
//!
//! Variables: experts under `shared.mmoe.experts` (every task reaches them),
//! the gate of head `k` under `task.{k}.gate` (only that head reaches it).

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::experts::{is_small_mix, labels, mix_batch_last, mix_stacked, ExpertSet, Gate, GateWeights};
use super::{Head, ModelError};

fn d_experts() -> i64 {
    3
}
fn d_expert_hidden() -> Vec<i64> {
    vec![512]
}

/// `[models.mmoe]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmoeConfig {
    /// Number of shared experts (seed default 3).
    #[serde(default = "d_experts")]
    pub experts: i64,
    /// Widths of each expert's Dense(ReLU) layers (seed default [512]).
    #[serde(default = "d_expert_hidden")]
    pub expert_hidden: Vec<i64>,
}

impl Default for MmoeConfig {
    fn default() -> Self {
        MmoeConfig { experts: d_experts(), expert_hidden: d_expert_hidden() }
    }
}

impl MmoeConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.experts < 1 {
            return Err(ModelError::Config {
                key: "models.mmoe.experts".into(),
                message: format!("needs at least 1 expert, got {}", self.experts),
            });
        }
        super::check_widths("models.mmoe.expert_hidden", &self.expert_hidden)
    }
}

/// Shared experts and one gate per head.
#[derive(Debug)]
pub struct MmoeNet {
    experts: ExpertSet,
    gates: Vec<Gate>,
}

impl MmoeNet {
    /// `root` is the model's VarStore root; one gate per head.
    pub fn new(root: &nn::Path, in_dim: i64, heads: &[Head], cfg: &MmoeConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        let experts = ExpertSet::new(&(root / "shared" / "mmoe" / "experts"), cfg.experts, in_dim, &cfg.expert_hidden);
        let gates = heads
            .iter()
            .map(|h| {
                Gate::new(&(root / "task" / h.key.as_str() / "gate"), in_dim, format!("mmoe/{}", h.name), labels("", cfg.experts))
            })
            .collect();
        Ok(MmoeNet { experts, gates })
    }

    pub fn out_dim(&self) -> i64 {
        self.experts.out_dim()
    }

    pub(crate) fn experts(&self) -> &ExpertSet {
        &self.experts
    }

    pub(crate) fn gates(&self) -> &[Gate] {
        &self.gates
    }

    /// The experts' last layers.
    pub fn last_shared(&self) -> Vec<String> {
        vec![format!("shared.mmoe.experts.l{}.", self.experts.last_layer())]
    }

    /// [B, in] -> one [B, out] per head, the gate weights, and the stacked
    /// expert outputs [B, experts, out] (the shared representation).
    /// A small mix (tabular models: a few gates over experts of width ~16)
    /// runs with the batch last, a larger one as batched products
    /// (`MmoeNet::forward_with`); with the batch last the heads, the gate
    /// weights and the representation are transposed views, not contiguous.
    pub fn forward(&self, x: &Tensor) -> (Vec<Tensor>, Vec<GateWeights>, Tensor) {
        let small = is_small_mix(self.gates.len() as i64, self.experts.len(), self.experts.out_dim());
        self.forward_with(x, if small { Layout::BatchLast } else { Layout::BatchFirst })
    }

    fn forward_with(&self, x: &Tensor, layout: Layout) -> (Vec<Tensor>, Vec<GateWeights>, Tensor) {
        let (heads, w, e) = match layout {
            Layout::BatchFirst => {
                let e = self.experts.forward(x);
                // Every gate in one product and one softmax, [B, heads, n], and
                // every gate's mix in one product: [B, heads, out].
                let w = Gate::forward_all(&self.gates, x);
                (mix_stacked(&w, &e).unbind(1), w.unbind(1), e)
            }
            Layout::BatchLast => {
                // The representation is a [B, n, out] view of the [n, out, B]
                // outputs, and the mix reads them through it, so that its
                // gradient is defined for the representation-level strategies.
                let e = self.experts.forward_batch_last(x).permute([2, 0, 1]);
                let w = Gate::forward_all_batch_last(&self.gates, x);
                let heads = mix_batch_last(&w, &e.permute([1, 2, 0])).unbind(0).iter().map(Tensor::tr).collect();
                (heads, w.unbind(0).iter().map(Tensor::tr).collect(), e)
            }
        };
        let gates = self
            .gates
            .iter()
            .zip(w)
            .map(|(g, w)| GateWeights { name: g.name.clone(), labels: g.labels.clone(), weights: w })
            .collect();
        (heads, gates, e)
    }
}

/// Where the batch sits in the experts', gates' and mix's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// [B, ...]: the mix as batched matrix products ([`mix_stacked`]).
    BatchFirst,
    /// [..., B]: element-wise kernels along rows of B floats
    /// ([`super::experts::mix_batch_last`]).
    BatchLast,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Outputs, gate weights, the representation and every gradient of the
    /// two layouts on the same weights, for one-layer and two-layer experts.
    #[test]
    fn the_batch_last_layout_equals_the_batch_first_in_values_and_gradients() {
        // The tabular model's shape (2 gates, 8 experts of 16) takes the batch-last path.
        assert!(is_small_mix(2, 8, 16) && !is_small_mix(2, 8, 512));
        for (experts, hidden) in [(8, vec![16]), (3, vec![6, 5])] {
            let layers = hidden.len();
            tch::manual_seed(12);
            let vs = nn::VarStore::new(Device::Cpu);
            let heads: Vec<Head> = ["a", "b"].iter().map(|k| Head { key: k.to_string(), name: k.to_string() }).collect();
            let net = MmoeNet::new(&vs.root(), 7, &heads, &MmoeConfig { experts, expert_hidden: hidden.clone() }).unwrap();
            let x = Tensor::randn([9, 7], (Kind::Float, Device::Cpu));
            let run = |layout| {
                let (hs, gs, rep) = net.forward_with(&x, layout);
                // An uneven weighting of both heads and the representation.
                let loss = hs.iter().enumerate().map(|(k, h)| (h * (k as f64 + 1.5)).sin().sum(Kind::Float)).sum::<Tensor>()
                    + (&rep * 0.3).cos().sum(Kind::Float);
                let params: Vec<Tensor> = vs.trainable_variables();
                let grads = Tensor::run_backward(&[loss], &params, false, false);
                (hs, gs.into_iter().map(|g| g.weights).collect::<Vec<_>>(), rep, grads)
            };
            let (a, b) = (run(Layout::BatchFirst), run(Layout::BatchLast));
            let close = |p: &Tensor, q: &Tensor, what: &str| {
                assert_eq!(p.size(), q.size(), "{what}");
                let d = (p - q).abs().max().double_value(&[]);
                assert!(d < 1e-5, "{what} differs by {d}");
            };
            assert_eq!((a.0.len(), b.0.len(), a.1.len(), b.1.len()), (2, 2, 2, 2), "two heads and two gates each");
            a.0.iter().zip(&b.0).for_each(|(p, q)| close(p, q, "head"));
            a.1.iter().zip(&b.1).for_each(|(p, q)| close(p, q, "gate weights"));
            close(&a.2, &b.2, "representation");
            a.3.iter().zip(&b.3).for_each(|(p, q)| close(p, q, "gradient"));
            assert_eq!(a.3.len(), 2 * layers + 2, "the experts' weights and biases and both gates");
            // The heads reach the representation in both layouts (the
            // representation-level strategies differentiate with respect to it).
            let rep_grad = |layout| {
                let (hs, _, rep) = net.forward_with(&x, layout);
                let loss = hs.iter().map(|h| (h * h).sum(Kind::Float)).sum::<Tensor>();
                Tensor::run_backward(&[loss], &[rep], false, false).remove(0)
            };
            close(&rep_grad(Layout::BatchFirst), &rep_grad(Layout::BatchLast), "gradient of the heads at the representation");
        }
    }
}
