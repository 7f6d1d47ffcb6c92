//! The leaderboard page of a sweep: the ranked arms (the terminal table's
//! columns), the single-task baselines, every arm's configurations with
//! how many seeds chose each, the warnings, and one Pareto panel per model
//! and pair of tasks.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::leaderboard::{self as lb, caption, single_task_table, summary};
use super::table::Table;
use super::{leaderboard_charts, write_chart, ChartRef, ReportError};
use crate::verdict::Leaderboard;

/// One configuration line under its arm.
#[derive(Debug, Serialize)]
pub struct ConfigLine {
    pub label: String,
    pub seeds: String,
    pub valid: String,
    pub test: String,
    pub chosen: usize,
}

#[derive(Debug, Serialize)]
pub struct ArmConfigs {
    pub arm: String,
    pub lines: Vec<ConfigLine>,
}

#[derive(Debug, Serialize)]
pub struct LeaderboardCtx {
    pub sweep_id: String,
    pub sweep_name: String,
    pub page: String,
    pub sweep_page: String,
    pub caption: String,
    pub selection: String,
    pub table: Table,
    pub single_task: Option<Table>,
    pub configurations: Vec<ArmConfigs>,
    pub warnings: Vec<String>,
    pub charts: Vec<ChartRef>,
}

pub fn page_name(sweep_id: &str) -> String {
    format!("leaderboard-{sweep_id}.html")
}

fn configurations(board: &Leaderboard) -> Vec<ArmConfigs> {
    board
        .arms
        .iter()
        .map(|a| ArmConfigs {
            arm: a.name(),
            lines: a
                .configurations
                .iter()
                .map(|c| ConfigLine {
                    label: c.label.clone(),
                    seeds: c.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
                    valid: summary(&c.valid),
                    test: summary(&c.test),
                    chosen: c.chosen,
                })
                .collect(),
        })
        .collect()
}

/// Builds the page's context for the leaderboard of sweep `id` and writes its charts.
pub fn build(board: &Leaderboard, id: &str, name: &str, out: &Path, written: &mut Vec<PathBuf>) -> Result<LeaderboardCtx, ReportError> {
    let mut charts = Vec::new();
    for (k, panel) in board.pareto.iter().enumerate() {
        let title = format!("{}: {} vs {} test ROC-AUC", panel.model, panel.y_task, panel.x_task);
        let svg = leaderboard_charts::pareto(panel, &title)?;
        let note = "Each point: mean over seeds of the configuration chosen per seed on validation; crosses: ± one standard deviation over seeds. \
                    Grey: the static-weight sweep, one point per weight vector, its Pareto front as a line; coloured: the other arms.";
        charts.push(write_chart(out, format!("leaderboard-{id}-pareto-{k}.svg"), &format!("Pareto: {title}"), note, svg, written)?);
    }
    Ok(LeaderboardCtx {
        sweep_id: id.to_string(),
        sweep_name: name.to_string(),
        page: page_name(id),
        sweep_page: super::sweep_page_name(id),
        caption: caption(board),
        selection: board.selection.clone(),
        table: lb::table(board),
        single_task: (!board.single_task.is_empty()).then(|| single_task_table(board)),
        configurations: configurations(board),
        warnings: board.warnings.iter().map(|w| w.to_string()).collect(),
        charts,
    })
}
