//! `bench leaderboard`: the sweeps to rank (named, or the latest with
//! finished runs), the [`Leaderboard`] computed by `verdict` from their
//! store rows, and its renderings as text, Markdown, CSV and JSON.
//! Formatting only: every number comes from the leaderboard.

use super::table::{escape_markdown, Table};
use super::ReportError;
use crate::stats::{DiffCi, Summary};
use crate::store::{Store, SweepRow};
use crate::verdict::{self, Arm, DeltaM, Leaderboard, Options};


fn sweep_matches(s: &SweepRow, wanted: &str) -> bool {
    s.id.starts_with(wanted) || s.name == wanted
}

/// The sweeps named by `wanted` (id prefixes or names; an exact name wins
/// over prefixes), or the latest sweep with finished runs.
pub fn choose_sweeps(store: &Store, wanted: &[String]) -> Result<Vec<SweepRow>, ReportError> {
    let sweeps = store.list_sweeps()?;
    if wanted.is_empty() {
        for s in sweeps {
            if store.sweep_runs(&s.id)?.iter().any(|r| r.status == crate::store::RunStatus::Finished) {
                return Ok(vec![s]);
            }
        }
        return Err(ReportError::Invalid("no sweep has finished runs yet: run `bench run experiments/demo.toml` first".into()));
    }
    let mut out: Vec<SweepRow> = Vec::new();
    for w in wanted {
        let by_name: Vec<&SweepRow> = sweeps.iter().filter(|s| &s.name == w).collect();
        let matching: Vec<&SweepRow> = if by_name.len() == 1 { by_name } else { sweeps.iter().filter(|s| sweep_matches(s, w)).collect() };
        match matching.as_slice() {
            [] => return Err(ReportError::Invalid(format!("no sweep matches `{w}` (see `bench list`)"))),
            [one] => {
                if !out.iter().any(|s| s.id == one.id) {
                    out.push((*one).clone());
                }
            }
            many => {
                let list: Vec<String> = many.iter().map(|s| format!("{} ({})", s.id, s.name)).collect();
                return Err(ReportError::Invalid(format!("`{w}` matches several sweeps: {}; give more of the id", list.join(", "))));
            }
        }
    }
    Ok(out)
}

/// The leaderboard of these sweeps.
pub fn of_sweeps(store: &Store, sweeps: &[SweepRow], opts: &Options) -> Result<Leaderboard, ReportError> {
    let rows = store.verdict_rows(sweeps)?;
    Ok(verdict::build(&rows, opts)?)
}

/// The leaderboard of the sweeps `wanted` names (or the latest).
pub fn leaderboard(store: &Store, wanted: &[String], opts: &Options) -> Result<Leaderboard, ReportError> {
    of_sweeps(store, &choose_sweeps(store, wanted)?, opts)
}

/// "0.7312 ± 0.0021", or the mean alone for one seed.
pub fn summary(s: &Option<Summary>) -> String {
    s.map_or("–".into(), |s| s.display(4))
}

/// "[0.7290, 0.7334]".
pub fn interval(ci: &Option<DiffCi>) -> String {
    ci.map_or("–".into(), |c| format!("[{:.4}, {:.4}]", c.low, c.high))
}

/// "+0.0042 [+0.0010, +0.0074]".
pub fn difference(ci: &Option<DiffCi>) -> String {
    ci.map_or("–".into(), |c| format!("{:+.4} [{:+.4}, {:+.4}]", c.estimate, c.low, c.high))
}

/// "+1.25% [-0.40, +2.90]", or "+1.25% (from means)" when not paired.
pub fn delta_m(d: &Option<DeltaM>) -> String {
    match d {
        None => "–".into(),
        Some(d) => match (&d.ci, d.paired) {
            (Some(c), _) => format!("{:+.2}% [{:+.2}, {:+.2}]", d.estimate, c.low, c.high),
            (None, true) => format!("{:+.2}%", d.estimate),
            (None, false) => format!("{:+.2}% (from means)", d.estimate),
        },
    }
}

/// "1.85x".
pub fn step_time(a: &Arm) -> String {
    a.step_time_vs_equal.map_or("–".into(), |x| format!("{x:.2}x"))
}

/// One row per arm.
pub fn table(lb: &Leaderboard) -> Table {
    let mut headers: Vec<String> =
        ["rank", "model", "strategy", "selected configuration", "configs", "seeds", "test (mean ± std)", "95% CI"].iter().map(|s| s.to_string()).collect();
    headers.extend(lb.tasks.iter().map(|t| format!("{t} AUC")));
    headers.extend(["Δ vs tuned equal [95% CI]", "verdict", "Δm vs single-task", "step time vs equal"].iter().map(|s| s.to_string()));
    let mut t = Table { headers, rows: vec![] };
    for (i, a) in lb.arms.iter().enumerate() {
        let configs = match a.weight_vectors {
            Some(w) => format!("{} = {w} weights x {}", a.configurations.len(), a.budget),
            None => a.budget.to_string(),
        };
        let mut row = vec![
            (i + 1).to_string(),
            a.model.clone(),
            a.strategy.clone(),
            a.selected.clone(),
            configs,
            a.picks.len().to_string(),
            summary(&a.test),
            interval(&a.test_ci),
        ];
        row.extend(a.tasks.iter().map(summary));
        row.extend([difference(&a.vs_equal), a.standing.label(), delta_m(&a.delta_m), step_time(a)]);
        t.push(row);
    }
    t
}

/// What the numbers are: the selection, the seeds, the data.
pub fn caption(lb: &Leaderboard) -> String {
    let seeds: Vec<String> = lb.seeds.iter().map(|s| s.to_string()).collect();
    let sweeps: Vec<String> = lb.sweeps.iter().map(|s| format!("{} ({})", s.name, s.id)).collect();
    let headline: String = lb.headline.chars().take(1).flat_map(char::to_uppercase).chain(lb.headline.chars().skip(1)).collect();
    format!(
        "{headline} on {}, sweep {}. Each arm's configuration is selected per seed on the validation split ({}), never on test; \
         mean ± sample std over seeds {} with a {:.0}% Student t interval; Δ is paired by seed against tuned equal weighting \
         of the same model; a verdict only where its interval excludes 0 and at least {} seeds pair.",
        lb.datasets.join(", "),
        sweeps.join(", "),
        lb.selection,
        seeds.join(", "),
        lb.level * 100.0,
        verdict::MIN_SEEDS
    )
}

/// Single-task baselines as a small table.
pub fn single_task_table(lb: &Leaderboard) -> Table {
    let mut t = Table::new(&["task", "single-task test AUC", "configs", "seeds"]);
    for b in &lb.single_task {
        t.push(vec![b.task.clone(), summary(&b.test), b.configurations.to_string(), b.picks.len().to_string()]);
    }
    t
}

/// The terminal rendering: caption, table, baselines and warnings.
pub fn to_text(lb: &Leaderboard) -> String {
    let mut out = format!("{}\n\n{}", caption(lb), table(lb).to_text());
    if !lb.single_task.is_empty() {
        out.push_str(&format!("\nsingle-task baselines (SharedBottom, one task each):\n{}", single_task_table(lb).to_text()));
    }
    for w in &lb.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// Markdown: the caption, the table and the warnings as a list.
pub fn to_markdown(lb: &Leaderboard) -> String {
    let mut out = format!("{}\n\n{}", escape_markdown(&caption(lb)), table(lb).to_markdown());
    if !lb.single_task.is_empty() {
        out.push_str(&format!("\nSingle-task baselines:\n\n{}", single_task_table(lb).to_markdown()));
    }
    if !lb.warnings.is_empty() {
        out.push('\n');
        for w in &lb.warnings {
            out.push_str(&format!("- warning: {}\n", escape_markdown(&w.to_string())));
        }
    }
    out
}

/// CSV: the table only, one row per arm.
pub fn to_csv(lb: &Leaderboard) -> String {
    table(lb).to_csv()
}

/// JSON: the leaderboard itself, every number at full precision.
pub fn to_json(lb: &Leaderboard) -> Result<String, ReportError> {
    serde_json::to_string_pretty(lb).map_err(|e| ReportError::Invalid(format!("leaderboard as JSON: {e}")))
}
