//! `bench data inspect`: what a user checks before training. Rows and
//! distinct users per split, positive rate per task and split, the feature
//! list with vocabulary sizes, how often one task's positives are inside
//! another's, and for WeChat-shaped data the two funnels (comment within
//! read_comment, follow within click_avatar) over all seven actions. The
//! data config comes from `config::parse_data_config` (grid or bare file).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Instant;

use super::numeric::{DenseEncoding, Encoding, NumericField};
use super::schema::{Dataset, FeatureSchema, SplitData};
use super::wechat::{self, etl::WechatFeatures, ACTIONS};
use super::{DataConfig, DataError};

/// One split's size and label balance.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSummary {
    pub name: String,
    pub rows: usize,
    pub users: usize,
    /// Positive rate per task, in schema order.
    pub positive_rate: Vec<f64>,
}

/// Positives of `child` and how many of them are positives of `parent` too.
#[derive(Debug, Clone, PartialEq)]
pub struct Containment {
    pub parent: String,
    pub child: String,
    pub child_positives: usize,
    pub both: usize,
}

impl Containment {
    /// Share of the child's positives inside the parent's; None without positives.
    pub fn share(&self) -> Option<f64> {
        (self.child_positives > 0).then(|| self.both as f64 / self.child_positives as f64)
    }
}

/// The result of an inspection.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub name: String,
    pub digest: String,
    pub schema: FeatureSchema,
    pub splits: Vec<SplitSummary>,
    /// Every ordered pair of tasks, over all splits.
    pub task_containment: Vec<Containment>,
    /// WeChat funnels over all seven actions, all target days.
    pub funnels: Vec<Containment>,
    pub seconds: f64,
}

const SPLITS: [&str; 3] = ["train", "validation", "test"];

fn summary(name: &str, rows: usize, tasks: usize, user: impl Fn(usize) -> i64, label: impl Fn(usize, usize) -> bool) -> SplitSummary {
    let users: HashSet<i64> = (0..rows).map(&user).collect();
    let positive_rate =
        (0..tasks).map(|t| if rows == 0 { 0.0 } else { (0..rows).filter(|&r| label(r, t)).count() as f64 / rows as f64 }).collect();
    SplitSummary { name: name.into(), rows, users: users.len(), positive_rate }
}

fn containment(names: &[String], rows: usize, label: impl Fn(usize, usize) -> bool) -> Vec<Containment> {
    let mut out = Vec::new();
    for (c, child) in names.iter().enumerate() {
        for (p, parent) in names.iter().enumerate() {
            if p == c {
                continue;
            }
            let child_positives = (0..rows).filter(|&r| label(r, c)).count();
            let both = (0..rows).filter(|&r| label(r, c) && label(r, p)).count();
            out.push(Containment { parent: parent.clone(), child: child.clone(), child_positives, both });
        }
    }
    out
}

/// Inspects an already loaded dataset.
pub fn of_dataset(ds: &Dataset) -> Inspection {
    let nt = ds.schema.tasks.len();
    let parts: [&SplitData; 3] = [&ds.train, &ds.valid, &ds.test];
    let splits =
        SPLITS.iter().zip(parts).map(|(name, s)| summary(name, s.rows, nt, |r| s.users[r], |r, t| s.labels[r * nt + t] > 0.5)).collect();
    let total: usize = parts.iter().map(|s| s.rows).sum();
    let locate = |mut r: usize| {
        for s in parts {
            if r < s.rows {
                return (s, r);
            }
            r -= s.rows;
        }
        (parts[2], 0)
    };
    let task_containment = containment(&ds.schema.tasks, total, |r, t| {
        let (s, r) = locate(r);
        s.labels[r * nt + t] > 0.5
    });
    Inspection {
        name: ds.name.clone(),
        digest: ds.digest.clone(),
        schema: ds.schema.clone(),
        splits,
        task_containment,
        funnels: vec![],
        seconds: 0.0,
    }
}

/// Inspects WeChat features without building the padded training blocks
/// (unless the dense features are encoded: their edges come from the train split).
pub fn of_wechat(
    f: &WechatFeatures,
    key: &str,
    name: String,
    tasks: &[String],
    split: &wechat::DaySplit,
    dense: Option<&DenseEncoding>,
) -> Result<Inspection, DataError> {
    // Same validation and digest as loading for training.
    let (schema, digest) = match dense {
        None => (wechat::schema(f, tasks), wechat::dataset_digest(key, tasks, split)),
        Some(_) => {
            let ds = wechat::to_dataset(f, key, name.clone(), tasks, split, dense)?;
            (ds.schema, ds.digest)
        }
    };
    let idx: Vec<usize> = tasks.iter().filter_map(|t| ACTIONS.iter().position(|a| a == t)).collect();
    let rows = wechat::split_rows(f, split);
    let splits = SPLITS
        .iter()
        .zip(&rows)
        .map(|(n, rs)| summary(n, rs.len(), idx.len(), |r| f.categorical[0][rs[r]] as i64, |r, t| f.actions[idx[t]][rs[r]] == 1))
        .collect();
    let all: Vec<usize> = rows.iter().flatten().copied().collect();
    let task_containment = containment(&schema.tasks, all.len(), |r, t| f.actions[idx[t]][all[r]] == 1);
    let funnels = wechat::synth::FUNNELS
        .iter()
        .map(|&(c, p)| {
            let child_positives = f.actions[c].iter().filter(|&&y| y == 1).count();
            let both = f.actions[c].iter().zip(&f.actions[p]).filter(|(&y, &x)| y == 1 && x == 1).count();
            Containment { parent: ACTIONS[p].into(), child: ACTIONS[c].into(), child_positives, both }
        })
        .collect();
    Ok(Inspection { name, digest, schema, splits, task_containment, funnels, seconds: 0.0 })
}

/// Loads (or builds and caches) the data a config describes and inspects it.
pub fn inspect(cfg: &DataConfig, cache_dir: &Path) -> Result<Inspection, DataError> {
    let t0 = Instant::now();
    let mut ins = match cfg {
        DataConfig::Wechat(c) => {
            wechat::validate(&c.tasks, &c.split)?;
            let (f, key) = wechat::features(&c.path, cache_dir)?;
            of_wechat(&f, &key, format!("wechat ({})", c.path.display()), &c.tasks, &c.split, c.dense.as_ref())?
        }
        DataConfig::SyntheticWechat(c) => {
            wechat::validate(&c.tasks, &c.split)?;
            let p = c.params();
            let dir = wechat::synth::ensure_generated(&p, cache_dir)?;
            let (f, key) = wechat::features(&dir, cache_dir)?;
            let name = format!("synthetic-wechat ({} users, {} feeds, seed {}, relatedness {})", p.users, p.feeds, p.seed, p.relatedness);
            of_wechat(&f, &key, name, &c.tasks, &c.split, c.dense.as_ref())?
        }
        other => of_dataset(&super::load(other, cache_dir)?),
    };
    ins.seconds = t0.elapsed().as_secs_f64();
    Ok(ins)
}

/// How an encoded column enters the model, with its bin edges.
fn encoding_line(n: &NumericField) -> String {
    let edges = || n.edges.iter().map(|e| format!("{}", (e * 1e4).round() / 1e4)).collect::<Vec<_>>().join(" | ");
    match n.encoding {
        Encoding::Quantile { .. } => format!("quantile, {} bins + missing, emb {}; edges {}", n.bins(), n.emb_dim, edges()),
        Encoding::PiecewiseLinear { activation, .. } => format!(
            "piecewise-linear, {} bins + missing, linear to {} ({}); edges {}",
            n.width() - 1,
            n.emb_dim,
            activation.name(),
            edges()
        ),
        Encoding::Periodic { sigma, frequencies, activation } => format!(
            "periodic, {frequencies} frequencies (sigma {sigma}), linear to {} ({}); train mean {:.4}, std {:.4}",
            n.emb_dim,
            activation.name(),
            n.mean,
            n.sd
        ),
    }
}

fn pct(x: f64) -> String {
    format!("{:.3}%", 100.0 * x)
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.schema;
        writeln!(f, "dataset  {}", self.name)?;
        writeln!(f, "digest   {}   (loaded in {:.1}s)", self.digest, self.seconds)?;
        writeln!(f)?;
        write!(f, "{:<11} {:>10} {:>7}", "split", "rows", "users")?;
        for t in &s.tasks {
            write!(f, " {:>13}", t)?;
        }
        writeln!(f)?;
        for sp in &self.splits {
            write!(f, "{:<11} {:>10} {:>7}", sp.name, sp.rows, sp.users)?;
            for r in &sp.positive_rate {
                write!(f, " {:>13}", pct(*r))?;
            }
            writeln!(f)?;
        }
        writeln!(f)?;
        writeln!(f, "categorical ({}):", s.categorical.len())?;
        for c in &s.categorical {
            writeln!(f, "  {:<28} vocab {:>8} (incl. OOV 0), emb {}", c.name, c.vocab_size, c.emb_dim)?;
        }
        if !s.multi.is_empty() {
            writeln!(f, "multi-valued ({}), mean-pooled:", s.multi.len())?;
            for m in &s.multi {
                let table = m
                    .shares_table_with
                    .as_ref()
                    .map_or(format!("vocab {}, emb {}", m.vocab_size, m.emb_dim), |t| format!("shares the {t} table"));
                writeln!(f, "  {:<28} max_len {:>3}, {table}", m.name, m.max_len)?;
            }
        }
        writeln!(f, "dense ({}): {}", s.dense.len(), s.dense.join(", "))?;
        if !s.numeric.is_empty() {
            writeln!(f, "numeric encodings ({}), edges from the train split:", s.numeric.len())?;
            for n in &s.numeric {
                writeln!(f, "  {:<28} {}", n.name, encoding_line(n))?;
            }
        }
        if !self.funnels.is_empty() {
            writeln!(f, "\nfunnels (all target days, all seven actions):")?;
            for c in &self.funnels {
                let share = c.share().map_or("n/a (no positives)".into(), pct);
                writeln!(f, "  {:<13} within {:<13} {share} of {} {} rows", c.child, c.parent, c.child_positives, c.child)?;
            }
        }
        if !self.task_containment.is_empty() {
            writeln!(f, "\ntask containment (share of the row task's positives that are also column-task positives):")?;
            write!(f, "  {:<13}", "")?;
            for t in &s.tasks {
                write!(f, " {:>13}", t)?;
            }
            writeln!(f)?;
            for child in &s.tasks {
                write!(f, "  {:<13}", child)?;
                for parent in &s.tasks {
                    let cell = self
                        .task_containment
                        .iter()
                        .find(|c| &c.child == child && &c.parent == parent)
                        .map_or("-".into(), |c| c.share().map_or("n/a".into(), pct));
                    write!(f, " {:>13}", cell)?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::schema::CategoricalField;

    #[test]
    fn rates_users_and_containment_by_hand() {
        // 5 rows; tasks click, buy; buy happens only on clicked rows but one.
        let labels = vec![1., 1., 1., 0., 0., 0., 0., 1., 1., 0.];
        let split = SplitData { rows: 5, categorical: vec![1; 5], labels, users: vec![1, 1, 2, 3, 3], ..Default::default() };
        let small = SplitData { rows: 1, categorical: vec![1], labels: vec![1., 0.], users: vec![9], ..Default::default() };
        let schema = FeatureSchema {
            categorical: vec![CategoricalField { name: "u".into(), vocab_size: 10, emb_dim: 2 }],
            multi: vec![],
            dense: vec![],
            tasks: vec!["click".into(), "buy".into()],
            numeric: vec![],
        };
        let ds = Dataset { name: "hand".into(), schema, train: split, valid: small.clone(), test: small, digest: "d".into() };
        let ins = of_dataset(&ds);
        assert_eq!((ins.splits[0].rows, ins.splits[0].users), (5, 3));
        assert_eq!(ins.splits[0].positive_rate, vec![0.6, 0.4]);
        assert_eq!(ins.splits[1].positive_rate, vec![1.0, 0.0]);
        // buy positives: rows 0 and 3 (train); clicked among them: row 0 only.
        let buy_in_click = ins.task_containment.iter().find(|c| c.child == "buy" && c.parent == "click").unwrap();
        assert_eq!((buy_in_click.child_positives, buy_in_click.both, buy_in_click.share()), (2, 1, Some(0.5)));
        let text = ins.to_string();
        assert!(text.contains("60.000%") && text.contains("50.000%"), "{text}");
    }
}
