//! Training one claimed cell: the training loop with an observer that
//! records each epoch and trace point under the run's id, keeps the run's
//! heartbeat, reports progress, and stops at Ctrl-C or when the run's
//! claim is lost (another process took the cell over: nothing more is
//! recorded). libtorch errors that surface as panics become a failed cell,
//! not a dead grid.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use crate::config::Cell;
use crate::data::Dataset;
use crate::env;
use crate::interrupt;
use crate::store::{ClaimToken, Store, StoreError};
use crate::train::{self, EpochRecord, Observer, RunSpec, StepProgress, TraceRecord, TrainError, TrainResult};

use super::claim::HEARTBEAT_SECONDS;
use super::progress::Progress;
use super::record::{self, Resources};

/// Why a claimed cell did not train to the end.
#[derive(Debug)]
pub enum CellError {
    Train(TrainError),
    /// The run's claim was lost while training (the store's error says to what).
    ClaimLost(StoreError),
}

/// A finished training and the resources it used.
pub struct Trained {
    pub result: TrainResult,
    pub resources: Resources,
}

struct StoreObserver<'a> {
    store: &'a Store,
    claim: &'a ClaimToken,
    progress: &'a mut Progress,
    /// Set when a fenced write found the claim gone: training stops.
    lost: Option<StoreError>,
    last_beat: Instant,
    samples: f64,
    train_seconds: f64,
}

impl StoreObserver<'_> {
    /// A write's result for the loop: a lost claim is kept to stop on.
    fn written(&mut self, r: Result<(), StoreError>) -> Result<(), String> {
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let message = e.to_string();
                if matches!(e, StoreError::ClaimLost { .. }) {
                    self.lost = Some(e);
                }
                Err(message)
            }
        }
    }
}

impl Observer for StoreObserver<'_> {
    fn on_epoch(&mut self, e: &EpochRecord) -> Result<(), String> {
        self.progress.epoch(e);
        self.samples += e.samples_per_second * e.train_seconds;
        self.train_seconds += e.train_seconds;
        self.last_beat = Instant::now();
        let r = self.store.record_epoch(self.claim, &record::epoch_entry(e));
        self.written(r)
    }

    fn on_trace(&mut self, t: &TraceRecord) -> Result<(), String> {
        let r = self.store.record_trace(self.claim, &record::trace_entry(t));
        self.written(r)
    }

    fn on_step(&mut self, p: &StepProgress) {
        self.progress.step(p);
    }

    fn keep_going(&mut self) -> bool {
        if self.last_beat.elapsed().as_secs_f64() > HEARTBEAT_SECONDS {
            self.last_beat = Instant::now();
            // A missed heartbeat only delays stale detection; a lost claim stops training.
            match self.store.heartbeat(self.claim) {
                Ok(()) => {}
                Err(e @ StoreError::ClaimLost { .. }) => self.lost = Some(e),
                Err(e) => self.progress.warn(&format!("heartbeat for run {}: {e}", self.claim.run_id)),
            }
        }
        self.lost.is_none() && !interrupt::requested()
    }
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

/// Trains a claimed cell under `claim`, recording as it goes.
/// `threads`: libtorch threads when the cell's `train.threads` is unset.
pub fn train_cell(
    cell: &Cell,
    data: &Dataset,
    store: &Store,
    claim: &ClaimToken,
    threads: Option<usize>,
    progress: &mut Progress,
) -> Result<Trained, CellError> {
    let mut train_cfg = cell.config.train.clone();
    train_cfg.threads = train_cfg.threads.or(threads);
    let spec = RunSpec {
        model: cell.model,
        models: &cell.config.models,
        strategy: cell.strategy,
        strategies: &cell.config.strategies,
        train: &train_cfg,
        seed: cell.seed,
    };
    let mut obs = StoreObserver { store, claim, progress, lost: None, last_beat: Instant::now(), samples: 0.0, train_seconds: 0.0 };
    // libtorch reports some errors by panicking through tch; keep the grid going.
    let trained = std::panic::catch_unwind(AssertUnwindSafe(|| train::train(&spec, data, &mut obs)));
    if let Some(lost) = obs.lost.take() {
        return Err(CellError::ClaimLost(lost));
    }
    let result = match trained {
        Ok(r) => r.map_err(CellError::Train)?,
        Err(p) => return Err(CellError::Train(TrainError::Validation(format!("libtorch error: {}", panic_message(p))))),
    };
    let resources = Resources {
        peak_rss_mib: env::peak_rss_mib(),
        samples_per_second: (obs.train_seconds > 0.0).then(|| obs.samples / obs.train_seconds),
    };
    Ok(Trained { result, resources })
}
