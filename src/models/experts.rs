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

    /// Each layer's weight [n, in, out] and bias [n, out].
    pub(crate) fn layers(&self) -> &[(Tensor, Tensor)] {
        &self.layers
    }

    /// Index of the last layer (its prefix is the "last shared layer" of MMOE/PLE).
    pub fn last_layer(&self) -> usize {
        self.layers.len().saturating_sub(1)
    }

    /// [B, in] -> [B, n, out]: every expert applied to the same input.
    /// The first layer, whose input all experts share, is one `addmm` of x
    /// with the weights laid side by side, [in, n * out], bias included
    /// (fewer operators and a faster kernel than the batched product);
    /// deeper layers multiply each expert's own input.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let first = |w: &Tensor, b: &Tensor| {
            let (d, o) = (w.size()[1], w.size()[2]);
            let side_by_side = w.permute([1, 0, 2]).reshape([d, self.n * o]);
            b.reshape([-1]).addmm(x, &side_by_side).view([-1, self.n, o])
        };
        let deeper = |h: &Tensor, w: &Tensor, b: &Tensor| Tensor::einsum("bni,nio->bno", &[h, w], None::<i64>) + b.unsqueeze(0);
        // An expert set always has at least one layer (validated by the configs).
        self.layers_relu(first, deeper).unwrap_or_else(|| x.unsqueeze(1).expand([-1, self.n, -1], false))
    }

    /// [`Self::forward`] with the batch last: [B, in] -> [n, out, B], the
    /// same values transposed ([`mix_batch_last`] says why). The first layer
    /// is one `addmm` of the weights side by side, [n * out, in], with x
    /// transposed (a view); deeper layers are one `baddbmm`.
    pub fn forward_batch_last(&self, x: &Tensor) -> Tensor {
        let first = |w: &Tensor, b: &Tensor| {
            let (d, o) = (w.size()[1], w.size()[2]);
            let side_by_side = w.transpose(1, 2).reshape([self.n * o, d]);
            b.reshape([-1, 1]).addmm(&side_by_side, &x.tr()).view([self.n, o, -1])
        };
        let deeper = |h: &Tensor, w: &Tensor, b: &Tensor| b.unsqueeze(-1).baddbmm(&w.transpose(1, 2), h, 1.0, 1.0);
        self.layers_relu(first, deeper).unwrap_or_else(|| x.tr().unsqueeze(0).expand([self.n, -1, -1], false))
    }

    /// The layers in order, each followed by ReLU: `first(w, b)` for the
    /// first (whose input all experts share), `deeper(h, w, b)` for the rest.
    fn layers_relu(
        &self,
        first: impl Fn(&Tensor, &Tensor) -> Tensor,
        deeper: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    ) -> Option<Tensor> {
        let mut h: Option<Tensor> = None;
        for (w, b) in &self.layers {
            h = Some(match &h {
                None => first(w, b),
                Some(h) => deeper(h, w, b),
            }
            .relu());
        }
        h
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

    /// The weight, [n, in].
    pub(crate) fn weight(&self) -> &Tensor {
        &self.linear.ws
    }

    /// [B, in] -> [B, n], rows sum to 1.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        softmax_over(&self.linear.forward(x), -1)
    }

    /// Several gates of `n` experts each on the same input, in one matrix
    /// product and one softmax: [B, in] -> [B, G, n], row `g` being
    /// `gates[g].forward(x)`.
    pub fn forward_all(gates: &[Gate], x: &Tensor) -> Tensor {
        let (n, w) = Gate::stacked(gates);
        softmax_over(&x.linear::<&Tensor>(&w, None).view([-1, gates.len() as i64, n]), -1)
    }

    /// [`Self::forward_all`] with the batch last: [B, in] -> [G, n, B].
    pub fn forward_all_batch_last(gates: &[Gate], x: &Tensor) -> Tensor {
        let (n, w) = Gate::stacked(gates);
        softmax_over(&w.mm(&x.tr()).view([gates.len() as i64, n, -1]), 1)
    }

    /// Experts per gate and the gates' weights stacked, [G * n, in]. One
    /// gate needs no concatenation.
    fn stacked(gates: &[Gate]) -> (i64, Tensor) {
        let n = gates.first().map_or(0, |g| g.labels.len() as i64);
        let w = match gates {
            [one] => one.linear.ws.shallow_clone(),
            _ => Tensor::cat(&gates.iter().map(|g| &g.linear.ws).collect::<Vec<_>>(), 0),
        };
        (n, w)
    }
}

/// Softmax over dimension `dim`, exp(z - max z) / sum exp(z - max z),
/// from element-wise operators. The same function as libtorch's `softmax`
/// (to float rounding), whose CPU kernel took 2.7x as long forward and
/// backward on gates of 8 experts at batch 1024 (docs/performance.md).
/// The max is a constant shift, which leaves the softmax and its gradient
/// unchanged, so no gradient flows through it.
pub fn softmax_over(z: &Tensor, dim: i64) -> Tensor {
    let e = (z - z.amax([dim].as_slice(), true).detach()).exp();
    let sum = e.sum_dim_intlist([dim].as_slice(), true, Kind::Float);
    e / sum
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
    mix_stacked(&weights.unsqueeze(1), experts).squeeze_dim(1)
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

/// Below this many multiply-adds per row (G x n x d), libtorch's CPU `bmm`
/// runs its element-by-element kernel instead of BLAS (its threshold is
/// 400), and a broadcast product summed over the experts is the faster
/// mix (forward and backward, docs/performance.md).
const SMALL_MIX: i64 = 400;

/// Whether `gates` gates over `n` experts of width `d` are a small mix:
/// below [`SMALL_MIX`] multiply-adds per row, where libtorch's `bmm` is slow.
pub fn is_small_mix(gates: i64, n: i64, d: i64) -> bool {
    gates * n * d < SMALL_MIX
}

/// The small mix with the batch last: weights [G, n, B], experts
/// [n, d, B] -> [G, d, B], row `g` being the transpose of [`mix`] of
/// `weights[g]` transposed ([B, n]) and the experts permuted to [B, n, d].
/// The same broadcast product summed over the experts as
/// [`mix_stacked`]'s small path, but every element-wise kernel of it and of
/// its backward (the product, the sums over experts, gates and width) runs
/// along rows of B contiguous floats instead of rows of d = 16 or n = 8,
/// where libtorch's loops pay their per-row overhead (docs/performance.md,
/// "The small mix with the batch last").
pub fn mix_batch_last(weights: &Tensor, experts: &Tensor) -> Tensor {
    (weights.unsqueeze(2) * experts.unsqueeze(0)).sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
}

/// [`mix_gates`] of weights stacked [B, G, n] (as [`Gate::forward_all`] gives them).
pub fn mix_stacked(weights: &Tensor, experts: &Tensor) -> Tensor {
    let (w, e) = (weights.size(), experts.size());
    if w.len() == 3 && e.len() == 3 && is_small_mix(w[1], w[2], e[2]) {
        (weights.unsqueeze(-1) * experts.unsqueeze(1)).sum_dim_intlist([2i64].as_slice(), false, Kind::Float)
    } else {
        weights.bmm(experts)
    }
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

    /// Values and input gradients of `f` and `g` on the same inputs agree to 1e-5.
    fn same_function_and_gradients(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor, g: impl Fn(&[Tensor]) -> Tensor) {
        let run = |h: &dyn Fn(&[Tensor]) -> Tensor| {
            let xs: Vec<Tensor> = inputs.iter().map(|x| x.detach().set_requires_grad(true)).collect();
            let y = h(&xs);
            // A fixed, uneven upstream gradient.
            let up = Tensor::arange(y.numel() as i64, (Kind::Float, Device::Cpu)).view(y.size().as_slice()).sin();
            (&y * up).sum(Kind::Float).backward();
            (y.detach(), xs.iter().map(|x| x.grad()).collect::<Vec<_>>())
        };
        let ((ya, ga), (yb, gb)) = (run(&f), run(&g));
        assert_eq!(ya.size(), yb.size());
        assert!((&ya - &yb).abs().max().double_value(&[]) < 1e-5, "values differ");
        for (k, (a, b)) in ga.iter().zip(&gb).enumerate() {
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "gradient of input {k} differs by {diff}");
        }
    }

    #[test]
    fn small_mixes_equal_the_batched_product() {
        tch::manual_seed(6);
        // 2 gates x 8 experts x 16 wide: the broadcast path; 3 x 3 x 64: bmm.
        for (g, n, d) in [(2, 8, 16), (3, 3, 64)] {
            let w = Tensor::rand([5, g, n], (Kind::Float, Device::Cpu));
            let e = Tensor::randn([5, n, d], (Kind::Float, Device::Cpu));
            same_function_and_gradients(&[w, e], |x| mix_stacked(&x[0], &x[1]), |x| x[0].bmm(&x[1]));
        }
    }

    #[test]
    fn softmax_from_elementwise_ops_is_libtorchs() {
        tch::manual_seed(8);
        // Large logits too: the shift by the max keeps exp finite.
        let z = Tensor::randn([6, 2, 8], (Kind::Float, Device::Cpu)) * 30.0;
        same_function_and_gradients(&[z.shallow_clone()], |x| softmax_over(&x[0], -1), |x| x[0].softmax(-1, Kind::Float));
        same_function_and_gradients(&[z], |x| softmax_over(&x[0], 1), |x| x[0].softmax(1, Kind::Float));
    }

    #[test]
    fn first_layer_side_by_side_equals_the_batched_product() {
        tch::manual_seed(9);
        let x = Tensor::randn([7, 5], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([3, 5, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
        same_function_and_gradients(
            &[x, w, b],
            |t| {
                let set = ExpertSet { layers: vec![(t[1].shallow_clone(), t[2].shallow_clone())], n: 3, out_dim: 4 };
                set.forward(&t[0])
            },
            |t| (Tensor::einsum("bi,nio->bno", &[&t[0], &t[1]], None::<i64>) + t[2].unsqueeze(0)).relu(),
        );
    }

    #[test]
    fn two_layers_equal_separate_dense_layers_in_values_and_gradients() {
        tch::manual_seed(10);
        // Inputs of both signs, so that both ReLUs cut some units.
        let x = Tensor::randn([9, 6], (Kind::Float, Device::Cpu));
        let w0 = Tensor::randn([4, 6, 5], (Kind::Float, Device::Cpu));
        let b0 = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
        let w1 = Tensor::randn([4, 5, 3], (Kind::Float, Device::Cpu));
        let b1 = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        same_function_and_gradients(
            &[x, w0, b0, w1, b1],
            |t| {
                let layers = vec![(t[1].shallow_clone(), t[2].shallow_clone()), (t[3].shallow_clone(), t[4].shallow_clone())];
                ExpertSet { layers, n: 4, out_dim: 3 }.forward(&t[0])
            },
            // Expert k by hand: relu(relu(x W0[k] + b0[k]) W1[k] + b1[k]).
            |t| {
                let experts: Vec<Tensor> = (0..4)
                    .map(|k| {
                        let h = (t[0].matmul(&t[1].get(k)) + t[2].get(k)).relu();
                        (h.matmul(&t[3].get(k)) + t[4].get(k)).relu()
                    })
                    .collect();
                Tensor::stack(&experts, 1)
            },
        );
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
