//! `bench-perf`: speed you can measure. MMOE and PLE are trained for N steps
//! on the same WeChat-shaped synthetic features, first by mtlbench, then by
//! a PyTorch eager script of the same architecture
//! (`scripts/perf_reference.py`), one after the other in one invocation with
//! the same thread count, same initial weights and same batches. Reported:
//! samples/s of each and their ratio, achieved FLOP/s of the step against
//! the machine's measured sgemm, the step's floor (its matrix products
//! timed alone and the Adam pass) with the bound it puts on the ratio, peak
//! RSS of each side, test AUC of each,
//! mtlbench's harness overhead per step, and exact AUC of 10M scores against
//! scikit-learn's `roc_auc_score` on the same numbers.
//!
//! Why child processes: each side's peak memory is then its own (each reports
//! its VmHWM), and both pay the same start-up and data loading. Why shared weights and batch
//! order: the AUC comparison then tests the implementations, not two seeds.
//! The module only measures and reports; it never writes the results store.

pub mod child;
pub mod exchange;
pub mod machine;
pub mod merge;
pub mod rechub;
mod report;
pub mod tabular;
pub mod worker;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device};
use thiserror::Error;

use mtlbench::data::batch::{epoch_order, to_vec_f32};
use mtlbench::data::wechat::synth::wechat_shaped;
use mtlbench::data::{DataError, FeatureSchema, SplitData, SplitTensors};
use mtlbench::models::{self, DropoutMasks, ModelKind, ModelsConfig};
use mtlbench::train::{StepPath, TrainConfig};
use exchange::{Manifest, ModelFiles, TrainSettings};
pub use machine::{GemmFloor, Machine, Sgemm, StepWork};
pub use worker::SideResult;

#[derive(Debug, Error)]
pub enum PerfError {
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{what}: {message}")]
    Child { what: String, message: String },
    #[error("data: {0}")]
    Data(DataError),
    #[error("model: {0}")]
    Model(String),
    #[error("libtorch: {0}")]
    Torch(String),
    #[error("store: {0}")]
    Store(String),
    #[error("option --{key}: {message}")]
    Option { key: String, message: String },
    #[error("{0}")]
    Check(String),
}

impl PerfError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> PerfError {
        PerfError::Io { path: path.to_path_buf(), cause: source }
    }
}

impl From<DataError> for PerfError {
    fn from(e: DataError) -> Self {
        PerfError::Data(e)
    }
}

impl From<tch::TchError> for PerfError {
    fn from(e: tch::TchError) -> Self {
        PerfError::Torch(e.to_string())
    }
}

/// What `bench-perf` runs.
#[derive(Debug, Clone)]
pub struct PerfOptions {
    pub models: Vec<ModelKind>,
    pub steps: usize,
    /// Steps at the start of each side that the throughput does not count.
    pub warmup: usize,
    pub batch_size: usize,
    pub threads: usize,
    /// Runs of each side per model, alternating which goes first; the
    /// median run of each side is reported.
    pub rounds: usize,
    /// Tower dropout of both sides (`None`: the models' default, 0.1). With
    /// 0 both sides compute the same training steps, so their loss curves
    /// must agree up to float rounding.
    pub dropout: Option<f64>,
    /// Where both sides' dropout masks come from. With
    /// [`DropoutMasks::Libtorch`] mtlbench draws them with libtorch's
    /// dropout, as PyTorch does, from the same generator state: both sides
    /// of a round drop the same units and their AUCs compare pairwise.
    pub masks: DropoutMasks,
    /// Number of the first round (round r's masks come from seed + r).
    pub first_round: usize,
    /// How mtlbench's steps compute their gradients.
    pub step: StepPath,
    /// Size of the synthetic WeChat data (the real data: 20,000 users, 106,444 feeds).
    pub users: usize,
    pub feeds: usize,
    pub test_rows: usize,
    /// Rows of the exact-AUC comparison (0 = skip it).
    pub auc_rows: usize,
    pub seed: u64,
    /// Rounds (the first ones) that also run the reference under
    /// torch.compile (inductor): its compiling takes minutes on few cores.
    pub compiled_rounds: usize,
    /// The Python interpreter with torch (and scikit-learn); `None` = the
    /// mtlbench side only.
    pub python: Option<PathBuf>,
    pub script: PathBuf,
    /// The executable that runs the mtlbench side (`bench-perf worker`): this one.
    pub worker_exe: PathBuf,
    pub cache_dir: PathBuf,
    /// Keep the exchange files here (default: a temporary folder).
    pub work_dir: Option<PathBuf>,
}

/// One model, both sides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelComparison {
    pub model: String,
    /// FLOPs of one training step from the architecture ([`machine::products_flops`]).
    pub step_flops: f64,
    /// The step's matrix products timed alone, before the rounds (reports
    /// written before it was measured have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemm_floor: Option<GemmFloor>,
    /// The run with the median throughput of each side.
    pub mtlbench: SideResult,
    pub reference: Option<SideResult>,
    /// Every round's run of each side, in round order (round r seeds the
    /// dropout masks of both sides with seed + r).
    pub mtlbench_runs: Vec<SideResult>,
    pub reference_runs: Vec<SideResult>,
    /// The median run of the torch.compile'd reference (inductor), which
    /// runs in the first `--compiled-rounds` rounds only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled: Option<SideResult>,
    /// Its runs, rounds first_round, first_round + 1, ... in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compiled_runs: Vec<SideResult>,
}

/// Every run of a model on each side, in round order.
pub(crate) struct SideRuns {
    pub ours: Vec<SideResult>,
    pub theirs: Vec<SideResult>,
    pub compiled: Vec<SideResult>,
}

impl ModelComparison {
    /// The comparison of a model's runs, each side shown by its median run;
    /// `None` without a run of mtlbench's.
    pub(crate) fn from_runs(model: String, step_flops: f64, gemm_floor: Option<GemmFloor>, runs: SideRuns) -> Option<Self> {
        let SideRuns { ours, theirs, compiled } = runs;
        Some(ModelComparison {
            model,
            step_flops,
            gemm_floor,
            mtlbench: median_run(ours.clone())?,
            reference: median_run(theirs.clone()),
            mtlbench_runs: ours,
            reference_runs: theirs,
            compiled: median_run(compiled.clone()),
            compiled_runs: compiled,
        })
    }
}

/// Exact AUC of the same scores by both.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AucComparison {
    pub rows: usize,
    pub mtlbench_seconds: f64,
    pub mtlbench_auc: Option<f64>,
    pub sklearn_seconds: Option<f64>,
    pub sklearn_auc: Option<f64>,
}

/// Everything `bench-perf` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerfReport {
    pub machine: Machine,
    pub threads: usize,
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
    pub dataset: String,
    pub train_rows: usize,
    pub test_rows: usize,
    pub steps: usize,
    pub warmup: usize,
    pub batch_size: usize,
    /// Rounds per model (pooled reports: the most rounds of any model).
    pub rounds: usize,
    /// `--seed`: initial weights, the train and test rows, the batch order
    /// and (plus the round) the dropout masks. Reports written before it
    /// was saved used the default, 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Tower dropout of both sides.
    #[serde(default)]
    pub dropout: f64,
    /// Where the masks came from (libtorch: the same on both sides).
    #[serde(default)]
    pub masks: DropoutMasks,
    /// Number of the first round.
    #[serde(default)]
    pub first_round: usize,
    /// The sgemm measurement the shares are computed against: the higher of
    /// the ones taken before and after the training runs (other processes
    /// on the cores lower it; the higher one flatters the step less).
    pub sgemm: Sgemm,
    /// Every sgemm measurement, in order (before, after).
    pub sgemm_runs: Vec<Sgemm>,
    pub models: Vec<ModelComparison>,
    pub auc: Option<AucComparison>,
    pub notes: Vec<String>,
}

fn default_seed() -> u64 {
    1
}

/// The default interpreter `make perf-setup` installs (scripts/setup-perf-python.sh).
/// Keyed like the script keys it: by the torch version without its local
/// part (libtorch reports "2.11.0+cu130"; the script installs torch==2.11.0).
pub fn default_python(cache_dir: &Path) -> PathBuf {
    let version = env!("MTLBENCH_LIBTORCH_VERSION").split('+').next().unwrap_or_default();
    cache_dir.join(format!("perf-python-torch-{version}")).join("venv/bin/python")
}

/// A folder under the system's temporary directory, removed when dropped.
pub(crate) struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub(crate) fn new(what: &str) -> Result<ScratchDir, PerfError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!("mtlbench-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(|e| PerfError::io(&p, e))?;
        Ok(ScratchDir(p))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover folder in /tmp is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A model by its registry name.
pub fn parse_model(name: &str) -> Result<ModelKind, PerfError> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| PerfError::Option {
        key: "models".into(),
        message: format!("unknown model `{name}`; models: {}", ModelKind::names().join(", ")),
    })
}

fn check_options(o: &PerfOptions) -> Result<(), PerfError> {
    let bad = |key: &str, message: String| Err(PerfError::Option { key: key.into(), message });
    if o.models.is_empty() {
        return bad("models", "name at least one model".into());
    }
    if let Some(m) = o.models.iter().find(|m| !matches!(m, ModelKind::Mmoe | ModelKind::Ple | ModelKind::SharedBottom)) {
        return bad("models", format!("{} has funnel loss terms; the reference implements mmoe, ple and shared-bottom", m.name()));
    }
    if o.steps <= o.warmup {
        return bad("steps", format!("must exceed --warmup ({}), got {}", o.warmup, o.steps));
    }
    if let Some(p) = o.dropout {
        if !(0.0..1.0).contains(&p) {
            return bad("dropout", format!("must be in [0, 1), got {p}"));
        }
    }
    if o.batch_size == 0 || o.threads == 0 || o.test_rows == 0 || o.rounds == 0 {
        return bad("batch / threads / test-rows / rounds", "must be at least 1".into());
    }
    Ok(())
}

/// The first `n` rows of a seeded shuffle of `0..rows`.
fn sample_rows(rows: usize, n: usize, seed: u64, stream: usize) -> Vec<usize> {
    epoch_order(rows, seed, stream).into_iter().take(n).map(|r| r as usize).collect()
}

/// The optimisation settings of both sides: the training loop's defaults.
pub(crate) fn train_settings(batch_size: usize, steps: usize, warmup: usize, seed: u64) -> TrainSettings {
    let defaults = TrainConfig::default();
    TrainSettings {
        batch_size,
        steps,
        warmup,
        lr: defaults.lr,
        beta1: defaults.beta1,
        beta2: defaults.beta2,
        eps: defaults.eps,
        weight_decay: defaults.weight_decay,
        eval_batch_size: defaults.eval_batch_size,
        trace_every: defaults.trace_every,
        seed,
        step: defaults.step,
    }
}

/// Builds each model from `seed`, writes its initial weights and the
/// eval-mode probabilities they give on the first test rows; returns the
/// files and each model's matrix products and Adam pass per training step
/// ([`machine::step_work`]).
pub(crate) fn write_models(
    dir: &Path,
    kinds: &[ModelKind],
    schema: &FeatureSchema,
    models_config: &ModelsConfig,
    test: &SplitData,
    seed: u64,
) -> Result<(Vec<ModelFiles>, Vec<(ModelKind, StepWork)>), PerfError> {
    let check_rows = test.rows.min(1024);
    let test_t = SplitTensors::new(test, schema, Device::Cpu);
    let mut files = Vec::new();
    let mut work = Vec::new();
    for &kind in kinds {
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = models::build(kind, &vs, schema, models_config).map_err(|e| PerfError::Model(e.to_string()))?;
        let weights_file = format!("weights_{}.bin", kind.name());
        let weights = exchange::write_weights(dir, &weights_file, &exchange::model_variables(&vs, schema, models_config)?)?;
        let probs = tch::no_grad(|| model.forward_t(&test_t.slice(0, check_rows), false).probs);
        let probs = to_vec_f32(&probs)?;
        let check_probs =
            exchange::write_array(dir, &format!("check_{}.bin", kind.name()), &probs, vec![check_rows, schema.tasks.len()])?;
        files.push(ModelFiles { kind, weights_file, weights, check_probs });
        // Last: the Adam pass it times steps the weights.
        work.push((kind, machine::step_work(&vs, 11).map_err(|e| PerfError::Model(e.to_string()))?));
    }
    Ok((files, work))
}

/// Loads the data, takes the rows of the run and writes the exchange folder.
fn prepare(o: &PerfOptions, dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<(Manifest, Vec<(ModelKind, StepWork)>), PerfError> {
    let t = Instant::now();
    let ds = wechat_shaped(o.users, o.feeds, &["read_comment", "like", "click_avatar"], &o.cache_dir)?;
    progress(&format!("data: {} loaded in {:.1}s", ds.name, t.elapsed().as_secs_f64()));
    let need = o.steps * o.batch_size;
    if ds.train.rows < need {
        return Err(PerfError::Option {
            key: "steps".into(),
            message: format!(
                "{} steps x batch {} need {need} train rows; the data has {} (lower --steps or raise --users)",
                o.steps, o.batch_size, ds.train.rows
            ),
        });
    }
    let train = exchange::take_rows(&ds.train, &ds.schema, &sample_rows(ds.train.rows, need, o.seed, 0));
    let test_n = o.test_rows.min(ds.test.rows);
    let test = exchange::take_rows(&ds.test, &ds.schema, &sample_rows(ds.test.rows, test_n, o.seed, 2));
    let schema = ds.schema.clone();
    let dataset = ds.name.clone();
    drop(ds);
    let settings = TrainSettings { step: o.step, ..train_settings(o.batch_size, o.steps, o.warmup, o.seed) };
    let train_split = exchange::write_split(dir, "train", &train, &schema)?;
    let test_split = exchange::write_split(dir, "test", &test, &schema)?;
    let order = exchange::write_array(dir, "order.bin", &epoch_order(train.rows, o.seed, 1), vec![train.rows])?;
    let mut models_config = ModelsConfig::default();
    if let Some(p) = o.dropout {
        models_config.tower.dropout = p;
    }
    models_config.tower.dropout_masks = o.masks;
    let (files, work) = write_models(dir, &o.models, &schema, &models_config, &test, o.seed)?;
    let manifest = Manifest {
        format: exchange::FORMAT,
        dataset,
        schema,
        models_config,
        train: settings,
        threads: o.threads,
        train_split,
        test_split,
        order,
        models: files,
    };
    manifest.write(dir)?;
    Ok((manifest, work))
}

/// Environment both sides run under: same threads, passive OpenMP waiting.
pub(crate) fn side_command(program: &Path, threads: usize) -> Command {
    let mut c = Command::new(program);
    c.env("OMP_NUM_THREADS", threads.to_string()).env("MKL_NUM_THREADS", threads.to_string());
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        c.env("OMP_WAIT_POLICY", "PASSIVE");
    }
    c
}

pub(crate) fn parse_side(what: &str, out: child::ChildOutput) -> Result<SideResult, PerfError> {
    let line = out.stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    let r: SideResult = serde_json::from_str(line).map_err(|e| PerfError::Child {
        what: what.into(),
        message: format!("its last output line is not the expected JSON ({e}): {line:?}"),
    })?;
    if r.peak_rss_mib.is_none() {
        return Err(PerfError::Child { what: what.into(), message: "it did not report its peak RSS".into() });
    }
    Ok(r)
}

/// Who trains in a run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side<'a> {
    Mtlbench,
    /// The PyTorch reference under this interpreter, eager ...
    Eager(&'a Path),
    /// ... or under torch.compile.
    Compiled(&'a Path),
}

/// One side's run of one model: mtlbench's worker, or the reference.
fn run_side(o: &PerfOptions, dir: &Path, kind: ModelKind, round: usize, side: Side, progress: &mut dyn FnMut(&str)) -> Result<SideResult, PerfError> {
    let (what, mut c) = match side {
        Side::Mtlbench => {
            let mut c = side_command(&o.worker_exe, o.threads);
            c.arg("worker").arg(dir).arg("--model").arg(kind.name());
            (format!("mtlbench {}", kind.name()), c)
        }
        Side::Eager(py) | Side::Compiled(py) => {
            let mut c = side_command(py, o.threads);
            c.arg(&o.script).arg("train").arg(dir).arg("--model").arg(kind.name());
            if matches!(side, Side::Compiled(_)) {
                c.arg("--compile");
                (format!("pytorch compiled {}", kind.name()), c)
            } else {
                (format!("pytorch {}", kind.name()), c)
            }
        }
    };
    c.arg("--round").arg(round.to_string());
    let what = if o.rounds > 1 || o.first_round > 0 { format!("{what} (round {})", round + 1) } else { what };
    progress(&format!("{what}: {} steps ...", o.steps));
    let r = parse_side(&what, child::run(&what, c)?)?;
    progress(&format!("{what}: {:.0} samples/s", r.samples_per_second));
    same_function(&what, &r)?;
    Ok(r)
}

/// The run with the median throughput (the lower middle one for an even count).
fn median_run(mut runs: Vec<SideResult>) -> Option<SideResult> {
    runs.sort_by(|a, b| a.samples_per_second.total_cmp(&b.samples_per_second));
    let mid = runs.len().saturating_sub(1) / 2;
    (!runs.is_empty()).then(|| runs.swap_remove(mid))
}

/// A side must start from the function the parent wrote: the same eval-mode
/// probabilities of the initial weights on the check rows.
pub(crate) fn same_function(what: &str, r: &SideResult) -> Result<(), PerfError> {
    match r.check_max_abs_diff {
        Some(d) if d <= 1e-4 => Ok(()),
        Some(d) => Err(PerfError::Check(format!(
            "{what} is not the same function: its initial probabilities differ from mtlbench's by up to {d:.2e}"
        ))),
        None => Err(PerfError::Check(format!("{what} did not report its check of the initial probabilities"))),
    }
}

/// Exact AUC of `rows` synthetic scores by mtlbench, and by scikit-learn when
/// a Python is given; the two values must agree.
fn compare_auc(o: &PerfOptions, dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<AucComparison, PerfError> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ 0xA0C);
    let n = o.auc_rows;
    let mut labels = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    for _ in 0..n {
        let y = (rng.gen::<f64>() < 0.035) as u8 as f32;
        // A logit with signal, squashed to a probability: f32 rounding leaves ties.
        let z: f64 = rng.sample::<f64, _>(rand_distr::StandardNormal) + 1.2 * y as f64 - 3.0;
        labels.push(y);
        scores.push((1.0 / (1.0 + (-z).exp())) as f32);
    }
    let mut times = Vec::new();
    let mut value = None;
    for _ in 0..3 {
        let t = Instant::now();
        value = mtlbench::metrics::auc(&labels, &scores);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let mut cmp = AucComparison { rows: n, mtlbench_seconds: times[1], mtlbench_auc: value, sklearn_seconds: None, sklearn_auc: None };
    progress(&format!("auc: mtlbench {:.3}s on {n} scores", cmp.mtlbench_seconds));
    if let Some(py) = &o.python {
        let l = exchange::write_array(dir, "auc_labels.bin", &labels, vec![n])?;
        let s = exchange::write_array(dir, "auc_scores.bin", &scores, vec![n])?;
        drop((labels, scores));
        let mut c = side_command(py, o.threads);
        c.arg(&o.script).arg("auc").arg(dir.join(&l.file)).arg(dir.join(&s.file));
        let out = child::run("scikit-learn roc_auc_score", c)?;
        let line = out.stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| PerfError::Child {
            what: "scikit-learn roc_auc_score".into(),
            message: format!("unexpected output ({e}): {line:?}"),
        })?;
        cmp.sklearn_seconds = v["seconds"].as_f64();
        cmp.sklearn_auc = v["auc"].as_f64();
        if let (Some(a), Some(b)) = (cmp.mtlbench_auc, cmp.sklearn_auc) {
            if (a - b).abs() > 1e-9 {
                return Err(PerfError::Check(format!("exact AUC differs from scikit-learn's: {a} vs {b}")));
            }
        }
    }
    Ok(cmp)
}

/// The notes a run starts with; an error where `--python` names no file.
fn python_notes(o: &PerfOptions) -> Result<Vec<String>, PerfError> {
    let mut notes = Vec::new();
    if let Some(py) = &o.python {
        if !py.exists() {
            return Err(PerfError::Option {
                key: "python".into(),
                message: format!("{} does not exist (make perf-setup installs the reference's Python)", py.display()),
            });
        }
    } else {
        notes.push("PyTorch reference skipped: no Python with torch (make perf-setup, or --python PATH)".into());
    }
    Ok(notes)
}

/// One model's rounds, each side in turn (alternating which goes first),
/// after timing its step's floor.
fn compare_model(
    o: &PerfOptions,
    dir: &Path,
    kind: ModelKind,
    work: &machine::StepWork,
    progress: &mut dyn FnMut(&str),
) -> Result<ModelComparison, PerfError> {
    let step_flops = machine::products_flops(&work.products, o.batch_size);
    let gemm_floor = machine::gemm_floor(work, o.batch_size, 21);
    progress(&format!("{}: the step's matrix products alone take {:.2} ms", kind.name(), 1e3 * gemm_floor.median_seconds));
    let (mut ours, mut theirs, mut compiled) = (Vec::new(), Vec::new(), Vec::new());
    for round in o.first_round..o.first_round + o.rounds {
        // Alternate which side goes first, so that a drift in the machine's
        // load does not always favour the same side.
        let mut sides = vec![Side::Mtlbench];
        if let Some(py) = &o.python {
            sides.push(Side::Eager(py));
            if round - o.first_round < o.compiled_rounds {
                sides.push(Side::Compiled(py));
            }
        }
        if round % 2 == 1 {
            sides.reverse();
        }
        for side in sides {
            let r = run_side(o, dir, kind, round, side, progress)?;
            match side {
                Side::Mtlbench => ours.push(r),
                Side::Eager(_) => theirs.push(r),
                Side::Compiled(_) => compiled.push(r),
            }
        }
    }
    let runs = SideRuns { ours, theirs, compiled };
    ModelComparison::from_runs(kind.name().into(), step_flops, Some(gemm_floor), runs)
        .ok_or_else(|| PerfError::Option { key: "rounds".into(), message: "must be at least 1".into() })
}

/// Runs the whole comparison; `progress` receives one line per stage.
pub fn run(o: &PerfOptions, progress: &mut dyn FnMut(&str)) -> Result<PerfReport, PerfError> {
    check_options(o)?;
    let load_before = machine::load_average();
    tch::set_num_threads(o.threads as i32);
    let _tmp;
    let dir = match &o.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| PerfError::io(d, e))?;
            d.clone()
        }
        None => {
            _tmp = ScratchDir::new("perf")?;
            _tmp.0.clone()
        }
    };
    let notes = python_notes(o)?;
    let (manifest, work) = prepare(o, &dir, progress)?;
    let before = machine::sgemm(2048, 5);
    progress(&format!("sgemm: {:.1} GFLOP/s (2048^3, {} threads)", before.median_flops / 1e9, before.threads));
    let mut models = Vec::new();
    for (kind, work) in work {
        models.push(compare_model(o, &dir, kind, &work, progress)?);
    }
    let after = machine::sgemm(2048, 5);
    progress(&format!("sgemm again: {:.1} GFLOP/s", after.median_flops / 1e9));
    let sgemm = if after.median_flops > before.median_flops { after.clone() } else { before.clone() };
    let sgemm_runs = vec![before, after];
    let auc = if o.auc_rows > 0 { Some(compare_auc(o, &dir, progress)?) } else { None };
    Ok(PerfReport {
        machine: Machine::capture(),
        threads: o.threads,
        load_before,
        load_after: machine::load_average(),
        dataset: manifest.dataset.clone(),
        train_rows: manifest.train_split.rows,
        test_rows: manifest.test_split.rows,
        steps: o.steps,
        warmup: o.warmup,
        batch_size: o.batch_size,
        rounds: o.rounds,
        seed: o.seed,
        dropout: manifest.models_config.tower.dropout,
        masks: manifest.models_config.tower.dropout_masks,
        first_round: o.first_round,
        sgemm,
        sgemm_runs,
        models,
        auc,
        notes,
    })
}
