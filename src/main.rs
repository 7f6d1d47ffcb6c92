//! `bench`: the command-line front end. Thin: parse the CLI, call the
//! library, add context to errors, set the exit code.

mod cli;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Command, Format};
use mtlbench::config::{self, ConfigError};
use mtlbench::report;
use mtlbench::runner::{self, RunOptions};
use mtlbench::store::Store;

fn main() {
    // libtorch reads this once at start-up; spinning OpenMP workers make
    // steps 10x-40x slower when anything else uses the cores.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        std::env::set_var("OMP_WAIT_POLICY", "PASSIVE");
    }
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn open_store(db: &Path) -> Result<Store> {
    Store::open(db).with_context(|| format!("opening the database {}", db.display()))
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { grid, force, quiet, dry_run } => cmd_run(&cli.db, grid, force, quiet, dry_run),
        Command::List { sweep, format } => cmd_list(&cli.db, sweep.as_deref(), format),
        Command::Show { run_id, format } => cmd_show(&cli.db, &run_id, format),
        Command::Report { out, open } => cmd_report(&cli.db, &out, open),
        Command::Readme { readme, sweep } => {
            let store = open_store(&cli.db)?;
            let changed = report::readme::update(&store, &readme, sweep.as_deref())
                .with_context(|| format!("updating the results table in {}", readme.display()))?;
            println!("{}: results table {}", readme.display(), if changed { "updated" } else { "already up to date" });
            Ok(())
        }
    }
}

fn cmd_run(db: &Path, grid: Option<PathBuf>, force: bool, quiet: bool, dry_run: bool) -> Result<()> {
    let (path, text) = match &grid {
        Some(p) => (p.clone(), std::fs::read_to_string(p).map_err(|source| ConfigError::Read { file: p.clone(), source })?),
        None => (PathBuf::from("experiments/demo.toml (embedded)"), mtlbench::DEMO_GRID.to_string()),
    };
    let parsed = config::parse_grid(&text, &path)?;
    let plan = config::expand(&parsed, &path)?;
    if dry_run {
        println!("grid {} (sweep {}): {} cells", plan.name, plan.grid_hash, plan.cells.len());
        for c in &plan.cells {
            println!("  {}  config {}", c.name(), c.config_hash);
        }
        return Ok(());
    }
    let store = open_store(db)?;
    let mut opts = RunOptions::new(mtlbench::data::default_cache_dir());
    opts.force = force;
    opts.progress = !quiet;
    if let Ok(s) = std::env::var("MTLBENCH_STALE_SECONDS") {
        opts.stale_after_seconds = s.parse().with_context(|| format!("MTLBENCH_STALE_SECONDS={s:?} is not a number of seconds"))?;
    }
    mtlbench::interrupt::install();
    eprintln!("grid {}: {} cells, database {}", plan.name, plan.cells.len(), db.display());
    let s = runner::run_plan(&plan, &path, &text, &store, &opts).with_context(|| format!("running grid {}", path.display()))?;
    println!(
        "sweep {} ({}): {} cells, {} trained, {} already finished, {} busy elsewhere, {} failed",
        s.sweep_id,
        plan.name,
        s.cells,
        s.trained,
        s.skipped,
        s.busy,
        s.failed.len()
    );
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

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

fn cmd_list(db: &Path, sweep: Option<&str>, format: Format) -> Result<()> {
    let store = open_store(db)?;
    let runs = match sweep {
        Some(w) => {
            let s = store
                .list_sweeps()?
                .into_iter()
                .find(|s| s.id.starts_with(w) || s.name == w)
                .with_context(|| format!("no sweep matches `{w}`"))?;
            store.sweep_runs(&s.id)?
        }
        None => store.list_runs()?,
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
        Format::Table => {
            if runs.is_empty() {
                println!("no runs in {} yet; try `bench run`", db.display());
                return Ok(());
            }
            println!("{:<12}  {:<36}  {:<9}  {:>10}  {:>9}  finished", "run", "name", "status", "mean AUC", "train s");
            for r in &runs {
                let m = store.metrics(&r.id)?;
                let aucs: Vec<f64> = m.iter().filter(|x| x.split == "test" && x.metric == "auc").map(|x| x.value).collect();
                let mean = (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
                println!(
                    "{:<12}  {:<36}  {:<9}  {:>10}  {:>9}  {}",
                    r.id,
                    r.name,
                    r.status,
                    fmt_opt(mean, 4),
                    fmt_opt(r.train_seconds, 1),
                    r.finished_at.as_deref().unwrap_or("–")
                );
            }
        }
    }
    Ok(())
}

fn cmd_show(db: &Path, prefix: &str, format: Format) -> Result<()> {
    let store = open_store(db)?;
    let run = store.find_run(prefix)?;
    let params = store.params(&run.id)?;
    let metrics = store.metrics(&run.id)?;
    let epochs = store.epochs(&run.id)?;
    if let Format::Json = format {
        let v = serde_json::json!({ "run": run, "params": params, "metrics": metrics, "epochs": epochs });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("run {}  {}", run.id, run.name);
    println!("  status     {}{}", run.status, run.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default());
    println!("  sweep      {}", run.sweep_id);
    println!("  model      {}   strategy {}   seed {}", run.model, run.strategy, run.seed);
    println!("  dataset    {} (digest {})", run.dataset_name, run.dataset_digest);
    println!("  config     {}   cell {}", run.config_hash, run.cell_key);
    println!("  times      created {}  finished {}", run.created_at, run.finished_at.as_deref().unwrap_or("–"));
    if let Some(n) = run.n_params {
        println!("  params     {n} trainable");
    }
    if let Some(env) = &run.env_json {
        println!("  env        {env}");
    }
    println!("\nparameters:");
    for p in &params {
        println!("  {} = {}", p.key, p.value);
    }
    println!("\nepochs (best {}):", run.best_epoch.map_or("–".into(), |e| e.to_string()));
    for e in &epochs {
        println!(
            "  {:>3}: {} steps, valid select {:.4}, {:.1}s train, {:.0} samples/s",
            e.epoch, e.steps, e.select_value, e.train_seconds, e.samples_per_second
        );
    }
    println!("\nfinal metrics:");
    println!("  {:<6} {:<16} {:<14} value", "split", "task", "metric");
    for m in &metrics {
        println!("  {:<6} {:<16} {:<14} {:.6}", m.split, m.task, m.metric, m.value);
    }
    Ok(())
}

fn cmd_report(db: &Path, out: &Path, open: bool) -> Result<()> {
    let store = open_store(db)?;
    let r = report::render(&store, out).with_context(|| format!("rendering the report into {}", out.display()))?;
    println!("report: {} ({} chart(s))", r.index.display(), r.charts.len());
    if open {
        let opener = ["xdg-open", "open", "sensible-browser"].iter().find(|c| which(c));
        match opener {
            Some(cmd) => {
                std::process::Command::new(cmd).arg(&r.index).spawn().with_context(|| format!("starting {cmd}"))?;
            }
            None => bail!("no browser opener (xdg-open, open) found; open {} yourself", r.index.display()),
        }
    }
    Ok(())
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}
