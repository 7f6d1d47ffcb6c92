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
