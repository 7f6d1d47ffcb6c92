//! Recording what a run produced: an epoch (curve points and timings), a
//! strategy trace point, and the finished run (final metrics, gate weights,
//! sizes, timings), each in one transaction that begins with the claim's
//! fence (which also refreshes the heartbeat): a run whose claim is lost
//! records nothing. Finishing a run supersedes the cell's earlier finished
//! run in the same transaction (a forced rerun). A run that lost its claim
//! may keep its outcome as a superseded attempt.

use sqlx::SqliteConnection;

use super::claims::fence;
use super::{gates, now, q, ClaimToken, MetricValue, NewEpoch, NewTrace, Result, RunOutcome, RunStatus, Store};

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

/// Sets a run's outcome columns and `status`, where the run is `id` with
/// claim `token` in status `from`; returns whether it did.
async fn set_outcome(conn: &mut SqliteConnection, c: &ClaimToken, from: RunStatus, to: RunStatus, r: Option<&RunOutcome>, predictions_path: Option<&str>) -> sqlx::Result<bool> {
    let t = now();
    let res = sqlx::query(
        "UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ?, n_params = ?, best_epoch = ?,
            epochs_run = ?, train_seconds = ?, test_seconds = ?, predictions_path = ?,
            peak_rss_mib = ?, samples_per_second = ? WHERE id = ? AND claim_token = ? AND status = ?",
    )
    .bind(to)
    .bind(&t)
    .bind(&t)
    .bind(r.map(|r| r.n_params))
    .bind(r.map(|r| r.best_epoch as i64))
    .bind(r.map(|r| r.epochs_run as i64))
    .bind(r.map(|r| r.train_seconds))
    .bind(r.map(|r| r.test_seconds))
    .bind(predictions_path)
    .bind(r.and_then(|r| r.peak_rss_mib))
    .bind(r.and_then(|r| r.samples_per_second))
    .bind(&c.run_id)
    .bind(&c.token)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// The cell's finished run, other than `c`'s, becomes superseded by it.
async fn supersede_finished(conn: &mut SqliteConnection, c: &ClaimToken) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE runs SET status = ?, superseded_by = ?, error = ?
         WHERE cell_key = (SELECT cell_key FROM runs WHERE id = ?) AND status = ? AND id <> ?",
    )
    .bind(RunStatus::Superseded)
    .bind(&c.run_id)
    .bind(format!("superseded by run {}, a forced rerun", c.run_id))
    .bind(&c.run_id)
    .bind(RunStatus::Finished)
    .bind(&c.run_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Records an epoch: curves (train loss, validation metrics) and timings.
    pub fn record_epoch(&self, claim: &ClaimToken, e: &NewEpoch) -> Result<()> {
        let held = self.rt.block_on(async {
            let mut tx = self.pool.begin().await?;
            if !fence(&mut tx, claim).await? {
                return Ok(false);
            }
            insert_epoch(&mut tx, &claim.run_id, e).await?;
            tx.commit().await.map(|()| true)
        });
        self.fenced(claim, "record epoch", held)
    }

    /// Records one strategy trace point.
    pub fn record_trace(&self, claim: &ClaimToken, t: &NewTrace) -> Result<()> {
        let held = self.rt.block_on(async {
            let mut tx = self.pool.begin().await?;
            if !fence(&mut tx, claim).await? {
                return Ok(false);
            }
            insert_trace(&mut tx, &claim.run_id, t).await?;
            tx.commit().await.map(|()| true)
        });
        self.fenced(claim, "record trace", held)
    }

    /// Marks a claimed run finished with its final metrics, in one
    /// transaction; the cell's earlier finished run (a forced rerun's
    /// predecessor) becomes superseded in the same transaction.
    pub fn finish_run(&self, claim: &ClaimToken, r: &RunOutcome, predictions_path: Option<&str>) -> Result<()> {
        let held = self.rt.block_on(async {
            let mut tx = self.pool.begin().await?;
            if !fence(&mut tx, claim).await? {
                return Ok(false);
            }
            supersede_finished(&mut tx, claim).await?;
            insert_metrics(&mut tx, &claim.run_id, &r.metrics).await?;
            gates::insert(&mut tx, &claim.run_id, &r.gates).await?;
            if !set_outcome(&mut tx, claim, RunStatus::Running, RunStatus::Finished, Some(r), predictions_path).await? {
                return Ok(false);
            }
            sqlx::query("UPDATE runs SET error = NULL WHERE id = ?").bind(&claim.run_id).execute(&mut *tx).await?;
            tx.commit().await.map(|()| true)
        });
        self.fenced(claim, "finish run", held)
    }

    /// Keeps the attempt of a run whose claim was lost (another process
    /// marked it killed and took the cell over) as `superseded`, with its
    /// outcome when it has one, `reason` as its error and the cell's current
    /// run as `superseded_by`. Returns false (and changes nothing) when the
    /// run is no longer this claim's or was not ended by another process.
    pub fn supersede_attempt(&self, claim: &ClaimToken, outcome: Option<&RunOutcome>, predictions_path: Option<&str>, reason: &str) -> Result<bool> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                if !set_outcome(&mut tx, claim, RunStatus::Killed, RunStatus::Superseded, outcome, predictions_path).await? {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE runs SET error = ?, superseded_by = (SELECT r.id FROM runs r
                         WHERE r.cell_key = runs.cell_key AND r.status IN (?, ?) AND r.id <> runs.id
                         ORDER BY r.status = ? DESC, r.created_at DESC LIMIT 1)
                     WHERE id = ?",
                )
                .bind(reason)
                .bind(RunStatus::Running)
                .bind(RunStatus::Finished)
                .bind(RunStatus::Finished)
                .bind(&claim.run_id)
                .execute(&mut *tx)
                .await?;
                if let Some(o) = outcome {
                    insert_metrics(&mut tx, &claim.run_id, &o.metrics).await?;
                    gates::insert(&mut tx, &claim.run_id, &o.gates).await?;
                }
                tx.commit().await.map(|()| true)
            })
            .map_err(q("supersede attempt"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::claims_tests::claimed;
    use super::super::{GateWeights, Split};
    use super::*;

    fn value(split: Split, task: &str, metric: &str, value: f64) -> MetricValue {
        MetricValue { split, task: task.into(), metric: metric.into(), value }
    }

    #[test]
    fn epochs_traces_and_the_outcome_land_in_their_tables() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let claim = claimed(&store, "a1");
        let epoch = NewEpoch {
            epoch: 1,
            steps: 7,
            curves: vec![value(Split::Train, "click", "loss", 0.5), value(Split::Valid, "click", "auc", 0.61)],
            train_seconds: 2.0,
            eval_seconds: 0.5,
            samples_per_second: 300.0,
            select_value: 0.61,
        };
        store.record_epoch(&claim, &epoch).unwrap();
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
        store.record_trace(&claim, &trace).unwrap();
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
        store.finish_run(&claim, &outcome, Some("a1.bin")).unwrap();

        let run = store.find_run("a1").unwrap();
        assert_eq!(run.status, RunStatus::Finished);
        assert_eq!((run.n_params, run.best_epoch, run.predictions_path.as_deref()), (Some(42), Some(1), Some("a1.bin")));
        let curves: Vec<(String, String, f64)> = store.curves("a1").unwrap().into_iter().map(|c| (c.split, c.metric, c.value)).collect();
        assert_eq!(curves, vec![("train".into(), "loss".into(), 0.5), ("valid".into(), "auc".into(), 0.61)]);
        assert_eq!(store.epochs("a1").unwrap()[0].steps, 7);
        let traces = store.traces("a1").unwrap();
        assert_eq!(traces.iter().map(|t| t.grad_norm).collect::<Vec<_>>(), vec![4.0, 5.0, 6.0]);
        assert_eq!(store.trace_steps("a1").unwrap()[0].conflict_rate, 1.0 / 3.0);
        // A later value of the same key replaces the earlier one.
        let m: Vec<(String, f64)> = store.metrics("a1").unwrap().into_iter().map(|m| (m.split, m.value)).collect();
        assert_eq!(m, vec![("test".into(), 0.71), ("valid".into(), 0.6)]);
        let gates: Vec<(String, f64)> = store.gates("a1").unwrap().into_iter().map(|g| (g.label, g.weight)).collect();
        assert_eq!(gates, vec![("e0".into(), 0.25), ("e1".into(), 0.75)]);
        // One finished run per cell: found by its cell, no longer running.
        assert_eq!(store.finished_run_for_cell("k").unwrap().map(|r| r.id), Some("a1".into()));
        assert!(store.running_run_for_cell("k").unwrap().is_none());
    }
}
