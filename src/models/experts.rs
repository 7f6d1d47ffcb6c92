//! The mixture-of-experts parts that MMOE and PLE (and the funnel models on
//! those backbones) share: a set of experts evaluated in one batched matmul,
//! softmax gates without bias, and the gate-weighted mix (also of several
//! gates over the same experts in one product, so that each expert output
//! is read once per step rather than once per gate). Kept in one place
//! so that no model carries its own copy.

use std::sync::Arc;

use tch::{nn, nn::Module, Kind, Tensor};

/// `n` experts of identical shape (Dense(ReLU) layers), stored as one
/// `[n, in, out]` weight per layer so that all experts run in one matmul.
/// Each expert is initialised like `nn::linear` (uniform, bound 1/sqrt(in)).
#[derive(Debug)]
pub struct ExpertSet {
    layers: Vec<(Tensor, Tensor)>,
    n: i64,
    out_dim: i64,
}

impl ExpertSet {
    /// Layer `i` lives under `vs / "l{i}"` (`weight` [n, in, out], `bias` [n, out]).
    pub fn new(vs: &nn::Path, n: i64, in_dim: i64, hidden: &[i64]) -> ExpertSet {
        let mut layers = Vec::with_capacity(hidden.len());
        let mut d = in_dim;
        for (i, &h) in hidden.iter().enumerate() {
            let p = vs / format!("l{i}");
            let bound = 1.0 / (d as f64).sqrt();
            let w = p.var("weight", &[n, d, h], nn::Init::Uniform { lo: -bound, up: bound });
            let b = p.var("bias", &[n, h], nn::Init::Uniform { lo: -bound, up: bound });
            layers.push((w, b));
            d = h;
        }
        ExpertSet { layers, n, out_dim: d }
    }

    pub fn len(&self) -> i64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    /// Index of the last layer (its prefix is the "last shared layer" of MMOE/PLE).
    pub fn last_layer(&self) -> usize {
        self.layers.len().saturating_sub(1)
    }

    /// [B, in] -> [B, n, out]: every expert applied to the same input.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h: Option<Tensor> = None;
        for (w, b) in &self.layers {
            let y = match &h {
                None => Tensor::einsum("bi,nio->bno", &[x, w], None::<i64>),
                Some(h) => Tensor::einsum("bni,nio->bno", &[h, w], None::<i64>),
            };
            h = Some((y + b.unsqueeze(0)).relu());
        }
        // An expert set always has at least one layer (validated by the configs).
        h.unwrap_or_else(|| x.unsqueeze(1).expand([-1, self.n, -1], false))
    }
}

/// A softmax gate over `n` experts: softmax(W x), no bias (MMOE, PLE).
#[derive(Debug)]
pub struct Gate {
    linear: nn::Linear,
    /// Display name (e.g. "mmoe/click") and one label per expert.
    pub name: String,
    pub labels: Arc<[String]>,
}

impl Gate {
    pub fn new(vs: &nn::Path, in_dim: i64, name: String, labels: Vec<String>) -> Gate {
        let n = labels.len() as i64;
        let linear = nn::linear(vs, in_dim, n, nn::LinearConfig { bias: false, ..Default::default() });
        Gate { linear, name, labels: labels.into() }
    }

    /// [B, in] -> [B, n], rows sum to 1.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.linear.forward(x).softmax(-1, Kind::Float)
    }

    /// Several gates of `n` experts each on the same input, in one matrix
    /// product and one softmax: [B, in] -> [B, G, n], row `g` being
    /// `gates[g].forward(x)`. One gate needs no concatenation.
    pub fn forward_all(gates: &[Gate], x: &Tensor) -> Tensor {
        let n = gates.first().map_or(0, |g| g.labels.len() as i64);
        let w = match gates {
            [one] => one.linear.ws.shallow_clone(),
            _ => Tensor::cat(&gates.iter().map(|g| &g.linear.ws).collect::<Vec<_>>(), 0),
        };
        x.linear::<&Tensor>(&w, None).view([-1, gates.len() as i64, n]).softmax(-1, Kind::Float)
    }
}

/// The gate weights of one forward pass, exposed by [`super::ModelOutput`].
#[derive(Debug)]
pub struct GateWeights {
    pub name: String,
    pub labels: Arc<[String]>,
    /// [B, n], rows sum to 1.
    pub weights: Tensor,
}

/// Gate-weighted sum of experts: weights [B, n], experts [B, n, d] -> [B, d].
pub fn mix(weights: &Tensor, experts: &Tensor) -> Tensor {
    weights.unsqueeze(1).bmm(experts).squeeze_dim(1)
}

/// Several gates' mixes of the same experts at once: weights G x [B, n]
/// (or already stacked, [`mix_stacked`]),
/// experts [B, n, d] -> [B, G, d], row `g` being `mix(weights[g], experts)`.
/// One small matrix product per row reads the experts once for all gates,
/// where G separate mixes would read them G times (and write G gradient
/// contributions back); in PLE the shared experts feed every gate.
pub fn mix_gates(weights: &[Tensor], experts: &Tensor) -> Tensor {
    mix_stacked(&Tensor::stack(weights, 1), experts)
}

/// [`mix_gates`] of weights stacked [B, G, n] (as [`Gate::forward_all`] gives them).
pub fn mix_stacked(weights: &Tensor, experts: &Tensor) -> Tensor {
    weights.bmm(experts)
}

/// Labels "{prefix}e0", "{prefix}e1", ...
pub fn labels(prefix: &str, n: i64) -> Vec<String> {
    (0..n).map(|k| format!("{prefix}e{k}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn batched_experts_equal_separate_dense_layers() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let set = ExpertSet::new(&(vs.root() / "x"), 3, 5, &[4, 2]);
        let x = Tensor::randn([7, 5], (Kind::Float, Device::Cpu));
        let out = set.forward(&x);
        assert_eq!(out.size(), [7, 3, 2]);
        // Expert k by hand: relu(relu(x W0[k] + b0[k]) W1[k] + b1[k]).
        for k in 0..3 {
            let (w0, b0) = (&set.layers[0].0.get(k), &set.layers[0].1.get(k));
            let (w1, b1) = (&set.layers[1].0.get(k), &set.layers[1].1.get(k));
            let h = (x.matmul(w0) + b0).relu();
            let want = (h.matmul(w1) + b1).relu();
            let diff = (out.select(1, k) - want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "expert {k} differs by {diff}");
        }
    }

    #[test]
    fn gate_rows_sum_to_one_and_mix_is_weighted_sum() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let gate = Gate::new(&(vs.root() / "g"), 5, "g".into(), labels("", 3));
        assert!(vs.variables().keys().all(|k| !k.contains("bias")), "gates have no bias");
        let x = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
        let w = gate.forward(&x);
        assert_eq!(w.size(), [6, 3]);
        let sums = w.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-6);
        assert!(w.min().double_value(&[]) >= 0.0);
        let e = Tensor::randn([6, 3, 4], (Kind::Float, Device::Cpu));
        let m = mix(&w, &e);
        let want = (0..3).map(|k| e.select(1, k) * w.select(1, k).unsqueeze(-1)).reduce(|a, b| a + b).unwrap();
        assert!((&m - &want).abs().max().double_value(&[]) < 1e-6);
        // Two gates at once: row 0 is this gate's mix, row 1 another's.
        let w2 = gate.forward(&(x * 2.0));
        let both = mix_gates(&[w.shallow_clone(), w2.shallow_clone()], &e);
        assert_eq!(both.size(), [6, 2, 4]);
        assert!((both.select(1, 0) - &want).abs().max().double_value(&[]) < 1e-6);
        assert!((both.select(1, 1) - mix(&w2, &e)).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn gates_in_one_product_equal_each_gate_alone() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let gates: Vec<Gate> = (0..3).map(|k| Gate::new(&(vs.root() / format!("g{k}")), 5, format!("g{k}"), labels("", 4))).collect();
        let x = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
        let all = Gate::forward_all(&gates, &x);
        assert_eq!(all.size(), [6, 3, 4]);
        for (k, g) in gates.iter().enumerate() {
            // By hand: softmax of x W_k^T.
            let logits = x.matmul(&g.linear.ws.tr());
            let want = logits.exp() / logits.exp().sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
            let diff = (all.select(1, k as i64) - want).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "gate {k} differs by {diff}");
        }
        assert!(Gate::forward_all(&gates[..1], &x).select(1, 0).allclose(&gates[0].forward(&x), 1e-6, 1e-7, false));
    }
}
