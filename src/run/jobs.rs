//! `bench run --jobs N`: registers the grid's cells (as `--enqueue` does),
//! then drains them with N `bench worker` child processes, one cell each at
//! a time. Processes, not threads: libtorch's thread pool and seed are
//! global to a process. Each cell gets cores / N libtorch threads unless
//! its grid sets `train.threads`.
//!
//! The children report through JSON lines on their stdout (`events`); the
//! parent draws a bar per worker on a terminal, and elsewhere prints a line
//! per cell that ends. Ctrl-C (or SIGTERM) reaches the parent only (the
//! children run in their own process group); it asks every child to stop
//! once with SIGTERM, and each marks its run killed, which queues its cell
//! again. A failed cell stops nothing: its worker goes on with the next.

use std::io::{BufRead, BufReader, IsTerminal};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Plan;
use crate::interrupt;
use crate::store::Store;

use super::claim::STALE_SECONDS_VAR;
use super::events::{DoneKind, WorkerEvent};
use super::worker::enqueue;
use super::{GridSource, Progress, RunError, RunOptions, RunSummary, Verbosity};

/// The variable that names the host recorded with each claim.
pub const HOST_VAR: &str = "MTLBENCH_HOST";
/// The exit code of a process stopped by Ctrl-C or SIGTERM.
pub const INTERRUPTED_EXIT: i32 = 130;

/// libtorch threads per cell when `jobs` cells share `cores` cores.
pub fn threads_per_cell(cores: usize, jobs: usize) -> usize {
    (cores / jobs.max(1)).max(1)
}

/// How to start the workers.
#[derive(Debug, Clone)]
pub struct Jobs<'a> {
    /// The `bench` program (the running one).
    pub program: &'a Path,
    pub jobs: usize,
    pub cores: usize,
}

/// Runs a plan's unfinished cells in `jobs.jobs` worker processes.
pub fn run_jobs(plan: &Plan, grid: &GridSource, store: &Store, opts: &RunOptions, jobs: &Jobs) -> Result<RunSummary, RunError> {
    opts.check()?;
    let lines = Progress::with_bars(opts.verbosity, plan.cells.len(), false);
    let finished = enqueue(plan, grid, store, opts, &lines)?;
    let mut summary = RunSummary {
        sweep_id: plan.grid_hash.clone(),
        sweep_name: plan.name.clone(),
        cells: plan.cells.len(),
        skipped: finished,
        ..Default::default()
    };
    let n = jobs.jobs.clamp(1, plan.cells.len().saturating_sub(finished).max(1));
    let threads = opts.threads.unwrap_or_else(|| threads_per_cell(jobs.cores, n));
    let mut view = View::new(opts.verbosity, n, plan.cells.len(), finished);
    view.line(&format!(
        "grid {}: {} cells ({finished} finished), {n} workers x {threads} libtorch threads (unless the grid sets train.threads), database {}",
        plan.name,
        plan.cells.len(),
        store.path().display()
    ));
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::with_capacity(n);
    for index in 0..n {
        let mut child = spawn(jobs.program, store, &plan.grid_hash, opts, threads).map_err(|source| RunError::Spawn {
            index: index + 1,
            program: jobs.program.display().to_string(),
            source,
        })?;
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send((index, WorkerEvent::parse(&line))).is_err() {
                        break;
                    }
                }
            });
        }
        children.push(child);
    }
    drop(tx);
    let failed_by = relay(&rx, &children, &mut summary, &mut view);
    for (w, mut c) in children.into_iter().enumerate() {
        let status = c.wait().map_err(|source| RunError::Spawn { index: w + 1, program: jobs.program.display().to_string(), source })?;
        if let Some(why) = abnormal(status, failed_by[w]) {
            summary.failed.push((format!("worker {}", w + 1), why));
        }
    }
    Ok(summary)
}

/// Shows and counts the workers' events until every worker's stdout is
/// closed; at Ctrl-C, asks each worker once to stop. Returns which workers
/// reported a failed cell.
fn relay(rx: &mpsc::Receiver<(usize, WorkerEvent)>, children: &[Child], summary: &mut RunSummary, view: &mut View) -> Vec<bool> {
    let mut failed_by = vec![false; children.len()];
    let mut stopping = false;
    loop {
        if interrupt::requested() && !stopping {
            stopping = true;
            summary.interrupted = true;
            for c in children {
                // SAFETY: kill sends a signal to a child this process started.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((w, e)) => {
                if let WorkerEvent::Done { cell, kind, text } = &e {
                    failed_by[w] |= *kind == DoneKind::Failed;
                    count(summary, cell, *kind, text);
                }
                view.event(w, e);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return failed_by,
        }
    }
}

/// Starts one worker on the sweep, in a process group of its own.
fn spawn(program: &Path, store: &Store, sweep: &str, opts: &RunOptions, threads: usize) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.arg("--db").arg(store.path()).args(["worker", "--sweep", sweep, "--events", "--threads", &threads.to_string()]);
    match opts.verbosity {
        Verbosity::Quiet => cmd.arg("--quiet"),
        Verbosity::Verbose => cmd.arg("--verbose"),
        Verbosity::Normal => &mut cmd,
    };
    cmd.env("MTLBENCH_CACHE", &opts.cache_dir).env(STALE_SECONDS_VAR, opts.stale_after_seconds.to_string()).env(HOST_VAR, &opts.host);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).process_group(0);
    cmd.spawn()
}

/// Counts a cell a worker is done with.
fn count(summary: &mut RunSummary, cell: &str, kind: DoneKind, text: &str) {
    match kind {
        DoneKind::Finished => summary.trained += 1,
        DoneKind::Failed => summary.failed.push((cell.to_string(), text.to_string())),
        DoneKind::Killed => summary.interrupted = true,
        DoneKind::Superseded => summary.superseded += 1,
    }
}

/// Why a worker's exit is a failure of its own (not of a cell it reported).
fn abnormal(status: ExitStatus, reported_failure: bool) -> Option<String> {
    match status.code() {
        Some(0) | Some(INTERRUPTED_EXIT) => None,
        Some(1) if reported_failure => None,
        Some(code) => Some(format!("exited with code {code} (its error is printed above)")),
        None => Some(format!("ended by a signal ({status})")),
    }
}

/// The parent's display: bars (grid + one per worker) on a terminal, lines elsewhere.
struct View {
    verbosity: Verbosity,
    bars: Option<(MultiProgress, ProgressBar, Vec<ProgressBar>)>,
}

impl View {
    fn new(verbosity: Verbosity, workers: usize, cells: usize, finished: usize) -> View {
        let on = verbosity != Verbosity::Quiet && std::io::stderr().is_terminal();
        let bars = on.then(|| {
            let style = |t: &str| ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let grid = multi.add(ProgressBar::new(cells as u64));
            grid.set_style(style("{prefix:.bold} [{bar:24.cyan/blue}] {pos}/{len} cells  {elapsed} elapsed"));
            grid.set_prefix("grid");
            grid.set_position(finished as u64);
            let per: Vec<ProgressBar> = (0..workers)
                .map(|w| {
                    let b = multi.add(ProgressBar::new(1000));
                    b.set_style(style("{prefix:>4} [{bar:24.green/white}] {wide_msg}"));
                    b.set_prefix(format!("w{}", w + 1));
                    b.set_message("waiting for a cell");
                    b
                })
                .collect();
            (multi, grid, per)
        });
        View { verbosity, bars }
    }

    fn line(&self, text: &str) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        match &self.bars {
            Some((m, _, _)) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn event(&mut self, w: usize, e: WorkerEvent) {
        let verbose = self.verbosity == Verbosity::Verbose;
        match (e, &self.bars) {
            (WorkerEvent::Line { text, warning }, _) if warning || verbose => self.line(&format!("w{} {text}", w + 1)),
            (WorkerEvent::Line { .. }, _) => {}
            (WorkerEvent::Training { text, .. }, Some((_, _, per))) => {
                per[w].set_position(0);
                per[w].set_message(text);
            }
            (WorkerEvent::Training { text, .. }, None) if verbose => self.line(&format!("w{} {text}", w + 1)),
            (WorkerEvent::Training { .. }, None) => {}
            (WorkerEvent::Step { fraction, text }, Some((_, _, per))) => {
                per[w].set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
                per[w].set_message(text);
            }
            (WorkerEvent::Step { .. }, None) => {}
            (WorkerEvent::Done { text, kind, .. }, bars) => {
                if let Some((_, grid, per)) = bars {
                    if kind != DoneKind::Killed {
                        grid.inc(1);
                    }
                    per[w].set_position(0);
                    per[w].set_message("waiting for a cell");
                }
                self.line(&format!("w{} {text}", w + 1));
            }
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some((multi, grid, per)) = &self.bars {
            for b in per {
                b.finish_and_clear();
            }
            grid.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn threads_split_the_cores_and_never_fall_to_zero() {
        assert_eq!(threads_per_cell(2, 1), 2);
        assert_eq!(threads_per_cell(2, 2), 1);
        assert_eq!(threads_per_cell(16, 3), 5);
        assert_eq!(threads_per_cell(2, 4), 1);
        assert_eq!(threads_per_cell(8, 0), 8);
    }

    #[test]
    fn a_worker_exit_is_its_own_failure_only_when_no_cell_explains_it() {
        let exit = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(abnormal(exit(0), false), None);
        assert_eq!(abnormal(exit(INTERRUPTED_EXIT), false), None);
        assert_eq!(abnormal(exit(1), true), None, "it reported the failed cell");
        assert_eq!(abnormal(exit(1), false).as_deref(), Some("exited with code 1 (its error is printed above)"));
        let killed = abnormal(ExitStatus::from_raw(libc::SIGKILL), false).unwrap();
        assert!(killed.starts_with("ended by a signal"), "{killed}");
    }

    #[test]
    fn done_events_count_into_the_summary() {
        let mut s = RunSummary::default();
        count(&mut s, "a", DoneKind::Finished, "");
        count(&mut s, "b", DoneKind::Failed, "b: failed: nan");
        count(&mut s, "c", DoneKind::Superseded, "");
        assert_eq!((s.trained, s.superseded, s.interrupted), (1, 1, false));
        assert_eq!(s.failed, vec![("b".to_string(), "b: failed: nan".to_string())]);
        count(&mut s, "d", DoneKind::Killed, "");
        assert!(s.interrupted);
    }
}
