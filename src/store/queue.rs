//! The queue of a sweep, as workers read it: the cells a sweep registered
//! (`sweep_cells`) and whether a cell failed since the sweep was last
//! registered. There is no separate queue table: a registered cell is
//! queued while it has no finished run, no live running run and no failure
//! since its sweep was registered (`sweeps.updated_at`), so that a killed
//! run (Ctrl-C, SIGTERM, a lost lease) requeues its cell by itself and
//! registering the sweep again retries its failed cells.

use super::{q, Result, RunStatus, Store, SweepRow};

/// A cell registered in a sweep: its position in the grid and its key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SweepCellRow {
    pub position: i64,
    pub cell_key: String,
}

impl Store {
    /// The cells registered in a sweep, in grid order.
    pub fn sweep_cells(&self, sweep_id: &str) -> Result<Vec<SweepCellRow>> {
        self.rt
            .block_on(
                sqlx::query_as::<_, SweepCellRow>("SELECT position, cell_key FROM sweep_cells WHERE sweep_id = ? ORDER BY position")
                    .bind(sweep_id)
                    .fetch_all(&self.pool),
            )
            .map_err(q("sweep cells"))
    }

    /// The sweep with this id, if any.
    pub fn sweep(&self, sweep_id: &str) -> Result<Option<SweepRow>> {
        self.rt
            .block_on(sqlx::query_as::<_, SweepRow>("SELECT * FROM sweeps WHERE id = ?").bind(sweep_id).fetch_optional(&self.pool))
            .map_err(q("sweep"))
    }

    /// Whether a run of the cell failed at or after `since` (RFC 3339 UTC,
    /// as [`super::now`] writes it: such strings order as their times).
    pub fn failed_since(&self, cell_key: &str, since: &str) -> Result<bool> {
        self.rt
            .block_on(
                sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM runs WHERE cell_key = ? AND status = ? AND finished_at >= ?)")
                    .bind(cell_key)
                    .bind(RunStatus::Failed)
                    .bind(since)
                    .fetch_one(&self.pool),
            )
            .map_err(q("failed since"))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{ClaimToken, IfFinished, NewRun, RunStatus, Store};

    fn new_run<'a>(id: &'a str, cell: &'a str) -> NewRun<'a> {
        NewRun {
            id,
            sweep_id: "s1",
            name: "n",
            model: "mmoe",
            strategy: "equal",
            seed: 1,
            config_hash: "h",
            cell_key: cell,
            dataset_name: "toy",
            dataset_digest: "d",
            config_json: "{}",
            env_json: "{}",
            params: &[],
            pid: 1,
            pid_start: None,
            host: "h",
            data_seconds: 0.0,
        }
    }

    #[test]
    fn registered_cells_come_in_grid_order_and_failures_count_from_a_time_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("q.sqlite")).unwrap();
        store.upsert_sweep("s1", "grid", "g.toml", "").unwrap();
        store.add_sweep_cell("s1", "kb", 1).unwrap();
        store.add_sweep_cell("s1", "ka", 0).unwrap();
        store.add_sweep_cell("s1", "ka", 0).unwrap();
        let cells: Vec<(i64, String)> = store.sweep_cells("s1").unwrap().into_iter().map(|c| (c.position, c.cell_key)).collect();
        assert_eq!(cells, vec![(0, "ka".to_string()), (1, "kb".to_string())]);
        assert_eq!(store.sweep("s1").unwrap().unwrap().name, "grid");
        assert!(store.sweep("nope").unwrap().is_none());

        let before = crate::store::now();
        let claim: ClaimToken = store.start_run(&new_run("r1", "ka"), IfFinished::Refuse).unwrap().unwrap();
        assert!(!store.failed_since("ka", &before).unwrap(), "a running run is no failure");
        store.fail_run(&claim, RunStatus::Failed, "boom").unwrap();
        assert!(store.failed_since("ka", &before).unwrap());
        assert!(!store.failed_since("kb", &before).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(!store.failed_since("ka", &crate::store::now()).unwrap(), "a failure before the time does not count");
        // A killed run is no failure: its cell is queued again.
        let claim = store.start_run(&new_run("r2", "kb"), IfFinished::Refuse).unwrap().unwrap();
        store.fail_run(&claim, RunStatus::Killed, "interrupted").unwrap();
        assert!(!store.failed_since("kb", &before).unwrap());
    }
}
