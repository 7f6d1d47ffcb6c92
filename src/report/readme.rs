//! The README results table, regenerated from the store between
//! `<!-- bench:results:begin -->` and `<!-- bench:results:end -->`, in the
//! seed's shape (Model | Paper | best AUC per task), with the strategy, the
//! number of seeds and mean ± std, and the dataset named. Idempotent.

use std::collections::BTreeMap;
use std::path::Path;

use super::{tasks_of, test_aucs, ReportError};
use crate::models::ModelKind;
use crate::stats::{summarize, Summary};
use crate::store::{RunRow, RunStatus, Store, SweepRow};

pub const BEGIN: &str = "<!-- bench:results:begin -->";
pub const END: &str = "<!-- bench:results:end -->";

fn paper_of(model: &str) -> (String, String) {
    ModelKind::ALL
        .iter()
        .find(|k| k.name() == model)
        .map(|k| {
            let (n, p) = k.paper();
            (n.to_string(), p.to_string())
        })
        .unwrap_or_else(|| (model.to_string(), String::new()))
}

/// Picks the sweep: the given id (prefix) or the latest with finished runs.
pub fn choose_sweep(store: &Store, wanted: Option<&str>) -> Result<(SweepRow, Vec<RunRow>), ReportError> {
    let sweeps = store.list_sweeps()?;
    for s in sweeps {
        if let Some(w) = wanted {
            if !s.id.starts_with(w) && s.name != w {
                continue;
            }
        }
        let runs: Vec<RunRow> = store.sweep_runs(&s.id)?.into_iter().filter(|r| r.status == RunStatus::Finished).collect();
        if !runs.is_empty() || wanted.is_some() {
            return Ok((s, runs));
        }
    }
    Err(ReportError::Invalid(match wanted {
        Some(w) => format!("no sweep matches `{w}` (see `bench list`)"),
        None => "no sweep has finished runs yet: run `bench run experiments/demo.toml` first".into(),
    }))
}

/// The Markdown table (without markers) for a sweep's finished runs.
pub fn table(store: &Store, sweep: &SweepRow, runs: &[RunRow]) -> Result<String, ReportError> {
    let tasks = tasks_of(store, runs)?;
    // (model, strategy) -> per task the AUCs over seeds.
    let mut groups: BTreeMap<(String, String), Vec<Vec<Option<f64>>>> = BTreeMap::new();
    let mut datasets = Vec::new();
    let mut last = String::new();
    for r in runs {
        groups.entry((r.model.clone(), r.strategy.clone())).or_default().push(test_aucs(store, r, &tasks)?);
        if !datasets.contains(&r.dataset_name) {
            datasets.push(r.dataset_name.clone());
        }
        if let Some(f) = &r.finished_at {
            if *f > last {
                last = f.clone();
            }
        }
    }
    // Per model, the strategy with the best mean (over tasks) of the mean test AUC.
    let mut best: BTreeMap<String, (String, Vec<Option<Summary>>, f64)> = BTreeMap::new();
    for ((model, strategy), rows) in &groups {
        let per_task: Vec<Option<Summary>> = (0..tasks.len())
            .map(|t| summarize(&rows.iter().filter_map(|r| r[t]).collect::<Vec<_>>()))
            .collect();
        let defined: Vec<f64> = per_task.iter().flatten().map(|s| s.mean).collect();
        let score = if defined.is_empty() { f64::NEG_INFINITY } else { defined.iter().sum::<f64>() / defined.len() as f64 };
        if best.get(model).is_none_or(|b| score > b.2) {
            best.insert(model.clone(), (strategy.clone(), per_task, score));
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "Test ROC-AUC on **{}**, sweep `{}` (`{}`), best strategy per model by mean test AUC; mean ± std over seeds. Last run finished {}.\n\n",
        datasets.join(", "),
        sweep.name,
        sweep.id,
        if last.is_empty() { "–" } else { &last }
    ));
    out.push_str("| Model | Paper | Strategy | Seeds |");
    for t in &tasks {
        out.push_str(&format!(" Best_{t}_AUC |"));
    }
    out.push_str("\n|---|---|---|---|");
    for _ in &tasks {
        out.push_str("---|");
    }
    out.push('\n');
    for (model, (strategy, per_task, _)) in &best {
        let (name, paper) = paper_of(model);
        let n = groups.get(&(model.clone(), strategy.clone())).map_or(0, |g| g.len());
        let link = if paper.is_empty() { "–".to_string() } else { format!("[paper]({paper})") };
        out.push_str(&format!("| {name} | {link} | {strategy} | {n} |"));
        for s in per_task {
            out.push_str(&format!(" {} |", s.map_or("n/a".into(), |s| s.display(4))));
        }
        out.push('\n');
    }
    Ok(out)
}

/// Replaces the text between the markers; the markers must both be present, in order.
pub fn splice(readme: &str, table: &str) -> Result<String, ReportError> {
    let b = readme.find(BEGIN).ok_or_else(|| ReportError::Invalid(format!("README has no `{BEGIN}` marker")))?;
    let e = readme.find(END).ok_or_else(|| ReportError::Invalid(format!("README has no `{END}` marker")))?;
    if e < b {
        return Err(ReportError::Invalid("README markers are in the wrong order".into()));
    }
    Ok(format!("{}{BEGIN}\n{}{}", &readme[..b], table, &readme[e..]))
}

/// Rewrites the table in a README file; returns whether the file changed.
pub fn update(store: &Store, readme: &Path, sweep: Option<&str>) -> Result<bool, ReportError> {
    let (s, runs) = choose_sweep(store, sweep)?;
    let t = table(store, &s, &runs)?;
    let old = std::fs::read_to_string(readme).map_err(|source| ReportError::Io { path: readme.to_path_buf(), source })?;
    let new = splice(&old, &t)?;
    if new != old {
        std::fs::write(readme, &new).map_err(|source| ReportError::Io { path: readme.to_path_buf(), source })?;
    }
    Ok(new != old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_between_markers_idempotently() {
        let r = format!("# t\n{BEGIN}\nold\n{END}\nafter\n");
        let once = splice(&r, "new\n").unwrap();
        assert_eq!(once, format!("# t\n{BEGIN}\nnew\n{END}\nafter\n"));
        assert_eq!(splice(&once, "new\n").unwrap(), once);
        assert!(splice("no markers", "x").is_err());
    }
}
