//! One fused training pass: [`FusedMmoe::forward`] computes the loss terms
//! and keeps what the backward reads; [`FusedPass::backward`] writes the
//! gradient of the weighted loss into every variable's `.grad`. Both run
//! without autograd; the matrix products are libtorch's, in the layouts
//! that need no copies: x [B, in] times the experts' and gates' weights
//! side by side [in, n * o + heads * n], then its transpose for the
//! weight gradient (x^T dz) and the input gradient (dz W^T).

use tch::{Device, Kind, Tensor};

use super::kernels::{self, elems, elems_mut, NormSaved};
use super::{FusedError, FusedMmoe, Tower};
use crate::data::Batch;
use crate::models::dropout;

/// What a tower layer's forward keeps for its backward.
struct LayerSaved {
    /// The layer's input, [B, in].
    input: Tensor,
    /// The mask of its ReLU and dropout, [B, out].
    mask: Vec<f32>,
    norm: Option<NormSaved>,
}

/// What a head's forward keeps.
struct HeadSaved {
    layers: Vec<LayerSaved>,
    /// The logit's input, [B, h].
    last: Tensor,
    logits: Vec<f32>,
    labels: Vec<f32>,
}

/// A forward pass, ready for its backward.
pub struct FusedPass<'a> {
    model: &'a FusedMmoe,
    ids: Tensor,
    /// Each multi-valued field's ids, their rows and the rows' counts.
    multi: Vec<[Tensor; 3]>,
    /// The input vectors [B, in], the experts' and gates' weights side by
    /// side [in, width], and z [B, width]: the experts' outputs, then each
    /// head's gate weights.
    x: Tensor,
    wc: Tensor,
    z: Tensor,
    heads: Vec<HeadSaved>,
    losses: Vec<f64>,
}

/// A multi-valued field's ids, rows and counts as slices.
fn ragged(m: &[Tensor; 3]) -> Result<kernels::Ragged<'_>, FusedError> {
    Ok(kernels::Ragged { ids: kernels::ids(&m[0])?, rows: kernels::ids(&m[1])?, counts: elems(&m[2])? })
}

fn buffer(rows: usize, cols: usize) -> Tensor {
    Tensor::empty([rows as i64, cols as i64], (Kind::Float, Device::Cpu))
}

impl FusedMmoe {
    /// The training-mode forward pass on `batch`: each head's mean binary
    /// cross-entropy, dropout masks drawn and batch norm's running
    /// statistics moved as the model's own forward pass does.
    pub fn forward(&self, batch: &Batch) -> Result<FusedPass<'_>, FusedError> {
        tch::no_grad(|| self.forward_no_grad(batch))
    }

    fn forward_no_grad(&self, batch: &Batch) -> Result<FusedPass<'_>, FusedError> {
        let rows = batch.size() as usize;
        let ids = batch.categorical.to_kind(Kind::Int64).contiguous();
        let dense = batch.dense.to_kind(Kind::Float).contiguous();
        let labels = batch.labels.to_kind(Kind::Float).contiguous();
        let multi = self.multi_of(batch, rows)?;
        let mut x = buffer(rows, self.in_dim);
        {
            let tables = self.tables.iter().map(elems).collect::<Result<Vec<_>, _>>()?;
            let nd = dense.size().get(1).copied().unwrap_or(0) as usize;
            let xs = elems_mut(&mut x)?;
            kernels::gather(xs, (self.in_dim, nd), elems(&dense)?, kernels::ids(&ids)?, &self.slots, &tables)
                .map_err(|(row, k, id)| FusedError::Id { row, field: self.field_names[k].clone(), id, vocab: self.slots[k].vocab })?;
            for (k, (s, m)) in self.pooled.iter().zip(&multi).enumerate() {
                kernels::pool(xs, self.in_dim, ragged(m)?, s, tables[s.table])
                    .map_err(|(row, id)| FusedError::Id { row, field: self.pooled_names[k].clone(), id, vocab: s.vocab })?;
            }
        }
        let wc = self.side_by_side();
        let mut z = x.mm(&wc);
        kernels::experts_and_gates(elems_mut(&mut z)?, elems(&self.experts.1)?, self.shape);
        let mut mixed: Vec<Tensor> = (0..self.shape.heads).map(|_| buffer(rows, self.shape.o)).collect();
        {
            let mut outs = mixed.iter_mut().map(elems_mut).collect::<Result<Vec<_>, _>>()?;
            kernels::mix(elems(&z)?, self.shape, &mut outs);
        }
        let label_rows = elems(&labels)?;
        let tasks = self.towers.len();
        let mut heads = Vec::with_capacity(tasks);
        for (t, (tower, input)) in self.towers.iter().zip(mixed).enumerate() {
            let column = label_rows.iter().skip(t).step_by(tasks).copied().collect();
            heads.push(tower_forward(tower, input, column)?);
        }
        let losses = heads.iter().map(|h| kernels::bce_mean(&h.logits, &h.labels)).collect();
        Ok(FusedPass { model: self, ids, multi, x, wc, z, heads, losses })
    }

    /// The batch's multi-valued fields as contiguous ids, rows and counts,
    /// one per field the pass pools, each with a count per row.
    fn multi_of(&self, batch: &Batch, rows: usize) -> Result<Vec<[Tensor; 3]>, FusedError> {
        if batch.multi.len() != self.pooled.len() {
            return Err(FusedError::Layout(format!("{} multi-valued fields for {} pooled", batch.multi.len(), self.pooled.len())));
        }
        let mut out = Vec::with_capacity(batch.multi.len());
        for m in &batch.multi {
            let part = [m.ids.to_kind(Kind::Int64), m.rows.to_kind(Kind::Int64), m.counts.to_kind(Kind::Float)].map(|t| t.contiguous());
            let in_batch = kernels::ids(&part[1])?.iter().all(|&r| (0..rows as i64).contains(&r));
            if part[0].numel() != part[1].numel() || part[2].numel() != rows || !in_batch {
                let sizes = [0, 1, 2].map(|i| part[i].size());
                return Err(FusedError::Layout(format!("ragged ids {:?}, rows {:?} (each in 0..{rows}: {in_batch}), counts {:?}", sizes[0], sizes[1], sizes[2])));
            }
            out.push(part);
        }
        Ok(out)
    }

    /// The experts' weights side by side ([n, in, o] as [in, n * o]) and
    /// each gate's weight transposed after them: [in, width].
    fn side_by_side(&self) -> Tensor {
        let (n, o) = (self.shape.n as i64, self.shape.o as i64);
        let d = self.in_dim as i64;
        let mut parts = vec![self.experts.0.permute([1, 0, 2]).reshape([d, n * o])];
        parts.extend(self.gates.iter().map(Tensor::tr));
        Tensor::cat(&parts, 1)
    }
}

/// A tower's forward pass on its input [B, o]: each layer's product,
/// ReLU and dropout as one mask (the masks of [`dropout::fill_relu_mask`]
/// from seeds drawn as the model's own layers draw them), batch norm; the
/// logits.
fn tower_forward(t: &Tower, input: Tensor, labels: Vec<f32>) -> Result<HeadSaved, FusedError> {
    let threads = tch::get_num_threads().max(1) as usize;
    let mut h = input;
    let mut layers = Vec::with_capacity(t.layers.len());
    for l in &t.layers {
        let mut a = l.bias.addmm(&h, &l.weight.tr());
        let width = l.weight.size()[0] as usize;
        let mask = if t.dropout > 0.0 {
            let pre = elems(&a)?;
            let mut m = vec![0.0f32; pre.len()];
            dropout::fill_relu_mask(&mut m, pre, t.dropout, dropout::draw_seed(), threads);
            m
        } else {
            kernels::relu_mask(elems(&a)?)
        };
        let out = elems_mut(&mut a)?;
        kernels::apply_mask(out, &mask);
        let norm = match &l.norm {
            None => None,
            Some(n) => {
                let (mut rm, mut rv) = (n.running_mean.shallow_clone(), n.running_var.shallow_clone());
                let running = (elems_mut(&mut rm)?, elems_mut(&mut rv)?, n.momentum);
                Some(kernels::batch_norm(out, width, elems(&n.gamma)?, elems(&n.beta)?, n.eps, running))
            }
        };
        layers.push(LayerSaved { input: h, mask, norm });
        h = a;
    }
    let width = h.size()[1] as usize;
    let logits = kernels::logits(elems(&h)?, width, elems(&t.logit.0)?, elems(&t.logit.1)?[0]);
    Ok(HeadSaved { layers, last: h, logits, labels })
}

impl FusedPass<'_> {
    /// Each head's loss term, in head order.
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// Writes the gradient of sum_t weights[t] L_t into every variable's
    /// `.grad` (dense, replacing what was there).
    pub fn backward(self, weights: &[f64]) -> Result<(), FusedError> {
        if weights.len() != self.heads.len() {
            return Err(FusedError::Layout(format!("{} weights for {} loss terms", weights.len(), self.heads.len())));
        }
        define_grads(&self.model.params)?;
        tch::no_grad(|| self.backward_no_grad(weights))
    }

    fn backward_no_grad(self, weights: &[f64]) -> Result<(), FusedError> {
        let m = self.model;
        let dm = m.towers.iter().zip(&self.heads).zip(weights).map(|((t, h), &w)| tower_backward(t, h, w)).collect::<Result<Vec<_>, _>>()?;
        let rows = self.heads.first().map_or(0, |h| h.logits.len());
        let mut dz = buffer(rows, m.shape.width());
        {
            let mut dbias = m.experts.1.grad();
            let dms = dm.iter().map(elems).collect::<Result<Vec<_>, _>>()?;
            kernels::mix_backward(elems(&self.z)?, m.shape, &dms, elems_mut(&mut dz)?, elems_mut(&mut dbias)?);
        }
        let (n, o, d) = (m.shape.n as i64, m.shape.o as i64, m.in_dim as i64);
        let dwc = self.x.tr().mm(&dz);
        m.experts.0.grad().copy_(&dwc.narrow(1, 0, n * o).view([d, n, o]).permute([1, 0, 2]));
        for (t, g) in m.gates.iter().enumerate() {
            g.grad().copy_(&dwc.narrow(1, n * o + t as i64 * n, n).tr());
        }
        let dx = dz.mm(&self.wc.tr());
        let mut grads: Vec<Tensor> = m.tables.iter().map(Tensor::grad).collect();
        grads.iter_mut().for_each(|g| {
            let _ = g.zero_();
        });
        let mut gs = grads.iter_mut().map(elems_mut).collect::<Result<Vec<_>, _>>()?;
        let dx = elems(&dx)?;
        kernels::scatter_add(&mut gs, dx, m.in_dim, kernels::ids(&self.ids)?, &m.slots);
        for (s, multi) in m.pooled.iter().zip(&self.multi) {
            kernels::pool_backward(gs[s.table], dx, m.in_dim, ragged(multi)?, s);
        }
        Ok(())
    }
}

/// A tower's backward from its loss term (of weight `weight`): the
/// gradients of its variables, and that of its input [B, o], returned.
/// Each layer's output gradient is changed in place (batch norm, the
/// mask) and its weight gradient written by the product into `.grad`.
fn tower_backward(t: &Tower, h: &HeadSaved, weight: f64) -> Result<Tensor, FusedError> {
    let rows = h.logits.len() as i64;
    let ds = kernels::bce_backward(&h.logits, &h.labels, weight);
    let width = h.last.size()[1] as usize;
    let (mut gw, mut gb) = (t.logit.0.grad(), t.logit.1.grad());
    let (db, dy) = kernels::logits_backward(elems(&h.last)?, width, elems(&t.logit.0)?, &ds, elems_mut(&mut gw)?);
    elems_mut(&mut gb)?[0] = db;
    let mut d = Tensor::from_slice(&dy).view([rows, width as i64]);
    for (l, s) in t.layers.iter().zip(&h.layers).rev() {
        let out = l.weight.size()[0] as usize;
        {
            let dv = elems_mut(&mut d)?;
            if let (Some(n), Some(saved)) = (&l.norm, &s.norm) {
                let (mut gg, mut gbeta) = (n.gamma.grad(), n.beta.grad());
                kernels::batch_norm_backward(dv, out, saved, elems(&n.gamma)?, elems_mut(&mut gg)?, elems_mut(&mut gbeta)?);
            }
            kernels::apply_mask(dv, &s.mask);
            let mut gbias = l.bias.grad();
            kernels::column_sums(dv, out, elems_mut(&mut gbias)?);
        }
        let _ = d.tr().f_mm_out(&l.weight.grad(), &s.input)?;
        d = d.mm(&l.weight);
    }
    Ok(d)
}

/// Defines every variable's `.grad` where it is not (after a step through
/// autograd, whose optimiser reset undefines them): one backward pass of
/// zero times their sums, which gives each a zero gradient of its own
/// layout.
fn define_grads(params: &[Tensor]) -> Result<(), FusedError> {
    if params.iter().all(|p| p.grad().defined()) {
        return Ok(());
    }
    if let Some(zero) = params.iter().map(|p| p.sum(Kind::Float) * 0.0).reduce(|a, b| a + b) {
        zero.f_backward()?;
    }
    Ok(())
}
