//! Command-line definitions (clap derive): one subcommand per user verb.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// mtlbench: train, record and compare multi-task ranking models and
/// loss-weighting strategies.
///
/// Start with `bench run` (the embedded demo grid on synthetic data), then
/// `bench list`, `bench show RUN_ID` and `bench report`.
#[derive(Debug, Parser)]
#[command(name = "bench", version = mtlbench::env::VERSION, about, long_about)]
pub struct Cli {
    /// The experiment database (SQLite). `bench run` creates it when missing;
    /// the other verbs open only an existing file.
    #[arg(long, global = true, default_value = "results/bench.sqlite", env = "MTLBENCH_DB")]
    pub db: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Aligned text columns.
    Table,
    /// A Markdown table.
    Md,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train every cell of a grid file not finished yet, recording each run.
    ///
    /// Cells are models x strategies x seeds x override values. A cell whose
    /// configuration, seed and dataset match a finished run is skipped, so a
    /// grid can be rerun or resumed safely. A failed cell is recorded as
    /// failed, the grid goes on, and the exit code is non-zero at the end.
    /// On a terminal, progress bars show the grid and the cell in training;
    /// elsewhere (pipes, CI) one line per cell is printed instead.
    Run {
        /// Grid file (TOML). Without it, the embedded demo grid is used.
        #[arg(conflicts_with = "manifest")]
        grid: Option<PathBuf>,
        /// Retrain cells that already have a finished run.
        #[arg(long, conflicts_with_all = ["jobs", "enqueue"])]
        force: bool,
        /// Train N cells at once, each in a worker process with cores / N
        /// libtorch threads (unless the grid sets train.threads). A bar per
        /// worker on a terminal; elsewhere a line per cell that ends.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
        /// Register the grid's cells without training them; `bench worker`
        /// processes (anywhere that reaches the database) train them.
        #[arg(long, conflicts_with = "jobs")]
        enqueue: bool,
        /// Run one cell of a manifest written by `bench plan --manifest`.
        #[arg(long, conflicts_with_all = ["jobs", "enqueue", "force"])]
        manifest: Option<PathBuf>,
        /// The manifest's cell to run (default: $SLURM_ARRAY_TASK_ID, then $JOB_COMPLETION_INDEX).
        #[arg(long, requires = "manifest")]
        cell: Option<usize>,
        /// Only print the summary: no progress bars or per-cell lines.
        #[arg(long, short, conflicts_with = "verbose")]
        quiet: bool,
        /// Also print a line per epoch (validation AUCs, time, samples/s).
        #[arg(long, short)]
        verbose: bool,
        /// Print the cells the grid expands to and exit without training.
        #[arg(long)]
        dry_run: bool,
    },
    /// Train registered cells (`bench run GRID --enqueue`) until none is left.
    ///
    /// Claims the first queued cell in grid order (no finished run, no
    /// failure since the sweep was registered, no live lease), trains it
    /// under a lease its heartbeat extends, records it only while it still
    /// holds the claim, and goes on. A cell whose lease expired (its worker
    /// died: MTLBENCH_STALE_SECONDS without a heartbeat) is trained again.
    /// Ctrl-C or SIGTERM marks the run killed, which queues its cell again.
    /// Exits when every cell is finished or failed; waits while cells are
    /// trained elsewhere.
    Worker {
        /// Only this sweep (id prefix or name); default: every sweep.
        #[arg(long)]
        sweep: Option<String>,
        /// Keep waiting for new cells when none is left.
        #[arg(long)]
        follow: bool,
        /// libtorch threads of a cell whose grid does not set train.threads
        /// (default: the number of cores).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
        threads: Option<u64>,
        #[arg(long, short, conflicts_with = "verbose")]
        quiet: bool,
        #[arg(long, short)]
        verbose: bool,
        /// Report as JSON lines on stdout (for `bench run --jobs`).
        #[arg(long, hide = true)]
        events: bool,
    },
    /// Print the cells of a grid, or freeze them into a manifest for a job
    /// array (`bench run --manifest FILE --cell N`; see docs/cluster.md).
    Plan {
        /// Grid file (TOML). Without it, the embedded demo grid is used.
        grid: Option<PathBuf>,
        /// Write the cells, the grid's path and its hash here (JSON).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// List recorded runs (all, or filtered).
    List {
        /// Only runs of this sweep (id prefix or name).
        #[arg(long)]
        sweep: Option<String>,
        /// Only runs of this model (e.g. mmoe).
        #[arg(long)]
        model: Option<String>,
        /// Only runs of this strategy (e.g. gradnorm).
        #[arg(long)]
        strategy: Option<String>,
        /// Only runs with this status: queued, running, finished, failed, killed, superseded.
        #[arg(long)]
        status: Option<mtlbench::store::RunStatus>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show one run: configuration, environment, metrics and curve summary.
    Show {
        /// Run id or a unique prefix of it (like git).
        run_id: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Compare runs or sweeps side by side, with statistics.
    ///
    /// Each target is a run id (or unique prefix) or a sweep id prefix or
    /// name; the first is the baseline. Runs: the params that differ, metric
    /// deltas per task and DeLong's test of test AUC on the same rows.
    /// Sweeps, or runs repeating a configuration over seeds: per
    /// configuration mean ± std and n, and the 95% CI of the difference to
    /// the baseline (paired by seed when the seeds match, Welch otherwise).
    /// A verdict per task: better, worse or within noise.
    Compare {
        /// Run ids / prefixes, or sweep ids / names; the first is the baseline.
        #[arg(required = true, num_args = 1..)]
        targets: Vec<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Also write a self-contained HTML page here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Skip DeLong's test (runs on different test rows, or without saved predictions).
        #[arg(long)]
        no_delong: bool,
    },
    /// Rank every model x strategy arm of a sweep: which wins, by how much,
    /// whether it is real, at what cost.
    ///
    /// Each arm's configurations are its distinct configurations (the grid's
    /// override axes, or its search trials). For every seed the configuration
    /// is chosen on the validation split only (the runs' train.select_metric,
    /// or --task), and that seed's test result is reported: mean ± std over
    /// seeds, a 95% t interval, the difference to tuned equal weighting of
    /// the same model paired by seed with a verdict (better / worse / within
    /// noise; from 3 seeds), Δm against single-task baselines when the grid
    /// ran them, and the step time relative to equal weighting. Warns when
    /// arms had different tuning budgets. See docs/protocol.md.
    Leaderboard {
        /// Sweep ids (prefixes) or names; default: the latest sweep with finished runs.
        sweeps: Vec<String>,
        /// Select on this task's validation AUC and report its test AUC.
        #[arg(long)]
        task: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Fuse finished runs into an ensemble recorded as a new run.
    ///
    /// Averages the saved test predictions of runs evaluated on the same test
    /// rows (weighted mean of probabilities, or of normalised ranks with
    /// --rank) and records the ensemble with its metrics.
    Fuse {
        /// Two or more run ids (or unique prefixes).
        #[arg(required = true, num_args = 2..)]
        runs: Vec<String>,
        /// Comma-separated weights, one per run (default: equal).
        #[arg(long, value_delimiter = ',')]
        weights: Option<Vec<f64>>,
        /// Average normalised ranks instead of probabilities.
        #[arg(long)]
        rank: bool,
    },
    /// Write the HTML report (index, charts) from the database.
    Report {
        /// Output folder.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Open the index in a browser afterwards, if one is available.
        #[arg(long)]
        open: bool,
    },
    /// Rewrite the results table in README.md from the leaderboard.
    Readme {
        /// The README to update (between the bench:results markers).
        #[arg(long, default_value = "README.md")]
        readme: PathBuf,
        /// Sweep id prefix or name; default: the latest sweep with finished runs.
        #[arg(long)]
        sweep: Option<String>,
    },
    /// Datasets: generate WeChat-shaped synthetic files, inspect a data config.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write synthetic user_action.csv and feed_info.csv in the exact WeChat
    /// Channels 2021 schema (same seed, byte-identical files).
    Synth {
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        users: usize,
        #[arg(long)]
        feeds: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Days in the log (at least 8: the features need 7 days of history).
        #[arg(long, default_value_t = 14)]
        days: u8,
        /// How much the actions share their latent signal, 0..=1.
        #[arg(long, default_value_t = 0.5)]
        relatedness: f64,
    },
    /// Load (building the feature cache if needed) and describe a dataset:
    /// rows, positive rates, vocabularies, features, funnel containment.
    Inspect {
        /// A grid file (its [data] section is used) or a file holding only a data config.
        config: PathBuf,
    },
}
