//! Multi-valued fields (tag lists, history sequences) stored once per
//! distinct list: the lists' values with offsets, and each row's list
//! index. Rows that share a list (every action of one user on one day has
//! the same 7-day history; every action on one feed has its tags) share one
//! copy, and no row is padded to the field's longest list: at the full
//! WeChat scale the padded i64 ids and f32 mask of the history alone were
//! ~2.4 GB, the distinct lists are ~30 MB. Batching ([`super::batch`])
//! gathers a batch's ids into one flat tensor; the input layer mean-pools
//! them by segment. [`Ragged::to_padded`] gives the padded form where an
//! exchange needs it.

use std::fmt;

/// Lists of i32 values: list k holds `values[offsets[k]..offsets[k + 1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListColumn {
    pub offsets: Vec<usize>,
    pub values: Vec<i32>,
}

impl Default for ListColumn {
    fn default() -> Self {
        ListColumn::new()
    }
}

impl ListColumn {
    pub fn new() -> Self {
        ListColumn { offsets: vec![0], values: Vec::new() }
    }
    pub fn row(&self, r: usize) -> &[i32] {
        &self.values[self.offsets[r]..self.offsets[r + 1]]
    }
    pub fn push(&mut self, items: &[i32]) {
        self.values.extend_from_slice(items);
        self.offsets.push(self.values.len());
    }
    /// Number of lists.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn max_len(&self) -> usize {
        self.offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
    }
    /// Checks that the offsets start at 0, never decrease and end at the values' length.
    pub fn check(&self) -> Result<(), String> {
        if self.offsets.first() != Some(&0) {
            return Err("list offsets must start at 0".into());
        }
        if let Some(k) = self.offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(format!("list offsets decrease at list {k}"));
        }
        match self.offsets.last() {
            Some(&end) if end == self.values.len() => Ok(()),
            _ => Err(format!("list offsets end at {:?}, the values hold {}", self.offsets.last(), self.values.len())),
        }
    }
}

/// A multi-valued field of a set of rows: distinct lists and the list of each row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ragged {
    pub lists: ListColumn,
    /// Index into `lists` of each row.
    pub row_list: Vec<u32>,
}

/// A list or id that does not fit the ragged layout's integer types.
#[derive(Debug, Clone, PartialEq)]
pub struct TooLarge {
    pub what: &'static str,
    pub value: u64,
    pub limit: u64,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} does not fit (at most {})", self.what, self.value, self.limit)
    }
}

/// `id` as an i32 id of a multi-valued field.
pub fn id_i32(id: i64) -> Result<i32, TooLarge> {
    i32::try_from(id).map_err(|_| TooLarge { what: "id", value: id.unsigned_abs(), limit: i32::MAX as u64 })
}

impl Ragged {
    pub fn new() -> Self {
        Ragged::default()
    }

    pub fn rows(&self) -> usize {
        self.row_list.len()
    }

    /// Adds a distinct list and returns its index.
    pub fn push_list(&mut self, items: &[i32]) -> Result<u32, TooLarge> {
        let k = self.lists.len();
        let k = u32::try_from(k).map_err(|_| TooLarge { what: "list count", value: k as u64, limit: u32::MAX as u64 })?;
        self.lists.push(items);
        Ok(k)
    }

    /// Adds a row holding list `list`.
    pub fn push_row(&mut self, list: u32) {
        self.row_list.push(list);
    }

    /// Adds a row with its own list.
    pub fn push_own(&mut self, items: &[i32]) -> Result<(), TooLarge> {
        let k = self.push_list(items)?;
        self.push_row(k);
        Ok(())
    }

    /// The values of row `r`.
    pub fn row(&self, r: usize) -> &[i32] {
        self.lists.row(self.row_list[r] as usize)
    }

    /// The longest list any row holds.
    pub fn max_len(&self) -> usize {
        let lens: Vec<usize> = self.lists.offsets.windows(2).map(|w| w[1] - w[0]).collect();
        self.row_list.iter().map(|&k| lens[k as usize]).max().unwrap_or(0)
    }

    /// Rows `rows`, in that order, sharing the same lists.
    pub fn take_rows(&self, rows: &[usize]) -> Ragged {
        Ragged { lists: self.lists.clone(), row_list: rows.iter().map(|&r| self.row_list[r]).collect() }
    }

    /// Checks the lists and that every row names a list of at most `max_len` values.
    pub fn check(&self, rows: usize, max_len: usize) -> Result<(), String> {
        self.lists.check()?;
        if self.row_list.len() != rows {
            return Err(format!("{} row list indices, expected {rows}", self.row_list.len()));
        }
        let n = self.lists.len();
        for (r, &k) in self.row_list.iter().enumerate() {
            let k = k as usize;
            if k >= n {
                return Err(format!("row {r} names list {k}, there are {n}"));
            }
            let len = self.lists.offsets[k + 1] - self.lists.offsets[k];
            if len > max_len {
                return Err(format!("row {r} holds {len} values, more than max_len {max_len}"));
            }
        }
        Ok(())
    }

    /// The padded form: rows x `max_len` ids (0 after the list) and a mask
    /// (1.0 where an id is present), row-major. Lists longer than `max_len`
    /// keep their first `max_len` values.
    pub fn to_padded(&self, max_len: usize) -> (Vec<i64>, Vec<f32>) {
        let mut ids = vec![0i64; self.rows() * max_len];
        let mut mask = vec![0f32; self.rows() * max_len];
        for r in 0..self.rows() {
            let row = self.row(r);
            for (k, &v) in row[..row.len().min(max_len)].iter().enumerate() {
                ids[r * max_len + k] = v as i64;
                mask[r * max_len + k] = 1.0;
            }
        }
        (ids, mask)
    }

    /// One list per row from the padded form of [`Ragged::to_padded`]: row
    /// r holds the ids where its mask is non-zero.
    pub fn from_padded(ids: &[i64], mask: &[f32], max_len: usize) -> Result<Ragged, TooLarge> {
        let mut out = Ragged::new();
        let width = max_len.max(1);
        let mut row = Vec::with_capacity(width);
        for (ids, mask) in ids.chunks(width).zip(mask.chunks(width)) {
            row.clear();
            for (&id, &m) in ids.iter().zip(mask) {
                if m != 0.0 {
                    row.push(id_i32(id)?);
                }
            }
            out.push_own(&row)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ragged {
        let mut r = Ragged::new();
        let a = r.push_list(&[3, 1]).unwrap();
        let e = r.push_list(&[]).unwrap();
        let b = r.push_list(&[2, 2, 5]).unwrap();
        for k in [a, b, a, e] {
            r.push_row(k);
        }
        r
    }

    #[test]
    fn rows_share_lists_and_pad_like_the_padded_layout() {
        let r = sample();
        assert_eq!((r.rows(), r.lists.len(), r.max_len()), (4, 3, 3));
        assert_eq!((r.row(0), r.row(1), r.row(2), r.row(3)), (&[3, 1][..], &[2, 2, 5][..], &[3, 1][..], &[][..]));
        let (ids, mask) = r.to_padded(3);
        assert_eq!(ids, vec![3, 1, 0, 2, 2, 5, 3, 1, 0, 0, 0, 0]);
        assert_eq!(mask, vec![1., 1., 0., 1., 1., 1., 1., 1., 0., 0., 0., 0.]);
        let back = Ragged::from_padded(&ids, &mask, 3).unwrap();
        assert_eq!((back.rows(), back.lists.len()), (4, 4));
        assert!((0..4).all(|i| back.row(i) == r.row(i)));
        let t = r.take_rows(&[3, 1]);
        assert_eq!((t.row(0), t.row(1)), (&[][..], &[2, 2, 5][..]));
    }

    #[test]
    fn check_names_the_bad_row() {
        let r = sample();
        assert!(r.check(4, 3).is_ok());
        assert_eq!(r.check(4, 2).unwrap_err(), "row 1 holds 3 values, more than max_len 2");
        assert_eq!(r.check(5, 3).unwrap_err(), "4 row list indices, expected 5");
        let mut bad = r.clone();
        bad.row_list[2] = 7;
        assert_eq!(bad.check(4, 3).unwrap_err(), "row 2 names list 7, there are 3");
        let mut off = r;
        off.lists.offsets[1] = 9;
        assert!(off.check(4, 3).unwrap_err().contains("decrease"));
    }

    #[test]
    fn ids_beyond_i32_are_refused() {
        assert_eq!(id_i32(7).unwrap(), 7);
        let e = id_i32(1 << 31).unwrap_err();
        assert_eq!(e.to_string(), "id 2147483648 does not fit (at most 2147483647)");
        assert!(Ragged::from_padded(&[1 << 40], &[1.0], 1).is_err());
    }
}
