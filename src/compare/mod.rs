//! `bench compare`: runs or sweeps side by side, with statistics a reader
//! can trust. Reads the store (and the saved test predictions) only.
//!
//! Each argument is a run id prefix (hex digits, like git), a sweep name, or
//! a sweep id or hex prefix of one; names and ids are compared as text,
//! never as patterns. An exact sweep name wins, and a prefix matching both
//! a run and a sweep (or several of either) is refused as ambiguous.
//! Two modes follow from what the arguments name:
//! - *runs*: every run is its own column; the params that differ (like
//!   `dvc exp diff`), metric deltas per task against the first run, and for
//!   AUC DeLong's test on the saved predictions of the same test rows;
//! - *seeds*: when a sweep is named, or runs repeat a configuration over
//!   seeds, runs are grouped by configuration (config hash: model, strategy,
//!   overrides, data; seed excluded); per column mean ± std and n, and per
//!   other column the difference to the first with its 95% CI, paired by seed
//!   when the seeds match, Welch's otherwise.
//!
//! A verdict per task (from test AUC) and per metric: better / worse when
//! the CI of the difference excludes 0 (for DeLong equivalently p < 0.05),
//! else within noise. The result is one serializable [`Comparison`];
//! `report::compare` renders it as text, Markdown, CSV, JSON or HTML.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use thiserror::Error;

use crate::metrics::auc;
use crate::metrics::delong::{delong_test, DelongError, DelongTest};
use crate::stats::{paired_diff_ci, summarize, welch_diff_ci, DiffCi, StatsError, Summary};
use crate::store::artifacts::PredictionFile;
use crate::store::{RunRow, RunStatus, Store, StoreError, SweepRow};
use crate::verdict::{by_configuration, configuration_label, Configured};
pub use crate::verdict::Verdict;

/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// The compared test metrics and whether higher is better.
pub const METRICS: &[(&str, bool)] = &[("auc", true), ("logloss", false), ("uauc", true)];

/// A stored AUC and the one recomputed from the predictions file must agree
/// this closely (both come from the same f32 scores).
const AUC_MATCH_TOL: f64 = 1e-9;

#[derive(Debug, Error)]
pub enum CompareError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("`{0}` matches no run and no sweep (see `bench list`)")]
    NoMatch(String),
    #[error("`{arg}` is ambiguous: it matches {matches}; give more characters")]
    Ambiguous { arg: String, matches: String },
    #[error("run {id} ({name}) is {status}, not finished: it has no final metrics to compare")]
    NotFinished { id: String, name: String, status: String },
    #[error("sweep {id} ({name}) has no finished runs")]
    EmptySweep { id: String, name: String },
    #[error("nothing to compare: {0}")]
    TooFew(String),
    #[error("run {id}: {message}")]
    Predictions { id: String, message: String },
    #[error(
        "runs {a} and {b} were evaluated on different test rows (rows digest {digest_a} vs {digest_b}): \
         DeLong's test needs the same rows; pass --no-delong to compare the recorded metrics only"
    )]
    RowsDiffer { a: String, b: String, digest_a: String, digest_b: String },
    #[error("DeLong's test of run {id} vs {baseline}, task {task}: {cause}")]
    Delong { id: String, baseline: String, task: String, cause: DelongError },
    #[error("{what}: {cause}")]
    Stats { what: String, cause: StatsError },
}

type Result<T> = std::result::Result<T, CompareError>;

/// How the columns were formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One run per column.
    Runs,
    /// One configuration per column, aggregated over seeds.
    Seeds,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnRun {
    pub id: String,
    pub name: String,
    pub seed: i64,
    pub sweep_id: String,
}

/// One column: a run, or a configuration over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// "A", "B", ...; A is the baseline.
    pub key: String,
    pub label: String,
    pub model: String,
    pub strategy: String,
    pub config_hash: String,
    pub seeds: Vec<i64>,
    pub runs: Vec<ColumnRun>,
}

/// A parameter whose value differs between columns (`None`: not set).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamDiff {
    pub key: String,
    pub values: Vec<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedValue {
    pub run_id: String,
    pub seed: i64,
    pub value: f64,
}

/// The difference of a column to the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    /// candidate - baseline (of the means in seeds mode).
    pub estimate: f64,
    /// The CI and p-value, when a test applies.
    pub ci: Option<DiffCi>,
    pub verdict: Option<Verdict>,
    /// DeLong's details (AUC in runs mode).
    pub delong: Option<DelongTest>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    pub metric: String,
    pub higher_is_better: bool,
    /// Per column; `None` where no run of the column has the metric.
    pub stats: Vec<Option<Summary>>,
    pub values: Vec<Vec<SeedValue>>,
    /// Per column; `None` for the baseline and where no difference exists.
    pub deltas: Vec<Option<Delta>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskComparison {
    pub task: String,
    /// Per column, from the test AUC's delta (`None` for the baseline or
    /// when no test applies).
    pub verdicts: Vec<Option<Verdict>>,
    pub metrics: Vec<MetricComparison>,
}

/// The test rows DeLong's test ran on (runs mode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowsInfo {
    pub digest: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub mode: Mode,
    pub level: f64,
    pub columns: Vec<Column>,
    pub params: Vec<ParamDiff>,
    pub tasks: Vec<TaskComparison>,
    pub rows: Option<RowsInfo>,
    pub notes: Vec<String>,
}

/// Options of a comparison.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    /// Run DeLong's test in runs mode (needs the saved predictions).
    pub delong: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { delong: true }
    }
}

/// What compare needs of one finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunData {
    pub id: String,
    pub name: String,
    pub model: String,
    pub strategy: String,
    pub seed: i64,
    pub config_hash: String,
    pub sweep_id: String,
    pub predictions_path: Option<String>,
    pub params: BTreeMap<String, String>,
    /// Test metrics by (task, metric).
    pub test: BTreeMap<(String, String), f64>,
}

impl Configured for RunData {
    fn config_hash(&self) -> &str {
        &self.config_hash
    }
}

enum Target {
    Run(Box<RunRow>),
    Sweep(SweepRow),
}

fn resolve(store: &Store, sweeps: &[SweepRow], arg: &str) -> Result<Target> {
    let by_name: Vec<&SweepRow> = sweeps.iter().filter(|s| s.name == arg).collect();
    let list = |v: &[&SweepRow]| v.iter().map(|s| format!("sweep {} ({}, updated {})", s.id, s.name, s.updated_at)).collect::<Vec<_>>();
    match by_name.as_slice() {
        [one] => return Ok(Target::Sweep((*one).clone())),
        [] => {}
        many => return Err(CompareError::Ambiguous { arg: arg.into(), matches: list(many).join(", ") }),
    }
    let hex = crate::store::run_id_prefix(arg).is_ok();
    let by_id: Vec<&SweepRow> = sweeps.iter().filter(|s| s.id == arg || (hex && s.id.starts_with(&arg.to_ascii_lowercase()))).collect();
    let run = match store.find_run(arg) {
        Ok(r) => Some(r),
        Err(StoreError::NoSuchRun(_) | StoreError::BadRunId(_)) => None,
        Err(e) => return Err(e.into()),
    };
    match (run, by_id.as_slice()) {
        (Some(r), []) => Ok(Target::Run(Box::new(r))),
        (None, [one]) => Ok(Target::Sweep((*one).clone())),
        (None, []) => Err(CompareError::NoMatch(arg.into())),
        (run, many) => {
            let mut m: Vec<String> = run.map(|r| format!("run {} ({})", r.id, r.name)).into_iter().collect();
            m.extend(list(many));
            Err(CompareError::Ambiguous { arg: arg.into(), matches: m.join(", ") })
        }
    }
}

fn load_run(store: &Store, r: RunRow) -> Result<RunData> {
    if r.status != RunStatus::Finished {
        return Err(CompareError::NotFinished { id: r.id, name: r.name, status: r.status.to_string() });
    }
    let params = store.params(&r.id)?.into_iter().map(|p| (p.key, p.value)).collect();
    let test = store.metrics(&r.id)?.into_iter().filter(|m| m.split == "test").map(|m| ((m.task, m.metric), m.value)).collect();
    Ok(RunData {
        id: r.id,
        name: r.name,
        model: r.model,
        strategy: r.strategy,
        seed: r.seed,
        config_hash: r.config_hash,
        sweep_id: r.sweep_id,
        predictions_path: r.predictions_path,
        params,
        test,
    })
}

/// Compares the runs and sweeps named by `args` (the first is the baseline).
pub fn compare(store: &Store, args: &[String], opts: CompareOptions) -> Result<Comparison> {
    let sweeps = store.list_sweeps()?;
    let mut runs: Vec<RunData> = Vec::new();
    let mut any_sweep = false;
    let mut notes = Vec::new();
    for arg in args {
        let loaded = match resolve(store, &sweeps, arg)? {
            Target::Run(r) => vec![load_run(store, *r)?],
            Target::Sweep(s) => {
                any_sweep = true;
                let all = store.sweep_runs(&s.id)?;
                let unfinished = all.iter().filter(|r| r.status != RunStatus::Finished).count();
                if unfinished > 0 {
                    notes.push(format!("sweep {} ({}): {unfinished} run(s) not finished, left out", s.id, s.name));
                }
                let finished: Vec<RunRow> = all.into_iter().filter(|r| r.status == RunStatus::Finished).collect();
                if finished.is_empty() {
                    return Err(CompareError::EmptySweep { id: s.id, name: s.name });
                }
                finished.into_iter().map(|r| load_run(store, r)).collect::<Result<Vec<_>>>()?
            }
        };
        for r in loaded {
            if !runs.iter().any(|x| x.id == r.id) {
                runs.push(r);
            }
        }
    }
    let (mode, groups) = group(runs, any_sweep);
    if groups.len() < 2 {
        let what = match groups.first() {
            Some(g) if g.len() > 1 => format!("all {} runs share one configuration; name a second run or sweep", g.len()),
            _ => "give at least two runs, or a sweep with two configurations".into(),
        };
        return Err(CompareError::TooFew(what));
    }
    let (delong, rows) = if mode == Mode::Runs && opts.delong { delong_tests(store, &groups)? } else { (BTreeMap::new(), None) };
    let mut c = build(mode, &groups, &delong)?;
    c.rows = rows;
    notes.append(&mut c.notes);
    c.notes = notes;
    Ok(c)
}

/// Columns: seeds mode when a sweep is named or runs repeat a configuration
/// (and there are at least two configurations); else one run per column.
pub fn group(runs: Vec<RunData>, any_sweep: bool) -> (Mode, Vec<Vec<RunData>>) {
    let n_runs = runs.len();
    let groups = by_configuration(runs.clone());
    if any_sweep || (groups.len() >= 2 && groups.len() < n_runs) {
        (Mode::Seeds, groups)
    } else {
        (Mode::Runs, runs.into_iter().map(|r| vec![r]).collect())
    }
}

fn column_key(i: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if i < letters.len() {
        (letters[i] as char).to_string()
    } else {
        format!("C{}", i + 1)
    }
}

fn column(i: usize, mode: Mode, g: &[RunData]) -> Column {
    let first = &g[0];
    let label = match mode {
        Mode::Runs => first.name.clone(),
        // The run name without its seed: model-strategy[-override=value...].
        Mode::Seeds => configuration_label(&first.name, first.seed),
    };
    let mut seeds: Vec<i64> = g.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    Column {
        key: column_key(i),
        label,
        model: first.model.clone(),
        strategy: first.strategy.clone(),
        config_hash: first.config_hash.clone(),
        seeds,
        runs: g.iter().map(|r| ColumnRun { id: r.id.clone(), name: r.name.clone(), seed: r.seed, sweep_id: r.sweep_id.clone() }).collect(),
    }
}

/// Params whose values differ across columns (the seed only in runs mode).
pub fn params_diff(mode: Mode, groups: &[Vec<RunData>]) -> Vec<ParamDiff> {
    let keys: BTreeSet<&String> = groups.iter().flat_map(|g| g[0].params.keys()).collect();
    keys.into_iter()
        .filter(|k| !(mode == Mode::Seeds && k.as_str() == "seed"))
        .filter_map(|k| {
            let values: Vec<Option<String>> = groups.iter().map(|g| g[0].params.get(k).cloned()).collect();
            values.iter().any(|v| v != &values[0]).then(|| ParamDiff { key: k.clone(), values })
        })
        .collect()
}

/// The CI of `other - base` over seeds: paired when both have the same,
/// distinct seeds (n >= 2), Welch when both have n >= 2, else none.
pub fn seeds_ci(base: &[SeedValue], other: &[SeedValue]) -> std::result::Result<Option<DiffCi>, StatsError> {
    let seeds = |v: &[SeedValue]| v.iter().map(|x| x.seed).collect::<BTreeSet<i64>>();
    let (sa, sb) = (seeds(base), seeds(other));
    let distinct = sa.len() == base.len() && sb.len() == other.len();
    if distinct && sa == sb && base.len() >= 2 {
        let by_seed = |v: &[SeedValue]| {
            let mut v = v.to_vec();
            v.sort_by_key(|x| x.seed);
            v.into_iter().map(|x| x.value).collect::<Vec<f64>>()
        };
        return paired_diff_ci(&by_seed(base), &by_seed(other), LEVEL).map(Some);
    }
    if base.len() >= 2 && other.len() >= 2 {
        let vals = |v: &[SeedValue]| v.iter().map(|x| x.value).collect::<Vec<f64>>();
        return welch_diff_ci(&vals(base), &vals(other), LEVEL).map(Some);
    }
    Ok(None)
}

/// Builds the comparison from grouped runs and the DeLong tests of runs
/// mode (keyed by column index and task).
pub fn build(mode: Mode, groups: &[Vec<RunData>], delong: &BTreeMap<(usize, String), DelongTest>) -> Result<Comparison> {
    let columns: Vec<Column> = groups.iter().enumerate().map(|(i, g)| column(i, mode, g)).collect();
    let mut tasks: Vec<String> = Vec::new();
    for g in groups {
        for r in g {
            for (task, metric) in r.test.keys() {
                if METRICS.iter().any(|(m, _)| m == metric) && !tasks.contains(task) {
                    tasks.push(task.clone());
                }
            }
        }
    }
    let mut notes = Vec::new();
    let mut out_tasks = Vec::new();
    for task in &tasks {
        let mut metrics = Vec::new();
        let mut verdicts = vec![None; groups.len()];
        for &(metric, higher_is_better) in METRICS {
            let values: Vec<Vec<SeedValue>> = groups
                .iter()
                .map(|g| {
                    g.iter()
                        .filter_map(|r| {
                            r.test.get(&(task.clone(), metric.to_string())).map(|&value| SeedValue {
                                run_id: r.id.clone(),
                                seed: r.seed,
                                value,
                            })
                        })
                        .collect()
                })
                .collect();
            if values.iter().all(|v| v.is_empty()) {
                continue;
            }
            let stats: Vec<Option<Summary>> = values.iter().map(|v| summarize(&v.iter().map(|x| x.value).collect::<Vec<_>>())).collect();
            let mut deltas = vec![None];
            for (i, v) in values.iter().enumerate().skip(1) {
                let (Some(base), Some(cand)) = (stats[0], stats[i]) else {
                    deltas.push(None);
                    continue;
                };
                let estimate = cand.mean - base.mean;
                let (ci, test) = match mode {
                    Mode::Runs => match (metric, delong.get(&(i, task.clone()))) {
                        ("auc", Some(t)) => {
                            let ci = t.ci(LEVEL).map_err(|source| CompareError::Delong {
                                id: columns[i].runs[0].id.clone(),
                                baseline: columns[0].runs[0].id.clone(),
                                task: task.clone(),
                                cause: source,
                            })?;
                            (Some(ci), Some(*t))
                        }
                        _ => (None, None),
                    },
                    Mode::Seeds => {
                        let ci = seeds_ci(&values[0], v).map_err(|source| CompareError::Stats {
                            what: format!("task {task}, {metric}, column {} vs A", columns[i].key),
                            cause: source,
                        })?;
                        if ci.is_none() && metric == "auc" {
                            notes.push(format!(
                                "task {task}: {} vs A has n = {} and {}: no CI without two seeds on each side",
                                columns[i].key, cand.n, base.n
                            ));
                        }
                        (ci, None)
                    }
                };
                // DeLong's estimate is the AUC difference on the same rows: equal to `estimate`.
                let verdict = ci.as_ref().map(|c| Verdict::from_ci(c, higher_is_better));
                if metric == "auc" {
                    verdicts[i] = verdict;
                }
                deltas.push(Some(Delta { estimate, ci, verdict, delong: test }));
            }
            metrics.push(MetricComparison { metric: metric.into(), higher_is_better, stats, values, deltas });
        }
        out_tasks.push(TaskComparison { task: task.clone(), verdicts, metrics });
    }
    Ok(Comparison { mode, level: LEVEL, params: params_diff(mode, groups), columns, tasks: out_tasks, rows: None, notes })
}

/// Reads a run's predictions and checks that they are the run's: every
/// task with a stored test AUC has a column whose AUC matches it.
fn load_predictions(store: &Store, r: &RunData) -> Result<PredictionFile> {
    let err = |message: String| CompareError::Predictions { id: r.id.clone(), message };
    let file = r.predictions_path.as_deref().ok_or_else(|| err("no saved test predictions; pass --no-delong".into()))?;
    let path = store.artifact_dir().join(file);
    let p = PredictionFile::read(&path)?;
    for ((task, metric), &stored) in &r.test {
        if metric != "auc" {
            continue;
        }
        let labels = task_labels(&p, task).ok_or_else(|| err(format!("{}: no labels for task {task}", path.display())))?;
        let scores = task_scores(&p, task).ok_or_else(|| err(format!("{}: no score column for task {task}", path.display())))?;
        let recomputed = auc(&labels, scores);
        if recomputed.is_none_or(|a| (a - stored).abs() > AUC_MATCH_TOL) {
            return Err(err(format!(
                "{} does not match the run: task {task} AUC {} from the file vs {stored:.6} recorded",
                path.display(),
                recomputed.map_or("undefined".into(), |a| format!("{a:.6}"))
            )));
        }
    }
    Ok(p)
}

fn task_scores<'a>(p: &'a PredictionFile, task: &str) -> Option<&'a [f32]> {
    p.columns.iter().find(|(n, _)| n == task).map(|(_, c)| c.as_slice())
}

fn task_labels(p: &PredictionFile, task: &str) -> Option<Vec<f32>> {
    let t = p.tasks.iter().position(|x| x == task)?;
    let nt = p.tasks.len();
    Some((0..p.rows).map(|r| p.labels[r * nt + t]).collect())
}

type DelongTests = (BTreeMap<(usize, String), DelongTest>, Option<RowsInfo>);

/// DeLong's test of each run against the first, per task with an AUC.
fn delong_tests(store: &Store, groups: &[Vec<RunData>]) -> Result<DelongTests> {
    let base = &groups[0][0];
    let base_pred = load_predictions(store, base)?;
    let digest = base_pred.rows_digest();
    let mut out = BTreeMap::new();
    for (i, g) in groups.iter().enumerate().skip(1) {
        let r = &g[0];
        let pred = load_predictions(store, r)?;
        let d = pred.rows_digest();
        if d != digest {
            return Err(CompareError::RowsDiffer { a: base.id.clone(), b: r.id.clone(), digest_a: digest, digest_b: d });
        }
        for (task, metric) in r.test.keys() {
            if metric != "auc" || !base.test.contains_key(&(task.clone(), "auc".into())) {
                continue;
            }
            // load_predictions checked both files for this task's labels and scores.
            let missing = || CompareError::Predictions { id: r.id.clone(), message: format!("no scores for task {task}") };
            let labels = task_labels(&base_pred, task).ok_or_else(missing)?;
            let (a, b) = (task_scores(&pred, task).ok_or_else(missing)?, task_scores(&base_pred, task).ok_or_else(missing)?);
            let t = delong_test(&labels, a, b).map_err(|source| CompareError::Delong {
                id: r.id.clone(),
                baseline: base.id.clone(),
                task: task.clone(),
                cause: source,
            })?;
            out.insert((i, task.clone()), t);
        }
    }
    Ok((out, Some(RowsInfo { digest, count: base_pred.rows })))
}

#[cfg(test)]
mod tests;
