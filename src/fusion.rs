//! Model fusion (the seed's 多任务模型融合): an ensemble of finished runs made
//! by averaging their saved test predictions — a weighted mean of
//! probabilities, or a weighted mean of normalised ranks — recorded as a run
//! of its own so that it appears in reports and compares like any other.
//! Runs evaluated on different test rows are refused. The ensemble is
//! recorded through the runner's recording function, like a trained run.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::config::hash_hex;
use crate::data::SplitData;
use crate::run::{new_run_id, record};
use crate::store::artifacts::PredictionFile;
use crate::store::{ClaimToken, IfFinished, NewRun, RunOutcome, RunRow, RunStatus, Split, Store, StoreError};
use crate::train::evaluate::{split_metrics, task_metrics, Predictions, TaskMetrics};

#[derive(Debug, Error)]
pub enum FusionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

/// How the members' scores are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FusionMode {
    /// Weighted mean of the predicted probabilities.
    Mean,
    /// Weighted mean of per-run normalised ranks (scale-free; no log loss).
    Rank,
}

/// Normalised average ranks in (0, 1]: ties share their mean rank.
pub fn normalised_ranks(scores: &[f32]) -> Vec<f32> {
    let n = scores.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut out = vec![0f32; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && scores[idx[j]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + 1 + j) as f64 / 2.0 / n as f64;
        for &k in &idx[i..j] {
            out[k] = r as f32;
        }
        i = j;
    }
    out
}

/// Combines member columns with normalised weights.
pub fn combine(columns: &[Vec<f32>], weights: &[f64], mode: FusionMode) -> Vec<f32> {
    let total: f64 = weights.iter().sum();
    let rows = columns.first().map_or(0, |c| c.len());
    let prepared: Vec<Vec<f32>> = match mode {
        FusionMode::Mean => columns.to_vec(),
        FusionMode::Rank => columns.iter().map(|c| normalised_ranks(c)).collect(),
    };
    (0..rows)
        .map(|r| (prepared.iter().zip(weights).map(|(c, w)| c[r] as f64 * w).sum::<f64>() / total) as f32)
        .collect()
}

fn load_member(store: &Store, run: &RunRow) -> Result<PredictionFile, FusionError> {
    if run.status != RunStatus::Finished {
        return Err(FusionError::Invalid(format!("run {} ({}) is {}, not finished", run.id, run.name, run.status)));
    }
    let file = run
        .predictions_path
        .as_deref()
        .ok_or_else(|| FusionError::Invalid(format!("run {} has no saved test predictions", run.id)))?;
    let path = store.artifact_dir().join(file);
    let p = PredictionFile::read(&path)?;
    if p.tasks.is_empty() || p.columns.len() < p.tasks.len() {
        return Err(FusionError::Invalid(format!("{}: predictions of run {} lack task columns", path.display(), run.id)));
    }
    Ok(p)
}

/// The outcome of `fuse`.
#[derive(Debug, Clone)]
pub struct Fused {
    pub run_id: String,
    pub name: String,
    pub members: Vec<String>,
    /// The ensemble's test metrics per task.
    pub test: Vec<TaskMetrics>,
}

impl fmt::Display for Fused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fused {} runs into run {} ({})", self.members.len(), self.run_id, self.name)?;
        let show = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.4}"));
        for m in &self.test {
            writeln!(f, "  {:<16} test AUC {}  uAUC {}  log loss {}", m.task, show(m.auc), show(m.uauc), show(m.logloss))?;
        }
        Ok(())
    }
}

impl FusionMode {
    pub fn name(self) -> &'static str {
        match self {
            FusionMode::Mean => "mean",
            FusionMode::Rank => "rank",
        }
    }
}

/// The member weights: as given (checked), or equal.
fn member_weights(weights: Option<&[f64]>, runs: usize) -> Result<Vec<f64>, FusionError> {
    match weights {
        Some(w) if w.len() != runs => Err(FusionError::Invalid(format!("{} weights given for {runs} runs", w.len()))),
        Some(w) if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 => {
            Err(FusionError::Invalid(format!("weights must be non-negative with a positive sum, got {w:?}")))
        }
        Some(w) => Ok(w.to_vec()),
        None => Ok(vec![1.0; runs]),
    }
}

/// Refuses members evaluated on other rows or predicting other tasks than the first.
fn check_same_rows(runs: &[RunRow], files: &[PredictionFile]) -> Result<(), FusionError> {
    let (first, first_run) = (&files[0], &runs[0]);
    let digest = first.rows_digest();
    for (f, r) in files.iter().zip(runs).skip(1) {
        if f.rows_digest() != digest || f.rows != first.rows {
            return Err(FusionError::Invalid(format!(
                "runs {} and {} were evaluated on different test rows ({} vs {} rows); fusion needs the same rows",
                first_run.id, r.id, first.rows, f.rows
            )));
        }
        if f.tasks != first.tasks {
            return Err(FusionError::Invalid(format!(
                "runs {} and {} predict different tasks ({:?} vs {:?})",
                first_run.id, r.id, first.tasks, f.tasks
            )));
        }
    }
    Ok(())
}

/// The ensemble's prediction file and its test metrics.
fn fused_predictions(files: &[PredictionFile], weights: &[f64], mode: FusionMode) -> (PredictionFile, Vec<TaskMetrics>) {
    let first = &files[0];
    let nt = first.tasks.len();
    let fused_cols: Vec<Vec<f32>> =
        (0..nt).map(|t| combine(&files.iter().map(|f| f.columns[t].1.clone()).collect::<Vec<_>>(), weights, mode)).collect();
    let mut probs = vec![0f32; first.rows * nt];
    for (t, col) in fused_cols.iter().enumerate() {
        for (r, v) in col.iter().enumerate() {
            probs[r * nt + t] = *v;
        }
    }
    let pred = Predictions { rows: first.rows, tasks: first.tasks.clone(), probs, extra: vec![], gates: vec![] };
    let split = SplitData { rows: first.rows, labels: first.labels.clone(), users: first.users.clone(), ..Default::default() };
    let mut test = task_metrics(&pred, &split);
    if mode == FusionMode::Rank {
        // Ranks are not probabilities: a log loss of them would mislead.
        for m in &mut test {
            m.logloss = None;
        }
    }
    (record::predictions_file(&pred, &split), test)
}

/// Fuses finished runs (ids or prefixes) and records the ensemble as a run.
pub fn fuse(store: &Store, ids: &[String], weights: Option<&[f64]>, mode: FusionMode) -> Result<Fused, FusionError> {
    if ids.len() < 2 {
        return Err(FusionError::Invalid("fusion needs at least two runs".into()));
    }
    let runs = ids.iter().map(|i| store.find_run(i)).collect::<Result<Vec<_>, _>>()?;
    let weights = member_weights(weights, runs.len())?;
    let files = runs.iter().map(|r| load_member(store, r)).collect::<Result<Vec<_>, _>>()?;
    check_same_rows(&runs, &files)?;
    let (file, test) = fused_predictions(&files, &weights, mode);
    let members: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let (claim, name, cell_key) = claim_fusion(store, &runs, &weights, mode, &file.rows_digest())?;
    let mut metrics = record::task_values(Split::Test, &test);
    metrics.extend(record::named_values(Split::Test, &split_metrics(&test)));
    let outcome = RunOutcome { metrics, ..Default::default() };
    if let record::Finished::Superseded { reason } = record::finish(store, &claim, &outcome, &file)? {
        return Err(FusionError::Invalid(format!("the fusion was not recorded: {reason}")));
    }
    let run_id = claim.run_id;
    // After the sweep's own cells, so that it shows in its reports.
    let sweep_id = fusion_sweep(&runs);
    store.add_sweep_cell(&sweep_id, &cell_key, 1_000_000 + store.sweep_runs(&sweep_id)?.len())?;
    Ok(Fused { run_id, name, members, test })
}

/// The members' sweep when they share one, else the `fusions` sweep.
fn fusion_sweep(runs: &[RunRow]) -> String {
    let first = &runs[0].sweep_id;
    if runs.iter().all(|r| &r.sweep_id == first) {
        first.clone()
    } else {
        "fusions".to_string()
    }
}

/// Registers the fusion as a running run (its cell: members, weights, mode
/// and rows); refused when the same fusion is already recorded. Returns
/// the run's claim, name and cell key.
fn claim_fusion(store: &Store, runs: &[RunRow], weights: &[f64], mode: FusionMode, digest: &str) -> Result<(ClaimToken, String, String), FusionError> {
    let members: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let config = serde_json::json!({ "fusion": { "members": members, "weights": weights, "mode": mode.name() } });
    let config_json = config.to_string();
    let config_hash = hash_hex(config_json.as_bytes());
    let cell_key = hash_hex(format!("{config_hash}|fusion|{digest}").as_bytes());
    if let Some(done) = store.finished_run_for_cell(&cell_key)? {
        return Err(FusionError::Invalid(format!("this fusion is already recorded as run {}", done.id)));
    }
    let run_id = new_run_id(&cell_key);
    let name = format!("fusion-{}({})", mode.name(), runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join("+"));
    let sweep_id = fusion_sweep(runs);
    if sweep_id != runs[0].sweep_id {
        store.upsert_sweep(&sweep_id, "fusions", "(bench fuse)", "")?;
    }
    let params: Vec<(String, String)> = vec![
        ("fusion.members".into(), members.join(",")),
        ("fusion.weights".into(), weights.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(",")),
        ("fusion.mode".into(), mode.name().into()),
    ];
    let env_json = serde_json::to_string(&crate::env::capture("cpu")).unwrap_or_default();
    let pid = std::process::id();
    let claimed = store.start_run(
        &NewRun {
        id: &run_id,
        sweep_id: &sweep_id,
        name: &name,
        model: "fusion",
        strategy: mode.name(),
        seed: 0,
        config_hash: &config_hash,
        cell_key: &cell_key,
        dataset_name: &runs[0].dataset_name,
        dataset_digest: &runs[0].dataset_digest,
        config_json: &config_json,
        env_json: &env_json,
        params: &params,
        pid,
        pid_start: crate::interrupt::process_start(pid as i64),
        host: &crate::env::hostname(),
        data_seconds: 0.0,
    },
        IfFinished::Refuse,
    )?;
    let Some(claim) = claimed else {
        return Err(FusionError::Invalid("this fusion is being recorded by another process".into()));
    };
    Ok((claim, name, cell_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_combination_by_hand() {
        assert_eq!(normalised_ranks(&[0.3, 0.1, 0.3, 0.9]), vec![0.625, 0.25, 0.625, 1.0]);
        let a = vec![0.2, 0.8];
        let b = vec![0.6, 0.4];
        let m = combine(&[a.clone(), b.clone()], &[3.0, 1.0], FusionMode::Mean);
        assert!((m[0] - 0.3).abs() < 1e-6 && (m[1] - 0.7).abs() < 1e-6);
        let r = combine(&[a, b], &[1.0, 1.0], FusionMode::Rank);
        assert_eq!(r, vec![0.75, 0.75]);
    }
}
