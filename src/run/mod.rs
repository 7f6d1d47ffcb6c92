//! Executes a plan: registers the sweep and its cells, then for each cell
//! claim -> train -> record -> report. Finished cells are skipped, a cell
//! another process trains is left to it, a failed or diverging cell is
//! recorded as failed and the grid goes on, a run whose claim another
//! process took over is kept as a superseded attempt and the grid goes on,
//! Ctrl-C ends the grid with the running run marked killed. This is the
//! only place where the training loop meets the store; what the user sees
//! goes through [`Progress`].

pub mod claim;
pub mod events;
mod execute;
pub mod jobs;
pub mod manifest;
pub mod progress;
pub mod record;
pub mod worker;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

use crate::config::{self, Cell, ConfigError, Plan};
use crate::data::{self, DataError, Dataset};
use crate::env;
use crate::interrupt;
use crate::store::{ClaimToken, RunStatus, Store, StoreError};
use crate::train::TrainError;

pub use claim::{new_run_id, Claim, StaleTimeoutError};
use execute::CellError;
use record::Finished;
pub use progress::{Progress, Verbosity};

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("loading data for cell {cell}: {cause}")]
    Data { cell: String, cause: DataError },
    #[error(transparent)]
    StaleTimeout(#[from] StaleTimeoutError),
    #[error("no sweep matches `{0}` (give a sweep id prefix or name, see `bench list`; register one with `bench run GRID --enqueue`)")]
    NoSuchSweep(String),
    #[error("sweep {id} ({name}): its grid {grid} now expands to sweep {now} (another version of mtlbench?); register it again with `bench run {grid} --enqueue`")]
    SweepChanged { id: String, name: String, grid: String, now: String },
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("starting worker {index} ({program}): {source}")]
    Spawn { index: usize, program: String, source: std::io::Error },
}

/// A grid file's path and text (or the embedded demo grid).
#[derive(Debug, Clone)]
pub struct GridSource {
    pub path: PathBuf,
    pub text: String,
}

impl GridSource {
    /// Reads `path`, or takes the embedded demo grid without one.
    pub fn read(path: Option<&Path>) -> Result<GridSource, ConfigError> {
        match path {
            Some(p) => {
                Ok(GridSource { path: p.to_path_buf(), text: config::read_text(p)? })
            }
            None => Ok(GridSource { path: PathBuf::from("experiments/demo.toml (embedded)"), text: crate::DEMO_GRID.to_string() }),
        }
    }

    /// Parses, validates and expands the grid into its cells.
    pub fn plan(&self) -> Result<Plan, ConfigError> {
        config::plan_grid(&self.text, &self.path)
    }
}

/// The cells a plan expands to, one line each (`bench run --dry-run`).
pub fn describe_plan(plan: &Plan) -> String {
    let mut s = format!("grid {} (sweep {}): {} cells\n", plan.name, plan.grid_hash, plan.cells.len());
    for c in &plan.cells {
        s.push_str(&format!("  {}  config {}\n", c.name(), c.config_hash));
    }
    s
}

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Retrain cells that already have a finished run.
    pub force: bool,
    pub cache_dir: PathBuf,
    pub verbosity: Verbosity,
    /// A `running` run without a heartbeat for this long is taken as dead
    /// (a run of this host whose process is gone is dead at once); at
    /// least [`claim::MIN_STALE_SECONDS`].
    pub stale_after_seconds: f64,
    /// libtorch threads of a cell whose grid leaves `train.threads` unset
    /// (`None`: libtorch's default, the number of cores).
    pub threads: Option<usize>,
    /// The host name recorded with each claim (stale runs of this host are
    /// recognised by their process being gone).
    pub host: String,
}

impl RunOptions {
    pub fn new(cache_dir: PathBuf) -> Self {
        RunOptions {
            force: false,
            cache_dir,
            verbosity: Verbosity::Normal,
            stale_after_seconds: claim::DEFAULT_STALE_SECONDS,
            threads: None,
            host: env::hostname(),
        }
    }

    /// The stale timeout, checked (at least [`claim::MIN_STALE_SECONDS`]).
    fn check(&self) -> Result<(), RunError> {
        let stale = self.stale_after_seconds;
        claim::check_stale_seconds(stale, "the stale timeout (RunOptions::stale_after_seconds)", &stale.to_string())?;
        Ok(())
    }
}

/// What a `run` did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub sweep_id: String,
    pub sweep_name: String,
    pub cells: usize,
    pub trained: usize,
    pub skipped: usize,
    /// Cells another live process is training right now.
    pub busy: usize,
    pub failed: Vec<(String, String)>,
    /// Cells whose claim another process took over while this one trained
    /// them: the attempt is kept as superseded, the cell is the other's.
    pub superseded: usize,
    /// A stop was requested (Ctrl-C); the grid ended early.
    pub interrupted: bool,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sweep {} ({}): {} cells, {} trained, {} already finished, {} busy elsewhere, {} failed",
            self.sweep_id,
            self.sweep_name,
            self.cells,
            self.trained,
            self.skipped,
            self.busy,
            self.failed.len()
        )?;
        if self.superseded > 0 {
            write!(f, ", {} superseded (taken over by another process)", self.superseded)?;
        }
        Ok(())
    }
}

/// What became of one cell.
#[derive(Debug, Clone, PartialEq)]
enum CellOutcome {
    Trained,
    Skipped,
    Busy,
    Failed(String),
    Superseded,
    Killed,
}

impl RunSummary {
    /// Counts a cell; false when the grid must stop.
    fn add(&mut self, name: String, outcome: CellOutcome) -> bool {
        match outcome {
            CellOutcome::Trained => self.trained += 1,
            CellOutcome::Skipped => self.skipped += 1,
            CellOutcome::Busy => self.busy += 1,
            CellOutcome::Failed(e) => self.failed.push((name, e)),
            CellOutcome::Superseded => self.superseded += 1,
            CellOutcome::Killed => {
                self.interrupted = true;
                return false;
            }
        }
        true
    }
}

/// The datasets of a plan, each loaded once (with its load time).
#[derive(Default)]
struct Datasets {
    loaded: HashMap<String, (Dataset, f64)>,
}

impl Datasets {
    fn get(&mut self, cell: &Cell, cache_dir: &Path, progress: &Progress) -> Result<&(Dataset, f64), RunError> {
        let key = serde_json::to_string(&cell.config.data).unwrap_or_default();
        if !self.loaded.contains_key(&key) {
            let t0 = Instant::now();
            let ds = data::load(&cell.config.data, cache_dir).map_err(|source| RunError::Data { cell: cell.name(), cause: source })?;
            let seconds = t0.elapsed().as_secs_f64();
            progress.data_loaded(&ds, seconds);
            // Once per dataset: its single-task views share its labels.
            for c in data::constant_labels(&ds) {
                progress.warn(&c.to_string());
            }
            self.loaded.insert(key.clone(), (ds, seconds));
        }
        let Some(task) = &cell.single_task else {
            return Ok(&self.loaded[&key]);
        };
        // A single-task baseline: the same rows with one label column.
        let only = format!("{key}|only:{task}");
        if !self.loaded.contains_key(&only) {
            let (full, seconds) = &self.loaded[&key];
            let ds = data::only_task(full, task).map_err(|source| RunError::Data { cell: cell.name(), cause: source })?;
            let seconds = *seconds;
            self.loaded.insert(only.clone(), (ds, seconds));
        }
        Ok(&self.loaded[&only])
    }
}

/// What every cell of a plan shares.
struct Grid<'a> {
    plan: &'a Plan,
    store: &'a Store,
    opts: &'a RunOptions,
}

/// Runs every cell of a plan that is not finished yet.
pub fn run_plan(plan: &Plan, grid: &GridSource, store: &Store, opts: &RunOptions) -> Result<RunSummary, RunError> {
    run_cells(plan, grid, store, opts, None)
}

/// Runs the cell at position `only` of a plan (or every cell), unless finished.
pub fn run_cells(plan: &Plan, grid: &GridSource, store: &Store, opts: &RunOptions, only: Option<usize>) -> Result<RunSummary, RunError> {
    opts.check()?;
    store.upsert_sweep(&plan.grid_hash, &plan.name, &grid.path.display().to_string(), &grid.text)?;
    let cells = if only.is_some() { 1 } else { plan.cells.len() };
    let mut summary = RunSummary { sweep_id: plan.grid_hash.clone(), sweep_name: plan.name.clone(), cells, ..Default::default() };
    let mut progress = Progress::new(opts.verbosity, plan.cells.len());
    progress.grid_started(&plan.name, store.path());
    let g = Grid { plan, store, opts };
    let mut datasets = Datasets::default();
    for (i, cell) in plan.cells.iter().enumerate() {
        if only.is_some_and(|n| n != i) {
            continue;
        }
        if interrupt::requested() {
            summary.interrupted = true;
            break;
        }
        let (data, data_seconds) = datasets.get(cell, &opts.cache_dir, &progress)?;
        progress.cell_begins(i, &cell.name());
        let outcome = run_cell(&g, i, cell, data, *data_seconds, &mut progress)?;
        progress.cell_done();
        if !summary.add(cell.name(), outcome) {
            break;
        }
    }
    Ok(summary)
}

/// One cell: claim -> train -> record, reporting each step.
fn run_cell(g: &Grid, i: usize, cell: &Cell, data: &Dataset, data_seconds: f64, progress: &mut Progress) -> Result<CellOutcome, RunError> {
    let cell_key = cell.cell_key(&data.digest);
    g.store.add_sweep_cell(&g.plan.grid_hash, &cell_key, i)?;
    let to_claim = claim::CellToClaim { plan: g.plan, cell, data, cell_key: &cell_key, data_seconds };
    let policy = claim::ClaimPolicy { force: g.opts.force, stale_after_seconds: g.opts.stale_after_seconds, host: &g.opts.host };
    let c = claim::claim(g.store, &to_claim, policy)?;
    progress.claimed(&c, cell.config.train.epochs);
    match c {
        Claim::Claimed { claim, .. } => train_claimed(g, cell, data, &claim, progress),
        Claim::AlreadyFinished { .. } => Ok(CellOutcome::Skipped),
        Claim::Busy { .. } | Claim::LostRace => Ok(CellOutcome::Busy),
    }
}

/// A claimed cell: train -> record (or fail, or keep a lost claim's attempt).
fn train_claimed(g: &Grid, cell: &Cell, data: &Dataset, claim: &ClaimToken, progress: &mut Progress) -> Result<CellOutcome, RunError> {
    match execute::train_cell(cell, data, g.store, claim, g.opts.threads, progress) {
        Ok(trained) => {
            let outcome = record::outcome(&trained.result, trained.resources);
            let predictions = record::predictions_file(&trained.result.test_predictions, &data.test);
            match record::finish(g.store, &claim, &outcome, &predictions)? {
                Finished::Recorded => {
                    progress.finished(trained.result.best_epoch, &trained.result.test);
                    Ok(CellOutcome::Trained)
                }
                Finished::Superseded { reason } => Ok(superseded(progress, &claim, &reason)),
            }
        }
        Err(CellError::ClaimLost(lost)) => {
            let reason = record::supersede(g.store, &claim, None, &lost)?;
            Ok(superseded(progress, &claim, &reason))
        }
        Err(CellError::Train(e)) => fail_cell(g.store, &claim, e, progress),
    }
}

/// Reports a cell whose claim was lost.
fn superseded(progress: &mut Progress, claim: &ClaimToken, reason: &str) -> CellOutcome {
    progress.superseded(&claim.run_id, reason);
    CellOutcome::Superseded
}

/// Records a cell whose training failed or was interrupted.
fn fail_cell(store: &Store, claim: &ClaimToken, e: TrainError, progress: &mut Progress) -> Result<CellOutcome, RunError> {
    let status = if matches!(e, TrainError::Interrupted) { RunStatus::Killed } else { RunStatus::Failed };
    match store.fail_run(claim, status, &e.to_string()) {
        Ok(()) => {}
        Err(lost @ StoreError::ClaimLost { .. }) if status == RunStatus::Failed => {
            let reason = record::supersede(store, claim, None, &lost)?;
            return Ok(superseded(progress, claim, &reason));
        }
        Err(StoreError::ClaimLost { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    progress.failed(status, &e.to_string());
    Ok(if status == RunStatus::Killed { CellOutcome::Killed } else { CellOutcome::Failed(e.to_string()) })
}
