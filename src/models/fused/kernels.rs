//! The element-wise and row-wise loops of the fused pass, on plain slices:
//! the embedding gather and its scatter-add, the experts' bias + ReLU with
//! the gates' softmax, the gate-weighted mix, batch norm, the logit and its
//! binary cross-entropy, each with its backward. Every loop runs along
//! rows of the batch-first buffers, so that the inner loops read and write
//! contiguous floats the compiler vectorises; the matrix products stay in
//! libtorch's BLAS (`super::pass`).

use tch::{Device, Kind, Tensor};

use super::FusedError;

/// The elements of a contiguous f32 CPU tensor.
pub(super) fn elems(t: &Tensor) -> Result<&[f32], FusedError> {
    check(t, Kind::Float)?;
    if t.numel() == 0 {
        return Ok(&[]);
    }
    // SAFETY: `t` is a contiguous f32 CPU tensor of `numel` elements (checked
    // above); the slice borrows `t`, which keeps the storage alive, and the
    // fused pass writes no tensor it reads through such a slice meanwhile.
    Ok(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) })
}

/// The elements of a contiguous f32 CPU tensor, to write. `t` is a handle
/// the caller owns (a fresh buffer, a `.grad()` or a `shallow_clone`), so
/// that no other slice of the same tensor is alive in the same scope.
pub(super) fn elems_mut(t: &mut Tensor) -> Result<&mut [f32], FusedError> {
    check(t, Kind::Float)?;
    if t.numel() == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `elems`; the exclusive borrow of the handle stands for
    // exclusive access to its elements during the slice's life.
    Ok(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) })
}

/// The ids of a contiguous i64 CPU tensor.
pub(super) fn ids(t: &Tensor) -> Result<&[i64], FusedError> {
    check(t, Kind::Int64)?;
    if t.numel() == 0 {
        return Ok(&[]);
    }
    // SAFETY: as in `elems`, for i64 elements.
    Ok(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const i64, t.numel()) })
}

fn check(t: &Tensor, kind: Kind) -> Result<(), FusedError> {
    if t.defined() && t.kind() == kind && t.device() == Device::Cpu && t.is_contiguous() {
        Ok(())
    } else {
        Err(FusedError::Layout(format!("{:?} {:?} {:?}", t.size(), t.kind(), t.device())))
    }
}

/// Where one categorical field's rows are and where they go in a row of x.
#[derive(Debug, Clone, Copy)]
pub(super) struct FieldSlot {
    /// Index into the tables.
    pub table: usize,
    /// First row of the field in its table, its vocabulary and width.
    pub offset: usize,
    pub vocab: usize,
    pub dim: usize,
    /// First column of the field in a row of x.
    pub col: usize,
}

/// x[b] = dense[b] (`nd` columns) ++ the rows of each field's id: [B, d]
/// row-major. An id outside its field's vocabulary is refused with (row,
/// field, id).
pub(super) fn gather(
    x: &mut [f32],
    (d, nd): (usize, usize),
    dense: &[f32],
    ids: &[i64],
    slots: &[FieldSlot],
    tables: &[&[f32]],
) -> Result<(), (usize, usize, i64)> {
    let f = slots.len();
    for (b, row) in x.chunks_exact_mut(d).enumerate() {
        row[..nd].copy_from_slice(&dense[b * nd..(b + 1) * nd]);
        for (k, s) in slots.iter().enumerate() {
            let id = ids[b * f + k];
            if id < 0 || id as usize >= s.vocab {
                return Err((b, k, id));
            }
            let at = (s.offset + id as usize) * s.dim;
            row[s.col..s.col + s.dim].copy_from_slice(&tables[s.table][at..at + s.dim]);
        }
    }
    Ok(())
}

/// The tables' gradients += the columns of dx each field's rows went to
/// (ids already checked by [`gather`]).
pub(super) fn scatter_add(grads: &mut [&mut [f32]], dx: &[f32], d: usize, ids: &[i64], slots: &[FieldSlot]) {
    let f = slots.len();
    for (b, row) in dx.chunks_exact(d).enumerate() {
        for (k, s) in slots.iter().enumerate() {
            let at = (s.offset + ids[b * f + k] as usize) * s.dim;
            let g = &mut grads[s.table][at..at + s.dim];
            g.iter_mut().zip(&row[s.col..s.col + s.dim]).for_each(|(g, v)| *g += v);
        }
    }
}

/// One multi-valued field of a batch, ragged: each id and its batch row
/// (non-decreasing), and each row's number of ids.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ragged<'a> {
    pub ids: &'a [i64],
    pub rows: &'a [i64],
    pub counts: &'a [f32],
}

/// Columns `s.col..s.col + s.dim` of each row of x [B, d] = the mean of
/// the rows of that row's ids (0 for a row without ids): summed, then
/// divided by the count, as the model's segment sum does. The rows are
/// those of x (checked by the caller); an id outside the vocabulary is
/// refused with (row, id).
pub(super) fn pool(x: &mut [f32], d: usize, m: Ragged, s: &FieldSlot, table: &[f32]) -> Result<(), (usize, i64)> {
    for row in x.chunks_exact_mut(d) {
        row[s.col..s.col + s.dim].fill(0.0);
    }
    for (&id, &r) in m.ids.iter().zip(m.rows) {
        if id < 0 || id as usize >= s.vocab {
            return Err((r as usize, id));
        }
        let at = (s.offset + id as usize) * s.dim;
        let out = &mut x[r as usize * d + s.col..][..s.dim];
        out.iter_mut().zip(&table[at..at + s.dim]).for_each(|(o, v)| *o += v);
    }
    for (row, &c) in x.chunks_exact_mut(d).zip(m.counts) {
        let c = c.max(1.0);
        row[s.col..s.col + s.dim].iter_mut().for_each(|v| *v /= c);
    }
    Ok(())
}

/// The backward of [`pool`]: the table's gradient += dx's columns of the
/// row over its count, at each of the row's ids (checked by [`pool`]).
pub(super) fn pool_backward(grad: &mut [f32], dx: &[f32], d: usize, m: Ragged, s: &FieldSlot) {
    for (&id, &r) in m.ids.iter().zip(m.rows) {
        let c = m.counts[r as usize].max(1.0);
        let at = (s.offset + id as usize) * s.dim;
        let from = &dx[r as usize * d + s.col..][..s.dim];
        grad[at..at + s.dim].iter_mut().zip(from).for_each(|(g, v)| *g += v / c);
    }
}

/// The shape of the experts-and-gates product: each row of z holds the
/// `n * o` expert pre-activations, then each head's `n` gate logits.
#[derive(Debug, Clone, Copy)]
pub(super) struct MixShape {
    pub n: usize,
    pub o: usize,
    pub heads: usize,
}

impl MixShape {
    /// Columns of z.
    pub fn width(&self) -> usize {
        self.n * self.o + self.heads * self.n
    }
}

/// In place on z [B, width]: the experts' columns become relu(z + bias),
/// each head's gate logits their softmax.
pub(super) fn experts_and_gates(z: &mut [f32], bias: &[f32], s: MixShape) {
    let no = s.n * s.o;
    for row in z.chunks_exact_mut(s.width()) {
        let (h, g) = row.split_at_mut(no);
        h.iter_mut().zip(bias).for_each(|(h, b)| *h = (*h + b).max(0.0));
        for g in g.chunks_exact_mut(s.n) {
            let m = g.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0f32;
            g.iter_mut().for_each(|v| {
                *v = (*v - m).exp();
                sum += *v;
            });
            g.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

/// Head t's tower input: m[t][b] = sum_e g[b, t, e] * h[b, e] ([B, o] each).
pub(super) fn mix(z: &[f32], s: MixShape, m: &mut [&mut [f32]]) {
    let no = s.n * s.o;
    for (b, row) in z.chunks_exact(s.width()).enumerate() {
        let (h, g) = row.split_at(no);
        for (t, mt) in m.iter_mut().enumerate() {
            let out = &mut mt[b * s.o..(b + 1) * s.o];
            out.fill(0.0);
            for (e, he) in h.chunks_exact(s.o).enumerate() {
                let w = g[t * s.n + e];
                out.iter_mut().zip(he).for_each(|(o, v)| *o += w * v);
            }
        }
    }
}

/// The backward of [`mix`] and [`experts_and_gates`]: from each head's
/// dm [B, o] to dz [B, width] (the experts' pre-activations through the
/// ReLU, the gate logits through the softmax); also the experts' bias
/// gradient, the column sums of the experts' part.
pub(super) fn mix_backward(z: &[f32], s: MixShape, dm: &[&[f32]], dz: &mut [f32], dbias: &mut [f32]) {
    let no = s.n * s.o;
    dbias.fill(0.0);
    let mut dg = vec![0.0f32; s.n];
    for (b, (row, drow)) in z.chunks_exact(s.width()).zip(dz.chunks_exact_mut(s.width())).enumerate() {
        let (h, g) = row.split_at(no);
        let (dh, dl) = drow.split_at_mut(no);
        dh.fill(0.0);
        for (t, dmt) in dm.iter().enumerate() {
            let d = &dmt[b * s.o..(b + 1) * s.o];
            let gt = &g[t * s.n..(t + 1) * s.n];
            for (e, (he, dhe)) in h.chunks_exact(s.o).zip(dh.chunks_exact_mut(s.o)).enumerate() {
                dg[e] = dot(he, d);
                let w = gt[e];
                dhe.iter_mut().zip(d).for_each(|(x, v)| *x += w * v);
            }
            let dot: f32 = gt.iter().zip(&dg).map(|(a, b)| a * b).sum();
            dl[t * s.n..(t + 1) * s.n].iter_mut().zip(gt.iter().zip(&dg)).for_each(|(x, (g, d))| *x = g * (d - dot));
        }
        // Through the ReLU: no gradient where the output is 0.
        dh.iter_mut().zip(h).for_each(|(x, v)| *x = if *v > 0.0 { *x } else { 0.0 });
        dbias.iter_mut().zip(dh.iter()).for_each(|(a, v)| *a += v);
    }
}

/// The dot product of a and b over 16 running sums (which the compiler
/// vectorises; a single running sum it may not reorder).
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        acc.iter_mut().zip(x.iter().zip(y)).for_each(|(s, (x, y))| *s += x * y);
    }
    acc.iter().sum::<f32>() + tail
}

/// Column sums of a [rows, w] buffer into `out` [w].
pub(super) fn column_sums(x: &[f32], w: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in x.chunks_exact(w) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
}

/// What batch norm's training forward keeps for its backward.
#[derive(Debug)]
pub(super) struct NormSaved {
    /// The normalised input, [B, h].
    pub xhat: Vec<f32>,
    /// 1 / sqrt(var + eps) per column.
    pub inv_std: Vec<f32>,
}

/// Training-mode batch norm of a [B, h] buffer, in place: batch mean and
/// biased variance per column, y = gamma (x - mean) / sqrt(var + eps) + beta;
/// the running statistics move by `momentum` towards the batch mean and the
/// unbiased variance (libtorch's convention).
pub(super) fn batch_norm(x: &mut [f32], h: usize, gamma: &[f32], beta: &[f32], eps: f64, running: (&mut [f32], &mut [f32], f64)) -> NormSaved {
    let rows = x.len() / h;
    let mut mean = vec![0.0f64; h];
    for row in x.chunks_exact(h) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let mut var = vec![0.0f64; h];
    for row in x.chunks_exact(h) {
        var.iter_mut().zip(row.iter().zip(&mean)).for_each(|(s, (&v, m))| *s += (v as f64 - m).powi(2));
    }
    var.iter_mut().for_each(|s| *s /= rows as f64);
    let inv_std: Vec<f32> = var.iter().map(|v| (1.0 / (v + eps).sqrt()) as f32).collect();
    let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let mut xhat = vec![0.0f32; x.len()];
    for (row, xr) in x.chunks_exact_mut(h).zip(xhat.chunks_exact_mut(h)) {
        let per_column = mean32.iter().zip(&inv_std).zip(gamma.iter().zip(beta));
        for ((v, n), ((m, s), (g, b))) in row.iter_mut().zip(xr.iter_mut()).zip(per_column) {
            *n = (*v - m) * s;
            *v = g * *n + b;
        }
    }
    let (rm, rv, momentum) = running;
    let unbiased = rows as f64 / (rows as f64 - 1.0).max(1.0);
    for j in 0..h {
        rm[j] = ((1.0 - momentum) * rm[j] as f64 + momentum * mean[j]) as f32;
        rv[j] = ((1.0 - momentum) * rv[j] as f64 + momentum * var[j] * unbiased) as f32;
    }
    NormSaved { xhat, inv_std }
}

/// The backward of [`batch_norm`]: dy [B, h] becomes dx in place; the
/// gradients of gamma and beta go to `dgamma`, `dbeta`.
pub(super) fn batch_norm_backward(dy: &mut [f32], h: usize, saved: &NormSaved, gamma: &[f32], dgamma: &mut [f32], dbeta: &mut [f32]) {
    let rows = (dy.len() / h) as f32;
    dgamma.fill(0.0);
    dbeta.fill(0.0);
    for (d, xr) in dy.chunks_exact(h).zip(saved.xhat.chunks_exact(h)) {
        dbeta.iter_mut().zip(d).for_each(|(a, v)| *a += v);
        dgamma.iter_mut().zip(d.iter().zip(xr)).for_each(|(a, (v, x))| *a += v * x);
    }
    let k: Vec<f32> = gamma.iter().zip(&saved.inv_std).map(|(g, s)| g * s / rows).collect();
    for (d, xr) in dy.chunks_exact_mut(h).zip(saved.xhat.chunks_exact(h)) {
        let per_column = k.iter().zip(dbeta.iter().zip(dgamma.iter()));
        for ((v, x), (k, (db, dg))) in d.iter_mut().zip(xr).zip(per_column) {
            *v = k * (rows * *v - db - x * dg);
        }
    }
}

/// x * mask in place (the mask of ReLU then dropout, or of ReLU alone).
pub(super) fn apply_mask(x: &mut [f32], mask: &[f32]) {
    x.iter_mut().zip(mask).for_each(|(x, m)| *x *= m);
}

/// The ReLU mask of x: 1 where x > 0, else 0.
pub(super) fn relu_mask(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect()
}

/// The logit of each row of y [B, h]: y . w + b.
pub(super) fn logits(y: &[f32], h: usize, w: &[f32], b: f32) -> Vec<f32> {
    y.chunks_exact(h).map(|r| dot(r, w) + b).collect()
}

/// Mean binary cross-entropy of logits s against labels y, in the stable
/// form max(s, 0) - s y + log(1 + exp(-|s|)).
pub(super) fn bce_mean(s: &[f32], y: &[f32]) -> f64 {
    let sum: f64 = s.iter().zip(y).map(|(&s, &y)| (s.max(0.0) - s * y + (-s.abs()).exp().ln_1p()) as f64).sum();
    sum / s.len().max(1) as f64
}

/// d(weight * mean BCE) / d s = weight (sigmoid(s) - y) / B.
pub(super) fn bce_backward(s: &[f32], y: &[f32], weight: f64) -> Vec<f32> {
    let k = (weight / s.len().max(1) as f64) as f32;
    s.iter().zip(y).map(|(&s, &y)| k * (1.0 / (1.0 + (-s).exp()) - y)).collect()
}

/// The backward of [`logits`]: dw = sum_b ds[b] y[b], db = sum_b ds[b],
/// and dy[b] = ds[b] w.
pub(super) fn logits_backward(y: &[f32], h: usize, w: &[f32], ds: &[f32], dw: &mut [f32]) -> (f32, Vec<f32>) {
    dw.fill(0.0);
    let mut dy = vec![0.0f32; y.len()];
    for ((r, d), &g) in y.chunks_exact(h).zip(dy.chunks_exact_mut(h)).zip(ds) {
        dw.iter_mut().zip(r).for_each(|(a, v)| *a += g * v);
        d.iter_mut().zip(w).for_each(|(a, v)| *a = g * v);
    }
    (ds.iter().sum(), dy)
}
