//! Recording what a run produced: an epoch (curve points and timings), a
//! strategy trace point, and the finished run (final metrics, gate weights,
//! sizes, timings), each in one transaction that also refreshes the run's
//! heartbeat.

use sqlx::SqliteConnection;

use super::{gates, now, q, MetricValue, NewEpoch, NewTrace, Result, RunOutcome, RunStatus, Store};

async fn touch(conn: &mut SqliteConnection, run_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ?").bind(now()).bind(run_id).execute(&mut *conn).await?;
    Ok(())
}

async fn insert_metrics(conn: &mut SqliteConnection, run_id: &str, metrics: &[MetricValue]) -> sqlx::Result<()> {
    for m in metrics {
        sqlx::query("INSERT OR REPLACE INTO metrics (run_id, split, task, metric, value) VALUES (?, ?, ?, ?, ?)")
            .bind(run_id)
            .bind(m.split.as_str())
            .bind(&m.task)
            .bind(&m.metric)
            .bind(m.value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn insert_epoch(conn: &mut SqliteConnection, run_id: &str, e: &NewEpoch) -> sqlx::Result<()> {
    let ep = e.epoch as i64;
    for c in &e.curves {
        sqlx::query("INSERT OR REPLACE INTO curves (run_id, epoch, split, task, metric, value) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(run_id)
            .bind(ep)
            .bind(c.split.as_str())
            .bind(&c.task)
            .bind(&c.metric)
            .bind(c.value)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT OR REPLACE INTO epochs (run_id, epoch, steps, train_seconds, eval_seconds, samples_per_second, select_value)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(run_id)
    .bind(ep)
    .bind(e.steps as i64)
    .bind(e.train_seconds)
    .bind(e.eval_seconds)
    .bind(e.samples_per_second)
    .bind(e.select_value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_trace(conn: &mut SqliteConnection, run_id: &str, t: &NewTrace) -> sqlx::Result<()> {
    let step = t.step as i64;
    for (i, term) in t.terms.iter().enumerate() {
        sqlx::query("INSERT OR REPLACE INTO traces (run_id, step, epoch, term, weight, loss, grad_norm) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(run_id)
            .bind(step)
            .bind(t.epoch as i64)
            .bind(term)
            .bind(t.weights.get(i).copied().unwrap_or(f64::NAN))
            .bind(t.losses.get(i).copied().unwrap_or(f64::NAN))
            .bind(t.grad_norms.get(i).copied().unwrap_or(f64::NAN))
            .execute(&mut *conn)
            .await?;
    }
    let mut k = 0;
    for a in 0..t.terms.len() {
        for b in a + 1..t.terms.len() {
            if let Some(c) = t.cosines.get(k) {
                sqlx::query("INSERT OR REPLACE INTO trace_pairs (run_id, step, term_a, term_b, cosine) VALUES (?, ?, ?, ?, ?)")
                    .bind(run_id)
                    .bind(step)
                    .bind(&t.terms[a])
                    .bind(&t.terms[b])
                    .bind(*c)
                    .execute(&mut *conn)
                    .await?;
            }
            k += 1;
        }
    }
    sqlx::query("INSERT OR REPLACE INTO trace_steps (run_id, step, conflict_rate) VALUES (?, ?, ?)")
        .bind(run_id)
        .bind(step)
        .bind(t.conflict_rate)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn mark_finished(conn: &mut SqliteConnection, run_id: &str, r: &RunOutcome, predictions_path: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ?, n_params = ?, best_epoch = ?,
            epochs_run = ?, train_seconds = ?, test_seconds = ?, predictions_path = ?, error = NULL,
            peak_rss_mib = ?, samples_per_second = ? WHERE id = ?",
    )
    .bind(RunStatus::Finished)
    .bind(now())
    .bind(now())
    .bind(r.n_params)
    .bind(r.best_epoch as i64)
    .bind(r.epochs_run as i64)
    .bind(r.train_seconds)
    .bind(r.test_seconds)
    .bind(predictions_path)
    .bind(r.peak_rss_mib)
    .bind(r.samples_per_second)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Records an epoch: curves (train loss, validation metrics) and timings.
    pub fn record_epoch(&self, run_id: &str, e: &NewEpoch) -> Result<()> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                insert_epoch(&mut tx, run_id, e).await?;
                touch(&mut tx, run_id).await?;
                tx.commit().await
            })
            .map_err(q("record epoch"))
    }

    /// Records one strategy trace point.
    pub fn record_trace(&self, run_id: &str, t: &NewTrace) -> Result<()> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                insert_trace(&mut tx, run_id, t).await?;
                touch(&mut tx, run_id).await?;
                tx.commit().await
            })
            .map_err(q("record trace"))
    }

    /// Marks a run finished with its final metrics, in one transaction.
    pub fn finish_run(&self, run_id: &str, r: &RunOutcome, predictions_path: Option<&str>) -> Result<()> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                insert_metrics(&mut tx, run_id, &r.metrics).await?;
                gates::insert(&mut tx, run_id, &r.gates).await?;
                mark_finished(&mut tx, run_id, r, predictions_path).await?;
                tx.commit().await
            })
            .map_err(q("finish run"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GateWeights, NewRun, Split};
    use super::*;

    fn claimed(store: &Store, id: &str) {
        store.upsert_sweep("s", "s", "g.toml", "").unwrap();
        let run = NewRun {
            id,
            sweep_id: "s",
            name: "n",
            model: "mmoe",
            strategy: "equal",
            seed: 1,
            config_hash: "c",
            cell_key: "k",
            dataset_name: "d",
            dataset_digest: "dd",
            config_json: "{}",
            env_json: "{}",
            params: &[("train.lr".into(), "0.01".into())],
            pid: 1,
            host: "h",
            data_seconds: 0.5,
        };
        assert!(store.start_run(&run).unwrap());
        // The cell is taken: a second claim of it loses.
        assert!(!store.start_run(&NewRun { id: "other", ..run }).unwrap());
    }

    fn value(split: Split, task: &str, metric: &str, value: f64) -> MetricValue {
        MetricValue { split, task: task.into(), metric: metric.into(), value }
    }

    #[test]
    fn epochs_traces_and_the_outcome_land_in_their_tables() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        claimed(&store, "r1");
        let epoch = NewEpoch {
            epoch: 1,
            steps: 7,
            curves: vec![value(Split::Train, "click", "loss", 0.5), value(Split::Valid, "click", "auc", 0.61)],
            train_seconds: 2.0,
            eval_seconds: 0.5,
            samples_per_second: 300.0,
            select_value: 0.61,
        };
        store.record_epoch("r1", &epoch).unwrap();
        let trace = NewTrace {
            step: 3,
            epoch: 1,
            terms: vec!["a".into(), "b".into(), "c".into()],
            weights: vec![1.0, 2.0, 3.0],
            losses: vec![0.1, 0.2, 0.3],
            grad_norms: vec![4.0, 5.0, 6.0],
            cosines: vec![0.5, -0.25, 0.75],
            conflict_rate: 1.0 / 3.0,
        };
        store.record_trace("r1", &trace).unwrap();
        let outcome = RunOutcome {
            metrics: vec![value(Split::Valid, "click", "auc", 0.6), value(Split::Test, "click", "auc", 0.7), value(Split::Test, "click", "auc", 0.71)],
            gates: vec![GateWeights { split: Split::Test, gate: "g".into(), labels: vec!["e0".into(), "e1".into()], weights: vec![0.25, 0.75] }],
            n_params: 42,
            best_epoch: 1,
            epochs_run: 1,
            train_seconds: 2.0,
            test_seconds: 0.1,
            peak_rss_mib: Some(100.0),
            samples_per_second: Some(300.0),
        };
        store.finish_run("r1", &outcome, Some("r1.bin")).unwrap();

        let run = store.find_run("r1").unwrap();
        assert_eq!(run.status, RunStatus::Finished);
        assert_eq!((run.n_params, run.best_epoch, run.predictions_path.as_deref()), (Some(42), Some(1), Some("r1.bin")));
        let curves: Vec<(String, String, f64)> = store.curves("r1").unwrap().into_iter().map(|c| (c.split, c.metric, c.value)).collect();
        assert_eq!(curves, vec![("train".into(), "loss".into(), 0.5), ("valid".into(), "auc".into(), 0.61)]);
        assert_eq!(store.epochs("r1").unwrap()[0].steps, 7);
        let traces = store.traces("r1").unwrap();
        assert_eq!(traces.iter().map(|t| t.grad_norm).collect::<Vec<_>>(), vec![4.0, 5.0, 6.0]);
        assert_eq!(store.trace_steps("r1").unwrap()[0].conflict_rate, 1.0 / 3.0);
        // A later value of the same key replaces the earlier one.
        let m: Vec<(String, f64)> = store.metrics("r1").unwrap().into_iter().map(|m| (m.split, m.value)).collect();
        assert_eq!(m, vec![("test".into(), 0.71), ("valid".into(), 0.6)]);
        let gates: Vec<(String, f64)> = store.gates("r1").unwrap().into_iter().map(|g| (g.label, g.weight)).collect();
        assert_eq!(gates, vec![("e0".into(), 0.25), ("e1".into(), 0.75)]);
        // One finished run per cell: found by its cell, no longer running.
        assert_eq!(store.finished_run_for_cell("k").unwrap().map(|r| r.id), Some("r1".into()));
        assert!(store.running_run_for_cell("k").unwrap().is_none());
    }

    #[test]
    fn stale_and_failed_runs_change_status_only_while_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        claimed(&store, "r1");
        assert_eq!(store.running_run_for_cell("k").unwrap().map(|r| r.status), Some(RunStatus::Running));
        assert!(store.mark_stale("r1", "stale: gone").unwrap());
        assert!(!store.mark_stale("r1", "again").unwrap(), "only a running run is marked stale");
        let run = store.find_run("r1").unwrap();
        assert_eq!((run.status, run.error.as_deref()), (RunStatus::Killed, Some("stale: gone")));
        store.fail_run("r1", RunStatus::Failed, "diverged").unwrap();
        assert_eq!(store.find_run("r1").unwrap().status, RunStatus::Failed);
    }
}
