//! `bench`: the command-line front end. Thin: parse the CLI, call the
//! library, add context to errors, set the exit code.

mod cli;

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Command, Format};
use mtlbench::report;
use mtlbench::run::{self, GridSource, RunOptions, Verbosity};
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
        Command::Run { grid, force, quiet, verbose, dry_run } => {
            let verbosity = match (quiet, verbose) {
                (true, _) => Verbosity::Quiet,
                (false, true) => Verbosity::Verbose,
                (false, false) => Verbosity::Normal,
            };
            cmd_run(&cli.db, grid.as_deref(), force, verbosity, dry_run)
        }
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

fn cmd_run(db: &Path, grid: Option<&Path>, force: bool, verbosity: Verbosity, dry_run: bool) -> Result<()> {
    let source = GridSource::read(grid)?;
    let plan = source.plan()?;
    let stale_after_seconds = match std::env::var(run::claim::STALE_SECONDS_VAR) {
        Ok(s) => run::claim::parse_stale_seconds(run::claim::STALE_SECONDS_VAR, &s)?,
        Err(std::env::VarError::NotPresent) => run::claim::DEFAULT_STALE_SECONDS,
        Err(std::env::VarError::NotUnicode(s)) => bail!("{}={s:?}: expected a number of seconds", run::claim::STALE_SECONDS_VAR),
    };
    if dry_run {
        print!("{}", run::describe_plan(&plan));
        return Ok(());
    }
    let store = open_store(db, OpenMode::CreateIfMissing)?;
    let mut opts = RunOptions::new(mtlbench::data::default_cache_dir());
    opts.force = force;
    opts.verbosity = verbosity;
    opts.stale_after_seconds = stale_after_seconds;
    mtlbench::interrupt::install();
    let s = run::run_plan(&plan, &source, &store, &opts).with_context(|| format!("running grid {}", source.path.display()))?;
    println!("{s}");
    if s.interrupted {
        eprintln!("interrupted: the running run is marked killed; run the grid again to resume");
        std::process::exit(130);
    }
    if !s.failed.is_empty() {
        for (name, err) in &s.failed {
            eprintln!("  failed: {name}: {err}");
        }
        bail!("{} of {} cells failed (recorded in {})", s.failed.len(), s.cells, db.display());
    }
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
