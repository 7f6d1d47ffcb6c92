//! Dense internal keys of raw ids for the ETL's aggregation: every distinct
//! id of a column gets the next integer in order of first appearance, so
//! that counts, vocabulary indices and lists live in plain arrays indexed
//! by key. The WeChat ids (users, feeds, devices) are small non-negative
//! integers, so an index array from id to key replaces the hash map
//! wherever the ids' range allows it (a few times the number of ids); any
//! other range falls back to a hash map with a cheap integer hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small multiplicative hasher for integer keys (SipHash is needlessly slow here).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);
impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64)
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
}
pub type FastHash = BuildHasherDefault<FastHasher>;

/// The widest id range given an index array: this many slots at least, or
/// a few per id seen (an array of u32, so at most a few MB beyond the ids).
const DENSE_MIN_SLOTS: u64 = 1 << 20;
const DENSE_SLOTS_PER_ID: u64 = 4;

/// Where the key of an id is looked up.
#[derive(Debug, Clone)]
enum Table {
    /// `slots[id - base]` is key + 1, 0 for an id not seen yet.
    Dense { base: i64, slots: Vec<u32> },
    Hashed(HashMap<i64, u32, FastHash>),
}

/// Keys of the ids of some columns, in order of first appearance.
#[derive(Debug, Clone)]
pub struct Interner {
    table: Table,
    /// Number of keys given out.
    len: u32,
}

impl Interner {
    /// An interner for the ids of `columns` (an index array when their
    /// range is narrow enough, a hash map otherwise).
    pub fn for_ids(columns: &[&[i64]]) -> Self {
        let n: u64 = columns.iter().map(|c| c.len() as u64).sum();
        let (lo, hi) = columns.iter().flat_map(|c| c.iter()).fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let span = (hi as i128 - lo as i128 + 1).max(0) as u128;
        let table = if n > 0 && span <= DENSE_MIN_SLOTS.max(n.saturating_mul(DENSE_SLOTS_PER_ID)) as u128 {
            Table::Dense { base: lo, slots: vec![0; span as usize] }
        } else {
            Table::Hashed(HashMap::default())
        };
        Interner { table, len: 0 }
    }

    /// The key of `id`, a new one (the next integer) if `id` is new.
    pub fn key(&mut self, id: i64) -> u32 {
        let next = self.len;
        let key = match &mut self.table {
            Table::Dense { base, slots } => {
                // for_ids saw every id this interner is asked about; any
                // other id goes to the slow path below.
                match usize::try_from(id.wrapping_sub(*base)).ok().and_then(|i| slots.get_mut(i)) {
                    Some(slot) => {
                        if *slot == 0 {
                            *slot = next + 1;
                        }
                        *slot - 1
                    }
                    None => return self.key_outside(id),
                }
            }
            Table::Hashed(map) => *map.entry(id).or_insert(next),
        };
        if key == next {
            self.len += 1;
        }
        key
    }

    /// An id outside the index array: the table becomes a hash map.
    fn key_outside(&mut self, id: i64) -> u32 {
        if let Table::Dense { base, slots } = &self.table {
            let map = slots.iter().enumerate().filter(|(_, &s)| s > 0).map(|(i, &s)| (*base + i as i64, s - 1)).collect();
            self.table = Table::Hashed(map);
        }
        self.key(id)
    }

    /// The keys of `ids`, one per element.
    pub fn keys(&mut self, ids: &[i64]) -> Vec<u32> {
        ids.iter().map(|&id| self.key(id)).collect()
    }

    /// Number of distinct ids seen.
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// The vocabulary of the keyed rows `rows` of a column: each key's index
/// (1-based, in order of first appearance among `rows`; 0 for a key no row
/// of `rows` holds) and the raw ids in index order.
pub fn first_appearance(keys: &[u32], ids: &[i64], n_keys: usize, rows: &[u32]) -> (Vec<i32>, Vec<i64>) {
    let mut index = vec![0i32; n_keys];
    let mut order = Vec::new();
    for &r in rows {
        let k = keys[r as usize] as usize;
        if index[k] == 0 {
            order.push(ids[r as usize]);
            index[k] = order.len() as i32;
        }
    }
    (index, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_first_appearance_in_arrays_and_hash_maps() {
        let ids = [7, 3, 7, 9, 3, 3, 12];
        let dense = Interner::for_ids(&[&ids]);
        assert!(matches!(dense.table, Table::Dense { .. }));
        let wide = [7, -(1 << 40), 7, 1 << 50];
        let hashed = Interner::for_ids(&[&wide]);
        assert!(matches!(hashed.table, Table::Hashed(_)));
        for (mut it, ids, want) in [(dense, &ids[..], vec![0, 1, 0, 2, 1, 1, 3]), (hashed, &wide[..], vec![0, 1, 0, 2])] {
            assert_eq!(it.keys(ids), want);
            assert_eq!(it.len(), want.iter().max().map_or(0, |m| m + 1) as usize);
        }
    }

    #[test]
    fn an_id_outside_the_array_keeps_every_key() {
        let mut it = Interner::for_ids(&[&[5, 6, 8]]);
        assert_eq!(it.keys(&[8, 5]), vec![0, 1]);
        // Not among the ids the interner was made for: the keys carry over to a hash map.
        assert_eq!(it.keys(&[-(1 << 40), 5, 6, 8, i64::MAX]), vec![2, 1, 3, 0, 4]);
        assert!(matches!(it.table, Table::Hashed(_)));
        assert_eq!(it.len(), 5);
    }

    #[test]
    fn vocabulary_of_some_rows_in_their_order() {
        let ids = [40, 10, 40, 30, 20];
        let mut it = Interner::for_ids(&[&ids]);
        let keys = it.keys(&ids);
        let (index, order) = first_appearance(&keys, &ids, it.len(), &[3, 1, 2, 0]);
        assert_eq!(order, vec![30, 10, 40]);
        // keys: 40 -> 0, 10 -> 1, 30 -> 2, 20 -> 3 (no row of the subset: index 0)
        assert_eq!(index, vec![3, 2, 1, 0]);
    }
}
