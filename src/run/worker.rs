//! `bench worker`: drains the queue of registered cells. A worker reads the
//! sweeps of the database (or one), expands each sweep's stored grid again,
//! and claims the first registered cell in grid order that is queued: no
//! finished run, no failure since the sweep was registered, and no running
//! run whose lease is held (a heartbeat younger than the stale timeout, or
//! a live process on this host). The claim, the lease (the run's heartbeat)
//! and the fenced finish are the store's claim token (`claim`, `store`);
//! a worker that lost its lease keeps its result as a superseded attempt
//! and moves on. Ctrl-C or SIGTERM marks the run killed, which queues its
//! cell again, and ends the worker.
//!
//! A worker exits when every registered cell is finished or failed; while
//! cells are being trained elsewhere it waits, since a lease that expires
//! puts its cell back in the queue. With `follow` it also waits for new
//! sweeps and cells. `bench run --jobs N` is N of these in child processes
//! (`jobs`).
//!
//! The loop speaks to the store through its claim and queue functions only,
//! so that another store implementation serves it unchanged.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::Plan;
use crate::interrupt;
use crate::store::{Store, SweepRow};

use super::claim::{self, Claim};
use super::{train_claimed, Datasets, Grid, GridSource, Progress, RunError, RunOptions, RunSummary};

/// How a worker works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub run: RunOptions,
    /// Only this sweep: an id prefix or a name. All sweeps without it.
    pub sweep: Option<String>,
    /// Keep waiting for new cells when nothing is left.
    pub follow: bool,
    /// Time between looks at the queue while nothing can be claimed.
    pub poll: Duration,
}

impl WorkerOptions {
    pub fn new(run: RunOptions) -> WorkerOptions {
        WorkerOptions { run, sweep: None, follow: false, poll: Duration::from_secs(1) }
    }
}

/// What one look at the queue found.
enum Pass {
    /// A cell was claimed and dealt with: look again at once.
    Claimed,
    /// Nothing to claim, but cells are being trained elsewhere.
    Waiting,
    /// Every registered cell is finished or failed.
    Drained,
    /// Ctrl-C or SIGTERM.
    Stop,
}

/// The sweeps a worker drains: one (by id prefix or name) or all.
pub fn select_sweeps(store: &Store, which: Option<&str>) -> Result<Vec<SweepRow>, RunError> {
    let all = store.list_sweeps()?;
    let Some(which) = which else { return Ok(all) };
    let chosen: Vec<SweepRow> = all.into_iter().filter(|s| s.id.starts_with(which) || s.name == which).collect();
    if chosen.is_empty() {
        return Err(RunError::NoSuchSweep(which.to_string()));
    }
    Ok(chosen)
}

/// Drains the queue (see the module header); the summary counts this worker's cells.
pub fn work(store: &Store, opts: &WorkerOptions, progress: &mut Progress) -> Result<RunSummary, RunError> {
    opts.run.check()?;
    let mut w = Worker { store, opts, plans: HashMap::new(), datasets: Datasets::default(), summary: RunSummary::default() };
    loop {
        if interrupt::requested() {
            w.summary.interrupted = true;
            break;
        }
        match w.pass(progress)? {
            Pass::Claimed => {}
            Pass::Stop => break,
            Pass::Drained if !opts.follow => break,
            Pass::Drained | Pass::Waiting => sleep_unless_stopped(opts.poll),
        }
    }
    Ok(w.summary)
}

/// Sleeps, waking early at Ctrl-C.
fn sleep_unless_stopped(d: Duration) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until && !interrupt::requested() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Worker<'a> {
    store: &'a Store,
    opts: &'a WorkerOptions,
    /// Each sweep's grid, expanded once.
    plans: HashMap<String, Plan>,
    datasets: Datasets,
    summary: RunSummary,
}

impl Worker<'_> {
    /// Looks at every selected sweep's cells in order; claims and trains the first queued one.
    fn pass(&mut self, progress: &mut Progress) -> Result<Pass, RunError> {
        let mut waiting = false;
        let sweeps = match select_sweeps(self.store, self.opts.sweep.as_deref()) {
            // With --follow, a sweep not registered yet is waited for.
            Err(RunError::NoSuchSweep(_)) if self.opts.follow => return Ok(Pass::Waiting),
            other => other?,
        };
        for sweep in sweeps {
            if !self.plans.contains_key(&sweep.id) {
                let plan = plan_of(&sweep)?;
                progress.set_total(plan.cells.len());
                progress.grid_started(&plan.name, self.store.location());
                self.plans.insert(sweep.id.clone(), plan);
            }
            for registered in self.store.sweep_cells(&sweep.id)? {
                match self.try_cell(&sweep, registered.position as usize, &registered.cell_key, progress)? {
                    Pass::Drained => {}
                    Pass::Waiting => waiting = true,
                    done => return Ok(done),
                }
            }
        }
        Ok(if waiting { Pass::Waiting } else { Pass::Drained })
    }

    /// One registered cell: `Drained` when it is done with (finished,
    /// failed, or not this grid's), `Waiting` when it trains elsewhere.
    fn try_cell(&mut self, sweep: &SweepRow, position: usize, cell_key: &str, progress: &mut Progress) -> Result<Pass, RunError> {
        let store = self.store;
        if store.finished_run_for_cell(cell_key)?.is_some() || store.failed_since(cell_key, &sweep.updated_at)? {
            return Ok(Pass::Drained);
        }
        let plan = &self.plans[&sweep.id];
        let Some(cell) = plan.cells.get(position) else {
            progress.warn(&format!("sweep {}: cell {position} is not in its grid; left alone", sweep.id));
            return Ok(Pass::Drained);
        };
        let (data, data_seconds) = self.datasets.get(cell, &self.opts.run.cache_dir, progress)?;
        if cell.cell_key(&data.digest) != cell_key {
            progress.warn(&format!("sweep {}: the data of cell {} changed since it was registered; left alone", sweep.id, cell.name()));
            return Ok(Pass::Drained);
        }
        let run = &self.opts.run;
        let to_claim = claim::CellToClaim { plan, cell, data, cell_key, data_seconds: *data_seconds };
        let policy = claim::ClaimPolicy { force: false, stale_after_seconds: run.stale_after_seconds, host: &run.host };
        let c = claim::claim(store, &to_claim, policy)?;
        let Claim::Claimed { .. } = &c else {
            return Ok(match c {
                Claim::AlreadyFinished { .. } => Pass::Drained,
                _ => Pass::Waiting,
            });
        };
        progress.set_total(plan.cells.len());
        progress.cell_begins(position, &cell.name());
        progress.claimed(&c, cell.config.train.epochs);
        let Claim::Claimed { claim, .. } = c else { return Ok(Pass::Waiting) };
        let g = Grid { plan, store, opts: run };
        let outcome = train_claimed(&g, cell, data, &claim, progress)?;
        progress.cell_done();
        self.summary.cells += 1;
        let go_on = self.summary.add(cell.name(), outcome);
        Ok(if go_on { Pass::Claimed } else { Pass::Stop })
    }
}

/// A sweep's grid, expanded again from the text stored with it.
fn plan_of(sweep: &SweepRow) -> Result<Plan, RunError> {
    let source = GridSource { path: sweep.grid_path.clone().into(), text: sweep.grid_toml.clone() };
    let plan = source.plan()?;
    if plan.grid_hash != sweep.id {
        return Err(RunError::SweepChanged { id: sweep.id.clone(), name: sweep.name.clone(), grid: sweep.grid_path.clone(), now: plan.grid_hash });
    }
    Ok(plan)
}

/// Registers a plan's cells without training them (`bench run --enqueue`):
/// the sweep (its registration time is when failures start to count) and
/// each cell with its key, which needs the cell's data. Returns how many
/// cells are finished already.
pub fn enqueue(plan: &Plan, grid: &GridSource, store: &Store, opts: &RunOptions, progress: &Progress) -> Result<usize, RunError> {
    store.upsert_sweep(&plan.grid_hash, &plan.name, &grid.path.display().to_string(), &grid.text)?;
    let mut datasets = Datasets::default();
    let mut finished = 0;
    for (i, cell) in plan.cells.iter().enumerate() {
        let (data, _) = datasets.get(cell, &opts.cache_dir, progress)?;
        let key = cell.cell_key(&data.digest);
        store.add_sweep_cell(&plan.grid_hash, &key, i)?;
        finished += usize::from(store.finished_run_for_cell(&key)?.is_some());
    }
    Ok(finished)
}
