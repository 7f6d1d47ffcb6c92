//! `bench`: the command-line front end. Thin: parse the CLI, call the
//! library, add context to errors, set the exit code.

mod cli;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Command, Format};
use mtlbench::report;
use mtlbench::config::Plan;
use mtlbench::run::jobs::HOST_VAR;
use mtlbench::run::manifest::{self, Manifest};
use mtlbench::run::worker::WorkerOptions;
use mtlbench::run::{self, GridSource, Progress, RunOptions, Verbosity};
use mtlbench::store::{OpenMode, Store};

fn main() {
    mtlbench::env::init_process();
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {}", causes_once(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined by ": ", each once: a cause whose text
/// the messages before it already show (an error that prints its source
/// and also returns it as its `source`) is left out.
fn causes_once(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Opens the database: `bench run` creates it when missing, every other
/// verb opens only an existing file.
fn open_store(db: &Path, mode: OpenMode) -> Result<Store> {
    Store::open_with(db, mode).with_context(|| format!("opening the database {}", db.display()))
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { grid, force, quiet, verbose, dry_run, jobs, enqueue, manifest, cell } => {
            let mode = match (manifest, jobs, enqueue) {
                (Some(file), _, _) => RunMode::Manifest { file, cell },
                (None, Some(n), _) => RunMode::Jobs(n as usize),
                (None, None, true) => RunMode::Enqueue,
                (None, None, false) => RunMode::InProcess,
            };
            cmd_run(&cli.db, grid.as_deref(), force, verbosity_of(quiet, verbose), dry_run, mode)
        }
        Command::Worker { sweep, follow, threads, quiet, verbose, events } => {
            let verbosity = verbosity_of(quiet, verbose);
            let mut opts = WorkerOptions::new(run_options(verbosity)?);
            opts.run.threads = threads.map(|t| t as usize);
            opts.sweep = sweep;
            opts.follow = follow;
            cmd_worker(&cli.db, &opts, events)
        }
        Command::Plan { grid, manifest } => cmd_plan(grid.as_deref(), manifest.as_deref()),
        Command::List { sweep, model, strategy, status, format } => {
            let filter = report::listing::RunFilter { sweep, model, strategy, status };
            cmd_list(&cli.db, &filter, format)
        }
        Command::Show { run_id, format } => {
            let store = open_store(&cli.db, OpenMode::ReadExisting)?;
            match format {
                Format::Json => println!("{}", report::show::render_json(&store, &run_id)?),
                _ => print!("{}", report::show::render_text(&store, &run_id)?),
            }
            Ok(())
        }
        Command::Fuse { runs, weights, rank } => {
            let store = open_store(&cli.db, OpenMode::ReadExisting)?;
            let mode = if rank { mtlbench::fusion::FusionMode::Rank } else { mtlbench::fusion::FusionMode::Mean };
            let f = mtlbench::fusion::fuse(&store, &runs, weights.as_deref(), mode).context("fusing runs")?;
            print!("{f}");
            Ok(())
        }
        Command::Compare { targets, format, html, no_delong } => cmd_compare(&cli.db, &targets, format, html.as_deref(), no_delong),
        Command::Report { out, open } => cmd_report(&cli.db, &out, open),
        Command::Leaderboard { sweeps, task, format } => cmd_leaderboard(&cli.db, &sweeps, task, format),
        Command::Readme { readme, sweep } => {
            let store = open_store(&cli.db, OpenMode::ReadExisting)?;
            let changed = report::readme::update(&store, &readme, sweep.as_deref())
                .with_context(|| format!("updating the results table in {}", readme.display()))?;
            println!("{}: results table {}", readme.display(), if changed { "updated" } else { "already up to date" });
            Ok(())
        }
        Command::Data { command } => cmd_data(command),
    }
}

fn cmd_data(command: cli::DataCommand) -> Result<()> {
    use mtlbench::data::{inspect, wechat::synth};
    match command {
        cli::DataCommand::Synth { out, users, feeds, seed, days, relatedness } => {
            let p = synth::SynthParams { users, feeds, seed, days, relatedness };
            let r = synth::write_dir(&p, &out).with_context(|| format!("generating synthetic WeChat data into {}", out.display()))?;
            println!("{}: {} actions of {users} users on {feeds} feeds over {days} days, in {:.1}s", out.display(), r.rows, r.seconds);
            for (a, n) in mtlbench::data::wechat::ACTIONS.iter().zip(r.positives) {
                println!("  {a:<13} {:.4}% positive", 100.0 * n as f64 / r.rows.max(1) as f64);
            }
            Ok(())
        }
        cli::DataCommand::Inspect { config } => {
            let cfg = mtlbench::config::load_data_config(&config)?;
            let cache = mtlbench::data::default_cache_dir();
            let ins = inspect::inspect(&cfg, &cache).with_context(|| format!("inspecting the data of {}", config.display()))?;
            print!("{ins}");
            Ok(())
        }
    }
}

/// How `bench run` trains a grid.
enum RunMode {
    /// Cell after cell in this process.
    InProcess,
    /// In N worker processes.
    Jobs(usize),
    /// Register the cells only.
    Enqueue,
    /// One cell of a manifest.
    Manifest { file: PathBuf, cell: Option<usize> },
}

fn verbosity_of(quiet: bool, verbose: bool) -> Verbosity {
    match (quiet, verbose) {
        (true, _) => Verbosity::Quiet,
        (false, true) => Verbosity::Verbose,
        (false, false) => Verbosity::Normal,
    }
}

/// Run options from the environment: the stale timeout, the host name, the cache.
fn run_options(verbosity: Verbosity) -> Result<RunOptions> {
    let stale_after_seconds = match std::env::var(run::claim::STALE_SECONDS_VAR) {
        Ok(s) => run::claim::parse_stale_seconds(run::claim::STALE_SECONDS_VAR, &s)?,
        Err(std::env::VarError::NotPresent) => run::claim::DEFAULT_STALE_SECONDS,
        Err(std::env::VarError::NotUnicode(s)) => bail!("{}={s:?}: expected a number of seconds", run::claim::STALE_SECONDS_VAR),
    };
    let mut opts = RunOptions::new(mtlbench::data::default_cache_dir());
    opts.verbosity = verbosity;
    opts.stale_after_seconds = stale_after_seconds;
    match std::env::var(HOST_VAR) {
        Ok(h) if !h.trim().is_empty() => opts.host = h.trim().to_string(),
        Ok(_) | Err(std::env::VarError::NotPresent) => {}
        Err(std::env::VarError::NotUnicode(s)) => bail!("{HOST_VAR}={s:?}: expected a host name"),
    }
    Ok(opts)
}

/// The grid to run and, for a manifest, the one cell of it.
fn grid_of(grid: Option<&Path>, mode: &RunMode) -> Result<(GridSource, Plan, Option<usize>)> {
    let RunMode::Manifest { file, cell } = mode else {
        let source = GridSource::read(grid)?;
        let plan = source.plan()?;
        return Ok((source, plan, None));
    };
    let m = Manifest::read(file)?;
    let index = manifest::cell_index(file, *cell, |k| std::env::var(k).ok())?;
    let source = GridSource::read(m.grid.as_deref().map(Path::new))?;
    let plan = source.plan()?;
    m.check(file, &plan, index)?;
    Ok((source, plan, Some(index)))
}

fn cmd_run(db: &Path, grid: Option<&Path>, force: bool, verbosity: Verbosity, dry_run: bool, mode: RunMode) -> Result<()> {
    let (source, plan, only) = grid_of(grid, &mode)?;
    let mut opts = run_options(verbosity)?;
    opts.force = force;
    if dry_run {
        print!("{}", run::describe_plan(&plan));
        return Ok(());
    }
    let store = open_store(db, OpenMode::CreateIfMissing)?;
    mtlbench::interrupt::install();
    let running = || format!("running grid {}", source.path.display());
    let s = match mode {
        RunMode::InProcess => run::run_plan(&plan, &source, &store, &opts).with_context(running)?,
        RunMode::Manifest { .. } => run::run_cells(&plan, &source, &store, &opts, only).with_context(running)?,
        RunMode::Jobs(jobs) => {
            let program = std::env::current_exe().context("finding the bench program to start workers")?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let j = run::jobs::Jobs { program: &program, jobs, cores };
            run::jobs::run_jobs(&plan, &source, &store, &opts, &j).with_context(running)?
        }
        RunMode::Enqueue => {
            let lines = Progress::with_bars(verbosity, plan.cells.len(), false);
            let done = run::worker::enqueue(&plan, &source, &store, &opts, &lines).with_context(|| format!("registering grid {}", source.path.display()))?;
            println!(
                "sweep {} ({}): {} cells registered, {done} already finished; train them with `bench worker --db {} --sweep {}`",
                plan.grid_hash,
                plan.name,
                plan.cells.len(),
                db.display(),
                plan.grid_hash
            );
            return Ok(());
        }
    };
    println!("{s}");
    finish(db, s.interrupted, &s.failed, s.cells)
}

/// The exit of a run or worker: 130 when interrupted, an error when cells failed.
fn finish(db: &Path, interrupted: bool, failed: &[(String, String)], cells: usize) -> Result<()> {
    if interrupted {
        eprintln!("interrupted: the running run is marked killed and its cell queued again; run the grid again to resume");
        std::process::exit(run::jobs::INTERRUPTED_EXIT);
    }
    if !failed.is_empty() {
        for (name, err) in failed {
            eprintln!("  failed: {name}: {err}");
        }
        bail!("{} of {} cells failed (recorded in {})", failed.len(), cells, db.display());
    }
    Ok(())
}

fn cmd_worker(db: &Path, opts: &WorkerOptions, events: bool) -> Result<()> {
    let store = open_store(db, OpenMode::ReadExisting)?;
    mtlbench::interrupt::install();
    let mut progress = if events { Progress::events(opts.run.verbosity) } else { Progress::new(opts.run.verbosity, 0) };
    let s = run::worker::work(&store, opts, &mut progress).context("working the queue")?;
    drop(progress);
    if events {
        // The parent counts the cells from the events and says what happened.
        let code = if s.interrupted { run::jobs::INTERRUPTED_EXIT } else { i32::from(!s.failed.is_empty()) };
        std::process::exit(code);
    }
    println!(
        "worker {} (pid {}): {} cells trained, {} failed, {} superseded",
        opts.run.host,
        std::process::id(),
        s.trained,
        s.failed.len(),
        s.superseded
    );
    finish(db, s.interrupted, &s.failed, s.cells)
}

fn cmd_plan(grid: Option<&Path>, manifest: Option<&Path>) -> Result<()> {
    let source = GridSource::read(grid)?;
    let plan = source.plan()?;
    let Some(file) = manifest else {
        print!("{}", run::describe_plan(&plan));
        return Ok(());
    };
    Manifest::freeze(&plan, grid).write(file)?;
    println!("{}: {} cells of grid {} (sweep {}); run cell N with `bench run --manifest {} --cell N`", file.display(), plan.cells.len(), plan.name, plan.grid_hash, file.display());
    Ok(())
}

fn cmd_compare(db: &Path, targets: &[String], format: Format, html: Option<&Path>, no_delong: bool) -> Result<()> {
    use report::compare as render;
    let store = open_store(db, OpenMode::ReadExisting)?;
    let opts = mtlbench::compare::CompareOptions { delong: !no_delong };
    let c = mtlbench::compare::compare(&store, targets, opts).with_context(|| format!("comparing {}", targets.join(" ")))?;
    match format {
        Format::Table => print!("{}", render::to_text(&c)),
        Format::Md => print!("{}", render::to_markdown(&c)),
        Format::Csv => print!("{}", render::to_csv(&c)),
        Format::Json => println!("{}", render::to_json(&c)?),
    }
    if let Some(path) = html {
        std::fs::write(path, render::to_html(&c)?).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("compare: wrote {}", path.display());
    }
    Ok(())
}

fn cmd_leaderboard(db: &Path, sweeps: &[String], task: Option<String>, format: Format) -> Result<()> {
    use report::leaderboard as lb;
    let store = open_store(db, OpenMode::ReadExisting)?;
    let what = if sweeps.is_empty() { "the latest sweep".to_string() } else { sweeps.join(" ") };
    let board = lb::leaderboard(&store, sweeps, &mtlbench::verdict::Options { task }).with_context(|| format!("ranking {what}"))?;
    match format {
        Format::Table => print!("{}", lb::to_text(&board)),
        Format::Md => print!("{}", lb::to_markdown(&board)),
        Format::Csv => print!("{}", lb::to_csv(&board)),
        Format::Json => println!("{}", lb::to_json(&board)?),
    }
    Ok(())
}

fn cmd_list(db: &Path, filter: &report::listing::RunFilter, format: Format) -> Result<()> {
    let store = open_store(db, OpenMode::ReadExisting)?;
    let runs = report::listing::select_runs(&store, filter)?;
    if let Format::Json = format {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    if runs.is_empty() && matches!(format, Format::Table) {
        println!("no runs match in {}; try `bench run`", db.display());
        return Ok(());
    }
    let table = report::listing::runs_table(&store, &runs)?;
    print!("{}", render_table(&table, format));
    Ok(())
}

fn render_table(t: &report::table::Table, format: Format) -> String {
    match format {
        Format::Table => t.to_text(),
        Format::Md => t.to_markdown(),
        Format::Csv => t.to_csv(),
        Format::Json => serde_json::to_string_pretty(t).unwrap_or_default(),
    }
}

fn cmd_report(db: &Path, out: &Path, open: bool) -> Result<()> {
    let store = open_store(db, OpenMode::ReadExisting)?;
    let r = report::render(&store, out).with_context(|| format!("rendering the report into {}", out.display()))?;
    println!("report: {} ({} chart(s))", r.index.display(), r.charts.len());
    if open {
        let opener = mtlbench::env::find_program(&["xdg-open", "open", "sensible-browser"]);
        match opener {
            Some(cmd) => {
                std::process::Command::new(cmd).arg(&r.index).spawn().with_context(|| format!("starting {cmd}"))?;
            }
            None => bail!("no browser opener (xdg-open, open) found; open {} yourself", r.index.display()),
        }
    }
    Ok(())
}
