//! Runs grouped into configurations: everything but the seed, i.e. the
//! run's config hash. The one grouping of the crate: the leaderboard, the
//! README table, the sweep page and `bench compare` all form their
//! configurations here, so a grid with two learning rates shows two
//! configurations everywhere and never pools them.

use crate::store::RunRow;

use super::facts::RunFacts;

/// A run that belongs to a configuration.
pub trait Configured {
    /// The canonical hash of everything that defines the run except its seed.
    fn config_hash(&self) -> &str;
}

impl Configured for RunRow {
    fn config_hash(&self) -> &str {
        &self.config_hash
    }
}

impl Configured for RunFacts {
    fn config_hash(&self) -> &str {
        &self.config_hash
    }
}

impl<T: Configured + ?Sized> Configured for &T {
    fn config_hash(&self) -> &str {
        (**self).config_hash()
    }
}

/// The runs grouped by configuration, configurations in first-seen order
/// and runs in their given order within each.
pub fn by_configuration<T: Configured>(runs: impl IntoIterator<Item = T>) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    for r in runs {
        match groups.iter_mut().find(|g| g[0].config_hash() == r.config_hash()) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

/// A configuration's name: its run's name without the seed part,
/// `mmoe-equal-s3-lr=0.1` -> `mmoe-equal-lr=0.1`.
pub fn configuration_label(run_name: &str, seed: i64) -> String {
    let part = format!("-s{seed}");
    let mut from = 0;
    while let Some(i) = run_name[from..].find(&part).map(|i| i + from) {
        let rest = &run_name[i + part.len()..];
        if rest.is_empty() || rest.starts_with('-') {
            return format!("{}{rest}", &run_name[..i]);
        }
        from = i + part.len();
    }
    run_name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R(&'static str, i64);
    impl Configured for R {
        fn config_hash(&self) -> &str {
            self.0
        }
    }

    #[test]
    fn groups_by_hash_in_first_seen_order() {
        let runs = [R("b", 1), R("a", 1), R("b", 2), R("a", 2), R("c", 1)];
        let g = by_configuration(runs.iter());
        let shape: Vec<Vec<(&str, i64)>> = g.iter().map(|g| g.iter().map(|r| (r.0, r.1)).collect()).collect();
        assert_eq!(shape, vec![vec![("b", 1), ("b", 2)], vec![("a", 1), ("a", 2)], vec![("c", 1)]]);
    }

    #[test]
    fn labels_drop_only_the_seed_part() {
        assert_eq!(configuration_label("mmoe-equal-s3-lr=0.1", 3), "mmoe-equal-lr=0.1");
        assert_eq!(configuration_label("mmoe-equal-s3", 3), "mmoe-equal");
        // `-s1` inside `-s12` is not the seed part.
        assert_eq!(configuration_label("mmoe-s12-equal-s1", 1), "mmoe-s12-equal");
        assert_eq!(configuration_label("fusion-mean(a+b)", 0), "fusion-mean(a+b)");
    }
}
