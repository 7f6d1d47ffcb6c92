//! The mtlbench side of `bench-perf`, run in a child process of its own
//! (`bench-perf worker`) so that its peak memory is its own. It reads the
//! exchange folder, loads a model's initial weights and trains it exactly as
//! the training loop does: batches from `SplitTensors::shuffled`, epoch
//! after epoch while the steps last, the
//! [`Stepper`] step (equal weighting, Adam), strategy traces every
//! `trace_every` steps with their gradient diagnostics, written to a real
//! SQLite store. Each part is timed, so the harness overhead (batching,
//! tracing, database writes) is measured rather than assumed; then the test
//! AUC of the trained model.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{nn, Device};

use super::exchange::{self, Manifest, TrainSettings};
use super::PerfError;
use mtlbench::data::batch::to_vec_f32;
use mtlbench::data::SplitTensors;
use mtlbench::models::{self, ModelKind};
use mtlbench::strategies::{StrategiesConfig, StrategyKind};
use mtlbench::store::{ClaimToken, IfFinished, NewRun, Store};
use mtlbench::train::{evaluate, Stepper, TraceRecord, TrainConfig};

/// Where the time of the timed steps went (milliseconds per step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// Forward, loss, backward and optimizer step, diagnostics excluded.
    pub step_ms: f64,
    /// Assembling the batch (`index_select` from the split's tensors).
    pub batch_ms: f64,
    /// Gradient diagnostics of the traced steps, spread over all steps.
    pub trace_ms: f64,
    /// Writing the traces to SQLite, spread over all steps.
    pub db_ms: f64,
    /// (batch + trace + db) / step, in percent.
    pub percent: f64,
}

/// One side's result, as both sides print it (JSON on stdout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideResult {
    pub side: String,
    pub model: String,
    pub threads: usize,
    pub batch_size: usize,
    pub steps: usize,
    pub timed_steps: usize,
    pub timed_seconds: f64,
    /// CPU time (user + system, all threads) of the timed steps: less
    /// sensitive than wall time to other processes on the cores.
    pub timed_cpu_seconds: f64,
    pub samples_per_second: f64,
    pub median_step_ms: f64,
    /// Test AUC per task (`None` = undefined).
    pub test_auc: Vec<(String, Option<f64>)>,
    /// Largest |p - p_mtlbench| of the initial model on the check rows.
    #[serde(default)]
    pub check_max_abs_diff: Option<f64>,
    #[serde(default)]
    pub overhead: Option<Overhead>,
    /// Peak resident memory of the side's process (its VmHWM), MiB.
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
    /// Training loss (sum of the task terms) of every step, timed or not.
    #[serde(default)]
    pub losses: Vec<f64>,
    /// torch.compile's side: seconds of its first step (tracing and
    /// compiling the forward and backward graphs) beyond a timed step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_seconds: Option<f64>,
    /// mtlbench's side: whether its steps without gradient traces went
    /// through the model's fused pass (`mtlbench::models::fused`) rather
    /// than autograd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fused_pass: Option<bool>,
}

/// User + system CPU seconds of this process so far, all threads.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A throwaway store with one run to hang the traces on.
fn trace_store(path: &Path, model: ModelKind) -> Result<(Store, ClaimToken), PerfError> {
    let store = Store::open(path).map_err(|e| PerfError::Store(e.to_string()))?;
    let id = "ffff00000000".to_string();
    store.upsert_sweep("perf", "perf", "-", "").map_err(|e| PerfError::Store(e.to_string()))?;
    let run = NewRun {
        id: &id,
        sweep_id: "perf",
        name: model.name(),
        model: model.name(),
        strategy: "equal",
        seed: 0,
        config_hash: "perf",
        cell_key: "perf",
        dataset_name: "perf",
        dataset_digest: "perf",
        config_json: "{}",
        env_json: "{}",
        params: &[],
        pid: std::process::id(),
        pid_start: None,
        host: "perf",
        data_seconds: 0.0,
    };
    let claim = store.start_run(&run, IfFinished::Refuse).map_err(|e| PerfError::Store(e.to_string()))?;
    let claim = claim.ok_or_else(|| PerfError::Store(format!("{}: the trace run is already claimed", path.display())))?;
    Ok((store, claim))
}

/// Trains `kind` from the exchange folder `dir` and measures it. `round`
/// offsets the seed of the dropout masks (the weights come from the folder
/// and the batch order from the manifest's seed, so only dropout differs);
/// libtorch's generator is seeded just before the first step, as the
/// reference seeds torch's, so that with the models' `dropout_masks =
/// libtorch` both sides draw the very same masks.
pub fn run(dir: &Path, kind: ModelKind, round: u64) -> Result<SideResult, PerfError> {
    let m = Manifest::read(dir)?;
    let s = &m.train;
    tch::set_num_threads(m.threads as i32);
    let train = exchange::read_split(dir, &m.train_split, &m.schema)?;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = models::build(kind, &vs, &m.schema, &m.models_config).map_err(|e| PerfError::Model(e.to_string()))?;
    let files = m.model(kind)?;
    exchange::load_weights(dir, files, exchange::model_variables(&vs, &m.schema, &m.models_config)?)?;
    let test = exchange::read_split(dir, &m.test_split, &m.schema)?;
    let test_t = SplitTensors::new(&test, &m.schema, Device::Cpu);
    // The loaded model must give the probabilities the parent computed.
    let want: Vec<f32> = exchange::read_array(dir, &files.check_probs)?;
    let rows = files.check_probs.shape.first().copied().unwrap_or(0);
    let got = to_vec_f32(&tch::no_grad(|| model.forward_t(&test_t.slice(0, rows), false).probs))?;
    let check = got.iter().zip(&want).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
    let cfg = train_config(s);
    let strategies = StrategiesConfig::default();
    let mut stepper = Stepper::new(model.as_ref(), &vs, StrategyKind::Equal, &strategies, &cfg, s.seed, Device::Cpu)
        .map_err(|e| PerfError::Model(e.to_string()))?;
    let fused_pass = stepper.takes_fused();
    let db_dir = super::ScratchDir::new("perf-db")?;
    let (store, claim) = trace_store(&db_dir.0.join("perf.sqlite"), kind)?;
    let tracer = Tracer { terms: stepper.terms().to_vec(), store, claim };

    let split = SplitTensors::new(&train, &m.schema, Device::Cpu);
    // The masks of the round start from here, as the reference's do: what
    // building the model drew from the generator differs between the sides.
    tch::manual_seed(s.seed.wrapping_add(round) as i64);
    let out_of_rows = |message: String| PerfError::Format { path: dir.join(exchange::MANIFEST), message };
    if s.steps * s.batch_size > train.rows && train.rows % s.batch_size != 0 {
        return Err(out_of_rows(format!(
            "{} steps of {} rows need more than one epoch, and {} train rows are not whole batches",
            s.steps, s.batch_size, train.rows
        )));
    }
    let timed = train_timed(s, &split, &mut stepper, &tracer)?
        .ok_or_else(|| out_of_rows(format!("{} train rows give no batch", train.rows)))?;

    let pred = evaluate::predict(model.as_ref(), &test_t, &m.schema, s.eval_batch_size)?;
    let test_auc = evaluate::task_metrics(&pred, &test).into_iter().map(|t| (t.task, t.auc)).collect();
    let n = timed.times.step.len();
    Ok(SideResult {
        side: "mtlbench".into(),
        model: kind.name().into(),
        threads: m.threads,
        batch_size: s.batch_size,
        steps: s.steps,
        timed_steps: n,
        timed_seconds: timed.seconds,
        timed_cpu_seconds: timed.cpu_seconds,
        samples_per_second: (n * s.batch_size) as f64 / timed.seconds.max(1e-12),
        median_step_ms: timed.times.plain_median() * 1e3,
        test_auc,
        check_max_abs_diff: Some(check),
        overhead: Some(timed.times.overhead()),
        peak_rss_mib: mtlbench::env::peak_rss_mib(),
        losses: timed.losses,
        compile_seconds: None,
        fused_pass: Some(fused_pass),
    })
}

/// The training settings of the manifest as the training loop takes them.
fn train_config(s: &TrainSettings) -> TrainConfig {
    TrainConfig {
        batch_size: s.batch_size,
        lr: s.lr,
        beta1: s.beta1,
        beta2: s.beta2,
        eps: s.eps,
        weight_decay: s.weight_decay,
        trace_every: s.trace_every,
        eval_batch_size: s.eval_batch_size,
        step: s.step,
        ..Default::default()
    }
}

/// Where traced steps' records go: the loss terms' names and the store.
struct Tracer {
    terms: Vec<String>,
    store: Store,
    claim: ClaimToken,
}

/// Each timed step's parts, in seconds: batch assembly, the step itself,
/// the trace's SQLite write, and whether the step was traced.
#[derive(Default)]
struct StepTimes {
    batch: Vec<f64>,
    step: Vec<f64>,
    db: Vec<f64>,
    traced: Vec<bool>,
}

impl StepTimes {
    /// The steps without gradient traces.
    fn plain(&self) -> Vec<f64> {
        self.step.iter().zip(&self.traced).filter(|(_, &d)| !d).map(|(t, _)| *t).collect()
    }

    fn plain_median(&self) -> f64 {
        median(&self.plain())
    }

    /// Per step: the step without its diagnostics, and what batching,
    /// tracing (a traced step's time over the plain median) and SQLite add.
    fn overhead(&self) -> Overhead {
        let plain = self.plain();
        let plain_median = median(&plain);
        let timed = self.step.len();
        let n = timed.max(1) as f64;
        // (+ 0.0: an empty f64 sum is -0.0.)
        let trace_extra =
            0.0 + self.step.iter().zip(&self.traced).filter(|(_, &d)| d).map(|(t, _)| (t - plain_median).max(0.0)).sum::<f64>();
        let steps_only: f64 = plain.iter().sum::<f64>() + plain_median * (timed - plain.len()) as f64;
        let batch_sum: f64 = self.batch.iter().sum();
        let db_sum: f64 = self.db.iter().sum();
        Overhead {
            step_ms: steps_only / n * 1e3,
            batch_ms: batch_sum / n * 1e3,
            trace_ms: trace_extra / n * 1e3,
            db_ms: db_sum / n * 1e3,
            percent: 100.0 * (batch_sum + trace_extra + db_sum) / steps_only.max(1e-12),
        }
    }
}

/// The training steps of the run: their times after the warm-up, the loss
/// of every step, and the timed steps' wall and CPU seconds.
struct Timed {
    times: StepTimes,
    losses: Vec<f64>,
    seconds: f64,
    cpu_seconds: f64,
}

/// Runs the manifest's steps, epoch after epoch of `split`'s shuffled
/// batches, timing each part of the steps after the warm-up; `None` where
/// an epoch gives no batch at all.
fn train_timed(s: &TrainSettings, split: &SplitTensors, stepper: &mut Stepper, tracer: &Tracer) -> Result<Option<Timed>, PerfError> {
    let mut epoch = 1;
    let mut batches = split.shuffled(s.batch_size, s.seed, epoch);
    let mut times = StepTimes::default();
    let mut losses = Vec::with_capacity(s.steps);
    let (mut timed_start, mut cpu_start) = (Instant::now(), cpu_seconds());
    for step in 0..s.steps {
        if step == s.warmup {
            (timed_start, cpu_start) = (Instant::now(), cpu_seconds());
        }
        let t0 = Instant::now();
        let batch = match batches.next() {
            Some(b) => b,
            None => {
                // The next epoch, as the manifest's order continues.
                epoch += 1;
                batches = split.shuffled(s.batch_size, s.seed, epoch);
                match batches.next() {
                    Some(b) => b,
                    None => return Ok(None),
                }
            }
        };
        let t1 = Instant::now();
        let diagnose = step % s.trace_every == 0;
        let out = stepper.step(&batch, diagnose, 1, step).map_err(|e| PerfError::Model(e.to_string()))?;
        let t2 = Instant::now();
        losses.push(out.losses.iter().sum::<f64>());
        if let Some(diagnostics) = out.diagnostics {
            let rec = TraceRecord { step, epoch: 1, terms: tracer.terms.clone(), weights: out.weights, losses: out.losses, diagnostics };
            let entry = mtlbench::run::record::trace_entry(&rec);
            tracer.store.record_trace(&tracer.claim, &entry).map_err(|e| PerfError::Store(e.to_string()))?;
        }
        let t3 = Instant::now();
        if step >= s.warmup {
            times.batch.push((t1 - t0).as_secs_f64());
            times.step.push((t2 - t1).as_secs_f64());
            times.db.push((t3 - t2).as_secs_f64());
            times.traced.push(diagnose);
        }
    }
    let (seconds, cpu_seconds) = (timed_start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    Ok(Some(Timed { times, losses, seconds, cpu_seconds }))
}
