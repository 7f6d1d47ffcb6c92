//! Embeddings of encoded numeric columns (the layer side of
//! [`crate::data::numeric`]): a quantile bin is looked up in a table; a
//! piecewise-linear block is mapped by a per-column linear layer; a
//! periodic column becomes [sin(2π c x), cos(2π c x)] with learned
//! frequencies c ~ N(0, σ²) and then a linear layer (Gorishniy et al.,
//! NeurIPS 2022, <https://arxiv.org/abs/2203.05556>). Each yields [B, d],
//! so encoded columns join the categorical embeddings in the input layer.

use std::f64::consts::PI;

use tch::{nn, nn::Module, Tensor};

use crate::data::numeric::{Activation, Encoding};
use crate::data::NumericField;

/// The parameters of one encoded column.
#[derive(Debug)]
enum Net {
    /// One row per bin; row 0 is the missing bin.
    Lookup(nn::Embedding),
    /// [B, T + 1] (components + missing flag) -> [B, d].
    PiecewiseLinear { linear: nn::Linear, relu: bool },
    /// [B, 2] (standardized value, missing flag) -> [B, d]; a missing value
    /// gets the learned `missing` vector.
    Periodic { frequencies: Tensor, linear: nn::Linear, missing: Tensor, relu: bool },
}

/// The embedding of one encoded numeric column.
#[derive(Debug)]
pub struct NumericEmbedding {
    net: Net,
}

impl NumericEmbedding {
    /// Builds the column's parameters under `vs`, of width `dim`.
    pub fn new(vs: &nn::Path, field: &NumericField, dim: i64) -> Self {
        let emb_init = nn::Init::Randn { mean: 0.0, stdev: 0.05 };
        let net = match field.encoding {
            Encoding::Quantile { .. } => {
                let cfg = nn::EmbeddingConfig { ws_init: emb_init, ..Default::default() };
                Net::Lookup(nn::embedding(vs / "bins", field.bins() as i64 + 1, dim, cfg))
            }
            Encoding::PiecewiseLinear { activation, .. } => Net::PiecewiseLinear {
                linear: nn::linear(vs / "linear", field.width() as i64, dim, Default::default()),
                relu: activation == Activation::Relu,
            },
            Encoding::Periodic { sigma, frequencies, activation } => {
                let k = frequencies as i64;
                Net::Periodic {
                    frequencies: vs.var("frequencies", &[k], nn::Init::Randn { mean: 0.0, stdev: sigma }),
                    linear: nn::linear(vs / "linear", 2 * k, dim, Default::default()),
                    missing: vs.var("missing", &[dim], emb_init),
                    relu: activation == Activation::Relu,
                }
            }
        };
        NumericEmbedding { net }
    }

    /// The column's batch block ([`crate::data::Batch::numeric`]) -> [B, d].
    pub fn forward(&self, block: &Tensor) -> Tensor {
        match &self.net {
            Net::Lookup(table) => block.apply(table),
            Net::PiecewiseLinear { linear, relu } => {
                let y = linear.forward(block);
                if *relu {
                    y.relu()
                } else {
                    y
                }
            }
            Net::Periodic { frequencies, linear, missing, relu } => {
                let x = block.narrow(1, 0, 1);
                let m = block.narrow(1, 1, 1);
                let angle = x * frequencies.unsqueeze(0) * (2.0 * PI);
                let y = linear.forward(&Tensor::cat(&[angle.sin(), angle.cos()], 1));
                let y = if *relu { y.relu() } else { y };
                y * (1.0 - &m) + m * missing.unsqueeze(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;
    use crate::data::numeric::{block, piecewise_linear_row, Block};
    use crate::data::{FeatureSchema, SplitData, SplitTensors};
    use crate::models::{InputConfig, InputLayer};

    fn field(encoding: Encoding, edges: &[f64]) -> NumericField {
        NumericField { name: "x".into(), emb_dim: 3, encoding, edges: edges.to_vec(), mean: 0.0, sd: 1.0 }
    }

    fn max_abs(t: &Tensor) -> f64 {
        t.abs().max().double_value(&[])
    }

    #[test]
    fn quantile_bins_look_up_their_row_and_piecewise_linear_is_one_linear_map() {
        let vs = nn::VarStore::new(Device::Cpu);
        let q = NumericEmbedding::new(&(vs.root() / "q"), &field(Encoding::Quantile { bins: 3 }, &[0.0, 1.0, 3.0, 6.0]), 3);
        let ids = Tensor::from_slice(&[0i64, 2, 3]);
        let table = vs.variables()["q.bins.weight"].shallow_clone();
        assert_eq!(table.size(), vec![4, 3], "3 bins + the missing bin");
        assert!(max_abs(&(q.forward(&ids) - table.index_select(0, &ids))) == 0.0);
        // PLE: y = W e + b with e the hand-checked encoding of x = 2: [1, 0.5, 0, 0].
        let pf = field(Encoding::PiecewiseLinear { bins: 3, activation: Activation::Relu }, &[0.0, 1.0, 3.0, 6.0]);
        let p = NumericEmbedding::new(&(vs.root() / "p"), &pf, 5);
        let (id, v) = pf.encode(2.0);
        let mut e = vec![0f32; 4];
        piecewise_linear_row(id, v, &mut e);
        let e = Tensor::from_slice(&e).view([1, 4]);
        let vars = vs.variables();
        let (w, b) = (&vars["p.linear.weight"], &vars["p.linear.bias"]);
        let want = (e.matmul(&w.tr()) + b).relu();
        assert!(max_abs(&(p.forward(&e) - want)) < 1e-6);
    }

    #[test]
    fn periodic_is_sin_cos_of_learned_frequencies_and_missing_gets_its_vector() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let f = field(Encoding::Periodic { sigma: 0.5, frequencies: 2, activation: Activation::None }, &[]);
        let m = NumericEmbedding::new(&vs.root(), &f, 4);
        let x = Tensor::from_slice(&[0.3f32, 0.0, -1.2, 0.0]).view([2, 2]); // row 0: x = 0.3; row 1: x = -1.2
        let miss = Tensor::from_slice(&[0.0f32, 1.0]).view([1, 2]);
        let vars = vs.variables();
        let (c, w, b) = (&vars["frequencies"], &vars["linear.weight"], &vars["linear.bias"]);
        let cs: Vec<f32> = Vec::try_from(c).unwrap();
        for (row, xv) in [(0i64, 0.3f64), (1, -1.2)] {
            let a: Vec<f32> = cs.iter().map(|&c| (2.0 * PI * c as f64 * xv) as f32).collect();
            let v: Vec<f32> = a.iter().map(|t| t.sin()).chain(a.iter().map(|t| t.cos())).collect();
            let want = Tensor::from_slice(&v).view([1, 4]).matmul(&w.tr()) + b;
            assert!(max_abs(&(m.forward(&x).narrow(0, row, 1) - want)) < 1e-5, "row {row}");
        }
        assert!(max_abs(&(m.forward(&miss) - vars["missing"].view([1, 4]))) == 0.0);
    }

    #[test]
    fn encoded_columns_join_the_input_vector_reproducibly_per_seed() {
        let fields = vec![
            field(Encoding::Quantile { bins: 2 }, &[0.0, 1.0, 2.0]),
            field(Encoding::PiecewiseLinear { bins: 2, activation: Activation::None }, &[0.0, 1.0, 2.0]),
            field(Encoding::Periodic { sigma: 1.0, frequencies: 3, activation: Activation::Relu }, &[]),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, f)| NumericField { name: format!("n{i}"), ..f })
        .collect();
        let schema =
            FeatureSchema { categorical: vec![], multi: vec![], dense: vec!["d".into()], tasks: vec!["t".into()], numeric: fields };
        let split = SplitData {
            rows: 2,
            dense: vec![0.5, -0.5],
            labels: vec![1.0, 0.0],
            users: vec![0, 0],
            numeric_ids: vec![1, 2, 1, 0, 0, 0],
            numeric_values: vec![0.0, 0.25, 0.7, 0.0, 0.0, 0.0],
            ..Default::default()
        };
        assert!(matches!(block(&schema.numeric[1], 1, &split, 3), Block::Values(v) if v == vec![1.0, 0.25, 0.0, 0.0, 0.0, 1.0]));
        let batch = SplitTensors::new(&split, &schema, Device::Cpu).slice(0, 2);
        assert_eq!(batch.numeric[0].kind(), Kind::Int64);
        assert_eq!((batch.numeric[1].size(), batch.numeric[2].size()), (vec![2, 3], vec![2, 2]));
        let cfg = InputConfig { emb_dims: [("n1".to_string(), 6)].into(), ..Default::default() };
        let out = |seed| {
            tch::manual_seed(seed);
            let vs = nn::VarStore::new(Device::Cpu);
            let layer = InputLayer::new(&vs.root(), &schema, &cfg).unwrap();
            assert_eq!(layer.out_dim(), 1 + 3 + 6 + 3);
            layer.forward(&batch)
        };
        let (a, b, c) = (out(1), out(1), out(2));
        assert_eq!(a.size(), vec![2, 13]);
        assert_eq!(max_abs(&(&a - &b)), 0.0, "same seed, same embeddings");
        assert!(max_abs(&(&a - &c)) > 0.0, "another seed, other embeddings");
        assert!(max_abs(&(a.narrow(1, 0, 1) - batch.dense)) == 0.0, "dense first");
    }
}
