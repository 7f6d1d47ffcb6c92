//! Hand-written fixture runs: a sweep whose every run, parameter, metric
//! and timing the test states, so that numbers computed from the store
//! (selection, Δ, Δm, step times) can be checked against values worked out
//! by hand. Plain SQL, no training. The random fixture is in `fixture`.

use super::{now, q, Result, Store};

/// One finished run of a hand fixture.
#[derive(Debug, Clone, Default)]
pub struct FixtureRun {
    pub model: String,
    pub strategy: String,
    pub seed: i64,
    /// Runs with the same hash are one configuration.
    pub config_hash: String,
    /// Defaults to the cell name `model-strategy-sSEED`.
    pub name: Option<String>,
    /// Recorded parameters besides `model.kind`, `strategy.kind` and `seed`.
    pub params: Vec<(String, String)>,
    /// Final validation ROC-AUC per task.
    pub valid_auc: Vec<(String, f64)>,
    /// Final test ROC-AUC per task.
    pub test_auc: Vec<(String, f64)>,
    /// One epoch of `steps` steps in `train_seconds`.
    pub steps: i64,
    pub train_seconds: f64,
    /// Defaults to `d1g3st`.
    pub dataset_digest: Option<String>,
}

impl Store {
    /// Writes a sweep of the given finished runs; returns the sweep id.
    pub fn write_fixture_runs(&self, sweep_name: &str, runs: &[FixtureRun]) -> Result<String> {
        let t = now();
        let sweep_id = format!("hand-{sweep_name}");
        self.upsert_sweep(&sweep_id, sweep_name, "fixture.toml", "")?;
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                for (pos, r) in runs.iter().enumerate() {
                    let id = format!("{sweep_name}-{pos:04}");
                    let cell_key = format!("{}|{}|{sweep_name}", r.config_hash, r.seed);
                    let name = r.name.clone().unwrap_or_else(|| format!("{}-{}-s{}", r.model, r.strategy, r.seed));
                    sqlx::query("INSERT INTO sweep_cells (sweep_id, cell_key, position) VALUES ($1, $2, $3)")
                        .bind(&sweep_id)
                        .bind(&cell_key)
                        .bind(pos as i64)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO runs (id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name,
                            dataset_digest, config_json, status, created_at, started_at, finished_at, heartbeat_at, best_epoch,
                            epochs_run, train_seconds)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'fixture (hand)', $9, '{}', 'finished', $10, $11, $12, $13, 1, 1, $14)",
                    )
                    .bind(&id)
                    .bind(&sweep_id)
                    .bind(&name)
                    .bind(&r.model)
                    .bind(&r.strategy)
                    .bind(r.seed)
                    .bind(&r.config_hash)
                    .bind(&cell_key)
                    .bind(r.dataset_digest.as_deref().unwrap_or("d1g3st"))
                    .bind(&t)
                    .bind(&t)
                    .bind(&t)
                    .bind(&t)
                    .bind(r.train_seconds)
                    .execute(&mut *tx)
                    .await?;
                    let mut params = vec![("model.kind".to_string(), r.model.clone()), ("strategy.kind".to_string(), r.strategy.clone())];
                    params.push(("seed".into(), r.seed.to_string()));
                    params.extend(r.params.iter().cloned());
                    for (k, v) in params {
                        sqlx::query("INSERT INTO params (run_id, key, value) VALUES ($1, $2, $3)").bind(&id).bind(k).bind(v).execute(&mut *tx).await?;
                    }
                    for (split, values) in [("valid", &r.valid_auc), ("test", &r.test_auc)] {
                        for (task, v) in values {
                            sqlx::query("INSERT INTO metrics (run_id, split, task, metric, value) VALUES ($1, $2, $3, 'auc', $4)")
                                .bind(&id)
                                .bind(split)
                                .bind(task)
                                .bind(v)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    sqlx::query("INSERT INTO epochs (run_id, epoch, steps, train_seconds, eval_seconds, samples_per_second, select_value) VALUES ($1, 1, $2, $3, 0.1, 1000, 0.5)")
                        .bind(&id)
                        .bind(r.steps)
                        .bind(r.train_seconds)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            })
            .map_err(q("write fixture runs"))?;
        Ok(sweep_id)
    }
}
