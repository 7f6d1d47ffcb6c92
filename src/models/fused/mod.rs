//! The fused training pass of an MMOE: the forward pass and its backward
//! written out by hand, outside libtorch's autograd.
//!
//! Why: on the small tabular models (a few dozen fields of narrow
//! embeddings, a few experts of width ~16, towers of width ~8: about 22k
//! parameters) per-operator overhead and not arithmetic bounds the step:
//! the autograd step runs about 160 libtorch operators, and their
//! dispatch, graph bookkeeping and allocation took more than half of the
//! step while its matrix products took 1.4 ms of 3.2 ms
//! (docs/performance.md, "the step's floor"). On the WeChat-size MMOE
//! (experts of 512, towers [512, 256, 128], pooled history fields) the
//! products dominate, but autograd's element-wise passes over [B, 512]
//! buffers, its saved tensors and copies still cost ~15% of the step
//! ("The WeChat-size MMOE through the fused pass"). Here the step is a
//! handful of matrix products through libtorch's BLAS (the experts and
//! every gate in one product of x with their weights side by side, the
//! towers' layers, the weight and input gradients) and loops over rows of
//! the batch ([`kernels`]) for everything between them: the embedding
//! gather and scatter-add, the mean pooling of multi-valued fields, bias,
//! ReLU, softmax, the mix, dropout, batch norm, the logit and the
//! cross-entropy.
//!
//! It computes what the autograd path computes, for the same variables:
//! the same initial values, the same dropout masks from the same seeds
//! (drawn from libtorch's generator in the same order), batch norm's
//! running statistics moved the same way, and the gradient of the
//! weighted loss sum_t w_t L_t in every parameter's `.grad`, dense, for
//! the optimiser to step on unchanged (tests.rs compares the two paths'
//! losses, gradients and running statistics on a fixed seed). It serves
//! only a strategy whose objective is such a weighted sum with weights
//! that do not depend on the gradients
//! ([`crate::strategies::Strategy::plain_weights`]); the training step
//! falls back to autograd for every other strategy, on steps that take
//! gradient diagnostics, and where `[train] step = "autograd"`.
//!
//! What it covers ([`FusedMmoe::new`] returns `None` otherwise): an MMOE
//! on the CPU in f32 whose experts have one layer (any number and width),
//! an input of categorical fields, mean-pooled multi-valued fields (with
//! their own rows or through a categorical field's) and dense columns (no
//! encoded numeric columns), and towers with hashed dropout masks (or no
//! dropout), with or without batch norm.

mod kernels;
mod pass;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use tch::{nn, Device, Kind, Tensor};
use thiserror::Error;

use self::kernels::{FieldSlot, MixShape};
use super::dropout::DropoutMasks;
use super::multi_tower::TowerStack;
use super::tables::FieldRows;
pub use pass::FusedPass;

/// What can go wrong in a fused pass.
#[derive(Debug, Error)]
pub enum FusedError {
    #[error("fused pass: expected a contiguous f32 CPU tensor, got {0}")]
    Layout(String),
    #[error("batch row {row}: field `{field}` has id {id}, outside its vocabulary of {vocab}")]
    Id { row: usize, field: String, id: i64, vocab: usize },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// A tower layer: Dense -> ReLU -> Dropout -> optional batch norm.
#[derive(Debug)]
struct Layer {
    /// [out, in], as `nn::Linear` holds it, and [out].
    weight: Tensor,
    bias: Tensor,
    norm: Option<Norm>,
}

/// A batch norm's affine parameters, running statistics and settings.
#[derive(Debug)]
struct Norm {
    gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    momentum: f64,
    eps: f64,
}

/// One head's tower: its layers, its dropout and its logit ([1, h], [1]).
#[derive(Debug)]
struct Tower {
    layers: Vec<Layer>,
    dropout: f64,
    logit: (Tensor, Tensor),
}

/// The variables of an MMOE, shared with the model (shallow clones:
/// the optimiser's updates are seen here), and the shapes of the pass.
#[derive(Debug)]
pub struct FusedMmoe {
    /// The embedding tables and where each categorical column's rows are.
    tables: Vec<Tensor>,
    slots: Vec<FieldSlot>,
    field_names: Vec<String>,
    /// Where each multi-valued field's rows are, in batch order, and its name.
    pooled: Vec<FieldSlot>,
    pooled_names: Vec<String>,
    /// Width of a row of x: the dense columns, every categorical field's
    /// embedding, then every multi-valued field's pooled embedding.
    in_dim: usize,
    /// The experts' weight [n, in, o] and bias [n, o].
    experts: (Tensor, Tensor),
    /// Each head's gate weight, [n, in].
    gates: Vec<Tensor>,
    shape: MixShape,
    towers: Vec<Tower>,
    /// Every trainable variable, once.
    params: Vec<Tensor>,
}

impl FusedMmoe {
    /// The fused pass of `stack` (whose variables are those of `vs`), or
    /// `None` where it does not cover the model (see the module's header).
    pub fn new(stack: &TowerStack, vs: &nn::VarStore) -> Option<FusedMmoe> {
        let params = vs.trainable_variables();
        if vs.device() != Device::Cpu || params.iter().any(|p| p.kind() != Kind::Float) {
            return None;
        }
        let input = stack.input();
        if input.has_numeric() {
            return None;
        }
        let mmoe = stack.backbone().mmoe()?;
        let [(ew, eb)] = mmoe.experts().layers() else { return None };
        let (n, o) = (ew.size()[0], ew.size()[2]);
        let heads = mmoe.gates().len();
        if heads != stack.towers().len() {
            return None;
        }
        let gates: Vec<Tensor> = mmoe.gates().iter().map(|g| g.weight().shallow_clone()).collect();
        let towers = stack.towers().iter().map(tower_of).collect::<Option<Vec<Tower>>>()?;
        let (tables, fields) = input.categorical_rows();
        let mut col = input.dense_width();
        let mut slot = |f: FieldRows| {
            let s = FieldSlot { table: f.table, offset: f.offset as usize, vocab: f.vocab as usize, dim: f.dim as usize, col };
            col += s.dim;
            s
        };
        let (field_names, slots) = fields.into_iter().map(|f| (f.name.clone(), slot(f))).unzip();
        let (pooled_names, pooled) = input.pooled_rows().into_iter().map(|(name, f)| (name, slot(f))).unzip();
        if col as i64 != input.out_dim() || ew.size()[1] != input.out_dim() {
            return None;
        }
        let fused = FusedMmoe {
            tables,
            slots,
            field_names,
            pooled,
            pooled_names,
            in_dim: col,
            experts: (ew.shallow_clone(), eb.shallow_clone()),
            gates,
            shape: MixShape { n: n as usize, o: o as usize, heads },
            towers,
            params,
        };
        fused.covers_every_variable().then_some(fused)
    }

    /// Whether the variables the pass reads are exactly the trainable ones
    /// (so that every one of them gets its gradient here).
    fn covers_every_variable(&self) -> bool {
        let mut mine: Vec<&Tensor> = self.tables.iter().chain([&self.experts.0, &self.experts.1]).chain(&self.gates).collect();
        for t in &self.towers {
            for l in &t.layers {
                mine.extend([&l.weight, &l.bias]);
                if let Some(n) = &l.norm {
                    mine.extend([&n.gamma, &n.beta]);
                }
            }
            mine.extend([&t.logit.0, &t.logit.1]);
        }
        let at = |t: &Tensor| t.data_ptr() as usize;
        let mine: HashSet<usize> = mine.into_iter().map(at).collect();
        let all: HashSet<usize> = self.params.iter().map(at).collect();
        mine == all && all.len() == self.params.len()
    }
}

/// The tower's variables, or `None` for a tower the pass does not cover
/// (libtorch's dropout masks, or no logit).
fn tower_of(m: &super::Mlp) -> Option<Tower> {
    let parts = m.parts();
    if parts.dropout > 0.0 && parts.masks != DropoutMasks::Hashed {
        return None;
    }
    let logit = parts.logit?;
    let layers = parts
        .layers
        .iter()
        .map(|(lin, bn)| {
            let norm = match bn {
                None => None,
                Some((bn, momentum, eps)) => Some(Norm {
                    gamma: bn.ws.as_ref()?.shallow_clone(),
                    beta: bn.bs.as_ref()?.shallow_clone(),
                    running_mean: bn.running_mean.shallow_clone(),
                    running_var: bn.running_var.shallow_clone(),
                    momentum: *momentum,
                    eps: *eps,
                }),
            };
            Some(Layer { weight: lin.ws.shallow_clone(), bias: lin.bs.as_ref()?.shallow_clone(), norm })
        })
        .collect::<Option<Vec<Layer>>>()?;
    Some(Tower { layers, dropout: parts.dropout, logit: (logit.ws.shallow_clone(), logit.bs.as_ref()?.shallow_clone()) })
}
