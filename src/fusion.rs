//! Model fusion (the seed's 多任务模型融合): an ensemble of finished runs made
//! by averaging their saved test predictions — a weighted mean of
//! probabilities, or a weighted mean of normalised ranks — recorded as a run
//! of its own so that it appears in reports and compares like any other.
//! Runs evaluated on different test rows are refused.

use serde::Serialize;
use thiserror::Error;

use crate::config::hash_hex;
use crate::data::SplitData;
use crate::store::artifacts::PredictionFile;
use crate::store::{FinishInfo, NewRun, RunRow, Store, StoreError};
use crate::train::evaluate::{task_metrics, Predictions};
use crate::train::TrainResult;

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
    if run.status != "finished" {
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
    pub result: TrainResult,
}

/// Fuses finished runs (ids or prefixes) and records the ensemble as a run.
pub fn fuse(store: &Store, ids: &[String], weights: Option<&[f64]>, mode: FusionMode) -> Result<Fused, FusionError> {
    if ids.len() < 2 {
        return Err(FusionError::Invalid("fusion needs at least two runs".into()));
    }
    let runs = ids.iter().map(|i| store.find_run(i)).collect::<Result<Vec<_>, _>>()?;
    let weights: Vec<f64> = match weights {
        Some(w) if w.len() != runs.len() => {
            return Err(FusionError::Invalid(format!("{} weights given for {} runs", w.len(), runs.len())));
        }
        Some(w) if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 => {
            return Err(FusionError::Invalid(format!("weights must be non-negative with a positive sum, got {w:?}")));
        }
        Some(w) => w.to_vec(),
        None => vec![1.0; runs.len()],
    };
    let files = runs.iter().map(|r| load_member(store, r)).collect::<Result<Vec<_>, _>>()?;
    let (first, first_run) = (&files[0], &runs[0]);
    let digest = first.rows_digest();
    for (f, r) in files.iter().zip(&runs).skip(1) {
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
    let nt = first.tasks.len();
    let fused_cols: Vec<Vec<f32>> =
        (0..nt).map(|t| combine(&files.iter().map(|f| f.columns[t].1.clone()).collect::<Vec<_>>(), &weights, mode)).collect();
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
    let members: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let mode_name = match mode {
        FusionMode::Mean => "mean",
        FusionMode::Rank => "rank",
    };
    let config = serde_json::json!({ "fusion": { "members": members, "weights": weights, "mode": mode_name } });
    let config_json = config.to_string();
    let config_hash = hash_hex(config_json.as_bytes());
    let cell_key = hash_hex(format!("{config_hash}|fusion|{digest}").as_bytes());
    if let Some(done) = store.finished_run_for_cell(&cell_key)? {
        return Err(FusionError::Invalid(format!("this fusion is already recorded as run {}", done.id)));
    }
    let run_id = crate::runner::new_run_id(&cell_key);
    let name = format!("fusion-{mode_name}({})", runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join("+"));
    let same_sweep = runs.iter().all(|r| r.sweep_id == first_run.sweep_id);
    let sweep_id = if same_sweep { first_run.sweep_id.clone() } else { "fusions".to_string() };
    if !same_sweep {
        store.upsert_sweep(&sweep_id, "fusions", "(bench fuse)", "")?;
    }
    let params: Vec<(String, String)> = vec![
        ("fusion.members".into(), members.join(",")),
        ("fusion.weights".into(), weights.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(",")),
        ("fusion.mode".into(), mode_name.into()),
    ];
    let env_json = serde_json::to_string(&crate::env::capture("cpu")).unwrap_or_default();
    let claimed = store.start_run(&NewRun {
        id: &run_id,
        sweep_id: &sweep_id,
        name: &name,
        model: "fusion",
        strategy: mode_name,
        seed: 0,
        config_hash: &config_hash,
        cell_key: &cell_key,
        dataset_name: &first_run.dataset_name,
        dataset_digest: &first_run.dataset_digest,
        config_json: &config_json,
        env_json: &env_json,
        params: &params,
        pid: std::process::id(),
        host: &crate::env::hostname(),
        data_seconds: 0.0,
    })?;
    if !claimed {
        return Err(FusionError::Invalid("this fusion is being recorded by another process".into()));
    }
    let file = PredictionFile {
        rows: first.rows,
        tasks: first.tasks.clone(),
        users: first.users.clone(),
        labels: first.labels.clone(),
        columns: first.tasks.iter().cloned().zip(fused_cols).collect(),
    };
    let path = store.artifact_dir().join(format!("{run_id}.bin"));
    let result = TrainResult {
        best_epoch: 0,
        epochs_run: 0,
        n_params: 0,
        valid: vec![],
        valid_extra: vec![],
        test_extra: crate::train::evaluate::split_metrics(&test),
        test,
        test_predictions: pred,
        total_train_seconds: 0.0,
        test_seconds: 0.0,
    };
    if let Err(e) = file.write(&path) {
        store.fail_run(&run_id, "failed", &e.to_string())?;
        return Err(e.into());
    }
    store.finish_run(&run_id, &result, Some(&format!("{run_id}.bin")), FinishInfo::default())?;
    // After the sweep's own cells, so that it shows in its reports.
    store.add_sweep_cell(&sweep_id, &cell_key, 1_000_000 + store.sweep_runs(&sweep_id)?.len())?;
    Ok(Fused { run_id, name, members, result })
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
