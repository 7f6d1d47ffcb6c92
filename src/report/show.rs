//! `bench show RUN`: one run as text for the terminal (identity, status,
//! provenance, resources, parameters, epochs, validation curves, final
//! metrics) or as JSON (the stored rows).

use std::fmt::Write as _;

use serde_json::Value;

use super::ReportError;
use crate::store::{CurveRow, EpochRow, MetricRow, ParamRow, RunRow, Store};

/// The run `prefix` names, as JSON: its row, parameters, metrics and epochs.
pub fn render_json(store: &Store, prefix: &str) -> Result<String, ReportError> {
    let run = store.find_run(prefix)?;
    let v = serde_json::json!({
        "run": run,
        "params": store.params(&run.id)?,
        "metrics": store.metrics(&run.id)?,
        "epochs": store.epochs(&run.id)?,
    });
    serde_json::to_string_pretty(&v).map_err(|e| ReportError::Invalid(format!("run {} as JSON: {e}", run.id)))
}

/// The run `prefix` names, as text.
pub fn render_text(store: &Store, prefix: &str) -> Result<String, ReportError> {
    let run = store.find_run(prefix)?;
    let mut s = header(&run);
    params(&mut s, &store.params(&run.id)?);
    epochs(&mut s, &run, &store.epochs(&run.id)?);
    curves(&mut s, &run, &store.curves(&run.id)?);
    metrics(&mut s, &store.metrics(&run.id)?);
    Ok(s)
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// A commit, short, with `(dirty)` when the dirty flag is set.
fn commit(env: &Value, commit_key: &str, dirty_key: &str) -> String {
    let c = env.get(commit_key).filter(|v| !v.is_null()).map(text);
    let dirty = env.get(dirty_key).and_then(Value::as_bool) == Some(true);
    match c {
        Some(c) if c.len() == 40 => format!("{}{}", &c[..12], if dirty { " (dirty)" } else { "" }),
        Some(c) => c,
        None => "–".into(),
    }
}

/// Which mtlbench build recorded the run and which commit of the user's
/// repository it ran in (`git_commit`: how older runs recorded the latter).
fn provenance(env: &Value) -> String {
    let version = env.get("mtlbench").map(text).unwrap_or_else(|| "–".into());
    let build = commit(env, "mtlbench_commit", "mtlbench_dirty");
    let workdir = if env.get("workdir_git_commit").is_some() {
        commit(env, "workdir_git_commit", "workdir_git_dirty")
    } else {
        commit(env, "git_commit", "git_dirty")
    };
    format!("mtlbench {version} (build {build}), working directory at commit {workdir}")
}

fn header(run: &RunRow) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "run {}  {}", run.id, run.name);
    let _ = writeln!(s, "  status     {}{}", run.status, run.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default());
    let _ = writeln!(s, "  sweep      {}", run.sweep_id);
    let _ = writeln!(s, "  model      {}   strategy {}   seed {}", run.model, run.strategy, run.seed);
    let _ = writeln!(s, "  dataset    {} (digest {})", run.dataset_name, run.dataset_digest);
    let _ = writeln!(s, "  config     {}   cell {}", run.config_hash, run.cell_key);
    let _ = writeln!(s, "  times      created {}  finished {}", run.created_at, run.finished_at.as_deref().unwrap_or("–"));
    if let Some(n) = run.n_params {
        let _ = writeln!(s, "  params     {n} trainable");
    }
    if let (Some(d), Some(rss), Some(sps)) = (run.data_seconds, run.peak_rss_mib, run.samples_per_second) {
        let _ = writeln!(s, "  resources  data {d:.1}s, {sps:.0} samples/s, peak RSS {rss:.0} MiB");
    }
    if let Some(env) = run.env_json.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()) {
        let _ = writeln!(s, "  provenance {}", provenance(&env));
        if let Some(o) = env.as_object() {
            let parts: Vec<String> = o.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
            let _ = writeln!(s, "  env        {}", parts.join(", "));
        }
    }
    s
}

fn params(s: &mut String, params: &[ParamRow]) {
    let _ = writeln!(s, "\nparameters:");
    for p in params {
        let _ = writeln!(s, "  {} = {}", p.key, p.value);
    }
}

fn epochs(s: &mut String, run: &RunRow, epochs: &[EpochRow]) {
    let _ = writeln!(s, "\nepochs (best {}):", run.best_epoch.map_or("–".into(), |e| e.to_string()));
    for e in epochs {
        let _ = writeln!(
            s,
            "  {:>3}: {} steps, valid select {:.4}, {:.1}s train, {:.0} samples/s",
            e.epoch, e.steps, e.select_value, e.train_seconds, e.samples_per_second
        );
    }
}

fn curves(s: &mut String, run: &RunRow, curves: &[CurveRow]) {
    let valid_auc = |c: &&CurveRow| c.split == "valid" && c.metric == "auc";
    let mut tasks: Vec<&str> = curves.iter().filter(valid_auc).map(|c| c.task.as_str()).collect();
    tasks.dedup();
    if tasks.is_empty() {
        return;
    }
    let _ = writeln!(s, "\nvalidation AUC by epoch (* = selected):");
    for t in tasks {
        let pts: Vec<String> = curves
            .iter()
            .filter(valid_auc)
            .filter(|c| c.task == t)
            .map(|c| format!("{:.4}{}", c.value, if Some(c.epoch) == run.best_epoch { "*" } else { "" }))
            .collect();
        let _ = writeln!(s, "  {t:<16} {}", pts.join("  "));
    }
}

fn metrics(s: &mut String, metrics: &[MetricRow]) {
    let _ = writeln!(s, "\nfinal metrics:");
    let _ = writeln!(s, "  {:<6} {:<16} {:<14} value", "split", "task", "metric");
    for m in metrics {
        let _ = writeln!(s, "  {:<6} {:<16} {:<14} {:.6}", m.split, m.task, m.metric, m.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_names_both_commits_and_reads_older_runs() {
        let env = serde_json::json!({
            "mtlbench": "0.1.0",
            "mtlbench_commit": "0123456789abcdef0123456789abcdef01234567",
            "mtlbench_dirty": true,
            "workdir_git_commit": null,
            "workdir_git_dirty": null,
        });
        assert_eq!(provenance(&env), "mtlbench 0.1.0 (build 0123456789ab (dirty)), working directory at commit –");
        let old = serde_json::json!({ "mtlbench": "0.1.0", "git_commit": "fedcba9876543210fedcba9876543210fedcba98", "git_dirty": false });
        assert_eq!(provenance(&old), "mtlbench 0.1.0 (build –), working directory at commit fedcba987654");
        let unknown = serde_json::json!({ "mtlbench": "0.1.0", "mtlbench_commit": "unknown", "workdir_git_commit": "unknown" });
        assert_eq!(provenance(&unknown), "mtlbench 0.1.0 (build unknown), working directory at commit unknown");
    }
}
