//! Deterministic synthetic store contents for report tests and benchmarks:
//! sweeps of finished runs with metrics, curves, traces and gates, written
//! with plain SQL so that no training is needed. Names may carry markup
//! (`<script>`) to check that every page escapes them. Runs whose every
//! number a test states are written by `fixture_runs`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::SqliteConnection;

use super::{now, q, Result, RunStatus, Store};

/// Shape of the fixture.
#[derive(Debug, Clone)]
pub struct FixtureSpec {
    pub sweeps: usize,
    pub models: Vec<String>,
    pub strategies: Vec<String>,
    pub seeds: usize,
    pub tasks: Vec<String>,
    pub epochs: usize,
    pub trace_points: usize,
    /// Appended to every sweep and run name.
    pub name_suffix: String,
}

impl Default for FixtureSpec {
    fn default() -> Self {
        FixtureSpec {
            sweeps: 1,
            models: vec!["shared-bottom".into(), "mmoe".into()],
            strategies: vec!["equal".into(), "gradnorm".into()],
            seeds: 3,
            tasks: vec!["read_comment".into(), "like".into(), "click_avatar".into()],
            epochs: 4,
            trace_points: 20,
            name_suffix: String::new(),
        }
    }
}

/// One fixture run and its place in the grid.
struct FixtureRun<'a> {
    id: String,
    sweep_id: &'a str,
    name: String,
    model: &'a str,
    strategy: &'a str,
    seed: usize,
    config_hash: String,
    cell_key: String,
    /// Positions of the model and the strategy in the spec.
    mi: usize,
    si: usize,
}

impl FixtureRun<'_> {
    /// The mean AUC level of the run's configuration.
    fn base(&self) -> f64 {
        0.6 + 0.05 * self.mi as f64 + 0.01 * self.si as f64
    }
}

async fn insert_sweep(tx: &mut SqliteConnection, id: &str, name: &str, t: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sweeps (id, name, grid_path, grid_toml, created_at, updated_at) VALUES (?, ?, 'fixture.toml', '', ?, ?)")
        .bind(id)
        .bind(name)
        .bind(t)
        .bind(t)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The run row, its sweep cell and its params.
async fn insert_run(tx: &mut SqliteConnection, r: &FixtureRun<'_>, pos: i64, spec: &FixtureSpec, t: &str, rng: &mut ChaCha8Rng) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sweep_cells (sweep_id, cell_key, position) VALUES (?, ?, ?)")
        .bind(r.sweep_id)
        .bind(&r.cell_key)
        .bind(pos)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO runs (id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name,
            dataset_digest, config_json, status, created_at, started_at, finished_at, heartbeat_at, env_json,
            n_params, best_epoch, epochs_run, train_seconds, test_seconds, predictions_path, pid, host,
            data_seconds, peak_rss_mib, samples_per_second)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'fixture (synthetic)', 'd1g3st', '{}', ?, ?, ?, ?, ?,
            '{\"hostname\":\"fixture\",\"cores\":2}', 1000, ?, ?, ?, 0.5, NULL, 1, 'fixture', 0.1, 200.0, ?)",
    )
    .bind(&r.id)
    .bind(r.sweep_id)
    .bind(&r.name)
    .bind(r.model)
    .bind(r.strategy)
    .bind(r.seed as i64)
    .bind(&r.config_hash)
    .bind(&r.cell_key)
    .bind(RunStatus::Finished)
    .bind(t)
    .bind(t)
    .bind(t)
    .bind(t)
    .bind(spec.epochs as i64 - 1)
    .bind(spec.epochs as i64)
    .bind(rng.gen_range(5.0..50.0))
    .bind(rng.gen_range(10_000.0..50_000.0))
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO params (run_id, key, value) VALUES (?, 'model.kind', ?), (?, 'strategy.kind', ?), (?, 'data.tasks', ?)")
        .bind(&r.id)
        .bind(r.model)
        .bind(&r.id)
        .bind(r.strategy)
        .bind(&r.id)
        .bind(serde_json::to_string(&spec.tasks).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Final metrics, curves and traces of one task of a run.
async fn insert_task(tx: &mut SqliteConnection, r: &FixtureRun<'_>, ti: usize, task: &str, spec: &FixtureSpec, rng: &mut ChaCha8Rng) -> sqlx::Result<()> {
    let base = r.base();
    for (split, metric, v) in [
        ("test", "auc", base + 0.02 * ti as f64 + rng.gen_range(-0.01..0.01)),
        ("test", "logloss", 0.2 + rng.gen_range(0.0..0.05)),
        ("valid", "auc", base + rng.gen_range(-0.01..0.01)),
    ] {
        sqlx::query("INSERT INTO metrics (run_id, split, task, metric, value) VALUES (?, ?, ?, ?, ?)")
            .bind(&r.id)
            .bind(split)
            .bind(task)
            .bind(metric)
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    for e in 1..=spec.epochs {
        sqlx::query("INSERT INTO curves (run_id, epoch, split, task, metric, value) VALUES (?, ?, 'valid', ?, 'auc', ?), (?, ?, 'train', ?, 'loss', ?)")
            .bind(&r.id)
            .bind(e as i64)
            .bind(task)
            .bind(base - 0.05 / e as f64)
            .bind(&r.id)
            .bind(e as i64)
            .bind(task)
            .bind(0.3 / e as f64)
            .execute(&mut *tx)
            .await?;
    }
    for p in 0..spec.trace_points {
        sqlx::query("INSERT INTO traces (run_id, step, epoch, term, weight, loss, grad_norm) VALUES (?, ?, 1, ?, ?, ?, ?)")
            .bind(&r.id)
            .bind((p * 10) as i64)
            .bind(task)
            .bind(if r.si == 0 { 1.0 } else { 1.0 + 0.2 * ((p + ti) as f64).sin() })
            .bind(0.3)
            .bind(rng.gen_range(0.1..1.0))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Conflict rates, epochs and (MMOE only) gate weights of a run.
async fn insert_run_extras(tx: &mut SqliteConnection, r: &FixtureRun<'_>, spec: &FixtureSpec, rng: &mut ChaCha8Rng) -> sqlx::Result<()> {
    for p in 0..spec.trace_points {
        sqlx::query("INSERT INTO trace_steps (run_id, step, conflict_rate) VALUES (?, ?, ?)")
            .bind(&r.id)
            .bind((p * 10) as i64)
            .bind(rng.gen_range(0..=3) as f64 / 3.0)
            .execute(&mut *tx)
            .await?;
    }
    for e in 1..=spec.epochs {
        sqlx::query("INSERT INTO epochs (run_id, epoch, steps, train_seconds, eval_seconds, samples_per_second, select_value) VALUES (?, ?, 100, 1.0, 0.1, 20000, ?)")
            .bind(&r.id)
            .bind(e as i64)
            .bind(r.base() - 0.05 / e as f64)
            .execute(&mut *tx)
            .await?;
    }
    if r.model == "mmoe" {
        for (ti, task) in spec.tasks.iter().enumerate() {
            for k in 0..3 {
                let w = if k == ti % 3 { 0.5 } else { 0.25 };
                sqlx::query("INSERT INTO gates (run_id, split, gate, expert, label, weight) VALUES (?, 'test', ?, ?, ?, ?)")
                    .bind(&r.id)
                    .bind(format!("mmoe/{task}"))
                    .bind(k as i64)
                    .bind(format!("e{k}"))
                    .bind(w)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    Ok(())
}

/// One sweep: every model x strategy x seed, in cell order.
async fn insert_sweep_runs(tx: &mut SqliteConnection, s: usize, seed: u64, spec: &FixtureSpec, t: &str, rng: &mut ChaCha8Rng, ids: &mut Vec<String>) -> sqlx::Result<()> {
    let sweep_id = format!("fixture{s:04}{seed:06x}");
    insert_sweep(tx, &sweep_id, &format!("fixture-{s}{}", spec.name_suffix), t).await?;
    let mut pos = 0i64;
    for (mi, model) in spec.models.iter().enumerate() {
        for (si, strategy) in spec.strategies.iter().enumerate() {
            let config_hash = format!("cfg{s}-{mi}-{si}");
            for seed_i in 1..=spec.seeds {
                let r = FixtureRun {
                    id: format!("fe{:010x}", rng.gen::<u64>() & 0xff_ffff_ffff),
                    sweep_id: &sweep_id,
                    name: format!("{model}-{strategy}-s{seed_i}{}", spec.name_suffix),
                    model,
                    strategy,
                    seed: seed_i,
                    config_hash: config_hash.clone(),
                    cell_key: format!("{config_hash}-{seed_i}"),
                    mi,
                    si,
                };
                insert_run(tx, &r, pos, spec, t, rng).await?;
                pos += 1;
                for (ti, task) in spec.tasks.iter().enumerate() {
                    insert_task(tx, &r, ti, task, spec, rng).await?;
                }
                insert_run_extras(tx, &r, spec, rng).await?;
                ids.push(r.id);
            }
        }
    }
    Ok(())
}

impl Store {
    /// Writes the fixture; returns the run ids in creation order.
    pub fn write_fixture(&self, spec: &FixtureSpec, seed: u64) -> Result<Vec<String>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let t = now();
        let mut ids = Vec::new();
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                for s in 0..spec.sweeps {
                    insert_sweep_runs(&mut tx, s, seed, spec, &t, &mut rng, &mut ids).await?;
                }
                tx.commit().await
            })
            .map_err(q("write fixture"))?;
        Ok(ids)
    }
}
