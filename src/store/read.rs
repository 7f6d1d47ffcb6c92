//! Bulk read queries for reports: the rows of many runs at once (one query
//! instead of one per run), and the per-step conflict rates. The run ids
//! travel as one JSON array, unpacked by each database's own JSON function
//! (the one place where the SQL text differs by dialect for reading).

use serde::Serialize;

use super::{q, CurveRow, Dialect, MetricRow, Result, Store};

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
    /// A subquery of the ids in the JSON array bound as `$1`.
    pub(super) fn id_set(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "SELECT value FROM json_each($1)",
            Dialect::Postgres => "SELECT json_array_elements_text(CAST($1 AS json))",
        }
    }
}

impl Store {
    /// Final metrics of the given runs.
    pub fn metrics_of(&self, run_ids: &[String]) -> Result<Vec<MetricRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, MetricRow>(&format!(
                    "SELECT * FROM metrics WHERE run_id IN ({}) ORDER BY run_id, split, task, metric",
                    self.id_set()
                ))
                .bind(id_list(run_ids))
                .fetch_all(&self.pool),
            )
            .map_err(q("metrics of runs"))
    }

    /// Per-epoch curves of the given runs.
    pub fn curves_of(&self, run_ids: &[String]) -> Result<Vec<CurveRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, CurveRow>(&format!(
                    "SELECT * FROM curves WHERE run_id IN ({}) ORDER BY run_id, split, task, metric, epoch",
                    self.id_set()
                ))
                .bind(id_list(run_ids))
                .fetch_all(&self.pool),
            )
            .map_err(q("curves of runs"))
    }

    /// The conflict rate at each traced step of a run.
    pub fn trace_steps(&self, run_id: &str) -> Result<Vec<TraceStepRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, TraceStepRow>("SELECT * FROM trace_steps WHERE run_id = $1 ORDER BY step")
                    .bind(run_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("trace steps"))
    }
}
