//! Seeded, shuffled mini-batches as tensors. Each split's columns are laid
//! out once for the training device, the encoded numeric columns expanded
//! into their blocks; no row is parsed per batch. On the CPU a batch is
//! built without a libtorch operator: a loop copies its rows out of host
//! vectors ([`Column`]) straight into each batch tensor, since at a
//! thousand rows the dispatch of small operators (and, without
//! `OMP_WAIT_POLICY=PASSIVE`, their thread pool's spinning) cost more than
//! the copy; the loop asks the CPU for the rows a few places ahead (they
//! lie at random places, each a cache miss otherwise). On another device a
//! single-valued block is a tensor there and a batch is one `index_select`
//! of it. Multi-valued fields stay ragged
//! ([`super::ragged`]) and on the host: a batch carries their ids as one
//! flat tensor with the row of each id ([`gather`]).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::numeric::{self, Block};
use super::ragged::Ragged;
use super::schema::{FeatureSchema, SplitData};

/// The ids of one multi-valued field in a batch of B rows: every row's ids
/// one after the other.
#[derive(Debug)]
pub struct MultiBatch {
    /// [n] i64, the ids of row 0, then of row 1, ...
    pub ids: Tensor,
    /// [n] i64, the row of each id (non-decreasing).
    pub rows: Tensor,
    /// [B] f32, the number of ids of each row.
    pub counts: Tensor,
}

impl MultiBatch {
    /// From the padded form: ids [B, L] i64 and mask [B, L] (non-zero where
    /// an id is present).
    pub fn from_padded(ids: &Tensor, mask: &Tensor) -> MultiBatch {
        let present = mask.ne(0.0);
        let nz = present.nonzero(); // [n, 2]: (row, position), row-major order
        MultiBatch {
            ids: ids.index(&[Some(&nz.select(1, 0)), Some(&nz.select(1, 1))]),
            rows: nz.select(1, 0).contiguous(),
            counts: present.sum_dim_intlist([1i64].as_slice(), false, Kind::Float),
        }
    }
}

/// The flat ids of rows `rows` of `r`, in that order, as tensors on
/// `device`. The split's lists stay on the host: a loop over the rows'
/// slices copies their ids (tens of microseconds for 1024 rows; the lists
/// a few rows ahead are prefetched, as in [`take_rows`]), then each
/// of the three tensors is made from its slice in one copy. Done with
/// tensor operators instead (lengths and starts looked up, cumulative sums,
/// a repeat, an index into the values), the same gather dispatched about
/// ten small operators per field and batch, milliseconds on the CPU.
fn gather(r: &Ragged, rows: &[i64], device: Device) -> MultiBatch {
    let lists: Vec<&[i32]> = rows.iter().map(|&i| r.row(row_index(i))).collect();
    let total = lists.iter().map(|l| l.len()).sum();
    let mut ids: Vec<i64> = Vec::with_capacity(total);
    let mut of_row: Vec<i64> = Vec::with_capacity(total);
    let mut counts: Vec<f32> = Vec::with_capacity(rows.len());
    for (i, list) in lists.iter().enumerate() {
        if let Some(ahead) = lists.get(i + PREFETCH_ROWS_AHEAD) {
            prefetch(ahead);
        }
        ids.extend(list.iter().map(|&v| i64::from(v)));
        of_row.extend(std::iter::repeat_n(i as i64, list.len()));
        counts.push(list.len() as f32);
    }
    MultiBatch {
        ids: Tensor::from_slice(&ids).to_device(device),
        rows: Tensor::from_slice(&of_row).to_device(device),
        counts: Tensor::from_slice(&counts).to_device(device),
    }
}

/// A row number of a batch index (negative ones are out of range).
fn row_index(i: i64) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

/// One mini-batch. Shapes: categorical [B, F] i64; one [`MultiBatch`] per
/// multi-valued field; dense [B, D] f32; labels [B, T] f32; users [B] i64;
/// one block per encoded numeric column (`schema.numeric`): bin ids [B] i64
/// (quantile) or values [B, width] f32 (see [`numeric::block`]).
#[derive(Debug)]
pub struct Batch {
    pub categorical: Tensor,
    pub multi: Vec<MultiBatch>,
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

/// One single-valued block of a whole split: `width` values per row, as a
/// [rows, width] matrix or, `flat`, a [rows] vector. On the CPU the values
/// stay a plain vector and a batch copies its rows by a loop into one
/// tensor; an `index_select` per block costs more in operator dispatch
/// than the copy itself at a thousand rows. On another device the block is
/// a tensor there and a batch is an `index_select`.
#[derive(Debug)]
enum Column {
    Int(Vec<i64>, Shape),
    Float(Vec<f32>, Shape),
    Device(Tensor),
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    width: usize,
    flat: bool,
}

impl Shape {
    fn matrix(width: usize) -> Shape {
        Shape { width, flat: false }
    }
    const FLAT: Shape = Shape { width: 1, flat: true };

    /// `rows` rows of values as a tensor of this shape.
    fn tensor<T: tch::kind::Element>(self, values: &[T], rows: usize) -> Tensor {
        let t = Tensor::from_slice(values);
        if self.flat {
            t
        } else {
            t.view([rows as i64, self.width as i64])
        }
    }
}

/// Rows `rows` of the row-major `values`, `width` values each, as a CPU
/// tensor of `shape`, copied straight into the tensor's memory. The rows
/// lie at random places in the split, so each is a cache miss: the loop
/// asks for the rows a few places ahead before it copies this one.
fn take_rows<T: tch::kind::Element + Copy>(values: &[T], shape: Shape, rows: &[i64]) -> Tensor {
    let width = shape.width;
    let n = rows.len() * width;
    let opts = (T::KIND, Device::Cpu);
    let t = if shape.flat { Tensor::empty([n as i64], opts) } else { Tensor::empty([rows.len() as i64, width as i64], opts) };
    if n == 0 {
        return t; // (an empty tensor's data pointer may be null)
    }
    {
        // SAFETY: `t` is a fresh contiguous CPU tensor of exactly n > 0
        // elements of T (its sizes multiply to n) that nothing else references;
        // `out` lives only in this block, before `t` is returned.
        let out = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, n) };
        let span = |r: i64| {
            let start = row_index(r).saturating_mul(width);
            start..start.saturating_add(width)
        };
        for (i, (&r, dst)) in rows.iter().zip(out.chunks_exact_mut(width)).enumerate() {
            if let Some(ahead) = rows.get(i + PREFETCH_ROWS_AHEAD).and_then(|&a| values.get(span(a))) {
                prefetch(ahead);
            }
            dst.copy_from_slice(&values[span(r)]);
        }
    }
    t
}

/// How many rows ahead of the copy [`take_rows`] and [`gather`] ask for a
/// row's cache lines.
const PREFETCH_ROWS_AHEAD: usize = 8;

/// The most cache lines [`prefetch`] asks for (a long list's tail is read
/// in order, which the CPU's own prefetcher follows).
const PREFETCH_MAX_LINES: usize = 8;

/// Asks the CPU to start loading the first cache lines that `data` touches
/// (at most [`PREFETCH_MAX_LINES`]) into its caches: a hint, with no
/// effect on any value.
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        const LINE: usize = 64;
        let base = data.as_ptr() as *const i8;
        let bytes = std::mem::size_of_val(data);
        // The slice's first byte, then the start of each later line inside it
        // (the slice need not start on a line).
        let next_line = LINE - (base as usize) % LINE;
        let offsets = std::iter::once(0).chain((next_line..bytes).step_by(LINE));
        for off in offsets.take_while(|&o| o < bytes).take(PREFETCH_MAX_LINES) {
            // SAFETY: `base + off` lies inside `data` (off < its size); a
            // prefetch changes no memory and cannot fault.
            unsafe { std::arch::x86_64::_mm_prefetch(base.add(off), std::arch::x86_64::_MM_HINT_T0) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

impl Column {
    fn int(values: &[i64], rows: usize, shape: Shape, device: Device) -> Column {
        match device {
            Device::Cpu => Column::Int(values.to_vec(), shape),
            _ => Column::Device(shape.tensor(values, rows).to_device(device)),
        }
    }

    fn float(values: &[f32], rows: usize, shape: Shape, device: Device) -> Column {
        match device {
            Device::Cpu => Column::Float(values.to_vec(), shape),
            _ => Column::Device(shape.tensor(values, rows).to_device(device)),
        }
    }

    /// Rows `rows`; `index` is the same rows as a tensor on the device
    /// (made only where a block lives on one).
    fn take(&self, rows: &[i64], index: &mut impl FnMut() -> Tensor) -> Tensor {
        match self {
            Column::Int(v, s) => take_rows(v, *s, rows),
            Column::Float(v, s) => take_rows(v, *s, rows),
            Column::Device(t) => t.index_select(0, &index()),
        }
    }

    /// Rows [start, end).
    fn range(&self, start: usize, end: usize) -> Tensor {
        match self {
            Column::Int(v, s) => s.tensor(&v[start * s.width..end * s.width], end - start),
            Column::Float(v, s) => s.tensor(&v[start * s.width..end * s.width], end - start),
            Column::Device(t) => t.narrow(0, start as i64, (end - start) as i64),
        }
    }
}

/// The single-valued blocks of a whole split.
#[derive(Debug)]
struct Blocks {
    categorical: Column,
    dense: Column,
    labels: Column,
    users: Column,
    numeric: Vec<Column>,
}

/// A whole split ready to be batched on one device (the multi-valued
/// fields' lists, and on the CPU every block, on the host: see [`gather`]
/// and [`Column`]).
#[derive(Debug)]
pub struct SplitTensors {
    pub rows: usize,
    all: Blocks,
    multi: Vec<Ragged>,
    device: Device,
}

impl SplitTensors {
    pub fn new(split: &SplitData, schema: &FeatureSchema, device: Device) -> Self {
        let n = split.rows;
        let nf = schema.numeric.len();
        let numeric = schema
            .numeric
            .iter()
            .enumerate()
            .map(|(i, f)| match numeric::block(f, i, split, nf) {
                Block::Ids(ids) => Column::int(&ids, n, Shape::FLAT, device),
                Block::Values(v) => Column::float(&v, n, Shape::matrix(f.width()), device),
            })
            .collect();
        let all = Blocks {
            categorical: Column::int(&split.categorical, n, Shape::matrix(schema.categorical.len()), device),
            dense: Column::float(&split.dense, n, Shape::matrix(schema.dense.len()), device),
            labels: Column::float(&split.labels, n, Shape::matrix(schema.tasks.len()), device),
            users: Column::int(&split.users, n, Shape::FLAT, device),
            numeric,
        };
        SplitTensors { rows: n, all, multi: split.multi.clone(), device }
    }

    /// Rows selected by `index` (an i64 tensor on any device).
    pub fn select(&self, index: &Tensor) -> Batch {
        let host = index.to_device(Device::Cpu).to_kind(Kind::Int64).contiguous();
        let n = host.numel();
        let mut rows = vec![0i64; n];
        host.copy_data(&mut rows, n);
        self.select_rows(&rows)
    }

    /// Rows `rows`, in that order.
    pub fn select_rows(&self, rows: &[i64]) -> Batch {
        let a = &self.all;
        let mut made: Option<Tensor> = None;
        let mut index = || made.get_or_insert_with(|| Tensor::from_slice(rows).to_device(self.device)).shallow_clone();
        Batch {
            categorical: a.categorical.take(rows, &mut index),
            multi: self.multi.iter().map(|m| gather(m, rows, self.device)).collect(),
            dense: a.dense.take(rows, &mut index),
            labels: a.labels.take(rows, &mut index),
            users: a.users.take(rows, &mut index),
            numeric: a.numeric.iter().map(|c| c.take(rows, &mut index)).collect(),
        }
    }

    /// Contiguous rows [start, end) (on a device other than the CPU: views
    /// of the single-valued blocks).
    pub fn slice(&self, start: usize, end: usize) -> Batch {
        let a = &self.all;
        let rows: Vec<i64> = (start as i64..end as i64).collect();
        Batch {
            categorical: a.categorical.range(start, end),
            multi: self.multi.iter().map(|m| gather(m, &rows, self.device)).collect(),
            dense: a.dense.range(start, end),
            labels: a.labels.range(start, end),
            users: a.users.range(start, end),
            numeric: a.numeric.iter().map(|c| c.range(start, end)).collect(),
        }
    }

    /// Batches in row order (evaluation).
    pub fn in_order(&self, batch_size: usize) -> impl Iterator<Item = Batch> + '_ {
        let bs = batch_size.max(1);
        (0..self.rows.div_ceil(bs)).map(move |i| self.slice(i * bs, ((i + 1) * bs).min(self.rows)))
    }

    /// Shuffled batches for one epoch; the order depends only on `seed` and `epoch`.
    pub fn shuffled(&self, batch_size: usize, seed: u64, epoch: usize) -> ShuffledBatches<'_> {
        ShuffledBatches { split: self, order: epoch_order(self.rows, seed, epoch), batch_size: batch_size.max(1), pos: 0 }
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
    order: Vec<i64>,
    batch_size: usize,
    pos: usize,
}

impl Iterator for ShuffledBatches<'_> {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let batch = self.split.select_rows(&self.order[self.pos..end]);
        self.pos = end;
        Some(batch)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::schema::{CategoricalField, MultiField};
    use rand::Rng;

    fn split_of(multi: Vec<Ragged>) -> (SplitData, FeatureSchema) {
        let rows = multi[0].rows();
        let fields = multi
            .iter()
            .enumerate()
            .map(|(i, m)| MultiField {
                name: format!("m{i}"),
                vocab_size: 100,
                emb_dim: 2,
                max_len: m.max_len().max(1),
                shares_table_with: None,
            })
            .collect();
        let schema = FeatureSchema { categorical: vec![], multi: fields, dense: vec![], tasks: vec![], numeric: vec![] };
        (SplitData { rows, users: vec![0; rows], multi, ..Default::default() }, schema)
    }

    fn ints(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(t).unwrap()
    }

    #[test]
    fn a_batch_gathers_its_rows_lists_in_order() {
        let mut r = Ragged::new();
        let a = r.push_list(&[3, 1]).unwrap();
        let e = r.push_list(&[]).unwrap();
        let b = r.push_list(&[2, 2, 5]).unwrap();
        for k in [a, b, a, e] {
            r.push_row(k);
        }
        let (split, schema) = split_of(vec![r]);
        let t = SplitTensors::new(&split, &schema, Device::Cpu);
        let m = &t.select(&Tensor::from_slice(&[1i64, 3, 0])).multi[0];
        assert_eq!((ints(&m.ids), ints(&m.rows)), (vec![2, 2, 5, 3, 1], vec![0, 0, 0, 2, 2]));
        assert_eq!(Vec::<f32>::try_from(&m.counts).unwrap(), vec![3.0, 0.0, 2.0]);
        let m = &t.slice(2, 4).multi[0];
        assert_eq!((ints(&m.ids), ints(&m.rows)), (vec![3, 1], vec![0, 0]));
        assert_eq!(Vec::<f32>::try_from(&m.counts).unwrap(), vec![2.0, 0.0]);
        // A batch whose rows hold no ids at all, and the same rows by slice.
        let m = &t.slice(3, 4).multi[0];
        assert_eq!((m.ids.size(), m.rows.size(), m.ids.kind()), (vec![0], vec![0], Kind::Int64));
        assert_eq!(Vec::<f32>::try_from(&m.counts).unwrap(), vec![0.0]);
        let m = &t.select_rows(&[3, 3]).multi[0];
        assert_eq!((m.ids.size(), Vec::<f32>::try_from(&m.counts).unwrap()), (vec![0], vec![0.0, 0.0]));
    }

    #[test]
    fn single_valued_blocks_take_the_rows_asked_for() {
        let mut r = Ragged::new();
        for k in 0..3 {
            r.push_own(&[k]).unwrap();
        }
        let (mut split, mut schema) = split_of(vec![r]);
        let cat = |name: &str| CategoricalField { name: name.into(), vocab_size: 50, emb_dim: 2 };
        schema.categorical = vec![cat("a"), cat("b")];
        schema.dense = vec!["x".into()];
        schema.tasks = vec!["t0".into(), "t1".into()];
        split.categorical = vec![10, 11, 20, 21, 30, 31];
        split.dense = vec![0.5, 1.5, 2.5];
        split.labels = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        split.users = vec![7, 8, 9];
        let t = SplitTensors::new(&split, &schema, Device::Cpu);
        let b = t.select_rows(&[2, 0, 2]);
        assert_eq!((b.categorical.size(), ints(&b.categorical.view([-1]))), (vec![3, 2], vec![30, 31, 10, 11, 30, 31]));
        assert_eq!((b.dense.size(), Vec::<f32>::try_from(&b.dense.view([-1])).unwrap()), (vec![3, 1], vec![2.5, 0.5, 2.5]));
        assert_eq!(Vec::<f32>::try_from(&b.labels.view([-1])).unwrap(), vec![1.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!((ints(&b.users), ints(&b.multi[0].ids)), (vec![9, 7, 9], vec![2, 0, 2]));
        let b = t.slice(1, 3);
        assert_eq!((b.categorical.size(), ints(&b.categorical.view([-1]))), (vec![2, 2], vec![20, 21, 30, 31]));
        assert_eq!((ints(&b.users), b.labels.size()), (vec![8, 9], vec![2, 2]));
        // The index as a tensor gives the same batch.
        let b = t.select(&Tensor::from_slice(&[1i64, 1]));
        assert_eq!((ints(&b.users), ints(&b.categorical.view([-1]))), (vec![8, 8], vec![20, 21, 20, 21]));
    }

    #[test]
    fn rows_copied_with_prefetching_are_the_rows_asked_for() {
        // More rows than the prefetch distance, in a shuffled order, and a
        // block of width 0 (no dense columns).
        let rows = 300;
        let cat = |name: &str| CategoricalField { name: name.into(), vocab_size: 1000, emb_dim: 4 };
        let schema = FeatureSchema {
            categorical: (0..5).map(|i| cat(&format!("c{i}"))).collect(),
            multi: vec![],
            dense: vec![],
            tasks: vec!["t".into()],
            numeric: vec![],
        };
        let split = SplitData {
            rows,
            categorical: (0..rows as i64 * 5).collect(),
            labels: (0..rows).map(|i| i as f32).collect(),
            users: (0..rows as i64).map(|i| 3 * i).collect(),
            ..Default::default()
        };
        let t = SplitTensors::new(&split, &schema, Device::Cpu);
        let order = epoch_order(rows, 4, 1);
        let pick = &order[..200];
        let b = t.select_rows(pick);
        let want: Vec<i64> = pick.iter().flat_map(|&r| (5 * r)..(5 * r + 5)).collect();
        assert_eq!((b.categorical.size(), b.categorical.kind()), (vec![200, 5], Kind::Int64));
        assert_eq!(ints(&b.categorical.view([-1])), want);
        assert_eq!((b.labels.size(), b.labels.kind()), (vec![200, 1], Kind::Float));
        assert_eq!(Vec::<f32>::try_from(&b.labels.view([-1])).unwrap(), pick.iter().map(|&r| r as f32).collect::<Vec<_>>());
        assert_eq!(ints(&b.users), pick.iter().map(|&r| 3 * r).collect::<Vec<_>>());
        assert_eq!((b.dense.size(), b.dense.kind()), (vec![200, 0], Kind::Float));
    }

    #[test]
    fn ragged_batches_equal_the_padded_layout_on_random_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut r = Ragged::new();
        let lists: Vec<u32> = (0..40)
            .map(|_| {
                let len = rng.gen_range(0..=6);
                let items: Vec<i32> = (0..len).map(|_| rng.gen_range(1..100)).collect();
                r.push_list(&items).unwrap()
            })
            .collect();
        for _ in 0..500 {
            r.push_row(lists[rng.gen_range(0..lists.len())]);
        }
        let max_len = r.max_len();
        let (split, schema) = split_of(vec![r.clone()]);
        let t = SplitTensors::new(&split, &schema, Device::Cpu);
        for batch in t.shuffled(64, 9, 0).chain(t.in_order(77)) {
            // Every batch: one count per row, the ids grouped by row in row order.
            let m = &batch.multi[0];
            let n = batch.size();
            assert_eq!(m.counts.size(), [n]);
            assert_eq!(ints(&m.rows), {
                let c = Vec::<f32>::try_from(&m.counts).unwrap();
                c.iter().enumerate().flat_map(|(i, &k)| std::iter::repeat_n(i as i64, k as usize)).collect::<Vec<_>>()
            });
        }
        // Row identity: select every row in a random order and compare with the padded blocks.
        let order = epoch_order(500, 5, 1);
        let m = &t.select(&Tensor::from_slice(&order)).multi[0];
        let rows: Vec<usize> = order.iter().map(|&i| i as usize).collect();
        let (ids, mask) = r.take_rows(&rows).to_padded(max_len);
        let padded = MultiBatch::from_padded(
            &Tensor::from_slice(&ids).view([500, max_len as i64]),
            &Tensor::from_slice(&mask).view([500, max_len as i64]),
        );
        assert_eq!((ints(&m.ids), ints(&m.rows)), (ints(&padded.ids), ints(&padded.rows)));
        assert_eq!(Vec::<f32>::try_from(&m.counts).unwrap(), Vec::<f32>::try_from(&padded.counts).unwrap());
    }
}
