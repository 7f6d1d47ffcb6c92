//! `bench-perf`: developer tooling that compares mtlbench's training step
//! with a PyTorch eager reference (scripts/perf_reference.py) and reprints or
//! pools saved reports. A binary of its own so that the user's `bench` and
//! the library carry none of it: the comparison ([`perf`]) and its
//! rank-based statistics ([`ranks`]) live here and use the library only
//! through its public API. Thin like `bench`: parse, call, add context to
//! errors, set the exit code.

mod cli;
mod perf;
mod ranks;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;

use cli::{Cli, Command, PerfArgs, RechubArgs};

fn main() {
    mtlbench::env::init_process();
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Worker { dir, model, round }) => {
            let r = perf::worker::run(&dir, perf::parse_model(&model)?, round)
                .with_context(|| format!("perf worker on {}", dir.display()))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Some(Command::Rechub(a)) => rechub(a),
        None if !cli.perf.show.is_empty() => show(&cli.perf.show, cli.perf.json.as_deref()),
        None => measure(cli.perf),
    }
}

/// Prints (and with `json` saves) the reports in `paths`, pooled into one.
fn show(paths: &[PathBuf], json: Option<&Path>) -> Result<()> {
    let mut pieces = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: perf::PerfReport = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bench-perf report (written by bench-perf --json)", path.display()))?;
        pieces.push(perf::merge::Piece { path: path.clone(), report });
    }
    let report = perf::merge::merge(pieces).context("pooling the reports")?;
    print!("{report}");
    save(&report, json)
}

fn save(report: &perf::PerfReport, json: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs both sides and prints (and with `--json` saves) the report.
fn measure(a: PerfArgs) -> Result<()> {
    let cache_dir = mtlbench::data::default_cache_dir();
    let python = if a.no_reference {
        None
    } else {
        a.python.or_else(|| Some(perf::default_python(&cache_dir)).filter(|p| p.exists()))
    };
    let opts = perf::PerfOptions {
        models: a.models.iter().map(|m| perf::parse_model(m)).collect::<Result<_, _>>()?,
        steps: a.steps,
        warmup: a.warmup,
        batch_size: a.batch,
        threads: a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        users: a.users,
        feeds: a.feeds,
        test_rows: a.test_rows,
        auc_rows: a.auc_rows,
        seed: a.seed,
        rounds: a.rounds,
        first_round: a.first_round,
        compiled_rounds: a.compiled_rounds,
        dropout: a.dropout,
        masks: a.masks.into(),
        step: a.step.into(),
        python,
        script: a.script,
        worker_exe: std::env::current_exe().context("locating the bench-perf executable")?,
        cache_dir,
        work_dir: a.work_dir,
    };
    let report = perf::run(&opts, &mut |line| eprintln!("{line}")).context("bench-perf")?;
    print!("{report}");
    save(&report, a.json.as_deref())
}

/// Runs `bench-perf rechub` and prints (and with `--json` saves) its report.
fn rechub(a: RechubArgs) -> Result<()> {
    if let Some(path) = &a.show {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: perf::rechub::RechubReport = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bench-perf rechub report (written by bench-perf rechub --json)", path.display()))?;
        print!("{report}");
        return Ok(());
    }
    let cache_dir = mtlbench::data::default_cache_dir();
    let opts = perf::rechub::RechubOptions {
        steps: a.steps,
        warmup: a.warmup,
        batch_size: a.batch,
        threads: a.threads,
        train_rows: a.train_rows,
        test_rows: a.test_rows,
        tasks: a.tasks,
        seed: a.seed,
        rounds: a.rounds,
        loader_rounds: a.loader_rounds,
        step: a.step.into(),
        python: a.python.unwrap_or_else(|| perf::default_python(&cache_dir)),
        script: a.script,
        worker_exe: std::env::current_exe().context("locating the bench-perf executable")?,
        work_dir: a.work_dir,
    };
    let report = perf::rechub::run(&opts, &mut |line| eprintln!("{line}")).context("bench-perf rechub")?;
    print!("{report}");
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
