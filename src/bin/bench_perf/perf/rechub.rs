//! `bench-perf rechub`: mtlbench side by side with torch-rechub 0.9.0 on a
//! small tabular multi-task model, where a library's per-operator overhead
//! rather than arithmetic decides the speed. One exchange folder (the
//! generated table of [`super::tabular`], mtlbench's initial MMOE weights,
//! the batch order of several epochs) and, per round, mtlbench's worker and
//! `scripts/rechub_reference.py` (torch-rechub's MMOE trained by its
//! MTLTrainer fed by a fast loader), each in a child process with the same
//! thread count; in the first rounds also torch-rechub's own DataLoader
//! path. Rounds alternate which side goes first, and the load average is
//! taken before every run: on shared cores the ratio within a round is the
//! number to read.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::exchange::{self, Manifest, TrainSettings};
use super::machine::{self, GemmFloor, Machine, StepWork};
use super::tabular::{self, TableShape};
use super::{child, PerfError, ScratchDir, SideResult};
use mtlbench::data::batch::epoch_order;
use mtlbench::models::{ModelKind, ModelsConfig};
use mtlbench::train::StepPath;

/// Target: mtlbench at least this many times torch-rechub's trainer with the fast loader.
pub const TARGET_RATIO: f64 = 5.0;

/// The model of the comparison: MMOE with `experts` experts of
/// `expert_hidden`, towers of `tower_hidden`.
pub fn models_config() -> ModelsConfig {
    let mut cfg = ModelsConfig::default();
    cfg.mmoe.experts = 8;
    cfg.mmoe.expert_hidden = vec![16];
    cfg.tower.hidden = vec![8];
    cfg
}

/// What `bench-perf rechub` runs.
#[derive(Debug, Clone)]
pub struct RechubOptions {
    pub steps: usize,
    pub warmup: usize,
    pub batch_size: usize,
    pub threads: usize,
    /// Train rows asked for; rounded down to whole batches (at least one).
    pub train_rows: usize,
    pub test_rows: usize,
    pub tasks: usize,
    pub seed: u64,
    pub rounds: usize,
    /// Rounds (the first ones) that also run torch-rechub's own DataLoader path.
    pub loader_rounds: usize,
    /// How mtlbench's steps compute their gradients.
    pub step: StepPath,
    pub python: PathBuf,
    pub script: PathBuf,
    pub worker_exe: PathBuf,
    pub work_dir: Option<PathBuf>,
}

/// One run of one side, with the machine's load just before it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub round: usize,
    pub load_average: Option<f64>,
    pub result: SideResult,
}

/// Everything `bench-perf rechub` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RechubReport {
    pub machine: Machine,
    pub date: String,
    pub threads: usize,
    pub dataset: String,
    pub train_rows: usize,
    pub test_rows: usize,
    pub steps: usize,
    pub warmup: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// The step's matrix products timed alone before the rounds (reports
    /// written before it was measured have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemm_floor: Option<GemmFloor>,
    pub mtlbench: Vec<Run>,
    pub rechub_fast: Vec<Run>,
    pub rechub_dataloader: Vec<Run>,
}

/// The sides of a round.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Mtlbench,
    RechubFast,
    RechubDataLoader,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Mtlbench => "mtlbench",
            Side::RechubFast => "torch-rechub, fast loader",
            Side::RechubDataLoader => "torch-rechub, its DataLoader",
        }
    }
}

fn check(o: &RechubOptions) -> Result<(), PerfError> {
    let bad = |key: &str, message: String| Err(PerfError::Option { key: key.into(), message });
    if o.steps <= o.warmup {
        return bad("steps", format!("must exceed --warmup ({}), got {}", o.warmup, o.steps));
    }
    if o.batch_size == 0 || o.threads == 0 || o.rounds == 0 || o.test_rows == 0 || o.tasks == 0 {
        return bad("batch / threads / rounds / test-rows / tasks", "must be at least 1".into());
    }
    if !o.python.exists() {
        return bad(
            "python",
            format!("{} does not exist (scripts/setup-perf-python.sh --rechub installs it)", o.python.display()),
        );
    }
    Ok(())
}

/// Row order of `steps` batches over `rows` rows: epochs 1, 2, ... of
/// `SplitTensors::shuffled`, as the worker steps through them (`rows` must
/// be whole batches when more than one epoch is needed).
pub fn multi_epoch_order(rows: usize, steps: usize, batch_size: usize, seed: u64) -> Vec<i64> {
    let need = steps * batch_size;
    let mut order = Vec::with_capacity(need);
    let mut epoch = 1;
    while order.len() < need && rows > 0 {
        order.extend(epoch_order(rows, seed, epoch));
        epoch += 1;
    }
    order.truncate(need);
    order
}

/// Generates the table and writes the exchange folder.
fn prepare(o: &RechubOptions, dir: &Path) -> Result<(Manifest, StepWork), PerfError> {
    let shape = TableShape { tasks: o.tasks, ..TableShape::default() };
    let train_rows = (o.train_rows / o.batch_size).max(1) * o.batch_size;
    let data = tabular::generate(&shape, train_rows, o.test_rows, o.seed);
    let models_config = models_config();
    let train_split = exchange::write_split(dir, "train", &data.train, &data.schema)?;
    let test_split = exchange::write_split(dir, "test", &data.test, &data.schema)?;
    let order = multi_epoch_order(train_rows, o.steps, o.batch_size, o.seed);
    let order = exchange::write_array(dir, "order.bin", &order, vec![o.steps * o.batch_size])?;
    let (models, mut work) = super::write_models(dir, &[ModelKind::Mmoe], &data.schema, &models_config, &data.test, o.seed)?;
    let work = work.pop().map(|(_, w)| w).ok_or_else(|| PerfError::Model("no model was built".into()))?;
    let manifest = Manifest {
        format: exchange::FORMAT,
        dataset: format!(
            "table: {} categorical fields of width {}, {} numeric, {} tasks (generated, seed {})",
            shape.fields, shape.emb_dim, shape.numeric, shape.tasks, o.seed
        ),
        schema: data.schema,
        models_config,
        train: TrainSettings { step: o.step, ..super::train_settings(o.batch_size, o.steps, o.warmup, o.seed) },
        threads: o.threads,
        train_split,
        test_split,
        order,
        models,
    };
    manifest.write(dir)?;
    Ok((manifest, work))
}

fn run_side(o: &RechubOptions, dir: &Path, side: Side, round: usize, progress: &mut dyn FnMut(&str)) -> Result<Run, PerfError> {
    let what = format!("{} (round {})", side.label(), round + 1);
    let mut c = match side {
        Side::Mtlbench => {
            let mut c = super::side_command(&o.worker_exe, o.threads);
            c.arg("worker").arg(dir).arg("--model").arg(ModelKind::Mmoe.name());
            c
        }
        Side::RechubFast | Side::RechubDataLoader => {
            let mut c = super::side_command(&o.python, o.threads);
            let loader = if side == Side::RechubFast { "fast" } else { "dataloader" };
            c.arg(&o.script).arg("train").arg(dir).arg("--loader").arg(loader).env("TQDM_DISABLE", "1");
            c
        }
    };
    c.arg("--round").arg(round.to_string());
    let load_average = machine::load_average();
    progress(&format!("{what}: {} steps, load {} ...", o.steps, load_average.map_or("?".into(), |l| format!("{l:.2}"))));
    let result = super::parse_side(&what, child::run(&what, c)?)?;
    if side == Side::Mtlbench {
        super::same_function(&what, &result)?;
    }
    progress(&format!("{what}: {:.0} samples/s", result.samples_per_second));
    Ok(Run { round, load_average, result })
}

/// Runs the comparison; `progress` receives one line per run.
pub fn run(o: &RechubOptions, progress: &mut dyn FnMut(&str)) -> Result<RechubReport, PerfError> {
    check(o)?;
    let _tmp;
    let dir = match &o.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| PerfError::io(d, e))?;
            d.clone()
        }
        None => {
            _tmp = ScratchDir::new("perf-rechub")?;
            _tmp.0.clone()
        }
    };
    tch::set_num_threads(o.threads as i32);
    let (manifest, work) = prepare(o, &dir)?;
    progress(&format!("data: {}, {} train rows", manifest.dataset, manifest.train_split.rows));
    let gemm_floor = machine::gemm_floor(&work, o.batch_size, 101);
    progress(&format!("the step's matrix products alone take {:.2} ms", 1e3 * gemm_floor.median_seconds));
    let mut report = RechubReport {
        machine: Machine::capture(),
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        threads: o.threads,
        dataset: manifest.dataset.clone(),
        train_rows: manifest.train_split.rows,
        test_rows: manifest.test_split.rows,
        steps: o.steps,
        warmup: o.warmup,
        batch_size: o.batch_size,
        seed: o.seed,
        gemm_floor: Some(gemm_floor),
        mtlbench: vec![],
        rechub_fast: vec![],
        rechub_dataloader: vec![],
    };
    for round in 0..o.rounds {
        let mut sides = vec![Side::Mtlbench, Side::RechubFast];
        if round % 2 == 1 {
            sides.reverse();
        }
        if round < o.loader_rounds {
            sides.push(Side::RechubDataLoader);
        }
        for side in sides {
            let r = run_side(o, &dir, side, round, progress)?;
            match side {
                Side::Mtlbench => report.mtlbench.push(r),
                Side::RechubFast => report.rechub_fast.push(r),
                Side::RechubDataLoader => report.rechub_dataloader.push(r),
            }
        }
    }
    Ok(report)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[(v.len() - 1) / 2])
}

/// Median samples/s of some runs.
fn median_speed(runs: &[Run]) -> Option<f64> {
    median(runs.iter().map(|r| r.result.samples_per_second).collect())
}

/// Samples per second of wall time.
pub fn wall_speed(r: &SideResult) -> f64 {
    r.samples_per_second
}

/// Samples per CPU second (user + system, all threads): on shared cores
/// less sensitive than wall time to what else runs.
pub fn cpu_speed(r: &SideResult) -> f64 {
    (r.timed_steps * r.batch_size) as f64 / r.timed_cpu_seconds.max(1e-12)
}

/// mtlbench / `other` by `speed`, for each round both ran.
pub fn round_ratios(ours: &[Run], other: &[Run], speed: fn(&SideResult) -> f64) -> Vec<f64> {
    ours.iter()
        .filter_map(|a| {
            let b = other.iter().find(|b| b.round == a.round)?;
            Some(speed(&a.result) / speed(&b.result).max(1e-12))
        })
        .collect()
}

fn fmt_load(runs: &[Run]) -> String {
    let v: Vec<f64> = runs.iter().filter_map(|r| r.load_average).collect();
    match (v.iter().cloned().reduce(f64::min), v.iter().cloned().reduce(f64::max)) {
        (Some(a), Some(b)) => format!("{a:.1}-{b:.1}"),
        _ => "?".into(),
    }
}

impl RechubReport {
    /// Which path mtlbench's untraced steps took, where its runs say.
    fn mtlbench_step_path(&self) -> Option<&'static str> {
        super::report::step_path(self.mtlbench.iter().map(|r| &r.result))
    }

    /// [`super::report::floor_text`] against torch-rechub's trainer with the
    /// fast loader, each side's step the median over its runs.
    fn floor_line(&self) -> Option<String> {
        let g = self.gemm_floor.as_ref()?;
        let step = |runs: &[Run]| median(runs.iter().map(|r| super::report::step_seconds(&r.result)).collect());
        let other = step(&self.rechub_fast).map(|s| ("torch-rechub (fast loader)", s));
        Some(super::report::floor_text(g, None, step(&self.mtlbench)?, other))
    }
}

impl fmt::Display for RechubReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "bench-perf rechub: mtlbench vs torch-rechub 0.9.0, {}", self.date)?;
        writeln!(f, "machine: {}, {} cores, {:.1} GiB; {} thread(s) per side", self.machine.cpu_model, self.machine.cores, self.machine.memory_gib, self.threads)?;
        writeln!(f, "data: {}; {} train / {} test rows", self.dataset, self.train_rows, self.test_rows)?;
        writeln!(f, "MMOE 8 experts of [16], towers [8]; {} steps at batch {} ({} untimed)", self.steps, self.batch_size, self.warmup)?;
        if let Some(path) = self.mtlbench_step_path() {
            writeln!(f, "mtlbench's steps without gradient traces: {path}")?;
        }
        writeln!(f)?;
        writeln!(f, "{:<30} {:>5} {:>10} {:>8} {:>8} {:>9} {:>8} {:>8}", "side", "runs", "samples/s", "step ms", "CPU ms", "test AUC", "RSS MiB", "load")?;
        for (side, runs) in [(Side::Mtlbench, &self.mtlbench), (Side::RechubFast, &self.rechub_fast), (Side::RechubDataLoader, &self.rechub_dataloader)] {
            if runs.is_empty() {
                continue;
            }
            let step = median(runs.iter().map(|r| r.result.median_step_ms).collect()).unwrap_or(f64::NAN);
            let cpu = median(runs.iter().map(|r| 1e3 * r.result.timed_cpu_seconds / r.result.timed_steps.max(1) as f64).collect());
            let auc = median(runs.iter().filter_map(|r| super::report::mean_auc(&r.result)).collect());
            let rss = runs.iter().filter_map(|r| r.result.peak_rss_mib).fold(0.0, f64::max);
            writeln!(
                f,
                "{:<30} {:>5} {:>10.0} {:>8.2} {:>8.2} {:>9} {:>8.0} {:>8}",
                side.label(),
                runs.len(),
                median_speed(runs).unwrap_or(f64::NAN),
                step,
                cpu.unwrap_or(f64::NAN),
                auc.map_or("-".into(), |a| format!("{a:.4}")),
                rss,
                fmt_load(runs)
            )?;
        }
        writeln!(f)?;
        if let Some(line) = self.floor_line() {
            writeln!(f, "{line}")?;
        }
        let sets = [("fast loader", &self.rechub_fast, true), ("its DataLoader", &self.rechub_dataloader, false)];
        for ((name, other, judged), (per, speed)) in sets.iter().flat_map(|s| [(s, ("wall", wall_speed as fn(&SideResult) -> f64)), (s, ("CPU", cpu_speed))]) {
            let (name, other, judged) = (*name, *other, *judged && per == "wall");
            let r = round_ratios(&self.mtlbench, other, speed);
            let (Some(mid), Some(lo), Some(hi)) =
                (median(r.clone()), r.iter().cloned().reduce(f64::min), r.iter().cloned().reduce(f64::max))
            else {
                continue;
            };
            let target = if judged {
                format!(" (target >= {TARGET_RATIO:.0}x: {})", if lo >= TARGET_RATIO { "met" } else if hi >= TARGET_RATIO { "straddled" } else { "missed" })
            } else {
                String::new()
            };
            writeln!(f, "mtlbench / torch-rechub, {name}, samples per {per} second: {mid:.2}x per round median, {lo:.2}-{hi:.2}x over {} round(s){target}", r.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_continues_epoch_after_epoch() {
        let o = multi_epoch_order(6, 5, 3, 9);
        assert_eq!(o.len(), 15);
        assert_eq!(o[..6], epoch_order(6, 9, 1)[..]);
        assert_eq!(o[6..12], epoch_order(6, 9, 2)[..]);
        assert_eq!(o[12..], epoch_order(6, 9, 3)[..3]);
        let mut first: Vec<i64> = o[..6].to_vec();
        first.sort();
        assert_eq!(first, (0..6).collect::<Vec<i64>>());
    }

    fn run(round: usize, sps: f64) -> Run {
        let result = SideResult {
            side: "x".into(),
            model: "mmoe".into(),
            threads: 1,
            batch_size: 1024,
            steps: 10,
            timed_steps: 5,
            timed_seconds: 1.0,
            timed_cpu_seconds: 1.0,
            samples_per_second: sps,
            median_step_ms: 1.0,
            test_auc: vec![],
            check_max_abs_diff: None,
            overhead: None,
            peak_rss_mib: None,
            losses: vec![],
            compile_seconds: None,
            fused_pass: None,
        };
        Run { round, load_average: None, result }
    }

    #[test]
    fn ratios_pair_runs_by_round() {
        let ours = [run(0, 100.0), run(1, 90.0), run(2, 80.0)];
        let theirs = [run(1, 30.0), run(0, 20.0)];
        assert_eq!(round_ratios(&ours, &theirs, wall_speed), vec![5.0, 3.0]);
        // 5 steps x 1024 rows in 1 CPU second each: the same speed.
        assert_eq!(round_ratios(&ours, &theirs, cpu_speed), vec![1.0, 1.0]);
    }
}
