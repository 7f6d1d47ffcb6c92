//! Command-line definitions of `bench-perf` (clap derive): the options of a
//! measurement, `--show` to reprint saved reports, and the hidden `worker`
//! subcommand that runs the mtlbench side in a child process.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mtlbench::models::DropoutMasks;
use mtlbench::train::StepPath;

/// Measure mtlbench's training speed side by side with a PyTorch eager
/// reference.
///
/// Trains each model for --steps steps on the same WeChat-shaped synthetic
/// features, same initial weights and same batches, first by mtlbench, then
/// by scripts/perf_reference.py, one after the other with the same thread
/// count. Prints samples/s, the ratio, achieved FLOP/s against the machine's
/// measured sgemm, peak RSS and test AUC of each, mtlbench's harness
/// overhead per step, and exact AUC of 10M scores against scikit-learn.
/// Without the reference's Python (make perf-setup), only the mtlbench side
/// runs. Run it from the repository root (the reference script's default
/// path is relative to it).
#[derive(Debug, Parser)]
#[command(name = "bench-perf", version, about, long_about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(flatten)]
    pub perf: PerfArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct PerfArgs {
    /// Comma-separated models (mmoe, ple, shared-bottom).
    #[arg(long, value_delimiter = ',', default_value = "mmoe,ple")]
    pub models: Vec<String>,
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Steps at the start of each side that are not timed.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// libtorch threads of both sides (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Synthetic WeChat users (the real data has 20,000).
    #[arg(long, default_value_t = 20_000)]
    pub users: usize,
    /// Synthetic WeChat feeds (the real data has 106,444).
    #[arg(long, default_value_t = 106_444)]
    pub feeds: usize,
    #[arg(long, default_value_t = 200_000)]
    pub test_rows: usize,
    /// Scores in the exact-AUC comparison (0 skips it).
    #[arg(long, default_value_t = 10_000_000)]
    pub auc_rows: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs of each side per model, alternating which goes first; the
    /// median run of each side is reported (more rounds, less noise from
    /// other processes on the cores). From 4 rounds on, the equal-AUC
    /// target is judged on the Hodges–Lehmann shift over the rounds.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Tower dropout of both sides (default: the models' 0.1). With 0
    /// both compute the same steps and their loss curves must agree.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Where both sides' dropout masks come from: hashed (mtlbench's
    /// default, faster; each side draws its own masks) or libtorch (the
    /// same masks on both sides, so that each round's AUCs can be
    /// compared pairwise).
    #[arg(long, value_enum, default_value = "hashed")]
    pub masks: MasksArg,
    /// How mtlbench's steps compute their gradients: the model's fused
    /// pass where it has one (the default, as `bench run` trains; MMOE) or
    /// autograd, to measure what the pass is worth on this machine.
    #[arg(long, value_enum, default_value = "fused")]
    pub step: StepArg,
    /// How many of the first rounds also train the reference under
    /// torch.compile (inductor; needs the interpreter's Python headers and
    /// a C++ compiler), its compile time reported apart.
    #[arg(long, default_value_t = 0)]
    pub compiled_rounds: usize,
    /// Number of the first round (its dropout seed is seed + round):
    /// more rounds later without repeating earlier ones.
    #[arg(long, default_value_t = 0)]
    pub first_round: usize,
    /// Python with torch 2.11 and scikit-learn (default: the one make perf-setup installs).
    #[arg(long, env = "MTLBENCH_PERF_PYTHON")]
    pub python: Option<PathBuf>,
    /// Run only the mtlbench side.
    #[arg(long)]
    pub no_reference: bool,
    /// The PyTorch reference script.
    #[arg(long, default_value = "scripts/perf_reference.py")]
    pub script: PathBuf,
    /// Keep the exchange files (data, weights) in this folder.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Measure nothing: print the report saved by an earlier --json. Given
    /// several, their rounds are pooled into one report (same setup, each
    /// model's rounds consecutive without overlap); --json saves it.
    #[arg(long, value_name = "JSON", num_args = 1..)]
    pub show: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Side by side with torch-rechub 0.9.0 on a small tabular MMOE.
    ///
    /// Generates a table (32 categorical fields of width-4 embeddings, 7
    /// numeric columns, binary tasks), trains MMOE with 8 experts of [16]
    /// and towers [8] on the same batches by mtlbench and by torch-rechub's
    /// MTLTrainer fed by a fast loader (scripts/rechub_reference.py), in
    /// alternating rounds, and in the first rounds also through
    /// torch-rechub's own DataLoader. Prints samples/s, the ratios and test
    /// AUC of each side, with the load average before each run.
    /// `scripts/setup-perf-python.sh --rechub` installs the Python side.
    Rechub(RechubArgs),
    /// The mtlbench side of a measurement (run by bench-perf in a child process).
    #[command(hide = true)]
    Worker {
        dir: PathBuf,
        #[arg(long)]
        model: String,
        /// Round of the measurement: offsets the dropout seed.
        #[arg(long, default_value_t = 0)]
        round: u64,
    },
}

/// `--masks`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MasksArg {
    Hashed,
    Libtorch,
}

impl From<MasksArg> for DropoutMasks {
    fn from(m: MasksArg) -> Self {
        match m {
            MasksArg::Hashed => DropoutMasks::Hashed,
            MasksArg::Libtorch => DropoutMasks::Libtorch,
        }
    }
}

/// `--step`: how mtlbench's training steps compute their gradients.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StepArg {
    /// The model's fused pass where it has one (`[train] step`'s default).
    Fused,
    /// Every step through libtorch's autograd.
    Autograd,
}

impl From<StepArg> for StepPath {
    fn from(s: StepArg) -> Self {
        match s {
            StepArg::Fused => StepPath::Fused,
            StepArg::Autograd => StepPath::Autograd,
        }
    }
}

#[derive(Debug, Args)]
pub struct RechubArgs {
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Steps at the start of each side that are not timed.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// libtorch threads of both sides.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Train rows (rounded down to whole batches).
    #[arg(long, default_value_t = 60_000)]
    pub train_rows: usize,
    #[arg(long, default_value_t = 20_000)]
    pub test_rows: usize,
    /// Binary tasks of the table.
    #[arg(long, default_value_t = 2)]
    pub tasks: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Rounds of mtlbench and torch-rechub with the fast loader, alternating which goes first.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// How many of the first rounds also run torch-rechub's own DataLoader path.
    #[arg(long, default_value_t = 1)]
    pub loader_rounds: usize,
    /// How mtlbench's steps compute their gradients: its fused pass (the
    /// default, as `bench run` trains) or autograd, to measure what the
    /// pass is worth on this machine.
    #[arg(long, value_enum, default_value = "fused")]
    pub step: StepArg,
    /// Python with torch 2.11 and torch-rechub 0.9.0 (default: the one scripts/setup-perf-python.sh installs).
    #[arg(long, env = "MTLBENCH_PERF_PYTHON")]
    pub python: Option<PathBuf>,
    /// The torch-rechub side's script.
    #[arg(long, default_value = "scripts/rechub_reference.py")]
    pub script: PathBuf,
    /// Keep the exchange files in this folder.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Measure nothing: print the report saved by an earlier --json.
    #[arg(long, value_name = "JSON")]
    pub show: Option<PathBuf>,
}
