//! What `bench run` shows while it works, in one place. On a terminal: a
//! grid bar (cells done of all, elapsed, ETA) and a cell bar (epoch, step
//! within the epoch, samples/s, the last validation AUC), with the lines
//! below printed above them. Off a terminal (pipes, CI, tests): one line per
//! event, stable enough to be parsed — a cell's start and finish (with its
//! test AUCs), skipped, busy and failed cells. `--verbose` adds a line per
//! epoch; `--quiet` shows nothing here (the caller prints the summary).
//! A worker process of `bench run --jobs` writes the same events as JSON
//! lines on stdout instead ([`super::events`]), for its parent to draw.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::Dataset;
use crate::store::RunStatus;
use crate::train::evaluate::{mean_auc, TaskMetrics};
use crate::train::{EpochRecord, StepProgress};

use super::claim::Claim;
use super::events::{DoneKind, WorkerEvent};

/// How much `bench run` tells on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Nothing but errors; the caller prints the summary.
    Quiet,
    /// A line per cell (and bars on a terminal).
    #[default]
    Normal,
    /// Also a line per epoch.
    Verbose,
}

/// The shortest time between two redraws of the bars.
const REDRAW: Duration = Duration::from_millis(100);
/// The shortest time between two step events of a worker.
const STEP_EVENTS: Duration = Duration::from_millis(500);
/// Longest cell name shown on the cell bar.
const NAME_WIDTH: usize = 48;

/// Tasks with their AUCs: `click 0.7012, like n/a`.
pub fn auc_list(ms: &[TaskMetrics]) -> String {
    let one = |m: &TaskMetrics| format!("{} {}", m.task, m.auc.map_or("n/a".into(), |a| format!("{a:.4}")));
    ms.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// A duration in seconds, short: `45s`, `3m12s`, `1h05m`.
pub fn short_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Seconds left in a grid: what is left of the current cell plus the cells
/// after it, each taking the mean time of the cells trained so far (before
/// the first one finishes, the current cell's own pace). `fraction` is how
/// much of the current cell is done, 0..=1. None while nothing is known.
pub fn eta_seconds(trained_seconds: f64, trained: usize, elapsed: f64, fraction: f64, after_current: usize) -> Option<f64> {
    let (per_cell, left) = if trained > 0 {
        let per_cell = trained_seconds / trained as f64;
        (per_cell, (per_cell - elapsed).max(0.0))
    } else if fraction > 0.0 {
        let per_cell = elapsed / fraction.min(1.0);
        (per_cell, per_cell - elapsed)
    } else {
        return None;
    };
    Some(left + per_cell * after_current as f64)
}

struct Bars {
    multi: MultiProgress,
    grid: ProgressBar,
    cell: ProgressBar,
}

impl Bars {
    fn new(total: usize) -> Bars {
        let style = |t: &str| ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let grid = multi.add(ProgressBar::new(total as u64));
        grid.set_style(style("{prefix:.bold} [{bar:24.cyan/blue}] {pos}/{len} cells  {elapsed} elapsed  {wide_msg}"));
        grid.set_prefix("grid");
        let cell = multi.add(ProgressBar::new(0));
        cell.set_style(style("     [{bar:24.green/white}] {pos}/{len} steps  {wide_msg}"));
        Bars { multi, grid, cell }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.cell.finish_and_clear();
        self.grid.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// The cell being trained.
struct Current {
    started: Instant,
    epoch_started: Instant,
    epochs: usize,
    fraction: f64,
    last_valid_auc: Option<f64>,
    last_draw: Option<Instant>,
}

/// The one reporter of `bench run` (see the module header).
pub struct Progress {
    verbosity: Verbosity,
    bars: Option<Bars>,
    /// Events as JSON lines on stdout instead of lines and bars.
    events: bool,
    total: usize,
    done: usize,
    label: String,
    name: String,
    /// The cell on the bars: `name (run id)`.
    on_bars: String,
    current: Option<Current>,
    trained_seconds: f64,
    trained: usize,
}

impl Progress {
    /// Bars when stderr is a terminal (and not quiet), lines otherwise.
    pub fn new(verbosity: Verbosity, cells: usize) -> Progress {
        let bars = verbosity != Verbosity::Quiet && std::io::stderr().is_terminal();
        Progress::with_bars(verbosity, cells, bars)
    }

    /// As [`Progress::new`], choosing bars or lines explicitly.
    pub fn with_bars(verbosity: Verbosity, cells: usize, bars: bool) -> Progress {
        Progress {
            verbosity,
            bars: bars.then(|| Bars::new(cells)),
            events: false,
            total: cells,
            done: 0,
            label: String::new(),
            name: String::new(),
            on_bars: String::new(),
            current: None,
            trained_seconds: 0.0,
            trained: 0,
        }
    }

    /// A worker's reporter: events on stdout ([`super::events`]), no bars.
    pub fn events(verbosity: Verbosity) -> Progress {
        let mut p = Progress::with_bars(verbosity, 0, false);
        p.events = true;
        p
    }

    /// The grid whose cells come next has `cells` cells (a worker moving
    /// from one sweep to another).
    pub fn set_total(&mut self, cells: usize) {
        self.total = cells;
        if let Some(b) = &self.bars {
            b.grid.set_length(cells as u64);
        }
    }

    fn shown(&self, level: Verbosity) -> bool {
        match level {
            Verbosity::Quiet => true,
            Verbosity::Normal => self.verbosity != Verbosity::Quiet,
            Verbosity::Verbose => self.verbosity == Verbosity::Verbose,
        }
    }

    fn emit(&self, e: WorkerEvent) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", e.to_line());
        let _ = out.flush();
    }

    /// The end of a claimed cell: an event for a worker's parent, else a line.
    fn cell_ended(&self, kind: DoneKind, level: Verbosity, line: String) {
        if self.events {
            self.emit(WorkerEvent::Done { cell: self.name.clone(), kind, text: line });
        } else {
            self.say(level, &line);
        }
    }

    fn say(&self, level: Verbosity, line: &str) {
        if !self.shown(level) {
            return;
        }
        if self.events {
            let warning = line.starts_with("warning: ");
            return self.emit(WorkerEvent::Line { text: line.to_string(), warning });
        }
        match &self.bars {
            Some(b) => {
                let _ = b.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// A warning that does not stop the grid (always shown).
    pub fn warn(&self, line: &str) {
        self.say(Verbosity::Quiet, &format!("warning: {line}"));
    }

    pub fn grid_started(&self, name: &str, db: &std::path::Path) {
        self.say(Verbosity::Normal, &format!("grid {name}: {} cells, database {}", self.total, db.display()));
    }

    pub fn data_loaded(&self, ds: &Dataset, seconds: f64) {
        let rows = format!("{} / {} / {} rows (train/valid/test)", ds.train.rows, ds.valid.rows, ds.test.rows);
        self.say(Verbosity::Normal, &format!("data {}: {rows}, loaded in {seconds:.1}s", ds.name));
    }

    /// The next cell (0-based position in the grid) begins.
    pub fn cell_begins(&mut self, index: usize, name: &str) {
        self.label = format!("[{}/{}] {name}", index + 1, self.total);
        self.name = name.to_string();
        self.current = None;
    }

    /// What claiming the cell gave; for a claimed cell, training begins.
    pub fn claimed(&mut self, claim: &Claim, epochs: usize) {
        let label = &self.label;
        match claim {
            Claim::AlreadyFinished { run_id } => self.say(Verbosity::Normal, &format!("{label}: already finished as run {run_id}, skipped")),
            Claim::Busy { run_id, pid, host } => {
                self.say(Verbosity::Normal, &format!("{label}: being trained by run {run_id} (pid {pid} on {host}), skipped"))
            }
            Claim::LostRace => self.say(Verbosity::Normal, &format!("{label}: claimed by another process just now, skipped")),
            Claim::Claimed { claim, recovered } => {
                let run_id = &claim.run_id;
                if let Some((old, reason)) = recovered {
                    self.say(Verbosity::Normal, &format!("{label}: run {old} was left running ({reason}); training the cell again"));
                }
                let line = format!("{label}: training as run {run_id}");
                if self.events {
                    self.emit(WorkerEvent::Training { cell: self.name.clone(), text: line });
                } else if self.bars.is_none() {
                    self.say(Verbosity::Normal, &line);
                }
                self.training(run_id, epochs);
            }
        }
    }

    fn training(&mut self, run_id: &str, epochs: usize) {
        let now = Instant::now();
        self.current = Some(Current { started: now, epoch_started: now, epochs, fraction: 0.0, last_valid_auc: None, last_draw: None });
        let name: String = self.name.chars().take(NAME_WIDTH).collect();
        self.on_bars = format!("{name} ({run_id})");
        self.update_eta();
        if let Some(b) = &self.bars {
            b.cell.set_length(0);
            b.cell.set_position(0);
            b.cell.set_message(format!("epoch 1/{epochs}"));
        }
    }

    /// After a training step (redraws at most every [`REDRAW`]).
    pub fn step(&mut self, p: &StepProgress) {
        let Some(c) = &mut self.current else { return };
        c.fraction = ((p.epoch - 1) as f64 + p.step as f64 / p.steps.max(1) as f64) / p.epochs.max(1) as f64;
        let every = if self.events { STEP_EVENTS } else { REDRAW };
        if (self.bars.is_none() && !self.events) || c.last_draw.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        c.last_draw = Some(Instant::now());
        let rate = p.samples as f64 / c.epoch_started.elapsed().as_secs_f64().max(1e-9);
        let auc = c.last_valid_auc.map_or("–".into(), |a| format!("{a:.4}"));
        let Some(b) = &self.bars else {
            let text = format!("{}  epoch {}/{}  {rate:.0} samples/s  valid AUC {auc}", self.on_bars, p.epoch, p.epochs);
            let fraction = c.fraction;
            return self.emit(WorkerEvent::Step { fraction, text });
        };
        b.cell.set_length(p.steps as u64);
        b.cell.set_position(p.step as u64);
        b.cell.set_message(format!("epoch {}/{}  {rate:.0} samples/s  valid AUC {auc}", p.epoch, p.epochs));
        self.update_eta();
    }

    fn update_eta(&self) {
        let (Some(b), Some(c)) = (&self.bars, &self.current) else { return };
        let after = self.total.saturating_sub(self.done + 1);
        let eta = eta_seconds(self.trained_seconds, self.trained, c.started.elapsed().as_secs_f64(), c.fraction, after);
        let eta = eta.map_or("ETA –".into(), |s| format!("ETA {}", short_duration(s)));
        b.grid.set_message(format!("{eta}  now {}", self.on_bars));
    }

    /// After an epoch's validation.
    pub fn epoch(&mut self, e: &EpochRecord) {
        let epochs = self.current.as_ref().map_or(0, |c| c.epochs);
        let line = format!(
            "  {} epoch {}/{epochs}: valid AUC {} | {:.1}s, {:.0} samples/s",
            self.label,
            e.epoch,
            auc_list(&e.valid),
            e.train_seconds + e.eval_seconds,
            e.samples_per_second
        );
        self.say(Verbosity::Verbose, &line);
        if let Some(c) = &mut self.current {
            c.last_valid_auc = mean_auc(&e.valid);
            c.epoch_started = Instant::now();
            c.last_draw = None;
        }
    }

    /// The claimed cell trained and was recorded.
    pub fn finished(&mut self, best_epoch: usize, test: &[TaskMetrics]) {
        let seconds = self.current.as_ref().map_or(0.0, |c| c.started.elapsed().as_secs_f64());
        self.trained_seconds += seconds;
        self.trained += 1;
        let line = format!("{}: finished in {seconds:.1}s, best epoch {best_epoch}, test AUC {}", self.label, auc_list(test));
        self.cell_ended(DoneKind::Finished, Verbosity::Normal, line);
    }

    /// The claimed cell failed or was killed.
    pub fn failed(&mut self, status: RunStatus, error: &str) {
        let kind = if status == RunStatus::Killed { DoneKind::Killed } else { DoneKind::Failed };
        self.cell_ended(kind, Verbosity::Normal, format!("{}: {status}: {error}", self.label));
    }

    /// The claimed cell's claim was lost to another process (always shown).
    pub fn superseded(&mut self, run_id: &str, reason: &str) {
        let line = format!(
            "{}: {reason}: another process took the cell over; run {run_id} is kept as a superseded attempt and the grid goes on",
            self.label
        );
        self.cell_ended(DoneKind::Superseded, Verbosity::Quiet, format!("warning: {line}"));
    }

    /// The cell is done with, whatever happened to it.
    pub fn cell_done(&mut self) {
        self.done += 1;
        self.current = None;
        self.on_bars.clear();
        if let Some(b) = &self.bars {
            b.grid.set_position(self.done as u64);
            b.grid.set_message("");
            b.cell.set_length(0);
            b.cell.set_position(0);
            b.cell.set_message("");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClaimToken;

    fn tm(task: &str, auc: Option<f64>) -> TaskMetrics {
        TaskMetrics { task: task.into(), auc, logloss: None, uauc: None, uauc_users: 0, positive_rate: 0.5 }
    }

    #[test]
    fn auc_lists_and_durations_read_as_the_lines_print_them() {
        assert_eq!(auc_list(&[tm("click", Some(0.70123)), tm("like", None)]), "click 0.7012, like n/a");
        assert_eq!(auc_list(&[]), "");
        assert_eq!(short_duration(0.4), "0s");
        assert_eq!(short_duration(59.4), "59s");
        assert_eq!(short_duration(192.0), "3m12s");
        assert_eq!(short_duration(3600.0 + 5.0 * 60.0 + 20.0), "1h05m");
    }

    #[test]
    fn eta_by_hand() {
        // Two cells took 20 s: 10 s each; 4 s into the third, 3 to come: 6 + 30.
        assert_eq!(eta_seconds(20.0, 2, 4.0, 0.9, 3), Some(36.0));
        // Nothing trained yet, a quarter of the first cell in 5 s: 15 s left of it, 2 more at 20 s.
        assert_eq!(eta_seconds(0.0, 0, 5.0, 0.25, 2), Some(55.0));
        // A cell running longer than the mean has nothing left (not a negative time).
        assert_eq!(eta_seconds(10.0, 1, 12.0, 0.5, 0), Some(0.0));
        assert_eq!(eta_seconds(0.0, 0, 1.0, 0.0, 5), None);
    }

    #[test]
    fn quiet_lines_and_bars_keep_their_state() {
        // Without a terminal nothing is drawn; the counters still move.
        let mut p = Progress::with_bars(Verbosity::Quiet, 3, false);
        p.cell_begins(0, "a");
        assert_eq!(p.label, "[1/3] a");
        p.claimed(&Claim::Claimed { claim: ClaimToken { run_id: "r1".into(), token: "t".into() }, recovered: None }, 2);
        p.step(&StepProgress { epoch: 1, epochs: 2, step: 5, steps: 10, samples: 50 });
        p.finished(1, &[tm("click", Some(0.6))]);
        p.cell_done();
        assert_eq!((p.done, p.trained), (1, 1));
        // Bars drawn to a hidden target take the same path.
        let mut b = Progress::with_bars(Verbosity::Normal, 2, true);
        b.cell_begins(0, "x");
        b.claimed(&Claim::Claimed { claim: ClaimToken { run_id: "r2".into(), token: "t".into() }, recovered: None }, 1);
        b.step(&StepProgress { epoch: 1, epochs: 1, step: 3, steps: 4, samples: 30 });
        let c = b.current.as_ref().unwrap();
        assert!((c.fraction - 0.75).abs() < 1e-12);
        b.cell_done();
    }
}
