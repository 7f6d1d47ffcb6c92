//! `bench`: the command-line front end. Thin: parse the CLI, call the
//! library, add context to errors, set the exit code.

mod cli;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Command, Format};
use mtlbench::config::{self, ConfigError};
use mtlbench::perf;
use mtlbench::report;
use mtlbench::runner::{self, RunOptions};
use mtlbench::store::Store;

fn main() {
    // libtorch reads this once at start-up; spinning OpenMP workers make
    // steps 10x-40x slower when anything else uses the cores.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        std::env::set_var("OMP_WAIT_POLICY", "PASSIVE");
    }
    // Reuse freed tensor buffers instead of faulting fresh pages each step.
    mtlbench::train::alloc::keep_freed_memory();
    // Die quietly on a closed pipe (`bench list | head`) like other Unix tools.
    // SAFETY: restoring the default disposition of SIGPIPE at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
        Command::List { sweep, model, strategy, status, format } => {
            let filter = report::listing::RunFilter { sweep, model, strategy, status };
            cmd_list(&cli.db, &filter, format)
        }
        Command::Show { run_id, format } => cmd_show(&cli.db, &run_id, format),
        Command::Fuse { runs, weights, rank } => {
            let store = open_store(&cli.db)?;
            let mode = if rank { mtlbench::fusion::FusionMode::Rank } else { mtlbench::fusion::FusionMode::Mean };
            let f = mtlbench::fusion::fuse(&store, &runs, weights.as_deref(), mode).context("fusing runs")?;
            println!("fused {} runs into run {} ({})", f.members.len(), f.run_id, f.name);
            for m in &f.result.test {
                let show = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.4}"));
                println!("  {:<16} test AUC {}  uAUC {}  log loss {}", m.task, show(m.auc), show(m.uauc), show(m.logloss));
            }
            Ok(())
        }
        Command::Compare { targets, format, html, no_delong } => cmd_compare(&cli.db, &targets, format, html.as_deref(), no_delong),
        Command::Report { out, open } => cmd_report(&cli.db, &out, open),
        Command::Leaderboard { sweeps, task, format } => cmd_leaderboard(&cli.db, &sweeps, task, format),
        Command::Readme { readme, sweep } => {
            let store = open_store(&cli.db)?;
            let changed = report::readme::update(&store, &readme, sweep.as_deref())
                .with_context(|| format!("updating the results table in {}", readme.display()))?;
            println!("{}: results table {}", readme.display(), if changed { "updated" } else { "already up to date" });
            Ok(())
        }
        Command::Data { command } => cmd_data(command),
        Command::Perf { models, steps, warmup, batch, threads, users, feeds, test_rows, auc_rows, seed, rounds, dropout, masks, first_round, python, no_reference, script, work_dir, json, show } => {
            if !show.is_empty() {
                let mut pieces = Vec::new();
                for path in show {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    let report: perf::PerfReport = serde_json::from_str(&text)
                        .with_context(|| format!("{}: not a bench perf report (written by bench perf --json)", path.display()))?;
                    pieces.push(perf::merge::Piece { path, report });
                }
                let report = perf::merge::merge(pieces).context("pooling the reports")?;
                print!("{report}");
                if let Some(path) = json {
                    let text = serde_json::to_string_pretty(&report)?;
                    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                }
                return Ok(());
            }
            let cache_dir = mtlbench::data::default_cache_dir();
            let python = if no_reference {
                None
            } else {
                python.or_else(|| Some(perf::default_python(&cache_dir)).filter(|p| p.exists()))
            };
            let opts = perf::PerfOptions {
                models: models.iter().map(|m| perf::parse_model(m)).collect::<Result<_, _>>()?,
                steps,
                warmup,
                batch_size: batch,
                threads: threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                users,
                feeds,
                test_rows,
                auc_rows,
                seed,
                rounds,
                first_round,
                dropout,
                masks: masks.into(),
                python,
                script,
                worker_exe: std::env::current_exe().context("locating the bench executable")?,
                cache_dir,
                work_dir,
            };
            let report = perf::run(&opts, &mut |line| eprintln!("{line}")).context("bench perf")?;
            print!("{report}");
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::PerfWorker { dir, model, round } => {
            let r = perf::worker::run(&dir, perf::parse_model(&model)?, round).with_context(|| format!("perf worker on {}", dir.display()))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
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
            let text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
            let cfg = inspect::config_from_toml(&text, &config)?;
            let cache = mtlbench::data::default_cache_dir();
            let ins = inspect::inspect(&cfg, &cache).with_context(|| format!("inspecting the data of {}", config.display()))?;
            print!("{ins}");
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

fn cmd_compare(db: &Path, targets: &[String], format: Format, html: Option<&Path>, no_delong: bool) -> Result<()> {
    use report::compare as render;
    let store = open_store(db)?;
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
    let store = open_store(db)?;
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
    let store = open_store(db)?;
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
    if let (Some(d), Some(rss), Some(sps)) = (run.data_seconds, run.peak_rss_mib, run.samples_per_second) {
        println!("  resources  data {d:.1}s, {sps:.0} samples/s, peak RSS {rss:.0} MiB");
    }
    if let Some(env) = run.env_json.as_deref().and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok()) {
        if let Some(o) = env.as_object() {
            let parts: Vec<String> = o.iter().map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect();
            println!("  env        {}", parts.join(", "));
        }
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
    let curves = store.curves(&run.id)?;
    let mut tasks: Vec<&str> = curves.iter().filter(|c| c.split == "valid" && c.metric == "auc").map(|c| c.task.as_str()).collect();
    tasks.dedup();
    if !tasks.is_empty() {
        println!("\nvalidation AUC by epoch (* = selected):");
        for t in tasks {
            let pts: Vec<String> = curves
                .iter()
                .filter(|c| c.split == "valid" && c.metric == "auc" && c.task == t)
                .map(|c| format!("{:.4}{}", c.value, if Some(c.epoch) == run.best_epoch { "*" } else { "" }))
                .collect();
            println!("  {t:<16} {}", pts.join("  "));
        }
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
