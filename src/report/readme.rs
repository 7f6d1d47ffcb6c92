//! The README results table, regenerated between
//! `<!-- bench:results:begin -->` and `<!-- bench:results:end -->` from the
//! leaderboard: one row per (model, strategy) arm at its configuration
//! selected on validation per seed, never on test, in the seed's shape
//! (Model | Paper | per-task AUC) with the strategy, the selected
//! configuration, seeds, the 95% interval, the paired difference to tuned
//! equal weighting with its verdict, Δm and step time. The caption states
//! the selection, the seeds and the dataset. Names are escaped for
//! Markdown. Idempotent.

use std::path::Path;

use super::leaderboard::{self as lb, caption};
use super::table::escape_markdown;
use super::ReportError;
use crate::models::ModelKind;
use crate::store::Store;
use crate::strategies::StrategyKind;
use crate::verdict::{Arm, Leaderboard, Options};

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

fn strategy_name(strategy: &str) -> String {
    StrategyKind::ALL.iter().find(|k| k.name() == strategy).map_or(strategy.to_string(), |k| k.paper().0.to_string())
}

fn row(a: &Arm) -> String {
    let (name, paper) = paper_of(&a.model);
    let link = if paper.is_empty() { "–".to_string() } else { format!("[paper]({paper})") };
    let mut cells = vec![
        escape_markdown(&name),
        link,
        escape_markdown(&strategy_name(&a.strategy)),
        escape_markdown(&a.selected),
        a.picks.len().to_string(),
    ];
    cells.extend(a.tasks.iter().map(lb::summary));
    cells.extend([
        lb::summary(&a.test),
        lb::interval(&a.test_ci),
        lb::difference(&a.vs_equal),
        escape_markdown(&a.standing.label()),
        lb::delta_m(&a.delta_m),
        lb::step_time(a),
    ]);
    format!("| {} |\n", cells.join(" | "))
}

/// The Markdown (without markers) of a leaderboard.
pub fn table(board: &Leaderboard) -> String {
    let mut out = escape_markdown(&caption(board));
    let configs: Vec<String> = board.arms.iter().map(|a| a.budget).collect::<std::collections::BTreeSet<_>>().iter().map(|n| n.to_string()).collect();
    out.push_str(&format!(
        " Tuning budget: {} configuration(s) per arm{}. Last run finished {}.\n\n",
        configs.join(" / "),
        if board.equal_budgets() { "" } else { " (unequal: see the warning below)" },
        board.last_finished.as_deref().unwrap_or("–")
    ));
    let mut head = vec!["Model", "Paper", "Strategy", "Configuration (selected on validation)", "Seeds"].into_iter().map(String::from).collect::<Vec<_>>();
    head.extend(board.tasks.iter().map(|t| format!("{} AUC", escape_markdown(t))));
    head.extend(["Mean AUC", "95% CI", "Δ vs tuned equal [95% CI]", "Verdict", "Δm", "Step time"].into_iter().map(String::from));
    out.push_str(&format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len())));
    for a in &board.arms {
        out.push_str(&row(a));
    }
    if !board.warnings.is_empty() {
        out.push('\n');
        for w in &board.warnings {
            out.push_str(&format!("- Warning: {}\n", escape_markdown(&w.to_string())));
        }
    }
    out
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

/// Rewrites the table in a README file from the leaderboard of `sweep` (or
/// the latest sweep with finished runs); returns whether the file changed.
pub fn update(store: &Store, readme: &Path, sweep: Option<&str>) -> Result<bool, ReportError> {
    let wanted: Vec<String> = sweep.map(str::to_string).into_iter().collect();
    let t = table(&lb::leaderboard(store, &wanted, &Options::default())?);
    let old = std::fs::read_to_string(readme).map_err(|source| ReportError::Io { path: readme.to_path_buf(), cause: source })?;
    let new = splice(&old, &t)?;
    if new != old {
        std::fs::write(readme, &new).map_err(|source| ReportError::Io { path: readme.to_path_buf(), cause: source })?;
    }
    Ok(new != old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_names_validation_selection_and_names_are_escaped() {
        use crate::store::fixture::FixtureSpec;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let spec = FixtureSpec { name_suffix: "<b>|`x`".into(), ..Default::default() };
        store.write_fixture(&spec, 7).unwrap();
        let t = table(&lb::leaderboard(&store, &[], &Options::default()).unwrap());
        assert!(t.contains("selected per seed on the validation split") && t.contains("never on test"), "{t}");
        assert!(t.contains("seeds 1, 2, 3") && t.contains("fixture (synthetic)"), "{t}");
        assert!(t.contains("fixture-0&lt;b&gt;\\|\\`x\\`") && !t.contains("<b>"), "{t}");
        // One row per arm: 2 models x 2 strategies.
        assert_eq!(t.lines().filter(|l| l.starts_with("| MMOE |") || l.starts_with("| SharedBottom |")).count(), 4, "{t}");
    }

    #[test]
    fn splice_replaces_between_markers_idempotently() {
        let r = format!("# t\n{BEGIN}\nold\n{END}\nafter\n");
        let once = splice(&r, "new\n").unwrap();
        assert_eq!(once, format!("# t\n{BEGIN}\nnew\n{END}\nafter\n"));
        assert_eq!(splice(&once, "new\n").unwrap(), once);
        assert!(splice("no markers", "x").is_err());
    }
}
