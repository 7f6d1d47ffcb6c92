//! The gates table: the mean gate distribution of a mixture-of-experts run
//! on a split (one row per gate and expert), written with the run's final
//! metrics and read back for reports. Kept apart from the metric rows
//! because a gate has one value per expert, not one per task.

use serde::Serialize;
use sqlx::AnyConnection;

use super::{q, GateWeights, Result, Store};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct GateRow {
    pub run_id: String,
    pub split: String,
    pub gate: String,
    pub expert: i64,
    pub label: String,
    pub weight: f64,
}

/// Inserts gate weights inside the caller's transaction.
pub(super) async fn insert(conn: &mut AnyConnection, run_id: &str, gates: &[GateWeights]) -> sqlx::Result<()> {
    for g in gates {
        for (k, (label, w)) in g.labels.iter().zip(&g.weights).enumerate() {
            sqlx::query("INSERT INTO gates (run_id, split, gate, expert, label, weight) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, split, gate, expert) DO UPDATE SET label = excluded.label, weight = excluded.weight")
                .bind(run_id)
                .bind(g.split.as_str())
                .bind(&g.gate)
                .bind(k as i64)
                .bind(label)
                .bind(*w)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

impl Store {
    /// The mean gate weights of a run, ordered by split, gate and expert
    /// (empty for models without gates).
    pub fn gates(&self, run_id: &str) -> Result<Vec<GateRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, GateRow>("SELECT * FROM gates WHERE run_id = $1 ORDER BY split, gate, expert")
                    .bind(run_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("gates"))
    }
}
