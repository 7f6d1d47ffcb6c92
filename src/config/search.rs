//! `[grid.search]`: seeded random search as a tuning budget. Besides the
//! Cartesian `[grid.overrides]`, a grid may draw `trials` configurations
//! from per-key distributions:
//!
//! ```toml
//! [grid.search]
//! trials = 8
//! seed = 1
//! "train.lr" = { log_uniform = [1e-4, 1e-2] }
//! "models.mmoe.experts" = { int = [2, 8] }
//! "train.batch_size" = { choice = [512, 1024, 2048] }
//! ```
//!
//! The trials are drawn once per grid, so every model x strategy arm gets
//! the same trial values: equal budgets by construction. Each trial is one
//! more set of overrides (crossed with the Cartesian ones); the leaderboard
//! sees the trials as the arm's configurations. Distributions are checked
//! while the file is read, so errors carry the file, key and line.

use std::collections::BTreeMap;
use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Most trials a search may draw.
pub const MAX_TRIALS: usize = 1000;

/// Significant digits a drawn float keeps (readable names and params).
const DIGITS: usize = 4;

/// One key's distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawDistribution", into = "RawDistribution")]
pub enum Distribution {
    /// One of the values, each equally likely.
    Choice(Vec<toml::Value>),
    /// Uniform on [low, high].
    Uniform { low: f64, high: f64 },
    /// exp of a uniform on [ln low, ln high] (0 < low < high).
    LogUniform { low: f64, high: f64 },
    /// An integer in [low, high], each equally likely.
    Int { low: i64, high: i64 },
}

/// The file's form: `{ uniform = [a, b] }` and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawDistribution {
    Choice(Vec<toml::Value>),
    Uniform(Vec<f64>),
    LogUniform(Vec<f64>),
    Int(Vec<i64>),
}

fn bounds<T: Copy + fmt::Display>(name: &str, v: &[T]) -> Result<(T, T), String> {
    match v {
        [a, b] => Ok((*a, *b)),
        _ => Err(format!("`{name}` takes two bounds [low, high], got {} value(s)", v.len())),
    }
}

impl TryFrom<RawDistribution> for Distribution {
    type Error = String;

    fn try_from(r: RawDistribution) -> Result<Self, String> {
        match r {
            RawDistribution::Choice(v) if v.is_empty() => Err("`choice` needs at least one value".into()),
            RawDistribution::Choice(v) => Ok(Distribution::Choice(v)),
            RawDistribution::Uniform(v) => {
                let (low, high) = bounds("uniform", &v)?;
                if !(low.is_finite() && high.is_finite() && low < high) {
                    return Err(format!("`uniform` needs finite bounds with low < high, got [{low}, {high}]"));
                }
                Ok(Distribution::Uniform { low, high })
            }
            RawDistribution::LogUniform(v) => {
                let (low, high) = bounds("log_uniform", &v)?;
                if !(low > 0.0 && high.is_finite() && low < high) {
                    return Err(format!("`log_uniform` needs 0 < low < high, got [{low}, {high}]"));
                }
                Ok(Distribution::LogUniform { low, high })
            }
            RawDistribution::Int(v) => {
                let (low, high) = bounds("int", &v)?;
                if low > high {
                    return Err(format!("`int` needs low <= high, got [{low}, {high}]"));
                }
                Ok(Distribution::Int { low, high })
            }
        }
    }
}

impl From<Distribution> for RawDistribution {
    fn from(d: Distribution) -> Self {
        match d {
            Distribution::Choice(v) => RawDistribution::Choice(v),
            Distribution::Uniform { low, high } => RawDistribution::Uniform(vec![low, high]),
            Distribution::LogUniform { low, high } => RawDistribution::LogUniform(vec![low, high]),
            Distribution::Int { low, high } => RawDistribution::Int(vec![low, high]),
        }
    }
}

/// `x` rounded to `DIGITS` significant digits.
fn round_significant(x: f64) -> f64 {
    format!("{x:.prec$e}", prec = DIGITS - 1).parse().unwrap_or(x)
}

impl Distribution {
    fn draw(&self, rng: &mut ChaCha8Rng) -> toml::Value {
        match self {
            Distribution::Choice(v) => v[rng.gen_range(0..v.len())].clone(),
            Distribution::Uniform { low, high } => toml::Value::Float(round_significant(low + (high - low) * rng.gen::<f64>())),
            Distribution::LogUniform { low, high } => {
                let (a, b) = (low.ln(), high.ln());
                toml::Value::Float(round_significant((a + (b - a) * rng.gen::<f64>()).exp()))
            }
            Distribution::Int { low, high } => toml::Value::Integer(rng.gen_range(*low..=*high)),
        }
    }
}

/// `[grid.search]`: how many trials, their seed, and one distribution per dotted key.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpec {
    pub trials: usize,
    pub seed: u64,
    pub space: BTreeMap<String, Distribution>,
}

impl SearchSpec {
    /// The trials, each a list of (key, value) in key order; the same for
    /// every arm, and the same for the same seed.
    pub fn trials(&self) -> Vec<Vec<(String, toml::Value)>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        (0..self.trials).map(|_| self.space.iter().map(|(k, d)| (k.clone(), d.draw(&mut rng))).collect()).collect()
    }
}

impl Serialize for SearchSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2 + self.space.len()))?;
        m.serialize_entry("trials", &self.trials)?;
        m.serialize_entry("seed", &self.seed)?;
        for (k, d) in &self.space {
            m.serialize_entry(k, d)?;
        }
        m.end()
    }
}

/// Checks a search key: a dotted key of the file outside `[grid]`.
fn check_key(key: &str) -> Result<(), String> {
    if key == "grid" || key.starts_with("grid.") {
        return Err(format!("`{key}`: the grid section itself cannot be searched"));
    }
    if !key.contains('.') {
        return Err(format!("`{key}`: expected a dotted key of this file, e.g. \"train.lr\""));
    }
    Ok(())
}

struct SearchVisitor;

impl<'de> Visitor<'de> for SearchVisitor {
    type Value = SearchSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table with `trials`, an optional `seed` and one distribution per dotted key")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SearchSpec, A::Error> {
        let (mut trials, mut seed, mut space) = (None, 0u64, BTreeMap::new());
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "trials" => trials = Some(map.next_value::<usize>()?),
                "seed" => seed = map.next_value::<u64>()?,
                _ => {
                    check_key(&key).map_err(de::Error::custom)?;
                    let d: Distribution = map.next_value()?;
                    space.insert(key, d);
                }
            }
        }
        let trials = trials.ok_or_else(|| de::Error::missing_field("trials"))?;
        if trials == 0 || trials > MAX_TRIALS {
            return Err(de::Error::custom(format!("`trials` must be between 1 and {MAX_TRIALS}, got {trials}")));
        }
        if space.is_empty() {
            return Err(de::Error::custom(
                "no distributions: give at least one dotted key, e.g. \"train.lr\" = { log_uniform = [1e-4, 1e-2] }",
            ));
        }
        Ok(SearchSpec { trials, seed, space })
    }
}

impl<'de> Deserialize<'de> for SearchSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SearchVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SearchSpec, String> {
        toml::from_str::<BTreeMap<String, SearchSpec>>(text).map(|mut m| m.remove("s").unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn trials_are_seeded_rounded_and_inside_their_ranges() {
        let s = parse(
            "[s]\ntrials = 50\nseed = 3\n\"train.lr\" = { log_uniform = [1e-4, 1e-2] }\n\"a.b\" = { int = [2, 4] }\n\
             \"a.c\" = { choice = [\"x\", \"y\"] }\n\"a.d\" = { uniform = [0.5, 1.5] }\n",
        )
        .unwrap();
        let t = s.trials();
        assert_eq!(t, s.trials(), "same seed, same trials");
        assert_eq!(t.len(), 50);
        let mut seen_int = std::collections::BTreeSet::new();
        for trial in &t {
            let keys: Vec<&str> = trial.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["a.b", "a.c", "a.d", "train.lr"]);
            let lr = trial[3].1.as_float().unwrap();
            assert!((1e-4..=1e-2).contains(&lr), "{lr}");
            assert_eq!(lr, format!("{lr:.3e}").parse::<f64>().unwrap(), "4 significant digits");
            let i = trial[0].1.as_integer().unwrap();
            assert!((2..=4).contains(&i));
            seen_int.insert(i);
            assert!(["x", "y"].contains(&trial[1].1.as_str().unwrap()));
            assert!((0.5..=1.5).contains(&trial[2].1.as_float().unwrap()));
        }
        assert_eq!(seen_int.len(), 3, "50 draws of 3 integers hit each");
        let other = SearchSpec { seed: 4, ..s.clone() };
        assert_ne!(other.trials(), t);
        // Log-uniform: about half the draws below the geometric midpoint 1e-3.
        let below = t.iter().filter(|x| x[3].1.as_float().unwrap() < 1e-3).count();
        assert!((15..=35).contains(&below), "{below} of 50 below 1e-3");
    }

    #[test]
    fn bad_distributions_are_refused_with_the_reason() {
        for (text, want) in [
            ("[s]\ntrials = 2\n\"train.lr\" = { uniform = [2.0, 1.0] }\n", "low < high"),
            ("[s]\ntrials = 2\n\"train.lr\" = { log_uniform = [0.0, 1.0] }\n", "0 < low < high"),
            ("[s]\ntrials = 2\n\"train.lr\" = { uniform = [1.0] }\n", "two bounds"),
            ("[s]\ntrials = 2\n\"train.lr\" = { choice = [] }\n", "at least one value"),
            ("[s]\ntrials = 2\n\"train.lr\" = { normal = [0.0, 1.0] }\n", "normal"),
            ("[s]\ntrials = 0\n\"train.lr\" = { int = [1, 2] }\n", "between 1 and"),
            ("[s]\n\"train.lr\" = { int = [1, 2] }\n", "trials"),
            ("[s]\ntrials = 2\n", "no distributions"),
            ("[s]\ntrials = 2\n\"grid.seeds\" = { int = [1, 2] }\n", "grid section"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn serializes_back_to_what_it_reads() {
        let s = parse("[s]\ntrials = 3\nseed = 9\n\"train.lr\" = { log_uniform = [0.001, 0.1] }\n").unwrap();
        let text = toml::to_string(&BTreeMap::from([("s".to_string(), s.clone())])).unwrap();
        assert_eq!(parse(&text).unwrap(), s);
    }
}
