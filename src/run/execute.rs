//! Training one claimed cell: the training loop with an observer that
//! records each epoch and trace point under the run's id, keeps the run's
//! heartbeat, reports progress, and stops at Ctrl-C. libtorch errors that
//! surface as panics become a failed cell, not a dead grid.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use crate::config::Cell;
use crate::data::Dataset;
use crate::env;
use crate::interrupt;
use crate::store::Store;
use crate::train::{self, EpochRecord, Observer, RunSpec, StepProgress, TraceRecord, TrainError, TrainResult};

use super::progress::Progress;
use super::record::{self, Resources};

/// Seconds between heartbeats while training.
const HEARTBEAT_SECONDS: f64 = 5.0;

/// A finished training and the resources it used.
pub struct Trained {
    pub result: TrainResult,
    pub resources: Resources,
}

struct StoreObserver<'a> {
    store: &'a Store,
    run_id: &'a str,
    progress: &'a mut Progress,
    last_beat: Instant,
    samples: f64,
    train_seconds: f64,
}

impl Observer for StoreObserver<'_> {
    fn on_epoch(&mut self, e: &EpochRecord) -> Result<(), String> {
        self.progress.epoch(e);
        self.samples += e.samples_per_second * e.train_seconds;
        self.train_seconds += e.train_seconds;
        self.last_beat = Instant::now();
        self.store.record_epoch(self.run_id, &record::epoch_entry(e)).map_err(|e| e.to_string())
    }

    fn on_trace(&mut self, t: &TraceRecord) -> Result<(), String> {
        self.store.record_trace(self.run_id, &record::trace_entry(t)).map_err(|e| e.to_string())
    }

    fn on_step(&mut self, p: &StepProgress) {
        self.progress.step(p);
    }

    fn keep_going(&mut self) -> bool {
        if self.last_beat.elapsed().as_secs_f64() > HEARTBEAT_SECONDS {
            self.last_beat = Instant::now();
            // A missed heartbeat only delays stale detection; training goes on.
            if let Err(e) = self.store.heartbeat(self.run_id) {
                self.progress.warn(&format!("heartbeat for run {}: {e}", self.run_id));
            }
        }
        !interrupt::requested()
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

/// Trains a claimed cell as run `run_id`, recording as it goes.
pub fn train_cell(cell: &Cell, data: &Dataset, store: &Store, run_id: &str, progress: &mut Progress) -> Result<Trained, TrainError> {
    let spec = RunSpec {
        model: cell.model,
        models: &cell.config.models,
        strategy: cell.strategy,
        strategies: &cell.config.strategies,
        train: &cell.config.train,
        seed: cell.seed,
    };
    let mut obs = StoreObserver { store, run_id, progress, last_beat: Instant::now(), samples: 0.0, train_seconds: 0.0 };
    // libtorch reports some errors by panicking through tch; keep the grid going.
    let result = match std::panic::catch_unwind(AssertUnwindSafe(|| train::train(&spec, data, &mut obs))) {
        Ok(r) => r?,
        Err(p) => return Err(TrainError::Validation(format!("libtorch error: {}", panic_message(p)))),
    };
    let resources = Resources {
        peak_rss_mib: env::peak_rss_mib(),
        samples_per_second: (obs.train_seconds > 0.0).then(|| obs.samples / obs.train_seconds),
    };
    Ok(Trained { result, resources })
}
