//! Executes a plan: registers the sweep and its cells, skips cells already
//! finished, trains the rest one after another, and records everything in
//! the store. A failed or diverging cell is recorded as failed and the grid
//! goes on. This is the only place where the training loop meets the store.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

use crate::config::{Cell, ConfigError, Plan};
use crate::data::{self, DataError, Dataset};
use crate::env;
use crate::store::artifacts::PredictionFile;
use crate::interrupt;
use crate::store::{FinishInfo, NewRun, RunRow, Store, StoreError};
use crate::train::{self, EpochRecord, Observer, RunSpec, TraceRecord, TrainError, TrainResult};

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("loading data for cell {cell}: {source}")]
    Data { cell: String, source: DataError },
}

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Retrain cells that already have a finished run.
    pub force: bool,
    pub cache_dir: PathBuf,
    /// Print per-epoch progress to stderr.
    pub progress: bool,
    /// A `running` run without a heartbeat for this long is taken as dead
    /// (a run of this host whose process is gone is dead at once).
    pub stale_after_seconds: f64,
}

impl RunOptions {
    pub fn new(cache_dir: PathBuf) -> Self {
        RunOptions { force: false, cache_dir, progress: true, stale_after_seconds: 600.0 }
    }
}

/// What a `run` did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub sweep_id: String,
    pub cells: usize,
    pub trained: usize,
    pub skipped: usize,
    /// Cells another live process is training right now.
    pub busy: usize,
    pub failed: Vec<(String, String)>,
    /// A stop was requested (Ctrl-C); the grid ended early.
    pub interrupted: bool,
}

struct StoreObserver<'a> {
    store: &'a Store,
    run_id: &'a str,
    label: String,
    epochs: usize,
    progress: bool,
    last_beat: Instant,
    samples: f64,
    train_seconds: f64,
}

impl Observer for StoreObserver<'_> {
    fn on_epoch(&mut self, e: &EpochRecord) -> Result<(), String> {
        if self.progress {
            let aucs: Vec<String> =
                e.valid.iter().map(|m| format!("{} {}", m.task, m.auc.map_or("n/a".into(), |a| format!("{a:.4}")))).collect();
            eprintln!(
                "  {} epoch {}/{}: valid AUC {} | {:.1}s, {:.0} samples/s",
                self.label,
                e.epoch,
                self.epochs,
                aucs.join(", "),
                e.train_seconds + e.eval_seconds,
                e.samples_per_second
            );
        }
        self.samples += e.samples_per_second * e.train_seconds;
        self.train_seconds += e.train_seconds;
        self.last_beat = Instant::now();
        self.store.record_epoch(self.run_id, e).map_err(|e| e.to_string())
    }

    fn on_trace(&mut self, t: &TraceRecord) -> Result<(), String> {
        self.store.record_trace(self.run_id, t).map_err(|e| e.to_string())
    }

    fn keep_going(&mut self) -> bool {
        if self.last_beat.elapsed().as_secs_f64() > 5.0 {
            self.last_beat = Instant::now();
            // A missed heartbeat only delays stale detection; training goes on.
            if let Err(e) = self.store.heartbeat(self.run_id) {
                eprintln!("warning: heartbeat for run {}: {e}", self.run_id);
            }
        }
        !interrupt::requested()
    }
}

/// Why a `running` run of a cell is considered dead, if it is.
fn stale_reason(run: &RunRow, host: &str, stale_after: f64) -> Option<String> {
    if run.host.as_deref() == Some(host) {
        if let Some(pid) = run.pid {
            if !crate::interrupt::process_alive(pid) {
                return Some(format!("stale: process {pid} on {host} is gone"));
            }
            if pid == std::process::id() as i64 {
                return Some("stale: left running by this process".into());
            }
        }
    }
    let beat = run.heartbeat_at.as_deref().or(run.started_at.as_deref())?;
    let age = chrono::DateTime::parse_from_rfc3339(beat).ok().map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)?;
    (age > stale_after).then(|| format!("stale: no heartbeat for {age:.0}s"))
}

/// A short, unique run id (12 hex digits), addressable by prefix.
pub fn new_run_id(cell_key: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    crate::config::hash_hex(format!("{cell_key}|{nanos}|{}", std::process::id()).as_bytes())[..12].to_string()
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "panic".into()
    }
}

fn train_cell(cell: &Cell, data: &Dataset, obs: &mut dyn Observer) -> Result<TrainResult, TrainError> {
    let spec = RunSpec {
        model: cell.model,
        models: &cell.config.models,
        strategy: cell.strategy,
        strategies: &cell.config.strategies,
        train: &cell.config.train,
        seed: cell.seed,
    };
    // libtorch reports some errors by panicking through tch; keep the grid going.
    match std::panic::catch_unwind(AssertUnwindSafe(|| train::train(&spec, data, obs))) {
        Ok(r) => r,
        Err(p) => Err(TrainError::Validation(format!("libtorch error: {}", panic_message(p)))),
    }
}

fn save_predictions(store: &Store, run_id: &str, data: &Dataset, r: &TrainResult) -> Result<String, StoreError> {
    let p = &r.test_predictions;
    let mut columns: Vec<(String, Vec<f32>)> = p.tasks.iter().enumerate().map(|(t, n)| (n.clone(), p.task_column(t))).collect();
    columns.extend(p.extra.iter().cloned());
    let file = PredictionFile {
        rows: p.rows,
        tasks: p.tasks.clone(),
        users: data.test.users.clone(),
        labels: data.test.labels.clone(),
        columns,
    };
    let path = store.artifact_dir().join(format!("{run_id}.bin"));
    file.write(&path)?;
    Ok(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

/// Runs every cell of a plan that is not finished yet.
pub fn run_plan(plan: &Plan, grid_path: &Path, grid_text: &str, store: &Store, opts: &RunOptions) -> Result<RunSummary, RunError> {
    store.upsert_sweep(&plan.grid_hash, &plan.name, &grid_path.display().to_string(), grid_text)?;
    let mut summary = RunSummary { sweep_id: plan.grid_hash.clone(), cells: plan.cells.len(), ..Default::default() };
    let mut datasets: HashMap<String, Dataset> = HashMap::new();
    let mut data_seconds: HashMap<String, f64> = HashMap::new();
    let total = plan.cells.len();
    let host = env::hostname();
    for (i, cell) in plan.cells.iter().enumerate() {
        if interrupt::requested() {
            summary.interrupted = true;
            break;
        }
        let data_key = serde_json::to_string(&cell.config.data).unwrap_or_default();
        if !datasets.contains_key(&data_key) {
            let t0 = Instant::now();
            let ds = data::load(&cell.config.data, &opts.cache_dir).map_err(|source| RunError::Data { cell: cell.name(), source })?;
            if opts.progress {
                eprintln!(
                    "data {}: {} / {} / {} rows (train/valid/test), loaded in {:.1}s",
                    ds.name,
                    ds.train.rows,
                    ds.valid.rows,
                    ds.test.rows,
                    t0.elapsed().as_secs_f64()
                );
            }
            data_seconds.insert(data_key.clone(), t0.elapsed().as_secs_f64());
            datasets.insert(data_key.clone(), ds);
        }
        let cell_data = match &cell.single_task {
            // A single-task baseline: the same rows with one label column.
            Some(task) => {
                let key = format!("{data_key}|only:{task}");
                if !datasets.contains_key(&key) {
                    let ds = data::only_task(&datasets[&data_key], task).map_err(|source| RunError::Data { cell: cell.name(), source })?;
                    datasets.insert(key.clone(), ds);
                }
                key
            }
            None => data_key.clone(),
        };
        let data = &datasets[&cell_data];
        let cell_key = cell.cell_key(&data.digest);
        store.add_sweep_cell(&plan.grid_hash, &cell_key, i)?;
        let label = format!("[{}/{}] {}", i + 1, total, cell.name());
        if !opts.force {
            if let Some(done) = store.finished_run_for_cell(&cell_key)? {
                if opts.progress {
                    eprintln!("{label}: already finished as run {}, skipped", done.id);
                }
                summary.skipped += 1;
                continue;
            }
        }
        if let Some(running) = store.running_run_for_cell(&cell_key)? {
            match stale_reason(&running, &host, opts.stale_after_seconds) {
                Some(reason) => {
                    store.mark_stale(&running.id, &reason)?;
                    if opts.progress {
                        eprintln!("{label}: run {} was left running ({reason}); training the cell again", running.id);
                    }
                }
                None => {
                    if opts.progress {
                        eprintln!(
                            "{label}: being trained by run {} (pid {} on {}), skipped",
                            running.id,
                            running.pid.unwrap_or(0),
                            running.host.as_deref().unwrap_or("?")
                        );
                    }
                    summary.busy += 1;
                    continue;
                }
            }
        }
        if opts.force {
            // Keep the unique "one finished run per cell" invariant: the old run becomes history.
            if let Some(done) = store.finished_run_for_cell(&cell_key)? {
                store.fail_run(&done.id, "killed", "superseded by a forced rerun")?;
            }
        }
        let run_id = new_run_id(&cell_key);
        let environment = env::capture(&cell.config.train.device);
        let env_json = serde_json::to_string(&environment).unwrap_or_default();
        let config_json = serde_json::to_string(&cell.canonical).unwrap_or_default();
        let params = cell.params();
        let name = cell.name();
        let claimed = store.start_run(&NewRun {
            id: &run_id,
            sweep_id: &plan.grid_hash,
            name: &name,
            model: cell.model.name(),
            strategy: cell.strategy.name(),
            seed: cell.seed,
            config_hash: &cell.config_hash,
            cell_key: &cell_key,
            dataset_name: &data.name,
            dataset_digest: &data.digest,
            config_json: &config_json,
            env_json: &env_json,
            params: &params,
            pid: std::process::id(),
            host: &host,
            data_seconds: data_seconds.get(&data_key).copied().unwrap_or(0.0),
        })?;
        if !claimed {
            if opts.progress {
                eprintln!("{label}: claimed by another process just now, skipped");
            }
            summary.busy += 1;
            continue;
        }
        if opts.progress {
            eprintln!("{label}: training as run {run_id}");
        }
        let mut obs = StoreObserver {
            store,
            run_id: &run_id,
            label: label.clone(),
            epochs: cell.config.train.epochs,
            progress: opts.progress,
            last_beat: Instant::now(),
            samples: 0.0,
            train_seconds: 0.0,
        };
        let t0 = Instant::now();
        match train_cell(cell, data, &mut obs) {
            Ok(result) => {
                let pred = save_predictions(store, &run_id, data, &result)?;
                let info = FinishInfo {
                    peak_rss_mib: env::peak_rss_mib(),
                    samples_per_second: (obs.train_seconds > 0.0).then(|| obs.samples / obs.train_seconds),
                };
                store.finish_run(&run_id, &result, Some(&pred), info)?;
                summary.trained += 1;
                if opts.progress {
                    let aucs: Vec<String> = result
                        .test
                        .iter()
                        .map(|m| format!("{} {}", m.task, m.auc.map_or("n/a".into(), |a| format!("{a:.4}"))))
                        .collect();
                    eprintln!(
                        "{label}: finished in {:.1}s, best epoch {}, test AUC {}",
                        t0.elapsed().as_secs_f64(),
                        result.best_epoch,
                        aucs.join(", ")
                    );
                }
            }
            Err(e) => {
                let status = if matches!(e, TrainError::Interrupted) { "killed" } else { "failed" };
                store.fail_run(&run_id, status, &e.to_string())?;
                eprintln!("{label}: {status}: {e}");
                if status == "killed" {
                    summary.interrupted = true;
                    break;
                }
                summary.failed.push((name, e.to_string()));
            }
        }
    }
    Ok(summary)
}
