//! The rows a verdict is computed from: the latest run of every cell of
//! some sweeps, with their params, final metrics and epoch timings, each
//! kind read in one query. The verdict module turns them into numbers.

use serde::Serialize;

use super::read::id_list;
use super::{q, EpochRow, MetricRow, ParamRow, Result, RunRow, Store, SweepRow};

/// Everything `verdict` reads, for a set of sweeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerdictRows {
    pub sweeps: Vec<SweepRow>,
    /// The latest run of each cell of the sweeps (a run shared by two sweeps once), in cell order.
    pub runs: Vec<RunRow>,
    pub params: Vec<ParamRow>,
    pub metrics: Vec<MetricRow>,
    pub epochs: Vec<EpochRow>,
}

impl Store {
    /// Parameters of the given runs.
    pub fn params_of(&self, run_ids: &[String]) -> Result<Vec<ParamRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, ParamRow>(&format!("SELECT * FROM params WHERE run_id IN ({}) ORDER BY run_id, key", self.id_set()))
                    .bind(id_list(run_ids))
                    .fetch_all(&self.pool),
            )
            .map_err(q("params of runs"))
    }

    /// Per-epoch timings of the given runs.
    pub fn epochs_of(&self, run_ids: &[String]) -> Result<Vec<EpochRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, EpochRow>(&format!("SELECT * FROM epochs WHERE run_id IN ({}) ORDER BY run_id, epoch", self.id_set()))
                    .bind(id_list(run_ids))
                    .fetch_all(&self.pool),
            )
            .map_err(q("epochs of runs"))
    }

    /// The verdict's rows for these sweeps.
    pub fn verdict_rows(&self, sweeps: &[SweepRow]) -> Result<VerdictRows> {
        let mut runs: Vec<RunRow> = Vec::new();
        for s in sweeps {
            for r in self.sweep_runs(&s.id)? {
                if !runs.iter().any(|x| x.id == r.id) {
                    runs.push(r);
                }
            }
        }
        let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
        Ok(VerdictRows {
            sweeps: sweeps.to_vec(),
            params: self.params_of(&ids)?,
            metrics: self.metrics_of(&ids)?,
            epochs: self.epochs_of(&ids)?,
            runs,
        })
    }
}
