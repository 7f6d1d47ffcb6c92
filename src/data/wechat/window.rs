//! The windowed action sums of the ETL, computed once per (key, target
//! day) instead of once per row: every action of a user on one day has the
//! same seven 7-day sums, every action on a feed on one day too. Per-key
//! prefix sums over days give each window in two reads; the features are
//! stored as `ln(1 + sum)`, the key's seven values side by side for each
//! target day, so a row's seven features are one contiguous read.

use super::ACTIONS;

/// `ln(1 + x) as f32` of counts, from a table for the small ones: exactly
/// the value `(x as f64).ln_1p() as f32` computes.
pub struct Ln1p {
    table: Vec<f32>,
}

impl Ln1p {
    const TABLE: u32 = 1 << 16;

    pub fn new() -> Self {
        Ln1p { table: (0..Self::TABLE).map(|x| (x as f64).ln_1p() as f32).collect() }
    }

    pub fn of(&self, x: u32) -> f32 {
        match self.table.get(x as usize) {
            Some(&v) => v,
            None => (x as f64).ln_1p() as f32,
        }
    }
}

impl Default for Ln1p {
    fn default() -> Self {
        Ln1p::new()
    }
}

/// The target days: `first..first + count`.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    pub first: usize,
    pub count: usize,
}

/// `ln(1 + sum)` of each action over the window of each target day, per
/// key: `values[(key * targets + t) * 7 + a]` for target day `first + t`
/// and window [day - window, day - 1].
pub struct WindowSums {
    targets: Targets,
    values: Vec<f32>,
}

impl WindowSums {
    /// Sums of the action bits `actions` of rows keyed `keys` on days `days`
    /// (all three of one length) over the `window` days before each target day.
    pub fn new(keys: &[u32], n_keys: usize, days: &[u8], actions: &[u8], targets: Targets, window: usize, ln1p: &Ln1p) -> Self {
        let na = ACTIONS.len();
        if targets.count == 0 {
            return WindowSums { targets, values: Vec::new() };
        }
        let n_days = targets.first + targets.count;
        // Per key, counts of each day (day-major within the key), then prefix sums over days.
        let mut cum = vec![0u32; n_keys * n_days * na];
        for ((&k, &d), &bits) in keys.iter().zip(days).zip(actions) {
            let d = d as usize;
            if d >= n_days {
                continue;
            }
            let base = (k as usize * n_days + d) * na;
            for (a, c) in cum[base..base + na].iter_mut().enumerate() {
                *c += (bits >> a & 1) as u32;
            }
        }
        let mut values = vec![0f32; n_keys * targets.count * na];
        for (key_cum, out) in cum.chunks_exact_mut(n_days * na).zip(values.chunks_exact_mut(targets.count * na)) {
            for d in 1..n_days {
                let (before, after) = key_cum.split_at_mut(d * na);
                for (x, p) in after[..na].iter_mut().zip(&before[(d - 1) * na..]) {
                    *x += *p;
                }
            }
            for (t, o) in out.chunks_exact_mut(na).enumerate() {
                let day = targets.first + t;
                let (lo, hi) = (day.saturating_sub(window), day - 1);
                for (a, v) in o.iter_mut().enumerate() {
                    let below = if lo == 0 { 0 } else { key_cum[(lo - 1) * na + a] };
                    *v = ln1p.of(key_cum[hi * na + a] - below);
                }
            }
        }
        WindowSums { targets, values }
    }

    /// The seven features of `key` on target day `day`.
    pub fn of(&self, key: u32, day: usize) -> &[f32] {
        let na = ACTIONS.len();
        let at = (key as usize * self.targets.count + (day - self.targets.first)) * na;
        &self.values[at..at + na]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln1p_table_is_exactly_the_computed_value() {
        let l = Ln1p::new();
        for x in [0u32, 1, 2, 7, 100, 65_535, 65_536, 1 << 20, u32::MAX] {
            assert_eq!(l.of(x).to_bits(), ((x as f64).ln_1p() as f32).to_bits(), "{x}");
        }
    }

    #[test]
    fn sums_cover_the_days_before_each_target_day() {
        // key 0: read_comment (bit 0) on days 1, 2, 4; like (bit 2) on day 4; key 1: bit 0 on day 5.
        let keys = [0, 0, 0, 1, 0];
        let days = [1, 2, 4, 5, 4];
        let actions = [1, 1, 1, 1, 4];
        let targets = Targets { first: 4, count: 3 };
        let w = WindowSums::new(&keys, 2, &days, &actions, targets, 2, &Ln1p::new());
        let ln = |x: f64| x.ln_1p() as f32;
        // Target day 4: window [2, 3]; day 5: [3, 4]; day 6: [4, 5].
        assert_eq!(w.of(0, 4), &[ln(1.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(w.of(0, 5), &[ln(1.0), 0.0, ln(1.0), 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(w.of(0, 6), &[ln(1.0), 0.0, ln(1.0), 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(w.of(1, 5), &[0.0; 7]);
        assert_eq!(w.of(1, 6)[0], ln(1.0));
    }

    #[test]
    fn no_target_day_gives_no_sums() {
        let w = WindowSums::new(&[0, 1], 2, &[3, 7], &[1, 1], Targets { first: 8, count: 0 }, 7, &Ln1p::new());
        assert!(w.values.is_empty());
    }
}
