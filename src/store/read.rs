//! Bulk read queries for reports: the rows of many runs at once (one query
//! instead of one per run), and the per-step conflict rates.

use serde::Serialize;

use super::{q, CurveRow, MetricRow, Result, Store};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TraceStepRow {
    pub run_id: String,
    pub step: i64,
    pub conflict_rate: f64,
}

pub(super) fn id_list(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Final metrics of the given runs.
    pub fn metrics_of(&self, run_ids: &[String]) -> Result<Vec<MetricRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, MetricRow>(
                    "SELECT * FROM metrics WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, split, task, metric",
                )
                .bind(id_list(run_ids))
                .fetch_all(&self.pool),
            )
            .map_err(q("metrics of runs"))
    }

    /// Per-epoch curves of the given runs.
    pub fn curves_of(&self, run_ids: &[String]) -> Result<Vec<CurveRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, CurveRow>(
                    "SELECT * FROM curves WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, split, task, metric, epoch",
                )
                .bind(id_list(run_ids))
                .fetch_all(&self.pool),
            )
            .map_err(q("curves of runs"))
    }

    /// The conflict rate at each traced step of a run.
    pub fn trace_steps(&self, run_id: &str) -> Result<Vec<TraceStepRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, TraceStepRow>("SELECT * FROM trace_steps WHERE run_id = ? ORDER BY step")
                    .bind(run_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("trace steps"))
    }
}
