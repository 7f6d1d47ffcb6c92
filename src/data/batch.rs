//! Seeded, shuffled mini-batches as tensors. Each split is turned into
//! tensors once (on the training device); a batch is an `index_select` of
//! those, so no row is parsed or copied element by element per batch.
//! Encoded numeric columns are expanded into their blocks here, once.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::numeric::{self, Block};
use super::schema::{FeatureSchema, SplitData};

/// One mini-batch. Shapes: categorical [B, F] i64; multi ids [B, L] i64 and
/// mask [B, L] f32 per field; dense [B, D] f32; labels [B, T] f32; users [B] i64;
/// one block per encoded numeric column (`schema.numeric`): bin ids [B] i64
/// (quantile) or values [B, width] f32 (see [`numeric::block`]).
#[derive(Debug)]
pub struct Batch {
    pub categorical: Tensor,
    pub multi_ids: Vec<Tensor>,
    pub multi_mask: Vec<Tensor>,
    pub dense: Tensor,
    pub labels: Tensor,
    pub users: Tensor,
    pub numeric: Vec<Tensor>,
}

impl Batch {
    pub fn size(&self) -> i64 {
        self.labels.size()[0]
    }
}

/// A whole split as tensors on one device.
#[derive(Debug)]
pub struct SplitTensors {
    pub rows: usize,
    all: Batch,
}

fn block_f32(v: &[f32], rows: usize, cols: usize, device: Device) -> Tensor {
    Tensor::from_slice(v).view([rows as i64, cols as i64]).to_device(device)
}

fn block_i64(v: &[i64], rows: usize, cols: usize, device: Device) -> Tensor {
    Tensor::from_slice(v).view([rows as i64, cols as i64]).to_device(device)
}

impl SplitTensors {
    pub fn new(split: &SplitData, schema: &FeatureSchema, device: Device) -> Self {
        let n = split.rows;
        let multi_ids = schema
            .multi
            .iter()
            .enumerate()
            .map(|(i, f)| block_i64(&split.multi_ids[i], n, f.max_len, device))
            .collect();
        let multi_mask = schema
            .multi
            .iter()
            .enumerate()
            .map(|(i, f)| block_f32(&split.multi_mask[i], n, f.max_len, device))
            .collect();
        let nf = schema.numeric.len();
        let numeric = schema
            .numeric
            .iter()
            .enumerate()
            .map(|(i, f)| match numeric::block(f, i, split, nf) {
                Block::Ids(ids) => Tensor::from_slice(&ids).to_device(device),
                Block::Values(v) => block_f32(&v, n, f.width(), device),
            })
            .collect();
        let all = Batch {
            categorical: block_i64(&split.categorical, n, schema.categorical.len(), device),
            multi_ids,
            multi_mask,
            dense: block_f32(&split.dense, n, schema.dense.len(), device),
            labels: block_f32(&split.labels, n, schema.tasks.len(), device),
            users: Tensor::from_slice(&split.users).to_device(device),
            numeric,
        };
        SplitTensors { rows: n, all }
    }

    /// Rows selected by `index` (an i64 tensor on the same device).
    pub fn select(&self, index: &Tensor) -> Batch {
        let a = &self.all;
        Batch {
            categorical: a.categorical.index_select(0, index),
            multi_ids: a.multi_ids.iter().map(|t| t.index_select(0, index)).collect(),
            multi_mask: a.multi_mask.iter().map(|t| t.index_select(0, index)).collect(),
            dense: a.dense.index_select(0, index),
            labels: a.labels.index_select(0, index),
            users: a.users.index_select(0, index),
            numeric: a.numeric.iter().map(|t| t.index_select(0, index)).collect(),
        }
    }

    /// Contiguous rows [start, end), without copying (views).
    pub fn slice(&self, start: usize, end: usize) -> Batch {
        let (s, e) = (start as i64, end as i64);
        let a = &self.all;
        Batch {
            categorical: a.categorical.narrow(0, s, e - s),
            multi_ids: a.multi_ids.iter().map(|t| t.narrow(0, s, e - s)).collect(),
            multi_mask: a.multi_mask.iter().map(|t| t.narrow(0, s, e - s)).collect(),
            dense: a.dense.narrow(0, s, e - s),
            labels: a.labels.narrow(0, s, e - s),
            users: a.users.narrow(0, s, e - s),
            numeric: a.numeric.iter().map(|t| t.narrow(0, s, e - s)).collect(),
        }
    }

    /// Batches in row order (evaluation).
    pub fn in_order(&self, batch_size: usize) -> impl Iterator<Item = Batch> + '_ {
        let bs = batch_size.max(1);
        (0..self.rows.div_ceil(bs)).map(move |i| self.slice(i * bs, ((i + 1) * bs).min(self.rows)))
    }

    /// Shuffled batches for one epoch; the order depends only on `seed` and `epoch`.
    pub fn shuffled(&self, batch_size: usize, seed: u64, epoch: usize) -> ShuffledBatches<'_> {
        let order = epoch_order(self.rows, seed, epoch);
        let device = self.all.labels.device();
        let perm = Tensor::from_slice(&order).to_device(device);
        ShuffledBatches { split: self, perm, batch_size: batch_size.max(1) as i64, pos: 0 }
    }
}

/// The row order of one epoch of [`SplitTensors::shuffled`]; it depends
/// only on `rows`, `seed` and `epoch` (`bench-perf` hands it to the PyTorch
/// reference so that both sides see the same batches).
pub fn epoch_order(rows: usize, seed: u64, epoch: usize) -> Vec<i64> {
    let mut order: Vec<i64> = (0..rows as i64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(epoch as u64 + 1)));
    order.shuffle(&mut rng);
    order
}

/// Iterator over the shuffled batches of one epoch.
pub struct ShuffledBatches<'a> {
    split: &'a SplitTensors,
    perm: Tensor,
    batch_size: i64,
    pos: i64,
}

impl Iterator for ShuffledBatches<'_> {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        let n = self.split.rows as i64;
        if self.pos >= n {
            return None;
        }
        let len = self.batch_size.min(n - self.pos);
        let idx = self.perm.narrow(0, self.pos, len);
        self.pos += len;
        Some(self.split.select(&idx))
    }
}

/// Number of batches of an epoch.
pub fn n_batches(rows: usize, batch_size: usize) -> usize {
    rows.div_ceil(batch_size.max(1))
}

/// Probabilities of a logit tensor as a flat f32 vector.
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>, tch::TchError> {
    let t = t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous().view([-1]);
    Vec::<f32>::try_from(&t)
}
